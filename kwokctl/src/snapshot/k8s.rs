//! k8s snapshots through the apiserver: discover every listable resource, list it page by
//! page, save the objects worth keeping; restore creates them in dependency order.

use std::{collections::HashMap, path::Path, time::Duration};

use futures::{StreamExt as _, stream};
use kube::{
    Api, Client,
    api::{DynamicObject, ListParams, Patch, PatchParams, PostParams},
    discovery::{ApiCapabilities, ApiResource, Discovery, Scope, verbs},
};
use serde_json::{Value, json};

use super::{Error, Result, io, objects};

/// Objects per list page: big enough to be quick, small enough to be gentle.
const LIST_PAGE: u32 = 500;
/// Creates in flight at once during a restore.
const RESTORE_CONCURRENCY: usize = 32;
/// How often a create is tried while the cluster catches up (e.g. a new namespace's
/// default service account), and the pause between tries.
const CREATE_ATTEMPTS: u32 = 40;
const CREATE_RETRY: Duration = Duration::from_millis(250);
/// How long a restore waits for the kinds of the CRDs it created to be served.
const CRD_WAIT: Duration = Duration::from_secs(30);

/// What a restore did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Objects created.
    pub created: usize,
    /// Objects that were there already (left as they are).
    pub existing: usize,
}

/// Saves the objects of every listable resource (only those named in `filter`, if any)
/// to `path`; returns how many.
pub async fn save(client: Client, filter: &[String], path: &Path) -> Result<usize> {
    let resources = listable(&discover(&client).await?);
    for entry in filter {
        if !resources.iter().any(|ar| matches_filter(ar, entry)) {
            return Err(Error::Filter(entry.clone()));
        }
    }
    let mut saved = Vec::new();
    for ar in resources {
        let wanted = filter.is_empty() || filter.iter().any(|f| matches_filter(&ar, f));
        if wanted && objects::resource_saved(&ar.group, &ar.plural) {
            saved.extend(list(&client, &ar).await?.0);
        }
    }
    objects::sort(&mut saved);
    super::write_atomically(path, objects::to_stream(&saved)?.as_bytes())?;
    Ok(saved.len())
}

/// Creates the objects of the snapshot at `path`, namespaces first and pods last.
/// Every document is checked (and its kind resolved) before the first create.
pub async fn restore(client: Client, path: &Path) -> Result<Restored> {
    let text = std::fs::read(path).map_err(io("read", path))?;
    let mut docs = objects::from_stream(path, &String::from_utf8_lossy(&text))?;
    objects::sort(&mut docs);
    let kinds = check_served(&client, path, &docs).await?;
    restore_objects(&client, kinds, &docs).await
}

/// The served kinds, checking every one of `docs` is served or defined by a CRD among
/// them (the file at `path` is not a snapshot of this cluster otherwise).
pub(super) async fn check_served(client: &Client, path: &Path, docs: &[Value]) -> Result<Kinds> {
    let kinds = by_kind(&discover(client).await?);
    // Kinds the file's own CRDs will add are served only once those exist.
    let defined = objects::crd_kinds(docs);
    if let Some(key) = docs
        .iter()
        .map(key_of)
        .find(|k| !kinds.contains_key(k) && !defined.contains(k))
    {
        return Err(Error::NotASnapshot {
            path: path.display().to_string(),
            format: "a k8s",
            reason: format!("kind {} of {} is not served by the cluster", key.1, key.0),
        });
    }
    Ok(kinds)
}

/// Creates `docs` (sorted into restore order, their kinds checked by [`check_served`]).
pub(super) async fn restore_objects(client: &Client, mut kinds: Kinds, docs: &[Value]) -> Result<Restored> {
    let client = client.clone();
    let mut restored = Restored::default();
    let mut start = 0;
    while start < docs.len() {
        // One rank at a time, concurrently within it: pods wait for their nodes.
        let rank = objects::rank(&docs[start]);
        let end = start
            + docs[start..]
                .iter()
                .take_while(|d| objects::rank(d) == rank)
                .count();
        let batch = &docs[start..end];
        if batch.iter().any(|d| !kinds.contains_key(&key_of(d))) {
            kinds = wait_served(&client, batch).await?;
        }
        let results: Vec<Result<bool>> = stream::iter(batch)
            .map(|doc| {
                let (ar, namespaced) = &kinds[&key_of(doc)];
                let api = api_for(&client, ar, *namespaced, doc);
                async move { create(&api, doc).await }
            })
            .buffer_unordered(RESTORE_CONCURRENCY)
            .collect()
            .await;
        for result in results {
            if result? {
                restored.created += 1;
            } else {
                restored.existing += 1;
            }
        }
        start = end;
    }
    Ok(restored)
}

/// Creates `docs` (objects kwokctl makes itself, such as a component's manifests) in
/// restore order, leaving those that exist as they are, as a restore does.
pub async fn create_all(client: &Client, docs: &[Value]) -> Result<Restored> {
    let mut docs = docs.to_vec();
    objects::sort(&mut docs);
    let kinds = by_kind(&discover(client).await?);
    restore_objects(client, kinds, &docs).await
}

/// Served kinds by (apiVersion, kind): the resource and whether it is namespaced.
pub(super) type Kinds = HashMap<(String, String), (ApiResource, bool)>;

fn key_of(doc: &Value) -> (String, String) {
    (
        doc["apiVersion"].as_str().unwrap_or_default().to_owned(),
        kind_of(doc),
    )
}

/// Discovers again until every kind of `docs` is served (new CRDs take a moment).
async fn wait_served(client: &Client, docs: &[Value]) -> Result<Kinds> {
    let mut waited = Duration::ZERO;
    loop {
        let kinds = by_kind(&discover(client).await?);
        let missing = docs.iter().map(key_of).find(|k| !kinds.contains_key(k));
        match missing {
            None => return Ok(kinds),
            Some(key) if waited >= CRD_WAIT => {
                return Err(Error::Api {
                    what: format!("kind {} of {}", key.1, key.0),
                    message: format!("not served {waited:?} after its CustomResourceDefinition was created"),
                });
            }
            Some(_) => {
                tokio::time::sleep(CREATE_RETRY).await;
                waited += CREATE_RETRY;
            }
        }
    }
}

pub(super) async fn discover(client: &Client) -> Result<Discovery> {
    Discovery::new(client.clone())
        .run()
        .await
        .map_err(|e| Error::Api {
            what: "failed to discover the cluster's resources".into(),
            message: reason(&e),
        })
}

/// The preferred version of every resource that can be listed and created.
pub(super) fn listable(discovery: &Discovery) -> Vec<ApiResource> {
    let mut out = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if caps.supports_operation(verbs::LIST) && caps.supports_operation(verbs::CREATE) {
                out.push(ar);
            }
        }
    }
    out
}

/// Every served (apiVersion, kind), in every version, with whether it is namespaced.
pub(super) fn by_kind(discovery: &Discovery) -> Kinds {
    let mut out = HashMap::new();
    for group in discovery.groups() {
        for version in group.versions() {
            for (ar, caps) in group.versioned_resources(version) {
                let namespaced = matches!(
                    caps,
                    ApiCapabilities {
                        scope: Scope::Namespaced,
                        ..
                    }
                );
                out.insert((ar.api_version.clone(), ar.kind.clone()), (ar, namespaced));
            }
        }
    }
    out
}

/// `node`, `nodes`, `deployment.apps` and `deployments.apps` all name their resource.
pub(super) fn matches_filter(ar: &ApiResource, entry: &str) -> bool {
    let entry = entry.trim().to_ascii_lowercase();
    let kind = ar.kind.to_ascii_lowercase();
    let (name, group) = entry.split_once('.').unwrap_or((&entry, ""));
    (name == ar.plural || name == kind) && group == ar.group
}

/// The saved objects of `ar`, cleaned, and the resourceVersion of the list (where a
/// watch of what follows starts).
pub(super) async fn list(client: &Client, ar: &ApiResource) -> Result<(Vec<Value>, String)> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
    let mut params = ListParams::default().limit(LIST_PAGE);
    let mut out = Vec::new();
    loop {
        let page = api.list(&params).await.map_err(|e| Error::Api {
            what: format!("failed to list {}", ar.plural),
            message: reason(&e),
        })?;
        for item in page.items {
            let mut object = serde_json::to_value(&item).expect("objects serialize");
            // List items carry no type; the resource says what they are.
            object["apiVersion"] = json!(ar.api_version);
            object["kind"] = json!(ar.kind);
            if objects::object_saved(&object) {
                objects::clean(&mut object);
                out.push(object);
            }
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok((out, page.metadata.resource_version.unwrap_or_default())),
        }
    }
}

fn kind_of(doc: &Value) -> String {
    doc["kind"].as_str().unwrap_or_default().to_owned()
}

pub(super) fn api_for(
    client: &Client,
    ar: &ApiResource,
    namespaced: bool,
    doc: &Value,
) -> Api<DynamicObject> {
    if namespaced {
        let ns = doc["metadata"]["namespace"].as_str().unwrap_or("default");
        Api::namespaced_with(client.clone(), ns, ar)
    } else {
        Api::all_with(client.clone(), ar)
    }
}

/// Creates `doc`; `Ok(false)` when it exists already. A node's status is written
/// after it, through the status subresource (a create ignores it for most kinds).
pub(super) async fn create(api: &Api<DynamicObject>, doc: &Value) -> Result<bool> {
    let name = doc["metadata"]["name"].as_str().unwrap_or_default();
    let what = || format!("failed to create {} {name:?}", kind_of(doc));
    let object: DynamicObject = serde_json::from_value(doc.clone()).map_err(|e| Error::Api {
        what: what(),
        message: e.to_string(),
    })?;
    let mut attempt = 1;
    loop {
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => break,
            Err(kube::Error::Api(s)) if s.code == 409 => return Ok(false),
            Err(e) if attempt < CREATE_ATTEMPTS && transient(&e) => {
                attempt += 1;
                tokio::time::sleep(CREATE_RETRY).await;
            }
            Err(e) => {
                return Err(Error::Api {
                    what: what(),
                    message: reason(&e),
                });
            }
        }
    }
    if kind_of(doc) == "Node" && doc.get("status").is_some() {
        let patch = Patch::Merge(json!({"status": doc["status"]}));
        api.patch_status(name, &PatchParams::default(), &patch)
            .await
            .map_err(|e| Error::Api {
                what: format!("failed to set the status of node {name:?}"),
                message: reason(&e),
            })?;
    }
    Ok(true)
}

/// Errors that go away as the fresh cluster settles: overload, and a namespace whose
/// default service account the controller-manager has not made yet.
fn transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(s) => {
            s.code == 429 || s.code >= 500 || (s.code == 403 && s.message.contains("service account"))
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

pub(super) fn reason(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_should_match_singular_plural_and_group() {
        let deploy = ApiResource {
            group: "apps".into(),
            version: "v1".into(),
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            plural: "deployments".into(),
        };
        assert!(matches_filter(&deploy, "deployment.apps"));
        assert!(matches_filter(&deploy, "deployments.apps"));
        assert!(!matches_filter(&deploy, "deployment"));
        let node = ApiResource::erase::<k8s_openapi::api::core::v1::Node>(&());
        assert!(matches_filter(&node, "node"));
        assert!(matches_filter(&node, "Nodes"));
        assert!(!matches_filter(&node, "pod"));
    }
}
