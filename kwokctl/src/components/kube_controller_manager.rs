//! kube-controller-manager: every default controller, signing with the cluster CA.

use std::path::Path;

use super::{Component, ComponentSpec, Context, feature_gate_args, path_arg, secure_serving_args};

pub(super) fn component(ctx: &Context<'_>, binary: &Path) -> ComponentSpec {
    let port = ctx.options.kube_controller_manager_port;
    let pki = ctx.dir.pki();
    let mut args = secure_serving_args(ctx, Component::KubeControllerManager, port);
    args.extend([
        path_arg("root-ca-file", pki.ca_cert()),
        path_arg("service-account-private-key-file", pki.sa_key()),
        path_arg("cluster-signing-cert-file", pki.ca_cert()),
        path_arg("cluster-signing-key-file", pki.ca_key()),
        "--use-service-account-credentials=true".into(),
        // No --allocate-node-cidrs, as upstream kwokctl: with it, kube-controller-manager
        // exits at start when a node (from a user's file or a snapshot) has a podCIDR
        // outside --cluster-cidr. Nodes without a podCIDR take pod IPs from kwok's --cidr.
    ]);
    args.extend(heartbeat_args(ctx.options.heartbeat_factor));
    args.extend(feature_gate_args(ctx));
    ComponentSpec {
        name: Component::KubeControllerManager,
        replica: 0,
        binary: binary.into(),
        args,
        port,
        health_url: format!("https://127.0.0.1:{port}/healthz"),
        image: None,
        envs: Vec::new(),
    }
}

/// Node health checks scaled by `--heartbeat-factor` as upstream kwokctl scales them:
/// Kubernetes' defaults (a check every 5 s, a node unhealthy after 40 s) times FACTOR,
/// so 25 s and 200 s at the default 5, beside a node lease of 40 s × FACTOR.
fn heartbeat_args(factor: f64) -> [String; 2] {
    let ms = |base_ms: f64| (base_ms * factor) as u64;
    [
        format!("--node-monitor-period={}ms", ms(5000.0)),
        format!("--node-monitor-grace-period={}ms", ms(40000.0)),
    ]
}
