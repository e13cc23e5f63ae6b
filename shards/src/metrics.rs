//! The controller's metrics, registered once and shared (`Arc<Metrics>`); every
//! metric type is internally atomic, so shards update them without a lock of ours.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Label of per-shard gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabel {
    /// Shard index.
    pub shard: String,
}

/// Label of per-stage counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    /// Stage name.
    pub stage: String,
}

/// Labels of apiserver request counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabel {
    /// `patch`, `delete`, `create`, `get`, …
    pub verb: String,
    /// HTTP status code, or `error` when no answer came.
    pub code: String,
}

/// Label of watch restarts.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// Resource kind.
    pub kind: String,
}

/// Every metric of the controller.
pub struct Metrics {
    /// Managed nodes per shard.
    pub managed_nodes: Family<ShardLabel, Gauge>,
    /// Managed pods (and other objects) per shard.
    pub managed_objects: Family<ShardLabel, Gauge>,
    /// Stage transitions (effects sent) per stage.
    pub transitions: Family<StageLabel, Counter>,
    /// Run-time failures of a stage's selector keys (the stage then does not match).
    pub query_failures: Family<StageLabel, Counter>,
    /// Renders of a stage that failed (a template error, a full IP pool): nothing of
    /// the stage was sent.
    pub render_failures: Family<StageLabel, Counter>,
    /// Effects merged away by the batcher.
    pub effects_merged: Counter,
    /// Apiserver requests by verb and status code.
    pub requests: Family<RequestLabel, Counter>,
    /// Apiserver request latency in seconds.
    pub request_seconds: Histogram,
    /// Requests that failed for good after retries.
    pub request_failures: Counter,
    /// Objects whose write is in flight or waits for a write slot, per shard.
    pub queue_depth: Family<ShardLabel, Gauge>,
    /// Timers pending in each shard's wheel.
    pub pending_timers: Family<ShardLabel, Gauge>,
    /// How late each lease renewal was sent, in seconds.
    pub lease_lateness_seconds: Histogram,
    /// Latest renewal lateness seen since start, in seconds.
    pub lease_lateness_max_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Leases found expired when renewed.
    pub leases_expired: Counter,
    /// Leases held.
    pub leases_held: Gauge,
    /// Lease requests waiting for a slot.
    pub lease_queue_depth: Gauge,
    /// How far behind lease renewals are: 0 calm, 1 behind, 2 at risk.
    pub lease_pressure: Gauge,
    /// Lease requests allowed in flight now (rising as renewals run late).
    pub lease_slots: Gauge,
    /// Watch restarts (re-lists and reconnects) per kind.
    pub watch_restarts: Family<KindLabel, Counter>,
    /// Objects the watch of each kind delivered (applied or deleted, initial lists too).
    pub watch_events: Family<KindLabel, Counter>,
    /// With --scale-out: live members (kwoks sharing the nodes), this one included.
    pub members: Gauge,
    /// With --scale-out: managed nodes the table deals to this kwok.
    pub nodes_dealt: Gauge,
    /// With --scale-out: node leases let go because the table gave the node to another
    /// member.
    pub handovers: Counter,
    /// With --scale-out: 1 while this kwok's member Lease could not be renewed in time
    /// (it drives no node then), else 0.
    pub member_fenced: Gauge,
    /// With --scale-out: the IP slot held (its stripe of --cidr), -1 while none is.
    pub ip_slot: Gauge,
    /// Stage writes held back because another kwok may hold their node's Lease now (or
    /// our member Lease expired): fenced, not sent.
    pub fenced_writes: Counter,
    /// Pod watch events for pods on nodes another kwok drives (or none here): not
    /// parsed; with --scale-out, not cached when the table deals the node elsewhere.
    pub events_not_driven: Counter,
    /// Their size as received (compact JSON bytes).
    pub bytes_not_driven: Counter,
    /// With --scale-out: lists of one node's pods, made when a node whose pods were
    /// not cached (dealt to another member) comes to this kwok.
    pub node_pod_fetches: Counter,
}

impl Metrics {
    /// Metrics registered nowhere: for tests, which read them from the struct.
    #[cfg(test)]
    pub fn unregistered() -> Self {
        Self::register(&mut Registry::default())
    }

    /// Creates the metrics and registers them in `registry` under `kwok_`.
    pub fn register(registry: &mut Registry) -> Self {
        let latency = || {
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
        };
        let m = Self {
            managed_nodes: Family::default(),
            managed_objects: Family::default(),
            transitions: Family::default(),
            query_failures: Family::default(),
            render_failures: Family::default(),
            effects_merged: Counter::default(),
            requests: Family::default(),
            request_seconds: latency(),
            request_failures: Counter::default(),
            queue_depth: Family::default(),
            pending_timers: Family::default(),
            // Up to the lease duration and past it: a saturated apiserver makes
            // renewals tens of seconds late.
            lease_lateness_seconds: Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0,
                40.0, 60.0,
            ]),
            lease_lateness_max_seconds: Gauge::default(),
            leases_expired: Counter::default(),
            leases_held: Gauge::default(),
            lease_queue_depth: Gauge::default(),
            lease_pressure: Gauge::default(),
            lease_slots: Gauge::default(),
            watch_restarts: Family::default(),
            watch_events: Family::default(),
            members: Gauge::default(),
            nodes_dealt: Gauge::default(),
            handovers: Counter::default(),
            member_fenced: Gauge::default(),
            ip_slot: Gauge::default(),
            fenced_writes: Counter::default(),
            events_not_driven: Counter::default(),
            bytes_not_driven: Counter::default(),
            node_pod_fetches: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("kwok");
        r.register(
            "managed_nodes",
            "Managed nodes per shard",
            m.managed_nodes.clone(),
        );
        r.register(
            "managed_objects",
            "Managed pods and other objects per shard",
            m.managed_objects.clone(),
        );
        r.register(
            "stage_transitions",
            "Stage transitions per stage",
            m.transitions.clone(),
        );
        r.register(
            "stage_query_failures",
            "Run-time failures of a stage's selector keys, each taken as having no output",
            m.query_failures.clone(),
        );
        r.register(
            "stage_render_failures",
            "Renders of a stage that failed (a template error, a full IP pool), after which nothing of it was sent",
            m.render_failures.clone(),
        );
        r.register(
            "effects_merged",
            "Effects merged into another write",
            m.effects_merged.clone(),
        );
        r.register(
            "apiserver_requests",
            "Apiserver requests by verb and code",
            m.requests.clone(),
        );
        r.register(
            "apiserver_request_seconds",
            "Apiserver request latency",
            m.request_seconds.clone(),
        );
        r.register(
            "apiserver_request_failures",
            "Writes that failed after retries",
            m.request_failures.clone(),
        );
        r.register(
            "batcher_queue_depth",
            "Objects whose write is in flight or waits for a write slot, per shard",
            m.queue_depth.clone(),
        );
        r.register(
            "wheel_pending_timers",
            "Pending stage timers per shard",
            m.pending_timers.clone(),
        );
        r.register(
            "lease_renewal_lateness_seconds",
            "Lateness of lease renewals",
            m.lease_lateness_seconds.clone(),
        );
        r.register(
            "lease_renewal_lateness_max_seconds",
            "Largest lease renewal lateness since start",
            m.lease_lateness_max_seconds.clone(),
        );
        r.register(
            "leases_expired",
            "Leases found expired when renewed",
            m.leases_expired.clone(),
        );
        r.register("leases_held", "Node leases held", m.leases_held.clone());
        r.register(
            "members",
            "Live kwoks sharing the nodes (--scale-out), this one included",
            m.members.clone(),
        );
        r.register(
            "nodes_dealt",
            "Managed nodes the member table deals to this kwok (--scale-out)",
            m.nodes_dealt.clone(),
        );
        r.register(
            "handovers",
            "Node leases let go because the member table gave the node to another kwok",
            m.handovers.clone(),
        );
        r.register(
            "watch_events_not_driven",
            "Pod watch events for pods on nodes another kwok drives (or none here): not parsed, and not cached when dealt to another member",
            m.events_not_driven.clone(),
        );
        r.register(
            "watch_bytes_not_driven",
            "Bytes of the pod watch events for pods on nodes another kwok drives (or none here)",
            m.bytes_not_driven.clone(),
        );
        r.register(
            "node_pod_fetches",
            "Lists of one node's pods, made when a node whose pods were not cached (dealt to another member) comes to this kwok",
            m.node_pod_fetches.clone(),
        );
        r.register(
            "fenced_writes",
            "Stage writes held back: another kwok may hold their node's Lease, or our member Lease expired",
            m.fenced_writes.clone(),
        );
        r.register(
            "member_fenced",
            "1 while this kwok's member Lease is not renewed in time and it drives no node",
            m.member_fenced.clone(),
        );
        r.register(
            "ip_slot",
            "The IP slot this --scale-out member holds (pod IPs from --cidr come from its stripe), -1 while none",
            m.ip_slot.clone(),
        );
        r.register(
            "lease_queue_depth",
            "Lease renewals and acquisitions waiting for a request slot",
            m.lease_queue_depth.clone(),
        );
        r.register(
            "lease_pressure",
            "How far behind lease renewals are (0 calm, 1 behind: stage writes held to 4 per shard, 2 at risk: 2 per shard)",
            m.lease_pressure.clone(),
        );
        r.register(
            "lease_slots",
            "Lease requests allowed in flight now: --node-lease-parallelism, doubled for every sixteenth of a lease duration the oldest waiting renewal is late or acquisition has waited (up to 64 times)",
            m.lease_slots.clone(),
        );
        r.register(
            "watch_restarts",
            "Watch restarts per kind",
            m.watch_restarts.clone(),
        );
        r.register(
            "watch_events",
            "Objects each kind's watch delivered, applied or deleted (initial lists too); unbound pods are filtered out by the apiserver",
            m.watch_events.clone(),
        );
        m
    }

    /// Counts one request and its latency.
    pub fn request(&self, verb: &str, code: &str, seconds: f64) {
        self.count(verb, code);
        self.request_seconds.observe(seconds);
    }

    /// Counts one request whose latency was not measured.
    pub fn count(&self, verb: &str, code: &str) {
        self.requests
            .get_or_create(&RequestLabel {
                verb: verb.into(),
                code: code.into(),
            })
            .inc();
    }
}
