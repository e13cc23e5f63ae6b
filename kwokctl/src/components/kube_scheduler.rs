//! kube-scheduler: default profile.

use std::path::Path;

use super::{Component, Context, secure_serving_args};

pub(super) fn component(ctx: &Context<'_>, binary: &Path) -> Component {
    let port = ctx.options.kube_scheduler_port;
    Component {
        name: "kube-scheduler".into(),
        binary: binary.into(),
        args: secure_serving_args(ctx, "kube-scheduler", port),
        port,
        health_url: format!("https://127.0.0.1:{port}/healthz"),
    }
}
