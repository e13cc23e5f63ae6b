//! kube-controller-manager: every default controller, signing with the cluster CA.

use std::path::Path;

use super::{Component, Context, feature_gate_args, path_arg, secure_serving_args};

/// Pod network of the cluster: the CGNAT range, clear of the service range
/// (10.96.0.0/12) and large enough for 16,384 nodes of 254 pods.
pub const CLUSTER_CIDR: &str = "100.64.0.0/10";

pub(super) fn component(ctx: &Context<'_>, binary: &Path) -> Component {
    let port = ctx.options.kube_controller_manager_port;
    let pki = ctx.dir.pki();
    let mut args = secure_serving_args(ctx, "kube-controller-manager", port);
    args.extend([
        path_arg("root-ca-file", pki.ca_cert()),
        path_arg("service-account-private-key-file", pki.sa_key()),
        path_arg("cluster-signing-cert-file", pki.ca_cert()),
        path_arg("cluster-signing-key-file", pki.ca_key()),
        "--use-service-account-credentials=true".into(),
        // Every node gets a podCIDR, so kwok hands out pod IPs per node.
        "--allocate-node-cidrs=true".into(),
        format!("--cluster-cidr={CLUSTER_CIDR}"),
        "--node-cidr-mask-size=24".into(),
        "--service-cluster-ip-range=10.96.0.0/12".into(),
    ]);
    args.extend(heartbeat_args(ctx.options.heartbeat_factor));
    args.extend(feature_gate_args(ctx));
    Component {
        name: "kube-controller-manager".into(),
        binary: binary.into(),
        args,
        port,
        health_url: format!("https://127.0.0.1:{port}/healthz"),
        envs: Vec::new(),
    }
}

/// Node health checks scaled by `--heartbeat-factor`: every FACTOR seconds, a node
/// unhealthy after 8×FACTOR (5 s and 40 s at the default 5, Kubernetes' own defaults).
fn heartbeat_args(factor: f64) -> [String; 2] {
    let ms = |x: f64| (x * 1000.0).round() as u64;
    [
        format!("--node-monitor-period={}ms", ms(factor)),
        format!("--node-monitor-grace-period={}ms", ms(8.0 * factor)),
    ]
}
