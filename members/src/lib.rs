//! Which kwok replica drives which node, when several `kwok` processes split the
//! managed nodes (issue 25). Pure and deterministic: every replica that sees the same
//! members and the same node names computes the same [`Table`], with no leader and no
//! message between them.
//!
//! # How nodes are dealt
//! Each node goes to the member that ranks highest for it (rendezvous hashing: the
//! XXH3 of the node's name, hashed again with each member's seed), unless that member
//! already holds its share, in which case the next one in the node's ranking takes it
//! (bounded loads). Nodes are dealt in the order of their hash, so the order in which a
//! replica learnt of them does not matter. A member's share is the even share plus a
//! slack of [`SLACK_PERCENT`] (never less than the even share rounded up).
//!
//! Why not a fixed number of hash buckets dealt by rendezvous hashing? Hashing alone,
//! buckets or not, leaves the node counts binomial: at 10,000 nodes and 16 replicas one
//! standard deviation is already 3.9 % of a share (plain rendezvous hashing of these
//! names left the busiest of 16 replicas 6.4 % above the mean, and of 8, 5.7 %). Bounding loads keeps every replica within the slack, and
//! moves about as few nodes as plain rendezvous hashing (measured below). The price:
//! the table depends on the set of node names, so each replica must see every node's
//! name (a metadata-only watch of nodes is enough); server-side filtering by bucket
//! label would have saved only node events, which are few beside pods' (a node's
//! heartbeat lives in its Lease), and pods cannot be filtered by their node's bucket
//! anyway.
//!
//! Measured by this crate's tests on 10,000 names `node-000000`…`node-009999`
//! (`cargo test -p kwok-members -- --nocapture`):
//!
//! | replicas | busiest above the mean | moved when one joins (ideal) | moved when one leaves (ideal) |
//! |---:|---:|---:|---:|
//! | 2 | 0.1 % | 33.7 % (33.3 %) | 50.0 % (50.0 %) |
//! | 4 | 2.0 % | 19.4 % (20.0 %) | 25.0 % (25.0 %) |
//! | 8 | 2.0 % | 11.6 % (11.1 %) | 12.9 % (12.5 %) |
//! | 16 | 1.9 % | 6.2 % (5.9 %) | 6.7 % (6.2 %) |
//!
//! Adding or removing 100 of the 10,000 nodes moves at most 50 of the others (tested at
//! 2, 4, 8 and 16 replicas): the slack absorbs the change of the even share.
//!
//! A table is a plan, not a licence: a replica drives a node only while it holds the
//! node's Lease, so two replicas whose tables differ for a moment (one saw a member or a
//! node the other has not yet) never both drive a node; at worst a node waits for the
//! tables to agree. [`handover`] has the rules by which a Lease changes hands.
//!
//! `kwok --scale-out` uses it (`shards/src/lease/`): each kwok renews a member Lease,
//! deals this table over the live members and the managed node names it watches, and
//! holds only the node Leases dealt to it, taking them over by [`handover`]'s rules.

pub mod handover;
mod table;

pub use table::{SLACK_PERCENT, Table, owner_of};
