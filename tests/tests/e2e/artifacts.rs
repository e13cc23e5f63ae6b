//! The Go-built binaries in the cache report the versions pinned in the go.mod files.

use std::{fs, process::Command};

use crate::util::{cache_dir, repo_root};

fn pinned(go_mod: &str, module: &str) -> String {
    let text = fs::read_to_string(repo_root().join("kwokctl/controlplane").join(go_mod)).expect("go.mod");
    text.lines()
        .map(|l| l.trim().trim_start_matches("require").trim())
        .find_map(|l| {
            l.strip_prefix(module)
                .and_then(|v| v.split_whitespace().next())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("{go_mod} does not require {module}"))
}

fn version_output(component: &str, version: &str, args: &[&str]) -> String {
    let bin = cache_dir().join(component).join(version).join(component);
    let out = Command::new(&bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    assert!(out.status.success(), "{} {args:?} failed", bin.display());
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn kubernetes_binaries_should_report_the_pinned_v1_36_version() {
    let version = pinned("kubernetes/go.mod", "k8s.io/kubernetes");
    assert!(version.starts_with("v1.36."), "pinned {version}");
    for component in ["kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
        let out = version_output(component, &version, &["--version"]);
        assert_eq!(out.trim(), format!("Kubernetes {version}"), "{component}");
    }
    let out = version_output("kubectl", &version, &["version", "--client"]);
    assert!(
        out.contains(&format!("Client Version: {version}")),
        "kubectl: {out}"
    );
}

#[test]
fn etcd_binaries_should_report_the_pinned_v3_6_version() {
    let version = pinned("etcd/go.mod", "go.etcd.io/etcd/server/v3");
    assert!(version.starts_with("v3.6."), "pinned {version}");
    let bare = version.trim_start_matches('v');
    let out = version_output("etcd", &version, &["--version"]);
    assert!(out.contains(&format!("etcd Version: {bare}")), "etcd: {out}");
    let out = version_output("etcdctl", &version, &["version"]);
    assert!(
        out.contains(&format!("etcdctl version: {bare}")),
        "etcdctl: {out}"
    );
    let out = version_output("etcdutl", &version, &["version"]);
    assert!(
        out.contains(&format!("etcdutl version: {bare}")),
        "etcdutl: {out}"
    );
}
