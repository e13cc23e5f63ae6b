//! What `create cluster` will do, resolved from its layers in one place
//! ([`Settings::resolve`]): flags over `KWOK_*` variables over the configuration files
//! over the defaults. Pure: no ports are taken and no files read here.

use std::{path::PathBuf, time::Duration};

use crate::{
    auth::KwokAuth,
    binaries::Downloads,
    component::Component,
    components::{self, ComponentPatch, ExtraArg},
    flags::{ClusterOptions, CreateClusterArgs},
    kube_version::Versions,
    options::{
        DEFAULT_CONTROL_PLANE_GOGC, DEFAULT_ETCD_PREFIX, DEFAULT_ETCD_QUOTA_BYTES, DEFAULT_HEARTBEAT_FACTOR,
        DEFAULT_NODE_LEASE_DURATION_SECONDS, Options,
    },
    priority::KwokPriority,
    userconfig::UserConfig,
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

/// Everything `create cluster` needs besides binaries: the cluster's [`Options`] and
/// what is not saved with them.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The resolved options; ports left to pick are 0 until [`Options::allocate_ports`].
    pub options: Options,
    /// Components that run, in [`Component::ALL`] order.
    pub components: Vec<Component>,
    /// Patches from the files, then one per `--extra-args`.
    pub patches: Vec<ComponentPatch>,
    /// Stage and KwokConfiguration documents for kwok.
    pub kwok_documents: Vec<String>,
    /// How long to wait for health (`--wait` bounded by `--timeout`).
    pub wait: Duration,
    /// Print what would be done and change nothing (the global `--dry-run`).
    pub dry_run: bool,
    /// Where release binaries are downloaded from.
    pub downloads: Downloads,
}

impl Settings {
    /// Resolves a cluster's options from its layers, each over the one before:
    ///
    /// 1. the built-in defaults (named in `--help`);
    /// 2. the configuration files' `options:` (`--config`, else `~/.kwok/kwok.yaml`; a
    ///    later file over an earlier one), in `user`;
    /// 3. the `KWOK_*` variables, then
    /// 4. the command-line flags, both in `args` (clap lets a flag win over its variable).
    ///
    /// A field a layer leaves out is the lower layer's; `--enable` and `--disable` add to
    /// the files' lists. Pure: no ports are taken and no files read here.
    pub fn resolve(args: &CreateClusterArgs, user: &UserConfig) -> Result<Self> {
        let o = effective_options(args, user);
        let mut patches = user.patches.clone();
        for raw in &args.extra_args {
            patches.push(parse_extra_arg(raw)?);
        }
        for patch in &patches {
            components::check_name("componentsPatches", &patch.name)?;
        }
        refuse_upstream_only(args)?;
        let components = component_set(&o)?;
        let runs = |c: Component| components.contains(&c);
        let versions = Versions::for_kube(o.kube_version.as_deref())?;
        let heartbeat_factor = heartbeat_factor(&o)?;
        let kwok_replicas = kwok_replicas(&o)?;
        let options = Options {
            runtime: o.runtime.clone().unwrap_or_else(|| "binary".into()),
            kube_version: versions.kube,
            etcd_version: versions.etcd,
            kube_apiserver_port: o.kube_apiserver_port.unwrap_or(0),
            etcd_port: o.etcd_port.unwrap_or(0),
            etcd_peer_port: 0,
            kube_controller_manager_port: o.kube_controller_manager_port.unwrap_or(0),
            kube_scheduler_port: o.kube_scheduler_port.unwrap_or(0),
            kwok_controller_port: o.kwok_controller_port.unwrap_or(0),
            kwok_replicas,
            // Free ports, picked at create.
            kwok_replica_ports: vec![0; kwok_replicas as usize - 1],
            kwok_priority: kwok_priority(&o)?,
            kwok_auth: kwok_auth(&o)?,
            control_plane_gogc: control_plane_gogc(&o)?,
            disable_qps_limits: o.disable_qps_limits.unwrap_or(false),
            prometheus_port: runs(Component::Prometheus).then(|| o.prometheus_port.unwrap_or(0)),
            jaeger_port: runs(Component::Jaeger).then(|| o.jaeger_port.unwrap_or(0)),
            jaeger_otlp_grpc_port: runs(Component::Jaeger).then_some(0),
            metrics_server_port: runs(Component::MetricsServer).then(|| o.metrics_server_port.unwrap_or(0)),
            kube_authorization: o.kube_authorization.unwrap_or(true),
            // Upstream's default follows authorization.
            kube_admission: o.kube_admission.unwrap_or(o.kube_authorization.unwrap_or(true)),
            etcd_quota_backend_bytes: etcd_quota_backend_bytes(&o)?,
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
            // Set by `create cluster` once it knows the cluster's folder.
            kwok_config: None,
            kubeconfig: Some(
                args.kubeconfig
                    .clone()
                    .unwrap_or_else(crate::kubeconfig::user_kubeconfig_path),
            ),
            kwok_controller_config: Vec::new(),
        };
        Ok(Self {
            options,
            components,
            patches,
            kwok_documents: user.kwok_documents.clone(),
            wait: wait(args),
            // The global `--dry-run`; the caller sets it.
            dry_run: false,
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

    /// The user kubeconfig that gets the cluster's context.
    pub fn kubeconfig(&self) -> PathBuf {
        self.options
            .kubeconfig
            .clone()
            .unwrap_or_else(crate::kubeconfig::user_kubeconfig_path)
    }
}

/// The layers of `create cluster` options, files then `KWOK_*` variables then flags,
/// merged (see [`Settings::resolve`]); the defaults are not filled in.
pub fn effective_options(args: &CreateClusterArgs, user: &UserConfig) -> ClusterOptions {
    user.options.overlay(&args.options, true)
}

/// `--secure-port=false`, and the flags of components kwokctl-rs does not run, are refused.
fn refuse_upstream_only(args: &CreateClusterArgs) -> Result<()> {
    if args.options.secure_port == Some(false) {
        return Err(Error::Invalid {
            flag: "--secure-port",
            value: "false".into(),
            reason: "kube-apiserver always serves HTTPS with authentication (an insecure port needs Kubernetes before 1.13)",
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
    Ok(())
}

/// etcd's `--quota-backend-bytes` from `--etcd-quota-backend-size`.
fn etcd_quota_backend_bytes(o: &ClusterOptions) -> Result<u64> {
    let Some(size) = &o.etcd_quota_backend_size else {
        return Ok(DEFAULT_ETCD_QUOTA_BYTES);
    };
    kwok_engine::quantity::parse(size)
        .filter(|b| b.is_finite() && *b >= 1.0 && b.fract() == 0.0)
        .map(|b| b as u64)
        .ok_or_else(|| Error::Invalid {
            flag: "--etcd-quota-backend-size",
            value: size.clone(),
            reason: "not a whole number of bytes as a quantity (e.g. 8Gi, 2G)",
        })
}

/// `--heartbeat-factor`, checked positive.
fn heartbeat_factor(o: &ClusterOptions) -> Result<f64> {
    let factor = o.heartbeat_factor.unwrap_or(DEFAULT_HEARTBEAT_FACTOR);
    if !(factor.is_finite() && factor > 0.0) {
        return Err(Error::Invalid {
            flag: "--heartbeat-factor",
            value: factor.to_string(),
            reason: "must be a positive number",
        });
    }
    Ok(factor)
}

/// A flag naming one of a few values: `parse`d, the default when not given, or refused
/// with `reason` (which lists the names).
fn one_of<T: Default>(
    raw: &Option<String>,
    flag: &'static str,
    parse: fn(&str) -> Option<T>,
    reason: &'static str,
) -> Result<T> {
    let Some(raw) = raw else {
        return Ok(T::default());
    };
    parse(raw).ok_or_else(|| Error::Invalid {
        flag,
        value: raw.clone(),
        reason,
    })
}

/// `--kwok-priority`: `node-high` or `exempt`.
fn kwok_priority(o: &ClusterOptions) -> Result<KwokPriority> {
    one_of(
        &o.kwok_priority,
        "--kwok-priority",
        KwokPriority::parse,
        "must be node-high or exempt",
    )
}

/// `--kwok-auth`: `token` or `cert`.
fn kwok_auth(o: &ClusterOptions) -> Result<KwokAuth> {
    one_of(
        &o.kwok_auth,
        "--kwok-auth",
        KwokAuth::parse,
        "must be token or cert",
    )
}

/// The largest `--control-plane-gogc`: a heap 1,000 times what is live is as good as
/// never collected, which GOGC=off says plainly (and a component patch can set).
const MAX_CONTROL_PLANE_GOGC: u32 = 100_000;

/// A flag taking a whole number in `range` (text from a flag, a variable or a file):
/// `default` when not given, or refused with `reason` (which names the range).
fn whole_number(
    raw: &Option<String>,
    flag: &'static str,
    range: std::ops::RangeInclusive<u32>,
    default: u32,
    reason: &'static str,
) -> Result<u32> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    match raw.trim().parse() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(Error::Invalid {
            flag,
            value: raw.clone(),
            reason,
        }),
    }
}

/// `--control-plane-gogc`: a whole number from 1 to [`MAX_CONTROL_PLANE_GOGC`].
fn control_plane_gogc(o: &ClusterOptions) -> Result<u32> {
    whole_number(
        &o.control_plane_gogc,
        "--control-plane-gogc",
        1..=MAX_CONTROL_PLANE_GOGC,
        DEFAULT_CONTROL_PLANE_GOGC,
        "must be a whole number from 1 to 100000 (percent; 100 is Go's default)",
    )
}

/// The most kwoks `--kwok-replicas` runs: each is a process with a port of its own on
/// this machine, and the member table is measured up to 16.
const MAX_KWOK_REPLICAS: u32 = 64;

/// `--kwok-replicas`: a whole number from 1 to [`MAX_KWOK_REPLICAS`]; more than one needs node leases
/// (the replicas deal the nodes by them). Every runtime runs them: processes, or
/// containers on the host network, each on its own port.
fn kwok_replicas(o: &ClusterOptions) -> Result<u32> {
    let n = whole_number(
        &o.kwok_replicas,
        "--kwok-replicas",
        1..=MAX_KWOK_REPLICAS,
        1,
        "must be a whole number from 1 to 64",
    )?;
    if n > 1 && o.node_lease_duration_seconds == Some(0) {
        return Err(Error::Invalid {
            flag: "--kwok-replicas",
            // Given, since it is more than the default.
            value: o.kwok_replicas.clone().unwrap_or_default(),
            reason: "more than one kwok needs node leases (kwok --scale-out deals the nodes by them); \
                     --node-lease-duration-seconds must not be 0",
        });
    }
    Ok(n)
}

/// How long to wait for health: `--wait`, bounded by `--timeout`.
fn wait(args: &CreateClusterArgs) -> Duration {
    // Upstream's `--wait 0s` does not wait: here starting still needs its health
    // checks, bounded as by default.
    let asked = match args.wait {
        d if d.is_zero() => DEFAULT_WAIT,
        d => d,
    };
    match args.timeout {
        Some(timeout) => asked.min(timeout),
        None => asked,
    }
}

/// The components that run: the base set, plus Prometheus and Jaeger when they have a
/// port and metrics-server when `enableMetricsServer`, plus `enable`, minus `disable`
/// and the `disable*` switches.
fn component_set(o: &ClusterOptions) -> Result<Vec<Component>> {
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
        assert_eq!(s.options.etcd_prefix, "/registry");
        assert!(s.options.kube_authorization);
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
        assert_eq!(upstream.options.metrics_server_port, Some(4443));
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
                .options
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
        assert_eq!(s.options.etcd_prefix, "/flag");
        assert_eq!(s.options.heartbeat_factor, 2.0);
        assert_eq!(s.options.node_lease_duration_seconds, 80, "40 s × 2, as upstream");
        let s = resolve(&["--extra-args", "kwok-controller=v=4"], &user).unwrap();
        assert_eq!(s.patches[0].extra_args[0].value.as_deref(), Some("4"));
    }

    /// A file layer setting a scalar, a switch, a bool and both kinds of list.
    fn file_layer() -> UserConfig {
        let mut user = UserConfig::default();
        user.options.etcd_prefix = Some("/file".into());
        user.options.heartbeat_factor = Some(2.0);
        user.options.disable_qps_limits = Some(true);
        user.options.kube_authorization = Some(false);
        user.options.enable = Some(vec!["prometheus".into()]);
        user.options.enable_crds = Some(vec!["Stage".into()]);
        user.options.kwok_replicas = Some("2".into());
        user
    }

    #[test]
    fn each_option_should_take_the_default_when_no_layer_sets_it() {
        let s = resolve(&[], &UserConfig::default()).unwrap();
        let o = &s.options;
        assert_eq!(o.etcd_prefix, DEFAULT_ETCD_PREFIX);
        assert_eq!(o.heartbeat_factor, DEFAULT_HEARTBEAT_FACTOR);
        assert!(!o.disable_qps_limits && o.kube_authorization && o.kube_admission);
        assert!(o.enable_crds.is_empty());
        assert_eq!(o.etcd_quota_backend_bytes, DEFAULT_ETCD_QUOTA_BYTES);
        assert_eq!((o.kwok_replicas, o.kwok_replica_ports.len()), (1, 0));
        assert_eq!(
            (o.runtime.as_str(), o.kube_apiserver_port, o.prometheus_port),
            ("binary", 0, None)
        );
        assert_eq!(s.components, Component::DEFAULT);
    }

    #[test]
    fn the_file_should_win_over_the_defaults() {
        let s = resolve(&[], &file_layer()).unwrap();
        let o = &s.options;
        assert_eq!(o.etcd_prefix, "/file");
        assert_eq!(o.heartbeat_factor, 2.0);
        assert!(o.disable_qps_limits);
        assert!(
            !o.kube_authorization && !o.kube_admission,
            "admission follows authorization"
        );
        assert_eq!(o.enable_crds, ["Stage"]);
        assert_eq!((o.kwok_replicas, o.kwok_replica_ports.as_slice()), (2, &[0][..]));
        assert!(s.runs(Component::Prometheus));
        assert_eq!(o.prometheus_port, Some(0), "a free port, picked at create");
    }

    #[test]
    fn a_later_file_should_win_over_an_earlier_one_and_replace_its_lists() {
        let mut user = file_layer();
        let doc = "kind: KwokctlConfiguration\noptions:\n  etcdPrefix: /later\n  enable: [jaeger]\n";
        user.parse("later.yaml", doc).unwrap();
        let s = resolve(&[], &user).unwrap();
        assert_eq!(s.options.etcd_prefix, "/later");
        assert_eq!(s.options.heartbeat_factor, 2.0, "left to the earlier file");
        assert!(s.runs(Component::Jaeger) && !s.runs(Component::Prometheus));
    }

    #[test]
    fn flags_should_win_over_the_file_and_add_to_its_enable_list() {
        let s = resolve(
            &[
                "--etcd-prefix=/flag",
                "--disable-qps-limits=false",
                "--kube-authorization",
                "--enable-crds=Stage,Attach",
                "--enable=metrics-server",
                "--kube-apiserver-port=6443",
                "--kwok-replicas=3",
            ],
            &file_layer(),
        )
        .unwrap();
        let o = &s.options;
        assert_eq!(o.etcd_prefix, "/flag");
        assert_eq!(o.heartbeat_factor, 2.0, "not given by flag: the file's");
        assert!(
            !o.disable_qps_limits,
            "--x=false turns off what the file turned on"
        );
        assert!(o.kube_authorization && o.kube_admission);
        assert_eq!(
            o.enable_crds,
            ["Stage", "Attach"],
            "a list flag replaces the file's list"
        );
        assert!(s.runs(Component::Prometheus) && s.runs(Component::MetricsServer));
        assert_eq!(o.kube_apiserver_port, 6443);
        assert_eq!((o.kwok_replicas, o.kwok_replica_ports.len()), (3, 2));
    }

    #[test]
    fn kwok_replicas_should_be_read_from_a_file_as_a_number() {
        let mut user = UserConfig::default();
        let doc = "kind: KwokctlConfiguration\noptions:\n  kwokReplicas: 4\n";
        user.parse("r.yaml", doc).unwrap();
        assert_eq!(resolve(&[], &user).unwrap().options.kwok_replicas, 4);
    }

    #[test]
    fn bad_kwok_replicas_should_be_one_line_naming_the_flag() {
        let err = |argv: &[&str]| resolve(argv, &UserConfig::default()).unwrap_err().to_string();
        assert_eq!(
            err(&["--kwok-replicas", "0"]),
            "--kwok-replicas 0: must be a whole number from 1 to 64"
        );
        assert_eq!(
            err(&["--kwok-replicas", "two"]),
            "--kwok-replicas two: must be a whole number from 1 to 64"
        );
        assert!(err(&["--kwok-replicas", "65"]).ends_with("from 1 to 64"));
        let no_leases = err(&["--kwok-replicas", "2", "--node-lease-duration-seconds", "0"]);
        assert!(
            no_leases.starts_with("--kwok-replicas 2: more than one kwok needs node leases"),
            "{no_leases}"
        );
        let docker = resolve(
            &["--kwok-replicas", "2", "--runtime", "docker"],
            &UserConfig::default(),
        );
        assert_eq!(
            docker.unwrap().options.kwok_replicas,
            2,
            "containers run replicas too"
        );
        let one = resolve(
            &["--kwok-replicas", "1", "--node-lease-duration-seconds", "0"],
            &UserConfig::default(),
        );
        assert_eq!(one.unwrap().options.kwok_replicas, 1, "one kwok needs no leases");
    }

    #[test]
    fn control_plane_gogc_should_default_to_400_and_be_read_from_flag_or_file() {
        let gogc = |argv: &[&str], user: &UserConfig| resolve(argv, user).unwrap().options.control_plane_gogc;
        assert_eq!(gogc(&[], &UserConfig::default()), 400);
        assert_eq!(
            gogc(&["--control-plane-gogc", "100"], &UserConfig::default()),
            100
        );
        let mut user = UserConfig::default();
        let doc = "kind: KwokctlConfiguration\noptions:\n  controlPlaneGogc: 250\n";
        user.parse("g.yaml", doc).unwrap();
        assert_eq!(gogc(&[], &user), 250);
        let err = |argv: &[&str]| resolve(argv, &UserConfig::default()).unwrap_err().to_string();
        for bad in ["0", "off", "-5", "100001"] {
            assert_eq!(
                err(&[&format!("--control-plane-gogc={bad}")]),
                format!(
                    "--control-plane-gogc {bad}: must be a whole number from 1 to 100000 (percent; 100 is Go's default)"
                )
            );
        }
    }

    #[test]
    fn switches_should_take_a_bare_flag_or_an_explicit_value() {
        let on = resolve(&["--disable-qps-limits"], &UserConfig::default()).unwrap();
        assert!(on.options.disable_qps_limits);
        let off = resolve(&["--disable-kube-scheduler=false"], &UserConfig::default()).unwrap();
        assert!(off.runs(Component::KubeScheduler));
        let cli = Cli::try_parse_from(["kwokctl", "create", "cluster", "--disable-qps-limits", "false"]);
        assert!(cli.is_err(), "as Go's bool flags: a value needs `=`");
    }

    /// The name of [`env_should_win_over_the_file_and_lose_to_flags`] for the child run.
    const ENV_TEST: &str = "settings::tests::env_should_win_over_the_file_and_lose_to_flags";

    /// clap reads the `KWOK_*` layer from the process environment, which a threaded test
    /// must not change: the test runs itself again in a child process with the variables
    /// set, and that run checks the layers.
    #[test]
    fn env_should_win_over_the_file_and_lose_to_flags() {
        if std::env::var_os("KWOKCTL_TEST_ENV_LAYER").is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", ENV_TEST, "--test-threads=1"])
                .env("KWOKCTL_TEST_ENV_LAYER", "1")
                .env("KWOK_ETCD_PREFIX", "/env")
                .env("KWOK_HEARTBEAT_FACTOR", "3")
                .env("KWOK_DISABLE_QPS_LIMITS", "false")
                .env("KWOK_ENABLE", "jaeger,metrics-server")
                .env("KWOK_KWOK_REPLICAS", "4")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success() && stdout.contains("1 passed"), "{stdout}");
            return;
        }
        let s = resolve(&["--heartbeat-factor", "4"], &file_layer()).unwrap();
        let o = &s.options;
        assert_eq!(o.etcd_prefix, "/env", "the variable over the file");
        assert_eq!(o.heartbeat_factor, 4.0, "the flag over the variable");
        assert!(
            !o.disable_qps_limits,
            "KWOK_DISABLE_QPS_LIMITS=false over the file's true"
        );
        assert!(
            s.runs(Component::Prometheus) && s.runs(Component::Jaeger) && s.runs(Component::MetricsServer),
            "KWOK_ENABLE adds to the file's list"
        );
        assert_eq!(o.kwok_replicas, 4, "KWOK_KWOK_REPLICAS over the file's 2");
        let s = resolve(&["--enable", "jaeger", "--kwok-replicas", "5"], &file_layer()).unwrap();
        assert!(!s.runs(Component::MetricsServer), "a flag replaces its variable");
        assert_eq!(
            s.options.kwok_replicas, 5,
            "--kwok-replicas over KWOK_KWOK_REPLICAS"
        );
    }
}
