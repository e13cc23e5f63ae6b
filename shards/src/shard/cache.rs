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
///
/// The object is kept as its compact JSON text, not as a parsed `serde_json::Value`:
/// a parsed pod or node takes about six times the bytes of its text (a map entry,
/// string and value header per field), and the cache holds every managed object for
/// as long as it lives, while a parse is needed only when a stage is matched or
/// rendered. The few fields the shard consults on every event are kept parsed.
#[derive(Debug)]
pub struct Entry {
    /// The object as last seen (watch or write response), as compact JSON.
    json: Box<str>,
    /// Its `metadata.uid`.
    uid: Box<str>,
    /// Its `spec.nodeName` (pods), if set.
    node: Option<Box<str>>,
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

impl Default for Entry {
    fn default() -> Self {
        Self {
            json: "null".into(),
            uid: "".into(),
            node: None,
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

impl Entry {
    /// Stores `obj` as the object's last state.
    pub fn set(&mut self, obj: &Value) {
        // Serializing a Value cannot fail (its map keys are strings).
        self.json = serde_json::to_string(obj).unwrap_or_default().into_boxed_str();
        self.uid = str_at(obj, "/metadata/uid").into();
        self.node = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .map(Into::into);
    }

    /// The object's last state, parsed.
    pub fn object(&self) -> Value {
        // It was serialized from a Value by `set`, so it parses.
        serde_json::from_str(&self.json).unwrap_or(Value::Null)
    }

    /// `metadata.uid`, empty if it has none.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// `spec.nodeName`, for pods bound to a node.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }
}

/// The string at `pointer`, or empty.
pub fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// `metadata.resourceVersion`, or empty.
pub fn resource_version(obj: &Value) -> String {
    str_at(obj, "/metadata/resourceVersion").to_owned()
}
