//! Cluster snapshots: `etcd` (the whole key space, through etcdctl and etcdutl),
//! `k8s` (a YAML stream of the objects, through the apiserver), and recordings (a k8s
//! snapshot followed by the changes watched after it, replayed at their offsets).

use crate::path_error::{PathError, on};

pub mod etcd;
pub mod k8s;
pub mod objects;
pub mod record;
pub mod recording;
pub mod replay;

/// Errors of snapshots.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file is not a snapshot of the expected format.
    #[error("{path} is not {format} snapshot: {reason}")]
    NotASnapshot {
        /// The file.
        path: String,
        /// `an etcd` or `a k8s`.
        format: &'static str,
        /// Why.
        reason: String,
    },
    /// The file is not a recording (`snapshot record`'s format).
    #[error("{path} is not a recording (snapshot record): {reason}")]
    NotARecording {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A tool (etcdctl, etcdutl) failed.
    #[error("{tool} failed: {message}")]
    Tool {
        /// The tool.
        tool: &'static str,
        /// Its last output line.
        message: String,
    },
    /// An I/O error on a named path.
    #[error(transparent)]
    Io(#[from] PathError),
    /// The apiserver refused or failed a request.
    #[error("{what}: {message}")]
    Api {
        /// What was being done.
        what: String,
        /// The apiserver's message.
        message: String,
    },
    /// A `--filter` entry names no resource the cluster serves.
    #[error("--filter {0:?} names no resource the cluster serves")]
    Filter(String),
}

/// Result of snapshot operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// [`on`] giving this module's [`Error`], for results returned as they are.
fn io(action: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + use<> {
    let error = on(action, path);
    move |source| Error::Io(error(source))
}

/// Writes `bytes` to `path` through a temp file next to it, so a failure never leaves
/// half a snapshot under the real name.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    std::fs::write(&tmp, bytes).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename", path))
}

fn tmp_path(path: &std::path::Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".kwokctl-tmp");
    path.with_file_name(name)
}
