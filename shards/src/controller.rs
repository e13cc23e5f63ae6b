//! Wiring: one watch per kind feeding the shards, the lease worker, the HTTP server.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, Result};
use futures::StreamExt;
use jiff::Timestamp;
use kube::{
    Api, Client,
    api::DynamicObject,
    core::ApiResource,
    discovery::{Discovery, Scope},
    runtime::{WatchStreamExt, watcher},
};
use prometheus_client::registry::Registry;
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::{
    batcher::Writer,
    dispatch::{DISPATCH_CHUNK, Dispatcher},
    ipam::Pool,
    lease::LeaseWorker,
    metrics::{KindLabel, Metrics},
    server::{self, ServerState},
    settings::Settings,
    shard::{EVENT_BATCHES, Kind, Role, Shard, ShardContext},
};

/// Runs the controller until `shutdown` completes.
pub async fn run(
    client: Client,
    settings: Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let settings = Arc::new(settings);
    let kinds = Arc::new(kinds(&client, &settings).await?);
    let ready = Arc::new(AtomicBool::new(false));
    let state = ServerState {
        registry: Arc::new(registry),
        ready: ready.clone(),
    };
    let server = tokio::spawn(server::serve(listener, state, shutdown));

    let leases = (settings.lease_seconds > 0).then(|| {
        let (tx, rx) = mpsc::unbounded_channel();
        let duration = Duration::from_secs(u64::from(settings.lease_seconds));
        let worker = LeaseWorker::new(
            client.clone(),
            settings.id.clone(),
            duration,
            settings.lease_parallelism,
            metrics.clone(),
        );
        tokio::spawn(worker.run(rx));
        tx
    });
    let writer = Writer::new(
        client.clone(),
        settings.kube_api_qps,
        settings.kube_api_burst,
        metrics.clone(),
    );
    let global_pool = Arc::new(Mutex::new(Pool::new(settings.cidr)));
    let start = Timestamp::now();
    let mut senders = Vec::with_capacity(settings.shards);
    for index in 0..settings.shards {
        let (tx, rx) = mpsc::channel(EVENT_BATCHES);
        let ctx = ShardContext {
            index,
            kinds: kinds.clone(),
            settings: settings.clone(),
            writer: writer.clone(),
            metrics: metrics.clone(),
            leases: leases.clone(),
            global_pool: global_pool.clone(),
            start,
        };
        tokio::spawn(Shard::new(ctx).run(rx));
        senders.push(tx);
    }
    let senders = Arc::new(senders);
    let listed = Arc::new(AtomicUsize::new(0));
    for (index, kind) in kinds.iter().enumerate() {
        info!(kind = %kind.resource.kind, stages = kind.lifecycle.stages().len(), "watching");
        let ctx = WatchContext {
            index,
            kinds: kinds.clone(),
            dispatcher: Dispatcher::new(index, kind.role, senders.clone()),
            metrics: metrics.clone(),
        };
        let (listed, ready, total) = (listed.clone(), ready.clone(), kinds.len());
        let api = Api::all_with(client.clone(), &kind.resource);
        tokio::spawn(async move {
            watch(api, ctx, move || {
                if listed.fetch_add(1, Ordering::SeqCst) + 1 == total {
                    ready.store(true, Ordering::SeqCst);
                    info!("initial lists done: ready");
                }
            })
            .await
        });
    }
    server.await.context("server task")?.context("serving HTTP")?;
    info!("stopped");
    Ok(())
}

/// The kinds to watch: Node and Pod always (pods need their node), then every other
/// kind a Stage names, found through discovery.
async fn kinds(client: &Client, settings: &Settings) -> Result<Vec<Kind>> {
    let mut kinds = Vec::new();
    let node = ApiResource::erase::<k8s_openapi::api::core::v1::Node>(&());
    let pod = ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&());
    let lifecycle = |kind: &str| {
        settings
            .lifecycles
            .for_kind(None, kind)
            .cloned()
            .unwrap_or_default()
    };
    kinds.push(Kind {
        lifecycle: lifecycle("Node"),
        resource: node,
        namespaced: false,
        role: Role::Node,
    });
    kinds.push(Kind {
        lifecycle: lifecycle("Pod"),
        resource: pod,
        namespaced: true,
        role: Role::Pod,
    });
    let others: Vec<_> = settings
        .lifecycles
        .kinds()
        .filter(|(r, _)| r.kind != "Node" && r.kind != "Pod")
        .collect();
    if others.is_empty() {
        return Ok(kinds);
    }
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .context("API discovery for the kinds stages name")?;
    let mut seen = HashSet::new();
    for (resource_ref, lifecycle) in others {
        let group = resource_ref.api_group.split('/').next().unwrap_or_default();
        let found = discovery
            .groups()
            .flat_map(|g| g.recommended_resources())
            .find(|(ar, _)| {
                ar.kind == resource_ref.kind
                    && (ar.api_version == resource_ref.api_group || ar.group == group)
            });
        let Some((resource, caps)) = found else {
            anyhow::bail!(
                "stage kind {}/{} is not served by the apiserver",
                resource_ref.api_group,
                resource_ref.kind
            );
        };
        if seen.insert((resource.group.clone(), resource.kind.clone())) {
            let namespaced = caps.scope == Scope::Namespaced;
            kinds.push(Kind {
                resource,
                namespaced,
                role: Role::Other,
                lifecycle: lifecycle.clone(),
            });
        }
    }
    Ok(kinds)
}

struct WatchContext {
    index: usize,
    kinds: Arc<Vec<Kind>>,
    dispatcher: Dispatcher,
    metrics: Arc<Metrics>,
}

/// Watches one kind and routes its events; resumes from the last resourceVersion and
/// re-lists on 410 Gone (kube's watcher), backing off on errors.
async fn watch(api: Api<DynamicObject>, ctx: WatchContext, mut on_first_list: impl FnMut() + Send) {
    let WatchContext {
        index,
        kinds,
        mut dispatcher,
        metrics,
    } = ctx;
    let kind = &kinds[index];
    let label = KindLabel {
        kind: kind.resource.kind.clone(),
    };
    let config = watcher::Config::default().any_semantic();
    // What the stream has ready is routed together: one send per shard per chunk.
    let mut stream = watcher(api, config)
        .default_backoff()
        .ready_chunks(DISPATCH_CHUNK)
        .boxed();
    let mut first = true;
    while let Some(events) = stream.next().await {
        for event in events {
            match event {
                Ok(watcher::Event::Init) => dispatcher.relist(false).await,
                Ok(watcher::Event::InitApply(obj) | watcher::Event::Apply(obj)) => {
                    dispatcher.applied(to_value(obj))
                }
                Ok(watcher::Event::Delete(obj)) => dispatcher.deleted(to_value(obj)),
                Ok(watcher::Event::InitDone) => {
                    dispatcher.relist(true).await;
                    if std::mem::take(&mut first) {
                        on_first_list();
                    } else {
                        metrics.watch_restarts.get_or_create(&label).inc();
                    }
                }
                Err(e) => {
                    warn!(kind = %kind.resource.kind, error = %e, "watch failed; retrying");
                    metrics.watch_restarts.get_or_create(&label).inc();
                }
            }
        }
        dispatcher.flush().await;
    }
}

/// The object as JSON, without `metadata.managedFields`: no stage reads them and
/// they are often the largest part of an object, so the caches stay small.
fn to_value(mut obj: DynamicObject) -> Value {
    obj.metadata.managed_fields = None;
    serde_json::to_value(obj).unwrap_or(Value::Null)
}
