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

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::flags::{Cli, Command};

    fn snapshot(args: &[&str]) -> Result<SnapshotCommand, clap::Error> {
        let cli = Cli::try_parse_from(["kwokctl", "snapshot"].iter().chain(args))?;
        let Command::Snapshot(what) = cli.command else {
            panic!("not snapshot")
        };
        Ok(what)
    }

    #[test]
    fn save_should_default_to_the_etcd_format_and_split_filters() {
        let SnapshotCommand::Save(args) = snapshot(&["save", "--path", "f"]).unwrap() else {
            panic!("not save")
        };
        assert_eq!(args.format, Format::Etcd);
        let SnapshotCommand::Restore(args) = snapshot(&[
            "restore", "--path", "f", "--format", "k8s", "--filter", "node,pod",
        ])
        .unwrap() else {
            panic!("not restore")
        };
        assert_eq!(
            (args.format, args.filter),
            (Format::K8s, vec!["node".into(), "pod".into()])
        );
    }

    #[test]
    fn export_should_need_a_kubeconfig_and_formats_should_be_known() {
        assert!(snapshot(&["export", "--path", "f"]).is_err());
        assert!(snapshot(&["save", "--path", "f", "--format", "json"]).is_err());
    }
}
