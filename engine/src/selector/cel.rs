//! CEL expressions (`cel: {expression}` selectors and `…From` values), with `self` bound
//! to the object and KWOK's functions:
//!
//! | function | gives |
//! |---|---|
//! | `Now()` | the current time (a timestamp) |
//! | `Rand()` | a random double in `[0, 1)` |
//! | `UnixSecond(t)` | seconds since the Unix epoch of a timestamp or RFC 3339 text |
//! | `SinceSecond(obj)`, `obj.SinceSecond()` | seconds since the object's `creationTimestamp` |
//! | `Quantity("1Gi")` | a Kubernetes quantity as a double (`1073741824.0`), so quantities compare and add |
//!
//! As upstream (its `time.Now` and `math/rand`), `Now`, `SinceSecond` and `Rand` read
//! the wall clock and the thread's random source: the one place the engine does, kept
//! here.
//!
//! `self` is the object. For a Node or a Pod, as upstream's typed objects, times
//! (`creationTimestamp`, conditions' `lastTransitionTime`, `startedAt` …) are
//! timestamps and resource quantities (`capacity`, `allocatable`, `requests`,
//! `limits`, `overhead`) are quantities, so `self.metadata.creationTimestamp < Now()`
//! and `self.status.allocatable.cpu >= Quantity("2")` read as upstream's do. Other kinds
//! are plain JSON, as upstream's unstructured objects.

use std::sync::{Arc, LazyLock};

use cel::{Context, ExecutionError, Program, Value as CelValue, extractors::This};
use serde_json::Value;

use crate::quantity::parse as parse_quantity;

/// The functions above, in a root context every evaluation opens a scope of.
static KWOK_FUNCTIONS: LazyLock<Context<'static, 'static>> = LazyLock::new(|| {
    let mut ctx = Context::default();
    let declared = [
        ctx.add_function("Now", now),
        ctx.add_function("Rand", rand::random::<f64>),
        ctx.add_function("UnixSecond", unix_second),
        ctx.add_function("SinceSecond", since_second),
        ctx.add_function("Quantity", quantity),
    ];
    for result in declared {
        result.unwrap_or_else(|e| panic!("kwok CEL function: {e:?}"));
    }
    ctx
});

fn now() -> chrono::DateTime<chrono::FixedOffset> {
    chrono::Utc::now().fixed_offset()
}

fn seconds_of(t: &CelValue) -> Result<f64, ExecutionError> {
    let t = match t {
        CelValue::Timestamp(t) => *t,
        CelValue::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|e| ExecutionError::function_error("UnixSecond", format!("{s:?}: {e}")))?,
        other => {
            return Err(ExecutionError::function_error(
                "UnixSecond",
                format!("want a timestamp, got {other:?}"),
            ));
        }
    };
    Ok(t.timestamp_nanos_opt().unwrap_or_default() as f64 / 1e9)
}

fn unix_second(t: CelValue) -> Result<f64, ExecutionError> {
    seconds_of(&t)
}

fn since_second(This(obj): This<CelValue>) -> Result<f64, ExecutionError> {
    let created = match &obj {
        CelValue::Map(m) => m
            .get(&cel::objects::Key::from("metadata"))
            .and_then(|meta| match meta {
                CelValue::Map(meta) => meta.get(&cel::objects::Key::from("creationTimestamp")).cloned(),
                _ => None,
            }),
        _ => None,
    }
    .ok_or_else(|| ExecutionError::function_error("SinceSecond", "the object has no creationTimestamp"))?;
    let now = now().timestamp_nanos_opt().unwrap_or_default() as f64 / 1e9;
    Ok(now - seconds_of(&created)?)
}

fn quantity(text: Arc<String>) -> Result<f64, ExecutionError> {
    parse_quantity(&text)
        .ok_or_else(|| ExecutionError::function_error("Quantity", format!("{text:?} is not a quantity")))
}

/// A compiled CEL expression that must evaluate to `true` for the object to match.
///
/// # Implementation
/// The program is parsed once and shared behind an `Arc`. Each evaluation converts the whole
/// object into CEL values and builds a fresh standard context, which costs microseconds for
/// a pod: prefer jq requirements on hot stages.
#[derive(Clone)]
pub(crate) struct Cel {
    program: Arc<Program>,
}

impl std::fmt::Debug for Cel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cel").finish_non_exhaustive()
    }
}

impl Cel {
    /// Parses `expression`; the error is the parser's message on one line.
    pub(crate) fn compile(expression: &str) -> Result<Self, String> {
        let program = Program::compile(expression).map_err(|e| one_line(&e.to_string()))?;
        Ok(Self {
            program: Arc::new(program),
        })
    }

    /// The expression's value on `obj`.
    pub(crate) fn eval(&self, obj: &Value) -> Result<cel::Value, String> {
        let typed = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_none_or(|v| v == "v1")
            && matches!(obj.get("kind").and_then(Value::as_str), Some("Node" | "Pod"));
        let object = to_cel(obj, typed, Field::Other);
        let mut ctx = KWOK_FUNCTIONS.new_inner_scope();
        ctx.add_variable_from_value("self", object);
        self.program.execute(&ctx).map_err(|e| one_line(&e.to_string()))
    }

    /// Whether the expression is `true` on `obj`; any other result or an error is `false`.
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        matches!(self.eval(obj), Ok(cel::Value::Bool(true)))
    }
}

/// `obj` (a Node, a Pod or one of its containers) as a CEL value typed as upstream's
/// Go objects are: times as timestamps, resource quantities as numbers (what `Quantity`
/// gives). The kubelet's metric expressions bind `node`, `pod` and `container` to it.
pub fn typed_value(obj: &Value) -> CelValue {
    to_cel(obj, true, Field::Other)
}

/// What a JSON value is to a typed Node or Pod.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    /// A `metav1.Time`.
    Time,
    /// A map of resource quantities.
    Quantities,
    /// A resource quantity.
    Quantity,
    Other,
}

fn field_of(key: &str) -> Field {
    match key {
        "creationTimestamp" | "deletionTimestamp" | "lastTransitionTime" | "lastProbeTime"
        | "lastHeartbeatTime" | "startTime" | "startedAt" | "finishedAt" | "time" => Field::Time,
        "capacity" | "allocatable" | "requests" | "limits" | "overhead" => Field::Quantities,
        _ => Field::Other,
    }
}

/// `v` as a CEL value; with `typed`, times and quantities as their own types.
fn to_cel(v: &Value, typed: bool, field: Field) -> CelValue {
    match v {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => CelValue::Int(i),
            (None, Some(u)) => CelValue::UInt(u),
            _ => CelValue::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) if typed && field == Field::Time => chrono::DateTime::parse_from_rfc3339(s)
            .map_or_else(|_| CelValue::String(Arc::new(s.clone())), CelValue::Timestamp),
        Value::String(s) if typed && field == Field::Quantity => {
            parse_quantity(s).map_or_else(|| CelValue::String(Arc::new(s.clone())), CelValue::Float)
        }
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => CelValue::List(Arc::new(
            items.iter().map(|i| to_cel(i, typed, Field::Other)).collect(),
        )),
        Value::Object(map) => {
            let entries: std::collections::HashMap<cel::objects::Key, CelValue> = map
                .iter()
                .map(|(k, v)| {
                    let inner = match field {
                        Field::Quantities => Field::Quantity,
                        _ => field_of(k),
                    };
                    (cel::objects::Key::from(k.as_str()), to_cel(v, typed, inner))
                })
                .collect();
            CelValue::Map(entries.into())
        }
    }
}

/// A CEL error message (several lines with a caret diagram) on one line, its lines
/// joined by ` | `, so load errors stay one line.
pub fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines.join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"metadata": {"name": "a", "labels": {"app": "web"}}, "status": {"phase": "Running", "restarts": 2}})
    }

    #[test]
    fn cel_should_match_when_the_expression_is_true() {
        let cel =
            Cel::compile(r#"self.status.phase == "Running" && self.metadata.labels.app == "web""#).unwrap();
        assert!(cel.matches(&pod()));
        assert!(Cel::compile("self.status.restarts > 1").unwrap().matches(&pod()));
        assert!(
            Cel::compile(r#"has(self.status.phase) && !has(self.metadata.deletionTimestamp)"#)
                .unwrap()
                .matches(&pod())
        );
    }

    #[test]
    fn cel_should_not_match_when_the_expression_is_false() {
        assert!(
            !Cel::compile(r#"self.status.phase == "Pending""#)
                .unwrap()
                .matches(&pod())
        );
    }

    #[test]
    fn cel_should_not_match_a_non_boolean_result() {
        assert!(!Cel::compile("self.status.phase").unwrap().matches(&pod()));
        assert!(!Cel::compile("1").unwrap().matches(&pod()));
    }

    #[test]
    fn cel_should_not_match_when_evaluation_fails() {
        assert!(!Cel::compile("self.status.missing == 1").unwrap().matches(&pod()));
        assert!(!Cel::compile("unknown_var").unwrap().matches(&pod()));
    }

    #[test]
    fn kwok_functions_should_be_available() {
        let obj = json!({"metadata": {"creationTimestamp": "2020-01-01T00:00:00Z"},
                         "status": {"allocatable": {"memory": "2Gi"}}});
        let yes = |e: &str| assert!(Cel::compile(e).unwrap().matches(&obj), "{e}");
        yes("Now() > timestamp('2026-01-01T00:00:00Z')");
        yes("Rand() >= 0.0 && Rand() < 1.0");
        yes("UnixSecond(self.metadata.creationTimestamp) == 1577836800.0");
        yes("UnixSecond(timestamp('1970-01-01T00:01:00Z')) == 60.0");
        yes("SinceSecond(self) > 100000000.0 && self.SinceSecond() > 100000000.0");
        yes("Quantity(self.status.allocatable.memory) > Quantity('1536Mi')");
        yes("Quantity('250m') + Quantity('1') == 1.25 && Quantity('1e3') == Quantity('1k')");
        assert!(!Cel::compile("Quantity('ten') > 1.0").unwrap().matches(&obj));
    }

    #[test]
    fn a_node_or_pod_should_be_typed_as_upstreams() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]},
            "status": {"conditions": [{"type": "Ready", "lastTransitionTime": "2020-01-01T00:00:05Z"}]}});
        let yes = |e: &str| assert!(Cel::compile(e).unwrap().matches(&pod), "{e}");
        yes("self.metadata.creationTimestamp < Now()");
        yes(
            "self.status.conditions[0].lastTransitionTime - self.metadata.creationTimestamp == duration('5s')",
        );
        yes("self.spec.containers[0].resources.requests.cpu == Quantity('0.5')");
        yes("self.spec.containers[0].resources.requests.memory >= Quantity('1024Mi')");
        yes("self.spec.containers[0].name == 'c'");
        // Another kind stays plain JSON, as upstream's unstructured objects.
        let mut other = pod.clone();
        other["kind"] = json!("Job");
        assert!(
            Cel::compile("self.metadata.creationTimestamp == '2020-01-01T00:00:00Z'")
                .unwrap()
                .matches(&other)
        );
    }

    #[test]
    fn quantities_should_parse_as_kubernetes_writes_them() {
        assert_eq!(parse_quantity("1Ki"), Some(1024.0));
        assert_eq!(parse_quantity("1.5Gi"), Some(1.5 * 1024f64.powi(3)));
        assert_eq!(parse_quantity("100m"), Some(0.1));
        assert_eq!(parse_quantity("3"), Some(3.0));
        assert_eq!(parse_quantity("12e2"), Some(1200.0));
        assert_eq!(parse_quantity("1Xi"), None);
    }

    #[test]
    fn compile_should_report_syntax_errors_on_one_line() {
        let e = Cel::compile("self.status ==").unwrap_err();
        assert!(!e.is_empty() && !e.contains('\n'), "{e}");
    }

    #[test]
    fn cel_should_be_shareable_between_threads() {
        fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
        assert_send_sync_clone::<Cel>();
    }
}
