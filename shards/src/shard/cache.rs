//! A shard's cache entries: the last state of each object and its scheduling state.

use kube::core::ObjectMeta;
use serde_json::{Map, Value};

use super::pack::{Packed, Packers};
use crate::{object::JsonObject, wheel};

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
    /// that stage fires, so that firing does not decompress and parse it again (parsing
    /// at fire was 5–10 % of kwok's CPU in `small`). Any newer state (`set`) and any
    /// cancel drop it, and so does a stage that must wait for a write slot: only
    /// [`State::Scheduled`] entries hold a parsed copy.
    hot: Option<Value>,
    /// Where the object is in its lifecycle (the shard core's invariants).
    pub state: State,
    /// Not seen since the current re-list started (any state).
    pub stale: bool,
    /// Writes that failed in a row: the retry waits longer each time.
    pub failures: u32,
}

/// What fires for an object when its time comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The stage at this index of the kind's lifecycle.
    Stage(usize),
    /// The kubelet's readiness restore ([`kwok_engine::kubelet::restore_ready`]).
    RestoreReady,
    /// The kubelet's node status heartbeat after its Lease lapsed
    /// ([`kwok_engine::kubelet::node_heartbeat`]).
    Heartbeat,
    /// The kubelet's report of the health of a pod's DRA devices
    /// ([`kwok_engine::kubelet::resource_health`]).
    ResourceHealth,
}

impl Due {
    /// The stage's name, or the kubelet behaviour's, for logs and metrics.
    pub fn name(self, stages: &[kwok_engine::stage::Stage]) -> &str {
        match self {
            Due::Stage(index) => stages[index].name(),
            Due::RestoreReady => kwok_engine::kubelet::RESTORE_READY,
            Due::Heartbeat => kwok_engine::kubelet::NODE_HEARTBEAT,
            Due::ResourceHealth => kwok_engine::kubelet::resource_health::RESOURCE_HEALTH,
        }
    }
}

/// Where a cached object is between its stages. Exactly one holds at a time, so no
/// combination of loose flags can say two things at once (a timer pending for an
/// object with a write out, a timer for a deleted object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Nothing pending: no stage matches, or it is not ours to drive.
    Idle,
    /// `due` fires at `timer`, which is in the shard's wheel.
    Scheduled {
        /// Its timer.
        timer: wheel::Key,
        /// What fires.
        due: Due,
    },
    /// `due` came due while every write slot was taken: the key waits in the ready
    /// queue and the stage renders, from the newest state, when a slot frees.
    Ready {
        /// What fires.
        due: Due,
    },
    /// A write is out; `dirty`: something changed meanwhile, so the object is matched
    /// again when the write lands.
    InFlight {
        /// Changed since the write was sent.
        dirty: bool,
    },
    /// We deleted it (or found it gone): nothing more to do until the watch says it is
    /// gone, or an object of another uid takes its name; a late update must not start
    /// the delete stage again.
    Deleted,
}

impl State {
    /// What is pending for the object (scheduled or waiting for a slot), if anything.
    pub fn due(self) -> Option<Due> {
        match self {
            Self::Scheduled { due, .. } | Self::Ready { due } => Some(due),
            Self::Idle | Self::InFlight { .. } | Self::Deleted => None,
        }
    }
}

impl Default for Entry {
    fn default() -> Self {
        Self::with_state(State::Idle)
    }
}

impl Entry {
    /// An entry with nothing cached yet, in `state`.
    pub fn with_state(state: State) -> Self {
        Self {
            json: Packed::raw("null"),
            uid: "".into(),
            node: None,
            rv: String::new(),
            hot: None,
            state,
            stale: false,
            failures: 0,
        }
    }

    /// Stores `obj`, an object of `kind`, as the object's last state.
    pub fn set(&mut self, obj: &JsonObject, kind: usize, packers: &mut Packers) {
        self.json = packers.pack(kind, &obj.text);
        self.hot = None;
        self.uid = obj.metadata.uid.as_deref().unwrap_or_default().into();
        self.node = obj.node_name.clone();
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

    /// Keeps `obj`, the object as last `set`, parsed until [`Self::take_parsed`].
    pub fn keep_parsed(&mut self, obj: Value) {
        self.hot = Some(obj);
    }

    /// Drops the parsed copy kept by [`Self::keep_parsed`].
    pub fn drop_parsed(&mut self) {
        self.hot = None;
    }

    /// Whether a parsed copy is kept (the tests check who holds one).
    #[cfg(test)]
    pub fn has_parsed(&self) -> bool {
        self.hot.is_some()
    }

    /// Takes the parsed copy kept by [`Self::keep_parsed`], if any.
    pub fn take_parsed(&mut self) -> Option<Value> {
        self.hot.take()
    }

    /// The object's last `metadata` alone, as `{"metadata": …}`: the rest of the text is
    /// scanned, not parsed (`kind` as given to `set`).
    pub fn metadata(&self, kind: usize, packers: &mut Packers) -> Value {
        /// Deserializing skips the fields it does not name without building them.
        #[derive(serde::Deserialize)]
        struct Head {
            #[serde(default)]
            metadata: Value,
        }
        let head = packers.with_text(kind, &self.json, |text| serde_json::from_slice::<Head>(text).ok());
        with_metadata(head.flatten().map_or(Value::Null, |h| h.metadata))
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

/// `obj` cut to its metadata, as `{"metadata": …}` (what [`Entry::metadata`] reads).
pub fn metadata_only(mut obj: Value) -> Value {
    with_metadata(obj.get_mut("metadata").map(Value::take).unwrap_or_default())
}

/// `{"metadata": metadata}`.
fn with_metadata(metadata: Value) -> Value {
    Value::Object(Map::from_iter([("metadata".to_owned(), metadata)]))
}

/// The string at `pointer`, or empty.
pub fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::object::tests::{pod, without_managed_fields};

    #[test]
    fn obj_key_should_come_from_the_metadata() {
        let key = ObjKey::of(3, &JsonObject::new(&pod()).metadata).unwrap();
        assert_eq!((key.kind, &*key.namespace, &*key.name), (3, "ns", "p"));
        let nameless = ObjectMeta::default();
        assert_eq!(ObjKey::of(3, &nameless), None);
    }

    #[test]
    fn an_entry_should_read_back_as_set_and_a_kept_parse_be_taken_once() {
        let mut packers = Packers::default();
        let mut entry = Entry::default();
        entry.set(&JsonObject::new(&pod()), 0, &mut packers);
        assert_eq!((entry.uid(), entry.node()), ("u", Some("n")));
        // The object as cached: without its managedFields.
        let stored = || without_managed_fields(pod());
        let mut marked = stored();
        marked["status"]["phase"] = json!("kept");
        assert_eq!(entry.object(0, &mut packers), stored());
        assert_eq!(
            entry.metadata(0, &mut packers),
            json!({"metadata": stored()["metadata"]})
        );
        // The kept copy is returned as it is (it stands for the state last set), once.
        entry.keep_parsed(marked.clone());
        assert_eq!(entry.take_parsed(), Some(marked.clone()));
        assert_eq!(entry.take_parsed(), None);
        entry.keep_parsed(marked);
        let mut newer = stored();
        newer["metadata"]["resourceVersion"] = json!("8");
        entry.set(&JsonObject::new(&newer), 0, &mut packers);
        assert_eq!(entry.take_parsed(), None);
        assert_eq!(entry.object(0, &mut packers), newer);
    }
}
