//! The `kwok` controller of this project, managing every node (binary runtime default).

use std::path::Path;

use super::{Component, Context, path_arg};

pub(super) fn component(ctx: &Context<'_>, binary: &Path) -> Component {
    let port = ctx.options.kwok_controller_port;
    let configs = ctx
        .options
        .kwok_controller_config
        .iter()
        .map(|p| path_arg("config", p));
    Component {
        name: "kwok-controller".into(),
        binary: binary.into(),
        args: vec![
            path_arg("kubeconfig", ctx.dir.component_kubeconfig("kwok-controller")),
            "--manage-all-nodes=true".into(),
            // 40 s, as the kubelet; renewed every 10 s.
            "--node-lease-duration-seconds=40".into(),
            format!("--server-address=127.0.0.1:{port}"),
        ]
        .into_iter()
        .chain(configs)
        .collect(),
        port,
        health_url: format!("http://127.0.0.1:{port}/healthz"),
    }
}
