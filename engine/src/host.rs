//! What the runtime provides to templates: the clock reading of this evaluation and
//! the IP allocators behind `NodeIP`, `PodIP`, `PodIPWith` and friends.

use std::{cell::RefCell, collections::HashMap, net::Ipv4Addr};

use jiff::Timestamp;

/// The functions of KWOK's template language that depend on the runtime.
///
/// The engine never reads a clock: `now` is the time of this evaluation, passed in.
pub trait Host {
    /// `Now`: the time of this evaluation.
    fn now(&self) -> Timestamp;
    /// `StartTime`: when the controller started.
    fn start_time(&self) -> Timestamp;
    /// `Version`: the kwok version reported in node info.
    fn version(&self) -> &str;
    /// `NodeName`: the configured node name (`--node-name`).
    fn node_name(&self) -> &str;
    /// `NodeIP`: the configured node IP (`--node-ip`).
    fn node_ip(&self) -> &str;
    /// `NodePort`: the configured kubelet port (`--node-port`).
    fn node_port(&self) -> u16;
    /// `PodIP`: a new pod IP from the cluster CIDR; `Err` says which pool is full.
    fn pod_ip(&self) -> Result<String, String>;
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
    fn pod_ip_with(&self, node_name: &str, uid: &str, name: &str, namespace: &str) -> Result<String, String>;
    /// `PodIPsWith …`: every IP of the pod (default: the one IP).
    fn pod_ips_with(
        &self,
        node_name: &str,
        uid: &str,
        name: &str,
        namespace: &str,
    ) -> Result<Vec<String>, String> {
        self.pod_ip_with(node_name, uid, name, namespace)
            .map(|ip| vec![ip])
    }
    /// `Name`, `Namespace`, `Index` of `kwokctl scale` templates: the object being made
    /// (none outside kwokctl scale).
    fn scale_target(&self) -> Option<&ScaleTarget> {
        None
    }
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

/// A [`Host`] for `kwokctl scale`: `inner` for everything, plus the object being made.
#[derive(Debug)]
pub struct ScaleHost<H> {
    inner: H,
    /// The object; set before each rendering.
    pub target: ScaleTarget,
}

impl<H: Host> ScaleHost<H> {
    /// `inner` rendering for `target`.
    pub fn new(inner: H, target: ScaleTarget) -> Self {
        Self { inner, target }
    }
}

impl<H: Host> Host for ScaleHost<H> {
    fn now(&self) -> Timestamp {
        self.inner.now()
    }
    fn start_time(&self) -> Timestamp {
        self.inner.start_time()
    }
    fn version(&self) -> &str {
        self.inner.version()
    }
    fn node_name(&self) -> &str {
        self.inner.node_name()
    }
    fn node_ip(&self) -> &str {
        self.inner.node_ip()
    }
    fn node_port(&self) -> u16 {
        self.inner.node_port()
    }
    fn pod_ip(&self) -> Result<String, String> {
        self.inner.pod_ip()
    }
    fn node_ip_with(&self, node_name: &str) -> String {
        self.inner.node_ip_with(node_name)
    }
    fn pod_ip_with(&self, node_name: &str, uid: &str, name: &str, namespace: &str) -> Result<String, String> {
        self.inner.pod_ip_with(node_name, uid, name, namespace)
    }
    fn scale_target(&self) -> Option<&ScaleTarget> {
        Some(&self.target)
    }
}

/// A deterministic [`Host`] for tests, benchmarks and dry runs: a fixed clock, node
/// IPs `196.168.0.1`, pod IPs handed out in order from `10.0.0.1` and stable per uid.
#[derive(Debug)]
pub struct FixedHost {
    /// The time `Now` returns.
    pub now: Timestamp,
    /// The time `StartTime` returns.
    pub start_time: Timestamp,
    /// Pod IPs by pod uid.
    pods: RefCell<HashMap<String, Ipv4Addr>>,
}

impl FixedHost {
    /// A host whose clock reads `now` (also used as the start time).
    pub fn new(now: Timestamp) -> Self {
        Self {
            now,
            start_time: now,
            pods: RefCell::default(),
        }
    }

    /// The node IP every node gets.
    pub const NODE_IP: &'static str = "196.168.0.1";

    fn next_pod_ip(&self, uid: &str) -> Ipv4Addr {
        let mut pods = self.pods.borrow_mut();
        let next = u32::from(Ipv4Addr::new(10, 0, 0, 1)) + pods.len() as u32;
        *pods.entry(uid.to_owned()).or_insert(Ipv4Addr::from(next))
    }
}

impl Host for FixedHost {
    fn now(&self) -> Timestamp {
        self.now
    }
    fn start_time(&self) -> Timestamp {
        self.start_time
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
    fn pod_ip(&self) -> Result<String, String> {
        let n = self.pods.borrow().len();
        Ok(self.next_pod_ip(&format!("anonymous-{n}")).to_string())
    }
    fn node_ip_with(&self, _node_name: &str) -> String {
        Self::NODE_IP.to_owned()
    }
    fn pod_ip_with(
        &self,
        _node_name: &str,
        uid: &str,
        _name: &str,
        _namespace: &str,
    ) -> Result<String, String> {
        Ok(self.next_pod_ip(uid).to_string())
    }
}
