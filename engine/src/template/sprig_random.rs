//! Sprig's random functions: `randAlphaNum`, `randAlpha`, `randNumeric`, `randAscii`,
//! `randInt` and `uuidv4`, drawing from [`Host::random_u64`] (never a global generator).

use super::{
    sprig::want_int,
    value::{FnResult, Val},
};
use crate::host::Host;

/// The longest random string a template may ask for.
const MAX_RANDOM_LEN: i64 = 1 << 20;

/// The characters a random string is drawn from.
#[derive(Debug, Clone, Copy)]
pub enum Charset {
    /// `randAlphaNum`: `[a-zA-Z0-9]`.
    AlphaNum,
    /// `randAlpha`: `[a-zA-Z]`.
    Alpha,
    /// `randNumeric`: `[0-9]`.
    Numeric,
    /// `randAscii`: printable ASCII, space to `~`.
    Ascii,
}

const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const ALPHANUMERIC: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const DIGITS: &[u8] = b"0123456789";

impl Charset {
    fn pick(self, host: &mut dyn Host) -> char {
        let mut from = |set: &[u8]| char::from(set[below(host, set.len() as u64) as usize]);
        match self {
            Charset::AlphaNum => from(ALPHANUMERIC),
            Charset::Alpha => from(LETTERS),
            Charset::Numeric => from(DIGITS),
            Charset::Ascii => char::from(b' ' + below(host, u64::from(b'~' - b' ' + 1)) as u8),
        }
    }
}

/// A uniform number in `0..n` (`n > 0`), by rejecting the draws that would bias it.
fn below(host: &mut dyn Host, n: u64) -> u64 {
    debug_assert!(n > 0, "below(0)");
    // The largest multiple of `n` that fits; draws at or past it are redrawn.
    let zone = u64::MAX - (u64::MAX - n + 1) % n;
    loop {
        let r = host.random_u64();
        if r <= zone {
            return r % n;
        }
    }
}

/// `randAlphaNum n` and friends: `n` random characters (`""` for a negative `n`, as
/// sprig, which drops the error).
pub fn string<'a>(count: &Val<'a>, charset: Charset, host: &mut dyn Host) -> FnResult<'a> {
    let n = want_int(count)?;
    if n > MAX_RANDOM_LEN {
        return Err(format!("{n} random characters are more than {MAX_RANDOM_LEN}"));
    }
    Ok(Val::text((0..n).map(|_| charset.pick(host)).collect::<String>()))
}

/// `randInt min max`: a number in `min..max`; fails when the range is empty, as Go's
/// `rand.Intn` panics.
pub fn int<'a>(min: &Val<'a>, max: &Val<'a>, host: &mut dyn Host) -> FnResult<'a> {
    let (min, max) = (want_int(min)?, want_int(max)?);
    match max.checked_sub(min) {
        Some(span) if span > 0 => Ok(Val::Int(min + below(host, span as u64) as i64)),
        _ => Err("invalid argument to Intn".into()),
    }
}

/// `uuidv4`: a random (version 4) UUID in its hyphenated form.
pub fn uuid_v4<'a>(host: &mut dyn Host) -> FnResult<'a> {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&host.random_u64().to_le_bytes());
    bytes[8..].copy_from_slice(&host.random_u64().to_le_bytes());
    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    Ok(Val::text(id.hyphenated().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::FixedHost;

    fn host() -> FixedHost {
        FixedHost::new(jiff::Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn random_strings_should_draw_only_from_their_charset() {
        let mut host = host();
        let cases = [
            (Charset::AlphaNum, ALPHANUMERIC),
            (Charset::Alpha, LETTERS),
            (Charset::Numeric, DIGITS),
        ];
        for (charset, set) in cases {
            let s = string(&Val::Int(200), charset, &mut host).unwrap();
            let s = s.as_str().unwrap();
            assert_eq!(s.len(), 200);
            assert!(s.bytes().all(|b| set.contains(&b)), "{charset:?}: {s}");
        }
        let s = string(&Val::Int(200), Charset::Ascii, &mut host).unwrap();
        assert!(s.as_str().unwrap().bytes().all(|b| (b' '..=b'~').contains(&b)));
        assert_eq!(
            string(&Val::Int(-1), Charset::Alpha, &mut host).unwrap().as_str(),
            Some("")
        );
    }

    #[test]
    fn rand_int_should_stay_in_its_half_open_range() {
        let mut host = host();
        for _ in 0..100 {
            let Val::Int(i) = int(&Val::Int(-2), &Val::Int(3), &mut host).unwrap() else {
                panic!("not an int");
            };
            assert!((-2..3).contains(&i), "{i}");
        }
        assert_eq!(
            int(&Val::Int(5), &Val::Int(5), &mut host).unwrap_err(),
            "invalid argument to Intn"
        );
    }

    #[test]
    fn uuid_v4_should_set_the_version_and_variant_bits() {
        let v = uuid_v4(&mut host()).unwrap();
        let s = v.as_str().unwrap();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4", "{s}");
        assert!("89ab".contains(&s[19..20]), "{s}");
    }
}
