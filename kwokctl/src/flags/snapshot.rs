//! `kwokctl snapshot` flags.

use std::{path::PathBuf, time::Duration};

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
    /// Records the cluster: its objects now (a k8s snapshot), then every change to them
    /// with its time, until Ctrl-C, SIGTERM or --duration.
    Record(RecordArgs),
    /// Replays a recording: restores its start state, then applies each change at its
    /// recorded time (divided by --speed).
    Replay(ReplayArgs),
}

/// `snapshot record`.
#[derive(Debug, Args)]
#[command(
    after_help = "The file is YAML: the start state as in `snapshot save --format k8s`, then one
ResourcePatch document (kwok.x-k8s.io/v1alpha1: resource, target, method create|patch|delete,
durationNanosecond from the start, template) per change. Server-owned fields are left out,
so changes only the server makes (resourceVersion, most status) record nothing.

Example:
  kwokctl snapshot record --path rec.yaml --duration 10m"
)]
pub struct RecordArgs {
    /// The recording file (written under a temp name, renamed when recording ends).
    #[arg(long)]
    pub path: PathBuf,
    /// Save the start state only, as `snapshot save --format k8s` does.
    #[arg(long)]
    pub snapshot: bool,
    /// Stop after this long (e.g. 30s, 10m) [default: until Ctrl-C or SIGTERM]
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Only these resources (e.g. `node,pod,configmap`); default: all.
    #[arg(long, value_delimiter = ',')]
    pub filter: Vec<String>,
}

/// `snapshot replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The recording file.
    #[arg(long)]
    pub path: PathBuf,
    /// Restore the start state only.
    #[arg(long)]
    pub snapshot: bool,
    /// Replay this many times faster than recorded (0.5 is half as fast).
    #[arg(long, default_value_t = 1.0, value_parser = positive_factor)]
    pub speed: f64,
}

fn positive_factor(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 => Ok(f),
        _ => Err(format!("{s:?} is not a positive number")),
    }
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
    /// Record the change of the cluster: after the snapshot, append every change as
    /// `snapshot record` does, until Ctrl-C or SIGTERM.
    #[arg(long)]
    pub record: bool,
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
        let SnapshotCommand::Export(args) =
            snapshot(&["export", "--path", "f", "--kubeconfig", "k", "--record"]).unwrap()
        else {
            panic!("not export")
        };
        assert!(args.record);
    }

    #[test]
    fn record_and_replay_should_take_upstreams_flags_plus_duration_and_speed() {
        let SnapshotCommand::Record(args) =
            snapshot(&["record", "--path", "r", "--duration", "1m30s", "--filter", "cm"]).unwrap()
        else {
            panic!("not record")
        };
        assert_eq!(args.duration, Some(std::time::Duration::from_secs(90)));
        assert!(!args.snapshot);
        let SnapshotCommand::Replay(args) = snapshot(&["replay", "--path", "r", "--snapshot"]).unwrap()
        else {
            panic!("not replay")
        };
        assert_eq!((args.speed, args.snapshot), (1.0, true));
        assert!(snapshot(&["replay", "--path", "r", "--speed", "0"]).is_err());
        assert!(snapshot(&["replay", "--path", "r", "--speed", "-2"]).is_err());
        assert!(snapshot(&["record"]).is_err(), "--path is required");
    }
}
