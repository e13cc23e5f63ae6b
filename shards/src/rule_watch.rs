//! The kubelet API's rules kept current from the cluster's objects (`--enable-crds`
//! with rule kinds), and the snapshots requests read them through.
//!
//! One task owns the rule sets ([`Publisher`]): it watches every enabled rule kind,
//! adds (or replaces) an object when it is applied and removes it when it is deleted,
//! then publishes a new snapshot of the set that changed. A request takes the current
//! snapshot ([`LiveRules`]), an `Arc` clone, and keeps it for its life: it never waits
//! for the task, and the task never waits for a request.
//!
//! An object kwok cannot use is logged on one line (kind, object, field, reason) and
//! left out (its previous version too); the other objects keep working.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use futures::StreamExt as _;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt as _, watcher},
};
use kwok_engine::stage::load::Source;
use kwok_kubelet::{
    debugging::DebuggingRules,
    metrics::{Metrics, Usages},
};
use serde_json::Value;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::{
    crds::{GROUP, RuleKind, RuleSet, VERSION},
    object::JsonObject,
    settings::KubeletRules,
};

/// The rule sets as requests read them: each the latest complete set, swapped whole
/// when it changes.
///
/// # Implementation
/// A `watch` channel per set: reading clones an `Arc` under the channel's read lock,
/// which only the (rare) publication of a new set takes for writing.
#[derive(Debug, Clone)]
pub struct LiveRules {
    debugging: watch::Receiver<Arc<DebuggingRules>>,
    metrics: watch::Receiver<Arc<Metrics>>,
    usages: watch::Receiver<Arc<Usages>>,
}

impl LiveRules {
    /// Rules that never change (none of their kinds comes from the cluster).
    pub fn fixed(rules: KubeletRules) -> Self {
        Publisher::new(rules).1
    }

    /// The logs, exec, attach and port-forward rules now.
    pub fn debugging(&self) -> Arc<DebuggingRules> {
        self.debugging.borrow().clone()
    }

    /// The Metric endpoints now.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.borrow().clone()
    }

    /// The resource usages now.
    pub fn usages(&self) -> Arc<Usages> {
        self.usages.borrow().clone()
    }
}

/// The writing side: the current sets (those of `--config` plus the objects of the
/// cluster), owned by the watch task.
#[derive(Debug)]
pub struct Publisher {
    rules: KubeletRules,
    debugging: watch::Sender<Arc<DebuggingRules>>,
    metrics: watch::Sender<Arc<Metrics>>,
    usages: watch::Sender<Arc<Usages>>,
}

/// Why an object is left out: the field (empty for the whole object) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// `spec.execs[0].local`.
    pub field: String,
    /// Why, on one line.
    pub reason: String,
}

impl From<kwok_kubelet::debugging::LoadError> for Refused {
    fn from(e: kwok_kubelet::debugging::LoadError) -> Self {
        Self {
            field: e.field,
            reason: e.reason,
        }
    }
}

impl From<kwok_kubelet::metrics::LoadError> for Refused {
    fn from(e: kwok_kubelet::metrics::LoadError) -> Self {
        let kwok_kubelet::metrics::LoadError::Field(e) = e;
        Self {
            field: e.field,
            reason: e.reason,
        }
    }
}

/// An object's namespace (empty for the Cluster kinds) and name.
type Key = (String, String);

impl Publisher {
    /// Starts from `rules` (those of `--config`).
    pub fn new(rules: KubeletRules) -> (Self, LiveRules) {
        let (debugging, debugging_rx) = watch::channel(Arc::new(rules.debugging.clone()));
        let (metrics, metrics_rx) = watch::channel(Arc::new(rules.metrics.clone()));
        let (usages, usages_rx) = watch::channel(Arc::new(rules.usages.clone()));
        let live = LiveRules {
            debugging: debugging_rx,
            metrics: metrics_rx,
            usages: usages_rx,
        };
        let publisher = Self {
            rules,
            debugging,
            metrics,
            usages,
        };
        (publisher, live)
    }

    /// Adds or replaces the object `obj` of `kind`; when it is refused, its previous
    /// version is removed.
    fn apply(&mut self, kind: &RuleKind, key: &Key, obj: &Value) -> Result<(), Refused> {
        let source = Source {
            file: format!("{} object", kind.kind),
            line: 0,
        };
        let added = match kind.set {
            RuleSet::Debugging => self.rules.debugging.add(obj, &source).map_err(Refused::from),
            RuleSet::Metrics => self.rules.metrics.add(obj, &source).map_err(Refused::from),
            RuleSet::Usages => self.rules.usages.add(obj, &source).map_err(Refused::from),
        };
        if added.is_err() {
            self.remove(kind, key);
        }
        added
    }

    /// Removes the object `key` of `kind`; whether it was there.
    fn remove(&mut self, kind: &RuleKind, (namespace, name): &Key) -> bool {
        match kind.set {
            RuleSet::Debugging => self.rules.debugging.remove(kind.kind, namespace, name),
            RuleSet::Metrics => self.rules.metrics.remove(name),
            RuleSet::Usages => self
                .rules
                .usages
                .remove(kind.namespaced.then_some(namespace.as_str()), name),
        }
    }

    /// Publishes the current `set` for the requests to come.
    fn publish(&self, set: RuleSet) {
        match set {
            RuleSet::Debugging => {
                self.debugging
                    .send_replace(Arc::new(self.rules.debugging.clone()));
            }
            RuleSet::Metrics => {
                self.metrics.send_replace(Arc::new(self.rules.metrics.clone()));
            }
            RuleSet::Usages => {
                self.usages.send_replace(Arc::new(self.rules.usages.clone()));
            }
        }
    }
}

/// Watches the objects of `kinds` and keeps `publisher`'s sets current. Runs for the
/// life of the process (watch errors are retried with backoff).
pub async fn run(client: Client, kinds: Vec<&'static RuleKind>, mut publisher: Publisher) {
    let streams = kinds.iter().map(|&kind| {
        let api: Api<JsonObject> = Api::all_with(client.clone(), &kind.resource());
        watcher(api, watcher::Config::default())
            .default_backoff()
            .map(move |event| (kind, event))
            .boxed()
    });
    let mut events = futures::stream::select_all(streams);
    let mut objects = Objects::default();
    while let Some((kind, event)) = events.next().await {
        match event {
            Ok(event) => {
                if objects.step(kind, event, &mut publisher) {
                    publisher.publish(kind.set);
                }
            }
            Err(e) => warn!(kind = kind.kind, error = %e, "rule watch failed; retrying"),
        }
    }
}

/// Which objects of each kind are in the sets, and a re-list in progress.
#[derive(Debug, Default)]
struct Objects {
    /// By kind: the objects in force (refused ones are not).
    present: HashMap<&'static str, BTreeSet<Key>>,
    /// By kind: the objects of a list not done yet, by key (so applied in name order).
    listing: HashMap<&'static str, BTreeMap<Key, Value>>,
}

impl Objects {
    /// Takes one watch event of `kind`; whether the sets changed.
    fn step(
        &mut self,
        kind: &'static RuleKind,
        event: watcher::Event<JsonObject>,
        publisher: &mut Publisher,
    ) -> bool {
        match event {
            watcher::Event::Init => {
                self.listing.insert(kind.kind, BTreeMap::new());
                false
            }
            watcher::Event::InitApply(obj) => {
                let (key, value) = entry(kind, &obj);
                self.listing.entry(kind.kind).or_default().insert(key, value);
                false
            }
            watcher::Event::InitDone => {
                let listed = self.listing.remove(kind.kind).unwrap_or_default();
                let present = self.present.entry(kind.kind).or_default();
                for gone in present.iter().filter(|k| !listed.contains_key(*k)) {
                    publisher.remove(kind, gone);
                }
                present.retain(|k| listed.contains_key(k));
                for (key, value) in listed {
                    self.apply(kind, key, &value, publisher);
                }
                info!(
                    kind = kind.kind,
                    objects = self.present[kind.kind].len(),
                    "rules loaded from the cluster"
                );
                true
            }
            watcher::Event::Apply(obj) => {
                let (key, value) = entry(kind, &obj);
                self.apply(kind, key, &value, publisher);
                true
            }
            watcher::Event::Delete(obj) => {
                let (key, _) = entry(kind, &obj);
                self.present.entry(kind.kind).or_default().remove(&key);
                let removed = publisher.remove(kind, &key);
                info!(kind = kind.kind, object = %object_name(&key), "rule removed");
                removed
            }
        }
    }

    fn apply(&mut self, kind: &'static RuleKind, key: Key, value: &Value, publisher: &mut Publisher) {
        let present = self.present.entry(kind.kind).or_default();
        match publisher.apply(kind, &key, value) {
            Ok(()) => {
                info!(kind = kind.kind, object = %object_name(&key), "rule loaded");
                present.insert(key);
            }
            Err(refused) => {
                error!(
                    kind = kind.kind,
                    object = %object_name(&key),
                    field = %refused.field,
                    reason = %refused.reason,
                    "rule object left out"
                );
                present.remove(&key);
            }
        }
    }
}

/// The object's key, and its JSON with the kind and apiVersion a list may leave out.
fn entry(kind: &RuleKind, obj: &JsonObject) -> (Key, Value) {
    let namespace = obj.metadata.namespace.clone().unwrap_or_default();
    let key = (namespace, obj.metadata.name.clone().unwrap_or_default());
    let mut value = obj.to_value();
    if let Some(map) = value.as_object_mut() {
        map.insert("kind".into(), kind.kind.into());
        map.insert("apiVersion".into(), format!("{GROUP}/{VERSION}").into());
    }
    (key, value)
}

/// `namespace/name`, or `name` for the Cluster kinds.
fn object_name((namespace, name): &Key) -> String {
    if namespace.is_empty() {
        name.clone()
    } else {
        format!("{namespace}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn exec(name: &str, work_dir: Value) -> JsonObject {
        JsonObject::new(&json!({
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterExec",
            "metadata": {"name": name, "resourceVersion": "1"},
            "spec": {"execs": [{"local": {"workDir": work_dir}}]},
        }))
    }

    fn usage(namespace: &str, name: &str, cpu: &str) -> JsonObject {
        JsonObject::new(&json!({
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"usages": [{"usage": {"cpu": {"value": cpu}}}]},
        }))
    }

    fn work_dir(live: &LiveRules, pod: &str) -> Option<String> {
        let rules = live.debugging();
        let target = rules.execs.find("ns", pod, "c", "c").ok()?;
        Some(target.local.as_ref()?.work_dir.clone())
    }

    fn kind(name: &str) -> &'static RuleKind {
        RuleKind::named(name).unwrap()
    }

    /// Feeds `events` of `kind` and publishes as `run` does.
    fn feed(
        objects: &mut Objects,
        publisher: &mut Publisher,
        kind: &'static RuleKind,
        events: Vec<watcher::Event<JsonObject>>,
    ) {
        for event in events {
            if objects.step(kind, event, publisher) {
                publisher.publish(kind.set);
            }
        }
    }

    #[test]
    fn the_first_list_should_load_in_name_order_and_changes_should_follow() {
        let (mut publisher, live) = Publisher::new(KubeletRules::default());
        let mut objects = Objects::default();
        let cluster_exec = kind("ClusterExec");
        let snapshot = live.debugging();
        use watcher::Event::*;
        feed(
            &mut objects,
            &mut publisher,
            cluster_exec,
            vec![
                Init,
                InitApply(exec("b", "/b".into())),
                InitApply(exec("a", "/a".into())),
            ],
        );
        assert_eq!(work_dir(&live, "p"), None, "nothing before the list is done");
        feed(&mut objects, &mut publisher, cluster_exec, vec![InitDone]);
        assert_eq!(work_dir(&live, "p").as_deref(), Some("/a"));
        assert_eq!(
            live.debugging().execs.cluster_names().collect::<Vec<_>>(),
            ["a", "b"]
        );
        // A request's snapshot is its own: later changes do not reach it.
        assert!(snapshot.is_empty());

        // A bad version is left out, with its previous version: "b" answers.
        feed(
            &mut objects,
            &mut publisher,
            cluster_exec,
            vec![Apply(exec("a", json!(["not", "a", "string"])))],
        );
        assert_eq!(work_dir(&live, "p").as_deref(), Some("/b"));
        // Fixed again, it comes back after "b" (arrival order).
        feed(
            &mut objects,
            &mut publisher,
            cluster_exec,
            vec![Apply(exec("a", "/a2".into()))],
        );
        assert_eq!(work_dir(&live, "p").as_deref(), Some("/b"));
        feed(
            &mut objects,
            &mut publisher,
            cluster_exec,
            vec![Delete(exec("b", "/b".into()))],
        );
        assert_eq!(work_dir(&live, "p").as_deref(), Some("/a2"));

        // A re-list without "a" removes it.
        feed(&mut objects, &mut publisher, cluster_exec, vec![Init, InitDone]);
        assert_eq!(work_dir(&live, "p"), None);
        assert!(live.debugging().is_empty());
    }

    #[test]
    fn namespaced_usages_should_be_keyed_by_namespace_and_name() {
        let (mut publisher, live) = Publisher::new(KubeletRules::default());
        let mut objects = Objects::default();
        let resource_usage = kind("ResourceUsage");
        use watcher::Event::*;
        feed(
            &mut objects,
            &mut publisher,
            resource_usage,
            vec![
                Init,
                InitApply(usage("a", "p", "1")),
                InitApply(usage("b", "p", "2")),
                InitDone,
            ],
        );
        assert!(!live.usages().is_empty());
        feed(
            &mut objects,
            &mut publisher,
            resource_usage,
            vec![Delete(usage("a", "p", "1"))],
        );
        assert_eq!(objects.present["ResourceUsage"].len(), 1);
        assert!(!live.usages().is_empty());
        feed(
            &mut objects,
            &mut publisher,
            resource_usage,
            vec![Delete(usage("b", "p", "2"))],
        );
        assert!(live.usages().is_empty());
        // A bad CEL expression is refused with its field.
        let bad = JsonObject::new(&json!({
            "metadata": {"name": "p", "namespace": "a"},
            "spec": {"usages": [{"usage": {"cpu": {"expression": "1 +"}}}]},
        }));
        let (key, value) = entry(resource_usage, &bad);
        let refused = publisher.apply(resource_usage, &key, &value).unwrap_err();
        assert!(refused.field.starts_with("spec.usages[0]"), "{refused:?}");
    }

    #[test]
    fn fixed_rules_should_read_as_given() {
        let mut rules = KubeletRules::default();
        let source = Source {
            file: "f".into(),
            line: 1,
        };
        rules
            .debugging
            .add(&exec("x", "/x".into()).to_value(), &source)
            .unwrap();
        let live = LiveRules::fixed(rules);
        assert_eq!(work_dir(&live, "p").as_deref(), Some("/x"));
    }
}
