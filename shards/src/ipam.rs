//! Pod IP allocation: one pool per CIDR, addresses stable per pod uid and released
//! when the pod goes, so no IP is handed out twice on a node.

use std::{
    collections::{BTreeSet, HashMap},
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

    /// Usable host addresses: every address but the network and broadcast ones.
    fn hosts(&self) -> u32 {
        (1u32 << (32 - self.prefix)) - 2
    }
}

/// Allocates pod IPs from one CIDR.
#[derive(Debug)]
pub struct Pool {
    cidr: Cidr,
    by_uid: HashMap<String, u32>,
    /// Host offsets given back, reused before new ones (lowest first).
    free: BTreeSet<u32>,
    /// Offsets below this were handed out at least once. Invariant: `1 <= next`.
    next: u32,
}

impl Pool {
    /// An empty pool over `cidr`.
    pub fn new(cidr: Cidr) -> Self {
        Self {
            cidr,
            by_uid: HashMap::new(),
            free: BTreeSet::new(),
            next: 1,
        }
    }

    /// The IP of pod `uid`, allocating one on first use; `None` when the pool is full.
    pub fn get(&mut self, uid: &str) -> Option<Ipv4Addr> {
        if let Some(offset) = self.by_uid.get(uid) {
            return Some(self.addr(*offset));
        }
        let offset = match self.free.pop_first() {
            Some(offset) => offset,
            None if self.next <= self.cidr.hosts() => {
                self.next += 1;
                self.next - 1
            }
            None => return None,
        };
        self.by_uid.insert(uid.to_owned(), offset);
        Some(self.addr(offset))
    }

    /// Records that pod `uid` already holds `ip` (seen on a watch after a restart).
    pub fn adopt(&mut self, uid: &str, ip: Ipv4Addr) {
        let offset = u32::from(ip).wrapping_sub(self.cidr.base);
        if offset == 0 || offset > self.cidr.hosts() || self.by_uid.values().any(|o| *o == offset) {
            return;
        }
        self.free.remove(&offset);
        while self.next <= offset {
            if self.next != offset {
                self.free.insert(self.next);
            }
            self.next += 1;
        }
        self.by_uid.insert(uid.to_owned(), offset);
    }

    /// Gives pod `uid`'s IP back.
    pub fn release(&mut self, uid: &str) {
        if let Some(offset) = self.by_uid.remove(uid) {
            self.free.insert(offset);
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
    fn pool_should_stop_when_full() {
        let mut pool = Pool::new(Cidr::parse("10.0.0.0/30").unwrap());
        assert!(pool.get("a").is_some() && pool.get("b").is_some());
        assert_eq!(pool.get("c"), None);
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
