//! Lease requests due, waiting for a slot: urgent renewals, then acquisitions, then the
//! other renewals (the ranks are explained in the module docs).

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, VecDeque},
};

use tokio::time::Instant;

/// While renewals are urgent, one send in this many goes to a waiting acquisition: at
/// 10,000 leases a 2-core apiserver renews ~330/s, of which 250/s keep every lease
/// alive; an acquisition left to wait for a lull would wait forever.
const ACQUISITION_SHARE: u32 = 16;

/// Requests due, waiting for a slot (ranks in the module docs).
#[derive(Default)]
pub(super) struct Queue {
    /// Urgent renewals sent in a row while acquisitions waited.
    urgent_run: u32,
    /// Renewals by expiry, nearest first (ties by name, so the order is total).
    renewals: BinaryHeap<Reverse<(Instant, String)>>,
    /// Leases not held yet: acquisitions, and looks at leases held elsewhere; with when
    /// each was queued.
    acquisitions: VecDeque<(Instant, String)>,
}

impl Queue {
    pub(super) fn push_renewal(&mut self, expiry: Instant, name: String) {
        self.renewals.push(Reverse((expiry, name)));
    }

    pub(super) fn push_acquisition(&mut self, now: Instant, name: String) {
        self.acquisitions.push_back((now, name));
    }

    pub(super) fn len(&self) -> usize {
        self.renewals.len() + self.acquisitions.len()
    }

    /// Pops renewals off the top while `live` says their lease no longer waits for one
    /// (released, or released and managed again), so the top is one that does.
    pub(super) fn drop_stale_renewals(&mut self, live: impl Fn(&str) -> bool) {
        while let Some(Reverse((_, name))) = self.renewals.peek() {
            if live(name) {
                break;
            }
            self.renewals.pop();
        }
    }

    /// When the waiting renewal nearest expiry expires.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.renewals.peek().map(|Reverse((expiry, _))| *expiry)
    }

    /// When the acquisition waiting longest was queued (it may have been released since:
    /// dropped when popped).
    pub(super) fn oldest_acquisition(&self) -> Option<Instant> {
        self.acquisitions.front().map(|(queued, _)| *queued)
    }

    /// Whether a renewal expiring by `urgent` waits.
    pub(super) fn has_urgent(&self, urgent: Instant) -> bool {
        self.next_expiry().is_some_and(|expiry| expiry <= urgent)
    }

    /// The next request to send: a renewal expiring by `urgent` first (but see
    /// [`ACQUISITION_SHARE`]), then an acquisition, then any renewal.
    pub(super) fn pop(&mut self, urgent: Instant) -> Option<String> {
        let renewal = |q: &mut Self| q.renewals.pop().map(|Reverse((_, name))| name);
        if self.has_urgent(urgent)
            && (self.acquisitions.is_empty() || self.urgent_run + 1 < ACQUISITION_SHARE)
        {
            self.urgent_run += u32::from(!self.acquisitions.is_empty());
            return renewal(self);
        }
        self.urgent_run = 0;
        self.acquisitions
            .pop_front()
            .map(|(_, name)| name)
            .or_else(|| renewal(self))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn queue_should_put_urgent_renewals_then_acquisitions_then_other_renewals() {
        let now = Instant::now();
        let urgent = now + Duration::from_secs(10);
        let mut q = Queue::default();
        q.push_renewal(now + Duration::from_secs(30), "renewed-recently".into());
        q.push_acquisition(now, "new-node-1".into());
        q.push_renewal(now + Duration::from_secs(8), "expires-in-8s".into());
        q.push_acquisition(now, "new-node-2".into());
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
        q.push_acquisition(now, "new-node".into());
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
}
