//! `kwokctl snapshot save|restore|export|record|replay`.
//!
//! # Recovery
//! An etcd restore builds the new data dir next to the old one before anything stops;
//! the old one is renamed aside, and put back (and the cluster started on it) if the
//! cluster does not come up on the restored data. A k8s restore checks the whole file
//! and resolves every kind before its first create.

use std::{fs, path::Path, time::Instant};

use anyhow::{Context as _, Result, bail};

use crate::{
    binaries::{Binary, Finder},
    client,
    component::Component,
    flags::{ExportArgs, Format, RecordArgs, ReplayArgs, SnapshotArgs, SnapshotCommand},
    paths::{ClusterDir, Workdir},
    snapshot::{etcd, k8s, record, replay},
};

pub(super) async fn run(workdir: &Workdir, name: &str, what: SnapshotCommand, dry_run: bool) -> Result<()> {
    if dry_run {
        print!("{}", plan(workdir, name, &what)?);
        return Ok(());
    }
    match what {
        SnapshotCommand::Save(args) => save(workdir, name, args).await,
        SnapshotCommand::Restore(args) => restore(workdir, name, args).await,
        SnapshotCommand::Export(args) => export(args).await,
        SnapshotCommand::Record(args) => record_cmd(workdir, name, args).await,
        SnapshotCommand::Replay(args) => replay_cmd(workdir, name, args).await,
    }
}

/// What a snapshot command would do, as the commands it stands for (the global
/// `--dry-run`); the cluster must exist, as for the command itself.
fn plan(workdir: &Workdir, name: &str, what: &SnapshotCommand) -> Result<String> {
    let filters = |f: &[String]| match f.is_empty() {
        true => "all".to_owned(),
        false => f.join(","),
    };
    if let SnapshotCommand::Export(a) = what {
        let record = if a.record {
            " # then every change until Ctrl-C"
        } else {
            ""
        };
        return Ok(format!(
            "kubectl --kubeconfig {} get {} -o yaml >{}{record}\n",
            crate::shell::path(&a.kubeconfig),
            filters(&a.filter),
            crate::shell::path(&a.path)
        ));
    }
    let (dir, config) = super::existing(workdir, name)?;
    let kubeconfig = dir.kubeconfig();
    let etcd = format!("http://127.0.0.1:{}", config.options.etcd_port);
    Ok(match what {
        SnapshotCommand::Save(a) if a.format == Format::Etcd => {
            format!(
                "etcdctl --endpoints={etcd} snapshot save {}\n",
                crate::shell::path(&a.path)
            )
        }
        SnapshotCommand::Save(a) => format!(
            "kubectl --kubeconfig {} get {} -o yaml >{}\n",
            crate::shell::path(&kubeconfig),
            filters(&a.filter),
            crate::shell::path(&a.path)
        ),
        SnapshotCommand::Restore(a) if a.format == Format::Etcd => format!(
            "{}etcdutl snapshot restore {} --data-dir {}\n# start cluster {name:?} on the restored data\n",
            super::lifecycle::stop_plan(&dir, super::lifecycle::runtime_of(&dir)?.as_ref()),
            crate::shell::path(&a.path),
            crate::shell::path(&dir.etcd_data())
        ),
        SnapshotCommand::Restore(a) => format!(
            "kubectl --kubeconfig {} create -f {}\n",
            crate::shell::path(&kubeconfig),
            crate::shell::path(&a.path)
        ),
        SnapshotCommand::Record(a) => format!(
            "# record {} of cluster {name:?} to {} until Ctrl-C\n",
            filters(&a.filter),
            crate::shell::path(&a.path)
        ),
        SnapshotCommand::Replay(a) => format!(
            "# replay {} onto cluster {name:?} at {}x speed\n",
            crate::shell::path(&a.path),
            a.speed
        ),
        SnapshotCommand::Export(_) => unreachable!("handled above"),
    })
}

async fn record_cmd(workdir: &Workdir, name: &str, args: RecordArgs) -> Result<()> {
    let (dir, _) = super::existing(workdir, name)?;
    super::running::ensure(&dir, name, Component::KubeApiserver)?;
    let client = client::from_kubeconfig(&dir.kubeconfig()).await?;
    record_from(client, &format!("cluster {name:?}"), args).await
}

/// Records the cluster behind `client` (`source` in messages) as `args` say.
async fn record_from(client: kube::Client, source: &str, args: RecordArgs) -> Result<()> {
    let path = args.path.display().to_string();
    let done = record::record(
        client,
        &args.filter,
        &args.path,
        args.snapshot,
        stop_signal(args.duration),
        |objects| {
            eprintln!("Recording {source} to {path} ({objects} objects at the start); stop with Ctrl-C")
        },
    )
    .await?;
    println!(
        "Recorded {} objects and {} changes over {:.1}s from {source} to {path}",
        done.objects,
        done.changes,
        done.elapsed.as_secs_f64()
    );
    Ok(())
}

/// Resolves on Ctrl-C, SIGTERM, or after `duration`.
async fn stop_signal(duration: Option<std::time::Duration>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    let timer = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
        () = timer => {}
    }
}

async fn replay_cmd(workdir: &Workdir, name: &str, args: ReplayArgs) -> Result<()> {
    let started = Instant::now();
    let (dir, _) = super::existing(workdir, name)?;
    super::running::ensure(&dir, name, Component::KubeApiserver)?;
    let client = client::from_kubeconfig(&dir.kubeconfig()).await?;
    let done = replay::replay(client, &args.path, args.snapshot, args.speed).await?;
    println!(
        "Replayed {} into cluster {name:?}: {} objects created ({} were there already), {} changes, in {:.1}s",
        args.path.display(),
        done.restored.created,
        done.restored.existing,
        done.changes,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn save(workdir: &Workdir, name: &str, args: SnapshotArgs) -> Result<()> {
    let started = Instant::now();
    let (dir, config) = super::existing(workdir, name)?;
    match args.format {
        Format::Etcd => {
            super::running::ensure(&dir, name, Component::Etcd)?;
            let etcdctl = super::cluster_finder(workdir, &config).find_or_build(Binary::Etcdctl, None)?;
            let endpoint = format!("http://127.0.0.1:{}", config.options.etcd_port);
            etcd::save(&etcdctl, &endpoint, &args.path)?;
            println!(
                "Saved cluster {name:?} (etcd) to {} in {:.1}s",
                args.path.display(),
                started.elapsed().as_secs_f64()
            );
        }
        Format::K8s => {
            super::running::ensure(&dir, name, Component::KubeApiserver)?;
            let client = client::from_kubeconfig(&dir.kubeconfig()).await?;
            let count = k8s::save(client, &args.filter, &args.path).await?;
            println!(
                "Saved {count} objects of cluster {name:?} to {} in {:.1}s",
                args.path.display(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

async fn export(args: ExportArgs) -> Result<()> {
    let started = Instant::now();
    let client = client::from_kubeconfig(&args.kubeconfig).await?;
    if args.record {
        // Upstream's export --record: the snapshot, then its changes, until stopped.
        let source = args.kubeconfig.display().to_string();
        let record = RecordArgs {
            path: args.path,
            snapshot: false,
            duration: None,
            filter: args.filter,
        };
        return record_from(client, &source, record).await;
    }
    let count = k8s::save(client, &args.filter, &args.path).await?;
    println!(
        "Exported {count} objects from {} to {} in {:.1}s",
        args.kubeconfig.display(),
        args.path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn restore(workdir: &Workdir, name: &str, args: SnapshotArgs) -> Result<()> {
    let started = Instant::now();
    let (dir, config) = super::existing(workdir, name)?;
    if !args.filter.is_empty() {
        bail!("--filter applies to save; a restore creates everything in the file");
    }
    match args.format {
        Format::Etcd => {
            let peer = format!("http://127.0.0.1:{}", config.options.etcd_peer_port);
            restore_etcd(workdir, name, &dir, &args.path, &peer).await?;
            println!(
                "Restored cluster {name:?} from {} (etcd) in {:.1}s",
                args.path.display(),
                started.elapsed().as_secs_f64()
            );
        }
        Format::K8s => {
            super::running::ensure(&dir, name, Component::KubeApiserver)?;
            let client = client::from_kubeconfig(&dir.kubeconfig()).await?;
            let done = k8s::restore(client, &args.path).await?;
            println!(
                "Restored {} objects into cluster {name:?} from {} ({} were there already) in {:.1}s",
                done.created,
                args.path.display(),
                done.existing,
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

async fn restore_etcd(
    workdir: &Workdir,
    name: &str,
    dir: &ClusterDir,
    path: &Path,
    peer: &str,
) -> Result<()> {
    etcd::check_file(path)?;
    let etcdutl = Finder::new(workdir.cache()).find_or_build(Binary::Etcdutl, None)?;
    let data = dir.etcd_data();
    let staged = data.with_file_name("etcd.restore");
    let old = data.with_file_name("etcd.old");
    let _ = fs::remove_dir_all(&staged);
    if let Err(err) = etcd::restore_into(&etcdutl, path, &staged, peer) {
        let _ = fs::remove_dir_all(&staged);
        return Err(anyhow::Error::from(err).context(format!("cluster {name:?} is unchanged")));
    }
    super::lifecycle::stop_all(dir, super::lifecycle::runtime_of(dir)?.as_ref())?;
    let _ = fs::remove_dir_all(&old);
    fs::rename(&data, &old).with_context(|| format!("failed to move {} aside", data.display()))?;
    fs::rename(&staged, &data).with_context(|| format!("failed to move {} into place", staged.display()))?;
    match super::lifecycle::start(workdir, name, &Default::default(), false).await {
        Ok(()) => {
            let _ = fs::remove_dir_all(&old);
            Ok(())
        }
        Err(err) => {
            // Back to the data the cluster had: the snapshot is the problem, not the cluster.
            super::lifecycle::stop_all(dir, super::lifecycle::runtime_of(dir)?.as_ref())?;
            fs::remove_dir_all(&data).with_context(|| format!("failed to remove {}", data.display()))?;
            fs::rename(&old, &data).with_context(|| format!("failed to put {} back", old.display()))?;
            let back = super::lifecycle::start(workdir, name, &Default::default(), false).await;
            let state = if back.is_ok() {
                "running on its previous data"
            } else {
                "stopped with its previous data"
            };
            Err(err.context(format!("failed to restore cluster {name:?}; it is {state}")))
        }
    }
}
