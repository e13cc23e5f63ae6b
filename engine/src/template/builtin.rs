//! Go `text/template`'s own functions: comparison, `len`, `index`, `slice`, `print` and escapers.

use std::{cmp::Ordering, fmt::Write, rc::Rc};

use serde_json::Value;

use super::{
    format::{sprint as sprint_one, write_v},
    value::{FnResult, Val, View},
};

/// A comparable scalar.
enum Basic<'v> {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'v str),
}

fn basic(v: View<'_>) -> Result<Basic<'_>, String> {
    Ok(match v {
        View::Nil => Basic::Nil,
        View::Bool(b) => Basic::Bool(b),
        View::Int(i) => Basic::Int(i),
        View::Float(f) => Basic::Float(f),
        View::Num(n) => n
            .as_i64()
            .map_or_else(|| Basic::Float(n.as_f64().unwrap_or(f64::NAN)), Basic::Int),
        View::Str(s) => Basic::Str(s),
        View::List(_) | View::Map(_) => return Err(format!("non-comparable type {}", v.type_name())),
    })
}

fn compare(a: &Basic<'_>, b: &Basic<'_>) -> Result<Option<Ordering>, String> {
    Ok(match (a, b) {
        (Basic::Int(x), Basic::Int(y)) => Some(x.cmp(y)),
        (Basic::Int(x), Basic::Float(y)) => (*x as f64).partial_cmp(y),
        (Basic::Float(x), Basic::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Basic::Float(x), Basic::Float(y)) => x.partial_cmp(y),
        (Basic::Str(x), Basic::Str(y)) => Some(x.cmp(y)),
        (Basic::Bool(x), Basic::Bool(y)) => Some(x.cmp(y)),
        (Basic::Nil, Basic::Nil) => Some(Ordering::Equal),
        (Basic::Nil, _) | (_, Basic::Nil) => None,
        _ => return Err("incompatible types for comparison".into()),
    })
}

/// `eq a b c…`: whether `a` equals any of the others. Nil equals only nil.
pub fn eq(a: &Val<'_>, others: &[Val<'_>]) -> Result<bool, String> {
    let a = basic(a.view())?;
    for b in others {
        if compare(&a, &basic(b.view())?)? == Some(Ordering::Equal) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `lt a b` for numbers and strings.
pub fn less(a: &Val<'_>, b: &Val<'_>) -> Result<bool, String> {
    let (a, b) = (basic(a.view())?, basic(b.view())?);
    if matches!(a, Basic::Nil | Basic::Bool(_)) || matches!(b, Basic::Nil | Basic::Bool(_)) {
        return Err("invalid type for comparison".into());
    }
    Ok(compare(&a, &b)? == Some(Ordering::Less))
}

/// `len x` for strings (bytes), arrays and maps.
pub fn len<'a>(v: &Val<'a>) -> FnResult<'a> {
    let n = match v.view() {
        View::Str(s) => s.len(),
        View::List(l) => l.len(),
        View::Map(m) => m.len(),
        View::Nil => return Err("len of nil pointer".into()),
        v => return Err(format!("len of type {}", v.type_name())),
    };
    Ok(Val::Int(n as i64))
}

fn int_index(v: &Val<'_>) -> Result<i64, String> {
    match v.view() {
        View::Nil => Err("cannot index slice/array with nil".into()),
        v => v
            .as_i64()
            .ok_or_else(|| format!("cannot index slice/array with type {}", v.type_name())),
    }
}

/// `index x i j…`: maps by string key (missing → nil), arrays by int.
pub fn index<'a>(item: &Val<'a>, keys: &[Val<'a>]) -> FnResult<'a> {
    let mut cur = item.clone();
    for key in keys {
        cur = index_one(&cur, key)?;
    }
    Ok(cur)
}

fn index_one<'a>(item: &Val<'a>, key: &Val<'a>) -> FnResult<'a> {
    match item.view() {
        View::Map(_) => match key.as_str() {
            Some(k) => Ok(item.field(k).unwrap_or_default()),
            None => Err(format!("value has type {}; should be string", key.type_name())),
        },
        View::List(l) => {
            let i = int_index(key)?;
            let found = usize::try_from(i).ok().and_then(|i| item.element(i)).flatten();
            found.ok_or_else(|| format!("index out of range: {i} (length {})", l.len()))
        }
        View::Nil => Err("index of untyped nil".into()),
        v => Err(format!("can't index item of type {}", v.type_name())),
    }
}

/// `slice x i j`: substrings and sub-arrays.
pub fn slice<'a>(item: &Val<'a>, idx: &[Val<'a>]) -> FnResult<'a> {
    let len = match item.view() {
        View::Str(s) => s.len(),
        View::List(l) => l.len(),
        View::Nil => return Err("slice of untyped nil".into()),
        v => return Err(format!("can't slice item of type {}", v.type_name())),
    };
    let mut bounds = [0, len];
    for (i, v) in idx.iter().take(2).enumerate() {
        let n = int_index(v)?;
        bounds[i] = usize::try_from(n)
            .ok()
            .filter(|&n| n <= len)
            .ok_or_else(|| format!("index out of range: {n}"))?;
    }
    let [from, to] = bounds;
    if from > to {
        return Err(format!("invalid slice index: {from} > {to}"));
    }
    match item.view() {
        View::Str(s) if idx.len() > 2 => Err(format!("cannot 3-index slice a string: {s:?}")),
        View::Str(s) => s
            .get(from..to)
            .map(Val::text)
            .ok_or_else(|| "slice splits a character".into()),
        View::List(l) => Ok(Val::Owned(Rc::new(Value::Array(l[from..to].to_vec())))),
        _ => Err("can't slice".into()),
    }
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
pub fn sprint(args: &[Val<'_>]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && a.as_str().is_none() && args[i - 1].as_str().is_none() {
            out.push(' ');
        }
        write_v(a.view(), &mut out);
    }
    out
}

/// Go's `fmt.Sprintln`: spaces between all operands and a final newline.
pub fn sprintln(args: &[Val<'_>]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_v(a.view(), &mut out);
    }
    out.push('\n');
    out
}

/// The text the escapers work on: the single string argument, else `fmt.Sprint` of all.
pub fn eval_args(args: &[Val<'_>]) -> String {
    match args {
        [one] => sprint_one(one),
        args => sprint(args),
    }
}

/// Go's `template.HTMLEscapeString`.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
pub fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' | '>' | '&' | '=' => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c if (c as u32) < 0x20 || c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub fn urlquery(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn eq_should_match_any_of_several_arguments_and_treat_nil_as_unequal() {
        assert_eq!(eq(&Val::Int(2), &[Val::Int(1), Val::Int(2)]), Ok(true));
        assert_eq!(eq(&Val::Nil, &[Val::Str("Always")]), Ok(false));
        assert_eq!(eq(&Val::Nil, &[Val::Nil]), Ok(true));
        assert!(eq(&Val::Int(1), &[Val::Str("1")]).is_err());
    }

    #[test]
    fn less_should_compare_numbers_of_mixed_kinds_and_strings() {
        let data = json!(2.5);
        assert_eq!(less(&Val::Int(2), &Val::from_data(&data)), Ok(true));
        assert_eq!(less(&Val::Str("b"), &Val::Str("a")), Ok(false));
        assert!(less(&Val::Nil, &Val::Int(1)).is_err());
    }

    #[test]
    fn index_should_walk_maps_and_arrays_and_reject_out_of_range() {
        let data = json!({"a": [10, 20]});
        let v = index(&Val::from_data(&data), &[Val::Str("a"), Val::Int(1)]).unwrap();
        assert_eq!(v.to_value(), json!(20));
        assert!(index(&Val::from_data(&data), &[Val::Str("x")]).unwrap().is_nil());
        let e = index(&Val::from_data(&data), &[Val::Str("a"), Val::Int(5)]).unwrap_err();
        assert_eq!(e, "index out of range: 5 (length 2)");
    }

    #[test]
    fn slice_should_cut_strings_and_arrays() {
        assert_eq!(
            slice(&Val::Str("hello"), &[Val::Int(1), Val::Int(3)])
                .unwrap()
                .as_str(),
            Some("el")
        );
        let data = json!([1, 2, 3]);
        assert_eq!(
            slice(&Val::from_data(&data), &[Val::Int(1)]).unwrap().to_value(),
            json!([2, 3])
        );
        assert!(slice(&Val::Str("a"), &[Val::Int(3)]).is_err());
    }

    #[test]
    fn sprint_should_space_only_between_non_strings() {
        assert_eq!(
            sprint(&[Val::Str("a"), Val::Int(1), Val::Int(2), Val::Str("b")]),
            "a1 2b"
        );
        assert_eq!(sprintln(&[Val::Str("a"), Val::Int(1)]), "a 1\n");
    }

    #[test]
    fn escapers_should_follow_go() {
        assert_eq!(html("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
        assert_eq!(js("a'b<"), "a\\'b\\u003C");
        assert_eq!(urlquery("a b&c/é"), "a+b%26c%2F%C3%A9");
    }
}
