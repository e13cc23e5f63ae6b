//! Shared fixtures of the micro-benchmarks in `benches/` and the allocation tests in
//! `tests/`: the default stage sets compiled, and objects shaped as the API server returns
//! them (a scheduled pod with two containers, a node with the usual labels).

use jiff::Timestamp;
use kwok_engine::{
    catalog,
    host::FixedHost,
    lifecycle::{Lifecycle, Lifecycles},
    stage::load::Documents,
};
use serde_json::{Value, json};

/// The clock every fixture host reads.
pub const NOW: &str = "2024-05-06T07:08:09.123456789Z";

/// The time [`NOW`] names.
///
/// # Panics
/// Never: [`NOW`] is a valid timestamp.
pub fn now() -> Timestamp {
    NOW.parse().expect("NOW is a valid timestamp")
}

/// A deterministic host at [`now`].
pub fn host() -> FixedHost {
    FixedHost::new(now())
}

/// The stages of the catalog sets `names`, compiled and grouped by kind.
///
/// # Panics
/// If a name is not a catalog set or a set fails to compile (both are bugs).
pub fn lifecycles(names: &[&str]) -> Lifecycles {
    let mut docs = Documents::default();
    for name in names {
        let text = catalog::set(name).unwrap_or_else(|| panic!("no stage set {name:?}"));
        docs.parse(name, text).expect("catalog set parses");
    }
    Lifecycles::compile(&docs).expect("catalog set compiles")
}

/// The `next.statusTemplate` of stage `stage` in catalog set `set`.
///
/// # Panics
/// If the set or stage does not exist or has no status template (bugs in the caller).
pub fn status_template(set: &str, stage: &str) -> String {
    let mut docs = Documents::default();
    docs.parse(
        set,
        catalog::set(set).unwrap_or_else(|| panic!("no stage set {set:?}")),
    )
    .expect("catalog set parses");
    docs.stages
        .iter()
        .find(|(s, _)| s.metadata.name == stage)
        .and_then(|(s, _)| s.spec.next.as_ref()?.status_template.clone())
        .unwrap_or_else(|| panic!("no status template in {set}/{stage}"))
}

/// The lifecycle of `kind` in `lifecycles`.
///
/// # Panics
/// If no stage applies to `kind`.
pub fn lifecycle<'l>(lifecycles: &'l Lifecycles, kind: &str) -> &'l Lifecycle {
    lifecycles
        .for_kind(None, kind)
        .unwrap_or_else(|| panic!("no stages for {kind}"))
}

/// A pod of a ReplicaSet, just scheduled by the scheduler (phase `Pending`, no IP yet): the
/// object `pod-ready` (`pod-fast`) and `pod-create` (`pod-general`) match.
pub fn scheduled_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-7c5ddbdf54-x2x4q",
            "generateName": "web-7c5ddbdf54-",
            "namespace": "default",
            "uid": "6a1c7f4e-0000-4000-8000-000000000001",
            "resourceVersion": "123456",
            "creationTimestamp": "2024-05-06T07:00:00Z",
            "labels": {"app": "web", "pod-template-hash": "7c5ddbdf54"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7c5ddbdf54",
                "uid": "0b9f6f0e-0000-4000-8000-000000000002", "controller": true,
                "blockOwnerDeletion": true
            }]
        },
        "spec": {
            "containers": [
                {
                    "name": "app", "image": "registry.k8s.io/nginx:1.27", "imagePullPolicy": "IfNotPresent",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                    "volumeMounts": [{"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        "name": "kube-api-access-abcde", "readOnly": true}]
                },
                {
                    "name": "sidecar", "image": "registry.k8s.io/busybox:1.36", "imagePullPolicy": "IfNotPresent",
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"
                }
            ],
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": true,
            "nodeName": "kwok-node-0",
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
            "tolerations": [
                {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
                {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}
            ],
            "volumes": [{"name": "kube-api-access-abcde", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
            ]}}]
        },
        "status": {
            "phase": "Pending",
            "qosClass": "Burstable",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": null,
                "lastTransitionTime": "2024-05-06T07:00:00Z"}]
        }
    })
}

/// [`scheduled_pod`] as a watch event carries it: with the `managedFields` of its creator
/// (the ReplicaSet controller) and of the scheduler's status update.
pub fn watched_pod() -> Value {
    let mut pod = scheduled_pod();
    let container = |extra: Value| {
        let mut fields = json!({
            ".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {}, "f:resources": {},
            "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}
        });
        fields
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        fields
    };
    pod["metadata"]["managedFields"] = json!([
        {
            "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
            "time": "2024-05-06T07:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {
                    "f:generateName": {},
                    "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}},
                    "f:ownerReferences": {".": {}, "k:{\"uid\":\"0b9f6f0e-0000-4000-8000-000000000002\"}": {}}
                },
                "f:spec": {
                    "f:containers": {
                        "k:{\"name\":\"app\"}": container(json!({
                            "f:ports": {".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}":
                                {".": {}, "f:containerPort": {}, "f:protocol": {}}},
                            "f:resources": {"f:requests": {".": {}, "f:cpu": {}, "f:memory": {}}}
                        })),
                        "k:{\"name\":\"sidecar\"}": container(json!({}))
                    },
                    "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {},
                    "f:schedulerName": {}, "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}
                }
            }
        },
        {
            "manager": "kube-scheduler", "operation": "Update", "apiVersion": "v1",
            "time": "2024-05-06T07:00:00Z", "fieldsType": "FieldsV1", "subresource": "status",
            "fieldsV1": {"f:status": {"f:conditions": {".": {}, "k:{\"type\":\"PodScheduled\"}": {
                ".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}
            }}}}
        }
    ]);
    pod
}

/// The node `kwokctl scale node` creates, before any stage ran (no `Ready` condition yet):
/// the object `node-initialize` matches.
pub fn new_node() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "kwok-node-0",
            "uid": "0c1d2e3f-0000-4000-8000-000000000003",
            "resourceVersion": "4242",
            "creationTimestamp": "2024-05-06T07:00:00Z",
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": "kwok-node-0",
                "kubernetes.io/os": "linux",
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
                "type": "kwok"
            },
            "annotations": {
                "kwok.x-k8s.io/node": "fake",
                "node.alpha.kubernetes.io/ttl": "0"
            }
        },
        "spec": {
            "taints": [{"effect": "NoSchedule", "key": "kwok.x-k8s.io/node", "value": "fake"}]
        },
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "nodeInfo": {"architecture": "amd64", "kubeletVersion": "fake", "operatingSystem": "linux"}
        }
    })
}
