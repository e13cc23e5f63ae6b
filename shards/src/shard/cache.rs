//! A shard's cache entries: the last state of each object and its scheduling state.

use kube::core::ObjectMeta;
use serde_json::Value;

use super::pack::{Packed, Packers};
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
    /// The key of an object of `kind` with metadata `meta`; `None` if it has no name.
    pub fn of(kind: usize, meta: &ObjectMeta) -> Option<Self> {
        Some(Self {
            kind,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone()?,
        })
    }
}

/// One cached object.
///
/// The object is kept as its compact JSON text, packed ([`super::pack`]), not as a
/// parsed `serde_json::Value`: a parsed pod or node takes about six times the bytes of
/// its text (a map entry, string and value header per field), and the cache holds every
/// managed object for as long as it lives, while a parse is needed only when a stage is
/// matched or rendered. The few fields the shard consults on every event are kept parsed.
#[derive(Debug)]
pub struct Entry {
    /// The object as last seen (watch or write response), as packed compact JSON.
    json: Packed,
    /// Its `metadata.uid`.
    uid: Box<str>,
    /// Its `spec.nodeName` (pods), if set.
    node: Option<Box<str>>,
    /// Its resourceVersion.
    pub rv: String,
    /// The object parsed, kept from an evaluation that made a stage due at once until
    /// that stage fires, so that firing does not decompress and parse it again (a tenth
    /// of kwok's CPU while `small`'s pods were deleted). Any newer state (`set`) and any
    /// cancel drop it, and so does a stage that must wait for a write slot: only objects
    /// about to be written hold a parsed copy.
    hot: Option<Value>,
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
            json: Packed::raw("null"),
            uid: "".into(),
            node: None,
            rv: String::new(),
            hot: None,
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
    /// Stores `obj`, an object of `kind`, as the object's last state.
    pub fn set(&mut self, obj: &Value, kind: usize, packers: &mut Packers) {
        // Serializing a Value cannot fail (its map keys are strings).
        let text = serde_json::to_string(obj).unwrap_or_default();
        self.json = packers.pack(kind, &text);
        self.hot = None;
        self.uid = str_at(obj, "/metadata/uid").into();
        self.node = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .map(Into::into);
    }

    /// The object's last state, parsed (`kind` as given to `set`).
    pub fn object(&self, kind: usize, packers: &mut Packers) -> Value {
        // It was serialized from a Value by `set`, so it parses.
        packers
            .with_text(kind, &self.json, |text| {
                serde_json::from_slice(text).unwrap_or(Value::Null)
            })
            .unwrap_or(Value::Null)
    }

    /// Keeps `obj`, the object as last `set`, parsed until [`Self::take_object`].
    pub fn keep_parsed(&mut self, obj: Value) {
        self.hot = Some(obj);
    }

    /// Drops the parsed copy kept by [`Self::keep_parsed`].
    pub fn drop_parsed(&mut self) {
        self.hot = None;
    }

    /// The object's last state, parsed: the copy kept by [`Self::keep_parsed`] if any
    /// (which it takes), else as [`Self::object`].
    pub fn take_object(&mut self, kind: usize, packers: &mut Packers) -> Value {
        match self.hot.take() {
            Some(obj) => obj,
            None => self.object(kind, packers),
        }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::object::JsonObject;

    fn pod() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                "labels": {"app": "web"},
                "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:nodeName": {}}}}]
            },
            "spec": {"containers": [{"name": "app", "image": "nginx"}], "nodeName": "n"},
            "status": {"phase": "Pending"}
        })
    }

    #[test]
    fn obj_key_should_come_from_the_metadata() {
        let obj: JsonObject = serde_json::from_value(pod()).unwrap();
        let key = ObjKey::of(3, &obj.metadata).unwrap();
        assert_eq!((key.kind, &*key.namespace, &*key.name), (3, "ns", "p"));
        let nameless = ObjectMeta::default();
        assert_eq!(ObjKey::of(3, &nameless), None);
    }

    #[test]
    fn a_kept_parse_should_be_taken_once_and_dropped_by_a_newer_state() {
        let mut packers = Packers::default();
        let mut entry = Entry::default();
        entry.set(&pod(), 0, &mut packers);
        let mut marked = pod();
        marked["status"]["phase"] = json!("kept");
        // The kept copy is returned as it is (it stands for the state last set)...
        entry.keep_parsed(marked.clone());
        assert_eq!(entry.take_object(0, &mut packers), marked);
        // ...once: then the packed state is parsed.
        assert_eq!(entry.take_object(0, &mut packers), pod());
        entry.keep_parsed(marked);
        let mut newer = pod();
        newer["metadata"]["resourceVersion"] = json!("8");
        entry.set(&newer, 0, &mut packers);
        assert_eq!(entry.take_object(0, &mut packers), newer);
    }
}
