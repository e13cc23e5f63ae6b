//! The lease worker: owns every managed node's Lease in `kube-node-lease`, renewing
//! each at a quarter of its duration with jitter (as the kubelet does), many
//! renewals in flight at once, and measures how late each renewal was.
//!
//! A Lease held, unexpired, by another holder is left alone and looked at again when
//! it would expire, so two controllers never both drive a node's lease. Renewals
//! carry the resourceVersion of our last write as a precondition, so a lease taken
//! over meanwhile is never taken back blindly. Every change of who holds a node's
//! lease is reported (`on_news`), so shards drive only the nodes we hold.
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
//! A restarted kwok's Leases (listed at start-up as held by its identity) still hold
//! until they expire: each first request waits as a renewal by that expiry, and is a
//! PUT with the listed Lease as the precondition.
//!
//! The worker reports how far behind renewals are as a [`Pressure`], from the renewal
//! waiting longest: [`Pressure::Behind`] once it is within half a duration of expiring
//! (it has waited a quarter duration past its due time), and [`Pressure::AtRisk`]
//! within three eighths. Shards keep fewer stage writes in flight as it rises (4, then
//! 2 per shard), so a burst of them (10,000 node heartbeats due in the same minute)
//! cannot take the apiserver from the renewals. The status write of a node the control
//! plane already marked lost is not held back: it is a heartbeat too, and the recovery.
//! Nor is the heartbeat of a node whose Lease we take back after our own renewals ran
//! past its expiry ([`Ownership::lapsed`]: the apiserver was away longer than a Lease):
//! kube-controller-manager heard nothing from it for as long, and on the apiserver's
//! return writes `Unknown` into the Node as it last saw it. Our heartbeat, landing
//! first, makes that write conflict; it re-reads the Node, sees a fresh heartbeat and
//! leaves it Ready (5,000 nodes after a 50 s outage: all Ready 0–1 s after the return,
//! was 36–49 s; `benches/results/2026-12-04-faults-apiserver-heartbeat`).
//! As renewals run late the worker also sends more at once: `--node-lease-parallelism`
//! (4) on time, doubled for every sixteenth of a duration the oldest renewal waiting is
//! late or acquisition has waited (64 when behind, 256 at risk; `state::slots`). The
//! load may come from other clients (a load generator), which shards cannot hold back;
//! on time, few leave the apiserver to the scheduler and the workload.
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

mod decide;
mod fence;
mod ip_slot;
mod members;
mod plan;
mod pressure;
mod queue;
mod requests;
#[cfg(test)]
mod stand_in;
mod state;
mod wire;
mod worker;

pub use fence::{Fence, WriteFence};
pub use ip_slot::IpSlot;
pub use members::MemberLease;
pub use pressure::{Pressure, PressureGauge};
pub use worker::{LeaseOptions, LeaseWorker};

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
    /// `--scale-out`: the live members now (us included only while our member Lease is
    /// renewed in time), from the member Lease task.
    Members(Vec<String>),
}

/// A change of whether we hold a node's Lease, for the shard that has the node.
#[derive(Debug, Clone)]
pub struct Ownership {
    /// Node name.
    pub node: String,
    /// The Lease's write fence while we hold it; `None`: we do not.
    pub fence: Option<Fence>,
    /// We hold it again after our own renewals ran past its expiry (they failed for
    /// longer than the Lease lasts, as while the apiserver is away): the control plane
    /// has heard nothing from the node for that long.
    pub lapsed: bool,
}

/// `--scale-out`: the member table now deals a node to another live member
/// (`elsewhere`), or no longer does. Its pods are then not cached (the other member
/// drives them), and fetched again before we drive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dealt {
    /// Node name.
    pub node: String,
    /// Dealt to another live member.
    pub elsewhere: bool,
}

/// What the lease worker tells the shard that has a node.
#[derive(Debug, Clone)]
pub enum NodeNews {
    /// Whether we hold its Lease changed.
    Ownership(Ownership),
    /// To whom the member table deals it changed.
    Dealt(Dealt),
}

impl NodeNews {
    /// The node it is about.
    pub fn node(&self) -> &str {
        match self {
            Self::Ownership(o) => &o.node,
            Self::Dealt(d) => &d.node,
        }
    }
}

/// Called with every change of whether we hold a node's Lease, and (`--scale-out`) of
/// whether the table deals it elsewhere.
pub type OnNodeNews = Box<dyn Fn(NodeNews) + Send + Sync>;
