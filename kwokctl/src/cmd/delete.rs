//! `kwokctl delete cluster [--all] [--force] [--kubeconfig]`.

use std::fs;

use anyhow::{Context as _, Result, bail};
use tracing::warn;

use crate::{flags::DeleteClusterArgs, kubeconfig, paths::Workdir, shell};

pub(super) fn clusters(workdir: &Workdir, name: &str, args: &DeleteClusterArgs, dry_run: bool) -> Result<()> {
    let names = if args.all {
        super::get::cluster_names(workdir)?
    } else {
        vec![name.to_owned()]
    };
    for name in names {
        cluster(workdir, &name, args, dry_run)?;
    }
    Ok(())
}

fn cluster(workdir: &Workdir, name: &str, args: &DeleteClusterArgs, dry_run: bool) -> Result<()> {
    let dir = workdir.cluster(name);
    if !dir.root().exists() {
        if args.force {
            println!("Cluster {name:?} does not exist; nothing to delete");
            return Ok(());
        }
        bail!("cluster {name:?} does not exist ({})", dir.root().display());
    }
    // The context went into the kubeconfig chosen at create (--kubeconfig) unless this
    // command names another.
    let config = crate::config::ClusterConfig::load(&dir.config());
    if let Err(e) = &config {
        if !args.force {
            return Err(anyhow::anyhow!("{e:#}").context(format!(
                "cluster {name:?} has an unreadable configuration; `--force` deletes it anyway"
            )));
        }
        warn!(
            cluster = name,
            "deleting despite an unreadable configuration: {e:#}"
        );
    }
    let user_kubeconfig = args
        .kubeconfig
        .clone()
        .or_else(|| config.ok().and_then(|c| c.options.kubeconfig))
        .unwrap_or_else(kubeconfig::user_kubeconfig_path);
    let runtime = super::lifecycle::runtime_of(&dir)?;
    if dry_run {
        print!("{}", super::lifecycle::stop_plan(&dir, runtime.as_ref()));
        println!(
            "kubectl config --kubeconfig {} delete-context {}",
            shell::path(&user_kubeconfig),
            kubeconfig::context_name(name)
        );
        println!("rm -rf {}", shell::path(dir.root()));
        return Ok(());
    }
    let stopped =
        super::lifecycle::stop_all(&dir, runtime.as_ref()).and_then(|()| Ok(runtime.remove_all(&dir)?));
    if let Err(e) = stopped {
        if !args.force {
            return Err(e.context(format!(
                "failed to stop cluster {name:?}; `--force` deletes it anyway"
            )));
        }
        warn!(
            cluster = name,
            "deleting despite a component that would not stop: {e:#}"
        );
    }
    if let Err(e) = kubeconfig::remove_from(&user_kubeconfig, name) {
        if !args.force {
            return Err(anyhow::Error::from(e).context(format!(
                "failed to remove cluster {name:?} from a kubeconfig; `--force` deletes it anyway"
            )));
        }
        warn!(cluster = name, "kubeconfig left as it is: {e:#}");
    }
    fs::remove_dir_all(dir.root()).with_context(|| format!("failed to remove {}", dir.root().display()))?;
    println!("Cluster {name:?} deleted");
    Ok(())
}
