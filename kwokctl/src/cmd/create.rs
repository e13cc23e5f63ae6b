//! `kwokctl create cluster`.
//!
//! Everything that can be checked is checked before the cluster folder exists (name,
//! runtime, ports, binaries); after that, any failure stops what was started and
//! removes the folder, so nothing is left half-made.
//!
//! `--timeout` bounds the whole command, from its start: a control-plane build still
//! running then is stopped, and a launch still waiting for health is aborted like any
//! failed start (processes stopped, folder removed).

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use tracing::info;

use super::create_files::{check_inputs, dry_run_script, extra_files, prometheus_binary};
use crate::{
    auth::{self, KwokAuth},
    binaries::{Binary, Finder},
    component::Component,
    components::{self, Binaries, ComponentSpec, Context, metrics_server},
    config::{API_VERSION, ClusterConfig, KIND, Metadata},
    flags::CreateClusterArgs,
    kubeconfig::{self, Credential},
    launch::Launch,
    paths::{ClusterDir, Workdir},
    pki,
    ports::Allocator,
    probe::Prober,
    runtime::{self, Runtime},
    settings::Settings,
    userconfig::UserConfig,
};

pub(super) async fn cluster(
    workdir: &Workdir,
    name: &str,
    config_files: &[PathBuf],
    args: CreateClusterArgs,
    dry_run: bool,
) -> Result<()> {
    let started = Instant::now();
    let timeout = args.timeout;
    let deadline = timeout.map(|t| started + t);
    validate_name(name)?;
    let user = UserConfig::load(config_files, &workdir.default_config())?;
    let mut settings = Settings::resolve(&args, &user)?;
    settings.dry_run = dry_run;
    check_inputs(&settings)?;
    // A dry run asks no engine, as upstream.
    let runtime = match dry_run {
        true => runtime::of(&settings.options.runtime)?,
        false => runtime::select(&settings.options.runtime)?,
    };
    let dir = workdir.cluster(name);
    if dir.root().exists() {
        bail!(
            "cluster {name:?} already exists ({}); delete it first with `kwokctl delete cluster --name {name}`",
            dir.root().display()
        );
    }
    if settings.runs(Component::MetricsServer) {
        // kwok serves the kubelet's resource metrics and each pod's usage by these.
        let defaults =
            metrics_server::kwok_documents(&settings.kwok_documents, &settings.options.enable_crds);
        settings.kwok_documents.extend(defaults);
    }
    let mut ports = Allocator::default();
    let mut options = settings.options.clone();
    options.allocate_ports(&mut ports)?;
    options.kwok_config = (!settings.kwok_documents.is_empty()).then(|| dir.kwok_config());
    options.kwok_controller_config = args
        .kwok_controller_config
        .iter()
        .map(|p| fs::canonicalize(p).with_context(|| format!("--kwok-controller-config {}", p.display())))
        .collect::<Result<_>>()?;
    let finder = Finder::new(workdir.cache())
        .deadline(deadline)
        .versions(settings.options.versions())
        .downloads(settings.downloads.clone());
    finder.check_served()?;
    let binaries = resolve_binaries(&finder, &args, &settings).map_err(|e| expired(e, timeout, deadline))?;
    if options.kwok_replicas > 1 && settings.runs(Component::KwokController) && !binaries.kwok_tunnel {
        bail!(
            "--kwok-replicas {}: more than one kwok needs this project's kwok (--scale-out), \
             which --kwok-controller-binary's lacks",
            options.kwok_replicas
        );
    }
    let ctx = Context {
        options: &options,
        dir: &dir,
    };
    let mut planned = components::plan(&ctx, &binaries);
    planned.retain(|c| settings.runs(c.name));
    components::tune_go_runtime(&mut planned, options.control_plane_gogc, memory_total());
    components::apply_patches(&mut planned, &settings.patches)?;
    // Images are a cache shared by clusters, like binaries: a failed create keeps them.
    runtime
        .prepare(&mut planned, settings.dry_run)
        .map_err(|e| expired(e, timeout, deadline))?;
    let files = extra_files(&ctx, &settings, &planned)?;
    let config = ClusterConfig {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        metadata: Metadata { name: name.into() },
        components: planned,
        options,
    };
    let volumes = settings.patches.iter().flat_map(|p| &p.extra_volumes);
    if settings.dry_run {
        volumes
            .filter_map(|v| v.create_command())
            .for_each(|c| println!("{c}"));
        print!("{}", dry_run_script(&dir, &config, &files, runtime.as_ref()));
        return Ok(());
    }
    // `*OrCreate` host paths are made now, as the kubelet makes them before a container
    // starts, and removed again if the cluster is not made.
    let mut made_paths = Vec::new();
    let unmake = |made: &[PathBuf]| {
        for path in made.iter().rev() {
            let _ = fs::remove_dir_all(path).or_else(|_| fs::remove_file(path));
        }
    };
    for v in volumes {
        match v.create_missing() {
            Ok(made) => made_paths.extend(made),
            Err(e) => {
                unmake(&made_paths);
                return Err(e).with_context(|| {
                    format!(
                        "failed to create the host path {} of volume {:?}",
                        v.host_path.display(),
                        v.name
                    )
                });
            }
        }
    }
    // Free the held ports just before the components bind them.
    drop(ports);
    let user_kubeconfig = &settings.kubeconfig();
    let mut wait_until = Instant::now() + settings.wait;
    if let Some(deadline) = deadline {
        wait_until = wait_until.min(deadline);
    }
    if let Err(err) = make(
        &dir,
        &config,
        &files,
        runtime.as_ref(),
        wait_until,
        user_kubeconfig,
    )
    .await
    {
        let _ = kubeconfig::remove_from(user_kubeconfig, name);
        super::export::save_logs(runtime.as_ref(), &dir, &config);
        if let Err(e) = runtime.remove_all(&dir) {
            tracing::warn!(cluster = name, "failed to remove what the runtime made: {e}");
        }
        let logs = keep_logs(&dir, name);
        let _ = fs::remove_dir_all(dir.root());
        unmake(&made_paths);
        return Err(expired(err, timeout, deadline).context(format!(
            "failed to create cluster {name:?} (logs kept in {logs}; nothing else)"
        )));
    }
    println!(
        "Cluster {name:?} is ready in {:.1}s; context {:?} added to {}",
        started.elapsed().as_secs_f64(),
        kubeconfig::context_name(name),
        user_kubeconfig.display()
    );
    Ok(())
}

/// `err`, said to be the `--timeout` when its deadline has passed.
fn expired(
    err: impl Into<anyhow::Error>,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
) -> anyhow::Error {
    let err = err.into();
    match (timeout, deadline) {
        (Some(timeout), Some(deadline)) if Instant::now() >= deadline => err.context(format!(
            "--timeout {} passed",
            humantime::format_duration(timeout)
        )),
        _ => err,
    }
}

/// Writes the folder, starts every component (each healthy by `deadline`) and merges
/// the kubeconfig context.
async fn make(
    dir: &ClusterDir,
    config: &ClusterConfig,
    files: &[(PathBuf, String)],
    runtime: &dyn Runtime,
    deadline: Instant,
    user_kubeconfig: &Path,
) -> Result<()> {
    write_files(dir, config)?;
    for (path, text) in files {
        fs::write(path, text).with_context(|| format!("failed to write {}", path.display()))?;
    }
    let prober = Prober::from_kubeconfig(&dir.kubeconfig()).await?;
    let mut launch = Launch::new(dir, runtime);
    if let Err(err) = start_components(dir, config, &mut launch, &prober, deadline).await {
        launch.abort();
        return Err(err);
    }
    let admin = kubeconfig::read_or_empty(&dir.kubeconfig())?;
    kubeconfig::merge_into(user_kubeconfig, &admin)?;
    Ok(())
}

/// Starts the components and creates the fake DRA drivers' DeviceClasses: the kwok
/// controllers once kwok's RBAC and flow schema exist (`--kwok-priority node-high`: its
/// readiness waits for its first lists, which need the RBAC); metrics-server last, once
/// its RBAC, Service and APIService exist (its health check waits for its informers,
/// which need the RBAC), and then waits until its APIService is Available.
async fn start_components(
    dir: &ClusterDir,
    config: &ClusterConfig,
    launch: &mut Launch<'_>,
    prober: &Prober,
    deadline: Instant,
) -> Result<()> {
    let (aggregated, core): (Vec<ComponentSpec>, Vec<ComponentSpec>) = config
        .components
        .iter()
        .cloned()
        .partition(|c| c.name == Component::MetricsServer);
    let (kwok, control_plane): (Vec<ComponentSpec>, Vec<ComponentSpec>) = core
        .into_iter()
        .partition(|c| c.name == Component::KwokController);
    launch.up(&control_plane, prober, deadline).await?;
    // Nothing for a kwok that is not run here (`--disable kwok-controller`, e.g. to run
    // shards/deploy/ in the cluster instead).
    if !kwok.is_empty() {
        super::register::kwok_objects(dir, config.options.kwok_priority).await?;
        launch.run(&kwok, prober, deadline).await?;
    }
    super::register::dra_objects(dir).await?;
    let Some(metrics_server) = aggregated.first() else {
        return Ok(());
    };
    super::register::metrics_server_objects(dir, metrics_server.port).await?;
    launch.run(&aggregated, prober, deadline).await?;
    super::register::wait_metrics_server_available(dir, deadline).await
}

fn write_files(dir: &ClusterDir, config: &ClusterConfig) -> Result<()> {
    for folder in dir.folders() {
        fs::create_dir_all(&folder).with_context(|| format!("failed to create {}", folder.display()))?;
    }
    let pki = dir.pki();
    let kwok_priority = config.options.kwok_priority;
    pki::generate(&pki, kwok_priority)?;
    let name = &config.metadata.name;
    let server = format!("https://127.0.0.1:{}", config.options.kube_apiserver_port);
    kubeconfig::write(
        &dir.kubeconfig(),
        &kubeconfig::build(name, &server, &pki, Credential::Certificate("admin"))?,
    )?;
    let kwok_token = match config.options.kwok_auth {
        KwokAuth::Token => {
            let file = pki.token_auth_file();
            let token = auth::write_token_file(&file, kwok_priority)
                .with_context(|| format!("failed to write {}", file.display()))?;
            Some(token)
        }
        KwokAuth::Cert => None,
    };
    for client in pki::clients(kwok_priority).filter(|c| c.file != "admin") {
        let credential = match &kwok_token {
            Some(token) if client.file == Component::KwokController.as_str() => Credential::Token(token),
            _ => Credential::Certificate(client.file),
        };
        let config = kubeconfig::build(name, &server, &pki, credential)?;
        kubeconfig::write(&dir.component_kubeconfig(client.file), &config)?;
    }
    config.save(&dir.config())?;
    info!(dir = %dir.root().display(), "cluster files written");
    Ok(())
}

/// Moves the logs of a failed cluster out of its folder (about to be removed) into
/// the temp dir, where they explain the failure without looking like a cluster.
fn keep_logs(dir: &ClusterDir, name: &str) -> String {
    let kept = std::env::temp_dir().join(format!("kwokctl-{name}-logs-{}", std::process::id()));
    let _ = fs::remove_dir_all(&kept);
    match fs::rename(dir.logs(), &kept) {
        Ok(()) => kept.display().to_string(),
        Err(_) => "nowhere: they could not be moved".into(),
    }
}

/// Whether the kwok at `binary` is this project's (its flags name `--client-ca-file`);
/// one that cannot be asked (a dry run's path not built yet) is taken to be.
fn serves_tunnel(binary: &Path) -> bool {
    match std::process::Command::new(binary).arg("--help").output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout).contains("--client-ca-file"),
        Err(_) => true,
    }
}

fn resolve_binaries(finder: &Finder, args: &CreateClusterArgs, s: &Settings) -> Result<Binaries> {
    // A dry run builds nothing: it names where the binary would be.
    let find = |binary: Binary, explicit: &Option<PathBuf>| -> Result<PathBuf> {
        Ok(finder.locate(binary, explicit.as_deref(), s.dry_run)?)
    };
    let prometheus = if s.runs(Component::Prometheus) {
        Some(prometheus_binary(args.prometheus_binary.as_deref())?)
    } else {
        None
    };
    let kwok = find(Binary::Kwok, &args.kwok_controller_binary)?;
    Ok(Binaries {
        // No tunnel without a kwok run here to serve it: the apiserver then reaches nodes
        // (real kubelets, or a kwok deployed into the cluster) at their own addresses.
        kwok_tunnel: s.runs(Component::KwokController) && serves_tunnel(&kwok),
        etcd: find(Binary::Etcd, &args.etcd_binary)?,
        kube_apiserver: find(Binary::KubeApiserver, &args.kube_apiserver_binary)?,
        kube_controller_manager: find(
            Binary::KubeControllerManager,
            &args.kube_controller_manager_binary,
        )?,
        kube_scheduler: find(Binary::KubeScheduler, &args.kube_scheduler_binary)?,
        kwok,
        prometheus,
        // Built (a long Go build the first time) only for a cluster that runs it.
        jaeger: match s.runs(Component::Jaeger) {
            true => Some(find(Binary::Jaeger, &args.jaeger_binary)?),
            false => None,
        },
        metrics_server: match s.runs(Component::MetricsServer) {
            true => Some(find(Binary::MetricsServer, &args.metrics_server_binary)?),
            false => None,
        },
    })
}

/// The machine's memory in bytes (`MemTotal` of `/proc/meminfo`); `None` where there is
/// no such file (the Go control plane then gets no GOMEMLIMIT).
fn memory_total() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_total(&meminfo)
}

fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

/// Cluster names become folder names and kubeconfig entries: DNS labels only.
fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        bail!("invalid cluster name {name:?}: use lower-case letters, digits and '-' (at most 63)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_should_be_read_in_bytes() {
        let meminfo = "MemTotal:       24683784 kB\nMemFree:         1000 kB\n";
        assert_eq!(parse_mem_total(meminfo), Some(24_683_784 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_mem_total("MemTotal: lots\n"), None);
    }

    #[test]
    fn validate_name_should_accept_dns_labels_only() {
        assert!(validate_name("kwok").is_ok());
        assert!(validate_name("a-1").is_ok());
        for bad in ["", "-a", "a-", "A", "a/b", "a.b", &"x".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
