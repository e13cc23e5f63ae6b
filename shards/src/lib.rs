//! The kwok controller's runtime: watches feed sharded caches; each shard matches
//! Stages (engine), keeps its timers in a wheel and sends merged, rate-limited
//! writes; a lease worker renews node Leases; `/metrics` shows it all.
//!
//! The shard ([`shard`]) and the lease worker ([`lease`]) are each an I/O-free state
//! machine fed the time and a random source by a thin async loop that owns the client,
//! the channels and the timer, so their rules are unit-tested without an apiserver.
//!
//! # Threads and channels
//! Every shard is a tokio task owning its state, so nothing is locked but the shared
//! `--cidr` pool and the ResourceClaims' allocations ([`claims`]: written a few times
//! per claim, read once or twice per pod, so a lock over a map, not `dashmap`).
//! `crossbeam` channels and `rayon`, named in the design, were tried where they fit and
//! are not used, because the measurements do not favour them
//! (`benches/benches/parallel.rs`, 2-core VM, 2026-12-04, median wall / CPU time):
//! - rayon for the initial list, the one place where cores sit idle (the shards wait
//!   for it): a 10,000-pod PodList decoded serially as kube's watcher does took 30.2 ms
//!   (31.9 ms CPU); split into items and decoded on both cores, 32.6 ms (49.9 ms CPU).
//!   Finding each item's text is a parse of its own (the split alone, then serial:
//!   44.4 ms), which eats the second core's gain and costs half again the CPU. And
//!   with the default `--initial-list stream` the list comes as single watch events.
//! - crossbeam channels into shard workers on their own OS threads, against kwok's
//!   dispatcher into tokio channels and tasks, 20,000 real pods: 5.56 against 5.32 ms
//!   (2 shards, kept as they come) and 54.7 against 54.4 ms (parsed as the cache does);
//!   CPU time likewise within 10 %. No gain, and a shard also waits on its timers and
//!   write results, which tokio gives it in the same loop.
#![warn(missing_docs)]

pub mod batcher;
pub mod claims;
pub mod client;
pub mod connect_proxy;
pub mod controller;
pub mod crds;
pub mod dispatch;
pub mod dryrun;
pub mod flags;
pub mod host;
pub mod ipam;
pub mod kubelet_api;
pub mod kwok_config;
pub mod lease;
pub mod metrics;
pub mod object;
pub mod otel;
pub mod profiling;
pub mod rule_watch;
pub mod selector;
pub mod server;
pub mod settings;
pub mod shard;
pub mod stages;
pub mod tls;
pub mod watch;
pub mod wheel;

use anyhow::{Context as _, Result};
use kube::{Config, config::KubeConfigOptions};

/// The connection from `--kubeconfig` (else the usual inference), with `--master` applied.
pub async fn config(flags: &flags::Flags) -> Result<Config> {
    let mut config = match &flags.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("failed to read --kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
        None => Config::infer()
            .await
            .context("failed to find a kubeconfig or in-cluster config")?,
    };
    if let Some(master) = &flags.master {
        config.cluster_url = master
            .parse()
            .with_context(|| format!("invalid --master {master:?}"))?;
    }
    Ok(config)
}
