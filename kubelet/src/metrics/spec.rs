//! The YAML shapes of `ResourceUsage`, `ClusterResourceUsage` and `Metric`
//! (`kwok.x-k8s.io/v1alpha1`), field for field as upstream's API types.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use kwok_engine::stage::load::Source;

use super::LoadError;

/// `metadata` as far as these kinds use it; the rest of an object's metadata is
/// accepted and ignored, as the apiserver's objects carry much more.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Meta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

/// A whole document: `status` is the controller's to write and is ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Document<S> {
    #[allow(dead_code, reason = "checked by `kind_of` before deserializing")]
    pub api_version: Option<String>,
    #[allow(dead_code, reason = "checked by `kind_of` before deserializing")]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: Meta,
    pub spec: S,
    #[allow(dead_code, reason = "written by controllers, never read")]
    #[serde(default)]
    pub status: Option<Value>,
}

/// `ResourceUsage.spec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResourceUsageSpec {
    #[serde(default)]
    pub usages: Vec<UsageContainers>,
}

/// `ClusterResourceUsage.spec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterResourceUsageSpec {
    #[serde(default)]
    pub selector: Option<ObjectSelector>,
    #[serde(default)]
    pub usages: Vec<UsageContainers>,
}

/// Which pods a `ClusterResourceUsage` is for; an empty list matches all.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ObjectSelector {
    #[serde(default)]
    pub match_namespaces: Vec<String>,
    #[serde(default)]
    pub match_names: Vec<String>,
}

/// One entry of `usages`: for these containers (all when empty), these values.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageContainers {
    #[serde(default)]
    pub containers: Vec<String>,
    #[serde(default)]
    pub usage: BTreeMap<String, UsageValue>,
}

/// A resource's usage: a fixed quantity or a CEL expression.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageValue {
    #[serde(default)]
    pub value: Option<QuantityText>,
    #[serde(default)]
    pub expression: Option<String>,
}

/// A quantity as YAML writes it: `250m`, `1Gi`, or a bare number.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum QuantityText {
    Number(f64),
    Text(String),
}

/// `Metric.spec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricSpec {
    pub path: String,
    pub metrics: Vec<MetricConfig>,
}

/// One metric family of a `Metric`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricConfig {
    pub name: String,
    #[serde(default)]
    pub help: String,
    pub kind: MetricKind,
    #[serde(default)]
    pub labels: Vec<MetricLabel>,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub buckets: Vec<MetricBucket>,
    #[serde(default)]
    pub dimension: Dimension,
}

/// The Prometheus type of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// A value that goes up and down.
    Gauge,
    /// A value that only goes up.
    Counter,
    /// Counts per bucket, each bucket's count an expression.
    Histogram,
}

/// What one sample of a metric is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dimension {
    /// One sample for the node (upstream's default).
    #[default]
    Node,
    /// One sample per pod of the node.
    Pod,
    /// One sample per container of each pod of the node.
    Container,
}

/// A label: its name and a CEL expression giving its value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricLabel {
    pub name: String,
    pub value: String,
}

/// A histogram bucket: its upper bound and a CEL expression giving its count.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricBucket {
    pub le: f64,
    pub value: String,
    #[serde(default)]
    pub hidden: bool,
}

/// The document's `kind`, for dispatch.
pub(crate) fn kind_of(value: &Value) -> Option<&str> {
    value.get("kind").and_then(Value::as_str)
}

/// The document's `metadata.name`, for error messages.
pub(crate) fn name_of(value: &Value) -> String {
    value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Deserializes `value`; an error names the document and the path of the bad field.
pub(crate) fn parse<S: DeserializeOwned>(value: &Value, source: &Source) -> Result<Document<S>, LoadError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        LoadError::field(source, value, field, e.into_inner().to_string())
    })
}
