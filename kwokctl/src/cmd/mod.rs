//! One module per kwokctl verb.

mod artifacts;
mod completion;
mod config;
mod create;
mod create_files;
mod delete;
mod export;
mod get;
mod images;
mod lifecycle;
mod logs;
mod passthrough;
mod port_forward;
mod register;
mod running;
mod scale;
mod snapshot;

use anyhow::{Result, bail};

use crate::{
    binaries::{Binary, Downloads, Finder},
    config::ClusterConfig,
    flags::{Cli, ClusterOnly, Command, CreateCommand, DeleteCommand, StartCommand},
    kube_version::Versions,
    paths::{ClusterDir, Workdir},
};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let workdir = Workdir::from_env();
    let name = cli.name.as_str();
    let dry_run = cli.dry_run;
    match cli.command {
        Command::Create(CreateCommand::Cluster(args)) => {
            create::cluster(&workdir, name, &cli.config, args, dry_run).await
        }
        Command::Delete(DeleteCommand::Cluster(args)) => delete::clusters(&workdir, name, &args, dry_run),
        Command::Get(what) => get::run(&workdir, name, what).await,
        Command::Start(StartCommand::Cluster(args)) => lifecycle::start(&workdir, name, &args, dry_run).await,
        Command::Stop(ClusterOnly::Cluster) => lifecycle::stop(&workdir, name, dry_run),
        Command::Kubectl(pass) => passthrough::kubectl(&workdir, name, pass.args, dry_run),
        Command::Etcdctl(pass) => passthrough::etcdctl(&workdir, name, pass.args, dry_run),
        Command::Kectl(pass) => passthrough::kectl(&workdir, name, pass.args, dry_run),
        Command::Logs(args) => logs::run(&workdir, name, &args.component, args.follow).await,
        Command::Install => install(&workdir, dry_run),
        Command::Config(what) => config::run(&workdir, &cli.config, what, dry_run),
        Command::Export(what) => export::run(&workdir, name, what),
        Command::PortForward(args) => port_forward::run(&workdir, name, args, dry_run).await,
        Command::Scale(args) => scale::run(&workdir, name, &cli.config, args, dry_run).await,
        Command::Snapshot(what) => snapshot::run(&workdir, name, what, dry_run).await,
        Command::Completion(args) => completion::run(args.shell),
    }
}

/// `install`: downloads, else builds, the missing control-plane binaries (the pinned
/// versions, or `KWOK_KUBE_VERSION`'s), or in a dry run names them.
fn install(workdir: &Workdir, dry_run: bool) -> Result<()> {
    let kube = std::env::var("KWOK_KUBE_VERSION").ok();
    let finder = Finder::new(workdir.cache())
        .versions(Versions::for_kube(kube.as_deref())?)
        .downloads(Downloads::from_env());
    if !dry_run {
        return Ok(finder.install(&Binary::GO_BUILT)?);
    }
    for binary in Binary::GO_BUILT {
        if finder.find(binary, None)?.is_none() {
            println!(
                "# download or build {} {} into {}",
                binary.name(),
                finder.version_of(binary),
                finder.cache_path(binary).display()
            );
        }
    }
    Ok(())
}

/// A finder for the binaries of an existing cluster, at the versions it was made with.
fn cluster_finder(workdir: &Workdir, config: &ClusterConfig) -> Finder {
    Finder::new(workdir.cache())
        .versions(config.options.versions())
        .downloads(Downloads::from_env())
}

/// The folder and configuration of an existing cluster.
fn existing(workdir: &Workdir, name: &str) -> Result<(ClusterDir, ClusterConfig)> {
    let dir = workdir.cluster(name);
    if !dir.config().exists() {
        bail!("cluster {name:?} does not exist (no {})", dir.config().display());
    }
    let config = ClusterConfig::load(&dir.config())?;
    Ok((dir, config))
}
