//! Flags of the commands that work inside a cluster or on its files: the pass-through
//! tools, `logs`, `port-forward`, `export` and `config`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

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

/// `port-forward` arguments.
#[derive(Debug, Args)]
pub struct PortForwardArgs {
    /// The component (e.g. kube-apiserver, etcd, prometheus).
    pub component: String,
    /// LOCAL:PORT, or LOCAL to forward to the component's own port; PORT is a number
    /// or upstream's port name (`https` of kube-apiserver, kube-controller-manager and
    /// kube-scheduler; `http` of the others; `peer-http` of etcd, `otlp-grpc` of jaeger);
    /// LOCAL 0 picks a free port.
    #[arg(value_name = "LOCAL:PORT")]
    pub ports: String,
}

/// `export …`.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Copies every log of the cluster (components and audit) and its kwok.yaml into DIR.
    Logs {
        /// Destination folder (created if missing).
        dir: PathBuf,
    },
}

/// `config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Prints the configuration `create cluster` would use: the files (--config, else
    /// ~/.kwok/kwok.yaml) with the KWOK_* variables laid over them.
    View,
    /// Rewrites the files' documents, merged and checked, into ~/.kwok/kwok.yaml.
    Tidy,
    /// Removes ~/.kwok/kwok.yaml, back to the defaults.
    Reset,
}
