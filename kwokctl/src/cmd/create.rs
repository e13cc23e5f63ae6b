//! `kwokctl create cluster`.
//!
//! Everything that can be checked is checked before the cluster folder exists (name,
//! runtime, ports, binaries); after that, any failure stops what was started and
//! removes the folder, so nothing is left half-made.

use std::{
    fs,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use tracing::info;

use crate::{
    binaries::{Binary, ETCD_VERSION, Finder, KUBE_VERSION},
    components::{self, Binaries, Context},
    config::{API_VERSION, ClusterConfig, KIND, Metadata, Options},
    flags::CreateClusterArgs,
    kubeconfig,
    launch::Launch,
    paths::{ClusterDir, Workdir},
    pki::{self, CLIENTS},
    ports::Allocator,
    probe::Prober,
    runtime::{self, BinaryRuntime},
};

pub(super) async fn cluster(workdir: &Workdir, name: &str, args: CreateClusterArgs) -> Result<()> {
    let started = Instant::now();
    validate_name(name)?;
    let runtime = runtime::select(&args.runtime)?;
    let dir = workdir.cluster(name);
    if dir.root().exists() {
        bail!(
            "cluster {name:?} already exists ({}); delete it first with `kwokctl delete cluster --name {name}`",
            dir.root().display()
        );
    }
    let mut ports = Allocator::default();
    let options = resolve_options(&mut ports, &args)?;
    let binaries = resolve_binaries(&Finder::new(workdir.cache()), &args)?;
    let config = ClusterConfig {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        metadata: Metadata { name: name.into() },
        components: components::plan(
            &Context {
                options: &options,
                dir: &dir,
            },
            &binaries,
        ),
        options,
    };
    // Free the held ports just before the components bind them.
    drop(ports);
    if let Err(err) = make(&dir, &config, runtime, args.wait).await {
        let _ = kubeconfig::remove_from(&kubeconfig::user_kubeconfig_path(), name);
        let logs = keep_logs(&dir, name);
        let _ = fs::remove_dir_all(dir.root());
        return Err(err.context(format!(
            "failed to create cluster {name:?} (logs kept in {logs}; nothing else)"
        )));
    }
    println!(
        "Cluster {name:?} is ready in {:.1}s; context {:?} added to {}",
        started.elapsed().as_secs_f64(),
        kubeconfig::context_name(name),
        kubeconfig::user_kubeconfig_path().display()
    );
    Ok(())
}

/// Writes the folder, starts every component and merges the kubeconfig context.
async fn make(
    dir: &ClusterDir,
    config: &ClusterConfig,
    runtime: BinaryRuntime,
    wait: Duration,
) -> Result<()> {
    let deadline = Instant::now() + wait;
    write_files(dir, config)?;
    let prober = Prober::from_kubeconfig(&dir.kubeconfig()).await?;
    let mut launch = Launch::new(dir, runtime);
    if let Err(err) = launch.run(&config.components, &prober, deadline).await {
        launch.abort();
        return Err(err.into());
    }
    let admin = kubeconfig::read_or_empty(&dir.kubeconfig())?;
    kubeconfig::merge_into(&kubeconfig::user_kubeconfig_path(), &admin)?;
    Ok(())
}

fn write_files(dir: &ClusterDir, config: &ClusterConfig) -> Result<()> {
    for folder in dir.folders() {
        fs::create_dir_all(&folder).with_context(|| format!("failed to create {}", folder.display()))?;
    }
    let pki = dir.pki();
    pki::generate(&pki)?;
    let name = &config.metadata.name;
    let server = format!("https://127.0.0.1:{}", config.options.kube_apiserver_port);
    kubeconfig::write(
        &dir.kubeconfig(),
        &kubeconfig::build(name, &server, &pki, "admin")?,
    )?;
    for client in CLIENTS.iter().filter(|c| c.file != "admin") {
        let config = kubeconfig::build(name, &server, &pki, client.file)?;
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

fn resolve_options(ports: &mut Allocator, args: &CreateClusterArgs) -> Result<Options> {
    Ok(Options {
        runtime: args.runtime.clone(),
        kube_version: KUBE_VERSION.clone(),
        etcd_version: ETCD_VERSION.clone(),
        kube_apiserver_port: ports.port("--kube-apiserver-port", args.kube_apiserver_port)?,
        etcd_port: ports.port("--etcd-port", args.etcd_port)?,
        etcd_peer_port: ports.port("etcd peer", None)?,
        kube_controller_manager_port: ports.port("kube-controller-manager", None)?,
        kube_scheduler_port: ports.port("kube-scheduler", None)?,
        kwok_controller_port: ports.port("kwok-controller", None)?,
        disable_qps_limits: args.disable_qps_limits,
        kwok_controller_config: args
            .kwok_controller_config
            .iter()
            .map(|p| fs::canonicalize(p).with_context(|| format!("--kwok-controller-config {}", p.display())))
            .collect::<Result<_>>()?,
    })
}

fn resolve_binaries(finder: &Finder, args: &CreateClusterArgs) -> Result<Binaries> {
    let find =
        |binary, explicit: &Option<std::path::PathBuf>| finder.find_or_build(binary, explicit.as_deref());
    Ok(Binaries {
        etcd: find(Binary::Etcd, &args.etcd_binary)?,
        kube_apiserver: find(Binary::KubeApiserver, &args.kube_apiserver_binary)?,
        kube_controller_manager: find(
            Binary::KubeControllerManager,
            &args.kube_controller_manager_binary,
        )?,
        kube_scheduler: find(Binary::KubeScheduler, &args.kube_scheduler_binary)?,
        kwok: find(Binary::Kwok, &args.kwok_controller_binary)?,
    })
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
    fn validate_name_should_accept_dns_labels_only() {
        assert!(validate_name("kwok").is_ok());
        assert!(validate_name("a-1").is_ok());
        for bad in ["", "-a", "a-", "A", "a/b", "a.b", &"x".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
