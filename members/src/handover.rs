//! When a node's Lease changes hands between replicas, with no write beyond the Leases'
//! own: the rules each side follows, as pure functions of durations, so both sides can
//! be checked against each other without a cluster.
//!
//! - The member a [`Table`](crate::Table) no longer gives a node stops driving it and
//!   stops renewing its Lease at once ([`Holder::keeps`]).
//! - The member the table now gives it takes the Lease over once the Lease has gone
//!   un-renewed for one renewal interval plus a margin ([`may_take_over`]): the old
//!   holder would have renewed by then had it still thought the node its own. A holder
//!   whose table has not caught up yet keeps renewing, and the newcomer keeps waiting.
//! - A member that cannot renew its own member Lease stops every write once that Lease
//!   would have expired ([`fenced`]): by then the others have dealt its nodes away, and
//!   they may take them over as soon as the node Leases go un-renewed.
//!
//! With the kubelet's timings (a 40 s Lease renewed every 10 s) and a margin of half an
//! interval, a node waits at most 15 s for its new owner, far inside its 40 s Lease: no
//! handover makes a node NotReady.

use std::time::Duration;

/// The margin past one renewal interval before a Lease counts as let go: half an
/// interval, so a renewal sent late by less than that (jitter, a busy apiserver) does
/// not look like a departure.
pub fn margin(renew_interval: Duration) -> Duration {
    renew_interval / 2
}

/// Whether the member a node is now dealt to may take over its Lease, held by another
/// identity and last renewed `since_renewal` ago, when Leases renew every
/// `renew_interval`. An expired Lease (or one with no holder) is taken over whatever
/// this says; this is about Leases not yet expired.
pub fn may_take_over(since_renewal: Duration, renew_interval: Duration) -> bool {
    since_renewal >= held_for(renew_interval)
}

/// How long after a renewal of a node's Lease its holder may still write for the node:
/// until a new owner [`may_take_over`] the Lease, which is where the holder's write
/// fence closes unless a later renewal has landed.
pub fn held_for(renew_interval: Duration) -> Duration {
    renew_interval + margin(renew_interval)
}

/// What the holder of a node's Lease does with it, given the current table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// The table still gives it the node: drive it and renew its Lease.
    Keeps,
    /// The table gives the node to another member: stop driving it and stop renewing;
    /// the new owner takes the Lease over (see [`may_take_over`]).
    LetsGo,
}

impl Holder {
    /// The holder's decision when the table's owner of the node is `owner` and it is
    /// `me`.
    pub fn keeps(owner: Option<&str>, me: &str) -> Self {
        if owner == Some(me) {
            Self::Keeps
        } else {
            Self::LetsGo
        }
    }
}

/// Whether a member whose member Lease was last renewed `since_renewal` ago, with a
/// duration of `duration`, must stop writing: from the moment the others may consider
/// it gone.
pub fn fenced(since_renewal: Duration, duration: Duration) -> bool {
    since_renewal >= duration
}

/// How many member Lease durations a member stays fenced before it drops itself from
/// its own table and lets go of its node Leases.
pub const LEAVE_AFTER_DURATIONS: u32 = 3;

/// Whether a member whose member Lease was last renewed `since_renewal` ago, with a
/// duration of `duration`, drops itself from its own table (lets go of every node).
///
/// Not as soon as it is [`fenced`]: on a saturated apiserver every member's renewal can
/// come late at once (4 kwoks on 10,000 nodes all dropped out together for 8 s during
/// node creation and let go of their nodes; 599 node Lease renewals came after expiry
/// in that run). A fenced member
/// writes nothing, yet keeps renewing the node Leases it holds, so the others, which
/// have dealt its nodes away, cannot take them over ([`may_take_over`]) and no node goes
/// unrenewed; once its member Lease lands again, the tables agree again. A member cut
/// off for good renews nothing, and its nodes are taken over as they go un-renewed,
/// whatever its own table says.
pub fn leaves(since_renewal: Duration, duration: Duration) -> bool {
    since_renewal >= duration * LEAVE_AFTER_DURATIONS
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(10);
    const LEASE: Duration = Duration::from_secs(40);

    #[test]
    fn a_lease_renewed_on_time_or_a_little_late_should_not_be_taken_over() {
        for seconds in [0, 5, 10, 14] {
            assert!(
                !may_take_over(Duration::from_secs(seconds), INTERVAL),
                "{seconds} s"
            );
        }
        assert!(may_take_over(Duration::from_secs(15), INTERVAL));
        assert!(may_take_over(Duration::from_secs(39), INTERVAL));
    }

    /// Issue 25: a handover (or a killed replica's nodes) must not make a node NotReady:
    /// the newcomer takes over well before the 40 s Lease expires.
    #[test]
    fn a_let_go_lease_should_be_taken_over_before_it_expires() {
        let latest = INTERVAL + margin(INTERVAL);
        assert!(latest < LEASE);
        assert!(
            latest <= Duration::from_secs(20),
            "issue 25: driven again within 20 s"
        );
    }

    #[test]
    fn the_holder_should_let_go_of_a_node_dealt_to_another_member() {
        assert_eq!(Holder::keeps(Some("kwok-0"), "kwok-0"), Holder::Keeps);
        assert_eq!(Holder::keeps(Some("kwok-1"), "kwok-0"), Holder::LetsGo);
        assert_eq!(Holder::keeps(None, "kwok-0"), Holder::LetsGo);
    }

    #[test]
    fn a_member_should_stop_writing_once_its_member_lease_would_have_expired() {
        let duration = Duration::from_secs(10);
        assert!(!fenced(Duration::from_secs(9), duration));
        assert!(fenced(Duration::from_secs(10), duration));
        assert!(!leaves(Duration::from_secs(29), duration), "fenced, not gone");
        assert!(leaves(Duration::from_secs(30), duration));
    }
}
