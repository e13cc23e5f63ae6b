//! Usage integrated over time (`CumulativeUsage`) and started containers, kept between
//! scrapes by the caller.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::Value;

/// What the metrics remember between scrapes: per node, the integral of each
/// resource's usage for the node and for each container of its pods, and how many
/// containers have started on it.
///
/// The caller owns it (one per process, or one per shard of nodes) and passes it to
/// every [`Metric::render`](super::Metric::render). A scrape of a node forgets the pods
/// no longer in its pod list, so the state of deleted pods goes with the next scrape of
/// their node; [`forget_node`](Self::forget_node) drops a deleted node's.
///
/// # Implementation
/// As upstream, an integral starts at 0 the first time it is read and then grows by
/// `usage × seconds since the previous read` at each read, with the usage read now
/// (so a usage change shows from the scrape that sees it). A pod recreated under the
/// same name (another `uid`) starts again from 0, as a real kubelet's counters do.
#[derive(Debug, Default)]
pub struct Cumulative {
    nodes: HashMap<String, NodeState>,
}

impl Cumulative {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops everything remembered of `node` and its pods.
    pub fn forget_node(&mut self, node: &str) -> bool {
        self.nodes.remove(node).is_some()
    }

    /// How many pods are remembered, over all nodes.
    pub fn pods(&self) -> usize {
        self.nodes.values().map(|n| n.pods.len()).sum()
    }

    /// The CEL values kept of a pod between scrapes.
    #[cfg(test)]
    pub(crate) fn converted(&self, node: &str, namespace: &str, pod: &str) -> Option<&Converted> {
        let pod = self
            .nodes
            .get(node)?
            .pods
            .get(&(namespace.to_owned(), pod.to_owned()))?;
        pod.converted.as_ref().map(|(_, _, c)| c)
    }

    /// The node's state, opened for one scrape.
    pub(crate) fn begin(&mut self, node: &str) -> &mut NodeState {
        let state = self.node(node);
        state.generation += 1;
        state
    }

    /// The node's state, in the scrape [`begin`](Self::begin) opened.
    pub(crate) fn node(&mut self, node: &str) -> &mut NodeState {
        if !self.nodes.contains_key(node) {
            self.nodes.insert(node.to_owned(), NodeState::default());
        }
        self.nodes.get_mut(node).expect("inserted above")
    }
}

/// An integral and when it was last advanced.
#[derive(Debug, Clone, Copy)]
struct Integral {
    at: Timestamp,
    value: f64,
}

/// `integral` advanced to `now` at `usage`, started at 0 when absent.
fn advance(integral: &mut Option<Integral>, usage: f64, now: Timestamp) -> f64 {
    let next = match *integral {
        // A clock that went back adds nothing rather than subtracting.
        Some(i) => i.value + now.duration_since(i.at).as_secs_f64().max(0.0) * usage,
        None => 0.0,
    };
    *integral = Some(Integral { at: now, value: next });
    next
}

/// One node's memory.
#[derive(Debug, Default)]
pub(crate) struct NodeState {
    resources: Vec<(Arc<str>, Option<Integral>)>,
    pods: HashMap<(String, String), PodState>,
    started_total: u64,
    /// Bumped at each scrape; a pod whose `seen` is older was not in the last pod list.
    generation: u64,
}

/// One pod's memory.
#[derive(Debug, Default)]
pub(crate) struct PodState {
    uid: String,
    /// (container, resource) → integral.
    integrals: Vec<(String, Arc<str>, Option<Integral>)>,
    /// Container starts counted so far (see [`starts`]).
    starts: u64,
    seen: u64,
    /// The pod's CEL values as of `resourceVersion`, of the fields read by the
    /// expressions whose [`Reads`](super::reads::Reads) hash is the `u64`: converting
    /// a pod costs more than evaluating every metric of it, and fake pods rarely change
    /// once running.
    pub(crate) converted: Option<(String, u64, Converted)>,
}

/// A pod and its containers (`spec.containers` order) as CEL values.
#[derive(Debug, Clone)]
pub(crate) struct Converted {
    pub(crate) pod: Arc<dyn cel::common::value::Val>,
    pub(crate) containers: Vec<Arc<dyn cel::common::value::Val>>,
}

impl NodeState {
    /// The node-level integral of `resource`, advanced.
    pub(crate) fn advance(&mut self, resource: &Arc<str>, usage: f64, now: Timestamp) -> f64 {
        let i = match self.resources.iter().position(|(r, _)| r == resource) {
            Some(i) => i,
            None => {
                self.resources.push((resource.clone(), None));
                self.resources.len() - 1
            }
        };
        advance(&mut self.resources[i].1, usage, now)
    }

    /// The pod's state (reset if `uid` changed), marked as seen in this scrape; counts
    /// its newly started containers into the node's total.
    pub(crate) fn pod(&mut self, namespace: &str, name: &str, pod: &Value) -> &mut PodState {
        let uid = pod
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let state = self
            .pods
            .entry((namespace.to_owned(), name.to_owned()))
            .or_default();
        if state.uid != uid {
            *state = PodState {
                uid: uid.to_owned(),
                ..PodState::default()
            };
        }
        state.seen = self.generation;
        let now_started = starts(pod);
        self.started_total += now_started.saturating_sub(state.starts);
        state.starts = state.starts.max(now_started);
        state
    }

    /// Containers started on the node since it was first scraped.
    pub(crate) fn started_total(&self) -> u64 {
        self.started_total
    }

    /// Forgets the pods this scrape did not see.
    pub(crate) fn sweep(&mut self) {
        let generation = self.generation;
        self.pods.retain(|_, p| p.seen == generation);
    }
}

impl PodState {
    /// The integral of `resource` for `container`, advanced.
    pub(crate) fn advance(
        &mut self,
        container: &str,
        resource: &Arc<str>,
        usage: f64,
        now: Timestamp,
    ) -> f64 {
        let i = match self
            .integrals
            .iter()
            .position(|(c, r, _)| c == container && r == resource)
        {
            Some(i) => i,
            None => {
                self.integrals
                    .push((container.to_owned(), resource.clone(), None));
                self.integrals.len() - 1
            }
        };
        advance(&mut self.integrals[i].2, usage, now)
    }
}

/// How many container starts the pod's status shows: each container's restarts, plus
/// its first start once it has run.
fn starts(pod: &Value) -> u64 {
    let Some(statuses) = pod.pointer("/status/containerStatuses").and_then(Value::as_array) else {
        return 0;
    };
    statuses
        .iter()
        .map(|s| {
            let restarts = s.get("restartCount").and_then(Value::as_u64).unwrap_or(0);
            let ran = s.pointer("/state/running").is_some()
                || s.pointer("/state/terminated").is_some()
                || s.pointer("/lastState/terminated").is_some();
            restarts + u64::from(ran)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn an_integral_should_start_at_zero_and_grow_by_usage_times_seconds() {
        let mut i = None;
        assert_eq!(advance(&mut i, 0.25, t(100)), 0.0);
        assert_eq!(advance(&mut i, 0.25, t(104)), 1.0);
        assert_eq!(advance(&mut i, 1.0, t(106)), 3.0);
        // Backwards clock: unchanged.
        assert_eq!(advance(&mut i, 1.0, t(105)), 3.0);
    }

    #[test]
    fn a_recreated_pod_should_start_again_and_a_gone_one_be_forgotten() {
        let mut c = Cumulative::new();
        let r: Arc<str> = Arc::from("cpu");
        let pod = |uid: &str| json!({"metadata": {"uid": uid}});
        let n = c.begin("n");
        n.pod("ns", "p", &pod("1")).advance("c", &r, 1.0, t(0));
        assert_eq!(n.pod("ns", "p", &pod("1")).advance("c", &r, 1.0, t(10)), 10.0);
        assert_eq!(n.pod("ns", "p", &pod("2")).advance("c", &r, 1.0, t(20)), 0.0);
        n.sweep();
        assert_eq!(c.pods(), 1);
        c.begin("n").sweep();
        assert_eq!(c.pods(), 0);
    }

    #[test]
    fn started_containers_should_count_each_start_once() {
        let mut c = Cumulative::new();
        let running = json!({"metadata": {"uid": "u"}, "status": {"containerStatuses": [
            {"restartCount": 0, "state": {"running": {}}},
            {"restartCount": 2, "state": {"running": {}}},
            {"restartCount": 0, "state": {"waiting": {}}}]}});
        let n = c.begin("n");
        n.pod("ns", "p", &running);
        n.pod("ns", "p", &running);
        assert_eq!(n.started_total(), 4);
    }
}
