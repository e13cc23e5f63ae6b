//! Sprig's date functions: `now`, `date`, `dateInZone`, `htmlDate`, `htmlDateInZone`,
//! `toDate`, `mustToDate`, `unixEpoch`, `dateModify`, `mustDateModify`, `duration`,
//! `durationRound` and `ago`.
//!
//! Templates have no time type: a time is its RFC 3339 text with nanoseconds as needed
//! (Go's `time.RFC3339Nano`, `2024-05-06T07:08:09.12345Z`), which is also how Go
//! marshals a `time.Time` to JSON and YAML. Every function taking a date reads that
//! text, or an integer as Unix seconds. The clock is [`Host::now`]; the engine has no
//! local zone, so Go's `time.Local` is UTC.

use jiff::{SignedDuration, Timestamp, Zoned, tz::TimeZone};

use super::{
    go_duration, go_time,
    go_time::RFC3339_NANO,
    sprig::want_str,
    value::{FnResult, Val, View},
};
use crate::host::Host;

/// `time.Time{}`: what `toDate` gives for text it cannot read.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `htmlDate`'s layout.
const HTML_DATE: &str = "2006-01-02";

/// How a `must…` function differs from its plain twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// The plain function swallows the error (`toDate` gives the zero time,
    /// `dateModify` the date unchanged).
    Fallback,
    /// The `must…` function fails.
    Fail,
}

fn text<'a>(t: &Zoned) -> Val<'a> {
    Val::text(go_time::format(RFC3339_NANO, t))
}

/// The time `v` holds: time text, or Unix seconds; `None` for anything else.
fn time_of(v: &Val<'_>) -> Option<Zoned> {
    match v.view() {
        View::Str(s) => go_time::parse(RFC3339_NANO, s).ok(),
        view => Timestamp::from_second(view.as_i64()?)
            .ok()
            .map(|t| t.to_zoned(TimeZone::UTC)),
    }
}

/// A date argument as sprig's `date` reads one: anything not a time means now.
fn time_or_now(v: &Val<'_>, host: &mut dyn Host) -> Zoned {
    time_of(v).unwrap_or_else(|| host.now().to_zoned(TimeZone::UTC))
}

/// A `time.Time` argument: anything else is a type error.
fn want_time(v: &Val<'_>) -> Result<Zoned, String> {
    time_of(v).ok_or_else(|| format!("wrong type for value; expected time.Time; got {}", v.type_name()))
}

/// `time.LoadLocation(name)`, UTC when unknown (as sprig falls back); `Local` is UTC.
fn zone(name: &str) -> TimeZone {
    match name {
        "" | "UTC" | "Local" => TimeZone::UTC,
        name => TimeZone::get(name).unwrap_or(TimeZone::UTC),
    }
}

/// `now`: the host's clock, as time text.
pub fn now<'a>(host: &mut dyn Host) -> FnResult<'a> {
    Ok(text(&host.now().to_zoned(TimeZone::UTC)))
}

/// `dateInZone layout date zone` (and `date layout date`, `htmlDate date`,
/// `htmlDateInZone date zone` with `zone` or the layout fixed).
pub fn date_in_zone<'a>(
    layout: &Val<'a>,
    date: &Val<'a>,
    zone_name: &str,
    host: &mut dyn Host,
) -> FnResult<'a> {
    let t = time_or_now(date, host).with_time_zone(zone(zone_name));
    Ok(Val::text(go_time::format(want_str(layout)?, &t)))
}

/// `date layout date`: in Go's `Local` zone, UTC here.
pub fn date<'a>(layout: &Val<'a>, date: &Val<'a>, host: &mut dyn Host) -> FnResult<'a> {
    date_in_zone(layout, date, "Local", host)
}

/// `dateInZone layout date zone`.
pub fn date_in_named_zone<'a>(a: &[Val<'a>], host: &mut dyn Host) -> FnResult<'a> {
    date_in_zone(&a[0], &a[1], want_str(&a[2])?, host)
}

/// `htmlDate date` / `htmlDateInZone date zone`: `2006-01-02`.
pub fn html_date<'a>(date: &Val<'a>, zone_name: Option<&Val<'a>>, host: &mut dyn Host) -> FnResult<'a> {
    let zone_name = zone_name.map_or(Ok("Local"), want_str)?;
    date_in_zone(&Val::Str(HTML_DATE), date, zone_name, host)
}

/// `toDate layout text` / `mustToDate`: `text` read by the Go `layout`.
pub fn to_date<'a>(layout: &Val<'a>, value: &Val<'a>, on_error: OnError) -> FnResult<'a> {
    match go_time::parse(want_str(layout)?, want_str(value)?) {
        Ok(t) => Ok(text(&t)),
        Err(_) if on_error == OnError::Fallback => Ok(Val::Str(ZERO_TIME)),
        Err(e) => Err(e),
    }
}

/// `unixEpoch date`: its Unix seconds, as text.
pub fn unix_epoch<'a>(date: &Val<'a>) -> FnResult<'a> {
    Ok(Val::text(want_time(date)?.timestamp().as_second().to_string()))
}

/// `dateModify duration date` / `mustDateModify`: `date` moved by a Go duration.
pub fn date_modify<'a>(duration: &Val<'a>, date: &Val<'a>, on_error: OnError) -> FnResult<'a> {
    let t = want_time(date)?;
    let nanos = match go_duration::parse(want_str(duration)?) {
        Ok(n) => n,
        Err(_) if on_error == OnError::Fallback => return Ok(text(&t)),
        Err(e) => return Err(e),
    };
    let moved = t
        .checked_add(SignedDuration::from_nanos(nanos))
        .map_err(|e| e.to_string())?;
    Ok(text(&moved))
}

/// `duration seconds`: the seconds (a number or its decimal text; else 0) as a Go
/// duration, `1m35s`.
pub fn duration<'a>(seconds: &Val<'a>) -> FnResult<'a> {
    let n = match seconds.view() {
        View::Str(s) => s.parse().unwrap_or(0),
        view => view.as_i64().unwrap_or(0),
    };
    Ok(Val::text(go_duration::format(n.wrapping_mul(1_000_000_000))))
}

/// `durationRound d`: `d` (a Go duration, a number of nanoseconds, or a time, meaning
/// the time since it) in its largest whole unit: `2h`, `16d`, `1y` (years of 365 days,
/// months of 30); `0s` under two seconds.
pub fn duration_round<'a>(d: &Val<'a>, host: &mut dyn Host) -> FnResult<'a> {
    let nanos = match d.view() {
        View::Str(s) => go_duration::parse(s)
            .ok()
            .or_else(|| time_of(d).map(|t| since(&t, host)))
            .unwrap_or(0),
        view => view.as_i64().unwrap_or(0),
    };
    const UNITS: [(&str, u64); 6] = [
        ("y", 365 * 86_400),
        ("mo", 30 * 86_400),
        ("d", 86_400),
        ("h", 3_600),
        ("m", 60),
        ("s", 1),
    ];
    let u = nanos.unsigned_abs();
    let text = UNITS
        .iter()
        .map(|(name, seconds)| (name, seconds * 1_000_000_000))
        .find(|(_, unit)| u > *unit)
        .map_or_else(|| "0s".to_owned(), |(name, unit)| format!("{}{name}", u / unit));
    Ok(Val::text(text))
}

/// Nanoseconds from `t` to the host's now, saturating.
fn since(t: &Zoned, host: &mut dyn Host) -> i64 {
    let d = host.now().duration_since(t.timestamp());
    i64::try_from(d.as_nanos()).unwrap_or(if d.is_negative() { i64::MIN } else { i64::MAX })
}

/// `ago date`: the time since `date`, to the second, as a Go duration (`0s` when `date`
/// is not a time).
pub fn ago<'a>(date: &Val<'a>, host: &mut dyn Host) -> FnResult<'a> {
    let elapsed = since(&time_or_now(date, host), host);
    Ok(Val::text(go_duration::format(go_duration::round(
        elapsed,
        1_000_000_000,
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::FixedHost;

    fn host() -> FixedHost {
        FixedHost::new("2024-05-06T07:08:09.5Z".parse().unwrap())
    }

    fn s(v: FnResult<'_>) -> String {
        v.unwrap().as_str().unwrap().to_owned()
    }

    #[test]
    fn dates_should_format_in_the_named_zone() {
        let mut host = host();
        let t = Val::Int(1_700_000_000);
        assert_eq!(
            s(date(&Val::Str("2006-01-02T15:04:05Z07:00"), &t, &mut host)),
            "2023-11-14T22:13:20Z"
        );
        let layout = Val::Str("2006-01-02 15:04 MST");
        let bad = [
            Val::Str("2006-01-02 15:04 MST"),
            t.clone(),
            Val::Str("Nowhere/Bad"),
        ];
        assert_eq!(s(date_in_named_zone(&bad, &mut host)), "2023-11-14 22:13 UTC");
        if TimeZone::get("Europe/Paris").is_ok() {
            let paris = [layout, t, Val::Str("Europe/Paris")];
            assert_eq!(s(date_in_named_zone(&paris, &mut host)), "2023-11-14 23:13 CET");
        }
    }

    #[test]
    fn durations_should_print_like_sprig() {
        // Recorded from sprig v3.3.0.
        assert_eq!(s(duration(&Val::Str("95"))), "1m35s");
        assert_eq!(s(duration(&Val::Str("3661"))), "1h1m1s");
        let mut host = host();
        let cases = [
            ("2h10m5s", "2h"),
            ("400h", "16d"),
            ("9000h", "1y"),
            ("-25h", "1d"),
            ("1s", "0s"),
            ("bad", "0s"),
        ];
        for (d, want) in cases {
            assert_eq!(s(duration_round(&Val::Str(d), &mut host)), want, "{d}");
        }
    }

    #[test]
    fn ago_should_count_from_the_host_clock() {
        let mut host = host();
        assert_eq!(s(ago(&Val::Str("2024-05-06T06:08:08Z"), &mut host)), "1h0m2s");
        assert_eq!(
            s(duration_round(&Val::Str("2024-05-03T07:08:09Z"), &mut host)),
            "3d"
        );
    }

    #[test]
    fn date_modify_should_keep_the_date_on_a_bad_duration_unless_must() {
        let day = Val::Str("2017-12-31T00:00:00Z");
        assert_eq!(
            s(date_modify(&Val::Str("-1h30m"), &day, OnError::Fallback)),
            "2017-12-30T22:30:00Z"
        );
        assert_eq!(
            s(date_modify(&Val::Str("bad"), &day, OnError::Fallback)),
            "2017-12-31T00:00:00Z"
        );
        assert_eq!(
            date_modify(&Val::Str("bad"), &day, OnError::Fail).unwrap_err(),
            "time: invalid duration \"bad\""
        );
    }
}
