//! The lease worker: owns every managed node's Lease in `kube-node-lease`, renewing
//! each at a quarter of its duration with jitter (as the kubelet does), many
//! renewals in flight at once, and measures how late each renewal was.
//!
//! A Lease held, unexpired, by another holder is left alone and looked at again when
//! it would expire, so two controllers never both drive a node's lease. Renewals
//! carry the resourceVersion of our last write as a precondition, so a lease taken
//! over meanwhile is never taken back blindly. Every change of who holds a node's
//! lease is reported (`on_ownership`), so shards drive only the nodes we hold.
//!
//! Requests due wait for one of the `--node-lease-parallelism` slots in a queue with
//! three ranks: renewals of leases within a quarter duration of expiring (nearest
//! first), then requests for leases not held (new nodes' first acquisitions, re-reads
//! after a conflict, looks at leases held elsewhere; in arrival order), then the
//! other renewals (nearest expiry first). While the apiserver keeps up the queue is
//! empty and leases renew every quarter duration, as the kubelet's do. When it cannot,
//! a burst of new nodes waits for their leases rather than starving the renewals of
//! the nodes already running, whose expiry would mark them NotReady and make
//! kube-controller-manager taint them: more load on the same apiserver. New nodes
//! still get one slot in [`ACQUISITION_SHARE`], so they are slowed, never stuck.
//!
//! The worker reports how far behind renewals are as a [`Pressure`], from the renewal
//! waiting longest: [`Pressure::Behind`] once it is within half a duration of expiring
//! (it has waited a quarter duration past its due time), and [`Pressure::AtRisk`]
//! within three eighths. Shards keep fewer stage writes in flight as it rises (4, then
//! 2 per shard), so a burst of them (10,000 node heartbeats due in the same minute)
//! cannot take the apiserver from the renewals. At risk, the worker also sends
//! [`AT_RISK_PARALLELISM`] times as many renewals at once: the load may come from
//! other clients (a load generator), which shards cannot hold back.
//!
//! Measured at 10,000 nodes on 2 cores (`perf lease-soak`): the system settles where
//! the throttle first bites enough. Held at 4 per shard from half a duration, nodes
//! went Ready at 43/s and the worst renewal came at 29.5 s of 40; at 16 per shard
//! there, it fell through to "at risk" (2 per shard) and nodes went Ready at 27/s; a
//! single flag at a quarter duration with 8 per shard made 127/s, but the heartbeat
//! minute then pushed a renewal to 39.7 s.
//!
//! A renewal is a PUT of the Lease as our last write left it, as the kubelet renews:
//! on a saturated apiserver it costs less than a merge patch, which the apiserver must
//! apply to the stored object (a profile at 10,000 nodes put a tenth of its CPU there).

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use rand::Rng;
use tokio::{sync::mpsc, time::Instant};
use tracing::{debug, warn};

use crate::{
    metrics::Metrics,
    wheel::{self, Alarm, Clock, Wheel},
};

/// Namespace of node leases.
pub const NAMESPACE: &str = "kube-node-lease";

/// Messages from shards.
#[derive(Debug)]
pub enum LeaseMsg {
    /// A node became managed.
    Manage {
        /// Node name.
        name: String,
        /// Node uid (owner reference of the Lease).
        uid: String,
        /// The node was created after this controller started: it most likely has no
        /// lease yet, so the lease is created without a read first.
        fresh: bool,
    },
    /// A node is no longer managed (or gone).
    Release {
        /// Node name.
        name: String,
    },
}

/// Called with (node, whether we hold its lease now) whenever that changes.
pub type OnOwnership = Box<dyn Fn(&str, bool) + Send + Sync>;

struct Held {
    /// Which `Manage` made this entry: a result of a request sent for an earlier entry
    /// of the same name (released and managed again meanwhile) is not this one's.
    generation: u64,
    uid: String,
    /// Whether to try creating the lease before reading it (a node new to the cluster).
    fresh: bool,
    step: Step,
    timer: wheel::Key,
    /// When the renewal was meant to happen.
    due: Instant,
    /// When our last successful renewal was sent (its renewTime, near enough: expiry
    /// counts from it); `Some` means we hold it and can renew without reading.
    renewed: Option<Instant>,
    /// The Lease as our last write left it (without managedFields). Its
    /// resourceVersion is the precondition of the next renewal, so a lease written by
    /// anyone else since is read again rather than overwritten.
    lease: Option<Box<Lease>>,
}

/// Where a held lease is between renewals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Waiting for its timer.
    Idle,
    /// Due, waiting in the queue for a slot.
    Queued,
    /// Its request is out.
    InFlight,
}

/// The worker.
pub struct LeaseWorker {
    client: Client,
    holder: String,
    duration: Duration,
    metrics: Arc<Metrics>,
    parallelism: usize,
    on_ownership: OnOwnership,
    pressure: PressureGauge,
}

/// How far behind lease renewals are (module docs): other writers hold back by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pressure {
    /// Every waiting renewal has over half a duration left.
    Calm,
    /// A waiting renewal has at most half a duration left.
    Behind,
    /// A waiting renewal has at most three eighths of a duration left.
    AtRisk,
}

impl Pressure {
    /// The pressure when the renewal waiting longest has `left` before it expires.
    fn from_left(left: Option<Duration>, duration: Duration) -> Self {
        match left {
            Some(left) if left <= duration * 3 / 8 => Self::AtRisk,
            Some(left) if left <= duration / 2 => Self::Behind,
            _ => Self::Calm,
        }
    }
}

/// The worker's current [`Pressure`], shared with the shards.
#[derive(Debug, Clone, Default)]
pub struct PressureGauge(Arc<AtomicU8>);

impl PressureGauge {
    /// The pressure now.
    pub fn get(&self) -> Pressure {
        match self.0.load(Ordering::Relaxed) {
            0 => Pressure::Calm,
            1 => Pressure::Behind,
            _ => Pressure::AtRisk,
        }
    }

    fn set(&self, p: Pressure) {
        self.0.store(p as u8, Ordering::Relaxed);
    }
}

/// Result of one renewal attempt, sent back to the worker loop.
enum Renewed {
    /// Renewed (or created), as the apiserver now stores it; renew again after the normal interval.
    Ok(Box<Lease>),
    /// Our lease vanished or changed hands: read it before the next renewal.
    Lost,
    /// Another holder has it until this many seconds from now.
    HeldElsewhere(Duration),
    /// Failed; retry soon. A failed renewal gives its Lease back: its resourceVersion
    /// is still the precondition, so the retry needs no read.
    Failed(Option<Box<Lease>>),
}

impl LeaseWorker {
    /// A worker renewing as `holder` for `duration`, at most `parallelism` requests at once.
    pub fn new(
        client: Client,
        holder: String,
        duration: Duration,
        parallelism: usize,
        metrics: Arc<Metrics>,
        on_ownership: OnOwnership,
    ) -> Self {
        Self {
            client,
            holder,
            duration,
            metrics,
            parallelism: parallelism.max(1),
            on_ownership,
            pressure: PressureGauge::default(),
        }
    }

    /// How far behind renewals are: other writers hold back by it.
    pub fn pressure(&self) -> PressureGauge {
        self.pressure.clone()
    }

    /// Requests in flight at most now: `parallelism`, times [`AT_RISK_PARALLELISM`]
    /// while renewals are at risk. Other clients may flood the apiserver (a load
    /// generator with 512 creates in flight; kwokctl turns priority and fairness
    /// off): a share of a saturated apiserver follows the requests in flight, and
    /// 10,000 real kubelets would have 10,000.
    fn slots(&self) -> usize {
        match self.pressure.get() {
            Pressure::AtRisk => self.parallelism * AT_RISK_PARALLELISM,
            Pressure::Calm | Pressure::Behind => self.parallelism,
        }
    }

    /// The renewal interval: a quarter of the duration, as the kubelet uses.
    fn interval(&self) -> Duration {
        self.duration / 4
    }

    /// Runs until `rx` closes.
    pub async fn run(self, mut rx: mpsc::UnboundedReceiver<LeaseMsg>) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let metrics = self.metrics.clone();
        let ours = self.list_ours().await;
        let mut leases = Leases::new(Arc::new(self), done_tx);
        leases.ours = ours;
        let mut alarm = Alarm::new();
        loop {
            alarm.arm(&leases.clock, leases.wheel.next_deadline());
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => leases.message(msg),
                    None => break,
                },
                () = alarm.fired(), if alarm.is_armed() => leases.fire_due(),
                Some(done) = done_rx.recv() => leases.renewed(done),
            }
            metrics.leases_held.set(leases.owned as i64);
        }
    }

    /// The leases held by our identity now (a restarted kwok's own, when `--id` is kept),
    /// listed a page at a time; empty if the list fails (each is then read when taken).
    async fn list_ours(&self) -> HashMap<String, Box<Lease>> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), NAMESPACE);
        let mut ours = HashMap::new();
        let mut params = ListParams::default().limit(1000);
        loop {
            let page = match api.list(&params).await {
                Ok(page) => page,
                Err(e) => {
                    warn!(error = %e, "failed to list node leases; each is read when taken");
                    return HashMap::new();
                }
            };
            self.metrics.count("list", "200");
            for mut lease in page.items {
                let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref());
                if let (Some(name), true) = (lease.metadata.name.clone(), holder == Some(&self.holder)) {
                    lease.metadata.managed_fields = None;
                    ours.insert(name, Box::new(lease));
                }
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        debug!(
            leases = ours.len(),
            "node leases held by our identity at start-up"
        );
        ours
    }

    /// Acquisition: read the lease; create it if missing; take it if ours or expired;
    /// respect another live holder. `fresh`: create first, read only if it exists.
    async fn acquire(&self, name: &str, uid: &str, fresh: bool) -> Renewed {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), NAMESPACE);
        if fresh {
            match self.create(&api, name, uid, Timestamp::now()).await {
                Renewed::Lost => {}
                other => return other,
            }
        }
        let current = match api.get_opt(name).await {
            Ok(current) => current,
            Err(e) => {
                warn!(lease = name, error = %e, "failed to read lease");
                return Renewed::Failed(None);
            }
        };
        self.metrics.count("get", "200");
        let now = Timestamp::now();
        let Some(mut lease) = current else {
            return self.create(&api, name, uid, now).await;
        };
        let spec = lease.spec.as_ref();
        let holder = spec.and_then(|s| s.holder_identity.as_deref()).unwrap_or("");
        let ours = holder == self.holder;
        let seconds = spec.and_then(|s| s.lease_duration_seconds).unwrap_or(0).max(0) as u64;
        let expires = spec
            .and_then(|s| s.renew_time.as_ref())
            .map(|r| r.0 + Duration::from_secs(seconds));
        if !ours && !holder.is_empty() && expires.is_some_and(|e| e > now) {
            let left = expires
                .map(|e| e.duration_since(now))
                .and_then(|d| Duration::try_from(d).ok());
            return Renewed::HeldElsewhere(left.unwrap_or_default());
        }
        if !ours {
            let spec = lease.spec.get_or_insert_default();
            spec.holder_identity = Some(self.holder.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        lease.metadata.managed_fields = None;
        self.put(name, Box::new(lease)).await
    }

    /// Renewal of `lease` as we last wrote it (or read it, when taking it): one PUT
    /// with a new renewTime, no read, valid only if nobody wrote the lease since
    /// (its resourceVersion is the precondition).
    async fn put(&self, name: &str, mut lease: Box<Lease>) -> Renewed {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), NAMESPACE);
        let spec = lease.spec.get_or_insert_default();
        spec.lease_duration_seconds = Some(self.duration.as_secs() as i32);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        let start = std::time::Instant::now();
        let result = api.replace(name, &PostParams::default(), &lease).await;
        let seconds = start.elapsed().as_secs_f64();
        match &result {
            Ok(_) => self.metrics.request("put", "200", seconds),
            Err(kube::Error::Api(s)) => self.metrics.request("put", &s.code.to_string(), seconds),
            Err(_) => {}
        }
        match result {
            Ok(written) => Renewed::Ok(stored(written)),
            // Gone, or written by someone else since our last write: read it again.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Renewed::Lost,
            Err(e) => {
                warn!(lease = name, error = %e, "failed to renew lease");
                Renewed::Failed(Some(lease))
            }
        }
    }

    async fn create(&self, api: &Api<Lease>, name: &str, uid: &str, now: Timestamp) -> Renewed {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(NAMESPACE.to_owned()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "v1".to_owned(),
                    kind: "Node".to_owned(),
                    name: name.to_owned(),
                    uid: uid.to_owned(),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.holder.clone()),
                lease_duration_seconds: Some(self.duration.as_secs() as i32),
                renew_time: Some(MicroTime(now)),
                acquire_time: Some(MicroTime(now)),
                ..LeaseSpec::default()
            }),
        };
        match api.create(&PostParams::default(), &lease).await {
            Ok(lease) => {
                debug!(lease = name, "created");
                self.metrics.count("create", "201");
                Renewed::Ok(stored(lease))
            }
            // Another controller created it first: read who holds it.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                self.metrics.count("create", "409");
                Renewed::Lost
            }
            Err(e) => {
                warn!(lease = name, error = %e, "failed to create lease");
                Renewed::Failed(None)
            }
        }
    }
}

/// The worker loop's state: the leases held and their renewal timers.
struct Leases {
    worker: Arc<LeaseWorker>,
    /// One timer per held lease: its next renewal (or look, if held elsewhere).
    wheel: Wheel<String>,
    clock: Clock,
    held: HashMap<String, Held>,
    /// `Manage` messages taken so far: the generation of the next entry.
    generations: u64,
    /// Requests due (renewals and acquisitions), waiting for a slot.
    queue: Queue,
    /// Requests out (at most the worker's parallelism).
    in_flight: usize,
    /// How many of `held` we hold now (the rest are held elsewhere or being read).
    owned: usize,
    /// Largest lateness seen so far.
    latest: f64,
    /// Leases a list at start-up showed held by our identity (a restarted kwok's), not yet
    /// taken back: their first acquisition is a conditional PUT, not a read and a write.
    ours: HashMap<String, Box<Lease>>,
    done_tx: mpsc::UnboundedSender<Done>,
}

/// A finished renewal attempt, back from its task.
struct Done {
    name: String,
    /// The generation of the entry it was sent for.
    generation: u64,
    /// When its request was sent: after waiting for a slot among the
    /// `--node-lease-parallelism` in flight, which is where a slow apiserver makes
    /// renewals late.
    sent: Instant,
    result: Renewed,
}

impl Leases {
    /// No leases yet; finished requests report to `done_tx`.
    fn new(worker: Arc<LeaseWorker>, done_tx: mpsc::UnboundedSender<Done>) -> Self {
        Self {
            worker,
            wheel: Wheel::with_capacity(1024),
            clock: Clock::new(Instant::now()),
            held: HashMap::new(),
            generations: 0,
            queue: Queue::default(),
            in_flight: 0,
            owned: 0,
            latest: 0.0,
            ours: HashMap::new(),
            done_tx,
        }
    }

    fn message(&mut self, msg: LeaseMsg) {
        match msg {
            LeaseMsg::Manage { name, uid, fresh } => {
                if let Some(h) = self.held.get_mut(&name) {
                    h.uid = uid;
                    return;
                }
                let due = Instant::now();
                let timer = self.wheel.insert(name.clone(), self.clock.deadline_tick(due));
                self.generations += 1;
                let held = Held {
                    generation: self.generations,
                    uid,
                    fresh,
                    step: Step::Idle,
                    timer,
                    due,
                    renewed: None,
                    lease: None,
                };
                self.held.insert(name, held);
            }
            LeaseMsg::Release { name } => {
                if let Some(h) = self.held.remove(&name) {
                    self.wheel.remove(h.timer);
                    self.owned -= usize::from(h.renewed.is_some());
                }
            }
        }
    }

    /// Starts a renewal for every lease whose timer is due.
    fn fire_due(&mut self) {
        let now = self.clock.now_tick(Instant::now());
        while let Some(expired) = self.wheel.poll_expired(now) {
            self.fire(expired.value);
        }
    }

    /// A lease's timer fired: queue its renewal by urgency and send what slots allow.
    fn fire(&mut self, name: String) {
        let Some(h) = self.held.get_mut(&name) else { return };
        if h.step != Step::Idle {
            return;
        }
        h.step = Step::Queued;
        match h.renewed {
            Some(renewed) => self.queue.push_renewal(renewed + self.worker.duration, name),
            None => self.queue.push_acquisition(name),
        }
        self.send_queued();
    }

    /// Sends queued renewals, most urgent first, while slots are free.
    fn send_queued(&mut self) {
        let now = Instant::now();
        let urgent = now + self.worker.duration / 4;
        let slots = self.worker.slots();
        while self.in_flight < slots {
            let Some(name) = self.queue.pop(urgent) else {
                break;
            };
            // Released (or released and managed again) while queued: not this entry's.
            let Some(h) = self.held.get_mut(&name) else {
                continue;
            };
            if h.step != Step::Queued {
                continue;
            }
            h.step = Step::InFlight;
            self.in_flight += 1;
            let (worker, done, uid) = (self.worker.clone(), self.done_tx.clone(), h.uid.clone());
            let generation = h.generation;
            // Taken, not cloned: its result (or a failure) gives it back. A renewal that
            // finds the lease gone or changed reads it again before writing it. Past
            // expiry (renewals failed while the apiserver was away) our last write is
            // still the precondition: if nobody took the lease over meanwhile, one PUT
            // takes it back, as the kubelet's renewal does, without a read first. After
            // a restart, a lease the start-up list showed ours is taken the same way.
            let lease = h.lease.take().or_else(|| self.ours.remove(&name));
            let fresh = std::mem::take(&mut h.fresh);
            tokio::spawn(async move {
                let sent = Instant::now();
                let result = match lease {
                    Some(lease) => worker.put(&name, lease).await,
                    None => worker.acquire(&name, &uid, fresh).await,
                };
                let _ = done.send(Done {
                    name,
                    generation,
                    sent,
                    result,
                });
            });
        }
        // Renewals of leases released meanwhile are dropped lazily; one on top would
        // raise the pressure for a lease nobody needs.
        let held = &self.held;
        self.queue
            .drop_stale_renewals(|name| held.get(name).is_some_and(|h| h.step == Step::Queued));
        let left = self.queue.next_expiry().map(|e| e.saturating_duration_since(now));
        let pressure = Pressure::from_left(left, self.worker.duration);
        self.worker.pressure.set(pressure);
        self.worker.metrics.lease_pressure.set(pressure as i64);
        self.worker.metrics.lease_queue_depth.set(self.queue.len() as i64);
    }

    /// A renewal finished: schedule the next one.
    fn renewed(&mut self, done: Done) {
        self.in_flight -= 1;
        self.apply(done);
        self.send_queued();
    }

    fn apply(
        &mut self,
        Done {
            name,
            generation,
            sent,
            result,
        }: Done,
    ) {
        let Some(h) = self.held.get_mut(&name) else { return };
        // Sent for an entry released since: this entry's own request (or timer) decides.
        if h.generation != generation {
            return;
        }
        h.step = Step::Idle;
        observe(&self.worker, &mut self.latest, h, sent);
        let now = Instant::now();
        let was = h.renewed.is_some();
        let after = match result {
            Renewed::Ok(lease) => {
                // The renewTime it wrote, near enough: expiry is counted from it.
                h.renewed = Some(sent);
                h.lease = Some(lease);
                jittered(self.worker.interval())
            }
            Renewed::Lost => {
                h.renewed = None;
                Duration::ZERO
            }
            Renewed::HeldElsewhere(left) => {
                h.renewed = None;
                left + Duration::from_millis(100)
            }
            // Keep what we had while a later renewal can still land before expiry;
            // past it, another controller may hold the lease: stop driving the node
            // and read the lease before writing it again.
            Renewed::Failed(lease) => {
                if h.renewed
                    .is_some_and(|r| now.duration_since(r) >= self.worker.duration)
                {
                    h.renewed = None;
                }
                h.lease = lease;
                Duration::from_secs(1)
            }
        };
        let is = h.renewed.is_some();
        h.due = now + after;
        // The timer fired before the request went out; removing its stale key is a no-op.
        self.wheel.remove(h.timer);
        h.timer = self.wheel.insert(name.clone(), self.clock.deadline_tick(h.due));
        if was != is {
            self.owned = self.owned + usize::from(is) - usize::from(was);
            (self.worker.on_ownership)(&name, is);
        }
    }
}

/// How many times `--node-lease-parallelism` requests go out while renewals are
/// [`Pressure::AtRisk`].
const AT_RISK_PARALLELISM: usize = 4;

/// While renewals are urgent, one send in this many goes to a waiting acquisition: at
/// 10,000 leases a 2-core apiserver renews ~330/s, of which 250/s keep every lease
/// alive; an acquisition left to wait for a lull would wait forever.
const ACQUISITION_SHARE: u32 = 16;

/// Requests due, waiting for a slot (ranks in the module docs).
#[derive(Default)]
struct Queue {
    /// Urgent renewals sent in a row while acquisitions waited.
    urgent_run: u32,
    /// Renewals by expiry, nearest first (ties by name, so the order is total).
    renewals: BinaryHeap<Reverse<(Instant, String)>>,
    /// Leases not held yet: acquisitions, and looks at leases held elsewhere.
    acquisitions: VecDeque<String>,
}

impl Queue {
    fn push_renewal(&mut self, expiry: Instant, name: String) {
        self.renewals.push(Reverse((expiry, name)));
    }

    fn push_acquisition(&mut self, name: String) {
        self.acquisitions.push_back(name);
    }

    fn len(&self) -> usize {
        self.renewals.len() + self.acquisitions.len()
    }

    /// Pops renewals off the top while `live` says their lease no longer waits for one
    /// (released, or released and managed again), so the top is one that does.
    fn drop_stale_renewals(&mut self, live: impl Fn(&str) -> bool) {
        while let Some(Reverse((_, name))) = self.renewals.peek() {
            if live(name) {
                break;
            }
            self.renewals.pop();
        }
    }

    /// When the waiting renewal nearest expiry expires.
    fn next_expiry(&self) -> Option<Instant> {
        self.renewals.peek().map(|Reverse((expiry, _))| *expiry)
    }

    /// Whether a renewal expiring by `urgent` waits.
    fn has_urgent(&self, urgent: Instant) -> bool {
        self.next_expiry().is_some_and(|expiry| expiry <= urgent)
    }

    /// The next request to send: a renewal expiring by `urgent` first (but see
    /// [`ACQUISITION_SHARE`]), then an acquisition, then any renewal.
    fn pop(&mut self, urgent: Instant) -> Option<String> {
        let renewal = |q: &mut Self| q.renewals.pop().map(|Reverse((_, name))| name);
        if self.has_urgent(urgent)
            && (self.acquisitions.is_empty() || self.urgent_run + 1 < ACQUISITION_SHARE)
        {
            self.urgent_run += u32::from(!self.acquisitions.is_empty());
            return renewal(self);
        }
        self.urgent_run = 0;
        self.acquisitions.pop_front().or_else(|| renewal(self))
    }
}

/// Lateness and expiry of `h`'s renewal sent at `sent` (before `h` is updated by its
/// result): measured when the request left, not when its timer fired, so time spent
/// waiting for a free slot counts. `latest` is the largest lateness so far.
fn observe(worker: &LeaseWorker, latest: &mut f64, h: &Held, sent: Instant) {
    let metrics = &worker.metrics;
    // Only renewals: an acquisition's wait (behind urgent renewals, by design) is not
    // a renewal being late.
    if h.renewed.is_none() {
        return;
    }
    let late = sent.saturating_duration_since(h.due).as_secs_f64();
    metrics.lease_lateness_seconds.observe(late);
    if late > *latest {
        *latest = late;
        metrics.lease_lateness_max_seconds.set(late);
    }
    if h.renewed
        .is_some_and(|r| sent.duration_since(r) >= worker.duration)
    {
        metrics.leases_expired.inc();
    }
}

/// What we keep of a Lease the apiserver returned: all of it but managedFields, so
/// the next PUT keeps whatever labels or fields others gave it.
fn stored(mut lease: Lease) -> Box<Lease> {
    lease.metadata.managed_fields = None;
    Box::new(lease)
}

/// `interval` minus up to 4% jitter, so renewals spread out and never drift late.
fn jittered(interval: Duration) -> Duration {
    let spread = interval.as_millis() as u64 / 25;
    interval - Duration::from_millis(rand::rng().random_range(0..=spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_should_rise_at_half_then_three_eighths_of_a_duration_left() {
        let d = Duration::from_secs(40);
        let left = |s| Pressure::from_left(Some(Duration::from_secs(s)), d);
        assert_eq!(Pressure::from_left(None, d), Pressure::Calm, "nothing waits");
        assert_eq!(left(21), Pressure::Calm);
        assert_eq!(left(20), Pressure::Behind);
        assert_eq!(left(16), Pressure::Behind);
        assert_eq!(left(15), Pressure::AtRisk);
        assert_eq!(left(0), Pressure::AtRisk, "expired while waiting");
        let gauge = PressureGauge::default();
        assert_eq!(gauge.get(), Pressure::Calm);
        for p in [Pressure::AtRisk, Pressure::Behind, Pressure::Calm] {
            gauge.set(p);
            assert_eq!(gauge.get(), p);
        }
    }

    #[test]
    fn queue_should_put_urgent_renewals_then_acquisitions_then_other_renewals() {
        let now = Instant::now();
        let urgent = now + Duration::from_secs(10);
        let mut q = Queue::default();
        q.push_renewal(now + Duration::from_secs(30), "renewed-recently".into());
        q.push_acquisition("new-node-1".into());
        q.push_renewal(now + Duration::from_secs(8), "expires-in-8s".into());
        q.push_acquisition("new-node-2".into());
        q.push_renewal(now + Duration::from_secs(3), "expires-in-3s".into());
        q.push_renewal(now + Duration::from_secs(20), "renewed-a-while-ago".into());
        let order: Vec<_> = std::iter::from_fn(|| q.pop(urgent)).collect();
        assert_eq!(
            order,
            [
                "expires-in-3s",
                "expires-in-8s",
                "new-node-1",
                "new-node-2",
                "renewed-a-while-ago",
                "renewed-recently"
            ]
        );
    }

    #[test]
    fn queue_should_give_acquisitions_a_share_while_renewals_are_urgent() {
        let now = Instant::now();
        let mut q = Queue::default();
        for i in 0..40 {
            q.push_renewal(now + Duration::from_millis(i), format!("urgent-{i}"));
        }
        q.push_acquisition("new-node".into());
        let order: Vec<_> = std::iter::from_fn(|| q.pop(now + Duration::from_secs(10))).collect();
        let at = order.iter().position(|n| n == "new-node").unwrap();
        assert_eq!(at, ACQUISITION_SHARE as usize - 1, "{order:?}");
        assert_eq!(order.len(), 41);
        // The renewals keep their order around it.
        let renewals: Vec<_> = order.iter().filter(|n| *n != "new-node").collect();
        assert!(renewals.windows(2).all(|w| {
            let n = |s: &str| s["urgent-".len()..].parse::<u32>().unwrap();
            n(w[0]) < n(w[1])
        }));
    }

    #[test]
    fn queue_should_drop_renewals_of_released_leases_from_its_top() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.push_renewal(now + Duration::from_secs(1), "released".into());
        q.push_renewal(now + Duration::from_secs(30), "held".into());
        let urgent = now + Duration::from_secs(10);
        assert!(q.has_urgent(urgent));
        q.drop_stale_renewals(|name| name == "held");
        assert!(
            !q.has_urgent(urgent),
            "a released lease's renewal kept the flag up"
        );
        assert_eq!(q.pop(urgent).as_deref(), Some("held"));
    }

    /// A worker loop's state with a client that is never called (nothing is sent).
    fn idle_leases() -> (Leases, mpsc::UnboundedReceiver<Done>) {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let worker = LeaseWorker::new(
            client,
            "kwok-test".into(),
            Duration::from_secs(40),
            1,
            Arc::new(Metrics::register(
                &mut prometheus_client::registry::Registry::default(),
            )),
            Box::new(|_, _| {}),
        );
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        (Leases::new(Arc::new(worker), done_tx), done_rx)
    }

    #[tokio::test]
    async fn result_for_a_released_entry_should_not_apply_to_its_successor() {
        let (mut leases, _rx) = idle_leases();
        let manage = || LeaseMsg::Manage {
            name: "node-0".into(),
            uid: "uid-0".into(),
            fresh: false,
        };
        leases.message(manage());
        let old = leases.held["node-0"].generation;
        leases.message(LeaseMsg::Release {
            name: "node-0".into(),
        });
        leases.message(manage());
        leases.held.get_mut("node-0").unwrap().step = Step::InFlight;
        leases.apply(Done {
            name: "node-0".into(),
            generation: old,
            sent: Instant::now(),
            result: Renewed::Ok(Box::default()),
        });
        let h = &leases.held["node-0"];
        assert_eq!(
            h.step,
            Step::InFlight,
            "the stale result finished the new request"
        );
        assert!(h.renewed.is_none() && h.lease.is_none());
        assert_eq!(leases.owned, 0);
    }

    #[tokio::test]
    async fn failed_renewal_should_keep_the_lease_for_the_retry() {
        let (mut leases, _rx) = idle_leases();
        leases.message(LeaseMsg::Manage {
            name: "node-0".into(),
            uid: "uid-0".into(),
            fresh: false,
        });
        let generation = leases.held["node-0"].generation;
        let done = |result, sent| Done {
            name: "node-0".into(),
            generation,
            sent,
            result,
        };
        leases.apply(done(Renewed::Ok(Box::default()), Instant::now()));
        assert_eq!(leases.owned, 1);
        let lease = leases.held.get_mut("node-0").unwrap().lease.take();
        leases.apply(done(Renewed::Failed(lease), Instant::now()));
        let h = &leases.held["node-0"];
        assert!(h.lease.is_some(), "the retry would read the lease first");
        assert!(h.renewed.is_some(), "one failure before expiry gave the lease up");
        // Past expiry (the apiserver away longer than a lease) the node is no longer
        // driven, but our last write stays the precondition of the retry: a conditional
        // PUT takes the lease back unless someone wrote it since (issue 21: 5,000 leases
        // were taken back by a read and a write each).
        let long_ago = Instant::now() - Duration::from_secs(41);
        leases.apply(done(Renewed::Ok(Box::default()), long_ago));
        let lease = leases.held.get_mut("node-0").unwrap().lease.take();
        leases.apply(done(Renewed::Failed(lease), Instant::now()));
        let h = &leases.held["node-0"];
        assert!(h.renewed.is_none() && h.lease.is_some());
        assert_eq!(leases.owned, 0);
    }

    #[test]
    fn jittered_should_stay_within_four_percent_below() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(10));
            assert!(
                d <= Duration::from_secs(10) && d >= Duration::from_millis(9600),
                "{d:?}"
            );
        }
    }
}
