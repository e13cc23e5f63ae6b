//! The runtime side of KWOK's template functions: the real clock and the IP pools of
//! one shard.

use std::{
    cell::RefCell,
    collections::HashMap,
    net::Ipv4Addr,
    sync::{Arc, Mutex},
};

use jiff::Timestamp;
use kwok_engine::host::Host;
use serde_json::Value;

use crate::ipam::{Cidr, Pool};

/// IP state of one shard: a pool per node that has a podCIDR, the shared pool of
/// `--cidr` for nodes without, and each node's InternalIP.
pub struct Ips {
    per_node: HashMap<String, Pool>,
    node_ips: HashMap<String, String>,
    global: Arc<Mutex<Pool>>,
    /// Which pool each pod's IP came from, to release it there.
    pod_pool: HashMap<String, Option<String>>,
    default_node_ip: String,
}

impl Ips {
    /// State for one shard sharing `global` with the others.
    pub fn new(global: Arc<Mutex<Pool>>, default_node_ip: String) -> Self {
        Self {
            per_node: HashMap::new(),
            node_ips: HashMap::new(),
            global,
            pod_pool: HashMap::new(),
            default_node_ip,
        }
    }

    /// Learns a node's podCIDR and InternalIP from its object.
    pub fn observe_node(&mut self, name: &str, node: &Value) {
        if let Some(cidr) = node
            .pointer("/spec/podCIDR")
            .and_then(Value::as_str)
            .and_then(|c| Cidr::parse(c).ok())
        {
            self.per_node
                .entry(name.to_owned())
                .or_insert_with(|| Pool::new(cidr));
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

    /// Forgets a node.
    pub fn forget_node(&mut self, name: &str) {
        self.per_node.remove(name);
        self.node_ips.remove(name);
    }

    /// Records the IP a pod already has (after a restart), so it is not handed out again.
    pub fn adopt_pod(&mut self, node: &str, uid: &str, ip: &str) {
        let Ok(ip) = ip.parse::<Ipv4Addr>() else { return };
        match self.per_node.get_mut(node) {
            Some(pool) => pool.adopt(uid, ip),
            None => self.global.lock().expect("ip pool lock").adopt(uid, ip),
        }
        self.pod_pool.insert(
            uid.to_owned(),
            self.per_node.contains_key(node).then(|| node.to_owned()),
        );
    }

    /// Releases a pod's IP.
    pub fn release_pod(&mut self, uid: &str) {
        match self.pod_pool.remove(uid) {
            Some(Some(node)) => {
                if let Some(pool) = self.per_node.get_mut(&node) {
                    pool.release(uid);
                }
            }
            Some(None) => self.global.lock().expect("ip pool lock").release(uid),
            None => {}
        }
    }

    /// Pod `uid`'s IP on `node`, allocated on first use; `Err` names the full pool.
    fn pod_ip(&mut self, node: &str, uid: &str) -> Result<String, String> {
        let own = self.per_node.contains_key(node);
        let ip = match self.per_node.get_mut(node) {
            Some(pool) => pool
                .get(uid)
                .ok_or_else(|| format!("no free IP in podCIDR {} of node {node:?}", pool.cidr())),
            None => {
                let mut global = self.global.lock().expect("ip pool lock");
                global.get(uid).ok_or_else(|| {
                    format!(
                        "no free IP in --cidr {} (node {node:?} has no podCIDR)",
                        global.cidr()
                    )
                })
            }
        }?;
        self.pod_pool.insert(uid.to_owned(), own.then(|| node.to_owned()));
        Ok(ip.to_string())
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
    /// The shard's IPs.
    pub ips: RefCell<&'a mut Ips>,
    /// (node name, uid) of the object being rendered: who a legacy `PodIP` is for.
    pub subject: (&'a str, &'a str),
}

impl Host for RuntimeHost<'_> {
    fn now(&self) -> Timestamp {
        self.now
    }
    fn start_time(&self) -> Timestamp {
        self.start
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
    fn pod_ip(&self) -> Result<String, String> {
        // Legacy `PodIP` names no pod: the IP goes to the pod being rendered, so it is
        // released with that pod like any other (and stable across renders).
        let (node, uid) = self.subject;
        self.ips.borrow_mut().pod_ip(node, uid)
    }
    fn node_ip_with(&self, node_name: &str) -> String {
        self.ips.borrow().node_ip(node_name)
    }
    fn pod_ip_with(
        &self,
        node_name: &str,
        uid: &str,
        _name: &str,
        _namespace: &str,
    ) -> Result<String, String> {
        self.ips.borrow_mut().pod_ip(node_name, uid)
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
            ips: RefCell::new(ips),
            subject,
        }
    }

    #[test]
    fn legacy_pod_ip_should_belong_to_the_rendered_pod_and_be_released_with_it() {
        let pool = Arc::new(Mutex::new(Pool::new(Cidr::parse("10.0.0.1/30").unwrap())));
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

    /// See: the 100k-pods run (pods past the 254th on a node whose podCIDR is a /24 were patched
    /// with `podIP: ""`, which the apiserver refused 15,000 times).
    #[test]
    fn a_full_pool_should_be_an_error_naming_it_and_free_again_after_a_release() {
        let global = Arc::new(Mutex::new(Pool::new(Cidr::parse("10.0.0.1/30").unwrap())));
        let mut ips = Ips::new(global, "196.168.0.1".into());
        ips.observe_node("n1", &serde_json::json!({"spec": {"podCIDR": "10.1.0.0/30"}}));
        let ip =
            |ips: &mut Ips, node: &str, uid: &str| host(ips, (node, uid)).pod_ip_with(node, uid, "p", "ns");
        ip(&mut ips, "n1", "a").unwrap();
        ip(&mut ips, "n1", "b").unwrap();
        let err = ip(&mut ips, "n1", "c").unwrap_err();
        assert_eq!(err, r#"no free IP in podCIDR 10.1.0.0/30 of node "n1""#);
        ips.release_pod("a");
        assert_eq!(
            ip(&mut ips, "n1", "c").unwrap(),
            "10.1.0.1",
            "the released address"
        );
        // Nodes without a podCIDR share --cidr.
        ip(&mut ips, "n2", "d").unwrap();
        ip(&mut ips, "n3", "e").unwrap();
        let err = ip(&mut ips, "n2", "f").unwrap_err();
        assert_eq!(
            err,
            r#"no free IP in --cidr 10.0.0.0/30 (node "n2" has no podCIDR)"#
        );
    }
}
