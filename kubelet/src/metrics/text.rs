//! Prometheus' text exposition format (0.0.4), written byte for byte as Go's
//! `expfmt` writes it, which is what upstream's endpoint serves.

use std::fmt::Write;

/// The `Content-Type` of the text this module writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `# HELP` and `# TYPE` lines of a family.
pub(crate) fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    escape(out, help, false);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

/// A sample line: `name{a="x",le="1"} value`; `extra` is a last label (a bucket's `le`).
pub(crate) fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    extra: Option<f64>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || extra.is_some() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            escape(out, v, true);
            out.push('"');
        }
        if let Some(le) = extra {
            if !labels.is_empty() {
                out.push(',');
            }
            out.push_str("le=\"");
            float(out, le);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    float(out, value);
    out.push('\n');
}

/// Escapes `\` and newlines, and in label values `"` too.
fn escape(out: &mut String, text: &str, quotes: bool) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// A number as Go's `strconv.FormatFloat(f, 'g', -1, 64)`: the shortest digits that
/// read back the same, in exponent form (`1.048576e+06`) when the exponent is below -4
/// or at least 6 (the `%g` cut-off Go uses for shortest output).
pub(crate) fn float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" });
    } else if f == 0.0 {
        out.push_str(if f.is_sign_negative() { "-0" } else { "0" });
    } else {
        // Rust's `{:e}` gives the same shortest digits as Go, as `d.ddde±x`.
        let sci = format!("{f:e}");
        let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        if (-4..6).contains(&exp) {
            let _ = write!(out, "{f}");
        } else {
            let sign = if exp < 0 { '-' } else { '+' };
            let _ = write!(out, "{mantissa}e{sign}{:02}", exp.abs());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> String {
        let mut s = String::new();
        float(&mut s, v);
        s
    }

    #[test]
    fn floats_should_be_written_as_go_writes_them() {
        let table = [
            (0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (0.25, "0.25"),
            (100000.0, "100000"),
            (123456.7, "123456.7"),
            (1048576.0, "1.048576e+06"),
            (2e6, "2e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e300, "1.5e+300"),
            (-2.5e-7, "-2.5e-07"),
            (1714000000.5, "1.7140000005e+09"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for (v, want) in table {
            assert_eq!(f(v), want, "{v}");
        }
    }

    #[test]
    fn label_values_and_help_should_be_escaped() {
        let mut s = String::new();
        header(&mut s, "m", "a \\ b\nc \"q\"", "gauge");
        sample(&mut s, "m", "", &[("a", "x\"y\\z\n")], None, 1.0);
        sample(&mut s, "m", "_bucket", &[], Some(0.5), 2.0);
        assert_eq!(
            s,
            "# HELP m a \\\\ b\\nc \"q\"\n# TYPE m gauge\nm{a=\"x\\\"y\\\\z\\n\"} 1\nm_bucket{le=\"0.5\"} 2\n"
        );
    }
}
