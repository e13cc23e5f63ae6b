//! What `create cluster` will do, resolved from its layers: flags and `KWOK_*`
//! variables over the configuration files over the defaults. Pure: no ports are
//! taken and no files read here.

use std::{path::PathBuf, time::Duration};

use crate::{
    binaries::Downloads,
    component::Component,
    components::{self, ComponentPatch, ExtraArg},
    flags::{ClusterFlags, CreateClusterArgs},
    kube_version::Versions,
    options::{DEFAULT_ETCD_PREFIX, DEFAULT_HEARTBEAT_FACTOR, DEFAULT_NODE_LEASE_DURATION_SECONDS},
    userconfig::{FileOptions, UserConfig},
};

/// How long `create cluster` waits for health by default (`--wait`).
const DEFAULT_WAIT: Duration = Duration::from_secs(120);

/// Errors in the settings.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A component name or component set is wrong.
    #[error(transparent)]
    Component(#[from] components::Error),
    /// An `--extra-args` value is not `component=key=value`.
    #[error("--extra-args {0:?}: want COMPONENT=KEY=VALUE, e.g. kube-apiserver=v=4")]
    ExtraArg(String),
    /// `--kube-version` is not a release number.
    #[error(transparent)]
    KubeVersion(#[from] crate::kube_version::Malformed),
    /// A value out of range.
    #[error("{flag} {value}: {reason}")]
    Invalid {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: String,
        /// Why.
        reason: &'static str,
    },
}

/// Result of resolving settings.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Ports asked for; `None` gets a free one.
#[derive(Debug, Clone, Default)]
#[allow(missing_docs)] // reason: one field per component, named after it.
pub struct PortRequests {
    pub kube_apiserver: Option<u16>,
    pub etcd: Option<u16>,
    pub kube_controller_manager: Option<u16>,
    pub kube_scheduler: Option<u16>,
    pub kwok_controller: Option<u16>,
    pub prometheus: Option<u16>,
    pub jaeger: Option<u16>,
    pub metrics_server: Option<u16>,
}

/// Everything `create cluster` needs besides ports and binaries.
#[derive(Debug, Clone)]
#[allow(missing_docs)] // reason: each field is the `create cluster` flag of the same name.
pub struct Settings {
    pub runtime: String,
    /// Components that run, in [`Component::ALL`] order.
    pub components: Vec<Component>,
    pub ports: PortRequests,
    pub disable_qps_limits: bool,
    pub kube_authorization: bool,
    /// kube-apiserver runs its default admission plugins.
    pub kube_admission: bool,
    /// etcd's `--quota-backend-bytes`.
    pub etcd_quota_backend_bytes: u64,
    pub kube_audit_policy: Option<PathBuf>,
    pub kube_scheduler_config: Option<PathBuf>,
    pub kube_feature_gates: String,
    pub kube_runtime_config: String,
    pub enable_crds: Vec<String>,
    pub node_lease_duration_seconds: u32,
    pub heartbeat_factor: f64,
    pub etcd_prefix: String,
    /// Patches from the files, then one per `--extra-args`.
    pub patches: Vec<ComponentPatch>,
    /// Stage and KwokConfiguration documents for kwok.
    pub kwok_documents: Vec<String>,
    /// The user kubeconfig that gets the context.
    pub kubeconfig: PathBuf,
    /// How long to wait for health (`--wait` bounded by `--timeout`).
    pub wait: Duration,
    /// Print what would be done and change nothing (the global `--dry-run`).
    pub dry_run: bool,
    /// The Kubernetes and etcd versions (`--kube-version`).
    pub versions: Versions,
    /// Where release binaries are downloaded from.
    pub downloads: Downloads,
}

impl Settings {
    /// Resolves `args` over `user`.
    pub fn resolve(args: &CreateClusterArgs, user: &UserConfig) -> Result<Self> {
        let o = effective_options(args, user);
        let mut patches = user.patches.clone();
        for raw in &args.cluster.extra_args {
            patches.push(parse_extra_arg(raw)?);
        }
        for patch in &patches {
            components::check_name("componentsPatches", &patch.name)?;
        }
        if o.secure_port == Some(false) {
            return Err(Error::Invalid {
                flag: "--secure-port",
                value: "false".into(),
                reason: "kube-apiserver always serves HTTPS with authentication (an insecure port needs Kubernetes before 1.13)",
            });
        }
        let etcd_quota_backend_bytes = match &o.etcd_quota_backend_size {
            None => crate::options::DEFAULT_ETCD_QUOTA_BYTES,
            Some(size) => kwok_engine::quantity::parse(size)
                .filter(|b| b.is_finite() && *b >= 1.0 && b.fract() == 0.0)
                .map(|b| b as u64)
                .ok_or_else(|| Error::Invalid {
                    flag: "--etcd-quota-backend-size",
                    value: size.clone(),
                    reason: "not a whole number of bytes as a quantity (e.g. 8Gi, 2G)",
                })?,
        };
        let heartbeat_factor = o.heartbeat_factor.unwrap_or(DEFAULT_HEARTBEAT_FACTOR);
        if !(heartbeat_factor.is_finite() && heartbeat_factor > 0.0) {
            return Err(Error::Invalid {
                flag: "--heartbeat-factor",
                value: heartbeat_factor.to_string(),
                reason: "must be a positive number",
            });
        }
        for (flag, value) in [
            ("--dashboard-port", &args.dashboard_port),
            (
                "--kube-apiserver-insecure-port",
                &args.kube_apiserver_insecure_port,
            ),
            ("--kueueviz-port", &args.kueueviz_port),
        ] {
            if let Some(value) = value {
                return Err(Error::Invalid {
                    flag,
                    value: value.clone(),
                    reason: "a flag of upstream kwokctl for a component kwokctl-rs does not run yet",
                });
            }
        }
        // Upstream's `--wait 0s` does not wait: here starting still needs its health
        // checks, bounded as by default.
        let asked = match args.wait {
            d if d.is_zero() => DEFAULT_WAIT,
            d => d,
        };
        let wait = match args.cluster.timeout {
            Some(timeout) => asked.min(timeout),
            None => asked,
        };
        Ok(Self {
            runtime: o.runtime.clone().unwrap_or_else(|| "binary".into()),
            components: component_set(&o)?,
            ports: PortRequests {
                kube_apiserver: o.kube_apiserver_port,
                etcd: o.etcd_port,
                kube_controller_manager: o.kube_controller_manager_port,
                kube_scheduler: o.kube_scheduler_port,
                kwok_controller: o.kwok_controller_port,
                prometheus: o.prometheus_port,
                jaeger: o.jaeger_port,
                metrics_server: o.metrics_server_port,
            },
            disable_qps_limits: o.disable_qps_limits.unwrap_or(false),
            kube_authorization: o.kube_authorization.unwrap_or(true),
            // Upstream's default follows authorization.
            kube_admission: o.kube_admission.unwrap_or(o.kube_authorization.unwrap_or(true)),
            etcd_quota_backend_bytes,
            kube_audit_policy: o.kube_audit_policy,
            kube_scheduler_config: o.kube_scheduler_config,
            kube_feature_gates: o.kube_feature_gates.unwrap_or_default(),
            kube_runtime_config: o.kube_runtime_config.unwrap_or_default(),
            enable_crds: o.enable_crds.unwrap_or_default(),
            // Upstream scales the lease by --heartbeat-factor too (40 s × 5 = 200 s).
            node_lease_duration_seconds: (f64::from(
                o.node_lease_duration_seconds
                    .unwrap_or(DEFAULT_NODE_LEASE_DURATION_SECONDS),
            ) * heartbeat_factor) as u32,
            heartbeat_factor,
            etcd_prefix: o.etcd_prefix.unwrap_or_else(|| DEFAULT_ETCD_PREFIX.into()),
            patches,
            kwok_documents: user.kwok_documents.clone(),
            kubeconfig: args
                .cluster
                .kubeconfig
                .clone()
                .unwrap_or_else(crate::kubeconfig::user_kubeconfig_path),
            wait,
            // The global `--dry-run`; the caller sets it.
            dry_run: false,
            versions: Versions::for_kube(o.kube_version.as_deref())?,
            downloads: Downloads {
                kube_prefix: o.kube_binary_prefix,
                etcd_prefix: o.etcd_binary_prefix,
            },
        })
    }

    /// Whether `component` runs.
    pub fn runs(&self, component: Component) -> bool {
        self.components.contains(&component)
    }
}

/// The file options with the flags and `KWOK_*` variables that were given laid over them.
pub fn effective_options(args: &CreateClusterArgs, user: &UserConfig) -> FileOptions {
    let c: &ClusterFlags = &args.cluster;
    let mut o = user.options.clone();
    macro_rules! over {
        ($($field:ident = $value:expr),* $(,)?) => {$(
            if let Some(v) = $value { o.$field = Some(v); }
        )*};
    }
    over!(
        runtime = args.runtime.clone(),
        kube_apiserver_port = args.kube_apiserver_port,
        etcd_port = args.etcd_port,
        components = c.components.clone(),
        prometheus_port = c.prometheus_port,
        jaeger_port = args.jaeger_port,
        metrics_server_port = args.metrics_server_port,
        enable_metrics_server = args.enable_metrics_server.then_some(true),
        kwok_controller_port = c.controller_port,
        kube_controller_manager_port = c.kube_controller_manager_port,
        kube_scheduler_port = c.kube_scheduler_port,
        kube_scheduler_config = c.kube_scheduler_config.clone(),
        kube_audit_policy = c.kube_audit_policy.clone(),
        kube_authorization = c.kube_authorization,
        kube_admission = c.kube_admission,
        secure_port = c.secure_port,
        etcd_quota_backend_size = c.etcd_quota_backend_size.clone(),
        kube_feature_gates = c.kube_feature_gates.clone(),
        kube_runtime_config = c.kube_runtime_config.clone(),
        enable_crds = c.enable_crds.clone(),
        node_lease_duration_seconds = c.node_lease_duration_seconds,
        heartbeat_factor = c.heartbeat_factor,
        etcd_prefix = c.etcd_prefix.clone(),
        disable_qps_limits = args.disable_qps_limits.then_some(true),
        disable_kube_scheduler = c.disable_kube_scheduler.then_some(true),
        disable_kube_controller_manager = c.disable_kube_controller_manager.then_some(true),
        quiet_pull = c.quiet_pull.then_some(true),
        kube_version = args.kube_version.clone(),
        kube_binary_prefix = args.kube_binary_prefix.clone(),
        etcd_binary_prefix = args.etcd_binary_prefix.clone(),
    );
    // Lists from flags add to the file's.
    for (list, extra) in [(&mut o.enable, &c.enable), (&mut o.disable, &c.disable)] {
        if !extra.is_empty() {
            list.get_or_insert_with(Vec::new).extend(extra.iter().cloned());
        }
    }
    o
}

/// The components that run: the base set, plus Prometheus and Jaeger when they have a
/// port and metrics-server when `enableMetricsServer`, plus `enable`, minus `disable`
/// and the `disable*` switches.
fn component_set(o: &FileOptions) -> Result<Vec<Component>> {
    let mut set: Vec<Component> = match &o.components {
        Some(list) => list
            .iter()
            .map(|name| components::check_name("--components", name))
            .collect::<Result<_, _>>()?,
        None => Component::DEFAULT.to_vec(),
    };
    if o.prometheus_port.is_some() {
        set.push(Component::Prometheus);
    }
    if o.jaeger_port.is_some() {
        set.push(Component::Jaeger);
    }
    // Upstream's deprecated switch; a port alone does not enable it (as upstream).
    if o.enable_metrics_server == Some(true) {
        set.push(Component::MetricsServer);
    }
    for name in o.enable.iter().flatten() {
        set.push(components::check_name("--enable", name)?);
    }
    let mut off: Vec<Component> = Vec::new();
    for name in o.disable.iter().flatten() {
        off.push(components::check_name("--disable", name)?);
    }
    if o.disable_kube_scheduler == Some(true) {
        off.push(Component::KubeScheduler);
    }
    if o.disable_kube_controller_manager == Some(true) {
        off.push(Component::KubeControllerManager);
    }
    if let Some(required) = Component::REQUIRED
        .into_iter()
        .find(|r| off.contains(r) || !set.contains(r))
    {
        return Err(components::Error::Required(required).into());
    }
    set.retain(|c| !off.contains(c));
    Ok(Component::ALL.into_iter().filter(|c| set.contains(c)).collect())
}

/// `component=key=value` → a patch with one extra arg.
fn parse_extra_arg(raw: &str) -> Result<ComponentPatch> {
    let (name, rest) = raw.split_once('=').ok_or_else(|| Error::ExtraArg(raw.into()))?;
    let (key, value) = rest.split_once('=').ok_or_else(|| Error::ExtraArg(raw.into()))?;
    let key = key.trim_start_matches('-');
    if name.is_empty() || key.is_empty() {
        return Err(Error::ExtraArg(raw.into()));
    }
    components::check_name("--extra-args", name)?;
    Ok(ComponentPatch {
        name: name.into(),
        extra_args: vec![ExtraArg::new(key, value)],
        ..ComponentPatch::default()
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::flags::{Cli, Command, CreateCommand};

    fn resolve(argv: &[&str], user: &UserConfig) -> Result<Settings> {
        let cli = Cli::try_parse_from(["kwokctl", "create", "cluster"].iter().chain(argv)).unwrap();
        let Command::Create(CreateCommand::Cluster(args)) = cli.command else {
            panic!("not create")
        };
        Settings::resolve(&args, user)
    }

    #[test]
    fn command_line_should_have_no_clashing_flags() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_should_run_the_five_components() {
        let s = resolve(&[], &UserConfig::default()).unwrap();
        assert_eq!(s.components, Component::DEFAULT);
        assert_eq!(s.etcd_prefix, "/registry");
        assert!(s.kube_authorization);
    }

    #[test]
    fn enable_and_disable_should_edit_the_set() {
        let s = resolve(
            &[
                "--enable",
                "prometheus",
                "--disable",
                "kube-scheduler",
                "--disable-kube-controller-manager",
            ],
            &UserConfig::default(),
        )
        .unwrap();
        assert_eq!(
            s.components,
            [
                Component::Etcd,
                Component::KubeApiserver,
                Component::KwokController,
                Component::Prometheus
            ]
        );
        let s = resolve(&["--prometheus-port", "9999"], &UserConfig::default()).unwrap();
        assert!(s.runs(Component::Prometheus));
    }

    #[test]
    fn repeated_flags_should_take_the_last_and_upstream_only_flags_should_be_refused() {
        let s = resolve(&["--wait", "0s", "--wait=15m"], &UserConfig::default()).unwrap();
        assert_eq!(s.wait, Duration::from_secs(900), "the last --wait wins");
        let s = resolve(&["--wait", "0s"], &UserConfig::default()).unwrap();
        assert_eq!(s.wait, DEFAULT_WAIT);
        let err = resolve(&["--dashboard-port", "8000"], &UserConfig::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--dashboard-port 8000: a flag of upstream kwokctl for a component kwokctl-rs does not run yet"
        );
        let err = resolve(&["--enable", "kueue"], &UserConfig::default()).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "--enable: component \"kueue\" of upstream kwokctl is not supported by kwokctl-rs yet"
            ),
            "{err}"
        );
    }

    #[test]
    fn metrics_server_should_run_by_enable_or_upstreams_switch_and_take_its_port() {
        let upstream = resolve(
            &["--enable-metrics-server", "--metrics-server-port", "4443"],
            &UserConfig::default(),
        )
        .unwrap();
        assert!(upstream.runs(Component::MetricsServer));
        assert_eq!(upstream.ports.metrics_server, Some(4443));
        let enabled = resolve(&["--enable", "metrics-server"], &UserConfig::default()).unwrap();
        assert_eq!(enabled.components, upstream.components);
        assert_eq!(enabled.components.last(), Some(&Component::MetricsServer));
        let mut user = UserConfig::default();
        user.options.enable_metrics_server = Some(true);
        assert!(resolve(&[], &user).unwrap().runs(Component::MetricsServer));
        let port_only = resolve(&["--metrics-server-port", "4443"], &UserConfig::default()).unwrap();
        assert!(
            !port_only.runs(Component::MetricsServer),
            "a port alone enables nothing, as upstream"
        );
    }

    #[test]
    fn required_and_unknown_components_should_be_refused() {
        let err = resolve(&["--disable", "etcd"], &UserConfig::default()).unwrap_err();
        assert!(err.to_string().contains("\"etcd\" cannot be disabled"), "{err}");
        let err = resolve(&["--enable", "kubelet"], &UserConfig::default()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--enable: unknown component \"kubelet\""),
            "{err}"
        );
        let err = resolve(&["--extra-args", "kube-apiserver"], &UserConfig::default()).unwrap_err();
        assert!(
            err.to_string().starts_with("--extra-args \"kube-apiserver\""),
            "{err}"
        );
    }

    #[test]
    fn heartbeat_factor_should_scale_the_lease_as_upstream() {
        let lease = |args: &[&str]| {
            resolve(args, &UserConfig::default())
                .unwrap()
                .node_lease_duration_seconds
        };
        assert_eq!(lease(&[]), 200, "40 s × the default factor 5");
        assert_eq!(lease(&["--heartbeat-factor", "1"]), 40);
        assert_eq!(
            lease(&["--heartbeat-factor", "0.5", "--node-lease-duration-seconds", "30"]),
            15
        );
    }

    #[test]
    fn flags_should_win_over_the_file_and_the_file_over_defaults() {
        let mut user = UserConfig::default();
        user.options.etcd_prefix = Some("/file".into());
        user.options.heartbeat_factor = Some(2.0);
        let s = resolve(&["--etcd-prefix", "/flag"], &user).unwrap();
        assert_eq!(s.etcd_prefix, "/flag");
        assert_eq!(s.heartbeat_factor, 2.0);
        assert_eq!(s.node_lease_duration_seconds, 80, "40 s × 2, as upstream");
        let s = resolve(&["--extra-args", "kwok-controller=v=4"], &user).unwrap();
        assert_eq!(s.patches[0].extra_args[0].value.as_deref(), Some("4"));
    }
}
