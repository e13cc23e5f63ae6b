//! `snapshot record`: the start state as a k8s snapshot, then every change seen by one
//! watch per saved resource, each written (and flushed) as it comes, until stopped.
//!
//! # Recovery
//! The file is written under a temp name and renamed when the recording ends, so a
//! crashed recorder never leaves a half recording under the real name. A watch that
//! expires (`410 Gone`) re-lists its resource and records the difference.

use std::{
    io::Write as _,
    path::Path,
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use kube::{
    Api, Client,
    api::{DynamicObject, WatchEvent, WatchParams},
    discovery::ApiResource,
};
use serde_json::json;
use tokio::sync::mpsc;

use super::{
    Error, Result, io, k8s, objects,
    recording::{self, Event, Gvr, Recorder},
};

/// Watch requests end after this long and are made again from the last version.
const WATCH_TIMEOUT_SECS: u32 = 290;
/// Events in flight from the watches to the writer.
const EVENT_BUFFER: usize = 1024;

/// What a recording held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// Objects of the start state.
    pub objects: usize,
    /// Changes after it.
    pub changes: usize,
    /// How long it recorded.
    pub elapsed: Duration,
}

/// One watch event for the writer: the resource's index and the event.
type Seen = (usize, WatchEvent<DynamicObject>);

/// Records the cluster behind `client` into `path` until `stop` resolves; with
/// `snapshot_only`, writes the start state and ends. `started` is told once the start
/// state is written (changes from then on are recorded).
pub async fn record(
    client: Client,
    filter: &[String],
    path: &Path,
    snapshot_only: bool,
    stop: impl Future<Output = ()>,
    started: impl FnOnce(usize),
) -> Result<Recorded> {
    let resources: Vec<ApiResource> = k8s::listable(&k8s::discover(&client).await?)
        .into_iter()
        .filter(|ar| filter.is_empty() || filter.iter().any(|f| k8s::matches_filter(ar, f)))
        .filter(|ar| objects::resource_saved(&ar.group, &ar.plural))
        .collect();
    for entry in filter {
        if !resources.iter().any(|ar| k8s::matches_filter(ar, entry)) {
            return Err(Error::Filter(entry.clone()));
        }
    }
    let mut recorder = Recorder::default();
    let mut start_state = Vec::new();
    let mut versions = Vec::new();
    for ar in &resources {
        let (objects, version) = k8s::list(&client, ar).await?;
        for object in &objects {
            recorder.seed(&gvr(ar), object.clone());
        }
        start_state.extend(objects);
        versions.push(version);
    }
    objects::sort(&mut start_state);
    let tmp = super::tmp_path(path);
    let mut file = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
    let write = |file: &mut std::fs::File, text: &str| {
        file.write_all(text.as_bytes())
            .and_then(|()| file.flush())
            .map_err(io("write", &tmp))
    };
    write(&mut file, &objects::to_stream(&start_state)?)?;
    let mut recorded = Recorded {
        objects: start_state.len(),
        ..Recorded::default()
    };
    let begun = Instant::now();
    if !snapshot_only {
        started(recorded.objects);
        let (tx, mut rx) = mpsc::channel::<Seen>(EVENT_BUFFER);
        let watches: Vec<_> = resources
            .iter()
            .zip(versions)
            .enumerate()
            .map(|(i, (ar, version))| tokio::spawn(watch(client.clone(), ar.clone(), i, version, tx.clone())))
            .collect();
        drop(tx);
        tokio::pin!(stop);
        let outcome = loop {
            let seen = tokio::select! {
                () = &mut stop => break Ok(()),
                seen = rx.recv() => seen,
            };
            let Some((i, event)) = seen else {
                break Err(Error::Api {
                    what: "failed to watch the cluster".into(),
                    message: "every watch ended".into(),
                });
            };
            let ar = &resources[i];
            for change in changes(&client, &mut recorder, ar, event, begun.elapsed()).await? {
                write(&mut file, &recording::to_document(&change)?)?;
                recorded.changes += 1;
            }
        };
        for w in watches {
            w.abort();
        }
        outcome?;
    }
    recorded.elapsed = begun.elapsed();
    drop(file);
    std::fs::rename(&tmp, path).map_err(io("rename", path))?;
    Ok(recorded)
}

/// The changes one watch event makes. An expired watch (`410 Gone`) re-lists the
/// resource: what appeared or changed is applied, what is missing deleted.
async fn changes(
    client: &Client,
    recorder: &mut Recorder,
    ar: &ApiResource,
    event: WatchEvent<DynamicObject>,
    offset: Duration,
) -> Result<Vec<recording::ResourcePatch>> {
    let resource = gvr(ar);
    let typed = |object: DynamicObject| {
        let mut value = serde_json::to_value(&object).expect("objects serialize");
        value["apiVersion"] = json!(ar.api_version);
        value["kind"] = json!(ar.kind);
        value
    };
    let mut out = Vec::new();
    match event {
        WatchEvent::Added(o) | WatchEvent::Modified(o) => {
            out.extend(recorder.observe(&resource, Event::Applied, typed(o), offset));
        }
        WatchEvent::Deleted(o) => out.extend(recorder.observe(&resource, Event::Deleted, typed(o), offset)),
        WatchEvent::Bookmark(_) => {}
        WatchEvent::Error(_) => {
            let (listed, _) = k8s::list(client, ar).await?;
            let mut gone = recorder.targets(&resource);
            for object in listed {
                let meta = &object["metadata"];
                let target = recording::Target {
                    name: meta["name"].as_str().unwrap_or_default().to_owned(),
                    namespace: meta["namespace"].as_str().unwrap_or_default().to_owned(),
                };
                gone.retain(|t| *t != target);
                out.extend(recorder.observe(&resource, Event::Applied, object, offset));
            }
            for target in gone {
                let stub = json!({"apiVersion": ar.api_version, "kind": ar.kind,
                    "metadata": {"name": target.name, "namespace": target.namespace}});
                out.extend(recorder.observe(&resource, Event::Deleted, stub, offset));
            }
        }
    }
    Ok(out)
}

/// Watches `ar` from `version` for ever, sending every event; an error event (the
/// version expired) is sent on, and the watch goes on from the version of the re-list.
async fn watch(client: Client, ar: ApiResource, index: usize, mut version: String, tx: mpsc::Sender<Seen>) {
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    let params = WatchParams::default().timeout(WATCH_TIMEOUT_SECS);
    loop {
        let stream = match api.watch(&params, &version).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(resource = %ar.plural, error = %e, "watch failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            let event = match item {
                Ok(event) => event,
                Err(e) => {
                    tracing::warn!(resource = %ar.plural, error = %e, "watch broke; resuming");
                    break;
                }
            };
            if let Some(v) = event_version(&event) {
                version = v;
            }
            let expired = matches!(event, WatchEvent::Error(_));
            if tx.send((index, event)).await.is_err() {
                return;
            }
            if expired {
                // Go on from now: the writer re-lists and records the difference.
                match api
                    .list_metadata(&kube::api::ListParams::default().limit(1))
                    .await
                {
                    Ok(list) => version = list.metadata.resource_version.unwrap_or_default(),
                    Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                }
                break;
            }
        }
    }
}

fn event_version(event: &WatchEvent<DynamicObject>) -> Option<String> {
    match event {
        WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
            o.metadata.resource_version.clone()
        }
        WatchEvent::Bookmark(b) => Some(b.metadata.resource_version.clone()),
        WatchEvent::Error(_) => None,
    }
}

/// The recording's name of `ar`.
pub(super) fn gvr(ar: &ApiResource) -> Gvr {
    Gvr {
        group: ar.group.clone(),
        version: ar.version.clone(),
        resource: ar.plural.clone(),
    }
}
