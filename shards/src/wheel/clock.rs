//! The wheel's link to tokio's clock: instants as millisecond ticks, and one `Sleep`
//! that follows the wheel's next deadline.

use std::{pin::Pin, time::Duration};

use tokio::time::{Instant, Sleep};

use super::MAX_TICK;

/// Maps tokio instants to the wheel's millisecond ticks, counted from `origin`.
///
/// Deadlines round up and the present rounds down, so a timer never fires early.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// Ticks counted from `origin`.
    pub fn new(origin: Instant) -> Self {
        Self { origin }
    }

    /// The tick of a deadline (rounded up).
    pub fn deadline_tick(&self, at: Instant) -> u64 {
        let d = at.saturating_duration_since(self.origin);
        let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
        u64::try_from(ms).unwrap_or(MAX_TICK).min(MAX_TICK)
    }

    /// The tick of `delay` after `now` (rounded up; an overflowing sum is "never").
    pub fn tick_after(&self, now: Instant, delay: Duration) -> u64 {
        now.checked_add(delay)
            .map_or(MAX_TICK, |at| self.deadline_tick(at))
    }

    /// The tick of the present moment `now` (rounded down).
    pub fn now_tick(&self, now: Instant) -> u64 {
        let ms = now.saturating_duration_since(self.origin).as_millis();
        u64::try_from(ms).unwrap_or(MAX_TICK).min(MAX_TICK)
    }

    /// The instant tick `tick` begins; far ticks map to a far instant (a year on).
    pub fn instant(&self, tick: u64) -> Instant {
        let far = || Instant::now() + Duration::from_secs(365 * 86_400);
        self.origin
            .checked_add(Duration::from_millis(tick))
            .unwrap_or_else(far)
    }
}

/// One `Sleep` re-armed to a wheel's next deadline: a task owning a wheel needs no
/// `Sleep` per timer, only this one (allocated once).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use kwok_shards::wheel::{Alarm, Clock, Wheel};
/// use tokio::time::Instant;
///
/// let clock = Clock::new(Instant::now());
/// let mut wheel = Wheel::with_capacity(1);
/// wheel.insert("tick", 1_500);
/// let mut alarm = Alarm::new();
/// alarm.arm(&clock, wheel.next_deadline());
/// while alarm.is_armed() {
///     alarm.fired().await;
///     let now = clock.now_tick(Instant::now());
///     if let Some(expired) = wheel.poll_expired(now) {
///         assert_eq!((expired.value, now), ("tick", 1_500));
///     }
///     alarm.arm(&clock, wheel.next_deadline());
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Alarm {
    sleep: Pin<Box<Sleep>>,
    /// The tick the sleep is set for; `None` when idle or just fired.
    armed: Option<u64>,
}

impl Default for Alarm {
    fn default() -> Self {
        Self::new()
    }
}

impl Alarm {
    /// An idle alarm.
    pub fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
            armed: None,
        }
    }

    /// Sets the alarm for tick `next` (a wheel's `next_deadline()`); `None` idles it.
    /// Cheap when `next` is unchanged.
    pub fn arm(&mut self, clock: &Clock, next: Option<u64>) {
        if next == self.armed {
            return;
        }
        if let Some(tick) = next {
            self.sleep.as_mut().reset(clock.instant(tick));
        }
        self.armed = next;
    }

    /// Whether a deadline is set; guard `fired()` in a `select!` with it.
    pub fn is_armed(&self) -> bool {
        self.armed.is_some()
    }

    /// Completes at the armed deadline; the alarm is then idle until armed again.
    pub async fn fired(&mut self) {
        (&mut self.sleep).await;
        self.armed = None;
    }
}
