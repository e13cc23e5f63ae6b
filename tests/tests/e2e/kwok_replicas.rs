//! `kwokctl create cluster --kwok-replicas N` (issue 25): N kwok controllers, each with
//! `--scale-out`, its own `--id` and port, share the nodes; `kwok-controller` and
//! `kwok-controller-1` are components of their own (logs, pid files, stop and start).

use std::{
    collections::BTreeMap,
    thread::sleep,
    time::{Duration, Instant},
};

use crate::{
    kwok::READY,
    util::{Cluster, audit_policy, kwok_ports, metric_sum, node_with_cidr},
};

const NODES: usize = 20;

/// Waits until both kwoks hold half of the node Leases and every node is Ready.
fn until_shared(cluster: &Cluster, within: Duration) -> Duration {
    until_held(cluster, &[("kwok-replicas", 10), ("kwok-replicas-1", 10)], within)
}

/// Waits until the kwoks hold the node Leases as in `want` (holder, count) and every
/// node is Ready.
fn until_held(cluster: &Cluster, want: &[(&str, usize)], within: Duration) -> Duration {
    let want: BTreeMap<String, usize> = want.iter().map(|(h, n)| (h.to_string(), *n)).collect();
    let start = Instant::now();
    loop {
        let held = cluster.lease_holders("kr-");
        let ready = cluster
            .kwokctl
            .run(&["--name", cluster.name, "kubectl", "get", "nodes", "-o", READY]);
        let ready = String::from_utf8_lossy(&ready.stdout)
            .lines()
            .filter(|l| l.starts_with("kr-") && l.ends_with("=True"))
            .count();
        if held == want && ready == NODES {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "after {within:?}: leases held {held:?} (want {want:?}), {ready}/{NODES} nodes Ready; {}",
            scale_out_metrics(cluster)
        );
        sleep(Duration::from_millis(500));
    }
}

/// Waits until every node advertises the kubelet port of the kwok holding its Lease,
/// where the apiserver sends `kubectl logs/exec` for its pods: a node taken over from
/// the other replica gets the new holder's heartbeat at once.
fn until_advertising_holders(cluster: &Cluster, within: Duration) -> Duration {
    let kwoks = kwok_ports(cluster);
    let port_of = |component: &str| -> String {
        kwoks
            .get(component)
            .unwrap_or_else(|| panic!("{component} in {kwoks:?}"))
            .clone()
    };
    let ports: BTreeMap<String, String> = [
        ("kwok-replicas".to_owned(), port_of("kwok-controller")),
        ("kwok-replicas-1".to_owned(), port_of("kwok-controller-1")),
    ]
    .into();
    const PORTS: &str = "jsonpath={range .items[*]}{.metadata.name}={.status.daemonEndpoints.kubeletEndpoint.Port}{\"\\n\"}{end}";
    let start = Instant::now();
    loop {
        let leases = cluster.leases("kr-");
        let out = cluster
            .kwokctl
            .run(&["--name", cluster.name, "kubectl", "get", "nodes", "-o", PORTS]);
        let advertised: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(n, p)| (n.to_owned(), p.to_owned()))
            .collect();
        let wrong: Vec<(&String, &String, Option<&String>)> = leases
            .iter()
            .filter(|(node, holder)| advertised.get(*node) != ports.get(*holder))
            .map(|(node, holder)| (node, holder, advertised.get(node)))
            .collect();
        if leases.len() == NODES && wrong.is_empty() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "after {within:?}: nodes advertising a port other than their holder's (ports {ports:?}): {wrong:?}"
        );
        sleep(Duration::from_millis(500));
    }
}

/// Each kwok's scale-out metrics, for a failure message.
fn scale_out_metrics(cluster: &Cluster) -> String {
    let mut out = String::new();
    for (component, port) in kwok_ports(cluster) {
        let metrics = cluster.kwok_get_at(&port, "/metrics");
        let wanted: Vec<&str> = metrics
            .lines()
            .filter(|l| {
                [
                    "kwok_members",
                    "kwok_nodes_dealt",
                    "kwok_leases_held",
                    "kwok_handovers_total",
                    "kwok_member_fenced",
                ]
                .iter()
                .any(|m| l.starts_with(m))
            })
            .collect();
        out.push_str(&format!("{component}: {} | ", wanted.join(", ")));
    }
    out
}

#[test]
fn two_kwok_replicas_should_share_the_nodes_and_stop_and_start_with_the_cluster() {
    // 40 s node Leases (the kubelet's): a Lease dealt away is taken over after 15 s. At
    // the default --heartbeat-factor 5 (200 s Leases) that is 75 s, and a node created
    // while the replicas still meet each other can be held by the wrong one that long.
    let policy = audit_policy();
    let cluster = Cluster::create(
        "replicas",
        &[
            "--kwok-replicas",
            "2",
            "--heartbeat-factor",
            "1",
            "--kube-audit-policy",
            &policy,
        ],
    );
    let kwokctl = &cluster.kwokctl;
    let name = cluster.name;
    let components = kwokctl.ok(&["--name", name, "get", "components"]);
    for kwok in ["kwok-controller", "kwok-controller-1"] {
        assert!(
            components
                .lines()
                .any(|l| l.split_whitespace().next() == Some(kwok)),
            "{components}"
        );
    }
    let (a, b) = (cluster.pid("kwok-controller"), cluster.pid("kwok-controller-1"));
    assert_ne!(a, b);
    for pid in [a, b] {
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(cmdline.contains("--scale-out"), "{cmdline}");
    }

    for i in 0..NODES {
        cluster.apply(&node_with_cidr("kr-", i));
    }
    let took = until_shared(&cluster, Duration::from_secs(60));
    println!("20 nodes shared 10/10 and Ready {took:?} after the last was applied");
    let took = until_advertising_holders(&cluster, Duration::from_secs(10));
    println!("every node advertised its holder's kubelet port {took:?} later");
    // Replica 1 dies: replica 0 takes its nodes over (1.5 renewal intervals after the
    // member table drops it), and they advertise replica 0's port from then on.
    cluster.kill("kwok-controller-1");
    let took = until_held(&cluster, &[("kwok-replicas", NODES)], Duration::from_secs(60));
    let port = until_advertising_holders(&cluster, Duration::from_secs(10));
    println!(
        "replica 1 killed: its nodes taken over {took:?} later, advertising the new holder {port:?} after that"
    );

    // Each replica's own log; the first under upstream's name.
    let first = kwokctl.ok(&["--name", name, "logs", "kwok-controller"]);
    let second = kwokctl.ok(&["--name", name, "logs", "kwok-controller-1"]);
    assert!(!first.is_empty() && !second.is_empty());
    assert_ne!(first, second);

    kwokctl.ok(&["--name", name, "stop", "cluster"]);
    assert!(
        kwokctl.processes().is_empty(),
        "still running after stop: {:?}",
        kwokctl.processes()
    );
    for kwok in ["kwok-controller", "kwok-controller-1"] {
        assert!(!cluster.dir().join(format!("pids/{kwok}.pid")).exists(), "{kwok}");
    }
    let stopped = kwokctl.ok(&["--name", name, "get", "components", "-o", "wide"]);
    assert!(
        stopped
            .lines()
            .filter(|l| l.starts_with("kwok-controller"))
            .all(|l| l.contains("Stopped")),
        "{stopped}"
    );
    let start = Instant::now();
    kwokctl.ok(&["--name", name, "start", "cluster"]);
    let started = start.elapsed();
    let took = until_shared(&cluster, Duration::from_secs(90));
    println!("started again in {started:?}, shared 10/10 and Ready {took:?} later");
    until_advertising_holders(&cluster, Duration::from_secs(10));
    assert_ne!(cluster.pid("kwok-controller-1"), b, "a new process");
    // Each replica's writes carry its --id (User-Agent); none drove a node of the other.
    cluster.assert_driven_once(&["kwok-replicas", "kwok-replicas-1"]);
    kwokctl.ok(&["delete", "cluster", "--name", name]);
    assert!(kwokctl.processes().is_empty(), "{:?}", kwokctl.processes());
}

/// Nodes `ip-0` … without a podCIDR: their pods take addresses from kwok's `--cidr`.
fn node_without_cidr(i: usize) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: ip-{i}\n  annotations: {{kwok.x-k8s.io/node: fake}}\n"
    )
}

/// Pods `first..first + count`, spread over `nodes` nodes by `spec.nodeName`.
fn pods_on_nodes(first: usize, count: usize, nodes: usize) -> String {
    (first..first + count)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ip-pod-{i}\n  namespace: default\nspec:\n  nodeName: ip-{}\n  containers: [{{name: c, image: x}}]\n---\n",
                i % nodes
            )
        })
        .collect()
}

/// Waits until `want` pods are Running with an IP; returns the IPs held by more than
/// one pod.
fn running_pods_and_duplicates(cluster: &Cluster, want: usize) -> Vec<(String, usize)> {
    const IPS: &str = "jsonpath={range .items[*]}{.status.phase} {.status.podIP}{\"\\n\"}{end}";
    let out = cluster.eventually(&["get", "pods", "-o", IPS], Duration::from_secs(120), |out| {
        out.lines()
            .filter(|l| l.starts_with("Running ") && l.len() > "Running ".len())
            .count()
            == want
    });
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for ip in out.lines().filter_map(|l| l.split_once(' ')).map(|(_, ip)| ip) {
        *counts.entry(ip.to_owned()).or_default() += 1;
    }
    counts.into_iter().filter(|(_, n)| *n > 1).collect()
}

/// See: issue 25 (three replicas gave 186 of 600 pods an address another pod had: each
/// filled the shared `--cidr` pool from its lowest free address before it saw the
/// others' pods). Each replica now hands out addresses from the IP slot it holds.
#[test]
fn kwok_replicas_should_never_give_two_pods_one_ip_from_the_shared_cidr() {
    const NODES: usize = 30;
    let cluster = Cluster::create(
        "replicas-ips",
        &["--kwok-replicas", "3", "--heartbeat-factor", "1"],
    );
    let nodes: String = (0..NODES).map(|i| node_without_cidr(i) + "---\n").collect();
    cluster.apply(&nodes);
    cluster.eventually(&["get", "nodes", "-o", READY], Duration::from_secs(60), |out| {
        out.lines()
            .filter(|l| l.starts_with("ip-") && l.ends_with("=True"))
            .count()
            == NODES
    });
    // Each replica holds its own slot.
    let slots: Vec<f64> = kwok_ports(&cluster)
        .values()
        .map(|port| metric_sum(&cluster.kwok_get_at(port, "/metrics"), "kwok_ip_slot", ""))
        .collect();
    assert_eq!(slots.len(), 3, "{slots:?}");
    assert!(
        slots.iter().all(|s| *s >= 0.0),
        "a replica without a slot: {slots:?}"
    );
    let distinct: std::collections::BTreeSet<u64> = slots.iter().map(|s| *s as u64).collect();
    assert_eq!(distinct.len(), 3, "two replicas in one slot: {slots:?}");

    cluster.apply(&pods_on_nodes(0, 600, NODES));
    let duplicates = running_pods_and_duplicates(&cluster, 600);
    assert!(duplicates.is_empty(), "pod IPs held twice: {duplicates:?}");
    // Each replica caches the pods of the nodes dealt to it, not all 600 (a third of
    // them, with the 30 nodes and a few objects off nodes).
    let ports = kwok_ports(&cluster);
    for (name, port) in &ports {
        let cached = metric_sum(&cluster.kwok_get_at(port, "/metrics"), "kwok_managed_objects", "");
        assert!(
            (100.0..450.0).contains(&cached),
            "{name} caches {cached} objects of 600 pods and 30 nodes"
        );
    }

    // A replica dies; the others take its nodes over and keep handing out addresses
    // none of the 600 pods holds.
    cluster.kill("kwok-controller-2");
    cluster.apply(&pods_on_nodes(600, 300, NODES));
    let duplicates = running_pods_and_duplicates(&cluster, 900);
    assert!(
        duplicates.is_empty(),
        "pod IPs held twice after a replica died: {duplicates:?}"
    );
    // The survivors fetched the pods of the nodes they took over (not cached before).
    let fetches: f64 = ports
        .iter()
        .filter(|(name, _)| *name != "kwok-controller-2")
        .map(|(_, port)| {
            metric_sum(
                &cluster.kwok_get_at(port, "/metrics"),
                "kwok_node_pod_fetches_total",
                "",
            )
        })
        .sum();
    assert!(fetches >= 1.0, "no node's pods fetched on takeover");
    cluster.kwokctl.ok(&["delete", "cluster", "--name", cluster.name]);
}
