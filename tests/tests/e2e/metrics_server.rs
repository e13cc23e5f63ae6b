//! `create cluster --enable metrics-server` (issue 20): metrics-server runs as a
//! component, is registered as the aggregated `metrics.k8s.io` API, and `create` returns
//! only once that API is Available.
//!
//! metrics-server is built from its pinned Go module on first use (~4 min on 2 cores
//! once the control plane's modules are cached). The `kubectl top` assertions, which
//! need kwok's kubelet API, live with kwok's tests.

use serde_json::Value;

use crate::util::Cluster;

/// See: issue 20 ("metrics-server as a kwokctl component … registers its APIService").
#[test]
fn metrics_server_should_serve_the_metrics_api_when_create_returns() {
    let cluster = Cluster::create("metrics", &["--enable", "metrics-server"]);
    // create waited for the APIService: it is Available already.
    let available = cluster.kubectl(&[
        "get",
        "apiservice",
        "v1beta1.metrics.k8s.io",
        "-o",
        r#"jsonpath={.status.conditions[?(@.type=="Available")].status}"#,
    ]);
    assert_eq!(available.trim(), "True");
    // The apiserver proxies to it (front proxy, ExternalName Service, caBundle).
    let nodes = cluster.kubectl(&["get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes"]);
    let nodes: Value = serde_json::from_str(&nodes).expect("a JSON answer");
    assert_eq!(nodes["kind"], "NodeMetricsList", "{nodes}");
    let pods = cluster.kubectl(&["get", "--raw", "/apis/metrics.k8s.io/v1beta1/pods"]);
    assert!(pods.contains("PodMetricsList"), "{pods}");

    // It is a component like the others: listed, logged, its binary named.
    let components = cluster
        .kwokctl
        .ok(&["--name", cluster.name, "get", "components", "-o", "wide"]);
    let row = components
        .lines()
        .find(|l| l.starts_with("metrics-server "))
        .unwrap_or_default();
    assert!(row.split_whitespace().any(|w| w == "Ready"), "{components}");
    let artifacts = cluster.kwokctl.ok(&["--name", cluster.name, "get", "artifacts"]);
    let artifact = artifacts
        .lines()
        .find(|l| l.starts_with("metrics-server "))
        .unwrap_or_default();
    assert!(
        artifact.contains("v0.8.0") && artifact.contains("/metrics-server"),
        "{artifacts}"
    );
    let log = cluster
        .kwokctl
        .ok(&["--name", cluster.name, "logs", "metrics-server"]);
    assert!(!log.trim().is_empty(), "metrics-server logged nothing");

    // kwok was given the default Metric and ClusterResourceUsage.
    let kwok_config = std::fs::read_to_string(cluster.dir().join("kwok-controller-config.yaml"))
        .expect("kwok's --config file");
    assert!(
        kwok_config.contains("kind: Metric") && kwok_config.contains("kind: ClusterResourceUsage"),
        "{kwok_config}"
    );

    // Deleting the cluster stops it with the rest.
    cluster.kwokctl.ok(&["delete", "cluster", "--name", cluster.name]);
    assert!(
        cluster.kwokctl.processes().is_empty(),
        "left running: {:?}",
        cluster.kwokctl.processes()
    );
}
