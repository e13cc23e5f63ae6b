//! One side of the comparison: a fresh cluster with one `kwok`, one loadgen run, and
//! what it cost (kwok CPU and memory, apiserver requests).

use std::{collections::BTreeMap, io::IsTerminal, path::PathBuf};

use anyhow::{Context, Result};
use kwok_loadgen::{Report, RunOptions, Scenario};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::{apiserver, cluster::Cluster, process};

/// Which kwok a side runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Controller {
    /// `ours` or `upstream`.
    pub side: String,
    /// Its binary.
    pub binary: PathBuf,
    /// What `kwok --version` printed.
    pub version: String,
}

/// The figures of one side, plus the raw loadgen report.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SideResult {
    /// The controller.
    pub controller: Controller,
    /// Nodes made Ready per second (between first and last Ready).
    pub nodes_ready_per_second: Option<f64>,
    /// Pods made Running per second.
    pub pods_running_per_second: Option<f64>,
    /// Pod created→Running p50, ms.
    pub pod_startup_p50_ms: Option<f64>,
    /// Pod created→Running p99, ms.
    pub pod_startup_p99_ms: Option<f64>,
    /// Pod scheduled→Running p99, ms (kwok's own share of startup).
    pub pod_scheduled_to_running_p99_ms: Option<f64>,
    /// Lease renewal lateness p99, ms.
    pub lease_lateness_p99_ms: Option<f64>,
    /// Leases that expired before renewal (or were overdue at the end).
    pub expired_leases: u64,
    /// Transitions kwok made: nodes Ready + pods Running + pods deleted + lease renewals.
    pub transitions: u64,
    /// kwok CPU seconds over the run.
    pub kwok_cpu_seconds: f64,
    /// kwok CPU seconds per 1,000 transitions.
    pub kwok_cpu_seconds_per_1000_transitions: f64,
    /// kwok peak RSS (VmHWM), MiB.
    pub kwok_peak_rss_mib: f64,
    /// kwok peak RSS per 1,000 nodes, MiB.
    pub kwok_peak_rss_mib_per_1000_nodes: f64,
    /// apiserver requests during the run (all clients).
    pub apiserver_requests: u64,
    /// The same by `verb resource`.
    pub apiserver_requests_by: BTreeMap<String, u64>,
    /// Whether every node went Ready and every pod Running.
    pub complete: bool,
    /// The loadgen report.
    pub report: Report,
}

/// Runs `scenario` on a fresh cluster whose controller is `controller`.
pub async fn run(
    kwokctl: &std::path::Path,
    controller: Controller,
    stages: &std::path::Path,
    scenario: &Scenario,
    log_to: &std::path::Path,
    cancel: CancellationToken,
) -> Result<SideResult> {
    let name = format!("perf-{}", controller.side);
    eprintln!(
        "perf: {}: creating cluster with {}",
        controller.side,
        controller.binary.display()
    );
    let cluster = Cluster::create(kwokctl, &name, &controller.binary, stages)?;
    let client = cluster.client().await?;
    let pid = cluster
        .pid("kwok-controller")
        .context("kwok-controller pid file")?;
    let before = process::usage(pid).context("kwok-controller is not running")?;
    let requests_before = apiserver::requests(&client).await.context("apiserver /metrics")?;
    eprintln!("perf: {}: running scenario {}", controller.side, scenario.name);
    let options = RunOptions {
        keep: false,
        progress: std::io::stderr().is_terminal(),
        run_id: None,
    };
    let report = kwok_loadgen::run(client.clone(), scenario.clone(), options, cancel).await?;
    let requests = apiserver::delta(&requests_before, &apiserver::requests(&client).await?);
    let after = process::usage(pid).context("kwok-controller exited during the run")?;
    cluster.copy_kwok_log(log_to);
    drop(cluster);
    Ok(SideResult::new(
        controller,
        report,
        after.cpu_seconds - before.cpu_seconds,
        after.peak_rss_mib,
        requests,
    ))
}

impl SideResult {
    fn new(
        controller: Controller,
        report: Report,
        cpu: f64,
        rss: f64,
        requests: BTreeMap<String, u64>,
    ) -> Self {
        let phase = |name: &str| report.phase(name);
        let running = phase("pod created→running");
        let gone = phase("pod delete→gone").map_or(0, |p| p.count);
        let transitions =
            report.counts.nodes_ready + report.counts.pods_running + gone + report.leases.renewals;
        let per_k = |v: f64, n: u64| if n == 0 { 0.0 } else { v * 1000.0 / n as f64 };
        Self {
            nodes_ready_per_second: phase("node created→ready").map(|p| p.rate_per_second),
            pods_running_per_second: running.map(|p| p.rate_per_second),
            pod_startup_p50_ms: running.map(|p| p.latency_ms.p50),
            pod_startup_p99_ms: running.map(|p| p.latency_ms.p99),
            pod_scheduled_to_running_p99_ms: phase("pod scheduled→running").map(|p| p.latency_ms.p99),
            lease_lateness_p99_ms: report.leases.lateness_ms.map(|p| p.p99),
            expired_leases: report.leases.expired,
            transitions,
            kwok_cpu_seconds: cpu,
            kwok_cpu_seconds_per_1000_transitions: per_k(cpu, transitions),
            kwok_peak_rss_mib: rss,
            kwok_peak_rss_mib_per_1000_nodes: per_k(rss, report.counts.nodes_created),
            apiserver_requests: requests.values().sum(),
            apiserver_requests_by: requests,
            complete: report.complete,
            controller,
            report,
        }
    }
}
