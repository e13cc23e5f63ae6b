//! Sprig's regular-expression functions: `regexMatch`, `regexFind`, `regexFindAll`,
//! `regexReplaceAll`, `regexSplit`, `regexQuoteMeta` and their `must…` variants.
//!
//! Go's `regexp` is RE2; the `regex` crate implements the same syntax and the same
//! leftmost-first matching, so patterns and `$1`/`${name}` replacements carry over.
//! Compiled patterns are cached per thread: a template calls the same few patterns on
//! every rendering.

use std::{cell::RefCell, collections::HashMap, rc::Rc};

use regex::{NoExpand, Regex};
use serde_json::Value;

use super::{
    sprig::{want_int, want_str},
    value::{FnResult, Val},
};

/// Patterns kept per thread; past this the cache starts over (templates use a handful).
const CACHE_CAPACITY: usize = 64;

thread_local! {
    static CACHE: RefCell<HashMap<Box<str>, Regex>> = RefCell::new(HashMap::new());
}

/// How a function reports a pattern that does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBadPattern {
    /// Sprig's plain functions call `regexp.MustCompile`, whose panic the template reports.
    Panic,
    /// The `must…` functions return the compile error.
    Error,
}

/// `pattern` compiled, from the cache when seen before.
fn compile(pattern: &str, on_bad: OnBadPattern) -> Result<Regex, String> {
    if let Some(re) = CACHE.with_borrow(|c| c.get(pattern).cloned()) {
        return Ok(re);
    }
    let re = Regex::new(pattern).map_err(|e| compile_error(pattern, &e, on_bad))?;
    CACHE.with_borrow_mut(|c| {
        if c.len() >= CACHE_CAPACITY {
            c.clear();
        }
        c.insert(pattern.into(), re.clone());
    });
    Ok(re)
}

/// Go's words for the regex crate's commonest syntax errors.
const GO_REASONS: [(&str, &str); 5] = [
    ("unclosed character class", "missing closing ]"),
    ("unclosed group", "missing closing )"),
    ("unopened group", "unexpected )"),
    (
        "repetition operator missing expression",
        "missing argument to repetition operator",
    ),
    ("backreferences are not supported", "invalid escape sequence"),
];

/// Go's one-line compile error: `error parsing regexp: reason: `pattern``.
fn compile_error(pattern: &str, e: &regex::Error, on_bad: OnBadPattern) -> String {
    let text = e.to_string();
    // The regex crate draws the position over several lines and ends with `error: why`.
    let reason = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(text.lines().last().unwrap_or_default());
    let reason = GO_REASONS
        .iter()
        .find(|(ours, _)| reason.starts_with(ours))
        .map_or(reason, |(_, go)| go);
    let message = format!("error parsing regexp: {reason}: `{pattern}`");
    match on_bad {
        OnBadPattern::Panic => format!("regexp: Compile(`{pattern}`): {message}"),
        OnBadPattern::Error => message,
    }
}

fn strings<'a, 's>(items: impl Iterator<Item = &'s str>) -> Val<'a> {
    Val::Owned(Rc::new(Value::Array(items.map(Value::from).collect())))
}

/// Go's count argument: negative means all, else at most `n`.
fn limit(n: &Val<'_>) -> Result<usize, String> {
    Ok(usize::try_from(want_int(n)?).unwrap_or(usize::MAX))
}

/// `regexMatch regex s`: false when the pattern does not compile (unless `must…`).
pub fn is_match<'a>(pattern: &Val<'a>, s: &Val<'a>, on_bad: OnBadPattern) -> FnResult<'a> {
    let s = want_str(s)?;
    match compile(want_str(pattern)?, on_bad) {
        Ok(re) => Ok(Val::Bool(re.is_match(s))),
        Err(_) if on_bad == OnBadPattern::Panic => Ok(Val::Bool(false)),
        Err(e) => Err(e),
    }
}

/// `regexFind regex s`: the first match, `""` when none.
pub fn find<'a>(pattern: &Val<'a>, s: &Val<'a>, on_bad: OnBadPattern) -> FnResult<'a> {
    let re = compile(want_str(pattern)?, on_bad)?;
    Ok(Val::text(re.find(want_str(s)?).map_or("", |m| m.as_str())))
}

/// `regexFindAll regex s n`: up to `n` matches (all when `n` is negative).
pub fn find_all<'a>(a: &[Val<'a>], on_bad: OnBadPattern) -> FnResult<'a> {
    let re = compile(want_str(&a[0])?, on_bad)?;
    let n = limit(&a[2])?;
    Ok(strings(
        re.find_iter(want_str(&a[1])?).take(n).map(|m| m.as_str()),
    ))
}

/// `regexReplaceAll regex s repl` (`$1`, `${name}` expanded) or, `literal`,
/// `regexReplaceAllLiteral`.
pub fn replace_all<'a>(a: &[Val<'a>], literal: bool, on_bad: OnBadPattern) -> FnResult<'a> {
    let re = compile(want_str(&a[0])?, on_bad)?;
    let (s, repl) = (want_str(&a[1])?, want_str(&a[2])?);
    let out = if literal {
        re.replace_all(s, NoExpand(repl))
    } else {
        re.replace_all(s, repl)
    };
    Ok(Val::text(out))
}

/// `regexSplit regex s n`: the text between matches, at most `n` pieces (all when
/// negative), by Go's `Regexp.Split` rules: an empty match at the start or end of `s`
/// makes no empty piece.
pub fn split<'a>(a: &[Val<'a>], on_bad: OnBadPattern) -> FnResult<'a> {
    let pattern = want_str(&a[0])?;
    let re = compile(pattern, on_bad)?;
    let (s, n) = (want_str(&a[1])?, limit(&a[2])?);
    if n == 0 {
        return Ok(strings(std::iter::empty()));
    }
    if s.is_empty() {
        // Go: one empty piece, except for the empty pattern, which matches nothing here.
        return Ok(strings((!pattern.is_empty()).then_some("").into_iter()));
    }
    let mut pieces = Vec::new();
    let (mut begin, mut end) = (0, 0);
    for m in re.find_iter(s) {
        if pieces.len() + 1 == n {
            break;
        }
        end = m.start();
        if m.end() != 0 {
            pieces.push(&s[begin..end]);
        }
        begin = m.end();
    }
    if end != s.len() {
        pieces.push(&s[begin..]);
    }
    Ok(strings(pieces.into_iter()))
}

/// `regexQuoteMeta s`: Go's `regexp.QuoteMeta`, a backslash before each of
/// `\.+*?()|[]{}^$` (the `regex` crate's `escape` quotes more).
pub fn quote_meta<'a>(s: &Val<'a>) -> FnResult<'a> {
    let s = want_str(s)?;
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(Val::text(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(v: &Val<'_>) -> Vec<String> {
        v.to_value()
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn find_all_should_skip_empty_matches_abutting_a_match_like_go() {
        let v = find_all(
            &[Val::Str("a*"), Val::Str("baaac"), Val::Int(-1)],
            OnBadPattern::Error,
        )
        .unwrap();
        assert_eq!(texts(&v), ["", "aaa", ""]);
    }

    #[test]
    fn split_should_follow_go_regexp_split() {
        let cases: [(&str, &str, i64, &[&str]); 6] = [
            ("z+", "pizza", -1, &["pi", "a"]),
            ("z+", "pizza", 1, &["pizza"]),
            ("", "abc", -1, &["a", "b", "c"]),
            ("a", "", -1, &[""]),
            ("a*", "baaac", -1, &["b", "c"]),
            ("a", "bab", 0, &[]),
        ];
        for (re, s, n, want) in cases {
            let v = split(&[Val::Str(re), Val::Str(s), Val::Int(n)], OnBadPattern::Error).unwrap();
            assert_eq!(texts(&v), want, "{re} {s} {n}");
        }
    }

    #[test]
    fn a_bad_pattern_should_be_one_line_naming_the_pattern() {
        let e = find(&Val::Str("["), &Val::Str("x"), OnBadPattern::Error).unwrap_err();
        assert_eq!(e, "error parsing regexp: missing closing ]: `[`");
        let e = find(&Val::Str("["), &Val::Str("x"), OnBadPattern::Panic).unwrap_err();
        assert!(
            e.starts_with("regexp: Compile(`[`): error parsing regexp: "),
            "{e}"
        );
        let m = is_match(&Val::Str("["), &Val::Str("x"), OnBadPattern::Panic).unwrap();
        assert!(matches!(m, Val::Bool(false)));
    }

    #[test]
    fn quote_meta_should_escape_only_go_metacharacters() {
        let v = quote_meta(&Val::Str("1.2.3[x]-#")).unwrap();
        assert_eq!(v.as_str(), Some(r"1\.2\.3\[x\]-#"));
    }
}
