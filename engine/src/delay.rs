//! `spec.delay`: how long after a match the stage's effects are due.
//!
//! Upstream's semantics (its `Stage.Delay` and `DelayRangePossible`): without
//! `spec.delay` there is no delay. With it, the delay is what `durationFrom` reads,
//! else `durationMilliseconds` (0 when unset); an explicit non-value (an empty string)
//! means no delay. When a jitter bound is set (`jitterDurationMilliseconds`, or what
//! `jitterDurationFrom` reads; its CEL form is ignored upstream, and here) and
//! exceeds the delay, the delay is drawn uniformly from `[delay, jitter)`: the jitter
//! is an upper bound, not an addend. A jitter bound at or below the delay is the delay
//! itself ("Otherwise, it will be used directly as the delay time"). A time read from
//! the object means "until then", negative once past: due at once.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use serde_json::Value;

use crate::{
    error::FieldError,
    stage::spec,
    value_from::{Read, ValueFrom},
};

/// The longest delay the engine hands out. A delay read from an annotation can be any
/// Go duration (`99999999h`); beyond this, timers (tokio-util's `DelayQueue` holds
/// about two years) and clock arithmetic would panic, and no simulation waits a year.
pub const MAX_DELAY: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// A compiled `spec.delay`; the default is no `spec.delay` at all.
#[derive(Debug, Clone, Default)]
pub struct Delay {
    /// Whether `spec.delay` was given.
    set: bool,
    duration: SignedDuration,
    duration_from: Option<ValueFrom>,
    jitter: Option<SignedDuration>,
    jitter_from: Option<ValueFrom>,
}

/// The possible delays: one value, or `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// Exactly this delay.
    Exactly(SignedDuration),
    /// Drawn uniformly from `[.0, .1)`.
    Between(SignedDuration, SignedDuration),
}

impl Delay {
    /// Compiles `spec` (errors name fields relative to `delay`).
    pub fn compile(spec: &spec::Delay) -> Result<Self, FieldError> {
        let jitter_from = match &spec.jitter_duration_from {
            Some(f) if f.cel.is_none() => {
                Some(ValueFrom::compile(f).map_err(|e| e.under("jitterDurationFrom"))?)
            }
            _ => None,
        };
        Ok(Self {
            set: true,
            duration: millis(spec.duration_milliseconds, "durationMilliseconds")?.unwrap_or_default(),
            duration_from: spec
                .duration_from
                .as_ref()
                .map(|f| ValueFrom::compile(f).map_err(|e| e.under("durationFrom")))
                .transpose()?,
            jitter: millis(spec.jitter_duration_milliseconds, "jitterDurationMilliseconds")?,
            jitter_from,
        })
    }

    /// Whether the delay is always zero (no timer needed).
    pub fn is_zero(&self) -> bool {
        !self.set
            || (self.duration.is_zero()
                && self.duration_from.is_none()
                && self.jitter.is_none()
                && self.jitter_from.is_none())
    }

    /// The possible delays for `obj` at `now`; `None` when there is no delay.
    pub fn range(&self, obj: &Value, now: Timestamp) -> Option<Range> {
        if !self.set {
            return None;
        }
        let base = match self.duration_from.as_ref().map(|f| f.duration(obj, now)) {
            None | Some(Read::Default) => self.duration,
            Some(Read::Value(d)) => d,
            Some(Read::None) => return None,
        };
        let jitter = match self.jitter_from.as_ref().map(|f| f.duration(obj, now)) {
            None | Some(Read::Default) => self.jitter,
            Some(Read::Value(d)) => Some(d),
            Some(Read::None) => None,
        };
        Some(match jitter {
            None => Range::Exactly(base),
            Some(jitter) if jitter <= base => Range::Exactly(jitter),
            Some(jitter) => Range::Between(base, jitter),
        })
    }

    /// The delay for `obj` at `now`, drawing jitter from `rng`; between zero and
    /// [`MAX_DELAY`].
    pub fn for_object(&self, obj: &Value, now: Timestamp, rng: &mut impl Rng) -> Duration {
        let chosen = match self.range(obj, now) {
            None => SignedDuration::ZERO,
            Some(Range::Exactly(d)) => d,
            Some(Range::Between(from, to)) => {
                let span = (to - from).as_nanos().min(i64::MAX as i128) as i64;
                from + SignedDuration::from_nanos(rng.random_range(0..span.max(1)))
            }
        };
        Duration::try_from(chosen)
            .unwrap_or(Duration::ZERO)
            .min(MAX_DELAY)
    }
}

fn millis(value: Option<i64>, field: &str) -> Result<Option<SignedDuration>, FieldError> {
    match value {
        Some(ms) if ms < 0 => Err(FieldError::new(field, format!("must not be negative, got {ms}"))),
        Some(ms) => Ok(Some(SignedDuration::from_millis(ms))),
        None => Ok(None),
    }
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

    /// A delay of `fixed` ms read from `.d`, with its jitter from `.j`.
    fn from_d_and_j(fixed: Option<i64>) -> Delay {
        let from = |path: &str| {
            Some(spec::ExpressionFrom {
                expression_from: Some(path.into()),
                ..Default::default()
            })
        };
        Delay::compile(&spec::Delay {
            duration_milliseconds: fixed,
            duration_from: from(".d"),
            jitter_duration_from: from(".j"),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn a_huge_or_sub_millisecond_delay_from_an_annotation_should_not_panic() {
        let delay = from_d_and_j(None);
        let mut rng = StdRng::seed_from_u64(1);
        // Go's ParseDuration refuses an overflowing duration: the fixed delay (0) holds.
        let obj = serde_json::json!({"d": "99999999999999h"});
        assert_eq!(delay.for_object(&obj, now(), &mut rng), Duration::ZERO);
        let obj = serde_json::json!({"d": "2000000h"});
        assert_eq!(delay.for_object(&obj, now(), &mut rng), MAX_DELAY);
        let obj = serde_json::json!({"j": "1ns"});
        assert_eq!(delay.for_object(&obj, now(), &mut rng), Duration::ZERO);
    }

    #[test]
    fn range_should_follow_upstream_for_missing_empty_and_past_values() {
        let delay = from_d_and_j(Some(1000));
        let secs = SignedDuration::from_secs;
        let at = |obj: serde_json::Value| delay.range(&obj, now());
        assert_eq!(at(serde_json::json!({})), Some(Range::Exactly(secs(1))));
        assert_eq!(at(serde_json::json!({"d": ""})), None);
        assert_eq!(
            at(serde_json::json!({"j": "5s"})),
            Some(Range::Between(secs(1), secs(5)))
        );
        assert_eq!(
            at(serde_json::json!({"j": "2025-12-31T23:59:50Z"})),
            Some(Range::Exactly(secs(-10)))
        );
        assert_eq!(Delay::default().range(&serde_json::json!({}), now()), None);
        let mut rng = StdRng::seed_from_u64(1);
        let past = serde_json::json!({"j": "2025-12-31T23:59:50Z"});
        assert_eq!(delay.for_object(&past, now(), &mut rng), Duration::ZERO);
    }
}
