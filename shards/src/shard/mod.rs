//! A shard: the single owner of a slice of the managed nodes and everything bound to
//! them — their cached objects, their stage timers and their in-flight writes.
//!
//! # Shape
//! As kube-runtime's scheduler and tokio's time driver are shaped: a synchronous,
//! I/O-free core ([`core::Core`]: `step(event, now, rng) -> commands`, over one
//! [`cache::State`] per object) driven by a thin async runner ([`Shard`]) that owns
//! the client, the channels, the clock, the random source and the one `Sleep` that
//! follows the wheel. Every rule of the shard is thus a function of its inputs, tested
//! by tables and by random event sequences (`tests.rs`) without an apiserver or a
//! runtime; the core's invariants are written on it and checked with `debug_assert!`.
//!
//! # Data flow
//! The dispatcher sends watch events on a bounded channel, each object as the watch
//! decoded it ([`JsonObject`]: compact JSON text without
//! `managedFields`); the core parses an object only if it is news (not the event of
//! its own write), caches its text, matches stages (engine), schedules the chosen stage
//! in its timer wheel ([`crate::wheel`]), and when a timer fires renders the effects,
//! merges them ([`crate::batcher::coalesce`]) and returns a write for the runner to
//! hand to a write task. Write results come back on an unbounded channel, so a full
//! event channel can never block a writer that the shard is waiting for (the writes
//! out, and so the results, are bounded by `--writes-in-flight`).
//!
//! With `--scale-out` the lease worker also says which nodes the member table deals to
//! another member: the core caches none of their pods (a replica holds its share, not
//! every pod), and when such a node is dealt back it asks for one list of the node's
//! pods ([`core::Command::FetchPods`]), which the runner makes in one of
//! [`FETCHES_IN_FLIGHT`] shared slots, retrying until it succeeds.

mod cache;
mod core;
pub mod hash;
mod pack;
pub mod query;
#[cfg(test)]
mod tests;
mod version;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use jiff::Timestamp;
use kube::{
    Api,
    api::{ListParams, VersionMatch},
    core::ApiResource,
};
use kwok_engine::lifecycle::Lifecycle;
use rand::{SeedableRng, rngs::SmallRng};
use tokio::{
    sync::{Semaphore, mpsc, watch},
    time::Instant,
};

pub use cache::ObjKey;
use core::{Command, Core, Event, Ticket, Write};

use crate::{
    batcher::{Outcome, Writer},
    host::SharedIps,
    lease::{Fence, LeaseMsg, NodeNews, Pressure, PressureGauge},
    metrics::Metrics,
    object::JsonObject,
    settings::Settings,
    wheel::Alarm,
};

/// What a shard's event channel carries: batches of events, in watch order.
pub type Batch = Vec<Input>;

/// Capacity of a shard's event channel, in batches of up to
/// [`DISPATCH_CHUNK`](crate::dispatch::DISPATCH_CHUNK) events per watched kind (up to
/// 4096 pod events): enough to absorb a relist burst, small enough that a stuck shard
/// pushes back on its watch instead of growing memory.
pub const EVENT_BATCHES: usize = 16;

/// A reading of the clocks, taken by the runner once per wake-up.
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
    /// The ResourceClaims' allocations, shared by all shards.
    pub claims: Arc<crate::claims::ClaimIndex>,
    /// When the controller started.
    pub start: Timestamp,
    /// How many shards have processed the first full list of pods. No pod stage is
    /// scheduled before every shard has: a pod without an IP rendered before the list
    /// is done could get an address that a pod listed later holds.
    pub pods_listed: Arc<watch::Sender<usize>>,
    /// With `--scale-out`: our member Lease's write fence.
    pub member_fence: Option<Fence>,
    /// With `--scale-out`: the live members, as the member Lease task reports them.
    pub members: Option<watch::Receiver<Arc<[String]>>>,
    /// Lists of one node's pods that may be out at once, shared by all shards
    /// ([`FETCHES_IN_FLIGHT`]).
    pub fetch_slots: Arc<Semaphore>,
}

/// Lists of one node's pods out at once, all shards together: a member joining or
/// leaving moves a share of the nodes at once, and each list is small.
pub const FETCHES_IN_FLIGHT: usize = 8;

/// A running shard: the async side around its [`Core`].
pub struct Shard {
    core: Core,
    /// The random source of the core's choices, seeded per shard and start.
    rng: SmallRng,
    writer: Writer,
    leases: Option<mpsc::UnboundedSender<LeaseMsg>>,
    lease_pressure: Option<PressureGauge>,
    /// The pressure the core was last told.
    pressure: Option<Pressure>,
    pods_listed: Arc<watch::Sender<usize>>,
    /// Subscribed when the shard is made, before any watch runs, so no shard's count
    /// can be missed.
    pods_listed_rx: watch::Receiver<usize>,
    shards: usize,
    done_tx: mpsc::UnboundedSender<(Ticket, Outcome)>,
    done_rx: mpsc::UnboundedReceiver<(Ticket, Outcome)>,
    /// With `--scale-out`: the live members.
    members: Option<watch::Receiver<Arc<[String]>>>,
    fetch_slots: Arc<Semaphore>,
    /// Fetched pods come back here as [`Event::PodsFetched`] (unbounded: one answer per
    /// fetch started, each a node's few pods).
    fetched_tx: mpsc::UnboundedSender<Event>,
    fetched_rx: mpsc::UnboundedReceiver<Event>,
}

/// The live members once they change; `None` at once without `--scale-out` (or once the
/// member task is gone), which disables the `select!` branch that waits on it.
async fn members_changed(rx: &mut Option<watch::Receiver<Arc<[String]>>>) -> Option<Arc<[String]>> {
    let rx = rx.as_mut()?;
    rx.changed().await.ok()?;
    Some(rx.borrow_and_update().clone())
}

impl Shard {
    /// A shard ready to run.
    pub fn new(ctx: ShardContext) -> Self {
        // Unbounded, yet never more than --writes-in-flight results (module docs).
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (fetched_tx, fetched_rx) = mpsc::unbounded_channel();
        let rng = SmallRng::seed_from_u64(ctx.index as u64 ^ ctx.start.as_nanosecond() as u64);
        let config = core::Config {
            index: ctx.index,
            kinds: ctx.kinds,
            settings: ctx.settings.clone(),
            metrics: ctx.metrics,
            leases: ctx.leases.is_some(),
            member_fence: ctx.member_fence,
            shared_ips: ctx.shared_ips,
            claims: ctx.claims,
            start: ctx.start,
        };
        Self {
            core: Core::new(config, Now::read()),
            rng,
            writer: ctx.writer,
            leases: ctx.leases,
            lease_pressure: ctx.lease_pressure,
            pressure: None,
            pods_listed_rx: ctx.pods_listed.subscribe(),
            pods_listed: ctx.pods_listed,
            shards: ctx.settings.shards,
            done_tx,
            done_rx,
            members: ctx.members,
            fetch_slots: ctx.fetch_slots,
            fetched_tx,
            fetched_rx,
        }
    }

    /// Runs until the event channel closes. `news` says, per node, whether we hold its
    /// Lease now, and with `--scale-out` whether the table deals it elsewhere (from the
    /// lease worker).
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<Batch>,
        mut news: mpsc::UnboundedReceiver<NodeNews>,
        mut queries: mpsc::Receiver<query::Query>,
    ) {
        let mut alarm = Alarm::new();
        loop {
            let (clock, deadline) = self.core.next_deadline();
            alarm.arm(clock, deadline);
            let event = tokio::select! {
                biased;
                Some((ticket, outcome)) = self.done_rx.recv() => Event::Written { ticket, outcome },
                Some(news) = news.recv() => match news {
                    NodeNews::Ownership(ownership) => Event::Lease(ownership),
                    NodeNews::Dealt(dealt) => Event::Dealt(dealt),
                },
                Some(fetched) = self.fetched_rx.recv() => fetched,
                () = alarm.fired(), if alarm.is_armed() => Event::TimersDue,
                Some(members) = members_changed(&mut self.members) => Event::Members(members),
                changed = self.pods_listed_rx.changed(), if !self.core.pods_listed().1 => {
                    let count = changed.is_ok().then(|| *self.pods_listed_rx.borrow_and_update());
                    if count.is_some_and(|n| n < self.shards) {
                        continue;
                    }
                    Event::AllPodsListed
                }
                Some(query) = queries.recv() => {
                    self.core.answer(query);
                    continue;
                }
                batch = events.recv() => match batch {
                    Some(batch) => {
                        let now = self.now();
                        for input in batch {
                            self.step(Event::Watch(input), now);
                        }
                        continue;
                    }
                    None => break,
                },
            };
            let now = self.now();
            self.step(event, now);
        }
    }

    /// The clocks now; tells the core first if the lease pressure changed since.
    fn now(&mut self) -> Now {
        let now = Now::read();
        let pressure = self.lease_pressure.as_ref().map(PressureGauge::get);
        if pressure != self.pressure {
            self.pressure = pressure;
            self.step(Event::Pressure(pressure), now);
        }
        now
    }

    /// Feeds `event` to the core and carries out what it asks.
    fn step(&mut self, event: Event, now: Now) {
        for command in self.core.step(event, now, &mut self.rng) {
            match command {
                Command::Write(write) => self.write(*write),
                Command::Lease(msg) => {
                    if let Some(leases) = &self.leases {
                        let _ = leases.send(msg);
                    }
                }
                Command::PodsListed => self.pods_listed.send_modify(|n| *n += 1),
                Command::FetchPods {
                    node,
                    generation,
                    not_older_than,
                } => self.fetch(node, generation, not_older_than),
            }
        }
    }

    /// Lists `node`'s pods on its own task, in one of the shared fetch slots, until a
    /// list succeeds; the pods come back on `fetched_rx`.
    fn fetch(&self, node: String, generation: u64, not_older_than: String) {
        let Some(kind) = self.core.kinds().iter().find(|k| k.role == Role::Pod) else {
            return;
        };
        let api: Api<JsonObject> = Api::all_with(self.writer.client().clone(), &kind.resource);
        let mut params = ListParams::default().fields(&format!("spec.nodeName={node}"));
        if !not_older_than.is_empty() {
            // Served from the watch cache once it has caught up with what we saw.
            params = params.at(&not_older_than).matching(VersionMatch::NotOlderThan);
        }
        let (slots, done) = (self.fetch_slots.clone(), self.fetched_tx.clone());
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(250);
            loop {
                let listed = {
                    let _slot = slots.acquire().await;
                    api.list(&params).await
                };
                match listed {
                    Ok(list) => {
                        let _ = done.send(Event::PodsFetched {
                            node,
                            generation,
                            pods: list.items,
                        });
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(node, %error, retry_in = ?wait, "listing a node's pods failed");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(4));
                    }
                }
            }
        });
    }

    /// Sends a write on its own task; its result comes back on `done_rx`.
    fn write(&self, write: Write) {
        let Write {
            ticket,
            due,
            target,
            effects,
        } = write;
        let kind = &self.core.kinds()[ticket.key.kind];
        let stage = due.name(kind.lifecycle.stages());
        // Exported only with --tracing-endpoint; otherwise a disabled span, built from nothing.
        let span = tracing::info_span!(
            target: crate::otel::TARGET,
            "stage",
            otel.name = %format_args!("{} {}", kind.resource.kind, stage),
            kwok.stage = stage,
            kwok.resource = %kind.resource.plural,
            kwok.name = %ticket.key.name,
            k8s.namespace.name = %ticket.key.namespace,
            kwok.effects = effects.len(),
        );
        let (writer, done) = (self.writer.clone(), self.done_tx.clone());
        let write = async move {
            let outcome = writer.execute(&target, &effects).await;
            let _ = done.send((ticket, outcome));
        };
        tokio::spawn(tracing::Instrument::instrument(write, span));
    }
}
