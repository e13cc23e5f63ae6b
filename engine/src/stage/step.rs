//! Compiled steps. The legacy `next` form converts to steps in the order
//! event → finalizers → status template and patches, or event → finalizers → delete
//! (a delete wins over the status template and patches, as in KWOK).

use std::borrow::Cow;

use serde_json::Value;

use super::spec;
use crate::{
    effect::{ApplyType, Body, Effect, JsonText},
    error::{FieldError, RenderCause},
    host::Host,
    patch::{self, PatchType},
    template::{Node, Template},
};

/// One compiled step.
#[derive(Debug, Clone)]
pub enum Step {
    /// Emit an event.
    Event(spec::Event),
    /// Change finalizers.
    Finalizers(spec::Finalizers),
    /// Render and send a patch.
    Patch(PatchStep),
    /// Render and server-side apply an object.
    Apply(ApplyStep),
    /// Delete the object.
    Delete,
}

/// A compiled patch.
#[derive(Debug, Clone)]
pub struct PatchStep {
    /// Subresource, or `None` for the object.
    pub subresource: Option<String>,
    /// The rendered body is put under this top-level field (a JSON patch's paths are
    /// prefixed with it).
    pub root: Option<String>,
    /// Patch type.
    pub ty: PatchType,
    /// Whether `ty` is the kind's default, the Stage giving none.
    pub defaulted: bool,
    /// The body's template.
    pub template: Template,
    /// Where the template is in the Stage (`spec.next.statusTemplate`), for errors.
    pub field: String,
    /// User to impersonate.
    pub impersonate: Option<String>,
}

/// A compiled apply.
#[derive(Debug, Clone)]
pub struct ApplyStep {
    /// Subresource, or `None` for the object.
    pub subresource: Option<String>,
    /// How an existing object is patched.
    pub ty: ApplyType,
    /// The object's template.
    pub template: Template,
    /// Where the template is in the Stage (`spec.steps[0].apply.template`), for errors.
    pub field: String,
    /// User to impersonate.
    pub impersonate: Option<String>,
}

/// Compiles `spec.steps`, or `spec.next` when there are none (upstream ignores `next`
/// beside steps). Errors are relative to `spec`.
pub(super) fn compile(spec: &spec::StageSpec) -> Result<Vec<Step>, FieldError> {
    let default_ty = default_patch_type(&spec.resource_ref);
    match (&spec.steps, &spec.next) {
        (Some(steps), _) if !steps.is_empty() => {
            let mut out = Vec::new();
            for (i, s) in steps.iter().enumerate() {
                let at = format!("spec.steps[{i}]");
                out.extend(from_step(s, default_ty, &at).map_err(|e| e.under(&format!("steps[{i}]")))?);
            }
            Ok(out)
        }
        (_, Some(next)) => from_next(next, default_ty, "spec.next").map_err(|e| e.under("next")),
        _ => Ok(Vec::new()),
    }
}

/// Strategic merge is what the apiserver offers for built-in kinds; custom resources
/// only take merge patches.
fn default_patch_type(resource: &spec::ResourceRef) -> PatchType {
    let core = resource.api_group == "v1" || resource.api_group.is_empty();
    if core && matches!(resource.kind.as_str(), "Node" | "Pod") {
        PatchType::Strategic
    } else {
        PatchType::Merge
    }
}

/// Upstream's conversion of `next` into steps: event, finalizers, the patches (or,
/// without patches, the status template), then delete. `at` is where `next` is.
fn from_next(next: &spec::StageNext, default_ty: PatchType, at: &str) -> Result<Vec<Step>, FieldError> {
    let mut steps = Vec::new();
    if let Some(event) = &next.event {
        steps.push(Step::Event(event.clone()));
    }
    if let Some(finalizers) = &next.finalizers {
        steps.push(Step::Finalizers(finalizers.clone()));
    }
    match (&next.patches, &next.status_template) {
        (Some(patches), _) if !patches.is_empty() => {
            for (i, p) in patches.iter().enumerate() {
                let at = format!("{at}.patches[{i}]");
                steps.push(Step::Patch(
                    patch_step(p, default_ty, &at).map_err(|e| e.under(&format!("patches[{i}]")))?,
                ));
            }
        }
        (_, Some(text)) if !text.is_empty() => steps.push(Step::Patch(PatchStep {
            subresource: Some(next.status_subresource.clone().unwrap_or_else(|| "status".into())),
            root: Some("status".into()),
            ty: default_ty,
            defaulted: true,
            template: template(text, "statusTemplate")?,
            field: format!("{at}.statusTemplate"),
            impersonate: next.status_patch_as.as_ref().map(|i| i.username.clone()),
        })),
        _ => {}
    }
    if next.delete {
        steps.push(Step::Delete);
    }
    Ok(steps)
}

/// One entry of `steps`, at `at`: every field set, in upstream's order (event,
/// finalizers, delete, patch, apply).
fn from_step(step: &spec::Step, default_ty: PatchType, at: &str) -> Result<Vec<Step>, FieldError> {
    let mut out = Vec::new();
    if let Some(e) = &step.event {
        out.push(Step::Event(e.clone()));
    }
    if let Some(f) = &step.finalizers {
        out.push(Step::Finalizers(f.clone()));
    }
    if step.delete.as_ref().is_some_and(spec::DeleteStep::deletes) {
        out.push(Step::Delete);
    }
    if let Some(p) = &step.patch {
        out.push(Step::Patch(
            patch_step(p, default_ty, &format!("{at}.patch")).map_err(|e| e.under("patch"))?,
        ));
    }
    if let Some(a) = &step.apply {
        let ty = match a.type_.as_deref() {
            None | Some("apply") => ApplyType::Apply,
            Some("merge") => ApplyType::Merge,
            Some("strategic") => ApplyType::Strategic,
            Some(other) => {
                return Err(FieldError::new(
                    "apply.type",
                    format!("unknown apply type {other:?} (apply, merge or strategic)"),
                ));
            }
        };
        out.push(Step::Apply(ApplyStep {
            subresource: a.subresource.clone().filter(|s| !s.is_empty()),
            ty,
            template: template(&a.template, "apply.template")?,
            field: format!("{at}.apply.template"),
            impersonate: a.impersonation.as_ref().map(|i| i.username.clone()),
        }));
    }
    if out.is_empty() && step.delete.is_none() {
        return Err(FieldError::new(
            "",
            "a step sets none of patch, event, finalizers, delete, apply",
        ));
    }
    Ok(out)
}

/// A patch at `at` in the Stage.
fn patch_step(p: &spec::Patch, default_ty: PatchType, at: &str) -> Result<PatchStep, FieldError> {
    let ty = match p.type_.as_deref() {
        None => default_ty,
        Some("json") => PatchType::Json,
        Some("merge") => PatchType::Merge,
        Some("strategic") => PatchType::Strategic,
        Some(other) => {
            return Err(FieldError::new(
                "type",
                format!("unknown patch type {other:?} (json, merge or strategic)"),
            ));
        }
    };
    Ok(PatchStep {
        subresource: p.subresource.clone().filter(|s| !s.is_empty()),
        root: p.root.clone().filter(|s| !s.is_empty()),
        ty,
        defaulted: p.type_.is_none(),
        template: template(&p.template, "template")?,
        field: format!("{at}.template"),
        impersonate: p.impersonation.as_ref().map(|i| i.username.clone()),
    })
}

fn template(text: &str, field: &str) -> Result<Template, FieldError> {
    Template::parse(text).map_err(|e| FieldError::new(field, e))
}

impl Step {
    /// Where the step's template is in the Stage, for errors (empty for steps without
    /// one, which cannot fail).
    pub fn field(&self) -> &str {
        match self {
            Step::Patch(p) => &p.field,
            Step::Apply(a) => &a.field,
            Step::Event(_) | Step::Finalizers(_) | Step::Delete => "",
        }
    }

    /// Renders the step for `obj` of `kind`: `Ok(None)` when it has nothing to do.
    pub fn render(
        &self,
        obj: &Value,
        kind: &str,
        host: &mut dyn Host,
    ) -> Result<Option<Effect>, RenderCause> {
        match self {
            Step::Event(e) => Ok(Some(Effect::Event {
                type_: e.type_.clone(),
                reason: e.reason.clone(),
                message: e.message.clone(),
            })),
            Step::Finalizers(f) => Ok(finalizers(f, obj)),
            Step::Patch(p) => p.render(obj, kind, host),
            Step::Apply(a) => {
                let body = a.body(obj, host)?;
                Ok((!body.is_null()).then(|| Effect::Apply {
                    subresource: a.subresource.clone(),
                    ty: a.ty,
                    body,
                    impersonate: a.impersonate.clone(),
                }))
            }
            Step::Delete => Ok(Some(Effect::Delete)),
        }
    }
}

impl ApplyStep {
    /// The object the template renders for `obj` (`null` for empty output).
    pub fn body(&self, obj: &Value, host: &mut dyn Host) -> Result<Value, RenderCause> {
        Ok(self.template.render_value(obj, host)?)
    }
}

impl PatchStep {
    /// The patch body for `obj` as upstream sends it: the rendered template, under
    /// `root` (a JSON patch's paths prefixed with `/root`); `None` for empty output.
    pub fn body(&self, obj: &Value, host: &mut dyn Host) -> Result<Option<Value>, RenderCause> {
        let rooted = self.template.render_node(obj, host, |rendered| {
            self.rooted(rendered).map(|body| body.map(Rooted::into_value))
        })?;
        Ok(rooted?)
    }

    /// `rendered` under `root`, `None` when it is empty: a JSON patch with its paths
    /// prefixed, any other wrapped in a mapping of `root`.
    fn rooted<'a>(&'a self, rendered: Node<'a>) -> Result<Option<Rooted<'a>>, patch::Error> {
        if rendered.is_null() {
            return Ok(None);
        }
        Ok(Some(match (&self.root, self.ty) {
            (None, PatchType::Json) => Rooted::Json(rendered.into_value()),
            (Some(root), PatchType::Json) => Rooted::Json(prefix_paths(rendered.into_value(), root)?),
            (None, _) => Rooted::Overlay(rendered),
            (Some(root), _) => Rooted::Overlay(Node::Map(vec![(Cow::Borrowed(root.as_str()), rendered)])),
        }))
    }

    fn render(&self, obj: &Value, kind: &str, host: &mut dyn Host) -> Result<Option<Effect>, RenderCause> {
        let body = self
            .template
            .render_node(obj, host, |rendered| self.checked_body(rendered, obj, kind))??;
        Ok(body.map(|body| Effect::Patch {
            subresource: self.subresource.clone(),
            ty: self.ty,
            body,
            impersonate: self.impersonate.clone(),
        }))
    }

    /// The body to send for `rendered` (under `root`), `None` when it is empty or would
    /// change nothing on `obj`. A merge or strategic patch that surely changes `obj` is
    /// written as JSON text straight from the rendering; the rest are checked whole as a
    /// `Value` (a patch that changes nothing is not sent).
    fn checked_body(&self, rendered: Node<'_>, obj: &Value, kind: &str) -> Result<Option<Body>, RenderCause> {
        let body = match self.rooted(rendered)? {
            None => return Ok(None),
            Some(Rooted::Json(ops)) => ops,
            Some(Rooted::Overlay(mut node)) => {
                if patch::prepare(&mut node, kind, self.ty) && patch::surely_changes(obj, &node) {
                    // A status patch of the default stages is 0.5–1.5 KiB.
                    let mut text = String::with_capacity(1536);
                    node.write_json(&mut text);
                    let has_metadata = node.get("metadata").is_some();
                    return Ok(Some(Body::Json(JsonText::new(text, has_metadata))));
                }
                node.into_value()
            }
        };
        Ok(patch::would_change(obj, kind, &body, self.ty)?.then_some(Body::Value(body)))
    }
}

/// A rendered patch under its step's `root`, as upstream sends it.
enum Rooted<'a> {
    /// A JSON patch: its operations, paths prefixed.
    Json(Value),
    /// A merge or strategic patch, as the rendering's node.
    Overlay(Node<'a>),
}

impl Rooted<'_> {
    fn into_value(self) -> Value {
        match self {
            Rooted::Json(ops) => ops,
            Rooted::Overlay(node) => node.into_value(),
        }
    }
}

/// A JSON patch under `root`: `/root` before every op's `path` (and `from`'s, which
/// upstream leaves alone, so a `move` under a root reads from the top; followed).
fn prefix_paths(mut ops: Value, root: &str) -> Result<Value, patch::Error> {
    let invalid = |reason: &str| patch::Error::InvalidJsonPatch(reason.into());
    let Some(list) = ops.as_array_mut() else {
        return Err(invalid("expected a list of operations"));
    };
    for op in list {
        let Some(path) = op.get_mut("path") else {
            return Err(invalid("an operation has no path"));
        };
        let joined = format!("/{root}{}", path.as_str().unwrap_or_default());
        *path = Value::String(joined);
    }
    Ok(ops)
}

/// Reduces a finalizer step to what would change on `obj`.
fn finalizers(f: &spec::Finalizers, obj: &Value) -> Option<Effect> {
    let current = crate::effect::finalizers_of(obj);
    let remove: Vec<String> = current
        .iter()
        .filter(|c| f.empty || f.remove.iter().any(|r| r.value == **c))
        .map(|c| (*c).to_owned())
        .collect();
    let add: Vec<String> = f
        .add
        .iter()
        .filter(|a| !current.contains(&a.value.as_str()) || remove.contains(&a.value))
        .map(|a| a.value.clone())
        .collect();
    (!add.is_empty() || !remove.is_empty()).then_some(Effect::Finalizers { add, remove })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finalizers_should_reduce_to_what_changes() {
        let obj = json!({"metadata": {"finalizers": ["a", "b"]}});
        let f = spec::Finalizers {
            add: spec::FinalizerItem::list(&["a", "c"]),
            remove: spec::FinalizerItem::list(&["b", "z"]),
            empty: false,
        };
        assert_eq!(
            finalizers(&f, &obj),
            Some(Effect::Finalizers {
                add: vec!["c".into()],
                remove: vec!["b".into()]
            })
        );
        let noop = spec::Finalizers {
            add: spec::FinalizerItem::list(&["a"]),
            remove: spec::FinalizerItem::list(&["z"]),
            empty: false,
        };
        assert_eq!(finalizers(&noop, &obj), None);
        let empty = spec::Finalizers {
            empty: true,
            ..Default::default()
        };
        assert_eq!(
            finalizers(&empty, &obj),
            Some(Effect::Finalizers {
                add: vec![],
                remove: vec!["a".into(), "b".into()]
            })
        );
    }

    #[test]
    fn unknown_patch_type_should_name_the_field() {
        let p = spec::Patch {
            type_: Some("xml".into()),
            ..Default::default()
        };
        let err = patch_step(&p, PatchType::Merge, "spec.next.patches[0]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "type: unknown patch type \"xml\" (json, merge or strategic)"
        );
    }

    #[test]
    fn a_step_must_set_an_action() {
        let err = from_step(&spec::Step::default(), PatchType::Merge, "spec.steps[0]").unwrap_err();
        assert!(err.reason.contains("sets none of"), "{err}");
    }

    #[test]
    fn a_json_patch_under_a_root_should_have_its_paths_prefixed() {
        let ops = serde_json::json!([{"op": "add", "path": "/phase", "value": "x"}]);
        assert_eq!(
            prefix_paths(ops, "status").unwrap(),
            serde_json::json!([{"op": "add", "path": "/status/phase", "value": "x"}])
        );
    }

    #[test]
    fn default_patch_type_should_be_strategic_only_for_core_nodes_and_pods() {
        let r = |g: &str, k: &str| spec::ResourceRef {
            api_group: g.into(),
            kind: k.into(),
        };
        assert_eq!(default_patch_type(&r("v1", "Pod")), PatchType::Strategic);
        assert_eq!(default_patch_type(&r("v1", "Node")), PatchType::Strategic);
        assert_eq!(default_patch_type(&r("batch/v1", "Job")), PatchType::Merge);
    }
}
