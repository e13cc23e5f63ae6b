//! `perf SCENARIO`: runs a loadgen scenario with our kwok and with upstream KWOK's on the
//! same pinned control plane and writes a ratio table plus raw JSON.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use kwok_loadgen::scenario::PodsUntil;
use kwok_perf::{
    capacity,
    cluster::{Priority, cache_dir},
    metrics, scenarios,
    side::{self, Controller},
    speed, table,
};
use kwokctl::{auth::KwokAuth, options, priority::KwokPriority};
use tokio_util::sync::CancellationToken;

/// Upstream KWOK version built by `perf/upstream/build.sh`.
const UPSTREAM_VERSION: &str = "v0.8.0";

/// Runs a scenario with our kwok and upstream KWOK v0.8's, side by side.
#[derive(Debug, Parser)]
#[command(name = "perf", version, about)]
struct Flags {
    /// Scenario: smoke, small, large, lease-soak, churn, dra, metrics or capacity.
    scenario: String,
    /// Which controllers to run.
    #[arg(long, value_enum, default_value = "both")]
    only: Only,
    /// Results folder; a `<date>-<scenario>` folder is made inside.
    #[arg(long, default_value = "perf/results")]
    out: PathBuf,
    /// Our kwok (default: next to this binary; build it with --profile dist).
    #[arg(long)]
    kwok: Option<PathBuf>,
    /// Upstream kwok (default: the cache, `kwok-upstream/v0.8.0/kwok`).
    #[arg(long)]
    upstream_kwok: Option<PathBuf>,
    /// kwokctl (default: next to this binary).
    #[arg(long)]
    kwokctl: Option<PathBuf>,
    /// Our kwok as this many processes sharing the nodes (`kwokctl --kwok-replicas`,
    /// `kwok --scale-out`); upstream's always runs one.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    kwok_replicas: u32,
    /// metrics: fake nodes (default 10,000); dra: GPU nodes, 8 pods each (default 1,000).
    #[arg(long)]
    nodes: Option<u32>,
    /// metrics: pods, spread evenly over the nodes (default 100,000).
    #[arg(long)]
    pods: Option<u32>,
    /// metrics: scrape rounds measured (after one warm-up round).
    #[arg(long, default_value_t = 4)]
    rounds: u32,
    /// metrics: node scrapes in flight at once.
    #[arg(long, default_value_t = 100)]
    scrape_concurrency: u32,
    /// Node and pod creates per second (default: 300 for metrics, 200 for capacity, the
    /// scenario's own for the others).
    #[arg(long)]
    create_rate: Option<u32>,
    /// smoke, small, large, lease-soak, churn: create requests loadgen keeps in flight
    /// (default: the scenario's own, 64 for large and 512 for the others).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    in_flight: Option<u32>,
    /// capacity: nodes added per step.
    #[arg(long, default_value_t = 1_000)]
    step_nodes: u32,
    /// capacity: pods added per step.
    #[arg(long, default_value_t = 2_000)]
    step_pods: u32,
    /// capacity: pods deleted and recreated per second in each step.
    #[arg(long, default_value_t = 20)]
    churn_rate: u32,
    /// capacity: seconds each step churns.
    #[arg(long, default_value_t = 60)]
    churn_seconds: u64,
    /// capacity: steps at most.
    #[arg(long, default_value_t = 40)]
    max_steps: u32,
    /// smoke, small, large, lease-soak, churn: create the pods bound to the nodes
    /// (`spec.nodeName`, round robin), leaving the scheduler out: what the kubelet side
    /// (kwok, and the apiserver serving it) holds, e.g. with `--kwok-replicas`.
    #[arg(long)]
    bind_pods: bool,
    /// small, large, lease-soak: the control plane's floor. Each side's kwok runs
    /// its node stages only; pods are only scheduled, then deleted with grace period 0.
    /// What the control plane spends per pod then is what no kwok's pod handling can
    /// take away (its status write, its final delete, and what they set off); a normal
    /// run's figure less this one is what the side's kwok costs it per pod.
    #[arg(long, conflicts_with = "bind_pods")]
    floor: bool,
    /// Keep API Priority and Fairness on (with the apiserver's default in-flight limits)
    /// and run loadgen as a ServiceAccount (`workload-low`), as in-cluster workload
    /// controllers are; default: APF off and loadgen as the admin, as every earlier run.
    #[arg(long)]
    apf: bool,
    /// Whose set-up each side's cluster gets: `same` (the three flags below apply to both
    /// sides: the like-for-like comparison, every earlier run's) or `shipped` (each side
    /// as its own kwokctl sets a cluster up by default: ours with kwokctl's defaults for
    /// kwok's priority, credential and the control plane's GOGC, upstream's as upstream
    /// kwokctl: `exempt`, `cert`, 100). Only where the two kwokctls' defaults differ:
    /// `--apf` and what perf sets for both (40 s leases, lifted QPS limits) stay alike.
    #[arg(long, value_enum, default_value = "same")]
    setup: Setup,
    /// How kwokctl runs both sides' kwok: `exempt` (`system:masters`, upstream kwokctl's
    /// set-up; the default) or `node-high` (its own user at the kubelets' APF priority
    /// level). Only with `--setup same`.
    #[arg(long, value_parser = KwokPriority::NAMES)]
    kwok_priority: Option<String>,
    /// How kwokctl has both sides' kwok authenticate: `cert` (a client certificate,
    /// upstream kwokctl's set-up; the default) or `token` (a bearer token, kwokctl's
    /// default). Only with `--setup same`.
    #[arg(long, value_parser = KwokAuth::NAMES)]
    kwok_auth: Option<String>,
    /// GOGC of both sides' Go control plane (kwokctl's `--control-plane-gogc`): 100 (the
    /// default) is Go's and upstream kwokctl's set-up (every earlier run); kwokctl's own
    /// default is 400. Only with `--setup same`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    control_plane_gogc: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Setup {
    /// Both sides' clusters set up alike, by `--kwok-priority`, `--kwok-auth` and
    /// `--control-plane-gogc`.
    Same,
    /// Each side's cluster as its kwokctl sets one up by default.
    Shipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Only {
    Both,
    Ours,
    Upstream,
    /// Upstream only if its cached binary exists (for CI smoke runs).
    OursAndUpstreamIfBuilt,
}

fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.parent().context("binary folder")?.join(name))
}

fn version(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

fn controller(side: &str, binary: PathBuf, replicas: u32, flags: &Flags) -> Result<Controller> {
    if !binary.is_file() {
        bail!("{side} kwok {} is missing (see perf/README.md)", binary.display());
    }
    // kwokctl runs it from the cluster's folder: a relative path would not be found.
    let binary = std::fs::canonicalize(&binary).with_context(|| format!("{}", binary.display()))?;
    Ok(Controller {
        side: side.to_owned(),
        version: version(&binary),
        binary,
        replicas,
        priority: priority(side, flags)?,
    })
}

/// How `side`'s cluster ranks, authenticates and collects: the flags' under `--setup
/// same`, else the side's own kwokctl's defaults.
fn priority(side: &str, flags: &Flags) -> Result<Priority> {
    let same = Priority::default();
    Ok(match (flags.setup, side) {
        (Setup::Same, _) => Priority {
            apf: flags.apf,
            kwok: flags.kwok_priority.clone().unwrap_or(same.kwok),
            auth: flags.kwok_auth.clone().unwrap_or(same.auth),
            gogc: flags.control_plane_gogc.unwrap_or(same.gogc),
        },
        (Setup::Shipped, _)
            if flags.kwok_priority.is_some()
                || flags.kwok_auth.is_some()
                || flags.control_plane_gogc.is_some() =>
        {
            bail!(
                "--setup shipped sets each side's --kwok-priority, --kwok-auth and --control-plane-gogc itself: drop them or use --setup same"
            )
        }
        (Setup::Shipped, "ours") => Priority {
            apf: flags.apf,
            kwok: KwokPriority::default().as_str().to_owned(),
            auth: KwokAuth::default().as_str().to_owned(),
            gogc: options::DEFAULT_CONTROL_PLANE_GOGC,
        },
        // Upstream kwokctl: kwok in system:masters with a client certificate, and no GOGC
        // set for the control plane.
        (Setup::Shipped, _) => Priority {
            apf: flags.apf,
            ..same
        },
    })
}

/// Upstream KWOK v0.8's own fast stages (node-initialize, node-heartbeat-with-lease, and
/// with `pods` pod-ready, pod-complete, pod-delete), read from its Go module, so both
/// controllers run the very same Stage documents; ours must accept them unchanged.
fn write_upstream_stages(dir: &Path, pods: bool) -> Result<PathBuf> {
    let root = go_mod_cache().join(format!("sigs.k8s.io/kwok@{UPSTREAM_VERSION}/kustomize/stage"));
    let nodes = [
        "node/fast/node-initialize.yaml",
        "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    ];
    let pod_files = [
        "pod/fast/pod-ready.yaml",
        "pod/fast/pod-complete.yaml",
        "pod/fast/pod-delete.yaml",
    ];
    let mut docs = Vec::new();
    for f in nodes.iter().chain(pod_files.iter().filter(|_| pods)) {
        let path = root.join(f);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "read upstream stage {} (run perf/upstream/build.sh to fetch the module)",
                path.display()
            )
        })?;
        docs.push(text.trim().trim_start_matches("---").trim().to_owned());
    }
    let path = dir.join("stages.yaml");
    std::fs::write(&path, docs.join("\n---\n") + "\n")
        .with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

/// Our default stage sets (node-fast with leases, pod-fast, dra; without `pods`, the
/// node set alone) for an ours-only run on a machine without the upstream module.
fn write_our_stages(dir: &Path, pods: bool) -> Result<PathBuf> {
    let path = dir.join("stages.yaml");
    let text = match pods {
        true => kwok_engine::catalog::defaults_with_lease().join("\n---\n"),
        false => kwok_engine::catalog::set("node-fast-with-lease")
            .context("the catalog's node-fast-with-lease set")?
            .to_owned(),
    };
    std::fs::write(&path, text + "\n").with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

/// The stages both sides run: upstream's own when upstream runs, else ours; without
/// `pods`, the node stages alone.
fn write_stages(upstream_wanted: bool, dir: &Path, pods: bool) -> Result<PathBuf> {
    if upstream_wanted {
        write_upstream_stages(dir, pods)
    } else {
        write_our_stages(dir, pods)
    }
}

/// `$GOMODCACHE`, else `$GOPATH/pkg/mod`, else `~/go/pkg/mod` (Go's defaults).
fn go_mod_cache() -> PathBuf {
    let env = |k| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("GOMODCACHE")
        .or_else(|| env("GOPATH").map(|p| p.join("pkg/mod")))
        .unwrap_or_else(|| env("HOME").unwrap_or_default().join("go/pkg/mod"))
}

/// The commit of the checkout this binary was built from (asked of that checkout,
/// not of the cwd, so runs from elsewhere still name it), marked when it has
/// uncommitted changes.
fn source_commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        None => "unknown (source checkout not found)".to_owned(),
        Some(head) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(changes) if !changes.is_empty() => format!("{head} + uncommitted changes"),
            _ => head,
        },
    }
}

/// Machine and version notes for the results folder, with the machine's speed around
/// each side's run.
fn machine(controllers: &[Controller], speeds: &[speed::Speed]) -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo");
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']));
    let cores = cpu.lines().filter(|l| l.starts_with("processor")).count();
    let mem = read("/proc/meminfo")
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let kernel = read("/proc/sys/kernel/osrelease");
    let commit = source_commit();
    let cache = cache_dir();
    let mut out = format!(
        "- machine: {cores} cores, {}, {mem}, kernel {}\n- perf's checkout when run: {commit} (our kwok's own build commit is in its version below)\n",
        model.unwrap_or("unknown CPU"),
        kernel.trim()
    );
    out += &speed::markdown(speeds);
    for c in controllers {
        out += &format!("- {} kwok: {} ({})\n", c.side, c.version, c.binary.display());
        out += &format!(
            "- {} priority: APF {}, loadgen as {}, kwok `--kwok-priority {} --kwok-auth {}`, control plane `--control-plane-gogc {}`\n",
            c.side,
            if c.priority.apf { "on" } else { "off" },
            if c.priority.apf {
                "a ServiceAccount"
            } else {
                "the admin"
            },
            c.priority.kwok,
            c.priority.auth,
            c.priority.gogc
        );
    }
    for (c, v) in [("kube-apiserver", "v1.36.5"), ("etcd", "v3.6.16")] {
        out += &format!(
            "- {c}: {}\n",
            version(&cache.join(c).join(v).join(c))
                .lines()
                .next()
                .unwrap_or_default()
        );
    }
    out
}

/// The controllers a run compares: ours unless `--only upstream`, upstream as asked.
fn sides(flags: &Flags) -> Result<(Vec<Controller>, bool)> {
    let ours = controller(
        "ours",
        flags.kwok.clone().map_or_else(|| sibling("kwok"), Ok)?,
        flags.kwok_replicas,
        flags,
    )?;
    let upstream_bin = flags.upstream_kwok.clone().unwrap_or_else(|| {
        cache_dir()
            .join("kwok-upstream")
            .join(UPSTREAM_VERSION)
            .join("kwok")
    });
    let mut sides = Vec::new();
    if flags.only != Only::Upstream {
        sides.push(ours);
    }
    let upstream_wanted = match flags.only {
        Only::Both | Only::Upstream => true,
        Only::Ours => false,
        Only::OursAndUpstreamIfBuilt => upstream_bin.is_file(),
    };
    if upstream_wanted {
        sides.push(controller("upstream", upstream_bin, 1, flags)?);
    }
    Ok((sides, upstream_wanted))
}

/// The results folder of a run, `<out>/<date>-<name>`, made; and the date.
fn results_dir(out: &Path, name: &str) -> Result<(String, PathBuf)> {
    let date = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    let dir = out.join(format!("{date}-{name}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok((date, dir))
}

/// Runs `run` for each side in turn (given the side's kwok log path), writing each
/// result to `<side>.json`; after an interrupt (Ctrl-C, SIGTERM) the next side is not
/// started, and what ran is still reported.
async fn each_side<R: serde::Serialize>(
    sides: &[Controller],
    dir: &Path,
    mut run: impl AsyncFnMut(&Controller, PathBuf, CancellationToken) -> Result<R>,
) -> Result<(Vec<R>, Vec<speed::Speed>)> {
    let cancel = CancellationToken::new();
    kwok_loadgen::cancel_on_signal(
        cancel.clone(),
        "perf: interrupted; stopping and deleting the cluster",
    );
    let (mut results, mut speeds) = (Vec::new(), Vec::new());
    for c in sides {
        let log = dir.join(format!("{}-kwok.log", c.side));
        // Half a second of one thread's work: off the runtime's threads.
        let before_ms = tokio::task::spawn_blocking(speed::sort_ms).await?;
        let r = run(c, log, cancel.clone()).await?;
        let after_ms = tokio::task::spawn_blocking(speed::sort_ms).await?;
        eprintln!(
            "perf: {}: machine speed {before_ms:.1} ms before, {after_ms:.1} ms after",
            c.side
        );
        std::fs::write(
            dir.join(format!("{}.json", c.side)),
            serde_json::to_string_pretty(&r)? + "\n",
        )?;
        results.push(r);
        speeds.push(speed::Speed {
            side: c.side.clone(),
            before_ms,
            after_ms,
        });
        if cancel.is_cancelled() {
            break;
        }
    }
    Ok((results, speeds))
}

/// An error naming the first side whose loadgen run did not finish.
fn complete(results: &[side::SideResult]) -> Result<()> {
    match results.iter().find(|r| !r.complete) {
        Some(r) => bail!(
            "{} run incomplete: {}",
            r.controller.side,
            r.report.stopped_because.as_deref().unwrap_or("?")
        ),
        None => Ok(()),
    }
}

/// Writes `summary.md` into the results folder and prints it.
fn write_summary(dir: &Path, summary: &str) -> Result<()> {
    let path = dir.join("summary.md");
    std::fs::write(&path, summary).with_context(|| format!("write {}", path.display()))?;
    println!("{summary}\nresults: {}", dir.display());
    Ok(())
}

/// The `metrics` scenario: resource metrics served to a metrics-server-like scraper.
async fn run_metrics(flags: Flags) -> Result<()> {
    let o = metrics::Options {
        nodes: flags.nodes.unwrap_or(10_000),
        pods: flags.pods.unwrap_or(100_000),
        rounds: flags.rounds,
        scrape_concurrency: flags.scrape_concurrency,
        create_rate: flags
            .create_rate
            .unwrap_or(metrics::Options::default().create_rate),
        ..metrics::Options::default()
    };
    let kwokctl = flags.kwokctl.clone().map_or_else(|| sibling("kwokctl"), Ok)?;
    let (sides, _) = sides(&flags)?;
    let (date, dir) = results_dir(&flags.out, metrics::NAME)?;
    // Upstream's documents, both kwoks: its stages, its Metric and its usages.
    let mut configs = vec![write_upstream_stages(&dir, true)?];
    let module = go_mod_cache().join(format!("sigs.k8s.io/kwok@{UPSTREAM_VERSION}"));
    configs.extend(metrics::write_upstream_documents(&module, &dir)?);
    let (mut results, speeds) = each_side(&sides, &dir, async |c, log, cancel| {
        metrics::run_side(&kwokctl, c.clone(), &configs, &o, &log, cancel).await
    })
    .await?;
    // A side not run this time (`--only`) is read from an earlier run's JSON in the folder.
    for side in ["ours", "upstream"] {
        if results.iter().all(|r| r.controller.side != side)
            && let Ok(text) = std::fs::read_to_string(dir.join(format!("{side}.json")))
            && let Ok(r) = serde_json::from_str::<metrics::MetricsResult>(&text)
        {
            eprintln!("perf: {side}: from the earlier run's {side}.json");
            results.push(r);
        }
    }
    let find = |side: &str| results.iter().find(|r| r.controller.side == side);
    let summary = format!(
        "# perf {} — {date}\n\n{}\nScenario: {} nodes, {} pods bound to them ({} per node), usage annotations; \
         after a {:?} idle baseline, {} measured scrape rounds (plus one warm-up) every {:?} of every node's \
         `/metrics/nodes/{{node}}/metrics/resource`, {} in flight; creates at {}/s, {} in flight.\n\n{}",
        metrics::NAME,
        machine(&sides, &speeds),
        o.nodes,
        o.pods,
        o.pods / o.nodes.max(1),
        o.baseline,
        o.rounds,
        o.interval,
        o.scrape_concurrency,
        o.create_rate,
        o.create_concurrency,
        metrics::markdown(find("ours"), find("upstream")),
    );
    write_summary(&dir, &summary)?;
    Ok(())
}

/// The `capacity` scenario: nodes added in steps under pod churn until a step is not
/// held; the node count held is the figure.
async fn run_capacity(flags: Flags) -> Result<()> {
    let o = capacity::Options {
        step_nodes: flags.step_nodes,
        step_pods: flags.step_pods,
        churn_rate: flags.churn_rate,
        churn: std::time::Duration::from_secs(flags.churn_seconds),
        max_steps: flags.max_steps,
        create_rate: flags
            .create_rate
            .unwrap_or(capacity::Options::default().create_rate),
    };
    let kwokctl = flags.kwokctl.clone().map_or_else(|| sibling("kwokctl"), Ok)?;
    let (sides, upstream_wanted) = sides(&flags)?;
    let (date, dir) = results_dir(&flags.out, capacity::NAME)?;
    let stages = write_stages(upstream_wanted, &dir, true)?;
    let (results, speeds) = each_side(&sides, &dir, async |c, log, cancel| {
        capacity::run_side(&kwokctl, c.clone(), &stages, &o, &log, cancel).await
    })
    .await?;
    let find = |side: &str| results.iter().find(|r| r.controller.side == side);
    let summary = format!(
        "# perf {} — {date}\n\n{}\nScenario: steps of {} nodes and {} pods (kept), each churning {} pods/s for {:?} \
         after its pods run; creates at {}/s. A step is held when every node is Ready and pod Running, no node \
         Lease in the cluster expired during it and pod startup p99 stayed within {:?}.\n\n{}",
        capacity::NAME,
        machine(&sides, &speeds),
        o.step_nodes,
        o.step_pods,
        o.churn_rate,
        o.churn,
        o.create_rate,
        capacity::STARTUP_P99_SLO,
        capacity::markdown(find("ours"), find("upstream")),
    );
    write_summary(&dir, &summary)?;
    Ok(())
}

/// The `dra` scenario: GPU nodes and pods that each claim one device, run with our
/// kwok beside the same load of plain pods (upstream KWOK publishes no devices, so the
/// peer is the same cluster without DRA): what DRA costs the scheduler.
async fn run_dra(flags: Flags) -> Result<()> {
    let named = scenarios::named("dra").context("the dra scenario")?;
    let with = match flags.nodes {
        Some(nodes) => scenarios::with_gpu_nodes(&named, nodes),
        None => named,
    };
    let plain = scenarios::without_devices(&with);
    let kwokctl = flags.kwokctl.clone().map_or_else(|| sibling("kwokctl"), Ok)?;
    let kwok = flags.kwok.clone().map_or_else(|| sibling("kwok"), Ok)?;
    let sides = [
        controller("dra", kwok.clone(), flags.kwok_replicas, &flags)?,
        controller("plain", kwok, flags.kwok_replicas, &flags)?,
    ];
    let (date, dir) = results_dir(&flags.out, &format!("dra-{}", with.nodes))?;
    // Ours: with its GPU stages (upstream has none to compare).
    let stages = write_our_stages(&dir, true)?;
    let (results, speeds) = each_side(&sides, &dir, async |c, log, cancel| {
        let scenario = if c.side == "dra" { &with } else { &plain };
        let r = side::run(&kwokctl, c.clone(), &stages, scenario, &log, cancel).await?;
        eprintln!("{}", r.report.table());
        Ok(r)
    })
    .await?;
    let find = |side: &str| results.iter().find(|r| r.controller.side == side);
    let devices = find("dra").and_then(|r| r.report.devices.as_ref()).map_or(
        "not read (the run did not finish)".to_owned(),
        |d| {
            format!(
                "{} claims, {} allocated, {} distinct devices, {} allocated twice",
                d.claims, d.allocated_claims, d.devices, d.allocated_twice
            )
        },
    );
    let summary = format!(
        "# perf dra — {date}\n\n{}\nScenario: {} nodes labelled `{}={}` (kwok publishes a ResourceSlice of {} fake GPUs \
         each), {} pods ({:?}), target rate {}/s. `dra`: every pod claims one GPU through a ResourceClaimTemplate of \
         DeviceClass `{}`; `plain`: the same pods without claims.\n\nDevices (read from the claims once every pod \
         ran): {devices}.\n\n{}",
        machine(&sides, &speeds),
        with.nodes,
        scenarios::GPUS_LABEL,
        scenarios::GPUS_PER_NODE,
        scenarios::GPUS_PER_NODE,
        with.pods,
        with.pod_kind,
        with.rate,
        scenarios::GPU_CLASS,
        table::markdown_between(["dra", "plain"], find("dra"), find("plain")),
    );
    write_summary(&dir, &summary)?;
    complete(&results)
}

async fn run(flags: Flags) -> Result<()> {
    if flags.kwok_replicas > 1 && [metrics::NAME, capacity::NAME].contains(&flags.scenario.as_str()) {
        bail!(
            "--kwok-replicas {}: the {} scenario measures one kwok process; use a loadgen scenario",
            flags.kwok_replicas,
            flags.scenario
        );
    }
    if flags.floor && [metrics::NAME, capacity::NAME, "dra"].contains(&flags.scenario.as_str()) {
        bail!(
            "--floor: the {} scenario has no floor run; use a loadgen scenario",
            flags.scenario
        );
    }
    if flags.scenario == metrics::NAME {
        return run_metrics(flags).await;
    }
    if flags.scenario == capacity::NAME {
        return run_capacity(flags).await;
    }
    if flags.scenario == "dra" {
        return run_dra(flags).await;
    }
    let scenario = scenarios::named(&flags.scenario).with_context(|| {
        format!(
            "unknown scenario {:?} (one of {}, {}, {})",
            flags.scenario,
            scenarios::NAMES.join(", "),
            metrics::NAME,
            capacity::NAME
        )
    })?;
    let scenario = kwok_loadgen::Scenario {
        bind_pods: flags.bind_pods,
        pods_until: match flags.floor {
            true => PodsUntil::Scheduled,
            false => PodsUntil::Running,
        },
        rate: flags.create_rate.unwrap_or(scenario.rate),
        concurrency: flags.in_flight.unwrap_or(scenario.concurrency),
        ..scenario
    };
    scenario.validate().with_context(|| match flags.floor {
        true => format!("--floor with scenario {}", scenario.name),
        false => format!("scenario {}", scenario.name),
    })?;
    let kwokctl = flags.kwokctl.clone().map_or_else(|| sibling("kwokctl"), Ok)?;
    let (sides, upstream_wanted) = sides(&flags)?;

    let (date, dir) = results_dir(&flags.out, &scenario.name)?;
    let stages = write_stages(upstream_wanted, &dir, scenario.pods_until == PodsUntil::Running)?;
    let (results, speeds) = each_side(&sides, &dir, async |c, log, cancel| {
        let r = side::run(&kwokctl, c.clone(), &stages, &scenario, &log, cancel).await?;
        eprintln!("{}", r.report.table());
        Ok(r)
    })
    .await?;
    let find = |side: &str| results.iter().find(|r| r.controller.side == side);
    let summary = format!(
        "# perf {} — {date}\n\n{}\nScenario: {} nodes, {} pods ({:?}{}), target rate {}/s with {} in flight, churn {}/s for {:?}, hold {:?}.\n\n{}",
        scenario.name,
        machine(&sides, &speeds),
        scenario.nodes,
        scenario.pods,
        scenario.pod_kind,
        match (scenario.bind_pods, scenario.pods_until) {
            (true, _) => ", bound to the nodes: no scheduler",
            (false, PodsUntil::Scheduled) => {
                "; floor: kwok without pod stages, pods only scheduled, then deleted with grace 0"
            }
            (false, PodsUntil::Running) => "",
        },
        scenario.rate,
        scenario.concurrency,
        scenario.churn_rate,
        scenario.churn_duration,
        scenario.hold,
        table::markdown(find("ours"), find("upstream")),
    );
    write_summary(&dir, &summary)?;
    complete(&results)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PERF_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Flags::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("perf: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(argv: &[&str]) -> Flags {
        Flags::try_parse_from(std::iter::once("perf").chain(argv.iter().copied())).unwrap()
    }

    #[test]
    fn same_setup_should_give_both_sides_the_flags_or_upstream_kwokctls_defaults() {
        let plain = flags(&["small"]);
        for side in ["ours", "upstream"] {
            assert_eq!(priority(side, &plain).unwrap(), Priority::default());
        }
        let set = flags(&[
            "small",
            "--apf",
            "--kwok-auth",
            "token",
            "--control-plane-gogc",
            "250",
        ]);
        for side in ["ours", "upstream"] {
            let p = priority(side, &set).unwrap();
            assert_eq!(
                (p.apf, p.kwok.as_str(), p.auth.as_str(), p.gogc),
                (true, "exempt", "token", 250)
            );
        }
    }

    #[test]
    fn shipped_setup_should_give_each_side_its_own_kwokctls_defaults() {
        let shipped = flags(&["small", "--setup", "shipped", "--apf"]);
        let ours = priority("ours", &shipped).unwrap();
        assert_eq!(
            (ours.apf, ours.kwok.as_str(), ours.auth.as_str(), ours.gogc),
            (true, "node-high", "token", 400)
        );
        let upstream = priority("upstream", &shipped).unwrap();
        assert_eq!(
            upstream,
            Priority {
                apf: true,
                ..Priority::default()
            }
        );
        let err = priority(
            "ours",
            &flags(&["small", "--setup", "shipped", "--kwok-auth", "cert"]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("--setup shipped"), "{err}");
    }
}
