//! Flag parity with upstream kwokctl v0.8: every flag upstream's commands define (read
//! from its Go sources in the `sigs.k8s.io/kwok` v0.8.0 module, downloaded at test
//! time) is a flag of the same command here, as `kwokctl <cmd> --help` shows it, unless
//! it is one of the deliberate differences the README lists with their reasons.

use std::{collections::BTreeMap, path::Path, process::Command};

#[path = "../../tests/support/upstream_module.rs"]
mod upstream_module;

/// Upstream flags kwokctl-rs does not take, by command, each with the README's reason
/// (the README's "Differences from upstream kwokctl" table says the same).
const DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "config convert",
        "*",
        "v1alpha1 is the only config version: nothing to convert",
    ),
    ("create cluster", "etcd-image", IMAGES),
    ("create cluster", "kube-apiserver-image", IMAGES),
    ("create cluster", "kube-controller-manager-image", IMAGES),
    ("create cluster", "kube-scheduler-image", IMAGES),
    ("create cluster", "kwok-controller-image", IMAGES),
    ("create cluster", "metrics-server-image", IMAGES),
    ("create cluster", "prometheus-image", IMAGES),
    ("create cluster", "jaeger-image", IMAGES),
    ("create cluster", "dashboard-image", IMAGES),
    ("create cluster", "kind-node-image", IMAGES),
    ("create cluster", "kind-binary", IMAGES),
    ("create cluster", "etcd-binary-tar", TARS),
    ("create cluster", "prometheus-binary-tar", TARS),
    ("create cluster", "jaeger-binary-tar", TARS),
    ("create cluster", "dashboard-port", REFUSED),
    ("create cluster", "kueueviz-port", REFUSED),
    ("create cluster", "kube-apiserver-insecure-port", REFUSED),
    ("snapshot export", "as", EXPORT),
    ("snapshot export", "as-group", EXPORT),
    ("snapshot export", "page-size", EXPORT),
    ("snapshot export", "page-buffer-size", EXPORT),
];

const IMAGES: &str =
    "images are built locally from the binaries (no registry is reachable to pull one); kind is not run";
const TARS: &str =
    "deprecated upstream: --etcd-binary takes <tarball>#etcd; Prometheus is Debian's, Jaeger built";
const REFUSED: &str = "a component kwokctl-rs does not run yet: refused in one line";
const EXPORT: &str = "export reads with the kubeconfig's identity and its own paging";

/// Upstream's flags by command path (`create cluster`; `` for the root's persistent
/// flags), from each command's Go file: `pkg/kwokctl/cmd/<verb>/<noun>/<noun>.go`.
fn upstream_flags(root: &Path) -> BTreeMap<String, Vec<String>> {
    let define = regex::Regex::new(r#"Flags\(\)\.\w+\(\s*[^,]+,\s*"([a-z0-9-]+)""#).unwrap();
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.ends_with(".go") || name.ends_with("_test.go") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let flags: Vec<String> = define.captures_iter(&text).map(|c| c[1].to_owned()).collect();
            if flags.is_empty() {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap();
            let mut words: Vec<String> = rel
                .parent()
                .unwrap()
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let stem = name.trim_end_matches(".go");
            if stem != "root" && words.last().map(String::as_str) != Some(stem) {
                words.push(stem.to_owned());
            }
            out.entry(words.join(" ")).or_insert_with(Vec::new).extend(flags);
        }
    }
    out
}

/// `kwokctl <command> --help`, or `None` when there is no such command.
fn help(command: &str) -> Option<String> {
    let mut args: Vec<&str> = command.split_whitespace().collect();
    args.push("--help");
    let out = Command::new(env!("CARGO_BIN_EXE_kwokctl"))
        .args(&args)
        .output()
        .expect("kwokctl runs");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn every_upstream_flag_should_be_a_flag_of_the_same_command() {
    let module = upstream_module::dir();
    let flags = upstream_flags(&module.join("pkg/kwokctl/cmd"));
    assert!(
        flags.contains_key("create cluster") && flags.contains_key(""),
        "read upstream's commands: {:?}",
        flags.keys()
    );
    let mut missing = Vec::new();
    let mut checked = 0;
    for (command, names) in &flags {
        let text = help(command).unwrap_or_default();
        for name in names {
            // A definition line of clap's help (`  -o, --output <OUTPUT>`), not a
            // mention in another flag's text.
            let defined =
                regex::Regex::new(&format!(r"(?m)^\s+(-\w, )?--{}([ =\[<]|$)", regex::escape(name))).unwrap();
            let ours = defined.is_match(&text);
            let excused = DIFFERENCES
                .iter()
                .any(|(c, f, _)| c == command && (*f == "*" || f == name));
            checked += 1;
            if !ours && !excused {
                missing.push(format!("kwokctl {command} --{name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {checked} upstream flags missing:\n{}",
        missing.len(),
        missing.join("\n")
    );
}

#[test]
fn refused_upstream_flags_should_say_so_in_one_line() {
    let work = std::env::temp_dir().join(format!("kwokctl-flags-{}", std::process::id()));
    for (_, flag, _) in DIFFERENCES
        .iter()
        .filter(|(c, _, why)| *c == "create cluster" && *why == REFUSED)
    {
        let out = Command::new(env!("CARGO_BIN_EXE_kwokctl"))
            .args([
                "--dry-run",
                "create",
                "cluster",
                "--name",
                "flags",
                &format!("--{flag}=1"),
            ])
            .env("KWOK_WORKDIR", &work)
            .output()
            .expect("kwokctl runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--{flag} was accepted");
        assert_eq!(err.trim().lines().count(), 1, "--{flag}: {err}");
        assert!(
            err.contains(&format!("--{flag}")) && !err.contains("unexpected argument"),
            "--{flag}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}
