//! `kwokctl start cluster` and `kwokctl stop cluster`: processes go, data stays.

use std::{
    fs,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

use crate::{
    launch::Launch,
    paths::ClusterDir,
    ports,
    probe::Prober,
    runtime::{self, BinaryRuntime, Status},
};

/// How long `start cluster` waits for the components to be healthy again.
const START_WAIT: Duration = Duration::from_secs(120);

pub(super) async fn start(workdir: &crate::paths::Workdir, name: &str) -> Result<()> {
    let (dir, config) = super::existing(workdir, name)?;
    let runtime = runtime::select(&config.options.runtime)?;
    // The components not running, in start order: all of them after `stop cluster`, or
    // the ones that died or were killed (each restarted with its exact command line).
    let (stopped, running): (Vec<_>, Vec<_>) = config
        .components
        .iter()
        .partition(|c| matches!(runtime.status(&dir, &c.name), Status::Stopped));
    if stopped.is_empty() {
        let c = running
            .first()
            .map(|c| c.name.as_str())
            .unwrap_or("every component");
        bail!("cluster {name:?} is already running ({c} and the rest); stop it first");
    }
    for c in &stopped {
        ports::ensure_free(c.port, &c.name)?;
    }
    let stopped: Vec<_> = stopped.into_iter().cloned().collect();
    let prober = Prober::from_kubeconfig(&dir.kubeconfig()).await?;
    let mut launch = Launch::new(&dir, runtime);
    if let Err(err) = launch.run(&stopped, &prober, Instant::now() + START_WAIT).await {
        launch.abort();
        return Err(anyhow::Error::from(err).context(format!(
            "failed to start cluster {name:?}; what this command started is stopped, data kept"
        )));
    }
    match running.is_empty() {
        true => println!("Cluster {name:?} started"),
        false => {
            let names: Vec<&str> = stopped.iter().map(|c| c.name.as_str()).collect();
            println!("Cluster {name:?} started ({} restarted)", names.join(", "));
        }
    }
    Ok(())
}

pub(super) fn stop(workdir: &crate::paths::Workdir, name: &str) -> Result<()> {
    let (dir, _) = super::existing(workdir, name)?;
    stop_all(&dir, BinaryRuntime)?;
    println!("Cluster {name:?} stopped");
    Ok(())
}

/// Stops every process with a pid file in `dir`: the configured components in
/// reverse start order first (kwok before the apiserver before etcd), then any other.
pub(super) fn stop_all(dir: &ClusterDir, runtime: BinaryRuntime) -> Result<()> {
    let mut names: Vec<String> = crate::config::ClusterConfig::load(&dir.config())
        .map(|c| c.components.into_iter().rev().map(|c| c.name).collect())
        .unwrap_or_default();
    if let Ok(entries) = fs::read_dir(dir.root().join("pids")) {
        for entry in entries.filter_map(|e| e.ok()) {
            if let Some(stem) = entry.path().file_stem().and_then(|s| s.to_str())
                && !names.iter().any(|n| n == stem)
            {
                names.push(stem.to_owned());
            }
        }
    }
    for name in names {
        runtime.stop(dir, &name)?;
    }
    Ok(())
}
