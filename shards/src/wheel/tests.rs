//! Wheel tests: fixed cases, then random operations checked against a `BTreeMap` model.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use rand::{Rng, SeedableRng, rngs::SmallRng};
use tokio::time::Instant;

use super::*;

/// Polls everything due at `now`, as (deadline, value).
fn drain<T>(wheel: &mut Wheel<T>, now: u64) -> Vec<(u64, T)> {
    std::iter::from_fn(|| wheel.poll_expired(now))
        .map(|e| (e.deadline, e.value))
        .collect()
}

#[test]
fn wheel_should_fire_in_deadline_order() {
    let mut wheel = Wheel::with_capacity(8);
    for when in [300_000, 5, 64, 4_096, 63, 70_000, 1] {
        wheel.insert(when, when);
    }
    let fired: Vec<u64> = drain(&mut wheel, 1_000_000).into_iter().map(|(_, v)| v).collect();
    assert_eq!(fired, [1, 5, 63, 64, 4_096, 70_000, 300_000]);
    assert!(wheel.is_empty());
}

#[test]
fn wheel_should_not_fire_before_the_deadline() {
    let mut wheel = Wheel::with_capacity(1);
    wheel.insert((), 4_100);
    let mut now = 0;
    while let Some(next) = wheel.next_deadline() {
        assert!(next <= 4_100, "next_deadline {next} after the deadline");
        assert_eq!(drain(&mut wheel, next.max(now)).len(), usize::from(next == 4_100));
        now = next;
    }
    assert_eq!(now, 4_100);
}

#[test]
fn wheel_should_fire_same_tick_timers_in_scheduling_order() {
    let mut wheel = Wheel::with_capacity(4);
    let a = wheel.insert('a', 70);
    wheel.insert('b', 70);
    wheel.insert('c', 70);
    assert!(wheel.reset(a, 70));
    let fired: String = drain(&mut wheel, 70).into_iter().map(|(_, v)| v).collect();
    assert_eq!(fired, "bca");
}

#[test]
fn wheel_should_cancel_and_forget_stale_keys() {
    let mut wheel = Wheel::with_capacity(2);
    let key = wheel.insert("x", 100);
    assert_eq!(wheel.get(key), Some(&"x"));
    assert_eq!(wheel.remove(key), Some("x"));
    assert_eq!(wheel.remove(key), None);
    assert!(!wheel.reset(key, 5));
    // The slot is reused with a new generation: the old key still matches nothing.
    let other = wheel.insert("y", 100);
    assert_eq!(wheel.remove(key), None);
    assert_eq!(wheel.deadline(other), Some(100));
    assert_eq!(drain(&mut wheel, 100), [(100, "y")]);
    assert_eq!(wheel.get(other), None);
    assert_eq!(wheel.next_deadline(), None);
}

#[test]
fn wheel_should_fire_past_deadlines_at_once() {
    let mut wheel = Wheel::with_capacity(2);
    assert!(drain(&mut wheel, 1_000).is_empty());
    assert_eq!(wheel.elapsed(), 1_000);
    wheel.insert("past", 10);
    assert_eq!(wheel.next_deadline(), Some(1_000));
    assert_eq!(drain(&mut wheel, 1_000), [(10, "past")]);
}

#[test]
fn wheel_should_hold_deadlines_beyond_the_top_level() {
    let mut wheel = Wheel::with_capacity(4);
    let far = 3 * HORIZON + 12_345;
    wheel.insert("far", far);
    wheel.insert("never", u64::MAX);
    wheel.insert("near", HORIZON - 1);
    assert_eq!(drain(&mut wheel, HORIZON - 1), [(HORIZON - 1, "near")]);
    assert!(drain(&mut wheel, far - 1).is_empty());
    assert_eq!(drain(&mut wheel, far), [(far, "far")]);
    assert_eq!(wheel.len(), 1);
    assert_eq!(drain(&mut wheel, MAX_TICK), [(MAX_TICK, "never")]);
}

#[test]
fn wheel_should_hold_a_million_timers() {
    const N: u64 = 1_000_000;
    let mut wheel = Wheel::with_capacity(N as usize);
    for i in 0..N {
        // Spread over about 17 minutes, out of order.
        wheel.insert(i, (i * 7_919) % N);
    }
    assert_eq!(wheel.len(), N as usize);
    let mut last = 0;
    let mut count = 0;
    while let Some(e) = wheel.poll_expired(N) {
        assert!(e.deadline >= last, "{} after {last}", e.deadline);
        last = e.deadline;
        count += 1;
    }
    assert_eq!(count, N);
}

#[test]
fn clock_should_round_deadlines_up_and_now_down() {
    let origin = Instant::now();
    let clock = Clock::new(origin);
    let at = origin + Duration::from_micros(2_500);
    assert_eq!(clock.deadline_tick(at), 3);
    assert_eq!(clock.now_tick(at), 2);
    assert_eq!(clock.deadline_tick(origin + Duration::from_millis(7)), 7);
    if let Some(before) = origin.checked_sub(Duration::from_millis(5)) {
        assert_eq!(clock.deadline_tick(before), 0);
    }
    assert_eq!(clock.instant(7), origin + Duration::from_millis(7));
    assert_eq!(clock.tick_after(at, Duration::from_millis(10)), 13);
    assert_eq!(clock.tick_after(at, Duration::MAX), MAX_TICK);
}

#[tokio::test(start_paused = true)]
async fn alarm_should_wake_a_task_at_each_deadline_on_tokios_clock() {
    let start = Instant::now();
    let clock = Clock::new(start);
    let mut wheel = Wheel::with_capacity(4);
    for ms in [250, 10, 70_000, 10] {
        wheel.insert(ms, clock.tick_after(start, Duration::from_millis(ms)));
    }
    let mut alarm = Alarm::new();
    let mut fired = Vec::new();
    loop {
        alarm.arm(&clock, wheel.next_deadline());
        if !alarm.is_armed() {
            break;
        }
        alarm.fired().await;
        while let Some(e) = wheel.poll_expired(clock.now_tick(Instant::now())) {
            fired.push((e.value, Instant::now().duration_since(start).as_millis() as u64));
        }
    }
    assert_eq!(fired, [(10, 10), (10, 10), (250, 250), (70_000, 70_000)]);
}

/// The reference: timers ordered by (effective deadline, scheduling sequence).
#[derive(Default)]
struct Model {
    queue: BTreeMap<(u64, u64), u32>,
    timers: HashMap<u32, (u64, u64, u64)>,
    now: u64,
    seq: u64,
}

impl Model {
    fn insert(&mut self, id: u32, when: u64) {
        let when = when.min(MAX_TICK);
        self.seq += 1;
        let at = when.max(self.now);
        self.queue.insert((at, self.seq), id);
        self.timers.insert(id, (at, self.seq, when));
    }

    fn remove(&mut self, id: u32) {
        let (at, seq, _) = self.timers.remove(&id).expect("live");
        self.queue.remove(&(at, seq));
    }

    /// Fires everything due at `now`, as (requested deadline, id).
    fn advance(&mut self, now: u64) -> Vec<(u64, u32)> {
        self.now = self.now.max(now);
        let mut fired = Vec::new();
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let id = entry.remove();
            let (_, _, when) = self.timers.remove(&id).expect("live");
            fired.push((when, id));
        }
        fired
    }
}

/// A deadline from a mix of near, mid, far and beyond-horizon distances.
fn deadline(rng: &mut SmallRng, now: u64) -> u64 {
    match rng.random_range(0..10) {
        0 => now.saturating_sub(rng.random_range(0..100)),
        1..=4 => now + rng.random_range(0..200),
        5..=7 => now + rng.random_range(0..400_000),
        8 => now + rng.random_range(0..HORIZON * 3),
        _ => now + rng.random_range(0..1 << 26),
    }
}

/// Runs `ops` random operations; returns (timers fired, fired with a deadline beyond the horizon).
fn random_run(seed: u64, ops: usize) -> (usize, usize) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut wheel = Wheel::with_capacity(64);
    let mut model = Model::default();
    let mut keys: HashMap<u32, Key> = HashMap::new();
    let mut live: Vec<u32> = Vec::new();
    let mut next_id = 0;
    let (mut fired_total, mut fired_far) = (0, 0);
    for step in 0..ops {
        match rng.random_range(0..10) {
            0..=3 => {
                let when = deadline(&mut rng, model.now);
                keys.insert(next_id, wheel.insert(next_id, when));
                model.insert(next_id, when);
                live.push(next_id);
                next_id += 1;
            }
            4 | 5 if !live.is_empty() => {
                let id = live.swap_remove(rng.random_range(0..live.len()));
                assert_eq!(wheel.remove(keys[&id]), Some(id), "seed {seed} step {step}");
                model.remove(id);
            }
            6 if !live.is_empty() => {
                let id = live[rng.random_range(0..live.len())];
                let when = deadline(&mut rng, model.now);
                assert!(wheel.reset(keys[&id], when), "seed {seed} step {step}");
                model.remove(id);
                model.insert(id, when);
            }
            _ => {
                let now = match wheel.next_deadline() {
                    Some(next) if rng.random_bool(0.5) => next.max(model.now),
                    _ => {
                        let bits = rng.random_range(1..40);
                        model.now + rng.random_range(0..1u64 << bits)
                    }
                };
                let expected = model.advance(now);
                let fired = drain(&mut wheel, now);
                assert_eq!(fired, expected, "seed {seed} step {step} now {now}");
                fired_total += fired.len();
                fired_far += fired.iter().filter(|(when, _)| *when >= HORIZON).count();
                live.retain(|id| model.timers.contains_key(id));
            }
        }
        assert_eq!(wheel.len(), model.timers.len(), "seed {seed} step {step}");
        if let Some(next) = wheel.next_deadline() {
            let earliest = model.queue.first_key_value().map(|((at, _), _)| *at);
            assert!(earliest.is_some_and(|e| next <= e), "seed {seed} step {step}");
        }
    }
    let everything = drain(&mut wheel, MAX_TICK);
    assert_eq!(everything, model.advance(MAX_TICK), "seed {seed} at the end");
    (fired_total, fired_far)
}

#[test]
fn wheel_should_match_a_btreemap_model_under_random_operations() {
    let (mut fired, mut far) = (0, 0);
    for seed in 0..40 {
        let (f, x) = random_run(seed, 5_000);
        (fired, far) = (fired + f, far + x);
    }
    // The runs must exercise firing, including across the horizon, not only cancels.
    assert!(
        fired > 10_000 && far > 100,
        "fired {fired}, beyond the horizon {far}"
    );
}
