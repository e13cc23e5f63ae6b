//! The fault suite: one component of a real cluster at a time is killed, frozen or
//! restarted, and after each fault the cluster must have lost nothing (issue 21):
//! - every node Ready within one lease period of the fault ending,
//! - every pod Running and Ready within 30 s after that, and still so once the
//!   controller-manager's grace period has passed again (nothing left unready for good),
//! - no pod IP held twice, on one node or across the cluster,
//! - no object lost or duplicated (the Deployment's replica count, every node),
//! - kwok not restarted by another component's fault.
//!
//! The numbers are small for CI (20 nodes, 100-130 pods, a 20 s lease); the faults are
//! the real ones. `benches/scale/faults.py` loops the same faults at 5,000 nodes.

use std::{
    collections::{HashMap, HashSet},
    process::Command,
    thread::sleep,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::util::{Cluster, metric_sum};

/// The node lease duration the cluster runs with and the controller-manager's grace
/// period before a silent node goes Unknown: `--heartbeat-factor 0.5` scales upstream's
/// 40 s of both.
const LEASE: Duration = Duration::from_secs(20);
const NODES: usize = 20;

/// Nodes without a podCIDR (pod IPs come from kwok's `--cidr`), with the hostname label
/// a kubelet sets (the scheduler spreads a Deployment's pods by it).
fn nodes(range: std::ops::Range<usize>, extra: &str) -> String {
    range
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Node\nmetadata:\n  name: fault-{i}\n\
                 \x20 labels: {{fault: \"yes\", kubernetes.io/hostname: fault-{i}}}\n{extra}"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

fn deployment(replicas: usize) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\n\
         spec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: web}}\n\
         \x20 template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n\
         \x20     containers:\n      - name: c\n        image: busybox\n"
    )
}

fn get_json(cluster: &Cluster, args: &[&str]) -> Option<Value> {
    let mut all = vec!["--name", cluster.name, "kubectl", "get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = cluster.kwokctl.run(&all);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn condition<'a>(obj: &'a Value, kind: &str) -> &'a str {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == kind))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
}

/// What is wrong with the nodes now, or `None`.
fn nodes_wrong(cluster: &Cluster, expected: usize) -> Option<String> {
    let Some(list) = get_json(cluster, &["nodes"]) else {
        return Some("apiserver not answering".into());
    };
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let not_ready: Vec<&str> = items
        .iter()
        .filter(|n| condition(n, "Ready") != "True")
        .filter_map(|n| n["metadata"]["name"].as_str())
        .collect();
    if items.len() != expected {
        return Some(format!("{} nodes, expected {expected}", items.len()));
    }
    (!not_ready.is_empty()).then(|| format!("{} nodes not Ready: {not_ready:?}", not_ready.len()))
}

/// What is wrong with the pods now, or `None`: `replicas` pods of the Deployment, every
/// pod Running and Ready, and every pod IP unique.
fn pods_wrong(cluster: &Cluster, replicas: usize) -> Option<String> {
    let Some(list) = get_json(cluster, &["pods"]) else {
        return Some("apiserver not answering".into());
    };
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let web = items
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "web")
        .count();
    let mut problems = Vec::new();
    let mut by_ip: HashMap<&str, Vec<&str>> = HashMap::new();
    for pod in &items {
        let name = pod["metadata"]["name"].as_str().unwrap_or("?");
        if !pod["metadata"]["deletionTimestamp"].is_null() {
            problems.push(format!("{name} terminating"));
        } else if pod["status"]["phase"] != "Running" || condition(pod, "Ready") != "True" {
            problems.push(format!(
                "{name} {} Ready={}",
                pod["status"]["phase"].as_str().unwrap_or("-"),
                condition(pod, "Ready")
            ));
        }
        if let Some(ip) = pod["status"]["podIP"].as_str() {
            by_ip.entry(ip).or_default().push(name);
        }
    }
    let duplicates: Vec<_> = by_ip.iter().filter(|(_, pods)| pods.len() > 1).collect();
    // A duplicate is never "not yet": it fails at once.
    assert!(duplicates.is_empty(), "pod IPs held twice: {duplicates:?}");
    if web != replicas {
        problems.insert(0, format!("{web} pods of the Deployment, expected {replicas}"));
    }
    (!problems.is_empty()).then(|| {
        let shown: Vec<_> = problems.iter().take(5).collect();
        format!("{} problems, first {shown:?}", problems.len())
    })
}

fn wait_until(within: Duration, what: &str, mut wrong: impl FnMut() -> Option<String>) -> Duration {
    let start = Instant::now();
    loop {
        let Some(problem) = wrong() else {
            return start.elapsed();
        };
        assert!(
            start.elapsed() < within,
            "{what} not within {within:?}: {problem}"
        );
        sleep(Duration::from_millis(500));
    }
}

/// The invariants after a fault that ended at `ended`.
fn assert_recovered(cluster: &Cluster, fault: &str, ended: Instant, nodes: usize, replicas: usize) {
    let lease_left = LEASE.saturating_sub(ended.elapsed());
    let took = wait_until(lease_left, &format!("{fault}: every node Ready"), || {
        nodes_wrong(cluster, nodes)
    });
    wait_until(
        Duration::from_secs(30),
        &format!("{fault}: every pod Running and Ready"),
        || pods_wrong(cluster, replicas),
    );
    eprintln!("{fault}: nodes Ready {took:?} after the fault ended; pods Running and Ready");
    // Past another grace period, nothing the controller-manager marks stays marked.
    sleep(LEASE + Duration::from_secs(5));
    wait_until(
        LEASE,
        &format!("{fault}, a grace period later: every node Ready"),
        || nodes_wrong(cluster, nodes),
    );
    wait_until(
        Duration::from_secs(30),
        &format!("{fault}, a grace period later: every pod Running and Ready"),
        || pods_wrong(cluster, replicas),
    );
}

fn signal(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

/// Restarts what is not running, with its exact command line.
fn restart(cluster: &Cluster) -> Instant {
    let out = cluster.kwokctl.ok(&["start", "cluster", "--name", cluster.name]);
    assert!(out.contains("restarted"), "{out}");
    Instant::now()
}

#[test]
fn faults_should_lose_no_node_pod_or_ip() {
    let cluster = Cluster::create("faults", &["--heartbeat-factor", "0.5"]);
    cluster.apply(&nodes(0..NODES, ""));
    let mut replicas = 100;
    cluster.apply(&deployment(replicas));
    assert_recovered(&cluster, "start", Instant::now(), NODES, replicas);
    let kwok = cluster.pid("kwok-controller");

    // etcd dies for 10 s: the apiserver answers errors meanwhile.
    let control_plane_down = |component: &str, outage: Duration| {
        cluster.kill(component);
        sleep(outage);
        let ended = restart(&cluster);
        assert_recovered(&cluster, &format!("{component} killed"), ended, NODES, replicas);
        let now = cluster.pid("kwok-controller");
        assert_eq!(now, kwok, "kwok restarted by the fault of {component}");
    };
    control_plane_down("etcd", Duration::from_secs(10));
    // The apiserver dies for longer than a lease: the controller-manager marks every
    // node Unknown and their pods not ready once it is back.
    control_plane_down("kube-apiserver", LEASE + Duration::from_secs(5));
    // kwok took the lapsed Leases back and sent those nodes' heartbeats at once, so the
    // controller-manager's writes of Unknown into stale Nodes conflict (how many it
    // still marks first is a race, measured at scale in benches/results).
    let heartbeats = metric_sum(
        &cluster.kwok_get("/metrics"),
        "kwok_stage_transitions_total",
        "kubelet-node-heartbeat",
    );
    eprintln!("kube-apiserver killed: {heartbeats} lapsed-lease heartbeats");
    assert!(heartbeats >= 1.0, "no node heartbeat after its Lease lapsed");

    // kwok freezes for longer than a lease.
    signal(kwok, "STOP");
    sleep(LEASE + Duration::from_secs(10));
    signal(kwok, "CONT");
    assert_recovered(&cluster, "kwok stopped", Instant::now(), NODES, replicas);

    // kwok dies; pods are added and deleted meanwhile; it comes back and lists pods
    // with IPs before their nodes.
    cluster.kill("kwok-controller");
    replicas = 130;
    cluster.kubectl(&["scale", "deployment", "web", &format!("--replicas={replicas}")]);
    let running = get_json(&cluster, &["pods", "-l", "app=web"]).expect("pods");
    // (Pods with IPs are deleted: their addresses must not go to two new pods.)
    let victims: Vec<&str> = running["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .take(20)
        .collect();
    let mut delete = vec!["delete", "pod", "--wait=false"];
    delete.extend(&victims);
    cluster.kubectl(&delete);
    sleep(Duration::from_secs(10));
    let ended = restart(&cluster);
    assert_recovered(&cluster, "kwok killed", ended, NODES, replicas);

    // Nodes with podCIDRs of their own (as in users' files and snapshots) must not stop
    // the controller-manager at start, and their pods get IPs from them.
    let own_cidrs = [(NODES, "192.168.77"), (NODES + 1, "172.31.7")];
    for (i, net) in own_cidrs {
        cluster.apply(&nodes(i..i + 1, &format!("spec:\n  podCIDR: {net}.0/24\n")));
    }
    let all = NODES + 2;
    let bound: Vec<String> = own_cidrs
        .iter()
        .flat_map(|(i, _)| {
            (0..5).map(move |p| {
                format!(
                    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: own-{i}-{p}\n  namespace: default\n\
                     spec:\n  nodeName: fault-{i}\n  containers:\n  - name: c\n    image: busybox\n"
                )
            })
        })
        .collect();
    cluster.apply(&bound.join("---\n"));
    wait_until(
        Duration::from_secs(60),
        "pods on the nodes with their own podCIDR",
        || pods_wrong(&cluster, replicas),
    );
    cluster.kwokctl.ok(&["stop", "cluster", "--name", cluster.name]);
    cluster.kwokctl.ok(&["start", "cluster", "--name", cluster.name]);
    assert_recovered(&cluster, "cluster restarted", Instant::now(), all, replicas);
    let components = cluster
        .kwokctl
        .ok(&["get", "components", "--name", cluster.name, "-o", "wide"]);
    assert!(!components.contains("Stopped"), "{components}");
    let pods = get_json(&cluster, &["pods"]).expect("pods");
    for (i, net) in own_cidrs {
        let node = format!("fault-{i}");
        let ips: HashSet<&str> = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["spec"]["nodeName"] == node.as_str())
            .filter_map(|p| p["status"]["podIP"].as_str())
            .collect();
        assert!(
            ips.len() >= 5 && ips.iter().all(|ip| ip.starts_with(&format!("{net}."))),
            "IPs from {node}'s own podCIDR: {ips:?}"
        );
    }
}
