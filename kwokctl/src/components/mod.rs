//! The control-plane components as plain data: which binary runs with which
//! arguments, and how to tell it is healthy. Building them is pure; a runtime runs them.

mod etcd;
pub mod jaeger;
pub mod kube_apiserver;
mod kube_controller_manager;
mod kube_scheduler;
pub mod kwok_controller;
pub mod metrics_server;
pub mod patch;
pub mod prometheus;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{
    component::{Component, UnknownComponent},
    options::Options,
    paths::ClusterDir,
};

pub use patch::{ComponentPatch, EnvVar, ExtraArg, Volume};

/// One process of the cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentSpec {
    /// Which component. Its [`ComponentSpec::instance`] name is the log, pid file and
    /// container stem.
    pub name: Component,
    /// Which replica of the component: 0 but for the kwok controllers of
    /// `--kwok-replicas N`, numbered 0..N. Left out of `kwok.yaml` when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replica: u32,
    /// Absolute path of the binary.
    pub binary: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
    /// The port it serves its health endpoint on.
    pub port: u16,
    /// URL that answers 2xx once it is ready.
    pub health_url: String,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub envs: Vec<EnvVar>,
    /// The image a container runtime runs it from (built by kwokctl from `binary`);
    /// none in the binary runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ComponentSpec {
    /// The name of this process: the component's for replica 0 (upstream's
    /// `kwok-controller`), `<component>-<replica>` for the others (`kwok-controller-1`).
    /// Logs, pid files, containers, `kwokctl logs` and Prometheus jobs go by it.
    pub fn instance(&self) -> String {
        match self.replica {
            0 => self.name.as_str().to_owned(),
            i => format!("{}-{i}", self.name),
        }
    }
}

/// Binaries resolved for the components.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// etcd.
    pub etcd: PathBuf,
    /// kube-apiserver.
    pub kube_apiserver: PathBuf,
    /// kube-controller-manager.
    pub kube_controller_manager: PathBuf,
    /// kube-scheduler.
    pub kube_scheduler: PathBuf,
    /// kwok.
    pub kwok: PathBuf,
    /// Whether that kwok serves the kubelet API as this project's does (client
    /// certificates by `--client-ca-file`, the HTTP CONNECT tunnel); upstream's binary
    /// (`--kwok-controller-binary`) does neither and refuses the flag.
    pub kwok_tunnel: bool,
    /// Prometheus, when it runs.
    pub prometheus: Option<PathBuf>,
    /// Jaeger, when it runs.
    pub jaeger: Option<PathBuf>,
    /// metrics-server, when it runs.
    pub metrics_server: Option<PathBuf>,
}

/// Everything a component builder reads.
pub struct Context<'a> {
    /// Resolved options.
    pub options: &'a Options,
    /// The cluster's files.
    pub dir: &'a ClusterDir,
}

/// Errors choosing or patching components.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name that is no component (or one upstream runs and kwokctl-rs does not yet).
    // Not a `#[source]`: the message already holds it, and `{:#}` would repeat it.
    #[error("{what}: {reason}")]
    Name {
        /// Where the name came from.
        what: String,
        /// Which name, and the known ones.
        reason: UnknownComponent,
    },
    /// etcd or kube-apiserver was left out.
    #[error("component {0:?} cannot be disabled: every cluster needs etcd and kube-apiserver")]
    Required(Component),
}

/// The component called `name` (from `what`, for the message).
pub fn check_name(what: &str, name: &str) -> Result<Component, Error> {
    name.parse().map_err(|reason| Error::Name {
        what: what.to_owned(),
        reason,
    })
}

/// The components of a cluster in start order: etcd, Jaeger when it runs, kube-apiserver,
/// then the rest; Prometheus and metrics-server when they have a binary and a port. The
/// caller keeps those enabled. Jaeger comes before the apiserver and kwok, which send it
/// their spans from the start: started after them, the apiserver's first exports failed
/// and its OTLP client backed off, losing the spans of a cluster's first writes (the
/// jaeger e2e test failed twice so under a loaded machine).
pub fn plan(ctx: &Context<'_>, binaries: &Binaries) -> Vec<ComponentSpec> {
    let o = ctx.options;
    let mut all = vec![etcd::component(ctx, &binaries.etcd)];
    if let (Some(binary), Some(query), Some(otlp_grpc)) =
        (&binaries.jaeger, o.jaeger_port, o.jaeger_otlp_grpc_port)
    {
        all.push(jaeger::component(binary, jaeger::Ports { query, otlp_grpc }));
    }
    all.extend([
        kube_apiserver::component(ctx, &binaries.kube_apiserver, binaries.kwok_tunnel),
        kube_controller_manager::component(ctx, &binaries.kube_controller_manager),
        kube_scheduler::component(ctx, &binaries.kube_scheduler),
    ]);
    all.extend(kwok_controller::replicas(
        ctx,
        &binaries.kwok,
        binaries.kwok_tunnel,
    ));
    if let (Some(binary), Some(port)) = (&binaries.prometheus, o.prometheus_port) {
        all.push(prometheus::component(ctx, binary, port));
    }
    if let (Some(binary), Some(port)) = (&binaries.metrics_server, o.metrics_server_port) {
        all.push(metrics_server::component(ctx, binary, port, binaries.kwok_tunnel));
    }
    all
}

/// The components `--control-plane-gogc` tunes: the Go control plane built from
/// Kubernetes and etcd (kwok is Rust; Prometheus, Jaeger and metrics-server run as they come).
const GO_CONTROL_PLANE: [Component; 4] = [
    Component::Etcd,
    Component::KubeApiserver,
    Component::KubeControllerManager,
    Component::KubeScheduler,
];

/// Sets GOGC on the Go control plane, and above Go's default also GOMEMLIMIT at a
/// quarter of `memory` (the machine's bytes, when known): the four together may then
/// not grow their heaps' garbage past the machine, however big their live heaps get.
/// Nothing at Go's default (100). Run before [`apply_patches`], so that a patch's
/// `extraEnvs` still win (the last of a name is the one a process gets).
pub fn tune_go_runtime(components: &mut [ComponentSpec], gogc: u32, memory: Option<u64>) {
    if gogc == crate::options::GO_DEFAULT_GOGC {
        return;
    }
    let mut envs = vec![EnvVar {
        name: "GOGC".into(),
        value: gogc.to_string(),
    }];
    if let Some(bytes) = memory.filter(|_| gogc > crate::options::GO_DEFAULT_GOGC) {
        envs.push(EnvVar {
            name: "GOMEMLIMIT".into(),
            value: (bytes / 4).to_string(),
        });
    }
    for component in components
        .iter_mut()
        .filter(|c| GO_CONTROL_PLANE.contains(&c.name))
    {
        component.envs.extend(envs.iter().cloned());
    }
}

/// Applies `patches` to the components they name: each extra arg replaces a flag of the
/// same key or is appended; envs are added. Patches of components that do not run are
/// dropped; those of unknown components are an error.
pub fn apply_patches(components: &mut [ComponentSpec], patches: &[ComponentPatch]) -> Result<(), Error> {
    for patch in patches {
        let name = check_name("componentsPatches", &patch.name)?;
        // Every replica of the component gets the patch.
        for component in components.iter_mut().filter(|c| c.name == name) {
            apply_patch(component, patch);
        }
    }
    Ok(())
}

/// One patch applied to one process.
fn apply_patch(component: &mut ComponentSpec, patch: &ComponentPatch) {
    for arg in &patch.extra_args {
        if arg.override_only {
            if !replace_arg(&mut component.args, &arg.key, arg.flag()) {
                tracing::warn!(
                    component = %patch.name,
                    "componentsPatches: override of --{} matches no flag of the component; ignored",
                    arg.key
                );
            }
        } else {
            set_arg(&mut component.args, &arg.key, arg.flag());
        }
    }
    component.envs.extend(patch.extra_envs.iter().cloned());
    for volume in &patch.extra_volumes {
        let Some(mount) = &volume.mount_path else {
            continue;
        };
        let (from, to) = (mount.to_string_lossy(), volume.host_path.to_string_lossy());
        for arg in &mut component.args {
            *arg = rewrite_path(arg, &from, &to);
        }
    }
}

/// `arg` with each whole-path occurrence of `from` (or of a path below it) replaced by
/// `to`: `--config=/etc/k/a.yaml` with `/etc/k` → `/host/k` becomes
/// `--config=/host/k/a.yaml`, but `/etc/kube` is left alone.
fn rewrite_path(arg: &str, from: &str, to: &str) -> String {
    let from = from.trim_end_matches('/');
    let to = to.trim_end_matches('/');
    if from.is_empty() || from == to {
        return arg.to_owned();
    }
    let separator = |c: Option<char>| c.is_none_or(|c| matches!(c, '=' | ',' | ':' | ';' | ' '));
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(i) = rest.find(from) {
        let before = if i > 0 {
            rest[..i].chars().last()
        } else {
            out.chars().last()
        };
        let after = rest[i + from.len()..].chars().next();
        out.push_str(&rest[..i]);
        if separator(before) && (separator(after) || after == Some('/')) {
            out.push_str(to);
        } else {
            out.push_str(from);
        }
        rest = &rest[i + from.len()..];
    }
    out.push_str(rest);
    out
}

/// Sets `--key=value`, replacing every earlier `--key` / `--key=…`.
fn set_arg(args: &mut Vec<String>, key: &str, flag: String) {
    let bare = format!("--{key}");
    let prefix = format!("{bare}=");
    args.retain(|a| *a != bare && !a.starts_with(&prefix));
    args.push(flag);
}

/// Replaces the last `--key` / `--key=…` of `args` by `flag`; whether there was one.
fn replace_arg(args: &mut [String], key: &str, flag: String) -> bool {
    let bare = format!("--{key}");
    let prefix = format!("{bare}=");
    match args
        .iter_mut()
        .rev()
        .find(|a| **a == bare || a.starts_with(&prefix))
    {
        Some(arg) => {
            *arg = flag;
            true
        }
        None => false,
    }
}

/// `--feature-gates` for the Kubernetes components, if any are set.
fn feature_gate_args(ctx: &Context<'_>) -> Vec<String> {
    match ctx.options.kube_feature_gates.as_str() {
        "" => Vec::new(),
        gates => vec![format!("--feature-gates={gates}")],
    }
}

/// How many of `components` (in [`plan`]'s order) must be healthy, in order, before
/// the next one starts: those up to kube-apiserver (etcd, Jaeger when it runs, the
/// apiserver), so the apiserver is up before everything else; all of them, one by one,
/// when there is no apiserver.
pub fn sequential_prefix(components: &[ComponentSpec]) -> usize {
    components
        .iter()
        .position(|c| c.name == Component::KubeApiserver)
        .map_or(components.len(), |i| i + 1)
}

/// Client limits high enough that the control plane, not its clients, is the limit.
fn client_qps_args(ctx: &Context<'_>) -> Vec<String> {
    if ctx.options.disable_qps_limits {
        vec!["--kube-api-qps=5000".into(), "--kube-api-burst=10000".into()]
    } else {
        Vec::new()
    }
}

fn path_arg(flag: &str, path: impl Into<PathBuf>) -> String {
    format!("--{flag}={}", path.into().display())
}

/// Flags shared by the components that serve HTTPS with the cluster's certificate
/// and authenticate against the apiserver with their own kubeconfig.
fn secure_serving_args(ctx: &Context<'_>, name: Component, port: u16) -> Vec<String> {
    let pki = ctx.dir.pki();
    let kubeconfig = ctx.dir.component_kubeconfig(name.as_str());
    vec![
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        path_arg("tls-cert-file", pki.serving_cert()),
        path_arg("tls-private-key-file", pki.serving_key()),
        path_arg("kubeconfig", &kubeconfig),
        path_arg("authentication-kubeconfig", &kubeconfig),
        path_arg("authorization-kubeconfig", &kubeconfig),
        path_arg("client-ca-file", pki.ca_cert()),
        // One replica per cluster: leader election would only add a Lease write per second.
        "--leader-elect=false".into(),
    ]
    .into_iter()
    .chain(client_qps_args(ctx))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::KwokAuth;

    fn options(disable_qps_limits: bool) -> Options {
        Options {
            kube_apiserver_port: 1,
            etcd_port: 2,
            etcd_peer_port: 3,
            kube_controller_manager_port: 4,
            kube_scheduler_port: 5,
            kwok_controller_port: 6,
            disable_qps_limits,
            ..Options::default()
        }
    }

    /// Binaries named after their component (no Prometheus).
    fn binaries() -> Binaries {
        Binaries {
            etcd: "etcd".into(),
            kube_apiserver: "kube-apiserver".into(),
            kube_controller_manager: "kcm".into(),
            kube_scheduler: "scheduler".into(),
            kwok: "kwok".into(),
            kwok_tunnel: true,
            prometheus: None,
            jaeger: None,
            metrics_server: None,
        }
    }

    fn plan_of(disable_qps_limits: bool) -> Vec<ComponentSpec> {
        let dir = crate::paths::Workdir::from_env().cluster("t");
        let binaries = binaries();
        plan(
            &Context {
                options: &options(disable_qps_limits),
                dir: &dir,
            },
            &binaries,
        )
    }

    fn args_of(disable_qps_limits: bool, name: &str) -> Vec<String> {
        plan_of(disable_qps_limits)
            .into_iter()
            .find(|c| c.name == name)
            .expect("component")
            .args
    }

    #[test]
    fn disable_qps_limits_should_lift_client_and_in_flight_limits() {
        for name in ["kube-controller-manager", "kube-scheduler"] {
            assert!(
                args_of(true, name).contains(&"--kube-api-qps=5000".to_owned()),
                "{name}"
            );
            assert!(
                !args_of(false, name)
                    .iter()
                    .any(|a| a.starts_with("--kube-api-qps")),
                "{name}"
            );
        }
        let apiserver = args_of(true, "kube-apiserver");
        assert!(apiserver.contains(&"--max-requests-inflight=0".to_owned()));
        assert!(apiserver.contains(&"--enable-priority-and-fairness=false".to_owned()));
    }

    #[test]
    fn the_apiserver_should_read_kwoks_token_file_only_when_kwok_has_a_token() {
        let dir = crate::paths::Workdir::from_env().cluster("t");
        let token_file = format!("--token-auth-file={}", dir.pki().token_auth_file().display());
        for (auth, expected) in [(KwokAuth::Token, true), (KwokAuth::Cert, false)] {
            let options = Options {
                kwok_auth: auth,
                ..options(false)
            };
            let ctx = Context {
                options: &options,
                dir: &dir,
            };
            let apiserver = plan(&ctx, &binaries())
                .into_iter()
                .find(|c| c.name == Component::KubeApiserver)
                .expect("an apiserver");
            assert_eq!(
                apiserver.args.contains(&token_file),
                expected,
                "{auth}: {:?}",
                apiserver.args
            );
        }
    }

    #[test]
    fn the_go_control_plane_should_get_gogc_and_a_memory_limit_that_patches_can_override() {
        let env = |c: &ComponentSpec, name: &str| {
            // The last of a name is what the process gets.
            c.envs
                .iter()
                .rev()
                .find(|e| e.name == name)
                .map(|e| e.value.clone())
        };
        let mut all = plan_of(false);
        tune_go_runtime(&mut all, 400, Some(8 << 30));
        let patch = ComponentPatch {
            name: "kube-scheduler".into(),
            extra_envs: vec![EnvVar {
                name: "GOGC".into(),
                value: "50".into(),
            }],
            ..ComponentPatch::default()
        };
        apply_patches(&mut all, &[patch]).unwrap();
        for c in &all {
            let (gogc, limit) = (env(c, "GOGC"), env(c, "GOMEMLIMIT"));
            match c.name {
                Component::Etcd | Component::KubeApiserver | Component::KubeControllerManager => {
                    assert_eq!(gogc.as_deref(), Some("400"), "{}", c.name);
                    assert_eq!(
                        limit.as_deref(),
                        Some("2147483648"),
                        "{}: a quarter of 8 GiB",
                        c.name
                    );
                }
                Component::KubeScheduler => assert_eq!(gogc.as_deref(), Some("50"), "the patch wins"),
                _ => assert_eq!(
                    (gogc, limit),
                    (None, None),
                    "{} is not Go's control plane",
                    c.name
                ),
            }
        }
        let mut go_default = plan_of(false);
        tune_go_runtime(&mut go_default, 100, Some(8 << 30));
        assert!(
            go_default.iter().all(|c| c.envs.is_empty()),
            "Go's default: nothing set"
        );
        let mut lower = plan_of(false);
        tune_go_runtime(&mut lower, 50, Some(8 << 30));
        let apiserver = lower.iter().find(|c| c.name == Component::KubeApiserver).unwrap();
        assert_eq!(
            (env(apiserver, "GOGC").as_deref(), env(apiserver, "GOMEMLIMIT")),
            (Some("50"), None),
            "no limit when the heap is kept smaller than Go's default"
        );
    }

    #[test]
    fn one_kwok_should_not_scale_out_and_n_kwoks_should_each_have_a_port_and_an_id() {
        let one: Vec<ComponentSpec> = plan_of(false)
            .into_iter()
            .filter(|c| c.name == Component::KwokController)
            .collect();
        assert_eq!(one.len(), 1);
        assert_eq!((one[0].instance().as_str(), one[0].port), ("kwok-controller", 6));
        assert!(
            !one[0].args.iter().any(|a| a == "--scale-out"),
            "{:?}",
            one[0].args
        );
        assert!(one[0].args.contains(&"--id=kwok-t".to_owned()));

        let dir = crate::paths::Workdir::from_env().cluster("t");
        let options = Options {
            kwok_replicas: 3,
            kwok_replica_ports: vec![7, 8],
            ..options(false)
        };
        let ctx = Context {
            options: &options,
            dir: &dir,
        };
        let mut all = plan(&ctx, &binaries());
        let patch = ComponentPatch {
            name: "kwok-controller".into(),
            extra_args: vec![ExtraArg::new("v", "4")],
            ..ComponentPatch::default()
        };
        apply_patches(&mut all, &[patch]).unwrap();
        let kwoks: Vec<&ComponentSpec> = all
            .iter()
            .filter(|c| c.name == Component::KwokController)
            .collect();
        let seen: Vec<(String, u16, u32)> = kwoks.iter().map(|c| (c.instance(), c.port, c.replica)).collect();
        assert_eq!(
            seen,
            [
                ("kwok-controller".into(), 6, 0),
                ("kwok-controller-1".into(), 7, 1),
                ("kwok-controller-2".into(), 8, 2)
            ]
        );
        for (c, id) in kwoks.iter().zip(["kwok-t", "kwok-t-1", "kwok-t-2"]) {
            let has = |a: String| c.args.contains(&a);
            assert!(has("--scale-out".into()), "{:?}", c.args);
            assert!(has(format!("--id={id}")), "{:?}", c.args);
            assert!(
                has(format!("--server-address=127.0.0.1:{}", c.port)),
                "{:?}",
                c.args
            );
            assert!(has(format!("--node-port={}", c.port)), "{:?}", c.args);
            assert!(has("--v=4".into()), "a patch reaches every replica: {:?}", c.args);
            assert_eq!(c.health_url, format!("https://127.0.0.1:{}/healthz", c.port));
        }
        let yaml = serde_saphyr::to_string(&kwoks[1]).unwrap();
        assert!(yaml.contains("replica: 1"), "{yaml}");
        assert!(!serde_saphyr::to_string(&kwoks[0]).unwrap().contains("replica"));
    }

    #[test]
    fn an_override_patch_should_only_replace_an_existing_flag() {
        let mut components = vec![ComponentSpec {
            name: Component::KubeApiserver,
            replica: 0,
            binary: "a".into(),
            args: vec!["--v=1".into(), "--secure-port=6443".into()],
            port: 1,
            health_url: String::new(),
            image: None,
            envs: Vec::new(),
        }];
        let arg = |key: &str, value: &str| crate::components::ExtraArg {
            override_only: true,
            ..crate::components::ExtraArg::new(key, value)
        };
        let patch = ComponentPatch {
            name: "kube-apiserver".into(),
            extra_args: vec![arg("v", "5"), arg("not-there", "x")],
            ..ComponentPatch::default()
        };
        apply_patches(&mut components, &[patch]).unwrap();
        assert_eq!(components[0].args, ["--v=5", "--secure-port=6443"]);
    }

    #[test]
    fn kwok_controller_config_should_become_config_flags_after_the_upstream_ones() {
        let dir = crate::paths::Workdir::from_env().cluster("t");
        let mut options = options(false);
        options.kwok_controller_config = vec!["/s/a.yaml".into(), "/s/b.yaml".into()];
        let c = kwok_controller::component(
            &Context {
                options: &options,
                dir: &dir,
            },
            "kwok".as_ref(),
            true,
            0,
        );
        assert_eq!(
            c.args[1..4],
            [
                "--manage-all-nodes=true",
                "--node-lease-duration-seconds=40",
                "--server-address=127.0.0.1:6"
            ]
        );
        assert_eq!(
            c.args[9..],
            ["--id=kwok-t", "--config=/s/a.yaml", "--config=/s/b.yaml"]
        );
    }

    #[test]
    fn kwok_should_serve_the_kubelet_api_over_tls_at_loopback_and_its_own_port() {
        let dir = crate::paths::Workdir::from_env().cluster("t");
        let pki = dir.pki();
        let args = args_of(false, "kwok-controller");
        assert_eq!(
            args[4..9],
            [
                format!("--tls-cert-file={}", pki.serving_cert().display()),
                format!("--tls-private-key-file={}", pki.serving_key().display()),
                "--node-ip=127.0.0.1".into(),
                "--node-port=6".into(),
                format!("--client-ca-file={}", pki.ca_cert().display()),
            ]
        );
        // Upstream's kwok binary lacks --client-ca-file and the tunnel.
        let dir2 = crate::paths::Workdir::from_env().cluster("t");
        let o = options(false);
        let ctx = Context {
            options: &o,
            dir: &dir2,
        };
        let upstream = kwok_controller::component(&ctx, "kwok".as_ref(), false, 0);
        assert!(!upstream.args.iter().any(|a| a.starts_with("--client-ca-file")));
        assert!(!upstream.args.iter().any(|a| a.starts_with("--id=")));
        let apiserver = kube_apiserver::component(&ctx, "kube-apiserver".as_ref(), false);
        assert!(!apiserver.args.iter().any(|a| a.starts_with("--egress-selector")));
        let kwok = plan_of(false)
            .into_iter()
            .find(|c| c.name == "kwok-controller")
            .unwrap();
        assert_eq!(kwok.health_url, "https://127.0.0.1:6/healthz");
    }

    #[test]
    fn the_apiserver_should_reach_kwok_by_internal_ip_and_proxy_to_aggregated_servers() {
        let dir = crate::paths::Workdir::from_env().cluster("t");
        let pki = dir.pki();
        let args = args_of(false, "kube-apiserver");
        for arg in [
            format!(
                "--kubelet-client-certificate={}",
                pki.client_cert("kube-apiserver-kubelet-client").display()
            ),
            format!(
                "--kubelet-client-key={}",
                pki.client_key("kube-apiserver-kubelet-client").display()
            ),
            format!(
                "--egress-selector-config-file={}",
                dir.egress_selector_config().display()
            ),
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname".into(),
            format!(
                "--requestheader-client-ca-file={}",
                pki.front_proxy_ca_cert().display()
            ),
            "--requestheader-allowed-names=front-proxy-client".into(),
            "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
            "--requestheader-group-headers=X-Remote-Group".into(),
            "--requestheader-username-headers=X-Remote-User".into(),
            format!(
                "--proxy-client-cert-file={}",
                pki.front_proxy_client_cert().display()
            ),
            format!(
                "--proxy-client-key-file={}",
                pki.front_proxy_client_key().display()
            ),
        ] {
            assert!(args.contains(&arg), "{arg} missing from {args:?}");
        }
        // ExternalName Services (metrics-server's) route only without it.
        assert!(!args.iter().any(|a| a.starts_with("--enable-aggregator-routing")));
        // Nodes are reached through kwok's tunnel at any address: no name to check.
        assert!(
            !args
                .iter()
                .any(|a| a.starts_with("--kubelet-certificate-authority"))
        );
    }

    #[test]
    fn the_apiserver_egress_to_the_cluster_should_go_through_kwok() {
        let dir = crate::paths::Workdir::from_env().cluster("t");
        let o = options(false);
        let ctx = Context {
            options: &o,
            dir: &dir,
        };
        let config = kube_apiserver::egress_selector_config(&ctx);
        let selection = &config["egressSelections"][0];
        assert_eq!(selection["name"], "cluster");
        assert_eq!(selection["connection"]["proxyProtocol"], "HTTPConnect");
        let tcp = &selection["connection"]["transport"]["tcp"];
        assert_eq!(
            tcp["url"],
            format!("https://127.0.0.1:{}", o.kwok_controller_port)
        );
        let cert = dir.pki().client_cert("kube-apiserver-kubelet-client");
        assert_eq!(tcp["tlsConfig"]["clientCert"], cert.display().to_string());
    }

    #[test]
    fn metrics_server_should_run_last_when_it_has_a_binary_and_a_port() {
        let dir = crate::paths::Workdir::from_env().cluster("t");
        let options = Options {
            metrics_server_port: Some(7),
            ..options(false)
        };
        let binaries = Binaries {
            metrics_server: Some("metrics-server".into()),
            ..binaries()
        };
        let all = plan(
            &Context {
                options: &options,
                dir: &dir,
            },
            &binaries,
        );
        let last = all.last().unwrap();
        assert_eq!((last.name.as_str(), last.port), ("metrics-server", 7));
        assert!(check_name("--enable", "metrics-server").is_ok());
    }

    #[test]
    fn components_should_start_with_etcd_then_the_apiserver() {
        let names: Vec<Component> = plan_of(false).into_iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "etcd",
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kwok-controller"
            ]
        );
    }

    #[test]
    fn patches_should_replace_a_flag_of_the_same_key_and_add_envs() {
        let mut components = plan_of(false);
        let patch = ComponentPatch {
            name: "kube-apiserver".into(),
            extra_args: vec![crate::components::ExtraArg::new("etcd-prefix", "/other")],
            extra_envs: vec![EnvVar {
                name: "A".into(),
                value: "b".into(),
            }],
            extra_volumes: Vec::new(),
        };
        apply_patches(&mut components, &[patch]).unwrap();
        let apiserver = &components[1];
        let prefixes: Vec<_> = apiserver
            .args
            .iter()
            .filter(|a| a.starts_with("--etcd-prefix"))
            .collect();
        assert_eq!(prefixes, ["--etcd-prefix=/other"]);
        assert_eq!(apiserver.envs[0].name, "A");
        let bad = ComponentPatch {
            name: "kubelet".into(),
            ..ComponentPatch::default()
        };
        assert!(
            apply_patches(&mut components, &[bad])
                .unwrap_err()
                .to_string()
                .starts_with("componentsPatches: unknown component \"kubelet\"")
        );
    }

    #[test]
    fn options_should_become_component_flags() {
        let dir = crate::paths::Workdir::from_env().cluster("t");
        let options = Options {
            kube_authorization: false,
            kube_admission: true,
            etcd_quota_backend_bytes: 1 << 30,
            enable_crds: vec!["Stage".into()],
            kwok_config: Some(dir.kwok_config()),
            kube_audit_policy: Some("policy.yaml".into()),
            etcd_prefix: "/p".into(),
            heartbeat_factor: 0.5,
            ..options(false)
        };
        let binaries = binaries();
        let all = plan(
            &Context {
                options: &options,
                dir: &dir,
            },
            &binaries,
        );
        let args = |name: &str| all.iter().find(|c| c.name == name).unwrap().args.clone();
        let has = |name: &str, arg: &str| args(name).iter().any(|a| a == arg);
        assert!(has("kube-apiserver", "--authorization-mode=AlwaysAllow"));
        assert!(has("kube-apiserver", "--etcd-prefix=/p"));
        let audit_log = format!("--audit-log-path={}", dir.audit_log().display());
        assert!(has("kube-apiserver", &audit_log));
        assert!(has("kwok-controller", "--enable-crds=Stage"));
        assert!(has(
            "kwok-controller",
            &format!("--config={}", dir.kwok_config().display())
        ));
        // Upstream's scaling: Kubernetes' 5 s and 40 s times the factor.
        assert!(has("kube-controller-manager", "--node-monitor-period=2500ms"));
        assert!(has(
            "kube-controller-manager",
            "--node-monitor-grace-period=20000ms"
        ));
    }

    #[test]
    fn rewrite_path_should_replace_whole_paths_only() {
        let r = |arg: &str| rewrite_path(arg, "/etc/k", "/host/k");
        assert_eq!(r("--config=/etc/k"), "--config=/host/k");
        assert_eq!(r("--config=/etc/k/a.yaml"), "--config=/host/k/a.yaml");
        assert_eq!(r("--files=/etc/k/a,/etc/k/b"), "--files=/host/k/a,/host/k/b");
        assert_eq!(r("--config=/etc/kube/a"), "--config=/etc/kube/a");
        assert_eq!(r("--config=/x/etc/k"), "--config=/x/etc/k");
        assert_eq!(rewrite_path("/etc/k/", "/etc/k/", "/h/"), "/h/");
    }

    #[test]
    fn extra_volumes_should_point_the_args_at_the_host_path() {
        let mut components = plan_of(false);
        let patch = ComponentPatch {
            name: "kube-scheduler".into(),
            extra_args: vec![crate::components::ExtraArg::new(
                "config",
                "/etc/kubernetes/sched.yaml",
            )],
            extra_volumes: vec![crate::components::Volume {
                host_path: "/tmp/x/sched.yaml".into(),
                mount_path: Some("/etc/kubernetes/sched.yaml".into()),
                ..Default::default()
            }],
            ..ComponentPatch::default()
        };
        apply_patches(&mut components, &[patch]).unwrap();
        let scheduler = components.iter().find(|c| c.name == "kube-scheduler").unwrap();
        assert!(scheduler.args.contains(&"--config=/tmp/x/sched.yaml".to_owned()));
        let apiserver = components.iter().find(|c| c.name == "kube-apiserver").unwrap();
        assert!(
            !apiserver.args.iter().any(|a| a.contains("/tmp/x")),
            "other components untouched"
        );
    }
}
