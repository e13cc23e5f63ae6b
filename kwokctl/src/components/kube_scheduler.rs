//! kube-scheduler: default profile, or the user's configuration file.

use std::path::Path;

use super::{Component, ComponentSpec, Context, feature_gate_args, path_arg, secure_serving_args};

/// Flags that a configuration file replaces (kube-scheduler ignores them next to --config).
const SET_BY_CONFIG: [&str; 4] = [
    "--kubeconfig=",
    "--leader-elect=",
    "--kube-api-qps=",
    "--kube-api-burst=",
];

pub(super) fn component(ctx: &Context<'_>, binary: &Path) -> ComponentSpec {
    let port = ctx.options.kube_scheduler_port;
    let mut args = secure_serving_args(ctx, Component::KubeScheduler, port);
    if ctx.options.kube_scheduler_config.is_some() {
        args.retain(|a| !SET_BY_CONFIG.iter().any(|p| a.starts_with(p)));
        args.push(path_arg("config", ctx.dir.scheduler_config()));
    }
    args.extend(feature_gate_args(ctx));
    ComponentSpec {
        name: Component::KubeScheduler,
        replica: 0,
        binary: binary.into(),
        args,
        port,
        health_url: format!("https://127.0.0.1:{port}/healthz"),
        image: None,
        envs: Vec::new(),
    }
}
