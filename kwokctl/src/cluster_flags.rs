//! `create cluster` flags beyond ports and binaries: components, Kubernetes options,
//! Prometheus, dry run (upstream kwokctl v0.8 names).
//!
//! Every option is an `Option` so that a value given by flag or `KWOK_*` variable can be
//! told apart from one left out: left-out values come from the configuration files
//! (`--config`, else `~/.kwok/kwok.yaml`), then from the defaults named in `--help`.

use std::{path::PathBuf, time::Duration};

use clap::Args;

/// The extra `create cluster` flags.
#[derive(Debug, Clone, Default, Args)]
pub struct ClusterFlags {
    /// Components to run, comma-separated; replaces the default set
    /// [default: etcd,kube-apiserver,kube-controller-manager,kube-scheduler,kwok-controller]
    #[arg(long, value_delimiter = ',', env = "KWOK_COMPONENTS")]
    pub components: Option<Vec<String>>,
    /// Add a component to the set (e.g. prometheus); repeatable or comma-separated.
    #[arg(long, value_delimiter = ',', env = "KWOK_ENABLE")]
    pub enable: Vec<String>,
    /// Remove a component from the set (e.g. kube-scheduler); repeatable or comma-separated.
    #[arg(long, value_delimiter = ',', env = "KWOK_DISABLE")]
    pub disable: Vec<String>,
    /// Do not run kube-scheduler (same as --disable kube-scheduler).
    #[arg(long, env = "KWOK_DISABLE_KUBE_SCHEDULER")]
    pub disable_kube_scheduler: bool,
    /// Do not run kube-controller-manager (same as --disable kube-controller-manager).
    #[arg(long, env = "KWOK_DISABLE_KUBE_CONTROLLER_MANAGER")]
    pub disable_kube_controller_manager: bool,
    /// Run Prometheus on this port, scraping every component (implies --enable prometheus).
    #[arg(long, env = "KWOK_PROMETHEUS_PORT")]
    pub prometheus_port: Option<u16>,
    /// Prometheus binary [default: prometheus on PATH]
    #[arg(long, env = "KWOK_PROMETHEUS_BINARY")]
    pub prometheus_binary: Option<PathBuf>,
    /// Port of the kwok controller's /healthz and /metrics [default: a free port]
    #[arg(long, env = "KWOK_CONTROLLER_PORT")]
    pub controller_port: Option<u16>,
    /// Port of kube-controller-manager [default: a free port]
    #[arg(long, env = "KWOK_KUBE_CONTROLLER_MANAGER_PORT")]
    pub kube_controller_manager_port: Option<u16>,
    /// Port of kube-scheduler [default: a free port]
    #[arg(long, env = "KWOK_KUBE_SCHEDULER_PORT")]
    pub kube_scheduler_port: Option<u16>,
    /// A kube-scheduler configuration file (KubeSchedulerConfiguration); kwokctl sets its
    /// clientConnection.kubeconfig.
    #[arg(long, env = "KWOK_KUBE_SCHEDULER_CONFIG")]
    pub kube_scheduler_config: Option<PathBuf>,
    /// An audit policy file for kube-apiserver; events go to logs/audit.log
    /// (`kwokctl logs audit`).
    #[arg(long, env = "KWOK_KUBE_AUDIT_POLICY")]
    pub kube_audit_policy: Option<PathBuf>,
    /// Authorization in kube-apiserver: true is Node,RBAC; false allows everything [default: true]
    #[arg(long, env = "KWOK_KUBE_AUTHORIZATION", num_args = 0..=1, default_missing_value = "true")]
    pub kube_authorization: Option<bool>,
    /// kube-apiserver's admission plugins (its defaults); false runs none, as upstream's
    /// `--admission-control=` [default: the value of --kube-authorization]
    #[arg(long, env = "KWOK_KUBE_ADMISSION", num_args = 0..=1, default_missing_value = "true")]
    pub kube_admission: Option<bool>,
    /// Serve the apiserver over HTTPS with authentication; only true is supported
    /// (upstream's false is for Kubernetes before 1.13) [default: true]
    #[arg(long, env = "KWOK_SECURE_PORT", num_args = 0..=1, default_missing_value = "true")]
    pub secure_port: Option<bool>,
    /// etcd's storage quota, a quantity (`8Gi`, `2G`) [default: 8Gi]
    #[arg(long, env = "KWOK_ETCD_QUOTA_BACKEND_SIZE")]
    pub etcd_quota_backend_size: Option<String>,
    /// Feature gates for the Kubernetes components, e.g. "A=true,B=false".
    #[arg(long, env = "KWOK_KUBE_FEATURE_GATES")]
    pub kube_feature_gates: Option<String>,
    /// kube-apiserver --runtime-config: built-in APIs to turn on or off, e.g. "api/alpha=true".
    #[arg(long, env = "KWOK_KUBE_RUNTIME_CONFIG")]
    pub kube_runtime_config: Option<String>,
    /// An extra flag for a component, as component=key=value (gives --key=value,
    /// replacing a flag of the same key); repeatable.
    #[arg(
        long = "extra-args",
        value_name = "COMPONENT=KEY=VALUE",
        env = "KWOK_EXTRA_ARGS",
        value_delimiter = ';'
    )]
    pub extra_args: Vec<String>,
    /// CRDs the kwok controller serves (passed on as kwok --enable-crds), e.g. Stage;
    /// comma-separated.
    #[arg(long, value_delimiter = ',', env = "KWOK_ENABLE_CRDS")]
    pub enable_crds: Option<Vec<String>>,
    /// Duration of the fake nodes' leases in seconds; 0 turns leases off [default: 40]
    #[arg(long, env = "KWOK_NODE_LEASE_DURATION_SECONDS")]
    pub node_lease_duration_seconds: Option<u32>,
    /// Scale factor of node heartbeats: kube-controller-manager checks nodes every
    /// FACTOR seconds and marks one unhealthy after 8×FACTOR seconds [default: 5]
    #[arg(long, env = "KWOK_HEARTBEAT_FACTOR")]
    pub heartbeat_factor: Option<f64>,
    /// Key prefix of the cluster's data in etcd [default: /registry]
    #[arg(long, env = "KWOK_ETCD_PREFIX")]
    pub etcd_prefix: Option<String>,
    /// The kubeconfig that gets the cluster's context [default: first of $KUBECONFIG, else ~/.kube/config]
    #[arg(long, env = "KWOK_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Give up creating after this long, counted from the start: building missing
    /// control-plane binaries, starting, waiting for health (bounds --wait). On expiry the
    /// half-made cluster is removed [default: none]
    #[arg(long, value_parser = humantime::parse_duration, env = "KWOK_TIMEOUT")]
    pub timeout: Option<Duration>,
    /// Accepted for upstream compatibility; no runtime pulls images (they are built locally).
    #[arg(long)]
    pub quiet_pull: bool,
}
