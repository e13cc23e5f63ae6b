//! The kwok controller against the real control plane: fake nodes become Ready and
//! keep their Leases, pods bound to them run with unique IPs, Jobs complete, deleted
//! pods go away, and `/metrics` shows it.

use std::{
    collections::HashSet,
    io::Write,
    process::{Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use crate::util::Kwokctl;

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
  replicas: 6
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

struct Cluster {
    kwokctl: Kwokctl,
    name: &'static str,
}

impl Cluster {
    fn kubectl(&self, args: &[&str]) -> String {
        let mut all = vec!["--name", self.name, "kubectl"];
        all.extend_from_slice(args);
        self.kwokctl.ok(&all)
    }

    /// Applies `yaml`, retrying for a while: right after start-up the apiserver may
    /// still refuse pods until the controller-manager made the default ServiceAccount.
    fn apply(&self, yaml: &str) {
        let start = Instant::now();
        loop {
            match self.try_apply(yaml) {
                Ok(()) => return,
                Err(e) if start.elapsed() > Duration::from_secs(30) => panic!("apply failed: {e}"),
                Err(_) => sleep(Duration::from_millis(500)),
            }
        }
    }

    fn try_apply(&self, yaml: &str) -> Result<(), String> {
        let bin = crate::util::bin_dir().join("kwokctl");
        let mut child = Command::new(bin)
            .args(["--name", self.name, "kubectl", "apply", "-f", "-"])
            .env("KWOK_WORKDIR", self.kwokctl.workdir())
            .env("KWOK_CACHE_DIR", crate::util::cache_dir())
            .env("KUBECONFIG", self.kwokctl.kubeconfig())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Polls `args` until its output satisfies `done`, or fails after `within`.
    fn eventually(&self, args: &[&str], within: Duration, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let out = self.kubectl(args);
            if done(&out) {
                return out;
            }
            assert!(
                start.elapsed() < within,
                "{args:?} not done after {within:?}; last output: {out}"
            );
            sleep(Duration::from_millis(500));
        }
    }
}

#[test]
fn controller_should_make_nodes_ready_run_pods_and_renew_leases() {
    let cluster = Cluster {
        kwokctl: Kwokctl::new(),
        name: "ctl",
    };
    cluster.kwokctl.ok(&["create", "cluster", "--name", cluster.name]);
    for i in 0..2 {
        cluster.apply(&NODE.replace("NAME", &format!("kwok-{i}")));
    }

    // Nodes become Ready with an InternalIP and a podCIDR from the controller-manager.
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

    // A Deployment's pods run, each with its own IP inside its node's podCIDR.
    cluster.apply(DEPLOYMENT);
    let pods = "jsonpath={range .items[*]}{.status.phase} {.status.podIP} {.spec.nodeName}{\"\\n\"}{end}";
    let out = cluster.eventually(
        &["get", "pods", "-l", "app=web", "-o", pods],
        Duration::from_secs(90),
        |out| out.lines().filter(|l| l.starts_with("Running ")).count() == 6,
    );
    let ips: HashSet<&str> = out.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(ips.len(), 6, "unique pod IPs: {out}");
    for line in out.lines() {
        let mut f = line.split_whitespace();
        let (ip, node) = (f.nth(1).unwrap(), f.next().unwrap());
        let cidr = cluster.kubectl(&["get", "node", node, "-o", "jsonpath={.spec.podCIDR}"]);
        let prefix = cidr.rsplit_once('.').unwrap().0;
        assert!(
            ip.starts_with(&format!("{prefix}.")),
            "{ip} outside {cidr} of {node}"
        );
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

    // Deleted pods go away.
    cluster.kubectl(&["delete", "deployment", "web", "--wait=false"]);
    cluster.eventually(
        &["get", "pods", "-l", "app=web", "-o", "name"],
        Duration::from_secs(60),
        |o| o.trim().is_empty(),
    );

    // /metrics is OpenMetrics text and counts what happened.
    let config =
        std::fs::read_to_string(cluster.kwokctl.cluster_dir(cluster.name).join("kwok.yaml")).unwrap();
    let port = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("kwokControllerPort: "))
        .unwrap()
        .trim()
        .to_owned();
    let metrics = http_get(&format!("127.0.0.1:{port}"), "/metrics");
    assert!(metrics.trim_end().ends_with("# EOF"), "{metrics}");
    let transitions: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("kwok_stage_transitions_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(transitions >= 10.0, "transitions counted: {metrics}");
    assert!(metrics.contains("kwok_leases_held 2"), "{metrics}");
    // Each Ready node waits on its next heartbeat in its shard's wheel.
    let pending: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("kwok_wheel_pending_timers{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(pending >= 2.0, "pending timers: {metrics}");
}

/// A plain HTTP/1.0 GET (the controller serves metrics without TLS on loopback).
fn http_get(address: &str, path: &str) -> String {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}
