//! Go's `time.Duration` text: `time.ParseDuration` (`"1h30m"`, `"-1.5s"`) and
//! `Duration.String` (`"1h2m3.5s"`, `"1.2ms"`), on signed nanoseconds.

/// Nanoseconds per unit, by the unit's spelling.
const UNITS: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

const SECOND: u64 = 1_000_000_000;

/// `time.ParseDuration`: an optional sign, then numbers each with a unit (`ns`, `us`,
/// `µs`, `ms`, `s`, `m`, `h`); `"0"` alone needs no unit.
pub fn parse(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration \"{text}\"");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let (nanos, after) = term(rest, text).map_err(|e| e.unwrap_or_else(invalid))?;
        total = total
            .checked_add(nanos)
            .filter(|t| *t <= 1 << 63)
            .ok_or_else(invalid)?;
        rest = after;
    }
    if negative {
        Ok((total as i64).wrapping_neg())
    } else {
        i64::try_from(total).map_err(|_| invalid())
    }
}

/// One `12.5ms` of a duration: its nanoseconds and the text after it. `Err(None)` is
/// "invalid duration"; `Err(Some(_))` a more precise message.
fn term<'t>(rest: &'t str, text: &str) -> Result<(u64, &'t str), Option<String>> {
    let digits = |s: &'t str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let int_len = digits(rest);
    let (int, after) = rest.split_at(int_len);
    let (fraction, after) = match after.strip_prefix('.') {
        Some(f) => f.split_at(digits(f)),
        None => ("", after),
    };
    if int.is_empty() && fraction.is_empty() {
        return Err(None);
    }
    let unit_len = after
        .find(|c: char| c == '.' || c.is_ascii_digit())
        .unwrap_or(after.len());
    let (unit, after) = after.split_at(unit_len);
    if unit.is_empty() {
        return Err(Some(format!("time: missing unit in duration \"{text}\"")));
    }
    let scale = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, n)| *n)
        .ok_or_else(|| Some(format!("time: unknown unit \"{unit}\" in duration \"{text}\"")))?;
    let whole: u64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| None)?
    };
    let mut nanos = whole.checked_mul(scale).filter(|n| *n <= 1 << 63).ok_or(None)?;
    if !fraction.is_empty() {
        // Go's float step: the fraction's value times the unit, truncated.
        let f: f64 = format!("0.{fraction}").parse().map_err(|_| None)?;
        nanos = nanos
            .checked_add((f * scale as f64) as u64)
            .filter(|n| *n <= 1 << 63)
            .ok_or(None)?;
    }
    Ok((nanos, after))
}

/// `Duration.String`: `h`, `m` and fractional `s` from a second up; below it the one
/// unit (`ns`, `µs`, `ms`) that keeps a whole part; `"0s"` for zero.
pub fn format(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    if u == 0 {
        return "0s".into();
    }
    if u < SECOND {
        let (unit, scale) = match u {
            0..1_000 => ("ns", 1),
            1_000..1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{sign}{}{unit}", decimal(u, scale));
    }
    let seconds = decimal(u % (60 * SECOND), SECOND);
    let minutes = u / (60 * SECOND);
    match (minutes / 60, minutes % 60) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}

/// `u / scale` with its fraction, trailing zeros and a bare point dropped.
fn decimal(u: u64, scale: u64) -> String {
    let (whole, fraction) = (u / scale, u % scale);
    if fraction == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// `Duration.Round(multiple)`: to the nearest multiple, halves away from zero.
pub fn round(nanos: i64, multiple: i64) -> i64 {
    debug_assert!(multiple > 0, "round to {multiple}");
    let r = nanos % multiple;
    let half_or_more = r.unsigned_abs() * 2 >= multiple.unsigned_abs();
    match (half_or_more, nanos < 0) {
        (false, _) => nanos - r,
        (true, false) => nanos.saturating_add(multiple - r),
        (true, true) => nanos.saturating_sub(multiple + r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_should_read_go_durations() {
        let cases = [
            ("1.5h", 5_400 * SECOND as i64),
            ("-1h30m", -5_400 * SECOND as i64),
            ("0", 0),
            ("+2s", 2 * SECOND as i64),
            ("1µs", 1_000),
            (".5ms", 500_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
        assert_eq!(parse("bad"), Err("time: invalid duration \"bad\"".into()));
        assert_eq!(parse("1"), Err("time: missing unit in duration \"1\"".into()));
        assert_eq!(
            parse("1d"),
            Err("time: unknown unit \"d\" in duration \"1d\"".into())
        );
        assert!(parse("9999999999h").is_err());
    }

    #[test]
    fn format_should_print_like_go_duration_string() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (1_200_000, "1.2ms"),
            (95 * SECOND as i64, "1m35s"),
            (3_661 * SECOND as i64, "1h1m1s"),
            (3_600 * SECOND as i64, "1h0m0s"),
            (-1_500_000_000, "-1.5s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(format(nanos), want, "{nanos}");
        }
    }

    #[test]
    fn round_should_take_halves_away_from_zero() {
        let s = SECOND as i64;
        assert_eq!(round(s + s / 2, s), 2 * s);
        assert_eq!(round(s + s / 2 - 1, s), s);
        assert_eq!(round(-s - s / 2, s), -2 * s);
        assert_eq!(round(-s - 1, s), -s);
    }
}
