//! Where the stages come from: fixed at start (`--config` files or the defaults), or
//! live from Stage objects in the cluster (`--enable-crds=Stage`).
//!
//! Live stages are watched like any kind; after the first list and after every change
//! the whole set is compiled again and published on a `watch` channel, so consumers
//! only ever see the latest complete set. A Stage object that does not compile is
//! logged (naming the object and the field) and left out; the others still apply.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context as _, Result};
use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{DynamicObject, PostParams},
    core::{ApiResource, GroupVersionKind},
    runtime::{WatchStreamExt, watcher},
};
use kwok_engine::{
    lifecycle::Lifecycles,
    stage::{Stage, load::Documents},
};
use serde_json::Value;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::object::JsonObject;

/// The Stage CRD manifest, applied when it is missing.
pub const STAGE_CRD: &str = include_str!("../deploy/crds/stages.kwok.x-k8s.io.yaml");

/// The API resource of Stage objects.
pub fn stage_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "Stage"),
        "stages",
    )
}

/// Makes sure the Stage CRD is served; returns whether this call created it.
/// When it creates it, the default stages (`defaults`) are created as objects too, so
/// a fresh cluster behaves as without the CRD until users change them.
pub async fn ensure_crd(client: &Client, defaults: &[&str]) -> Result<bool> {
    let crd: CustomResourceDefinition =
        serde_saphyr::from_str(STAGE_CRD).context("the built-in Stage CRD manifest")?;
    let created = crate::crds::install(client, &crd).await?;
    if created {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &stage_resource());
        let mut docs = Documents::default();
        for text in defaults {
            docs.parse("<default stages>", text)?;
        }
        for (stage, _) in &docs.stages {
            let obj: DynamicObject = serde_json::from_value(serde_json::to_value(stage)?)?;
            match api.create(&PostParams::default(), &obj).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e).context("failed to create a default Stage object"),
            }
        }
        info!(count = docs.stages.len(), "created the default Stage objects");
    }
    Ok(created)
}

/// Watches Stage objects and publishes the compiled set after the first list and
/// after every change. Runs until the receiver is dropped.
pub async fn watch_stages(client: Client, tx: watch::Sender<Option<Lifecycles>>) {
    let api: Api<JsonObject> = Api::all_with(client, &stage_resource());
    let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
    let mut objects: BTreeMap<String, Value> = BTreeMap::new();
    let mut listing: Option<BTreeMap<String, Value>> = None;
    let mut reported = Reported::default();
    while let Some(event) = stream.next().await {
        let changed = match event {
            Ok(watcher::Event::Init) => {
                listing = Some(BTreeMap::new());
                false
            }
            Ok(watcher::Event::InitApply(obj)) => {
                if let (Some(list), Some(name)) = (listing.as_mut(), obj.metadata.name.clone()) {
                    list.insert(name, obj.to_value());
                }
                false
            }
            Ok(watcher::Event::InitDone) => {
                objects = listing.take().unwrap_or_default();
                true
            }
            Ok(watcher::Event::Apply(obj)) => match obj.metadata.name.clone() {
                Some(name) => {
                    objects.insert(name, obj.to_value());
                    true
                }
                None => false,
            },
            Ok(watcher::Event::Delete(obj)) => obj
                .metadata
                .name
                .as_ref()
                .is_some_and(|name| objects.remove(name).is_some()),
            Err(e) => {
                warn!(error = %e, "Stage watch failed; retrying");
                false
            }
        };
        if changed {
            let lifecycles = compile(&objects, &mut reported);
            if tx.send(Some(lifecycles)).is_err() {
                return;
            }
        }
    }
}

/// The Stage objects, by name and resourceVersion, already reported as left out: each
/// bad version is logged once, not again at every change of another Stage.
#[derive(Debug, Default)]
pub struct Reported(HashSet<(String, String)>);

/// Compiles every Stage object that compiles; logs the others (once per version).
pub fn compile(objects: &BTreeMap<String, Value>, reported: &mut Reported) -> Lifecycles {
    let version = |obj: &Value| {
        obj["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    reported
        .0
        .retain(|(name, rv)| objects.get(name).is_some_and(|obj| version(obj) == *rv));
    let mut stages = Vec::with_capacity(objects.len());
    for (name, obj) in objects {
        let mut docs = Documents::default();
        let compiled = docs
            .push_stage(&format!("Stage object {name:?}"), obj.clone())
            .and_then(|()| {
                let (doc, source) = docs.stages.last().expect("just pushed");
                Stage::compile(doc, source)
            });
        match compiled {
            Ok(stage) => stages.push(stage),
            Err(e) => {
                if reported.0.insert((name.clone(), version(obj))) {
                    error!(stage = %name, error = %e, "Stage object left out");
                }
            }
        }
    }
    info!(
        stages = stages.len(),
        objects = objects.len(),
        "stages loaded from the cluster"
    );
    Lifecycles::new(stages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(name: &str, kind: &str, extra: &str) -> Value {
        serde_saphyr::from_str(&format!(
            "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata:\n  name: {name}\n  resourceVersion: \"7\"\n  uid: abc\nspec:\n  resourceRef:\n    apiGroup: v1\n    kind: {kind}\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn compile_should_keep_good_stages_and_leave_out_bad_ones() {
        let mut objects = BTreeMap::new();
        objects.insert("ok".to_owned(), stage("ok", "Node", ""));
        objects.insert(
            "bad".to_owned(),
            stage(
                "bad",
                "Pod",
                "  selector:\n    matchExpressions:\n    - key: .a\n      operator: Sideways\n",
            ),
        );
        let mut reported = Reported::default();
        let lifecycles = compile(&objects, &mut reported);
        let kinds: Vec<_> = lifecycles.kinds().map(|(r, _)| r.kind.clone()).collect();
        assert_eq!(kinds, ["Node"]);
        assert_eq!(
            lifecycles.for_kind(None, "Node").unwrap().stages()[0].name(),
            "ok"
        );
        // Reported once per version: not again when another Stage changes, again when it does.
        assert_eq!(reported.0.len(), 1);
        compile(&objects, &mut reported);
        assert_eq!(reported.0.len(), 1);
        objects.get_mut("bad").unwrap()["metadata"]["resourceVersion"] = "8".into();
        compile(&objects, &mut reported);
        assert_eq!(reported.0, HashSet::from([("bad".to_owned(), "8".to_owned())]));
    }

    #[test]
    fn crd_manifest_should_parse_as_a_crd() {
        let crd: CustomResourceDefinition = serde_saphyr::from_str(STAGE_CRD).unwrap();
        assert_eq!(crd.metadata.name.as_deref(), Some("stages.kwok.x-k8s.io"));
        assert_eq!(crd.spec.names.kind, "Stage");
    }
}
