//! `kwokctl kubectl …`, `kwokctl etcdctl …` and `kwokctl kectl …`: the real tools,
//! pointed at the cluster.

use std::{os::unix::process::CommandExt, process::Command};

use anyhow::{Result, anyhow};

use crate::{
    binaries::{Binary, Finder},
    component::Component,
    options::DEFAULT_ETCD_PREFIX,
    paths::Workdir,
};

pub(super) fn kubectl(workdir: &Workdir, name: &str, args: Vec<String>, dry_run: bool) -> Result<()> {
    let (dir, config) = super::existing(workdir, name)?;
    let kubectl = super::cluster_finder(workdir, &config).locate(Binary::Kubectl, None, dry_run)?;
    run(
        Command::new(&kubectl)
            .arg(format!("--kubeconfig={}", dir.kubeconfig().display()))
            .args(args),
        dry_run,
    )
}

pub(super) fn etcdctl(workdir: &Workdir, name: &str, args: Vec<String>, dry_run: bool) -> Result<()> {
    let (_, config) = super::existing(workdir, name)?;
    let etcdctl = super::cluster_finder(workdir, &config).locate(Binary::Etcdctl, None, dry_run)?;
    let endpoint = format!("--endpoints=http://127.0.0.1:{}", config.options.etcd_port);
    run(Command::new(&etcdctl).arg(endpoint).args(args), dry_run)
}

/// kectl on the cluster's etcd (loopback HTTP, so no TLS flags), as upstream's
/// `KectlInCluster` runs it; built from the pinned module on first use.
pub(super) fn kectl(workdir: &Workdir, name: &str, args: Vec<String>, dry_run: bool) -> Result<()> {
    let (dir, config) = super::existing(workdir, name)?;
    super::running::ensure(&dir, name, Component::Etcd)?;
    let kectl = Finder::new(workdir.cache()).locate(Binary::Kectl, None, dry_run)?;
    let args = kectl_args(config.options.etcd_port, &config.options.etcd_prefix, args);
    run(Command::new(&kectl).args(args), dry_run)
}

/// Replaces this process with `command`, or in a dry run prints it as a shell line
/// (upstream's dry run prints the tools it would run, and runs none).
fn run(command: &mut Command, dry_run: bool) -> Result<()> {
    if dry_run {
        let words: Vec<String> = std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|w| crate::shell::quote(&w.to_string_lossy()))
            .collect();
        println!("{}", words.join(" "));
        return Ok(());
    }
    exec(command)
}

/// kectl's verbs that read or write keys; each has its own `--prefix` flag.
const KECTL_KEY_VERBS: [&str; 6] = ["get", "put", "delete", "del", "record", "replay"];

/// `--endpoints` first (a later one of the user's wins), then the user's arguments.
/// kectl's `--prefix` defaults to `/registry`; a cluster made with another
/// `--etcd-prefix` gets it after the verb (the flag exists only on the verbs) unless
/// the user gave one.
fn kectl_args(etcd_port: u16, etcd_prefix: &str, mut args: Vec<String>) -> Vec<String> {
    let given = |a: &String| a == "--prefix" || a.starts_with("--prefix=");
    let verb = args
        .iter()
        .take_while(|a| *a != "--")
        .position(|a| KECTL_KEY_VERBS.contains(&a.as_str()));
    if let Some(verb) = verb.filter(|_| etcd_prefix != DEFAULT_ETCD_PREFIX && !args.iter().any(given)) {
        args.insert(verb + 1, format!("--prefix={etcd_prefix}"));
    }
    let mut all = vec![format!("--endpoints=http://127.0.0.1:{etcd_port}")];
    all.extend(args);
    all
}

/// Replaces kwokctl with the tool: its exit code, stdin and terminal are the user's.
fn exec(command: &mut Command) -> Result<()> {
    let err = command.exec();
    Err(anyhow!(
        "failed to run {}: {err}",
        command.get_program().to_string_lossy()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command line, split at spaces.
    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn kectl_should_get_the_endpoint_first_and_every_argument_untouched() {
        assert_eq!(
            kectl_args(2379, "/registry", args("get pod -n default -o yaml")),
            args("--endpoints=http://127.0.0.1:2379 get pod -n default -o yaml")
        );
    }

    #[test]
    fn kectl_should_get_a_custom_etcd_prefix_after_its_verb_unless_given() {
        assert_eq!(
            kectl_args(1, "/p", args("--dial-timeout 5s snapshot record --path r")),
            args("--endpoints=http://127.0.0.1:1 --dial-timeout 5s snapshot record --prefix=/p --path r")
        );
        assert_eq!(
            kectl_args(1, "/p", args("del cm --prefix /q")),
            args("--endpoints=http://127.0.0.1:1 del cm --prefix /q")
        );
        // No verb (help, completion): kectl would refuse an unknown --prefix.
        assert_eq!(
            kectl_args(1, "/p", args("--help")),
            args("--endpoints=http://127.0.0.1:1 --help")
        );
    }
}
