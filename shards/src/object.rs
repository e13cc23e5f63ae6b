//! [`JsonObject`]: a Kubernetes object of any kind as the controller reads it from the
//! apiserver (watch events, write responses): its compact JSON text without
//! `metadata.managedFields`, with its identity (and a pod's node) typed.
//!
//! # Why not `DynamicObject`
//! kube's `DynamicObject` flattens its type fields and data into the struct, so serde
//! first buffers every object into an intermediate tree and decodes it from there; it
//! also decodes the typed `ObjectMeta`, `managedFields` entries included, which the
//! shard then serialized back into the JSON text it caches. Profiling `small` found
//! those passes were a third of kwok's CPU, and a decoded pod took ~18 kB while it
//! waited in a shard's channel.
//!
//! This type copies the object's fields as the raw text the apiserver sent (compact
//! JSON), skipping `managedFields` without building them: the watch task only scans
//! the text, a shard parses it once, and only if the event is news to it (the event
//! of our own write is not), and caches the text as it came.

use std::{borrow::Cow, fmt};

use kube::core::{ApiResource, DynamicResourceScope, ObjectMeta, Resource};
use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor},
};
use serde_json::{Value, value::RawValue};

/// An object as compact JSON, `metadata.managedFields` left out; fields in the order
/// the apiserver sent them.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonObject {
    /// The identity fields of `metadata` (name, namespace, uid, resourceVersion), read
    /// for kube (the watcher resumes from the resourceVersion) and for routing. The rest
    /// of the metadata is only in `text`.
    pub metadata: ObjectMeta,
    /// `spec.nodeName`, if a string: pods are routed and cached by it.
    pub node_name: Option<Box<str>>,
    /// The object (a JSON object).
    pub text: Box<str>,
}

impl JsonObject {
    /// The object `value`, read as if the apiserver had sent it.
    pub fn new(value: &Value) -> Self {
        // Serializing a Value cannot fail (its map keys are strings), and the text of a
        // JSON object decodes.
        let text = serde_json::to_string(value).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or_else(|_| Self {
            metadata: ObjectMeta::default(),
            node_name: None,
            text: text.into(),
        })
    }

    /// The object parsed (`Null` if it were not JSON, which decoding rules out).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
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
        // The text came from a JSON object, so it is one.
        let raw: &RawValue = serde_json::from_str(&self.text).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Copies an object's fields into its text, reading the identity and `spec.nodeName`.
struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = JsonObject;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonObject, A::Error> {
        let mut text = Text::default();
        let mut metadata = ObjectMeta::default();
        let mut node_name = None;
        while let Some(Key(key)) = map.next_key()? {
            if key == "metadata" {
                text.key(&key);
                map.next_value_seed(Metadata {
                    text: &mut text,
                    meta: &mut metadata,
                })?;
                continue;
            }
            let raw: Box<RawValue> = map.next_value()?;
            if key == "spec" {
                node_name = serde_json::from_str::<Spec>(raw.get())
                    .ok()
                    .and_then(|spec| spec.node_name);
            }
            text.field(&key, &raw);
        }
        Ok(JsonObject {
            metadata,
            node_name,
            text: text.finish(),
        })
    }
}

/// The one field of a spec that routing needs; the others are skipped unread.
#[derive(Deserialize)]
struct Spec {
    #[serde(rename = "nodeName")]
    node_name: Option<Box<str>>,
}

/// `metadata`, copied into the object's text without `managedFields`, its identity
/// fields read on the way.
struct Metadata<'a> {
    text: &'a mut Text,
    meta: &'a mut ObjectMeta,
}

impl<'de> DeserializeSeed<'de> for Metadata<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Metadata<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object's metadata")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.text.out.push_str("null");
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Written straight into the object's text, not built apart and copied.
        self.text.open();
        while let Some(Key(key)) = map.next_key()? {
            if key == "managedFields" {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let raw: Box<RawValue> = map.next_value()?;
            let slot = match &*key {
                "name" => Some(&mut self.meta.name),
                "namespace" => Some(&mut self.meta.namespace),
                "uid" => Some(&mut self.meta.uid),
                "resourceVersion" => Some(&mut self.meta.resource_version),
                _ => None,
            };
            if let Some(slot) = slot {
                *slot = serde_json::from_str(raw.get()).ok();
            }
            self.text.field(&key, &raw);
        }
        self.text.close();
        Ok(())
    }
}

/// A map key, borrowed from the input when it has no escapes (serde's `Cow` always
/// copies).
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(key)))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(key.to_owned())))
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(key)))
    }
}

/// An object's compact text, written field by field; a field's value may be a nested
/// object written the same way ([`Text::open`] after its key, [`Text::close`]).
struct Text {
    out: String,
    /// The object opened last has no field yet.
    empty: bool,
}

impl Default for Text {
    fn default() -> Self {
        Self {
            out: String::new(),
            empty: true,
        }
    }
}

impl Text {
    fn key(&mut self, key: &str) {
        self.out.push(if self.empty { '{' } else { ',' });
        self.empty = false;
        kwok_engine::template::write_json_string(key, &mut self.out);
        self.out.push(':');
    }

    fn field(&mut self, key: &str, raw: &RawValue) {
        self.key(key);
        self.out.push_str(raw.get());
    }

    /// Starts the nested object that is the value of the key just written.
    fn open(&mut self) {
        self.empty = true;
    }

    /// Ends the object opened last.
    fn close(&mut self) {
        if self.empty {
            self.out.push('{');
        }
        self.out.push('}');
        self.empty = false;
    }

    /// The text, the top-level object closed.
    fn finish(mut self) -> Box<str> {
        self.close();
        self.out.into_boxed_str()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use kube::api::DynamicObject;
    use serde_json::json;

    use super::*;

    /// A pod as the apiserver sends it, `managedFields` included.
    pub(crate) fn pod() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                "labels": {"app": "web", "say \"hi\"\n": "é"},
                "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:nodeName": {}}}}]
            },
            "spec": {"containers": [{"name": "app", "image": "nginx"}], "nodeName": "n"},
            "status": {"phase": "Pending"}
        })
    }

    pub(crate) fn without_managed_fields(mut value: Value) -> Value {
        value["metadata"].as_object_mut().unwrap().remove("managedFields");
        value
    }

    #[test]
    fn decoding_should_keep_every_field_but_managed_fields_in_order() {
        let text = serde_json::to_string(&pod()).unwrap();
        let obj: JsonObject = serde_json::from_str(&text).unwrap();
        // Compared as text: same keys, same values, same order, compact.
        let expected = serde_json::to_string(&without_managed_fields(pod())).unwrap();
        assert_eq!(&*obj.text, expected);
        assert_eq!(serde_json::to_string(&obj).unwrap(), expected);
        // As kube's DynamicObject reads it, less the managedFields.
        let mut dynamic: DynamicObject = serde_json::from_str(&text).unwrap();
        dynamic.metadata.managed_fields = None;
        assert_eq!(obj.to_value(), serde_json::to_value(&dynamic).unwrap());
    }

    #[test]
    fn decoding_should_type_the_identity_and_the_node() {
        // From a Value too (serde_json hands it over as text).
        let obj: JsonObject = serde_json::from_value(pod()).unwrap();
        let meta = obj.meta();
        assert_eq!(meta.name.as_deref(), Some("p"));
        assert_eq!(meta.namespace.as_deref(), Some("ns"));
        assert_eq!(meta.uid.as_deref(), Some("u"));
        assert_eq!(meta.resource_version.as_deref(), Some("7"));
        assert_eq!(meta.labels, None, "only the identity is typed");
        assert_eq!(obj.node_name.as_deref(), Some("n"));
    }

    #[test]
    fn the_node_should_be_the_specs_among_many_fields() {
        let obj = JsonObject::new(&json!({
            "metadata": {"name": "p"},
            "status": {"nodeName": "not this one"},
            "spec": {"volumes": [{"name": "v", "nodeName": "nor this"}], "restartPolicy": "Always",
                "nodeName": "n", "schedulerName": "default-scheduler"},
        }));
        assert_eq!(obj.node_name.as_deref(), Some("n"));
    }

    #[test]
    fn decoding_should_leave_managed_fields_elsewhere_alone() {
        // Only metadata's managedFields are the server's bookkeeping.
        let value = json!({"spec": {"managedFields": 1, "nodeName": null}, "metadata": null});
        let obj: JsonObject = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(obj.to_value(), value);
        assert_eq!((obj.metadata, obj.node_name), (ObjectMeta::default(), None));
        let empty: JsonObject = serde_json::from_str("{}").unwrap();
        assert_eq!(&*empty.text, "{}");
        let nested = r#"{"metadata":{},"spec":{"a":1}}"#;
        assert_eq!(&*serde_json::from_str::<JsonObject>(nested).unwrap().text, nested);
        let only_managed = r#"{"metadata":{"managedFields":[]},"kind":"Pod"}"#;
        let obj: JsonObject = serde_json::from_str(only_managed).unwrap();
        assert_eq!(&*obj.text, r#"{"metadata":{},"kind":"Pod"}"#);
    }

    #[test]
    fn decoding_should_refuse_what_is_not_an_object() {
        let err = serde_json::from_str::<JsonObject>("[1]").unwrap_err();
        assert!(err.to_string().contains("a JSON object"), "{err}");
        assert!(serde_json::from_str::<JsonObject>(r#"{"metadata": 3}"#).is_err());
        assert!(serde_json::from_str::<JsonObject>(r#"{"spec": }"#).is_err());
    }

    #[test]
    fn new_should_read_a_value_as_if_sent() {
        let obj = JsonObject::new(&pod());
        assert_eq!(obj.metadata.name.as_deref(), Some("p"));
        assert_eq!(obj.to_value(), without_managed_fields(pod()));
    }
}
