//! Resource usage (ResourceUsage, ClusterResourceUsage) and Metric endpoints.
//!
//! Pure logic, no I/O and no clock: the caller passes the node, its pods and `now`,
//! and owns the [`Cumulative`] state that integrates usage between scrapes.
//!
//! ```
//! use kwok_engine::stage::load::Documents;
//! use kwok_kubelet::metrics::{Cumulative, Metrics, Usages};
//! use serde_json::json;
//!
//! let mut docs = Documents::default();
//! docs.parse("rules.yaml", r#"
//! kind: ClusterResourceUsage
//! apiVersion: kwok.x-k8s.io/v1alpha1
//! metadata: {name: fixed}
//! spec:
//!   usages: [{usage: {cpu: {value: 250m}}}]
//! ---
//! kind: Metric
//! apiVersion: kwok.x-k8s.io/v1alpha1
//! metadata: {name: resource}
//! spec:
//!   path: /metrics/nodes/{nodeName}/metrics/resource
//!   metrics:
//!   - {name: pod_cpu, dimension: pod, kind: counter, value: 'pod.CumulativeUsage("cpu")',
//!      labels: [{name: pod, value: pod.metadata.name}]}
//! "#).unwrap();
//! let usages = Usages::from_documents(&docs.others).unwrap();
//! let metrics = Metrics::from_documents(&docs.others).unwrap();
//!
//! let node = json!({"metadata": {"name": "n1"}});
//! let pod = json!({"metadata": {"name": "p", "namespace": "default", "uid": "1"},
//!                  "spec": {"nodeName": "n1", "containers": [{"name": "c"}]}});
//! let (metric, node_name) = metrics.route("/metrics/nodes/n1/metrics/resource").unwrap();
//! assert_eq!(node_name, "n1");
//! let mut state = Cumulative::new();
//! let t0 = jiff::Timestamp::from_second(1_700_000_000).unwrap();
//! metric.render(&node, &[&pod], &usages, &mut state, t0);
//! let later = metric.render(&node, &[&pod], &usages, &mut state, t0 + jiff::SignedDuration::from_secs(4));
//! assert_eq!(later.text, "# HELP pod_cpu \n# TYPE pod_cpu counter\npod_cpu{pod=\"p\"} 1\n");
//! ```

mod cumulative;
mod expr;
mod metric;
mod reads;
mod render;
mod scrape;
mod spec;
mod table;
#[cfg(test)]
mod tests;
mod text;

use serde_json::Value;

use kwok_engine::stage::load::Source;

pub use cumulative::Cumulative;
pub use metric::{Metric, Metrics};
pub use render::Rendered;
pub use spec::{Dimension, MetricKind};
pub use text::CONTENT_TYPE;
pub use usage::Usages;

mod usage;

/// A `ResourceUsage`, `ClusterResourceUsage` or `Metric` document kwok cannot use.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A field is unknown, of the wrong type, or holds a value kwok cannot use (e.g.
    /// CEL that does not parse, an unknown `kind` of metric).
    #[error(transparent)]
    Field(Box<FieldError>),
}

/// Where and why a document is refused: `file:line: Kind "name": field: reason`.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {kind} {name:?}: {}{reason}", at(.field))]
pub struct FieldError {
    /// Source file (or the object's origin when it came from the cluster).
    pub file: String,
    /// 1-based line the document starts on.
    pub line: usize,
    /// The document's kind.
    pub kind: String,
    /// The document's name.
    pub name: String,
    /// Path of the field (`spec.metrics[2].value`), empty for the document.
    pub field: String,
    /// Why, on one line.
    pub reason: String,
}

fn at(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

impl LoadError {
    pub(crate) fn field(source: &Source, value: &Value, field: String, reason: String) -> Self {
        LoadError::Field(Box::new(FieldError {
            file: source.file.clone(),
            line: source.line,
            kind: spec::kind_of(value).unwrap_or("<no kind>").to_owned(),
            name: spec::name_of(value),
            field,
            reason,
        }))
    }
}

/// A container's usage could not be found; it reads 0, as upstream's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UsageError {
    /// No rule covers the container.
    #[error("no resource usage found for container {container:?} in pod {namespace}/{pod}")]
    NotFound {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The container's name.
        container: String,
    },
    /// The pod has no such container.
    #[error("pod {namespace}/{pod} has no container {container:?}")]
    NoContainer {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The container's name.
        container: String,
    },
    /// The rule's expression failed.
    #[error(
        "failed to evaluate the {resource} usage of container {container:?} in pod {namespace}/{pod}: {reason}"
    )]
    Eval {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The container's name.
        container: String,
        /// The resource.
        resource: String,
        /// The evaluator's message.
        reason: String,
    },
}

/// Something one scrape could not render.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    /// A container's usage (it read 0).
    #[error(transparent)]
    Usage(UsageError),
    /// A family's expression failed on some node, pod or container: the family is
    /// left out of the scrape.
    #[error("metric {metric:?}: failed to evaluate {what}: {reason}")]
    Eval {
        /// The family's name.
        metric: String,
        /// `value`, `label "pod"`, `bucket le=0.5`.
        what: String,
        /// The evaluator's message.
        reason: String,
    },
}
