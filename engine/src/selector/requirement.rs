//! One jq requirement of a selector: a query, an operator and the values it compares with.

use serde_json::Value;

use super::Query;
use crate::error::FieldError;

/// The operator of a requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operator {
    /// Some output equals one of the values.
    In,
    /// No output equals any of the values.
    NotIn,
    /// Some output is not `null`.
    Exists,
    /// Every output is `null` (or there is none).
    DoesNotExist,
}

impl Operator {
    fn parse(s: &str) -> Result<Self, FieldError> {
        match s {
            "In" => Ok(Self::In),
            "NotIn" => Ok(Self::NotIn),
            "Exists" => Ok(Self::Exists),
            "DoesNotExist" => Ok(Self::DoesNotExist),
            other => Err(FieldError::new(
                "operator",
                format!("operator {other:?} is not supported (use In, NotIn, Exists or DoesNotExist)"),
            )),
        }
    }

    fn takes_values(self) -> bool {
        matches!(self, Self::In | Self::NotIn)
    }
}

/// A compiled `key`/`operator`/`values` requirement (legacy or `jq:` form).
///
/// # Implementation
/// Follows KWOK's `expression.Requirement` (`pkg/utils/expression/selector.go`):
///
/// - the query's outputs are all collected; if the query fails anywhere it counts as having
///   no outputs (so `In`/`Exists` do not match and `NotIn`/`DoesNotExist` do);
/// - an output equals a value when it is that string, the boolean written `true`/`false`, or
///   an integer written in decimal; other outputs (floats, arrays, objects, `null`) equal
///   nothing;
/// - `In` holds when *any* output equals a value, `NotIn` is its negation;
/// - `Exists` holds when *any* output is not `null`, `DoesNotExist` is its negation.
#[derive(Debug, Clone)]
pub(crate) struct Requirement {
    /// The key as written, for reports of run-time failures.
    key: Box<str>,
    query: Query,
    operator: Operator,
    values: Values,
}

impl Requirement {
    /// Compiles a requirement; errors name the field (`key`, `operator` or `values`).
    pub(crate) fn compile(key: &str, operator: &str, values: &[String]) -> Result<Self, FieldError> {
        let query = Query::compile(key).map_err(|e| FieldError::new("key", e))?;
        let operator = Operator::parse(operator)?;
        match (operator.takes_values(), values.is_empty()) {
            (true, true) => Err(FieldError::new(
                "values",
                format!("must not be empty for operator {operator:?}"),
            )),
            (false, false) => Err(FieldError::new(
                "values",
                format!("must be empty for operator {operator:?}"),
            )),
            _ => Ok(Self {
                key: key.into(),
                query,
                operator,
                values: Values::new(values),
            }),
        }
    }

    /// The key as written.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Whether `obj` satisfies the requirement.
    #[cfg(test)]
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        self.evaluate(obj).0
    }

    /// Whether `obj` satisfies the requirement, and whether the query failed at run time
    /// (it then saw no output, as in KWOK: `In` is false, `NotIn` true).
    pub(crate) fn evaluate(&self, obj: &Value) -> (bool, bool) {
        let (seen, failed) = match self.query.single(obj) {
            Some(Ok(v)) => (Seen::default().record(v, &self.values), false),
            Some(Err(_)) => (Seen::default(), true),
            None => self.collect(obj),
        };
        let matched = match self.operator {
            Operator::In => seen.listed,
            Operator::NotIn => !seen.listed,
            Operator::Exists => seen.present,
            Operator::DoesNotExist => !seen.present,
        };
        (matched, failed)
    }

    /// What all outputs held; nothing if the query fails anywhere (and whether it did).
    fn collect(&self, obj: &Value) -> (Seen, bool) {
        let mut seen = Seen::default();
        match self
            .query
            .visit(obj, &mut |v| seen = seen.record(v, &self.values))
        {
            Ok(()) => (seen, false),
            Err(_) => (Seen::default(), true),
        }
    }
}

/// What the outputs of one evaluation held.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// Some output equals a value.
    listed: bool,
    /// Some output is not `null`.
    present: bool,
}

impl Seen {
    #[must_use]
    fn record(self, v: &Value, values: &Values) -> Self {
        Self {
            present: self.present || !v.is_null(),
            listed: self.listed || values.contains(v),
        }
    }
}

/// The values of a requirement, with those written as canonical integers also kept as numbers
/// so an integer output is compared without formatting it.
#[derive(Debug, Clone)]
struct Values {
    strings: Vec<String>,
    /// The values equal to the decimal text of an integer (`"3"`, `"-1"`; not `"03"`, `"+3"`).
    ints: Vec<i128>,
}

impl Values {
    fn new(values: &[String]) -> Self {
        let canonical_int = |s: &String| s.parse::<i128>().ok().filter(|n| n.to_string() == *s);
        Self {
            strings: values.to_vec(),
            ints: values.iter().filter_map(canonical_int).collect(),
        }
    }

    fn contains(&self, v: &Value) -> bool {
        match v {
            Value::String(s) => self.strings.iter().any(|x| x == s),
            Value::Bool(b) => self
                .strings
                .iter()
                .any(|x| x == if *b { "true" } else { "false" }),
            Value::Number(n) => integer(n).is_some_and(|n| self.ints.contains(&n)),
            Value::Null | Value::Array(_) | Value::Object(_) => false,
        }
    }
}

fn integer(n: &serde_json::Number) -> Option<i128> {
    n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(key: &str, op: &str, values: &[&str]) -> Requirement {
        let values: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        Requirement::compile(key, op, &values).unwrap()
    }

    fn err(key: &str, op: &str, values: &[&str]) -> FieldError {
        let values: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        Requirement::compile(key, op, &values).unwrap_err()
    }

    fn obj() -> Value {
        json!({
            "status": {"phase": "Running", "ready": true, "restarts": 3, "ratio": 1.5, "big": 18446744073709551615u64},
            "list": ["a", "b", null],
            "nulls": [null, null],
            "empty": [],
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "Scheduled", "status": "False"}],
            "text": "x"
        })
    }

    #[test]
    fn in_should_match_when_any_output_is_listed() {
        assert!(req(".status.phase", "In", &["Pending", "Running"]).matches(&obj()));
        assert!(req(".list[]", "In", &["b"]).matches(&obj()));
        assert!(!req(".list[]", "In", &["c"]).matches(&obj()));
    }

    #[test]
    fn in_should_compare_booleans_and_integers_by_their_text() {
        assert!(req(".status.ready", "In", &["true"]).matches(&obj()));
        assert!(req(".status.restarts", "In", &["3"]).matches(&obj()));
        assert!(!req(".status.restarts", "In", &["03"]).matches(&obj()));
        assert!(req(".status.big", "In", &["18446744073709551615"]).matches(&obj()));
    }

    #[test]
    fn in_should_not_match_floats_nulls_or_containers() {
        assert!(!req(".status.ratio", "In", &["1.5"]).matches(&obj()));
        assert!(!req(".missing", "In", &["null", ""]).matches(&obj()));
        assert!(!req(".empty", "In", &["[]"]).matches(&obj()));
    }

    #[test]
    fn in_should_not_match_without_outputs_or_when_the_query_fails() {
        assert!(!req(".empty[]", "In", &["a"]).matches(&obj()));
        assert!(!req(".text.x", "In", &["x"]).matches(&obj()));
        // An error after a listed output still means "no outputs", as in KWOK.
        assert!(
            !req(
                r#".list[] | if . == null then error("x") else . end"#,
                "In",
                &["a"]
            )
            .matches(&obj())
        );
    }

    #[test]
    fn not_in_should_match_when_no_output_is_listed() {
        assert!(req(".status.phase", "NotIn", &["Pending"]).matches(&obj()));
        assert!(!req(".list[]", "NotIn", &["b"]).matches(&obj()));
        assert!(req(".missing", "NotIn", &["x"]).matches(&obj()));
        assert!(req(".empty[]", "NotIn", &["x"]).matches(&obj()));
        assert!(req(".text.x", "NotIn", &["x"]).matches(&obj()));
    }

    #[test]
    fn exists_should_match_when_any_output_is_not_null() {
        assert!(req(".status.phase", "Exists", &[]).matches(&obj()));
        assert!(req(".list[]", "Exists", &[]).matches(&obj()));
        assert!(req(".empty", "Exists", &[]).matches(&obj()));
        assert!(!req(".missing", "Exists", &[]).matches(&obj()));
        assert!(!req(".nulls[]", "Exists", &[]).matches(&obj()));
        assert!(!req(".empty[]", "Exists", &[]).matches(&obj()));
        assert!(!req(".text.x", "Exists", &[]).matches(&obj()));
    }

    #[test]
    fn does_not_exist_should_match_when_every_output_is_null() {
        assert!(req(".missing", "DoesNotExist", &[]).matches(&obj()));
        assert!(req(".nulls[]", "DoesNotExist", &[]).matches(&obj()));
        assert!(req(".empty[]", "DoesNotExist", &[]).matches(&obj()));
        assert!(req(".text.x", "DoesNotExist", &[]).matches(&obj()));
        assert!(!req(".list[]", "DoesNotExist", &[]).matches(&obj()));
    }

    #[test]
    fn requirements_should_select_through_jq_pipes() {
        let key = r#".conditions.[] | select( .type == "Ready" ) | .status"#;
        assert!(req(key, "In", &["True"]).matches(&obj()));
        assert!(req(key, "Exists", &[]).matches(&obj()));
        let key = r#".conditions.[] | select( .type == "Gone" ) | .status"#;
        assert!(req(key, "DoesNotExist", &[]).matches(&obj()));
    }

    #[test]
    fn compile_should_reject_an_unknown_operator() {
        let e = err(".a", "Equals", &["x"]);
        assert_eq!(e.field, "operator");
        assert_eq!(
            e.reason,
            r#"operator "Equals" is not supported (use In, NotIn, Exists or DoesNotExist)"#
        );
    }

    #[test]
    fn compile_should_require_values_for_in_and_not_in() {
        assert_eq!(
            err(".a", "In", &[]),
            FieldError::new("values", "must not be empty for operator In")
        );
        assert_eq!(
            err(".a", "NotIn", &[]),
            FieldError::new("values", "must not be empty for operator NotIn")
        );
    }

    #[test]
    fn compile_should_reject_values_for_exists_and_does_not_exist() {
        assert_eq!(
            err(".a", "Exists", &["x"]),
            FieldError::new("values", "must be empty for operator Exists")
        );
        let e = err(".a", "DoesNotExist", &["x"]);
        assert_eq!(
            e,
            FieldError::new("values", "must be empty for operator DoesNotExist")
        );
    }

    #[test]
    fn compile_should_report_jq_syntax_errors_on_the_key() {
        assert_eq!(
            err(".a | ", "Exists", &[]),
            FieldError::new("key", "expected term, found end of input")
        );
    }
}
