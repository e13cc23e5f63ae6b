//! Go's `fmt` rendering of values: `%v` printing, float formatting and `strconv.Quote`.

use std::fmt::Write;

use serde_json::{Map, Value};

use super::value::{Val, View};

/// Writes `v` the way an action prints it: `<no value>` for nil, else Go's `%v`.
pub fn print_action(v: &Val<'_>, out: &mut String) {
    match v {
        Val::Nil => out.push_str("<no value>"),
        v => write_v(v.view(), out),
    }
}

/// Writes Go's `%v` of a value (`<nil>` for nil, `[a b]`, `map[k:v]`).
pub fn write_v(v: View<'_>, out: &mut String) {
    match v {
        View::Nil => out.push_str("<nil>"),
        View::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        View::Int(i) => {
            let _ = write!(out, "{i}");
        }
        View::Float(f) => write_float(f, out),
        View::Num(n) => {
            let _ = write!(out, "{n}");
        }
        View::Str(s) => out.push_str(s),
        View::List(l) => write_list(l, out),
        View::Map(m) => write_map(m, out),
    }
}

/// Go's `fmt.Sprint` of one value.
pub fn sprint(v: &Val<'_>) -> String {
    match v.as_str() {
        Some(s) => s.to_owned(),
        None => {
            let mut out = String::new();
            write_v(v.view(), &mut out);
            out
        }
    }
}

fn write_list(l: &[Value], out: &mut String) {
    out.push('[');
    for (i, v) in l.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_v(View::of(v), out);
    }
    out.push(']');
}

fn write_map(m: &Map<String, Value>, out: &mut String) {
    out.push_str("map[");
    for (i, (k, v)) in sorted_entries(m).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(k);
        out.push(':');
        write_v(View::of(v), out);
    }
    out.push(']');
}

/// The entries of `m` in Go's map order (sorted by key, bytewise). The workspace builds
/// `serde_json` without `preserve_order`, so its `Map` is a `BTreeMap` and iterates in
/// exactly that order; `json_maps_should_iterate_in_go_key_order` fails if a dependency
/// ever turns the feature on.
pub fn sorted_entries(m: &Map<String, Value>) -> serde_json::map::Iter<'_> {
    m.iter()
}

/// Writes a float like Go's `%v`: shortest digits, exponent form below 1e-4 and from 1e21.
pub fn write_float(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" });
    } else if f == 0.0 || (1e-4..1e21).contains(&f.abs()) {
        let _ = write!(out, "{f}");
    } else {
        write_exponent(f, out);
    }
}

fn write_exponent(f: f64, out: &mut String) {
    let s = format!("{f:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    let _ = write!(out, "{mantissa}e{sign}{:02}", exp.abs());
}

/// Writes Go's `strconv.Quote(s)`.
pub fn write_go_quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn v(view: View<'_>) -> String {
        let mut out = String::new();
        write_v(view, &mut out);
        out
    }

    #[test]
    fn json_maps_should_iterate_in_go_key_order() {
        // Go sorts map keys bytewise when it ranges or marshals; inserted out of order.
        let mut m = Map::new();
        for k in ["é", "b", "aa", "a", "B", "z", "10", "9"] {
            m.insert(k.to_owned(), Value::Null);
        }
        let keys: Vec<&str> = sorted_entries(&m).map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["10", "9", "B", "a", "aa", "b", "z", "é"]);
    }

    #[test]
    fn floats_should_print_like_go_percent_v() {
        let cases = [
            (1.0, "1"),
            (1.5, "1.5"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1e-5, "1e-05"),
        ];
        for (f, want) in cases {
            assert_eq!(v(View::Float(f)), want, "{f}");
        }
    }

    #[test]
    fn maps_and_lists_should_print_in_go_fmt_form() {
        let data = json!({"b": [1, "x", null], "a": {"c": true}});
        assert_eq!(v(View::of(&data)), "map[a:map[c:true] b:[1 x <nil>]]");
    }

    #[test]
    fn go_quote_should_escape_controls_and_quotes() {
        let mut out = String::new();
        write_go_quote("a\"b\\\n\x01é", &mut out);
        assert_eq!(out, r#""a\"b\\\n\x01é""#);
    }

    #[test]
    fn nil_should_print_as_no_value_in_an_action() {
        let mut out = String::new();
        print_action(&Val::Nil, &mut out);
        assert_eq!(out, "<no value>");
    }
}
