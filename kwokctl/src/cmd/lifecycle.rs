//! `kwokctl start cluster` and `kwokctl stop cluster`: processes go, data stays.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::{
    flags::StartClusterArgs,
    launch::Launch,
    paths::ClusterDir,
    ports,
    probe::Prober,
    runtime::{self, Runtime, Status},
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
    let runtime = match dry_run {
        true => runtime::of(&config.options.runtime)?,
        false => runtime::select(&config.options.runtime)?,
    };
    // The components not running, in start order: all of them after `stop cluster`, or
    // the ones that died or were killed (each restarted with its exact command line).
    let (stopped, running): (Vec<_>, Vec<_>) = config
        .components
        .iter()
        .partition(|c| matches!(runtime.status(&dir, &c.instance()), Status::Stopped));
    if stopped.is_empty() {
        let c = running
            .first()
            .map(|c| c.instance())
            .unwrap_or_else(|| "every component".into());
        bail!("cluster {name:?} is already running ({c} and the rest); stop it first");
    }
    for c in &stopped {
        ports::ensure_free(c.port, &c.instance())?;
    }
    let stopped: Vec<_> = stopped.into_iter().cloned().collect();
    if dry_run {
        let plan = crate::config::ClusterConfig {
            components: stopped,
            ..config
        };
        print!(
            "{}",
            super::create_files::start_commands(&dir, &plan, runtime.as_ref())
        );
        return Ok(());
    }
    let prober = Prober::from_kubeconfig(&dir.kubeconfig()).await?;
    let mut launch = Launch::new(&dir, runtime.as_ref());
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
            let names: Vec<String> = stopped.iter().map(|c| c.instance()).collect();
            println!("Cluster {name:?} started ({} restarted)", names.join(", "));
        }
    }
    Ok(())
}

pub(super) fn stop(workdir: &crate::paths::Workdir, name: &str, dry_run: bool) -> Result<()> {
    let (dir, config) = super::existing(workdir, name)?;
    let runtime = runtime::of(&config.options.runtime)?;
    if dry_run {
        print!("{}", stop_plan(&dir, runtime.as_ref()));
        return Ok(());
    }
    stop_all(&dir, runtime.as_ref())?;
    println!("Cluster {name:?} stopped");
    Ok(())
}

/// The runtime of the cluster in `dir` as its configuration names it; the binary
/// runtime when that cannot be read (a half-made cluster of `delete --force`).
pub(super) fn runtime_of(dir: &ClusterDir) -> Result<Box<dyn Runtime>> {
    match crate::config::ClusterConfig::load(&dir.config()) {
        Ok(config) => Ok(runtime::of(&config.options.runtime)?),
        Err(_) => Ok(Box::new(runtime::BinaryRuntime::default())),
    }
}

/// Stops every component of the cluster in `dir`: the configured ones in reverse
/// start order first (kwok before the apiserver before etcd), then any other the
/// runtime knows of. One that will not stop does not keep the others running: all are
/// tried, and the error names every one left.
pub(super) fn stop_all(dir: &ClusterDir, runtime: &dyn Runtime) -> Result<()> {
    let left: Vec<String> = stop_order(dir, runtime)
        .into_iter()
        .filter_map(|name| runtime.stop(dir, &name).err().map(|e| e.to_string()))
        .collect();
    if !left.is_empty() {
        bail!("{}", left.join("; "));
    }
    Ok(())
}

/// What `stop_all` would do, as shell commands (`kill PID`, `docker stop NAME`).
pub(super) fn stop_plan(dir: &ClusterDir, runtime: &dyn Runtime) -> String {
    let mut out = String::new();
    for name in stop_order(dir, runtime) {
        if let Some(line) = runtime.stop_command(dir, &name) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// The configured components and those the runtime knows of, in stop order.
fn stop_order(dir: &ClusterDir, runtime: &dyn Runtime) -> Vec<String> {
    let mut names: Vec<String> = crate::config::ClusterConfig::load(&dir.config())
        .map(|c| c.components.into_iter().rev().map(|c| c.instance()).collect())
        .unwrap_or_default();
    for known in runtime.known(dir) {
        if !names.contains(&known) {
            names.push(known);
        }
    }
    names
}
