//! Every stage that can apply to one object, with its delay range, weight and the
//! requests its steps would send, in the format of upstream's golden stage tests
//! (`kustomize/stage/**/testdata/*.output.yaml`): `kwok stage run --all -o yaml`.
//!
//! Unlike the controller's [`Stage::render`](crate::stage::Stage::render), nothing is
//! left out because it would not change the object: the listing shows what upstream
//! would send, finalizer changes as upstream's JSON patch operations.

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::{
    delay::Range,
    error::RenderError,
    host::Host,
    lifecycle::Lifecycle,
    patch::PatchType,
    stage::{Stage, Step, spec},
};

/// Which patch type a patch step without `type` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defaults {
    /// The controller's: strategic merge for Nodes and Pods, merge otherwise.
    Controller,
    /// Merge for every kind. Upstream's golden files were made so: its test decodes the
    /// object untyped, and its patch code picks strategic merge only for typed Nodes
    /// and Pods. Its controller sends those strategic merge patches.
    UpstreamTests,
}

/// The listing of `obj` (of `lifecycle`'s kind) at `now`; `Err` names the stage and
/// field that failed to render.
pub fn list(
    lifecycle: &Lifecycle,
    obj: &Value,
    now: Timestamp,
    host: &mut dyn Host,
    defaults: Defaults,
) -> Result<Value, RenderError> {
    let text = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let mut out = Map::new();
    out.insert("apiGroup".into(), json!(text("/apiVersion")));
    out.insert("kind".into(), json!(text("/kind")));
    out.insert("name".into(), json!(text("/metadata/name")));
    if !text("/metadata/namespace").is_empty() {
        out.insert("namespace".into(), json!(text("/metadata/namespace")));
    }
    let stages = lifecycle
        .possible(obj)
        .into_iter()
        .map(|stage| one(stage, obj, now, host, defaults))
        .collect::<Result<Vec<_>, _>>()?;
    out.insert("stages".into(), Value::Array(stages));
    Ok(Value::Object(out))
}

fn one(
    stage: &Stage,
    obj: &Value,
    now: Timestamp,
    host: &mut dyn Host,
    defaults: Defaults,
) -> Result<Value, RenderError> {
    let mut out = Map::new();
    out.insert("stage".into(), json!(stage.name()));
    if let Some(range) = stage.delay_range(obj, now) {
        let nanos = |d: jiff::SignedDuration| json!(d.as_nanos() as i64);
        let delay = match range {
            Range::Exactly(d) => vec![nanos(d)],
            Range::Between(from, to) => vec![nanos(from), nanos(to)],
        };
        out.insert("delay".into(), Value::Array(delay));
    }
    if let Some(weight) = stage.weight(obj) {
        out.insert("weight".into(), json!(weight));
    }
    let mut next = Vec::new();
    for step in stage.steps_sent() {
        match step {
            Step::Event(e) => next.push(json!({
                "kind": "event", "type": e.type_, "reason": e.reason, "message": e.message,
            })),
            Step::Finalizers(f) => {
                let ops = finalizer_ops(f, obj);
                if !ops.is_empty() {
                    next.push(request(
                        "patch",
                        "application/json-patch+json",
                        None,
                        Value::Array(ops),
                        None,
                    ));
                }
            }
            Step::Delete => next.push(json!({"kind": "delete"})),
            Step::Patch(p) => {
                let data = p
                    .body(obj, host)
                    .map_err(|e| stage.render_error(step, e))?
                    .unwrap_or(Value::Null);
                let (sub, user) = (p.subresource.as_deref(), p.impersonate.as_deref());
                let ty = match defaults {
                    Defaults::UpstreamTests if p.defaulted => PatchType::Merge,
                    _ => p.ty,
                };
                next.push(request("patch", ty.content_type(), sub, data, user));
            }
            Step::Apply(a) => {
                let data = a.body(obj, host).map_err(|e| stage.render_error(step, e))?;
                let (sub, user) = (a.subresource.as_deref(), a.impersonate.as_deref());
                next.push(request("apply", a.ty.content_type(), sub, data, user));
            }
        }
    }
    if stage.immediate_next_stage() {
        next.push(json!({"kind": "immediate"}));
    }
    out.insert("next".into(), Value::Array(next));
    Ok(Value::Object(out))
}

fn request(kind: &str, ty: &str, sub: Option<&str>, data: Value, user: Option<&str>) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!(kind));
    out.insert("type".into(), json!(ty));
    if let Some(sub) = sub {
        out.insert("subresource".into(), json!(sub));
    }
    out.insert("data".into(), data);
    if let Some(user) = user {
        out.insert("impersonation".into(), json!(user));
    }
    Value::Object(out)
}

/// Upstream's JSON patch for a finalizer step: removals by index from the end (or one
/// removal of the whole list when every finalizer goes), then additions (`/-`, or the
/// whole list when there were none).
fn finalizer_ops(f: &spec::Finalizers, obj: &Value) -> Vec<Value> {
    let current = crate::effect::finalizers_of(obj);
    let adds: Vec<&str> = f.add.iter().map(|i| i.value.as_str()).collect();
    let add = |existing: &[&str]| -> Vec<Value> {
        if adds.is_empty() {
            return Vec::new();
        }
        if existing.is_empty() {
            return vec![json!({"op": "add", "path": "/metadata/finalizers", "value": adds})];
        }
        adds.iter()
            .filter(|a| !existing.contains(a))
            .map(|a| json!({"op": "add", "path": "/metadata/finalizers/-", "value": a}))
            .collect()
    };
    let removed: Vec<Value> = (0..current.len())
        .rev()
        .filter(|i| f.remove.iter().any(|r| r.value == current[*i]))
        .map(|i| json!({"op": "remove", "path": format!("/metadata/finalizers/{i}")}))
        .collect();
    let empty = f.empty || (!f.remove.is_empty() && removed.len() == current.len());
    if !empty {
        let mut ops = removed;
        ops.extend(add(&current));
        return ops;
    }
    let mut ops = Vec::new();
    if !current.is_empty() {
        ops.push(json!({"op": "remove", "path": "/metadata/finalizers"}));
    }
    ops.extend(add(&[]));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finalizer_ops_should_be_upstreams() {
        let obj = json!({"metadata": {"finalizers": ["a", "b"]}});
        let f = |add: &[&str], remove: &[&str], empty: bool| spec::Finalizers {
            add: spec::FinalizerItem::list(add),
            remove: spec::FinalizerItem::list(remove),
            empty,
        };
        assert_eq!(
            finalizer_ops(&f(&["a", "c"], &["b"], false), &obj),
            [
                json!({"op": "remove", "path": "/metadata/finalizers/1"}),
                json!({"op": "add", "path": "/metadata/finalizers/-", "value": "c"}),
            ]
        );
        assert_eq!(
            finalizer_ops(&f(&["c"], &["a", "b"], false), &obj),
            [
                json!({"op": "remove", "path": "/metadata/finalizers"}),
                json!({"op": "add", "path": "/metadata/finalizers", "value": ["c"]}),
            ]
        );
        assert_eq!(
            finalizer_ops(&f(&["x"], &[], false), &json!({})),
            [json!({"op": "add", "path": "/metadata/finalizers", "value": ["x"]})]
        );
        assert!(finalizer_ops(&f(&[], &[], true), &json!({})).is_empty());
    }
}
