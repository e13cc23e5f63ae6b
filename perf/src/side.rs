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
    /// How many kwok processes share the nodes (`kwokctl --kwok-replicas`, ours only:
    /// upstream's kwok has no `--scale-out`); kwok's CPU is their sum, its peak RSS the
    /// largest, with each one's in `kwokReplicas` of the result.
    #[serde(default = "one")]
    pub replicas: u32,
    /// How the apiserver ranks kwok's and loadgen's requests.
    #[serde(default)]
    pub priority: crate::cluster::Priority,
}

fn one() -> u32 {
    1
}

/// The components of a side's kwok processes: `kwok-controller`, then
/// `kwok-controller-1` … for more replicas (kwokctl's names).
pub fn kwok_components(replicas: u32) -> Vec<String> {
    (0..replicas.max(1))
        .map(|i| match i {
            0 => "kwok-controller".to_owned(),
            i => format!("kwok-controller-{i}"),
        })
        .collect()
}

/// The usage of several processes as one: CPU summed, RSS (peak and now) summed too;
/// `None` if any is gone.
fn usage_of(pids: &[u32]) -> Option<process::Usage> {
    pids.iter().try_fold(
        process::Usage {
            cpu_seconds: 0.0,
            peak_rss_mib: 0.0,
            rss_mib: 0.0,
        },
        |sum, pid| {
            let u = process::usage(*pid)?;
            Some(process::Usage {
                cpu_seconds: sum.cpu_seconds + u.cpu_seconds,
                peak_rss_mib: sum.peak_rss_mib + u.peak_rss_mib,
                rss_mib: sum.rss_mib + u.rss_mib,
            })
        },
    )
}

/// One replica's share of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaUsage {
    /// Its kwokctl component.
    pub component: String,
    /// CPU seconds over the run.
    pub cpu_seconds: f64,
    /// Peak RSS (VmHWM), MiB.
    pub peak_rss_mib: f64,
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
    /// Of those, the ones that ended while the nodes sat idle (the `hold` phase), when
    /// the scenario holds: the soak itself, apart from node creation.
    pub expired_leases_while_idle: Option<u64>,
    /// Transitions kwok made: nodes Ready + pods Running + pods deleted + lease renewals.
    pub transitions: u64,
    /// kwok CPU seconds over the run.
    pub kwok_cpu_seconds: f64,
    /// kwok CPU seconds per 1,000 transitions.
    pub kwok_cpu_seconds_per_1000_transitions: f64,
    /// CPU seconds of each control-plane component (etcd, kube-apiserver,
    /// kube-controller-manager, kube-scheduler) over the run: what the simulated
    /// transitions cost the control plane sharing the machine.
    #[serde(default)]
    pub control_plane_cpu_seconds: BTreeMap<String, f64>,
    /// Their sum per 1,000 transitions.
    #[serde(default)]
    pub control_plane_cpu_seconds_per_1000_transitions: f64,
    /// Peak resident set (VmHWM) of each control-plane component at the end of the run,
    /// MiB: what the control plane's memory settings (`--control-plane-gogc`) cost.
    #[serde(default)]
    pub control_plane_peak_rss_mib: BTreeMap<String, f64>,
    /// kwok peak RSS (VmHWM), MiB.
    pub kwok_peak_rss_mib: f64,
    /// kwok peak RSS per 1,000 nodes, MiB.
    pub kwok_peak_rss_mib_per_1000_nodes: f64,
    /// apiserver requests during the run (all clients).
    pub apiserver_requests: u64,
    /// The same by `verb resource`.
    pub apiserver_requests_by: BTreeMap<String, u64>,
    /// Requests API Priority and Fairness dispatched and rejected during the run, by
    /// `dispatched|rejected <flow schema> <priority level>` (empty with APF off).
    #[serde(default)]
    pub apiserver_flows: BTreeMap<String, u64>,
    /// Watches the apiserver closed during the run because their client fell behind, by
    /// resource (`apiserver::parse_unresponsive_watches`): each makes the client watch
    /// again and the apiserver encode what it replays for that client alone. `None` in
    /// results from before perf counted them.
    #[serde(default)]
    pub apiserver_unresponsive_watches: Option<BTreeMap<String, u64>>,
    /// kwok's average CPU (cores) while the nodes sat idle (the `hold` phase), when
    /// the scenario holds.
    pub kwok_idle_cpu_cores: Option<f64>,
    /// kwok's CPU and memory in each loadgen phase, in order.
    pub kwok_by_phase: Vec<PhaseUsage>,
    /// With several replicas, each one's CPU and peak RSS (then `kwokCpuSeconds` is
    /// their sum and `kwokPeakRssMib` the largest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kwok_replicas: Vec<ReplicaUsage>,
    /// Whether every node went Ready and every pod Running.
    pub complete: bool,
    /// The loadgen report.
    pub report: Report,
}

/// What kwok used during one loadgen phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseUsage {
    /// Phase name (`nodes`, `pods`, `churn`, `hold`, `cleanup`).
    pub phase: String,
    /// When it started, seconds after the run started.
    pub start_seconds: f64,
    /// How long it lasted, seconds.
    pub seconds: f64,
    /// kwok CPU seconds in it.
    pub cpu_seconds: f64,
    /// kwok's average CPU in it, cores.
    pub cpu_cores: f64,
    /// kwok's resident set at its end, MiB.
    pub rss_mib_at_end: f64,
}

/// The control-plane components whose CPU a run reports.
pub const CONTROL_PLANE: [&str; 4] = [
    "kube-apiserver",
    "etcd",
    "kube-controller-manager",
    "kube-scheduler",
];

/// The usage of each control-plane component still running, read once from `/proc`.
pub fn control_plane_usage(cluster: &Cluster) -> BTreeMap<String, process::Usage> {
    CONTROL_PLANE
        .iter()
        .filter_map(|c| Some(((*c).to_owned(), process::usage(cluster.pid(c)?)?)))
        .collect()
}

/// CPU seconds so far of each control-plane component still running.
pub fn control_plane_cpu(cluster: &Cluster) -> BTreeMap<String, f64> {
    figure(&control_plane_usage(cluster), |u| u.cpu_seconds)
}

/// One figure (`of`) of each component's usage.
pub fn figure(
    usage: &BTreeMap<String, process::Usage>,
    of: fn(&process::Usage) -> f64,
) -> BTreeMap<String, f64> {
    usage.iter().map(|(c, u)| (c.clone(), of(u))).collect()
}

/// A phase mark: the phase that starts, when, and kwok's usage then.
type Mark = (&'static str, std::time::Instant, process::Usage);

/// Samples kwok's usage (all replicas together) at every phase mark loadgen sends,
/// until the channel closes.
fn sample_phases(
    pids: Vec<u32>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<&'static str>,
) -> tokio::task::JoinHandle<Vec<Mark>> {
    tokio::spawn(async move {
        let mut marks = Vec::new();
        while let Some(phase) = rx.recv().await {
            if let Some(usage) = usage_of(&pids) {
                marks.push((phase, std::time::Instant::now(), usage));
            }
        }
        marks
    })
}

/// One [`PhaseUsage`] per phase between consecutive marks (the last mark, `done`, ends
/// the last phase); phases shorter than a second are left out as noise.
fn by_phase(started: std::time::Instant, marks: &[Mark]) -> Vec<PhaseUsage> {
    marks
        .windows(2)
        .filter_map(|w| {
            let ((phase, t0, u0), (_, t1, u1)) = (&w[0], &w[1]);
            let seconds = t1.duration_since(*t0).as_secs_f64();
            let cpu_seconds = u1.cpu_seconds - u0.cpu_seconds;
            (seconds >= 1.0).then(|| PhaseUsage {
                phase: (*phase).to_owned(),
                start_seconds: t0.duration_since(started).as_secs_f64(),
                seconds,
                cpu_seconds,
                cpu_cores: cpu_seconds / seconds,
                rss_mib_at_end: u1.rss_mib,
            })
        })
        .collect()
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
    let cluster = Cluster::start(kwokctl, &controller, &[stages.to_owned()])?;
    let client = cluster.client().await?;
    let components = kwok_components(controller.replicas);
    let pids = components
        .iter()
        .map(|c| cluster.pid(c).with_context(|| format!("{c} pid file")))
        .collect::<Result<Vec<u32>>>()?;
    let before: Vec<process::Usage> = pids
        .iter()
        .zip(&components)
        .map(|(pid, c)| process::usage(*pid).with_context(|| format!("{c} is not running")))
        .collect::<Result<_>>()?;
    let counters_before = apiserver::counters(&client).await.context("apiserver /metrics")?;
    let control_plane_before = control_plane_cpu(&cluster);
    eprintln!("perf: {}: running scenario {}", controller.side, scenario.name);
    let (phases, marks) = tokio::sync::mpsc::unbounded_channel();
    let marks = sample_phases(pids.clone(), marks);
    let options = RunOptions {
        // The cluster is deleted whole afterwards: deleting what was made is measured
        // only where the scenario asks for it, and never after an interrupt.
        keep: !crate::scenarios::measures_cleanup(&scenario.name),
        keep_when_interrupted: true,
        progress: std::io::stderr().is_terminal(),
        run_id: None,
        phases: Some(phases),
    };
    let started = std::time::Instant::now();
    let workload = cluster.loadgen_client(&controller.priority, &client).await?;
    let report = kwok_loadgen::run(workload, scenario.clone(), options, cancel).await?;
    let kwok_by_phase = by_phase(started, &marks.await.unwrap_or_default());
    let apiserver::Counters {
        requests,
        flows,
        unresponsive_watches,
    } = apiserver::Counters::delta(&counters_before, &apiserver::counters(&client).await?);
    let after: Vec<process::Usage> = pids
        .iter()
        .zip(&components)
        .map(|(pid, c)| process::usage(*pid).with_context(|| format!("{c} exited during the run")))
        .collect::<Result<_>>()?;
    let replicas: Vec<ReplicaUsage> = components
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(c, (b, a))| ReplicaUsage {
            component: c.clone(),
            cpu_seconds: a.cpu_seconds - b.cpu_seconds,
            peak_rss_mib: a.peak_rss_mib,
        })
        .collect();
    let control_plane_after = control_plane_usage(&cluster);
    let control_plane = cpu_delta(
        &control_plane_before,
        &figure(&control_plane_after, |u| u.cpu_seconds),
    );
    let control_plane_rss = figure(&control_plane_after, |u| u.peak_rss_mib);
    cluster.copy_kwok_log(log_to);
    drop(cluster);
    Ok(SideResult::new(
        controller,
        report,
        replicas.iter().map(|r| r.cpu_seconds).sum(),
        replicas.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max),
        requests,
        kwok_by_phase,
    )
    .with_control_plane(control_plane, control_plane_rss)
    .with_replicas(replicas)
    .with_counters(flows, unresponsive_watches))
}

/// `after - before` for each component running at both ends (a component that
/// restarted in between would count from zero, so it is left out).
pub fn cpu_delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(c, a)| {
            let b = before.get(c)?;
            (a >= b).then(|| (c.clone(), a - b))
        })
        .collect()
}

impl SideResult {
    /// Adds each replica's usage, when there are several.
    fn with_replicas(mut self, replicas: Vec<ReplicaUsage>) -> Self {
        if replicas.len() > 1 {
            self.kwok_replicas = replicas;
        }
        self
    }

    fn with_counters(
        mut self,
        flows: BTreeMap<String, u64>,
        unresponsive_watches: BTreeMap<String, u64>,
    ) -> Self {
        self.apiserver_flows = flows;
        self.apiserver_unresponsive_watches = Some(unresponsive_watches);
        self
    }

    /// Adds the control plane's CPU over the run and its peak memory.
    fn with_control_plane(mut self, cpu: BTreeMap<String, f64>, peak_rss_mib: BTreeMap<String, f64>) -> Self {
        let total: f64 = cpu.values().sum();
        self.control_plane_cpu_seconds_per_1000_transitions = per_1000(total, self.transitions);
        self.control_plane_cpu_seconds = cpu;
        self.control_plane_peak_rss_mib = peak_rss_mib;
        self
    }

    /// The control plane's peak resident sets added up (each component's own peak: no
    /// less than the most they held at once), MiB; `None` when none was read.
    pub fn control_plane_peak_rss_sum_mib(&self) -> Option<f64> {
        let rss = &self.control_plane_peak_rss_mib;
        (!rss.is_empty()).then(|| rss.values().sum())
    }

    /// Control-plane CPU milliseconds per pod created (`POST pods`, churn's recreations
    /// included); see [`per_pod_created`].
    pub fn control_plane_cpu_ms_per_pod_created(&self) -> Option<f64> {
        per_pod_created(&self.control_plane_cpu_seconds, &self.apiserver_requests_by)
    }

    /// CPU seconds per 1,000 transitions of one control-plane component.
    pub fn component_cpu_per_1000(&self, component: &str) -> Option<f64> {
        let cpu = self.control_plane_cpu_seconds.get(component)?;
        Some(per_1000(*cpu, self.transitions))
    }

    fn new(
        controller: Controller,
        report: Report,
        cpu: f64,
        rss: f64,
        requests: BTreeMap<String, u64>,
        kwok_by_phase: Vec<PhaseUsage>,
    ) -> Self {
        let phase = |name: &str| report.phase(name);
        let running = phase("pod created→running");
        let gone = phase("pod delete→gone").map_or(0, |p| p.count);
        let transitions =
            report.counts.nodes_ready + report.counts.pods_running + gone + report.leases.renewals;
        Self {
            nodes_ready_per_second: phase("node created→ready").map(|p| p.rate_per_second),
            pods_running_per_second: running.map(|p| p.rate_per_second),
            pod_startup_p50_ms: running.map(|p| p.latency_ms.p50),
            pod_startup_p99_ms: running.map(|p| p.latency_ms.p99),
            pod_scheduled_to_running_p99_ms: phase("pod scheduled→running").map(|p| p.latency_ms.p99),
            lease_lateness_p99_ms: report.leases.lateness_ms.map(|p| p.p99),
            expired_leases: report.leases.expired,
            expired_leases_while_idle: report.leases.while_holding.as_ref().map(|h| h.expired),
            transitions,
            kwok_cpu_seconds: cpu,
            kwok_cpu_seconds_per_1000_transitions: per_1000(cpu, transitions),
            control_plane_cpu_seconds: BTreeMap::new(),
            control_plane_peak_rss_mib: BTreeMap::new(),
            control_plane_cpu_seconds_per_1000_transitions: 0.0,
            kwok_peak_rss_mib: rss,
            kwok_peak_rss_mib_per_1000_nodes: per_1000(rss, report.counts.nodes_created),
            apiserver_requests: requests.values().sum(),
            apiserver_requests_by: requests,
            apiserver_flows: BTreeMap::new(),
            apiserver_unresponsive_watches: None,
            kwok_idle_cpu_cores: kwok_by_phase
                .iter()
                .find(|p| p.phase == "hold")
                .map(|p| p.cpu_cores),
            kwok_by_phase,
            kwok_replicas: Vec::new(),
            complete: report.complete,
            controller,
            report,
        }
    }
}

/// The control plane's CPU (all components, seconds) in milliseconds per pod created.
/// A pod's life (its create, scheduling, binding, status, deletion and events) costs
/// the control plane far more than a Lease renewal, yet each counts as one transition:
/// where the two sides' runs mix them differently (`churn` runs as many pods as the
/// machine allows for a fixed time, and the slower side renews more Leases meanwhile),
/// this is the figure that compares like with like. `None` without pods or CPU figures.
fn per_pod_created(cpu: &BTreeMap<String, f64>, requests: &BTreeMap<String, u64>) -> Option<f64> {
    let pods = *requests.get("POST pods")?;
    let cpu: f64 = cpu.values().sum();
    (pods > 0 && cpu > 0.0).then(|| cpu * 1000.0 / pods as f64)
}

/// `v` per 1,000 of `n` (0 when `n` is 0).
fn per_1000(v: f64, n: u64) -> f64 {
    if n == 0 { 0.0 } else { v * 1000.0 / n as f64 }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn usage(cpu_seconds: f64, rss_mib: f64) -> process::Usage {
        process::Usage {
            cpu_seconds,
            peak_rss_mib: rss_mib,
            rss_mib,
        }
    }

    #[test]
    fn by_phase_should_give_each_phase_its_cpu_share_and_skip_blips() {
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let marks = [
            ("nodes", at(1.0), usage(10.0, 50.0)),
            ("pods", at(21.0), usage(20.0, 80.0)),
            ("churn", at(121.0), usage(80.0, 150.0)),
            ("hold", at(121.5), usage(80.1, 150.0)),
            ("cleanup", at(721.5), usage(110.1, 140.0)),
            ("done", at(741.5), usage(112.1, 60.0)),
        ];
        let phases = by_phase(t0, &marks);
        let names: Vec<&str> = phases.iter().map(|p| p.phase.as_str()).collect();
        assert_eq!(names, ["nodes", "pods", "hold", "cleanup"], "churn lasted 0.5 s");
        let hold = &phases[2];
        assert!((hold.seconds - 600.0).abs() < 1e-6);
        assert!((hold.cpu_cores - 0.05).abs() < 1e-6, "{hold:?}");
        assert!((hold.start_seconds - 121.5).abs() < 1e-6);
        assert_eq!(hold.rss_mib_at_end, 140.0);
        assert_eq!(phases[3].rss_mib_at_end, 60.0);
    }

    #[test]
    fn control_plane_cpu_should_count_only_components_running_at_both_ends() {
        let before = [
            ("etcd", 10.0),
            ("kube-apiserver", 100.0),
            ("kube-scheduler", 50.0),
        ];
        let after = [("etcd", 14.0), ("kube-apiserver", 130.0), ("kube-scheduler", 2.0)];
        let map = |v: &[(&str, f64)]| v.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
        let d = cpu_delta(&map(&before), &map(&after));
        // The scheduler restarted (its counter went back): no figure rather than a wrong one.
        assert_eq!(d, map(&[("etcd", 4.0), ("kube-apiserver", 30.0)]));
        assert_eq!(per_1000(34.0, 17_000), 2.0);
        assert_eq!(per_1000(34.0, 0), 0.0);
    }

    #[test]
    fn cpu_per_pod_created_should_count_every_component_over_the_pod_creates() {
        let cpu = BTreeMap::from([("etcd".to_owned(), 100.0), ("kube-apiserver".to_owned(), 400.0)]);
        let requests = BTreeMap::from([
            ("POST pods".to_owned(), 20_000),
            ("PUT leases".to_owned(), 90_000),
        ]);
        assert_eq!(per_pod_created(&cpu, &requests), Some(25.0));
        assert_eq!(per_pod_created(&cpu, &BTreeMap::new()), None, "no pods created");
        assert_eq!(
            per_pod_created(&BTreeMap::new(), &requests),
            None,
            "no CPU figures"
        );
    }
}
