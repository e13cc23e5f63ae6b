//! The lease worker: owns every managed node's Lease in `kube-node-lease`, renewing
//! each at a quarter of its duration with jitter (as the kubelet does), many
//! renewals in flight at once, and measures how late each renewal was.
//!
//! A Lease held, unexpired, by another holder is left alone and looked at again when
//! it would expire, so two controllers never both drive a node's lease. Renewals
//! carry the resourceVersion of our last write as a precondition, so a lease taken
//! over meanwhile is never taken back blindly. Every change of who holds a node's
//! lease is reported (`on_ownership`), so shards drive only the nodes we hold.

use std::{collections::HashMap, sync::Arc, time::Duration};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use rand::Rng;
use serde_json::json;
use tokio::{
    sync::{Semaphore, mpsc},
    time::Instant,
};
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
    uid: String,
    timer: wheel::Key,
    /// When the renewal was meant to happen.
    due: Instant,
    /// When we last renewed it; `Some` means we hold it and can patch without reading.
    renewed: Option<Instant>,
    /// resourceVersion of our last write: the precondition of the next renewal.
    rv: String,
}

/// The worker.
pub struct LeaseWorker {
    client: Client,
    holder: String,
    duration: Duration,
    metrics: Arc<Metrics>,
    in_flight: Arc<Semaphore>,
    on_ownership: OnOwnership,
}

/// Result of one renewal attempt, sent back to the worker loop.
enum Renewed {
    /// Renewed (or created), now at this resourceVersion; renew again after the normal interval.
    Ok(String),
    /// Our lease vanished or changed hands: read it before the next renewal.
    Lost,
    /// Another holder has it until this many seconds from now.
    HeldElsewhere(Duration),
    /// Failed; retry soon.
    Failed,
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
            in_flight: Arc::new(Semaphore::new(parallelism)),
            on_ownership,
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
        let mut leases = Leases {
            worker: Arc::new(self),
            wheel: Wheel::with_capacity(1024),
            clock: Clock::new(Instant::now()),
            held: HashMap::new(),
            owned: 0,
            latest: 0.0,
            done_tx,
        };
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

    /// Acquisition: read the lease; create it if missing; take it if ours or expired;
    /// respect another live holder.
    async fn renew(&self, name: &str, uid: &str) -> Renewed {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), NAMESPACE);
        let current = match api.get_opt(name).await {
            Ok(current) => current,
            Err(e) => {
                warn!(lease = name, error = %e, "failed to read lease");
                return Renewed::Failed;
            }
        };
        self.metrics.count("get", "200");
        let now = Timestamp::now();
        let Some(lease) = current else {
            return self.create(&api, name, uid, now).await;
        };
        let spec = lease.spec.unwrap_or_default();
        let holder = spec.holder_identity.unwrap_or_default();
        let renewed = spec.renew_time.map(|t| t.0);
        let seconds = spec.lease_duration_seconds.unwrap_or(0).max(0) as u64;
        let expires = renewed.map(|r| r + Duration::from_secs(seconds));
        if holder != self.holder && !holder.is_empty() && expires.is_some_and(|e| e > now) {
            let left = expires
                .map(|e| e.duration_since(now))
                .and_then(|d| Duration::try_from(d).ok());
            return Renewed::HeldElsewhere(left.unwrap_or_default());
        }
        let rv = lease.metadata.resource_version.unwrap_or_default();
        self.patch(name, &rv).await
    }

    /// Renewal of a lease we hold: one merge patch, no read, valid only if nobody
    /// wrote the lease since our last write (`rv`).
    async fn patch(&self, name: &str, rv: &str) -> Renewed {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), NAMESPACE);
        let patch = json!({
            "metadata": {"resourceVersion": rv},
            "spec": {
                "holderIdentity": self.holder,
                "leaseDurationSeconds": self.duration.as_secs(),
                "renewTime": micro_time(Timestamp::now()),
            },
        });
        let start = std::time::Instant::now();
        let result = api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        let seconds = start.elapsed().as_secs_f64();
        match result {
            Ok(lease) => {
                self.metrics.request("patch", "200", seconds);
                Renewed::Ok(lease.metadata.resource_version.unwrap_or_default())
            }
            // Gone, or written by someone else since our last write: read it again.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
                self.metrics.request("patch", &s.code.to_string(), seconds);
                Renewed::Lost
            }
            Err(e) => {
                warn!(lease = name, error = %e, "failed to renew lease");
                Renewed::Failed
            }
        }
    }

    async fn create(&self, api: &Api<Lease>, name: &str, uid: &str, now: Timestamp) -> Renewed {
        let lease: Lease = match serde_json::from_value(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": { "name": name, "namespace": NAMESPACE, "ownerReferences": [{
                "apiVersion": "v1", "kind": "Node", "name": name, "uid": uid,
            }]},
            "spec": {
                "holderIdentity": self.holder,
                "leaseDurationSeconds": self.duration.as_secs(),
                "renewTime": micro_time(now),
                "acquireTime": micro_time(now),
            },
        })) {
            Ok(lease) => lease,
            Err(e) => {
                warn!(lease = name, error = %e, "failed to build lease");
                return Renewed::Failed;
            }
        };
        match api.create(&PostParams::default(), &lease).await {
            Ok(lease) => {
                debug!(lease = name, "created");
                self.metrics.count("create", "201");
                Renewed::Ok(lease.metadata.resource_version.unwrap_or_default())
            }
            // Another controller created it first: read who holds it.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                self.metrics.count("create", "409");
                Renewed::Lost
            }
            Err(e) => {
                warn!(lease = name, error = %e, "failed to create lease");
                Renewed::Failed
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
    /// How many of `held` we hold now (the rest are held elsewhere or being read).
    owned: usize,
    /// Largest lateness seen so far.
    latest: f64,
    done_tx: mpsc::UnboundedSender<Done>,
}

/// A finished renewal attempt, back from its task.
struct Done {
    name: String,
    /// When its request was sent: after waiting for a slot among the
    /// `--node-lease-parallelism` in flight, which is where a slow apiserver makes
    /// renewals late.
    sent: Instant,
    result: Renewed,
}

impl Leases {
    fn message(&mut self, msg: LeaseMsg) {
        match msg {
            LeaseMsg::Manage { name, uid } => {
                if let Some(h) = self.held.get_mut(&name) {
                    h.uid = uid;
                    return;
                }
                let due = Instant::now();
                let timer = self.wheel.insert(name.clone(), self.clock.deadline_tick(due));
                let held = Held {
                    uid,
                    timer,
                    due,
                    renewed: None,
                    rv: String::new(),
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

    fn fire(&mut self, name: String) {
        let Some(h) = self.held.get(&name) else { return };
        let (worker, done, uid) = (self.worker.clone(), self.done_tx.clone(), h.uid.clone());
        let rv = h.renewed.is_some().then(|| h.rv.clone());
        tokio::spawn(async move {
            let _permit = worker.in_flight.acquire().await;
            let sent = Instant::now();
            let result = match rv {
                Some(rv) => worker.patch(&name, &rv).await,
                None => worker.renew(&name, &uid).await,
            };
            let _ = done.send(Done { name, sent, result });
        });
    }

    /// A renewal finished: schedule the next one.
    fn renewed(&mut self, Done { name, sent, result }: Done) {
        let Some(h) = self.held.get_mut(&name) else { return };
        observe(&self.worker, &mut self.latest, h, sent);
        let now = Instant::now();
        let was = h.renewed.is_some();
        let after = match result {
            Renewed::Ok(rv) => {
                h.renewed = Some(now);
                h.rv = rv;
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
            Renewed::Failed => {
                if h.renewed
                    .is_some_and(|r| now.duration_since(r) >= self.worker.duration)
                {
                    h.renewed = None;
                }
                Duration::from_secs(1)
            }
        };
        let is = h.renewed.is_some();
        h.due = now + after;
        // A Release + Manage while the renewal was in flight left a timer: one is enough.
        self.wheel.remove(h.timer);
        h.timer = self.wheel.insert(name.clone(), self.clock.deadline_tick(h.due));
        if was != is {
            self.owned = self.owned + usize::from(is) - usize::from(was);
            (self.worker.on_ownership)(&name, is);
        }
    }
}

/// Lateness and expiry of `h`'s renewal sent at `sent` (before `h` is updated by its
/// result): measured when the request left, not when its timer fired, so time spent
/// waiting for a free slot counts. `latest` is the largest lateness so far.
fn observe(worker: &LeaseWorker, latest: &mut f64, h: &Held, sent: Instant) {
    let metrics = &worker.metrics;
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

/// Kubernetes MicroTime: RFC 3339 with microseconds.
fn micro_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
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
    fn micro_time_should_have_six_fraction_digits() {
        let t: Timestamp = "2026-01-02T03:04:05.123456789Z".parse().unwrap();
        assert_eq!(micro_time(t), "2026-01-02T03:04:05.123456Z");
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
