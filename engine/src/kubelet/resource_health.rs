//! The health of a pod's DRA devices, as a kubelet reports it in each container's
//! `status.containerStatuses[].allocatedResourcesStatus` (ResourceHealthStatus, beta
//! and on in Kubernetes 1.36).
//!
//! A kubelet names each entry after the container's claim, `claim:<claim>` or
//! `claim:<claim>/<request>`, and lists the devices allocated to it as
//! `<driver>/<pool>/<device>` with the health its driver's plugin streams. The devices
//! are in the ResourceClaim (`status.allocation.devices.results`), a second object, so
//! the caller looks claims up ([`Claims`]); the health comes from the pod's node: a GPU
//! of the `dra` stage set's driver that the node's `kwok.x-k8s.io/gpus-tainted`
//! annotation names (which also taints it in the ResourceSlice) is `Unhealthy`, every
//! other allocated device `Healthy`.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::{effect::Effect, patch::PatchType};

/// Name under which the report is counted and logged, like a stage's.
pub const RESOURCE_HEALTH: &str = "kubelet-pod-resource-health";

/// The node annotation naming unhealthy GPUs by index (`"0,3"`, `"0:NoExecute"`).
pub const GPUS_TAINTED: &str = "kwok.x-k8s.io/gpus-tainted";

/// The driver of the `dra` set's GPUs.
const GPU_DRIVER: &str = "gpu.kwok.x-k8s.io";

/// One device allocated to a claim: an entry of `status.allocation.devices.results`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocatedDevice {
    /// The claim's request it satisfies (`request` or `request/subrequest`).
    pub request: Box<str>,
    /// Driver, pool and device name.
    pub driver: Box<str>,
    /// The pool.
    pub pool: Box<str>,
    /// The device.
    pub device: Box<str>,
}

impl AllocatedDevice {
    /// The kubelet's resource ID of the device: `<driver>/<pool>/<device>`.
    fn resource_id(&self) -> String {
        format!("{}/{}/{}", self.driver, self.pool, self.device)
    }
}

/// The devices allocated to `claim`, `None` while it is not allocated.
pub fn allocated_devices(claim: &Value) -> Option<Arc<[AllocatedDevice]>> {
    let results = claim.pointer("/status/allocation/devices/results")?.as_array()?;
    let field = |r: &Value, name: &str| -> Box<str> { r[name].as_str().unwrap_or_default().into() };
    Some(
        results
            .iter()
            .map(|r| AllocatedDevice {
                request: field(r, "request"),
                driver: field(r, "driver"),
                pool: field(r, "pool"),
                device: field(r, "device"),
            })
            .collect(),
    )
}

/// Looks up a claim of the pod's namespace by name: its allocated devices, `None` while
/// the claim is unknown or not allocated.
pub trait Claims {
    /// The devices of claim `name` in `namespace`.
    fn devices(&self, namespace: &str, name: &str) -> Option<Arc<[AllocatedDevice]>>;
}

/// What the pod's containers should report, against what they do.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// Nothing to report: not a running pod with claims used by its containers, or the
    /// report is as it should be.
    UpToDate,
    /// A container's claim is not known (or not allocated) yet: try again later.
    Waiting,
    /// The pod's `containerStatuses` with the report as it should be.
    Changed(Vec<Value>),
}

/// The report for `pod` on a node whose `kwok.x-k8s.io/gpus-tainted` annotation is
/// `tainted` (empty if none), given its claims.
///
/// Only for a running pod, not being deleted, whose containers' status the kubelet
/// already wrote (the report lives in it). Entries not named `claim:` (device plugins')
/// are kept; `claim:` entries are replaced by what the claims say, in the containers'
/// claim order, as the kubelet rebuilds them.
pub fn report(pod: &Value, node: &str, tainted: &str, claims: &dyn Claims) -> Report {
    let has_claims = pod
        .pointer("/spec/resourceClaims")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty());
    if !has_claims {
        // Nearly every pod: decided by one lookup.
        return Report::UpToDate;
    }
    let deleting = !pod
        .pointer("/metadata/deletionTimestamp")
        .is_none_or(Value::is_null);
    let running = pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running");
    let Some(statuses) = pod.pointer("/status/containerStatuses").and_then(Value::as_array) else {
        return Report::UpToDate;
    };
    if deleting || !running {
        return Report::UpToDate;
    }
    let namespace = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let unhealthy = unhealthy_gpus(tainted);
    let mut changed = false;
    let mut out = Vec::with_capacity(statuses.len());
    for status in statuses {
        let name = status["name"].as_str().unwrap_or_default();
        let container = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c["name"] == name);
        let used: &[Value] = container
            .and_then(|c| c.pointer("/resources/claims"))
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice);
        if used.is_empty() {
            out.push(status.clone());
            continue;
        }
        let mut entries: Vec<Value> = status["allocatedResourcesStatus"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| !e["name"].as_str().unwrap_or_default().starts_with("claim:"))
            .cloned()
            .collect();
        for used in used {
            let claim = used["name"].as_str().unwrap_or_default();
            let request = used["request"].as_str().unwrap_or_default();
            let Some(claim_name) = claim_name(pod, claim) else {
                return Report::Waiting;
            };
            let Some(devices) = claims.devices(namespace, &claim_name) else {
                return Report::Waiting;
            };
            let mut resources: Vec<Value> = Vec::new();
            for device in devices.iter() {
                let base = device.request.split('/').next().unwrap_or_default();
                if !request.is_empty() && base != request {
                    continue;
                }
                let id = device.resource_id();
                if resources.iter().any(|r| r["resourceID"] == id.as_str()) {
                    continue;
                }
                let gpu_index = (&*device.driver == GPU_DRIVER && &*device.pool == node)
                    .then(|| device.device.strip_prefix("gpu-"))
                    .flatten();
                resources.push(match gpu_index.is_some_and(|i| unhealthy.contains(&i)) {
                    true => json!({
                        "resourceID": id,
                        "health": "Unhealthy",
                        "message": format!("{} is tainted by the node's {GPUS_TAINTED} annotation", device.device),
                    }),
                    false => json!({"resourceID": id, "health": "Healthy"}),
                });
            }
            if resources.is_empty() {
                continue;
            }
            let name = match request {
                "" => format!("claim:{claim}"),
                request => format!("claim:{claim}/{request}"),
            };
            entries.push(json!({"name": name, "resources": resources}));
        }
        let mut status = status.clone();
        let had = status.get("allocatedResourcesStatus").cloned();
        let want = (!entries.is_empty()).then_some(Value::Array(entries));
        if had.as_ref().filter(|h| !h.is_null()) != want.as_ref() {
            changed = true;
            let map: &mut Map<String, Value> =
                status.as_object_mut().expect("a container status is an object");
            match want {
                Some(want) => map.insert("allocatedResourcesStatus".to_owned(), want),
                None => map.remove("allocatedResourcesStatus"),
            };
        }
        out.push(status);
    }
    match changed {
        true => Report::Changed(out),
        false => Report::UpToDate,
    }
}

/// The status patch that writes `statuses` (strategic: `containerStatuses` has no
/// merge key, so the list is replaced whole, as a kubelet writes it).
pub fn report_patch(statuses: Vec<Value>) -> Effect {
    Effect::Patch {
        subresource: Some("status".to_owned()),
        ty: PatchType::Strategic,
        body: json!({"status": {"containerStatuses": statuses}}).into(),
        impersonate: None,
    }
}

/// The ResourceClaim behind the pod's claim `claim`: `resourceClaimName` for a claim
/// made by hand, else the name the controller generated from the template, as
/// recorded in `status.resourceClaimStatuses`.
fn claim_name(pod: &Value, claim: &str) -> Option<String> {
    let spec = pod
        .pointer("/spec/resourceClaims")?
        .as_array()?
        .iter()
        .find(|c| c["name"] == claim)?;
    if let Some(name) = spec["resourceClaimName"].as_str() {
        return Some(name.to_owned());
    }
    pod.pointer("/status/resourceClaimStatuses")?
        .as_array()?
        .iter()
        .find(|s| s["name"] == claim)?["resourceClaimName"]
        .as_str()
        .map(str::to_owned)
}

/// The GPU indices `kwok.x-k8s.io/gpus-tainted` names: `"0,3"` or `"0,3:NoExecute"`.
fn unhealthy_gpus(tainted: &str) -> Vec<&str> {
    let list = tainted.split(':').next().unwrap_or_default();
    list.split(',').map(str::trim).filter(|i| !i.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Known(HashMap<(&'static str, &'static str), Arc<[AllocatedDevice]>>);

    impl Claims for Known {
        fn devices(&self, namespace: &str, name: &str) -> Option<Arc<[AllocatedDevice]>> {
            self.0
                .iter()
                .find(|((ns, n), _)| *ns == namespace && *n == name)
                .map(|(_, d)| d.clone())
        }
    }

    fn claim(results: Value) -> Arc<[AllocatedDevice]> {
        allocated_devices(&json!({"status": {"allocation": {"devices": {"results": results}}}})).unwrap()
    }

    fn known() -> Known {
        Known(HashMap::from([
            (
                ("ns", "p-gpu-abc"),
                claim(json!([
                    {"request": "gpu", "driver": GPU_DRIVER, "pool": "node-1", "device": "gpu-3"},
                    {"request": "gpu", "driver": GPU_DRIVER, "pool": "node-1", "device": "gpu-4"},
                ])),
            ),
            (
                ("ns", "shared-nic"),
                claim(json!([
                    {"request": "nic/fast", "driver": "nic.kwok.x-k8s.io", "pool": "node-1", "device": "nic-0"},
                ])),
            ),
        ]))
    }

    fn pod() -> Value {
        json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {
                "nodeName": "node-1",
                "resourceClaims": [
                    {"name": "gpu", "resourceClaimTemplateName": "t"},
                    {"name": "nic", "resourceClaimName": "shared-nic"},
                ],
                "containers": [
                    {"name": "a", "resources": {"claims": [{"name": "gpu"}, {"name": "nic", "request": "nic"}]}},
                    {"name": "b"},
                ],
            },
            "status": {
                "phase": "Running",
                "resourceClaimStatuses": [{"name": "gpu", "resourceClaimName": "p-gpu-abc"}],
                "containerStatuses": [
                    {"name": "a", "ready": true, "allocatedResourcesStatus": [
                        {"name": "example.com/fpga", "resources": [{"resourceID": "fpga-0", "health": "Healthy"}]},
                    ]},
                    {"name": "b", "ready": true},
                ],
            },
        })
    }

    #[test]
    fn a_running_pod_should_report_each_claim_of_each_container_by_device() {
        let Report::Changed(statuses) = report(&pod(), "node-1", "", &known()) else {
            panic!("a report");
        };
        assert_eq!(
            statuses[0]["allocatedResourcesStatus"],
            json!([
                {"name": "example.com/fpga", "resources": [{"resourceID": "fpga-0", "health": "Healthy"}]},
                {"name": "claim:gpu", "resources": [
                    {"resourceID": "gpu.kwok.x-k8s.io/node-1/gpu-3", "health": "Healthy"},
                    {"resourceID": "gpu.kwok.x-k8s.io/node-1/gpu-4", "health": "Healthy"},
                ]},
                {"name": "claim:nic/nic", "resources": [
                    {"resourceID": "nic.kwok.x-k8s.io/node-1/nic-0", "health": "Healthy"},
                ]},
            ])
        );
        assert_eq!(
            statuses[1],
            pod()["status"]["containerStatuses"][1],
            "no claims, untouched"
        );
        let mut reported = pod();
        reported["status"]["containerStatuses"] = Value::Array(statuses);
        assert_eq!(report(&reported, "node-1", "", &known()), Report::UpToDate);
    }

    #[test]
    fn a_gpu_the_node_taints_should_be_unhealthy_and_healthy_again_once_untainted() {
        let Report::Changed(statuses) = report(&pod(), "node-1", "4,7:NoExecute", &known()) else {
            panic!("a report");
        };
        let gpu = &statuses[0]["allocatedResourcesStatus"][1]["resources"];
        assert_eq!(gpu[0]["health"], "Healthy");
        assert_eq!(gpu[1]["health"], "Unhealthy");
        assert!(gpu[1]["message"].as_str().unwrap().contains("gpu-4"));
        let mut reported = pod();
        reported["status"]["containerStatuses"] = Value::Array(statuses);
        assert!(matches!(
            report(&reported, "node-1", "", &known()),
            Report::Changed(_)
        ));
        assert_eq!(
            report(&reported, "node-1", "4,7:NoExecute", &known()),
            Report::UpToDate
        );
        // The same index in another node's annotation names another device.
        let Report::Changed(healthy) = report(&reported, "node-1", "", &known()) else {
            panic!("a report");
        };
        reported["status"]["containerStatuses"] = Value::Array(healthy);
        assert_eq!(report(&reported, "node-2", "4", &known()), Report::UpToDate);
    }

    #[test]
    fn a_claim_not_known_yet_should_wait_and_other_pods_report_nothing() {
        let mut unnamed = pod();
        unnamed["status"]["resourceClaimStatuses"] = json!([]);
        assert_eq!(report(&unnamed, "node-1", "", &known()), Report::Waiting);
        assert_eq!(
            report(&pod(), "node-1", "", &Known(HashMap::new())),
            Report::Waiting
        );
        let mut pending = pod();
        pending["status"]["phase"] = json!("Pending");
        let mut deleting = pod();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let mut plain = pod();
        plain["spec"].as_object_mut().unwrap().remove("resourceClaims");
        let mut no_statuses = pod();
        no_statuses["status"]
            .as_object_mut()
            .unwrap()
            .remove("containerStatuses");
        for pod in [pending, deleting, plain, no_statuses] {
            assert_eq!(report(&pod, "node-1", "", &known()), Report::UpToDate, "{pod}");
        }
    }

    #[test]
    fn an_unallocated_claim_should_have_no_devices() {
        assert_eq!(allocated_devices(&json!({"status": {}})), None);
        assert_eq!(allocated_devices(&json!({})), None);
    }

    #[test]
    fn the_patch_should_replace_the_container_statuses() {
        let Effect::Patch {
            subresource,
            ty,
            body,
            ..
        } = report_patch(vec![json!({"name": "a"})])
        else {
            panic!("a patch");
        };
        assert_eq!(subresource.as_deref(), Some("status"));
        assert_eq!(ty, PatchType::Strategic);
        assert_eq!(body, json!({"status": {"containerStatuses": [{"name": "a"}]}}));
    }
}
