//! One run of a scenario: watch, create nodes, create pods, churn, hold, report, clean up.

use std::{
    sync::{Arc, LazyLock, Mutex},
    time::{Duration, Instant},
};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use k8s_openapi::api::{
    apps::v1::Deployment,
    batch::v1::Job,
    core::v1::{Namespace, Node, Pod, ServiceAccount},
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, PostParams},
    runtime::wait::await_condition,
};
use tokio_util::sync::CancellationToken;

use crate::{
    driver::{Driver, Outcome},
    measure::{CONTROL_PLANE_TAINTS, Counts, Recorder},
    objects::{self, Naming},
    report::{CountReport, Report},
    scenario::{PodKind, PodsUntil, Scenario},
};

static POST: LazyLock<PostParams> = LazyLock::new(PostParams::default);
static POST_DRY_RUN: LazyLock<PostParams> = LazyLock::new(|| PostParams {
    dry_run: true,
    ..Default::default()
});
static DELETE: LazyLock<DeleteParams> = LazyLock::new(DeleteParams::default);
/// Pods that only wait for the scheduler ([`PodsUntil::Scheduled`]) have no kubelet to
/// finish a graceful deletion: they go at once.
static DELETE_NOW: LazyLock<DeleteParams> = LazyLock::new(|| DeleteParams {
    grace_period_seconds: Some(0),
    ..Default::default()
});

/// How often waits look at the recorder's counts (in memory, not the apiserver).
const WAIT_TICK: Duration = Duration::from_millis(50);

/// How a run is carried out, besides its scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Leave everything in place at the end.
    pub keep: bool,
    /// Leave everything in place when interrupted: the caller throws the whole
    /// cluster away (perf), so deleting 100,000 pods one by one would be wasted time.
    pub keep_when_interrupted: bool,
    /// Draw progress bars (on stderr).
    pub progress: bool,
    /// Run id (labels and names); default: derived from the clock.
    pub run_id: Option<String>,
    /// Told the name of each phase as it starts (`nodes`, `pods`, `churn`, `hold`,
    /// `cleanup`) and `done` at the end, so a caller can measure per phase (perf
    /// samples kwok's CPU and memory at each mark).
    pub phases: Option<tokio::sync::mpsc::UnboundedSender<&'static str>>,
}

/// Why a run stopped before finishing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stop {
    Interrupted,
    Timeout(String),
    /// A request the run cannot do without was refused.
    Failed(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Interrupted => f.write_str("interrupted"),
            Stop::Timeout(what) => write!(f, "timed out waiting for {what}"),
            Stop::Failed(what) => write!(f, "failed to create {what}"),
        }
    }
}

struct Run {
    client: Client,
    s: Scenario,
    naming: Naming,
    rec: Arc<Mutex<Recorder>>,
    driver: Driver,
    bars: Bars,
    pods_created: u64,
    pods_churned: u64,
    nodes_made: u64,
    node_create: Option<f64>,
    pod_create: Option<f64>,
    phases: Option<tokio::sync::mpsc::UnboundedSender<&'static str>>,
}

/// Runs `scenario` against the cluster of `client`. Cancelling `cancel` (Ctrl-C) stops
/// the run; the partial report comes back and, unless `keep`, what was made is deleted.
pub async fn run(
    client: Client,
    scenario: Scenario,
    options: RunOptions,
    cancel: CancellationToken,
) -> kube::Result<Report> {
    let started = Instant::now();
    let run_id = options.run_id.clone().unwrap_or_else(default_run_id);
    let naming = Naming { run: run_id.clone() };
    let rec = Arc::new(Mutex::new(Recorder::new()));
    let driver = Driver::new(scenario.rate, scenario.concurrency, rec.clone(), cancel.clone());
    let bars = Bars::new(&scenario, options.progress);
    let mut watches = crate::watch::start(&client, &naming, &rec).await;
    let mut r = Run {
        client,
        s: scenario,
        naming,
        rec,
        driver,
        bars,
        pods_created: 0,
        pods_churned: 0,
        nodes_made: 0,
        node_create: None,
        pod_create: None,
        phases: options.phases.clone(),
    };
    let outcome = r.load().await;
    // Read before cleanup deletes the claims with their pods.
    let devices = match (&r.s.device_class, &outcome) {
        (Some(_), Ok(())) => match crate::devices::check(&r.client, &r.naming).await {
            Ok(report) => Some(report),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the ResourceClaims");
                None
            }
        },
        _ => None,
    };
    let leases = r
        .rec
        .lock()
        .expect("recorder lock")
        .lease_report(jiff::Timestamp::now());
    let interrupted = outcome == Err(Stop::Interrupted);
    let keep = options.keep || (interrupted && options.keep_when_interrupted);
    if !keep {
        r.mark("cleanup");
        r.cleanup().await;
    }
    r.mark("done");
    r.bars.finish();
    watches.abort_all();
    let rec = r.rec.lock().expect("recorder lock");
    let c = rec.counts();
    Ok(Report {
        scenario: r.s.clone(),
        run: run_id,
        complete: outcome.is_ok(),
        stopped_because: outcome.err().map(|s| s.to_string()),
        duration_seconds: started.elapsed().as_secs_f64(),
        node_create_rate_per_second: r.node_create,
        pod_create_rate_per_second: r.pod_create,
        counts: CountReport {
            nodes_created: c.nodes_created,
            nodes_ready: c.nodes_ready,
            pods_created: r.pods_created.max(c.pods_seen),
            pods_running: c.pods_running,
            pods_churned: r.pods_churned,
            nodes_deleted: c.nodes_gone,
            pods_deleted: c.pods_gone,
        },
        phases: rec.phase_reports(),
        leases,
        errors: rec.errors(),
        devices,
    })
}

fn default_run_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    format!("{:x}", secs % 0xff_ffff)
}

impl Run {
    /// Tells the caller that phase `name` starts (see [`RunOptions::phases`]).
    fn mark(&self, name: &'static str) {
        if let Some(tx) = &self.phases {
            // A caller that stopped listening does not stop the run.
            let _ = tx.send(name);
        }
    }

    fn counts(&self) -> Counts {
        self.rec.lock().expect("recorder lock").counts()
    }

    /// Everything up to the report: namespaces, nodes, pods, churn, hold.
    async fn load(&mut self) -> Result<(), Stop> {
        self.create_namespaces().await?;
        self.mark("nodes");
        self.create_nodes().await?;
        if self.s.dry_run {
            return self.create_pods().await;
        }
        let made = self.nodes_made;
        self.wait("nodes Ready", |c| c.nodes_ready >= made).await?;
        // Pods bound by loadgen skip the scheduler, and taints with it. A scenario that
        // taints its nodes under the control plane's prefix itself (its pods tolerate
        // that) leaves nothing to tell apart: Ready is all it waits for.
        let own_taints = (self.s.node_taints.iter()).any(|t| t.key.starts_with(CONTROL_PLANE_TAINTS));
        if self.s.pods > 0 && !self.s.bind_pods && !own_taints {
            self.wait("nodes schedulable", |c| c.nodes_schedulable >= made)
                .await?;
        }
        self.mark("pods");
        self.create_pods().await?;
        let target = self.expected_pods();
        match self.s.pods_until {
            PodsUntil::Running => self.wait("pods Running", |c| c.pods_running >= target).await?,
            PodsUntil::Scheduled => {
                self.wait("pods scheduled", |c| c.pods_scheduled >= target)
                    .await?
            }
        }
        self.mark("churn");
        self.churn().await?;
        self.mark("hold");
        if !self.s.hold.is_zero() {
            self.rec
                .lock()
                .expect("recorder lock")
                .hold_started(jiff::Timestamp::now());
        }
        self.hold().await
    }

    /// Create parameters: dry runs when the scenario asks for them.
    fn post(&self) -> &'static PostParams {
        if self.s.dry_run { &POST_DRY_RUN } else { &POST }
    }

    fn stopped(&self) -> Result<(), Stop> {
        if self.driver.cancel().is_cancelled() {
            Err(Stop::Interrupted)
        } else {
            Ok(())
        }
    }

    async fn create_namespaces(&mut self) -> Result<(), Stop> {
        if self.s.pods == 0 {
            return Ok(());
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        let (d, n) = (&self.driver, &self.naming);
        d.each(0..self.s.namespaces, |i| {
            let api = api.clone();
            async move {
                let ns = objects::namespace(n, i);
                d.call("create namespace", || api.create(&POST, &ns)).await
            }
        })
        .await;
        self.stopped()?;
        if let Some(class) = &self.s.device_class {
            for i in 0..self.s.namespaces {
                let namespace = self.naming.namespace(i);
                crate::devices::create_template(&self.client, &self.naming, &namespace, class)
                    .await
                    .map_err(|e| Stop::Failed(format!("ResourceClaimTemplate in {namespace}: {e}")))?;
            }
        }
        // Pods are refused (403) until kube-controller-manager has made the namespace's
        // `default` ServiceAccount; wait for it through a watch.
        for i in 0..self.s.namespaces {
            let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &self.naming.namespace(i));
            let made = await_condition(api, "default", |sa: Option<&ServiceAccount>| sa.is_some());
            tokio::select! {
                r = tokio::time::timeout(self.s.timeout, made) => {
                    if !matches!(r, Ok(Ok(_))) {
                        return Err(Stop::Timeout(format!("ServiceAccount default in {}", self.naming.namespace(i))));
                    }
                }
                () = self.driver.cancel().cancelled() => return Err(Stop::Interrupted),
            }
        }
        Ok(())
    }

    async fn create_nodes(&mut self) -> Result<(), Stop> {
        let api: Api<Node> = Api::all(self.client.clone());
        let (d, n, s, rec, post) = (&self.driver, &self.naming, &self.s, &self.rec, self.post());
        let start = Instant::now();
        let ok = d
            .each(0..s.nodes, |i| {
                let api = api.clone();
                async move {
                    let node = objects::node(s, n, i);
                    rec.lock()
                        .expect("recorder lock")
                        .node_create_sent(&n.node(i), Instant::now());
                    let out = d.call("create node", || api.create(post, &node)).await;
                    if out == Outcome::Done {
                        rec.lock().expect("recorder lock").node_created(&n.node(i));
                    }
                    out
                }
            })
            .await;
        self.node_create = Some(ok as f64 / start.elapsed().as_secs_f64().max(1e-3));
        self.nodes_made = ok;
        self.stopped()
    }

    fn expected_pods(&self) -> u64 {
        match self.s.pod_kind {
            PodKind::Bare => self.pods_created - self.pods_churned,
            PodKind::Deployment | PodKind::Job => u64::from(self.s.pods),
        }
    }

    async fn create_pods(&mut self) -> Result<(), Stop> {
        let start = Instant::now();
        let ok = match self.s.pod_kind {
            PodKind::Bare => self.create_bare_pods(0..self.s.pods, 0).await,
            PodKind::Deployment => self.create_workloads::<Deployment>(objects::deployment).await,
            PodKind::Job => self.create_workloads::<Job>(objects::job).await,
        };
        self.pod_create = Some(ok as f64 / start.elapsed().as_secs_f64().max(1e-3));
        self.stopped()
    }

    async fn create_bare_pods(&mut self, indexes: std::ops::Range<u32>, generation: u32) -> u64 {
        let (d, n, s, rec, post) = (&self.driver, &self.naming, &self.s, &self.rec, self.post());
        let client = &self.client;
        let ok = d
            .each(indexes, |i| async move {
                let pod = objects::pod(s, n, i, generation);
                let ns = n.namespace(i % s.namespaces);
                let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                let key = format!("{ns}/{}", n.pod(i, generation));
                rec.lock()
                    .expect("recorder lock")
                    .pod_create_sent(&key, Instant::now());
                d.call("create pod", || api.create(post, &pod)).await
            })
            .await;
        self.pods_created += ok;
        ok
    }

    async fn create_workloads<K>(&mut self, build: fn(&Scenario, &Naming, u32, u32) -> K) -> u64
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let (d, n, s, post) = (&self.driver, &self.naming, &self.s, self.post());
        let client = &self.client;
        let sizes = objects::workload_sizes(s.pods, s.pods_per_workload);
        let kind = K::kind(&());
        let what = format!("create {}", kind.to_lowercase());
        let what = what.as_str();
        d.each(sizes.iter().copied().enumerate(), |(i, size)| async move {
            let obj = build(s, n, i as u32, size);
            let api: Api<K> = Api::namespaced(client.clone(), &n.namespace(i as u32 % s.namespaces));
            d.call(what, || api.create(post, &obj)).await
        })
        .await
    }

    /// Deletes running pods and (bare pods) creates replacements, `churn_rate` per second.
    async fn churn(&mut self) -> Result<(), Stop> {
        if self.s.churn_rate == 0 {
            return Ok(());
        }
        let end = Instant::now() + self.s.churn_duration;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut next_index = self.s.pods;
        while Instant::now() < end {
            tick.tick().await;
            self.stopped()?;
            let victims: Vec<String> = {
                let rec = self.rec.lock().expect("recorder lock");
                rec.running_pods()
                    .into_iter()
                    .take(self.s.churn_rate as usize)
                    .collect()
            };
            let deleted = self.delete_pods(victims).await;
            self.pods_churned += deleted;
            if self.s.pod_kind == PodKind::Bare {
                let n = deleted as u32;
                self.create_bare_pods(next_index..next_index + n, 1).await;
                next_index += n;
            }
        }
        self.stopped()?;
        let (target, churned) = (self.expected_pods(), self.pods_churned);
        // Every churned pod gone, and as many running as there should be: running minus
        // gone alone lets a churned pod still terminating stand in for a replacement
        // that is not running yet.
        self.wait("pods Running after churn", |c| {
            c.pods_gone >= churned && c.pods_running.saturating_sub(c.pods_gone) >= target
        })
        .await
    }

    async fn delete_pods(&self, keys: Vec<String>) -> u64 {
        let (d, rec, client) = (&self.driver, &self.rec, &self.client);
        let params: &DeleteParams = match self.s.pods_until {
            PodsUntil::Running => &DELETE,
            PodsUntil::Scheduled => &DELETE_NOW,
        };
        d.each(keys, |key| async move {
            let (ns, name) = key.split_once('/').expect("pod keys are namespace/name");
            let api: Api<Pod> = Api::namespaced(client.clone(), ns);
            rec.lock()
                .expect("recorder lock")
                .pod_delete_sent(&key, Instant::now());
            d.call("delete pod", || api.delete(name, params)).await
        })
        .await
    }

    async fn hold(&mut self) -> Result<(), Stop> {
        if self.s.hold.is_zero() {
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(self.s.hold) => Ok(()),
            () = self.driver.cancel().cancelled() => Err(Stop::Interrupted),
        }
    }

    /// Waits until `done` holds for the recorder's counts, updating progress bars.
    async fn wait(&self, what: &str, done: impl Fn(&Counts) -> bool) -> Result<(), Stop> {
        let deadline = Instant::now() + self.s.timeout;
        loop {
            let c = self.counts();
            self.bars.update(&c);
            if done(&c) {
                return Ok(());
            }
            self.stopped()?;
            if Instant::now() > deadline {
                return Err(Stop::Timeout(what.to_owned()));
            }
            tokio::time::sleep(WAIT_TICK).await;
        }
    }

    /// Deletes what the run made: pods one by one (measured), namespaces, nodes one by
    /// one (measured), then a label sweep for anything a cancelled request left behind.
    async fn cleanup(&mut self) {
        // A fresh driver: Ctrl-C must not stop the cleanup it asked for.
        self.driver = Driver::new(
            self.s.rate,
            self.s.concurrency,
            self.rec.clone(),
            CancellationToken::new(),
        );
        if self.s.pod_kind == PodKind::Bare {
            let pods = self.rec.lock().expect("recorder lock").all_pods();
            self.delete_pods(pods).await;
        }
        let ns_api: Api<Namespace> = Api::all(self.client.clone());
        if self.s.pods > 0 {
            let now = Instant::now();
            {
                let mut rec = self.rec.lock().expect("recorder lock");
                for key in rec.all_pods() {
                    rec.pod_delete_sent(&key, now);
                }
            }
            let (d, n) = (&self.driver, &self.naming);
            d.each(0..self.s.namespaces, |i| {
                let api = ns_api.clone();
                async move {
                    let name = n.namespace(i);
                    let out = d.call("delete namespace", || api.delete(&name, &DELETE)).await;
                    if out == Outcome::Failed {
                        Outcome::Done
                    } else {
                        out
                    }
                }
            })
            .await;
            let _ = self.wait("pods gone", |c| c.pods_live == 0).await;
        }
        if self.s.dry_run {
            return;
        }
        let node_api: Api<Node> = Api::all(self.client.clone());
        let (d, rec) = (&self.driver, &self.rec);
        let nodes = rec.lock().expect("recorder lock").created_nodes();
        d.each(nodes, |name| {
            let api = node_api.clone();
            async move {
                rec.lock()
                    .expect("recorder lock")
                    .node_delete_sent(&name, Instant::now());
                d.call("delete node", || api.delete(&name, &DELETE)).await
            }
        })
        .await;
        let lp = ListParams::default().labels(&self.naming.selector());
        if let Err(e) = node_api.delete_collection(&DELETE, &lp).await {
            tracing::warn!(error = %e, "sweeping nodes by label failed");
        }
        let made = self.counts().nodes_created;
        let _ = self.wait("nodes gone", |c| c.nodes_gone >= made).await;
    }
}

/// Progress bars on stderr; hidden when it is not a terminal or progress is off.
struct Bars {
    multi: MultiProgress,
    nodes: ProgressBar,
    pods: ProgressBar,
    /// How far the pods bar counts them.
    pods_until: PodsUntil,
}

impl Bars {
    fn new(s: &Scenario, on: bool) -> Self {
        let target = if on {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let style = ProgressStyle::with_template("{prefix:>5} {bar:40} {pos}/{len} {msg} ({per_sec})")
            .expect("static progress template");
        let bar = |prefix: &'static str, len: u32| {
            let b = multi.add(ProgressBar::new(u64::from(len)));
            b.set_style(style.clone());
            b.set_prefix(prefix);
            b
        };
        Self {
            nodes: bar("nodes", s.nodes),
            pods: bar("pods", s.pods),
            pods_until: s.pods_until,
            multi,
        }
    }

    fn update(&self, c: &Counts) {
        self.nodes.set_position(c.nodes_ready);
        self.nodes.set_message(format!(
            "ready, {} created, {} gone",
            c.nodes_created, c.nodes_gone
        ));
        let (done, what) = match self.pods_until {
            PodsUntil::Running => (c.pods_running, "running"),
            PodsUntil::Scheduled => (c.pods_scheduled, "scheduled"),
        };
        self.pods
            .set_position(done.min(self.pods.length().unwrap_or(u64::MAX)));
        self.pods
            .set_message(format!("{what}, {} seen, {} gone", c.pods_seen, c.pods_gone));
    }

    fn finish(&self) {
        self.nodes.finish_and_clear();
        self.pods.finish_and_clear();
        let _ = self.multi.clear();
    }
}
