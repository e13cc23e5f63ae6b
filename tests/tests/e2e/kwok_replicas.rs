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
    util::{Cluster, audit_policy, kwok_ports, node_with_cidr},
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
