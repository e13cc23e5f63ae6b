//! A shard's cache entries: the last state of each object and its scheduling state.

use serde_json::Value;

use crate::wheel;

/// Identity of a cached object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjKey {
    /// Index into the kinds table.
    pub kind: usize,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjKey {
    /// The key of `obj` of `kind`; `None` if it has no name.
    pub fn of(kind: usize, obj: &Value) -> Option<Self> {
        let meta = obj.get("metadata")?;
        Some(Self {
            kind,
            namespace: meta
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            name: meta.get("name")?.as_str()?.to_owned(),
        })
    }
}

/// One cached object.
#[derive(Debug)]
pub struct Entry {
    /// The object as last seen (watch or write response).
    pub obj: Value,
    /// Its resourceVersion.
    pub rv: String,
    /// Pending stage timer and the index of that stage in the kind's lifecycle.
    pub timer: Option<(wheel::Key, usize)>,
    /// A write for it is in flight.
    pub in_flight: bool,
    /// Events arrived while a write was in flight.
    pub dirty: bool,
    /// Not seen since the current re-list started.
    pub stale: bool,
    /// Writes that failed in a row: the retry waits longer each time.
    pub failures: u32,
    /// We deleted it (or found it gone): nothing more to do until the watch says it
    /// is gone; a late update must not start the delete stage again.
    pub deleted: bool,
}

impl Entry {
    /// An entry for `obj`.
    pub fn new(obj: Value) -> Self {
        Self {
            obj,
            rv: String::new(),
            timer: None,
            in_flight: false,
            dirty: false,
            stale: false,
            failures: 0,
            deleted: false,
        }
    }
}

/// `metadata.resourceVersion`, or empty.
pub fn resource_version(obj: &Value) -> String {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}
