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
/// With `--scale-out` a pool is one member's [`Stripe`] of the CIDR: offsets here are
/// the stripe's own, mapped to addresses by [`Stripe::address`].
///
/// Invariants: `taken` holds exactly the offsets in `by_uid`'s values; `free` holds
/// only offsets below `next` that are not taken.
#[derive(Debug)]
pub struct Pool {
    cidr: Cidr,
    stripe: Stripe,
    by_uid: HashMap<String, u32>,
    taken: HashSet<u32>,
    /// Host offsets given back, reused before new ones (lowest first).
    free: BTreeSet<u32>,
    /// The next offset never handed out. Invariant: `1 <= next`.
    next: u32,
}

/// One of [`Stripe::SLOTS`] interleaved shares of a pool's addresses: blocks of
/// [`Stripe::BLOCK`] addresses dealt round-robin, slot `k` holding blocks `k`, `k + SLOTS`,
/// `k + 2 × SLOTS` … With `--scale-out` every member allocates pod IPs of nodes without a
/// podCIDR only from the slot it holds (an IP-slot Lease), so two members never hand out
/// one address, whether or not they have seen each other's pods yet. Past a /24 `--cidr`
/// (upstream's default) slot `k`'s first addresses are `x.y.k.1` onwards.
///
/// [`Stripe::WHOLE`] is the whole pool (a single kwok): the identity mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stripe {
    slot: u32,
    slots: u32,
}

impl Stripe {
    /// Addresses per block: a /24's worth.
    pub const BLOCK: u32 = 256;
    /// Slots a `--scale-out` pool is dealt into: kwokctl's most replicas.
    pub const SLOTS: u32 = 64;
    /// The whole address space, unshared.
    pub const WHOLE: Self = Self { slot: 0, slots: 1 };

    /// Slot `slot` of [`Stripe::SLOTS`]; `None` past the last.
    pub fn slot(slot: u32) -> Option<Self> {
        (slot < Self::SLOTS).then_some(Self {
            slot,
            slots: Self::SLOTS,
        })
    }

    /// The slot's index.
    pub fn index(&self) -> u32 {
        self.slot
    }

    /// The offset from the network's base of the stripe's `offset`-th address (it may
    /// lie past the end of the address space).
    fn address(&self, offset: u32) -> u64 {
        let (round, within) = (u64::from(offset / Self::BLOCK), u64::from(offset % Self::BLOCK));
        let block = round * u64::from(self.slots) + u64::from(self.slot);
        block * u64::from(Self::BLOCK) + within
    }

    /// The stripe's offset of the address `address` past the network's base, if it is
    /// the stripe's.
    fn offset(&self, address: u64) -> Option<u32> {
        let (block, within) = (address / u64::from(Self::BLOCK), address % u64::from(Self::BLOCK));
        if block % u64::from(self.slots) != u64::from(self.slot) {
            return None;
        }
        let round = block / u64::from(self.slots);
        u32::try_from(round * u64::from(Self::BLOCK) + within).ok()
    }
}

impl Pool {
    /// An empty pool over `cidr`.
    pub fn new(cidr: Cidr) -> Self {
        Self::striped(cidr, Stripe::WHOLE)
    }

    /// An empty pool over the addresses of `cidr` in `stripe`.
    pub fn striped(cidr: Cidr, stripe: Stripe) -> Self {
        Self {
            cidr,
            stripe,
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
                    if self.try_addr(offset).is_none() {
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
    /// CIDR's hosts and the addresses past its end), in the pool's stripe.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.offset_of(ip).is_some()
    }

    /// The stripe's offset of `ip`, if this pool hands it out (offset 0 never is).
    fn offset_of(&self, ip: Ipv4Addr) -> Option<u32> {
        let above = u32::from(ip).checked_sub(self.cidr.base)?;
        self.stripe.offset(u64::from(above)).filter(|&o| o > 0)
    }

    /// The pool's network.
    pub fn network(&self) -> Cidr {
        self.cidr
    }

    /// The pool's stripe.
    pub fn stripe(&self) -> Stripe {
        self.stripe
    }

    /// Records that pod `uid` holds `ip` (seen on a watch, or after a restart), so it is
    /// not handed out again. False when `ip` is not this pool's or another pod holds it.
    pub fn adopt(&mut self, uid: &str, ip: Ipv4Addr) -> bool {
        let Some(offset) = self.offset_of(ip) else {
            return false;
        };
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

    /// The address of `offset`, if inside the address space.
    fn try_addr(&self, offset: u32) -> Option<Ipv4Addr> {
        let address = u64::from(self.cidr.base) + self.stripe.address(offset);
        u32::try_from(address).ok().map(Ipv4Addr::from)
    }

    /// The address of an offset handed out (so inside the address space).
    fn addr(&self, offset: u32) -> Ipv4Addr {
        self.try_addr(offset).expect("offsets handed out have an address")
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
    fn stripes_should_deal_blocks_round_robin_and_never_share_an_address() {
        let cidr = Cidr::parse("10.0.0.1/24").unwrap();
        let mut pools: Vec<Pool> = (0..Stripe::SLOTS)
            .map(|k| Pool::striped(cidr, Stripe::slot(k).unwrap()))
            .collect();
        assert_eq!(pools[0].get("a"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(pools[1].get("b"), Some(Ipv4Addr::new(10, 0, 1, 1)));
        assert_eq!(pools[63].get("c"), Some(Ipv4Addr::new(10, 0, 63, 1)));
        // Slot 2's 256th to 300th addresses: past its first block, into its second,
        // 64 blocks on.
        let mut seen = std::collections::HashSet::new();
        for (k, pool) in pools.iter_mut().enumerate().take(4) {
            for i in 0..300 {
                let ip = pool.get(&format!("{k}-{i}")).unwrap();
                assert!(seen.insert(ip), "{ip} handed out twice");
                assert!(pool.contains(ip));
            }
        }
        assert!(
            seen.contains(&Ipv4Addr::new(10, 0, 66, 0)),
            "slot 2's second block"
        );
        assert!(
            !seen.contains(&Ipv4Addr::new(10, 0, 2, 0)),
            "offset 0 of a stripe is not handed out"
        );
        // An address of another slot is not this pool's to adopt (it stays with its
        // holder); one of its own is.
        assert!(!pools[0].contains(Ipv4Addr::new(10, 0, 1, 7)));
        assert!(!pools[0].adopt("x", Ipv4Addr::new(10, 0, 1, 7)));
        assert!(pools[1].adopt("x", Ipv4Addr::new(10, 0, 129, 200)));
        assert!(!pools[1].adopt("y", Ipv4Addr::new(10, 0, 129, 200)), "held by x");
        assert_eq!(Stripe::slot(Stripe::SLOTS), None);
    }

    #[test]
    fn a_stripe_should_stop_at_the_end_of_the_address_space() {
        let mut pool = Pool::striped(Cidr::parse("255.255.0.0/16").unwrap(), Stripe::slot(63).unwrap());
        let ips: Vec<_> = (0..2000).map_while(|i| pool.get(&i.to_string())).collect();
        // Slot 63's blocks below 2^32: 255.255.63.1 … .255, then .127, .191 and .255.
        assert_eq!(ips.len(), 255 + 3 * 256, "{:?}", ips.last());
        assert_eq!(ips[255], Ipv4Addr::new(255, 255, 127, 0));
        assert_eq!(ips.last(), Some(&Ipv4Addr::new(255, 255, 255, 255)));
    }

    #[test]
    fn bad_cidr_should_be_refused() {
        assert!(Cidr::parse("10.0.0.0").is_err());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
    }
}
