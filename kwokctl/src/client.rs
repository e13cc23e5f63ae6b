//! A Kubernetes client for one kubeconfig file (the cluster's admin one, or any other).

use std::path::Path;

use kube::{Client, Config, config::KubeConfigOptions};

/// The kubeconfig could not be turned into a client.
#[derive(Debug, thiserror::Error)]
#[error("failed to build a Kubernetes client from {path}: {message}")]
pub struct Error {
    /// The kubeconfig.
    pub path: String,
    /// Why.
    pub message: String,
}

/// A client for the current context of the kubeconfig at `path`.
///
/// Reads and writes get generous timeouts: a list of every pod of a large cluster
/// takes longer than kube's default.
pub async fn from_kubeconfig(path: &Path) -> Result<Client, Error> {
    let err = |message: String| Error {
        path: path.display().to_string(),
        message,
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| err(one_line(&e)))?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| err(one_line(&e)))?;
    config.read_timeout = Some(std::time::Duration::from_secs(120));
    Client::try_from(config).map_err(|e| err(one_line(&e)))
}

fn one_line(err: &dyn std::error::Error) -> String {
    err.to_string().lines().next().unwrap_or_default().to_owned()
}
