//! The `capacity` scenario (issue 27): the biggest cluster one machine simulates.
//!
//! One cluster per side. Nodes are added in steps; each step also creates pods and
//! churns them at a fixed rate for a while, and everything made stays for the next
//! step. A step is held when every node went Ready and every pod Running, no node
//! Lease anywhere in the cluster expired during it, and pod startup p99 (created →
//! Running, churned pods included) stayed within the SIG-scalability SLO of 5 s. The
//! run stops at the first step not held; the figure is the node count of the last step
//! held.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api,
    runtime::{WatchStreamExt, watcher},
};
use kwok_loadgen::{
    RunOptions, Scenario,
    measure::{Phase, Recorder},
    scenario::PodKind,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::{
    apiserver,
    cluster::Cluster,
    process,
    side::{CONTROL_PLANE, Controller, control_plane_cpu, control_plane_usage, cpu_delta, figure},
};

/// The scenario's name on the command line.
pub const NAME: &str = "capacity";

/// Pod startup p99 a held step stays within (the SIG-scalability SLO).
pub const STARTUP_P99_SLO: Duration = Duration::from_secs(5);

/// The shape of the steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Options {
    /// Nodes added per step.
    pub step_nodes: u32,
    /// Pods added per step (they stay, like the nodes).
    pub step_pods: u32,
    /// Pods deleted and recreated per second in each step, after its pods run.
    pub churn_rate: u32,
    /// How long each step churns.
    #[serde(with = "crate::metrics::secs")]
    pub churn: Duration,
    /// Steps at most.
    pub max_steps: u32,
    /// Creates per second while a step makes its nodes and pods.
    pub create_rate: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            step_nodes: 1_000,
            step_pods: 2_000,
            churn_rate: 20,
            churn: Duration::from_secs(60),
            max_steps: 40,
            create_rate: 200,
        }
    }
}

/// One step's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Nodes in the cluster at the end of the step.
    pub nodes: u64,
    /// Pods in the cluster at the end of the step.
    pub pods: u64,
    /// Whether every node went Ready and every pod Running within the timeout.
    pub complete: bool,
    /// Pod created → Running p99 in this step, ms.
    pub pod_startup_p99_ms: Option<f64>,
    /// Of which: created → scheduled (the scheduler's share), p99, ms.
    #[serde(default)]
    pub pod_scheduled_p99_ms: Option<f64>,
    /// And scheduled → Running (kwok's share), p99, ms.
    #[serde(default)]
    pub pod_scheduled_to_running_p99_ms: Option<f64>,
    /// Node leases (of any step) that expired during this step.
    pub expired_leases: u64,
    /// Seconds the step took.
    pub seconds: f64,
    /// kwok CPU seconds in the step.
    pub kwok_cpu_seconds: f64,
    /// kwok resident set at the end of the step, MiB.
    pub kwok_rss_mib: f64,
    /// Control-plane CPU seconds in the step, all components.
    pub control_plane_cpu_seconds: f64,
    /// The same by component (kube-apiserver, etcd, …).
    #[serde(default)]
    pub control_plane_cpu_by: BTreeMap<String, f64>,
    /// The control plane's resident sets at the end of the step, added up, MiB.
    #[serde(default)]
    pub control_plane_rss_mib: f64,
    /// apiserver requests in the step (all clients) by `verb resource[/subresource]`.
    #[serde(default)]
    pub apiserver_requests_by: apiserver::Requests,
    /// Whether the step was held (see the module docs).
    pub held: bool,
    /// Why not, when it was not.
    pub missed: Option<String>,
}

/// One side's run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapacityResult {
    /// The controller.
    pub controller: Controller,
    /// The step shape.
    pub options: Options,
    /// Nodes of the last step held (0 when the first was not).
    pub nodes_held: u64,
    /// Every step run, in order.
    pub steps: Vec<Step>,
}

/// Whether a step was held, and why not.
fn judge(complete: bool, p99_ms: Option<f64>, expired: u64) -> Option<String> {
    let slo_ms = STARTUP_P99_SLO.as_secs_f64() * 1000.0;
    if !complete {
        Some("not every node Ready and pod Running in time".into())
    } else if expired > 0 {
        Some(format!("{expired} node leases expired"))
    } else {
        let over = p99_ms.filter(|p| *p > slo_ms);
        over.map(|p99| format!("pod startup p99 {:.1} s > {:.0} s", p99 / 1000.0, slo_ms / 1000.0))
    }
}

/// Watches every node Lease in the cluster (every step's) into a [`Recorder`], whose
/// report counts the renewals that came later than the lease's duration.
fn watch_leases(client: kube::Client, leases: Arc<Mutex<Recorder>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let api = Api::<Lease>::namespaced(client, "kube-node-lease");
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            let mut r = leases.lock().expect("lease recorder lock");
            match ev {
                Ok(watcher::Event::Apply(l) | watcher::Event::InitApply(l)) => r.lease_seen(&l),
                Ok(watcher::Event::Delete(l)) => {
                    r.lease_deleted(l.metadata.name.as_deref().unwrap_or_default())
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "lease watch failed; retrying"),
            }
        }
    })
}

/// The loadgen scenario of step `k` (from 0).
fn step_scenario(o: &Options, k: u32) -> Scenario {
    Scenario {
        name: format!("{NAME}-{k}"),
        nodes: o.step_nodes,
        pods: o.step_pods,
        pod_kind: PodKind::Bare,
        namespaces: 2,
        rate: o.create_rate,
        concurrency: 64,
        churn_rate: o.churn_rate,
        churn_duration: o.churn,
        timeout: Duration::from_secs(600),
        ..Scenario::default()
    }
}

/// Runs the steps on one fresh cluster with `controller`.
pub async fn run_side(
    kwokctl: &std::path::Path,
    controller: Controller,
    stages: &std::path::Path,
    o: &Options,
    log_to: &std::path::Path,
    cancel: CancellationToken,
) -> Result<CapacityResult> {
    let cluster = Cluster::start(kwokctl, &controller, &[stages.to_owned()])?;
    let client = cluster.client().await?;
    // With APF on, loadgen runs as a workload controller would (`workload-low`), as in
    // the other scenarios; the admin client only reads the metrics.
    let workload = cluster.loadgen_client(&controller.priority, &client).await?;
    let pid = cluster
        .pid("kwok-controller")
        .context("kwok-controller pid file")?;
    let leases = Arc::new(Mutex::new(Recorder::new()));
    let watch = watch_leases(client.clone(), leases.clone());
    let mut result = CapacityResult {
        controller: controller.clone(),
        options: o.clone(),
        nodes_held: 0,
        steps: Vec::new(),
    };
    let (mut nodes, mut pods) = (0u64, 0u64);
    for k in 0..o.max_steps {
        if cancel.is_cancelled() {
            break;
        }
        let expired_before = leases
            .lock()
            .expect("lease recorder lock")
            .lease_report(jiff::Timestamp::now())
            .expired;
        let kwok_before = process::usage(pid).context("kwok-controller exited")?;
        let cp_before = control_plane_cpu(&cluster);
        let requests_before = apiserver::requests(&client).await.context("apiserver /metrics")?;
        let started = Instant::now();
        let options = RunOptions {
            // What a step made stays for the next; the cluster goes whole at the end.
            keep: true,
            keep_when_interrupted: true,
            progress: false,
            run_id: Some(format!("cap{k}")),
            phases: None,
        };
        let report =
            kwok_loadgen::run(workload.clone(), step_scenario(o, k), options, cancel.clone()).await?;
        let expired = leases
            .lock()
            .expect("lease recorder lock")
            .lease_report(jiff::Timestamp::now())
            .expired
            .saturating_sub(expired_before);
        let kwok_after = process::usage(pid).context("kwok-controller exited during a step")?;
        let cp_after = control_plane_usage(&cluster);
        let cp_by = cpu_delta(&cp_before, &figure(&cp_after, |u| u.cpu_seconds));
        let cp_rss: f64 = cp_after.values().map(|u| u.rss_mib).sum();
        let requests = apiserver::delta(
            &requests_before,
            &apiserver::requests(&client).await.context("apiserver /metrics")?,
        );
        nodes += report.counts.nodes_created;
        pods += u64::from(o.step_pods);
        let p99_of = |phase: Phase| report.phase(phase.name()).map(|p| p.latency_ms.p99);
        let p99 = p99_of(Phase::PodRunning);
        let missed = judge(report.complete, p99, expired);
        let step = Step {
            nodes,
            pods,
            complete: report.complete,
            pod_startup_p99_ms: p99,
            pod_scheduled_p99_ms: p99_of(Phase::PodScheduled),
            pod_scheduled_to_running_p99_ms: p99_of(Phase::PodScheduledToRunning),
            expired_leases: expired,
            seconds: started.elapsed().as_secs_f64(),
            kwok_cpu_seconds: kwok_after.cpu_seconds - kwok_before.cpu_seconds,
            kwok_rss_mib: kwok_after.rss_mib,
            control_plane_cpu_seconds: cp_by.values().sum(),
            control_plane_cpu_by: cp_by,
            control_plane_rss_mib: cp_rss,
            apiserver_requests_by: requests,
            held: missed.is_none(),
            missed: missed.clone(),
        };
        eprintln!(
            "perf: {}: step {k}: {nodes} nodes, {pods} pods, p99 {:?} ms, {expired} expired, {:.0} s: {}",
            controller.side,
            step.pod_startup_p99_ms,
            step.seconds,
            missed.as_deref().unwrap_or("held")
        );
        result.steps.push(step);
        match missed {
            None => result.nodes_held = nodes,
            Some(_) => break,
        }
    }
    watch.abort();
    cluster.copy_kwok_log(log_to);
    Ok(result)
}

/// The Markdown table of both sides' steps and the headline ratio.
pub fn markdown(ours: Option<&CapacityResult>, upstream: Option<&CapacityResult>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    // A run that held its last step stopped at --max-steps: the figure is a floor.
    let held = |r: Option<&CapacityResult>| {
        r.map_or("-".to_owned(), |r| {
            let floor = r.steps.last().is_some_and(|s| s.held);
            format!("{}{}", if floor { "≥ " } else { "" }, r.nodes_held)
        })
    };
    let ratio = match (ours, upstream) {
        (Some(a), Some(b)) if b.nodes_held > 0 => format!("{:.2}", a.nodes_held as f64 / b.nodes_held as f64),
        _ => "-".into(),
    };
    let _ = writeln!(
        out,
        "| figure | ours | upstream | ours/upstream |\n|---|---:|---:|---:|\n| nodes held | {} | {} | {ratio} |\n",
        held(ours),
        held(upstream)
    );
    for r in [ours, upstream].into_iter().flatten() {
        let _ = writeln!(
            out,
            "{}:\n\n| nodes | pods | pod startup p99 (ms) | created→scheduled p99 | scheduled→running p99 | expired leases | step s | kwok CPU s | kwok RSS MiB | control plane CPU s | control plane RSS MiB | held |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
            r.controller.side
        );
        for s in &r.steps {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {:.0} | {:.1} | {:.0} | {:.1} | {} | {} |",
                s.nodes,
                s.pods,
                ms(s.pod_startup_p99_ms),
                ms(s.pod_scheduled_p99_ms),
                ms(s.pod_scheduled_to_running_p99_ms),
                s.expired_leases,
                s.seconds,
                s.kwok_cpu_seconds,
                s.kwok_rss_mib,
                s.control_plane_cpu_seconds,
                // Steps recorded before the column existed read 0: unknown.
                if s.control_plane_rss_mib > 0.0 {
                    format!("{:.0}", s.control_plane_rss_mib)
                } else {
                    "-".into()
                },
                s.missed.as_deref().unwrap_or("yes")
            );
        }
        out.push('\n');
    }
    if let (Some(a), Some(b)) = (ours, upstream) {
        out.push_str(&side_by_side(a, b));
    }
    out
}

fn ms(p99: Option<f64>) -> String {
    p99.map_or("-".into(), |p| format!("{p:.0}"))
}

/// Where the control plane's work went, per step both sides ran: CPU seconds by
/// component and apiserver requests, then the requests of the last such step by kind.
fn side_by_side(ours: &CapacityResult, upstream: &CapacityResult) -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "Control plane per step, ours / upstream (CPU s; requests are every client's):\n\n| nodes |",
    );
    for c in CONTROL_PLANE {
        let _ = write!(out, " {c} |");
    }
    out.push_str(" apiserver requests |\n|---:|");
    out.push_str(&"---:|".repeat(CONTROL_PLANE.len() + 1));
    out.push('\n');
    let pairs: Vec<_> = ours.steps.iter().zip(&upstream.steps).collect();
    for (a, b) in &pairs {
        let _ = write!(out, "| {} |", a.nodes);
        for c in CONTROL_PLANE {
            let cpu = |s: &Step| s.control_plane_cpu_by.get(c).copied().unwrap_or(0.0);
            let _ = write!(out, " {:.1} / {:.1} |", cpu(a), cpu(b));
        }
        let total = |s: &Step| s.apiserver_requests_by.values().sum::<u64>();
        let _ = writeln!(out, " {} / {} |", total(a), total(b));
    }
    if let Some((a, b)) = pairs.last() {
        let mut kinds: Vec<(&String, u64, u64)> = a
            .apiserver_requests_by
            .keys()
            .chain(b.apiserver_requests_by.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|k| {
                let n = |s: &Step| s.apiserver_requests_by.get(k).copied().unwrap_or(0);
                (k, n(a), n(b))
            })
            .collect();
        kinds.sort_by_key(|(_, x, y)| std::cmp::Reverse(x + y));
        let _ = writeln!(
            out,
            "\nRequests in the step to {} nodes (the 15 most common kinds):\n\n| verb resource | ours | upstream |\n|---|---:|---:|",
            a.nodes
        );
        for (k, x, y) in kinds.into_iter().take(15) {
            let _ = writeln!(out, "| {k} | {x} | {y} |");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_should_be_held_only_within_every_bound() {
        assert_eq!(judge(true, Some(4_999.0), 0), None);
        assert_eq!(
            judge(true, None, 0),
            None,
            "a step without pods has no startup figure"
        );
        assert!(judge(false, Some(100.0), 0).unwrap().contains("Running"));
        assert_eq!(judge(true, Some(100.0), 3).unwrap(), "3 node leases expired");
        assert_eq!(
            judge(true, Some(5_001.0), 0).unwrap(),
            "pod startup p99 5.0 s > 5 s"
        );
    }

    fn step(nodes: u64, apiserver_cpu: f64, patches: u64) -> Step {
        Step {
            nodes,
            pods: 0,
            complete: true,
            pod_startup_p99_ms: None,
            pod_scheduled_p99_ms: None,
            pod_scheduled_to_running_p99_ms: None,
            expired_leases: 0,
            seconds: 1.0,
            kwok_cpu_seconds: 0.0,
            kwok_rss_mib: 0.0,
            control_plane_cpu_seconds: apiserver_cpu,
            control_plane_cpu_by: [("kube-apiserver".to_owned(), apiserver_cpu)].into(),
            control_plane_rss_mib: 0.0,
            apiserver_requests_by: [("PATCH nodes/status".to_owned(), patches)].into(),
            held: true,
            missed: None,
        }
    }

    #[test]
    fn the_side_by_side_should_pair_steps_and_list_the_last_common_steps_requests() {
        let side = |name: &str, steps| CapacityResult {
            controller: Controller {
                side: name.into(),
                binary: "kwok".into(),
                version: String::new(),
                replicas: 1,
                priority: Default::default(),
            },
            options: Options::default(),
            nodes_held: 0,
            steps,
        };
        let ours = side("ours", vec![step(1000, 10.0, 5), step(2000, 20.0, 7)]);
        let upstream = side("upstream", vec![step(1000, 11.0, 6)]);
        let md = markdown(Some(&ours), Some(&upstream));
        assert!(md.contains("| 1000 | 10.0 / 11.0 | 0.0 / 0.0 |"), "{md}");
        assert!(
            !md.contains("| 2000 | 20.0"),
            "a step only one side ran is not paired: {md}"
        );
        assert!(
            md.contains("to 1000 nodes") && md.contains("| PATCH nodes/status | 5 | 6 |"),
            "{md}"
        );
    }

    #[test]
    fn every_step_should_be_a_valid_loadgen_scenario_with_its_own_name() {
        let o = Options::default();
        let (a, b) = (step_scenario(&o, 0), step_scenario(&o, 1));
        a.validate().unwrap();
        assert_ne!(a.name, b.name);
        assert_eq!((a.nodes, a.pods, a.churn_rate), (1_000, 2_000, 20));
    }
}
