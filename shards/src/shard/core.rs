//! The shard's synchronous, I/O-free core: [`Core::step`] takes one [`Event`] with the
//! time and a random source and returns what to do as [`Command`]s. It owns the cache,
//! the timer wheel, the IP pools and the write slots; the async runner (`mod.rs`)
//! owns the client, the channels and the clock, and feeds it.
//!
//! # Invariants
//! Checked with `debug_assert!` where they could break, and whole by
//! [`Core::check_invariants`] in the tests:
//! - An entry is [`State::Scheduled`] exactly while its timer is in the wheel; no other
//!   state has a timer, so a deleted or forgotten object never fires.
//! - At most one write per object is in flight: `writing` holds the keys with a write
//!   out, an entry is [`State::InFlight`] exactly when its key is there, and a stage
//!   fires only from `Scheduled` or `Ready`. An object removed while its write is out
//!   and seen again (re-created) comes back `InFlight { dirty: true }`, so it waits for
//!   that write to land.
//! - At most `write_limit` writes are started (`--writes-in-flight` for a lost node or
//!   a lapsed node's heartbeat, [`Core::limit_for`]); a stage due beyond that is
//!   [`State::Ready`] and its key waits in `ready`, or in `ready_lost` for those, which
//!   go first. A key may be in both (it was queued, then its node was lost); one whose
//!   entry is no longer `Ready` when popped is skipped, so it fires once.
//! - A pod whose node's pods are being fetched has no stage pending; a pod whose node
//!   the member table deals elsewhere is not cached unless we still drive the node. A
//!   pod not cached keeps the IP it holds until it is deleted (or found gone by a
//!   re-list), so no IP is handed out while its pod may still hold it.
//! - A write's result applies only to the object it was sent for (same uid, both the
//!   ticket's and the answered object's); its object replaces the cached one only if
//!   its resourceVersion is newer ([`version::order`]).

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use jiff::Timestamp;
use kwok_engine::{
    effect::Effect,
    error::RenderError,
    kubelet::{self, resource_health, resource_health::Report},
};
use prometheus_client::metrics::gauge::Gauge;
use rand::{Rng, rngs::SmallRng};
use serde_json::Value;

use super::{
    Input, Kind, Now, Role,
    cache::{self, Due, Entry, ObjKey, State},
    pack::Packers,
    query,
    version::{self, Order},
};
use crate::{
    batcher::{self, Outcome, Target},
    claims::ClaimIndex,
    host::{Ips, RuntimeHost, SharedIps},
    lease::{Dealt, Fence, LeaseMsg, Ownership, Pressure, WriteFence},
    metrics::{Metrics, ShardLabel, StageLabel},
    object::JsonObject,
    settings::Settings,
    wheel::{Clock, Wheel},
};

/// Timers fired per [`Event::TimersDue`] before the runner looks at its channels again,
/// so a burst of due timers cannot starve write results and events.
pub const FIRE_BATCH: usize = 256;

/// Longest wait before a stage whose write failed is tried again.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(60);

/// Writes in flight per shard while lease renewals are [`Pressure::Behind`]: few, so
/// renewals keep most of the apiserver and the pressure settles here rather than at
/// [`Pressure::AtRisk`] (measurements in the `lease` module's docs).
const WRITES_WHILE_LEASES_BEHIND: usize = 4;

/// Writes in flight per shard while lease renewals are [`Pressure::AtRisk`]: a trickle,
/// so stage work goes on instead of stopping while the renewals catch up.
const WRITES_WHILE_LEASES_AT_RISK: usize = 2;

/// How long a pod whose readiness the control plane took away waits before kwok
/// restores it, once its node is Ready: long enough for kube-controller-manager to see
/// the node Ready first, so that it does not take the pod's readiness away again.
const RESTORE_READY_DELAY: Duration = Duration::from_secs(1);

/// How long a pod's device health report waits for a claim not seen yet: the scheduler
/// allocates a claim before it binds the pod, but the claims' watch is another stream.
const CLAIM_WAIT: Duration = Duration::from_secs(1);

/// How soon a write held back by its fence ([`WriteFence`]) is tried again: a late
/// renewal that lands reopens the fence without telling the shards.
const FENCED_RETRY: Duration = Duration::from_secs(1);

/// What the core is fed.
#[derive(Debug)]
pub enum Event {
    /// A watch event (from the dispatcher).
    Watch(Input),
    /// A write finished.
    Written {
        /// What [`Command::Write`] carried.
        ticket: Ticket,
        /// How it went.
        outcome: Outcome,
    },
    /// We took or lost a node's Lease.
    Lease(Ownership),
    /// The wheel's next deadline has passed (see [`Core::next_deadline`]).
    TimersDue,
    /// Every shard has processed the first list of pods.
    AllPodsListed,
    /// How far behind lease renewals are now (`None`: leases are off).
    Pressure(Option<Pressure>),
    /// `--scale-out`: the live members now (us only while our member Lease is renewed).
    Members(Arc<[String]>),
    /// `--scale-out`: the member table deals a node to another member, or no longer.
    Dealt(Dealt),
    /// The pods of `node` as listed for [`Command::FetchPods`] of `generation`.
    PodsFetched {
        /// The node.
        node: String,
        /// The fetch's generation: a fetch cancelled since is not the one waited for.
        generation: u64,
        /// Its pods.
        pods: Vec<JsonObject>,
    },
}

/// Which write a result belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The object.
    pub key: ObjKey,
    /// Its uid when the write was sent: a result for an object since deleted and
    /// re-created under the same name is not the new object's.
    pub uid: Box<str>,
}

/// What the runner is to do.
#[derive(Debug)]
pub enum Command {
    /// Send a write (boxed: it is large and rare beside the other commands).
    Write(Box<Write>),
    /// Tell the lease worker.
    Lease(LeaseMsg),
    /// This shard has processed its first full list of pods.
    PodsListed,
    /// List the pods bound to `node`, no older than resourceVersion `not_older_than`
    /// (empty: a consistent read), retrying until it succeeds; report
    /// [`Event::PodsFetched`] with `generation`.
    FetchPods {
        /// The node.
        node: String,
        /// Returned with the pods.
        generation: u64,
        /// The newest pod resourceVersion the shard has seen.
        not_older_than: String,
    },
}

/// A fetch of one node's pods, out.
#[derive(Debug)]
struct Fetch {
    generation: u64,
    /// uids of the node's pods deleted while it is out: the list may be older.
    deleted: HashSet<Box<str>>,
}

/// Effects to send for an object, then report [`Event::Written`] with `ticket`.
#[derive(Debug)]
pub struct Write {
    /// Returned with the result.
    pub ticket: Ticket,
    /// What fired (for the trace span).
    pub due: Due,
    /// Where the effects go.
    pub target: Target,
    /// The effects, merged.
    pub effects: Vec<Effect>,
}

/// What a core starts with.
pub struct Config {
    /// Index of this shard (metrics labels).
    pub index: usize,
    /// The watched kinds (replaced by [`Input::Kinds`]).
    pub kinds: Arc<Vec<Kind>>,
    /// Resolved settings.
    pub settings: Arc<Settings>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Whether node leases are on (then only nodes whose Lease we hold are driven).
    pub leases: bool,
    /// With `--scale-out`: our member Lease's write fence.
    pub member_fence: Option<Fence>,
    /// The `--cidr` pool and the pod IP holders shared by all shards.
    pub shared_ips: Arc<Mutex<SharedIps>>,
    /// The ResourceClaims' allocations, shared by all shards.
    pub claims: Arc<ClaimIndex>,
    /// When the controller started.
    pub start: Timestamp,
}

/// The shard's state.
pub struct Core {
    index: usize,
    kinds: Arc<Vec<Kind>>,
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    leases: bool,
    member_fence: Option<Fence>,
    /// With `--scale-out`: the live members, among whom objects not bound to a node are
    /// dealt ([`kwok_members::owner_of`]); none known yet drives none of them.
    members: Arc<[String]>,
    start: Timestamp,
    entries: HashMap<ObjKey, Entry>,
    /// Compression of the entries' objects, per kind.
    packers: Packers,
    /// Managed nodes of this shard → pods bound to them.
    nodes: HashMap<String, HashSet<ObjKey>>,
    /// Managed nodes whose Lease we hold, with the Lease's write fence (only consulted
    /// when leases are on): a node whose lease another controller holds is left alone.
    held: HashMap<String, Fence>,
    /// Pods seen on nodes not (yet) managed, by node name.
    waiting: HashMap<String, HashSet<ObjKey>>,
    /// `--scale-out`: managed nodes the member table deals to another live member.
    /// While another kwok drives them their pods are not cached, only the IP each
    /// holds stays taken: with N members, (N-1)/N of the pods.
    elsewhere: HashSet<String>,
    /// Nodes some of whose pods were not cached ([`Self::elsewhere`]): fetched whole
    /// (one list by `spec.nodeName`, as a kubelet lists) before we drive them.
    dropped: HashSet<String>,
    /// Fetches of a node's pods out, by node: its pods' stages wait for it, since a pod
    /// given an IP before the node's other pods are known could take one of theirs.
    fetches: HashMap<String, Fetch>,
    /// Generations of fetches made so far.
    fetched: u64,
    /// The newest pod resourceVersion seen (watch events and our writes' answers): a
    /// fetch lists nothing older, so it holds every change of the pods not cached.
    /// Empty when a resourceVersion was not a number: the fetch is a consistent read.
    pods_rv: String,
    /// uids of the pods known to exist but not cached (their node dealt elsewhere):
    /// the IPs they hold stay taken until they are deleted.
    uncached: HashSet<Box<str>>,
    /// During a re-list of pods: the `uncached` pods not seen again yet. Those left
    /// when it ends were deleted while the watch was away, and their IPs are freed.
    uncached_unseen: Option<HashSet<Box<str>>>,
    /// Managed nodes whose last seen `Ready` condition is `True`.
    ready_nodes: HashSet<String>,
    /// The ResourceClaims' allocations, shared by all shards: the pods' DRA devices.
    claims: Arc<ClaimIndex>,
    /// Managed nodes' `kwok.x-k8s.io/gpus-tainted` annotations, where set: which of
    /// their GPUs their pods report unhealthy.
    gpus_tainted: HashMap<String, Box<str>>,
    /// Managed nodes whose last seen `Ready` condition is there but not `True`: the
    /// control plane marked them lost (their heartbeats stopped), and a write of their
    /// status is the recovery itself (see [`Core::limit_for`]).
    lost_nodes: HashSet<String>,
    /// Whether this shard, and every shard, has processed the first list of pods.
    ///
    /// Until then no pod stage is scheduled: a pod without an IP rendered before the
    /// list is done could get an address that a pod listed later holds (the pools are
    /// rebuilt from the pods as they are listed, and `--cidr`'s pool is shared by all
    /// shards).
    pods_listed: (bool, bool),
    wheel: Wheel<ObjKey>,
    /// Maps the monotonic clock to the wheel's millisecond ticks.
    clock: Clock,
    ips: Ips,
    /// Objects with a write out (module invariants).
    writing: HashSet<ObjKey>,
    /// Writes this shard may start now.
    write_limit: usize,
    /// Objects whose stage came due while every write slot was taken, oldest first.
    ready: VecDeque<ObjKey>,
    /// Lost nodes whose status write came due while every slot was taken: they take
    /// the next free slot, before `ready` (see [`Core::limit_for`]).
    ready_lost: VecDeque<ObjKey>,
    /// The time of the event being handled (from [`Core::step`]).
    now: Now,
    /// Commands of the step being taken.
    out: Vec<Command>,
    gauges: Gauges,
}

struct Gauges {
    nodes: Gauge,
    objects: Gauge,
    pending: Gauge,
    queue: Gauge,
}

impl Core {
    /// A core with nothing cached; the wheel's ticks count from `now`.
    pub fn new(config: Config, now: Now) -> Self {
        let label = ShardLabel {
            shard: config.index.to_string(),
        };
        let metrics = &config.metrics;
        let gauges = Gauges {
            nodes: metrics.managed_nodes.get_or_create_owned(&label),
            objects: metrics.managed_objects.get_or_create_owned(&label),
            pending: metrics.pending_timers.get_or_create_owned(&label),
            queue: metrics.queue_depth.get_or_create_owned(&label),
        };
        Self {
            index: config.index,
            ips: Ips::new(config.shared_ips, config.settings.node_ip.clone()),
            write_limit: config.settings.writes_in_flight,
            kinds: config.kinds,
            settings: config.settings,
            metrics: config.metrics,
            leases: config.leases,
            member_fence: config.member_fence,
            members: Arc::from([]),
            start: config.start,
            entries: HashMap::new(),
            packers: Packers::default(),
            nodes: HashMap::new(),
            held: HashMap::new(),
            waiting: HashMap::new(),
            elsewhere: HashSet::new(),
            dropped: HashSet::new(),
            fetches: HashMap::new(),
            fetched: 0,
            pods_rv: String::new(),
            uncached: HashSet::new(),
            uncached_unseen: None,
            ready_nodes: HashSet::new(),
            claims: config.claims,
            gpus_tainted: HashMap::new(),
            lost_nodes: HashSet::new(),
            pods_listed: (false, false),
            wheel: Wheel::with_capacity(1024),
            clock: Clock::new(now.mono),
            writing: HashSet::new(),
            ready: VecDeque::new(),
            ready_lost: VecDeque::new(),
            now,
            out: Vec::new(),
            gauges,
        }
    }

    /// Handles `event` at `now`, drawing any randomness (stage choice, delays, template
    /// functions) from `rng`; returns what to do.
    pub fn step(&mut self, event: Event, now: Now, rng: &mut SmallRng) -> Vec<Command> {
        self.now = now;
        match event {
            Event::Watch(input) => self.handle(input, rng),
            Event::Written { ticket, outcome } => self.written(ticket, outcome, rng),
            Event::Lease(ownership) => self.lease_changed(ownership, rng),
            Event::TimersDue => self.fire_due(rng),
            Event::AllPodsListed => self.all_pods_listed(rng),
            Event::Members(members) => self.members_changed(members, rng),
            Event::Dealt(dealt) => self.dealt(dealt),
            Event::PodsFetched {
                node,
                generation,
                pods,
            } => self.pods_fetched(node, generation, pods, rng),
            Event::Pressure(pressure) => {
                self.write_limit = write_limit(self.settings.writes_in_flight, pressure)
            }
        }
        self.gauges.pending.set(self.wheel.len() as i64);
        std::mem::take(&mut self.out)
    }

    /// The clock the wheel counts by, and the tick of its next timer: when to send
    /// [`Event::TimersDue`].
    pub fn next_deadline(&self) -> (&Clock, Option<u64>) {
        (&self.clock, self.wheel.next_deadline())
    }

    /// The watched kinds.
    pub fn kinds(&self) -> &Arc<Vec<Kind>> {
        &self.kinds
    }

    /// Whether this shard has processed its first list of pods, and whether every
    /// shard has.
    pub fn pods_listed(&self) -> (bool, bool) {
        self.pods_listed
    }

    /// Answers a question about the managed nodes from the cache.
    pub fn answer(&mut self, query: query::Query) {
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
    fn fire_due(&mut self, rng: &mut SmallRng) {
        let now = self.clock.now_tick(self.now.mono);
        for _ in 0..FIRE_BATCH {
            let Some(expired) = self.wheel.poll_expired(now) else {
                return;
            };
            let key = expired.value;
            let state = self.entries.get(&key).map(|e| e.state);
            let Some(State::Scheduled { timer, due }) = state else {
                debug_assert!(false, "a timer in the wheel for {key:?}, which is {state:?}");
                continue;
            };
            debug_assert_eq!(timer, expired.key, "the entry names its timer");
            let entry = self.entries.get_mut(&key).expect("present");
            entry.state = State::Idle;
            self.fire(key, due, rng);
        }
    }

    fn handle(&mut self, input: Input, rng: &mut SmallRng) {
        match input {
            Input::Applied { kind, obj } => self.applied(kind, *obj, rng),
            Input::Deleted { kind, obj } => {
                let uid = obj.metadata.uid.as_deref().unwrap_or_default();
                let Some(key) = ObjKey::of(kind, &obj.metadata) else {
                    return;
                };
                if self.kinds[kind].role == Role::Pod {
                    self.pod_seen(obj.metadata.resource_version.as_deref().unwrap_or_default());
                    if let Some(fetch) = obj.node_name.as_deref().and_then(|n| self.fetches.get_mut(n)) {
                        fetch.deleted.insert(uid.into());
                    }
                    // Not cached (its node dealt elsewhere): the IP it held is free.
                    if self.uncached.remove(uid) {
                        self.ips.release_pod(uid);
                    }
                    // A fetch may have cached a newer pod of the same name before this
                    // (older) event came off the watch: that one stays.
                    let other = |e: &Entry| !e.uid().is_empty() && !uid.is_empty() && e.uid() != uid;
                    if self.entries.get(&key).is_some_and(other) {
                        return;
                    }
                }
                self.remove(&key);
            }
            Input::Relisting(kind) => {
                self.entries
                    .iter_mut()
                    .filter(|(k, _)| k.kind == kind)
                    .for_each(|(_, e)| e.stale = true);
                if self.kinds[kind].role == Role::Pod {
                    self.uncached_unseen = Some(self.uncached.clone());
                    // A list out now may be answered from before pods deleted while
                    // the watch was away: asked again, its answer ignored.
                    let nodes: Vec<String> = self.fetches.keys().cloned().collect();
                    for node in nodes {
                        self.fetches.remove(&node);
                        self.fetch_if_dropped(&node);
                    }
                }
            }
            Input::Kinds(kinds) => {
                // Pending stages point into the old stage lists: drop them all and match
                // every object against the new stages.
                let keys: Vec<ObjKey> = self.entries.keys().cloned().collect();
                keys.iter().for_each(|k| self.cancel(k));
                self.kinds = kinds;
                keys.iter().for_each(|k| self.evaluate(k, None, rng));
            }
            Input::Relisted(kind) => {
                if self.kinds[kind].role == Role::Pod && !self.pods_listed.0 {
                    self.pods_listed.0 = true;
                    self.out.push(Command::PodsListed);
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
                if self.kinds[kind].role == Role::Pod {
                    for uid in self.uncached_unseen.take().into_iter().flatten() {
                        self.uncached.remove(&uid);
                        self.ips.release_pod(&uid);
                    }
                }
            }
        }
    }

    /// Every shard has the first list of pods: schedule their stages.
    fn all_pods_listed(&mut self, rng: &mut SmallRng) {
        if self.pods_listed.1 {
            return;
        }
        self.pods_listed.1 = true;
        let pods = self.keys_of(Role::Pod);
        tracing::debug!(
            shard = self.index,
            pods = pods.len(),
            "every shard has listed the pods"
        );
        pods.iter().for_each(|p| self.evaluate(p, None, rng));
    }

    fn role(&self, key: &ObjKey) -> Role {
        self.kinds[key.kind].role
    }

    /// The keys of the cached objects of kinds in `role`.
    fn keys_of(&self, role: Role) -> Vec<ObjKey> {
        self.entries
            .keys()
            .filter(|k| self.role(k) == role)
            .cloned()
            .collect()
    }

    fn applied(&mut self, kind: usize, obj: JsonObject, rng: &mut SmallRng) {
        let Some(key) = ObjKey::of(kind, &obj.metadata) else {
            return;
        };
        let rv = obj.metadata.resource_version.as_deref().unwrap_or_default();
        if self.role(&key) == Role::Pod {
            self.pod_seen(rv);
            let uid = obj.metadata.uid.as_deref().unwrap_or_default();
            if let Some(unseen) = &mut self.uncached_unseen {
                unseen.remove(uid);
            }
            if let Some(node) = obj.node_name.as_deref()
                && self.elsewhere.contains(node)
                && !self.drives_node(node)
            {
                let node = node.to_owned();
                return self.drop_pod(&key, &node, &obj);
            }
            // Empty but with `--scale-out`: no hashing per pod event otherwise.
            if !self.uncached.is_empty() {
                self.uncached.remove(uid);
            }
        }
        let writing = self.writing.contains(&key);
        let entry = self.entries.entry(key.clone()).or_insert_with(|| match writing {
            // Removed while its write was out, now seen again: that write must land
            // before another starts.
            true => Entry::with_state(State::InFlight { dirty: true }),
            false => Entry::default(),
        });
        entry.stale = false;
        // Our own write already told us this version, or a newer one of the same object
        // (the watch lags behind write responses): nothing new, nothing to parse.
        let same_object = entry.uid() == obj.metadata.uid.as_deref().unwrap_or_default();
        match version::order(rv, &entry.rv) {
            Order::Same if !rv.is_empty() => return,
            // Of this object, or of one this name had before: an event still queued
            // behind a fetched list (or our write's answer) of a newer one.
            Order::Older => return,
            _ => {}
        }
        entry.rv = rv.to_owned();
        // Same name, new object (re-created while we missed the delete): start afresh.
        if entry.state == State::Deleted && !same_object {
            entry.state = State::Idle;
        }
        entry.set(&obj, kind, &mut self.packers);
        // A pod on a node not driven here (yet: its Lease is not ours, or no kwok here):
        // cached and indexed under its node for the day we take the node over (its IP is
        // adopted then), but not parsed. (Dealt to another member: not even cached, above.)
        // When the node has no podCIDR, the pod's `--cidr` address is read (and only
        // it): such addresses are adopted whoever drives the node, so that the next
        // holder of the IP slot it came from does not hand it out again.
        if self.leases
            && self.role(&key) == Role::Pod
            && let Some(node) = obj.node_name.as_deref()
            && !self.drives_node(node)
        {
            self.seen_not_driven(node, &obj);
            self.index_pod(&key, node);
            self.gauges.objects.set(self.entries.len() as i64);
            // Cancels a timer left from when we drove the node; parses nothing.
            return self.evaluate(&key, None, rng);
        }
        let obj = obj.to_value();
        match self.role(&key) {
            Role::Node => self.node_applied(&key, &obj, rng),
            Role::Pod => self.pod_applied(&key, &obj),
            Role::Other => {
                if ClaimIndex::indexes(&self.kinds[kind].resource) {
                    self.claims.applied(&key.namespace, &key.name, &obj);
                }
            }
        }
        self.gauges.objects.set(self.entries.len() as i64);
        // Written last by the replica that held the node before us (its write landed
        // after our takeover, or our cache saw the node Ready only now).
        let advertise = self.role(&key) == Role::Node && self.advertises_another(&key.name, &obj);
        self.evaluate(&key, Some(obj), rng);
        if advertise {
            self.heartbeat_now(&key);
        }
    }

    fn node_applied(&mut self, key: &ObjKey, obj: &Value, rng: &mut SmallRng) {
        let managed = self.settings.manages_node(obj);
        let name = key.name.clone();
        let was = self.nodes.contains_key(&name);
        if managed {
            self.ips.observe_node(&name, obj);
        }
        let ready = node_ready(obj);
        let tainted = obj
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(resource_health::GPUS_TAINTED))
            .and_then(Value::as_str)
            .filter(|t| managed && !t.is_empty());
        let gpus_tainted_changed = match tainted {
            Some(t) => self.gpus_tainted.insert(name.clone(), t.into()).as_deref() != Some(t),
            None => self.gpus_tainted.remove(&name).is_some(),
        };
        let ready_changed = match managed && ready == Some(true) {
            true => self.ready_nodes.insert(name.clone()),
            false => self.ready_nodes.remove(&name),
        };
        let newly_lost = match managed && ready == Some(false) {
            true => self.lost_nodes.insert(name.clone()),
            false => {
                self.lost_nodes.remove(&name);
                false
            }
        };
        if newly_lost && matches!(self.entries.get(key).map(|e| e.state), Some(State::Ready { .. })) {
            // Queued before it was lost: it now goes first (the other place is skipped).
            self.ready_lost.push_back(key.clone());
            self.gauges.queue.inc();
        }
        if managed && !was {
            let uid = cache::str_at(obj, "/metadata/uid").to_owned();
            self.nodes
                .insert(name.clone(), self.waiting.remove(&name).unwrap_or_default());
            if self.leases {
                let created = cache::str_at(obj, "/metadata/creationTimestamp").parse().ok();
                self.out.push(Command::Lease(LeaseMsg::Manage {
                    name: name.clone(),
                    uid,
                    fresh: created.is_some_and(|c: Timestamp| c >= self.start),
                }));
            }
            let pods = self.pods_of(&name);
            pods.iter().for_each(|p| self.evaluate(p, None, rng));
        } else if !managed && was {
            self.unmanage_node(&name);
        } else if (ready_changed || gpus_tainted_changed) && was {
            // Readiness decides whether pods get theirs back, the tainted GPUs what
            // they report of their devices (`kubelet`).
            let pods = self.pods_of(&name);
            pods.iter().for_each(|p| self.evaluate(p, None, rng));
        }
        self.gauges.nodes.set(self.nodes.len() as i64);
    }

    fn unmanage_node(&mut self, name: &str) {
        let pods = self.nodes.remove(name).unwrap_or_default();
        for pod in &pods {
            self.cancel(pod);
        }
        if !pods.is_empty() {
            self.waiting.insert(name.to_owned(), pods);
        }
        self.held.remove(name);
        self.elsewhere.remove(name);
        self.fetches.remove(name);
        self.ips.forget_node(name);
        if self.leases {
            self.out.push(Command::Lease(LeaseMsg::Release {
                name: name.to_owned(),
            }));
        }
    }

    /// We took or lost a node's Lease: drive it and its pods, or leave them alone. A
    /// Ready node sends its status heartbeat first when its Lease lapsed, or when it
    /// advertises another replica's kubelet port (see [`kubelet::node_heartbeat`]).
    fn lease_changed(&mut self, ownership: Ownership, rng: &mut SmallRng) {
        let Ownership { node, fence, lapsed } = ownership;
        let held = fence.is_some();
        let changed = match fence {
            // A new fence for a node held already (released and managed again) is
            // simply the one to check from now on.
            Some(fence) => self.held.insert(node.clone(), fence).is_none(),
            None => self.held.remove(&node).is_some(),
        };
        if !changed {
            return;
        }
        tracing::info!(node = %node, held, "node lease changed hands");
        if held {
            // Its pods were cached unparsed while another kwok drove it: their IPs are
            // taken before any of them is given one. Pods not cached are fetched first.
            self.adopt_ips(&node);
            self.fetch_if_dropped(&node);
        } else if self.elsewhere.contains(&node) {
            self.drop_pods(&node);
        }
        let key = ObjKey {
            kind: self.node_kind(),
            namespace: String::new(),
            name: node.clone(),
        };
        self.evaluate(&key, None, rng);
        let beat =
            held && self.ready_nodes.contains(&node) && (lapsed || self.cached_advertises_another(&key));
        if beat {
            self.heartbeat_now(&key);
        }
        let pods = self.pods_of(&node);
        pods.iter().for_each(|p| self.evaluate(p, None, rng));
    }

    /// With `--scale-out`: whether `node`, Ready and held by us, advertises a kubelet
    /// port other than ours in `obj` (its status was last written by another replica).
    /// A single kwok leaves the port to its stages, as upstream's does.
    fn advertises_another(&self, node: &str, obj: &Value) -> bool {
        self.port_checked(node) && kubelet::advertised_port(obj) != self.settings.node_port
    }

    /// [`Self::advertises_another`] for the cached node `key`, parsed only when its port
    /// is checked at all (with `--scale-out`).
    fn cached_advertises_another(&mut self, key: &ObjKey) -> bool {
        if !self.port_checked(&key.name) {
            return false;
        }
        let Some(entry) = self.entries.get(key) else {
            return false;
        };
        kubelet::advertised_port(&entry.object(key.kind, &mut self.packers)) != self.settings.node_port
    }

    /// Whether the kubelet port `node` advertises is ours to keep right: with
    /// `--scale-out` and a port, for a Ready node we hold.
    fn port_checked(&self, node: &str) -> bool {
        self.member_fence.is_some()
            && self.settings.node_port != 0
            && self.held.contains_key(node)
            && self.ready_nodes.contains(node)
    }

    /// Fires node `key`'s status heartbeat at once, in place of the stage it waits for
    /// (matched again when the heartbeat lands). A node with a write queued or out is
    /// left to it: that write lands a status too, or the stage after it does.
    fn heartbeat_now(&mut self, key: &ObjKey) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        let when = self.clock.tick_after(self.now.mono, Duration::ZERO);
        let timer = match entry.state {
            State::Scheduled { timer, .. } => {
                let reset = self.wheel.reset(timer, when);
                debug_assert!(reset, "a Scheduled entry's timer is in the wheel");
                timer
            }
            State::Idle => self.wheel.insert(key.clone(), when),
            State::Ready { .. } | State::InFlight { .. } | State::Deleted => return,
        };
        entry.drop_parsed();
        entry.state = State::Scheduled {
            timer,
            due: Due::Heartbeat,
        };
    }

    /// Index of the Node kind (always watched).
    fn node_kind(&self) -> usize {
        self.kinds
            .iter()
            .position(|k| k.role == Role::Node)
            .expect("nodes are always watched")
    }

    /// Whether this controller drives node `name` now: managed, and its Lease ours
    /// when leases are on.
    fn drives_node(&self, name: &str) -> bool {
        self.nodes.contains_key(name) && (!self.leases || self.held.contains_key(name))
    }

    /// Adopts the IPs of the cached pods of node `node`.
    fn adopt_ips(&mut self, node: &str) {
        let Some(pods) = self.nodes.get(node) else { return };
        for key in pods {
            let Some(entry) = self.entries.get(key) else {
                continue;
            };
            let obj = entry.object(key.kind, &mut self.packers);
            adopt_ip(&mut self.ips, node, entry.uid(), &obj);
        }
    }

    /// Files pod `key` under node `node`: managed, or waiting until it is.
    fn index_pod(&mut self, key: &ObjKey, node: &str) {
        match self.nodes.get_mut(node) {
            Some(pods) => pods.insert(key.clone()),
            None => self
                .waiting
                .entry(node.to_owned())
                .or_default()
                .insert(key.clone()),
        };
    }

    /// The keys of managed node `node`'s pods (none if it is not managed), taken out so
    /// that each can be handled with `&mut self`.
    fn pods_of(&self, node: &str) -> Vec<ObjKey> {
        self.nodes.get(node).into_iter().flatten().cloned().collect()
    }

    /// Takes pod `key` off node `node`'s index (and drops an empty waiting list).
    fn unindex_pod(&mut self, key: &ObjKey, node: &str) {
        if let Some(pods) = self.nodes.get_mut(node) {
            pods.remove(key);
        }
        if let Some(pods) = self.waiting.get_mut(node) {
            pods.remove(key);
            if pods.is_empty() {
                self.waiting.remove(node);
            }
        }
    }

    fn pod_applied(&mut self, key: &ObjKey, obj: &Value) {
        let Some(node) = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return;
        };
        adopt_ip(&mut self.ips, &node, cache::str_at(obj, "/metadata/uid"), obj);
        self.index_pod(key, &node);
    }

    /// A pod event seen at resourceVersion `rv`.
    fn pod_seen(&mut self, rv: &str) {
        match version::order(rv, &self.pods_rv) {
            // Reuses the buffer: one pod event after another.
            Order::Newer => {
                self.pods_rv.clear();
                self.pods_rv.push_str(rv);
            }
            // Not a number (or none seen yet, which `Newer` covers): no bound to give.
            Order::Unknown if !rv.is_empty() => self.pods_rv.clear(),
            _ => {}
        }
    }

    /// Pod `key` on `node`, which the table deals to another member, changed: not
    /// cached (and forgotten if it was); only the IP it holds stays taken.
    fn drop_pod(&mut self, key: &ObjKey, node: &str, obj: &JsonObject) {
        self.seen_not_driven(node, obj);
        self.forget_pod(key);
        if let Some(uid) = obj.metadata.uid.as_deref().filter(|u| !u.is_empty()) {
            self.uncached.insert(uid.into());
        }
        self.dropped.insert(node.to_owned());
        self.gauges.objects.set(self.entries.len() as i64);
    }

    /// A pod on `node`, not driven here, changed: its `--cidr` address (when the node has
    /// no podCIDR) is taken, read without parsing the rest, and the event counted.
    fn seen_not_driven(&mut self, node: &str, obj: &JsonObject) {
        if !self.ips.has_node_pool(node)
            && let Some(ip) = pod_address(&obj.text)
        {
            self.ips
                .adopt_pod(node, obj.metadata.uid.as_deref().unwrap_or_default(), &ip);
        }
        self.metrics.events_not_driven.inc();
        self.metrics.bytes_not_driven.inc_by(obj.text.len() as u64);
    }

    /// Forgets the cached pods of `node`, dealt to another member and not driven here.
    fn drop_pods(&mut self, node: &str) {
        let pods = self.pods_of(node);
        if pods.is_empty() {
            return;
        }
        tracing::debug!(
            node,
            pods = pods.len(),
            "node dealt to another member: its pods are not cached"
        );
        pods.iter().for_each(|key| self.forget_pod(key));
        self.dropped.insert(node.to_owned());
        self.gauges.objects.set(self.entries.len() as i64);
    }

    /// Removes pod `key` from the cache. Unlike a deleted pod's, the IP it holds stays
    /// taken (until it is deleted): a write of ours handing it out may still be out, or
    /// landed and not yet in a list.
    fn forget_pod(&mut self, key: &ObjKey) {
        self.cancel(key);
        let Some(entry) = self.entries.remove(key) else {
            return;
        };
        // Its version may be our write's answer, newer than any watch event.
        let rv = entry.rv.clone();
        self.pod_seen(&rv);
        if !entry.uid().is_empty() {
            self.uncached.insert(entry.uid().into());
        }
        if let Some(node) = entry.node() {
            self.unindex_pod(key, node);
        }
    }

    /// The table deals `node` to another member, or no longer: stop caching its pods,
    /// or fetch them.
    fn dealt(&mut self, dealt: Dealt) {
        let Dealt { node, elsewhere } = dealt;
        match elsewhere {
            true if self.nodes.contains_key(&node) => {
                self.elsewhere.insert(node.clone());
                // Held still (the lease worker lets go first, so not expected): its
                // pods are dropped when it does.
                if !self.drives_node(&node) {
                    self.fetches.remove(&node);
                    self.drop_pods(&node);
                }
            }
            true => {}
            false => {
                self.elsewhere.remove(&node);
                self.fetch_if_dropped(&node);
            }
        }
    }

    /// Fetches `node`'s pods if some were not cached; until they are in, none of its
    /// pods' stages is scheduled.
    fn fetch_if_dropped(&mut self, node: &str) {
        if !self.dropped.contains(node) || self.fetches.contains_key(node) || self.elsewhere.contains(node) {
            return;
        }
        self.fetched += 1;
        let generation = self.fetched;
        self.fetches.insert(
            node.to_owned(),
            Fetch {
                generation,
                deleted: HashSet::new(),
            },
        );
        self.metrics.node_pod_fetches.inc();
        let pods = self.pods_of(node);
        pods.iter().for_each(|key| self.cancel(key));
        self.out.push(Command::FetchPods {
            node: node.to_owned(),
            generation,
            not_older_than: self.pods_rv.clone(),
        });
    }

    /// The pods of `node` are in: cached as if watched (but for those deleted while the
    /// list was out), and matched.
    fn pods_fetched(&mut self, node: String, generation: u64, pods: Vec<JsonObject>, rng: &mut SmallRng) {
        if self.fetches.get(&node).is_none_or(|f| f.generation != generation) {
            return;
        }
        let Some(kind) = self.kinds.iter().position(|k| k.role == Role::Pod) else {
            return;
        };
        tracing::debug!(node, pods = pods.len(), "fetched the pods of a node dealt to us");
        for obj in pods {
            let deleted = obj
                .metadata
                .uid
                .as_deref()
                .is_some_and(|uid| self.fetches[&node].deleted.contains(uid));
            if !deleted && obj.node_name.as_deref() == Some(node.as_str()) {
                self.applied(kind, obj, rng);
            }
        }
        self.fetches.remove(&node);
        self.dropped.remove(&node);
        let pods = self.pods_of(&node);
        pods.iter().for_each(|p| self.evaluate(p, None, rng));
    }

    /// Whether the object behind `key` is driven by this controller now (before
    /// looking at the object's labels and annotations).
    fn owned(&self, key: &ObjKey, entry: &Entry) -> bool {
        match self.role(key) {
            Role::Node => self.drives_node(&key.name),
            Role::Pod => entry.node().is_some_and(|n| self.drives_node(n)),
            Role::Other => self.drives_other(key),
        }
    }

    /// Whether we drive an object not bound to a node: always, but with `--scale-out`
    /// only the objects the member table gives us (each to one member).
    fn drives_other(&self, key: &ObjKey) -> bool {
        if self.member_fence.is_none() {
            return true;
        }
        let name = format!("{}/{}", key.namespace, key.name);
        kwok_members::owner_of(&self.members, &name) == Some(self.settings.id.as_str())
    }

    /// The live members changed: objects not bound to a node are matched again, so the
    /// ones dealt to us start and the others stop.
    fn members_changed(&mut self, members: Arc<[String]>, rng: &mut SmallRng) {
        self.members = members;
        let others = self.keys_of(Role::Other);
        others.iter().for_each(|key| self.evaluate(key, None, rng));
    }

    /// Matches stages for `key` and (re)schedules its timer. `obj` is the cached
    /// object when the caller has it parsed already; a stage due at once keeps it for
    /// its firing.
    fn evaluate(&mut self, key: &ObjKey, obj: Option<Value>, rng: &mut SmallRng) {
        self.evaluate_after(key, Duration::ZERO, obj, rng);
    }

    /// As [`Self::evaluate`], firing no sooner than `at_least` from now.
    fn evaluate_after(&mut self, key: &ObjKey, at_least: Duration, obj: Option<Value>, rng: &mut SmallRng) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        match entry.state {
            State::InFlight { .. } => {
                // Matched again when the write lands, on what it returns.
                entry.state = State::InFlight { dirty: true };
                return;
            }
            State::Deleted => return,
            State::Idle | State::Scheduled { .. } | State::Ready { .. } => {}
        }
        let entry = &self.entries[key];
        if self.role(key) == Role::Pod && !self.pods_listed.1 {
            return;
        }
        if self.role(key) == Role::Pod && entry.node().is_some_and(|n| self.fetches.contains_key(n)) {
            self.cancel(key);
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
        if self.settings.disregards(&obj) {
            self.cancel(key);
            return;
        }
        let kinds = self.kinds.clone();
        let lifecycle = &kinds[key.kind].lifecycle;
        let role = self.role(key);
        let entry = self.entries.get_mut(key).expect("present");
        let selected = lifecycle.select(&obj, rng);
        for stage in lifecycle.stages() {
            report_query_failures(stage, &self.metrics);
        }
        // What a kubelet reports of the pod's DRA devices, when no stage wants it.
        let health = match (selected.is_none() && role == Role::Pod, entry.node()) {
            (true, Some(node)) if self.ready_nodes.contains(node) => {
                health_report_due(&obj, node, &self.gpus_tainted, &self.claims, &kinds)
            }
            _ => None,
        };
        let (due, delay) = match selected {
            Some(stage) => {
                let index = lifecycle
                    .stages()
                    .iter()
                    .position(|s| std::ptr::eq(s, stage))
                    .expect("stage of this lifecycle");
                if entry.state.due() == Some(Due::Stage(index)) {
                    return;
                }
                (Due::Stage(index), stage.delay(&obj, self.now.wall, rng))
            }
            // No stage wants the pod, and its readiness was taken away while its node
            // was not Ready: a kubelet reports it again once the node is back.
            None if role == Role::Pod
                && entry.node().is_some_and(|n| self.ready_nodes.contains(n))
                && kubelet::ready_taken_away(&obj) =>
            {
                if entry.state.due() == Some(Due::RestoreReady) {
                    return;
                }
                (Due::RestoreReady, RESTORE_READY_DELAY)
            }
            None if let Some(delay) = health => {
                if entry.state.due() == Some(Due::ResourceHealth) {
                    return;
                }
                (Due::ResourceHealth, delay)
            }
            None => {
                self.cancel(key);
                return;
            }
        };
        let delay = delay.max(at_least);
        let when = self.clock.tick_after(self.now.mono, delay);
        let timer = match entry.state {
            State::Scheduled { timer, .. } => {
                let reset = self.wheel.reset(timer, when);
                debug_assert!(reset, "a Scheduled entry's timer is in the wheel");
                match reset {
                    true => timer,
                    false => self.wheel.insert(key.clone(), when),
                }
            }
            // A Ready entry's key stays in the ready queue and is skipped there.
            State::Idle | State::Ready { .. } | State::InFlight { .. } | State::Deleted => {
                debug_assert!(
                    matches!(entry.state, State::Idle | State::Ready { .. }),
                    "returned above"
                );
                self.wheel.insert(key.clone(), when)
            }
        };
        entry.state = State::Scheduled { timer, due };
        match delay.is_zero() {
            true => entry.keep_parsed(obj),
            false => entry.drop_parsed(),
        }
    }

    /// Drops a pending stage of `key` (scheduled or waiting for a slot), if any.
    fn cancel(&mut self, key: &ObjKey) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        entry.drop_parsed();
        match entry.state {
            State::Scheduled { timer, .. } => {
                let removed = self.wheel.remove(timer);
                debug_assert!(removed.is_some(), "a Scheduled entry's timer is in the wheel");
                entry.state = State::Idle;
            }
            State::Ready { .. } => entry.state = State::Idle,
            State::Idle | State::InFlight { .. } | State::Deleted => {}
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
                // Its pods wait in `waiting` (indexed) until they are deleted too, or
                // the node comes back; so do the ones not cached (`dropped` stays: a
                // node re-created under its name fetches them).
                self.ready_nodes.remove(&key.name);
                self.lost_nodes.remove(&key.name);
                self.gpus_tainted.remove(&key.name);
            }
            Role::Pod => {
                if !entry.uid().is_empty() {
                    self.ips.release_pod(entry.uid());
                }
                if let Some(node) = entry.node() {
                    self.unindex_pod(key, node);
                }
            }
            Role::Other => {
                if ClaimIndex::indexes(&self.kinds[key.kind].resource) {
                    self.claims.deleted(&key.namespace, &key.name);
                }
            }
        }
        self.gauges.nodes.set(self.nodes.len() as i64);
        self.gauges.objects.set(self.entries.len() as i64);
    }

    /// `key`'s stage `due` came due (its entry is Idle or Ready, not yet Scheduled
    /// again): render the effects and send them, or wait for a write slot.
    fn fire(&mut self, key: ObjKey, due: Due, rng: &mut SmallRng) {
        let limit = self.limit_for(&key, due);
        let Some(entry) = self.entries.get_mut(&key) else {
            debug_assert!(false, "fired for {key:?}, which is not cached");
            return;
        };
        debug_assert!(
            !self.writing.contains(&key),
            "a write is out for an entry not InFlight"
        );
        if self.writing.len() >= limit {
            // A parsed object is not kept for a wait of unknown length.
            entry.drop_parsed();
            entry.state = State::Ready { due };
            match self.is_lost_node(&key) || due == Due::Heartbeat {
                true => self.ready_lost.push_back(key),
                false => self.ready.push_back(key),
            }
            self.gauges.queue.inc();
            return;
        }
        let fence = self.write_fence(&key);
        let entry = self.entries.get_mut(&key).expect("present");
        if !fence.is_open(self.now.mono) {
            // Our Lease may have been taken over (renewals late, or we were stopped):
            // nothing goes out until a renewal lands, or the lease worker says it is lost.
            self.metrics.fenced_writes.inc();
            entry.drop_parsed();
            entry.state = State::Idle;
            return self.evaluate_after(&key, FENCED_RETRY, None, rng);
        }
        let kinds = self.kinds.clone();
        let stage = match due {
            Due::Stage(index) => Some(&kinds[key.kind].lifecycle.stages()[index]),
            Due::RestoreReady | Due::Heartbeat | Due::ResourceHealth => None,
        };
        let obj = match entry.take_parsed() {
            Some(obj) => obj,
            // Deleting (and finalizers, events) reads only the metadata: the rest of the
            // object is not parsed (parsing it was a tenth of kwok's CPU while `small`'s
            // pods were deleted). The kubelet's restore writes without reading.
            None if stage.map_or(due != Due::ResourceHealth, |s| s.reads_metadata_only()) => {
                entry.metadata(key.kind, &mut self.packers)
            }
            None => entry.object(key.kind, &mut self.packers),
        };
        let health = match (due, entry.node()) {
            (Due::ResourceHealth, Some(node)) => {
                let tainted = self.gpus_tainted.get(node).map_or("", |t| t);
                resource_health::report(&obj, node, tainted, &*self.claims)
            }
            _ => Report::UpToDate,
        };
        if health == Report::Waiting {
            // A claim's allocation has not reached us yet: its watch is another stream.
            entry.state = State::Idle;
            return self.retry_later(&key, rng);
        }
        let settings = &self.settings;
        let mut host = RuntimeHost {
            now: self.now.wall,
            start: self.start,
            node_name: &settings.node_name,
            node_ip: &settings.node_ip,
            node_port: settings.node_port,
            ips: &mut self.ips,
            subject: (entry.node().unwrap_or_default(), entry.uid()),
            random: rng.random(),
        };
        let name = due.name(kinds[key.kind].lifecycle.stages());
        let rendered = match (stage, due) {
            (Some(stage), _) => stage.render(&obj, &mut host),
            (None, Due::Heartbeat) => Ok(vec![kubelet::node_heartbeat(host.now, host.node_port)]),
            (None, Due::ResourceHealth) => Ok(match health {
                Report::Changed(statuses) => vec![resource_health::report_patch(statuses)],
                Report::UpToDate | Report::Waiting => Vec::new(),
            }),
            (None, _) => Ok(vec![kubelet::restore_ready(host.now)]),
        };
        let mut effects = match rendered {
            Ok(effects) => effects,
            Err(error) => return self.render_failed(&key, error, rng),
        };
        if effects.is_empty() {
            entry.state = State::Idle;
            return;
        }
        let merged = batcher::coalesce(&mut effects);
        self.metrics.effects_merged.inc_by(merged as u64);
        self.metrics
            .transitions
            .get_or_create(&StageLabel {
                stage: name.to_owned(),
            })
            .inc();
        // `immediateNextStage`: matched again once the write lands, whatever it returns
        // (a stage that only sends an event changes nothing the watch would report).
        let dirty = stage.is_some_and(|s| s.immediate_next_stage());
        entry.state = State::InFlight { dirty };
        let ticket = Ticket {
            key: key.clone(),
            uid: entry.uid().into(),
        };
        self.writing.insert(key);
        self.gauges.queue.inc();
        let kind = &kinds[ticket.key.kind];
        let target = Target {
            resource: kind.resource.clone(),
            namespace: kind.namespaced.then(|| ticket.key.namespace.clone()),
            name: ticket.key.name.clone(),
            // A write may wait long on a busy apiserver: it holds only what it reads.
            object: cache::metadata_only(obj),
            fence,
        };
        self.out.push(Command::Write(Box::new(Write {
            ticket,
            due,
            target,
            effects,
        })));
    }

    /// Writes in flight at most when `key` fires: the lease-pressure limit, except for
    /// a node the control plane marked lost. Its status write is a heartbeat
    /// (kube-controller-manager counts a new `lastHeartbeatTime` as it counts a
    /// renewal) that also makes it Ready again, so holding it back for the renewals
    /// would only keep it NotReady longer: after kwok was stopped past its Leases,
    /// nodes are lost while all renewals are at risk at once (at 5,000 nodes:
    /// `benches/results/2026-12-04-faults`).
    ///
    /// When slots are short, a lost node also goes first ([`Core::written`]): after kwok
    /// was stopped past its Leases, thousands of pod writes came due with the nodes,
    /// and 754 lost nodes made no progress for 8 s behind them; the last came back 43 s
    /// after SIGCONT (5,000 nodes, 2 cores: `benches/results/2026-12-04-faults`).
    ///
    /// A lapsed node's heartbeat ([`Due::Heartbeat`]) is not held back either: it
    /// races kube-controller-manager's writes of `Unknown`.
    fn limit_for(&self, key: &ObjKey, due: Due) -> usize {
        match self.is_lost_node(key) || due == Due::Heartbeat {
            true => self.settings.writes_in_flight,
            false => self.write_limit,
        }
    }

    fn is_lost_node(&self, key: &ObjKey) -> bool {
        self.role(key) == Role::Node && self.lost_nodes.contains(&key.name)
    }

    /// The fences a write for `key` passes: its node's Lease and our member Lease.
    fn write_fence(&self, key: &ObjKey) -> WriteFence {
        let node = match self.role(key) {
            Role::Node => Some(key.name.as_str()),
            Role::Pod => self.entries.get(key).and_then(Entry::node),
            Role::Other => None,
        };
        WriteFence {
            node: node.and_then(|n| self.held.get(n)).cloned(),
            member: self.member_fence.clone(),
        }
    }

    /// `key`'s stage failed to render, so none of it is sent (the rule is on
    /// [`RenderError`]): a full IP pool is tried again after a backoff; a template or
    /// patch that fails for this object is tried again when the object changes.
    fn render_failed(&mut self, key: &ObjKey, error: RenderError, rng: &mut SmallRng) {
        self.metrics
            .render_failures
            .get_or_create(&StageLabel {
                stage: error.stage.clone(),
            })
            .inc();
        let entry = self.entries.get_mut(key).expect("fired for a cached entry");
        entry.state = State::Idle;
        match error.is_temporary() {
            true => {
                tracing::warn!(object = %key.name, %error, "stage failed to render; trying again later");
                self.retry_later(key, rng);
            }
            false => {
                tracing::warn!(object = %key.name, %error, "stage failed to render; trying again when the object changes");
            }
        }
    }

    /// Matches `key` again after a backoff of 1 s, 2 s, 4 s … up to a minute, counting
    /// one more failure of its stage.
    fn retry_later(&mut self, key: &ObjKey, rng: &mut SmallRng) {
        let entry = self.entries.get_mut(key).expect("present");
        entry.failures = entry.failures.saturating_add(1);
        let backoff = Duration::from_secs(1 << (entry.failures - 1).min(6)).min(MAX_RETRY_BACKOFF);
        self.evaluate_after(key, backoff, None, rng);
    }

    /// A write landed: apply its result, then start what waited for a slot.
    fn written(&mut self, ticket: Ticket, outcome: Outcome, rng: &mut SmallRng) {
        let was_out = self.writing.remove(&ticket.key);
        debug_assert!(was_out, "a result for a write not out: {ticket:?}");
        self.gauges.queue.dec();
        self.landed(ticket, outcome, rng);
        // A write slot is free: render what waited for one, lost nodes first.
        loop {
            let key = match self.ready_lost.front() {
                Some(_) if self.writing.len() < self.settings.writes_in_flight => self.ready_lost.pop_front(),
                _ if self.writing.len() < self.write_limit => self.ready.pop_front(),
                _ => None,
            };
            let Some(key) = key else {
                break;
            };
            self.gauges.queue.dec();
            // Cancelled, re-scheduled or removed since it queued: skipped.
            let Some(State::Ready { due }) = self.entries.get(&key).map(|e| e.state) else {
                continue;
            };
            self.entries.get_mut(&key).expect("present").state = State::Idle;
            self.fire(key, due, rng);
        }
    }

    fn landed(&mut self, ticket: Ticket, outcome: Outcome, rng: &mut SmallRng) {
        let key = ticket.key;
        // A fetch must list nothing older than what our own write made, even for a pod
        // forgotten while the write was out.
        if let (Role::Pod, Outcome::Written(Some(obj)) | Outcome::Conflict(Some(obj))) =
            (self.role(&key), &outcome)
        {
            self.pod_seen(obj.metadata.resource_version.as_deref().unwrap_or_default());
        }
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        let State::InFlight { dirty } = entry.state else {
            debug_assert!(false, "{key:?} had a write out but is {:?}", entry.state);
            return;
        };
        entry.state = State::Idle;
        if *ticket.uid != *entry.uid() {
            // The object the write was for is gone; this one (re-created under the same
            // name) is matched on its own state.
            self.evaluate(&key, None, rng);
            return;
        }
        let (object, again) = match outcome {
            Outcome::Gone => {
                entry.state = State::Deleted;
                return;
            }
            Outcome::Failed => {
                // Logged and counted by the writer; tried again so a refused write is
                // not lost.
                self.retry_later(&key, rng);
                return;
            }
            Outcome::Fenced => {
                // Not a failure of the write: tried again soon, when a renewal may
                // have opened the fence (or the lease worker says the node is lost).
                self.evaluate_after(&key, FENCED_RETRY, None, rng);
                return;
            }
            Outcome::Written(object) => (object, dirty),
            // The cached object was stale: match again, on the fresh read if there is one.
            Outcome::Conflict(object) => (object, true),
        };
        entry.failures = 0;
        let mut again = again;
        let mut fresh = None;
        if let Some(obj) = object {
            let rv = obj.metadata.resource_version.as_deref().unwrap_or_default();
            // A response newer than what the watch delivered is matched now (the watch
            // event for it will be skipped as already seen). One the watch has already
            // passed is dropped; one of unknown order too: the watch delivers that version
            // in its turn, while matching stale state could repeat the stage just written.
            // A write goes out by name: if the object was deleted and re-created meanwhile
            // the server applied it to the new one. That answer belongs to another
            // object; the watch delivers it (and the old one's delete) in turn.
            let same_object = obj.metadata.uid.as_deref() == Some(entry.uid());
            if same_object && version::order(rv, &entry.rv) == Order::Newer {
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
                Role::Node => self.node_applied(&key, obj, rng),
                Role::Pod => self.pod_applied(&key, obj),
                Role::Other => {}
            }
        }
        if again {
            self.evaluate(&key, fresh, rng);
        }
    }

    /// Checks every invariant of the module docs over the whole state (tests only: it
    /// walks every entry).
    #[cfg(test)]
    pub fn check_invariants(&self) {
        let mut scheduled = 0;
        for (key, entry) in &self.entries {
            match entry.state {
                State::Scheduled { timer, .. } => {
                    scheduled += 1;
                    assert!(self.wheel.contains(timer), "{key:?}: Scheduled without its timer");
                }
                State::InFlight { .. } => {
                    assert!(self.writing.contains(key), "{key:?}: InFlight with no write out");
                }
                State::Ready { .. } => assert!(
                    self.ready.contains(key) || self.ready_lost.contains(key),
                    "{key:?}: Ready but not queued"
                ),
                State::Idle | State::Deleted => {}
            }
            if !matches!(entry.state, State::InFlight { .. }) {
                assert!(
                    !self.writing.contains(key),
                    "{key:?}: a write out but {:?}",
                    entry.state
                );
            }
            if let Some(node) = entry.node().filter(|_| self.role(key) == Role::Pod) {
                assert!(
                    !(self.fetches.contains_key(node)
                        && matches!(entry.state, State::Scheduled { .. } | State::Ready { .. })),
                    "{key:?}: a stage pending while its node's pods are fetched"
                );
                assert!(
                    !self.elsewhere.contains(node) || self.drives_node(node),
                    "{key:?}: cached while its node is dealt elsewhere"
                );
            }
            if entry.has_parsed() {
                assert!(
                    matches!(entry.state, State::Scheduled { .. }),
                    "{key:?}: a parse kept while {:?}",
                    entry.state
                );
            }
        }
        assert_eq!(self.wheel.len(), scheduled, "timers without a Scheduled entry");
        assert!(self.writing.len() <= self.settings.writes_in_flight.max(self.write_limit));
        // Each push and each write out counts once, each pop and each landing once.
        assert_eq!(
            self.gauges.queue.get() as usize,
            self.writing.len() + self.ready.len() + self.ready_lost.len(),
            "the queue gauge drifted"
        );
    }

    /// The state of `key`'s entry, if cached (tests).
    #[cfg(test)]
    pub fn state(&self, key: &ObjKey) -> Option<State> {
        self.entries.get(key).map(|e| e.state)
    }

    /// The resourceVersion cached for `key` (tests).
    #[cfg(test)]
    pub fn cached_rv(&self, key: &ObjKey) -> Option<String> {
        self.entries.get(key).map(|e| e.rv.clone())
    }

    /// Pod events cached unparsed so far, their node driven elsewhere (tests).
    #[cfg(test)]
    pub fn events_not_driven(&self) -> u64 {
        self.metrics.events_not_driven.get()
    }

    /// Writes held back by their fence so far (tests).
    #[cfg(test)]
    pub fn fenced_writes(&self) -> u64 {
        self.metrics.fenced_writes.get()
    }

    /// Failures to render `stage` counted so far (tests).
    #[cfg(test)]
    pub fn render_failures(&self, stage: &str) -> u64 {
        let label = StageLabel {
            stage: stage.to_owned(),
        };
        self.metrics.render_failures.get_or_create(&label).get()
    }

    /// Writes out now (tests).
    #[cfg(test)]
    pub fn writes_out(&self) -> usize {
        self.writing.len()
    }
}

/// Writes a shard may keep in flight: `--writes-in-flight`, or fewer while lease
/// renewals fall behind (an expired lease makes the node NotReady and tainted, which
/// costs the same apiserver far more than the writes held back).
fn write_limit(configured: usize, pressure: Option<Pressure>) -> usize {
    match pressure {
        None | Some(Pressure::Calm) => configured,
        Some(Pressure::Behind) => configured.min(WRITES_WHILE_LEASES_BEHIND),
        Some(Pressure::AtRisk) => configured.min(WRITES_WHILE_LEASES_AT_RISK),
    }
}

/// How long until the kubelet's report of `pod`'s DRA devices on `node` is due
/// ([`resource_health`]): at once when it changed, after [`CLAIM_WAIT`] while one of
/// its claims has not reached us (and is watched at all: a ResourceClaim stage is what
/// has kwok watch claims); `None` when there is nothing to report.
fn health_report_due(
    pod: &Value,
    node: &str,
    gpus_tainted: &HashMap<String, Box<str>>,
    claims: &ClaimIndex,
    kinds: &[Kind],
) -> Option<Duration> {
    let tainted = gpus_tainted.get(node).map_or("", |t| t);
    match resource_health::report(pod, node, tainted, claims) {
        Report::UpToDate => None,
        Report::Changed(_) => Some(Duration::ZERO),
        Report::Waiting => kinds
            .iter()
            .any(|k| ClaimIndex::indexes(&k.resource))
            .then_some(CLAIM_WAIT),
    }
}

/// Counts the run-time failures of `stage`'s selector keys since the last look (a failing
/// key is taken as having no output, as in KWOK: `In` and `Exists` fail, `NotIn` and
/// `DoesNotExist` hold), and logs the first one with the key.
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
            "a selector key failed at run time and was taken as having no output (as in KWOK); \
             kwok_stage_query_failures_total counts further failures"
        );
    }
}

/// Records the IP pod `obj` (of `uid`, on `node`) holds, unless it shares its node's.
fn adopt_ip(ips: &mut Ips, node: &str, uid: &str, obj: &Value) {
    let host_network = obj
        .pointer("/spec/hostNetwork")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if let (false, Some(ip)) = (host_network, obj.pointer("/status/podIP").and_then(Value::as_str)) {
        ips.adopt_pod(node, uid, ip);
    }
}

/// The address a pod's own network holds (`status.podIP`, unless `spec.hostNetwork`),
/// read from its text without building the rest.
fn pod_address(text: &str) -> Option<Box<str>> {
    #[derive(serde::Deserialize)]
    struct Pod {
        spec: Option<Spec>,
        status: Option<Status>,
    }
    #[derive(serde::Deserialize)]
    struct Spec {
        #[serde(rename = "hostNetwork")]
        host_network: Option<bool>,
    }
    #[derive(serde::Deserialize)]
    struct Status {
        #[serde(rename = "podIP")]
        pod_ip: Option<Box<str>>,
    }
    let pod: Pod = serde_json::from_str(text).ok()?;
    if pod.spec.and_then(|s| s.host_network).unwrap_or(false) {
        return None;
    }
    pod.status?.pod_ip.filter(|ip| !ip.is_empty())
}

/// Whether a node's `Ready` condition is `True` (`None`: it has none).
fn node_ready(node: &Value) -> Option<bool> {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["status"] == "True")
}
