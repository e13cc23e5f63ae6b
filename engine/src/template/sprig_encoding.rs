//! Sprig's encodings: `b64enc`, `b64dec`, `b32enc`, `b32dec` (standard alphabets, padded).

use std::sync::LazyLock;

use data_encoding::{BASE32, BASE64, DecodeError, DecodeKind, Encoding};

use super::{
    sprig::want_str,
    value::{FnResult, Val},
};

/// Which of Go's standard encodings.
#[derive(Debug, Clone, Copy)]
pub enum Base {
    /// `base64.StdEncoding`.
    B64,
    /// `base32.StdEncoding`.
    B32,
}

/// Go's decoders skip `\r` and `\n` and, not being strict, ignore the bits a final
/// symbol carries past the data.
fn lenient(base: &Encoding) -> Encoding {
    let mut spec = base.specification();
    spec.ignore.push_str("\r\n");
    spec.check_trailing_bits = false;
    spec.encoding().expect("a standard alphabet stays valid")
}

static LENIENT_B64: LazyLock<Encoding> = LazyLock::new(|| lenient(&BASE64));
static LENIENT_B32: LazyLock<Encoding> = LazyLock::new(|| lenient(&BASE32));

impl Base {
    fn strict(self) -> Encoding {
        match self {
            Base::B64 => BASE64,
            Base::B32 => BASE32,
        }
    }

    fn lenient(self) -> &'static Encoding {
        match self {
            Base::B64 => &LENIENT_B64,
            Base::B32 => &LENIENT_B32,
        }
    }

    /// Go's `CorruptInputError` text. Go blames the end of padded input whose length
    /// is wrong; data-encoding the start of the last block.
    fn error(self, e: DecodeError, input: &str) -> String {
        let name = match self {
            Base::B64 => "base64",
            Base::B32 => "base32",
        };
        let at = match e.kind {
            DecodeKind::Length if input.ends_with('=') => input.len(),
            _ => e.position,
        };
        format!("illegal {name} data at input byte {at}")
    }
}

/// `b64enc s` / `b32enc s`.
pub fn encode<'a>(s: &Val<'a>, base: Base) -> FnResult<'a> {
    Ok(Val::text(base.strict().encode(want_str(s)?.as_bytes())))
}

/// `b64dec s` / `b32dec s`: the decoded text; as in sprig, the error message itself
/// when `s` is not valid (bytes that are not UTF-8 become U+FFFD).
pub fn decode<'a>(s: &Val<'a>, base: Base) -> FnResult<'a> {
    let input = want_str(s)?;
    Ok(Val::text(match base.lenient().decode(input.as_bytes()) {
        Ok(bytes) => {
            String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        }
        Err(e) => base.error(e, input),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str, base: Base) -> String {
        decode(&Val::Str(s), base).unwrap().as_str().unwrap().to_owned()
    }

    #[test]
    fn encodings_should_round_trip_go_outputs() {
        let enc = |s, b| encode(&Val::Str(s), b).unwrap().as_str().unwrap().to_owned();
        assert_eq!(enc("hello", Base::B64), "aGVsbG8=");
        assert_eq!(enc("hello", Base::B32), "NBSWY3DP");
        assert_eq!(dec("aGVsbG8=", Base::B64), "hello");
        assert_eq!(dec("aGVs\nbG8=", Base::B64), "hello");
        assert_eq!(dec("NBSWY3DP", Base::B32), "hello");
        assert_eq!(dec("", Base::B64), "");
    }

    #[test]
    fn bad_input_should_decode_to_gos_error_text() {
        // Recorded from sprig v3.3.0.
        assert_eq!(dec("aGV$bG8=", Base::B64), "illegal base64 data at input byte 3");
        assert_eq!(dec("nbswy3dp", Base::B32), "illegal base32 data at input byte 0");
        assert_eq!(dec("aGVsbG8", Base::B64), "illegal base64 data at input byte 4");
        assert_eq!(dec("aGVsbA=", Base::B64), "illegal base64 data at input byte 7");
        assert_eq!(
            dec("NBSWY3DPEE=====", Base::B32),
            "illegal base32 data at input byte 15"
        );
    }
}
