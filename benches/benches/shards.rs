//! Shard internals: the timer wheel (ours side by side with tokio-util's `DelayQueue`,
//! schedule then fire, schedule then cancel), the batcher's merge of effects, and the
//! dispatcher: its routing hash alone and the whole hop into the shards' channels.
//!
//! Targets (one core): wheel ≥ 10,000,000 timers/s, merge ≥ 2,000,000 effects/s,
//! dispatch ≥ 5,000,000 events/s.
//!
//! Measured in CPU time of the process ([`cpu_time`]) so that runs on a shared machine
//! compare; `BENCH_WALL_TIME=1` measures wall-clock time instead.

#[path = "support/cpu_time.rs"]
mod cpu_time;

use std::{hint::black_box, sync::Arc, time::Duration};

use cpu_time::CpuTime;
use criterion::{BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput, measurement::Measurement};
use futures::StreamExt;
use kwok_engine::{effect::Effect, patch::PatchType};
use kwok_shards::{
    batcher,
    dispatch::{self, Batch, DISPATCH_CHUNK, Dispatcher},
    shard::{EVENT_BATCHES, Input, Role},
    wheel::{Clock, Wheel},
};
use serde_json::{Value, json};
use tokio::{sync::mpsc, time::Instant};
use tokio_util::time::DelayQueue;

// The allocator the `kwok` binary uses: the dispatch hop moves and frees objects.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Timers per wheel iteration: enough that per-batch set-up does not dominate.
const TIMERS: usize = 100_000;

/// Deadlines spread over 30 s (30,000 distinct milliseconds), as in the DelayQueue bench.
fn spread(i: usize) -> u64 {
    (i % 30_000) as u64
}

fn wheel<M: Measurement>(c: &mut Criterion<M>) {
    // Paused time: the wheel fires by advancing the clock, not by sleeping.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("wheel");
    group.throughput(Throughput::Elements(TIMERS as u64));
    group.bench_function("ours/schedule_and_fire", |b| {
        b.iter(|| {
            let mut wheel = Wheel::with_capacity(TIMERS);
            for i in 0..TIMERS {
                wheel.insert(i, spread(i));
            }
            // The shard loop's work without the clock: jump to the next deadline, drain.
            let mut fired = 0;
            while let Some(next) = wheel.next_deadline() {
                while let Some(expired) = wheel.poll_expired(next) {
                    fired += black_box(expired.value) & 1;
                }
            }
            fired
        })
    });
    group.bench_function("ours_in_runtime/schedule_and_fire", |b| {
        b.iter(|| runtime.block_on(ours_in_runtime()))
    });
    group.bench_function("ours/schedule_and_cancel", |b| {
        b.iter(|| {
            let mut wheel = Wheel::with_capacity(TIMERS);
            let keys: Vec<_> = (0..TIMERS).map(|i| wheel.insert(i, i as u64)).collect();
            for key in &keys {
                wheel.remove(*key);
            }
            wheel.len()
        })
    });
    group.bench_function("delay_queue/schedule_and_fire", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut wheel = DelayQueue::with_capacity(TIMERS);
                for i in 0..TIMERS {
                    wheel.insert(i, Duration::from_millis(spread(i)));
                }
                let mut fired = 0;
                while let Some(expired) = wheel.next().await {
                    fired += black_box(expired.into_inner()) & 1;
                }
                fired
            })
        })
    });
    group.bench_function("delay_queue/schedule_and_cancel", |b| {
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

/// Our wheel driven the way the shard drives it: one `Sleep`, reset to the wheel's next
/// deadline, on tokio's (paused) clock — the same clock work `DelayQueue` does.
async fn ours_in_runtime() -> usize {
    let clock = Clock::new(Instant::now());
    let mut wheel = Wheel::with_capacity(TIMERS);
    for i in 0..TIMERS {
        let at = Instant::now() + Duration::from_millis(spread(i));
        wheel.insert(i, clock.deadline_tick(at));
    }
    let sleep = tokio::time::sleep_until(Instant::now());
    tokio::pin!(sleep);
    let mut fired = 0;
    while let Some(next) = wheel.next_deadline() {
        sleep.as_mut().reset(clock.instant(next));
        (&mut sleep).await;
        let now = clock.now_tick(Instant::now());
        while let Some(expired) = wheel.poll_expired(now) {
            fired += black_box(expired.value) & 1;
        }
    }
    fired
}

fn merge<M: Measurement>(c: &mut Criterion<M>) {
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

fn route<M: Measurement>(c: &mut Criterion<M>) {
    let names: Vec<String> = (0..10_000).map(|i| format!("kwok-node-{i:06}")).collect();
    let mut group = c.benchmark_group("dispatch");
    group.throughput(Throughput::Elements(names.len() as u64));
    // The routing key read from a real pod (hot in cache): 10,000 times per iteration.
    let pod = kwok_benches::scheduled_pod();
    group.bench_function("routing_shard/scheduled_pod", |b| {
        b.iter(|| {
            (0..names.len())
                .map(|_| dispatch::routing_shard(Role::Pod, black_box(&pod), 8).unwrap())
                .sum::<usize>()
        })
    });
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

/// Events per dispatch iteration.
const EVENTS: usize = 100_000;
/// Events per iteration of the warm hop: few enough that the objects the setup has
/// just built stay in the last-level cache, as a chunk the watch task has just decoded.
const WARM_EVENTS: usize = 10_000;

/// `n` pods bound to 10,000 nodes, as the pod watch delivers them (small objects: the
/// hop, not serde, is measured).
fn pods(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "metadata": {"name": format!("pod-{i}"), "namespace": "default"},
                "spec": {"nodeName": format!("kwok-node-{:06}", i % 10_000)},
            })
        })
        .collect()
}

/// What the consumer tasks do with what they receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consumer {
    /// Free each event at once (on another thread than the one that built it).
    Drop,
    /// Take each event and keep it, as a shard keeps objects in its cache; the kept
    /// events are returned and freed after the timed part.
    Keep,
}

/// The controller's hop: one watch task routes every event through [`Dispatcher`] (in
/// ready chunks of `DISPATCH_CHUNK`, as the watch loop does) into `shards` bounded
/// channels (`EVENT_BATCHES`), one consumer task per shard drains them.
async fn hop(events: Vec<Value>, shards: usize, consumer: Consumer) -> Vec<Vec<Input>> {
    let total = events.len();
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..shards).map(|_| mpsc::channel(EVENT_BATCHES)).unzip();
    let consumers: Vec<_> = receivers
        .into_iter()
        .map(|mut rx: mpsc::Receiver<Batch>| {
            tokio::spawn(async move {
                let mut kept = Vec::new();
                let mut n = 0;
                while let Some(batch) = rx.recv().await {
                    for input in batch {
                        black_box(&input);
                        n += 1;
                        if consumer == Consumer::Keep {
                            kept.push(input);
                        }
                    }
                }
                (n, kept)
            })
        })
        .collect();
    let mut dispatcher = Dispatcher::new(1, Role::Pod, Arc::new(senders));
    let producer = tokio::spawn(async move {
        let mut events = events.into_iter().peekable();
        while events.peek().is_some() {
            events
                .by_ref()
                .take(DISPATCH_CHUNK)
                .for_each(|obj| dispatcher.applied(obj));
            dispatcher.flush().await;
        }
    });
    join(producer, consumers, total).await
}

/// The design before batching, for comparison: one channel send (and potentially one
/// wake-up of the shard) per event, channels of 4096 events.
async fn per_event_hop(events: Vec<Value>, shards: usize) -> Vec<Vec<Input>> {
    let total = events.len();
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..shards).map(|_| mpsc::channel(4096)).unzip();
    let consumers: Vec<_> = receivers
        .into_iter()
        .map(|mut rx: mpsc::Receiver<Input>| {
            tokio::spawn(async move {
                let mut n = 0;
                while let Some(input) = rx.recv().await {
                    black_box(&input);
                    n += 1;
                }
                (n, Vec::new())
            })
        })
        .collect();
    let producer = tokio::spawn(async move {
        for obj in events {
            let shard = dispatch::routing_shard(Role::Pod, &obj, shards).unwrap();
            senders[shard]
                .send(Input::Applied { kind: 1, obj })
                .await
                .unwrap();
        }
    });
    join(producer, consumers, total).await
}

async fn join(
    producer: tokio::task::JoinHandle<()>,
    consumers: Vec<tokio::task::JoinHandle<(usize, Vec<Input>)>>,
    expected: usize,
) -> Vec<Vec<Input>> {
    producer.await.unwrap();
    let mut total = 0;
    let mut kept = Vec::new();
    for consumer in consumers {
        let (n, k) = consumer.await.unwrap();
        total += n;
        kept.push(k);
    }
    assert_eq!(total, expected);
    kept
}

/// One [`hop`] bench; what an iteration returns (kept events) is freed after the timed part.
fn hop_bench<M: Measurement>(
    group: &mut BenchmarkGroup<'_, M>,
    runtime: &tokio::runtime::Runtime,
    (name, shards): (&str, usize),
    events: &[Value],
    consumer: Consumer,
) {
    group.bench_function(BenchmarkId::new(name, shards), |b| {
        b.iter_batched(
            || events.to_vec(),
            |events| runtime.block_on(hop(events, shards, consumer)),
            BatchSize::LargeInput,
        )
    });
}

fn dispatch_hop<M: Measurement>(c: &mut Criterion<M>) {
    // As the controller runs: a multi-thread runtime, one worker per core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pods_cold = pods(EVENTS);
    let pods_warm = pods(WARM_EVENTS);
    let mut group = c.benchmark_group("dispatch");
    // An iteration moves 100k events (tens of ms): ten samples are enough.
    group.sample_size(10);
    for shards in [2, 8] {
        // 100k objects built before the timed part: cold in cache, as after a large list.
        group.throughput(Throughput::Elements(EVENTS as u64));
        hop_bench(
            &mut group,
            &runtime,
            ("channel_hop", shards),
            &pods_cold,
            Consumer::Drop,
        );
        hop_bench(
            &mut group,
            &runtime,
            ("channel_hop_keep", shards),
            &pods_cold,
            Consumer::Keep,
        );
        group.throughput(Throughput::Elements(WARM_EVENTS as u64));
        hop_bench(
            &mut group,
            &runtime,
            ("warm_hop", shards),
            &pods_warm,
            Consumer::Drop,
        );
        hop_bench(
            &mut group,
            &runtime,
            ("warm_hop_keep", shards),
            &pods_warm,
            Consumer::Keep,
        );
        group.throughput(Throughput::Elements(EVENTS as u64));
        // The floor: the same events routed and freed by one task on a worker thread (as
        // the shards free them, away from the thread that built them), no channel at all.
        group.bench_function(BenchmarkId::new("route_and_drop", shards), |b| {
            b.iter_batched(
                || pods_cold.clone(),
                |events| {
                    let route = move || {
                        events
                            .into_iter()
                            .map(|obj| dispatch::routing_shard(Role::Pod, &black_box(obj), shards).unwrap())
                            .sum::<usize>()
                    };
                    runtime.block_on(async { tokio::spawn(async move { route() }).await.unwrap() })
                },
                BatchSize::LargeInput,
            )
        });
        group.bench_function(BenchmarkId::new("per_event_hop", shards), |b| {
            b.iter_batched(
                || pods_cold.clone(),
                |events| runtime.block_on(per_event_hop(events, shards)),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn run<M: Measurement>(mut c: Criterion<M>) {
    wheel(&mut c);
    merge(&mut c);
    route(&mut c);
    dispatch_hop(&mut c);
    c.final_summary();
}

fn main() {
    match std::env::var_os("BENCH_WALL_TIME") {
        Some(_) => run(Criterion::default().configure_from_args()),
        None => run(Criterion::default()
            .with_measurement(CpuTime)
            .configure_from_args()),
    }
}
