//! One scrape's inputs as CEL values: the node, its pods and their containers, each
//! converted once per scrape however many expressions read them, and only in the
//! fields the expressions read ([`Reads`]).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use cel::Value as CelValue;
use cel::common::types::{CelNull, CelTimestamp};
use cel::common::value::Val;
use cel::objects::Key;
use jiff::Timestamp;
use serde_json::Value;

use kwok_engine::selector::cel_typed_value;

use super::cumulative::{Converted, Cumulative, NodeState};
use super::expr::{Object, Scope, Slot};
use super::reads::Reads;
use super::table::UsageTable;

/// The converted objects of one scrape.
pub(crate) struct Scrape<'a> {
    pub(crate) now: CelTimestamp,
    pub(crate) node: Object,
    pub(crate) node_json: &'a Value,
    pub(crate) node_name: &'a str,
    pub(crate) pods: Vec<ScrapePod<'a>>,
}

/// A pod of the scrape.
pub(crate) struct ScrapePod<'a> {
    pub(crate) json: &'a Value,
    pub(crate) namespace: &'a str,
    pub(crate) name: &'a str,
    pub(crate) object: Object,
    /// `spec.containers`, in order: name and CEL value.
    pub(crate) containers: Vec<(&'a str, Arc<dyn Val>)>,
    /// `spec.containers` as JSON, in the same order.
    pub(crate) container_json: Vec<&'a Value>,
}

impl<'a> Scrape<'a> {
    /// Converts what `reads` names of `node` and `pods` for evaluation at `now`,
    /// reusing the conversions `state` holds of pods whose `resourceVersion` (and the
    /// fields read) have not changed.
    pub(crate) fn new(
        node: &'a Value,
        pods: &[&'a Value],
        reads: &Reads,
        now: Timestamp,
        state: &mut Cumulative,
    ) -> Self {
        let node_name = str_at(node, "/metadata/name");
        let node_state = state.begin(node_name);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        reads.hash(&mut hasher);
        let reads_hash = hasher.finish();
        Self {
            now: CelTimestamp::from(chrono_of(now)),
            node: Object::new(Slot::Node, Arc::from(object_val(&reads.node().prune(node)))),
            node_json: node,
            node_name,
            pods: pods
                .iter()
                .enumerate()
                .map(|(i, p)| ScrapePod::new(i, p, node_state, reads, reads_hash))
                .collect(),
        }
    }

    /// The variables for an expression about the node, a pod or a container.
    pub(crate) fn scope<'s>(
        &'s self,
        pod: Option<&'s ScrapePod<'a>>,
        container: Option<usize>,
        table: Option<&'s UsageTable>,
    ) -> Scope<'s> {
        Scope {
            now: &self.now,
            node: &self.node,
            pod: pod.map(|p| &p.object),
            container: pod.zip(container).map(|(p, c)| p.containers[c].1.as_ref()),
            table,
            json: [
                Some(self.node_json),
                pod.map(|p| p.json),
                pod.zip(container).map(|(p, c)| p.container_json[c]),
            ],
        }
    }
}

impl<'a> ScrapePod<'a> {
    fn new(index: usize, json: &'a Value, state: &mut NodeState, reads: &Reads, reads_hash: u64) -> Self {
        let namespace = str_at(json, "/metadata/namespace");
        let name = str_at(json, "/metadata/name");
        let container_json: Vec<&Value> = json
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map(|cs| cs.iter().collect())
            .unwrap_or_default();
        let version = str_at(json, "/metadata/resourceVersion");
        let pod_state = state.pod(namespace, name, json);
        let converted = match &pod_state.converted {
            // Without a resourceVersion (not from an apiserver) nothing tells a change.
            Some((v, h, c)) if !version.is_empty() && v == version && *h == reads_hash => c.clone(),
            _ => {
                let c = Converted {
                    pod: Arc::from(object_val(&reads.pod().prune(json))),
                    containers: container_json
                        .iter()
                        .map(|c| Arc::from(to_val(cel_typed_value(&reads.container().prune(c)))))
                        .collect(),
                };
                pod_state.converted = Some((version.to_owned(), reads_hash, c.clone()));
                c
            }
        };
        let containers = container_json
            .iter()
            .zip(converted.containers)
            .map(|(c, v)| (str_at(c, "/name"), v))
            .collect();
        Self {
            json,
            namespace,
            name,
            object: Object::new(Slot::Pod(index), converted.pod),
            containers,
            container_json,
        }
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// `now` as CEL's timestamp type.
fn chrono_of(now: Timestamp) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::from_timestamp(now.as_second(), now.subsec_nanosecond().max(0) as u32)
        .unwrap_or_default()
        .fixed_offset()
}

/// A Node or Pod as CEL's value, with the metadata upstream's typed objects always have.
///
/// Upstream binds Go structs, whose absent maps and strings read as empty: so
/// `"k" in pod.metadata.annotations` is `false` for a pod without annotations, where
/// a missing JSON field would be an error. The fields expressions read most are filled
/// in; deeper absent fields stay absent.
fn object_val(json: &Value) -> Box<dyn Val> {
    let mut value = cel_typed_value(json);
    if let CelValue::Map(map) = &mut value {
        let meta = Arc::make_mut(&mut map.map)
            .entry(Key::from("metadata"))
            .or_insert_with(empty_map);
        if let CelValue::Map(meta) = meta {
            let meta = Arc::make_mut(&mut meta.map);
            for key in ["labels", "annotations"] {
                meta.entry(Key::from(key)).or_insert_with(empty_map);
            }
            for key in ["name", "namespace", "uid"] {
                meta.entry(Key::from(key))
                    .or_insert_with(|| CelValue::String(Arc::default()));
            }
        }
    }
    to_val(value)
}

fn empty_map() -> CelValue {
    CelValue::Map(HashMap::<Key, CelValue>::new().into())
}

/// Only functions and foreign structs fail to convert, and JSON has neither.
fn to_val(value: CelValue) -> Box<dyn Val> {
    Box::<dyn Val>::try_from(value).unwrap_or_else(|_| Box::new(CelNull))
}
