//! `kwokctl kubectl …` and `kwokctl etcdctl …`: the real tools, pointed at the cluster.

use std::{os::unix::process::CommandExt, process::Command};

use anyhow::{Result, anyhow};

use crate::{
    binaries::{Binary, Finder},
    paths::Workdir,
};

pub(super) fn kubectl(workdir: &Workdir, name: &str, args: Vec<String>) -> Result<()> {
    let (dir, _) = super::existing(workdir, name)?;
    let kubectl = Finder::new(workdir.cache()).find_or_build(Binary::Kubectl, None)?;
    exec(
        Command::new(&kubectl)
            .arg(format!("--kubeconfig={}", dir.kubeconfig().display()))
            .args(args),
    )
}

pub(super) fn etcdctl(workdir: &Workdir, name: &str, args: Vec<String>) -> Result<()> {
    let (_, config) = super::existing(workdir, name)?;
    let etcdctl = Finder::new(workdir.cache()).find_or_build(Binary::Etcdctl, None)?;
    let endpoint = format!("--endpoints=http://127.0.0.1:{}", config.options.etcd_port);
    exec(Command::new(&etcdctl).arg(endpoint).args(args))
}

/// Replaces kwokctl with the tool: its exit code, stdin and terminal are the user's.
fn exec(command: &mut Command) -> Result<()> {
    let err = command.exec();
    Err(anyhow!(
        "failed to run {}: {err}",
        command.get_program().to_string_lossy()
    ))
}
