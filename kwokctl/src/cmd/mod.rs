//! One module per kwokctl verb.

mod completion;
mod create;
mod delete;
mod get;
mod lifecycle;
mod logs;
mod passthrough;
mod running;
mod scale;
mod snapshot;

use anyhow::{Result, bail};

use crate::{
    binaries::{Binary, Finder},
    config::ClusterConfig,
    flags::{Cli, ClusterOnly, Command, CreateCommand, DeleteCommand},
    paths::{ClusterDir, Workdir},
};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let workdir = Workdir::from_env();
    let name = cli.name.as_str();
    match cli.command {
        Command::Create(CreateCommand::Cluster(args)) => create::cluster(&workdir, name, args).await,
        Command::Delete(DeleteCommand::Cluster { all }) => delete::clusters(&workdir, name, all),
        Command::Get(what) => get::run(&workdir, name, what),
        Command::Start(ClusterOnly::Cluster) => lifecycle::start(&workdir, name).await,
        Command::Stop(ClusterOnly::Cluster) => lifecycle::stop(&workdir, name),
        Command::Kubectl(pass) => passthrough::kubectl(&workdir, name, pass.args),
        Command::Etcdctl(pass) => passthrough::etcdctl(&workdir, name, pass.args),
        Command::Logs(args) => logs::run(&workdir, name, &args.component, args.follow).await,
        Command::Install => Ok(Finder::new(workdir.cache()).build(&Binary::GO_BUILT)?),
        Command::Scale(args) => scale::run(&workdir, name, args).await,
        Command::Snapshot(what) => snapshot::run(&workdir, name, what).await,
        Command::Completion(args) => completion::run(args.shell),
    }
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
