//! YAML output for the `YAML` function, in the block style of Go's `sigs.k8s.io/yaml`.
//!
//! Keys are sorted, sequences inside mappings are not indented (`key:\n- a`), strings are
//! plain when that reads back as the same string, else quoted as go-yaml does (see
//! `write_str`).

use serde_json::{Map, Value};

use super::{
    format::sorted_entries,
    json::{write_json, write_json_str},
    lexer::parse_number,
    value::View,
    yaml::{Scalar, plain_scalar},
};

/// Writes `v` as a YAML document ending in a newline.
pub fn write_yaml(v: View<'_>, out: &mut String) {
    match v {
        View::List(l) if !l.is_empty() => write_list(l, 0, false, out),
        View::Map(m) if !m.is_empty() => write_map(m, 0, false, out),
        v => {
            write_scalar(v, out);
            out.push('\n');
        }
    }
}

fn indent(n: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Writes a mapping at `level`; with `inline`, the first key follows an already written `- `.
fn write_map(m: &Map<String, Value>, level: usize, inline: bool, out: &mut String) {
    for (i, (k, v)) in sorted_entries(m).enumerate() {
        if i > 0 || !inline {
            indent(level, out);
        }
        write_str(k, out);
        out.push(':');
        match View::of(v) {
            View::Map(m) if !m.is_empty() => {
                out.push('\n');
                write_map(m, level + 2, false, out);
            }
            View::List(l) if !l.is_empty() => {
                out.push('\n');
                write_list(l, level, false, out);
            }
            v => {
                out.push(' ');
                write_scalar(v, out);
                out.push('\n');
            }
        }
    }
}

fn write_list(l: &[Value], level: usize, inline: bool, out: &mut String) {
    for (i, v) in l.iter().enumerate() {
        if i > 0 || !inline {
            indent(level, out);
        }
        out.push_str("- ");
        match View::of(v) {
            View::Map(m) if !m.is_empty() => write_map(m, level + 2, true, out),
            View::List(l) if !l.is_empty() => write_list(l, level + 2, true, out),
            v => {
                write_scalar(v, out);
                out.push('\n');
            }
        }
    }
}

fn write_scalar(v: View<'_>, out: &mut String) {
    match v {
        View::Nil => out.push_str("null"),
        View::Str(s) => write_str(s, out),
        View::List(_) => out.push_str("[]"),
        View::Map(_) => out.push_str("{}"),
        v => write_json(v, out),
    }
}

/// go-yaml's choice: plain when safe; double-quoted when plain would read back as
/// another type (`"True"`, `"123"`, `""`) or the string needs escapes; else
/// single-quoted (`'a: [ b ]'`).
fn write_str(s: &str, out: &mut String) {
    if is_plain_safe(s) {
        out.push_str(s);
    } else if s.is_empty() || looks_typed(s) || s.chars().any(needs_escape) {
        write_json_str(s, out);
    } else {
        out.push('\'');
        out.push_str(&s.replace('\'', "''"));
        out.push('\'');
    }
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{85}')
}

/// Whether `s` can be written unquoted and still read back as the same string.
fn is_plain_safe(s: &str) -> bool {
    let b = s.as_bytes();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return false;
    };
    if b"-?:,[]{}#&*!|>'\"%@` \t".contains(&first) || last == b':' || last == b' ' {
        return false;
    }
    let mut prev = 0u8;
    for &c in b {
        let bad = c < 0x20 || c == 0x7f || (c == b' ' && prev == b':') || (c == b'#' && prev == b' ');
        if bad {
            return false;
        }
        prev = c;
    }
    let unicode_ok = s.is_ascii()
        || !s
            .chars()
            .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}'));
    unicode_ok && !looks_typed(s)
}

/// Whether a reader (YAML 1.1 or 1.2) could take `s` for something other than a string.
fn looks_typed(s: &str) -> bool {
    const YAML11: &[&str] = &["y", "yes", "n", "no", "on", "off", "true", "false", "null", "~"];
    if s.len() <= 5 && YAML11.iter().any(|w| w.eq_ignore_ascii_case(s)) {
        return true;
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return false;
    }
    let clean = if s.contains('_') {
        s.replace('_', "").into()
    } else {
        std::borrow::Cow::Borrowed(s)
    };
    !matches!(plain_scalar(&clean), Scalar::Str)
        || parse_number(&clean).is_some()
        || s.contains(':') && s.bytes().all(|b| b.is_ascii_digit() || b == b':')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn y(v: &Value) -> String {
        let mut out = String::new();
        write_yaml(View::of(v), &mut out);
        out
    }

    #[test]
    fn maps_should_sort_keys_and_keep_sequences_unindented() {
        let v = json!({"b": [1, {"y": 2, "x": "s"}], "a": {"c": null, "d": []}});
        // `y` is a YAML 1.1 boolean, so it is quoted, as Go's yaml.v2 does.
        assert_eq!(y(&v), "a:\n  c: null\n  d: []\nb:\n- 1\n- x: s\n  \"y\": 2\n");
    }

    /// Go's sigs.k8s.io/yaml v1.4.0 prints the same list as `- "True"`, … `- 'a: b'`,
    /// `- -x`, `- |-` (a literal block for `x\ny`), `- "1_0"`, `- 'it''s: x'`, `- ' lead'`,
    /// `- "tab\tx"`. Differences kept: `-x` is quoted here and a multi-line string is
    /// double-quoted, which read back the same.
    #[test]
    fn strings_that_would_change_type_should_be_quoted() {
        let v = json!([
            "True", "yes", "100", "1Ti", "10.0.0.1", "", "a: b", "-x", "x\ny", "1_0", "it's: x", " lead",
            "tab\tx"
        ]);
        let text = y(&v);
        assert_eq!(
            text,
            "- \"True\"\n- \"yes\"\n- \"100\"\n- 1Ti\n- 10.0.0.1\n- \"\"\n- 'a: b'\n- '-x'\n- \"x\\ny\"\n- \"1_0\"\n\
             - 'it''s: x'\n- ' lead'\n- \"tab\\tx\"\n"
        );
        assert_eq!(
            super::super::yaml::to_json(&text).unwrap(),
            v,
            "reads back the same"
        );
    }

    #[test]
    fn scalars_should_be_a_one_line_document() {
        assert_eq!(y(&json!("x")), "x\n");
        assert_eq!(y(&json!(null)), "null\n");
        assert_eq!(y(&json!({})), "{}\n");
    }
}
