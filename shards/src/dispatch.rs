//! Routing watch events to shards: a node and every pod bound to it land on the same
//! shard, chosen by a hash of the node name, so a shard owns them without locks.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::shard::{Input, Role};

/// Routes one watched kind's events to the shards' bounded channels.
///
/// NOTE: `send` awaits room in the shard's channel, so a slow shard holds back the
/// watch that feeds it (backpressure, not memory growth). Shards never send to the
/// dispatcher, so this cannot deadlock.
#[derive(Clone)]
pub struct Dispatcher {
    kind: usize,
    role: Role,
    senders: Arc<Vec<mpsc::Sender<Input>>>,
}

impl Dispatcher {
    /// A dispatcher for kind `kind` (index into the kinds table) of role `role`.
    pub fn new(kind: usize, role: Role, senders: Arc<Vec<mpsc::Sender<Input>>>) -> Self {
        debug_assert!(!senders.is_empty(), "at least one shard");
        Self { kind, role, senders }
    }

    /// Routes an added or changed object; objects without a routing key are dropped.
    pub async fn applied(&self, obj: Value) {
        let kind = self.kind;
        self.route(obj, |obj| Input::Applied { kind, obj }).await;
    }

    /// Routes a deleted object.
    pub async fn deleted(&self, obj: Value) {
        let kind = self.kind;
        self.route(obj, |obj| Input::Deleted { kind, obj }).await;
    }

    /// Tells every shard that a re-list of this kind starts (`done == false`) or ended.
    pub async fn relist(&self, done: bool) {
        for sender in self.senders.iter() {
            let input = match done {
                false => Input::Relisting(self.kind),
                true => Input::Relisted(self.kind),
            };
            // A closed channel means the shard is gone: shutting down.
            let _ = sender.send(input).await;
        }
    }

    async fn route(&self, obj: Value, make: impl FnOnce(Value) -> Input) {
        let Some(shard) = routing_shard(self.role, &obj, self.senders.len()) else {
            return;
        };
        let _ = self.senders[shard].send(make(obj)).await;
    }
}

/// The shard of `obj`: nodes by name, pods by the node they are bound to (unbound pods
/// are the scheduler's business), other kinds by namespace/name.
pub fn routing_shard(role: Role, obj: &Value, shards: usize) -> Option<usize> {
    let str_at = |pointer| obj.pointer(pointer).and_then(Value::as_str);
    let hash = match role {
        Role::Node => hash(str_at("/metadata/name")?),
        Role::Pod => hash(str_at("/spec/nodeName").filter(|n| !n.is_empty())?),
        Role::Other => {
            let name = str_at("/metadata/name")?;
            let namespace = str_at("/metadata/namespace").unwrap_or_default();
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
    use super::*;

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
