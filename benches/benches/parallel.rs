//! crossbeam and rayon, tried where the project's design names them (issue 24), each
//! beside what kwok does today, on the same input:
//!
//! - `list_decode`: a PodList page of 10,000 pods as the apiserver sends it
//!   (`managedFields` included), decoded into the [`JsonObject`]s the shards cache:
//!   `serial` as kube's watcher decodes a list (one `serde_json` pass), `split_serial`
//!   (a pass that finds each item's text, then each item decoded in turn) and `rayon`
//!   (the same split, items decoded on every core). kwok decodes its initial lists while
//!   the shards wait for them, so this is the one place with idle cores to use.
//! - `hop`: 20,000 pods routed from one watch task to the shards and taken in by them
//!   (kept as they come, or parsed and kept as the shard's cache does): `tokio`, kwok's
//!   [`Dispatcher`] into bounded tokio channels drained by one task per shard on a
//!   two-worker runtime, beside `crossbeam`, the same routing and batching into bounded
//!   crossbeam channels drained by one long-lived OS thread per shard (the shape of
//!   "shard workers on their own threads").
//!
//! Wall-clock time by default (what using more cores wins); `BENCH_CPU_TIME=1` measures
//! the process's CPU time instead (what it costs). Findings: `shards/src/lib.rs`,
//! "Threads and channels".

#[path = "support/cpu_time.rs"]
mod cpu_time;

use std::{hint::black_box, sync::Arc, thread};

use cpu_time::CpuTime;
use criterion::{BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput, measurement::Measurement};
use kube::core::ObjectList;
use kwok_shards::{
    dispatch::{DISPATCH_CHUNK, Dispatcher, routing_shard},
    object::JsonObject,
    shard::{Batch, EVENT_BATCHES, Input, Role},
};
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::{json, value::RawValue};
use tokio::sync::mpsc;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Pods in a list page: kwok lists in pages of 500 by default, but a list of a large
/// cluster is read back to back, so a page this size shows the steady rate.
const LIST_PODS: usize = 10_000;
/// Events per iteration of the hops.
const HOP_EVENTS: usize = 20_000;

/// The watched fixture pod (`managedFields` included), named `web-{i}` and bound to one
/// of 10,000 nodes.
fn watched_pod(i: usize) -> serde_json::Value {
    let mut pod = kwok_benches::watched_pod();
    pod["metadata"]["name"] = json!(format!("web-{i}"));
    pod["spec"]["nodeName"] = json!(format!("kwok-node-{:06}", i % 10_000));
    pod
}

/// A PodList of `n` pods as the apiserver sends it.
fn list_body(n: usize) -> String {
    let items: Vec<_> = (0..n).map(watched_pod).collect();
    serde_json::to_string(&json!({
        "apiVersion": "v1",
        "kind": "PodList",
        "metadata": {"resourceVersion": "12345"},
        "items": items,
    }))
    .expect("a list serializes")
}

/// A list whose items are left as their text, to be decoded one by one.
#[derive(Deserialize)]
struct RawList<'a> {
    #[serde(borrow)]
    items: Vec<&'a RawValue>,
}

fn decode_item(item: &&RawValue) -> JsonObject {
    serde_json::from_str(item.get()).expect("an item is an object")
}

fn list_decode<M: Measurement>(c: &mut Criterion<M>) {
    let body = list_body(LIST_PODS);
    let mut group = c.benchmark_group("list_decode");
    group.throughput(Throughput::Elements(LIST_PODS as u64));
    group.sample_size(10);
    group.bench_function("serial", |b| {
        b.iter(|| serde_json::from_str::<ObjectList<JsonObject>>(black_box(&body)).expect("a list"))
    });
    group.bench_function("split_serial", |b| {
        b.iter(|| {
            let raw: RawList = serde_json::from_str(black_box(&body)).expect("a list");
            raw.items.iter().map(decode_item).collect::<Vec<_>>()
        })
    });
    group.bench_function("rayon", |b| {
        b.iter(|| {
            let raw: RawList = serde_json::from_str(black_box(&body)).expect("a list");
            raw.items.par_iter().map(decode_item).collect::<Vec<_>>()
        })
    });
    group.finish();
}

/// What a shard does with what it receives.
#[derive(Debug, Clone, Copy)]
enum Take {
    /// Keeps each event, as its cache keeps objects.
    Keep,
    /// Parses each applied object (to match stages) and keeps its text, as its cache does.
    Parse,
}

/// One shard's intake of `batch`; returns how many events it took.
fn take(batch: Batch, how: Take, kept: &mut Vec<Input>, texts: &mut Vec<Box<str>>) -> usize {
    let n = batch.len();
    for input in batch {
        match (how, input) {
            (Take::Parse, Input::Applied { obj, .. }) => {
                black_box(obj.to_value());
                texts.push(obj.text);
            }
            (_, input) => kept.push(input),
        }
    }
    n
}

/// The hop as kwok runs it: the dispatcher into tokio channels, one task per shard.
fn tokio_hop(runtime: &tokio::runtime::Runtime, events: Vec<JsonObject>, shards: usize, how: Take) -> usize {
    runtime.block_on(async move {
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..shards).map(|_| mpsc::channel(EVENT_BATCHES)).unzip();
        let consumers: Vec<_> = receivers
            .into_iter()
            .map(|mut rx: mpsc::Receiver<Batch>| {
                tokio::spawn(async move {
                    let (mut n, mut kept, mut texts) = (0, Vec::new(), Vec::new());
                    while let Some(batch) = rx.recv().await {
                        n += take(batch, how, &mut kept, &mut texts);
                    }
                    n
                })
            })
            .collect();
        let mut dispatcher = Dispatcher::new(1, Role::Pod, Arc::new(senders));
        let mut events = events.into_iter().peekable();
        while events.peek().is_some() {
            events
                .by_ref()
                .take(DISPATCH_CHUNK)
                .for_each(|obj| dispatcher.applied(obj));
            dispatcher.flush().await;
        }
        drop(dispatcher);
        let mut n = 0;
        for consumer in consumers {
            n += consumer.await.expect("a consumer");
        }
        n
    })
}

/// Shard workers on their own OS threads, fed by bounded crossbeam channels, living
/// across iterations as a controller's would (and so that [`CpuTime`], which reads the
/// live threads, counts them). An empty batch ends an iteration: the worker reports how
/// many events it took and frees what it kept.
struct CrossbeamShards {
    senders: Vec<crossbeam_channel::Sender<Batch>>,
    done: crossbeam_channel::Receiver<usize>,
}

impl CrossbeamShards {
    fn start(shards: usize, how: Take) -> Self {
        let (done_tx, done) = crossbeam_channel::unbounded();
        let senders = (0..shards)
            .map(|_| {
                let (tx, rx) = crossbeam_channel::bounded::<Batch>(EVENT_BATCHES);
                let done = done_tx.clone();
                thread::spawn(move || {
                    let (mut n, mut kept, mut texts) = (0, Vec::new(), Vec::new());
                    for batch in rx {
                        if batch.is_empty() {
                            kept.clear();
                            texts.clear();
                            let _ = done.send(std::mem::take(&mut n));
                        } else {
                            n += take(batch, how, &mut kept, &mut texts);
                        }
                    }
                });
                tx
            })
            .collect();
        Self { senders, done }
    }

    /// The same routing and batching as the [`Dispatcher`], into these workers.
    fn hop(&self, events: Vec<JsonObject>) -> usize {
        let shards = self.senders.len();
        let mut buffers: Vec<Batch> = (0..shards).map(|_| Vec::new()).collect();
        let mut events = events.into_iter().peekable();
        while events.peek().is_some() {
            for obj in events.by_ref().take(DISPATCH_CHUNK) {
                if let Some(shard) = routing_shard(Role::Pod, &obj, shards) {
                    buffers[shard].push(Input::Applied {
                        kind: 1,
                        obj: Box::new(obj),
                    });
                }
            }
            for (buffer, sender) in buffers.iter_mut().zip(&self.senders) {
                if !buffer.is_empty() {
                    let batch = std::mem::replace(buffer, Vec::with_capacity(buffer.len()));
                    sender.send(batch).expect("the worker is running");
                }
            }
        }
        self.senders
            .iter()
            .for_each(|s| s.send(Vec::new()).expect("the worker is running"));
        (0..shards).map(|_| self.done.recv().expect("a worker")).sum()
    }
}

fn hop_row<M: Measurement>(
    group: &mut BenchmarkGroup<'_, M>,
    name: &str,
    shards: usize,
    events: &[JsonObject],
    run: impl Fn(Vec<JsonObject>) -> usize,
) {
    group.bench_function(BenchmarkId::new(name, shards), |b| {
        b.iter_batched(
            || events.to_vec(),
            |events| assert_eq!(run(events), HOP_EVENTS),
            BatchSize::LargeInput,
        )
    });
}

fn hop<M: Measurement>(c: &mut Criterion<M>) {
    // As the controller runs: a multi-thread runtime, one worker per core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let events: Vec<JsonObject> = (0..HOP_EVENTS)
        .map(|i| serde_json::from_value(watched_pod(i)).expect("a pod"))
        .collect();
    let mut group = c.benchmark_group("hop");
    group.throughput(Throughput::Elements(HOP_EVENTS as u64));
    group.sample_size(10);
    for shards in [2, 8] {
        for (how, label) in [(Take::Keep, "keep"), (Take::Parse, "parse")] {
            hop_row(&mut group, &format!("tokio_{label}"), shards, &events, |e| {
                tokio_hop(&runtime, e, shards, how)
            });
            let workers = CrossbeamShards::start(shards, how);
            hop_row(&mut group, &format!("crossbeam_{label}"), shards, &events, |e| {
                workers.hop(e)
            });
        }
    }
    group.finish();
}

fn run<M: Measurement>(mut c: Criterion<M>) {
    list_decode(&mut c);
    hop(&mut c);
    c.final_summary();
}

fn main() {
    match std::env::var_os("BENCH_CPU_TIME") {
        Some(_) => run(Criterion::default()
            .with_measurement(CpuTime)
            .configure_from_args()),
        None => run(Criterion::default().configure_from_args()),
    }
}
