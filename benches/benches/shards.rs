//! Shard internals: the timer wheel (tokio-util's `DelayQueue`, schedule then fire),
//! the batcher's merge of effects, and the dispatcher's routing hash.
//!
//! Targets (one core): wheel ≥ 10,000,000 timers/s, merge ≥ 2,000,000 effects/s,
//! dispatch ≥ 5,000,000 events/s.

use std::{hint::black_box, time::Duration};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use kwok_engine::{effect::Effect, patch::PatchType};
use kwok_shards::{batcher, dispatch};
use serde_json::json;
use tokio_util::time::DelayQueue;

/// Timers per wheel iteration: enough that per-batch set-up does not dominate.
const TIMERS: usize = 100_000;

fn wheel(c: &mut Criterion) {
    // Paused time: the wheel fires by advancing the clock, not by sleeping.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("wheel");
    group.throughput(Throughput::Elements(TIMERS as u64));
    group.bench_function("schedule_and_fire", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut wheel = DelayQueue::with_capacity(TIMERS);
                for i in 0..TIMERS {
                    wheel.insert(i, Duration::from_millis((i % 30_000) as u64));
                }
                let mut fired = 0;
                while let Some(expired) = wheel.next().await {
                    fired += black_box(expired.into_inner()) & 1;
                }
                fired
            })
        })
    });
    group.bench_function("schedule_and_cancel", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut wheel = DelayQueue::with_capacity(TIMERS);
                let keys: Vec<_> = (0..TIMERS)
                    .map(|i| wheel.insert(i, Duration::from_millis(i as u64)))
                    .collect();
                for key in &keys {
                    wheel.remove(key);
                }
                wheel.len()
            })
        })
    });
    group.finish();
}

fn merge(c: &mut Criterion) {
    let patch = |phase: &str| Effect::Patch {
        subresource: Some("status".into()),
        ty: PatchType::Strategic,
        body: json!({"status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True"}]}}),
        impersonate: None,
    };
    let effects = vec![
        patch("Pending"),
        patch("Running"),
        Effect::Delete,
        patch("Succeeded"),
    ];
    let mut group = c.benchmark_group("batcher");
    group.throughput(Throughput::Elements(effects.len() as u64));
    group.bench_function("coalesce", |b| {
        b.iter_batched(
            || effects.clone(),
            |mut e| black_box(batcher::coalesce(&mut e)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn route(c: &mut Criterion) {
    let names: Vec<String> = (0..10_000).map(|i| format!("kwok-node-{i:06}")).collect();
    let mut group = c.benchmark_group("dispatch");
    group.throughput(Throughput::Elements(names.len() as u64));
    group.bench_function("shard_of", |b| {
        b.iter(|| {
            names
                .iter()
                .map(|n| dispatch::shard_of(black_box(n), 8))
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, wheel, merge, route);
criterion_main!(benches);
