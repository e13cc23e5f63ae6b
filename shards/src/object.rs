//! [`JsonObject`]: a Kubernetes object of any kind as the controller reads it from the
//! apiserver (watch events, write responses): JSON without `metadata.managedFields`,
//! with only its identity typed.
//!
//! # Why not `DynamicObject`
//! kube's `DynamicObject` flattens its type fields and data into the struct, so serde
//! first buffers every object into an intermediate tree and decodes it from there; it
//! also decodes the typed `ObjectMeta`, `managedFields` entries included, which the
//! shard then serializes back into JSON and drops. Profiling `small`'s pod deletes found
//! that decoding (the watch's and the write responses') was half of kwok's CPU. This
//! type decodes each field once, straight into the `Value` the shard keeps, and skips
//! `managedFields` without building them (`benches`: `decode/*`).

use std::{borrow::Cow, fmt};

use kube::core::{ApiResource, DynamicResourceScope, ObjectMeta, Resource};
use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor},
};
use serde_json::{Map, Value};

/// An object as JSON, `metadata.managedFields` left out; fields in the order the
/// apiserver sent them.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonObject {
    /// The identity fields of `metadata` (name, namespace, uid, resourceVersion), copied
    /// from the JSON for kube (the watcher resumes from the resourceVersion) and for
    /// routing. The rest of the metadata is only in `value`.
    pub metadata: ObjectMeta,
    /// The whole object (a JSON object).
    pub value: Value,
}

impl JsonObject {
    /// The object `value` (any JSON; `managedFields` are kept if present).
    pub fn new(value: Value) -> Self {
        let metadata = identity(value.get("metadata"));
        Self { metadata, value }
    }
}

/// The identity fields of a `metadata` JSON object.
fn identity(metadata: Option<&Value>) -> ObjectMeta {
    let text = |key: &str| {
        metadata
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    ObjectMeta {
        name: text("name"),
        namespace: text("namespace"),
        uid: text("uid"),
        resource_version: text("resourceVersion"),
        ..ObjectMeta::default()
    }
}

impl Resource for JsonObject {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl Serialize for JsonObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = deserializer.deserialize_map(Fields { skip: None })?;
        Ok(Self {
            metadata: identity(fields.get("metadata")),
            value: Value::Object(fields),
        })
    }
}

/// Decodes a JSON object into a map, leaving out the key `skip` and, for an object's
/// `metadata`, its `managedFields`.
struct Fields {
    skip: Option<&'static str>,
}

impl<'de> Visitor<'de> for Fields {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if self.skip == Some(key.as_str()) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value = match (self.skip, key.as_str()) {
                // The top level (`skip` is only set for metadata).
                (None, "metadata") => map.next_value_seed(Metadata)?,
                _ => map.next_value()?,
            };
            fields.insert(key, value);
        }
        Ok(fields)
    }
}

/// `metadata` without `managedFields` (`null` stays `null`).
struct Metadata;

impl<'de> DeserializeSeed<'de> for Metadata {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Metadata {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object's metadata")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        let skip = Fields {
            skip: Some("managedFields"),
        };
        skip.visit_map(map).map(Value::Object)
    }
}

#[cfg(test)]
mod tests {
    use kube::api::DynamicObject;
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
    fn decoding_should_keep_every_field_but_managed_fields_in_order() {
        let text = serde_json::to_string(&pod()).unwrap();
        let obj: JsonObject = serde_json::from_str(&text).unwrap();
        let mut expected = pod();
        expected["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        // Compared as text: same keys, same values, same order.
        assert_eq!(
            serde_json::to_string(&obj).unwrap(),
            serde_json::to_string(&expected).unwrap()
        );
        // As kube's DynamicObject reads it, less the managedFields.
        let mut dynamic: DynamicObject = serde_json::from_str(&text).unwrap();
        dynamic.metadata.managed_fields = None;
        assert_eq!(obj.value, serde_json::to_value(&dynamic).unwrap());
    }

    #[test]
    fn decoding_should_type_the_identity() {
        let obj: JsonObject = serde_json::from_value(pod()).unwrap();
        let meta = obj.meta();
        assert_eq!(meta.name.as_deref(), Some("p"));
        assert_eq!(meta.namespace.as_deref(), Some("ns"));
        assert_eq!(meta.uid.as_deref(), Some("u"));
        assert_eq!(meta.resource_version.as_deref(), Some("7"));
        assert_eq!(meta.labels, None, "only the identity is typed");
    }

    #[test]
    fn decoding_should_leave_managed_fields_elsewhere_alone() {
        // Only metadata's managedFields are the server's bookkeeping.
        let obj: JsonObject =
            serde_json::from_value(json!({"spec": {"managedFields": 1}, "metadata": null})).unwrap();
        assert_eq!(obj.value, json!({"spec": {"managedFields": 1}, "metadata": null}));
        assert_eq!(obj.metadata, ObjectMeta::default());
    }

    #[test]
    fn decoding_should_refuse_what_is_not_an_object() {
        let err = serde_json::from_str::<JsonObject>("[1]").unwrap_err();
        assert!(err.to_string().contains("a JSON object"), "{err}");
        assert!(serde_json::from_str::<JsonObject>(r#"{"metadata": 3}"#).is_err());
    }

    #[test]
    fn new_should_read_the_identity_from_the_value() {
        let obj = JsonObject::new(pod());
        assert_eq!(obj.metadata.name.as_deref(), Some("p"));
        assert_eq!(obj.value, pod());
    }
}
