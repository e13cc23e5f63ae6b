//! The kwok controller's runtime: watches feed sharded caches; each shard matches
//! Stages (engine), keeps its timers in a wheel and sends merged, rate-limited
//! writes; a lease worker renews node Leases; `/metrics` shows it all.
//!
//! The shard ([`shard`]) and the lease worker ([`lease`]) are each an I/O-free state
//! machine fed the time and a random source by a thin async loop that owns the client,
//! the channels and the timer, so their rules are unit-tested without an apiserver.
//!
//! Threads: every shard is a tokio task owning its state, so nothing is locked but the
//! shared `--cidr` pool. `crossbeam` channels, `rayon` and `dashmap` (named in the
//! design) are not used: no measurement favours them. A shard wakes on tokio's
//! channels, timer and write results whatever thread it runs on; the dispatch hop
//! already runs at 7.5 M events/s against a 5 M/s target (`benches/README.md`); the
//! watch decodes a list as it streams in, leaving no large batch for `rayon`; and no
//! map is shared between tasks for `dashmap` to serve.
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
