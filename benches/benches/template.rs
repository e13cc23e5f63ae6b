//! Stage template rendering: KWOK's pod-ready and node-initialize status templates,
//! rendered and read back as JSON, as the engine does per object.
//!
//! Targets (one core): pod-ready ≥ 200 000 renders/s, node-initialize ≥ 100 000/s.
//!
//! Uses mimalloc, as the `kwok` binary does by default: rendering is dominated by the small
//! allocations of the JSON it builds (remove the `#[global_allocator]` to compare with glibc).

use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kwok_engine::{host::FixedHost, template::Template};
use serde_json::{Value, json};

/// KWOK's `kustomize/stage/pod/fast/pod-ready.yaml` status template.
const POD_READY: &str = r#"{{ $now := Now }}

conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Ready
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: ContainersReady
{{ range .spec.readinessGates }}
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: {{ .conditionType | Quote }}
{{ end }}

containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: true
  restartCount: 0
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}

initContainerStatuses:
{{ range .spec.initContainers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: true
  restartCount: 0
  {{ if eq .restartPolicy "Always" }}
  started: true
  state:
    running:
      startedAt: {{ $now | Quote }}
  {{ else }}
  state:
    terminated:
      exitCode: 0
      finishedAt: {{ $now | Quote }}
      reason: Completed
      startedAt: {{ $now | Quote }}
  {{ end }}
{{ end }}

hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
phase: Running
startTime: {{ $now | Quote }}
"#;

/// KWOK's `kustomize/stage/node/fast/node-initialize.yaml` status template.
const NODE_INITIALIZE: &str = r#"{{ $now := Now }}
{{ $lastTransitionTime := or .creationTimestamp $now }}
conditions:
{{ range NodeConditions }}
- lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $lastTransitionTime | Quote }}
  message: {{ .message | Quote }}
  reason: {{ .reason | Quote }}
  status: {{ .status | Quote }}
  type: {{ .type  | Quote}}
{{ end }}

addresses:
{{ with .status.addresses }}
{{ YAML . 1 }}
{{ else }}
{{ with NodeIP }}
- address: {{ . | Quote }}
  type: InternalIP
{{ end }}
{{ with NodeName }}
- address: {{ . | Quote }}
  type: Hostname
{{ end }}
{{ end }}

{{ with NodePort }}
daemonEndpoints:
  kubeletEndpoint:
    Port: {{ . }}
{{ end }}

allocatable:
{{ with .status.allocatable }}
{{ YAML . 1 }}
{{ else }}
  cpu: 1k
  memory: 1Ti
  pods: 1M
{{ end }}
capacity:
{{ with .status.capacity }}
{{ YAML . 1 }}
{{ else }}
  cpu: 1k
  memory: 1Ti
  pods: 1M
{{ end }}
{{ with .status.nodeInfo }}
nodeInfo:
  architecture: {{ with .architecture }} {{ . }} {{ else }} "amd64" {{ end }}
  bootID: {{ with .bootID }} {{ . }} {{ else }} "" {{ end }}
  containerRuntimeVersion: {{ with .containerRuntimeVersion }} {{ . }} {{ else }} "kwok-{{ Version }}" {{ end }}
  kernelVersion: {{ with .kernelVersion }} {{ . }} {{ else }} "kwok-{{ Version }}" {{ end }}
  kubeProxyVersion: {{ with .kubeProxyVersion }} {{ . }} {{ else }} "kwok-{{ Version }}" {{ end }}
  kubeletVersion: {{ with .kubeletVersion }} {{ . }} {{ else }} "kwok-{{ Version }}" {{ end }}
  machineID: {{ with .machineID }} {{ . }} {{ else }} "" {{ end }}
  operatingSystem: {{ with .operatingSystem }} {{ . }} {{ else }} "linux" {{ end }}
  osImage: {{ with .osImage }} {{ . }} {{ else }} "" {{ end }}
  systemUUID: {{ with .systemUUID }} {{ . }} {{ else }} "" {{ end }}
{{ end }}
phase: Running
"#;

fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default", "uid": "6a1c7f4e-0000-4000-8000-000000000001",
            "labels": {"app": "web"}, "creationTimestamp": "2024-05-06T07:00:00Z"},
        "spec": {
            "nodeName": "kwok-node-0",
            "containers": [
                {"name": "app", "image": "registry.k8s.io/nginx:1.27", "resources": {"requests": {"cpu": "100m"}}},
                {"name": "sidecar", "image": "registry.k8s.io/busybox:1.36"}
            ],
            "restartPolicy": "Always"
        },
        "status": {"phase": "Pending"}
    })
}

fn node() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "kwok-node-0", "labels": {"type": "kwok"}, "creationTimestamp": "2024-05-06T07:00:00Z"},
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "nodeInfo": {"architecture": "amd64", "kubeletVersion": "fake", "operatingSystem": "linux"}
        }
    })
}

fn host() -> FixedHost {
    FixedHost::new("2024-05-06T07:08:09.123456789Z".parse().expect("valid timestamp"))
}

fn bench_render(c: &mut Criterion, name: &str, src: &str, data: &Value) {
    let template = Template::parse(src).expect("template parses");
    let host = host();
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    group.bench_function("render_value", |b| {
        b.iter(|| black_box(template.render_value(black_box(data), &host).expect("renders")))
    });
    group.bench_function("render", |b| {
        let mut out = String::with_capacity(4096);
        b.iter(|| {
            out.clear();
            template
                .render(black_box(data), &host, &mut out)
                .expect("renders");
            black_box(out.len())
        })
    });
    let mut yaml = String::new();
    template.render(data, &host, &mut yaml).expect("renders");
    let json =
        serde_json::to_string(&template.render_value(data, &host).expect("renders")).expect("serialises");
    group.bench_function("serde_json_of_same_value", |b| {
        b.iter(|| black_box(serde_json::from_str::<Value>(black_box(&json)).expect("parses")))
    });
    group.bench_function("saphyr_yaml_only", |b| {
        b.iter(|| black_box(serde_saphyr::from_str::<Value>(black_box(&yaml)).expect("parses")))
    });
    group.finish();
}

fn templates(c: &mut Criterion) {
    bench_render(c, "pod_ready", POD_READY, &pod());
    bench_render(c, "node_initialize", NODE_INITIALIZE, &node());
    c.bench_function("pod_ready/parse", |b| {
        b.iter(|| black_box(Template::parse(black_box(POD_READY))))
    });
}

criterion_group!(benches, templates);
criterion_main!(benches);
