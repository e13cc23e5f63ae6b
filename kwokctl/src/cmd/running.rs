//! Commands that talk to a cluster first check that the process they talk to runs, so
//! a stopped cluster is a clear error, not a hang or a connection error.

use anyhow::{Result, bail};

use crate::{component::Component, paths::ClusterDir, runtime::Status};

/// Fails unless `component` of cluster `name` runs.
pub(super) fn ensure(dir: &ClusterDir, name: &str, component: Component) -> Result<()> {
    let runtime = super::lifecycle::runtime_of(dir)?;
    if runtime.status(dir, component.as_str()) == Status::Stopped {
        bail!(
            "cluster {name:?} is stopped ({component} is not running); start it with `kwokctl start cluster --name {name}`"
        );
    }
    Ok(())
}
