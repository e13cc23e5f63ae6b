//! Wiring: one watch per kind feeding the shards, the lease worker, the HTTP server.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, Result};
use jiff::Timestamp;
use kube::{
    Client,
    core::ApiResource,
    discovery::{Discovery, Scope},
};
use kwok_engine::{lifecycle::Lifecycles, stage::spec::ResourceRef};
use prometheus_client::registry::Registry;
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{info, warn};

use crate::{
    batcher::Writer,
    claims::ClaimIndex,
    flags::InitialList,
    host::SharedIps,
    ipam::Pool,
    kubelet_api::KubeletApi,
    lease::{Fence, IpSlot, LeaseOptions, LeaseWorker, MemberLease, NodeNews},
    metrics::Metrics,
    rule_watch::{self, LiveRules, Publisher},
    server::{self, ServerState},
    settings::{NodeScope, Settings, default_stages},
    shard::{Batch, EVENT_BATCHES, FETCHES_IN_FLIGHT, Input, Kind, Role, Shard, ShardContext, query::Lookup},
    stages,
    watch::{config as watch_config, spawn_watch},
};

/// Runs the controller until `shutdown` completes. `client` watches, discovers and
/// installs CRDs; `writes`, made apart so it has an HTTP/2 connection of its own (module
/// docs of `crate::client`), sends the stage writes.
pub async fn run(
    client: Client,
    writes: Client,
    config: kube::Config,
    settings: Settings,
    listener: server::Server,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let settings = Arc::new(settings);
    let (stages_tx, mut stages_rx) = watch::channel(None);
    if settings.stage_crd {
        stages::ensure_crd(&client, &default_stages(settings.lease_seconds > 0)).await?;
        tokio::spawn(stages::watch_stages(client.clone(), stages_tx));
    } else {
        stages_tx.send_replace(Some(settings.lifecycles.clone()));
    }
    let first = stages_rx
        .wait_for(Option::is_some)
        .await
        .context("the Stage watch stopped")?
        .clone()
        .unwrap_or_default();
    // Stages from files must all be servable; live ones may name kinds that come later,
    // and the default sets' DRA stages have nothing to do where DRA is not served.
    let kinds = Arc::new(kinds(&client, &first, &[], settings.stages_from_files).await?);
    let ready = Arc::new(AtomicBool::new(false));
    // The kubelet API reads nodes and pods from the shards through these queues.
    let (lookup, query_rxs) = Lookup::new(settings.shards);
    let rules = live_rules(&client, &settings).await?;
    let kubelet = KubeletApi::new(rules, lookup);
    let state = ServerState {
        registry: Arc::new(registry),
        ready: ready.clone(),
        kubelet: Arc::new(kubelet),
    };
    let server = tokio::spawn(server::serve(listener, state, shutdown));

    // Renewals keep kube's HTTP/1.1 client, a connection per renewal in flight (up to
    // 64 times `--node-lease-parallelism` as renewals run late), apart from the stage
    // writes' HTTP/2 connection. Over one HTTP/2 connection of their own they went out
    // at ~430/s against ~840/s this way, too few for 10,000 leases
    // (perf/results/2026-11-26-lease-soak-h2/).
    let lease_client = if settings.lease_seconds > 0 {
        Some(Client::try_from(config.clone()).context("failed to make the lease client")?)
    } else {
        None
    };
    let writer = Writer::new(
        writes,
        settings.kube_api_qps,
        settings.kube_api_burst,
        metrics.clone(),
    )
    .with_config(config);
    let shared_ips = match settings.member_lease {
        Some(_) => SharedIps::scale_out(settings.cidr),
        None => SharedIps::new(Pool::new(settings.cidr)),
    };
    let claims = Arc::new(ClaimIndex::default());
    let start = Timestamp::now();
    // Which node leases we hold, routed to the node's shard like its events. Unbounded:
    // the lease worker reports from inside its renewal loop, and must neither wait on a
    // shard busy with stages (renewals would lag, nodes go NotReady) nor drop a change;
    // and shards send to the lease worker too, so two full bounded channels could wait
    // on each other. At most a few messages per node per lease period.
    let (ownership_txs, ownership_rxs): (Vec<_>, Vec<_>) =
        (0..settings.shards).map(|_| mpsc::unbounded_channel()).unzip();
    let mut lease_pressure = None;
    // With --scale-out, no write goes out past our member Lease's expiry, and the
    // shards hear the live members (for objects not bound to a node).
    let member_fence = settings.member_lease.map(|_| Fence::closed());
    let (members_tx, members_rx) = watch::channel::<Arc<[String]>>(Arc::from([]));
    let members_rx = settings.member_lease.map(|_| members_rx);
    let leases = lease_client.map(|lease_client| {
        // Shards and the member lease -> lease worker: unbounded for the reason above;
        // one message per node that appears or goes, one per member-table change.
        let (tx, rx) = mpsc::unbounded_channel();
        let duration = Duration::from_secs(u64::from(settings.lease_seconds));
        let on_news = Box::new(move |news: NodeNews| {
            let shard = crate::shard::hash::shard_of(news.node(), ownership_txs.len());
            let _ = ownership_txs[shard].send(news);
        });
        if let Some(member_duration) = settings.member_lease {
            let slot = IpSlot::new(
                kube::Api::namespaced(lease_client.clone(), crate::lease::NAMESPACE),
                settings.id.clone(),
                member_duration,
                shared_ips.clone(),
                metrics.clone(),
            );
            let member = MemberLease::new(
                lease_client.clone(),
                settings.id.clone(),
                member_duration,
                metrics.clone(),
                member_fence.clone().expect("made with --scale-out"),
                members_tx,
                slot,
            );
            tokio::spawn(member.run(tx.clone()));
        }
        let worker = LeaseWorker::new(
            lease_client,
            settings.id.clone(),
            LeaseOptions {
                duration,
                parallelism: settings.lease_parallelism,
                encoding: settings.lease_encoding,
                managed_fields: settings.lease_managed_fields,
                scale_out: settings.member_lease.is_some(),
            },
            metrics.clone(),
            on_news,
        );
        lease_pressure = Some(worker.pressure());
        tokio::spawn(worker.run(rx));
        tx
    });
    let pods_listed = Arc::new(watch::channel(0).0);
    let fetch_slots = Arc::new(Semaphore::new(FETCHES_IN_FLIGHT));
    let mut senders = Vec::with_capacity(settings.shards);
    for (index, (ownership, queries)) in ownership_rxs.into_iter().zip(query_rxs).enumerate() {
        let (tx, rx) = mpsc::channel(EVENT_BATCHES);
        let ctx = ShardContext {
            index,
            kinds: kinds.clone(),
            settings: settings.clone(),
            writer: writer.clone(),
            metrics: metrics.clone(),
            leases: leases.clone(),
            lease_pressure: lease_pressure.clone(),
            shared_ips: shared_ips.clone(),
            claims: claims.clone(),
            start,
            pods_listed: pods_listed.clone(),
            member_fence: member_fence.clone(),
            members: members_rx.clone(),
            fetch_slots: fetch_slots.clone(),
        };
        tokio::spawn(Shard::new(ctx).run(rx, ownership, queries));
        senders.push(tx);
    }
    let senders = Arc::new(senders);
    // Ready once every kind listed that kwok cannot do without: nodes, pods and the
    // kinds of `--config` stages. The default DRA stages' claims are not among them
    // (nor, with `--enable-crds=Stage`, any kind but nodes and pods, as default and
    // user Stage objects cannot be told apart): with RBAC written for upstream's kwok
    // (no `resource.k8s.io`) their watch is refused, and that must not keep kwok from
    // ready.
    let gates = |kind: &Kind| kind.role != Role::Other || settings.stages_from_files;
    let listed = Arc::new(AtomicUsize::new(0));
    let total = kinds.iter().filter(|k| gates(k)).count();
    let on_first_list = move || {
        if listed.fetch_add(1, Ordering::SeqCst) + 1 == total {
            ready.store(true, Ordering::SeqCst);
            info!("initial lists done: ready");
        }
    };
    for (index, kind) in kinds.iter().enumerate() {
        let gate = gates(kind);
        let listed_once = on_first_list.clone();
        spawn_watch(
            &client,
            watch_config(settings.initial_list, kind.role, &settings.scope),
            index,
            kind,
            &senders,
            &metrics,
            move || {
                if gate {
                    listed_once();
                }
            },
        );
    }
    if settings.stage_crd {
        tokio::spawn(follow_stages(
            client,
            settings.initial_list,
            settings.scope.clone(),
            stages_rx,
            kinds,
            senders,
            metrics,
        ));
    }
    server.await.context("server task")?.context("serving HTTP")?;
    info!("stopped");
    Ok(())
}

/// The kubelet API's rules: those of `--config`, kept current from the cluster's
/// objects of the kinds `--enable-crds` names (their CRDs installed first).
async fn live_rules(client: &Client, settings: &Settings) -> Result<LiveRules> {
    if settings.rule_crds.is_empty() {
        return Ok(LiveRules::fixed(settings.kubelet.clone()));
    }
    for kind in &settings.rule_crds {
        crate::crds::install(client, &kind.crd()).await?;
    }
    let (publisher, live) = Publisher::new(settings.kubelet.clone());
    tokio::spawn(rule_watch::run(
        client.clone(),
        settings.rule_crds.clone(),
        publisher,
    ));
    Ok(live)
}

/// Applies every new set of live stages: shards get the new kinds table (indexes of
/// known kinds never change; new kinds are appended) before any event of a newly
/// watched kind can reach them, because the table is sent before its watch starts.
async fn follow_stages(
    client: Client,
    initial_list: InitialList,
    scope: NodeScope,
    mut stages_rx: watch::Receiver<Option<Lifecycles>>,
    mut kinds: Arc<Vec<Kind>>,
    senders: Arc<Vec<mpsc::Sender<Batch>>>,
    metrics: Arc<Metrics>,
) {
    while stages_rx.changed().await.is_ok() {
        let Some(lifecycles) = stages_rx.borrow_and_update().clone() else {
            continue;
        };
        let next = match self::kinds(&client, &lifecycles, &kinds, false).await {
            Ok(next) => Arc::new(next),
            Err(e) => {
                warn!(error = %e, "failed to apply the new stages; keeping the old ones");
                continue;
            }
        };
        for sender in senders.iter() {
            let _ = sender.send(vec![Input::Kinds(next.clone())]).await;
        }
        for (index, kind) in next.iter().enumerate().skip(kinds.len()) {
            let config = watch_config(initial_list, kind.role, &scope);
            spawn_watch(&client, config, index, kind, &senders, &metrics, || {});
        }
        info!(kinds = next.len(), "applied changed stages");
        kinds = next;
    }
}

/// The kinds to watch: the `known` ones first, in order, with their stages from
/// `lifecycles`; Node and Pod always (pods need their node); then every other kind a
/// Stage names, found through discovery. With `strict`, a kind the apiserver does
/// not serve is an error; otherwise it is logged and left out until stages change.
async fn kinds(client: &Client, lifecycles: &Lifecycles, known: &[Kind], strict: bool) -> Result<Vec<Kind>> {
    let lifecycle_of = |resource: &ApiResource| {
        lifecycles
            .kinds()
            .find(|(r, _)| names(r, resource))
            .map(|(_, l)| l.clone())
            .unwrap_or_default()
    };
    let mut kinds: Vec<Kind> = known
        .iter()
        .map(|k| Kind {
            resource: k.resource.clone(),
            namespaced: k.namespaced,
            role: k.role,
            lifecycle: lifecycle_of(&k.resource),
        })
        .collect();
    if kinds.is_empty() {
        for (resource, namespaced, role) in [
            (
                ApiResource::erase::<k8s_openapi::api::core::v1::Node>(&()),
                false,
                Role::Node,
            ),
            (
                ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&()),
                true,
                Role::Pod,
            ),
        ] {
            kinds.push(Kind {
                lifecycle: lifecycle_of(&resource),
                resource,
                namespaced,
                role,
            });
        }
    }
    let missing: Vec<_> = lifecycles
        .kinds()
        .filter(|(r, _)| !kinds.iter().any(|k| names(r, &k.resource)))
        .collect();
    if missing.is_empty() {
        return Ok(kinds);
    }
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .context("API discovery for the kinds stages name")?;
    for (resource_ref, lifecycle) in missing {
        if kinds.iter().any(|k| names(resource_ref, &k.resource)) {
            continue;
        }
        let found = discovery
            .groups()
            .flat_map(|g| g.recommended_resources())
            .find(|(ar, _)| names(resource_ref, ar));
        let Some((resource, caps)) = found else {
            let message = format!(
                "stage kind {}/{} is not served by the apiserver",
                resource_ref.api_group, resource_ref.kind
            );
            if strict {
                anyhow::bail!(message);
            }
            warn!("{message}; its stages wait for a change of stages");
            continue;
        };
        kinds.push(Kind {
            resource,
            namespaced: caps.scope == Scope::Namespaced,
            role: Role::Other,
            lifecycle: lifecycle.clone(),
        });
    }
    Ok(kinds)
}

/// Whether a Stage's `resourceRef` names `resource` (`apiGroup` is `group/version`,
/// or `v1` for the core group).
fn names(r: &ResourceRef, resource: &ApiResource) -> bool {
    let group = r.api_group.split('/').next().unwrap_or_default();
    r.kind == resource.kind && (r.api_group == resource.api_version || group == resource.group)
}
