//! Write fences: a write for a node goes out only while nobody else can have taken the
//! node over.
//!
//! Whether we hold a node's Lease is known to the lease worker when its renewals land,
//! but a kwok that stops for a while (SIGSTOP, a long GC-free pause of the VM, a
//! partition) resumes with every shard still believing what it last heard, and its
//! queued stage writes run before the lease worker learns that others took the nodes
//! over. So each held Lease carries a [`Fence`]: the lease worker opens it up to the
//! moment another kwok may take the Lease over (counted from when our last successful
//! renewal was sent, which is no later than the renewTime it wrote), and every write
//! checks it, on the monotonic clock, right before it goes out. With `--scale-out` the
//! member Lease has one too: past its expiry the others have dealt our nodes away.
//!
//! The check is one atomic load per write: the lease worker stores, writers load; no
//! lock, no message per renewal.

use std::sync::{
    Arc, LazyLock,
    atomic::{AtomicU64, Ordering},
};

use tokio::time::Instant;

/// The origin of the fences' millisecond clock.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Milliseconds from [`EPOCH`] to `t`, plus one so that no instant maps to 0 (closed).
fn millis(t: Instant) -> u64 {
    t.saturating_duration_since(*EPOCH).as_millis() as u64 + 1
}

/// Until when writes under one Lease may go out; shared by the lease worker (which
/// opens and closes it) and the writers (which check it). Starts closed.
#[derive(Debug, Clone, Default)]
pub struct Fence(Arc<AtomicU64>);

impl Fence {
    /// A closed fence.
    pub fn closed() -> Self {
        Self::default()
    }

    /// Lets writes out until `until` (exclusive).
    pub fn open_until(&self, until: Instant) {
        self.0.store(millis(until), Ordering::Release);
    }

    /// Stops every write from now on.
    pub fn close(&self) {
        self.0.store(0, Ordering::Release);
    }

    /// Whether a write may go out at `now`.
    pub fn is_open(&self, now: Instant) -> bool {
        millis(now) < self.0.load(Ordering::Acquire)
    }
}

/// The fences one write passes: its node's Lease (pods and nodes, when leases are on)
/// and the member Lease (with `--scale-out`). A missing one does not hold writes back.
#[derive(Debug, Clone, Default)]
pub struct WriteFence {
    /// The Lease of the node the object is (or runs on).
    pub node: Option<Fence>,
    /// Our member Lease.
    pub member: Option<Fence>,
}

impl WriteFence {
    /// Whether the write may go out at `now`.
    pub fn is_open(&self, now: Instant) -> bool {
        self.node.as_ref().is_none_or(|f| f.is_open(now))
            && self.member.as_ref().is_none_or(|f| f.is_open(now))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_fence_should_let_writes_out_only_before_its_deadline() {
        let now = Instant::now();
        let fence = Fence::closed();
        assert!(!fence.is_open(now), "a new fence is closed");
        fence.open_until(now + Duration::from_secs(15));
        assert!(fence.is_open(now));
        assert!(fence.is_open(now + Duration::from_millis(14_990)));
        assert!(
            !fence.is_open(now + Duration::from_secs(15)),
            "closed at its deadline"
        );
        let shared = fence.clone();
        shared.close();
        assert!(!fence.is_open(now), "closing one handle closes every clone");
    }

    #[test]
    fn a_write_should_pass_only_when_every_fence_it_has_is_open() {
        let now = Instant::now();
        let open = Fence::closed();
        open.open_until(now + Duration::from_secs(1));
        let closed = Fence::closed();
        assert!(WriteFence::default().is_open(now), "no lease, no fence");
        let both = |node: &Fence, member: &Fence| WriteFence {
            node: Some(node.clone()),
            member: Some(member.clone()),
        };
        assert!(both(&open, &open).is_open(now));
        assert!(!both(&open, &closed).is_open(now), "member lease expired");
        assert!(!both(&closed, &open).is_open(now), "node lease may be taken over");
    }
}
