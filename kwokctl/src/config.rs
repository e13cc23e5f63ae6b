//! `kwok.yaml`: a cluster's resolved configuration, written at create and read by
//! every later command, so `start cluster` replays exactly what `create` ran.

use std::{fs, path::Path};

use serde::{Deserialize, Serialize};

use crate::components::Component;

/// API version of the configuration document (upstream KWOK's).
pub const API_VERSION: &str = "config.kwok.x-k8s.io/v1alpha1";
/// Kind of the configuration document.
pub const KIND: &str = "KwokctlConfiguration";

/// Errors reading or writing `kwok.yaml`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read or written.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// read or write.
        action: &'static str,
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid configuration.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with line and column.
        message: String,
    },
}

/// Result of configuration I/O.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The resolved configuration of one cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterConfig {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always [`KIND`].
    pub kind: String,
    /// The cluster's name.
    pub metadata: Metadata,
    /// Options as resolved from flags and defaults.
    pub options: Options,
    /// The components, in start order, with the exact command lines they run.
    pub components: Vec<Component>,
}

/// Object metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// The cluster name.
    pub name: String,
}

/// Resolved options: every port is concrete.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Options {
    /// The runtime (`binary`).
    pub runtime: String,
    /// Kubernetes version of the control plane.
    pub kube_version: String,
    /// etcd version.
    pub etcd_version: String,
    /// kube-apiserver secure port.
    pub kube_apiserver_port: u16,
    /// etcd client port.
    pub etcd_port: u16,
    /// etcd peer port.
    pub etcd_peer_port: u16,
    /// kube-controller-manager secure port.
    pub kube_controller_manager_port: u16,
    /// kube-scheduler secure port.
    pub kube_scheduler_port: u16,
    /// kwok controller's HTTP port (`/healthz`, `/readyz`, `/metrics`).
    pub kwok_controller_port: u16,
    /// Lift the client QPS limits of the controller-manager and scheduler and the
    /// apiserver's in-flight limits (`--disable-qps-limits`).
    #[serde(default)]
    pub disable_qps_limits: bool,
    /// Absolute paths handed to the kwok controller as `--config` (`--kwok-controller-config`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kwok_controller_config: Vec<std::path::PathBuf>,
}

impl ClusterConfig {
    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(|source| Error::Io {
            action: "read",
            path: path.display().to_string(),
            source,
        })?;
        serde_saphyr::from_str(&text).map_err(|e| Error::Parse {
            path: path.display().to_string(),
            message: one_line(&e.to_string()),
        })
    }

    /// Writes `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_saphyr::to_string(self).map_err(|e| Error::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        fs::write(path, text).map_err(|source| Error::Io {
            action: "write",
            path: path.display().to_string(),
            source,
        })
    }

    /// The component called `name`.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }
}

/// Parser errors render over several lines with a snippet; one line is what users get.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
