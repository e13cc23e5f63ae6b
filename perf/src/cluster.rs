//! A throw-away kwokctl cluster (its own work dir and kubeconfig) running a chosen `kwok`.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

/// The kwok binary cache: `$KWOK_CACHE_DIR`, else `~/.kwok/cache`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("KWOK_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/".into())).join(".kwok/cache")
        })
}

/// A running cluster; dropping it deletes the cluster and its files.
pub struct Cluster {
    home: TempDir,
    kwokctl: PathBuf,
    name: String,
}

impl Cluster {
    /// Creates cluster `name` with `kwok` as its controller, handed `stages` as `--config`,
    /// and the QPS limits of the control plane lifted.
    pub fn create(kwokctl: &Path, name: &str, kwok: &Path, stages: &Path) -> Result<Self> {
        Self::create_with_configs(kwokctl, name, kwok, &[stages.to_owned()])
    }

    /// The cluster of one side: `perf-<side>`, running the side's kwok with `configs`.
    pub fn start(kwokctl: &Path, controller: &crate::side::Controller, configs: &[PathBuf]) -> Result<Self> {
        eprintln!(
            "perf: {}: creating cluster with {}",
            controller.side,
            controller.binary.display()
        );
        let name = format!("perf-{}", controller.side);
        Self::create_replicated(kwokctl, &name, &controller.binary, configs, controller.replicas)
    }

    /// The same with several `--config` files for kwok (stages, Metrics, usages), each
    /// passed as its own `--kwok-controller-config`.
    pub fn create_with_configs(kwokctl: &Path, name: &str, kwok: &Path, configs: &[PathBuf]) -> Result<Self> {
        Self::create_replicated(kwokctl, name, kwok, configs, 1)
    }

    /// The same with `replicas` kwoks sharing the nodes (`--kwok-replicas`).
    fn create_replicated(
        kwokctl: &Path,
        name: &str,
        kwok: &Path,
        configs: &[PathBuf],
        replicas: u32,
    ) -> Result<Self> {
        let home = tempfile::Builder::new()
            .prefix("kwok-perf-")
            .tempdir()
            .context("temp dir")?;
        let cluster = Self {
            home,
            kwokctl: kwokctl.to_owned(),
            name: name.to_owned(),
        };
        let kwok = kwok.display().to_string();
        let mut args = vec![
            "create".to_owned(),
            "cluster".into(),
            "--disable-qps-limits".into(),
            // The kubelet's 40 s node lease and grace period (kwokctl's default factor
            // of 5 gives 200 s, as upstream's), as every earlier run measured.
            "--heartbeat-factor".into(),
            "1".into(),
            // Upstream kwokctl's identity for kwok (system:masters: no RBAC, no APF
            // queueing), as every earlier run measured, for both sides alike.
            "--kwok-priority".into(),
            "exempt".into(),
            "--kwok-controller-binary".into(),
            kwok,
        ];
        if replicas > 1 {
            args.push("--kwok-replicas".into());
            args.push(replicas.to_string());
        }
        for c in configs {
            args.push("--kwok-controller-config".into());
            args.push(c.display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cluster.kwokctl(&args)?;
        Ok(cluster)
    }

    fn kwokctl(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.kwokctl)
            .args(["--name", &self.name])
            .args(args)
            .env("KWOK_WORKDIR", self.workdir())
            // The shared binary cache, not one inside the throw-away work dir.
            .env("KWOK_CACHE_DIR", cache_dir())
            .env("KUBECONFIG", self.home.path().join("kubeconfig"))
            .env_remove("KWOK_NAME")
            .output()
            .with_context(|| format!("failed to run {}", self.kwokctl.display()))?;
        if !out.status.success() {
            bail!(
                "kwokctl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn workdir(&self) -> PathBuf {
        self.home.path().join("kwok")
    }

    fn dir(&self) -> PathBuf {
        self.workdir().join("clusters").join(&self.name)
    }

    /// The cluster's admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir().join("kubeconfig.yaml")
    }

    /// The pid of a component (`kwok-controller`, `kube-apiserver`, …).
    pub fn pid(&self, component: &str) -> Option<u32> {
        crate::process::read_pid(&self.dir().join("pids").join(format!("{component}.pid")))
    }

    /// A client for the cluster.
    pub async fn client(&self) -> Result<kube::Client> {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig())?;
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        Ok(kwok_loadgen::client(config)?)
    }

    /// Keeps the kwok controller's log next to the results.
    pub fn copy_kwok_log(&self, to: &Path) {
        let _ = std::fs::copy(self.dir().join("logs").join("kwok-controller.log"), to);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(e) = self.kwokctl(&["delete", "cluster"]) {
            tracing::warn!(error = %e, "deleting the perf cluster failed");
        }
    }
}
