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
    .into_iter()
    .chain(client_qps_args(ctx))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(disable_qps_limits: bool) -> Options {
        Options {
            runtime: "binary".into(),
            kube_version: "v1.36.5".into(),
            etcd_version: "v3.6.16".into(),
            kube_apiserver_port: 1,
            etcd_port: 2,
            etcd_peer_port: 3,
            kube_controller_manager_port: 4,
            kube_scheduler_port: 5,
            kwok_controller_port: 6,
            disable_qps_limits,
            kwok_controller_config: Vec::new(),
        }
    }

    fn plan_of(disable_qps_limits: bool) -> Vec<Component> {
        let dir = crate::paths::Workdir::from_env().cluster("t");
        let binaries = Binaries {
            etcd: "etcd".into(),
            kube_apiserver: "kube-apiserver".into(),
            kube_controller_manager: "kcm".into(),
            kube_scheduler: "scheduler".into(),
            kwok: "kwok".into(),
        };
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
        );
        assert_eq!(
            c.args[1..4],
            [
                "--manage-all-nodes=true",
                "--node-lease-duration-seconds=40",
                "--server-address=127.0.0.1:6"
            ]
        );
        assert_eq!(c.args[4..], ["--config=/s/a.yaml", "--config=/s/b.yaml"]);
    }

    #[test]
    fn components_should_start_with_etcd_then_the_apiserver() {
        let names: Vec<String> = plan_of(false).into_iter().map(|c| c.name).collect();
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
}
