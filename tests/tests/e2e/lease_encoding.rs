//! `kwok --node-lease-encoding`: node Lease renewals sent and answered in Kubernetes'
//! protobuf encoding (the default, as kubelets send them) or in JSON (upstream KWOK's)
//! are accepted by the real apiserver, keep what the Lease carries, and keep nodes Ready.

use std::time::Duration;

use crate::create_options::process_of;
use crate::util::{Cluster, metric_sum};

#[test]
fn protobuf_lease_renewals_should_be_accepted_and_keep_the_lease_whole() {
    renewals_should_keep_the_lease_whole("lease-pb", None);
}

#[test]
fn json_lease_renewals_should_be_accepted_and_keep_the_lease_whole() {
    renewals_should_keep_the_lease_whole("lease-json", Some("json"));
}

/// Two nodes in a cluster whose kwok renews their Leases in `encoding` (its default when
/// `None`): Ready, renewed, still whole, every renewal answered 200.
fn renewals_should_keep_the_lease_whole(name: &'static str, encoding: Option<&str>) {
    // The kubelet's 40 s lease, renewed every 10 s.
    let extra = encoding.map(|e| format!("kwok-controller=node-lease-encoding={e}"));
    let mut flags = vec!["--heartbeat-factor", "1"];
    if let Some(extra) = &extra {
        flags.extend(["--extra-args", extra.as_str()]);
    }
    let cluster = Cluster::create(name, &flags);
    // kwok runs with the flag as given, or none (so the renewals below are the default's).
    let (cmdline, _) = process_of(&cluster.dir(), "kwok-controller");
    let given: Vec<&String> = cmdline
        .iter()
        .filter(|a| a.starts_with("--node-lease-encoding"))
        .collect();
    match encoding {
        Some(e) => assert_eq!(given, [&format!("--node-lease-encoding={e}")], "{cmdline:?}"),
        None => assert!(given.is_empty(), "{cmdline:?}"),
    }
    cluster
        .kwokctl
        .ok(&["--name", cluster.name, "scale", "node", "--replicas", "2"]);
    let ready = "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}";
    cluster.eventually(&["get", "nodes", "-o", ready], Duration::from_secs(60), |out| {
        out.lines().filter(|l| *l == "True").count() == 2
    });
    let node = cluster.kubectl(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={.items[0].metadata.name} {.items[0].metadata.uid}",
    ]);
    let (name, uid) = node.trim().split_once(' ').expect("name and uid");

    // Renewed (each renewal is a PUT in the encoding) at least twice past its creation,
    // and still owned by its node: the metadata went through the round trip.
    let lease = "jsonpath={.spec.holderIdentity} {.spec.renewTime} {.metadata.ownerReferences[0].uid} {.spec.leaseDurationSeconds}";
    let get = ["-n", "kube-node-lease", "get", "lease", name, "-o", lease];
    let first = cluster.eventually(&get, Duration::from_secs(30), |o| o.starts_with("kwok-"));
    let second = cluster.eventually(&get, Duration::from_secs(30), |o| o != first);
    let third = cluster.eventually(&get, Duration::from_secs(30), |o| o != second);
    let fields: Vec<&str> = third.split_whitespace().collect();
    assert_eq!(fields.len(), 4, "{third}");
    assert!(fields[0].starts_with("kwok-"), "{third}");
    assert_eq!(fields[2], uid, "owner reference lost: {third}");
    assert_eq!(fields[3], "40", "{third}");
    // The renewals cleared the managedFields kwok's create left (`strip`, the default):
    // the apiserver took the clearing entry in either encoding.
    let lease = cluster.node_lease(name);
    assert_eq!(
        lease["metadata"].get("managedFields"),
        None,
        "managedFields left: {lease}"
    );

    // kwok counted its PUTs as answered 200 and none refused.
    let metrics = cluster.kwok_get("/metrics");
    let ok = metric_sum(
        &metrics,
        "kwok_apiserver_requests_total",
        "verb=\"put\",code=\"200\"",
    );
    assert!(ok >= 2.0, "lease PUTs answered 200: {ok}\n{metrics}");
    let all = metric_sum(&metrics, "kwok_apiserver_requests_total", "verb=\"put\"");
    assert_eq!(all, ok, "lease PUTs not answered 200:\n{metrics}");
}
