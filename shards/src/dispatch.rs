//! Routing watch events to shards: a node and every pod bound to it land on the same
//! shard, chosen by a hash of the node name, so a shard owns them without locks.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::shard::{Input, Role};

/// Most events a watch hands over at once: the events its stream has ready are routed
/// together and each shard gets them as one message, so a burst (a re-list) costs one
/// channel send and one wake-up per shard per round, not per event.
pub const DISPATCH_CHUNK: usize = 256;

/// A shard's channel carries batches of events, in watch order.
pub type Batch = Vec<Input>;

/// Routes one watched kind's events to the shards' bounded channels, in batches.
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
    pub fn applied(&mut self, obj: Value) {
        let kind = self.kind;
        self.route(obj, |obj| Input::Applied { kind, obj });
    }

    /// Routes a deleted object.
    pub fn deleted(&mut self, obj: Value) {
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

    fn route(&mut self, obj: Value, make: impl FnOnce(Value) -> Input) {
        if let Some(shard) = routing_shard(self.role, &obj, self.senders.len()) {
            self.buffers[shard].push(make(obj));
        }
    }
}

/// The shard of `obj`: nodes by name, pods by the node they are bound to (unbound pods
/// are the scheduler's business), other kinds by namespace/name.
pub fn routing_shard(role: Role, obj: &Value, shards: usize) -> Option<usize> {
    let str_at = |outer, inner| obj.get(outer)?.get(inner)?.as_str();
    let hash = match role {
        Role::Node => hash(str_at("metadata", "name")?),
        Role::Pod => hash(str_at("spec", "nodeName").filter(|n| !n.is_empty())?),
        Role::Other => {
            let name = str_at("metadata", "name")?;
            let namespace = str_at("metadata", "namespace").unwrap_or_default();
            hash_parts(&[namespace, "/", name])
        }
    };
    Some((hash % shards as u64) as usize)
}

/// Hashes `key` (FNV-1a: stable across runs and processes, unlike `RandomState`).
pub fn hash(key: &str) -> u64 {
    hash_parts(&[key])
}

/// The hash of the concatenation of `parts`, without building it.
fn hash_parts(parts: &[&str]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    parts
        .iter()
        .flat_map(|p| p.bytes())
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The shard of routing key `key` among `shards`.
pub fn shard_of(key: &str, shards: usize) -> usize {
    debug_assert!(shards > 0, "at least one shard");
    (hash(key) % shards as u64) as usize
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
        let pod = |name: &str, node: &str| json!({"metadata": {"name": name}, "spec": {"nodeName": node}});
        let (n0, n1) = (node(0), node(1));
        dispatcher.applied(pod("a", &n0));
        dispatcher.applied(pod("b", &n1));
        dispatcher.deleted(pod("a", &n0));
        dispatcher.applied(json!({"metadata": {"name": "unbound"}}));
        assert!(receivers[0].try_recv().is_err(), "nothing is sent before a flush");
        dispatcher.relist(true).await;
        let names = |batch: Batch| -> Vec<String> {
            batch
                .into_iter()
                .map(|input| match input {
                    Input::Applied { kind: 1, obj } => format!("+{}", obj["metadata"]["name"]),
                    Input::Deleted { kind: 1, obj } => format!("-{}", obj["metadata"]["name"]),
                    Input::Relisted(1) => "relisted".to_owned(),
                    other => panic!("unexpected {other:?}"),
                })
                .collect()
        };
        assert_eq!(
            names(receivers[0].try_recv().unwrap()),
            [r#"+"a""#, r#"-"a""#, "relisted"]
        );
        assert_eq!(names(receivers[1].try_recv().unwrap()), [r#"+"b""#, "relisted"]);
        dispatcher.flush().await;
        assert!(
            receivers.iter_mut().all(|r| r.try_recv().is_err()),
            "one batch each"
        );
    }

    #[test]
    fn shard_of_should_be_stable_and_spread_evenly() {
        assert_eq!(shard_of("node-1", 4), shard_of("node-1", 4));
        let mut counts = [0usize; 4];
        for i in 0..10_000 {
            counts[shard_of(&format!("node-{i:06}"), 4)] += 1;
        }
        for c in counts {
            assert!((2_200..2_800).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn routing_shard_should_send_a_pod_where_its_node_goes() {
        let node = serde_json::json!({"metadata": {"name": "node-7"}});
        let pod =
            serde_json::json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "node-7"}});
        let unbound = serde_json::json!({"metadata": {"name": "p"}, "spec": {"nodeName": ""}});
        let other = serde_json::json!({"metadata": {"name": "cm", "namespace": "ns"}});
        assert_eq!(routing_shard(Role::Node, &node, 16), Some(shard_of("node-7", 16)));
        assert_eq!(routing_shard(Role::Pod, &pod, 16), Some(shard_of("node-7", 16)));
        assert_eq!(routing_shard(Role::Pod, &unbound, 16), None);
        assert_eq!(
            routing_shard(Role::Other, &other, 16),
            Some(shard_of("ns/cm", 16))
        );
    }

    #[test]
    fn hash_should_match_fnv1a_reference_values() {
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
