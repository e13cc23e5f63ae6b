//! `spec.delay`: how long after a match the stage's effects are due.
//!
//! KWOK's semantics: the delay is `durationMilliseconds`, replaced by what
//! `durationFrom` reads when it yields a value (an RFC 3339 time means "until then",
//! else a Go duration). If a jitter bound is set (`jitterDurationMilliseconds`, or
//! `jitterDurationFrom` when it yields a value) and exceeds the delay, the delay is
//! drawn uniformly from `[delay, jitter)`: the jitter is an upper bound, not an addend.
//! A jitter bound at or below the delay is used as the delay itself (KWOK's
//! `Stage.Delay`, and its docs: "Otherwise, it will be used directly as the delay time").

use std::time::Duration;

use jiff::Timestamp;
use rand::Rng;
use serde_json::Value;

use crate::{error::FieldError, selector::Query, stage::spec};

/// The longest delay the engine hands out. A delay read from an annotation can be any
/// Go duration (`99999999h`); beyond this, timers (tokio-util's `DelayQueue` holds
/// about two years) and clock arithmetic would panic, and no simulation waits a year.
pub const MAX_DELAY: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// A compiled `spec.delay`.
#[derive(Debug, Clone, Default)]
pub struct Delay {
    duration: Duration,
    duration_from: Option<Query>,
    jitter: Option<Duration>,
    jitter_from: Option<Query>,
}

impl Delay {
    /// Compiles `spec` (errors name fields relative to `delay`).
    pub fn compile(spec: &spec::Delay) -> Result<Self, FieldError> {
        Ok(Self {
            duration: millis(spec.duration_milliseconds, "durationMilliseconds")?.unwrap_or_default(),
            duration_from: query(&spec.duration_from, "durationFrom")?,
            jitter: millis(spec.jitter_duration_milliseconds, "jitterDurationMilliseconds")?,
            jitter_from: query(&spec.jitter_duration_from, "jitterDurationFrom")?,
        })
    }

    /// Whether the delay is always zero (no timer needed).
    pub fn is_zero(&self) -> bool {
        self.duration.is_zero()
            && self.duration_from.is_none()
            && self.jitter.is_none()
            && self.jitter_from.is_none()
    }

    /// The delay for `obj` at `now`, drawing jitter from `rng`; at most [`MAX_DELAY`].
    pub fn for_object(&self, obj: &Value, now: Timestamp, rng: &mut impl Rng) -> Duration {
        self.unclamped(obj, now, rng).min(MAX_DELAY)
    }

    fn unclamped(&self, obj: &Value, now: Timestamp, rng: &mut impl Rng) -> Duration {
        let base = self
            .duration_from
            .as_ref()
            .and_then(|q| read(q, obj, now))
            .unwrap_or(self.duration);
        let jitter = self
            .jitter_from
            .as_ref()
            .and_then(|q| read(q, obj, now))
            .or(self.jitter);
        match jitter {
            Some(jitter) if jitter > base => {
                let span = (jitter - base).as_millis() as u64;
                base + Duration::from_millis(rng.random_range(0..span.max(1)))
            }
            // KWOK uses a jitter bound at or below the delay as the delay itself.
            Some(jitter) => jitter,
            None => base,
        }
    }
}

fn millis(value: Option<i64>, field: &str) -> Result<Option<Duration>, FieldError> {
    match value {
        Some(ms) if ms < 0 => Err(FieldError::new(field, format!("must not be negative, got {ms}"))),
        Some(ms) => Ok(Some(Duration::from_millis(ms as u64))),
        None => Ok(None),
    }
}

fn query(from: &Option<spec::ExpressionFrom>, field: &str) -> Result<Option<Query>, FieldError> {
    from.as_ref()
        .map(|f| {
            Query::compile(&f.expression_from)
                .map_err(|e| FieldError::new(format!("{field}.expressionFrom"), e))
        })
        .transpose()
}

/// Reads a delay from the first output of `q`: a time (delay until then, zero if
/// past) or a duration (`30s`, `1m30s`, or a number of milliseconds).
fn read(q: &Query, obj: &Value, now: Timestamp) -> Option<Duration> {
    let first = q.eval(obj).into_iter().find(|v| !v.is_null())?;
    match &first {
        Value::String(s) => parse(s, now),
        Value::Number(n) => n.as_u64().map(Duration::from_millis),
        _ => None,
    }
}

fn parse(text: &str, now: Timestamp) -> Option<Duration> {
    if let Ok(at) = text.parse::<Timestamp>() {
        let ms = at.as_millisecond() - now.as_millisecond();
        return Some(Duration::from_millis(ms.max(0) as u64));
    }
    humantime::parse_duration(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn negative_duration_should_be_refused() {
        let spec = spec::Delay {
            duration_milliseconds: Some(-1),
            ..Default::default()
        };
        let err = Delay::compile(&spec).unwrap_err();
        assert_eq!(
            err.to_string(),
            "durationMilliseconds: must not be negative, got -1"
        );
    }

    #[test]
    fn jitter_should_be_an_upper_bound_not_an_addend() {
        let spec = spec::Delay {
            duration_milliseconds: Some(1000),
            jitter_duration_milliseconds: Some(5000),
            ..Default::default()
        };
        let delay = Delay::compile(&spec).unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let obj = serde_json::json!({});
        for _ in 0..1000 {
            let d = delay.for_object(&obj, now(), &mut rng);
            assert!(d >= Duration::from_secs(1) && d < Duration::from_secs(5), "{d:?}");
        }
    }

    #[test]
    fn jitter_below_duration_should_be_the_delay_as_in_kwok() {
        let spec = spec::Delay {
            duration_milliseconds: Some(3000),
            jitter_duration_milliseconds: Some(1000),
            ..Default::default()
        };
        let delay = Delay::compile(&spec).unwrap();
        let d = delay.for_object(&serde_json::json!({}), now(), &mut StdRng::seed_from_u64(1));
        assert_eq!(d, Duration::from_secs(1));
    }

    #[test]
    fn a_huge_or_sub_millisecond_delay_from_an_annotation_should_not_panic() {
        let spec = spec::Delay {
            duration_from: Some(spec::ExpressionFrom {
                expression_from: ".d".into(),
            }),
            jitter_duration_from: Some(spec::ExpressionFrom {
                expression_from: ".j".into(),
            }),
            ..Default::default()
        };
        let delay = Delay::compile(&spec).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let obj = serde_json::json!({"d": "99999999999999h"});
        assert_eq!(delay.for_object(&obj, now(), &mut rng), MAX_DELAY);
        let obj = serde_json::json!({"j": "1ns"});
        assert_eq!(delay.for_object(&obj, now(), &mut rng), Duration::ZERO);
    }

    #[test]
    fn parse_should_read_times_as_until_and_durations_as_is() {
        assert_eq!(
            parse("2026-01-01T00:00:30Z", now()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse("2025-12-31T00:00:00Z", now()), Some(Duration::ZERO));
        assert_eq!(parse("1m30s", now()), Some(Duration::from_secs(90)));
        assert_eq!(parse("soon", now()), None);
    }
}
