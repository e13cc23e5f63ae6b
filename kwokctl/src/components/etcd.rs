//! etcd: single member on loopback, plain HTTP (only this machine can reach it).

use std::path::Path;

use super::{Component, ComponentSpec, Context, path_arg};

pub(super) fn component(ctx: &Context<'_>, binary: &Path) -> ComponentSpec {
    let o = ctx.options;
    let client = format!("http://127.0.0.1:{}", o.etcd_port);
    let peer = format!("http://127.0.0.1:{}", o.etcd_peer_port);
    ComponentSpec {
        name: Component::Etcd,
        replica: 0,
        binary: binary.into(),
        args: vec![
            "--name=node0".into(),
            path_arg("data-dir", ctx.dir.etcd_data()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=node0={peer}"),
            "--initial-cluster-state=new".into(),
            "--auto-compaction-retention=1".into(),
            // A test cluster has no need to sync every write to disk.
            "--unsafe-no-fsync=true".into(),
            format!("--quota-backend-bytes={}", o.etcd_quota_backend_bytes),
        ],
        port: o.etcd_port,
        health_url: format!("{client}/health"),
        image: None,
        envs: Vec::new(),
    }
}
