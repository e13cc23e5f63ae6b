//! What a kubelet does beyond any Stage: it reports its pods' true readiness again when
//! the control plane took it away, and its node's status at once when its Lease
//! lapsed.
//!
//! kube-controller-manager's node lifecycle controller sets a pod's `Ready` condition to
//! `False` when the pod's node stops reporting (`MarkPodsNotReady`), and touches nothing
//! else. A real kubelet, once back, recomputes `Ready` from the pod's containers and
//! readiness gates and writes it again; without that, every pod of a node that was
//! NotReady for a moment stays unready for good (a Deployment with 0 available). Stage
//! sets, upstream's included, have no stage for it, because their `pod-ready` matches
//! only pods without an IP.

pub mod resource_health;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::{effect::Effect, patch::PatchType};

/// Name under which the restore is counted and logged, like a stage's.
pub const RESTORE_READY: &str = "kubelet-pod-ready";

/// Name under which the node status heartbeat is counted and logged.
pub const NODE_HEARTBEAT: &str = "kubelet-node-heartbeat";

/// Whether `pod`'s `Ready` condition disagrees with what a kubelet computes for it:
/// a running pod, not being deleted, whose `ContainersReady` is `True`, whose every
/// container reports ready and whose readiness gates are all `True`, has `Ready` not
/// `True`.
pub fn ready_taken_away(pod: &Value) -> bool {
    if !pod
        .pointer("/metadata/deletionTimestamp")
        .is_none_or(Value::is_null)
        || pod.pointer("/status/phase").and_then(Value::as_str) != Some("Running")
    {
        return false;
    }
    let condition = |kind: &str| -> Option<&str> {
        pod.pointer("/status/conditions")?
            .as_array()?
            .iter()
            .find(|c| c["type"] == kind)?
            .get("status")?
            .as_str()
    };
    let containers_ready = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty() && s.iter().all(|c| c["ready"] == true));
    let gates_true = pod
        .pointer("/spec/readinessGates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| g["conditionType"].as_str())
        .all(|gate| condition(gate) == Some("True"));
    condition("Ready").is_some_and(|s| s != "True")
        && condition("ContainersReady") == Some("True")
        && containers_ready
        && gates_true
}

/// The status patch that makes `Ready` `True` again (strategic: conditions merge by
/// type, so the others are left as they are).
pub fn restore_ready(now: Timestamp) -> Effect {
    Effect::Patch {
        subresource: Some("status".to_owned()),
        ty: PatchType::Strategic,
        body: json!({"status": {"conditions": [{
            "type": "Ready",
            "status": "True",
            "lastProbeTime": null,
            "lastTransitionTime": now.to_string(),
        }]}})
        .into(),
        impersonate: None,
    }
}

/// A node status heartbeat, as a kubelet posts when it takes up a node: the `Ready`
/// condition's `lastHeartbeatTime` set to `now` and, with a `port` (not 0), the
/// kubelet endpoint the node advertises; nothing else (strategic: conditions merge by
/// type, so the others and the condition's status stay as they are).
///
/// Sent for a Ready node whose Lease lapsed, as after an apiserver outage longer than
/// the Lease. kube-controller-manager heard nothing from such a node for longer than
/// its grace period and, once the apiserver is back, writes `Unknown` into the status
/// it last saw. A newer heartbeat in the Node makes that write conflict, and on the
/// re-read the controller counts the heartbeat as a sign of life and leaves the node
/// Ready. A renewed Lease does not stop it: the controller reads Leases from its own
/// watch, which returns from the outage later than its first writes.
///
/// Also sent for a node taken over from another kwok replica that advertises that
/// replica's port: the apiserver sends `kubectl logs/exec` for the node's pods there.
pub fn node_heartbeat(now: Timestamp, port: u16) -> Effect {
    let mut body = json!({"status": {"conditions": [{
        "type": "Ready",
        "lastHeartbeatTime": now.to_string(),
    }]}});
    if port != 0 {
        body["status"]["daemonEndpoints"] = json!({"kubeletEndpoint": {"Port": port}});
    }
    Effect::Patch {
        subresource: Some("status".to_owned()),
        ty: PatchType::Strategic,
        body: body.into(),
        impersonate: None,
    }
}

/// The kubelet port node `node` advertises (`status.daemonEndpoints.kubeletEndpoint.Port`),
/// 0 when it advertises none.
pub fn advertised_port(node: &Value) -> u16 {
    node.pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running_pod(ready: &str) -> Value {
        json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {
                "phase": "Running",
                "podIP": "10.0.0.1",
                "conditions": [
                    {"type": "Initialized", "status": "True"},
                    {"type": "Ready", "status": ready},
                    {"type": "ContainersReady", "status": "True"},
                ],
                "containerStatuses": [{"name": "c", "ready": true}],
            },
        })
    }

    #[test]
    fn a_running_pod_marked_not_ready_by_the_node_controller_should_be_restored() {
        assert!(ready_taken_away(&running_pod("False")));
        assert!(ready_taken_away(&running_pod("Unknown")));
        assert!(!ready_taken_away(&running_pod("True")));
    }

    #[test]
    fn a_pod_not_ready_for_its_own_reasons_should_be_left_alone() {
        let mut deleting = running_pod("False");
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let mut pending = running_pod("False");
        pending["status"]["phase"] = json!("Pending");
        let mut container_down = running_pod("False");
        container_down["status"]["containerStatuses"][0]["ready"] = json!(false);
        let mut containers_not_ready = running_pod("False");
        containers_not_ready["status"]["conditions"][2]["status"] = json!("False");
        let mut gate_closed = running_pod("False");
        gate_closed["spec"]["readinessGates"] = json!([{"conditionType": "example.com/lb"}]);
        let mut gate_open = gate_closed.clone();
        for pod in [
            deleting,
            pending,
            container_down,
            containers_not_ready,
            gate_closed,
        ] {
            assert!(!ready_taken_away(&pod), "{pod}");
        }
        gate_open["status"]["conditions"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "example.com/lb", "status": "True"}));
        assert!(ready_taken_away(&gate_open));
    }

    #[test]
    fn the_restore_should_patch_only_the_ready_condition() {
        let Effect::Patch {
            subresource,
            ty,
            body,
            ..
        } = restore_ready(Timestamp::UNIX_EPOCH)
        else {
            panic!("a patch");
        };
        assert_eq!(subresource.as_deref(), Some("status"));
        assert_eq!(ty, PatchType::Strategic);
        let mut pod = running_pod("False");
        crate::patch::apply(&mut pod, "Pod", &body.to_value(), PatchType::Strategic).unwrap();
        assert!(!ready_taken_away(&pod));
        assert_eq!(pod["status"]["conditions"].as_array().unwrap().len(), 3);
        assert_eq!(pod["status"]["conditions"][1]["status"], "True");
    }
}
