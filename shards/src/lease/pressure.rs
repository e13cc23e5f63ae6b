//! How far behind lease renewals are, and the gauge that shares it with the shards.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};

/// How far behind lease renewals are (module docs): other writers hold back by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pressure {
    /// Every waiting renewal has over half a duration left.
    Calm,
    /// A waiting renewal has at most half a duration left.
    Behind,
    /// A waiting renewal has at most three eighths of a duration left.
    AtRisk,
}

impl Pressure {
    /// The pressure when the renewal waiting longest has `left` before it expires.
    pub(super) fn from_left(left: Option<Duration>, duration: Duration) -> Self {
        match left {
            Some(left) if left <= duration * 3 / 8 => Self::AtRisk,
            Some(left) if left <= duration / 2 => Self::Behind,
            _ => Self::Calm,
        }
    }
}

/// The worker's current [`Pressure`], shared with the shards.
#[derive(Debug, Clone, Default)]
pub struct PressureGauge(Arc<AtomicU8>);

impl PressureGauge {
    /// The pressure now.
    pub fn get(&self) -> Pressure {
        match self.0.load(Ordering::Relaxed) {
            0 => Pressure::Calm,
            1 => Pressure::Behind,
            _ => Pressure::AtRisk,
        }
    }

    pub(super) fn set(&self, p: Pressure) {
        self.0.store(p as u8, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_should_rise_at_half_then_three_eighths_of_a_duration_left() {
        let d = Duration::from_secs(40);
        let left = |s| Pressure::from_left(Some(Duration::from_secs(s)), d);
        assert_eq!(Pressure::from_left(None, d), Pressure::Calm, "nothing waits");
        assert_eq!(left(21), Pressure::Calm);
        assert_eq!(left(20), Pressure::Behind);
        assert_eq!(left(16), Pressure::Behind);
        assert_eq!(left(15), Pressure::AtRisk);
        assert_eq!(left(0), Pressure::AtRisk, "expired while waiting");
        let gauge = PressureGauge::default();
        assert_eq!(gauge.get(), Pressure::Calm);
        for p in [Pressure::AtRisk, Pressure::Behind, Pressure::Calm] {
            gauge.set(p);
            assert_eq!(gauge.get(), p);
        }
    }
}
