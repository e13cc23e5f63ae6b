//! How fast the machine does a fixed piece of work, before and after each side runs.
//!
//! The VMs these runs use slow down by a fifth or more within half an hour without the
//! kernel counting steal time (`results/2026-12-06-capacity-three-runs/`: the same
//! requests cost the control plane 20–28 % more CPU each), which moves a figure like
//! `capacity` more than anything a kwok does. Timing the same single-threaded work when
//! no cluster runs, before and after each side, shows whether both sides had the same
//! machine.

use std::{hint::black_box, time::Instant};

use rand::{Rng, SeedableRng, rngs::SmallRng};

/// Numbers sorted per round: 32 MiB, more than the last-level cache a VM's share of a
/// host gives it, so the work reads memory as well as computing; about 60 ms a round
/// on the 2-core VMs of 2026-12.
const NUMBERS: usize = 1 << 22;
/// Rounds timed; the median is the figure (one slow round is a blip, not the machine).
const ROUNDS: usize = 5;

/// The machine's speed around one side's run.
#[derive(Debug, Clone)]
pub struct Speed {
    /// The side.
    pub side: String,
    /// [`sort_ms`] before the side's cluster was made.
    pub before_ms: f64,
    /// And after it was deleted.
    pub after_ms: f64,
}

/// Milliseconds to sort [`NUMBERS`] pseudo-random numbers, the same ones every time:
/// the median of [`ROUNDS`] rounds. Lower is faster.
pub fn sort_ms() -> f64 {
    median_sort_ms(NUMBERS)
}

fn median_sort_ms(count: usize) -> f64 {
    let mut times: Vec<f64> = (0..ROUNDS).map(|_| one_round(count)).collect();
    times.sort_by(f64::total_cmp);
    times[ROUNDS / 2]
}

fn one_round(count: usize) -> f64 {
    let mut rng = SmallRng::seed_from_u64(27);
    let mut numbers: Vec<u64> = (0..count).map(|_| rng.random()).collect();
    let started = Instant::now();
    numbers.sort_unstable();
    let ms = started.elapsed().as_secs_f64() * 1e3;
    black_box(&numbers);
    ms
}

/// The summary's line: each side's figures, and how far apart the slowest and the
/// fastest were.
pub fn markdown(speeds: &[Speed]) -> String {
    if speeds.is_empty() {
        return String::new();
    }
    let each: Vec<String> = speeds
        .iter()
        .map(|s| format!("{} {:.1} before, {:.1} after", s.side, s.before_ms, s.after_ms))
        .collect();
    let all = speeds.iter().flat_map(|s| [s.before_ms, s.after_ms]);
    let (min, max) = all.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    format!(
        "- machine speed (ms to sort {NUMBERS} numbers, median of {ROUNDS}, no cluster running; lower is faster): {}; \
         slowest {:.0} % over fastest\n",
        each.join("; "),
        (max / min - 1.0) * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_work_should_take_measurable_time() {
        // Smaller than the real work: tests build without optimizations.
        let ms = median_sort_ms(1 << 16);
        assert!(ms.is_finite() && ms > 0.0, "{ms}");
    }

    #[test]
    fn the_line_should_give_each_side_and_the_spread() {
        let speed = |side: &str, before_ms, after_ms| Speed {
            side: side.into(),
            before_ms,
            after_ms,
        };
        let line = markdown(&[speed("ours", 80.0, 84.0), speed("upstream", 90.0, 100.0)]);
        assert!(
            line.contains("ours 80.0 before, 84.0 after; upstream 90.0 before, 100.0 after"),
            "{line}"
        );
        assert!(line.contains("slowest 25 % over fastest"), "{line}");
        assert_eq!(markdown(&[]), "");
    }
}
