//! `kwok --node-lease-managed-fields`: with `strip` (the default) kwok's first renewal
//! clears a node Lease's managedFields, so the apiserver tracks none on the renewals
//! after; with `keep` they stay as kubelets leave them. Against the real apiserver: that
//! it takes the clearing entry, and keeps the Lease otherwise whole and renewed.

use std::time::Duration;

use serde_json::Value;

use crate::util::Cluster;

/// A cluster with one Ready node, its Lease renewed every 10 s (the kubelet's 40 s
/// Lease), kwok started with `extra` kwok flags.
fn cluster_with_a_node(name: &'static str, extra: Option<&str>) -> (Cluster, String) {
    let mut flags = vec!["--heartbeat-factor", "1"];
    if let Some(extra) = extra {
        flags.extend(["--extra-args", extra]);
    }
    let cluster = Cluster::create(name, &flags);
    cluster
        .kwokctl
        .ok(&["--name", cluster.name, "scale", "node", "--replicas", "1"]);
    let node = cluster.eventually(
        &["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"],
        Duration::from_secs(60),
        |out| !out.trim().is_empty(),
    );
    (cluster, node.trim().to_owned())
}

fn renew_time(lease: &Value) -> String {
    lease["spec"]["renewTime"].as_str().unwrap_or_default().to_owned()
}

/// The kubectl arguments that print the node Lease's renewTime.
fn renew_time_of(node: &str) -> [&str; 7] {
    let renew = "jsonpath={.spec.renewTime}";
    ["-n", "kube-node-lease", "get", "lease", node, "-o", renew]
}

/// Waits for two renewals after the Lease's first sight; returns the Lease then.
fn renewed_twice(cluster: &Cluster, node: &str) -> Value {
    let get = renew_time_of(node);
    let first = cluster.eventually(&get, Duration::from_secs(30), |o| !o.is_empty());
    let second = cluster.eventually(&get, Duration::from_secs(30), |o| o != first);
    cluster.eventually(&get, Duration::from_secs(30), |o| o != second);
    cluster.node_lease(node)
}

#[test]
fn node_leases_should_lose_their_managed_fields_and_stay_renewed_by_default() {
    let (cluster, node) = cluster_with_a_node("lease-mf-strip", None);
    let lease = renewed_twice(&cluster, &node);
    // Created with one entry (the apiserver records a create's fields), cleared since.
    assert_eq!(
        lease["metadata"].get("managedFields"),
        None,
        "managedFields left: {lease}"
    );
    // The rest survived the clearing PUT: holder, duration, owner.
    assert!(
        lease["spec"]["holderIdentity"]
            .as_str()
            .is_some_and(|h| h.starts_with("kwok-")),
        "{lease}"
    );
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 40, "{lease}");
    assert_eq!(
        lease["metadata"]["ownerReferences"][0]["name"],
        node.as_str(),
        "{lease}"
    );
    // And it goes on being renewed without them.
    let before = renew_time(&lease);
    let again = cluster.eventually(&renew_time_of(&node), Duration::from_secs(30), |o| o != before);
    assert!(!again.is_empty());
    let ready = "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}";
    assert_eq!(
        cluster.kubectl(&["get", "node", &node, "-o", ready]).trim(),
        "True"
    );
}

#[test]
fn node_leases_should_keep_their_managed_fields_with_keep() {
    let (cluster, node) = cluster_with_a_node(
        "lease-mf-keep",
        Some("kwok-controller=node-lease-managed-fields=keep"),
    );
    let lease = renewed_twice(&cluster, &node);
    let managed = lease["metadata"]["managedFields"]
        .as_array()
        .unwrap_or_else(|| panic!("no managedFields: {lease}"));
    // The apiserver's record of who wrote the Lease: kwok's create and its renewals
    // (client-side updates of the whole object), the renewTime among the fields.
    assert!(
        managed
            .iter()
            .any(|m| m["operation"] == "Update" && m["fieldsV1"]["f:spec"].get("f:renewTime").is_some()),
        "{lease}"
    );
}
