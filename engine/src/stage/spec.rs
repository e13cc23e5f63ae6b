//! The Stage document as written in YAML (`kwok.x-k8s.io/v1alpha1`, kind `Stage`),
//! field for field. Unknown fields are rejected so a typo is an error, not a no-op.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A Stage document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stage {
    /// `kwok.x-k8s.io/v1alpha1`.
    pub api_version: String,
    /// `Stage`.
    pub kind: String,
    /// Name (and anything else users put in metadata).
    pub metadata: Metadata,
    /// What the stage does.
    pub spec: StageSpec,
    /// Ignored: present when a Stage is read back from a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// Object metadata; only the name matters to the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// Stage name.
    #[serde(default)]
    pub name: String,
    /// Everything else (labels, annotations, resourceVersion …), kept as is.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StageSpec {
    /// Which kind of object the stage applies to.
    pub resource_ref: ResourceRef,
    /// Which objects; absent means the stage never matches, `{}` matches every object.
    #[serde(default)]
    pub selector: Option<Selector>,
    /// Relative weight among matching stages (default 0; if all are 0 they are equal).
    #[serde(default)]
    pub weight: i64,
    /// Reads the weight from the object (wins over `weight` when it yields a number).
    #[serde(default)]
    pub weight_from: Option<ExpressionFrom>,
    /// When the stage's effects are due.
    #[serde(default)]
    pub delay: Option<Delay>,
    /// The legacy form of what happens.
    #[serde(default)]
    pub next: Option<StageNext>,
    /// The ordered form of what happens.
    #[serde(default)]
    pub steps: Option<Vec<Step>>,
    /// Match the object again right after this stage's patch succeeds.
    #[serde(default)]
    pub immediate_next_stage: bool,
}

/// `spec.resourceRef`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceRef {
    /// `v1` for core, else `group/version` or the group (`apps/v1`, `batch`).
    #[serde(default = "default_api_group")]
    pub api_group: String,
    /// `Node`, `Pod`, `Job`, …
    pub kind: String,
}

fn default_api_group() -> String {
    "v1".into()
}

/// `spec.selector`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selector {
    /// Labels that must be present with these values.
    #[serde(default)]
    pub match_labels: Option<BTreeMap<String, String>>,
    /// Annotations that must be present with these values.
    #[serde(default)]
    pub match_annotations: Option<BTreeMap<String, String>>,
    /// Expressions that must all hold.
    #[serde(default)]
    pub match_expressions: Option<Vec<SelectorExpression>>,
}

/// One entry of `matchExpressions`: the legacy form (`key`/`operator`/`values` at the
/// top), or `jq:` with the same three fields, or `cel:` with an `expression`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SelectorExpression {
    /// Legacy form: a jq expression on the object.
    #[serde(default)]
    pub key: Option<String>,
    /// Legacy form: `In`, `NotIn`, `Exists`, `DoesNotExist`.
    #[serde(default)]
    pub operator: Option<String>,
    /// Legacy form: values for `In`/`NotIn`.
    #[serde(default)]
    pub values: Option<Vec<String>>,
    /// jq form.
    #[serde(default)]
    pub jq: Option<JqRequirement>,
    /// CEL form.
    #[serde(default)]
    pub cel: Option<CelExpression>,
}

/// `matchExpressions[].jq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JqRequirement {
    /// A jq expression on the object.
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub operator: String,
    /// Values for `In`/`NotIn`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// `matchExpressions[].cel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CelExpression {
    /// A CEL expression over `self` (the object) returning bool.
    pub expression: String,
}

/// A value read from the object (`weightFrom`, `durationFrom`, `jitterDurationFrom`):
/// `jq: {expression}`, `cel: {expression}` or the legacy `expressionFrom` (a jq
/// expression). CEL wins when both are set, as upstream evaluates it first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpressionFrom {
    /// Legacy form: the jq expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression_from: Option<String>,
    /// jq form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jq: Option<ExpressionJq>,
    /// CEL form, over `self` (the object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cel: Option<CelExpression>,
}

/// `…From.jq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpressionJq {
    /// A jq expression on the object; its first output is the value.
    pub expression: String,
}

/// `spec.delay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Delay {
    /// Fixed delay.
    #[serde(default)]
    pub duration_milliseconds: Option<i64>,
    /// Delay read from the object: an RFC 3339 time (delay until then) or a duration.
    #[serde(default)]
    pub duration_from: Option<ExpressionFrom>,
    /// Upper bound of the jittered delay.
    #[serde(default)]
    pub jitter_duration_milliseconds: Option<i64>,
    /// Upper bound read from the object.
    #[serde(default)]
    pub jitter_duration_from: Option<ExpressionFrom>,
}

/// `spec.next`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StageNext {
    /// Event to emit.
    #[serde(default)]
    pub event: Option<Event>,
    /// Finalizer changes.
    #[serde(default)]
    pub finalizers: Option<Finalizers>,
    /// Delete the object.
    #[serde(default)]
    pub delete: bool,
    /// Go template rendering the new `status` (YAML).
    #[serde(default)]
    pub status_template: Option<String>,
    /// Subresource the status patch goes to (default `status`).
    #[serde(default)]
    pub status_subresource: Option<String>,
    /// Impersonation for the status patch.
    #[serde(default)]
    pub status_patch_as: Option<Impersonation>,
    /// General patches.
    #[serde(default)]
    pub patches: Option<Vec<Patch>>,
}

/// An event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Event {
    /// `Normal` or `Warning`.
    #[serde(default, rename = "type")]
    pub type_: String,
    /// Reason.
    #[serde(default)]
    pub reason: String,
    /// Message.
    #[serde(default)]
    pub message: String,
}

/// Finalizer changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Finalizers {
    /// Finalizers to add.
    #[serde(default)]
    pub add: Vec<FinalizerItem>,
    /// Finalizers to remove.
    #[serde(default)]
    pub remove: Vec<FinalizerItem>,
    /// Remove every finalizer.
    #[serde(default)]
    pub empty: bool,
}

/// One finalizer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FinalizerItem {
    /// The finalizer.
    pub value: String,
}

impl FinalizerItem {
    /// Items of `values`, in order.
    pub fn list(values: &[&str]) -> Vec<Self> {
        values
            .iter()
            .map(|v| Self {
                value: (*v).to_owned(),
            })
            .collect()
    }
}

/// Who a patch is sent as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Impersonation {
    /// User name.
    pub username: String,
}

/// A patch in `next.patches` or a `patch` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Patch {
    /// Subresource (`status`) or none for the object itself.
    #[serde(default)]
    pub subresource: Option<String>,
    /// The rendered template goes under this top-level field (e.g. `status`).
    #[serde(default)]
    pub root: Option<String>,
    /// `json`, `merge` or `strategic` (default: strategic for Node and Pod, merge otherwise).
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// Go template rendering the patch body (YAML).
    #[serde(default)]
    pub template: String,
    /// Who the patch is sent as.
    #[serde(default)]
    pub impersonation: Option<Impersonation>,
}

/// One entry of `spec.steps`. Upstream runs every field that is set, in the order
/// event, finalizers, delete, patch, apply; usually one is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    /// Patch the object.
    #[serde(default)]
    pub patch: Option<Patch>,
    /// Emit an event.
    #[serde(default)]
    pub event: Option<Event>,
    /// Change finalizers.
    #[serde(default)]
    pub finalizers: Option<Finalizers>,
    /// Delete the object.
    #[serde(default)]
    pub delete: Option<DeleteStep>,
    /// Create or patch the object the rendered template names.
    #[serde(default)]
    pub apply: Option<Apply>,
}

/// `steps[].delete`: `true` as upstream writes it (`false` does nothing); `{}` is
/// taken too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DeleteStep {
    /// `delete: true` / `delete: false`.
    Flag(bool),
    /// `delete: {}`.
    Empty(EmptyDelete),
}

impl DeleteStep {
    /// Whether the step deletes.
    pub fn deletes(&self) -> bool {
        !matches!(self, DeleteStep::Flag(false))
    }
}

/// `delete: {}` (no options).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EmptyDelete {}

/// `steps[].apply`: the rendered template is an object (apiVersion, kind, name;
/// the namespace defaults to the source object's), created if absent, else patched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Apply {
    /// Subresource to patch (e.g. `status`; the object must exist), or the object itself.
    #[serde(default)]
    pub subresource: Option<String>,
    /// Go template rendering the object (YAML).
    pub template: String,
    /// How an existing object is patched: `apply` (server-side apply, the default),
    /// `merge` or `strategic`.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// Who the apply is sent as.
    #[serde(default)]
    pub impersonation: Option<Impersonation>,
}
