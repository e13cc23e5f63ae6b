//! Dynamic Resource Allocation in kwokctl clusters: the DeviceClass of the fake GPU
//! driver whose ResourceSlices kwok publishes for nodes labelled `kwok.x-k8s.io/gpus`
//! (kwok's `node-dra-gpu` stage set), so a ResourceClaim can ask for one by class name.

use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, PostParams},
};
use serde_json::{Value, json};

/// The driver name in kwok's GPU ResourceSlices, and the name of its DeviceClass.
pub const GPU_DRIVER: &str = "gpu.kwok.x-k8s.io";

/// The DeviceClass could not be created.
#[derive(Debug, thiserror::Error)]
#[error("failed to create the DeviceClass {GPU_DRIVER:?}: {0}")]
pub struct Error(String);

/// What became of the DeviceClass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Created now.
    Created,
    /// It was there (a restarted cluster, or made by the user).
    Existing,
    /// The apiserver does not serve `resource.k8s.io/v1` (Kubernetes before 1.34, or the
    /// group turned off by `--runtime-config`): there is no DRA to set up.
    NotServed,
}

/// The DeviceClass selecting every device of the fake GPU driver.
pub fn gpu_device_class() -> Value {
    json!({
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {
            "name": GPU_DRIVER,
            "labels": { "app.kubernetes.io/managed-by": "kwokctl" },
        },
        "spec": {
            "selectors": [{ "cel": { "expression": format!("device.driver == {GPU_DRIVER:?}") } }],
        },
    })
}

/// Creates [`gpu_device_class`] unless it exists or the API is not served.
pub async fn create_gpu_device_class(client: &Client) -> Result<Outcome, Error> {
    let resource = ApiResource {
        group: "resource.k8s.io".into(),
        version: "v1".into(),
        api_version: "resource.k8s.io/v1".into(),
        kind: "DeviceClass".into(),
        plural: "deviceclasses".into(),
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let object: DynamicObject =
        serde_json::from_value(gpu_device_class()).map_err(|e| Error(e.to_string()))?;
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(Outcome::Created),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Outcome::Existing),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Outcome::NotServed),
        Err(e) => Err(Error(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_class_should_select_the_driver_of_kwoks_gpu_slices() {
        let class = gpu_device_class();
        assert_eq!(class["metadata"]["name"], GPU_DRIVER);
        assert_eq!(
            class["spec"]["selectors"][0]["cel"]["expression"],
            "device.driver == \"gpu.kwok.x-k8s.io\""
        );
        // The driver kwok's stage set publishes is this one.
        assert!(
            kwok_engine::catalog::NODE_DRA_GPU.contains(&format!("driver: {GPU_DRIVER}")),
            "the node-dra-gpu set names another driver"
        );
    }
}
