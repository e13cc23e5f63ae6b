//! The devices allocated to each ResourceClaim, shared by all shards.
//!
//! A pod's kubelet reports the health of its DRA devices
//! ([`kwok_engine::kubelet::resource_health`]), and the devices are in the pod's claims:
//! other objects, cached by whichever shard their name hashes to. The shard that
//! receives a claim's events records its allocation here; the shard of the pod's node
//! reads it. Claims change a few times in their life and pods read them once or twice,
//! so a lock over a map is enough.

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock},
};

use kube::core::ApiResource;
use kwok_engine::kubelet::resource_health::{AllocatedDevice, Claims, allocated_devices};
use serde_json::Value;

/// Allocated claims by `namespace/name`.
#[derive(Debug, Default)]
pub struct ClaimIndex {
    allocated: RwLock<HashMap<String, Arc<[AllocatedDevice]>>>,
}

impl ClaimIndex {
    /// Whether objects of `resource` are ResourceClaims (of any `resource.k8s.io`
    /// version: the allocation has the same shape in each).
    pub fn indexes(resource: &ApiResource) -> bool {
        resource.group == "resource.k8s.io" && resource.kind == "ResourceClaim"
    }

    /// Records claim `claim` as the watch last saw it.
    pub fn applied(&self, namespace: &str, name: &str, claim: &Value) {
        let key = format!("{namespace}/{name}");
        let mut allocated = self.allocated.write().unwrap_or_else(PoisonError::into_inner);
        match allocated_devices(claim) {
            Some(devices) => allocated.insert(key, devices),
            None => allocated.remove(&key),
        };
    }

    /// Forgets a deleted claim.
    pub fn deleted(&self, namespace: &str, name: &str) {
        self.allocated
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&format!("{namespace}/{name}"));
    }
}

impl Claims for ClaimIndex {
    fn devices(&self, namespace: &str, name: &str) -> Option<Arc<[AllocatedDevice]>> {
        self.allocated
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&format!("{namespace}/{name}"))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_claim_should_be_known_while_allocated() {
        let index = ClaimIndex::default();
        let allocated = json!({"status": {"allocation": {"devices": {"results": [
            {"request": "gpu", "driver": "gpu.kwok.x-k8s.io", "pool": "n", "device": "gpu-0"},
        ]}}}});
        index.applied("ns", "c", &json!({}));
        assert_eq!(index.devices("ns", "c"), None);
        index.applied("ns", "c", &allocated);
        assert_eq!(index.devices("ns", "c").unwrap()[0].device.as_ref(), "gpu-0");
        assert_eq!(index.devices("other", "c"), None);
        index.applied("ns", "c", &json!({"status": {}}));
        assert_eq!(index.devices("ns", "c"), None, "deallocated");
        index.applied("ns", "c", &allocated);
        index.deleted("ns", "c");
        assert_eq!(index.devices("ns", "c"), None);
    }
}
