//! `kwokctl scale` against a real cluster: exact counts and names, nodes Ready and pods
//! Running through kwok, and bad input refused before anything changes.

use std::time::Duration;

use crate::{
    util::Kwokctl,
    wait::{assert_one_line, names, ready_nodes, running_pods, serial_names, until},
};

const SETTLE: Duration = Duration::from_secs(60);
const NODE_LABEL: &str = "kwok.x-k8s.io/kwokctl-scale=node";

#[test]
fn scale_should_reach_exactly_n_nodes_and_pods_and_refuse_bad_input() {
    let kwokctl = Kwokctl::new();
    let c = "scale";
    kwokctl.ok(&["create", "cluster", "--name", c, "--disable-qps-limits"]);

    let out = kwokctl.ok(&["--name", c, "scale", "node", "--replicas", "100"]);
    assert!(
        out.contains("Scaled node \"node\" to 100 (100 created, 0 deleted)"),
        "{out}"
    );
    let all = serial_names("node", 0..100);
    assert_eq!(until(SETTLE, &all, || ready_nodes(&kwokctl, c, NODE_LABEL)), all);

    let out = kwokctl.ok(&["--name", c, "scale", "node", "--replicas", "10"]);
    assert!(out.contains("(0 created, 90 deleted)"), "{out}");
    let ten = serial_names("node", 0..10);
    assert_eq!(
        names(&kwokctl, c, &["nodes", "-l", NODE_LABEL]),
        ten,
        "the newest 90 went"
    );
    assert_eq!(ready_nodes(&kwokctl, c, NODE_LABEL), ten);

    // Pods land on the fake nodes and run; scaling down removes the newest.
    kwokctl.ok(&["--name", c, "scale", "pod", "web", "--replicas", "20"]);
    let web = serial_names("web", 0..20);
    assert_eq!(until(SETTLE, &web, || running_pods(&kwokctl, c, "default")), web);
    let nodes = kwokctl.ok(&[
        "--name",
        c,
        "kubectl",
        "get",
        "pods",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ]);
    assert!(nodes.split(' ').all(|n| n.starts_with("node-0000")), "{nodes}");
    kwokctl.ok(&["--name", c, "scale", "pod", "web", "--replicas", "5"]);
    let five = serial_names("web", 0..5);
    assert_eq!(
        until(SETTLE, &five, || names(&kwokctl, c, &["pods", "-n", "default"])),
        five
    );

    // Untainted nodes take any pod: a Deployment spreads over them and runs, and
    // upstream's `.nodeName` parameter binds scaled pods (in their own namespace, so the
    // counts below stay the web pods').
    kwokctl.ok(&["--name", c, "kubectl", "create", "namespace", "spread"]);
    kwokctl.ok(&[
        "--name",
        c,
        "kubectl",
        "create",
        "deployment",
        "spread",
        "-n",
        "spread",
        "--image=x",
        "--replicas=50",
    ]);
    // Pods bound by upstream's `.nodeName` parameter, all to one node.
    let pin = |replicas: &str| {
        kwokctl.ok(&[
            "--name",
            c,
            "scale",
            "pod",
            "pinned",
            "-n",
            "spread",
            "--replicas",
            replicas,
            "--param",
            r#".nodeName="node-000007""#,
        ])
    };
    pin("3");
    let spread_pods = |fields: &str| {
        let path = format!("jsonpath={{range .items[*]}}{fields}{{\"\\n\"}}{{end}}");
        kwokctl.ok(&["--name", c, "kubectl", "get", "pods", "-n", "spread", "-o", &path])
    };
    let running = until(SETTLE, &53, || running_pods(&kwokctl, c, "spread").len());
    assert_eq!(running, 53, "all 53 pods of namespace spread run");
    let placed = spread_pods("{.metadata.name} {.spec.nodeName}");
    let deployment_nodes: std::collections::HashSet<&str> = placed
        .lines()
        .filter(|l| l.starts_with("spread-"))
        .filter_map(|l| l.split(' ').nth(1))
        .collect();
    assert!(
        deployment_nodes.len() >= 5,
        "50 pods spread over {deployment_nodes:?}"
    );
    let pinned: Vec<&str> = placed.lines().filter(|l| l.starts_with("pinned-")).collect();
    assert!(
        pinned.len() == 3 && pinned.iter().all(|l| l.ends_with(" node-000007")),
        "{pinned:?}"
    );

    // Pinned past the size of the node's /24 podCIDR, into the next node's network, as
    // upstream's benchmarks pin thousands of pods to one node: every pod runs with an IP
    // of its own.
    pin("300");
    let running = until(SETTLE, &350, || running_pods(&kwokctl, c, "spread").len());
    assert_eq!(running, 350, "300 pinned pods and the Deployment's 50 run");
    let ips = spread_pods("{.status.podIP}");
    let unique: std::collections::HashSet<&str> = ips.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        unique.len(),
        350,
        "one IP per pod past the /24: {} listed",
        ips.lines().count()
    );

    // --param reaches the objects.
    kwokctl.ok(&[
        "--name",
        c,
        "scale",
        "node",
        "big",
        "--replicas",
        "2",
        "--param",
        // Upstream's node parameter, as in its docs.
        r#".allocatable.cpu="64""#,
        "--param",
        r#".metadata.labels."example.com/size" = "big""#,
    ]);
    let cpu = kwokctl.ok(&[
        "--name",
        c,
        "kubectl",
        "get",
        "node",
        "big-000001",
        "-o",
        "jsonpath={.status.allocatable.cpu} {.status.capacity.cpu} {.metadata.labels.example\\.com/size}",
    ]);
    assert_eq!(cpu, "64 64 big");

    // Bad input: one line, nothing changed.
    let before = names(&kwokctl, c, &["nodes"]);
    let err = kwokctl.err(&[
        "--name",
        c,
        "scale",
        "node",
        "--replicas",
        "50",
        "--param",
        ".spec.taints = ",
    ]);
    assert!(
        err.contains("invalid --param \".spec.taints = \": expected"),
        "{err}"
    );
    assert_one_line(&err);
    let err = kwokctl.err(&[
        "--name",
        c,
        "scale",
        "node",
        "--replicas",
        "50",
        "--param",
        r#".spec.podCIDR = 7"#,
    ]);
    assert!(err.contains("the apiserver refuses the node template"), "{err}");
    assert_one_line(&err);
    let err = kwokctl.err(&["--name", c, "scale", "widget", "--replicas", "3"]);
    assert!(err.contains("unknown kind \"widget\" for scale"), "{err}");
    assert_one_line(&err);
    let err = kwokctl.err(&["--name", c, "scale", "pod", "--replicas", "3", "-n", "nowhere"]);
    assert!(err.contains("namespace \"nowhere\" does not exist"), "{err}");
    assert_eq!(
        names(&kwokctl, c, &["nodes"]),
        before,
        "bad input changed nothing"
    );
    assert_eq!(names(&kwokctl, c, &["pods", "-n", "default"]), five);
}
