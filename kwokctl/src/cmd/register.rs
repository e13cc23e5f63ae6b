//! The objects `create cluster` makes once the apiserver is up: kwok's RBAC binding and
//! flow schema (before kwok starts), the DeviceClasses of kwok's fake devices, and what
//! registers the aggregated API servers it runs (metrics-server). Their RBAC, Service
//! and APIService are created before they start, and the cluster is ready only when the
//! apiserver says the APIService is Available (it reached the server and read its
//! discovery document).

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use kube::{
    Api,
    api::{ApiResource, DynamicObject},
};
use serde_json::Value;
use tracing::info;

use crate::{components::metrics_server, paths::ClusterDir, priority::KwokPriority, snapshot::k8s};

/// How often the APIService is read while waiting for it.
const POLL: Duration = Duration::from_millis(500);

/// Creates the objects that register metrics-server at 127.0.0.1:`port`.
pub(super) async fn metrics_server_objects(dir: &ClusterDir, port: u16) -> Result<()> {
    let ca_path = dir.pki().ca_cert();
    let ca =
        std::fs::read_to_string(&ca_path).with_context(|| format!("failed to read {}", ca_path.display()))?;
    let client = crate::client::from_kubeconfig(&dir.kubeconfig()).await?;
    let made = k8s::create_all(&client, &metrics_server::manifests(port, &ca))
        .await
        .context("failed to register metrics-server")?;
    info!(
        created = made.created,
        existing = made.existing,
        "metrics-server registered"
    );
    Ok(())
}

/// Creates what kwok's identity needs before it starts ([`KwokPriority::manifests`]).
pub(super) async fn kwok_objects(dir: &ClusterDir, priority: KwokPriority) -> Result<()> {
    let docs = priority.manifests();
    if docs.is_empty() {
        return Ok(());
    }
    let client = crate::client::from_kubeconfig(&dir.kubeconfig()).await?;
    let made = k8s::create_all(&client, &docs)
        .await
        .context("failed to create kwok's RBAC binding and flow schema")?;
    info!(%priority, created = made.created, existing = made.existing, "kwok's priority");
    Ok(())
}

/// Creates the DeviceClasses of kwok's fake DRA drivers (where the apiserver serves DRA).
pub(super) async fn dra_objects(dir: &ClusterDir) -> Result<()> {
    let client = crate::client::from_kubeconfig(&dir.kubeconfig()).await?;
    for class in crate::dra::DRIVERS {
        let outcome = crate::dra::create_device_class(&client, class).await?;
        info!(?outcome, class, "DRA DeviceClass");
    }
    Ok(())
}

/// Waits until the metrics-server APIService is Available, up to `deadline`.
pub(super) async fn wait_metrics_server_available(dir: &ClusterDir, deadline: Instant) -> Result<()> {
    let client = crate::client::from_kubeconfig(&dir.kubeconfig()).await?;
    let api: Api<DynamicObject> = Api::all_with(client, &api_service_resource());
    let start = Instant::now();
    loop {
        let last = match api.get(metrics_server::API_SERVICE).await {
            Ok(object) => {
                let value = serde_json::to_value(&object).unwrap_or(Value::Null);
                if metrics_server::available(&value) {
                    info!(elapsed = ?start.elapsed(), "APIService {} available", metrics_server::API_SERVICE);
                    return Ok(());
                }
                metrics_server::unavailable_reason(&value)
            }
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            bail!(
                "APIService {} was not Available after {:.0?} ({last}); see `kwokctl logs metrics-server`",
                metrics_server::API_SERVICE,
                start.elapsed()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

fn api_service_resource() -> ApiResource {
    ApiResource {
        group: "apiregistration.k8s.io".into(),
        version: "v1".into(),
        api_version: "apiregistration.k8s.io/v1".into(),
        kind: "APIService".into(),
        plural: "apiservices".into(),
    }
}
