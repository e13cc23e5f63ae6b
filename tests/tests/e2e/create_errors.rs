//! `create cluster` inputs that make no cluster: `--dry-run`, `--help`, the
//! configuration commands, and each class of bad input (one line, nothing made).

use std::{fs, process::Command};

use crate::util::{Kwokctl, bin_dir, cache_dir};

fn assert_nothing_made(kwokctl: &Kwokctl, name: &str) {
    assert!(!kwokctl.cluster_dir(name).exists(), "{name}: folder made");
    assert!(
        kwokctl.processes().is_empty(),
        "{name}: processes: {:?}",
        kwokctl.processes()
    );
    let kubeconfig = fs::read_to_string(kwokctl.kubeconfig()).unwrap_or_default();
    assert!(
        !kubeconfig.contains(&format!("kwok-{name}")),
        "{name}: context added"
    );
}

/// Runs `create cluster --name NAME ARGS`, expects failure with `message` on one line.
fn refused(kwokctl: &Kwokctl, name: &str, args: &[&str], message: &str) {
    let mut all = vec!["create", "cluster", "--name", name];
    all.extend_from_slice(args);
    let err = kwokctl.err(&all);
    assert!(err.contains(message), "{args:?}: want {message:?}, got: {err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert_nothing_made(kwokctl, name);
}

#[test]
fn dry_run_should_print_the_commands_and_make_nothing() {
    let kwokctl = Kwokctl::new();
    let out = kwokctl.ok(&[
        "create",
        "cluster",
        "--name",
        "dry",
        "--dry-run",
        "--prometheus-port",
        "0",
        "--disable-kube-scheduler",
        "--kube-authorization=false",
        "--kube-runtime-config",
        "api/alpha=false",
        "--enable-crds",
        "Stage",
    ]);
    assert!(out.contains("--runtime-config=api/alpha=false"), "{out}");
    assert!(
        out.contains("--enable-crds=Stage"),
        "kwok gets --enable-crds: {out}"
    );
    assert!(
        out.contains("kube-apiserver --etcd-servers=http://127.0.0.1:"),
        "{out}"
    );
    assert!(out.contains("--authorization-mode=AlwaysAllow"), "{out}");
    assert!(out.contains("prometheus --config.file="), "{out}");
    assert!(
        out.contains("job_name: kube-controller-manager"),
        "scrape config shown: {out}"
    );
    assert!(!out.contains("kube-scheduler "), "scheduler disabled: {out}");
    assert_nothing_made(&kwokctl, "dry");
}

#[test]
fn settings_should_come_from_flags_over_env_over_the_default_config_file() {
    let kwokctl = Kwokctl::new();
    fs::create_dir_all(kwokctl.workdir()).unwrap();
    fs::write(
        kwokctl.workdir().join("kwok.yaml"),
        "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokctlConfiguration\noptions:\n  etcdPrefix: /from-file\n  heartbeatFactor: 2\n",
    )
    .unwrap();
    let dry = |env: &[(&str, &str)], extra: &[&str]| {
        let mut cmd = Command::new(bin_dir().join("kwokctl"));
        cmd.args(["create", "cluster", "--name", "layers", "--dry-run"])
            .args(extra)
            .env("KWOK_WORKDIR", kwokctl.workdir())
            .env("KWOK_CACHE_DIR", cache_dir())
            .env("KUBECONFIG", kwokctl.kubeconfig());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = dry(&[], &[]);
    assert!(out.contains("--etcd-prefix=/from-file"), "{out}");
    // heartbeatFactor 2 scales Kubernetes' 5 s check period, as upstream.
    assert!(out.contains("--node-monitor-period=10000ms"), "{out}");
    let out = dry(&[("KWOK_ETCD_PREFIX", "/from-env")], &[]);
    assert!(out.contains("--etcd-prefix=/from-env"), "{out}");
    let out = dry(
        &[("KWOK_ETCD_PREFIX", "/from-env")],
        &["--etcd-prefix", "/from-flag"],
    );
    assert!(out.contains("--etcd-prefix=/from-flag"), "{out}");

    // config view shows the merged file; tidy rewrites it; reset removes it.
    let view = kwokctl.ok(&["config", "view"]);
    assert!(view.contains("etcdPrefix: /from-file"), "{view}");
    kwokctl.ok(&["config", "tidy"]);
    let tidy = fs::read_to_string(kwokctl.workdir().join("kwok.yaml")).unwrap();
    assert!(
        tidy.starts_with("apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokctlConfiguration\n"),
        "{tidy}"
    );
    assert!(tidy.contains("heartbeatFactor: 2"), "{tidy}");
    kwokctl.ok(&["config", "reset"]);
    assert!(!kwokctl.workdir().join("kwok.yaml").exists());
    let out = dry(&[], &[]);
    assert!(out.contains("--etcd-prefix=/registry"), "defaults again: {out}");
    assert_nothing_made(&kwokctl, "layers");
}

#[test]
fn create_cluster_help_should_list_the_flags_with_defaults() {
    let kwokctl = Kwokctl::new();
    // Help wraps to the terminal width: compare with whitespace collapsed.
    let help = kwokctl.ok(&["create", "cluster", "--help"]);
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for flag in [
        "--components",
        "--enable",
        "--disable",
        "--disable-kube-scheduler",
        "--disable-kube-controller-manager",
        "--config",
        "--prometheus-port",
        "--controller-port",
        "--kube-scheduler-config",
        "--kube-audit-policy",
        "--kube-authorization",
        "--kube-feature-gates",
        "--kube-runtime-config",
        "--extra-args",
        "--enable-crds",
        "--node-lease-duration-seconds",
        "--heartbeat-factor",
        "--etcd-prefix",
        "--kubeconfig",
        "--timeout",
        "--dry-run",
        "--quiet-pull",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    for default in [
        "[default: 40]",
        "[default: 5]",
        "[default: /registry]",
        "[default: true]",
        "[default: 120s]",
    ] {
        assert!(help.contains(default), "{default} missing from --help");
    }
}

#[test]
fn bad_configuration_should_name_file_line_and_field_and_make_nothing() {
    let kwokctl = Kwokctl::new();
    let dir = kwokctl.workdir().with_file_name("configs");
    fs::create_dir_all(&dir).unwrap();
    let write = |file: &str, text: &str| {
        let path = dir.join(file);
        fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let head = "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokctlConfiguration\n";

    let unknown = write(
        "unknown.yaml",
        &format!("{head}options:\n  etcdPrefix: /x\n  prometheusPot: 9090\n"),
    );
    refused(
        &kwokctl,
        "c1",
        &["--config", &unknown],
        &format!("{unknown}:5: KwokctlConfiguration: options.prometheusPot: unknown field `prometheusPot`"),
    );

    let wrong = write(
        "wrong.yaml",
        &format!("{head}options:\n  heartbeatFactor: fast\n"),
    );
    refused(
        &kwokctl,
        "c2",
        &["--config", &wrong],
        &format!("{wrong}:4: KwokctlConfiguration: options.heartbeatFactor:"),
    );

    let syntax = write("syntax.yaml", &format!("{head}options: [1, 2\n"));
    refused(&kwokctl, "c3", &["--config", &syntax], &format!("{syntax}:"));

    let kind = write("kind.yaml", "apiVersion: v1\nkind: Pod\n");
    refused(
        &kwokctl,
        "c4",
        &["--config", &kind],
        &format!("{kind}:1: unsupported kind \"Pod\""),
    );

    let stage = write(
        "stage.yaml",
        "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata:\n  name: s\nspec:\n  resourceRef:\n    kind: Node\n  nxt: {}\n",
    );
    refused(&kwokctl, "c5", &["--config", &stage], &format!("{stage}:"));

    refused(
        &kwokctl,
        "c6",
        &["--config", "/nonexistent/kwok.yaml"],
        "failed to read config /nonexistent/kwok.yaml",
    );
}

#[test]
fn bad_flags_should_be_refused_with_one_line_and_make_nothing() {
    let kwokctl = Kwokctl::new();
    refused(
        &kwokctl,
        "f1",
        &["--disable", "etcd"],
        "component \"etcd\" cannot be disabled",
    );
    refused(
        &kwokctl,
        "f2",
        &["--enable", "kubelet"],
        "--enable: unknown component \"kubelet\"",
    );
    refused(
        &kwokctl,
        "f3",
        &["--extra-args", "kube-apiserver"],
        "--extra-args \"kube-apiserver\": want COMPONENT=KEY=VALUE",
    );
    refused(
        &kwokctl,
        "f4",
        &["--extra-args", "kubelet=v=4"],
        "--extra-args: unknown component \"kubelet\"",
    );
    refused(
        &kwokctl,
        "f5",
        &["--heartbeat-factor", "0"],
        "--heartbeat-factor 0: must be a positive number",
    );
    refused(
        &kwokctl,
        "f7",
        &["--kwok-replicas", "0"],
        "--kwok-replicas 0: must be a whole number from 1 to 64",
    );
    refused(
        &kwokctl,
        "f8",
        &["--kwok-replicas", "2", "--node-lease-duration-seconds", "0"],
        "--kwok-replicas 2: more than one kwok needs node leases",
    );
    refused(
        &kwokctl,
        "f9",
        &["--kwok-priority", "high"],
        "--kwok-priority high: must be node-high or exempt",
    );
    refused(
        &kwokctl,
        "f10",
        &["--kwok-auth", "bearer"],
        "--kwok-auth bearer: must be token or cert",
    );
    let policy = kwokctl.workdir().with_file_name("policy.yaml");
    fs::write(&policy, "- not\n- a mapping\n").unwrap();
    refused(
        &kwokctl,
        "f6",
        &["--kube-audit-policy", policy.to_str().unwrap()],
        "--kube-audit-policy",
    );
}

#[test]
fn missing_prometheus_should_be_refused_before_anything_is_made() {
    let kwokctl = Kwokctl::new();
    refused(
        &kwokctl,
        "p1",
        &[
            "--enable",
            "prometheus",
            "--prometheus-binary",
            "/nonexistent/prometheus",
        ],
        "prometheus binary /nonexistent/prometheus does not exist or is not executable",
    );
    // No prometheus on PATH (only the folder of kwokctl and kwok).
    let out = Command::new(bin_dir().join("kwokctl"))
        .args(["create", "cluster", "--name", "p2", "--prometheus-port", "0"])
        .env("KWOK_WORKDIR", kwokctl.workdir())
        .env("KWOK_CACHE_DIR", cache_dir())
        .env("KUBECONFIG", kwokctl.kubeconfig())
        .env("PATH", bin_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no prometheus binary is on PATH"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_nothing_made(&kwokctl, "p2");
}

#[test]
fn timeout_should_bound_the_whole_create_and_remove_the_half_made_cluster() {
    let kwokctl = Kwokctl::new();
    // Start-up takes seconds: 500 ms passes while the components come up.
    let err = kwokctl.err(&["create", "cluster", "--name", "late", "--timeout", "500ms"]);
    assert!(err.contains("failed to create cluster \"late\""), "{err}");
    assert!(err.contains("--timeout 500ms passed"), "{err}");
    assert!(
        err.contains("logs kept in"),
        "the folder was made, then removed: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert_nothing_made(&kwokctl, "late");
    let clusters = kwokctl.ok(&["get", "clusters"]);
    assert!(!clusters.contains("late"), "{clusters}");
}

#[test]
fn a_missing_extra_volume_should_name_the_file_component_and_path() {
    let kwokctl = Kwokctl::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("volumes.yaml");
    let missing = dir.path().join("no-such-dir");
    fs::write(
        &config,
        format!(
            "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokctlConfiguration\ncomponentsPatches:\n- name: kube-scheduler\n  extraVolumes:\n  - name: cfg\n    hostPath: {}\n    mountPath: /etc/kubernetes/scheduler\n",
            missing.display()
        ),
    )
    .unwrap();
    refused(
        &kwokctl,
        "vol",
        &["--config", config.to_str().unwrap()],
        &format!(
            "{}:1: KwokctlConfiguration: componentsPatches[0].extraVolumes[0].hostPath: component kube-scheduler: {} does not exist",
            config.display(),
            missing.display()
        ),
    );
}
