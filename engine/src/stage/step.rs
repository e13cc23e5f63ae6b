//! Compiled steps. The legacy `next` form converts to steps in the order
//! event → finalizers → status template and patches, or event → finalizers → delete
//! (a delete wins over the status template and patches, as in KWOK).

use serde_json::{Map, Value};

use super::spec;
use crate::{
    effect::Effect,
    error::FieldError,
    host::Host,
    patch::{self, PatchType},
    template::Template,
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
    /// The rendered body is put under this top-level field.
    pub root: Option<String>,
    /// Patch type.
    pub ty: PatchType,
    /// The body's template.
    pub template: Template,
    /// User to impersonate.
    pub impersonate: Option<String>,
}

/// A compiled apply.
#[derive(Debug, Clone)]
pub struct ApplyStep {
    /// Subresource, or `None` for the object.
    pub subresource: Option<String>,
    /// The object's template.
    pub template: Template,
    /// User to impersonate.
    pub impersonate: Option<String>,
}

/// Compiles `spec.next` or `spec.steps` (errors relative to `spec`).
pub(super) fn compile(spec: &spec::StageSpec) -> Result<Vec<Step>, FieldError> {
    let default_ty = default_patch_type(&spec.resource_ref);
    match (&spec.next, &spec.steps) {
        (Some(_), Some(_)) => Err(FieldError::new("steps", "set either next or steps, not both")),
        (Some(next), None) => from_next(next, default_ty).map_err(|e| e.under("next")),
        (None, Some(steps)) => steps
            .iter()
            .enumerate()
            .map(|(i, s)| from_step(s, default_ty).map_err(|e| e.under(&format!("steps[{i}]"))))
            .collect(),
        (None, None) => Ok(Vec::new()),
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

fn from_next(next: &spec::StageNext, default_ty: PatchType) -> Result<Vec<Step>, FieldError> {
    let mut steps = Vec::new();
    if let Some(event) = &next.event {
        steps.push(Step::Event(event.clone()));
    }
    if let Some(finalizers) = &next.finalizers {
        steps.push(Step::Finalizers(finalizers.clone()));
    }
    // KWOK: "`delete: true` has higher priority than a non-empty `statusTemplate`".
    if next.delete {
        steps.push(Step::Delete);
        return Ok(steps);
    }
    if let Some(text) = &next.status_template {
        steps.push(Step::Patch(PatchStep {
            subresource: Some(next.status_subresource.clone().unwrap_or_else(|| "status".into())),
            root: Some("status".into()),
            ty: default_ty,
            template: template(text, "statusTemplate")?,
            impersonate: next.status_patch_as.as_ref().map(|i| i.username.clone()),
        }));
    }
    for (i, p) in next.patches.iter().flatten().enumerate() {
        steps.push(Step::Patch(
            patch_step(p, default_ty).map_err(|e| e.under(&format!("patches[{i}]")))?,
        ));
    }
    Ok(steps)
}

fn from_step(step: &spec::Step, default_ty: PatchType) -> Result<Step, FieldError> {
    let set = [
        step.patch.is_some(),
        step.event.is_some(),
        step.finalizers.is_some(),
    ]
    .into_iter()
    .chain([step.delete.is_some(), step.apply.is_some()])
    .filter(|s| *s)
    .count();
    if set != 1 {
        return Err(FieldError::new(
            "",
            "exactly one of patch, event, finalizers, delete, apply must be set",
        ));
    }
    Ok(match step {
        spec::Step { patch: Some(p), .. } => {
            Step::Patch(patch_step(p, default_ty).map_err(|e| e.under("patch"))?)
        }
        spec::Step { event: Some(e), .. } => Step::Event(e.clone()),
        spec::Step {
            finalizers: Some(f), ..
        } => Step::Finalizers(f.clone()),
        spec::Step { apply: Some(a), .. } => Step::Apply(ApplyStep {
            subresource: a.subresource.clone(),
            template: template(&a.template, "apply.template")?,
            impersonate: a.impersonation.as_ref().map(|i| i.username.clone()),
        }),
        _ => Step::Delete,
    })
}

fn patch_step(p: &spec::Patch, default_ty: PatchType) -> Result<PatchStep, FieldError> {
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
    if ty == PatchType::Json && p.root.is_some() {
        return Err(FieldError::new("root", "a json patch cannot have a root"));
    }
    Ok(PatchStep {
        subresource: p.subresource.clone().filter(|s| !s.is_empty()),
        root: p.root.clone().filter(|s| !s.is_empty()),
        ty,
        template: template(&p.template, "template")?,
        impersonate: p.impersonation.as_ref().map(|i| i.username.clone()),
    })
}

fn template(text: &str, field: &str) -> Result<Template, FieldError> {
    Template::parse(text).map_err(|e| FieldError::new(field, e))
}

impl Step {
    /// Renders the step for `obj` of `kind`: `Ok(None)` when it has nothing to do.
    pub fn render(&self, obj: &Value, kind: &str, host: &dyn Host) -> Result<Option<Effect>, String> {
        match self {
            Step::Event(e) => Ok(Some(Effect::Event {
                type_: e.type_.clone(),
                reason: e.reason.clone(),
                message: e.message.clone(),
            })),
            Step::Finalizers(f) => Ok(finalizers(f, obj)),
            Step::Patch(p) => p.render(obj, kind, host),
            Step::Apply(a) => {
                let body = a
                    .template
                    .render_value(obj, host)
                    .map_err(|e| format!("apply: {e}"))?;
                Ok((!body.is_null()).then(|| Effect::Apply {
                    subresource: a.subresource.clone(),
                    body,
                    impersonate: a.impersonate.clone(),
                }))
            }
            Step::Delete => Ok(Some(Effect::Delete)),
        }
    }
}

impl PatchStep {
    fn render(&self, obj: &Value, kind: &str, host: &dyn Host) -> Result<Option<Effect>, String> {
        let rendered = self
            .template
            .render_value(obj, host)
            .map_err(|e| format!("template: {e}"))?;
        if rendered.is_null() {
            return Ok(None);
        }
        let body = match &self.root {
            Some(root) => Value::Object(Map::from_iter([(root.clone(), rendered)])),
            None => rendered,
        };
        if !patch::would_change(obj, kind, &body, self.ty).map_err(|e| format!("patch: {e}"))? {
            return Ok(None);
        }
        Ok(Some(Effect::Patch {
            subresource: self.subresource.clone(),
            ty: self.ty,
            body,
            impersonate: self.impersonate.clone(),
        }))
    }
}

/// Reduces a finalizer step to what would change on `obj`.
fn finalizers(f: &spec::Finalizers, obj: &Value) -> Option<Effect> {
    let current: Vec<&str> = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
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

    fn items(values: &[&str]) -> Vec<spec::FinalizerItem> {
        values
            .iter()
            .map(|v| spec::FinalizerItem { value: (*v).into() })
            .collect()
    }

    #[test]
    fn finalizers_should_reduce_to_what_changes() {
        let obj = json!({"metadata": {"finalizers": ["a", "b"]}});
        let f = spec::Finalizers {
            add: items(&["a", "c"]),
            remove: items(&["b", "z"]),
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
            add: items(&["a"]),
            remove: items(&["z"]),
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
        let err = patch_step(&p, PatchType::Merge).unwrap_err();
        assert_eq!(
            err.to_string(),
            "type: unknown patch type \"xml\" (json, merge or strategic)"
        );
    }

    #[test]
    fn a_step_must_set_exactly_one_action() {
        let err = from_step(&spec::Step::default(), PatchType::Merge).unwrap_err();
        assert!(err.reason.contains("exactly one of"), "{err}");
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
