//! The sprig functions KWOK stages use: defaults, strings, math, lists and dicts.

use std::rc::Rc;

use serde_json::{Map, Value};

use super::{
    format::{sprint, write_go_quote},
    json::write_json,
    value::{FnResult, Val, View},
};

/// A string argument (nil and other kinds fail, as Go's conversion to `string`).
pub fn want_str<'v>(v: &'v Val<'_>) -> Result<&'v str, String> {
    match v {
        Val::Nil => Err("invalid value; expected string".into()),
        v => v
            .as_str()
            .ok_or_else(|| format!("wrong type for value; expected string; got {}", v.type_name())),
    }
}

/// `default d given`: `given` unless it is empty, else `d`.
pub fn default<'a>(a: &[Val<'a>]) -> Val<'a> {
    match a.get(1) {
        Some(given) if given.truth() => given.clone(),
        _ => a[0].clone(),
    }
}

/// `ternary vt vf cond`.
pub fn ternary<'a>(a: &[Val<'a>]) -> FnResult<'a> {
    match a[2] {
        Val::Bool(b) => Ok(if b { a[0].clone() } else { a[1].clone() }),
        ref v => Err(format!(
            "wrong type for value; expected bool; got {}",
            v.type_name()
        )),
    }
}

/// `quote a b…`: each non-nil argument Go-quoted, joined by spaces.
pub fn quote(a: &[Val<'_>]) -> String {
    let mut out = String::new();
    for v in a.iter().filter(|v| !v.is_nil()) {
        if !out.is_empty() {
            out.push(' ');
        }
        write_go_quote(&sprint(v), &mut out);
    }
    out
}

/// `squote a b…`: each non-nil argument in single quotes, joined by spaces.
pub fn squote(a: &[Val<'_>]) -> String {
    let parts: Vec<String> = a
        .iter()
        .filter(|v| !v.is_nil())
        .map(|v| format!("'{}'", sprint(v)))
        .collect();
    parts.join(" ")
}

/// `toString`: strings as they are, anything else as Go's `%v`.
pub fn to_string<'a>(v: &Val<'a>) -> Val<'a> {
    match v {
        Val::Str(_) | Val::Text(_) => v.clone(),
        Val::Nil => Val::Str("<nil>"),
        v => Val::text(sprint(v)),
    }
}

/// `toJson`: Go's `json.Marshal`.
pub fn to_json(v: &Val<'_>) -> String {
    let mut out = String::new();
    write_json(v.view(), &mut out);
    out
}

/// `fromJson`: the decoded value, nil when the text is not JSON.
pub fn from_json<'a>(v: &Val<'a>) -> FnResult<'a> {
    Ok(serde_json::from_str::<Value>(want_str(v)?).map_or(Val::Nil, Val::from_value))
}

/// Applies a string function to a string argument.
pub fn map_str<'a>(v: &Val<'a>, f: impl FnOnce(&str) -> String) -> FnResult<'a> {
    Ok(Val::text(f(want_str(v)?)))
}

/// `trimAll cutset s`.
pub fn trim_all<'a>(cutset: &Val<'a>, s: &Val<'a>) -> FnResult<'a> {
    let cut = want_str(cutset)?;
    Ok(Val::text(want_str(s)?.trim_matches(|c| cut.contains(c))))
}

/// `trimPrefix prefix s`.
pub fn trim_prefix<'a>(prefix: &Val<'a>, s: &Val<'a>) -> FnResult<'a> {
    let s = want_str(s)?;
    Ok(Val::text(s.strip_prefix(want_str(prefix)?).unwrap_or(s)))
}

/// `trimSuffix suffix s`.
pub fn trim_suffix<'a>(suffix: &Val<'a>, s: &Val<'a>) -> FnResult<'a> {
    let s = want_str(s)?;
    Ok(Val::text(s.strip_suffix(want_str(suffix)?).unwrap_or(s)))
}

/// A string predicate `f(s, x)` such as `hasPrefix`.
pub fn test_str<'a>(s: &Val<'a>, x: &Val<'a>, f: impl FnOnce(&str, &str) -> bool) -> FnResult<'a> {
    Ok(Val::Bool(f(want_str(s)?, want_str(x)?)))
}

/// `replace old new src`.
pub fn replace<'a>(old: &Val<'a>, new: &Val<'a>, src: &Val<'a>) -> FnResult<'a> {
    Ok(Val::text(want_str(src)?.replace(want_str(old)?, want_str(new)?)))
}

/// The longest string `repeat` and `indent` build; beyond it they fail instead of
/// exhausting memory.
const MAX_BUILT_LEN: usize = 16 << 20;

/// `repeat count s`.
pub fn repeat<'a>(count: &Val<'a>, s: &Val<'a>) -> FnResult<'a> {
    let n = usize::try_from(to_i64(count)).map_err(|_| "negative repeat count")?;
    let s = want_str(s)?;
    if n.saturating_mul(s.len()) > MAX_BUILT_LEN {
        return Err("repeat count causes overflow".into());
    }
    Ok(Val::text(s.repeat(n)))
}

/// `split sep s` (a map `_0`, `_1`, …) or `splitList sep s` (a list).
pub fn split<'a>(sep: &Val<'a>, s: &Val<'a>, as_map: bool) -> FnResult<'a> {
    let parts = want_str(s)?.split(want_str(sep)?);
    let v = if as_map {
        Value::Object(
            parts
                .enumerate()
                .map(|(i, p)| (format!("_{i}"), Value::from(p)))
                .collect(),
        )
    } else {
        Value::Array(parts.map(Value::from).collect())
    };
    Ok(Val::Owned(Rc::new(v)))
}

/// `join sep list`: elements as strings, nils skipped.
pub fn join<'a>(sep: &Val<'a>, list: &Val<'a>) -> FnResult<'a> {
    let sep = want_str(sep)?;
    let parts: Vec<String> = match list.view() {
        View::List(l) => l
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| sprint(&Val::from_data(v)))
            .collect(),
        View::Nil => Vec::new(),
        _ => vec![sprint(list)],
    };
    Ok(Val::text(parts.join(sep)))
}

/// `indent n s` / `nindent n s`.
pub fn indent<'a>(n: &Val<'a>, s: &Val<'a>, newline: bool) -> FnResult<'a> {
    let n = usize::try_from(to_i64(n)).unwrap_or(0);
    if n > MAX_BUILT_LEN {
        return Err("indent causes overflow".into());
    }
    let pad = " ".repeat(n);
    let body = format!("{pad}{}", want_str(s)?.replace('\n', &format!("\n{pad}")));
    Ok(Val::text(if newline { format!("\n{body}") } else { body }))
}

/// An `int` argument: integers only, as Go's conversion of an argument to `int`.
pub fn want_int(v: &Val<'_>) -> Result<i64, String> {
    match (v, v.view().as_i64()) {
        (_, Some(i)) => Ok(i),
        (Val::Nil, None) => Err("invalid value; expected int".into()),
        (v, None) => Err(format!(
            "wrong type for value; expected int; got {}",
            v.type_name()
        )),
    }
}

/// `cast.ToInt64`: numbers truncated, numeric strings parsed, anything else 0.
pub fn to_i64(v: &Val<'_>) -> i64 {
    match v.view() {
        View::Int(i) => i,
        View::Float(f) => f as i64,
        View::Num(n) => n.as_i64().unwrap_or_else(|| n.as_f64().unwrap_or(0.0) as i64),
        View::Bool(b) => i64::from(b),
        View::Str(s) => parse_int(s).unwrap_or(0),
        _ => 0,
    }
}

fn parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = s.strip_prefix('-').map_or((false, s), |d| (true, d));
    let lower = digits.to_ascii_lowercase();
    let n = match lower.get(..2) {
        Some("0x") => i64::from_str_radix(&digits[2..], 16).ok(),
        Some("0o") => i64::from_str_radix(&digits[2..], 8).ok(),
        Some("0b") => i64::from_str_radix(&digits[2..], 2).ok(),
        _ if digits.len() > 1 && digits.starts_with('0') => i64::from_str_radix(&digits[1..], 8).ok(),
        _ => digits.parse().ok(),
    }?;
    Some(if neg { -n } else { n })
}

/// `cast.ToFloat64`.
pub fn to_f64(v: &Val<'_>) -> f64 {
    match v.view() {
        View::Bool(b) => f64::from(u8::from(b)),
        View::Str(s) => s.parse().unwrap_or(0.0),
        v => v.as_f64().unwrap_or(0.0),
    }
}

/// `div a b` on integers.
pub fn div<'a>(a: &Val<'a>, b: &Val<'a>) -> FnResult<'a> {
    to_i64(a)
        .checked_div(to_i64(b))
        .map(Val::Int)
        .ok_or_else(|| "integer divide by zero".into())
}

/// `mod a b` on integers.
pub fn rem<'a>(a: &Val<'a>, b: &Val<'a>) -> FnResult<'a> {
    to_i64(a)
        .checked_rem(to_i64(b))
        .map(Val::Int)
        .ok_or_else(|| "integer divide by zero".into())
}

/// `atoi s`: 0 when `s` is not a decimal integer.
pub fn atoi<'a>(s: &Val<'a>) -> FnResult<'a> {
    Ok(Val::Int(want_str(s)?.parse().unwrap_or(0)))
}

/// `list a b…`.
pub fn list<'a>(a: &[Val<'a>]) -> Val<'a> {
    Val::Owned(Rc::new(Value::Array(a.iter().map(Val::to_value).collect())))
}

/// `dict k v…`: a missing last value is `""`.
pub fn dict<'a>(a: &[Val<'a>]) -> Val<'a> {
    let mut m = Map::new();
    for pair in a.chunks(2) {
        let value = pair.get(1).map_or_else(|| Value::from(""), Val::to_value);
        m.insert(sprint(&pair[0]), value);
    }
    Val::Owned(Rc::new(Value::Object(m)))
}

fn want_map<'v>(v: &'v Val<'_>) -> Result<&'v Map<String, Value>, String> {
    match v.view() {
        View::Map(m) => Ok(m),
        v => Err(format!(
            "wrong type for value; expected map[string]interface {{}}; got {}",
            v.type_name()
        )),
    }
}

/// `hasKey dict key`.
pub fn has_key<'a>(dict: &Val<'a>, key: &Val<'a>) -> FnResult<'a> {
    Ok(Val::Bool(want_map(dict)?.contains_key(want_str(key)?)))
}

/// `get dict key`: `""` when missing.
pub fn get<'a>(dict: &Val<'a>, key: &Val<'a>) -> FnResult<'a> {
    want_map(dict)?;
    Ok(dict
        .field(want_str(key)?)
        .filter(|v| !v.is_nil())
        .unwrap_or(Val::Str("")))
}

fn into_owned_map(dict: Val<'_>) -> Result<Rc<Value>, String> {
    want_map(&dict)?;
    Ok(match dict {
        Val::Owned(rc) => rc,
        other => Rc::new(other.to_value()),
    })
}

/// `set dict key value`: the dict with `key` set (in place when the caller owns it).
pub fn set<'a>(dict: Val<'a>, key: &Val<'a>, value: &Val<'a>) -> FnResult<'a> {
    let key = want_str(key)?.to_owned();
    let mut rc = into_owned_map(dict)?;
    if let Value::Object(m) = Rc::make_mut(&mut rc) {
        m.insert(key, value.to_value());
    }
    Ok(Val::Owned(rc))
}

/// `unset dict key`.
pub fn unset<'a>(dict: Val<'a>, key: &Val<'a>) -> FnResult<'a> {
    let key = want_str(key)?.to_owned();
    let mut rc = into_owned_map(dict)?;
    if let Value::Object(m) = Rc::make_mut(&mut rc) {
        m.remove(&key);
    }
    Ok(Val::Owned(rc))
}

/// `keys dict…`: every key, sorted (Go's map order is random; sorted is deterministic).
pub fn keys<'a>(a: &[Val<'a>]) -> FnResult<'a> {
    let mut keys = Vec::new();
    for d in a {
        keys.extend(want_map(d)?.keys().cloned().map(Value::String));
    }
    keys.sort_unstable_by(|a, b| a.as_str().cmp(&b.as_str()));
    Ok(Val::Owned(Rc::new(Value::Array(keys))))
}

fn want_list<'v>(v: &'v Val<'_>, what: &str) -> Result<&'v [Value], String> {
    match v.view() {
        View::List(l) => Ok(l),
        v => Err(format!("Cannot {what} on type {}", v.type_name())),
    }
}

/// `append list v` / `prepend list v`.
pub fn push<'a>(list: &Val<'a>, v: &Val<'a>, front: bool) -> FnResult<'a> {
    let l = want_list(list, if front { "prepend" } else { "push" })?;
    let mut out = Vec::with_capacity(l.len() + 1);
    if front {
        out.push(v.to_value());
    }
    out.extend_from_slice(l);
    if !front {
        out.push(v.to_value());
    }
    Ok(Val::Owned(Rc::new(Value::Array(out))))
}

/// Which part of a list [`pick`] takes.
#[derive(Debug, Clone, Copy)]
pub enum Pick {
    First,
    Last,
    Rest,
    Initial,
}

/// `first`, `last`, `rest`, `initial`.
pub fn pick<'a>(list: &Val<'a>, which: Pick) -> FnResult<'a> {
    if list.is_nil() {
        return Ok(Val::Nil);
    }
    let l = want_list(list, "find first")?;
    let n = l.len();
    Ok(match which {
        Pick::First => list.element(0).flatten().unwrap_or_default(),
        Pick::Last => n
            .checked_sub(1)
            .and_then(|i| list.element(i).flatten())
            .unwrap_or_default(),
        Pick::Rest => Val::Owned(Rc::new(Value::Array(l.get(1..).unwrap_or_default().to_vec()))),
        Pick::Initial => Val::Owned(Rc::new(Value::Array(l[..n.saturating_sub(1)].to_vec()))),
    })
}

/// `has needle list`.
pub fn has<'a>(needle: &Val<'a>, list: &Val<'a>) -> FnResult<'a> {
    if list.is_nil() {
        return Ok(Val::Bool(false));
    }
    let needle = needle.to_value();
    Ok(Val::Bool(want_list(list, "find has")?.contains(&needle)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn default_should_replace_only_empty_values() {
        assert_eq!(default(&[Val::Str("d"), Val::Str("")]).as_str(), Some("d"));
        assert_eq!(default(&[Val::Str("d"), Val::Str("x")]).as_str(), Some("x"));
        assert_eq!(default(&[Val::Str("d")]).as_str(), Some("d"));
        assert_eq!(default(&[Val::Str("d"), Val::Int(0)]).as_str(), Some("d"));
    }

    #[test]
    fn quote_should_skip_nils_and_join_with_spaces() {
        assert_eq!(quote(&[Val::Str("a"), Val::Nil, Val::Int(1)]), r#""a" "1""#);
        assert_eq!(squote(&[Val::Str("a")]), "'a'");
    }

    #[test]
    fn dict_and_set_should_build_maps() {
        let d = dict(&[Val::Str("a"), Val::Int(1), Val::Str("b")]);
        assert_eq!(d.to_value(), json!({"a": 1, "b": ""}));
        let d = set(d, &Val::Str("c"), &Val::Bool(true)).unwrap();
        assert_eq!(d.to_value(), json!({"a": 1, "b": "", "c": true}));
        assert_eq!(get(&d, &Val::Str("zz")).unwrap().as_str(), Some(""));
        assert!(matches!(has_key(&d, &Val::Str("a")), Ok(Val::Bool(true))));
    }

    #[test]
    fn to_i64_should_cast_like_spf13_cast() {
        let data = json!(2.9);
        let cases = [
            (Val::Str("0x10"), 16),
            (Val::Str("x"), 0),
            (Val::from_data(&data), 2),
            (Val::Bool(true), 1),
            (Val::Nil, 0),
        ];
        for (v, want) in cases {
            assert_eq!(to_i64(&v), want, "{v:?}");
        }
    }

    #[test]
    fn lists_should_support_append_first_last_and_join() {
        let l = list(&[Val::Str("a"), Val::Int(2)]);
        let l = push(&l, &Val::Nil, false).unwrap();
        assert_eq!(l.to_value(), json!(["a", 2, null]));
        assert_eq!(pick(&l, Pick::First).unwrap().as_str(), Some("a"));
        assert!(pick(&l, Pick::Last).unwrap().is_nil());
        assert_eq!(join(&Val::Str(","), &l).unwrap().as_str(), Some("a,2"));
        assert_eq!(
            split(&Val::Str(","), &Val::Str("a,b"), true).unwrap().to_value(),
            json!({"_0": "a", "_1": "b"})
        );
    }

    #[test]
    fn string_functions_should_reject_non_strings() {
        assert_eq!(
            map_str(&Val::Int(1), str::to_uppercase).unwrap_err(),
            "wrong type for value; expected string; got int"
        );
        assert_eq!(
            trim_prefix(&Val::Str("a"), &Val::Str("abc")).unwrap().as_str(),
            Some("bc")
        );
        assert!(div(&Val::Int(1), &Val::Int(0)).is_err());
    }
}
