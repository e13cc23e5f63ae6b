//! Flags of the commands on whole clusters: `delete`, `get`, `start`, `stop`.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Subcommand};

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
