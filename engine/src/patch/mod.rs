//! Applying patches locally, exactly as the kube-apiserver would.
//!
//! The simulator uses this to skip patches that would not change an object ([`would_change`],
//! called for every heartbeat) and to show, in a dry run, an object after a Stage applies
//! ([`apply`]).
//!
//! ```
//! use kwok_engine::patch::{apply, would_change, PatchType};
//! use serde_json::json;
//!
//! let mut node = json!({"status": {"conditions": [
//!     {"type": "Ready", "status": "False"},
//!     {"type": "MemoryPressure", "status": "False"},
//! ]}});
//! let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
//! assert!(would_change(&node, "Node", &patch, PatchType::Strategic).unwrap());
//! apply(&mut node, "Node", &patch, PatchType::Strategic).unwrap();
//! assert_eq!(node["status"]["conditions"][0]["status"], "True");
//! assert_eq!(node["status"]["conditions"][1]["type"], "MemoryPressure");
//! assert!(!would_change(&node, "Node", &patch, PatchType::Strategic).unwrap());
//! ```

mod merge_keys;
mod strategic;

use serde::Deserialize;
use serde_json::Value;

pub use strategic::Reason;

/// How a patch body is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902 JSON patch.
    Json,
    /// RFC 7386 JSON merge patch.
    Merge,
    /// Kubernetes strategic merge patch (list merge keys per kind and field).
    Strategic,
}

/// Patch errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The JSON patch is not a list of RFC 6902 operations.
    #[error("failed to parse JSON patch: {0}")]
    InvalidJsonPatch(String),
    /// A JSON patch operation failed (a `test` that did not match, a missing path, ...).
    #[error("failed to apply JSON patch: {0}")]
    JsonPatch(String),
    /// The strategic merge patch is malformed for this object.
    #[error("failed to apply strategic merge patch at {}: {reason}", display_path(.path))]
    Strategic {
        /// Where in the patch, as a JSON pointer (empty for the whole patch).
        path: String,
        /// What is wrong there.
        reason: Reason,
    },
}

/// Results of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn display_path(path: &str) -> &str {
    if path.is_empty() { "the root" } else { path }
}

impl From<strategic::Failure> for Error {
    fn from(f: strategic::Failure) -> Self {
        Self::Strategic {
            path: f.path,
            reason: f.reason,
        }
    }
}

/// Applies `patch` to `target` (an object of `kind`, e.g. `Pod`).
///
/// `kind` only matters for [`PatchType::Strategic`]: it selects the merge keys of list fields
/// (Pod, Node and the other core and workload kinds are known; for any other kind every list is
/// replaced, while the `$patch`/`$retainKeys` directives still work).
///
/// # Errors
///
/// A malformed patch, a JSON patch operation that fails, or a strategic patch the apiserver
/// would reject (a keyed list element without its merge key, an unknown `$patch`, ...). On error
/// `target` is left unchanged.
pub fn apply(target: &mut Value, kind: &str, patch: &Value, ty: PatchType) -> Result<()> {
    match ty {
        PatchType::Json => {
            let ops = json_operations(patch)?;
            json_patch::patch(target, &ops).map_err(|e| Error::JsonPatch(e.to_string()))
        }
        PatchType::Merge => {
            json_patch::merge(target, patch);
            Ok(())
        }
        PatchType::Strategic => Ok(strategic::apply(target, kind, patch)?),
    }
}

/// Whether applying `patch` would change `target`.
///
/// # Implementation
///
/// Merge and strategic patches are decided by walking the patch and the object together, with
/// no clone on the common no-op path (a strategic keyed list is cloned only when the patch adds,
/// deletes or reorders elements, or carries directives). A JSON patch is applied to a clone.
/// When the answer is `true` the walk stops early, so a later malformed part of the patch is
/// reported only by [`apply`]; `Ok(false)` means [`apply`] succeeds and changes nothing.
///
/// # Errors
///
/// As [`apply`].
pub fn would_change(target: &Value, kind: &str, patch: &Value, ty: PatchType) -> Result<bool> {
    match ty {
        PatchType::Json => {
            let mut copy = target.clone();
            apply(&mut copy, kind, patch, ty)?;
            Ok(copy != *target)
        }
        PatchType::Merge => Ok(merge_changes(target, patch)),
        PatchType::Strategic => Ok(strategic::would_change(target, kind, patch)?),
    }
}

fn json_operations(patch: &Value) -> Result<json_patch::Patch> {
    if !patch.is_array() {
        return Err(Error::InvalidJsonPatch("expected a list of operations".into()));
    }
    json_patch::Patch::deserialize(patch).map_err(|e| Error::InvalidJsonPatch(e.to_string()))
}

/// Whether RFC 7386 `merge(target, patch)` changes `target`.
fn merge_changes(target: &Value, patch: &Value) -> bool {
    let Value::Object(p) = patch else {
        return target != patch;
    };
    let Value::Object(t) = target else { return true };
    p.iter().any(|(k, v)| match (t.get(k), v) {
        (None, Value::Null) => false,
        (Some(_), Value::Null) | (None, _) => true,
        (Some(old), v) => merge_changes(old, v),
    })
}
