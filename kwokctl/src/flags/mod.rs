//! Command-line flags, parsed into plain values with no I/O (upstream kwokctl's names).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod cluster;
mod completion;
mod create;
mod scale;
mod snapshot;
mod tools;

pub use cluster::{
    ArtifactFilter, ArtifactsArgs, ClusterOnly, DeleteClusterArgs, DeleteCommand, GetCommand, KubeconfigArgs,
    Output, OutputArgs, StartClusterArgs, StartCommand,
};
pub use completion::CompletionArgs;
pub use create::{ClusterOptions, CreateClusterArgs, CreateCommand};
pub use scale::ScaleArgs;
pub use snapshot::{ExportArgs, Format, RecordArgs, ReplayArgs, SnapshotArgs, SnapshotCommand};
pub use tools::{ConfigCommand, ExportCommand, LogsArgs, PassThrough, PortForwardArgs};

/// kwokctl creates and manages clusters of real control-plane processes with fake
/// nodes and pods driven by the kwok controller.
#[derive(Debug, Parser)]
// The last of a repeated flag wins, as with upstream's Go flags (`--wait 0s --wait=15m`).
#[command(
    name = "kwokctl",
    version,
    about,
    propagate_version = true,
    args_override_self = true
)]
pub struct Cli {
    /// Cluster name; valid before or after the subcommand.
    #[arg(long, global = true, default_value = "kwok", env = "KWOK_NAME")]
    pub name: String,

    /// Configuration file (KwokctlConfiguration, KwokctlResource, Stage and KwokConfiguration documents);
    /// repeatable [default: ~/.kwok/kwok.yaml, under $KWOK_WORKDIR]
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Vec<PathBuf>,

    /// Print what would be done (commands, files, objects) and change nothing.
    #[arg(long, global = true, env = "KWOK_DRY_RUN")]
    pub dry_run: bool,

    /// Log level as upstream's: DEBUG, INFO, WARN, ERROR, a name with an offset
    /// (INFO-4), or a number (-4, 0, 4, 8). `KWOK_LOG` wins when set [default: WARN;
    /// what kwokctl did is printed on stdout]
    #[arg(short = 'v', long = "v", global = true, value_parser = kwok_engine::verbosity::parse_level,
          allow_hyphen_values = true)]
    pub verbosity: Option<i64>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands that run another program: every word after one of them is that
/// program's, as upstream's (cobra's `DisableFlagParsing`), so `kwokctl kubectl -v 6`
/// and `kwokctl kubectl --dry-run=client` reach kubectl.
const PASS_THROUGH: [&str; 3] = ["kubectl", "etcdctl", "kectl"];

impl Cli {
    /// Parses `args` (with the program name first) as clap does, except that what
    /// follows a pass-through subcommand is handed to it untouched.
    pub fn parse_passing_through(args: impl IntoIterator<Item = std::ffi::OsString>) -> Self {
        let args: Vec<std::ffi::OsString> = args.into_iter().collect();
        let Some(verb) = pass_through_verb(&args) else {
            return Self::parse_from(args);
        };
        let mut cli = Self::parse_from(&args[..=verb]);
        let rest = args[verb + 1..]
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        if let Command::Kubectl(pass) | Command::Etcdctl(pass) | Command::Kectl(pass) = &mut cli.command {
            pass.args = rest;
        }
        cli
    }
}

/// Index of the first subcommand word when it is a pass-through one.
fn pass_through_verb(args: &[std::ffi::OsString]) -> Option<usize> {
    // The global flags that take the next word as their value, as clap defines them.
    let command = <Cli as clap::CommandFactory>::command();
    let valued: Vec<String> = command
        .get_arguments()
        .filter(|a| a.is_global_set() && a.get_action().takes_values())
        .flat_map(|a| {
            let long = a.get_long().map(|l| format!("--{l}"));
            let short = a.get_short().map(|s| format!("-{s}"));
            long.into_iter().chain(short)
        })
        .collect();
    let mut i = 1;
    while let Some(word) = args.get(i).and_then(|a| a.to_str()) {
        if valued.iter().any(|v| v == word) {
            i += 2;
        } else if word.starts_with('-') {
            i += 1;
        } else {
            return PASS_THROUGH.contains(&word).then_some(i);
        }
    }
    None
}

/// Subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // reason: parsed once per run; boxing buys nothing.
pub enum Command {
    /// Creates a resource.
    #[command(subcommand)]
    Create(CreateCommand),
    /// Deletes a resource.
    #[command(subcommand)]
    Delete(DeleteCommand),
    /// Shows resources.
    #[command(subcommand)]
    Get(GetCommand),
    /// Starts a stopped cluster with its data, or the components of a running one that
    /// died or were killed.
    #[command(subcommand)]
    Start(StartCommand),
    /// Stops a cluster, keeping its data.
    #[command(subcommand)]
    Stop(ClusterOnly),
    /// Runs kubectl against the cluster (every argument is passed on).
    Kubectl(PassThrough),
    /// Runs etcdctl against the cluster's etcd (every argument is passed on).
    Etcdctl(PassThrough),
    /// [experimental] Runs kectl, kubectl-like commands straight on the cluster's etcd
    /// (every argument is passed on; built on first use).
    Kectl(PassThrough),
    /// Prints the log of a component.
    Logs(LogsArgs),
    /// Builds the pinned control-plane binaries into the cache (skips what is there).
    Install,
    /// Shows or manages the configuration file (~/.kwok/kwok.yaml).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Exports cluster data.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Forwards a local port to a component's port.
    PortForward(PortForwardArgs),
    /// Creates or deletes objects of any kind from a template until there are exactly N.
    Scale(ScaleArgs),
    /// Saves and restores clusters.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Prints a shell completion script.
    Completion(CompletionArgs),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_should_be_accepted_before_and_after_the_subcommand() {
        let before = Cli::try_parse_from(["kwokctl", "--name", "x", "get", "kubeconfig"]).unwrap();
        let after = Cli::try_parse_from(["kwokctl", "get", "kubeconfig", "--name", "x"]).unwrap();
        assert_eq!(before.name, "x");
        assert_eq!(after.name, "x");
    }

    #[test]
    fn kubectl_should_pass_every_argument_on() {
        let cli =
            Cli::try_parse_from(["kwokctl", "--name", "x", "kubectl", "get", "ns", "-o", "yaml"]).unwrap();
        let Command::Kubectl(pass) = cli.command else {
            panic!("not kubectl")
        };
        assert_eq!(pass.args, ["get", "ns", "-o", "yaml"]);
    }

    #[test]
    fn words_after_a_pass_through_verb_should_all_be_the_tools() {
        let words = |args: &[&str]| {
            args.iter()
                .map(|a| std::ffi::OsString::from(*a))
                .collect::<Vec<_>>()
        };
        let cli = Cli::parse_passing_through(words(&[
            "kwokctl",
            "--name",
            "x",
            "-v",
            "DEBUG",
            "kubectl",
            "-v",
            "6",
            "--dry-run=client",
            "--name",
            "n",
        ]));
        assert_eq!((cli.name.as_str(), cli.verbosity), ("x", Some(-4)));
        let Command::Kubectl(pass) = cli.command else {
            panic!("not kubectl")
        };
        assert_eq!(pass.args, ["-v", "6", "--dry-run=client", "--name", "n"]);
        let cli = Cli::parse_passing_through(words(&["kwokctl", "--dry-run", "kectl", "get", "--name", "x"]));
        assert!(cli.dry_run && cli.name == "kwok");
        // A global flag's value is not taken for the verb.
        let cli = Cli::parse_passing_through(words(&["kwokctl", "-c", "kubectl", "etcdctl", "get", "k"]));
        assert_eq!(cli.config, [std::path::PathBuf::from("kubectl")]);
        let Command::Etcdctl(pass) = cli.command else {
            panic!("not etcdctl")
        };
        assert_eq!(pass.args, ["get", "k"]);
        let cli = Cli::parse_passing_through(words(&["kwokctl", "get", "clusters", "--name", "y"]));
        assert_eq!(cli.name, "y", "other commands still take --name after the verb");
    }

    #[test]
    fn wait_should_parse_go_style_durations() {
        let cli = Cli::try_parse_from(["kwokctl", "create", "cluster", "--wait", "1m30s"]).unwrap();
        let Command::Create(CreateCommand::Cluster(args)) = cli.command else {
            panic!("not create")
        };
        assert_eq!(args.wait, std::time::Duration::from_secs(90));
    }
}
