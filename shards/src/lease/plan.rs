//! `--scale-out`: which of the managed nodes' Leases this kwok may hold, from the
//! member table ([`kwok_members::Table`]) dealt over the live members and the managed
//! node names. Dealt again when either changes, at most once per [`REDEAL_EVERY`], so a
//! burst of new nodes costs one deal, not one per node.

use std::time::Duration;

use kwok_members::Table;
use tokio::time::Instant;

/// The shortest time between two deals: new nodes wait up to this long for an owner.
pub(super) const REDEAL_EVERY: Duration = Duration::from_secs(1);

/// The table and what it was dealt from.
pub(super) struct Plan {
    /// Our member identity (the holder identity of our Leases).
    me: String,
    /// The live members, us included while our member Lease is renewed in time.
    members: Vec<String>,
    table: Table,
    /// The members or the node names changed since the last deal.
    dirty: bool,
    /// When the table was last dealt (at first: when the plan was made).
    dealt_at: Instant,
}

impl Plan {
    /// No members known yet at `now`: nothing is ours until the member Leases are read.
    pub(super) fn new(me: String, now: Instant) -> Self {
        Self {
            me,
            members: Vec::new(),
            table: Table::deal(Vec::<String>::new(), Vec::<String>::new()),
            dirty: false,
            dealt_at: now - REDEAL_EVERY,
        }
    }

    /// Whether the table deals `node` to us.
    pub(super) fn mine(&self, node: &str) -> bool {
        self.table.owner(node) == Some(self.me.as_str())
    }

    /// The live members changed (or not: no deal then).
    pub(super) fn members(&mut self, mut members: Vec<String>) {
        members.sort_unstable();
        members.dedup();
        if members != self.members {
            self.members = members;
            self.dirty = true;
        }
    }

    /// The managed node names changed.
    pub(super) fn nodes_changed(&mut self) {
        self.dirty = true;
    }

    /// When the next deal is due, if one is.
    pub(super) fn due(&self) -> Option<Instant> {
        self.dirty.then_some(self.dealt_at + REDEAL_EVERY)
    }

    /// Deals the table again over `nodes` if it is dirty and due at `now`; says whether
    /// it did.
    pub(super) fn deal_if_due<'a>(&mut self, now: Instant, nodes: impl Iterator<Item = &'a str>) -> bool {
        if !self.dirty || now < self.dealt_at + REDEAL_EVERY {
            return false;
        }
        self.table = Table::deal(&self.members, nodes);
        self.dirty = false;
        self.dealt_at = now;
        true
    }

    /// Whether we are among the live members the table was dealt over.
    pub(super) fn is_member(&self) -> bool {
        self.members.binary_search(&self.me).is_ok()
    }

    /// The managed nodes dealt to us.
    pub(super) fn dealt_to_me(&self) -> u32 {
        self.table.load(&self.me)
    }

    /// Live members, us included when we are one.
    pub(super) fn member_count(&self) -> usize {
        self.members.len()
    }
}
