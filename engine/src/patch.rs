//! PLACEHOLDER (replaced by the patch work): applying patches locally, as the apiserver would.

use serde_json::Value;

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
#[error("{0}")]
pub struct Error(pub String);

/// Applies `patch` to `target` (an object of `kind`, e.g. `Pod`).
pub fn apply(_target: &mut Value, _kind: &str, _patch: &Value, _ty: PatchType) -> Result<(), Error> {
    Err(Error("patches are not implemented yet".into()))
}

/// Whether applying `patch` would change `target`.
pub fn would_change(_target: &Value, _kind: &str, _patch: &Value, _ty: PatchType) -> Result<bool, Error> {
    Err(Error("patches are not implemented yet".into()))
}
