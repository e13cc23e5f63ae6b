//! Routing watch events to shards: a node and every pod bound to it land on the same
//! shard, chosen by a hash of the node name, so a shard owns them without locks.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::{
    object::JsonObject,
    shard::{
        Batch, Input, Role,
        hash::{hash, hash_parts},
    },
};

/// Most events a watch hands over at once: the events its stream has ready are routed
/// together and each shard gets them as one message, so a burst (a re-list) costs one
/// channel send and one wake-up per shard per round, not per event.
pub const DISPATCH_CHUNK: usize = 256;

/// Routes one watched kind's events to the shards' bounded channels, in batches.
///
/// Objects travel as the watch decoded them ([`JsonObject`]): the route is read from the
/// typed identity and, for pods, `spec.nodeName`, read while decoding; the object is
/// boxed into its [`Input`] and the shard keeps its JSON. The watch task feeds every shard
/// of its kind, one event after another, so it does no per-object work beyond reading
/// the route.
///
/// Events are buffered per shard by `applied`/`deleted` and sent by `flush` (the watch
/// loop flushes after every ready chunk, so nothing waits for more events to arrive).
///
/// NOTE: `flush` awaits room in each shard's channel, so a slow shard holds back the
/// watch that feeds it (backpressure, not memory growth). Shards never send to the
/// dispatcher, so this cannot deadlock.
pub struct Dispatcher {
    kind: usize,
    role: Role,
    senders: Arc<Vec<mpsc::Sender<Batch>>>,
    /// Events routed but not yet sent, per shard; the same length as `senders`.
    buffers: Vec<Batch>,
}

impl Dispatcher {
    /// A dispatcher for kind `kind` (index into the kinds table) of role `role`.
    pub fn new(kind: usize, role: Role, senders: Arc<Vec<mpsc::Sender<Batch>>>) -> Self {
        debug_assert!(!senders.is_empty(), "at least one shard");
        let buffers = senders.iter().map(|_| Vec::new()).collect();
        Self {
            kind,
            role,
            senders,
            buffers,
        }
    }

    /// Routes an added or changed object; objects without a routing key are dropped.
    pub fn applied(&mut self, obj: JsonObject) {
        let kind = self.kind;
        self.route(obj, |obj| Input::Applied { kind, obj });
    }

    /// Routes a deleted object (by the same key, so it reaches the shard that has it).
    pub fn deleted(&mut self, obj: JsonObject) {
        let kind = self.kind;
        self.route(obj, |obj| Input::Deleted { kind, obj });
    }

    /// Sends what is buffered, one batch per shard.
    pub async fn flush(&mut self) {
        for (buffer, sender) in self.buffers.iter_mut().zip(self.senders.iter()) {
            if buffer.is_empty() {
                continue;
            }
            let batch = std::mem::replace(buffer, Vec::with_capacity(buffer.len()));
            // A closed channel means the shard is gone: shutting down.
            let _ = sender.send(batch).await;
        }
    }

    /// Tells every shard, after what is buffered, that a re-list of this kind starts
    /// (`done == false`) or ended.
    pub async fn relist(&mut self, done: bool) {
        for buffer in &mut self.buffers {
            buffer.push(match done {
                false => Input::Relisting(self.kind),
                true => Input::Relisted(self.kind),
            });
        }
        self.flush().await;
    }

    fn route(&mut self, obj: JsonObject, make: impl FnOnce(Box<JsonObject>) -> Input) {
        if let Some(shard) = routing_shard(self.role, &obj, self.senders.len()) {
            self.buffers[shard].push(make(Box::new(obj)));
        }
    }
}

/// The shard of `obj`: nodes by name, pods by the node they are bound to (unbound pods
/// are the scheduler's business), other kinds by namespace/name.
pub fn routing_shard(role: Role, obj: &JsonObject, shards: usize) -> Option<usize> {
    let name = || obj.metadata.name.as_deref();
    let hash = match role {
        Role::Node => hash(name()?),
        Role::Pod => hash(obj.node_name.as_deref().filter(|n| !n.is_empty())?),
        Role::Other => {
            let namespace = obj.metadata.namespace.as_deref().unwrap_or_default();
            hash_parts(&[namespace, "/", name()?])
        }
    };
    Some((hash % shards as u64) as usize)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::shard::hash::shard_of;

    /// An object as the watch decodes it.
    fn object(value: Value) -> JsonObject {
        JsonObject::new(&value)
    }

    fn pod(name: &str, node: &str) -> JsonObject {
        object(json!({"metadata": {"name": name, "namespace": "ns"}, "spec": {"nodeName": node}}))
    }

    #[tokio::test]
    async fn dispatcher_should_send_one_batch_per_shard_in_watch_order() {
        let (senders, mut receivers): (Vec<_>, Vec<_>) = (0..2).map(|_| mpsc::channel(4)).unzip();
        let mut dispatcher = Dispatcher::new(1, Role::Pod, Arc::new(senders));
        let node = |shard| {
            (0..)
                .map(|i| format!("n{i}"))
                .find(|n| shard_of(n, 2) == shard)
                .unwrap()
        };
        let (n0, n1) = (node(0), node(1));
        dispatcher.applied(pod("a", &n0));
        dispatcher.applied(pod("b", &n1));
        dispatcher.deleted(pod("a", &n0));
        dispatcher.applied(object(json!({"metadata": {"name": "unbound"}})));
        dispatcher.deleted(object(json!({"metadata": {"name": "unbound"}})));
        assert!(receivers[0].try_recv().is_err(), "nothing is sent before a flush");
        dispatcher.relist(true).await;
        let names = |batch: Batch| -> Vec<String> {
            batch
                .into_iter()
                .map(|input| match input {
                    Input::Applied { kind: 1, obj } => format!("+{}", obj.metadata.name.unwrap()),
                    Input::Deleted { kind: 1, obj } => format!("-{}", obj.metadata.name.unwrap()),
                    Input::Relisted(1) => "relisted".to_owned(),
                    other => panic!("unexpected {other:?}"),
                })
                .collect()
        };
        assert_eq!(names(receivers[0].try_recv().unwrap()), ["+a", "-a", "relisted"]);
        assert_eq!(names(receivers[1].try_recv().unwrap()), ["+b", "relisted"]);
        dispatcher.flush().await;
        assert!(
            receivers.iter_mut().all(|r| r.try_recv().is_err()),
            "one batch each"
        );
    }

    #[test]
    fn routing_shard_should_send_a_pod_where_its_node_goes() {
        let node = object(json!({"metadata": {"name": "node-7"}}));
        let other = object(json!({"metadata": {"name": "cm", "namespace": "ns"}}));
        let cluster_scoped = object(json!({"metadata": {"name": "pc"}}));
        assert_eq!(routing_shard(Role::Node, &node, 16), Some(shard_of("node-7", 16)));
        assert_eq!(
            routing_shard(Role::Pod, &pod("p", "node-7"), 16),
            Some(shard_of("node-7", 16))
        );
        assert_eq!(
            routing_shard(Role::Other, &other, 16),
            Some(shard_of("ns/cm", 16))
        );
        assert_eq!(
            routing_shard(Role::Other, &cluster_scoped, 16),
            Some(shard_of("/pc", 16))
        );
    }

    #[test]
    fn routing_shard_should_drop_unbound_pods_and_nameless_objects() {
        let unbound = [
            pod("p", ""),
            object(json!({"metadata": {"name": "p"}, "spec": {"containers": []}})),
            object(json!({"metadata": {"name": "p"}})),
            object(json!({"metadata": {"name": "p"}, "spec": {"nodeName": 7}})),
        ];
        for pod in &unbound {
            assert_eq!(routing_shard(Role::Pod, pod, 16), None, "{pod:?}");
        }
        let nameless = object(json!({"metadata": {"namespace": "ns"}}));
        assert_eq!(routing_shard(Role::Node, &nameless, 16), None);
        assert_eq!(routing_shard(Role::Other, &nameless, 16), None);
    }

    #[test]
    fn hash_should_match_fnv1a_reference_values() {
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
