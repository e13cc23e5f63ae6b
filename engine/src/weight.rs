//! `spec.weight` / `spec.weightFrom`, and the weighted choice among matching stages.
//!
//! KWOK's rule: one match is taken as is; otherwise a stage is drawn with probability
//! proportional to its weight, and when every weight is zero, uniformly.

use rand::Rng;
use serde_json::Value;

use crate::{error::FieldError, selector::Query, stage::spec};

/// A compiled weight.
#[derive(Debug, Clone, Default)]
pub struct Weight {
    fixed: u64,
    from: Option<Query>,
}

impl Weight {
    /// Compiles `weight` and `weightFrom` (errors name fields relative to `spec`).
    pub fn compile(weight: i64, from: &Option<spec::ExpressionFrom>) -> Result<Self, FieldError> {
        if weight < 0 {
            return Err(FieldError::new(
                "weight",
                format!("must not be negative, got {weight}"),
            ));
        }
        let from = from
            .as_ref()
            .map(|f| {
                Query::compile(&f.expression_from)
                    .map_err(|e| FieldError::new("weightFrom.expressionFrom", e))
            })
            .transpose()?;
        Ok(Self {
            fixed: weight as u64,
            from,
        })
    }

    /// The weight for `obj`: what `weightFrom` reads (a number or numeric string), else the fixed weight.
    pub fn for_object(&self, obj: &Value) -> u64 {
        self.from
            .as_ref()
            .and_then(|q| q.eval(obj).into_iter().find_map(|v| as_weight(&v)))
            .unwrap_or(self.fixed)
    }
}

fn as_weight(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Picks an index of `weights` by weight (uniform when all are zero); `None` if empty.
pub fn choose(weights: &[u64], rng: &mut impl Rng) -> Option<usize> {
    match weights.len() {
        0 => None,
        1 => Some(0),
        n => {
            let total: u64 = weights.iter().sum();
            if total == 0 {
                return Some(rng.random_range(0..n));
            }
            let mut ticket = rng.random_range(0..total);
            weights.iter().position(|w| {
                let hit = ticket < *w;
                ticket = ticket.saturating_sub(*w);
                hit
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn choose_should_follow_the_weights_statistically() {
        let mut rng = StdRng::seed_from_u64(42);
        let mut counts = [0u32; 3];
        for _ in 0..100_000 {
            counts[choose(&[1, 3, 0], &mut rng).unwrap()] += 1;
        }
        assert_eq!(counts[2], 0, "weight 0 is never chosen beside positive weights");
        let share = f64::from(counts[1]) / 100_000.0;
        assert!((share - 0.75).abs() < 0.01, "weight 3 of 4 got {share}");
    }

    #[test]
    fn choose_should_be_uniform_when_all_weights_are_zero() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = [0u32; 2];
        for _ in 0..10_000 {
            counts[choose(&[0, 0], &mut rng).unwrap()] += 1;
        }
        assert!((4_500..5_500).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn negative_weight_should_be_refused() {
        assert_eq!(
            Weight::compile(-2, &None).unwrap_err().to_string(),
            "weight: must not be negative, got -2"
        );
    }
}
