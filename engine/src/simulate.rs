//! A dry run: stages applied to one object, step after step, without a cluster.
//! The effects are applied locally with the same patch semantics the apiserver uses,
//! so people who write Stages see what their YAML does.

use std::time::Duration;

use jiff::Timestamp;
use rand::Rng;
use serde_json::Value;

use crate::{
    effect::{ApplyType, Effect},
    error::RenderError,
    host::{Host, PoolExhausted},
    lifecycle::Lifecycle,
    patch::{self, PatchType},
};

/// What happened in one step of a dry run.
#[derive(Debug, Clone)]
pub struct Step {
    /// The stage that matched.
    pub stage: String,
    /// The delay chosen.
    pub delay: Duration,
    /// When the effects were due.
    pub at: Timestamp,
    /// The effects rendered.
    pub effects: Vec<Effect>,
    /// The object afterwards; `None` once it is deleted.
    pub object: Option<Value>,
}

/// Why a dry run stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// No stage matched the object.
    NoMatch,
    /// The object was deleted.
    Deleted,
    /// The step limit was reached.
    Limit,
    /// The stage that matched failed to render (the error names it): none of its
    /// effects happen, as in the controller, which tries it again later.
    Failed(RenderError),
}

/// Runs up to `max_steps` stages on `obj` of `kind`, starting at `now`. The clock
/// advances by each delay, and `Now` reads it; `host` provides everything else.
pub fn run(
    lifecycle: &Lifecycle,
    kind: &str,
    mut obj: Value,
    mut now: Timestamp,
    max_steps: usize,
    host: &mut dyn Host,
    rng: &mut impl Rng,
) -> (Vec<Step>, End) {
    let mut steps = Vec::new();
    for _ in 0..max_steps {
        let Some(stage) = lifecycle.select(&obj, rng) else {
            return (steps, End::NoMatch);
        };
        let delay = stage.delay(&obj, now, rng);
        now += delay;
        let effects = match stage.render(
            &obj,
            &mut Clocked {
                inner: &mut *host,
                now,
            },
        ) {
            Ok(effects) => effects,
            Err(error) => return (steps, End::Failed(error)),
        };
        let deleted = apply_all(&mut obj, kind, &effects, now);
        let object = (!deleted).then(|| obj.clone());
        steps.push(Step {
            stage: stage.name().to_owned(),
            delay,
            at: now,
            effects,
            object,
        });
        if deleted {
            return (steps, End::Deleted);
        }
    }
    (steps, End::Limit)
}

/// `inner` with its clock at `now`.
struct Clocked<'h> {
    inner: &'h mut dyn Host,
    now: Timestamp,
}

impl Host for Clocked<'_> {
    fn now(&self) -> Timestamp {
        self.now
    }
    fn start_time(&self) -> Timestamp {
        self.inner.start_time()
    }
    fn version(&self) -> &str {
        self.inner.version()
    }
    fn node_name(&self) -> &str {
        self.inner.node_name()
    }
    fn node_ip(&self) -> &str {
        self.inner.node_ip()
    }
    fn node_port(&self) -> u16 {
        self.inner.node_port()
    }
    fn pod_ip(&mut self) -> Result<String, PoolExhausted> {
        self.inner.pod_ip()
    }
    fn node_ip_with(&self, node_name: &str) -> String {
        self.inner.node_ip_with(node_name)
    }
    fn node_ips_with(&self, node_name: &str) -> Vec<String> {
        self.inner.node_ips_with(node_name)
    }
    fn pod_ip_with(
        &mut self,
        node_name: &str,
        uid: &str,
        name: &str,
        namespace: &str,
    ) -> Result<String, PoolExhausted> {
        self.inner.pod_ip_with(node_name, uid, name, namespace)
    }
    fn pod_ips_with(
        &mut self,
        node_name: &str,
        uid: &str,
        name: &str,
        namespace: &str,
    ) -> Result<Vec<String>, PoolExhausted> {
        self.inner.pod_ips_with(node_name, uid, name, namespace)
    }
    fn placeholders(&self) -> bool {
        self.inner.placeholders()
    }
    fn random_u64(&mut self) -> u64 {
        self.inner.random_u64()
    }
}

/// Applies `effects` to `obj` as the apiserver would; returns whether it is gone.
pub fn apply_all(obj: &mut Value, kind: &str, effects: &[Effect], now: Timestamp) -> bool {
    let mut delete = false;
    for effect in effects {
        match effect {
            Effect::Patch {
                subresource,
                ty,
                body,
                ..
            } => {
                let _ = apply_patch(obj, kind, subresource.as_deref(), &body.to_value(), *ty);
            }
            // Another object (a claim's volume) is not simulated; only an apply that
            // names this object changes it.
            Effect::Apply {
                subresource,
                ty,
                body,
                ..
            } if names_same_object(obj, body) => {
                let ty = match ty {
                    ApplyType::Strategic => PatchType::Strategic,
                    ApplyType::Apply | ApplyType::Merge => PatchType::Merge,
                };
                let _ = apply_patch(obj, kind, subresource.as_deref(), body, ty);
            }
            Effect::Apply { .. } => {}
            Effect::Finalizers { .. } => {
                if let Some(ops) = effect.finalizers_json_patch(obj) {
                    let _ = patch::apply(obj, kind, &ops, PatchType::Json);
                }
                drop_empty_finalizers(obj);
            }
            Effect::Delete => delete = true,
            Effect::Event { .. } => {}
        }
    }
    delete && delete_object(obj, now)
}

/// Whether `body` (an apply step's object) is `obj`: same kind and name, and the same
/// namespace when it gives one.
fn names_same_object(obj: &Value, body: &Value) -> bool {
    let at = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_owned);
    at(obj, "/kind") == at(body, "/kind")
        && at(obj, "/metadata/name") == at(body, "/metadata/name")
        && at(body, "/metadata/namespace").is_none_or(|ns| at(obj, "/metadata/namespace") == Some(ns))
}

/// A patch to the `status` subresource changes only `status`, like the apiserver.
fn apply_patch(
    obj: &mut Value,
    kind: &str,
    sub: Option<&str>,
    body: &Value,
    ty: PatchType,
) -> Result<(), patch::Error> {
    if sub != Some("status") {
        return patch::apply(obj, kind, body, ty);
    }
    let mut patched = obj.clone();
    patch::apply(&mut patched, kind, body, ty)?;
    if let (Some(map), Some(status)) = (obj.as_object_mut(), patched.get_mut("status")) {
        map.insert("status".into(), status.take());
    }
    Ok(())
}

/// The apiserver never stores an empty `metadata.finalizers` (it is `omitempty`), so a
/// stage selecting on `.metadata.finalizers` `DoesNotExist` sees it absent.
fn drop_empty_finalizers(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
        && meta
            .get("finalizers")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
    {
        meta.remove("finalizers");
    }
}

/// An object with finalizers is only marked for deletion; without, it is gone.
fn delete_object(obj: &mut Value, now: Timestamp) -> bool {
    let has_finalizers = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    if !has_finalizers {
        return true;
    }
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.entry("deletionTimestamp")
            .or_insert_with(|| Value::String(now.to_string()));
    }
    false
}
