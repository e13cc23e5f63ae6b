//! Stage template rendering: the default sets' pod-ready and node-initialize status
//! templates, rendered and read back as JSON, as the engine does per object.
//!
//! Targets (one core): pod-ready ≥ 200 000 renders/s, node-initialize ≥ 100 000/s.
//!
//! Uses mimalloc, as the `kwok` binary does by default: rendering is dominated by the small
//! allocations of the JSON it builds (remove the `#[global_allocator]` to compare with glibc).

use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kwok_benches::{host, new_node, scheduled_pod, status_template};
use kwok_engine::template::Template;
use serde_json::Value;

fn bench_render(c: &mut Criterion, name: &str, src: &str, data: &Value) {
    let template = Template::parse(src).expect("template parses");
    let mut host = host();
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    group.bench_function("render_value", |b| {
        b.iter(|| {
            black_box(
                template
                    .render_value(black_box(data), &mut host)
                    .expect("renders"),
            )
        })
    });
    group.bench_function("render", |b| {
        let mut out = String::with_capacity(4096);
        b.iter(|| {
            out.clear();
            template
                .render(black_box(data), &mut host, &mut out)
                .expect("renders");
            black_box(out.len())
        })
    });
    let mut yaml = String::new();
    template.render(data, &mut host, &mut yaml).expect("renders");
    let json =
        serde_json::to_string(&template.render_value(data, &mut host).expect("renders")).expect("serialises");
    group.bench_function("serde_json_of_same_value", |b| {
        b.iter(|| black_box(serde_json::from_str::<Value>(black_box(&json)).expect("parses")))
    });
    group.bench_function("saphyr_yaml_only", |b| {
        b.iter(|| black_box(serde_saphyr::from_str::<Value>(black_box(&yaml)).expect("parses")))
    });
    group.finish();
}

fn templates(c: &mut Criterion) {
    let pod_ready = status_template("pod-fast", "pod-ready");
    bench_render(c, "pod_ready", &pod_ready, &scheduled_pod());
    bench_render(
        c,
        "node_initialize",
        &status_template("node-fast", "node-initialize"),
        &new_node(),
    );
    c.bench_function("pod_ready/parse", |b| {
        b.iter(|| black_box(Template::parse(black_box(&pod_ready))))
    });
}

criterion_group!(benches, templates);
criterion_main!(benches);
