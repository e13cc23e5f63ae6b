//! Values a stage reads from the object: `weightFrom`, `durationFrom` and
//! `jitterDurationFrom`, each a jq or a CEL expression.
//!
//! Upstream's reading rules, followed here:
//! - CEL: the result must be an int (weights) or a duration (delays); anything else,
//!   or an evaluation error, is *not a value* (upstream returns an error, which makes
//!   it skip the whole match; here the stage just has no weight or delay from it).
//! - jq: the first output counts. No output, or an output of another type, falls back
//!   to the fixed field (`weight`, `durationMilliseconds`). An empty string is *not a
//!   value*. A weight string is parsed as an integer (`0x10` too), a delay string as an
//!   RFC 3339 time (the delay is until then, negative when past) or a Go duration.

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::{
    error::FieldError,
    selector::{Query, cel::Cel},
    stage::spec,
};

/// What an expression gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read<T> {
    /// A value.
    Value(T),
    /// Nothing usable: use the fixed field.
    Default,
    /// Explicitly no value (an empty string, a failing CEL expression).
    None,
}

/// A compiled `…From`.
#[derive(Debug, Clone)]
pub enum ValueFrom {
    /// A jq expression.
    Jq(Query),
    /// A CEL expression over `self`.
    Cel(Cel),
}

impl ValueFrom {
    /// Compiles `from` (errors name fields relative to it).
    pub fn compile(from: &spec::ExpressionFrom) -> Result<Self, FieldError> {
        if let Some(cel) = &from.cel {
            return Cel::compile(&cel.expression)
                .map(ValueFrom::Cel)
                .map_err(|e| FieldError::new("cel.expression", e));
        }
        let (field, expression) = match (&from.jq, &from.expression_from) {
            (Some(jq), _) => ("jq.expression", &jq.expression),
            (None, Some(legacy)) if !legacy.is_empty() => ("expressionFrom", legacy),
            _ => {
                return Err(FieldError::new(
                    "",
                    "set one of jq.expression, cel.expression or expressionFrom",
                ));
            }
        };
        Query::compile(expression)
            .map(ValueFrom::Jq)
            .map_err(|e| FieldError::new(field, e))
    }

    fn first(q: &Query, obj: &Value) -> Option<Value> {
        q.eval(obj).into_iter().next()
    }

    /// An integer (a weight).
    pub fn int(&self, obj: &Value) -> Read<i64> {
        match self {
            ValueFrom::Cel(cel) => match cel.eval(obj) {
                Ok(cel::Value::Int(i)) => Read::Value(i),
                Ok(cel::Value::UInt(u)) => i64::try_from(u).map_or(Read::None, Read::Value),
                // JSON numbers of the object reach CEL as doubles.
                Ok(cel::Value::Float(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => Read::Value(f as i64),
                _ => Read::None,
            },
            ValueFrom::Jq(q) => match Self::first(q, obj) {
                Some(Value::String(s)) if s.is_empty() => Read::None,
                Some(Value::String(s)) => parse_go_int(&s).map_or(Read::None, Read::Value),
                Some(Value::Number(n)) => n
                    .as_i64()
                    .or_else(|| n.as_f64().map(|f| f as i64))
                    .map_or(Read::Default, Read::Value),
                _ => Read::Default,
            },
        }
    }

    /// A duration (a delay) at `now`.
    pub fn duration(&self, obj: &Value, now: Timestamp) -> Read<SignedDuration> {
        match self {
            ValueFrom::Cel(cel) => match cel.eval(obj) {
                Ok(cel::Value::Duration(d)) => d
                    .num_nanoseconds()
                    .map_or(Read::None, |n| Read::Value(SignedDuration::from_nanos(n))),
                _ => Read::None,
            },
            ValueFrom::Jq(q) => match Self::first(q, obj) {
                Some(Value::String(s)) if s.is_empty() => Read::None,
                Some(Value::String(s)) => parse_delay(&s, now).map_or(Read::Default, Read::Value),
                _ => Read::Default,
            },
        }
    }
}

/// Go's `strconv.ParseInt(s, 0, 0)`: decimal, `0x`, `0o`/`0`, `0b` and `_` separators.
fn parse_go_int(s: &str) -> Option<i64> {
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, body) = match digits.get(..2) {
        Some("0x" | "0X") => (16, &digits[2..]),
        Some("0b" | "0B") => (2, &digits[2..]),
        Some("0o" | "0O") => (8, &digits[2..]),
        _ if digits.len() > 1 && digits.starts_with('0') => (8, &digits[1..]),
        _ => (10, digits),
    };
    // After a base prefix one underscore may lead (`0x_1F`).
    let body = match radix {
        10 => body,
        _ => body.strip_prefix('_').unwrap_or(body),
    };
    if body.is_empty() || body.starts_with('_') || body.ends_with('_') || body.contains("__") {
        return None;
    }
    // Underscores are allowed only with a base prefix (Go's rule).
    if radix == 10 && body.contains('_') {
        return None;
    }
    let clean: String = body.chars().filter(|c| *c != '_').collect();
    let magnitude = i128::from_str_radix(&clean, radix).ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// An RFC 3339 time (the delay until then) or a Go duration (`1m30s`, `1.5h`, `-1s`).
fn parse_delay(text: &str, now: Timestamp) -> Option<SignedDuration> {
    if let Ok(at) = text.parse::<Timestamp>() {
        return Some(at.duration_since(now));
    }
    crate::template::go_duration::parse(text)
        .ok()
        .map(SignedDuration::from_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jq(expression: &str) -> ValueFrom {
        ValueFrom::compile(&spec::ExpressionFrom {
            jq: Some(spec::ExpressionJq {
                expression: expression.into(),
            }),
            ..Default::default()
        })
        .unwrap()
    }

    fn cel(expression: &str) -> ValueFrom {
        ValueFrom::compile(&spec::ExpressionFrom {
            cel: Some(spec::CelExpression {
                expression: expression.into(),
            }),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn int_should_follow_upstream_reading_rules() {
        let obj = json!({"a": "7", "hex": "0x10", "e": "", "bad": "x", "n": 3, "l": [1]});
        assert_eq!(jq(".a").int(&obj), Read::Value(7));
        assert_eq!(jq(".hex").int(&obj), Read::Value(16));
        assert_eq!(jq(".e").int(&obj), Read::None);
        assert_eq!(jq(".bad").int(&obj), Read::None);
        assert_eq!(jq(".n").int(&obj), Read::Value(3));
        assert_eq!(jq(".missing").int(&obj), Read::Default);
        assert_eq!(jq(".l").int(&obj), Read::Default);
        assert_eq!(cel("self.n").int(&obj), Read::Value(3));
        assert_eq!(cel("2 + 4").int(&obj), Read::Value(6));
        assert_eq!(cel("self.a").int(&obj), Read::None);
    }

    #[test]
    fn duration_should_read_times_go_durations_and_cel_durations() {
        let now: Timestamp = "2006-01-02T15:04:05Z".parse().unwrap();
        let obj = json!({"t": "2006-01-02T15:04:15Z", "past": "2006-01-02T15:04:00Z", "d": "1m1.5s", "e": "", "x": "soon", "n": 5});
        let secs = |s: f64| Read::Value(SignedDuration::from_secs_f64(s));
        assert_eq!(jq(".t").duration(&obj, now), secs(10.0));
        assert_eq!(jq(".past").duration(&obj, now), secs(-5.0));
        assert_eq!(jq(".d").duration(&obj, now), secs(61.5));
        assert_eq!(jq(".e").duration(&obj, now), Read::None);
        assert_eq!(jq(".x").duration(&obj, now), Read::Default);
        assert_eq!(jq(".n").duration(&obj, now), Read::Default);
        assert_eq!(cel("duration('2s')").duration(&obj, now), secs(2.0));
        assert_eq!(cel("self.n").duration(&obj, now), Read::None);
    }

    #[test]
    fn ints_should_parse_as_go_does() {
        assert_eq!(parse_go_int("-12"), Some(-12));
        assert_eq!(parse_go_int("0b101"), Some(5));
        assert_eq!(parse_go_int("017"), Some(15));
        assert_eq!(parse_go_int("1_000"), None);
        assert_eq!(parse_go_int("0x_1F"), Some(31));
        assert_eq!(parse_go_int("0x"), None);
    }

    #[test]
    fn a_from_without_an_expression_should_be_refused() {
        let err = ValueFrom::compile(&spec::ExpressionFrom::default()).unwrap_err();
        assert!(err.to_string().contains("jq.expression"), "{err}");
    }
}
