//! What the runtime provides to templates: the clock reading of this evaluation, the
//! random numbers behind sprig's `randInt`, `randAlpha` and `uuidv4`, and the IP
//! allocators behind `NodeIP`, `PodIP`, `PodIPWith` and friends.

use std::{collections::HashMap, net::Ipv4Addr};

use jiff::Timestamp;

/// The functions of KWOK's template language that depend on the runtime.
///
/// The engine never reads a clock: `now` is the time of this evaluation, passed in.
///
/// Allocating a pod IP and drawing a random number change the host, so those methods
/// take `&mut self`: a render that may allocate says so in its signature, and a host
/// keeps its pools as plain fields.
pub trait Host {
    /// `Now`: the time of this evaluation.
    fn now(&self) -> Timestamp;
    /// `StartTime`: when the controller started.
    fn start_time(&self) -> Timestamp;
    /// 64 random bits, for sprig's `randInt`, `randAlphaNum`, `uuidv4` and friends
    /// (default: the thread's CSPRNG, as sprig's `crypto/rand`; tests use a seeded one).
    fn random_u64(&mut self) -> u64 {
        rand::random()
    }
    /// `Version`: the kwok version reported in node info.
    fn version(&self) -> &str;
    /// `NodeName`: the configured node name (`--node-name`).
    fn node_name(&self) -> &str;
    /// `NodeIP`: the configured node IP (`--node-ip`).
    fn node_ip(&self) -> &str;
    /// `NodePort`: the configured kubelet port (`--node-port`).
    fn node_port(&self) -> u16;
    /// `PodIP`: a new pod IP from the cluster CIDR; `Err` says which pool is full.
    fn pod_ip(&mut self) -> Result<String, PoolExhausted>;
    /// `NodeIPWith nodeName`: the IP of node `node_name`.
    fn node_ip_with(&self, node_name: &str) -> String;
    /// `NodeIPsWith nodeName`: every IP of node `node_name` (default: the one IP).
    fn node_ips_with(&self, node_name: &str) -> Vec<String> {
        vec![self.node_ip_with(node_name)]
    }
    /// `PodIPWith nodeName hostNetwork uid podName podNamespace` of a pod with its own
    /// network: its IP, stable for one pod uid. (Host-network pods get the node IP
    /// from the template function itself; hosts never see them.) `Err` when no address
    /// is free, saying which pool is full: the stage fails to render and is tried again,
    /// as a kubelet retries a sandbox its CNI had no address for.
    fn pod_ip_with(
        &mut self,
        node_name: &str,
        uid: &str,
        name: &str,
        namespace: &str,
    ) -> Result<String, PoolExhausted>;
    /// `PodIPsWith …`: every IP of the pod (default: the one IP).
    fn pod_ips_with(
        &mut self,
        node_name: &str,
        uid: &str,
        name: &str,
        namespace: &str,
    ) -> Result<Vec<String>, PoolExhausted> {
        self.pod_ip_with(node_name, uid, name, namespace)
            .map(|ip| vec![ip])
    }
    /// Whether the runtime's functions (`Now`, `Version`, `NodeName`, `NodeIP`,
    /// `NodePort`, `PodIP`, `NodeIPWith`, `PodIPWith` and the lists `NodeIPsWith`,
    /// `PodIPsWith`) print as stand-ins naming the call, `<PodIPWith("node", false, …)>`
    /// and `<0 of NodeIPsWith("node")>`, as upstream's stage tests render them, so a
    /// listing compares with upstream's golden files on any machine.
    fn placeholders(&self) -> bool {
        false
    }
    /// `Name`, `Namespace`, `Index` of `kwokctl scale` templates: the object being made
    /// (none outside kwokctl scale).
    fn scale_target(&self) -> Option<&ScaleTarget> {
        None
    }
}

/// No pod IP is free in the pool a pod draws from. Temporary: addresses come back as
/// pods go, so a stage that needs one is tried again later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no free IP above {pool}")]
pub struct PoolExhausted {
    /// The full pool, as the host names it (`podCIDR 10.1.0.0/24 of node "n1"`).
    pub pool: String,
}

/// The object a `kwokctl scale` template is rendered for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScaleTarget {
    /// `Name`: its name (`node-000042`).
    pub name: String,
    /// `Namespace`: the namespace asked for (empty when none was).
    pub namespace: String,
    /// `Index`: its serial number.
    pub index: i64,
}

/// One step of SplitMix64 (Steele, Lea and Flood: a counter passed through a mixer)
/// from `state`: (the next state, a well-mixed 64-bit value). Small and fast for the
/// few numbers a render draws; not for secrets (neither is anything a fake kubelet
/// makes up).
pub fn splitmix64(state: u64) -> (u64, u64) {
    let state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (state, z ^ (z >> 31))
}

/// A deterministic [`Host`] for tests, benchmarks and dry runs: a fixed clock, a
/// seeded random sequence, node IPs `196.168.0.1`, pod IPs handed out in order from
/// `10.0.0.1` and stable per uid.
#[derive(Debug)]
pub struct FixedHost {
    /// The time `Now` returns.
    pub now: Timestamp,
    /// The time `StartTime` returns.
    pub start_time: Timestamp,
    /// Pod IPs by pod uid.
    pods: HashMap<String, Ipv4Addr>,
    /// The state of the SplitMix64 sequence behind [`Host::random_u64`]; starts at 0,
    /// so every `FixedHost` draws the same numbers.
    random: u64,
    /// Whether runtime functions print as stand-ins ([`Host::placeholders`]).
    placeholders: bool,
    /// The object a `kwokctl scale` template is rendered for ([`Host::scale_target`]).
    scale_target: Option<ScaleTarget>,
}

impl FixedHost {
    /// A host whose clock reads `now` (also used as the start time).
    pub fn new(now: Timestamp) -> Self {
        Self {
            now,
            start_time: now,
            pods: HashMap::new(),
            random: 0,
            placeholders: false,
            scale_target: None,
        }
    }

    /// This host rendering a `kwokctl scale` template for `target` (`Name`,
    /// `Namespace`, `Index`).
    pub fn with_scale_target(mut self, target: ScaleTarget) -> Self {
        self.scale_target = Some(target);
        self
    }

    /// This host with its runtime functions printing as stand-ins naming the call, as
    /// upstream's stage tests render them (see [`Host::placeholders`]).
    pub fn with_placeholders(mut self) -> Self {
        self.placeholders = true;
        self
    }

    /// The node IP every node gets.
    pub const NODE_IP: &'static str = "196.168.0.1";

    fn next_pod_ip(&mut self, uid: &str) -> Ipv4Addr {
        let next = u32::from(Ipv4Addr::new(10, 0, 0, 1)) + self.pods.len() as u32;
        *self.pods.entry(uid.to_owned()).or_insert(Ipv4Addr::from(next))
    }
}

impl Host for FixedHost {
    fn now(&self) -> Timestamp {
        self.now
    }
    fn start_time(&self) -> Timestamp {
        self.start_time
    }
    fn random_u64(&mut self) -> u64 {
        let (state, value) = splitmix64(self.random);
        self.random = state;
        value
    }
    fn version(&self) -> &str {
        "kwok-v0.8.0"
    }
    fn node_name(&self) -> &str {
        "kwok-node"
    }
    fn node_ip(&self) -> &str {
        Self::NODE_IP
    }
    fn node_port(&self) -> u16 {
        10250
    }
    fn pod_ip(&mut self) -> Result<String, PoolExhausted> {
        let n = self.pods.len();
        Ok(self.next_pod_ip(&format!("anonymous-{n}")).to_string())
    }
    fn node_ip_with(&self, _node_name: &str) -> String {
        Self::NODE_IP.to_owned()
    }
    fn pod_ip_with(
        &mut self,
        _node_name: &str,
        uid: &str,
        _name: &str,
        _namespace: &str,
    ) -> Result<String, PoolExhausted> {
        Ok(self.next_pod_ip(uid).to_string())
    }
    fn placeholders(&self) -> bool {
        self.placeholders
    }
    fn scale_target(&self) -> Option<&ScaleTarget> {
        self.scale_target.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_should_match_its_reference_sequence() {
        let (state, first) = splitmix64(0);
        assert_eq!(first, 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(state).1, 0x6e78_9e6a_a1b9_65f4);
    }
}
