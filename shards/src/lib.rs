//! The kwok controller's runtime. At this stage it connects to the apiserver and
//! serves `/healthz`; the watch, shards, timer wheel and batcher arrive with the
//! "shards" issue.
#![warn(missing_docs)]

pub mod flags;
pub mod server;

use anyhow::{Context as _, Result};
use kube::{Client, Config, config::KubeConfigOptions};

/// A client from `--kubeconfig` (else the usual inference), with `--master` applied.
pub async fn client(flags: &flags::Flags) -> Result<Client> {
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
    Ok(Client::try_from(config)?)
}
