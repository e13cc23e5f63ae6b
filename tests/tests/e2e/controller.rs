//! The kwok controller against the real control plane: fake nodes become Ready and
//! keep their Leases, pods bound to them run with unique IPs, Jobs complete, deleted
//! pods go away, and `/metrics` shows it.

use std::{collections::HashSet, time::Duration};

use crate::util::{Cluster, metric_sum};

const NODE: &str = r#"
apiVersion: v1
kind: Node
metadata:
  name: NAME
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    type: kwok
"#;

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 50
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: fake
      - name: sidecar
        image: fake
"#;

/// Pods the scheduler can place nowhere.
const UNSCHEDULABLE_DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nowhere
  namespace: default
spec:
  replicas: 20
  selector:
    matchLabels: {app: nowhere}
  template:
    metadata:
      labels: {app: nowhere}
    spec:
      nodeSelector: {no-such-label: "x"}
      containers:
      - name: c
        image: fake
"#;

const HOST_NETWORK_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: hostnet
  namespace: default
spec:
  nodeName: kwok-0
  hostNetwork: true
  containers:
  - name: c
    image: fake
"#;

const JOB: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: once
  namespace: default
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: fake
"#;

#[test]
fn controller_should_make_nodes_ready_run_pods_and_renew_leases() {
    // The kubelet's 40 s lease, renewed every 10 s (the default factor 5 gives 200 s).
    let cluster = Cluster::create("ctl", &["--heartbeat-factor", "1"]);
    for i in 0..2 {
        cluster.apply(&NODE.replace("NAME", &format!("kwok-{i}")));
    }

    // Nodes become Ready (without a podCIDR: kube-controller-manager allocates none, as
    // with upstream kwokctl).
    let ready = "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}";
    cluster.eventually(&["get", "nodes", "-o", ready], Duration::from_secs(60), |out| {
        out.lines().filter(|l| *l == "True").count() == 2
    });

    // Leases exist, are held by kwok and get renewed.
    let renew = "jsonpath={.spec.holderIdentity} {.spec.renewTime}";
    let first = cluster.eventually(
        &["-n", "kube-node-lease", "get", "lease", "kwok-0", "-o", renew],
        Duration::from_secs(30),
        |o| o.starts_with("kwok-"),
    );
    let second = cluster.eventually(
        &["-n", "kube-node-lease", "get", "lease", "kwok-0", "-o", renew],
        Duration::from_secs(30),
        |o| o != first,
    );
    assert!(second.starts_with("kwok-"), "{second}");

    // A Deployment's pods run, each with its own IP from kwok's --cidr (10.0.0.1/24).
    cluster.apply(DEPLOYMENT);
    let pods = "jsonpath={range .items[*]}{.status.phase} {.status.podIP} {.spec.nodeName}{\"\\n\"}{end}";
    let out = cluster.eventually(
        &["get", "pods", "-l", "app=web", "-o", pods],
        Duration::from_secs(90),
        |out| out.lines().filter(|l| l.starts_with("Running ")).count() == 50,
    );
    let ips: HashSet<&str> = out.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(ips.len(), 50, "unique pod IPs: {out}");
    for line in out.lines() {
        let ip = line.split_whitespace().nth(1).unwrap();
        assert!(ip.starts_with("10.0.0."), "{ip} outside --cidr: {out}");
    }

    // A pod created already bound never gets a PodScheduled condition; host network means node IP.
    cluster.apply(HOST_NETWORK_POD);
    let out = cluster.eventually(
        &[
            "get",
            "pod",
            "hostnet",
            "-o",
            "jsonpath={.status.phase} {.status.podIP} {.status.hostIP}",
        ],
        Duration::from_secs(60),
        |o| o.starts_with("Running "),
    );
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(f[1], f[2], "hostNetwork pod IP is the host IP: {out}");
    let conditions = cluster.kubectl(&[
        "get",
        "pod",
        "hostnet",
        "-o",
        "jsonpath={.status.conditions[*].type}",
    ]);
    assert!(!conditions.contains("PodScheduled"), "{conditions}");

    // A Job's pod completes and the Job succeeds.
    cluster.apply(JOB);
    cluster.eventually(
        &["get", "job", "once", "-o", "jsonpath={.status.succeeded}"],
        Duration::from_secs(90),
        |o| o == "1",
    );

    // Pods no node takes never reach kwok: its pod watch asks only for bound pods, as
    // upstream's does. Unfiltered, each would arrive at least twice (created, then
    // marked unschedulable); a few events of the pods above may still come meanwhile.
    let pod_events = || {
        metric_sum(
            &cluster.kwok_get("/metrics"),
            "kwok_watch_events_total",
            "kind=\"Pod\"",
        )
    };
    let before = pod_events();
    assert!(before >= 50.0, "the Deployment's pods were delivered: {before}");
    cluster.apply(UNSCHEDULABLE_DEPLOYMENT);
    let unschedulable =
        "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"PodScheduled\")].reason}{\"\\n\"}{end}";
    cluster.eventually(
        &["get", "pods", "-l", "app=nowhere", "-o", unschedulable],
        Duration::from_secs(60),
        |o| o.lines().filter(|l| *l == "Unschedulable").count() == 20,
    );
    let during = pod_events() - before;
    assert!(
        during < 20.0,
        "{during} pod events reached kwok for 20 unbound pods"
    );
    cluster.kubectl(&["delete", "deployment", "nowhere", "--wait=false"]);

    // Deleted pods go away.
    cluster.kubectl(&["delete", "deployment", "web", "--wait=false"]);
    cluster.eventually(
        &["get", "pods", "-l", "app=web", "-o", "name"],
        Duration::from_secs(60),
        |o| o.trim().is_empty(),
    );

    // /metrics is OpenMetrics text and counts what happened.
    let metrics = cluster.kwok_get("/metrics");
    assert!(metrics.trim_end().ends_with("# EOF"), "{metrics}");
    let transitions = metric_sum(&metrics, "kwok_stage_transitions_total", "");
    assert!(transitions >= 10.0, "transitions counted: {metrics}");
    assert!(metrics.contains("kwok_leases_held 2"), "{metrics}");
    // One DELETE per deleted pod: a late update of a pod being deleted does not start
    // the delete stage again.
    let deletes = metric_sum(&metrics, "kwok_apiserver_requests_total", "verb=\"delete\"");
    assert!(
        (50.0..=52.0).contains(&deletes),
        "{deletes} DELETEs for 50 deleted pods: {metrics}"
    );
    // Each Ready node waits on its next heartbeat in its shard's wheel.
    let pending: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("kwok_wheel_pending_timers{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(pending >= 2.0, "pending timers: {metrics}");
}
