//! The kubelet's resource-metrics endpoint for one node: upstream's
//! `kustomize/metrics/resource/metrics-resource.yaml` rendered with
//! `kustomize/metrics/usage/usage-from-annotation.yaml`, for a node with 10 running
//! pods of 2 containers each (`Metric::render`: conversion, usage table, integrals,
//! 8 families, text).
//!
//! Target: 10 000 nodes scraped every 15 s (metrics-server's default) on a 2-core
//! machine is 667 renders/s; at 220 µs per render (measured, pods unchanged between scrapes) that is 15% of one core.
//!
//! Needs upstream KWOK's Go module (`go mod download`, as the conformance tests).

use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiff::SignedDuration;
use kwok_benches::{new_node, now, scheduled_pod};
use kwok_engine::stage::load::Documents;
use kwok_kubelet::metrics::{Cumulative, Metrics, Usages};
use serde_json::{Value, json};

#[path = "../../tests/support/upstream_module.rs"]
mod upstream_module;

const PODS: usize = 10;

/// Upstream's usage and resource-metrics files, as kwok reads them.
fn upstream_documents() -> Documents {
    let root = upstream_module::dir();
    let mut docs = Documents::default();
    for file in [
        "kustomize/metrics/usage/usage-from-annotation.yaml",
        "kustomize/metrics/resource/metrics-resource.yaml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).expect("upstream file");
        docs.parse(file, &text).expect("upstream file parses");
    }
    docs
}

/// The fixture pod, running on `node`, with usage annotations (half of them: the
/// others take the rule's defaults).
fn running_pod(i: usize, node: &str) -> Value {
    let mut pod = scheduled_pod();
    pod["metadata"]["name"] = json!(format!("web-7c5ddbdf54-{i:05}"));
    pod["metadata"]["uid"] = json!(format!("6a1c7f4e-0000-4000-8000-{i:012}"));
    pod["spec"]["nodeName"] = json!(node);
    if i.is_multiple_of(2) {
        pod["metadata"]["annotations"] =
            json!({"kwok.x-k8s.io/usage-cpu": "250m", "kwok.x-k8s.io/usage-memory": "100Mi"});
    }
    let running = |name: &str| {
        json!({"name": name, "ready": true, "restartCount": 0,
        "state": {"running": {"startedAt": "2024-05-06T07:00:01Z"}}})
    };
    pod["status"] = json!({"phase": "Running", "podIP": "10.0.0.1",
        "containerStatuses": [running("app"), running("sidecar")]});
    pod
}

fn render(c: &mut Criterion) {
    let docs = upstream_documents();
    let usages = Usages::from_documents(&docs.others).expect("usages load");
    let metrics = Metrics::from_documents(&docs.others).expect("metrics load");
    let node = new_node();
    let name = node["metadata"]["name"].as_str().expect("node name").to_owned();
    let pods: Vec<Value> = (0..PODS).map(|i| running_pod(i, &name)).collect();
    let pods: Vec<&Value> = pods.iter().collect();
    let (metric, _) = metrics
        .route(&format!("/metrics/nodes/{name}/metrics/resource"))
        .expect("the resource path");

    let mut group = c.benchmark_group("metrics");
    group.throughput(Throughput::Elements(1));
    let mut state = Cumulative::new();
    let mut t = now();
    group.bench_function("render_node_10_pods", |b| {
        b.iter(|| {
            t += SignedDuration::from_secs(15);
            let out = metric.render(&node, &pods, &usages, &mut state, t);
            debug_assert!(out.errors.is_empty(), "{:?}", out.errors);
            black_box(out.text.len())
        })
    });
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
