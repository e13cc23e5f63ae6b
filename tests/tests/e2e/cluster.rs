//! A cluster's whole life against the real control plane: create, use over TLS,
//! refuse a duplicate, stop and start with data kept, delete with nothing left.

use std::{fs, process::Command};

use crate::util::{Kwokctl, cache_dir};

fn kubectl_bin() -> std::path::PathBuf {
    let dir = cache_dir().join("kubectl");
    let version = fs::read_dir(&dir)
        .expect("kubectl in the cache")
        .next()
        .expect("a version")
        .unwrap();
    version.path().join("kubectl")
}

#[test]
fn cluster_should_serve_kubectl_survive_restart_and_leave_nothing_when_deleted() {
    let kwokctl = Kwokctl::new();
    let name = "life";
    kwokctl.ok(&["create", "cluster", "--name", name]);

    // The default --heartbeat-factor 5 scales the lease and the node checks as upstream:
    // 40 s × 5 leases, 5 s × 5 checks, 40 s × 5 grace.
    let dir = kwokctl.cluster_dir(name);
    let (kcm, _) = crate::create_options::process_of(&dir, "kube-controller-manager");
    assert!(
        kcm.iter().any(|a| a == "--node-monitor-period=25000ms"),
        "{kcm:?}"
    );
    assert!(
        kcm.iter().any(|a| a == "--node-monitor-grace-period=200000ms"),
        "{kcm:?}"
    );
    let (kwok, _) = crate::create_options::process_of(&dir, "kwok-controller");
    assert!(
        kwok.iter().any(|a| a == "--node-lease-duration-seconds=200"),
        "{kwok:?}"
    );

    // The apiserver answers over TLS through kwokctl's pass-through …
    assert_eq!(
        kwokctl
            .ok(&["--name", name, "kubectl", "get", "--raw", "/readyz"])
            .trim(),
        "ok"
    );
    // … and through the real kubectl with the context merged into $KUBECONFIG.
    let out = Command::new(kubectl_bin())
        .args(["--context", "kwok-life", "get", "ns", "kube-system", "-o", "name"])
        .env("KUBECONFIG", kwokctl.kubeconfig())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "namespace/kube-system",
        "{out:?}"
    );

    let version = kwokctl.ok(&["--name", name, "kubectl", "version"]);
    assert!(version.contains("Server Version: v1.36."), "{version}");
    // Every word after `kubectl` is kubectl's, its -v included (its request log).
    let out = kwokctl.run(&["--name", name, "kubectl", "-v", "6", "get", "ns"]);
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains(r#"verb="GET""#) && log.contains(r#"status="200 OK""#),
        "{log}"
    );

    kwokctl.ok(&["--name", name, "kubectl", "create", "namespace", "e2e"]);
    kwokctl.ok(&[
        "--name",
        name,
        "kubectl",
        "-n",
        "e2e",
        "create",
        "configmap",
        "cm",
        "--from-literal=k=v",
    ]);
    let read_cm = || {
        kwokctl.ok(&[
            "--name",
            name,
            "kubectl",
            "-n",
            "e2e",
            "get",
            "cm",
            "cm",
            "-o",
            "jsonpath={.data.k}",
        ])
    };
    assert_eq!(read_cm(), "v");

    // A second cluster of the same name is refused and the first one is untouched.
    let err = kwokctl.err(&["create", "cluster", "--name", name]);
    assert!(
        err.contains(&format!("cluster \"{name}\" already exists")),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
    assert_eq!(
        kwokctl
            .ok(&["--name", name, "kubectl", "get", "--raw", "/readyz"])
            .trim(),
        "ok"
    );

    // Stop keeps the data; start brings it back.
    let running = kwokctl.processes();
    assert_eq!(
        running.len(),
        5,
        "etcd, apiserver, controller-manager, scheduler, kwok: {running:?}"
    );
    kwokctl.ok(&["stop", "cluster", "--name", name]);
    assert!(
        kwokctl.processes().is_empty(),
        "left after stop: {:?}",
        kwokctl.processes()
    );
    let components = kwokctl.ok(&["get", "components", "--name", name, "-o", "wide"]);
    assert_eq!(components.matches("Stopped").count(), 5, "{components}");
    kwokctl.ok(&["start", "cluster", "--name", name]);
    let err = kwokctl.err(&["start", "cluster", "--name", name]);
    assert!(err.contains("is already running"), "{err}");
    assert_eq!(read_cm(), "v", "the ConfigMap survived stop/start");

    let log = kwokctl.ok(&["logs", "kwok-controller", "--name", name]);
    assert!(log.contains("connected") && log.contains("v1.36."), "{log}");
    assert_eq!(kwokctl.ok(&["get", "clusters"]).trim(), name);

    kwokctl.ok(&["delete", "cluster", "--name", name]);
    assert!(
        kwokctl.processes().is_empty(),
        "left after delete: {:?}",
        kwokctl.processes()
    );
    assert!(!kwokctl.cluster_dir(name).exists(), "the cluster folder is gone");
    let config = fs::read_to_string(kwokctl.kubeconfig()).unwrap();
    assert!(!config.contains("kwok-life"), "context removed: {config}");
}
