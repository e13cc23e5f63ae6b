//! `readiness-watch`: follows a cluster's nodes and pods through watches and prints,
//! every second, one JSON line: how many nodes are not Ready, how many of the selected
//! pods are not Running and Ready (or are being deleted), how many pod IPs two of
//! them hold, and how long the longest single spell of a node or pod not Ready has
//! lasted so far (from its Ready condition's `lastTransitionTime`, or its creation
//! when it never had one): a count that stays above zero for a minute can be one node
//! stuck, or a thousand each not Ready for a second, and only the spells tell which.
//!
//! The fault soak (`benches/scale/faults.py`) reads it instead of listing every node
//! and pod with kubectl at each poll: at 5,000 nodes and 5,000 pods one such poll took
//! about 25 s on 2 cores and loaded the apiserver whose recovery it was timing. A watch
//! costs the apiserver little (each event is encoded once for all JSON watchers).
//!
//! While a watch is down or re-listing, `synced` is false and the counts are the last
//! ones seen: a reader must not take them as the cluster's state. Watches are retried
//! every second (kube's default backoff grows to 30 s, which would blind the observer
//! for that long after an apiserver restart).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Parser;
use futures::{Stream, StreamExt};
use jiff::Timestamp;
use k8s_openapi::{
    api::core::v1::{Node, Pod},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};
use kube::{
    Api, Client, Resource,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        utils::Backoff,
        watcher,
    },
};
use kwok_loadgen::measure::{node_ready, pod_ready};
use serde::Serialize;

/// Prints the readiness of a cluster's nodes and pods once a second (JSON lines).
#[derive(Parser)]
struct Args {
    /// Label selector of the pods to follow (all pods when empty).
    #[arg(long, default_value = "")]
    pod_selector: String,
    /// Seconds between lines.
    #[arg(long, default_value_t = 1.0)]
    every: f64,
}

/// One line of output.
#[derive(Debug, Default, PartialEq, Serialize)]
struct Counts {
    nodes: usize,
    nodes_not_ready: usize,
    pods: usize,
    pods_not_ready: usize,
    duplicate_ips: usize,
    /// Seconds the node not Ready the longest has been so (0 when all are Ready).
    node_longest_s: f64,
    /// Seconds the selected pod not up the longest has been so, pods being deleted
    /// aside (0 when all are up).
    pod_longest_s: f64,
}

/// When an object that is not up went so: the last transition of its Ready condition
/// when that is not `True`, else (none, one without a time, or a pod Ready but not
/// Running) the object's creation. `fields` gives a condition's type, status and last
/// transition (node and pod conditions are different types).
fn not_up_since<C>(
    meta: &ObjectMeta,
    conditions: Option<&[C]>,
    fields: impl Fn(&C) -> (&str, &str, Option<&Time>),
) -> Option<Timestamp> {
    conditions
        .unwrap_or_default()
        .iter()
        .map(fields)
        .find(|(kind, status, _)| *kind == "Ready" && *status != "True")
        .and_then(|(_, _, changed)| changed)
        .or(meta.creation_timestamp.as_ref())
        .map(|t| t.0)
}

/// Seconds from `since` to `now`, never negative (clocks of one machine, but a
/// condition's time has whole-second precision).
fn spell(since: Option<Timestamp>, now: Timestamp) -> f64 {
    since.map_or(0.0, |s| now.duration_since(s).as_secs_f64().max(0.0))
}

/// Whether a pod is Running, Ready and not being deleted.
fn pod_up(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        && pod_ready(pod)
}

fn count<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
    pods: impl IntoIterator<Item = &'a Pod>,
    now: Timestamp,
) -> Counts {
    let mut c = Counts::default();
    for node in nodes {
        c.nodes += 1;
        if !node_ready(node) {
            c.nodes_not_ready += 1;
            let conditions = node.status.as_ref().and_then(|s| s.conditions.as_deref());
            let since = not_up_since(&node.metadata, conditions, |c| {
                (&c.type_, &c.status, c.last_transition_time.as_ref())
            });
            c.node_longest_s = c.node_longest_s.max(spell(since, now));
        }
    }
    let mut holders: HashMap<&str, usize> = HashMap::new();
    for pod in pods {
        c.pods += 1;
        if !pod_up(pod) {
            c.pods_not_ready += 1;
            if pod.metadata.deletion_timestamp.is_none() {
                let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_deref());
                let since = not_up_since(&pod.metadata, conditions, |c| {
                    (&c.type_, &c.status, c.last_transition_time.as_ref())
                });
                c.pod_longest_s = c.pod_longest_s.max(spell(since, now));
            }
        }
        if let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()) {
            *holders.entry(ip).or_default() += 1;
        }
    }
    c.duplicate_ips = holders.values().map(|n| n.saturating_sub(1)).sum();
    c
}

/// Retries a failed watch every second.
struct EverySecond;

impl Iterator for EverySecond {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(Duration::from_secs(1))
    }
}

impl Backoff for EverySecond {
    fn reset(&mut self) {}
}

/// Keeps a store of `api`'s objects and a flag that is true while the store is a whole
/// list followed by the watch since (false from an error or a re-list's start until the
/// list is done).
fn follow<K>(api: Api<K>, config: watcher::Config) -> (Store<K>, Arc<AtomicBool>, impl Stream<Item = ()>)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, writer) = reflector::store();
    let synced = Arc::new(AtomicBool::new(false));
    let flag = synced.clone();
    let stream = reflector::reflector(writer, watcher(api, config))
        .backoff(EverySecond)
        .map(move |event| {
            let now = match event {
                Ok(watcher::Event::InitDone) => true,
                Ok(watcher::Event::Init) | Err(_) => false,
                Ok(_) => flag.load(Ordering::Relaxed),
            };
            flag.store(now, Ordering::Relaxed);
        });
    (store, synced, stream)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = Client::try_default().await.context("no kubeconfig")?;
    let (nodes, nodes_synced, node_events) =
        follow(Api::<Node>::all(client.clone()), watcher::Config::default());
    let pod_config = match args.pod_selector.as_str() {
        "" => watcher::Config::default(),
        selector => watcher::Config::default().labels(selector),
    };
    let (pods, pods_synced, pod_events) = follow(Api::<Pod>::all(client), pod_config);
    tokio::spawn(node_events.for_each(|()| async {}));
    tokio::spawn(pod_events.for_each(|()| async {}));
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(args.every));
    loop {
        tick.tick().await;
        let (n, p) = (nodes.state(), pods.state());
        let counts = count(
            n.iter().map(|n| n.as_ref()),
            p.iter().map(|p| p.as_ref()),
            Timestamp::now(),
        );
        let synced = nodes_synced.load(Ordering::Relaxed) && pods_synced.load(Ordering::Relaxed);
        let line = serde_json::json!({
            "t": (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            "synced": synced,
            "counts": counts,
        });
        println!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: &str = "2026-12-04T12:00:00Z";

    /// A node created 100 s before `NOW` whose Ready condition changed `changed_ago` s before it.
    fn node(ready: Option<&str>, changed_ago: i64) -> Node {
        let now: Timestamp = NOW.parse().unwrap();
        let at = |ago: i64| (now - jiff::SignedDuration::from_secs(ago)).to_string();
        let conditions =
            ready.map(|s| json!([{"type": "Ready", "status": s, "lastTransitionTime": at(changed_ago)}]));
        serde_json::from_value(json!({
            "metadata": {"name": "n", "creationTimestamp": at(100)},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    /// A pod created 100 s before `NOW` whose Ready condition changed `changed_ago` s before it.
    fn pod(phase: &str, ready: &str, ip: &str, deleting: bool, changed_ago: i64) -> Pod {
        let now: Timestamp = NOW.parse().unwrap();
        let at = |ago: i64| (now - jiff::SignedDuration::from_secs(ago)).to_string();
        let mut pod = json!({
            "metadata": {"name": "p", "creationTimestamp": at(100)},
            "status": {
                "phase": phase,
                "podIP": ip,
                "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": at(changed_ago)}],
            },
        });
        if deleting {
            pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(pod).unwrap()
    }

    #[test]
    fn counts_should_flag_every_kind_of_not_ready_and_each_extra_holder_of_an_ip() {
        let now: Timestamp = NOW.parse().unwrap();
        let nodes = [node(Some("True"), 50), node(Some("Unknown"), 7), node(None, 0)];
        let pods = [
            pod("Running", "True", "10.0.0.1", false, 60),
            pod("Running", "False", "10.0.0.1", false, 12),
            pod("Running", "True", "10.0.0.1", true, 70),
            pod("Running", "True", "10.0.0.3", false, 80),
        ];
        assert_eq!(
            count(&nodes, &pods, now),
            Counts {
                nodes: 3,
                nodes_not_ready: 2,
                pods: 4,
                pods_not_ready: 2,
                duplicate_ips: 2,
                // The node with no conditions has been not Ready since its creation.
                node_longest_s: 100.0,
                // The pod being deleted is no spell; the not Ready one changed 12 s ago.
                pod_longest_s: 12.0,
            }
        );
        // A pod Pending with a Ready condition `True` is not up since its creation.
        let pending = [pod("Pending", "True", "10.0.0.2", false, 3)];
        assert_eq!(count(&nodes[..2], &pending, now).pod_longest_s, 100.0);
        assert_eq!(count(&nodes[..2], &pending, now).node_longest_s, 7.0);
    }
}
