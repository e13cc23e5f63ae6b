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
    if let Some((c, pid)) = config
        .components
        .iter()
        .find_map(|c| match runtime.status(&dir, &c.name) {
            Status::Running(pid) => Some((c, pid)),
            Status::Stopped => None,
        })
    {
        bail!(
            "cluster {name:?} is already running ({} has pid {pid}); stop it first",
            c.name
        );
    }
    for c in &config.components {
        ports::ensure_free(c.port, &c.name)?;
    }
    let prober = Prober::from_kubeconfig(&dir.kubeconfig()).await?;
    let mut launch = Launch::new(&dir, runtime);
    if let Err(err) = launch
        .run(&config.components, &prober, Instant::now() + START_WAIT)
        .await
    {
        launch.abort();
        return Err(anyhow::Error::from(err).context(format!(
            "failed to start cluster {name:?}; it is stopped, data kept"
        )));
    }
    println!("Cluster {name:?} started");
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
