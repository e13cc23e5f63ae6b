//! The lease decisions, as pure functions of what was read or returned, the time and
//! (for jitter) a random source: whose lease it is, whether to take it over, and what a
//! finished request means for holding it and for the next look.
//!
//! The worker's async code only reads the clock and the apiserver and acts on these
//! answers, so every rule here is tested by tables, without a client or a runtime.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::LeaseSpec;
use rand::Rng;
use tokio::time::Instant;

/// What to do with a node's Lease as read before writing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRead {
    /// There is none: create it.
    Create,
    /// Ours already: renew it as read.
    Renew,
    /// Nobody's, or its holder let it expire: take it over (we become the holder and
    /// the transitions count goes up).
    TakeOver,
    /// Another holder has it, unexpired, for this long yet: leave it and look again then.
    LeaveFor(Duration),
}

/// What to do with the Lease read, `spec` (`None`: there is no Lease), when we are
/// `holder` and it is `now`. With `handover` (`--scale-out`: leases are renewed every
/// `handover`, and the member table dealt us this node), a Lease another holder has let
/// go un-renewed past [`kwok_members::handover::may_take_over`] is taken over before
/// it expires: its holder's table no longer gives it the node.
pub fn on_read(spec: Option<&LeaseSpec>, holder: &str, now: Timestamp, handover: Option<Duration>) -> OnRead {
    let Some(spec) = spec else {
        return OnRead::Create;
    };
    let current = spec.holder_identity.as_deref().unwrap_or("");
    if current == holder {
        return OnRead::Renew;
    }
    let seconds = spec.lease_duration_seconds.unwrap_or(0).max(0) as u64;
    let expires = spec
        .renew_time
        .as_ref()
        .map(|r| r.0 + Duration::from_secs(seconds));
    match expires {
        Some(expires) if !current.is_empty() && expires > now => {
            let left = Duration::try_from(expires.duration_since(now)).unwrap_or_default();
            let Some(interval) = handover else {
                return OnRead::LeaveFor(left);
            };
            let renewed = spec.renew_time.as_ref().map_or(now, |r| r.0);
            let since = Duration::try_from(now.duration_since(renewed)).unwrap_or_default();
            if kwok_members::handover::may_take_over(since, interval) {
                return OnRead::TakeOver;
            }
            // Look again when it would count as let go, unless it expires first.
            let let_go = kwok_members::handover::held_for(interval);
            OnRead::LeaveFor(left.min(let_go.saturating_sub(since)))
        }
        // No holder, no renewTime, or expired.
        _ => OnRead::TakeOver,
    }
}

/// How a request for a lease ended (the lease itself, if any, travels beside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Renewed, created or taken: we hold it.
    Written,
    /// It vanished or changed hands since our last write: read it before writing again.
    Lost,
    /// Another holder has it for this long yet.
    HeldElsewhere(Duration),
    /// The request failed (the apiserver away, a timeout).
    Failed,
}

/// What a finished request leaves: since when we hold the lease (`None`: we do not),
/// and how long until the next request for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Next {
    /// When our last successful write was sent (expiry counts from it), if we hold it.
    pub renewed: Option<Instant>,
    /// Wait before the next renewal or look.
    pub after: Duration,
}

/// After a failed request, the retry comes this soon.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// After seeing the lease held elsewhere, look again this long past its expiry.
pub const LOOK_AFTER_EXPIRY: Duration = Duration::from_millis(100);

/// What a request for a lease of `duration` that was sent at `sent` and `ended` so
/// means, at `now`, for a lease last renewed at `renewed` (`None`: not held).
pub fn next(
    ended: Ended,
    renewed: Option<Instant>,
    sent: Instant,
    now: Instant,
    duration: Duration,
    rng: &mut impl Rng,
) -> Next {
    match ended {
        // The renewTime it wrote, near enough: expiry is counted from it.
        Ended::Written => Next {
            renewed: Some(sent),
            after: jittered(duration / 4, rng),
        },
        Ended::Lost => Next {
            renewed: None,
            after: Duration::ZERO,
        },
        Ended::HeldElsewhere(left) => Next {
            renewed: None,
            after: left + LOOK_AFTER_EXPIRY,
        },
        // Keep what we had while a later renewal can still land before expiry; past
        // it, another controller may hold the lease: stop driving the node.
        Ended::Failed => Next {
            renewed: renewed.filter(|r| now.saturating_duration_since(*r) < duration),
            after: RETRY_AFTER,
        },
    }
}

/// `interval` minus up to 4% jitter, so renewals spread out and never drift late.
pub fn jittered(interval: Duration, rng: &mut impl Rng) -> Duration {
    let spread = interval.as_millis() as u64 / 25;
    interval - Duration::from_millis(rng.random_range(0..=spread))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use rand::{SeedableRng, rngs::SmallRng};

    use super::*;

    fn spec(
        holder: Option<&str>,
        renewed_secs_ago: Option<i64>,
        duration: Option<i32>,
        now: Timestamp,
    ) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            renew_time: renewed_secs_ago.map(|s| MicroTime(now - jiff::SignedDuration::from_secs(s))),
            lease_duration_seconds: duration,
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn on_read_should_take_only_what_nobody_else_holds_unexpired() {
        let now: Timestamp = "2026-12-03T12:00:00Z".parse().unwrap();
        let secs = Duration::from_secs;
        let cases: [(&str, Option<LeaseSpec>, OnRead); 9] = [
            ("no lease", None, OnRead::Create),
            (
                "ours, fresh",
                Some(spec(Some("us"), Some(1), Some(40), now)),
                OnRead::Renew,
            ),
            (
                "ours, expired",
                Some(spec(Some("us"), Some(100), Some(40), now)),
                OnRead::Renew,
            ),
            (
                "theirs, 10 s into 40",
                Some(spec(Some("them"), Some(10), Some(40), now)),
                OnRead::LeaveFor(secs(30)),
            ),
            (
                "theirs, expired",
                Some(spec(Some("them"), Some(41), Some(40), now)),
                OnRead::TakeOver,
            ),
            (
                "theirs, expiring now",
                Some(spec(Some("them"), Some(40), Some(40), now)),
                OnRead::TakeOver,
            ),
            (
                "theirs, never renewed",
                Some(spec(Some("them"), None, Some(40), now)),
                OnRead::TakeOver,
            ),
            (
                "theirs, no duration",
                Some(spec(Some("them"), Some(0), None, now)),
                OnRead::TakeOver,
            ),
            (
                "nobody's, fresh",
                Some(spec(None, Some(1), Some(40), now)),
                OnRead::TakeOver,
            ),
        ];
        for (name, spec, want) in cases {
            assert_eq!(on_read(spec.as_ref(), "us", now, None), want, "{name}");
        }
    }

    /// `--scale-out`: a Lease the member table moved to us is taken over once its
    /// holder has let it go un-renewed for a renewal interval and a half (15 s for a
    /// 40 s Lease renewed every 10 s), not only at expiry.
    #[test]
    fn on_read_with_handover_should_take_over_a_lease_let_go_before_it_expires() {
        let now: Timestamp = "2026-12-03T12:00:00Z".parse().unwrap();
        let interval = Some(Duration::from_secs(10));
        let secs = Duration::from_secs;
        let cases = [
            ("renewed 2 s ago", 2, OnRead::LeaveFor(secs(13))),
            ("renewed 14 s ago", 14, OnRead::LeaveFor(secs(1))),
            ("renewed 15 s ago", 15, OnRead::TakeOver),
            ("renewed 30 s ago", 30, OnRead::TakeOver),
        ];
        for (name, ago, want) in cases {
            let spec = spec(Some("them"), Some(ago), Some(40), now);
            assert_eq!(on_read(Some(&spec), "us", now, interval), want, "{name}");
        }
        let ours = spec(Some("us"), Some(2), Some(40), now);
        assert_eq!(on_read(Some(&ours), "us", now, interval), OnRead::Renew);
        // A short Lease expires before it counts as let go: looked at again at expiry.
        let short = spec(Some("them"), Some(2), Some(8), now);
        assert_eq!(
            on_read(Some(&short), "us", now, interval),
            OnRead::LeaveFor(secs(6))
        );
    }

    #[test]
    fn next_should_hold_until_expiry_and_say_when_to_look_again() {
        let now = Instant::now();
        let duration = Duration::from_secs(40);
        let secs = Duration::from_secs;
        let ago = |s| now - secs(s);
        let mut rng = SmallRng::seed_from_u64(1);
        // (case, ended, renewed before, sent, want renewed, want after; None: jittered interval)
        let cases = [
            (
                "renewed",
                Ended::Written,
                Some(ago(10)),
                ago(1),
                Some(ago(1)),
                None,
            ),
            ("acquired", Ended::Written, None, ago(1), Some(ago(1)), None),
            (
                "lost",
                Ended::Lost,
                Some(ago(10)),
                ago(1),
                None,
                Some(Duration::ZERO),
            ),
            (
                "held elsewhere",
                Ended::HeldElsewhere(secs(30)),
                None,
                ago(1),
                None,
                Some(secs(30) + LOOK_AFTER_EXPIRY),
            ),
            (
                "failed before expiry",
                Ended::Failed,
                Some(ago(39)),
                ago(1),
                Some(ago(39)),
                Some(RETRY_AFTER),
            ),
            (
                "failed at expiry",
                Ended::Failed,
                Some(ago(40)),
                ago(1),
                None,
                Some(RETRY_AFTER),
            ),
            (
                "failed, never held",
                Ended::Failed,
                None,
                ago(1),
                None,
                Some(RETRY_AFTER),
            ),
        ];
        for (name, ended, renewed, sent, want_renewed, want_after) in cases {
            let got = next(ended, renewed, sent, now, duration, &mut rng);
            assert_eq!(got.renewed, want_renewed, "{name}");
            match want_after {
                Some(after) => assert_eq!(got.after, after, "{name}"),
                None => assert!(
                    (secs(9600) / 1000..=secs(10)).contains(&got.after),
                    "{name}: {:?}",
                    got.after
                ),
            }
        }
    }

    #[test]
    fn jittered_should_stay_within_four_percent_below() {
        let mut rng = SmallRng::seed_from_u64(7);
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(10), &mut rng);
            assert!(
                d <= Duration::from_secs(10) && d >= Duration::from_millis(9600),
                "{d:?}"
            );
        }
    }
}
