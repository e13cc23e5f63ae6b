//! The `kwok` controller of this project, managing every node (binary runtime default),
//! and the kubelet API of those nodes on its HTTPS server.

use std::path::Path;

use super::{Component, ComponentSpec, Context, path_arg};

/// The kwok controllers: one, or `--kwok-replicas N` sharing the nodes (`--scale-out`),
/// replica `i` on its own port under its own stable `--id`.
pub(super) fn replicas(ctx: &Context<'_>, binary: &Path, ours: bool) -> Vec<ComponentSpec> {
    (0..ctx.options.kwok_replicas.max(1))
        .map(|i| component(ctx, binary, ours, i))
        .collect()
}

/// Replica `replica` of the kwok controller.
pub(super) fn component(ctx: &Context<'_>, binary: &Path, ours: bool, replica: u32) -> ComponentSpec {
    let o = ctx.options;
    let port = o.kwok_port(replica);
    let mut args = vec![
        path_arg(
            "kubeconfig",
            ctx.dir.component_kubeconfig(Component::KwokController.as_str()),
        ),
        "--manage-all-nodes=true".into(),
        // 40 s by default, as the kubelet; renewed every quarter of it.
        format!("--node-lease-duration-seconds={}", o.node_lease_duration_seconds),
        format!("--server-address=127.0.0.1:{port}"),
    ];
    args.extend(kubelet_server_args(ctx, ours, port));
    // A stable lease holder: a restarted kwok resumes its nodes' Leases at once instead
    // of waiting for them to expire as someone else's (upstream's kwok has no --id).
    // Replica 0 keeps the single kwok's identity; the others add their number.
    if let Some(cluster) = ctx.dir.root().file_name().filter(|_| ours) {
        let cluster = cluster.to_string_lossy();
        args.push(match replica {
            0 => format!("--id=kwok-{cluster}"),
            i => format!("--id=kwok-{cluster}-{i}"),
        });
    }
    if o.kwok_replicas > 1 {
        args.push("--scale-out".into());
    }
    if o.kwok_config.is_some() {
        args.push(path_arg("config", ctx.dir.kwok_config()));
    }
    // Files given with --kwok-controller-config (upstream KWOK's binary needs its stages).
    args.extend(o.kwok_controller_config.iter().map(|p| path_arg("config", p)));
    // Every trace kept, as upstream kwokctl asks of its kwok.
    if let Some(endpoint) = super::jaeger::otlp_endpoint(ctx) {
        args.push(format!("--tracing-endpoint={endpoint}"));
        args.push("--tracing-sampling-rate-per-million=1000000".into());
    }
    if !o.enable_crds.is_empty() {
        args.push(format!("--enable-crds={}", o.enable_crds.join(",")));
    }
    ComponentSpec {
        name: Component::KwokController,
        replica,
        binary: binary.into(),
        args,
        port,
        // /healthz needs no client certificate.
        health_url: format!("https://127.0.0.1:{port}/healthz"),
        image: None,
        envs: Vec::new(),
    }
}

/// The address every node advertises as its InternalIP: kwok's server is on loopback.
pub const NODE_IP: &str = "127.0.0.1";

/// kwok's server as every node's kubelet: HTTPS with the cluster's serving certificate
/// (the apiserver and metrics-server check it against the cluster CA), client
/// certificates of that CA required beyond the health endpoints, and each node
/// advertising `NODE_IP` and its kwok's port (`status.addresses`, through the stages'
/// `NodeIP`/`NodeIPWith`, and `daemonEndpoints.kubeletEndpoint.Port`, through `NodePort`).
/// Upstream's kwok (`ours` false) gets the same but `--client-ca-file`, which it lacks.
fn kubelet_server_args(ctx: &Context<'_>, ours: bool, port: u16) -> Vec<String> {
    let pki = ctx.dir.pki();
    let mut args = vec![
        path_arg("tls-cert-file", pki.serving_cert()),
        path_arg("tls-private-key-file", pki.serving_key()),
        format!("--node-ip={NODE_IP}"),
        format!("--node-port={port}"),
    ];
    if ours {
        args.push(path_arg("client-ca-file", pki.ca_cert()));
    }
    args
}
