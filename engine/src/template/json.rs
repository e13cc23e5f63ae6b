//! JSON encoding the way Go's `encoding/json` does it: sorted keys, HTML-safe escapes.

use std::fmt::Write;

use super::{format::sorted_entries, value::View};

/// Writes `v` as compact JSON with Go's `json.Marshal` conventions.
pub fn write_json(v: View<'_>, out: &mut String) {
    match v {
        View::Nil => out.push_str("null"),
        View::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        View::Int(i) => {
            let _ = write!(out, "{i}");
        }
        View::Float(f) => write_json_float(f, out),
        View::Num(n) => {
            let _ = write!(out, "{n}");
        }
        View::Str(s) => write_json_str(s, out),
        View::List(l) => {
            out.push('[');
            for (i, v) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(View::of(v), out);
            }
            out.push(']');
        }
        View::Map(m) => {
            out.push('{');
            for (i, (k, v)) in sorted_entries(m).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_str(k, out);
                out.push(':');
                write_json(View::of(v), out);
            }
            out.push('}');
        }
    }
}

fn write_json_float(f: f64, out: &mut String) {
    if !f.is_finite() {
        out.push_str("null");
    } else if f == 0.0 || (1e-6..1e21).contains(&f.abs()) {
        let _ = write!(out, "{f}");
    } else {
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let sign = if exp.starts_with('-') { "-" } else { "+" };
        let _ = write!(out, "{mantissa}e{sign}{}", exp.trim_start_matches('-'));
    }
}

/// Writes a JSON string literal, escaping `<`, `>`, `&`, U+2028 and U+2029 like Go.
pub fn write_json_str(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let special = b < 0x20
            || matches!(b, b'"' | b'\\' | b'<' | b'>' | b'&')
            || (b == 0xE2 && is_line_separator(&bytes[i..]));
        if !special {
            i += 1;
            continue;
        }
        out.push_str(&s[start..i]);
        let len = if b == 0xE2 { 3 } else { 1 };
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                let c = s[i..i + len].chars().next().unwrap_or('\0');
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
        i += len;
        start = i;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// U+2028 and U+2029 are `E2 80 A8` and `E2 80 A9`.
fn is_line_separator(b: &[u8]) -> bool {
    b.len() >= 3 && b[1] == 0x80 && (b[2] == 0xA8 || b[2] == 0xA9)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn enc(v: &serde_json::Value) -> String {
        let mut out = String::new();
        write_json(View::of(v), &mut out);
        out
    }

    #[test]
    fn objects_should_encode_with_sorted_keys() {
        assert_eq!(
            enc(&json!({"b": 1, "a": [true, null, "x"]})),
            r#"{"a":[true,null,"x"],"b":1}"#
        );
    }

    #[test]
    fn strings_should_escape_html_characters_like_go() {
        assert_eq!(enc(&json!("<a&b>\n\u{1}")), r#""\u003ca\u0026b\u003e\n\u0001""#);
        assert_eq!(enc(&json!("é\u{2028}\"\\")), r#""é\u2028\"\\""#);
    }
}
