//! Shard internals: the timer wheel (ours side by side with tokio-util's `DelayQueue`,
//! schedule then fire, schedule then cancel), the batcher's merge of effects and its
//! writing of a rendered patch (as JSON text and as a value), and the
//! dispatcher: its routing hash alone, the watch task's work per event, and the whole hop
//! of decoded objects (`JsonObject`) into the shards' channels; and the decoding of a watch
//! event, `JsonObject` side by side with kube's `DynamicObject`.
//!
//! Targets (one core): wheel ≥ 10,000,000 timers/s, merge ≥ 2,000,000 effects/s,
//! dispatch ≥ 5,000,000 events/s.
//!
//! Measured in CPU time of the process ([`cpu_time`]) so that runs on a shared machine
//! compare; `BENCH_WALL_TIME=1` measures wall-clock time instead.

#[path = "support/cpu_time.rs"]
mod cpu_time;

use std::{
    hint::black_box,
    sync::{Arc, Mutex},
    time::Duration,
};

use cpu_time::CpuTime;
use criterion::{BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput, measurement::Measurement};
use futures::StreamExt;
use kube::{api::DynamicObject, core::WatchEvent};
use kwok_engine::{
    effect::{Body, Effect},
    patch::PatchType,
};
use kwok_shards::{
    batcher,
    dispatch::{self, DISPATCH_CHUNK, Dispatcher},
    object::JsonObject,
    shard::{Batch, EVENT_BATCHES, Input, Role, hash::shard_of},
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
        body: json!({"status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True"}]}}).into(),
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

/// What the batcher does with `pod-ready`'s rendered status patch before it goes out:
/// adds the pod's uid and writes the request body. `text` is the body as the stage now
/// renders it (JSON text); `value` the same body as a `serde_json::Value`, as before.
fn send_body<M: Measurement>(c: &mut Criterion<M>) {
    let lifecycles = kwok_benches::lifecycles(&["pod-fast"]);
    let stage = kwok_benches::lifecycle(&lifecycles, "Pod")
        .stages()
        .iter()
        .find(|s| s.name() == "pod-ready")
        .expect("pod-ready");
    let effects = stage
        .render(&kwok_benches::scheduled_pod(), &mut kwok_benches::host())
        .expect("renders");
    let Some(Effect::Patch { body: text, .. }) = effects.first() else {
        panic!("pod-ready renders a patch first: {effects:?}");
    };
    assert!(
        matches!(text, Body::Json(_)),
        "pod-ready's patch is written as text"
    );
    let value = Body::Value(text.to_value().into_owned());
    let uid = "6a1c7f4e-0000-4000-8000-000000000001";
    let mut group = c.benchmark_group("batcher");
    group.throughput(Throughput::Elements(1));
    for (name, body) in [("send_body/text", text), ("send_body/value", &value)] {
        group.bench_function(name, |b| {
            b.iter(|| batcher::patch_body(PatchType::Strategic, black_box(body), uid).expect("a body"))
        });
    }
    group.finish();
}

fn route<M: Measurement>(c: &mut Criterion<M>) {
    let names: Vec<String> = (0..10_000).map(|i| format!("kwok-node-{i:06}")).collect();
    let mut group = c.benchmark_group("dispatch");
    group.throughput(Throughput::Elements(names.len() as u64));
    // The routing key read from a real pod (hot in cache): 10,000 times per iteration.
    let pod = JsonObject::new(&kwok_benches::scheduled_pod());
    group.bench_function("routing_shard/scheduled_pod", |b| {
        b.iter(|| {
            (0..names.len())
                .map(|_| dispatch::routing_shard(Role::Pod, black_box(&pod), 8).unwrap())
                .sum::<usize>()
        })
    });
    group.bench_function("shard_of", |b| {
        b.iter(|| names.iter().map(|n| shard_of(black_box(n), 8)).sum::<usize>())
    });
    group.finish();
}

/// Events per iteration of the hops that carry the small objects of [`pods`].
const EVENTS: usize = 100_000;
/// Events per iteration of the warm hop: few enough that the objects the setup has
/// just built stay in the last-level cache, as a chunk the watch task has just decoded.
const WARM_EVENTS: usize = 10_000;
/// Events per iteration of the hops that carry real pods ([`real_pods`]): each is
/// a few kB in many heap blocks, so the set-up's copy of 20,000 stays within memory.
const REAL_EVENTS: usize = 20_000;

/// `n` pods bound to 10,000 nodes (small objects: the hop, not serde, is measured), as
/// the watch decodes them.
fn pods(n: usize) -> Vec<JsonObject> {
    (0..n)
        .map(|i| {
            let pod = json!({
                "metadata": {"name": format!("pod-{i}"), "namespace": "default"},
                "spec": {"nodeName": format!("kwok-node-{:06}", i % 10_000)},
            });
            serde_json::from_value(pod).expect("a pod")
        })
        .collect()
}

/// `n` copies of the fixture pod ([`kwok_benches::scheduled_pod`], two containers, as
/// the API server returns it) as the pod watch decodes them, each named apart and bound
/// to one of 10,000 nodes.
fn real_pods<T: serde::de::DeserializeOwned>(n: usize) -> Vec<T> {
    let pod = kwok_benches::scheduled_pod();
    (0..n)
        .map(|i| {
            let mut pod = pod.clone();
            pod["metadata"]["name"] = json!(format!("web-{i}"));
            pod["spec"]["nodeName"] = json!(format!("kwok-node-{:06}", i % 10_000));
            serde_json::from_value(pod).expect("the fixture is a pod")
        })
        .collect()
}

/// What the watch task did with an object before the dispatcher carried `DynamicObject`s
/// (`controller::to_value`): the whole object re-built as a `Value`, without
/// `managedFields`.
fn legacy_to_value(mut obj: DynamicObject) -> Value {
    obj.metadata.managed_fields = None;
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

/// How the dispatcher routed a pod before, from its `Value`: `spec.nodeName` through two
/// `IndexMap` lookups (SipHash).
fn legacy_routing_shard(obj: &Value, shards: usize) -> Option<usize> {
    let node = obj.get("spec")?.get("nodeName")?.as_str()?;
    (!node.is_empty()).then(|| shard_of(node, shards))
}

/// What the consumer tasks do with what they receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consumer {
    /// Take each event and keep it, as a shard keeps objects in its cache; the kept
    /// events are returned and freed after the timed part.
    Keep,
    /// Do what the shard's cache does with an applied object: turn it into the compact
    /// JSON it keeps (and the parsed `Value` it matches stages on, then frees).
    Cache,
}

/// What the consumers kept: events, or the cache's JSON texts.
type Kept = (Vec<Input>, Vec<Box<str>>);

/// The controller's hop: one watch task routes every event through [`Dispatcher`] (in
/// ready chunks of `DISPATCH_CHUNK`, as the watch loop does, `feed` doing what the watch
/// loop does with one object) into `shards` bounded channels (`EVENT_BATCHES`), one
/// consumer task per shard drains them.
async fn hop<T: Send + 'static>(
    events: Vec<T>,
    shards: usize,
    consumer: Consumer,
    feed: fn(&mut Dispatcher, T),
) -> Vec<Kept> {
    let total = events.len();
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..shards).map(|_| mpsc::channel(EVENT_BATCHES)).unzip();
    let consumers: Vec<_> = receivers
        .into_iter()
        .map(|rx| tokio::spawn(consume(rx, consumer)))
        .collect();
    let mut dispatcher = Dispatcher::new(1, Role::Pod, Arc::new(senders));
    let producer = tokio::spawn(async move {
        let mut events = events.into_iter().peekable();
        while events.peek().is_some() {
            events
                .by_ref()
                .take(DISPATCH_CHUNK)
                .for_each(|obj| feed(&mut dispatcher, obj));
            dispatcher.flush().await;
        }
    });
    producer.await.unwrap();
    let mut n = 0;
    let mut kept = Vec::new();
    for consumer in consumers {
        let (count, k) = consumer.await.unwrap();
        n += count;
        kept.push(k);
    }
    assert_eq!(n, total);
    kept
}

/// One shard's consumer: counts the events and keeps them (or their cached form).
async fn consume(mut rx: mpsc::Receiver<Batch>, consumer: Consumer) -> (usize, Kept) {
    let (mut n, mut kept) = (0, Kept::default());
    while let Some(batch) = rx.recv().await {
        for input in batch {
            n += 1;
            match (consumer, input) {
                (Consumer::Cache, Input::Applied { obj, .. }) => kept.1.push(cache_json(obj)),
                (_, input) => kept.0.push(black_box(input)),
            }
        }
    }
    (n, kept)
}

/// What the shard's cache does with an applied object: parses it (to match stages; the
/// `Value` is freed) and keeps its compact JSON.
fn cache_json(obj: Box<JsonObject>) -> Box<str> {
    black_box(obj.to_value());
    obj.text
}

/// One [`hop`] bench; what an iteration returns (kept events) is freed after the timed part.
fn hop_bench<M: Measurement, T: Clone + Send + 'static>(
    group: &mut BenchmarkGroup<'_, M>,
    runtime: &tokio::runtime::Runtime,
    (name, shards): (&str, usize),
    (events, feed): (&[T], fn(&mut Dispatcher, T)),
    consumer: Consumer,
) {
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function(BenchmarkId::new(name, shards), |b| {
        b.iter_batched(
            || events.to_vec(),
            |events| runtime.block_on(hop(events, shards, consumer, feed)),
            BatchSize::LargeInput,
        )
    });
}

/// What the watch task does per event before the hop, on the real pods: CPU per event of
/// the serial task that feeds every shard of a kind.
fn watch_task<M: Measurement>(c: &mut Criterion<M>) {
    let (legacy, real) = (
        real_pods::<DynamicObject>(REAL_EVENTS),
        real_pods::<JsonObject>(REAL_EVENTS),
    );
    let mut group = c.benchmark_group("dispatch");
    group.throughput(Throughput::Elements(real.len() as u64));
    group.sample_size(10);
    group.bench_function("watch_task/to_value_and_route", |b| {
        b.iter_batched(
            || legacy.clone(),
            |events| {
                events
                    .into_iter()
                    .map(|obj| {
                        let obj = legacy_to_value(obj);
                        (legacy_routing_shard(&obj, 8), obj)
                    })
                    .collect::<Vec<_>>()
            },
            BatchSize::LargeInput,
        )
    });
    // Now: the route read from the decoded object, which moves on as it is.
    group.bench_function("watch_task/route", |b| {
        b.iter_batched(
            || real.clone(),
            |events| {
                events
                    .into_iter()
                    .map(|obj| (dispatch::routing_shard(Role::Pod, &obj, 8), obj))
                    .collect::<Vec<_>>()
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn dispatch_hop<M: Measurement>(c: &mut Criterion<M>) {
    // As the controller runs: a multi-thread runtime, one worker per core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let feed: fn(&mut Dispatcher, JsonObject) = |d, obj| d.applied(obj);
    let (pods_cold, pods_warm) = (pods(EVENTS), pods(WARM_EVENTS));
    let pods_real = real_pods::<JsonObject>(REAL_EVENTS);
    let mut group = c.benchmark_group("dispatch");
    // An iteration moves 10k-100k events (tens of ms): ten samples are enough.
    group.sample_size(10);
    for shards in [2, 8] {
        // As the controller uses it: real pods decoded by the watch, handed to the dispatcher.
        hop_bench(
            &mut group,
            &runtime,
            ("controller_hop_keep", shards),
            (&pods_real, feed),
            Consumer::Keep,
        );
        hop_bench(
            &mut group,
            &runtime,
            ("controller_hop_cache", shards),
            (&pods_real, feed),
            Consumer::Cache,
        );
        // Small objects, the rows of the earlier sections: 100k built before the timed
        // part (cold in cache, as after a large list), 10k just built (warm).
        hop_bench(
            &mut group,
            &runtime,
            ("channel_hop_keep", shards),
            (&pods_cold, feed),
            Consumer::Keep,
        );
        hop_bench(
            &mut group,
            &runtime,
            ("warm_hop_keep", shards),
            (&pods_warm, feed),
            Consumer::Keep,
        );
    }
    group.finish();
}

/// The hop as the controller's watch task feeds it: each chunk of `DISPATCH_CHUNK` real
/// pods is made just before it is routed, as the watch routes an object microseconds
/// after decoding it (in cache, unlike the rows above, whose 20,000 pods were built
/// before the timed part), and the shards' consumers run on the same thread (a
/// current-thread runtime) so that the timed part holds all of the hop's CPU: route, box,
/// buffer, send, wake-up, receive. What the consumers keep is freed between chunks,
/// untimed: freeing a replaced object is the shard cache's work (see `benches/README.md`).
fn just_decoded_hop<M: Measurement>(c: &mut Criterion<M>) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let chunk = real_pods::<JsonObject>(DISPATCH_CHUNK);
    let mut group = c.benchmark_group("dispatch");
    group.throughput(Throughput::Elements(DISPATCH_CHUNK as u64));
    for shards in [2, 8] {
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..shards).map(|_| mpsc::channel(EVENT_BATCHES)).unzip();
        let kept: Vec<Arc<Mutex<Vec<Input>>>> = (0..shards).map(|_| Arc::default()).collect();
        for (mut rx, kept) in receivers.into_iter().zip(kept.iter().cloned()) {
            runtime.spawn(async move {
                while let Some(batch) = rx.recv().await {
                    kept.lock().unwrap().extend(batch);
                }
            });
        }
        let senders = Arc::new(senders);
        let mut dispatcher = Dispatcher::new(1, Role::Pod, senders.clone());
        // Every batch sent has been received (and kept) once each channel is empty again.
        let drained = || senders.iter().all(|s| s.capacity() == s.max_capacity());
        group.bench_function(BenchmarkId::new("hop_just_decoded", shards), |b| {
            b.iter_batched(
                || {
                    kept.iter().for_each(|k| k.lock().unwrap().clear());
                    chunk.clone()
                },
                |events| {
                    runtime.block_on(async {
                        events.into_iter().for_each(|obj| dispatcher.applied(obj));
                        dispatcher.flush().await;
                        while !drained() {
                            tokio::task::yield_now().await;
                        }
                    })
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// Decoding one watch event of a pod as the apiserver sends it (`managedFields`
/// included), then dropping it: kube's `DynamicObject` (which the watch decoded before,
/// after which the shard still re-serialized it for its cache) side by side with
/// [`JsonObject`], which the watch decodes now, alone (an event the shard skips: that of
/// its own write) and followed by the shard's parse (an event that is news).
fn decode<M: Measurement>(c: &mut Criterion<M>) {
    let event =
        serde_json::to_string(&json!({"type": "MODIFIED", "object": kwok_benches::watched_pod()})).unwrap();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    group.bench_function("watch_event/dynamic_object", |b| {
        b.iter(|| serde_json::from_str::<WatchEvent<DynamicObject>>(black_box(&event)).unwrap())
    });
    group.bench_function("watch_event/json_object", |b| {
        b.iter(|| serde_json::from_str::<WatchEvent<JsonObject>>(black_box(&event)).unwrap())
    });
    // What an event that is news costs in all: the shard parses the text to match it.
    group.bench_function("watch_event/json_object_then_parse", |b| {
        b.iter(
            || match serde_json::from_str::<WatchEvent<JsonObject>>(black_box(&event)).unwrap() {
                WatchEvent::Modified(obj) => obj.to_value(),
                _ => unreachable!("a MODIFIED event"),
            },
        )
    });
    group.finish();
}

fn run<M: Measurement>(mut c: Criterion<M>) {
    wheel(&mut c);
    merge(&mut c);
    send_body(&mut c);
    route(&mut c);
    watch_task(&mut c);
    decode(&mut c);
    dispatch_hop(&mut c);
    just_decoded_hop(&mut c);
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
