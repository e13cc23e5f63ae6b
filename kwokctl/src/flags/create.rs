//! `kwokctl create cluster` flags (upstream kwokctl v0.8's names and `KWOK_*` variables),
//! and [`ClusterOptions`], the options a flag, a variable or a configuration file sets.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Subcommand, builder::BoolishValueParser};
use serde::{Deserialize, Serialize};

/// `create …`.
#[derive(Debug, Subcommand)]
pub enum CreateCommand {
    /// Creates a cluster.
    #[command(args_override_self = true)]
    Cluster(CreateClusterArgs),
}

/// `create cluster` flags: the [`ClusterOptions`], plus what only a command line gives
/// (binaries, waiting, where the context goes, `--extra-args`).
#[derive(Debug, Args)]
pub struct CreateClusterArgs {
    /// The options a configuration file can set too.
    #[command(flatten)]
    pub options: Box<ClusterOptions>,
    /// How long to wait for every component to become healthy; `0s` (upstream's "do
    /// not wait") waits only as long as starting needs, up to the default 120 s.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// Upstream flags of components kwokctl-rs does not run yet: refused in one line.
    #[arg(long, hide = true)]
    pub dashboard_port: Option<String>,
    #[arg(long, hide = true)]
    #[allow(missing_docs)] // reason: hidden, refused (see dashboard_port).
    pub kube_apiserver_insecure_port: Option<String>,
    #[arg(long, hide = true)]
    #[allow(missing_docs)] // reason: hidden, refused (see dashboard_port).
    pub kueueviz_port: Option<String>,
    /// metrics-server binary (default: cache, PATH at the pinned version, else built
    /// from the pinned Go module).
    #[arg(long, env = "KWOK_METRICS_SERVER_BINARY")]
    pub metrics_server_binary: Option<PathBuf>,
    /// etcd binary: a path, or a URL (of the binary, or upstream's `<tarball>#etcd`)
    /// downloaded and checked (default: cache, PATH, else downloaded or built).
    #[arg(long, env = "KWOK_ETCD_BINARY")]
    pub etcd_binary: Option<PathBuf>,
    /// kube-apiserver binary: a path or a URL (checked against `<URL>.sha256`).
    #[arg(long, env = "KWOK_KUBE_APISERVER_BINARY")]
    pub kube_apiserver_binary: Option<PathBuf>,
    /// kube-controller-manager binary: a path or a URL.
    #[arg(long, env = "KWOK_KUBE_CONTROLLER_MANAGER_BINARY")]
    pub kube_controller_manager_binary: Option<PathBuf>,
    /// kube-scheduler binary: a path or a URL.
    #[arg(long, env = "KWOK_KUBE_SCHEDULER_BINARY")]
    pub kube_scheduler_binary: Option<PathBuf>,
    /// kwok controller binary (default: next to kwokctl, else PATH).
    #[arg(long, env = "KWOK_CONTROLLER_BINARY")]
    pub kwok_controller_binary: Option<PathBuf>,
    /// Jaeger all-in-one binary, for --jaeger-port (default: cache, PATH at the pinned
    /// version, else built from the pinned Go module).
    #[arg(long, env = "KWOK_JAEGER_BINARY")]
    pub jaeger_binary: Option<PathBuf>,
    /// Prometheus binary [default: prometheus on PATH]
    #[arg(long, env = "KWOK_PROMETHEUS_BINARY")]
    pub prometheus_binary: Option<PathBuf>,
    /// An extra flag for a component, as component=key=value (gives --key=value,
    /// replacing a flag of the same key); repeatable.
    #[arg(
        long = "extra-args",
        value_name = "COMPONENT=KEY=VALUE",
        env = "KWOK_EXTRA_ARGS",
        value_delimiter = ';'
    )]
    pub extra_args: Vec<String>,
    /// The kubeconfig that gets the cluster's context [default: first of $KUBECONFIG, else ~/.kube/config]
    #[arg(long, env = "KWOK_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Give up creating after this long, counted from the start: building missing
    /// control-plane binaries, starting, waiting for health (bounds --wait). On expiry the
    /// half-made cluster is removed [default: none]
    #[arg(long, value_parser = humantime::parse_duration, env = "KWOK_TIMEOUT")]
    pub timeout: Option<Duration>,
    /// Stage/KwokConfiguration file handed to the kwok controller as `--config`; repeatable
    /// (default: none, so kwok uses its built-in stages; upstream KWOK's binary needs one).
    #[arg(long)]
    pub kwok_controller_config: Vec<PathBuf>,
}

/// One layer of a cluster's options: the `create cluster` flags with their `KWOK_*`
/// variables, or the `options:` of a `KwokctlConfiguration` (upstream's field names).
///
/// Every field is an `Option` so that a layer can leave it to the one below:
/// `settings::Settings::resolve` lays the flags (clap lets a flag win over its variable)
/// over the files (a later file over an earlier one) over the defaults named in `--help`.
/// Boolean switches take `--x`, `--x=true` or `--x=false`.
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterOptions {
    /// Runtime: binary (local processes), docker or podman (containers from images
    /// built locally); nerdctl and kind are refused with what they lack [default: binary]
    #[arg(long, env = "KWOK_RUNTIME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Components to run, comma-separated; replaces the default set
    /// [default: etcd,kube-apiserver,kube-controller-manager,kube-scheduler,kwok-controller]
    #[arg(long, value_delimiter = ',', env = "KWOK_COMPONENTS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<String>>,
    /// Add a component to the set (e.g. prometheus); repeatable or comma-separated.
    #[arg(long, value_delimiter = ',', env = "KWOK_ENABLE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable: Option<Vec<String>>,
    /// Remove a component from the set (e.g. kube-scheduler); repeatable or comma-separated.
    #[arg(long, value_delimiter = ',', env = "KWOK_DISABLE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable: Option<Vec<String>>,
    /// Do not run kube-scheduler (same as --disable kube-scheduler).
    #[arg(long, env = "KWOK_DISABLE_KUBE_SCHEDULER", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_kube_scheduler: Option<bool>,
    /// Do not run kube-controller-manager (same as --disable kube-controller-manager).
    #[arg(long, env = "KWOK_DISABLE_KUBE_CONTROLLER_MANAGER", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_kube_controller_manager: Option<bool>,
    /// kube-apiserver port (default: a free port).
    #[arg(long, env = "KWOK_KUBE_APISERVER_PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_apiserver_port: Option<u16>,
    /// etcd client port (default: a free port).
    #[arg(long, env = "KWOK_ETCD_PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_port: Option<u16>,
    /// Run Prometheus on this port, scraping every component (implies --enable prometheus).
    #[arg(long, env = "KWOK_PROMETHEUS_PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus_port: Option<u16>,
    /// Run Jaeger on this port (UI and query API), receiving kube-apiserver's and kwok's
    /// traces over OTLP (implies --enable jaeger; built from its pinned Go module on first use).
    #[arg(long, env = "KWOK_JAEGER_PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jaeger_port: Option<u16>,
    /// metrics-server's secure port, when it runs [default: a free port]
    #[arg(long, env = "KWOK_METRICS_SERVER_PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_server_port: Option<u16>,
    /// Run metrics-server (same as --enable metrics-server, which upstream prefers):
    /// `kubectl top` and HorizontalPodAutoscalers read the usage kwok reports.
    #[arg(long, env = "KWOK_ENABLE_METRICS_SERVER", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_metrics_server: Option<bool>,
    /// Port of the kwok controller's /healthz and /metrics [default: a free port]
    #[arg(long = "controller-port", env = "KWOK_CONTROLLER_PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kwok_controller_port: Option<u16>,
    /// How many kwok controllers share the nodes (kwok --scale-out; processes or containers): the
    /// first is `kwok-controller`, the others `kwok-controller-1`, … each on a free port
    /// [default: 1]
    #[arg(long, env = "KWOK_KWOK_REPLICAS")]
    #[serde(
        default,
        deserialize_with = "number_or_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub kwok_replicas: Option<String>,
    /// How kwok's requests reach the apiserver: `node-high` gives kwok a user of its own
    /// (RBAC cluster-admin) whose requests API Priority and Fairness puts at kubelets'
    /// priority level; `exempt` runs it in `system:masters` as upstream kwokctl does
    /// (no queueing, no RBAC) [default: node-high]
    #[arg(long, env = "KWOK_KWOK_PRIORITY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kwok_priority: Option<String>,
    /// How kwok authenticates to the apiserver: `token` (a bearer token in the
    /// apiserver's token file: no certificate chain to verify on each request) or `cert`
    /// (a client certificate, as upstream kwokctl); the same user and groups either way
    /// [default: token]
    #[arg(long, env = "KWOK_KWOK_AUTH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kwok_auth: Option<String>,
    /// GOGC of etcd, kube-apiserver, kube-controller-manager and kube-scheduler: how far
    /// each one's heap may grow past what is live before Go collects it, in percent.
    /// Above 100 each is also held to a quarter of the machine's memory (GOMEMLIMIT).
    /// 100 is Go's default and upstream kwokctl's set-up (kwokctl then sets neither)
    /// [default: 400]
    #[arg(long, env = "KWOK_CONTROL_PLANE_GOGC")]
    #[serde(
        default,
        deserialize_with = "number_or_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub control_plane_gogc: Option<String>,
    /// Port of kube-controller-manager [default: a free port]
    #[arg(long, env = "KWOK_KUBE_CONTROLLER_MANAGER_PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_controller_manager_port: Option<u16>,
    /// Port of kube-scheduler [default: a free port]
    #[arg(long, env = "KWOK_KUBE_SCHEDULER_PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_scheduler_port: Option<u16>,
    /// A kube-scheduler configuration file (KubeSchedulerConfiguration); kwokctl sets its
    /// clientConnection.kubeconfig.
    #[arg(long, env = "KWOK_KUBE_SCHEDULER_CONFIG")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_scheduler_config: Option<PathBuf>,
    /// An audit policy file for kube-apiserver; events go to logs/audit.log
    /// (`kwokctl logs audit`).
    #[arg(long, env = "KWOK_KUBE_AUDIT_POLICY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_audit_policy: Option<PathBuf>,
    /// Authorization in kube-apiserver: true is Node,RBAC; false allows everything [default: true]
    #[arg(long, env = "KWOK_KUBE_AUTHORIZATION", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_authorization: Option<bool>,
    /// kube-apiserver's admission plugins (its defaults); false runs none, as upstream's
    /// `--admission-control=` [default: the value of --kube-authorization]
    #[arg(long, env = "KWOK_KUBE_ADMISSION", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_admission: Option<bool>,
    /// Serve the apiserver over HTTPS with authentication; only true is supported
    /// (upstream's false is for Kubernetes before 1.13) [default: true]
    #[arg(long, env = "KWOK_SECURE_PORT", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secure_port: Option<bool>,
    /// etcd's storage quota, a quantity (`8Gi`, `2G`) [default: 8Gi]
    #[arg(long, env = "KWOK_ETCD_QUOTA_BACKEND_SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_quota_backend_size: Option<String>,
    /// Feature gates for the Kubernetes components, e.g. "A=true,B=false".
    #[arg(long, env = "KWOK_KUBE_FEATURE_GATES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_feature_gates: Option<String>,
    /// kube-apiserver --runtime-config: built-in APIs to turn on or off, e.g. "api/alpha=true".
    #[arg(long, env = "KWOK_KUBE_RUNTIME_CONFIG")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_runtime_config: Option<String>,
    /// CRDs the kwok controller serves (passed on as kwok --enable-crds), e.g. Stage;
    /// comma-separated.
    #[arg(long, value_delimiter = ',', env = "KWOK_ENABLE_CRDS")]
    #[serde(rename = "enableCRDs", skip_serializing_if = "Option::is_none")]
    pub enable_crds: Option<Vec<String>>,
    /// Duration of the fake nodes' leases in seconds; 0 turns leases off [default: 40]
    #[arg(long, env = "KWOK_NODE_LEASE_DURATION_SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_lease_duration_seconds: Option<u32>,
    /// Scale factor of node heartbeats: kube-controller-manager checks nodes every
    /// FACTOR seconds and marks one unhealthy after 8×FACTOR seconds [default: 5]
    #[arg(long, env = "KWOK_HEARTBEAT_FACTOR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_factor: Option<f64>,
    /// Key prefix of the cluster's data in etcd [default: /registry]
    #[arg(long, env = "KWOK_ETCD_PREFIX")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_prefix: Option<String>,
    /// Lift the QPS limits of kube-controller-manager and kube-scheduler (20/s by default,
    /// which paces how fast Deployments get their pods) and the apiserver's in-flight limits.
    #[arg(long, env = "KWOK_DISABLE_QPS_LIMITS", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    #[serde(rename = "disableQPSLimits", skip_serializing_if = "Option::is_none")]
    pub disable_qps_limits: Option<bool>,
    /// Accepted for upstream compatibility; no runtime pulls images (they are built locally).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quiet_pull: Option<bool>,
    /// Kubernetes version of the control plane: any release the Go module proxy serves
    /// (downloaded, else built on first use and cached) [default: the pinned one]
    #[arg(long, env = "KWOK_KUBE_VERSION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_version: Option<String>,
    /// Where Kubernetes release binaries are downloaded from, each beside its `.sha256`
    /// ("" downloads nothing: they are built from Go modules)
    /// [default: https://dl.k8s.io/release/<version>/bin/linux/<arch>]
    #[arg(long, env = "KWOK_KUBE_BINARY_PREFIX")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_binary_prefix: Option<String>,
    /// Where etcd's release tarball is downloaded from, beside its SHA256SUMS ("" downloads
    /// nothing) [default: https://github.com/etcd-io/etcd/releases/download/<version>]
    #[arg(long, env = "KWOK_ETCD_BINARY_PREFIX")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_binary_prefix: Option<String>,
}

/// A count given as a number (`kwokReplicas: 2`) or as text, checked when the settings
/// are resolved so that a bad one is a one-line error naming the flag.
fn number_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(i64),
        Text(String),
    }
    Ok(Option::<Raw>::deserialize(d)?.map(|raw| match raw {
        Raw::Number(n) => n.to_string(),
        Raw::Text(t) => t,
    }))
}

impl ClusterOptions {
    /// `over` laid over `self`: each field `over` sets replaces this one's, except
    /// `enable` and `disable`, whose lists `over` adds to when `append_lists` (the
    /// command line adds to the files' sets; a later file replaces an earlier one's).
    pub fn overlay(&self, over: &ClusterOptions, append_lists: bool) -> ClusterOptions {
        let mut merged = serde_json::to_value(self).expect("plain data");
        let top = serde_json::to_value(over).expect("plain data");
        if let (Some(m), Some(o)) = (merged.as_object_mut(), top.as_object()) {
            for (k, v) in o {
                m.insert(k.clone(), v.clone());
            }
        }
        let mut merged: ClusterOptions = serde_json::from_value(merged).expect("merged options deserialize");
        if append_lists {
            for (list, base) in [
                (&mut merged.enable, &self.enable),
                (&mut merged.disable, &self.disable),
            ] {
                if let (Some(list), Some(base)) = (list.as_mut(), base) {
                    list.splice(0..0, base.iter().cloned());
                }
            }
        }
        merged
    }
}
