//! A throw-away kwokctl cluster (its own work dir and kubeconfig) running a chosen `kwok`.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tempfile::TempDir;

/// How the apiserver ranks the requests of kwok and of the workload (loadgen).
///
/// The default is every earlier run's set-up and upstream kwokctl's: API Priority and
/// Fairness off with no in-flight limit, kwok in `system:masters`. With `apf`, the
/// apiserver keeps APF and its default limits (400 reads, 200 writes in flight, shared
/// out by priority level) and loadgen acts as a ServiceAccount, as in-cluster workload
/// controllers do (APF's `service-accounts` schema: `workload-low`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Priority {
    /// API Priority and Fairness on, loadgen as a ServiceAccount.
    #[serde(default)]
    pub apf: bool,
    /// kwokctl's `--kwok-priority` for the side's kwok: `exempt` (`system:masters`) or
    /// `node-high` (its own user at the kubelets' priority level).
    #[serde(default = "exempt")]
    pub kwok: String,
    /// kwokctl's `--kwok-auth` for the side's kwok: `cert` (a client certificate, as
    /// upstream kwokctl) or `token` (a bearer token). Results saved before this field
    /// existed were runs with certificates.
    #[serde(default = "cert")]
    pub auth: String,
    /// kwokctl's `--control-plane-gogc` for the side's cluster: 100 (Go's default,
    /// upstream kwokctl's set-up) or more (less garbage collection, more memory). Results
    /// saved before this field existed ran with Go's default.
    #[serde(default = "go_default_gogc")]
    pub gogc: u32,
}

// Upstream kwokctl's set-up, in kwokctl's own spelling.
fn go_default_gogc() -> u32 {
    kwokctl::options::GO_DEFAULT_GOGC
}

fn cert() -> String {
    kwokctl::auth::KwokAuth::Cert.as_str().to_owned()
}

fn exempt() -> String {
    kwokctl::priority::KwokPriority::Exempt.as_str().to_owned()
}

impl Default for Priority {
    fn default() -> Self {
        Self {
            apf: false,
            kwok: exempt(),
            auth: cert(),
            gogc: go_default_gogc(),
        }
    }
}

/// The ServiceAccount loadgen runs as under [`Priority::apf`].
const WORKLOAD_ACCOUNT: &str = "perf-loadgen";

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
        Self::create_replicated(
            kwokctl,
            &name,
            &controller.binary,
            configs,
            controller.replicas,
            &controller.priority,
        )
    }

    /// The same with several `--config` files for kwok (stages, Metrics, usages), each
    /// passed as its own `--kwok-controller-config`.
    pub fn create_with_configs(kwokctl: &Path, name: &str, kwok: &Path, configs: &[PathBuf]) -> Result<Self> {
        Self::create_replicated(kwokctl, name, kwok, configs, 1, &Priority::default())
    }

    /// The same with `replicas` kwoks sharing the nodes (`--kwok-replicas`).
    fn create_replicated(
        kwokctl: &Path,
        name: &str,
        kwok: &Path,
        configs: &[PathBuf],
        replicas: u32,
        priority: &Priority,
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
            // queueing) unless asked otherwise; see `Priority`.
            "--kwok-priority".into(),
            priority.kwok.clone(),
            // Upstream kwokctl's client certificate unless asked otherwise.
            "--kwok-auth".into(),
            priority.auth.clone(),
            // Go's default for the control plane unless asked otherwise.
            "--control-plane-gogc".into(),
            priority.gogc.to_string(),
            "--kwok-controller-binary".into(),
            kwok,
        ];
        if priority.apf {
            // --disable-qps-limits keeps the clients' QPS lifted, which the control
            // plane's own controllers need at this scale; the apiserver gets APF and its
            // default in-flight limits back.
            for arg in [
                "enable-priority-and-fairness=true",
                "max-requests-inflight=400",
                "max-mutating-requests-inflight=200",
            ] {
                args.push("--extra-args".into());
                args.push(format!("kube-apiserver={arg}"));
            }
        }
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
        Ok(kwok_loadgen::client(self.admin_config().await?)?)
    }

    async fn admin_config(&self) -> Result<kube::Config> {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig())?;
        Ok(kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?)
    }

    /// The client loadgen runs as under `priority`: [`Self::workload_client`] with APF
    /// on, else `admin` (every earlier run's set-up).
    pub async fn loadgen_client(&self, priority: &Priority, admin: &kube::Client) -> Result<kube::Client> {
        if priority.apf {
            self.workload_client().await
        } else {
            Ok(admin.clone())
        }
    }

    /// A client acting as a workload controller in the cluster does: ServiceAccount
    /// `default/perf-loadgen`, bound to `cluster-admin`, so APF ranks its requests as
    /// any ServiceAccount's (`workload-low`) instead of exempting them as the admin's.
    pub async fn workload_client(&self) -> Result<kube::Client> {
        use k8s_openapi::api::{
            authentication::v1::TokenRequest, core::v1::ServiceAccount, rbac::v1::ClusterRoleBinding,
        };
        use kube::api::{Api, PostParams};
        let admin = self.client().await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
        let create = PostParams::default();
        let exists = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 409);
        let account = serde_json::from_value(serde_json::json!({"metadata": {"name": WORKLOAD_ACCOUNT}}))?;
        if let Err(e) = accounts.create(&create, &account).await
            && !exists(&e)
        {
            return Err(e).context("create the workload ServiceAccount");
        }
        let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
            "metadata": {"name": WORKLOAD_ACCOUNT},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": WORKLOAD_ACCOUNT, "namespace": "default"}],
        }))?;
        if let Err(e) = Api::<ClusterRoleBinding>::all(admin)
            .create(&create, &binding)
            .await
            && !exists(&e)
        {
            return Err(e).context("bind the workload ServiceAccount");
        }
        let request: TokenRequest = serde_json::from_value(
            serde_json::json!({"spec": {"audiences": [], "expirationSeconds": 86_400}}),
        )?;
        let token = accounts
            .create_token_request(WORKLOAD_ACCOUNT, &create, &request)
            .await
            .context("a token for the workload ServiceAccount")?
            .status
            .context("TokenRequest without status")?
            .token;
        let mut config = self.admin_config().await?;
        config.auth_info = serde_json::from_value(serde_json::json!({ "token": token }))?;
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
