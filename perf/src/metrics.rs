//! The `metrics` scenario (issue 20, "Scale"): kwok serves resource metrics for every
//! node to a scraper that plays metrics-server, and what that costs kwok.
//!
//! Each side gets a fresh cluster whose kwok is handed upstream's stages plus upstream
//! KWOK v0.8's `metrics-resource.yaml` (Metric) and `usage-from-annotation.yaml`
//! (ClusterResourceUsage), unchanged, as `--config`. perf creates the nodes, then the
//! pods already bound to them (`spec.nodeName`: the scheduler is left out, it is not
//! what is measured and takes a core for ~30 pods/s here), each annotated with
//! `kwok.x-k8s.io/usage-cpu` and `kwok.x-k8s.io/usage-memory`, and waits for them to
//! be Ready and Running. Then, after an idle baseline, every `interval` it GETs every
//! node's `/metrics/nodes/{node}/metrics/resource` from kwok's server (HTTPS with the
//! admin client certificate, as kwokctl starts both kwoks the same way), a bounded
//! number at once, and records kwok's CPU and memory from `/proc`, each request's
//! latency and errors, and checks one node's text.

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::{
    Api,
    api::PostParams,
    runtime::{WatchStreamExt as _, watcher},
};
use kwok_loadgen::{
    Scenario,
    driver::Driver,
    measure::{Recorder, node_ready},
    objects::{self, Naming},
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::{cluster::Cluster, process, side::Controller};

/// The scenario's name on the command line.
pub const NAME: &str = "metrics";

/// The Metric path both kwoks serve, with the node's name in it.
const PATH: &str = "/metrics/nodes/{nodeName}/metrics/resource";

/// Pod annotations upstream's `usage-from-annotation.yaml` reads.
const USAGE_CPU: &str = "kwok.x-k8s.io/usage-cpu";
const USAGE_MEMORY: &str = "kwok.x-k8s.io/usage-memory";

/// How big the run is and how it scrapes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Options {
    /// Fake nodes.
    pub nodes: u32,
    /// Pods, spread evenly over the nodes (pod `i` on node `i % nodes`).
    pub pods: u32,
    /// Namespaces the pods are spread over.
    pub namespaces: u32,
    /// Creates per second (nodes, then pods) and how many in flight.
    pub create_rate: u32,
    /// Creates in flight.
    pub create_concurrency: u32,
    /// Longest wait for all nodes Ready, and again for all pods Running; the run goes on
    /// with what is there after it (and says so).
    #[serde(with = "secs")]
    pub create_timeout: Duration,
    /// Idle time before scraping, to measure kwok's CPU without scrapes.
    #[serde(with = "secs")]
    pub baseline: Duration,
    /// Scrape rounds measured, after one warm-up round.
    pub rounds: u32,
    /// Time between the starts of two rounds (metrics-server's `--metric-resolution`).
    #[serde(with = "secs")]
    pub interval: Duration,
    /// Node scrapes in flight at once.
    pub scrape_concurrency: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            nodes: 10_000,
            pods: 100_000,
            namespaces: 10,
            create_rate: 300,
            create_concurrency: 64,
            create_timeout: Duration::from_secs(1800),
            baseline: Duration::from_secs(30),
            rounds: 4,
            interval: Duration::from_secs(15),
            scrape_concurrency: 100,
        }
    }
}

pub(crate) mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs_f64(f64::deserialize(d)?))
    }
}

/// One scrape round: every node once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Round {
    /// 0 is the warm-up round (new connections, cold caches), left out of the averages.
    pub round: u32,
    /// Seconds from the first request to the last answer.
    pub scrape_seconds: f64,
    /// Seconds from this round's start to the next one's (the interval, or longer when
    /// the scrape overran it).
    pub period_seconds: f64,
    /// kwok CPU seconds over the period.
    pub kwok_cpu_seconds: f64,
    /// kwok's resident set at the end of the period, MiB.
    pub kwok_rss_mib: f64,
    /// Per-node latency p50, ms.
    pub latency_p50_ms: f64,
    /// Per-node latency p99, ms.
    pub latency_p99_ms: f64,
    /// Slowest node, ms.
    pub latency_max_ms: f64,
    /// Requests that failed (transport, non-200, empty body).
    pub errors: u64,
    /// Body bytes received.
    pub bytes: u64,
}

/// What one node's text said about one of its pods.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// The node sampled.
    pub node: String,
    /// The pod checked, `namespace/name`.
    pub pod: String,
    /// Pods the node's text names (`pod_memory_working_set_bytes` samples) and pods bound.
    pub pods_in_text: usize,
    /// Pods bound to the node.
    pub pods_bound: usize,
    /// The pod's `pod_cpu_usage_seconds_total` in the warm-up round and in the last one.
    pub cpu_first: Option<f64>,
    /// See `cpu_first`.
    pub cpu_last: Option<f64>,
    /// Seconds between the two reads.
    pub seconds_between: f64,
    /// The pod's cpu annotation, cores.
    pub cpu_annotation_cores: f64,
    /// `pod_memory_working_set_bytes` in the last round, and the annotation, bytes.
    pub memory: Option<f64>,
    /// See `memory`.
    pub memory_annotation_bytes: f64,
    /// The counter went up and memory equals the annotation.
    pub ok: bool,
    /// The last text of the node, for the record.
    pub text: String,
}

/// The figures of one side.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsResult {
    /// The controller.
    pub controller: Controller,
    /// The run's shape.
    pub options: Options,
    /// Nodes that went Ready, pods that went Running.
    pub nodes_ready: u64,
    /// See `nodes_ready`.
    pub pods_running: u64,
    /// Seconds from the first node create to all Ready (or the timeout).
    pub nodes_seconds: f64,
    /// Seconds from the first pod create to all Running (or the timeout).
    pub pods_seconds: f64,
    /// Creates that failed for good.
    pub create_failures: u64,
    /// kwok's CPU over the idle baseline, cores.
    pub baseline_cores: f64,
    /// kwok's resident set at the end of the idle baseline, before any scrape, MiB
    /// (absent from runs before it was recorded).
    #[serde(default)]
    pub rss_before_scraping_mib: Option<f64>,
    /// The rounds, warm-up first.
    pub rounds: Vec<Round>,
    /// Mean kwok CPU seconds per measured round.
    pub cpu_seconds_per_round: f64,
    /// The same less the baseline's share of the period: what the scrapes cost.
    pub scrape_cpu_seconds_per_round: f64,
    /// kwok's average CPU over the measured rounds, cores.
    pub cores: f64,
    /// kwok's largest resident set at the end of a measured round, MiB.
    pub rss_mib: f64,
    /// kwok's peak resident set over the whole run (VmHWM, node and pod creation too).
    pub peak_rss_mib: f64,
    /// Per-node latency over every measured request: p50, p99, max (ms).
    pub latency_p50_ms: f64,
    /// See `latency_p50_ms`.
    pub latency_p99_ms: f64,
    /// See `latency_p50_ms`.
    pub latency_max_ms: f64,
    /// Longest round, seconds from first request to last answer.
    pub scrape_seconds_max: f64,
    /// Failed scrapes over the measured rounds.
    pub errors: u64,
    /// Mean body size per node, bytes.
    pub bytes_per_node: f64,
    /// The HTTP version kwok answered the scraper with.
    pub http_version: String,
    /// The sampled node's check.
    pub check: Option<Check>,
}

/// Upstream's Metric and usage documents, copied unchanged from its Go module into
/// `dir` (kept with the results) for both kwoks' `--config`.
pub fn write_upstream_documents(module: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    let files = [
        "kustomize/metrics/resource/metrics-resource.yaml",
        "kustomize/metrics/usage/usage-from-annotation.yaml",
    ];
    let mut out = Vec::new();
    for f in files {
        let from = module.join(f);
        let to = dir.join(from.file_name().context("file name")?);
        // The module cache's files are read-only, and so is an earlier run's copy.
        let _ = std::fs::remove_file(&to);
        std::fs::copy(&from, &to).with_context(|| {
            format!(
                "copy {} (run perf/upstream/build.sh to fetch the module)",
                from.display()
            )
        })?;
        out.push(to);
    }
    Ok(out)
}

/// The usage annotations of pod `i`: 10–100 millicores and 16–128 MiB.
fn usage(i: u32) -> (String, String) {
    (
        format!("{}m", 10 * (1 + i % 10)),
        format!("{}Mi", 16 * (1 + i % 8)),
    )
}

/// Pod `i`, bound to its node, with its usage annotations.
fn pod(s: &Scenario, n: &Naming, i: u32, nodes: u32) -> Pod {
    let mut pod = objects::pod(s, n, i, 0);
    let (cpu, memory) = usage(i);
    pod.metadata.annotations = Some(
        [(USAGE_CPU.to_owned(), cpu), (USAGE_MEMORY.to_owned(), memory)]
            .into_iter()
            .collect(),
    );
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = Some(n.node(i % nodes));
    }
    pod
}

/// Counts objects of the run that satisfy `pred`, from a watch, until aborted.
fn count<K, F>(api: Api<K>, selector: String, pred: F) -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
    F: Fn(&K) -> bool + Send + 'static,
{
    let n = Arc::new(AtomicU64::new(0));
    let counter = n.clone();
    let task = tokio::spawn(async move {
        let mut yes = HashSet::new();
        let stream = watcher(api, watcher::Config::default().labels(&selector)).default_backoff();
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    let name = format!(
                        "{}/{}",
                        o.meta().namespace.as_deref().unwrap_or_default(),
                        o.meta().name.as_deref().unwrap_or_default()
                    );
                    if pred(&o) {
                        yes.insert(name);
                    } else {
                        yes.remove(&name);
                    }
                }
                Ok(watcher::Event::Delete(o)) => {
                    let name = format!(
                        "{}/{}",
                        o.meta().namespace.as_deref().unwrap_or_default(),
                        o.meta().name.as_deref().unwrap_or_default()
                    );
                    yes.remove(&name);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "watch"),
            }
            counter.store(yes.len() as u64, Ordering::Relaxed);
        }
    });
    (n, task)
}

fn pod_running(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .is_some_and(|s| s.phase.as_deref() == Some("Running"))
}

/// Waits until `n` reaches `want` or `timeout` passes; prints progress every 30 s.
/// Returns the seconds waited from `since`.
async fn wait(
    what: &str,
    n: &AtomicU64,
    want: u64,
    since: Instant,
    timeout: Duration,
    cancel: &CancellationToken,
) -> f64 {
    let mut last_print = Instant::now();
    loop {
        let now = n.load(Ordering::Relaxed);
        if now >= want || since.elapsed() >= timeout || cancel.is_cancelled() {
            eprintln!(
                "perf: {what}: {now}/{want} after {:.0} s",
                since.elapsed().as_secs_f64()
            );
            return since.elapsed().as_secs_f64();
        }
        if last_print.elapsed() >= Duration::from_secs(30) {
            eprintln!(
                "perf: {what}: {now}/{want} after {:.0} s",
                since.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// kwok's server address from its command line (`--server-address=HOST:PORT`, as
/// kwokctl starts both kwoks).
fn server_address(pid: u32) -> Result<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).context("kwok command line")?;
    cmdline
        .split(|b| *b == 0)
        .filter_map(|a| std::str::from_utf8(a).ok())
        .find_map(|a| a.strip_prefix("--server-address="))
        .map(str::to_owned)
        .context("kwok was started without --server-address=")
}

/// The `q`th quantile of sorted `v` (nearest rank), 0 when empty.
fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// The value of the sample `metric{...}` whose labels include `pod="pod"` and
/// `namespace="ns"`, in Prometheus text.
fn sample(text: &str, metric: &str, ns: &str, pod: &str) -> Option<f64> {
    let (p, n) = (format!("pod=\"{pod}\""), format!("namespace=\"{ns}\""));
    let line = text
        .lines()
        .filter(|l| l.strip_prefix(metric).is_some_and(|r| r.starts_with('{')))
        .find(|l| l.contains(&p) && l.contains(&n))?;
    // The value is the first field after the labels (a timestamp may follow).
    line[line.rfind('}')? + 1..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Bytes of a Kubernetes quantity as the annotations write them (`Mi`, `Gi`, plain).
fn quantity_bytes(q: &str) -> f64 {
    for (suffix, mult) in [
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
    ] {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<f64>().unwrap_or(f64::NAN) * mult;
        }
    }
    q.parse().unwrap_or(f64::NAN)
}

/// Cores of a cpu quantity (`100m`, `1`).
fn quantity_cores(q: &str) -> f64 {
    match q.strip_suffix('m') {
        Some(m) => m.parse::<f64>().unwrap_or(f64::NAN) / 1000.0,
        None => q.parse().unwrap_or(f64::NAN),
    }
}

/// One scrape of one node: latency (ms) and the body, or what went wrong.
async fn scrape(client: &kube::Client, node: &str) -> (f64, Result<String, String>) {
    let started = Instant::now();
    let req = http::Request::get(PATH.replace("{nodeName}", node))
        .body(Vec::new())
        .expect("static request");
    let r = client.request_text(req).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match r {
        Ok(text) if text.is_empty() => (ms, Err("empty body".into())),
        Ok(text) => (ms, Ok(text)),
        Err(e) => (ms, Err(e.to_string())),
    }
}

/// Scrapes every node once, `concurrency` at once: per-node latencies (ms), errors by
/// kind, bytes.
async fn round(
    client: &kube::Client,
    nodes: &[String],
    concurrency: usize,
) -> (Vec<f64>, BTreeMap<String, u64>, u64, f64) {
    let started = Instant::now();
    let results: Vec<(f64, Result<usize, String>)> = futures::stream::iter(nodes)
        .map(|n| async move {
            let (ms, r) = scrape(client, n).await;
            (ms, r.map(|t| t.len()))
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let mut lat = Vec::with_capacity(results.len());
    let mut errors = BTreeMap::new();
    let mut bytes = 0u64;
    for (ms, r) in results {
        match r {
            Ok(b) => {
                lat.push(ms);
                bytes += b as u64;
            }
            Err(e) => {
                // Kinds, not every message: cut at the first digit-heavy part.
                let kind: String = e.chars().take(80).collect();
                *errors.entry(kind).or_default() += 1;
            }
        }
    }
    lat.sort_by(f64::total_cmp);
    (lat, errors, bytes, seconds)
}

/// A client of kwok's server at `address` with the cluster's admin credentials.
async fn kwok_client(cluster: &Cluster, address: &str) -> Result<(kube::Client, String)> {
    let kc = kube::config::Kubeconfig::read_from(cluster.kubeconfig())?;
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    config.cluster_url = format!("https://{address}").parse()?;
    config.read_timeout = Some(Duration::from_secs(30));
    config.default_retry = false;
    let client = kube::Client::try_from(config)?;
    // Which HTTP version kwok speaks to it (ALPN), from one request.
    let req = http::Request::get("/healthz")
        .body(kube::client::Body::empty())
        .expect("static request");
    let version = match client.send(req).await {
        Ok(r) => format!("{:?}", r.version()),
        Err(e) => format!("unknown ({e})"),
    };
    Ok((client, version))
}

/// Runs the scenario for `controller` on a fresh cluster given `configs` (stages and
/// upstream's Metric and usage documents).
pub async fn run_side(
    kwokctl: &Path,
    controller: Controller,
    configs: &[PathBuf],
    o: &Options,
    log_to: &Path,
    cancel: CancellationToken,
) -> Result<MetricsResult> {
    let cluster = Cluster::start(kwokctl, &controller, configs)?;
    let result = measure(&cluster, controller, o, cancel).await;
    cluster.copy_kwok_log(log_to);
    drop(cluster);
    result
}

async fn measure(
    cluster: &Cluster,
    controller: Controller,
    o: &Options,
    cancel: CancellationToken,
) -> Result<MetricsResult> {
    let side = controller.side.clone();
    let client = cluster.client().await?;
    let pid = cluster
        .pid("kwok-controller")
        .context("kwok-controller pid file")?;
    let address = server_address(pid)?;
    let scenario = Scenario {
        name: NAME.into(),
        nodes: o.nodes,
        pods: o.pods,
        namespaces: o.namespaces,
        rate: o.create_rate,
        concurrency: o.create_concurrency,
        ..Scenario::default()
    };
    let naming = Naming {
        run: "metrics".into(),
    };
    let recorder = Arc::new(Mutex::new(Recorder::new()));
    let driver = Driver::new(o.create_rate, o.create_concurrency, recorder, cancel.clone());
    let pp = PostParams::default();
    let driver = &driver;

    let ns_api: Api<Namespace> = Api::all(client.clone());
    for i in 0..o.namespaces {
        let ns = objects::namespace(&naming, i);
        driver.call("create namespace", || ns_api.create(&pp, &ns)).await;
    }

    eprintln!("perf: {side}: creating {} nodes", o.nodes);
    let node_api: Api<Node> = Api::all(client.clone());
    let (ready, node_watch) = count(node_api.clone(), naming.selector(), node_ready);
    let started = Instant::now();
    let ok_nodes = driver
        .each(0..o.nodes, |i| {
            let (api, node, pp) = (&node_api, objects::node(&scenario, &naming, i), &pp);
            async move { driver.call("create node", || api.create(pp, &node)).await }
        })
        .await;
    let nodes_seconds = wait(
        &format!("{side}: nodes Ready"),
        &ready,
        u64::from(o.nodes),
        started,
        o.create_timeout,
        &cancel,
    )
    .await;

    eprintln!("perf: {side}: creating {} pods, bound to their nodes", o.pods);
    let pod_api: Api<Pod> = Api::all(client.clone());
    let (running, pod_watch) = count(pod_api.clone(), naming.selector(), pod_running);
    let started = Instant::now();
    let ok_pods = driver
        .each(0..o.pods, |i| {
            let p = pod(&scenario, &naming, i, o.nodes);
            let api: Api<Pod> = Api::namespaced(client.clone(), &naming.namespace(i % o.namespaces));
            let pp = &pp;
            async move { driver.call("create pod", || api.create(pp, &p)).await }
        })
        .await;
    let pods_seconds = wait(
        &format!("{side}: pods Running"),
        &running,
        u64::from(o.pods),
        started,
        o.create_timeout,
        &cancel,
    )
    .await;
    let (nodes_ready, pods_running) = (ready.load(Ordering::Relaxed), running.load(Ordering::Relaxed));
    // The watches would cost this process CPU beside kwok's: done with them.
    node_watch.abort();
    pod_watch.abort();
    let create_failures = (u64::from(o.nodes) - ok_nodes) + (u64::from(o.pods) - ok_pods);
    if cancel.is_cancelled() {
        bail!("{side}: interrupted");
    }

    eprintln!("perf: {side}: idle baseline {:?}", o.baseline);
    let b0 = process::usage(pid).context("kwok exited")?;
    let t0 = Instant::now();
    tokio::time::sleep(o.baseline).await;
    let b1 = process::usage(pid).context("kwok exited")?;
    let baseline_cores = (b1.cpu_seconds - b0.cpu_seconds) / t0.elapsed().as_secs_f64();

    let (kwok, http_version) = kwok_client(cluster, &address).await?;
    let nodes: Vec<String> = (0..o.nodes).map(|i| naming.node(i)).collect();
    // The sampled node and one of its pods (pod 0 on node 0).
    let (check_node, check_pod, check_ns) = (naming.node(0), naming.pod(0, 0), naming.namespace(0));
    let mut first: Option<(Instant, String)> = None;
    let mut last: Option<(Instant, String)> = None;
    let mut rounds = Vec::new();
    let mut all_lat = Vec::new();
    let mut errors_by: BTreeMap<String, u64> = BTreeMap::new();
    let mut next = Instant::now();
    for r in 0..=o.rounds {
        if cancel.is_cancelled() {
            bail!("{side}: interrupted");
        }
        let start = next;
        next = start + o.interval;
        let u0 = process::usage(pid).context("kwok exited")?;
        let (lat, errors, bytes, scrape_seconds) = round(&kwok, &nodes, o.scrape_concurrency as usize).await;
        let sample_text = scrape(&kwok, &check_node).await;
        if let (_, Ok(text)) = sample_text {
            if r == 0 {
                first = Some((Instant::now(), text));
            } else {
                last = Some((Instant::now(), text));
            }
        }
        // Wait out the period (an overrunning round starts the next at once).
        tokio::time::sleep_until(next.into()).await;
        let period = start.elapsed().as_secs_f64();
        next = next.max(Instant::now());
        let u1 = process::usage(pid).context("kwok exited")?;
        let n_err: u64 = errors.values().sum();
        let round = Round {
            round: r,
            scrape_seconds,
            period_seconds: period,
            kwok_cpu_seconds: u1.cpu_seconds - u0.cpu_seconds,
            kwok_rss_mib: u1.rss_mib,
            latency_p50_ms: quantile(&lat, 0.5),
            latency_p99_ms: quantile(&lat, 0.99),
            latency_max_ms: lat.last().copied().unwrap_or(0.0),
            errors: n_err,
            bytes,
        };
        eprintln!(
            "perf: {side}: round {r}: {:.1} s to scrape, kwok {:.2} CPU s, {:.0} MiB, p50 {:.1} ms p99 {:.1} ms, {n_err} errors",
            round.scrape_seconds,
            round.kwok_cpu_seconds,
            round.kwok_rss_mib,
            round.latency_p50_ms,
            round.latency_p99_ms
        );
        if r > 0 {
            all_lat.extend(lat);
            for (k, v) in errors {
                *errors_by.entry(k).or_default() += v;
            }
        } else if !errors.is_empty() {
            eprintln!("perf: {side}: warm-up errors: {errors:?}");
        }
        rounds.push(round);
    }
    if !errors_by.is_empty() {
        eprintln!("perf: {side}: errors: {errors_by:?}");
    }
    all_lat.sort_by(f64::total_cmp);
    let measured: Vec<&Round> = rounds.iter().filter(|r| r.round > 0).collect();
    let m = measured.len().max(1) as f64;
    let cpu_seconds_per_round = measured.iter().map(|r| r.kwok_cpu_seconds).sum::<f64>() / m;
    let period_sum: f64 = measured.iter().map(|r| r.period_seconds).sum();
    let scrape_cpu_seconds_per_round = measured
        .iter()
        .map(|r| r.kwok_cpu_seconds - baseline_cores * r.period_seconds)
        .sum::<f64>()
        / m;
    let end = process::usage(pid).context("kwok exited")?;
    let bound = (0..o.pods).filter(|i| i % o.nodes == 0).count();
    let check = check(&check_node, &check_ns, &check_pod, bound, first, last);
    let errors: u64 = measured.iter().map(|r| r.errors).sum();
    let bytes: u64 = measured.iter().map(|r| r.bytes).sum();
    let ok = (measured.len() as u64 * u64::from(o.nodes))
        .saturating_sub(errors)
        .max(1);
    Ok(MetricsResult {
        controller,
        options: o.clone(),
        nodes_ready,
        pods_running,
        nodes_seconds,
        pods_seconds,
        create_failures,
        baseline_cores,
        rss_before_scraping_mib: Some(b1.rss_mib),
        cpu_seconds_per_round,
        scrape_cpu_seconds_per_round,
        cores: measured.iter().map(|r| r.kwok_cpu_seconds).sum::<f64>() / period_sum.max(1e-9),
        rss_mib: measured.iter().map(|r| r.kwok_rss_mib).fold(0.0, f64::max),
        peak_rss_mib: end.peak_rss_mib,
        latency_p50_ms: quantile(&all_lat, 0.5),
        latency_p99_ms: quantile(&all_lat, 0.99),
        latency_max_ms: all_lat.last().copied().unwrap_or(0.0),
        scrape_seconds_max: measured.iter().map(|r| r.scrape_seconds).fold(0.0, f64::max),
        errors,
        bytes_per_node: bytes as f64 / ok as f64,
        http_version,
        check,
        rounds,
    })
}

/// Checks the sampled node's text: the pod's cpu counter went up between the warm-up
/// round and the last, its memory equals its annotation, and every bound pod is named.
fn check(
    node: &str,
    ns: &str,
    pod: &str,
    bound: usize,
    first: Option<(Instant, String)>,
    last: Option<(Instant, String)>,
) -> Option<Check> {
    let (t1, last) = last?;
    let (cpu_a, mem_a) = usage(0);
    let cpu_first = first
        .as_ref()
        .and_then(|(_, t)| sample(t, "pod_cpu_usage_seconds_total", ns, pod));
    let cpu_last = sample(&last, "pod_cpu_usage_seconds_total", ns, pod);
    let memory = sample(&last, "pod_memory_working_set_bytes", ns, pod);
    let memory_annotation_bytes = quantity_bytes(&mem_a);
    let pods_in_text = last
        .lines()
        .filter(|l| l.starts_with("pod_memory_working_set_bytes{"))
        .count();
    let ok = matches!((cpu_first, cpu_last), (Some(a), Some(b)) if b > a)
        && memory == Some(memory_annotation_bytes)
        && pods_in_text == bound;
    Some(Check {
        node: node.to_owned(),
        pod: format!("{ns}/{pod}"),
        pods_in_text,
        pods_bound: bound,
        cpu_first,
        cpu_last,
        seconds_between: first.map_or(0.0, |(t0, _)| t1.duration_since(t0).as_secs_f64()),
        cpu_annotation_cores: quantity_cores(&cpu_a),
        memory,
        memory_annotation_bytes,
        ok,
        text: last,
    })
}

type Figure = crate::table::Figure<MetricsResult>;

const FIGURES: &[Figure] = &[
    ("nodes Ready", |r| Some(r.nodes_ready as f64), "-"),
    ("pods Running", |r| Some(r.pods_running as f64), "-"),
    ("seconds to all nodes Ready", |r| Some(r.nodes_seconds), "lower"),
    ("seconds to all pods Running", |r| Some(r.pods_seconds), "lower"),
    (
        "kwok CPU idle before scraping (cores)",
        |r| Some(r.baseline_cores),
        "lower",
    ),
    (
        "kwok RSS before scraping (MiB)",
        |r| r.rss_before_scraping_mib,
        "lower",
    ),
    (
        "kwok CPU s per 15 s round",
        |r| Some(r.cpu_seconds_per_round),
        "lower",
    ),
    (
        "kwok CPU s per round, less idle",
        |r| Some(r.scrape_cpu_seconds_per_round),
        "lower",
    ),
    ("kwok CPU while scraped (cores)", |r| Some(r.cores), "lower"),
    ("kwok RSS while scraped, max (MiB)", |r| Some(r.rss_mib), "lower"),
    (
        "kwok peak RSS, whole run (MiB)",
        |r| Some(r.peak_rss_mib),
        "lower",
    ),
    (
        "scrape latency p50 per node (ms)",
        |r| Some(r.latency_p50_ms),
        "lower",
    ),
    (
        "scrape latency p99 per node (ms)",
        |r| Some(r.latency_p99_ms),
        "lower",
    ),
    ("scrape latency max (ms)", |r| Some(r.latency_max_ms), "lower"),
    (
        "slowest round, all nodes (s)",
        |r| Some(r.scrape_seconds_max),
        "lower",
    ),
    ("scrape errors", |r| Some(r.errors as f64), "lower"),
    ("bytes per node", |r| Some(r.bytes_per_node), "-"),
];

/// The Markdown table for the sides that ran, plus each side's check.
pub fn markdown(ours: Option<&MetricsResult>, upstream: Option<&MetricsResult>) -> String {
    use std::fmt::Write as _;
    let mut out = crate::table::rows(FIGURES, ours, upstream);
    let _ = writeln!(
        out,
        "\nHTTP version to the scraper: ours {}, upstream {}.\n",
        ours.map_or("-", |r| r.http_version.as_str()),
        upstream.map_or("-", |r| r.http_version.as_str())
    );
    for r in [ours, upstream].into_iter().flatten() {
        match &r.check {
            None => {
                let _ = writeln!(
                    out,
                    "- {} check: no text from the sampled node",
                    r.controller.side
                );
            }
            Some(c) => {
                let cpu = match (c.cpu_first, c.cpu_last) {
                    (Some(a), Some(b)) => format!(
                        "{a:.3} → {b:.3} over {:.0} s (+{:.3}, annotation {} cores × {:.0} s = {:.3})",
                        c.seconds_between,
                        b - a,
                        c.cpu_annotation_cores,
                        c.seconds_between,
                        c.cpu_annotation_cores * c.seconds_between
                    ),
                    _ => "missing".into(),
                };
                let _ = writeln!(
                    out,
                    "- {} check ({}): {} on node {}: pod_cpu_usage_seconds_total {cpu}; pod_memory_working_set_bytes {} (annotation {}); {} of {} bound pods in the text",
                    r.controller.side,
                    if c.ok { "pass" } else { "FAIL" },
                    c.pod,
                    c.node,
                    c.memory.map_or("missing".into(), |m| format!("{m}")),
                    c.memory_annotation_bytes,
                    c.pods_in_text,
                    c.pods_bound
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_should_find_the_pod_value_in_either_number_format() {
        let text = "# HELP pod_cpu_usage_seconds_total x\n\
            pod_cpu_usage_seconds_total{namespace=\"ns\",pod=\"p1\"} 1.5 1700000000000\n\
            pod_cpu_usage_seconds_total{namespace=\"ns\",pod=\"p10\"} 9\n\
            pod_memory_working_set_bytes{namespace=\"ns\",pod=\"p1\"} 1.6777216e+07\n";
        assert_eq!(sample(text, "pod_cpu_usage_seconds_total", "ns", "p1"), Some(1.5));
        assert_eq!(
            sample(text, "pod_cpu_usage_seconds_total", "ns", "p10"),
            Some(9.0)
        );
        assert_eq!(
            sample(text, "pod_memory_working_set_bytes", "ns", "p1"),
            Some(16_777_216.0)
        );
        assert_eq!(sample(text, "pod_cpu_usage_seconds_total", "other", "p1"), None);
    }

    #[test]
    fn quantities_and_quantiles() {
        assert_eq!(quantity_bytes("16Mi"), 16.0 * 1024.0 * 1024.0);
        assert_eq!(quantity_cores("10m"), 0.01);
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.5), 2.0);
        assert_eq!(quantile(&v, 0.99), 4.0);
        assert_eq!(usage(0), ("10m".into(), "16Mi".into()));
    }

    #[test]
    fn pods_should_be_bound_and_annotated() {
        let s = Scenario::default();
        let n = Naming { run: "r".into() };
        let p = pod(&s, &n, 13, 10);
        assert_eq!(p.spec.unwrap().node_name.as_deref(), Some("lg-r-node-3"));
        let a = p.metadata.annotations.unwrap();
        assert_eq!(a[USAGE_CPU], "40m");
        assert_eq!(a[USAGE_MEMORY], "96Mi");
    }
}
