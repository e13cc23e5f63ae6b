//! `kwokctl start cluster` and `kwokctl stop cluster`: processes go, data stays.

use std::{
    fs,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

use crate::{
    flags::StartClusterArgs,
    launch::Launch,
    paths::ClusterDir,
    ports,
    probe::Prober,
    runtime::{self, BinaryRuntime, Status},
};

/// How long `start cluster` waits for the components to be healthy again unless
/// `--wait` asks for longer.
const START_WAIT: Duration = Duration::from_secs(120);

pub(super) async fn start(
    workdir: &crate::paths::Workdir,
    name: &str,
    args: &StartClusterArgs,
    dry_run: bool,
) -> Result<()> {
    let started = Instant::now();
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
    if dry_run {
        let plan = crate::config::ClusterConfig {
            components: stopped,
            ..config
        };
        print!("{}", super::create_files::start_commands(&dir, &plan));
        return Ok(());
    }
    let prober = Prober::from_kubeconfig(&dir.kubeconfig()).await?;
    let mut launch = Launch::new(&dir, runtime);
    let mut deadline = started + args.wait.max(START_WAIT);
    if let Some(timeout) = args.timeout {
        deadline = deadline.min(started + timeout);
    }
    if let Err(err) = launch.run(&stopped, &prober, deadline).await {
        launch.abort();
        let within = args
            .timeout
            .filter(|t| started + *t == deadline)
            .map(|t| format!(" within --timeout {}", humantime::format_duration(t)))
            .unwrap_or_default();
        return Err(anyhow::Error::from(err).context(format!(
            "failed to start cluster {name:?}{within}; what this command started is stopped, data kept"
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

pub(super) fn stop(workdir: &crate::paths::Workdir, name: &str, dry_run: bool) -> Result<()> {
    let (dir, _) = super::existing(workdir, name)?;
    if dry_run {
        print!("{}", stop_plan(&dir));
        return Ok(());
    }
    stop_all(&dir, BinaryRuntime)?;
    println!("Cluster {name:?} stopped");
    Ok(())
}

/// Stops every process with a pid file in `dir`: the configured components in
/// reverse start order first (kwok before the apiserver before etcd), then any other.
/// One that will not stop does not keep the others running: all are tried, and the
/// error names every one left.
pub(super) fn stop_all(dir: &ClusterDir, runtime: BinaryRuntime) -> Result<()> {
    let left: Vec<String> = stop_order(dir)
        .into_iter()
        .filter_map(|name| runtime.stop(dir, &name).err().map(|e| e.to_string()))
        .collect();
    if !left.is_empty() {
        bail!("{}", left.join("; "));
    }
    Ok(())
}

/// What `stop_all` would do, as shell commands (`kill PID` per running component).
pub(super) fn stop_plan(dir: &ClusterDir) -> String {
    let mut out = String::new();
    for name in stop_order(dir) {
        if let Status::Running(pid) = BinaryRuntime.status(dir, &name) {
            out.push_str(&format!("kill {pid} # {name}\n"));
        }
    }
    out
}

/// Components with a pid file, in stop order.
fn stop_order(dir: &ClusterDir) -> Vec<String> {
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
    names
}
