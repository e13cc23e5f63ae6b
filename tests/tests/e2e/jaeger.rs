//! `create cluster --jaeger-port` (issue 22): Jaeger runs as a component, and both
//! kube-apiserver and kwok send it their traces; kwok's show a pod's stage transitions.
//!
//! Jaeger is built from its pinned Go module on first use: cold, that build takes
//! ~13 min on 2 cores (measured 802 s), beside the control plane's.

use std::{
    thread::sleep,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    kwok::node,
    util::{Cluster, http_get},
};

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: traced
  namespace: default
spec:
  nodeName: traced-node
  containers:
  - name: c
    image: fake
"#;

/// Polls Jaeger's query API at `path` until `done` holds for its JSON `data`.
fn query_until(address: &str, path: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let body = http_get(address, path);
        let data = serde_json::from_str::<Value>(&body)
            .map(|v| v["data"].clone())
            .unwrap_or(Value::Null);
        if done(&data) {
            return data;
        }
        assert!(start.elapsed() < within, "{path}: still {body}");
        sleep(Duration::from_secs(1));
    }
}

/// See: issue 22 ("Tracing: `kwokctl create cluster --jaeger-port N` … kwok's spans
/// show a pod's stage transitions and its writes").
#[test]
fn jaeger_should_receive_the_apiserver_and_kwok_traces_of_a_pod() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let cluster = Cluster::create("jaeger", &["--jaeger-port", &port.to_string()]);
    let address = format!("127.0.0.1:{port}");
    // get artifacts names the Jaeger binary the cluster runs.
    let artifacts = cluster.kwokctl.ok(&["--name", cluster.name, "get", "artifacts"]);
    let jaeger = artifacts
        .lines()
        .find(|l| l.starts_with("jaeger "))
        .unwrap_or_default();
    assert!(
        jaeger.contains("v1.76.0") && jaeger.contains("/jaeger"),
        "{artifacts}"
    );
    // kwok says where its spans go, once its log is set up.
    let log = cluster
        .kwokctl
        .ok(&["--name", cluster.name, "logs", "kwok-controller"]);
    assert!(log.contains("exporting trace spans over OTLP/gRPC"), "{log}");
    let services_with = |wanted: &'static [&'static str]| {
        move |data: &Value| {
            let names: Vec<&str> = data
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            wanted.iter().all(|w| names.contains(w))
        }
    };
    // kube-apiserver names its service `apiserver`. Its spans arrive from the start:
    // Jaeger runs before it.
    query_until(
        &address,
        "/api/services",
        Duration::from_secs(60),
        services_with(&["apiserver"]),
    );
    cluster.apply(&node("traced-node", true, ""));
    cluster.apply(POD);
    cluster.eventually(
        &["get", "pod", "traced", "-o", "jsonpath={.status.phase}"],
        Duration::from_secs(60),
        |phase| phase == "Running",
    );
    query_until(
        &address,
        "/api/services",
        Duration::from_secs(60),
        services_with(&["apiserver", "kwok-controller"]),
    );

    // kwok's stage spans carry the object's name; the pod's show its transitions, each
    // with the write that carried it out.
    let tags = "%7B%22kwok.name%22%3A%22traced%22%7D";
    let path = format!("/api/traces?service=kwok-controller&tags={tags}&limit=50&lookback=1h");
    // The apiserver exports its spans in its own batches, after kwok's may be in: wait
    // for the whole picture rather than the first trace.
    let operations_of = |traces: &Value| -> Vec<String> {
        traces
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|t| t["spans"].as_array().cloned().unwrap_or_default())
            .filter_map(|s| s["operationName"].as_str().map(str::to_owned))
            .collect()
    };
    let joined_of = |traces: &Value| {
        traces.as_array().into_iter().flatten().any(|t| {
            t["processes"]
                .as_object()
                .is_some_and(|p| p.values().any(|p| p["serviceName"] == "apiserver"))
        })
    };
    // kwok's writes carry a traceparent: the apiserver's spans of them join kwok's
    // trace. (Twice, under a loaded machine, the pod's trace had no apiserver span after
    // 180 s: Jaeger was then started after the apiserver, whose first exports failed.)
    let traces = query_until(&address, &path, Duration::from_secs(180), |data| {
        let ops = operations_of(data);
        joined_of(data) && ops.iter().any(|o| o.starts_with("Pod ")) && ops.iter().any(|o| o == "patch")
    });
    let operations = operations_of(&traces);
    assert!(
        operations.iter().any(|o| o.starts_with("Pod ")),
        "no stage span of the pod: {operations:?}"
    );
    assert!(
        operations.iter().any(|o| o == "patch"),
        "no write span under the pod's stages: {operations:?}"
    );
    assert!(
        joined_of(&traces),
        "no apiserver span in kwok's traces of the pod"
    );
}
