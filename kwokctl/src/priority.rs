//! How kwok's requests are let into the apiserver: as a kubelet's, or exempt.
//!
//! Real kubelets authenticate as `system:node:<name>` in `system:nodes`, and API Priority
//! and Fairness (APF) puts their Lease and status traffic in the `system-nodes` flow
//! schema at the `node-high` priority level, so a flood of workload requests queues
//! behind it, not in front of it, yet it is not unlimited either. Upstream kwokctl runs
//! kwok with the admin identity (`system:masters`), which APF exempts from all queueing
//! and RBAC never checks: nothing a real cluster does for its kubelets.
//!
//! [`KwokPriority::NodeHigh`] (the default) gives kwok a user of its own, `kwok-controller`,
//! in the group `system:monitoring` only (the one group besides `system:masters` whose
//! incoming trace context the apiserver joins, so kwok's spans and the apiserver's stay
//! one trace; it may also read `/metrics`). RBAC binds the user to `cluster-admin` (a
//! user's Stages may touch any kind) and a FlowSchema of the same name puts all its
//! requests at `node-high`, as `system-nodes` does for kubelets. [`KwokPriority::Exempt`]
//! keeps upstream's set-up (`system:masters`), for side-by-side runs.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The user of kwok's client certificate.
pub const KWOK_USER: &str = "kwok-controller";

/// The name of the ClusterRoleBinding and FlowSchema kwokctl makes for [`KWOK_USER`]:
/// prefixed, so a kwok deployed into the cluster (`shards/deploy/`, whose objects are
/// named `kwok-controller`) does not collide with them.
pub const KWOKCTL_OBJECTS: &str = "kwokctl-kwok-controller";

/// The group the apiserver trusts the trace context of (besides `system:masters`).
pub const MONITORING_GROUP: &str = "system:monitoring";

/// The priority level of kubelets' requests (`system-nodes` flow schema) in every
/// Kubernetes release with APF.
pub const NODE_HIGH: &str = "node-high";

/// Just ahead of `system-nodes` (500). Of the bootstrap schemas matched before it
/// (exempt, probes, leader election) only `probes` can take a kwok request, a health
/// check.
const MATCHING_PRECEDENCE: u32 = 490;

/// How kwok's requests are authorized and prioritized (`--kwok-priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KwokPriority {
    /// Its own user in `system:monitoring`, RBAC `cluster-admin`, APF `node-high` like
    /// kubelets.
    #[default]
    NodeHigh,
    /// `system:masters`, as upstream kwokctl: exempt from APF and RBAC.
    Exempt,
}

impl KwokPriority {
    /// Every value.
    const ALL: [Self; 2] = [Self::NodeHigh, Self::Exempt];

    /// Every value, as the flag spells them.
    pub const NAMES: [&str; 2] = [Self::ALL[0].as_str(), Self::ALL[1].as_str()];

    /// The value as the flag (and `kwok.yaml`) spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NodeHigh => "node-high",
            Self::Exempt => "exempt",
        }
    }

    /// The value `raw` names (as the flag spells it).
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw.trim())
    }

    /// The groups of kwok's client certificate.
    pub fn groups(self) -> &'static [&'static str] {
        match self {
            Self::NodeHigh => &[MONITORING_GROUP],
            Self::Exempt => &[crate::pki::ADMIN_GROUP],
        }
    }

    /// What the apiserver must hold before kwok starts: its RBAC binding and flow schema
    /// (nothing when exempt).
    pub fn manifests(self) -> Vec<Value> {
        match self {
            Self::Exempt => Vec::new(),
            Self::NodeHigh => node_high_manifests(),
        }
    }
}

impl fmt::Display for KwokPriority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn node_high_manifests() -> Vec<Value> {
    let labels = json!({ "app.kubernetes.io/managed-by": "kwokctl" });
    vec![
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": { "name": KWOKCTL_OBJECTS, "labels": labels },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin" },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": KWOK_USER }],
        }),
        json!({
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "FlowSchema",
            "metadata": { "name": KWOKCTL_OBJECTS, "labels": labels },
            "spec": {
                "priorityLevelConfiguration": { "name": NODE_HIGH },
                "matchingPrecedence": MATCHING_PRECEDENCE,
                // One flow per user, as `system-nodes`: all replicas share the user.
                "distinguisherMethod": { "type": "ByUser" },
                "rules": [{
                    "subjects": [{ "kind": "User", "user": { "name": KWOK_USER } }],
                    "resourceRules": [{
                        "verbs": ["*"],
                        "apiGroups": ["*"],
                        "resources": ["*"],
                        "clusterScope": true,
                        "namespaces": ["*"],
                    }],
                    "nonResourceRules": [{ "verbs": ["*"], "nonResourceURLs": ["*"] }],
                }],
            },
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_should_parse_back_to_its_value() {
        for name in KwokPriority::NAMES {
            assert_eq!(KwokPriority::parse(name).unwrap().to_string(), name);
        }
        assert_eq!(KwokPriority::parse("high"), None);
        assert_eq!(KwokPriority::default(), KwokPriority::NodeHigh);
    }

    #[test]
    fn node_high_should_bind_and_prioritize_kwoks_user_and_exempt_should_keep_the_masters_group() {
        let docs = KwokPriority::NodeHigh.manifests();
        // Not `kwok-controller`: shards/deploy/'s binding has that name.
        assert_eq!(docs[0]["metadata"]["name"], KWOKCTL_OBJECTS);
        assert_eq!(docs[1]["metadata"]["name"], KWOKCTL_OBJECTS);
        assert_eq!(docs[0]["subjects"][0]["name"], KWOK_USER);
        assert_eq!(docs[0]["roleRef"]["name"], "cluster-admin");
        assert_eq!(docs[1]["spec"]["priorityLevelConfiguration"]["name"], NODE_HIGH);
        assert_eq!(
            docs[1]["spec"]["rules"][0]["subjects"][0]["user"]["name"],
            KWOK_USER
        );
        assert_eq!(KwokPriority::NodeHigh.groups(), ["system:monitoring"]);
        assert!(KwokPriority::Exempt.manifests().is_empty());
        assert_eq!(KwokPriority::Exempt.groups(), ["system:masters"]);
    }
}
