//! One watch per watched kind: kube's watcher (resuming from the last resourceVersion,
//! re-listing on 410 Gone) feeding the [`Dispatcher`] in ready chunks, with kwok's own
//! back-off ([`WatchBackoff`]).

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use kube::{Api, Client, runtime::watcher};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::{
    dispatch::{DISPATCH_CHUNK, Dispatcher},
    flags::InitialList,
    metrics::{KindLabel, Metrics},
    object::JsonObject,
    settings::NodeScope,
    shard::{Batch, Kind, Role},
};

/// Starts the watch of `kind` (index `index` into the kinds table), routing its events
/// to the shards' channels `senders`; `on_first_list` runs once its first list is in.
pub fn spawn_watch(
    client: &Client,
    config: watcher::Config,
    index: usize,
    kind: &Kind,
    senders: &Arc<Vec<mpsc::Sender<Batch>>>,
    metrics: &Arc<Metrics>,
    on_first_list: impl FnMut() + Send + 'static,
) {
    info!(kind = %kind.resource.kind, stages = kind.lifecycle.stages().len(), "watching");
    let ctx = WatchContext {
        config,
        label: KindLabel {
            kind: kind.resource.kind.clone(),
        },
        dispatcher: Dispatcher::new(index, kind.role, senders.clone()),
        metrics: metrics.clone(),
    };
    let api = Api::all_with(client.clone(), &kind.resource);
    tokio::spawn(watch(api, ctx, on_first_list));
}

/// What the watch of a kind of `role` asks the apiserver for: the initial list as
/// `initial_list` says, and, as upstream KWOK asks, only the objects kwok could drive:
/// pods bound to a node (`spec.nodeName!=`), or to the one node of
/// `--manage-single-node` (which is then the only node watched). An unbound pod is
/// dropped on arrival anyway ([`Dispatcher`] routes pods by their node): filtered at
/// the apiserver, it is neither encoded nor sent to us. Node selectors by label or
/// annotation stay ours: a node leaving one would arrive as a deletion.
pub fn config(initial_list: InitialList, role: Role, scope: &NodeScope) -> watcher::Config {
    let config = match initial_list {
        InitialList::Stream => watcher::Config::default().streaming_lists(),
        InitialList::Paged => watcher::Config::default(),
        InitialList::Cached => watcher::Config::default().any_semantic(),
    };
    match (role, scope) {
        (Role::Pod, NodeScope::Single(node)) => config.fields(&format!("spec.nodeName={node}")),
        (Role::Pod, _) => config.fields("spec.nodeName!="),
        (Role::Node, NodeScope::Single(node)) => config.fields(&format!("metadata.name={node}")),
        _ => config,
    }
}

struct WatchContext {
    config: watcher::Config,
    label: KindLabel,
    dispatcher: Dispatcher,
    metrics: Arc<Metrics>,
}

/// Watches one kind and routes its events; resumes from the last resourceVersion and
/// re-lists on 410 Gone (kube's watcher), backing off on other errors ([`WatchBackoff`]).
async fn watch(api: Api<JsonObject>, ctx: WatchContext, mut on_first_list: impl FnMut() + Send) {
    let WatchContext {
        config,
        label,
        mut dispatcher,
        metrics,
    } = ctx;
    let received = metrics.watch_events.get_or_create(&label).clone();
    // What the stream has ready is routed together: one send per shard per chunk.
    let mut stream = watcher(api, config).ready_chunks(DISPATCH_CHUNK).boxed();
    let mut first = true;
    let mut backoff = WatchBackoff::default();
    while let Some(events) = stream.next().await {
        let mut wait = Duration::ZERO;
        for event in events {
            match &event {
                Ok(_) => backoff.reset(),
                Err(e) => wait = backoff.after(e),
            }
            match event {
                Ok(watcher::Event::Init) => dispatcher.relist(false).await,
                Ok(watcher::Event::InitApply(obj) | watcher::Event::Apply(obj)) => {
                    received.inc();
                    dispatcher.applied(obj);
                }
                Ok(watcher::Event::Delete(obj)) => {
                    received.inc();
                    dispatcher.deleted(obj);
                }
                Ok(watcher::Event::InitDone) => {
                    dispatcher.relist(true).await;
                    if std::mem::take(&mut first) {
                        on_first_list();
                    } else {
                        metrics.watch_restarts.get_or_create(&label).inc();
                    }
                }
                Err(e) => {
                    warn!(kind = %label.kind, error = %e, retry_in = ?wait, "watch failed");
                    metrics.watch_restarts.get_or_create(&label).inc();
                }
            }
        }
        dispatcher.flush().await;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The wait before a failed watch is tried again.
///
/// kube's default back-off (0.8 s doubling to 30 s, reset only after 2 minutes without
/// errors) grew during an apiserver outage and was still grown when the watch came back
/// and was told its resourceVersion had expired: kwok re-listed ~37 s late and the
/// controller-manager marked every node unknown meanwhile (issue 21). Here any event
/// resets it, it stops at [`Self::MAX`], and a 410 re-lists at once, as client-go's
/// reflector does (a second 410 in a row backs off, so a server that keeps answering
/// 410 is not hammered).
#[derive(Debug, Default)]
struct WatchBackoff {
    failures: u32,
    gone: bool,
}

impl WatchBackoff {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(4);

    /// The wait after error `e`.
    fn after(&mut self, e: &watcher::Error) -> Duration {
        let gone = matches!(e, watcher::Error::WatchError(s) if s.code == 410);
        if gone && !std::mem::replace(&mut self.gone, true) {
            return Duration::ZERO;
        }
        let wait = Self::FIRST
            .saturating_mul(1 << self.failures.min(8))
            .min(Self::MAX);
        self.failures += 1;
        wait
    }

    /// An event arrived: the watch works.
    fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    #[test]
    fn pods_should_be_watched_only_once_bound_and_one_node_alone() {
        let single = NodeScope::Single("n1".into());
        let fields = |role, scope: &NodeScope| config(InitialList::Stream, role, scope).field_selector;
        assert_eq!(
            fields(Role::Pod, &NodeScope::All).as_deref(),
            Some("spec.nodeName!=")
        );
        assert_eq!(fields(Role::Pod, &single).as_deref(), Some("spec.nodeName=n1"));
        assert_eq!(fields(Role::Node, &single).as_deref(), Some("metadata.name=n1"));
        let by_label = NodeScope::Selected {
            annotations: None,
            labels: crate::selector::parse("type=kwok").unwrap(),
        };
        assert_eq!(fields(Role::Node, &by_label), None, "label scopes stay ours");
        assert_eq!(fields(Role::Node, &NodeScope::All), None);
        assert_eq!(fields(Role::Other, &single), None);
        assert_eq!(
            config(InitialList::Cached, Role::Pod, &NodeScope::All).list_semantic,
            watcher::ListSemantic::Any,
            "the initial list as asked"
        );
    }

    fn status(code: u16) -> watcher::Error {
        watcher::Error::WatchError(Box::new(Status {
            code,
            ..Status::default()
        }))
    }

    #[test]
    fn watch_backoff_should_grow_to_its_cap_and_reset_on_any_event() {
        let mut backoff = WatchBackoff::default();
        let waits: Vec<u64> = (0..7)
            .map(|_| backoff.after(&status(500)).as_millis() as u64)
            .collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 4000, 4000]);
        backoff.reset();
        assert_eq!(backoff.after(&status(500)), WatchBackoff::FIRST);
    }

    /// See: issue 21 (a 410 after an outage waited for the back-off the outage had grown).
    #[test]
    fn watch_backoff_should_relist_at_once_on_410_even_after_an_outage() {
        let mut backoff = WatchBackoff::default();
        for _ in 0..10 {
            backoff.after(&status(503));
        }
        assert_eq!(backoff.after(&status(410)), Duration::ZERO);
        assert!(backoff.after(&status(410)) > Duration::ZERO, "not twice in a row");
        backoff.reset();
        assert_eq!(backoff.after(&status(410)), Duration::ZERO);
    }
}
