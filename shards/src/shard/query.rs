//! Read-only questions to a shard from outside its task (the kubelet API): a node and
//! its pods, and the names of the nodes it manages. The shard answers between events
//! from its own cache, so nothing is shared and no lock is taken.

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// Questions waiting for one shard; a full queue makes the asker wait, never the shard.
pub const QUERIES_BUF_SIZE: usize = 256;

/// A question and where its answer goes.
#[derive(Debug)]
pub enum Query {
    /// A managed node with the pods bound to it (`None`: not managed here).
    Node {
        /// The node's name.
        name: String,
        /// The answer.
        reply: oneshot::Sender<Option<NodeView>>,
    },
    /// The names of the managed nodes.
    Names {
        /// The answer.
        reply: oneshot::Sender<Vec<String>>,
    },
}

/// A node and its pods, as last seen.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// The Node.
    pub node: Value,
    /// The pods bound to it.
    pub pods: Vec<Value>,
}

/// The askers' side: one queue per shard, a node's questions going to its shard.
#[derive(Debug, Clone)]
pub struct Lookup {
    senders: Vec<mpsc::Sender<Query>>,
}

impl Lookup {
    /// A lookup over `shards` shards and the receivers each shard answers from.
    pub fn new(shards: usize) -> (Self, Vec<mpsc::Receiver<Query>>) {
        let (senders, receivers) = (0..shards).map(|_| mpsc::channel(QUERIES_BUF_SIZE)).unzip();
        (Self { senders }, receivers)
    }

    /// How many shards answer.
    pub fn shards(&self) -> usize {
        self.senders.len()
    }

    /// The shard of node `name` (where its pods live too).
    pub fn shard_of(&self, name: &str) -> usize {
        super::hash::shard_of(name, self.senders.len())
    }

    /// Node `name` and its pods; `None` when no shard manages it (or kwok is stopping).
    pub async fn node(&self, name: &str) -> Option<NodeView> {
        let (reply, answer) = oneshot::channel();
        let query = Query::Node {
            name: name.to_owned(),
            reply,
        };
        self.senders[self.shard_of(name)].send(query).await.ok()?;
        answer.await.ok().flatten()
    }

    /// Every managed node's name, sorted.
    pub async fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for sender in &self.senders {
            let (reply, answer) = oneshot::channel();
            if sender.send(Query::Names { reply }).await.is_ok()
                && let Ok(part) = answer.await
            {
                names.extend(part);
            }
        }
        names.sort_unstable();
        names
    }
}
