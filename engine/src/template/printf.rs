//! `printf`: the subset of Go's `fmt` verbs templates use, with flags, width and precision.

use std::fmt::Write;

use super::{
    format::{write_float, write_go_quote, write_v},
    value::{Val, View},
};

/// One parsed `%` directive.
#[derive(Debug, Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    sharp: bool,
    width: Option<usize>,
    prec: Option<usize>,
    verb: char,
}

/// Go's `fmt.Sprintf(format, args…)`.
pub fn printf(format: &Val<'_>, args: &[Val<'_>]) -> Result<String, String> {
    let format = format.as_str().ok_or_else(|| {
        format!(
            "wrong type for value; expected string; got {}",
            format.type_name()
        )
    })?;
    let mut out = String::with_capacity(format.len() + 16);
    let mut next = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let spec = parse_spec(&mut chars);
        if spec.verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(next) {
            Some(arg) => write_arg(&spec, arg, &mut out),
            None if spec.verb == '\0' => out.push_str("%!(NOVERB)"),
            None => {
                let _ = write!(out, "%!{}(MISSING)", spec.verb);
            }
        }
        next += 1;
    }
    write_extra(&args[next.min(args.len())..], &mut out);
    Ok(out)
}

fn parse_spec(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Spec {
    let mut spec = Spec::default();
    while let Some(&c) = chars.peek() {
        match c {
            '-' => spec.minus = true,
            '+' => spec.plus = true,
            '0' => spec.zero = true,
            ' ' => spec.space = true,
            '#' => spec.sharp = true,
            _ => break,
        }
        chars.next();
    }
    spec.width = digits(chars);
    if chars.peek() == Some(&'.') {
        chars.next();
        spec.prec = Some(digits(chars).unwrap_or(0));
    }
    spec.verb = chars.next().unwrap_or('\0');
    spec
}

/// Go rejects widths and precisions above this; here they are clamped to it.
const MAX_WIDTH: usize = 1_000_000;

fn digits(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        n = Some(
            n.unwrap_or(0)
                .saturating_mul(10)
                .saturating_add(d as usize)
                .min(MAX_WIDTH),
        );
        chars.next();
    }
    n
}

fn write_extra(extra: &[Val<'_>], out: &mut String) {
    if extra.is_empty() {
        return;
    }
    out.push_str("%!(EXTRA ");
    for (i, a) in extra.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}=", a.type_name());
        write_v(a.view(), out);
    }
    out.push(')');
}

fn write_arg(spec: &Spec, arg: &Val<'_>, out: &mut String) {
    let view = arg.view();
    let body = match (spec.verb, view) {
        ('v', v) => Some(verb_v(v)),
        ('s', View::Str(s)) => Some(truncate(s, spec.prec).to_owned()),
        ('s', View::Num(n)) => Some(n.to_string()),
        ('s', View::List(_) | View::Map(_)) => Some(verb_v(view)),
        ('q', View::Str(s)) => Some(quoted(s)),
        ('t', View::Bool(b)) => Some(b.to_string()),
        ('d' | 'x' | 'X' | 'o' | 'b' | 'c' | 'q', v) if v.as_i64().is_some() => {
            int_verb(spec, v.as_i64().unwrap_or(0))
        }
        ('x' | 'X', View::Str(s)) => Some(hex_bytes(s, spec.verb == 'X')),
        ('f' | 'F' | 'e' | 'E' | 'g' | 'G', View::Float(_) | View::Num(_)) => {
            Some(float_verb(spec, view.as_f64().unwrap_or(0.0)))
        }
        _ => None,
    };
    match body {
        Some(body) => pad(spec, &body, out),
        None => bad_verb(spec.verb, arg, out),
    }
}

fn verb_v(v: View<'_>) -> String {
    let mut s = String::new();
    write_v(v, &mut s);
    s
}

fn truncate(s: &str, prec: Option<usize>) -> &str {
    match prec.and_then(|p| s.char_indices().nth(p)) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn quoted(s: &str) -> String {
    let mut out = String::new();
    write_go_quote(s, &mut out);
    out
}

fn hex_bytes(s: &str, upper: bool) -> String {
    s.bytes().fold(String::new(), |mut out, b| {
        let _ = if upper {
            write!(out, "{b:02X}")
        } else {
            write!(out, "{b:02x}")
        };
        out
    })
}

fn int_verb(spec: &Spec, i: i64) -> Option<String> {
    let sign = sign(spec, i < 0);
    let u = i.unsigned_abs();
    let digits = match spec.verb {
        'd' => u.to_string(),
        'x' => format!("{}{u:x}", if spec.sharp { "0x" } else { "" }),
        'X' => format!("{}{u:X}", if spec.sharp { "0X" } else { "" }),
        'o' => format!("{}{u:o}", if spec.sharp { "0" } else { "" }),
        'b' => format!("{u:b}"),
        'c' => return char::from_u32(u32::try_from(i).ok()?).map(String::from),
        'q' => return char::from_u32(u32::try_from(i).ok()?).map(|c| format!("{c:?}")),
        _ => return None,
    };
    Some(zero_pad(spec, sign, &digits))
}

fn float_verb(spec: &Spec, f: f64) -> String {
    let sign = sign(spec, f.is_sign_negative() && f != 0.0);
    let a = f.abs();
    let digits = match spec.verb {
        'f' | 'F' => format!("{a:.*}", spec.prec.unwrap_or(6)),
        'e' | 'E' => exp_form(a, spec.prec.unwrap_or(6), spec.verb == 'E'),
        _ => match spec.prec {
            Some(p) => format!("{:.*}", p.saturating_sub(1), a)
                .parse::<f64>()
                .map_or_else(|_| a.to_string(), |v| v.to_string()),
            None => {
                let mut s = String::new();
                write_float(a, &mut s);
                s
            }
        },
    };
    zero_pad(spec, sign, &digits)
}

fn exp_form(a: f64, prec: usize, upper: bool) -> String {
    let s = format!("{a:.prec$e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let e = if upper { 'E' } else { 'e' };
    format!("{mantissa}{e}{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

/// The sign a number prints with: `-`, else `+` or ` ` when the flags ask for one.
fn sign(spec: &Spec, negative: bool) -> &'static str {
    if negative {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    }
}

fn zero_pad(spec: &Spec, sign: &str, digits: &str) -> String {
    match spec.width {
        Some(w) if spec.zero && !spec.minus && w > sign.len() + digits.len() => {
            format!("{sign}{}{digits}", "0".repeat(w - sign.len() - digits.len()))
        }
        _ => format!("{sign}{digits}"),
    }
}

fn pad(spec: &Spec, body: &str, out: &mut String) {
    let n = body.chars().count();
    let fill = spec.width.map_or(0, |w| w.saturating_sub(n));
    if !spec.minus {
        out.extend(std::iter::repeat_n(' ', fill));
    }
    out.push_str(body);
    if spec.minus {
        out.extend(std::iter::repeat_n(' ', fill));
    }
}

fn bad_verb(verb: char, arg: &Val<'_>, out: &mut String) {
    let _ = write!(out, "%!{verb}(");
    if arg.is_nil() {
        out.push_str("<nil>");
    } else {
        let _ = write!(out, "{}=", arg.type_name());
        write_v(arg.view(), out);
    }
    out.push(')');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(format: &str, args: &[Val<'_>]) -> String {
        printf(&Val::Str(format), args).unwrap()
    }

    #[test]
    fn printf_should_format_common_verbs() {
        assert_eq!(
            p(
                "%s-%d-%v-%t",
                &[Val::Str("a"), Val::Int(5), Val::Float(1.5), Val::Bool(true)]
            ),
            "a-5-1.5-true"
        );
        assert_eq!(
            p("%q %x %X", &[Val::Str("a\"b"), Val::Int(255), Val::Str("hi")]),
            r#""a\"b" ff 6869"#
        );
        assert_eq!(
            p(
                "%.2f|%f|%e",
                &[Val::Float(1.23456), Val::Int(2), Val::Float(1234.5)]
            ),
            "1.23|%!f(int=2)|1.234500e+03"
        );
    }

    #[test]
    fn printf_should_apply_width_and_flags() {
        assert_eq!(
            p(
                "[%5d][%-5s][%05d][%+d]",
                &[Val::Int(42), Val::Str("ab"), Val::Int(-42), Val::Int(3)]
            ),
            "[   42][ab   ][-0042][+3]"
        );
        assert_eq!(p("%.3s", &[Val::Str("abcdef")]), "abc");
    }

    #[test]
    fn printf_should_report_missing_extra_and_mismatched_arguments_like_go() {
        assert_eq!(p("%d %s", &[Val::Int(1)]), "1 %!s(MISSING)");
        assert_eq!(p("x", &[Val::Int(1)]), "x%!(EXTRA int=1)");
        assert_eq!(p("%d", &[Val::Str("a")]), "%!d(string=a)");
        assert_eq!(p("100%%", &[]), "100%");
    }
}
