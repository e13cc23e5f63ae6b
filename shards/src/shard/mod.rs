//! A shard: the single owner of a slice of the managed nodes and everything bound to
//! them — their cached objects, their stage timers and their in-flight writes.
//!
//! # Data flow
//! The dispatcher sends watch events on a bounded channel, each object as the watch
//! decoded it ([`JsonObject`]: compact JSON text without
//! `managedFields`); the shard parses an object only if it is news (not the event of
//! its own write), caches its text, matches stages (engine), schedules the chosen stage
//! in its timer wheel ([`crate::wheel`], driven by one `Sleep` re-armed to the wheel's
//! next deadline), and when a timer fires renders the effects, merges them
//! ([`crate::batcher::coalesce`]) and hands them to a write task. Write results come
//! back on an unbounded channel, so a full event channel can never block a writer
//! that the shard is waiting for.
//!
//! # Invariants
//! - At most one write is in flight per object (`Entry::in_flight`); events that
//!   arrive meanwhile only mark the entry dirty and are evaluated when it lands.
//! - At most `--writes-in-flight` writes per shard; a stage due beyond that waits in
//!   the ready queue with its timer key still in its entry, so it is rendered later
//!   only if nothing re-scheduled or cancelled it meanwhile. A slow apiserver thus
//!   costs a queue of keys, not a task holding a rendered object per waiting write,
//!   and each waiting stage renders from the newest state of its object.
//! - Cached objects are compact JSON (`cache::Entry`), parsed only to match or render;
//!   a stage due at once keeps the parse that matched it for its firing, and a stage
//!   that reads only metadata fires on the metadata alone.
//! - An entry has a timer only while a stage is pending for it; re-matching the same
//!   stage keeps the timer, matching another replaces it.
//! - A successful write's response replaces the cached object and the object is
//!   matched again at once (the watch event for that version is then skipped as
//!   seen). Every stage thus behaves as if `immediateNextStage` were set, which only
//!   saves the wait for the watch event.

mod cache;
mod pack;
pub mod query;
mod version;

use std::{
    cell::RefCell,
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use jiff::Timestamp;
use kube::core::ApiResource;
use kwok_engine::{kubelet, lifecycle::Lifecycle};
use prometheus_client::metrics::gauge::Gauge;
use rand::{Rng, SeedableRng, rngs::SmallRng};
use serde_json::Value;
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};

use cache::Entry;
pub use cache::ObjKey;
use pack::Packers;
use version::Order;

use crate::{
    batcher::{self, Outcome, Target, Writer},
    dispatch::Batch,
    host::{Ips, RuntimeHost, SharedIps},
    lease::{LeaseMsg, Pressure, PressureGauge},
    metrics::{Metrics, ShardLabel, StageLabel},
    object::JsonObject,
    settings::Settings,
    wheel::{self, Alarm, Clock, Wheel},
};

/// Capacity of a shard's event channel, in batches of up to
/// [`DISPATCH_CHUNK`](crate::dispatch::DISPATCH_CHUNK) events per watched kind (up to
/// 4096 pod events): enough to absorb a relist burst, small enough that a stuck shard
/// pushes back on its watch instead of growing memory.
pub const EVENT_BATCHES: usize = 16;

/// Timers fired per turn of the shard loop before it looks at its channels again, so a
/// burst of due timers cannot starve write results and events.
const FIRE_BATCH: usize = 256;

/// Longest wait before a stage whose write failed is tried again.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(60);

/// Writes in flight per shard while lease renewals are [`Pressure::Behind`]: few, so
/// renewals keep most of the apiserver and the pressure settles here rather than at
/// [`Pressure::AtRisk`] (measurements in `lease.rs`'s docs).
const WRITES_WHILE_LEASES_BEHIND: usize = 4;

/// Writes in flight per shard while lease renewals are [`Pressure::AtRisk`]: a trickle,
/// so stage work goes on instead of stopping while the renewals catch up.
const WRITES_WHILE_LEASES_AT_RISK: usize = 2;

/// The timer index of the kubelet's readiness restore ([`kubelet::restore_ready`]), in
/// place of a stage's index.
const KUBELET_RESTORE: usize = usize::MAX;

/// How long a pod whose readiness the control plane took away waits before kwok
/// restores it, once its node is Ready: long enough for kube-controller-manager to see
/// the node Ready first, so that it does not take the pod's readiness away again.
const RESTORE_READY_DELAY: Duration = Duration::from_secs(1);

/// A reading of the clocks, taken by the run loop once per event it handles.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Wall-clock time: stage delays and what templates see as `Now`.
    pub wall: Timestamp,
    /// Monotonic time: the timer wheel's deadlines.
    pub mono: Instant,
}

impl Now {
    /// The clocks now.
    pub fn read() -> Self {
        Self {
            wall: Timestamp::now(),
            mono: Instant::now(),
        }
    }
}

/// What a watched kind is to the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Nodes: managed by selector, routed by name.
    Node,
    /// Pods: routed by the node they are bound to.
    Pod,
    /// Any other kind a Stage names.
    Other,
}

/// A watched kind and its stages.
#[derive(Debug)]
pub struct Kind {
    /// API resource.
    pub resource: ApiResource,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Its role.
    pub role: Role,
    /// Its stages.
    pub lifecycle: Lifecycle,
}

/// Events for a shard.
///
/// Objects are as the watch decoded them. They are boxed so that an `Input` is small to
/// move and to buffer: a `JsonObject`'s typed identity is a whole `ObjectMeta`, hundreds
/// of bytes before any heap data.
#[derive(Debug)]
pub enum Input {
    /// An object was added or changed.
    Applied {
        /// Index into the kinds table.
        kind: usize,
        /// The object.
        obj: Box<JsonObject>,
    },
    /// An object was deleted.
    Deleted {
        /// Index into the kinds table.
        kind: usize,
        /// The last state of the object (only its metadata is read).
        obj: Box<JsonObject>,
    },
    /// The watch of `kind` starts a full re-list.
    Relisting(usize),
    /// The re-list of `kind` is complete: objects not seen since `Relisting` are gone.
    Relisted(usize),
    /// The stages changed: the new kinds table (known kinds keep their index).
    Kinds(Arc<Vec<Kind>>),
}

/// Everything a shard is started with.
pub struct ShardContext {
    /// Index of this shard.
    pub index: usize,
    /// The watched kinds (replaced by [`Input::Kinds`]).
    pub kinds: Arc<Vec<Kind>>,
    /// Resolved settings.
    pub settings: Arc<Settings>,
    /// Writes go through this.
    pub writer: Writer,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The lease worker, when leases are on.
    pub leases: Option<mpsc::UnboundedSender<LeaseMsg>>,
    /// How far behind the lease worker's renewals are, when leases are on.
    pub lease_pressure: Option<PressureGauge>,
    /// The `--cidr` pool and the pod IP holders shared by all shards.
    pub shared_ips: Arc<Mutex<SharedIps>>,
    /// When the controller started.
    pub start: Timestamp,
    /// How many shards have processed the first full list of pods. No pod stage is
    /// scheduled before every shard has (see [`Shard::pods_listed`]).
    pub pods_listed: Arc<watch::Sender<usize>>,
}

/// A running shard.
pub struct Shard {
    ctx: ShardContext,
    entries: HashMap<ObjKey, Entry>,
    /// Compression of the entries' objects, per kind.
    packers: Packers,
    /// Managed nodes of this shard → pods bound to them.
    nodes: HashMap<String, HashSet<ObjKey>>,
    /// Managed nodes whose Lease we hold (only consulted when leases are on): a node
    /// whose lease another controller holds is left alone.
    held: HashSet<String>,
    /// Pods seen on nodes not (yet) managed, by node name.
    waiting: HashMap<String, HashSet<ObjKey>>,
    /// Managed nodes whose last seen `Ready` condition is `True`.
    ready_nodes: HashSet<String>,
    /// Whether this shard, and every shard, has processed the first list of pods.
    ///
    /// Until then no pod stage is scheduled: a pod without an IP rendered before the
    /// list is done could get an address that a pod listed later holds (the pools are
    /// rebuilt from the pods as they are listed, and `--cidr`'s pool is shared by all
    /// shards).
    pods_listed: (bool, bool),
    pods_listed_rx: watch::Receiver<usize>,
    wheel: Wheel<ObjKey>,
    /// Maps tokio's clock to the wheel's millisecond ticks.
    clock: Clock,
    ips: Ips,
    rng: SmallRng,
    /// The time of the event being handled, read once by the run loop: the logic never
    /// reads a clock itself.
    now: Now,
    /// Writes in flight (at most `settings.writes_in_flight`).
    writes: usize,
    /// Timers that fired while `writes` was at its limit, oldest first. An item whose
    /// timer no longer matches its entry's (re-evaluated, cancelled, removed) is skipped.
    ready: VecDeque<(wheel::Key, ObjKey)>,
    done_tx: mpsc::UnboundedSender<(ObjKey, Outcome)>,
    done_rx: mpsc::UnboundedReceiver<(ObjKey, Outcome)>,
    gauges: Gauges,
}

struct Gauges {
    nodes: Gauge,
    objects: Gauge,
    pending: Gauge,
    queue: Gauge,
}

impl Shard {
    /// A shard ready to run.
    pub fn new(ctx: ShardContext) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let label = ShardLabel {
            shard: ctx.index.to_string(),
        };
        let gauges = Gauges {
            nodes: ctx.metrics.managed_nodes.get_or_create_owned(&label),
            objects: ctx.metrics.managed_objects.get_or_create_owned(&label),
            pending: ctx.metrics.pending_timers.get_or_create_owned(&label),
            queue: ctx.metrics.queue_depth.get_or_create_owned(&label),
        };
        let ips = Ips::new(ctx.shared_ips.clone(), ctx.settings.node_ip.clone());
        let pods_listed_rx = ctx.pods_listed.subscribe();
        let now = Now::read();
        Self {
            now,
            rng: SmallRng::seed_from_u64(ctx.index as u64 ^ ctx.start.as_nanosecond() as u64),
            ctx,
            entries: HashMap::new(),
            packers: Packers::default(),
            nodes: HashMap::new(),
            held: HashSet::new(),
            waiting: HashMap::new(),
            ready_nodes: HashSet::new(),
            pods_listed: (false, false),
            pods_listed_rx,
            wheel: Wheel::with_capacity(1024),
            clock: Clock::new(now.mono),
            ips,
            writes: 0,
            ready: VecDeque::new(),
            done_tx,
            done_rx,
            gauges,
        }
    }

    /// Runs until the event channel closes. `ownership` says, per node, whether we
    /// hold its Lease now (from the lease worker).
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<Batch>,
        mut ownership: mpsc::UnboundedReceiver<(String, bool)>,
        mut queries: mpsc::Receiver<query::Query>,
    ) {
        let mut alarm = Alarm::new();
        loop {
            alarm.arm(&self.clock, self.wheel.next_deadline());
            tokio::select! {
                biased;
                Some((key, outcome)) = self.done_rx.recv() => {
                    self.now = Now::read();
                    self.written(key, outcome);
                }
                Some((node, held)) = ownership.recv() => {
                    self.now = Now::read();
                    self.lease_changed(node, held);
                }
                () = alarm.fired(), if alarm.is_armed() => {
                    self.now = Now::read();
                    self.fire_due();
                }
                changed = self.pods_listed_rx.changed(), if !self.pods_listed.1 => {
                    let count = changed.is_ok().then(|| *self.pods_listed_rx.borrow_and_update());
                    if count.is_none_or(|n| n >= self.ctx.settings.shards) {
                        self.now = Now::read();
                        self.all_pods_listed();
                    }
                }
                Some(query) = queries.recv() => self.answer(query),
                batch = events.recv() => match batch {
                    Some(batch) => {
                        self.now = Now::read();
                        batch.into_iter().for_each(|input| self.handle(input));
                    }
                    None => break,
                },
            }
            self.gauges.pending.set(self.wheel.len() as i64);
        }
    }

    /// Answers a question about the managed nodes from the cache.
    fn answer(&mut self, query: query::Query) {
        match query {
            query::Query::Node { name, reply } => {
                let _ = reply.send(self.node_view(&name));
            }
            query::Query::Names { reply } => {
                let _ = reply.send(self.nodes.keys().cloned().collect());
            }
        }
    }

    fn node_view(&mut self, name: &str) -> Option<query::NodeView> {
        let pods = self.nodes.get(name)?;
        let node_key = ObjKey {
            kind: self.node_kind(),
            namespace: String::new(),
            name: name.to_owned(),
        };
        let node = self
            .entries
            .get(&node_key)?
            .object(node_key.kind, &mut self.packers);
        let pods = pods
            .iter()
            .filter_map(|key| Some(self.entries.get(key)?.object(key.kind, &mut self.packers)))
            .collect();
        Some(query::NodeView { node, pods })
    }

    /// Fires up to `FIRE_BATCH` due timers; any left keep the wheel's deadline at now.
    fn fire_due(&mut self) {
        let now = self.clock.now_tick(self.now.mono);
        for _ in 0..FIRE_BATCH {
            let Some(expired) = self.wheel.poll_expired(now) else {
                return;
            };
            self.fire(expired.key, expired.value);
        }
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Applied { kind, obj } => self.applied(kind, *obj),
            Input::Deleted { kind, obj } => {
                if let Some(key) = ObjKey::of(kind, &obj.metadata) {
                    self.remove(&key);
                }
            }
            Input::Relisting(kind) => self
                .entries
                .iter_mut()
                .filter(|(k, _)| k.kind == kind)
                .for_each(|(_, e)| e.stale = true),
            Input::Kinds(kinds) => {
                // Pending timers point into the old stage lists: drop them all and match
                // every object against the new stages.
                let keys: Vec<ObjKey> = self.entries.keys().cloned().collect();
                keys.iter().for_each(|k| self.cancel(k));
                self.ctx.kinds = kinds;
                keys.iter().for_each(|k| self.evaluate(k, None));
            }
            Input::Relisted(kind) => {
                if self.ctx.kinds[kind].role == Role::Pod && !self.pods_listed.0 {
                    self.pods_listed.0 = true;
                    self.ctx.pods_listed.send_modify(|n| *n += 1);
                }
                let gone: Vec<ObjKey> = self
                    .entries
                    .iter()
                    .filter(|(k, e)| k.kind == kind && e.stale)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in gone {
                    self.remove(&key);
                }
            }
        }
    }

    /// Every shard has the first list of pods: schedule their stages.
    fn all_pods_listed(&mut self) {
        self.pods_listed.1 = true;
        let pods: Vec<ObjKey> = self
            .entries
            .keys()
            .filter(|k| self.role(k) == Role::Pod)
            .cloned()
            .collect();
        tracing::debug!(
            shard = self.ctx.index,
            pods = pods.len(),
            "every shard has listed the pods"
        );
        pods.iter().for_each(|p| self.evaluate(p, None));
    }

    fn role(&self, key: &ObjKey) -> Role {
        self.ctx.kinds[key.kind].role
    }

    fn applied(&mut self, kind: usize, obj: JsonObject) {
        let Some(key) = ObjKey::of(kind, &obj.metadata) else {
            return;
        };
        let rv = obj.metadata.resource_version.as_deref().unwrap_or_default();
        let entry = self.entries.entry(key.clone()).or_default();
        entry.stale = false;
        // Our own write already told us this version, or a newer one of the same object
        // (the watch lags behind write responses): nothing new, nothing to parse.
        let same_object = entry.uid() == obj.metadata.uid.as_deref().unwrap_or_default();
        match version::order(rv, &entry.rv) {
            Order::Same if !rv.is_empty() => return,
            Order::Older if same_object => return,
            _ => {}
        }
        entry.rv = rv.to_owned();
        // Same name, new object (re-created while we missed the delete): start afresh.
        if entry.deleted && !same_object {
            entry.deleted = false;
        }
        entry.set(&obj, kind, &mut self.packers);
        let obj = obj.to_value();
        match self.role(&key) {
            Role::Node => self.node_applied(&key, &obj),
            Role::Pod => self.pod_applied(&key, &obj),
            Role::Other => {}
        }
        self.gauges.objects.set(self.entries.len() as i64);
        self.evaluate(&key, Some(obj));
    }

    fn node_applied(&mut self, key: &ObjKey, obj: &Value) {
        let managed = self.ctx.settings.manages_node(obj);
        let name = key.name.clone();
        let was = self.nodes.contains_key(&name);
        if managed {
            self.ips.observe_node(&name, obj);
        }
        let ready_changed = match managed && node_ready(obj) {
            true => self.ready_nodes.insert(name.clone()),
            false => self.ready_nodes.remove(&name),
        };
        if managed && !was {
            let uid = cache::str_at(obj, "/metadata/uid").to_owned();
            self.nodes
                .insert(name.clone(), self.waiting.remove(&name).unwrap_or_default());
            if let Some(leases) = &self.ctx.leases {
                let created = cache::str_at(obj, "/metadata/creationTimestamp").parse().ok();
                let _ = leases.send(LeaseMsg::Manage {
                    name: name.clone(),
                    uid,
                    fresh: created.is_some_and(|c: Timestamp| c >= self.ctx.start),
                });
            }
            let pods: Vec<ObjKey> = self.nodes[&name].iter().cloned().collect();
            pods.iter().for_each(|p| self.evaluate(p, None));
        } else if !managed && was {
            self.unmanage_node(&name);
        } else if ready_changed && was {
            // Readiness decides whether pods get theirs back (`kubelet`).
            let pods: Vec<ObjKey> = self.nodes[&name].iter().cloned().collect();
            pods.iter().for_each(|p| self.evaluate(p, None));
        }
        self.gauges.nodes.set(self.nodes.len() as i64);
    }

    fn unmanage_node(&mut self, name: &str) {
        let pods = self.nodes.remove(name).unwrap_or_default();
        for pod in &pods {
            self.cancel(pod);
        }
        self.waiting.insert(name.to_owned(), pods);
        self.held.remove(name);
        self.ips.forget_node(name);
        if let Some(leases) = &self.ctx.leases {
            let _ = leases.send(LeaseMsg::Release {
                name: name.to_owned(),
            });
        }
    }

    /// We took or lost a node's Lease: drive it and its pods, or leave them alone.
    fn lease_changed(&mut self, node: String, held: bool) {
        let changed = if held {
            self.held.insert(node.clone())
        } else {
            self.held.remove(&node)
        };
        if !changed {
            return;
        }
        tracing::info!(node = %node, held, "node lease changed hands");
        let key = ObjKey {
            kind: self.node_kind(),
            namespace: String::new(),
            name: node.clone(),
        };
        self.evaluate(&key, None);
        let pods: Vec<ObjKey> = self.nodes.get(&node).into_iter().flatten().cloned().collect();
        pods.iter().for_each(|p| self.evaluate(p, None));
    }

    /// Index of the Node kind (always watched).
    fn node_kind(&self) -> usize {
        self.ctx
            .kinds
            .iter()
            .position(|k| k.role == Role::Node)
            .expect("nodes are always watched")
    }

    /// Whether this controller drives node `name` now: managed, and its Lease ours
    /// when leases are on.
    fn drives_node(&self, name: &str) -> bool {
        self.nodes.contains_key(name) && (self.ctx.leases.is_none() || self.held.contains(name))
    }

    fn pod_applied(&mut self, key: &ObjKey, obj: &Value) {
        let Some(node) = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return;
        };
        let host_network = obj
            .pointer("/spec/hostNetwork")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let uid = cache::str_at(obj, "/metadata/uid");
        if let (false, Some(ip)) = (host_network, obj.pointer("/status/podIP").and_then(Value::as_str)) {
            self.ips.adopt_pod(&node, uid, ip);
        }
        match self.nodes.get_mut(&node) {
            Some(pods) => pods.insert(key.clone()),
            None => self.waiting.entry(node).or_default().insert(key.clone()),
        };
    }

    /// Whether the object behind `key` is driven by this controller now (before
    /// looking at the object's labels and annotations).
    fn owned(&self, key: &ObjKey, entry: &Entry) -> bool {
        match self.role(key) {
            Role::Node => self.drives_node(&key.name),
            Role::Pod => entry.node().is_some_and(|n| self.drives_node(n)),
            Role::Other => true,
        }
    }

    /// Matches stages for `key` and (re)schedules its timer. `obj` is the cached
    /// object when the caller has it parsed already; a stage due at once keeps it for
    /// its firing.
    fn evaluate(&mut self, key: &ObjKey, obj: Option<Value>) {
        self.evaluate_after(key, Duration::ZERO, obj);
    }

    /// As [`Self::evaluate`], firing no sooner than `at_least` from now.
    fn evaluate_after(&mut self, key: &ObjKey, at_least: Duration, obj: Option<Value>) {
        let Some(entry) = self.entries.get(key) else {
            return;
        };
        if entry.in_flight {
            self.entries.get_mut(key).expect("present").dirty = true;
            return;
        }
        if entry.deleted || (self.role(key) == Role::Pod && !self.pods_listed.1) {
            return;
        }
        if !self.owned(key, entry) {
            self.cancel(key);
            return;
        }
        let obj = match obj {
            Some(obj) => obj,
            None => entry.object(key.kind, &mut self.packers),
        };
        if self.ctx.settings.disregards(&obj) {
            self.cancel(key);
            return;
        }
        let kinds = self.ctx.kinds.clone();
        let lifecycle = &kinds[key.kind].lifecycle;
        let role = self.role(key);
        let entry = self.entries.get_mut(key).expect("present");
        let selected = lifecycle.select(&obj, &mut self.rng);
        for stage in lifecycle.stages() {
            report_query_failures(stage, &self.ctx.metrics);
        }
        let (index, delay) = match selected {
            Some(stage) => {
                let index = lifecycle
                    .stages()
                    .iter()
                    .position(|s| std::ptr::eq(s, stage))
                    .expect("stage of this lifecycle");
                if entry.timer.is_some_and(|(_, pending)| pending == index) {
                    return;
                }
                (index, stage.delay(&obj, self.now.wall, &mut self.rng))
            }
            // No stage wants the pod, and its readiness was taken away while its node
            // was not Ready: a kubelet reports it again once the node is back.
            None if role == Role::Pod
                && entry.node().is_some_and(|n| self.ready_nodes.contains(n))
                && kubelet::ready_taken_away(&obj) =>
            {
                if entry.timer.is_some_and(|(_, pending)| pending == KUBELET_RESTORE) {
                    return;
                }
                (KUBELET_RESTORE, RESTORE_READY_DELAY)
            }
            None => {
                self.cancel(key);
                return;
            }
        };
        let delay = delay.max(at_least);
        let when = self.clock.tick_after(self.now.mono, delay);
        let timer = match entry.timer {
            Some((timer, _)) if self.wheel.reset(timer, when) => timer,
            _ => self.wheel.insert(key.clone(), when),
        };
        entry.timer = Some((timer, index));
        match delay.is_zero() {
            true => entry.keep_parsed(obj),
            false => entry.drop_parsed(),
        }
    }

    fn cancel(&mut self, key: &ObjKey) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        entry.drop_parsed();
        if let Some((timer, _)) = entry.timer.take() {
            self.wheel.remove(timer);
        }
    }

    fn remove(&mut self, key: &ObjKey) {
        self.cancel(key);
        let Some(entry) = self.entries.remove(key) else {
            return;
        };
        match self.role(key) {
            Role::Node => {
                if self.nodes.contains_key(&key.name) {
                    self.unmanage_node(&key.name);
                }
                self.waiting.remove(&key.name);
                self.ready_nodes.remove(&key.name);
            }
            Role::Pod => {
                if !entry.uid().is_empty() {
                    self.ips.release_pod(entry.uid());
                }
                if let Some(node) = entry.node() {
                    self.nodes.get_mut(node).map(|p| p.remove(key));
                    self.waiting.get_mut(node).map(|p| p.remove(key));
                }
            }
            Role::Other => {}
        }
        self.gauges.nodes.set(self.nodes.len() as i64);
        self.gauges.objects.set(self.entries.len() as i64);
    }

    /// A stage timer fired: render the effects and send them.
    fn fire(&mut self, timer: wheel::Key, key: ObjKey) {
        let limit = self.write_limit();
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        let index = match entry.timer {
            Some((pending, index)) if pending == timer => index,
            _ => return,
        };
        if self.writes >= limit {
            // The timer left the wheel, but the entry keeps its key: evaluation sees
            // the stage as pending, and a cancel or a new stage makes the item stale.
            // A parsed object is not kept for a wait of unknown length.
            entry.drop_parsed();
            self.ready.push_back((timer, key));
            self.gauges.queue.inc();
            return;
        }
        entry.timer = None;
        let kinds = self.ctx.kinds.clone();
        let stage = (index != KUBELET_RESTORE).then(|| &kinds[key.kind].lifecycle.stages()[index]);
        let obj = match entry.take_parsed() {
            Some(obj) => obj,
            // Deleting (and finalizers, events) reads only the metadata: the rest of the
            // object is not parsed (parsing it was a tenth of kwok's CPU while `small`'s
            // pods were deleted). The kubelet's restore writes without reading.
            None if stage.is_none_or(|s| s.reads_metadata_only()) => {
                entry.metadata(key.kind, &mut self.packers)
            }
            None => entry.object(key.kind, &mut self.packers),
        };
        let settings = &self.ctx.settings;
        let host = RuntimeHost {
            now: self.now.wall,
            random: std::cell::Cell::new(self.rng.random()),
            start: self.ctx.start,
            node_name: &settings.node_name,
            node_ip: &settings.node_ip,
            node_port: settings.node_port,
            ips: RefCell::new(&mut self.ips),
            subject: (entry.node().unwrap_or_default(), entry.uid()),
        };
        let (name, mut effects) = match stage {
            Some(stage) => (stage.name(), stage.render(&obj, &host)),
            None => (kubelet::RESTORE_READY, vec![kubelet::restore_ready(host.now)]),
        };
        if effects.is_empty() {
            return;
        }
        let merged = batcher::coalesce(&mut effects);
        self.ctx.metrics.effects_merged.inc_by(merged as u64);
        self.ctx
            .metrics
            .transitions
            .get_or_create(&StageLabel {
                stage: name.to_owned(),
            })
            .inc();
        entry.in_flight = true;
        self.writes += 1;
        self.gauges.queue.inc();
        let kind = &kinds[key.kind];
        let target = Target {
            resource: kind.resource.clone(),
            namespace: kind.namespaced.then(|| key.namespace.clone()),
            name: key.name.clone(),
            // A write may wait long on a busy apiserver: it holds only what it reads.
            object: cache::metadata_only(obj),
        };
        // Exported only with --tracing-endpoint; otherwise a disabled span, built from nothing.
        let span = tracing::info_span!(
            target: crate::otel::TARGET,
            "stage",
            otel.name = %format_args!("{} {}", kind.resource.kind, name),
            kwok.stage = name,
            kwok.resource = %kind.resource.plural,
            kwok.name = %key.name,
            k8s.namespace.name = %key.namespace,
            kwok.effects = effects.len(),
        );
        let (writer, done) = (self.ctx.writer.clone(), self.done_tx.clone());
        let write = async move {
            let outcome = writer.execute(&target, &effects).await;
            let _ = done.send((key, outcome));
        };
        tokio::spawn(tracing::Instrument::instrument(write, span));
    }

    /// Writes this shard may keep in flight now: `--writes-in-flight`, or fewer while
    /// lease renewals fall behind (an expired lease makes the node NotReady and
    /// tainted, which costs the same apiserver far more than the writes held back).
    fn write_limit(&self) -> usize {
        let pressure = self.ctx.lease_pressure.as_ref().map(PressureGauge::get);
        let limit = self.ctx.settings.writes_in_flight;
        match pressure {
            None | Some(Pressure::Calm) => limit,
            Some(Pressure::Behind) => limit.min(WRITES_WHILE_LEASES_BEHIND),
            Some(Pressure::AtRisk) => limit.min(WRITES_WHILE_LEASES_AT_RISK),
        }
    }

    /// A write landed.
    fn written(&mut self, key: ObjKey, outcome: Outcome) {
        self.writes -= 1;
        self.gauges.queue.dec();
        self.landed(key, outcome);
        // A write slot is free: render what waited for one.
        while self.writes < self.write_limit() {
            let Some((timer, key)) = self.ready.pop_front() else {
                break;
            };
            self.gauges.queue.dec();
            self.fire(timer, key);
        }
    }

    fn landed(&mut self, key: ObjKey, outcome: Outcome) {
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        entry.in_flight = false;
        let dirty = std::mem::take(&mut entry.dirty);
        if outcome.gone {
            entry.deleted = true;
            return;
        }
        if outcome.failed {
            // Logged and counted by the writer; try the stage again, backing off
            // 1 s, 2 s, 4 s … up to a minute, so a refused write is not lost.
            entry.failures = entry.failures.saturating_add(1);
            let backoff = Duration::from_secs(1 << (entry.failures - 1).min(6)).min(MAX_RETRY_BACKOFF);
            self.evaluate_after(&key, backoff, None);
            return;
        }
        entry.failures = 0;
        let mut again = dirty || outcome.conflict;
        let mut fresh = None;
        if let Some(obj) = outcome.object {
            let rv = obj.metadata.resource_version.as_deref().unwrap_or_default();
            // A response newer than what the watch delivered is matched now (the watch
            // event for it will be skipped as already seen). One the watch has already
            // passed is dropped; one of unknown order too: the watch delivers that version
            // in its turn, while matching stale state could repeat the stage just written.
            if version::order(rv, &entry.rv) == Order::Newer {
                entry.rv = rv.to_owned();
                entry.set(&obj, key.kind, &mut self.packers);
                fresh = Some(obj.to_value());
                again = true;
            }
        }
        if let Some(obj) = &fresh {
            // What the write made (a node's readiness, a pod's IP) is known from here on:
            // the watch event of this version is skipped as seen.
            match self.role(&key) {
                Role::Node => self.node_applied(&key, obj),
                Role::Pod => self.pod_applied(&key, obj),
                Role::Other => {}
            }
        }
        if again {
            self.evaluate(&key, fresh);
        }
    }
}

/// Counts the run-time failures of `stage`'s selector keys since the last look (a failing
/// key matches nothing, silently, as in KWOK), and logs the first ones with the key.
fn report_query_failures(stage: &kwok_engine::stage::Stage, metrics: &Metrics) {
    let failed = stage.take_query_failures();
    if failed.count == 0 {
        return;
    }
    let label = StageLabel {
        stage: stage.name().to_owned(),
    };
    metrics.query_failures.get_or_create(&label).inc_by(failed.count);
    if failed.first {
        tracing::warn!(
            stage = stage.name(),
            key = failed.key.unwrap_or_default(),
            "a selector key failed at run time, so the stage did not match; \
             kwok_stage_query_failures_total counts further failures"
        );
    }
}

/// Whether a node's `Ready` condition is `True`.
fn node_ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ready_should_read_the_ready_condition() {
        let node = |status: &str| serde_json::json!({"status": {"conditions": [{"type": "Ready", "status": status}]}});
        assert!(node_ready(&node("True")));
        assert!(!node_ready(&node("Unknown")));
        assert!(!node_ready(&serde_json::json!({})));
    }
}
