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
            for (i, (k, v)) in sorted_entries(m).into_iter().enumerate() {
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
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => Some(""),
            c if (c as u32) < 0x20 => Some(""),
            _ => None,
        };
        let Some(esc) = esc else { continue };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push_str(esc);
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
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
        assert_eq!(enc(&json!({"b": 1, "a": [true, null, "x"]})), r#"{"a":[true,null,"x"],"b":1}"#);
    }

    #[test]
    fn strings_should_escape_html_characters_like_go() {
        assert_eq!(enc(&json!("<a&b>\n\u{1}")), r#""\u003ca\u0026b\u003e\n\u0001""#);
    }
}
