//! A shard's cache entries: the last state of each object and its scheduling state.

use kube::{api::DynamicObject, core::ObjectMeta};
use serde_json::{Map, Value};

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

/// The object as JSON, without `metadata.managedFields`: no stage reads them and they
/// are often the largest part of an object, so the caches stay small.
///
/// # Implementation
/// The same `Value` as `serde_json::to_value` gives (keys in the same order), but the
/// decoded fields other than the metadata are moved into it, not copied: only the
/// metadata is serialized. The shard calls it, so the watch task that feeds every shard
/// of a kind does not.
pub fn object_value(obj: DynamicObject) -> Value {
    let DynamicObject {
        types,
        mut metadata,
        data,
    } = obj;
    metadata.managed_fields = None;
    let fields = match data {
        Value::Object(fields) => fields,
        _ => Map::new(),
    };
    let mut map = Map::with_capacity(fields.len() + 3);
    if let Some(types) = types {
        map.insert("apiVersion".to_owned(), types.api_version.into());
        map.insert("kind".to_owned(), types.kind.into());
    }
    // Serializing `ObjectMeta` cannot fail (its maps have string keys).
    map.insert(
        "metadata".to_owned(),
        serde_json::to_value(metadata).unwrap_or_default(),
    );
    map.extend(fields);
    Value::Object(map)
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
    fn object_value_should_equal_to_value_without_managed_fields() {
        let obj: DynamicObject = serde_json::from_value(pod()).unwrap();
        let mut expected = obj.clone();
        expected.metadata.managed_fields = None;
        let expected = serde_json::to_string(&expected).unwrap();
        // Compared as text: same keys, same values, same order.
        assert_eq!(serde_json::to_string(&object_value(obj)).unwrap(), expected);
        assert!(!expected.contains("managedFields"));
    }

    #[test]
    fn object_value_should_keep_an_object_without_type_or_fields() {
        let obj: DynamicObject = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
        assert_eq!(object_value(obj), json!({"metadata": {"name": "x"}}));
    }

    #[test]
    fn obj_key_should_come_from_the_metadata() {
        let obj: DynamicObject = serde_json::from_value(pod()).unwrap();
        let key = ObjKey::of(3, &obj.metadata).unwrap();
        assert_eq!((key.kind, &*key.namespace, &*key.name), (3, "ns", "p"));
        let nameless = ObjectMeta::default();
        assert_eq!(ObjKey::of(3, &nameless), None);
    }
}
