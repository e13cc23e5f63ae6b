//! `snapshot replay`: restores a recording's start state, then applies its changes at
//! their recorded offsets (divided by a speed factor).
//!
//! # Recovery
//! The whole file is parsed and every kind and resource it names resolved before the
//! first create, so a file that is not a recording, or one for another cluster's
//! resources, changes nothing.

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};

use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, Patch, PatchParams},
    discovery::ApiResource,
};
use serde_json::{Value, json};

use super::{
    Error, Result, io,
    k8s::{self, Restored},
    objects,
    record::gvr,
    recording::{self, Gvr, Method, ResourcePatch},
};

/// What a replay did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// The start state restored.
    pub restored: Restored,
    /// Changes applied.
    pub changes: usize,
}

type Resources = HashMap<Gvr, (ApiResource, bool)>;

/// Replays the recording at `path` into the cluster behind `client`; with
/// `snapshot_only`, restores the start state only. `speed` 2 replays twice as fast.
pub async fn replay(client: Client, path: &Path, snapshot_only: bool, speed: f64) -> Result<Replayed> {
    let text = std::fs::read(path).map_err(io("read", path))?;
    let recording = recording::parse(path, &String::from_utf8_lossy(&text))?;
    let kinds = k8s::check_served(&client, path, &recording.objects).await?;
    let mut resources = by_gvr(&kinds);
    let defined = crd_resources(&recording.objects);
    let changes: &[ResourcePatch] = if snapshot_only { &[] } else { &recording.changes };
    if let Some(change) = changes
        .iter()
        .find(|c| !resources.contains_key(&c.resource) && !defined.contains(&c.resource))
    {
        let r = &change.resource;
        return Err(Error::NotARecording {
            path: path.display().to_string(),
            reason: format!(
                "resource {}.{}/{} is not served by the cluster",
                r.resource, r.group, r.version
            ),
        });
    }
    let restored = k8s::restore_objects(&client, kinds, &recording.objects).await?;
    if changes.iter().any(|c| !resources.contains_key(&c.resource)) {
        // Custom resources of CRDs the start state just made.
        resources = by_gvr(&k8s::by_kind(&k8s::discover(&client).await?));
    }
    let begun = Instant::now();
    for (i, change) in changes.iter().enumerate() {
        let at = Duration::from_nanos(change.duration_nanosecond).div_f64(speed);
        tokio::time::sleep_until((begun + at).into()).await;
        apply(&client, &resources, change).await.map_err(|e| Error::Api {
            what: format!(
                "failed to replay change {} ({} {}/{})",
                i + 1,
                format!("{:?}", change.method).to_lowercase(),
                change.resource.resource,
                change.target.name
            ),
            message: e,
        })?;
    }
    Ok(Replayed {
        restored,
        changes: changes.len(),
    })
}

fn by_gvr(kinds: &k8s::Kinds) -> Resources {
    kinds
        .values()
        .map(|(ar, namespaced)| (gvr(ar), (ar.clone(), *namespaced)))
        .collect()
}

/// The resources the CustomResourceDefinitions among `objects` define.
fn crd_resources(objects: &[Value]) -> Vec<Gvr> {
    objects::crd_versions(objects)
        .filter_map(|v| {
            Some(Gvr {
                group: v.group.into(),
                version: v.version.into(),
                resource: v.plural?.into(),
            })
        })
        .collect()
}

/// Applies one change; `Err` is the apiserver's reason.
async fn apply(client: &Client, resources: &Resources, change: &ResourcePatch) -> Result<(), String> {
    let (ar, namespaced) = resources
        .get(&change.resource)
        .ok_or_else(|| "its resource is not served".to_owned())?;
    let target = &change.target;
    let api: Api<DynamicObject> = if *namespaced {
        let ns = if target.namespace.is_empty() {
            "default"
        } else {
            &target.namespace
        };
        Api::namespaced_with(client.clone(), ns, ar)
    } else {
        Api::all_with(client.clone(), ar)
    };
    let template = change.template.clone().unwrap_or(Value::Null);
    match change.method {
        Method::Create => {
            let mut object = template;
            object["apiVersion"] = json!(ar.api_version);
            object["kind"] = json!(ar.kind);
            let created = k8s::create(&api, &object).await.map_err(|e| e.to_string())?;
            if !created {
                // There already: make it what was recorded.
                patch(&api, &target.name, object).await?;
            }
            Ok(())
        }
        Method::Patch => patch(&api, &target.name, template).await,
        Method::Delete => match api.delete(&target.name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(k8s::reason(&e)),
        },
    }
}

/// Merge-patches `name`, and its status through the status subresource when the patch
/// has one (recordings keep a node's status).
async fn patch(api: &Api<DynamicObject>, name: &str, mut merge: Value) -> Result<(), String> {
    let status = merge.as_object_mut().and_then(|m| m.remove("status"));
    let params = PatchParams::default();
    api.patch(name, &params, &Patch::Merge(&merge))
        .await
        .map_err(|e| k8s::reason(&e))?;
    if let Some(status) = status {
        api.patch_status(name, &params, &Patch::Merge(json!({"status": status})))
            .await
            .map_err(|e| k8s::reason(&e))?;
    }
    Ok(())
}
