//! `kwokctl delete cluster [--all]`.

use std::fs;

use anyhow::{Context as _, Result, bail};

use crate::{kubeconfig, paths::Workdir, runtime::BinaryRuntime};

pub(super) fn clusters(workdir: &Workdir, name: &str, all: bool) -> Result<()> {
    let names = if all {
        super::get::cluster_names(workdir)?
    } else {
        vec![name.to_owned()]
    };
    for name in names {
        cluster(workdir, &name)?;
    }
    Ok(())
}

fn cluster(workdir: &Workdir, name: &str) -> Result<()> {
    let dir = workdir.cluster(name);
    if !dir.root().exists() {
        bail!("cluster {name:?} does not exist ({})", dir.root().display());
    }
    super::lifecycle::stop_all(&dir, BinaryRuntime)?;
    // The context went into the kubeconfig chosen at create (--kubeconfig).
    let user_kubeconfig = crate::config::ClusterConfig::load(&dir.config())
        .ok()
        .and_then(|c| c.options.kubeconfig)
        .unwrap_or_else(kubeconfig::user_kubeconfig_path);
    kubeconfig::remove_from(&user_kubeconfig, name)?;
    fs::remove_dir_all(dir.root()).with_context(|| format!("failed to remove {}", dir.root().display()))?;
    println!("Cluster {name:?} deleted");
    Ok(())
}
