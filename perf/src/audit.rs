//! Who drove which node, read back from a kube-apiserver audit log: the check that no
//! node was driven by two kwok replicas at once (`kwok --scale-out`, issue 25).
//!
//! Replicas share one client certificate, so the audit `user` is the same for all; each
//! names itself in its User-Agent, `kwok/<version> (<id>)` (`shards/src/client.rs`
//! writes it, [`identity`] reads it back). Other agents (kube-controller-manager, the
//! scheduler, kubectl) drive nothing and are left out, except to learn where pods are.
//!
//! # What the log must hold
//!
//! [`POLICY`] (`perf/audit-policy.yaml`): `Metadata` for writes of nodes, node status,
//! pods and pod status; `Request` for pod creates and bindings (a status write's
//! `objectRef` names the pod, not its node: the node comes from `spec.nodeName` in the
//! create, or the binding's target, whichever placed the pod last) and for node Lease
//! writes (a create's name is in its body). `ResponseComplete` events only.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt::{self, Write as _},
    io::BufRead,
    time::Duration,
};

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The audit policy whose log [`check`] reads (see the module docs).
pub const POLICY: &str = include_str!("../audit-policy.yaml");

/// The namespace of node Leases.
const NODE_LEASES: &str = "kube-node-lease";

/// Why a log could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The log could not be read.
    #[error("failed to read the audit log: {0}")]
    Read(#[source] std::io::Error),
    /// A complete line is not an audit event.
    #[error("audit log line {line}: not an audit event: {source}")]
    Parse {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    /// A timestamp is not RFC 3339.
    #[error("audit log line {line}: bad timestamp {value:?}")]
    Timestamp { line: usize, value: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `--id` in a kwok User-Agent (`kwok/<version> (<id>)`); `None` for any other agent.
pub fn identity(user_agent: &str) -> Option<&str> {
    let rest = user_agent.strip_prefix("kwok/")?;
    let (_version, id) = rest.split_once(" (")?;
    id.strip_suffix(')').filter(|id| !id.is_empty())
}

/// The fields of an `audit.k8s.io/v1` Event the check reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    #[serde(borrow)]
    stage: &'a str,
    #[serde(borrow)]
    verb: &'a str,
    #[serde(default)]
    user_agent: String,
    object_ref: Option<ObjectRef>,
    response_status: Option<Status>,
    #[serde(borrow)]
    request_object: Option<&'a RawValue>,
    request_received_timestamp: String,
    stage_timestamp: String,
}

#[derive(Debug, Deserialize)]
struct ObjectRef {
    #[serde(default)]
    resource: String,
    #[serde(default)]
    subresource: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
struct Status {
    code: Option<u16>,
}

/// What the request body says, for the few writes whose body the check needs.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    #[serde(default)]
    metadata: Meta,
    /// A Pod's.
    spec: Option<PodSpec>,
    /// A Binding's.
    target: Option<Meta>,
}

#[derive(Debug, Default, Deserialize)]
struct Meta {
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    node_name: Option<String>,
}

/// A write by one kwok that drives a node: the node itself, or a pod on it.
#[derive(Debug, Clone)]
struct Drive {
    /// When the apiserver received it.
    at: Timestamp,
    who: String,
    node: String,
    pod: bool,
}

/// A successful write of a node's Lease (by a kwok: `who`), or its deletion (`None`).
#[derive(Debug, Clone)]
struct LeaseWrite {
    /// When it took effect (the apiserver answered).
    at: Timestamp,
    who: Option<String>,
}

/// How many writes one kwok made for one node.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Writes {
    /// Of the Node (status, metadata).
    pub node: usize,
    /// Of its pods (status, finalizers, deletion).
    pub pods: usize,
    /// Of its Lease (creates, take-overs, renewals).
    pub lease: usize,
}

/// One node's writers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NodeReport {
    /// kwok id → its writes for this node.
    pub writers: BTreeMap<String, Writes>,
    /// Times the writer of the node or its pods changed (writes in received order).
    pub driver_changes: usize,
    /// Times a kwok wrote the node's Lease after another one had.
    pub lease_takeovers: usize,
}

/// Two kwoks driving one node at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// `a` wrote the node (or its pods) at `a_before` and again at `a_again`, less than one
    /// lease period later, with `b`'s write at `b_at` between.
    Interleaved {
        node: String,
        a: String,
        b: String,
        a_before: Timestamp,
        b_at: Timestamp,
        a_again: Timestamp,
    },
    /// `a`'s write of the node (or its pods), received at `a_at`, came after `b` had
    /// taken the node's Lease over (its first Lease write since another's, at
    /// `taken_at`) and before `a` took it back.
    AfterTakeover {
        node: String,
        a: String,
        b: String,
        taken_at: Timestamp,
        a_at: Timestamp,
    },
}

impl Finding {
    /// The node driven twice.
    pub fn node(&self) -> &str {
        match self {
            Self::Interleaved { node, .. } | Self::AfterTakeover { node, .. } => node,
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Interleaved {
                node,
                a,
                b,
                a_before,
                b_at,
                a_again,
            } => write!(
                f,
                "node {node}: {a} wrote at {a_before}, {b} at {b_at}, {a} again at {a_again}"
            ),
            Self::AfterTakeover {
                node,
                a,
                b,
                taken_at,
                a_at,
            } => write!(
                f,
                "node {node}: {a} wrote at {a_at} after {b} took its Lease at {taken_at}"
            ),
        }
    }
}

/// What [`check`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// `ResponseComplete` events read.
    pub events: usize,
    /// Successful kwok writes that drive a node (its own, or its pods').
    pub drives: usize,
    /// kwok id → successful writes of any kind it made.
    pub identities: BTreeMap<String, usize>,
    /// Node → its writers, for nodes some kwok drove.
    pub nodes: BTreeMap<String, NodeReport>,
    /// kwok pod writes for pods the log never placed on a node (created before the log
    /// began, or placed by a request not logged at `Request` level).
    pub unplaced_pod_writes: usize,
    /// Every double drive, in node order.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The nodes driven by two kwoks at once.
    pub fn double_driven_nodes(&self) -> BTreeSet<&str> {
        self.findings.iter().map(Finding::node).collect()
    }

    /// Lease take-overs over all nodes.
    pub fn lease_takeovers(&self) -> usize {
        self.nodes.values().map(|n| n.lease_takeovers).sum()
    }

    /// Changes of driver over all nodes.
    pub fn driver_changes(&self) -> usize {
        self.nodes.values().map(|n| n.driver_changes).sum()
    }

    /// The nodes each kwok drove (wrote the node or a pod of it).
    pub fn nodes_driven_by(&self) -> BTreeMap<&str, usize> {
        let mut by = BTreeMap::new();
        for report in self.nodes.values() {
            for (who, writes) in &report.writers {
                if writes.node + writes.pods > 0 {
                    *by.entry(who.as_str()).or_default() += 1;
                }
            }
        }
        by
    }

    /// A few lines for a person, with up to `max_findings` findings spelled out.
    pub fn summary(&self, max_findings: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "audit events read: {}", self.events);
        let _ = writeln!(out, "kwok writes driving a node: {}", self.drives);
        let driven = self.nodes_driven_by();
        for (who, writes) in &self.identities {
            let nodes = driven.get(who.as_str()).copied().unwrap_or(0);
            let _ = writeln!(out, "- {who}: {writes} writes, drove {nodes} nodes");
        }
        let _ = writeln!(out, "nodes driven: {}", self.nodes.len());
        let _ = writeln!(out, "lease takeovers: {}", self.lease_takeovers());
        let _ = writeln!(out, "driver changes: {}", self.driver_changes());
        let _ = writeln!(out, "pod writes on no known node: {}", self.unplaced_pod_writes);
        let doubled = self.double_driven_nodes();
        let _ = writeln!(
            out,
            "double-driven nodes: {} ({} findings)",
            doubled.len(),
            self.findings.len()
        );
        for finding in self.findings.iter().take(max_findings) {
            let _ = writeln!(out, "- {finding}");
        }
        out
    }
}

/// Reads an audit log (JSON lines) and reports who drove each node, flagging double
/// drives: [`Finding::Interleaved`] within `lease` (the node Lease duration), and
/// [`Finding::AfterTakeover`] when the log holds the Lease writes.
///
/// A last line without its newline (the apiserver still writing it) is skipped.
pub fn check(log: impl BufRead, lease: Duration) -> Result<Report> {
    let mut log_ = Log::default();
    log_.read(log)?;
    Ok(log_.report(lease))
}

/// The writes of a log, gathered before they are put in order.
#[derive(Debug, Default)]
struct Log {
    events: usize,
    identities: BTreeMap<String, usize>,
    /// `namespace/name` → (when, node) of each placement.
    placements: HashMap<String, Vec<(Timestamp, String)>>,
    drives: Vec<Drive>,
    /// Pod writes, node not yet known: (pod key, drive with an empty node).
    pod_drives: Vec<(String, Drive)>,
    leases: HashMap<String, Vec<LeaseWrite>>,
}

impl Log {
    fn read(&mut self, mut log: impl BufRead) -> Result<()> {
        let mut line = String::new();
        for number in 1.. {
            line.clear();
            let n = log.read_line(&mut line).map_err(Error::Read)?;
            if n == 0 || !line.ends_with('\n') {
                return Ok(());
            }
            if line.trim().is_empty() {
                continue;
            }
            let event: Event<'_> =
                serde_json::from_str(&line).map_err(|source| Error::Parse { line: number, source })?;
            self.add(&event, number)?;
        }
        Ok(())
    }

    fn add(&mut self, event: &Event<'_>, line: usize) -> Result<()> {
        if event.stage != "ResponseComplete" {
            return Ok(());
        }
        self.events += 1;
        let code = event.response_status.as_ref().and_then(|s| s.code);
        let (Some(object), true) = (&event.object_ref, code.is_some_and(|c| c < 300)) else {
            return Ok(());
        };
        let at = |value: &str| {
            value.parse::<Timestamp>().map_err(|_| Error::Timestamp {
                line,
                value: value.to_owned(),
            })
        };
        let received = at(&event.request_received_timestamp)?;
        let done = at(&event.stage_timestamp)?;
        let who = identity(&event.user_agent);
        let body = || {
            event
                .request_object
                .and_then(|raw| serde_json::from_str::<Body>(raw.get()).ok())
                .unwrap_or_default()
        };
        let pod_key = |name: &str| format!("{}/{name}", object.namespace);
        match (object.resource.as_str(), object.subresource.as_str(), event.verb) {
            ("pods", "", "create") => {
                let body = body();
                let name = first_of(&object.name, &body.metadata.name);
                if let Some(node) = body.spec.and_then(|s| s.node_name) {
                    self.place(pod_key(name), done, node);
                }
            }
            ("pods", "binding", "create") => {
                if let Some(target) = body().target.filter(|t| !t.name.is_empty()) {
                    self.place(pod_key(&object.name), done, target.name);
                }
            }
            ("leases", "", verb) if object.namespace == NODE_LEASES && is_write(verb) => {
                let name = first_of(&object.name, &body().metadata.name).to_owned();
                let who = if verb == "delete" {
                    None
                } else {
                    who.map(str::to_owned)
                };
                if verb == "delete" || who.is_some() {
                    self.leases
                        .entry(name)
                        .or_default()
                        .push(LeaseWrite { at: done, who });
                }
            }
            _ => {}
        }
        let Some(who) = who.filter(|_| is_write(event.verb)) else {
            return Ok(());
        };
        *self.identities.entry(who.to_owned()).or_default() += 1;
        let drive = |node: String, pod| Drive {
            at: received,
            who: who.to_owned(),
            node,
            pod,
        };
        match (object.resource.as_str(), object.subresource.as_str()) {
            ("nodes", "" | "status") => self.drives.push(drive(object.name.clone(), false)),
            ("pods", "" | "status") if !object.name.is_empty() => {
                self.pod_drives
                    .push((pod_key(&object.name), drive(String::new(), true)));
            }
            _ => {}
        }
        Ok(())
    }

    fn place(&mut self, pod: String, at: Timestamp, node: String) {
        self.placements.entry(pod).or_default().push((at, node));
    }

    /// Puts the writes in order and looks for double drives.
    fn report(mut self, lease: Duration) -> Report {
        let mut report = Report {
            events: self.events,
            identities: std::mem::take(&mut self.identities),
            ..Report::default()
        };
        for places in self.placements.values_mut() {
            places.sort_by_key(|(at, _)| *at);
        }
        for (pod, mut drive) in std::mem::take(&mut self.pod_drives) {
            match node_of(self.placements.get(&pod), drive.at) {
                Some(node) => {
                    drive.node = node.to_owned();
                    self.drives.push(drive);
                }
                None => report.unplaced_pod_writes += 1,
            }
        }
        report.drives = self.drives.len();
        let mut by_node: BTreeMap<String, Vec<Drive>> = BTreeMap::new();
        for drive in self.drives {
            by_node.entry(drive.node.clone()).or_default().push(drive);
        }
        for (node, mut drives) in by_node {
            drives.sort_by_key(|d| d.at);
            let mut leases = self.leases.remove(&node).unwrap_or_default();
            leases.sort_by_key(|l| l.at);
            let mut node_report = writers(&drives, &leases);
            report
                .findings
                .extend(interleaved(&node, &drives, &leases, lease));
            report.findings.extend(after_takeover(&node, &drives, &leases));
            node_report.driver_changes = drives.windows(2).filter(|w| w[0].who != w[1].who).count();
            report.nodes.insert(node, node_report);
        }
        report
    }
}

fn is_write(verb: &str) -> bool {
    matches!(verb, "create" | "update" | "patch" | "delete")
}

/// `name` unless empty, else `fallback`.
fn first_of<'a>(name: &'a str, fallback: &'a str) -> &'a str {
    if name.is_empty() { fallback } else { name }
}

/// The node a pod was placed on last at or before `at`; the first placement for a write
/// that seems to precede it (the two timestamps come from one apiserver clock, but a
/// write received while its pod's create was still being answered can).
fn node_of(places: Option<&Vec<(Timestamp, String)>>, at: Timestamp) -> Option<&str> {
    let places = places?;
    let before = places.partition_point(|(placed, _)| *placed <= at);
    let (_, node) = places.get(before.saturating_sub(1))?;
    Some(node)
}

/// Each kwok's writes of one node, its pods and its Lease, and the Lease's take-overs.
fn writers(drives: &[Drive], leases: &[LeaseWrite]) -> NodeReport {
    let mut report = NodeReport::default();
    for drive in drives {
        let writes = report.writers.entry(drive.who.clone()).or_default();
        if drive.pod {
            writes.pods += 1;
        } else {
            writes.node += 1;
        }
    }
    let mut holder: Option<&str> = None;
    for write in leases {
        let who = write.who.as_deref();
        if let Some(who) = who {
            report.writers.entry(who.to_owned()).or_default().lease += 1;
            if holder.is_some_and(|h| h != who) {
                report.lease_takeovers += 1;
            }
        }
        holder = who;
    }
    report
}

/// Writes by one kwok around another's, less than `lease` apart: A, B, A within one
/// lease period. A kwok may drive a node again later, after the other's Lease lapsed
/// (a lease period) or was dealt back to it; with `--scale-out` a deal back takes two
/// handovers (15 s each at 40 s Leases), so two member-table changes (or a replica
/// killed and started again) within ~10 s of each other show a proper A, B, A about
/// 30 s apart. Where the Lease writes show both handovers (B took the Lease over before
/// its write, A took it back before its own) it is not flagged; without Lease writes in
/// the log it is ([`Finding::AfterTakeover`] is the exact check).
fn interleaved(node: &str, drives: &[Drive], leases: &[LeaseWrite], lease: Duration) -> Vec<Finding> {
    let mut last: HashMap<&str, usize> = HashMap::new();
    let mut found = Vec::new();
    for (i, drive) in drives.iter().enumerate() {
        if let Some(&j) = last.get(drive.who.as_str())
            && i > j + 1
        {
            let (before, other) = (&drives[j], &drives[j + 1]);
            let gap = drive.at.duration_since(before.at);
            let handed_over = took_over(leases, &other.who, before.at, other.at)
                && took_over(leases, &drive.who, other.at, drive.at);
            if gap.unsigned_abs() < lease && !handed_over {
                found.push(Finding::Interleaved {
                    node: node.to_owned(),
                    a: drive.who.clone(),
                    b: other.who.clone(),
                    a_before: before.at,
                    b_at: other.at,
                    a_again: drive.at,
                });
            }
        }
        last.insert(&drive.who, i);
    }
    found
}

/// Whether `who` took the Lease over (wrote it right after another holder's write) in
/// `(after, until]`.
fn took_over(leases: &[LeaseWrite], who: &str, after: Timestamp, until: Timestamp) -> bool {
    leases.windows(2).any(|w| {
        w[1].who.as_deref() == Some(who)
            && w[0].who.as_deref() != Some(who)
            && w[1].at > after
            && w[1].at <= until
    })
}

/// Writes by a kwok received after another kwok's Lease write had taken effect (the
/// latest Lease write before it was not its own). Only the writes plainly after one:
/// a write received before a take-over was answered may have been applied before it.
/// `taken_at` is the first of the holder's run of Lease writes (its take-over), not the
/// renewal just before.
fn after_takeover(node: &str, drives: &[Drive], leases: &[LeaseWrite]) -> Vec<Finding> {
    let mut taken = Vec::with_capacity(leases.len());
    for (i, write) in leases.iter().enumerate() {
        let same = i > 0 && leases[i - 1].who == write.who;
        taken.push(if same { taken[i - 1] } else { write.at });
    }
    let mut found = Vec::new();
    for drive in drives {
        let Some(latest) = leases.partition_point(|l| l.at < drive.at).checked_sub(1) else {
            continue;
        };
        if let Some(holder) = &leases[latest].who
            && *holder != drive.who
        {
            found.push(Finding::AfterTakeover {
                node: node.to_owned(),
                a: drive.who.clone(),
                b: holder.clone(),
                taken_at: taken[latest],
                a_at: drive.at,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests;
