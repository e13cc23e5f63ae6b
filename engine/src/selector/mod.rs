//! Stage selectors and the compiled jq queries they (and `weightFrom`, `durationFrom`) use.

pub(crate) mod cel;
mod jq;
mod path;
mod pipeline;
mod query;
mod requirement;

pub use self::cel::{one_line as cel_one_line, typed_value as cel_typed_value};
pub use jq::Jq;
pub use query::{Query, QueryError};

use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use serde_json::Value;

use self::{cel::Cel, requirement::Requirement};
use crate::{error::FieldError, stage::spec};

/// A compiled `spec.selector`: labels, annotations and expressions that must all hold.
///
/// An empty selector (`{}`) matches every object. A *missing* selector matches none, which is
/// the caller's business: there is no `Selector` for it.
///
/// # Implementation
/// Labels and annotations are compared first (a few string comparisons), then the
/// expressions in their written order, stopping at the first that fails. jq keys that are
/// plain paths are walked without jaq (see [`Query`]); CEL expressions convert the whole
/// object per evaluation, so they are the expensive kind.
///
/// ```
/// use kwok_engine::{selector::Selector, stage::spec};
///
/// let spec: spec::Selector = serde_json::from_value(serde_json::json!({
///     "matchLabels": {"app": "web"},
///     "matchExpressions": [
///         {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
///         {"jq": {"key": ".status.phase", "operator": "In", "values": ["Pending"]}},
///     ],
/// }))
/// .unwrap();
/// let selector = Selector::compile(&spec).unwrap();
/// let pod = serde_json::json!({
///     "metadata": {"name": "a", "labels": {"app": "web"}},
///     "status": {"phase": "Pending"},
/// });
/// assert!(selector.matches(&pod));
/// ```
#[derive(Debug, Clone)]
pub struct Selector {
    /// `matchLabels`, in key order.
    labels: Vec<(String, String)>,
    /// `matchAnnotations`, in key order.
    annotations: Vec<(String, String)>,
    /// `matchExpressions`, in written order.
    expressions: Vec<Expression>,
    /// jq keys that failed at run time (shared by clones: one count per compiled Stage).
    failures: Arc<QueryFailures>,
}

/// Run-time failures of a selector's jq keys (`.a.b` on a string, `error(…)`). A
/// failing key sees no output, as in KWOK, so the stage silently does not match: the
/// runtime reports these so that a user learns why.
#[derive(Debug, Default)]
pub struct QueryFailures {
    count: AtomicU64,
    first_key: OnceLock<Box<str>>,
    reported: AtomicBool,
}

/// What [`QueryFailures::take`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Failed<'a> {
    /// Failures since the last take.
    pub count: u64,
    /// The first key that ever failed.
    pub key: Option<&'a str>,
    /// Whether these are the first failures ever taken (report them loudly once).
    pub first: bool,
}

impl QueryFailures {
    fn record(&self, key: &str) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.first_key.get_or_init(|| key.into());
    }

    /// Failures since the last call. Cheap when there were none (one load).
    pub fn take(&self) -> Failed<'_> {
        if self.count.load(Ordering::Relaxed) == 0 {
            return Failed::default();
        }
        Failed {
            count: self.count.swap(0, Ordering::Relaxed),
            key: self.first_key.get().map(|k| &**k),
            first: !self.reported.swap(true, Ordering::Relaxed),
        }
    }
}

/// One compiled entry of `matchExpressions`.
#[derive(Debug, Clone)]
enum Expression {
    /// The legacy (`key`/`operator`/`values`) or `jq:` form.
    Jq(Requirement),
    /// The `cel:` form.
    Cel(Cel),
}

impl Selector {
    /// Compiles `spec` (field paths in errors are relative to the selector, e.g.
    /// `matchExpressions[1].jq.key`).
    pub fn compile(spec: &spec::Selector) -> Result<Self, FieldError> {
        let pairs = |m: &Option<std::collections::BTreeMap<String, String>>| {
            m.iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        let expressions =
            spec.match_expressions.iter().flatten().enumerate().map(|(i, e)| {
                compile_expression(e).map_err(|err| err.under(&format!("matchExpressions[{i}]")))
            });
        Ok(Self {
            labels: pairs(&spec.match_labels),
            annotations: pairs(&spec.match_annotations),
            expressions: expressions.collect::<Result<_, _>>()?,
            failures: Arc::default(),
        })
    }

    /// Run-time failures of its jq keys.
    pub fn failures(&self) -> &QueryFailures {
        &self.failures
    }

    /// Whether `obj` is selected.
    pub fn matches(&self, obj: &Value) -> bool {
        let metadata = path::lookup(obj, "metadata");
        has_all(metadata.and_then(|m| path::lookup(m, "labels")), &self.labels)
            && has_all(
                metadata.and_then(|m| path::lookup(m, "annotations")),
                &self.annotations,
            )
            && self.expressions.iter().all(|e| e.matches(obj, &self.failures))
    }
}

impl Expression {
    fn matches(&self, obj: &Value, failures: &QueryFailures) -> bool {
        match self {
            Self::Jq(r) => {
                let (matched, failed) = r.evaluate(obj);
                if failed {
                    failures.record(r.key());
                }
                matched
            }
            Self::Cel(c) => c.matches(obj),
        }
    }
}

/// Whether `map` holds every `(key, value)` pair as a string.
fn has_all(map: Option<&Value>, pairs: &[(String, String)]) -> bool {
    pairs
        .iter()
        .all(|(k, v)| map.and_then(|m| path::lookup(m, k)).and_then(Value::as_str) == Some(v.as_str()))
}

/// Compiles one `matchExpressions` entry; error fields are relative to the entry.
fn compile_expression(e: &spec::SelectorExpression) -> Result<Expression, FieldError> {
    let legacy = e.key.is_some() || e.operator.is_some() || e.values.is_some();
    match (legacy, &e.jq, &e.cel) {
        (true, None, None) => compile_legacy(e).map(Expression::Jq),
        (false, Some(jq), None) => Requirement::compile(&jq.key, &jq.operator, &jq.values)
            .map(Expression::Jq)
            .map_err(|err| err.under("jq")),
        (false, None, Some(cel)) => Cel::compile(&cel.expression)
            .map(Expression::Cel)
            .map_err(|reason| FieldError::new("cel.expression", reason)),
        (false, None, None) => Err(FieldError::new("", "one of key, jq or cel is required")),
        _ => Err(FieldError::new("", "only one of key, jq or cel may be set")),
    }
}

fn compile_legacy(e: &spec::SelectorExpression) -> Result<Requirement, FieldError> {
    let key = e
        .key
        .as_deref()
        .ok_or_else(|| FieldError::new("key", "is required"))?;
    let operator = e
        .operator
        .as_deref()
        .ok_or_else(|| FieldError::new("operator", "is required"))?;
    Requirement::compile(key, operator, e.values.as_deref().unwrap_or_default())
}

#[cfg(test)]
mod tests;
