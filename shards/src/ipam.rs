//! Pod IP allocation: one pool per CIDR, addresses stable per pod uid and released
//! when the pod goes, so no IP is handed out twice on a node.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    net::Ipv4Addr,
};

/// A CIDR that does not parse or is too small.
#[derive(Debug, thiserror::Error)]
#[error("invalid CIDR {0:?}: expected an IPv4 network such as 10.0.0.1/24")]
pub struct Error(pub String);

/// An IPv4 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    base: u32,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let err = || Error(text.to_owned());
        let (ip, prefix) = text.trim().split_once('/').ok_or_else(err)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| err())?;
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        if !(1..=30).contains(&prefix) {
            return Err(err());
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Self {
            base: u32::from(ip) & mask,
            prefix,
        })
    }

    /// The network as `a.b.c.d/n`.
    fn text(&self) -> String {
        format!("{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

/// Allocates pod IPs from one CIDR, and past its end as upstream KWOK does (a node's
/// 255th pod on a /24 gets the broadcast address, the next one the following network's
/// first), so pods pinned to one node beyond its podCIDR's size still run. A real
/// kubelet's CNI would leave them Pending instead.
///
/// Invariants: `taken` holds exactly the offsets in `by_uid`'s values; `free` holds
/// only offsets below `next` that are not taken.
#[derive(Debug)]
pub struct Pool {
    cidr: Cidr,
    by_uid: HashMap<String, u32>,
    taken: HashSet<u32>,
    /// Host offsets given back, reused before new ones (lowest first).
    free: BTreeSet<u32>,
    /// The next offset never handed out. Invariant: `1 <= next`.
    next: u32,
}

impl Pool {
    /// An empty pool over `cidr`.
    pub fn new(cidr: Cidr) -> Self {
        Self {
            cidr,
            by_uid: HashMap::new(),
            taken: HashSet::new(),
            free: BTreeSet::new(),
            next: 1,
        }
    }

    /// The IP of pod `uid`, allocating one on first use; `None` only when the
    /// addresses above the network's base are all taken.
    pub fn get(&mut self, uid: &str) -> Option<Ipv4Addr> {
        self.get_avoiding(uid, |_| false)
    }

    /// [`Pool::get`], passing over addresses `held_elsewhere` says another pool's pod
    /// holds (a pool that ran past its CIDR into a neighbour's network); those stay free
    /// here for when their holder lets go.
    pub fn get_avoiding(&mut self, uid: &str, held_elsewhere: impl Fn(Ipv4Addr) -> bool) -> Option<Ipv4Addr> {
        if let Some(offset) = self.by_uid.get(uid) {
            return Some(self.addr(*offset));
        }
        let mut passed = Vec::new();
        let found = loop {
            let offset = match self.free.pop_first() {
                Some(offset) => offset,
                None => {
                    // Offsets above `next` may be taken by adopted pods: skip them.
                    let offset = self.next;
                    if offset > self.max_offset() {
                        break None;
                    }
                    self.next += 1;
                    if self.taken.contains(&offset) {
                        continue;
                    }
                    offset
                }
            };
            if held_elsewhere(self.addr(offset)) {
                passed.push(offset);
                continue;
            }
            break Some(offset);
        };
        // Below `next` and not taken: back to `free`, keeping its invariant.
        self.free.extend(passed);
        let offset = found?;
        self.hold(uid, offset);
        Some(self.addr(offset))
    }

    /// Whether `ip` is one this pool hands out: above the network's base address (the
    /// CIDR's hosts and the addresses past its end).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) > self.cidr.base
    }

    /// Records that pod `uid` holds `ip` (seen on a watch, or after a restart), so it is
    /// not handed out again. False when `ip` is not this pool's or another pod holds it.
    pub fn adopt(&mut self, uid: &str, ip: Ipv4Addr) -> bool {
        if !self.contains(ip) {
            return false;
        }
        let offset = u32::from(ip) - self.cidr.base;
        match self.by_uid.get(uid) {
            Some(held) if *held == offset => return true,
            Some(_) => self.release(uid),
            None => {}
        }
        if self.taken.contains(&offset) {
            return false;
        }
        self.free.remove(&offset);
        self.hold(uid, offset);
        true
    }

    /// Gives pod `uid`'s IP back.
    pub fn release(&mut self, uid: &str) {
        if let Some(offset) = self.by_uid.remove(uid) {
            self.taken.remove(&offset);
            if offset < self.next {
                self.free.insert(offset);
            }
        }
    }

    /// The pool's network, for messages.
    pub fn cidr(&self) -> String {
        self.cidr.text()
    }

    /// Pods holding an IP.
    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    /// Whether no pod holds an IP.
    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }

    fn hold(&mut self, uid: &str, offset: u32) {
        debug_assert!(!self.taken.contains(&offset), "offset {offset} handed out twice");
        self.taken.insert(offset);
        self.by_uid.insert(uid.to_owned(), offset);
    }

    fn max_offset(&self) -> u32 {
        u32::MAX - self.cidr.base
    }

    fn addr(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.cidr.base + offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_should_hand_out_unique_ips_stable_per_uid_and_reuse_released_ones() {
        let mut pool = Pool::new(Cidr::parse("10.0.0.1/24").unwrap());
        assert_eq!(pool.get("a"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(pool.get("b"), Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(pool.get("a"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        pool.release("a");
        assert_eq!(pool.get("c"), Some(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn get_avoiding_should_pass_over_addresses_held_elsewhere_and_keep_them_free() {
        let mut pool = Pool::new(Cidr::parse("10.0.0.0/30").unwrap());
        let elsewhere = |ip: Ipv4Addr| ip == Ipv4Addr::new(10, 0, 0, 1) || ip == Ipv4Addr::new(10, 0, 0, 3);
        assert_eq!(
            pool.get_avoiding("a", elsewhere),
            Some(Ipv4Addr::new(10, 0, 0, 2))
        );
        assert_eq!(
            pool.get_avoiding("b", elsewhere),
            Some(Ipv4Addr::new(10, 0, 0, 4))
        );
        // Once let go elsewhere, the passed addresses are handed out, lowest first.
        assert_eq!(pool.get("c"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(pool.get("d"), Some(Ipv4Addr::new(10, 0, 0, 3)));
        assert_eq!(pool.get("e"), Some(Ipv4Addr::new(10, 0, 0, 5)));
    }

    #[test]
    fn pool_should_go_on_past_the_cidr_as_upstream_does() {
        let mut pool = Pool::new(Cidr::parse("10.0.0.0/30").unwrap());
        let ips: Vec<_> = ["a", "b", "c", "d"]
            .iter()
            .map(|u| pool.get(u).unwrap())
            .collect();
        assert_eq!(
            ips,
            [[10, 0, 0, 1], [10, 0, 0, 2], [10, 0, 0, 3], [10, 0, 0, 4]].map(Ipv4Addr::from)
        );
    }

    #[test]
    fn pool_should_stop_only_at_the_end_of_the_address_space() {
        let mut pool = Pool::new(Cidr::parse("255.255.255.248/30").unwrap());
        let ips: Vec<_> = (0..8).map_while(|i| pool.get(&i.to_string())).collect();
        assert_eq!(ips.len(), 7, "{ips:?}");
        assert_eq!(ips.last(), Some(&Ipv4Addr::new(255, 255, 255, 255)));
    }

    #[test]
    fn adopt_should_refuse_an_ip_another_pod_holds_or_below_the_base() {
        let mut pool = Pool::new(Cidr::parse("10.0.1.0/24").unwrap());
        assert!(pool.adopt("a", Ipv4Addr::new(10, 0, 1, 7)));
        assert!(!pool.adopt("b", Ipv4Addr::new(10, 0, 1, 7)), "held by a");
        assert!(!pool.adopt("c", Ipv4Addr::new(10, 0, 0, 7)), "below the base");
        assert!(!pool.adopt("c", Ipv4Addr::new(10, 0, 1, 0)), "the base itself");
        // Far past the end costs nothing and is skipped when reached.
        assert!(pool.adopt("far", Ipv4Addr::new(10, 0, 9, 9)));
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn adopt_of_a_new_ip_for_a_known_pod_should_free_the_old_one() {
        let mut pool = Pool::new(Cidr::parse("10.0.0.0/24").unwrap());
        assert_eq!(pool.get("a"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(pool.adopt("a", Ipv4Addr::new(10, 0, 0, 5)));
        assert_eq!(pool.get("b"), Some(Ipv4Addr::new(10, 0, 0, 1)), "freed");
    }

    #[test]
    fn allocation_should_skip_offsets_adopted_ahead_of_it() {
        let mut pool = Pool::new(Cidr::parse("10.0.0.0/24").unwrap());
        pool.adopt("x", Ipv4Addr::new(10, 0, 0, 1));
        pool.adopt("y", Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(pool.get("z"), Some(Ipv4Addr::new(10, 0, 0, 3)));
        pool.release("x");
        assert_eq!(pool.get("w"), Some(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn adopt_should_keep_a_known_ip_out_of_new_allocations() {
        let mut pool = Pool::new(Cidr::parse("10.0.0.0/24").unwrap());
        pool.adopt("old", Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(pool.get("x"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(pool.get("y"), Some(Ipv4Addr::new(10, 0, 0, 3)));
        assert_eq!(pool.get("old"), Some(Ipv4Addr::new(10, 0, 0, 2)));
    }

    #[test]
    fn bad_cidr_should_be_refused() {
        assert!(Cidr::parse("10.0.0.0").is_err());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
    }
}
