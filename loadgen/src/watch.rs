//! Watches of this run's nodes, pods and node leases, feeding the [`Recorder`].

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use futures::{Stream, StreamExt};
use k8s_openapi::api::{
    coordination::v1::Lease,
    core::v1::{Node, Pod},
};
use kube::{
    Api, Client, Resource,
    runtime::{WatchStreamExt, watcher},
};
use serde::de::DeserializeOwned;
use tokio::{sync::mpsc, task::JoinSet};

use crate::{
    measure::{Recorder, pod_key},
    objects::Naming,
};

/// Starts the three watches; returns once each has listed what exists.
pub async fn start(client: &Client, naming: &Naming, rec: &Arc<Mutex<Recorder>>) -> JoinSet<()> {
    let (synced_tx, mut synced) = mpsc::channel(3);
    let mut set = JoinSet::new();
    let cfg = watcher::Config::default().labels(&naming.selector());
    let prefix = naming.node(0).trim_end_matches('0').to_owned();

    let r = rec.clone();
    let s = watcher(Api::<Node>::all(client.clone()), cfg.clone());
    set.spawn(pump(s, synced_tx.clone(), move |ev, at| {
        let mut r = r.lock().expect("recorder lock");
        match ev {
            Ev::Seen(n) => r.node_seen(&n, at),
            Ev::Gone(n) => r.node_deleted(n.metadata.name.as_deref().unwrap_or_default(), at),
        }
    }));

    let r = rec.clone();
    let s = watcher(Api::<Pod>::all(client.clone()), cfg);
    set.spawn(pump(s, synced_tx.clone(), move |ev, at| {
        let mut r = r.lock().expect("recorder lock");
        match ev {
            Ev::Seen(p) => r.pod_seen(&p, at),
            Ev::Gone(p) => r.pod_deleted(&pod_key(&p), at),
        }
    }));

    // Leases carry no run label (kwok makes them), so select by name prefix here.
    let r = rec.clone();
    let s = watcher(
        Api::<Lease>::namespaced(client.clone(), "kube-node-lease"),
        watcher::Config::default(),
    );
    set.spawn(pump(s, synced_tx, move |ev, _| {
        let mut r = r.lock().expect("recorder lock");
        match ev {
            Ev::Seen(l) if l.metadata.name.as_deref().is_some_and(|n| n.starts_with(&prefix)) => {
                r.lease_seen(&l)
            }
            Ev::Gone(l) => r.lease_deleted(l.metadata.name.as_deref().unwrap_or_default()),
            Ev::Seen(_) => {}
        }
    }));

    for _ in 0..3 {
        synced.recv().await;
    }
    set
}

enum Ev<K> {
    Seen(K),
    Gone(K),
}

/// Feeds one watch into `f` with the time each event arrived; signals `synced` after
/// the first full list. Errors are retried with backoff by the watcher.
async fn pump<K, S>(stream: S, synced: mpsc::Sender<()>, mut f: impl FnMut(Ev<K>, Instant) + Send)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    S: Stream<Item = watcher::Result<watcher::Event<K>>> + Send,
{
    let stream = stream.default_backoff();
    futures::pin_mut!(stream);
    let mut synced = Some(synced);
    while let Some(ev) = stream.next().await {
        let at = Instant::now();
        match ev {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => f(Ev::Seen(o), at),
            Ok(watcher::Event::Delete(o)) => f(Ev::Gone(o), at),
            Ok(watcher::Event::InitDone) => {
                if let Some(tx) = synced.take() {
                    let _ = tx.send(()).await;
                }
            }
            Ok(watcher::Event::Init) => {}
            Err(e) => tracing::warn!(error = %e, "watch failed; retrying"),
        }
    }
}
