//! Pods that use a device through Dynamic Resource Allocation: each pod's claim is made
//! from a ResourceClaimTemplate (one per namespace) asking for one device of the
//! scenario's DeviceClass, and at the end of the load every allocation is read back
//! from the claims to check that no device went to two of them.

use std::collections::BTreeSet;

use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceClaimTemplate};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, ListParams, PostParams},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::objects::{Naming, RUN_LABEL};

/// The ResourceClaimTemplate in each namespace.
pub const TEMPLATE: &str = "lg-device";

/// What the claims say about the devices they were given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceReport {
    /// Claims of this run.
    pub claims: u64,
    /// Of those, allocated ones.
    pub allocated_claims: u64,
    /// Devices allocated, counted once per (driver, pool, device).
    pub devices: u64,
    /// Allocations of a device that another claim was given too (0 when sound).
    pub allocated_twice: u64,
}

/// The template asking for one device of `class`; the claims made from it carry the
/// run label, so [`check`] reads exactly this run's.
pub fn claim_template(n: &Naming, namespace: &str, class: &str) -> Value {
    json!({
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": { "name": TEMPLATE, "namespace": namespace, "labels": { RUN_LABEL: n.run } },
        "spec": {
            "metadata": { "labels": { RUN_LABEL: n.run } },
            "spec": { "devices": { "requests": [{ "name": "device", "exactly": { "deviceClassName": class } }] } },
        },
    })
}

/// Creates the template in `namespace` (an existing one is kept).
pub async fn create_template(client: &Client, n: &Naming, namespace: &str, class: &str) -> kube::Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<ResourceClaimTemplate>(&()),
    );
    let object: DynamicObject =
        serde_json::from_value(claim_template(n, namespace, class)).expect("a template is an object");
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The `resourceClaims` of a pod spec and its container's `resources.claims`.
pub fn pod_claims() -> (Value, Value) {
    (
        json!([{ "name": "device", "resourceClaimTemplateName": TEMPLATE }]),
        json!([{ "name": "device" }]),
    )
}

/// Reads every claim of the run and counts its allocations.
pub async fn check(client: &Client, n: &Naming) -> kube::Result<DeviceReport> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::erase::<ResourceClaim>(&()));
    let mut params = ListParams::default().labels(&n.selector()).limit(500);
    let mut claims = Vec::new();
    loop {
        let page = api.list(&params).await?;
        claims.extend(page.items.into_iter().map(|c| c.data));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(count(&claims)),
        }
    }
}

/// Counts the allocations in the `status` of each claim (`data` of a dynamic object).
fn count(claims: &[Value]) -> DeviceReport {
    let mut report = DeviceReport {
        claims: claims.len() as u64,
        ..DeviceReport::default()
    };
    let mut seen = BTreeSet::new();
    for claim in claims {
        let Some(results) = claim["status"]["allocation"]["devices"]["results"].as_array() else {
            continue;
        };
        report.allocated_claims += 1;
        for r in results {
            let device = (
                r["driver"].to_string(),
                r["pool"].to_string(),
                r["device"].to_string(),
            );
            match seen.insert(device) {
                true => report.devices += 1,
                false => report.allocated_twice += 1,
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(devices: &[(&str, &str)]) -> Value {
        let results: Vec<Value> = devices
            .iter()
            .map(|(pool, device)| json!({"driver": "d", "pool": pool, "device": device, "request": "device"}))
            .collect();
        json!({"status": {"allocation": {"devices": {"results": results}}}})
    }

    #[test]
    fn count_should_find_a_device_given_to_two_claims() {
        let claims = [
            claim(&[("node-0", "gpu-0")]),
            claim(&[("node-0", "gpu-1")]),
            claim(&[("node-1", "gpu-0")]),
            json!({"status": {}}),
        ];
        let sound = count(&claims);
        assert_eq!(
            sound,
            DeviceReport {
                claims: 4,
                allocated_claims: 3,
                devices: 3,
                allocated_twice: 0
            }
        );
        let twice = count(&[claims[0].clone(), claim(&[("node-0", "gpu-0")])]);
        assert_eq!(twice.allocated_twice, 1);
        assert_eq!(twice.devices, 1);
    }

    #[test]
    fn the_template_should_label_its_claims_with_the_run() {
        let n = Naming { run: "r1".into() };
        let t = claim_template(&n, "lg-r1-0", "gpu.kwok.x-k8s.io");
        assert_eq!(t["spec"]["metadata"]["labels"][RUN_LABEL], "r1");
        assert_eq!(
            t["spec"]["spec"]["devices"]["requests"][0]["exactly"]["deviceClassName"],
            "gpu.kwok.x-k8s.io"
        );
    }
}
