//! The runtime side of KWOK's template functions: the real clock and the IP pools of
//! one shard.

use std::{
    collections::{HashMap, HashSet},
    net::Ipv4Addr,
    sync::{Arc, Mutex},
};

use jiff::Timestamp;
use kwok_engine::host::{Host, PoolExhausted, splitmix64};
use serde_json::Value;

use crate::ipam::{Cidr, Pool, Stripe};

/// What every shard shares: the `--cidr` pool for nodes without a podCIDR, and the
/// holder of every pod IP handed out or seen. A node's pool runs past its podCIDR as
/// upstream's does, into the next node's network; the holders keep such an address
/// from going to a second pod on another node.
///
/// With `--scale-out` several kwoks hand out `--cidr` addresses at once, each unaware of
/// the others' latest pods: each takes them only from the [`Stripe`] of the IP slot it
/// holds (`lease::IpSlot`), none while it holds none. `generation` counts slot changes:
/// an address we handed out from a slot no longer ours, and never seen on its pod, may
/// go to another pod by the slot's new holder, so it is handed out again.
#[derive(Debug)]
pub struct SharedIps {
    global: Pool,
    holders: HashMap<Ipv4Addr, String>,
    /// Whether `global` may hand out addresses: always for a single kwok; with
    /// `--scale-out`, while we hold its slot.
    slot_held: bool,
    generation: u64,
}

impl SharedIps {
    /// Shared state over the `--cidr` pool `global`.
    pub fn new(global: Pool) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Self {
            global,
            holders: HashMap::new(),
            slot_held: true,
            generation: 0,
        }))
    }

    /// Shared state over `cidr` for a `--scale-out` member: no address is handed out
    /// until [`SharedIps::set_slot`] gives it a slot.
    pub fn scale_out(cidr: Cidr) -> Arc<Mutex<Self>> {
        let this = Self::new(Pool::new(cidr));
        this.lock().expect("new lock").slot_held = false;
        this
    }

    /// We now hold IP slot `stripe` (`None`: none): `--cidr` addresses come from it,
    /// the ones already known in it kept from new pods.
    pub fn set_slot(&mut self, stripe: Option<Stripe>) {
        let held = stripe.is_some();
        if let Some(stripe) = stripe
            && (stripe != self.global.stripe() || !self.slot_held)
        {
            let mut pool = Pool::striped(self.global.network(), stripe);
            for (ip, uid) in &self.holders {
                pool.adopt(uid, *ip);
            }
            self.global = pool;
            self.generation += 1;
        } else if !held && self.slot_held {
            self.generation += 1;
        }
        self.slot_held = held;
    }
}

/// IP state of one shard: a pool per node that has a podCIDR, the state shared with
/// the other shards, and each node's InternalIP.
///
/// The pools are a view of `pods`, the IPs the shard knows its pods hold, however the
/// events arrived: a pod listed before its node (after a restart) is placed again when
/// the node's pool appears, so its address is never handed out a second time.
pub struct Ips {
    per_node: HashMap<String, Pool>,
    node_ips: HashMap<String, String>,
    shared: Arc<Mutex<SharedIps>>,
    /// Every pod IP this shard knows, by pod uid.
    pods: HashMap<String, PodIp>,
    /// uids in `pods`, by node: placed again when the node's pool appears.
    by_node: HashMap<String, HashSet<String>>,
    default_node_ip: String,
}

/// A pod's IP and the pool that holds it.
struct PodIp {
    node: String,
    ip: Ipv4Addr,
    pool: Placement,
    /// Seen on the pod (a watch event): it is the cluster's now, whoever handed it out.
    seen: bool,
    /// [`SharedIps::generation`] when we handed it out.
    generation: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Its node's podCIDR pool.
    Node,
    /// The shared `--cidr` pool.
    Global,
    /// In no pool: outside both, or already held by another pod (a duplicate made
    /// elsewhere, kept out of every pool so it is not handed out a third time).
    Unpooled,
}

impl Ips {
    /// State for one shard sharing `shared` with the others.
    pub fn new(shared: Arc<Mutex<SharedIps>>, default_node_ip: String) -> Self {
        Self {
            per_node: HashMap::new(),
            node_ips: HashMap::new(),
            shared,
            pods: HashMap::new(),
            by_node: HashMap::new(),
            default_node_ip,
        }
    }

    /// Learns a node's podCIDR and InternalIP from its object.
    pub fn observe_node(&mut self, name: &str, node: &Value) {
        if let Some(cidr) = node
            .pointer("/spec/podCIDR")
            .and_then(Value::as_str)
            .and_then(|c| Cidr::parse(c).ok())
            && !self.per_node.contains_key(name)
        {
            self.per_node.insert(name.to_owned(), Pool::new(cidr));
            self.place_again(name);
        }
        let internal = node
            .pointer("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|x| x["type"] == "InternalIP")
                    .and_then(|x| x["address"].as_str())
            });
        if let Some(ip) = internal {
            self.node_ips.insert(name.to_owned(), ip.to_owned());
        }
    }

    /// Whether node `name` has its own pool (a podCIDR): then its pods' IPs matter only
    /// to whoever drives it, and can be adopted when that starts.
    pub fn has_node_pool(&self, name: &str) -> bool {
        self.per_node.contains_key(name)
    }

    /// Forgets a node's pool; its pods' IPs stay known and go back into a pool if the
    /// node comes back.
    pub fn forget_node(&mut self, name: &str) {
        self.per_node.remove(name);
        self.node_ips.remove(name);
        for uid in self.by_node.get(name).into_iter().flatten() {
            if let Some(pod) = self.pods.get_mut(uid)
                && pod.pool == Placement::Node
            {
                pod.pool = Placement::Unpooled;
            }
        }
    }

    /// Records the IP a pod holds (seen on a watch), so it is not handed out again.
    pub fn adopt_pod(&mut self, node: &str, uid: &str, ip: &str) {
        let Ok(ip) = ip.parse::<Ipv4Addr>() else { return };
        if let Some(pod) = self.pods.get_mut(uid)
            && pod.ip == ip
            && pod.node == node
        {
            pod.seen = true;
            return;
        }
        self.release_pod(uid);
        let pool = self.place(node, uid, ip);
        self.record(node, uid, ip, pool, 0);
        self.pods.get_mut(uid).expect("just recorded").seen = true;
    }

    /// Releases a pod's IP.
    pub fn release_pod(&mut self, uid: &str) {
        let Some(pod) = self.pods.remove(uid) else { return };
        self.unplace(&pod.node, uid, pod.pool);
        let mut shared = self.shared.lock().expect("ip pool lock");
        if shared.holders.get(&pod.ip).is_some_and(|h| h == uid) {
            shared.holders.remove(&pod.ip);
        }
        // A new slot's pool adopted every known address, whatever its placement here.
        shared.global.release(uid);
        drop(shared);
        if let Some(uids) = self.by_node.get_mut(&pod.node) {
            uids.remove(uid);
            if uids.is_empty() {
                self.by_node.remove(&pod.node);
            }
        }
    }

    /// Pod `uid`'s IP on `node`, allocated on first use; `Err` names the exhausted pool.
    fn pod_ip(&mut self, node: &str, uid: &str) -> Result<String, PoolExhausted> {
        if let Some(pod) = self.pods.get(uid) {
            let handed_out_from_a_lost_slot = pod.pool == Placement::Global
                && !pod.seen
                && pod.generation != self.shared.lock().expect("ip pool lock").generation;
            if !handed_out_from_a_lost_slot {
                return Ok(pod.ip.to_string());
            }
            tracing::info!(pod = uid, ip = %pod.ip, "pod IP from an IP slot no longer held, not yet written: handing out another");
            self.release_pod(uid);
        }
        let mut shared = self.shared.lock().expect("ip pool lock");
        let generation = shared.generation;
        let SharedIps {
            global,
            holders,
            slot_held,
            ..
        } = &mut *shared;
        let held_elsewhere = |ip: Ipv4Addr| holders.get(&ip).is_some_and(|h| h != uid);
        let (ip, pool) = match self.per_node.get_mut(node) {
            Some(pool) => (
                pool.get_avoiding(uid, held_elsewhere)
                    .ok_or_else(|| PoolExhausted {
                        pool: format!("podCIDR {} of node {node:?}", pool.cidr()),
                    })?,
                Placement::Node,
            ),
            None if !*slot_held => {
                return Err(PoolExhausted {
                    pool: format!(
                        "--cidr {} (node {node:?} has no podCIDR, and this --scale-out member holds no IP slot yet)",
                        global.cidr()
                    ),
                });
            }
            None => {
                let ip = global
                    .get_avoiding(uid, held_elsewhere)
                    .ok_or_else(|| PoolExhausted {
                        pool: format!("--cidr {} (node {node:?} has no podCIDR)", global.cidr()),
                    })?;
                (ip, Placement::Global)
            }
        };
        holders.insert(ip, uid.to_owned());
        drop(shared);
        self.record(node, uid, ip, pool, generation);
        Ok(ip.to_string())
    }

    fn record(&mut self, node: &str, uid: &str, ip: Ipv4Addr, pool: Placement, generation: u64) {
        self.by_node
            .entry(node.to_owned())
            .or_default()
            .insert(uid.to_owned());
        let node = node.to_owned();
        let pod = PodIp {
            node,
            ip,
            pool,
            seen: false,
            generation,
        };
        self.pods.insert(uid.to_owned(), pod);
    }

    /// Files `ip` in the first pool that hands out such addresses: the node's, else the
    /// shared one.
    fn place(&mut self, node: &str, uid: &str, ip: Ipv4Addr) -> Placement {
        let taken = |node_or_global: &str| {
            tracing::warn!(pod = uid, %ip, pool = node_or_global, "pod IP already held by another pod");
            Placement::Unpooled
        };
        let mut shared = self.shared.lock().expect("ip pool lock");
        if shared.holders.get(&ip).is_some_and(|h| h != uid) {
            return taken("another node's");
        }
        shared.holders.insert(ip, uid.to_owned());
        if let Some(pool) = self.per_node.get_mut(node)
            && pool.contains(ip)
        {
            return if pool.adopt(uid, ip) {
                Placement::Node
            } else {
                taken(node)
            };
        }
        let global = &mut shared.global;
        if !global.contains(ip) {
            return Placement::Unpooled;
        }
        if global.adopt(uid, ip) {
            Placement::Global
        } else {
            taken("--cidr")
        }
    }

    fn unplace(&mut self, node: &str, uid: &str, pool: Placement) {
        match pool {
            Placement::Node => {
                if let Some(pool) = self.per_node.get_mut(node) {
                    pool.release(uid);
                }
            }
            Placement::Global => self.shared.lock().expect("ip pool lock").global.release(uid),
            Placement::Unpooled => {}
        }
    }

    /// Files the known IPs of `node`'s pods again (its pool just appeared).
    fn place_again(&mut self, node: &str) {
        let uids: Vec<String> = self.by_node.get(node).into_iter().flatten().cloned().collect();
        for uid in uids {
            let (ip, old) = match self.pods.get(&uid) {
                Some(pod) => (pod.ip, pod.pool),
                None => continue,
            };
            self.unplace(node, &uid, old);
            let pool = self.place(node, &uid, ip);
            self.pods.get_mut(&uid).expect("known pod").pool = pool;
        }
    }

    fn node_ip(&self, node: &str) -> String {
        self.node_ips
            .get(node)
            .cloned()
            .unwrap_or_else(|| self.default_node_ip.clone())
    }
}

/// A [`Host`] for one evaluation in a shard.
pub struct RuntimeHost<'a> {
    /// The clock reading of this evaluation.
    pub now: Timestamp,
    /// When the controller started.
    pub start: Timestamp,
    /// `NodeName`.
    pub node_name: &'a str,
    /// `NodeIP`.
    pub node_ip: &'a str,
    /// `NodePort`.
    pub node_port: u16,
    /// The shard's IPs, borrowed mutably for this one render (allocating is the only
    /// thing a render changes, and [`Host`] says so by taking `&mut self` for it).
    pub ips: &'a mut Ips,
    /// (node name, uid) of the object being rendered: who a legacy `PodIP` is for.
    pub subject: (&'a str, &'a str),
    /// The state of the random numbers templates draw (`randAlphaNum`, `uuidv4`, …),
    /// seeded by the shard's random source for each render.
    pub random: u64,
}

impl Host for RuntimeHost<'_> {
    fn now(&self) -> Timestamp {
        self.now
    }
    fn start_time(&self) -> Timestamp {
        self.start
    }
    fn random_u64(&mut self) -> u64 {
        let (state, value) = splitmix64(self.random);
        self.random = state;
        value
    }
    fn version(&self) -> &str {
        concat!("kwok-rs-v", env!("CARGO_PKG_VERSION"))
    }
    fn node_name(&self) -> &str {
        self.node_name
    }
    fn node_ip(&self) -> &str {
        self.node_ip
    }
    fn node_port(&self) -> u16 {
        self.node_port
    }
    fn pod_ip(&mut self) -> Result<String, PoolExhausted> {
        // Legacy `PodIP` names no pod: the IP goes to the pod being rendered, so it is
        // released with that pod like any other (and stable across renders).
        let (node, uid) = self.subject;
        self.ips.pod_ip(node, uid)
    }
    fn node_ip_with(&self, node_name: &str) -> String {
        self.ips.node_ip(node_name)
    }
    fn pod_ip_with(
        &mut self,
        node_name: &str,
        uid: &str,
        _name: &str,
        _namespace: &str,
    ) -> Result<String, PoolExhausted> {
        self.ips.pod_ip(node_name, uid)
    }
}

#[cfg(test)]
mod tests {
    use kwok_engine::host::Host;

    use super::*;
    use crate::ipam::Cidr;

    fn host<'a>(ips: &'a mut Ips, subject: (&'a str, &'a str)) -> RuntimeHost<'a> {
        RuntimeHost {
            now: Timestamp::UNIX_EPOCH,
            start: Timestamp::UNIX_EPOCH,
            node_name: "",
            node_ip: "196.168.0.1",
            node_port: 10250,
            ips,
            subject,
            random: 0,
        }
    }

    #[test]
    fn legacy_pod_ip_should_belong_to_the_rendered_pod_and_be_released_with_it() {
        let pool = SharedIps::new(Pool::new(Cidr::parse("10.0.0.1/30").unwrap()));
        let mut ips = Ips::new(pool, "196.168.0.1".into());
        let first = host(&mut ips, ("", "uid-1")).pod_ip().unwrap();
        assert_eq!(
            host(&mut ips, ("", "uid-1")).pod_ip().unwrap(),
            first,
            "stable per pod"
        );
        let second = host(&mut ips, ("", "uid-2")).pod_ip().unwrap();
        assert_ne!(first, second);
        ips.release_pod("uid-1");
        ips.release_pod("uid-2");
        // A /30 has two usable addresses: both are free again, none leaked.
        let again: std::collections::HashSet<String> = ["uid-3", "uid-4"]
            .iter()
            .map(|u| host(&mut ips, ("", u)).pod_ip().unwrap())
            .collect();
        assert_eq!(again, [first, second].into_iter().collect());
    }

    fn ip(ips: &mut Ips, node: &str, uid: &str) -> String {
        host(ips, (node, uid)).pod_ip_with(node, uid, "p", "ns").unwrap()
    }

    /// Pods bound to one node beyond its podCIDR's size run, as upstream's (benchmarks
    /// pin thousands of pods to a node); nodes without a podCIDR share `--cidr`.
    #[test]
    fn allocation_should_go_past_a_pod_cidr_and_fall_back_to_the_shared_pool() {
        let global = SharedIps::new(Pool::new(Cidr::parse("10.0.0.1/30").unwrap()));
        let mut ips = Ips::new(global, "196.168.0.1".into());
        ips.observe_node("n1", &serde_json::json!({"spec": {"podCIDR": "10.1.0.0/30"}}));
        let got: Vec<String> = ["a", "b", "c"].iter().map(|u| ip(&mut ips, "n1", u)).collect();
        assert_eq!(got, ["10.1.0.1", "10.1.0.2", "10.1.0.3"]);
        ips.release_pod("a");
        assert_eq!(ip(&mut ips, "n1", "d"), "10.1.0.1", "the released address");
        assert_eq!(ip(&mut ips, "n2", "e"), "10.0.0.1");
        assert_eq!(
            ip(&mut ips, "n3", "f"),
            "10.0.0.2",
            "one pool for every node without"
        );
    }

    /// See: issue 21 (after a restart, pods listed before their node had their IPs filed
    /// in the shared pool, and the node's new pool handed them out again: 30 duplicates).
    #[test]
    fn pods_seen_before_their_node_should_keep_their_ips_out_of_its_new_pool() {
        let global = SharedIps::new(Pool::new(Cidr::parse("10.0.0.1/24").unwrap()));
        let mut ips = Ips::new(global.clone(), "196.168.0.1".into());
        ips.adopt_pod("n1", "old-1", "10.1.0.1");
        ips.adopt_pod("n1", "old-2", "10.1.0.3");
        ips.adopt_pod("n1", "old-global", "10.0.0.1");
        ips.observe_node("n1", &serde_json::json!({"spec": {"podCIDR": "10.1.0.0/24"}}));
        let fresh: Vec<String> = ["x", "y"].iter().map(|u| ip(&mut ips, "n1", u)).collect();
        assert_eq!(fresh, ["10.1.0.2", "10.1.0.4"], "held addresses skipped");
        // The address from before the node had a podCIDR stays held in the shared pool.
        assert_eq!(ip(&mut ips, "n9", "z"), "10.0.0.2");
        assert_eq!(
            global.lock().unwrap().global.len(),
            2,
            "old-global and z; the node's pods moved out"
        );
        ips.release_pod("old-1");
        assert_eq!(ip(&mut ips, "n1", "w"), "10.1.0.1");
    }

    #[test]
    fn a_node_that_goes_and_comes_back_should_keep_its_pods_addresses() {
        let global = SharedIps::new(Pool::new(Cidr::parse("10.0.0.1/24").unwrap()));
        let mut ips = Ips::new(global, "196.168.0.1".into());
        let node = serde_json::json!({"spec": {"podCIDR": "10.1.0.0/24"}});
        ips.observe_node("n1", &node);
        assert_eq!(ip(&mut ips, "n1", "a"), "10.1.0.1");
        ips.forget_node("n1");
        ips.observe_node("n1", &node);
        assert_eq!(ip(&mut ips, "n1", "b"), "10.1.0.2");
        assert_eq!(ip(&mut ips, "n1", "a"), "10.1.0.1", "stable");
    }

    #[test]
    fn a_duplicate_seen_on_the_watch_should_not_be_handed_out_a_third_time() {
        let global = SharedIps::new(Pool::new(Cidr::parse("10.0.0.1/24").unwrap()));
        let mut ips = Ips::new(global, "196.168.0.1".into());
        ips.adopt_pod("n1", "a", "10.0.0.1");
        ips.adopt_pod("n1", "b", "10.0.0.1");
        ips.release_pod("b");
        assert_eq!(ip(&mut ips, "n1", "c"), "10.0.0.2", "a still holds .1");
        ips.release_pod("a");
        assert_eq!(ip(&mut ips, "n1", "d"), "10.0.0.1");
    }

    #[test]
    fn a_node_pool_past_its_cidr_should_not_reuse_a_neighbours_ip() {
        let shared = SharedIps::new(Pool::new(Cidr::parse("10.0.0.1/24").unwrap()));
        let (mut a, mut b) = (
            Ips::new(shared.clone(), "196.168.0.1".into()),
            Ips::new(shared, "196.168.0.1".into()),
        );
        a.observe_node("n7", &serde_json::json!({"spec": {"podCIDR": "10.0.7.0/24"}}));
        b.observe_node("n8", &serde_json::json!({"spec": {"podCIDR": "10.0.8.0/24"}}));
        // n8 (another shard) holds 10.0.8.1; n7's pool runs past 10.0.7.255 into 10.0.8.x.
        assert_eq!(b.pod_ip("n8", "b1").unwrap(), "10.0.8.1");
        let a_ips: Vec<String> = (0..257)
            .map(|i| a.pod_ip("n7", &format!("a{i}")).unwrap())
            .collect();
        assert!(!a_ips.contains(&"10.0.8.1".to_owned()));
        assert_eq!(
            (a_ips[255].as_str(), a_ips[256].as_str()),
            ("10.0.8.0", "10.0.8.2")
        );
        // And n8 passes over what n7 took.
        assert_eq!(b.pod_ip("n8", "b2").unwrap(), "10.0.8.3");
        // Released, the address goes to the next pod that asks.
        b.release_pod("b1");
        assert_eq!(a.pod_ip("n7", "a257").unwrap(), "10.0.8.1");
    }

    /// Issue 25: two `--scale-out` members, each its own process (its own shared state),
    /// hand out `--cidr` addresses only from their slots, so they never give one twice
    /// even before they see each other's pods.
    #[test]
    fn scale_out_members_should_hand_out_cidr_addresses_only_from_their_slots() {
        let cidr = Cidr::parse("10.0.0.1/24").unwrap();
        let (shared_a, shared_b) = (SharedIps::scale_out(cidr), SharedIps::scale_out(cidr));
        let mut a = Ips::new(shared_a.clone(), "196.168.0.1".into());
        let mut b = Ips::new(shared_b.clone(), "196.168.0.1".into());
        let err = a.pod_ip("n1", "early").unwrap_err();
        assert!(err.pool.contains("holds no IP slot yet"), "{}", err.pool);
        shared_a.lock().unwrap().set_slot(Stripe::slot(0));
        shared_b.lock().unwrap().set_slot(Stripe::slot(1));
        let mut seen = HashSet::new();
        for i in 0..300 {
            assert!(seen.insert(a.pod_ip("n1", &format!("a{i}")).unwrap()));
            assert!(seen.insert(b.pod_ip("n2", &format!("b{i}")).unwrap()));
        }
        assert!(seen.contains("10.0.0.1") && seen.contains("10.0.1.1") && seen.contains("10.0.65.0"));
    }

    /// Issue 25: after a stall long enough for its slot to pass to another member, an
    /// address handed out from it but never seen on its pod is handed out anew from the
    /// slot held now; one seen on its pod is the cluster's and stays.
    #[test]
    fn an_address_from_a_lost_slot_not_yet_written_should_be_handed_out_again() {
        let shared = SharedIps::scale_out(Cidr::parse("10.0.0.1/24").unwrap());
        let mut ips = Ips::new(shared.clone(), "196.168.0.1".into());
        shared.lock().unwrap().set_slot(Stripe::slot(3));
        assert_eq!(ips.pod_ip("n1", "written").unwrap(), "10.0.3.1");
        assert_eq!(ips.pod_ip("n1", "pending").unwrap(), "10.0.3.2");
        ips.adopt_pod("n1", "written", "10.0.3.1");
        // Lost, then slot 5 claimed.
        shared.lock().unwrap().set_slot(None);
        let err = ips.pod_ip("n1", "new").unwrap_err();
        assert!(err.pool.contains("no IP slot"), "{}", err.pool);
        shared.lock().unwrap().set_slot(Stripe::slot(5));
        assert_eq!(
            ips.pod_ip("n1", "written").unwrap(),
            "10.0.3.1",
            "seen on its pod"
        );
        assert_eq!(
            ips.pod_ip("n1", "pending").unwrap(),
            "10.0.5.1",
            "from the slot held now"
        );
        assert_eq!(ips.pod_ip("n1", "new").unwrap(), "10.0.5.2");
        // Slot 3's next holder passes over what its pods hold, as every member learns
        // the --cidr addresses of every pod.
        let next = SharedIps::scale_out(Cidr::parse("10.0.0.1/24").unwrap());
        let mut other = Ips::new(next.clone(), "196.168.0.1".into());
        other.adopt_pod("n1", "written", "10.0.3.1");
        next.lock().unwrap().set_slot(Stripe::slot(3));
        assert_eq!(other.pod_ip("n2", "x").unwrap(), "10.0.3.2");
    }
}
