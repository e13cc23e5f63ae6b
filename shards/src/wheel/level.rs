//! One level of the wheel: 64 slots, each a list of timers, and a bitfield of the
//! non-empty ones so the next occupied slot is one `trailing_zeros`.

use super::slab::List;

/// Levels in the wheel.
pub(super) const LEVELS: usize = 6;

/// Slots per level.
pub(super) const SLOTS: usize = 64;

/// log2(SLOTS): each level is one base-64 digit of the tick.
const BITS: u32 = 6;

/// Ticks the six levels span: 64^6 ms, about 2.2 years. Deadlines further from
/// `elapsed` than this wait in the overflow list.
pub(super) const HORIZON: u64 = 1 << (BITS * LEVELS as u32);

/// Where and when the next occupied slot comes due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Expiration {
    /// The level (`LEVELS` for the overflow list).
    pub(super) level: usize,
    pub(super) slot: usize,
    /// The first tick the slot covers.
    pub(super) deadline: u64,
}

pub(super) struct Level {
    /// Slots of this level span `64^level` ticks each.
    level: usize,
    /// Bit `s` is set iff `slots[s]` is non-empty.
    occupied: u64,
    pub(super) slots: [List; SLOTS],
}

/// Ticks one slot of `level` spans.
pub(super) fn slot_span(level: usize) -> u64 {
    1 << (BITS * level as u32)
}

/// The slot of `level` that tick `when` falls in.
pub(super) fn slot_for(level: usize, when: u64) -> usize {
    ((when >> (BITS * level as u32)) as usize) & (SLOTS - 1)
}

/// The level a timer due at `when` belongs in while the wheel stands at `elapsed`:
/// the highest base-64 digit in which they differ (0 if they are equal). `LEVELS` or
/// more means beyond the horizon.
pub(super) fn level_for(elapsed: u64, when: u64) -> usize {
    let masked = (elapsed ^ when) | (SLOTS as u64 - 1);
    let significant = 63 - masked.leading_zeros();
    (significant / BITS) as usize
}

// ===== impl Level =====

impl Level {
    pub(super) fn new(level: usize) -> Self {
        Self {
            level,
            occupied: 0,
            slots: [List::default(); SLOTS],
        }
    }

    pub(super) fn occupy(&mut self, slot: usize) {
        self.occupied |= 1 << slot;
    }

    /// Clears the slot's bit once its list is empty.
    pub(super) fn vacate_if_empty(&mut self, slot: usize) {
        if self.slots[slot].is_empty() {
            self.occupied &= !(1 << slot);
        }
    }

    /// Takes the whole list of `slot`, leaving it empty.
    pub(super) fn take(&mut self, slot: usize) -> List {
        self.occupied &= !(1 << slot);
        std::mem::take(&mut self.slots[slot])
    }

    /// The first occupied slot at or after `elapsed`'s slot.
    ///
    /// Occupied slots never lie behind `elapsed`'s slot: a timer sits at the level of
    /// its highest digit differing from `elapsed` (so that digit is larger), and a slot
    /// is emptied when `elapsed` reaches its first tick.
    pub(super) fn next_expiration(&self, elapsed: u64) -> Option<Expiration> {
        if self.occupied == 0 {
            return None;
        }
        let now_slot = slot_for(self.level, elapsed);
        debug_assert_eq!(
            self.occupied & ((1u64 << now_slot) - 1),
            0,
            "level {} has slots behind elapsed {elapsed} (slot {now_slot}): {:#066b}",
            self.level,
            self.occupied
        );
        let slot = self.occupied.trailing_zeros() as usize;
        let level_span = slot_span(self.level) * SLOTS as u64;
        let level_start = elapsed & !(level_span - 1);
        let deadline = level_start + slot as u64 * slot_span(self.level);
        Some(Expiration {
            level: self.level,
            slot,
            deadline,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_for_should_pick_the_highest_differing_digit() {
        let cases: &[(u64, u64, usize)] = &[
            (0, 0, 0),
            (0, 1, 0),
            (0, 63, 0),
            (0, 64, 1),
            (0, 4095, 1),
            (0, 4096, 2),
            (0, (1 << 18) - 1, 2),
            (0, 1 << 18, 3),
            (0, 1 << 24, 4),
            (0, 1 << 30, 5),
            (0, HORIZON - 1, 5),
            (0, HORIZON, 6),
            (63, 64, 1),
            (64, 127, 0),
            (4095, 4096, 2),
            (HORIZON - 1, HORIZON, 6),
            (HORIZON, HORIZON + 63, 0),
            (u64::MAX - 1, u64::MAX, 0),
        ];
        for &(elapsed, when, level) in cases {
            assert_eq!(level_for(elapsed, when), level, "level_for({elapsed}, {when})");
        }
    }

    #[test]
    fn slot_for_should_read_the_levels_digit() {
        assert_eq!(slot_for(0, 0), 0);
        assert_eq!(slot_for(0, 65), 1);
        assert_eq!(slot_for(1, 65), 1);
        assert_eq!(slot_for(1, 4095), 63);
        assert_eq!(slot_for(2, 4096 * 3 + 5), 3);
        assert_eq!(slot_for(5, HORIZON - 1), 63);
        assert_eq!(slot_for(5, HORIZON), 0);
    }

    #[test]
    fn next_expiration_should_be_the_start_of_the_first_occupied_slot() {
        let mut level = Level::new(1);
        assert_eq!(level.next_expiration(0), None);
        level.occupy(5);
        level.occupy(9);
        let exp = level.next_expiration(4096 * 2 + 70).unwrap();
        assert_eq!((exp.slot, exp.deadline), (5, 4096 * 2 + 5 * 64));
        level.take(5);
        assert_eq!(level.next_expiration(4096 * 2 + 5 * 64).unwrap().slot, 9);
    }
}
