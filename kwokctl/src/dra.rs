//! Dynamic Resource Allocation in kwokctl clusters: the DeviceClasses of the fake
//! drivers whose ResourceSlices kwok publishes for nodes labelled `kwok.x-k8s.io/gpus`,
//! `…/partitionable-gpus` or `…/nics` (kwok's `dra` stage set), so a ResourceClaim can
//! ask for a device by class name.

use k8s_openapi::api::resource::v1::DeviceClass;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, PostParams},
};
use serde_json::{Value, json};

/// The driver name in kwok's GPU ResourceSlices, and the name of its DeviceClass.
pub const GPU_DRIVER: &str = "gpu.kwok.x-k8s.io";
/// The same for its NICs.
pub const NIC_DRIVER: &str = "nic.kwok.x-k8s.io";
/// Every fake driver, each with a DeviceClass of its name.
pub const DRIVERS: [&str; 2] = [GPU_DRIVER, NIC_DRIVER];

/// A DeviceClass could not be created.
#[derive(Debug, thiserror::Error)]
#[error("failed to create the DeviceClass {class:?}: {message}")]
pub struct Error {
    class: &'static str,
    message: String,
}

/// What became of the DeviceClass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Created now.
    Created,
    /// It was there (a restarted cluster, or made by the user).
    Existing,
    /// The apiserver does not serve `resource.k8s.io/v1` (Kubernetes before 1.34): there
    /// is no DRA to set up. (On 1.36 the group cannot be turned off: DRA is GA and the
    /// apiserver does not become ready with `--runtime-config resource.k8s.io/v1=false`.)
    NotServed,
}

/// The DeviceClass selecting every device of `driver`, named after it.
pub fn device_class(driver: &str) -> Value {
    json!({
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {
            "name": driver,
            "labels": { "app.kubernetes.io/managed-by": "kwokctl" },
        },
        "spec": {
            "selectors": [{ "cel": { "expression": format!("device.driver == {driver:?}") } }],
        },
    })
}

/// Creates the [`device_class`] of `driver` unless it exists or the API is not served.
pub async fn create_device_class(client: &Client, driver: &'static str) -> Result<Outcome, Error> {
    let resource = ApiResource::erase::<DeviceClass>(&());
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let error = |message: String| Error {
        class: driver,
        message,
    };
    let object: DynamicObject =
        serde_json::from_value(device_class(driver)).map_err(|e| error(e.to_string()))?;
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(Outcome::Created),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Outcome::Existing),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Outcome::NotServed),
        Err(e) => Err(error(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_classes_should_select_the_drivers_of_kwoks_slices() {
        let class = device_class(GPU_DRIVER);
        assert_eq!(class["metadata"]["name"], GPU_DRIVER);
        assert_eq!(
            class["spec"]["selectors"][0]["cel"]["expression"],
            "device.driver == \"gpu.kwok.x-k8s.io\""
        );
        // The drivers kwok's stage set publishes are these.
        for driver in DRIVERS {
            assert!(
                kwok_engine::catalog::DRA.contains(&format!("driver: {driver}")),
                "the dra set has no slices of {driver}"
            );
        }
    }
}
