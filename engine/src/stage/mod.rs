//! Stages: the YAML model ([`spec`]), loading ([`load`]) and the compiled form that
//! the engine evaluates ([`Stage`]).

pub mod load;
pub mod spec;
mod step;

use std::time::Duration;

use jiff::Timestamp;
use rand::Rng;
use serde_json::Value;

pub use step::Step;

use crate::{
    delay::Delay,
    effect::Effect,
    error::{FieldError, LoadError, RenderError},
    host::Host,
    selector::Selector,
    weight::Weight,
};

/// The API version of Stage documents.
pub const API_VERSION: &str = "kwok.x-k8s.io/v1alpha1";

/// A compiled Stage: selectors, queries and templates parsed once, shared by every
/// evaluation (`Send + Sync`).
#[derive(Debug, Clone)]
pub struct Stage {
    name: String,
    resource: spec::ResourceRef,
    /// `None`: the stage has no selector and never matches (KWOK's rule).
    selector: Option<Selector>,
    weight: Weight,
    delay: Delay,
    steps: Vec<Step>,
    immediate_next_stage: bool,
}

impl Stage {
    /// Compiles a Stage document read from `source`.
    pub fn compile(doc: &spec::Stage, source: &load::Source) -> Result<Self, LoadError> {
        Self::compile_spec(doc).map_err(|error| LoadError::Field {
            file: source.file.clone(),
            line: source.line,
            stage: doc.metadata.name.clone(),
            error,
        })
    }

    fn compile_spec(doc: &spec::Stage) -> Result<Self, FieldError> {
        if doc.api_version != API_VERSION {
            return Err(FieldError::new(
                "apiVersion",
                format!("must be {API_VERSION}, got {:?}", doc.api_version),
            ));
        }
        if doc.metadata.name.is_empty() {
            return Err(FieldError::new("metadata.name", "must not be empty"));
        }
        let spec = &doc.spec;
        if spec.resource_ref.kind.is_empty() {
            return Err(FieldError::new("spec.resourceRef.kind", "must not be empty"));
        }
        Ok(Self {
            name: doc.metadata.name.clone(),
            resource: spec.resource_ref.clone(),
            selector: spec
                .selector
                .as_ref()
                .map(Selector::compile)
                .transpose()
                .map_err(|e| e.under("spec.selector"))?,
            weight: Weight::compile(spec.weight, &spec.weight_from).map_err(|e| e.under("spec"))?,
            delay: spec
                .delay
                .as_ref()
                .map(Delay::compile)
                .transpose()
                .map_err(|e| e.under("spec.delay"))?
                .unwrap_or_default(),
            steps: step::compile(spec).map_err(|e| e.under("spec"))?,
            immediate_next_stage: spec.immediate_next_stage,
        })
    }

    /// The stage's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kind of object it applies to.
    pub fn resource(&self) -> &spec::ResourceRef {
        &self.resource
    }

    /// Whether `obj` is selected (a stage without a selector never matches).
    pub fn matches(&self, obj: &Value) -> bool {
        self.selector.as_ref().is_some_and(|s| s.matches(obj))
    }

    /// Failures of its selector's jq keys at run time since the last call, and the
    /// first failing key (see [`crate::selector::QueryFailures`]).
    pub fn take_query_failures(&self) -> crate::selector::Failed<'_> {
        self.selector
            .as_ref()
            .map(|s| s.failures().take())
            .unwrap_or_default()
    }

    /// The weight of this stage for `obj`; `None` when `weightFrom` reads an explicit
    /// non-value (see [`crate::weight`]).
    pub fn weight(&self, obj: &Value) -> Option<i64> {
        self.weight.for_object(obj)
    }

    /// The possible delays for `obj` at `now`; `None` when the stage has no delay.
    pub fn delay_range(&self, obj: &Value, now: Timestamp) -> Option<crate::delay::Range> {
        self.delay.range(obj, now)
    }

    /// How long after matching `obj` at `now` its effects are due.
    pub fn delay(&self, obj: &Value, now: Timestamp, rng: &mut impl Rng) -> Duration {
        self.delay.for_object(obj, now, rng)
    }

    /// Whether to match the object again right after the stage's patches succeed.
    pub fn immediate_next_stage(&self) -> bool {
        self.immediate_next_stage
    }

    /// The compiled steps, in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Whether rendering reads nothing of the object but its `metadata`: the stage only
    /// sends events, changes finalizers or deletes (as the delete stages do), so a
    /// caller may [`render`](Self::render) it against `{"metadata": …}` alone.
    pub fn reads_metadata_only(&self) -> bool {
        self.steps
            .iter()
            .all(|step| matches!(step, Step::Event(_) | Step::Finalizers(_) | Step::Delete))
    }

    /// The steps that are carried out, in order: after a delete only events are sent
    /// (upstream's rule).
    pub fn steps_sent(&self) -> impl Iterator<Item = &Step> {
        let mut deleted = false;
        self.steps.iter().filter(move |step| {
            let keep = !deleted || matches!(step, Step::Event(_));
            deleted |= matches!(step, Step::Delete);
            keep
        })
    }

    /// Renders the [sent steps](Self::steps_sent) against `obj` into effects. Patches
    /// that would not change the object are left out. A step that fails fails the
    /// whole stage (the partial-failure rule is on [`RenderError`]).
    pub fn render(&self, obj: &Value, host: &mut dyn Host) -> Result<Vec<Effect>, RenderError> {
        self.steps_sent()
            .filter_map(|step| {
                step.render(obj, &self.resource.kind, host)
                    .map_err(|cause| self.render_error(step, cause))
                    .transpose()
            })
            .collect()
    }

    /// `cause` with this stage's name and `step`'s field.
    pub fn render_error(&self, step: &Step, cause: crate::error::RenderCause) -> RenderError {
        RenderError {
            stage: self.name.clone(),
            field: step.field().to_owned(),
            cause,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{catalog, lifecycle::Lifecycles, stage::load::Documents};

    #[test]
    fn only_event_finalizer_and_delete_stages_should_read_metadata_only() {
        let mut docs = Documents::default();
        for set in ["pod-fast", "pod-general", "node-fast"] {
            docs.parse(set, catalog::set(set).unwrap()).unwrap();
        }
        let lifecycles = Lifecycles::compile(&docs).unwrap();
        let reads = |kind: &str, name: &str| {
            let lifecycle = lifecycles.for_kind(None, kind).unwrap();
            let stage = lifecycle.stages().iter().find(|s| s.name() == name);
            stage
                .unwrap_or_else(|| panic!("no stage {name}"))
                .reads_metadata_only()
        };
        assert!(reads("Pod", "pod-delete"));
        assert!(!reads("Pod", "pod-ready"), "renders a status template");
        assert!(!reads("Pod", "pod-create"));
        assert!(!reads("Node", "node-initialize"));
    }
}
