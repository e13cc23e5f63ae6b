//! The engine's per-object work on the default stage sets: choosing the stage
//! (`Lifecycle::select`), its delay (`Stage::delay`), rendering its effects
//! (`Stage::render`), and all three in a row (`evaluate`); `output` is the floor under
//! `render`: making and dropping a rendered patch body, and writing it as JSON.
//!
//! Targets (one core): selection of all pod stages against one pod ≥ 1 000 000/s;
//! `pod-ready` render ≥ 200 000/s; `node-initialize` render ≥ 100 000/s.
//!
//! Uses mimalloc, as the `kwok` binary does by default. Allocation counts per call are
//! checked by `tests/alloc.rs`, not here (a counting allocator would skew the timings).

use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kwok_benches::{host, lifecycle, lifecycles, new_node, now, scheduled_pod};
use kwok_engine::{effect::Effect, lifecycle::Lifecycle, stage::Stage};
use rand::{SeedableRng, rngs::SmallRng};
use serde_json::{Value, json};

/// `scheduled_pod` after `pod-ready`: Running, Ready, with an IP (no pod-fast stage matches).
fn running_pod() -> Value {
    let mut pod = scheduled_pod();
    pod["status"] = json!({
        "phase": "Running", "podIP": "10.0.0.1", "hostIP": "196.168.0.1", "qosClass": "Burstable",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2024-05-06T07:00:00Z"},
            {"type": "Initialized", "status": "True", "lastTransitionTime": "2024-05-06T07:00:01Z"},
            {"type": "Ready", "status": "True", "lastTransitionTime": "2024-05-06T07:00:01Z"},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2024-05-06T07:00:01Z"}
        ]
    });
    pod
}

fn stage<'l>(lifecycle: &'l Lifecycle, name: &str) -> &'l Stage {
    lifecycle
        .stages()
        .iter()
        .find(|s| s.name() == name)
        .unwrap_or_else(|| panic!("no stage {name}"))
}

fn bench_select(c: &mut Criterion, name: &str, lifecycle: &Lifecycle, obj: &Value) {
    let mut rng = SmallRng::seed_from_u64(1);
    let mut group = c.benchmark_group("select");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
        b.iter(|| black_box(lifecycle.select(black_box(obj), &mut rng).map(Stage::name)))
    });
    group.finish();
}

fn selection(c: &mut Criterion) {
    let pods_fast = lifecycles(&["pod-fast"]);
    let pods_general = lifecycles(&["pod-general", "pod-chaos"]);
    let nodes = lifecycles(&["node-fast"]);
    let (fast, general) = (lifecycle(&pods_fast, "Pod"), lifecycle(&pods_general, "Pod"));
    let (scheduled, running) = (scheduled_pod(), running_pod());
    bench_select(c, "pod-fast/scheduled_pod", fast, &scheduled);
    bench_select(c, "pod-fast/running_pod", fast, &running);
    bench_select(c, "pod-general+chaos/scheduled_pod", general, &scheduled);
    bench_select(c, "pod-general+chaos/running_pod", general, &running);
    bench_select(c, "node-fast/new_node", lifecycle(&nodes, "Node"), &new_node());
}

fn delay(c: &mut Criterion) {
    let pods = lifecycles(&["pod-general"]);
    let pod = scheduled_pod();
    let (now, mut rng) = (now(), SmallRng::seed_from_u64(1));
    let create = stage(lifecycle(&pods, "Pod"), "pod-create");
    let mut group = c.benchmark_group("delay");
    group.throughput(Throughput::Elements(1));
    group.bench_function("pod-general/pod-create", |b| {
        b.iter(|| black_box(create.delay(black_box(&pod), now, &mut rng)))
    });
    group.finish();
}

fn bench_render(c: &mut Criterion, set: &str, kind: &str, name: &str, obj: &Value) {
    let lifecycles = lifecycles(&[set]);
    let stage = stage(lifecycle(&lifecycles, kind), name);
    let mut host = host();
    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("{set}/{name}"), |b| {
        b.iter(|| black_box(stage.render(black_box(obj), &mut host)))
    });
    group.finish();
}

fn render(c: &mut Criterion) {
    bench_render(c, "pod-fast", "Pod", "pod-ready", &scheduled_pod());
    bench_render(c, "pod-general", "Pod", "pod-create", &scheduled_pod());
    bench_render(c, "node-fast", "Node", "node-initialize", &new_node());
}

/// What any render that returns a `serde_json::Value` cannot go below: making (here
/// cloning) and dropping `pod-ready`'s patch body as a value, and what the shard did
/// with it next, writing it as JSON. Reference rows for the `render` ones (whose patches
/// are now written as JSON text when they surely change the object), not a target.
fn output(c: &mut Criterion) {
    let lifecycles = lifecycles(&["pod-fast"]);
    let stage = stage(lifecycle(&lifecycles, "Pod"), "pod-ready");
    let effects = stage.render(&scheduled_pod(), &mut host()).expect("renders");
    let Some(Effect::Patch { body, .. }) = effects.first() else {
        panic!("pod-ready renders a patch first: {effects:?}");
    };
    let body = &body.to_value().into_owned();
    let mut group = c.benchmark_group("output");
    group.throughput(Throughput::Elements(1));
    group.bench_function("pod-ready/clone-and-drop", |b| {
        b.iter(|| black_box(black_box(body).clone()))
    });
    group.bench_function("pod-ready/to-json", |b| {
        b.iter(|| black_box(serde_json::to_vec(black_box(body)).expect("serializes")))
    });
    group.finish();
}

/// What the runtime does per object event: select, then delay and render the chosen stage.
fn bench_evaluate(c: &mut Criterion, set: &str, kind: &str, obj: &Value) {
    let lifecycles = lifecycles(&[set]);
    let lifecycle = lifecycle(&lifecycles, kind);
    let (mut host, now, mut rng) = (host(), now(), SmallRng::seed_from_u64(1));
    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(1));
    group.bench_function(set, |b| {
        b.iter(|| {
            let obj = black_box(obj);
            let stage = lifecycle.select(obj, &mut rng).expect("a stage matches");
            black_box((stage.delay(obj, now, &mut rng), stage.render(obj, &mut host)))
        })
    });
    group.finish();
}

fn evaluate(c: &mut Criterion) {
    bench_evaluate(c, "pod-fast", "Pod", &scheduled_pod());
    bench_evaluate(c, "pod-general", "Pod", &scheduled_pod());
    bench_evaluate(c, "node-fast", "Node", &new_node());
}

criterion_group!(benches, selection, delay, render, output, evaluate);
criterion_main!(benches);
