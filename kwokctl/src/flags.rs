//! Command-line flags, parsed into plain values with no I/O (upstream kwokctl's names).

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

mod completion;
mod scale;
mod snapshot;

pub use completion::CompletionArgs;
pub use scale::ScaleArgs;
pub use snapshot::{ExportArgs, Format, RecordArgs, ReplayArgs, SnapshotArgs, SnapshotCommand};

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
    Config(crate::cmd::ConfigCommand),
    /// Exports cluster data.
    #[command(subcommand)]
    Export(crate::cmd::ExportCommand),
    /// Forwards a local port to a component's port.
    PortForward(crate::cmd::PortForwardArgs),
    /// Creates or deletes objects of any kind from a template until there are exactly N.
    Scale(ScaleArgs),
    /// Saves and restores clusters.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Prints a shell completion script.
    Completion(CompletionArgs),
}

/// `create …`.
#[derive(Debug, Subcommand)]
pub enum CreateCommand {
    /// Creates a cluster.
    #[command(args_override_self = true)]
    Cluster(CreateClusterArgs),
}

/// `delete …`.
#[derive(Debug, Subcommand)]
pub enum DeleteCommand {
    /// Deletes a cluster: stops its processes, removes its folder and kubeconfig context.
    Cluster(DeleteClusterArgs),
}

/// `delete cluster` flags.
#[derive(Debug, Args)]
pub struct DeleteClusterArgs {
    /// Delete every cluster.
    #[arg(long)]
    pub all: bool,
    /// Delete the cluster's folder even when a component will not stop (it is left
    /// running, named in a warning) or its configuration or kubeconfig context cannot
    /// be read or removed; also succeed when the cluster does not exist.
    #[arg(long)]
    pub force: bool,
    /// The kubeconfig to remove the cluster's context from [default: the one chosen at create]
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

/// `get …`.
#[derive(Debug, Subcommand)]
pub enum GetCommand {
    /// Lists the clusters.
    Clusters(OutputArgs),
    /// Prints the cluster's admin kubeconfig.
    Kubeconfig(KubeconfigArgs),
    /// Lists the cluster's components (wide: status, pid and port).
    Components(OutputArgs),
    /// Lists the binaries a cluster runs, with versions and paths (and with a
    /// container runtime, the images kwokctl builds from them).
    Artifacts(ArtifactsArgs),
}

/// `get artifacts` flags.
#[derive(Debug, Args)]
pub struct ArtifactsArgs {
    /// Runtime whose artifacts to list: binary, docker or podman [default: the
    /// cluster's, else binary]
    #[arg(long, env = "KWOK_RUNTIME")]
    pub runtime: Option<String>,
    /// Only binaries or only images.
    #[arg(long, value_enum)]
    pub filter: Option<ArtifactFilter>,
    /// The Kubernetes version to list binaries for, when the cluster does not exist
    /// [default: the pinned one]
    #[arg(long, env = "KWOK_KUBE_VERSION")]
    pub kube_version: Option<String>,
}

/// What `get artifacts --filter` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArtifactFilter {
    /// Binaries.
    Binary,
    /// Container images.
    Image,
}

/// `-o` of `get clusters|components`.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Name)]
    pub output: Output,
}

/// Output formats of `get clusters|components`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// One name per line.
    Name,
    /// A table with readiness and status.
    Wide,
    /// A JSON array of objects with the wide columns.
    Json,
}

/// `get kubeconfig` flags.
#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// Override host[:port] of the server (a bare host keeps the port).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Skip server certificate verification (drops the CA).
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
    /// Sign a new client certificate for this user (CN) when not the default.
    #[arg(long, default_value = crate::pki::ADMIN_USER)]
    pub user: String,
    /// Groups (O) of the signed certificate; comma-separated or repeated.
    #[arg(long = "group", value_delimiter = ',', default_value = crate::pki::ADMIN_GROUP)]
    pub groups: Vec<String>,
}

/// `stop cluster`.
#[derive(Debug, Subcommand)]
pub enum ClusterOnly {
    /// The cluster named by --name.
    Cluster,
}

/// `start cluster`.
#[derive(Debug, Subcommand)]
pub enum StartCommand {
    /// The cluster named by --name.
    Cluster(StartClusterArgs),
}

/// `start cluster` flags.
#[derive(Debug, Default, Args)]
pub struct StartClusterArgs {
    /// Give up starting after this long (what this command started is stopped again)
    /// [default: none]
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// How long to wait for every component to become healthy; `0s` waits only as long
    /// as starting needs, up to the default 120 s.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
}

/// Arguments handed to another program untouched.
#[derive(Debug, Args)]
pub struct PassThrough {
    /// Arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `logs COMPONENT`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Component name (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
    /// kwok-controller, prometheus), or `audit` for kube-apiserver's audit log.
    pub component: String,
    /// Keep printing what is appended.
    #[arg(short, long)]
    pub follow: bool,
}

/// `create cluster` flags.
#[derive(Debug, Args)]
pub struct CreateClusterArgs {
    /// Runtime: binary (local processes), docker or podman (containers from images
    /// built locally); nerdctl and kind are refused with what they lack [default: binary]
    #[arg(long, env = "KWOK_RUNTIME")]
    pub runtime: Option<String>,
    /// kube-apiserver port (default: a free port).
    #[arg(long, env = "KWOK_KUBE_APISERVER_PORT")]
    pub kube_apiserver_port: Option<u16>,
    /// etcd client port (default: a free port).
    #[arg(long, env = "KWOK_ETCD_PORT")]
    pub etcd_port: Option<u16>,
    /// Lift the QPS limits of kube-controller-manager and kube-scheduler (20/s by default,
    /// which paces how fast Deployments get their pods) and the apiserver's in-flight limits.
    #[arg(long, env = "KWOK_DISABLE_QPS_LIMITS")]
    pub disable_qps_limits: bool,
    /// How long to wait for every component to become healthy; `0s` (upstream's "do
    /// not wait") waits only as long as starting needs, up to the default 120 s.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// Upstream flags of components kwokctl-rs does not run yet: refused in one line.
    #[arg(long, hide = true)]
    pub dashboard_port: Option<String>,
    #[arg(long, hide = true)]
    #[allow(missing_docs)] // reason: hidden, refused (see dashboard_port).
    pub kube_apiserver_insecure_port: Option<String>,
    /// Run Jaeger on this port (UI and query API), receiving kube-apiserver's and kwok's
    /// traces over OTLP (implies --enable jaeger; built from its pinned Go module on first use).
    #[arg(long, env = "KWOK_JAEGER_PORT")]
    pub jaeger_port: Option<u16>,
    /// Run metrics-server (same as --enable metrics-server, which upstream prefers):
    /// `kubectl top` and HorizontalPodAutoscalers read the usage kwok reports.
    #[arg(long, env = "KWOK_ENABLE_METRICS_SERVER")]
    pub enable_metrics_server: bool,
    /// metrics-server's secure port, when it runs [default: a free port]
    #[arg(long, env = "KWOK_METRICS_SERVER_PORT")]
    pub metrics_server_port: Option<u16>,
    /// metrics-server binary (default: cache, PATH at the pinned version, else built
    /// from the pinned Go module).
    #[arg(long, env = "KWOK_METRICS_SERVER_BINARY")]
    pub metrics_server_binary: Option<PathBuf>,
    #[arg(long, hide = true)]
    #[allow(missing_docs)] // reason: hidden, refused (see dashboard_port).
    pub kueueviz_port: Option<String>,
    /// Kubernetes version of the control plane: any release the Go module proxy serves
    /// (downloaded, else built on first use and cached) [default: the pinned one]
    #[arg(long, env = "KWOK_KUBE_VERSION")]
    pub kube_version: Option<String>,
    /// Where Kubernetes release binaries are downloaded from, each beside its `.sha256`
    /// ("" downloads nothing: they are built from Go modules)
    /// [default: https://dl.k8s.io/release/<version>/bin/linux/<arch>]
    #[arg(long, env = "KWOK_KUBE_BINARY_PREFIX")]
    pub kube_binary_prefix: Option<String>,
    /// Where etcd's release tarball is downloaded from, beside its SHA256SUMS ("" downloads
    /// nothing) [default: https://github.com/etcd-io/etcd/releases/download/<version>]
    #[arg(long, env = "KWOK_ETCD_BINARY_PREFIX")]
    pub etcd_binary_prefix: Option<String>,
    /// etcd binary: a path, or a URL (of the binary, or upstream's `<tarball>#etcd`)
    /// downloaded and checked (default: cache, PATH, else downloaded or built).
    #[arg(long, env = "KWOK_ETCD_BINARY")]
    pub etcd_binary: Option<PathBuf>,
    /// kube-apiserver binary: a path or a URL (checked against `<URL>.sha256`).
    #[arg(long, env = "KWOK_KUBE_APISERVER_BINARY")]
    pub kube_apiserver_binary: Option<PathBuf>,
    /// kube-controller-manager binary: a path or a URL.
    #[arg(long, env = "KWOK_KUBE_CONTROLLER_MANAGER_BINARY")]
    pub kube_controller_manager_binary: Option<PathBuf>,
    /// kube-scheduler binary: a path or a URL.
    #[arg(long, env = "KWOK_KUBE_SCHEDULER_BINARY")]
    pub kube_scheduler_binary: Option<PathBuf>,
    /// kwok controller binary (default: next to kwokctl, else PATH).
    #[arg(long, env = "KWOK_CONTROLLER_BINARY")]
    pub kwok_controller_binary: Option<PathBuf>,
    /// Jaeger all-in-one binary, for --jaeger-port (default: cache, PATH at the pinned
    /// version, else built from the pinned Go module).
    #[arg(long, env = "KWOK_JAEGER_BINARY")]
    pub jaeger_binary: Option<PathBuf>,
    /// Components, Kubernetes options, Prometheus, dry run.
    #[command(flatten)]
    pub cluster: Box<crate::cluster_flags::ClusterFlags>,
    /// Stage/KwokConfiguration file handed to the kwok controller as `--config`; repeatable
    /// (default: none, so kwok uses its built-in stages; upstream KWOK's binary needs one).
    #[arg(long)]
    pub kwok_controller_config: Vec<PathBuf>,
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
        assert_eq!(args.wait, Duration::from_secs(90));
    }
}
