//! The objects loadgen creates, as plain functions of the scenario and an index.
//!
//! Every object carries the label [`RUN_LABEL`] with the run's id, so watches and
//! cleanup select exactly what this run made.

use k8s_openapi::api::{
    apps::v1::Deployment,
    batch::v1::Job,
    core::v1::{Namespace, Node, Pod},
};
use serde_json::{Value, json};

use crate::scenario::Scenario;

/// Label naming the run that created an object.
pub const RUN_LABEL: &str = "loadgen.kwok.x-k8s.io/run";
/// Annotation that tells kwok to manage a node (its default selector).
pub const KWOK_NODE_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");

/// Names and labels of one run.
#[derive(Debug, Clone)]
pub struct Naming {
    /// The run id (DNS label).
    pub run: String,
}

impl Naming {
    /// Label selector for everything this run made.
    pub fn selector(&self) -> String {
        format!("{RUN_LABEL}={}", self.run)
    }

    /// The `i`th node's name.
    pub fn node(&self, i: u32) -> String {
        format!("lg-{}-node-{i}", self.run)
    }

    /// The `i`th namespace's name.
    pub fn namespace(&self, i: u32) -> String {
        format!("lg-{}-{i}", self.run)
    }

    /// The `i`th pod's name (bare pods; `generation` > 0 for churn replacements).
    pub fn pod(&self, i: u32, generation: u32) -> String {
        format!("lg-pod-{i}-{generation}")
    }

    /// The `i`th Deployment or Job.
    pub fn workload(&self, i: u32) -> String {
        format!("lg-work-{i}")
    }

    fn labels(&self) -> Value {
        json!({ RUN_LABEL: self.run })
    }
}

/// A fake node with the scenario's capacity, labels and taints.
pub fn node(s: &Scenario, n: &Naming, i: u32) -> Node {
    let mut labels = n.labels();
    let l = labels.as_object_mut().expect("labels are a map");
    l.insert("type".into(), "kwok".into());
    l.insert("kubernetes.io/hostname".into(), n.node(i).into());
    for (k, v) in &s.node_labels {
        l.insert(k.clone(), v.clone().into());
    }
    from(json!({
        "metadata": {
            "name": n.node(i),
            "labels": labels,
            "annotations": { KWOK_NODE_ANNOTATION.0: KWOK_NODE_ANNOTATION.1, "node.alpha.kubernetes.io/ttl": "0" },
        },
        "spec": { "taints": s.node_taints },
        "status": { "capacity": s.node_capacity, "allocatable": s.node_capacity },
    }))
}

/// A namespace for pods.
pub fn namespace(n: &Naming, i: u32) -> Namespace {
    from(json!({ "metadata": { "name": n.namespace(i), "labels": n.labels() } }))
}

/// The pod spec every loadgen pod runs: scheduled onto fake nodes only.
fn pod_spec(s: &Scenario, restart: &str) -> Value {
    let tolerations: Vec<Value> = s
        .node_taints
        .iter()
        .map(|t| json!({ "key": t.key, "operator": "Exists", "effect": t.effect }))
        .collect();
    let mut spec = json!({
        "nodeSelector": { "type": "kwok" },
        "tolerations": tolerations,
        "restartPolicy": restart,
        "containers": [{
            "name": "app",
            "image": "registry.k8s.io/pause:3.10",
            "resources": { "requests": { "cpu": "1m", "memory": "1Mi" } },
        }],
    });
    if s.device_class.is_some() {
        let (claims, uses) = crate::devices::pod_claims();
        spec["resourceClaims"] = claims;
        spec["containers"][0]["resources"]["claims"] = uses;
    }
    spec
}

/// A bare pod; with `bindPods`, bound to node `i mod nodes`.
pub fn pod(s: &Scenario, n: &Naming, i: u32, generation: u32) -> Pod {
    let mut spec = pod_spec(s, "Always");
    if s.bind_pods {
        spec["nodeName"] = n.node(i % s.nodes.max(1)).into();
    }
    from(json!({
        "metadata": { "name": n.pod(i, generation), "namespace": n.namespace(i % s.namespaces), "labels": n.labels() },
        "spec": spec,
    }))
}

/// The `i`th Deployment, with `replicas` pods.
pub fn deployment(s: &Scenario, n: &Naming, i: u32, replicas: u32) -> Deployment {
    let mut labels = n.labels();
    labels["app"] = n.workload(i).into();
    from(json!({
        "metadata": { "name": n.workload(i), "namespace": n.namespace(i % s.namespaces), "labels": n.labels() },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": labels },
            "template": { "metadata": { "labels": labels }, "spec": pod_spec(s, "Always") },
        },
    }))
}

/// The `i`th Job, with `pods` pods all running at once.
pub fn job(s: &Scenario, n: &Naming, i: u32, pods: u32) -> Job {
    from(json!({
        "metadata": { "name": n.workload(i), "namespace": n.namespace(i % s.namespaces), "labels": n.labels() },
        "spec": {
            "parallelism": pods,
            "completions": pods,
            "backoffLimit": 0,
            "template": { "metadata": { "labels": n.labels() }, "spec": pod_spec(s, "Never") },
        },
    }))
}

/// Sizes of the workloads holding `pods` pods, `per` each (the last may be smaller).
pub fn workload_sizes(pods: u32, per: u32) -> Vec<u32> {
    let full = pods / per;
    let mut sizes = vec![per; full as usize];
    if !pods.is_multiple_of(per) {
        sizes.push(pods % per);
    }
    sizes
}

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    // The JSON above is fixed apart from validated scenario values, so a mismatch is a bug here.
    serde_json::from_value(v).expect("loadgen object matches its Kubernetes type")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naming() -> Naming {
        Naming { run: "r1".into() }
    }

    #[test]
    fn node_should_carry_kwok_annotation_taint_and_capacity() {
        let node = node(&Scenario::default(), &naming(), 3);
        assert_eq!(node.metadata.name.as_deref(), Some("lg-r1-node-3"));
        let ann = node.metadata.annotations.unwrap();
        assert_eq!(ann["kwok.x-k8s.io/node"], "fake");
        let taint = &node.spec.unwrap().taints.unwrap()[0];
        assert_eq!(
            (taint.key.as_str(), taint.effect.as_str()),
            ("kwok.x-k8s.io/node", "NoSchedule")
        );
        assert_eq!(node.status.unwrap().capacity.unwrap()["pods"].0, "110");
        assert_eq!(node.metadata.labels.unwrap()[RUN_LABEL], "r1");
    }

    #[test]
    fn pods_should_tolerate_node_taints_and_spread_over_namespaces() {
        let s = Scenario {
            namespaces: 3,
            ..Scenario::default()
        };
        let p = pod(&s, &naming(), 4, 0);
        assert_eq!(p.metadata.namespace.as_deref(), Some("lg-r1-1"));
        let spec = p.spec.unwrap();
        assert_eq!(
            spec.tolerations.unwrap()[0].key.as_deref(),
            Some("kwok.x-k8s.io/node")
        );
        assert_eq!(spec.node_selector.unwrap()["type"], "kwok");
    }

    #[test]
    fn bound_pods_should_go_round_robin_over_the_nodes_and_unbound_to_none() {
        let s = Scenario {
            nodes: 4,
            bind_pods: true,
            ..Scenario::default()
        };
        let node_of = |s: &Scenario, i| pod(s, &naming(), i, 0).spec.unwrap().node_name;
        assert_eq!(node_of(&s, 6).as_deref(), Some("lg-r1-node-2"));
        assert_eq!(node_of(&s, 3).as_deref(), Some("lg-r1-node-3"));
        assert_eq!(node_of(&Scenario::default(), 6), None);
        let deployment_bound = Scenario {
            pod_kind: crate::scenario::PodKind::Deployment,
            ..s
        };
        let err = deployment_bound.validate().unwrap_err().to_string();
        assert!(err.contains("bindPods"), "{err}");
    }

    #[test]
    fn workload_sizes_should_add_up_to_the_pod_count() {
        assert_eq!(workload_sizes(25, 10), [10, 10, 5]);
        assert_eq!(workload_sizes(20, 10), [10, 10]);
        assert!(workload_sizes(0, 10).is_empty());
    }

    #[test]
    fn deployment_and_job_should_build() {
        let s = Scenario::default();
        let d = deployment(&s, &naming(), 0, 7);
        assert_eq!(d.spec.unwrap().replicas, Some(7));
        let j = job(&s, &naming(), 1, 4);
        assert_eq!(j.spec.unwrap().completions, Some(4));
    }
}
