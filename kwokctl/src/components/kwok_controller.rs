//! The `kwok` controller of this project, managing every node (binary runtime default).

use std::path::Path;

use super::{Component, Context, path_arg};

pub(super) fn component(ctx: &Context<'_>, binary: &Path) -> Component {
    let o = ctx.options;
    let port = o.kwok_controller_port;
    let mut args = vec![
        path_arg("kubeconfig", ctx.dir.component_kubeconfig("kwok-controller")),
        "--manage-all-nodes=true".into(),
        // 40 s by default, as the kubelet; renewed every quarter of it.
        format!("--node-lease-duration-seconds={}", o.node_lease_duration_seconds),
        format!("--server-address=127.0.0.1:{port}"),
    ];
    // A stable lease holder: a restarted kwok resumes its nodes' Leases at once instead
    // of waiting for them to expire as someone else's.
    if let Some(cluster) = ctx.dir.root().file_name() {
        args.push(format!("--id=kwok-{}", cluster.to_string_lossy()));
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
    Component {
        name: "kwok-controller".into(),
        binary: binary.into(),
        args,
        port,
        health_url: format!("http://127.0.0.1:{port}/healthz"),
        envs: Vec::new(),
    }
}
