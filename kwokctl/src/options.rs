//! A cluster's resolved options: what `create cluster` settled on (every port concrete),
//! saved as `options:` in the cluster's `kwok.yaml` and read by the component builders.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{auth::KwokAuth, kube_version::Versions, ports::Allocator, priority::KwokPriority};

/// A cluster's options, resolved from the layers (see `settings::Settings::resolve`):
/// what the component builders, the runtimes and the saved `kwok.yaml` read. Every port
/// is concrete once [`Options::allocate_ports`] has run (0 until then: a free one).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Options {
    /// The runtime (`binary`).
    pub runtime: String,
    /// Kubernetes version of the control plane.
    pub kube_version: String,
    /// etcd version.
    pub etcd_version: String,
    /// kube-apiserver secure port.
    pub kube_apiserver_port: u16,
    /// etcd client port.
    pub etcd_port: u16,
    /// etcd peer port.
    pub etcd_peer_port: u16,
    /// kube-controller-manager secure port.
    pub kube_controller_manager_port: u16,
    /// kube-scheduler secure port.
    pub kube_scheduler_port: u16,
    /// kwok controller's HTTPS port (`/healthz`, `/readyz`, `/metrics`, the kubelet API).
    pub kwok_controller_port: u16,
    /// How many kwok controllers share the nodes (`--kwok-replicas`); left out of
    /// `kwok.yaml` when 1, the single kwok of every cluster before it.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub kwok_replicas: u32,
    /// The HTTPS ports of kwok replicas 1..N (replica 0 has `kwok_controller_port`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kwok_replica_ports: Vec<u16>,
    /// How kwok's requests are authorized and prioritized (`--kwok-priority`). A
    /// cluster saved before the flag existed ran kwok in `system:masters`: exempt.
    #[serde(default = "exempt")]
    pub kwok_priority: KwokPriority,
    /// How kwok authenticates (`--kwok-auth`). A cluster saved before the flag existed
    /// gave kwok a client certificate.
    #[serde(default = "cert")]
    pub kwok_auth: KwokAuth,
    /// GOGC of the Go control plane (`--control-plane-gogc`); 100 is Go's default, what
    /// a cluster saved before the flag ran with.
    #[serde(default = "go_default_gogc")]
    pub control_plane_gogc: u32,
    /// Lift the client QPS limits of the controller-manager and scheduler and the
    /// apiserver's in-flight limits (`--disable-qps-limits`).
    #[serde(default)]
    pub disable_qps_limits: bool,
    /// Prometheus port, when Prometheus runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_port: Option<u16>,
    /// Jaeger's UI and query port, when Jaeger runs (`--jaeger-port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jaeger_port: Option<u16>,
    /// Jaeger's OTLP/gRPC port, where kube-apiserver and kwok send spans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jaeger_otlp_grpc_port: Option<u16>,
    /// metrics-server's secure port, when it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_server_port: Option<u16>,
    /// kube-apiserver authorization: Node,RBAC when true, AlwaysAllow when false.
    #[serde(default = "yes")]
    pub kube_authorization: bool,
    /// kube-apiserver runs its default admission plugins (none when false).
    #[serde(default = "yes")]
    pub kube_admission: bool,
    /// etcd's storage quota in bytes.
    #[serde(default = "default_etcd_quota")]
    pub etcd_quota_backend_bytes: u64,
    /// The audit policy, copied into the cluster folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_audit_policy: Option<PathBuf>,
    /// The kube-scheduler configuration, written into the cluster folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_scheduler_config: Option<PathBuf>,
    /// `--feature-gates` of the Kubernetes components ("" for none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kube_feature_gates: String,
    /// kube-apiserver `--runtime-config` ("" for none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kube_runtime_config: String,
    /// CRDs the kwok controller serves.
    #[serde(default, rename = "enableCRDs", skip_serializing_if = "Vec::is_empty")]
    pub enable_crds: Vec<String>,
    /// Lease duration of the fake nodes (0: no leases).
    #[serde(default = "default_lease")]
    pub node_lease_duration_seconds: u32,
    /// Node heartbeat scale factor.
    #[serde(default = "default_heartbeat_factor")]
    pub heartbeat_factor: f64,
    /// etcd key prefix.
    #[serde(default = "default_etcd_prefix")]
    pub etcd_prefix: String,
    /// Stage and KwokConfiguration documents for kwok, written into the cluster folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kwok_config: Option<PathBuf>,
    /// The user kubeconfig holding the cluster's context (default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// Absolute paths handed to the kwok controller as `--config` (`--kwok-controller-config`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kwok_controller_config: Vec<std::path::PathBuf>,
}

/// Default `--node-lease-duration-seconds`: the kubelet's 40 s.
pub const DEFAULT_NODE_LEASE_DURATION_SECONDS: u32 = 40;
/// Default `--control-plane-gogc`: the apiserver spent 15 % less CPU per Lease renewal
/// at 400 than at Go's 100, for twice the memory (perf/results/2026-12-06-control-plane-gogc).
pub const DEFAULT_CONTROL_PLANE_GOGC: u32 = 400;
/// Go's own GOGC.
pub const GO_DEFAULT_GOGC: u32 = 100;
/// Default `--heartbeat-factor` (upstream kwokctl's).
pub const DEFAULT_HEARTBEAT_FACTOR: f64 = 5.0;
/// Default `--etcd-prefix`: the apiserver's own.
pub const DEFAULT_ETCD_PREFIX: &str = "/registry";

fn exempt() -> KwokPriority {
    KwokPriority::Exempt
}

fn go_default_gogc() -> u32 {
    GO_DEFAULT_GOGC
}

fn cert() -> KwokAuth {
    KwokAuth::Cert
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

fn yes() -> bool {
    true
}

fn default_lease() -> u32 {
    DEFAULT_NODE_LEASE_DURATION_SECONDS
}

fn default_heartbeat_factor() -> f64 {
    DEFAULT_HEARTBEAT_FACTOR
}

/// etcd's quota unless `--etcd-quota-backend-size` says otherwise: 8 GiB.
pub const DEFAULT_ETCD_QUOTA_BYTES: u64 = 8 << 30;

fn default_etcd_quota() -> u64 {
    DEFAULT_ETCD_QUOTA_BYTES
}

fn default_etcd_prefix() -> String {
    DEFAULT_ETCD_PREFIX.into()
}

impl Default for Options {
    /// Defaults with every port 0: only for building plans in tests and dry runs.
    fn default() -> Self {
        Self {
            runtime: "binary".into(),
            kube_version: String::new(),
            etcd_version: String::new(),
            kube_apiserver_port: 0,
            etcd_port: 0,
            etcd_peer_port: 0,
            kube_controller_manager_port: 0,
            kube_scheduler_port: 0,
            kwok_controller_port: 0,
            kwok_replicas: 1,
            kwok_replica_ports: Vec::new(),
            kwok_priority: KwokPriority::default(),
            kwok_auth: KwokAuth::default(),
            control_plane_gogc: DEFAULT_CONTROL_PLANE_GOGC,
            disable_qps_limits: false,
            prometheus_port: None,
            jaeger_port: None,
            jaeger_otlp_grpc_port: None,
            metrics_server_port: None,
            kube_authorization: true,
            kube_admission: true,
            etcd_quota_backend_bytes: DEFAULT_ETCD_QUOTA_BYTES,
            kube_audit_policy: None,
            kube_scheduler_config: None,
            kube_feature_gates: String::new(),
            kube_runtime_config: String::new(),
            enable_crds: Vec::new(),
            node_lease_duration_seconds: DEFAULT_NODE_LEASE_DURATION_SECONDS,
            heartbeat_factor: DEFAULT_HEARTBEAT_FACTOR,
            etcd_prefix: DEFAULT_ETCD_PREFIX.into(),
            kwok_config: None,
            kubeconfig: None,
            kwok_controller_config: Vec::new(),
        }
    }
}

impl Options {
    /// The Kubernetes and etcd versions the cluster runs.
    pub fn versions(&self) -> Versions {
        Versions {
            kube: self.kube_version.clone(),
            etcd: self.etcd_version.clone(),
        }
    }

    /// The HTTPS port of kwok replica `replica` (0 is the single kwok's port).
    pub fn kwok_port(&self, replica: u32) -> u16 {
        match replica {
            0 => self.kwok_controller_port,
            i => self.kwok_replica_ports.get(i as usize - 1).copied().unwrap_or(0),
        }
    }

    /// Makes every port concrete: a port left 0 gets a free one, a given one must be free
    /// and given once. The ports are held by `ports` until it drops.
    pub fn allocate_ports(&mut self, ports: &mut Allocator) -> crate::ports::Result<()> {
        let mut take = |what: &str, port: &mut u16| -> crate::ports::Result<()> {
            *port = ports.port(what, Some(*port))?;
            Ok(())
        };
        if let Some(port) = &mut self.prometheus_port {
            take("--prometheus-port", port)?;
        }
        // Upstream gives Jaeger's OTLP/gRPC receiver a free port of its own too.
        if let Some(port) = &mut self.jaeger_port {
            take("--jaeger-port", port)?;
        }
        if let Some(port) = &mut self.jaeger_otlp_grpc_port {
            take("jaeger OTLP/gRPC", port)?;
        }
        if let Some(port) = &mut self.metrics_server_port {
            take("--metrics-server-port", port)?;
        }
        take("--kube-apiserver-port", &mut self.kube_apiserver_port)?;
        take("--etcd-port", &mut self.etcd_port)?;
        take("etcd peer", &mut self.etcd_peer_port)?;
        take(
            "--kube-controller-manager-port",
            &mut self.kube_controller_manager_port,
        )?;
        take("--kube-scheduler-port", &mut self.kube_scheduler_port)?;
        take("--controller-port", &mut self.kwok_controller_port)?;
        for port in &mut self.kwok_replica_ports {
            take("--kwok-replicas", port)?;
        }
        Ok(())
    }
}
