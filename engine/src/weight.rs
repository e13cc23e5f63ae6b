//! `spec.weight` / `spec.weightFrom`, and the weighted choice among matching stages.
//!
//! Upstream's rules (its `Lifecycle.Match` and `ListAllPossible`): one match is taken as
//! is. Otherwise each match has a weight, or none when `weightFrom` reads no value.
//! - no match has a weight: any of them, uniformly;
//! - the weights add up to zero: any match with a weight, uniformly (every match when
//!   all have one);
//! - else a match with a positive weight, with probability proportional to it.

use rand::Rng;
use serde_json::Value;

use crate::{
    error::FieldError,
    stage::spec,
    value_from::{Read, ValueFrom},
};

/// A compiled weight.
#[derive(Debug, Clone, Default)]
pub struct Weight {
    fixed: i64,
    from: Option<ValueFrom>,
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
            .map(|f| ValueFrom::compile(f).map_err(|e| e.under("weightFrom")))
            .transpose()?;
        Ok(Self { fixed: weight, from })
    }

    /// The weight for `obj`: what `weightFrom` reads, else the fixed weight; `None`
    /// when `weightFrom` reads an explicit non-value (an empty or non-numeric string).
    pub fn for_object(&self, obj: &Value) -> Option<i64> {
        match self.from.as_ref().map(|f| f.int(obj)) {
            None | Some(Read::Default) => Some(self.fixed),
            Some(Read::Value(w)) => Some(w),
            Some(Read::None) => None,
        }
    }
}

/// How a choice is made among matches with these weights.
enum Rule {
    /// Uniformly among every match.
    All,
    /// Uniformly among the matches with a weight.
    Weighted,
    /// By weight among the positive ones; the sum of those.
    Positive(u64),
}

fn rule(weights: &[Option<i64>]) -> Rule {
    if weights.iter().all(Option::is_none) {
        return Rule::All;
    }
    let total: u64 = weights.iter().flatten().map(|w| (*w).max(0) as u64).sum();
    match total {
        0 if weights.iter().all(Option::is_some) => Rule::All,
        0 => Rule::Weighted,
        total => Rule::Positive(total),
    }
}

/// The indices of `weights` that can be chosen (upstream's `ListAllPossible`).
pub fn possible(weights: &[Option<i64>]) -> Vec<usize> {
    if weights.len() <= 1 {
        return (0..weights.len()).collect();
    }
    let rule = rule(weights);
    let keep = |w: &Option<i64>| match rule {
        Rule::All => true,
        Rule::Weighted => w.is_some(),
        Rule::Positive(_) => w.is_some_and(|w| w > 0),
    };
    (0..weights.len()).filter(|i| keep(&weights[*i])).collect()
}

/// Picks an index of `weights` by upstream's rules; `None` if empty.
pub fn choose(weights: &[Option<i64>], rng: &mut impl Rng) -> Option<usize> {
    match weights.len() {
        0 => None,
        1 => Some(0),
        n => match rule(weights) {
            Rule::All => Some(rng.random_range(0..n)),
            Rule::Weighted => {
                let with = weights.iter().filter(|w| w.is_some()).count();
                let k = rng.random_range(0..with);
                weights
                    .iter()
                    .enumerate()
                    .filter(|(_, w)| w.is_some())
                    .nth(k)
                    .map(|(i, _)| i)
            }
            Rule::Positive(total) => {
                let mut ticket = rng.random_range(0..total);
                weights.iter().position(|w| {
                    let w = w.unwrap_or(0).max(0) as u64;
                    let hit = ticket < w;
                    ticket = ticket.saturating_sub(w);
                    hit
                })
            }
        },
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
            counts[choose(&[Some(1), Some(3), Some(0)], &mut rng).unwrap()] += 1;
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
            counts[choose(&[Some(0), Some(0)], &mut rng).unwrap()] += 1;
        }
        assert!((4_500..5_500).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn matches_without_a_weight_should_follow_upstream() {
        let mut rng = StdRng::seed_from_u64(3);
        assert_eq!(possible(&[None, None]), [0, 1]);
        assert_eq!(possible(&[None, Some(0)]), [1]);
        assert_eq!(possible(&[None, Some(0), Some(2)]), [2]);
        assert_eq!(possible(&[Some(0), Some(0)]), [0, 1]);
        for _ in 0..100 {
            assert_eq!(choose(&[None, Some(0)], &mut rng), Some(1));
            assert_eq!(choose(&[None, Some(0), Some(2)], &mut rng), Some(2));
        }
    }

    #[test]
    fn negative_weight_should_be_refused() {
        assert_eq!(
            Weight::compile(-2, &None).unwrap_err().to_string(),
            "weight: must not be negative, got -2"
        );
    }
}
