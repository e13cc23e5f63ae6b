//! Latencies from watch events: one [`Recorder`] notes when loadgen asked for something
//! and when a watch showed it done, into hdrhistograms per phase.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use k8s_openapi::api::{
    coordination::v1::Lease,
    core::v1::{Node, Pod},
};

use crate::report::{HoldLeaseReport, LeaseReport, Percentiles, PhaseReport};

/// Microseconds up to one hour, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid")
}

/// Latency phases, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Node create sent → Ready=True seen.
    NodeReady,
    /// Pod created → PodScheduled=True seen.
    PodScheduled,
    /// PodScheduled → Running with all containers ready (kwok's share).
    PodScheduledToRunning,
    /// Pod created → Running with all containers ready (pod startup latency).
    PodRunning,
    /// Node delete sent → gone.
    NodeGone,
    /// Pod delete sent → gone.
    PodGone,
}

impl Phase {
    /// Report name.
    pub fn name(self) -> &'static str {
        match self {
            Phase::NodeReady => "node created→ready",
            Phase::PodScheduled => "pod created→scheduled",
            Phase::PodScheduledToRunning => "pod scheduled→running",
            Phase::PodRunning => "pod created→running",
            Phase::NodeGone => "node delete→gone",
            Phase::PodGone => "pod delete→gone",
        }
    }
}

#[derive(Debug, Default)]
struct Track {
    created: Option<Instant>,
    scheduled: Option<Instant>,
    done: bool,
    deleted: Option<Instant>,
    /// A watch has shown the object (it exists in the apiserver).
    seen: bool,
    /// Nodes: a watch has shown it ready for pods ([`node_schedulable`]).
    schedulable: bool,
}

/// Counts of objects in each state, for progress and waiting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Node creates that succeeded.
    pub nodes_created: u64,
    /// Nodes seen Ready.
    pub nodes_ready: u64,
    /// Nodes seen ready for pods ([`node_schedulable`]) at least once.
    pub nodes_schedulable: u64,
    /// Nodes seen gone after loadgen deleted them.
    pub nodes_gone: u64,
    /// Pods seen (created by loadgen or by a controller).
    pub pods_seen: u64,
    /// Pods seen bound to a node.
    pub pods_scheduled: u64,
    /// Pods seen Running with all containers ready (or Succeeded, for Jobs).
    pub pods_running: u64,
    /// Pods seen gone.
    pub pods_gone: u64,
    /// Pods that exist now (seen and not gone).
    pub pods_live: u64,
}

/// Lease renewals seen for this run's nodes.
#[derive(Debug)]
struct Leases {
    last: HashMap<String, (jiff::Timestamp, u32)>,
    intervals: Histogram<u64>,
    lateness: Histogram<u64>,
    expired: u64,
    /// The same from the start of the hold phase on, when the nodes sit idle.
    hold: Option<HoldLeases>,
}

/// Renewals that ended during the hold phase.
#[derive(Debug)]
struct HoldLeases {
    since: jiff::Timestamp,
    intervals: Histogram<u64>,
    expired: u64,
}

/// Everything measured in one run. Lock it briefly; every method is O(1).
#[derive(Debug)]
pub struct Recorder {
    started: Instant,
    nodes: HashMap<String, Track>,
    pods: HashMap<String, Track>,
    phases: BTreeMap<Phase, Histogram<u64>>,
    /// First and last event of each phase, for achieved rates.
    spans: BTreeMap<Phase, (Instant, Instant)>,
    counts: Counts,
    created_nodes: Vec<String>,
    errors: BTreeMap<String, u64>,
    leases: Leases,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder; rates are measured from now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            nodes: HashMap::new(),
            pods: HashMap::new(),
            phases: BTreeMap::new(),
            spans: BTreeMap::new(),
            counts: Counts::default(),
            created_nodes: Vec::new(),
            errors: BTreeMap::new(),
            leases: Leases {
                last: HashMap::new(),
                intervals: histogram(),
                lateness: histogram(),
                expired: 0,
                hold: None,
            },
        }
    }

    /// Current counts.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    fn record(&mut self, phase: Phase, from: Instant, to: Instant) {
        let us = to
            .saturating_duration_since(from)
            .as_micros()
            .clamp(1, 3_600_000_000) as u64;
        self.phases
            .entry(phase)
            .or_insert_with(histogram)
            .saturating_record(us);
        let span = self.spans.entry(phase).or_insert((to, to));
        span.0 = span.0.min(to);
        span.1 = span.1.max(to);
    }

    /// Counts an error (or a retry) by kind.
    pub fn error(&mut self, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
    }

    /// A node create is about to be sent.
    pub fn node_create_sent(&mut self, name: &str, at: Instant) {
        self.nodes.entry(name.to_owned()).or_default().created = Some(at);
    }

    /// A node create succeeded.
    pub fn node_created(&mut self, name: &str) {
        self.counts.nodes_created += 1;
        self.created_nodes.push(name.to_owned());
    }

    /// Names of the nodes loadgen created, in order.
    pub fn created_nodes(&self) -> Vec<String> {
        self.created_nodes.clone()
    }

    /// Keys of every pod that exists now.
    pub fn all_pods(&self) -> Vec<String> {
        self.pods
            .iter()
            .filter(|(_, t)| t.seen && t.deleted.is_none())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// A pod create (by loadgen) is about to be sent.
    pub fn pod_create_sent(&mut self, key: &str, at: Instant) {
        self.pods.entry(key.to_owned()).or_default().created = Some(at);
    }

    /// A delete is about to be sent.
    pub fn node_delete_sent(&mut self, name: &str, at: Instant) {
        if let Some(t) = self.nodes.get_mut(name) {
            t.deleted.get_or_insert(at);
        }
    }

    /// A pod delete (or its namespace's) is about to be sent.
    pub fn pod_delete_sent(&mut self, key: &str, at: Instant) {
        if let Some(t) = self.pods.get_mut(key) {
            t.deleted.get_or_insert(at);
        }
    }

    /// Keys (`namespace/name`) of pods seen running and not being deleted.
    pub fn running_pods(&self) -> Vec<String> {
        self.pods
            .iter()
            .filter(|(_, t)| t.seen && t.done && t.deleted.is_none())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// A watch showed `node` (applied or listed).
    pub fn node_seen(&mut self, node: &Node, at: Instant) {
        let Some(name) = node.metadata.name.as_deref() else {
            return;
        };
        let t = self.nodes.entry(name.to_owned()).or_default();
        t.seen = true;
        if !t.schedulable && node_schedulable(node) {
            t.schedulable = true;
            self.counts.nodes_schedulable += 1;
        }
        if t.done || !node_ready(node) {
            return;
        }
        t.done = true;
        let created = t.created.unwrap_or(at);
        self.counts.nodes_ready += 1;
        self.record(Phase::NodeReady, created, at);
    }

    /// A watch showed `node` deleted.
    pub fn node_deleted(&mut self, name: &str, at: Instant) {
        if let Some(t) = self.nodes.remove(name) {
            self.counts.nodes_gone += 1;
            if let Some(d) = t.deleted {
                self.record(Phase::NodeGone, d, at);
            }
        }
    }

    /// A watch showed `pod` (applied or listed).
    pub fn pod_seen(&mut self, pod: &Pod, at: Instant) {
        let t = self.pods.entry(pod_key(pod)).or_default();
        // Made by a controller: the first event is the earliest moment we know of.
        let created = *t.created.get_or_insert(at);
        if !t.seen {
            t.seen = true;
            self.counts.pods_seen += 1;
            self.counts.pods_live += 1;
        }
        let mut phases = Vec::new();
        if t.scheduled.is_none() && pod_scheduled(pod) {
            t.scheduled = Some(at);
            self.counts.pods_scheduled += 1;
            phases.push((Phase::PodScheduled, created));
        }
        if !t.done && pod_running(pod) {
            t.done = true;
            self.counts.pods_running += 1;
            phases.push((Phase::PodRunning, created));
            phases.push((Phase::PodScheduledToRunning, t.scheduled.unwrap_or(at)));
        }
        for (phase, from) in phases {
            self.record(phase, from, at);
        }
    }

    /// A watch showed the pod `key` (`namespace/name`) deleted.
    pub fn pod_deleted(&mut self, key: &str, at: Instant) {
        if let Some(t) = self.pods.remove(key).filter(|t| t.seen) {
            self.counts.pods_gone += 1;
            self.counts.pods_live -= 1;
            if let Some(d) = t.deleted {
                self.record(Phase::PodGone, d, at);
            }
        }
    }

    /// A watch showed a Lease of one of this run's nodes.
    pub fn lease_seen(&mut self, lease: &Lease) {
        let (Some(name), Some(spec)) = (lease.metadata.name.as_deref(), lease.spec.as_ref()) else {
            return;
        };
        let (Some(renew), duration) = (
            spec.renew_time.as_ref(),
            spec.lease_duration_seconds.unwrap_or(40),
        ) else {
            return;
        };
        let renew = renew.0;
        let duration = duration.max(1) as u32;
        let l = &mut self.leases;
        if let Some((prev, _)) = l.last.get(name)
            && renew > *prev
        {
            let interval = renew.duration_since(*prev).unsigned_abs();
            let us = interval.as_micros().clamp(1, 3_600_000_000) as u64;
            l.intervals.saturating_record(us);
            // A kubelet renews every quarter of the duration; later than that is late.
            let expected = Duration::from_secs(u64::from(duration)) / 4;
            let late = interval
                .saturating_sub(expected)
                .as_micros()
                .clamp(1, 3_600_000_000) as u64;
            l.lateness.saturating_record(late);
            let expired = interval > Duration::from_secs(u64::from(duration));
            l.expired += u64::from(expired);
            if let Some(hold) = l.hold.as_mut().filter(|h| renew >= h.since) {
                hold.intervals.saturating_record(us);
                // Only a lease that ran out during the hold: one that expired before
                // it (during creation or churn) and was renewed in it is not idle's.
                let ran_out = *prev + Duration::from_secs(u64::from(duration));
                hold.expired += u64::from(expired && ran_out >= hold.since);
            }
        }
        if l.last.get(name).is_none_or(|(prev, _)| renew > *prev) {
            l.last.insert(name.to_owned(), (renew, duration));
        }
    }

    /// The hold phase starts: renewals from `now` on are also reported apart, as the
    /// idle soak (node creation, before it, loads the apiserver most).
    pub fn hold_started(&mut self, now: jiff::Timestamp) {
        self.leases.hold = Some(HoldLeases {
            since: now,
            intervals: histogram(),
            expired: 0,
        });
    }

    /// Forgets a lease whose node is gone (its absence is not an expiry).
    pub fn lease_deleted(&mut self, name: &str) {
        self.leases.last.remove(name);
    }

    /// Per-phase latency reports, in phase order.
    pub fn phase_reports(&self) -> Vec<PhaseReport> {
        self.phases
            .iter()
            .map(|(phase, h)| {
                let (first, last) = self.spans[phase];
                PhaseReport::from_histogram(
                    phase.name(),
                    h,
                    first.saturating_duration_since(self.started),
                    last - first,
                )
            })
            .collect()
    }

    /// Errors and retries by kind.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.clone()
    }

    /// Lease renewals, with leases overdue at `now` counted as expired.
    pub fn lease_report(&self, now: jiff::Timestamp) -> LeaseReport {
        let l = &self.leases;
        let overdue_since = |since: jiff::Timestamp| {
            l.last
                .values()
                .filter(|(renew, d)| {
                    let d = Duration::from_secs(u64::from(*d));
                    now.duration_since(*renew).unsigned_abs() > d && *renew + d >= since
                })
                .count() as u64
        };
        let overdue = overdue_since(jiff::Timestamp::MIN);
        let mut report =
            LeaseReport::from_histograms(l.last.len() as u64, &l.intervals, &l.lateness, l.expired, overdue);
        // Overdue at the end and run out during the hold, which ends the run.
        report.while_holding = l.hold.as_ref().map(|h| HoldLeaseReport {
            renewals: h.intervals.len(),
            interval_ms: (!h.intervals.is_empty()).then(|| Percentiles::of(&h.intervals)),
            expired: h.expired + overdue_since(h.since),
        });
        report
    }
}

/// `namespace/name`.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Whether a node's `Ready` condition is `True` (also used by `perf`'s watchers).
pub fn node_ready(node: &Node) -> bool {
    condition_true(
        node.status.as_ref().and_then(|s| s.conditions.as_deref()),
        "Ready",
        |c| (&c.type_, &c.status),
    )
}

/// The prefix of the taints Kubernetes itself puts on nodes.
pub const CONTROL_PLANE_TAINTS: &str = "node.kubernetes.io/";

/// Whether `node` is ready for pods: `Ready`, not cordoned, and without the taints
/// Kubernetes itself puts on nodes ([`CONTROL_PLANE_TAINTS`]: kube-controller-manager's
/// `not-ready` until it has seen the node Ready, `unreachable`, pressure taints). Other
/// taints are the scenario's own (`kwok.x-k8s.io/node`), which its pods tolerate. A node goes Ready
/// before kube-controller-manager lifts `not-ready`; pods created in between are not
/// scheduled there, and under a burst of creates the lifts themselves wait (1,000 nodes
/// Ready in 6 s kept 394 tainted 50 s more), so the run waits for this too, as the
/// Kubernetes e2e framework waits for nodes schedulable and untainted.
pub fn node_schedulable(node: &Node) -> bool {
    let spec = node.spec.as_ref();
    node_ready(node)
        && !spec.and_then(|s| s.unschedulable).unwrap_or(false)
        && !spec
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default()
            .iter()
            .any(|t| t.key.starts_with(CONTROL_PLANE_TAINTS) && t.effect != "PreferNoSchedule")
}

/// Whether a pod's `Ready` condition is `True`.
pub fn pod_ready(pod: &Pod) -> bool {
    condition_true(
        pod.status.as_ref().and_then(|s| s.conditions.as_deref()),
        "Ready",
        |c| (&c.type_, &c.status),
    )
}

fn pod_scheduled(pod: &Pod) -> bool {
    condition_true(
        pod.status.as_ref().and_then(|s| s.conditions.as_deref()),
        "PodScheduled",
        |c| (&c.type_, &c.status),
    )
}

/// Running with every container ready; a Job's pod that Succeeded ran too.
fn pod_running(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    match status.phase.as_deref() {
        Some("Succeeded") => true,
        Some("Running") => status
            .container_statuses
            .as_deref()
            .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c.ready)),
        _ => false,
    }
}

fn condition_true<C>(conds: Option<&[C]>, kind: &str, f: impl Fn(&C) -> (&String, &String)) -> bool {
    conds
        .unwrap_or_default()
        .iter()
        .map(f)
        .any(|(t, s)| t == kind && s == "True")
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{
        api::coordination::v1::{Lease, LeaseSpec},
        apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    };

    use super::*;

    fn lease(name: &str, renewed: jiff::Timestamp) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(renewed)),
                lease_duration_seconds: Some(40),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn lease_report_should_count_expiries_of_the_hold_apart() {
        let t0: jiff::Timestamp = "2026-11-26T08:00:00Z".parse().unwrap();
        let at = |s: i64| t0 + jiff::SignedDuration::from_secs(s);
        let mut r = Recorder::new();
        // Before the hold: one renewal on time, one 50 s late (expired).
        r.lease_seen(&lease("a", at(0)));
        r.lease_seen(&lease("b", at(0)));
        r.lease_seen(&lease("a", at(10)));
        r.lease_seen(&lease("b", at(50)));
        r.hold_started(at(55));
        // During it: a on time, then late; b on time.
        r.lease_seen(&lease("a", at(60)));
        r.lease_seen(&lease("b", at(60)));
        r.lease_seen(&lease("b", at(100)));
        r.lease_seen(&lease("a", at(110)));

        let report = r.lease_report(at(115));
        assert_eq!((report.renewals, report.expired), (6, 3), "{report:?}");
        let hold = report.while_holding.expect("a hold");
        // a's 10→60 ran out at 50, before the hold: not the hold's; 60→110 ran out in
        // it. b's 50→60 and 60→100 (exactly the duration) did not run out.
        assert_eq!((hold.renewals, hold.expired), (4, 1), "{hold:?}");
        assert!(hold.interval_ms.is_some());
    }

    #[test]
    fn a_node_should_count_schedulable_once_ready_and_rid_of_the_control_planes_taints() {
        let node = |ready: &str, taints: &[(&str, &str)]| -> Node {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "n"},
                "spec": {"taints": taints.iter()
                    .map(|(key, effect)| serde_json::json!({"key": key, "effect": effect}))
                    .collect::<Vec<_>>()},
                "status": {"conditions": [{"type": "Ready", "status": ready}]},
            }))
            .unwrap()
        };
        let ours = ("kwok.x-k8s.io/node", "NoSchedule");
        let not_ready = ("node.kubernetes.io/not-ready", "NoSchedule");
        let mut r = Recorder::new();
        let at = Instant::now();
        r.node_seen(&node("False", &[ours, not_ready]), at);
        r.node_seen(&node("True", &[ours, not_ready]), at);
        assert_eq!((r.counts.nodes_ready, r.counts.nodes_schedulable), (1, 0));
        r.node_seen(&node("True", &[ours]), at);
        r.node_seen(&node("True", &[ours]), at);
        assert_eq!((r.counts.nodes_ready, r.counts.nodes_schedulable), (1, 1));
        assert!(!node_schedulable(&node(
            "True",
            &[("node.kubernetes.io/unreachable", "NoExecute")]
        )));
        assert!(node_schedulable(&node(
            "True",
            &[("node.kubernetes.io/disk-pressure", "PreferNoSchedule")]
        )));
        let mut cordoned = node("True", &[]);
        cordoned.spec.as_mut().unwrap().unschedulable = Some(true);
        assert!(!node_schedulable(&cordoned));
    }

    #[test]
    fn lease_report_should_have_no_hold_part_without_a_hold() {
        let t0: jiff::Timestamp = "2026-11-26T08:00:00Z".parse().unwrap();
        let mut r = Recorder::new();
        r.lease_seen(&lease("a", t0));
        assert_eq!(r.lease_report(t0).while_holding, None);
    }
}
