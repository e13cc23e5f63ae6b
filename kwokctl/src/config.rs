//! `kwok.yaml`: a cluster's resolved configuration, written at create and read by
//! every later command, so `start cluster` replays exactly what `create` ran.

use std::{fs, path::Path};

use serde::{Deserialize, Serialize};

use crate::{
    component::Component,
    components::ComponentSpec,
    options::Options,
    path_error::{PathError, on},
};

/// API version of the configuration document (upstream KWOK's).
pub const API_VERSION: &str = "config.kwok.x-k8s.io/v1alpha1";
/// Kind of the configuration document.
pub const KIND: &str = "KwokctlConfiguration";

/// Errors reading or writing `kwok.yaml`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named path.
    #[error(transparent)]
    Io(#[from] PathError),
    /// The file is not a valid configuration.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with line and column.
        message: String,
    },
}

/// A component name that is not one of a cluster's components.
#[derive(Debug, thiserror::Error)]
#[error("cluster {cluster:?} has no component {name:?} (it has: {runs})")]
pub struct NotRunning {
    /// The cluster.
    pub cluster: String,
    /// The name asked for.
    pub name: String,
    /// The components it runs, comma-separated.
    pub runs: String,
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
    pub components: Vec<ComponentSpec>,
}

/// Object metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// The cluster name.
    pub name: String,
}

impl ClusterConfig {
    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(on("read", path))?;
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
        Ok(fs::write(path, text).map_err(on("write", path))?)
    }

    /// The spec of `component`, if the cluster runs it.
    pub fn component(&self, component: Component) -> Option<&ComponentSpec> {
        self.components.iter().find(|c| c.name == component)
    }

    /// The spec of the component a user called `name` in cluster `cluster`; an unknown
    /// name or one the cluster does not run is a one-line error listing what it runs.
    pub fn running(&self, cluster: &str, name: &str) -> Result<&ComponentSpec, NotRunning> {
        // A replica by its own name (`kwok-controller-1`), else the first of a component.
        self.components
            .iter()
            .find(|c| c.instance() == name)
            .or_else(|| name.parse().ok().and_then(|c| self.component(c)))
            .ok_or_else(|| NotRunning {
                cluster: cluster.into(),
                name: name.into(),
                runs: self
                    .components
                    .iter()
                    .map(|c| c.instance())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
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
