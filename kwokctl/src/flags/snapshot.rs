//! `kwokctl snapshot` flags.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// `snapshot save|restore|export`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Saves the cluster to a file.
    Save(SnapshotArgs),
    /// Restores the cluster from a file (etcd: replaces its data; k8s: creates the objects).
    Restore(SnapshotArgs),
    /// Saves the objects of any cluster, reached through a kubeconfig, as a k8s snapshot.
    Export(ExportArgs),
}

/// Snapshot file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An etcd snapshot (`etcdctl snapshot save`): every key, restored as a whole.
    Etcd,
    /// A YAML stream of the cluster's objects without server-owned fields.
    K8s,
}

/// `snapshot save|restore`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The snapshot file.
    #[arg(long)]
    pub path: PathBuf,
    /// The snapshot format.
    #[arg(long, value_enum, default_value = "etcd")]
    pub format: Format,
    /// k8s format: only these resources (e.g. `node,pod,configmap,deployment.apps`); default: all.
    #[arg(long, value_delimiter = ',')]
    pub filter: Vec<String>,
}

/// `snapshot export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The snapshot file (k8s format).
    #[arg(long)]
    pub path: PathBuf,
    /// Kubeconfig of the cluster to export.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Only these resources (e.g. `node,pod,configmap`); default: all.
    #[arg(long, value_delimiter = ',')]
    pub filter: Vec<String>,
}
