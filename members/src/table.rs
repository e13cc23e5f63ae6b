//! The node-to-member table (see the crate docs for why it is dealt this way).

use std::collections::HashMap;

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// How far above the even share a member's load may go, in percent: the slack that lets
/// a node stay with its first-ranked member when the node count changes a little.
/// Issue 25 asks for at most 2 % imbalance.
pub const SLACK_PERCENT: u64 = 2;

/// Which member drives each node.
///
/// Invariants (checked in debug builds when dealt): every node has exactly one owner
/// when there is at least one member; no member holds more than [`Table::share`]
/// nodes; the loads add up to the node count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Members, sorted and without duplicates: a member's index is its place here.
    members: Vec<Box<str>>,
    /// Node name → index into `members`.
    owners: HashMap<Box<str>, u32>,
    /// Nodes held by each member, by index.
    loads: Vec<u32>,
    /// The most nodes one member may hold.
    share: u32,
}

impl Table {
    /// Deals `nodes` to `members` (both in any order; duplicates count once). With no
    /// member, no node has an owner.
    pub fn deal<M, N>(members: impl IntoIterator<Item = M>, nodes: impl IntoIterator<Item = N>) -> Self
    where
        M: AsRef<str>,
        N: AsRef<str>,
    {
        let mut members: Vec<Box<str>> = members.into_iter().map(|m| m.as_ref().into()).collect();
        members.sort_unstable();
        members.dedup();
        // A node's hash fixes both its place in the dealing order and its ranking of
        // the members; ties in the order fall back to the name, so the order is total.
        let mut nodes: Vec<(u64, Box<str>)> = nodes
            .into_iter()
            .map(|n| (xxh3_64(n.as_ref().as_bytes()), n.as_ref().into()))
            .collect();
        nodes.sort_unstable();
        nodes.dedup();

        let count = nodes.len() as u64;
        let share = share(count, members.len() as u64);
        let seeds: Vec<u64> = members.iter().map(|m| xxh3_64(m.as_bytes())).collect();
        let mut loads = vec![0u32; members.len()];
        let mut owners = HashMap::with_capacity(if members.is_empty() { 0 } else { nodes.len() });
        // Reused for every node: (score, member index), best first once sorted.
        let mut ranking: Vec<(u64, u32)> = Vec::with_capacity(members.len());
        if !members.is_empty() {
            for (hash, name) in nodes {
                ranking.clear();
                ranking.extend(
                    seeds
                        .iter()
                        .enumerate()
                        .map(|(i, &seed)| (score(hash, seed), i as u32)),
                );
                let best = ranking.iter().copied().max().expect("at least one member");
                let owner = if loads[best.1 as usize] < share {
                    best.1
                } else {
                    // Rare (only the last nodes dealt meet full members): rank them all.
                    ranking.sort_unstable_by(|a, b| b.cmp(a));
                    ranking
                        .iter()
                        .map(|&(_, i)| i)
                        .find(|&i| loads[i as usize] < share)
                        .expect("shares add up to at least the node count")
                };
                loads[owner as usize] += 1;
                owners.insert(name, owner);
            }
        }
        let table = Self {
            members,
            owners,
            loads,
            share,
        };
        table.check();
        table
    }

    fn check(&self) {
        debug_assert!(
            self.loads.iter().all(|&l| l <= self.share),
            "a member over its share"
        );
        debug_assert_eq!(
            self.loads.iter().map(|&l| l as usize).sum::<usize>(),
            self.owners.len(),
            "loads do not add up to the nodes dealt"
        );
    }

    /// The member that drives `node`, if it was dealt and there is a member.
    pub fn owner(&self, node: &str) -> Option<&str> {
        self.owners.get(node).map(|&i| &*self.members[i as usize])
    }

    /// The members, sorted.
    pub fn members(&self) -> impl ExactSizeIterator<Item = &str> {
        self.members.iter().map(|m| &**m)
    }

    /// How many nodes `member` drives (0 for a stranger).
    pub fn load(&self, member: &str) -> u32 {
        self.members
            .binary_search_by(|m| (**m).cmp(member))
            .map_or(0, |i| self.loads[i])
    }

    /// The nodes `member` drives, in no particular order.
    pub fn nodes_of<'a>(&'a self, member: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let index = self.members.binary_search_by(|m| (**m).cmp(member)).ok();
        self.owners
            .iter()
            .filter(move |&(_, &i)| Some(i as usize) == index)
            .map(|(n, _)| &**n)
    }

    /// The most nodes one member may hold.
    pub fn share(&self) -> u32 {
        self.share
    }

    /// How far the busiest member is above the mean load, as a fraction of it (0 when
    /// there are no nodes or no members).
    pub fn imbalance(&self) -> f64 {
        let Some(&max) = self.loads.iter().max() else {
            return 0.0;
        };
        if self.owners.is_empty() {
            return 0.0;
        }
        let mean = self.owners.len() as f64 / self.loads.len() as f64;
        (f64::from(max) - mean) / mean
    }

    /// How many of the nodes in both tables have a different owner in `other`: the
    /// handovers going from one to the other.
    pub fn moved(&self, other: &Table) -> usize {
        self.owners
            .keys()
            .filter(|n| other.owners.contains_key(*n) && self.owner(n) != other.owner(n))
            .count()
    }
}

/// The most nodes one of `members` may hold when dealing `nodes`: the even share plus
/// the slack, never below the even share rounded up (so the shares always cover every
/// node).
fn share(nodes: u64, members: u64) -> u32 {
    if members == 0 {
        return 0;
    }
    let even = nodes.div_ceil(members);
    let slack = nodes * (100 + SLACK_PERCENT) / (100 * members);
    u32::try_from(even.max(slack)).expect("fewer than 2^32 nodes")
}

/// The member that drives an object that is not bound to a node (a Stage's other
/// kinds: claims, volumes…), named `key`: plain rendezvous hashing over `members`, so
/// every replica that sees the same members picks the same one, and a member coming or
/// going moves only the objects it wins or held. Unbounded: such objects are few beside
/// nodes and pods, and need no Lease.
pub fn owner_of<'a>(members: &'a [String], key: &str) -> Option<&'a str> {
    let hashed = xxh3_64(key.as_bytes());
    members
        .iter()
        .max_by_key(|m| (score(hashed, xxh3_64(m.as_bytes())), m.as_str()))
        .map(String::as_str)
}

/// How much the member with `seed` wants the node whose name hashed to `node`.
fn score(node: u64, seed: u64) -> u64 {
    xxh3_64_with_seed(&node.to_le_bytes(), seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_off_nodes_should_go_to_one_member_each_and_move_only_with_their_owner() {
        let members: Vec<String> = (0..4).map(|i| format!("kwok-{i}")).collect();
        let keys: Vec<String> = (0..4_000).map(|i| format!("ns/claim-{i}")).collect();
        let owners: Vec<&str> = keys.iter().map(|k| owner_of(&members, k).unwrap()).collect();
        for m in &members {
            let n = owners.iter().filter(|o| **o == m).count();
            assert!((850..=1150).contains(&n), "{m} got {n} of 4,000");
        }
        // kwok-3 leaves: only its objects move.
        let three = &members[..3];
        for (key, before) in keys.iter().zip(&owners) {
            let after = owner_of(three, key).unwrap();
            assert!(
                *before == "kwok-3" || after == *before,
                "{key} moved from {before}"
            );
        }
        assert_eq!(owner_of(&[], "ns/x"), None);
    }

    fn names(count: usize) -> Vec<String> {
        (0..count).map(|i| format!("node-{i:06}")).collect()
    }

    fn replicas(count: usize) -> Vec<String> {
        (0..count).map(|i| format!("kwok-{i}")).collect()
    }

    #[test]
    fn the_same_members_and_nodes_in_any_order_should_deal_the_same_table() {
        let nodes = names(1_000);
        let members = replicas(5);
        let table = Table::deal(&members, &nodes);
        let mut shuffled_nodes = nodes.clone();
        shuffled_nodes.reverse();
        shuffled_nodes.extend(nodes.iter().take(10).cloned()); // duplicates count once
        let mut shuffled_members = members.clone();
        shuffled_members.rotate_left(2);
        assert_eq!(table, Table::deal(&shuffled_members, &shuffled_nodes));
    }

    #[test]
    fn every_node_should_have_one_owner_among_the_members() {
        let nodes = names(997);
        let table = Table::deal(replicas(3), &nodes);
        for node in &nodes {
            let owner = table.owner(node).expect("an owner");
            assert!(owner.starts_with("kwok-"), "{owner}");
        }
        let total: u32 = table.members().map(|m| table.load(m)).sum();
        assert_eq!(total, 997);
        assert_eq!(table.nodes_of("kwok-1").count() as u32, table.load("kwok-1"));
        assert_eq!(table.owner("node-999999"), None, "a node not dealt has no owner");
        assert_eq!(table.load("stranger"), 0);
    }

    #[test]
    fn no_member_should_leave_every_node_without_an_owner() {
        let table = Table::deal(Vec::<String>::new(), names(10));
        assert_eq!(table.owner("node-000001"), None);
        assert_eq!(table.imbalance(), 0.0);
        let alone = Table::deal(["only"], names(10));
        assert_eq!(alone.load("only"), 10);
        assert_eq!(Table::deal(["a", "b"], Vec::<String>::new()).imbalance(), 0.0);
    }

    #[test]
    fn with_a_few_nodes_no_member_should_hold_more_than_the_even_share_rounded_up() {
        for (nodes, members) in [(1, 3), (2, 3), (10, 3), (17, 16), (31, 16), (100, 7)] {
            let table = Table::deal(replicas(members), names(nodes));
            let loads: Vec<u32> = table.members().map(|m| table.load(m)).collect();
            let max = *loads.iter().max().unwrap() as usize;
            assert!(
                max <= nodes.div_ceil(members),
                "{nodes} nodes over {members}: {loads:?}"
            );
        }
    }

    /// Issue 25: nodes per replica within 2 % at 2–16 replicas, and a join or a leave
    /// moving about 1/N of the nodes. Prints the crate docs' table.
    #[test]
    fn ten_thousand_nodes_should_be_balanced_within_the_slack_and_move_about_one_nth() {
        let nodes = names(10_000);
        println!(
            "| replicas | busiest above the mean | moved when one joins (ideal) | moved when one leaves (ideal) |"
        );
        for count in 2..=16 {
            let members = replicas(count);
            let table = Table::deal(&members, &nodes);
            let imbalance = table.imbalance();
            // Within the slack up to rounding (10,000 / 15 × 1.02 is 680 exactly).
            assert!(imbalance <= 0.02 + 1e-9, "{count} replicas: {imbalance}");

            let joined = Table::deal(replicas(count + 1), &nodes);
            let left = Table::deal(&members[1..], &nodes);
            let n = nodes.len() as f64;
            let (join, leave) = (table.moved(&joined) as f64 / n, table.moved(&left) as f64 / n);
            let (join_ideal, leave_ideal) = (1.0 / (count as f64 + 1.0), 1.0 / count as f64);
            assert!(join <= join_ideal * 1.25, "{count} replicas, one joins: {join}");
            assert!(
                leave <= leave_ideal * 1.25,
                "{count} replicas, one leaves: {leave}"
            );
            println!(
                "| {count} | {:.1} % | {:.1} % ({:.1} %) | {:.1} % ({:.1} %) |",
                imbalance * 100.0,
                join * 100.0,
                join_ideal * 100.0,
                leave * 100.0,
                leave_ideal * 100.0
            );
        }
    }

    /// Nodes come and go all the time (`kwokctl scale node`): that must not reshuffle
    /// the nodes already dealt.
    #[test]
    fn adding_or_removing_a_hundred_nodes_should_move_few_of_the_others() {
        let nodes = names(10_000);
        for count in [2, 4, 8, 16] {
            let table = Table::deal(replicas(count), &nodes);
            let mut more = nodes.clone();
            more.extend((0..100).map(|i| format!("extra-{i}")));
            let fewer = &nodes[100..];
            for (what, other) in [
                ("added", Table::deal(replicas(count), &more)),
                ("removed", Table::deal(replicas(count), fewer)),
            ] {
                let moved = table.moved(&other);
                assert!(
                    moved <= 50,
                    "{count} replicas, 100 nodes {what}: {moved} others moved"
                );
            }
        }
    }
}
