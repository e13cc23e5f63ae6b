//! The worker's state machine, without I/O: the leases it manages, their renewal
//! timers, the queue of requests due and the slots in flight. Every method takes the
//! time (and, where jitter is drawn, the random source) from its caller and returns
//! what to do as [`Command`]s; the async loop in `worker.rs` sends the requests and
//! feeds their results back as [`Done`].

use std::{collections::HashMap, sync::Arc, time::Duration};

use k8s_openapi::api::coordination::v1::Lease;
use rand::Rng;
use tokio::time::Instant;

use super::{
    Dealt, LeaseMsg, Ownership,
    decide::{self, Ended},
    fence::Fence,
    members,
    plan::Plan,
    pressure::Pressure,
    queue::Queue,
};
use crate::{
    metrics::Metrics,
    shard::Now,
    wheel::{self, Clock, Wheel},
};

/// Renewal slots double for every sixteenth of a lease duration the oldest waiting
/// request is late (see [`slots`]), this many times at most: from `--node-lease-parallelism` on time
/// (4, as upstream) to 16 times as many at a quarter duration late ([`Pressure::Behind`])
/// and 64 times at three eighths ([`Pressure::AtRisk`]).
const MAX_DOUBLINGS: u32 = 6;

/// One managed node's lease.
pub(super) struct Held {
    /// Which `Manage` made this entry: a result of a request sent for an earlier entry
    /// of the same name (released and managed again meanwhile) is not this one's.
    pub(super) generation: u64,
    uid: String,
    /// Whether to try creating the lease before reading it (a node new to the cluster).
    fresh: bool,
    pub(super) step: Step,
    timer: wheel::Key,
    /// When the renewal was meant to happen.
    due: Instant,
    /// When our last successful renewal was sent (its renewTime, near enough: expiry
    /// counts from it); `Some` means we hold it and can renew without reading.
    pub(super) renewed: Option<Instant>,
    /// The Lease as our last write left it (its managedFields as the next PUT sends
    /// them: none, or the entry that clears them). Its
    /// resourceVersion is the precondition of the next renewal, so a lease written by
    /// anyone else since is read again rather than overwritten.
    pub(super) lease: Option<Box<Lease>>,
    /// Open while `renewed` is recent enough that nobody else may have taken the
    /// Lease over (see [`Leases::hold_window`]); the shards' writes for the node check it.
    fence: Fence,
    /// Our renewals failed past the Lease's expiry, and nobody has written it since.
    lapsed: bool,
    /// `--scale-out`: whether the table deals the node to another live member, as last
    /// reported to its shard ([`Dealt`]); `None` before the first deal of this entry,
    /// which always reports (the shard may hold word for the node's previous entry).
    elsewhere: Option<bool>,
}

/// Where a held lease is between renewals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Waiting for its timer.
    Idle,
    /// Due, waiting in the queue for a slot.
    Queued,
    /// Its request is out.
    InFlight,
}

/// What the worker loop is to do.
#[derive(Debug)]
pub(super) enum Command {
    /// Send a request for a lease: a PUT of `lease` when we have it, else an acquisition.
    Send {
        name: String,
        generation: u64,
        uid: String,
        fresh: bool,
        lease: Option<Box<Lease>>,
    },
    /// Whether we hold a node's lease changed.
    Ownership(Ownership),
    /// `--scale-out`: whether the table deals a node to another member changed.
    Dealt(Dealt),
}

/// A finished request, back from its task.
#[derive(Debug)]
pub(super) struct Done {
    pub(super) name: String,
    /// The generation of the entry it was sent for.
    pub(super) generation: u64,
    /// When its request was sent: after waiting for a slot among the
    /// `--node-lease-parallelism` in flight, which is where a slow apiserver makes
    /// renewals late.
    pub(super) sent: Instant,
    pub(super) ended: Ended,
    /// The lease as the request left it (or gave it back, when it failed).
    pub(super) lease: Option<Box<Lease>>,
}

/// A Lease the start-up list showed held by our identity: a restarted kwok's, to be
/// taken back with one conditional PUT.
pub(super) struct Ours {
    lease: Box<Lease>,
    /// When it expires by our clock (its renewTime plus its duration, as listed). Its
    /// first request waits as a renewal by this expiry, not as an acquisition: nearest
    /// expiry first, and its lateness counts toward the slots.
    expires: Option<Instant>,
}

impl Ours {
    /// `lease` as listed, the clocks read `now` (just after the list).
    pub(super) fn listed(lease: Box<Lease>, now: Now) -> Self {
        let expires = members::expiry(&lease).map(|expiry| {
            let left = expiry.duration_since(now.wall);
            let by = Duration::try_from(left.abs()).unwrap_or_default();
            match left.is_negative() {
                false => now.mono + by,
                // Expired while we were away: as late as that, or as late as the clock goes.
                true => now.mono.checked_sub(by).unwrap_or(now.mono),
            }
        });
        Self { lease, expires }
    }
}

/// The leases managed and their renewal timers.
///
/// Invariants: a lease is in the queue only while [`Step::Queued`]; `in_flight` counts
/// the entries [`Step::InFlight`] plus requests of entries released since, and never
/// exceeds the slots at the time it was sent; `owned` counts the entries with
/// `renewed` set.
pub(super) struct Leases {
    duration: Duration,
    parallelism: usize,
    metrics: Arc<Metrics>,
    /// One timer per held lease: its next renewal (or look, if held elsewhere).
    wheel: Wheel<String>,
    clock: Clock,
    pub(super) held: HashMap<String, Held>,
    /// `Manage` messages taken so far: the generation of the next entry.
    generations: u64,
    /// Requests due (renewals and acquisitions), waiting for a slot.
    queue: Queue,
    /// Requests out.
    in_flight: usize,
    /// How many of `held` we hold now (the rest are held elsewhere or being read).
    pub(super) owned: usize,
    /// Largest lateness seen so far.
    latest: f64,
    /// Leases a list at start-up showed held by our identity (a restarted kwok's), not yet
    /// taken back: their first request is a conditional PUT, not a read and a write.
    ours: HashMap<String, Ours>,
    /// How far behind renewals are, as of the last send.
    pressure: Pressure,
    /// With `--scale-out`: which nodes' Leases the member table lets us hold. Without,
    /// every managed node's.
    plan: Option<Plan>,
}

impl Leases {
    /// No leases yet; leases of `duration`, `parallelism` requests at once (more at
    /// risk); `ours` are the leases the start-up list showed ours; ticks count from `now`;
    /// `plan`: with `--scale-out`, only the nodes it deals us.
    pub(super) fn new(
        duration: Duration,
        parallelism: usize,
        metrics: Arc<Metrics>,
        ours: HashMap<String, Ours>,
        now: Instant,
        plan: Option<Plan>,
    ) -> Self {
        Self {
            duration,
            parallelism: parallelism.max(1),
            metrics,
            wheel: Wheel::with_capacity(1024),
            clock: Clock::new(now),
            held: HashMap::new(),
            generations: 0,
            queue: Queue::default(),
            in_flight: 0,
            owned: 0,
            latest: 0.0,
            ours,
            pressure: Pressure::Calm,
            plan,
        }
    }

    /// The clock the timers count by, and the next timer's (or deal's) tick.
    pub(super) fn next_deadline(&self) -> (&Clock, Option<u64>) {
        let deal = self
            .plan
            .as_ref()
            .and_then(Plan::due)
            .map(|at| self.clock.deadline_tick(at));
        let next = match (self.wheel.next_deadline(), deal) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        (&self.clock, next)
    }

    /// How far behind renewals are.
    pub(super) fn pressure(&self) -> Pressure {
        self.pressure
    }

    /// How long the waiting renewal nearest expiry has left at `now`, and the requests
    /// that may then be in flight (see [`slots`]): by how late that renewal is, or how
    /// long the oldest acquisition has waited if longer (a restarted kwok takes 10,000
    /// leases back before they expire; a step of new nodes waits for theirs to be
    /// driven). Renewals of leases released meanwhile are dropped lazily; one on top
    /// would count for a lease nobody needs.
    fn waiting(&mut self, now: Instant) -> (Option<Duration>, usize) {
        let held = &self.held;
        self.queue
            .drop_stale_renewals(|name| held.get(name).is_some_and(|h| h.step == Step::Queued));
        let left = self.queue.next_expiry().map(|e| e.saturating_duration_since(now));
        // A renewal is due with three quarters of a duration left (less its jitter).
        let renewal_late = left.map_or(Duration::ZERO, |left| {
            (self.duration * 3 / 4).saturating_sub(left)
        });
        let acquisition_waited = self
            .queue
            .oldest_acquisition()
            .map_or(Duration::ZERO, |queued| now.saturating_duration_since(queued));
        let late = renewal_late.max(acquisition_waited);
        (left, slots(self.parallelism, late, self.duration))
    }

    /// A shard's message, at `now`.
    pub(super) fn message(&mut self, msg: LeaseMsg, now: Instant) {
        match msg {
            LeaseMsg::Manage { name, uid, fresh } => {
                if let Some(h) = self.held.get_mut(&name) {
                    h.uid = uid;
                    return;
                }
                let timer = self.wheel.insert(name.clone(), self.clock.deadline_tick(now));
                self.generations += 1;
                if let Some(plan) = &mut self.plan {
                    plan.nodes_changed();
                }
                let held = Held {
                    generation: self.generations,
                    uid,
                    fresh,
                    step: Step::Idle,
                    timer,
                    due: now,
                    renewed: None,
                    lease: None,
                    fence: Fence::closed(),
                    lapsed: false,
                    elsewhere: None,
                };
                self.held.insert(name, held);
            }
            LeaseMsg::Release { name } => {
                if let Some(h) = self.held.remove(&name) {
                    h.fence.close();
                    self.wheel.remove(h.timer);
                    self.owned -= usize::from(h.renewed.is_some());
                    if let Some(plan) = &mut self.plan {
                        plan.nodes_changed();
                    }
                }
            }
            LeaseMsg::Members(members) => match &mut self.plan {
                Some(plan) => plan.members(members),
                None => debug_assert!(false, "members reported without --scale-out"),
            },
        }
    }

    /// With `--scale-out`, deals the table again when due at `now`, then lets go of the
    /// leases it gave to other members (they stop being renewed; the new owner takes
    /// them over) and asks for those it gave us.
    fn deal(&mut self, now: Instant, out: &mut Vec<Command>) {
        let Some(plan) = &mut self.plan else { return };
        if !plan.deal_if_due(now, self.held.keys().map(String::as_str)) {
            return;
        }
        self.metrics.members.set(plan.member_count() as i64);
        self.metrics.nodes_dealt.set(i64::from(plan.dealt_to_me()));
        let (mut take, mut let_go) = (Vec::new(), Vec::new());
        // Told only while we are a live member: a member cut off from the others (its
        // own member Lease late) neither drops nor fetches pods until it is back. Told
        // after the Leases let go below, so a shard hears of the loss first.
        let member = plan.is_member();
        let mut dealt = Vec::new();
        for (name, h) in self.held.iter_mut().filter(|_| member) {
            let elsewhere = !plan.mine(name);
            if h.elsewhere != Some(elsewhere) {
                h.elsewhere = Some(elsewhere);
                dealt.push(Dealt {
                    node: name.clone(),
                    elsewhere,
                });
            }
        }
        for (name, h) in &self.held {
            match (plan.mine(name), h.renewed.is_some()) {
                (true, false) if h.step == Step::Idle => take.push(name.clone()),
                (false, true) => let_go.push(name.clone()),
                _ => {}
            }
        }
        for name in let_go {
            let h = self.held.get_mut(&name).expect("listed above");
            // The Lease as last written stays: if the table gives the node back before
            // anyone takes it over, one conditional PUT renews it.
            h.renewed = None;
            h.fence.close();
            self.owned -= 1;
            self.metrics.handovers.inc();
            out.push(Command::Ownership(Ownership {
                node: name,
                fence: None,
                lapsed: false,
            }));
        }
        out.extend(dealt.into_iter().map(Command::Dealt));
        // Now, not at their timers: a node dealt to us waits for nobody but its old
        // holder (see `decide::on_read`'s handover).
        for name in take {
            self.fire(name, now);
        }
    }

    /// Queues a request for every lease whose timer is due at `now`, and sends what
    /// slots allow.
    pub(super) fn fire_due(&mut self, now: Instant, out: &mut Vec<Command>) {
        self.deal(now, out);
        let tick = self.clock.now_tick(now);
        while let Some(expired) = self.wheel.poll_expired(tick) {
            self.fire(expired.value, now);
        }
        self.send_queued(now, out);
    }

    /// A lease's timer fired (or a deal gave it to us) at `now`: queue its request by
    /// urgency.
    fn fire(&mut self, name: String, now: Instant) {
        // Not ours to hold (`--scale-out`): no request until a deal gives it to us.
        if self.plan.as_ref().is_some_and(|plan| !plan.mine(&name)) {
            return;
        }
        let Some(h) = self.held.get_mut(&name) else { return };
        if h.step != Step::Idle {
            return;
        }
        h.step = Step::Queued;
        // A restarted kwok's lease is still ours until it expires: renewed by then.
        let listed = || self.ours.get(&name).and_then(|o| o.expires);
        match h.renewed.map(|renewed| renewed + self.duration).or_else(listed) {
            Some(expiry) => self.queue.push_renewal(expiry, name),
            None => self.queue.push_acquisition(now, name),
        }
    }

    /// Sends queued requests, most urgent first, while slots are free; updates the pressure.
    fn send_queued(&mut self, now: Instant, out: &mut Vec<Command>) {
        let urgent = now + self.duration / 4;
        let (_, slots) = self.waiting(now);
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
            // Taken, not cloned: its result (or a failure) gives it back. A renewal that
            // finds the lease gone or changed reads it again before writing it. Past
            // expiry (renewals failed while the apiserver was away) our last write is
            // still the precondition: if nobody took the lease over meanwhile, one PUT
            // takes it back, as the kubelet's renewal does, without a read first. After
            // a restart, a lease the start-up list showed ours is taken the same way.
            let lease = h
                .lease
                .take()
                .or_else(|| self.ours.remove(&name).map(|o| o.lease));
            out.push(Command::Send {
                generation: h.generation,
                uid: h.uid.clone(),
                fresh: std::mem::take(&mut h.fresh),
                lease,
                name,
            });
        }
        let (left, slots) = self.waiting(now);
        self.pressure = Pressure::from_left(left, self.duration);
        self.metrics.lease_pressure.set(self.pressure as i64);
        self.metrics.lease_slots.set(slots as i64);
        self.metrics.lease_queue_depth.set(self.queue.len() as i64);
    }

    /// A request finished at `now`: schedule the next one and send what waits.
    pub(super) fn finished(&mut self, done: Done, now: Instant, rng: &mut impl Rng, out: &mut Vec<Command>) {
        self.in_flight -= 1;
        self.apply(done, now, rng, out);
        self.send_queued(now, out);
    }

    pub(super) fn apply(&mut self, done: Done, now: Instant, rng: &mut impl Rng, out: &mut Vec<Command>) {
        let Done {
            name,
            generation,
            sent,
            ended,
            lease,
        } = done;
        let Some(h) = self.held.get_mut(&name) else { return };
        // Sent for an entry released since: this entry's own request (or timer) decides.
        if h.generation != generation {
            return;
        }
        h.step = Step::Idle;
        observe(&self.metrics, self.duration, &mut self.latest, h, sent);
        let was = h.renewed.is_some();
        let next = decide::next(ended, h.renewed, sent, now, self.duration, rng);
        // Dealt to another member while the request was out: written or not, let go.
        let mine = self.plan.as_ref().is_none_or(|plan| plan.mine(&name));
        h.renewed = next.renewed.filter(|_| mine);
        match h.renewed {
            Some(renewed) => h
                .fence
                .open_until(renewed + hold_window(self.duration, self.plan.is_some())),
            None => h.fence.close(),
        }
        // The lease to write next: as written, or given back by a failed renewal (it
        // was taken when the request was sent); none after a loss, so it is read again.
        h.lease = lease;
        let is = h.renewed.is_some();
        // Lost by our own renewals failing past expiry: when a write of ours lands
        // again, the node has been silent for longer than the Lease, unless another
        // holder kept it meanwhile (a read after `Lost` tells).
        h.lapsed = match ended {
            Ended::Failed => h.lapsed || (was && !is),
            Ended::Written | Ended::Lost => h.lapsed,
            Ended::HeldElsewhere(_) => false,
        };
        h.due = now + next.after;
        // The timer fired before the request went out; removing its stale key is a no-op.
        self.wheel.remove(h.timer);
        h.timer = self.wheel.insert(name.clone(), self.clock.deadline_tick(h.due));
        if was != is {
            self.owned = self.owned + usize::from(is) - usize::from(was);
            let fence = is.then(|| h.fence.clone());
            let lapsed = is && std::mem::take(&mut h.lapsed);
            out.push(Command::Ownership(Ownership {
                node: name,
                fence,
                lapsed,
            }));
        }
    }
}

/// How long after a successful renewal of a Lease of `duration` we may still write for
/// its node: until another kwok may take the Lease over. Without `--scale-out` that is
/// its expiry; with it, a member the table dealt the node to takes it over once it has
/// gone un-renewed for [`kwok_members::handover::held_for`] a renewal interval.
fn hold_window(duration: Duration, scale_out: bool) -> Duration {
    match scale_out {
        true => kwok_members::handover::held_for(duration / 4),
        false => duration,
    }
}

/// Requests in flight at most for leases of `duration` when the oldest waiting request
/// is `late`: `parallelism`, doubled for every sixteenth of a duration late, at most
/// [`MAX_DOUBLINGS`] times.
///
/// On time, few: on a saturated apiserver renewals then grow late, as upstream's do
/// (10,000 kubelets' would not), and the scheduler's and the workload's requests keep
/// their share of its CPU (`capacity` with APF held 6,000 nodes with 4 in flight, 3,000
/// with 64: `perf/results/2026-12-05-capacity-apf*`). Late, many: a share of a saturated
/// apiserver follows the requests in flight, and the load may come from other clients
/// (a load generator with 512 creates in flight), which the shards cannot hold back;
/// 10,000 kubelets would have 10,000 out. Doubling per step reaches the old fixed 64
/// (256 at risk) before a lease is in danger.
fn slots(parallelism: usize, late: Duration, duration: Duration) -> usize {
    let step = (duration / 16).max(Duration::from_millis(1));
    let doublings = (late.as_nanos() / step.as_nanos()).min(u128::from(MAX_DOUBLINGS)) as u32;
    parallelism.saturating_mul(1 << doublings)
}

/// Lateness and expiry of `h`'s renewal sent at `sent` (before `h` is updated by its
/// result): measured when the request left, not when its timer fired, so time spent
/// waiting for a free slot counts. `latest` is the largest lateness so far.
fn observe(metrics: &Metrics, duration: Duration, latest: &mut f64, h: &Held, sent: Instant) {
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
    if h.renewed.is_some_and(|r| sent.duration_since(r) >= duration) {
        metrics.leases_expired.inc();
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::SmallRng};

    use super::{super::plan::Plan, *};

    const DURATION: Duration = Duration::from_secs(40);

    /// No leases, one slot, ticks from `now`.
    fn leases(now: Instant) -> Leases {
        let metrics = Metrics::unregistered();
        Leases::new(DURATION, 1, Arc::new(metrics), HashMap::new(), now, None)
    }

    fn manage(name: &str) -> LeaseMsg {
        LeaseMsg::Manage {
            name: name.into(),
            uid: format!("uid-{name}"),
            fresh: false,
        }
    }

    fn done(name: &str, generation: u64, sent: Instant, ended: Ended, lease: Option<Box<Lease>>) -> Done {
        Done {
            name: name.into(),
            generation,
            sent,
            ended,
            lease,
        }
    }

    /// `name`'s request, sent at `at`, wrote its lease; its result comes back at `at`.
    fn written(leases: &mut Leases, name: &str, at: Instant, rng: &mut SmallRng, out: &mut Vec<Command>) {
        let generation = leases.held[name].generation;
        leases.finished(
            done(name, generation, at, Ended::Written, Some(Box::default())),
            at,
            rng,
            out,
        );
    }

    /// The nodes `out` reports dealt elsewhere (`true`) or back (`false`), sorted.
    fn dealt(out: &[Command]) -> Vec<(String, bool)> {
        let mut dealt: Vec<_> = out
            .iter()
            .filter_map(|c| match c {
                Command::Dealt(d) => Some((d.node.clone(), d.elsewhere)),
                _ => None,
            })
            .collect();
        dealt.sort();
        dealt
    }

    /// The names of the leases `out` sends requests for, and the ownership changes.
    fn sent(out: &mut Vec<Command>) -> (Vec<String>, Vec<(String, bool)>) {
        let (mut sends, mut owners) = (Vec::new(), Vec::new());
        for command in out.drain(..) {
            match command {
                Command::Send { name, .. } => sends.push(name),
                Command::Ownership(o) => owners.push((o.node, o.fence.is_some())),
                Command::Dealt(_) => {}
            }
        }
        (sends, owners)
    }

    #[test]
    fn a_managed_lease_should_be_acquired_then_renewed_a_quarter_duration_later_one_slot_at_a_time() {
        let t0 = Instant::now();
        let (mut leases, mut rng, mut out) = (leases(t0), SmallRng::seed_from_u64(1), Vec::new());
        leases.message(manage("a"), t0);
        leases.message(manage("b"), t0);
        leases.fire_due(t0, &mut out);
        assert_eq!(
            sent(&mut out),
            (vec!["a".to_owned()], vec![]),
            "one slot: b waits"
        );
        written(&mut leases, "a", t0, &mut rng, &mut out);
        assert_eq!(
            sent(&mut out),
            (vec!["b".to_owned()], vec![("a".to_owned(), true)]),
            "the freed slot goes to b; a is ours"
        );
        assert_eq!(leases.owned, 1);
        // a's writes may go out until the Lease would expire, counted from the send.
        let fence = &leases.held["a"].fence;
        assert!(fence.is_open(t0 + DURATION - Duration::from_millis(1)));
        assert!(!fence.is_open(t0 + DURATION), "expired: another may hold it");
        // Nothing is due before the renewal interval (10 s less up to 4 %).
        leases.fire_due(t0 + Duration::from_millis(9_500), &mut out);
        assert!(out.is_empty());
        let generation = leases.held["b"].generation;
        leases.finished(
            done(
                "b",
                generation,
                t0,
                Ended::HeldElsewhere(Duration::from_secs(30)),
                None,
            ),
            t0,
            &mut rng,
            &mut out,
        );
        assert!(out.is_empty(), "b is not ours and nothing waits");
        leases.fire_due(t0 + Duration::from_secs(10), &mut out);
        let renewal = out.pop();
        assert!(
            matches!(&renewal, Some(Command::Send { name, lease: Some(_), .. }) if name == "a"),
            "a is renewed with our last write as the precondition: {renewal:?}"
        );
    }

    #[test]
    fn result_for_a_released_entry_should_not_apply_to_its_successor() {
        let t0 = Instant::now();
        let (mut leases, mut rng, mut out) = (leases(t0), SmallRng::seed_from_u64(1), Vec::new());
        leases.message(manage("node-0"), t0);
        let old = leases.held["node-0"].generation;
        leases.message(
            LeaseMsg::Release {
                name: "node-0".into(),
            },
            t0,
        );
        leases.message(manage("node-0"), t0);
        leases.held.get_mut("node-0").unwrap().step = Step::InFlight;
        leases.apply(
            done("node-0", old, t0, Ended::Written, Some(Box::default())),
            t0,
            &mut rng,
            &mut out,
        );
        let h = &leases.held["node-0"];
        assert_eq!(
            h.step,
            Step::InFlight,
            "the stale result finished the new request"
        );
        assert!(h.renewed.is_none() && h.lease.is_none());
        assert_eq!(leases.owned, 0);
        assert!(out.is_empty());
    }

    #[test]
    fn slots_should_double_for_every_sixteenth_of_a_duration_late_up_to_64_times() {
        let slots = |late_ms| slots(4, Duration::from_millis(late_ms), DURATION);
        assert_eq!(slots(0), 4, "on time: as upstream");
        assert_eq!(slots(2_499), 4);
        assert_eq!(slots(2_500), 8);
        assert_eq!(slots(5_000), 16);
        assert_eq!(slots(10_000), 64, "behind: a quarter duration late");
        assert_eq!(slots(15_000), 256, "at risk: three eighths late");
        assert_eq!(slots(40_000), 256, "no more past that");
        let huge = super::slots(usize::MAX / 2, Duration::from_secs(40), DURATION);
        assert_eq!(huge, usize::MAX, "saturates rather than wraps to no slots");
    }

    #[test]
    fn more_renewals_should_go_out_at_once_as_they_run_late() {
        let t0 = Instant::now();
        let (mut leases, mut rng, mut out) = (leases(t0), SmallRng::seed_from_u64(1), Vec::new());
        let names = ["a", "b", "c", "d", "e", "f"];
        for name in names {
            leases.message(manage(name), t0);
        }
        leases.fire_due(t0, &mut out);
        // One slot: each acquisition's result sends the next.
        for _ in names {
            let (sends, _) = sent(&mut out);
            let [name] = &sends[..] else {
                panic!("one at a time: {sends:?}")
            };
            written(&mut leases, name, t0, &mut rng, &mut out);
        }
        assert_eq!(leases.owned, names.len());
        let in_flight_after = |leases: &mut Leases, at: Duration, out: &mut Vec<Command>| {
            leases.fire_due(t0 + at, out);
            sent(out);
            leases.in_flight
        };
        // All six due by 10 s; the one slot holds while they are under 2.5 s late.
        assert_eq!(in_flight_after(&mut leases, Duration::from_secs(10), &mut out), 1);
        assert_eq!(
            in_flight_after(&mut leases, Duration::from_millis(12_400), &mut out),
            1
        );
        assert_eq!(
            in_flight_after(&mut leases, Duration::from_millis(12_500), &mut out),
            2
        );
        assert_eq!(in_flight_after(&mut leases, Duration::from_secs(15), &mut out), 4);
        assert_eq!(leases.pressure(), Pressure::Calm, "two still wait, 5 s late");
        assert_eq!(in_flight_after(&mut leases, Duration::from_secs(20), &mut out), 6);
        assert_eq!(leases.queue.len(), 0);
    }

    #[test]
    fn more_acquisitions_should_go_out_at_once_as_they_wait() {
        let t0 = Instant::now();
        let (mut leases, mut out) = (leases(t0), Vec::new());
        for name in ["a", "b", "c", "d", "e"] {
            leases.message(manage(name), t0);
        }
        let mut in_flight_after = |at: Duration| {
            leases.fire_due(t0 + at, &mut out);
            leases.in_flight
        };
        assert_eq!(in_flight_after(Duration::ZERO), 1, "one slot");
        assert_eq!(in_flight_after(Duration::from_millis(2_400)), 1);
        assert_eq!(in_flight_after(Duration::from_millis(2_500)), 2);
        assert_eq!(in_flight_after(Duration::from_secs(5)), 4);
        assert_eq!(in_flight_after(Duration::from_secs(8)), 5);
    }

    #[test]
    fn a_restarted_kwoks_leases_should_wait_as_renewals_by_their_expiry() {
        use k8s_openapi::{api::coordination::v1::LeaseSpec, apimachinery::pkg::apis::meta::v1::MicroTime};
        let now = Now::read();
        let (t0, wall) = (now.mono, now.wall);
        // Listed as ours: renewed `ago` seconds before the list, for 40 s.
        let listed = |ago: i64| {
            let spec = LeaseSpec {
                holder_identity: Some("kwok".into()),
                lease_duration_seconds: Some(40),
                renew_time: Some(MicroTime(wall - jiff::SignedDuration::from_secs(ago))),
                ..LeaseSpec::default()
            };
            let lease = Lease {
                spec: Some(spec),
                ..Lease::default()
            };
            Ours::listed(Box::new(lease), now)
        };
        let ours = HashMap::from([("a".to_owned(), listed(35)), ("b".to_owned(), listed(12))]);
        assert_eq!(ours["a"].expires, Some(t0 + Duration::from_secs(5)));
        assert_eq!(
            listed(50).expires,
            Some(t0 - Duration::from_secs(10)),
            "expired while kwok was away"
        );
        let metrics = Metrics::unregistered();
        let mut leases = Leases::new(DURATION, 1, Arc::new(metrics), ours, t0, None);
        for name in ["c", "b", "a"] {
            leases.message(manage(name), t0);
        }
        let mut out = Vec::new();
        leases.fire_due(t0, &mut out);
        let sends: Vec<_> = out
            .iter()
            .filter_map(|c| match c {
                Command::Send { name, lease, .. } => Some((name.as_str(), lease.is_some())),
                _ => None,
            })
            .collect();
        // a expires in 5 s, 25 s past its renewal: urgent, and late enough for 64 slots.
        // Then the acquisition of the new c, then b (28 s left), each of ours a PUT.
        assert_eq!(sends, [("a", true), ("c", false), ("b", true)]);
    }

    #[test]
    fn failed_renewal_should_keep_the_lease_for_the_retry() {
        let t0 = Instant::now();
        let (mut leases, mut rng, mut out) = (leases(t0), SmallRng::seed_from_u64(1), Vec::new());
        leases.message(manage("node-0"), t0);
        let generation = leases.held["node-0"].generation;
        let now = t0 + Duration::from_secs(60);
        leases.apply(
            done("node-0", generation, now, Ended::Written, Some(Box::default())),
            now,
            &mut rng,
            &mut out,
        );
        assert_eq!(leases.owned, 1);
        let lease = leases.held.get_mut("node-0").unwrap().lease.take();
        leases.apply(
            done("node-0", generation, now, Ended::Failed, lease),
            now,
            &mut rng,
            &mut out,
        );
        let h = &leases.held["node-0"];
        assert!(h.lease.is_some(), "the retry would read the lease first");
        assert!(h.renewed.is_some(), "one failure before expiry gave the lease up");
        // Past expiry (the apiserver away longer than a lease) the node is no longer
        // driven, but our last write stays the precondition of the retry: a conditional
        // PUT takes the lease back unless someone wrote it since (issue 21: 5,000 leases
        // were taken back by a read and a write each).
        let long_ago = now - Duration::from_secs(41);
        leases.apply(
            done(
                "node-0",
                generation,
                long_ago,
                Ended::Written,
                Some(Box::default()),
            ),
            now,
            &mut rng,
            &mut out,
        );
        let lease = leases.held.get_mut("node-0").unwrap().lease.take();
        leases.apply(
            done("node-0", generation, now, Ended::Failed, lease),
            now,
            &mut rng,
            &mut out,
        );
        let h = &leases.held["node-0"];
        assert!(h.renewed.is_none() && h.lease.is_some());
        assert_eq!(leases.owned, 0);
        assert_eq!(
            sent(&mut out).1,
            [("node-0".to_owned(), true), ("node-0".to_owned(), false)]
        );
    }

    /// Issue 21: a lease our own failed renewals let expire (the apiserver away longer
    /// than it lasts) is reported lapsed when a write of ours lands again, once; a
    /// lease held elsewhere meanwhile is not.
    #[test]
    fn a_lease_taken_back_after_our_renewals_ran_past_expiry_should_be_reported_lapsed() {
        let t0 = Instant::now();
        let (mut leases, mut rng, mut out) = (leases(t0), SmallRng::seed_from_u64(1), Vec::new());
        leases.message(manage("node-0"), t0);
        let generation = leases.held["node-0"].generation;
        let mut apply = |leases: &mut Leases, sent: Instant, now: Instant, ended: Ended| {
            let lease = leases.held.get_mut("node-0").unwrap().lease.take();
            let lease = lease.or_else(|| Some(Box::default()));
            leases.apply(
                done("node-0", generation, sent, ended, lease),
                now,
                &mut rng,
                &mut out,
            );
            out.drain(..)
                .filter_map(|c| match c {
                    Command::Ownership(o) => Some((o.fence.is_some(), o.lapsed)),
                    Command::Send { .. } | Command::Dealt(_) => None,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(apply(&mut leases, t0, t0, Ended::Written), [(true, false)]);
        let before_expiry = t0 + DURATION - Duration::from_secs(1);
        assert_eq!(
            apply(&mut leases, before_expiry, before_expiry, Ended::Failed),
            []
        );
        let past = t0 + DURATION + Duration::from_secs(1);
        assert_eq!(apply(&mut leases, past, past, Ended::Failed), [(false, false)]);
        assert_eq!(apply(&mut leases, past, past, Ended::Failed), []);
        // The conditional PUT met a changed lease; the read finds it ours to take.
        assert_eq!(apply(&mut leases, past, past, Ended::Lost), []);
        assert_eq!(apply(&mut leases, past, past, Ended::Written), [(true, true)]);
        // Told once: a later loss and take-back by a read is an ordinary one.
        assert_eq!(apply(&mut leases, past, past, Ended::Lost), [(false, false)]);
        assert_eq!(apply(&mut leases, past, past, Ended::Written), [(true, false)]);
        // Lapsed again, but another holder kept it meanwhile: it sent the heartbeats.
        let later = past + DURATION + Duration::from_secs(1);
        assert_eq!(apply(&mut leases, later, later, Ended::Failed), [(false, false)]);
        assert_eq!(
            apply(&mut leases, later, later, Ended::HeldElsewhere(DURATION)),
            []
        );
        assert_eq!(apply(&mut leases, later, later, Ended::Written), [(true, false)]);
    }

    /// `--scale-out`: only the nodes the table deals us are asked for; a node dealt
    /// away is let go at the next deal (no renewal, ownership reported lost), and a
    /// deal that gives it back asks for it at once.
    #[test]
    fn with_scale_out_only_the_nodes_dealt_to_us_should_be_held() {
        let t0 = Instant::now();
        let metrics = Arc::new(Metrics::unregistered());
        let plan = Plan::new("us".into(), t0);
        let mut leases = Leases::new(DURATION, 64, metrics.clone(), HashMap::new(), t0, Some(plan));
        let (mut rng, mut out) = (SmallRng::seed_from_u64(1), Vec::new());
        let names: Vec<String> = (0..20).map(|i| format!("node-{i}")).collect();
        for name in &names {
            leases.message(manage(name), t0);
        }
        leases.fire_due(t0, &mut out);
        assert_eq!(
            sent(&mut out),
            (vec![], vec![]),
            "no members known yet: nothing is ours"
        );

        leases.message(LeaseMsg::Members(vec!["them".into(), "us".into()]), t0);
        let t1 = t0 + super::super::plan::REDEAL_EVERY;
        leases.fire_due(t1, &mut out);
        let told = dealt(&out);
        let (mut ours, _) = sent(&mut out);
        ours.sort();
        let table = kwok_members::Table::deal(["us", "them"], &names);
        let mut every: Vec<(String, bool)> = names
            .iter()
            .map(|n| (n.clone(), table.owner(n) == Some("them")))
            .collect();
        every.sort();
        assert_eq!(told, every, "the shards hear which nodes are dealt elsewhere");
        let theirs: Vec<(String, bool)> = every.iter().filter(|(_, e)| *e).cloned().collect();
        let mut want: Vec<String> = names
            .iter()
            .filter(|n| table.owner(n) == Some("us"))
            .cloned()
            .collect();
        want.sort();
        assert_eq!(ours, want, "the nodes the table deals us, and only those");
        assert!(!ours.is_empty() && ours.len() < names.len());
        for name in &ours {
            written(&mut leases, name, t1, &mut rng, &mut out);
        }
        out.clear();
        assert_eq!(leases.owned, ours.len());
        assert_eq!(metrics.nodes_dealt.get(), ours.len() as i64);
        // With scale-out a node's writes stop where a member dealt it may take it
        // over: one renewal interval and a half after the renewal was sent.
        let fence = leases.held[&ours[0]].fence.clone();
        let handover = kwok_members::handover::held_for(DURATION / 4);
        assert!(fence.is_open(t1 + handover - Duration::from_millis(1)));
        assert!(!fence.is_open(t1 + handover));

        // We stop being a member (fenced): everything is let go at the next deal, which
        // waits for REDEAL_EVERY after the last.
        leases.message(LeaseMsg::Members(vec!["them".into()]), t1);
        leases.fire_due(t1, &mut out);
        assert!(out.is_empty(), "dealt again only a second after the last deal");
        let t2 = t1 + super::super::plan::REDEAL_EVERY;
        leases.fire_due(t2, &mut out);
        assert_eq!(
            dealt(&out),
            [],
            "no longer a member: nothing dealt elsewhere or back"
        );
        let (sends, lost) = sent(&mut out);
        assert!(sends.is_empty());
        assert_eq!(lost.len(), ours.len());
        assert!(lost.iter().all(|(_, held)| !held));
        assert!(!fence.is_open(t2), "a node let go is fenced at once");
        assert_eq!(leases.owned, 0);
        assert_eq!(metrics.handovers.get(), ours.len() as u64);
        // Their timers fire: no renewal of a node dealt away.
        leases.fire_due(t2 + DURATION, &mut out);
        assert_eq!(sent(&mut out), (vec![], vec![]));

        // Back as the only member: every node is asked for at once, ours with our last
        // write as the precondition.
        leases.message(LeaseMsg::Members(vec!["us".into()]), t2);
        let t3 = t2 + DURATION + super::super::plan::REDEAL_EVERY;
        leases.fire_due(t3, &mut out);
        let back: Vec<(String, bool)> = theirs.iter().map(|(n, _)| (n.clone(), false)).collect();
        assert_eq!(
            dealt(&out),
            back,
            "the nodes dealt elsewhere before are ours again"
        );
        let mut again = Vec::new();
        for command in out.drain(..) {
            if let Command::Send { name, lease, .. } = command {
                assert_eq!(lease.is_some(), ours.contains(&name), "{name}");
                again.push(name);
            }
        }
        assert_eq!(again.len(), names.len());
    }
}
