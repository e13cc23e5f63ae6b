//! Several clusters side by side, each with its own ports and data; stop and start
//! keep objects and fake nodes; `delete cluster --all` removes every one.

use std::time::Duration;

use crate::{
    util::Kwokctl,
    wait::{ready_nodes, serial_names, until},
};

const SETTLE: Duration = Duration::from_secs(60);

fn configmap(kwokctl: &Kwokctl, c: &str) -> String {
    kwokctl.ok(&[
        "--name",
        c,
        "kubectl",
        "get",
        "cm",
        "who",
        "-o",
        "jsonpath={.data.name}",
    ])
}

#[test]
fn two_clusters_should_work_side_by_side_survive_stop_start_and_go_with_delete_all() {
    let kwokctl = Kwokctl::new();
    for c in ["one", "two"] {
        kwokctl.ok(&["create", "cluster", "--name", c]);
        kwokctl.ok(&[
            "--name",
            c,
            "kubectl",
            "create",
            "configmap",
            "who",
            &format!("--from-literal=name={c}"),
        ]);
    }
    assert_eq!(
        kwokctl.ok(&["get", "clusters"]).lines().collect::<Vec<_>>(),
        ["one", "two"]
    );
    let ports = |c: &str| kwokctl.ok(&["--name", c, "get", "components", "-o", "wide"]);
    assert_ne!(ports("one"), ports("two"), "each cluster has its own ports");
    kwokctl.ok(&["--name", "one", "scale", "node", "--replicas", "3"]);
    kwokctl.ok(&["--name", "two", "scale", "node", "--replicas", "2"]);
    let label = "kwok.x-k8s.io/kwokctl-scale=node";
    for (c, n) in [("one", 3), ("two", 2)] {
        let want = serial_names("node", 0..n);
        assert_eq!(
            until(SETTLE, &want, || ready_nodes(&kwokctl, c, label)),
            want,
            "{c}"
        );
        assert_eq!(configmap(&kwokctl, c), c, "each cluster has its own data");
    }

    // Stop one: the other keeps serving; start brings back its ConfigMap and fake nodes.
    kwokctl.ok(&["--name", "one", "stop", "cluster"]);
    assert_eq!(configmap(&kwokctl, "two"), "two");
    // Commands that need a running cluster say so, at once, in one line.
    for args in [
        &["--name", "one", "scale", "node", "--replicas", "5"][..],
        &[
            "--name",
            "one",
            "snapshot",
            "save",
            "--path",
            "/tmp/never-written.db",
        ][..],
    ] {
        let err = kwokctl.err(args);
        assert!(err.contains("cluster \"one\" is stopped"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    kwokctl.ok(&["--name", "one", "start", "cluster"]);
    assert_eq!(configmap(&kwokctl, "one"), "one");
    let want = serial_names("node", 0..3);
    assert_eq!(until(SETTLE, &want, || ready_nodes(&kwokctl, "one", label)), want);

    kwokctl.ok(&["delete", "cluster", "--all"]);
    assert!(kwokctl.ok(&["get", "clusters"]).trim().is_empty());
    assert!(kwokctl.processes().is_empty(), "left: {:?}", kwokctl.processes());
    for c in ["one", "two"] {
        assert!(!kwokctl.cluster_dir(c).exists(), "{c} folder left");
    }
}
