//! The control-plane components as plain data: which binary runs with which
//! arguments, and how to tell it is healthy. Building them is pure; a runtime runs them.

mod etcd;
mod kube_apiserver;
mod kube_controller_manager;
mod kube_scheduler;
mod kwok_controller;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{config::Options, paths::ClusterDir};

/// One process of the cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Component {
    /// Name (`etcd`, `kube-apiserver`, …); also the log and pid file stem.
    pub name: String,
    /// Absolute path of the binary.
    pub binary: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
    /// The port it serves its health endpoint on.
    pub port: u16,
    /// URL that answers 2xx once it is ready.
    pub health_url: String,
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
}

/// Everything a component builder reads.
pub struct Context<'a> {
    /// Resolved options.
    pub options: &'a Options,
    /// The cluster's files.
    pub dir: &'a ClusterDir,
}

/// The components of a cluster in start order: etcd, kube-apiserver, then the rest.
pub fn plan(ctx: &Context<'_>, binaries: &Binaries) -> Vec<Component> {
    vec![
        etcd::component(ctx, &binaries.etcd),
        kube_apiserver::component(ctx, &binaries.kube_apiserver),
        kube_controller_manager::component(ctx, &binaries.kube_controller_manager),
        kube_scheduler::component(ctx, &binaries.kube_scheduler),
        kwok_controller::component(ctx, &binaries.kwok),
    ]
}

/// How many components must be healthy, in order, before the next one starts:
/// etcd before the apiserver, the apiserver before everything else.
pub const SEQUENTIAL_PREFIX: usize = 2;

fn path_arg(flag: &str, path: impl Into<PathBuf>) -> String {
    format!("--{flag}={}", path.into().display())
}

/// Flags shared by the components that serve HTTPS with the cluster's certificate
/// and authenticate against the apiserver with their own kubeconfig.
fn secure_serving_args(ctx: &Context<'_>, name: &str, port: u16) -> Vec<String> {
    let pki = ctx.dir.pki();
    let kubeconfig = ctx.dir.component_kubeconfig(name);
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
}
