//! A hierarchical timer wheel: millisecond ticks, O(1) schedule, reset and cancel.
//!
//! Modelled on tokio's time wheel: six levels of 64 slots, level `l` slots spanning
//! `64^l` ticks, so the levels reach about 2.2 years; deadlines beyond that wait in an
//! overflow list. Timers live in a slab and are addressed by generational [`Key`]s; once
//! the slab has grown to the peak number of pending timers, nothing is allocated.
//!
//! The wheel counts abstract ticks and reads no clock: [`Clock`] maps tokio
//! `Instant`s to millisecond ticks and [`Alarm`] is the one `Sleep` that follows the
//! wheel's next deadline, so a task (or a test with paused time) drives it with
//! `alarm.arm(&clock, wheel.next_deadline())`, `alarm.fired().await` and
//! `poll_expired(clock.now_tick(Instant::now()))`.

mod clock;
mod level;
mod slab;

pub use clock::{Alarm, Clock};
use level::{Expiration, HORIZON, LEVELS, Level, level_for, slot_for};
pub use slab::Key;
use slab::{List, Place, Slab};

/// Deadlines are clamped to this tick (about 570,000 years of milliseconds): it keeps
/// the overflow arithmetic from wrapping, and such a timer means "never" anyway.
pub const MAX_TICK: u64 = u64::MAX >> 8;

/// A timer that came due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired<T> {
    /// Its value.
    pub value: T,
    /// The deadline it was scheduled for (before any clamping to the present).
    pub deadline: u64,
    /// Its key, no longer valid.
    pub key: Key,
}

/// A hierarchical timer wheel holding values of type `T`.
///
/// # Implementation
/// A timer due at tick `when` sits in the level of the highest base-64 digit in which
/// `when` and `elapsed` differ, in the slot named by that digit of `when`. When
/// `elapsed` reaches the first tick of an occupied slot, the slot is emptied: timers due
/// at that tick move to the due list, later ones are placed again relative to the new
/// `elapsed`, which puts them on a lower level. A level-0 slot is exactly one tick, so
/// timers come out in deadline order, and in scheduling order within a tick.
///
/// ```
/// use kwok_shards::wheel::Wheel;
///
/// let mut wheel = Wheel::with_capacity(4);
/// wheel.insert("late", 5_000);
/// let key = wheel.insert("cancelled", 10);
/// wheel.insert("early", 20);
/// assert_eq!(wheel.remove(key), Some("cancelled"));
/// assert!(wheel.next_deadline().unwrap() <= 20);
/// assert_eq!(wheel.poll_expired(19), None);
/// assert_eq!(wheel.poll_expired(20).unwrap().value, "early");
/// assert_eq!(wheel.poll_expired(10_000).unwrap().value, "late");
/// assert!(wheel.is_empty());
/// ```
pub struct Wheel<T> {
    /// Every tick up to and including `elapsed` has been processed: all timers with
    /// `when <= elapsed` are in `due`, every other timer is in a level or `overflow`
    /// at the place `level_for(elapsed, when)` names. Only moves forward.
    elapsed: u64,
    /// `levels[l]` holds timers whose highest digit differing from `elapsed` is `l`.
    levels: Box<[Level; LEVELS]>,
    /// Timers at least `HORIZON` beyond `elapsed`'s 64^6 block; placed again when
    /// `elapsed` enters the next block.
    overflow: List,
    /// Timers already due, oldest first, returned by `poll_expired`.
    due: List,
    slab: Slab<T>,
}

// ===== impl Wheel =====

impl<T> Wheel<T> {
    /// An empty wheel at tick 0 with room for `capacity` timers.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            elapsed: 0,
            levels: Box::new(std::array::from_fn(Level::new)),
            overflow: List::default(),
            due: List::default(),
            slab: Slab::with_capacity(capacity),
        }
    }

    /// Pending timers (including due ones not yet polled).
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.slab.len() == 0
    }

    /// Makes room for `additional` more timers without allocating later.
    pub fn reserve(&mut self, additional: usize) {
        self.slab.reserve(additional);
    }

    /// The tick the wheel has been polled up to.
    pub fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Schedules `value` at tick `when`; a deadline already past is due at once.
    pub fn insert(&mut self, value: T, when: u64) -> Key {
        let index = self.slab.insert(value, when.min(MAX_TICK));
        self.place(index);
        self.slab.key(index)
    }

    /// Cancels the timer; `None` if it already fired or was removed.
    pub fn remove(&mut self, key: Key) -> Option<T> {
        let index = self.slab.index(key)?;
        self.unplace(index);
        Some(self.slab.remove(index))
    }

    /// Whether the timer is pending (not fired, not removed).
    pub fn contains(&self, key: Key) -> bool {
        self.slab.index(key).is_some()
    }

    /// Moves the timer to tick `when` (behind others due at that tick); `false` if the
    /// key is stale.
    pub fn reset(&mut self, key: Key, when: u64) -> bool {
        let Some(index) = self.slab.index(key) else {
            return false;
        };
        self.unplace(index);
        self.slab.node_mut(index).when = when.min(MAX_TICK);
        self.place(index);
        true
    }

    /// The value of a pending timer.
    pub fn get(&self, key: Key) -> Option<&T> {
        self.slab.index(key).map(|i| self.slab.value(i))
    }

    /// The deadline of a pending timer.
    pub fn deadline(&self, key: Key) -> Option<u64> {
        self.slab.index(key).map(|i| self.slab.node(i).when)
    }

    /// A tick at which `poll_expired` may have something to return: never later than
    /// the earliest deadline, possibly earlier (the start of a higher level's slot,
    /// which only moves timers down). `None` when no timer is pending.
    pub fn next_deadline(&self) -> Option<u64> {
        if !self.due.is_empty() {
            return Some(self.elapsed);
        }
        self.next_expiration().map(|e| e.deadline)
    }

    /// The next timer due at or before `now`, earliest deadline first; `None` when none
    /// is due. Advances the wheel to `now` (the wheel never moves back).
    pub fn poll_expired(&mut self, now: u64) -> Option<Expired<T>> {
        loop {
            if let Some(index) = self.slab.pop_front(&mut self.due) {
                let key = self.slab.key(index);
                let deadline = self.slab.node(index).when;
                let value = self.slab.remove(index);
                return Some(Expired { value, deadline, key });
            }
            match self.next_expiration() {
                Some(exp) if exp.deadline <= now => self.process(exp),
                _ => {
                    self.elapsed = self.elapsed.max(now.min(MAX_TICK));
                    return None;
                }
            }
        }
    }

    /// The first occupied slot: lower levels always come due before higher ones, since
    /// a level-`l` timer shares every digit above `l` with `elapsed`.
    fn next_expiration(&self) -> Option<Expiration> {
        let found = self.levels.iter().find_map(|l| l.next_expiration(self.elapsed));
        found.or_else(|| {
            (!self.overflow.is_empty()).then(|| Expiration {
                level: LEVELS,
                slot: 0,
                deadline: (self.elapsed | (HORIZON - 1)) + 1,
            })
        })
    }

    /// Empties the slot of `exp`, moving the wheel to its first tick.
    fn process(&mut self, exp: Expiration) {
        debug_assert!(
            exp.deadline >= self.elapsed,
            "slot {exp:?} lies behind elapsed {}",
            self.elapsed
        );
        self.elapsed = exp.deadline;
        let mut list = match exp.level {
            LEVELS => std::mem::take(&mut self.overflow),
            level => self.levels[level].take(exp.slot),
        };
        while let Some(index) = self.slab.pop_front(&mut list) {
            self.place(index);
            debug_assert!(
                match self.slab.node(index).place {
                    Place::Slot { level, .. } => (level as usize) < exp.level,
                    Place::Overflow => exp.level == LEVELS,
                    Place::Due => true,
                    Place::Free => false,
                },
                "timer due at {} from {exp:?} placed at {:?}, elapsed {}",
                self.slab.node(index).when,
                self.slab.node(index).place,
                self.elapsed
            );
        }
    }

    /// Links an unlinked node where its deadline says.
    fn place(&mut self, index: u32) {
        let when = self.slab.node(index).when;
        if when <= self.elapsed {
            return self.slab.push_back(&mut self.due, index, Place::Due);
        }
        let level = level_for(self.elapsed, when);
        if level >= LEVELS {
            return self.slab.push_back(&mut self.overflow, index, Place::Overflow);
        }
        let slot = slot_for(level, when);
        let lvl = &mut self.levels[level];
        self.slab.push_back(
            &mut lvl.slots[slot],
            index,
            Place::Slot {
                level: level as u8,
                slot: slot as u8,
            },
        );
        lvl.occupy(slot);
    }

    /// Unlinks a node from wherever it is.
    fn unplace(&mut self, index: u32) {
        match self.slab.node(index).place {
            Place::Slot { level, slot } => {
                let lvl = &mut self.levels[level as usize];
                self.slab.unlink(&mut lvl.slots[slot as usize], index);
                lvl.vacate_if_empty(slot as usize);
            }
            Place::Overflow => self.slab.unlink(&mut self.overflow, index),
            Place::Due => self.slab.unlink(&mut self.due, index),
            Place::Free => unreachable!("live node {index} is not linked"),
        }
    }
}

impl<T> std::fmt::Debug for Wheel<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wheel")
            .field("elapsed", &self.elapsed)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
