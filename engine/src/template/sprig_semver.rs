//! Sprig's `semver` and `semverCompare`: versions and constraints as
//! `github.com/Masterminds/semver/v3` reads them.
//!
//! Masterminds is looser than SemVer 2 and than Cargo's rules, which is why this is not
//! the `semver` crate: a version may start with `v` and omit its minor and patch
//! (`v1.2`); a constraint is `||`-separated alternatives, each a list of comparisons
//! separated by spaces or commas, all of which must hold. A comparison is an operator
//! (`=`, `!=`, `>`, `<`, `>=`, `=>`, `<=`, `=<`, `~`, `~>`, `^`, or none for `=`) and a
//! version whose missing or `x`/`X`/`*` parts are wildcards; `a - b` means `>= a, <= b`.
//! A version with a prerelease satisfies a comparison only if that comparison's version
//! has a prerelease too (`!=` excepted).

use std::{cmp::Ordering, rc::Rc};

use serde_json::{Map, Value};

use super::{
    sprig::want_str,
    value::{FnResult, Val},
};

/// A parsed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    /// Dot-separated identifiers after `-`, empty when none.
    pre: String,
    /// Dot-separated identifiers after `+`, empty when none; never compared.
    metadata: String,
    /// The text it was parsed from.
    original: String,
}

const INVALID: &str = "Invalid Semantic Version";

/// A reader over the text of a version or constraint.
struct Cursor<'s> {
    rest: &'s str,
}

impl<'s> Cursor<'s> {
    fn eat(&mut self, prefix: &str) -> bool {
        match self.rest.strip_prefix(prefix) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// The longest prefix whose characters satisfy `f`.
    fn take(&mut self, f: impl Fn(char) -> bool) -> &'s str {
        let end = self.rest.find(|c| !f(c)).unwrap_or(self.rest.len());
        let (taken, rest) = self.rest.split_at(end);
        self.rest = rest;
        taken
    }

    /// Spaces skipped; whether there were any.
    fn skip_space(&mut self) -> bool {
        !self.take(char::is_whitespace).is_empty()
    }

    /// `-ident.ident…` or `+ident.ident…` after `sigil`; `""` when absent.
    fn identifiers(&mut self, sigil: &str) -> Result<&'s str, ()> {
        if !self.eat(sigil) {
            return Ok("");
        }
        let ids = self.take(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        let valid = ids.split('.').all(|id| !id.is_empty());
        if valid { Ok(ids) } else { Err(()) }
    }
}

/// One numeric part of a version in a constraint: a number, a wildcard, or absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Num(u64),
    Any,
}

fn part(c: &mut Cursor<'_>, wildcards: bool) -> Result<Part, ()> {
    if wildcards && ["x", "X", "*"].iter().any(|w| c.eat(w)) {
        return Ok(Part::Any);
    }
    let digits = c.take(|ch| ch.is_ascii_digit());
    digits.parse().map(Part::Num).map_err(|_| ())
}

/// The parts of a (possibly partial) version: `v?N(.N)?(.N)?(-pre)?(+meta)?`.
type Parts<'s> = ([Option<Part>; 3], &'s str, &'s str);

fn parts<'s>(c: &mut Cursor<'s>, wildcards: bool) -> Result<Parts<'s>, ()> {
    c.eat("v");
    let mut nums = [Some(part(c, wildcards)?), None, None];
    for slot in &mut nums[1..] {
        if !c.eat(".") {
            break;
        }
        *slot = Some(part(c, wildcards)?);
    }
    Ok((nums, c.identifiers("-")?, c.identifiers("+")?))
}

impl Version {
    /// Masterminds' `NewVersion`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut c = Cursor { rest: text };
        let ([major, minor, patch], pre, metadata) = parts(&mut c, false).map_err(|()| INVALID)?;
        if !c.rest.is_empty() {
            return Err(INVALID.into());
        }
        let num = |p: Option<Part>| match p {
            Some(Part::Num(n)) => n,
            _ => 0,
        };
        if pre
            .split('.')
            .any(|id| id.len() > 1 && id.starts_with('0') && id.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err("Version segment starts with 0".into());
        }
        Ok(Version {
            major: num(major),
            minor: num(minor),
            patch: num(patch),
            pre: pre.to_owned(),
            metadata: metadata.to_owned(),
            original: text.to_owned(),
        })
    }

    /// Precedence: numbers, then a release above its prereleases, metadata ignored.
    fn precedence(&self, o: &Version) -> Ordering {
        let numbers = (self.major, self.minor, self.patch).cmp(&(o.major, o.minor, o.patch));
        numbers.then_with(|| match (self.pre.is_empty(), o.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => compare_prerelease(&self.pre, &o.pre),
        })
    }

    /// Sprig's `semver` result: a dict of the version's accessors.
    fn to_dict(&self) -> Value {
        let mut m = Map::new();
        m.insert("Major".into(), self.major.into());
        m.insert("Minor".into(), self.minor.into());
        m.insert("Patch".into(), self.patch.into());
        m.insert("Prerelease".into(), self.pre.clone().into());
        m.insert("Metadata".into(), self.metadata.clone().into());
        m.insert("Original".into(), self.original.clone().into());
        Value::Object(m)
    }
}

/// Masterminds' prerelease order: identifier by identifier, a missing one lowest,
/// numbers below words, numbers by value, words by bytes.
fn compare_prerelease(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.split('.'), b.split('.'));
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => {
                return match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) if x > y => Ordering::Greater,
                    (Ok(_), Ok(_)) | (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) if x > y => Ordering::Greater,
                    (Err(_), Err(_)) => Ordering::Less,
                };
            }
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal,
    NotEqual,
    Greater,
    Less,
    GreaterEqual,
    LessEqual,
    Tilde,
    Caret,
}

/// Operators by spelling, longest first so that `>=` is not read as `>`.
const OPS: [(&str, Op); 11] = [
    ("!=", Op::NotEqual),
    (">=", Op::GreaterEqual),
    ("=>", Op::GreaterEqual),
    ("<=", Op::LessEqual),
    ("=<", Op::LessEqual),
    ("~>", Op::Tilde),
    (">", Op::Greater),
    ("<", Op::Less),
    ("=", Op::Equal),
    ("~", Op::Tilde),
    ("^", Op::Caret),
];

/// One comparison.
#[derive(Debug, Clone)]
struct Comparison {
    op: Op,
    /// The version, wildcards as 0.
    version: Version,
    /// Which part is the first wildcard: `Some(0)` for `*`, `Some(1)` for `1.x`,
    /// `Some(2)` for `1.2.x`, `None` for a full version.
    wildcard: Option<usize>,
}

impl Comparison {
    fn new(op: Op, (nums, pre, metadata): Parts<'_>, text: &str) -> Self {
        let wildcard = nums.iter().position(|p| !matches!(p, Some(Part::Num(_))));
        let num = |i: usize| match nums[i] {
            Some(Part::Num(n)) if wildcard.is_none_or(|w| i < w) => n,
            _ => 0,
        };
        let version = Version {
            major: num(0),
            minor: num(1),
            patch: num(2),
            pre: pre.to_owned(),
            // A wildcard version drops its metadata, as Masterminds does.
            metadata: if wildcard.is_none() {
                metadata.to_owned()
            } else {
                String::new()
            },
            original: text.to_owned(),
        };
        Comparison {
            op,
            version,
            wildcard,
        }
    }

    fn minor_dirty(&self) -> bool {
        self.wildcard == Some(1)
    }

    fn patch_dirty(&self) -> bool {
        self.wildcard == Some(2)
    }

    /// Whether `v` satisfies this comparison.
    fn check(&self, v: &Version) -> bool {
        let c = &self.version;
        if !v.pre.is_empty() && c.pre.is_empty() && (self.op != Op::NotEqual || self.wildcard.is_some()) {
            return false;
        }
        let order = v.precedence(c);
        match self.op {
            Op::Equal if self.wildcard.is_some() => self.tilde(v),
            Op::Equal => order.is_eq(),
            Op::NotEqual => self.not_equal(v),
            Op::Greater => self.greater(v),
            Op::Less => order.is_lt(),
            Op::GreaterEqual => order.is_ge(),
            Op::LessEqual => self.less_equal(v),
            Op::Tilde => self.tilde(v),
            Op::Caret => self.caret(v),
        }
    }

    fn not_equal(&self, v: &Version) -> bool {
        let c = &self.version;
        match self.wildcard {
            Some(_) if v.major != c.major => true,
            Some(1) => false,
            Some(2) if v.minor != c.minor => true,
            Some(2) => compare_prerelease(&v.pre, &c.pre).is_ne() && !(v.pre.is_empty() && c.pre.is_empty()),
            _ => v.precedence(c).is_ne(),
        }
    }

    fn greater(&self, v: &Version) -> bool {
        let c = &self.version;
        match self.wildcard {
            None => v.precedence(c).is_gt(),
            Some(_) if v.major != c.major => v.major > c.major,
            Some(1) => false,
            Some(2) => v.minor > c.minor,
            _ => v.precedence(c).is_gt(),
        }
    }

    fn less_equal(&self, v: &Version) -> bool {
        let c = &self.version;
        match self.wildcard {
            None => v.precedence(c).is_le(),
            Some(_) => {
                v.major < c.major || (v.major == c.major && (v.minor <= c.minor || self.minor_dirty()))
            }
        }
    }

    /// `~1.2.3`: at least it, same major and minor (`~1`: same major; `~0`, `~*`: any).
    fn tilde(&self, v: &Version) -> bool {
        let c = &self.version;
        if v.precedence(c).is_lt() {
            return false;
        }
        let any = (c.major, c.minor, c.patch) == (0, 0, 0) && !self.minor_dirty() && !self.patch_dirty();
        any || (v.major == c.major && (v.minor == c.minor || self.minor_dirty()))
    }

    /// `^1.2.3`: at least it, below the next change of its first non-zero part.
    fn caret(&self, v: &Version) -> bool {
        let c = &self.version;
        if v.precedence(c).is_lt() {
            return false;
        }
        if c.major > 0 || self.minor_dirty() {
            return v.major == c.major;
        }
        if v.major > 0 {
            return false;
        }
        if c.minor > 0 || self.patch_dirty() {
            return v.minor == c.minor;
        }
        v.minor == 0 && v.patch == c.patch
    }
}

/// A parsed constraint: alternatives of comparisons that must all hold.
#[derive(Debug, Clone)]
pub struct Constraint {
    any_of: Vec<Vec<Comparison>>,
}

impl Constraint {
    /// Masterminds' `NewConstraint`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let any_of = text
            .split("||")
            .map(|group| all_of(group).ok_or_else(|| format!("improper constraint: {group}")))
            .collect::<Result<_, _>>()?;
        Ok(Constraint { any_of })
    }

    /// Whether `v` satisfies one of the alternatives.
    pub fn check(&self, v: &Version) -> bool {
        self.any_of.iter().any(|all| all.iter().all(|c| c.check(v)))
    }
}

/// The comparisons of one `||` alternative; `None` when it does not parse.
fn all_of(group: &str) -> Option<Vec<Comparison>> {
    let mut c = Cursor { rest: group };
    let mut out = Vec::new();
    c.skip_space();
    loop {
        let op = OPS
            .iter()
            .find(|(s, _)| c.eat(s))
            .map_or(Op::Equal, |(_, op)| *op);
        let spaced = c.skip_space();
        let start = c.rest;
        let first = parts(&mut c, true).ok()?;
        let first_text = &start[..start.len() - c.rest.len()];
        let mut separated = c.skip_space();
        // `a - b`: a range, only between two bare versions.
        if op == Op::Equal && !spaced && separated && c.eat("-") {
            if !c.skip_space() {
                return None;
            }
            let start = c.rest;
            let last = parts(&mut c, true).ok()?;
            let last_text = &start[..start.len() - c.rest.len()];
            out.push(Comparison::new(Op::GreaterEqual, first, first_text));
            out.push(Comparison::new(Op::LessEqual, last, last_text));
            separated = c.skip_space();
        } else {
            out.push(Comparison::new(op, first, first_text));
        }
        if c.rest.is_empty() {
            return Some(out);
        }
        if c.eat(",") {
            c.skip_space();
        } else if !separated {
            return None;
        }
    }
}

/// `semverCompare constraint version`.
pub fn compare<'a>(constraint: &Val<'a>, version: &Val<'a>) -> FnResult<'a> {
    let constraint = Constraint::parse(want_str(constraint)?)?;
    let version = Version::parse(want_str(version)?)?;
    Ok(Val::Bool(constraint.check(&version)))
}

/// `semver version`: a dict with `Major`, `Minor`, `Patch`, `Prerelease`, `Metadata`
/// and `Original`, the accessors of Masterminds' `*Version`.
pub fn semver<'a>(version: &Val<'a>) -> FnResult<'a> {
    let version = Version::parse(want_str(version)?)?;
    Ok(Val::Owned(Rc::new(version.to_dict())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(constraint: &str, version: &str) -> Result<bool, String> {
        Ok(Constraint::parse(constraint)?.check(&Version::parse(version)?))
    }

    #[test]
    fn constraints_should_match_masterminds_outputs() {
        // Recorded from sprig v3.3.0 (Masterminds/semver v3.3.0).
        let cases = [
            (">=1.2.3", "1.2.4", true),
            ("~1.2", "1.2.9", true),
            ("~1.2", "1.3.0", false),
            ("^1.2", "1.9.0", true),
            ("^1.2", "2.0.0", false),
            ("^0.2.3", "0.2.9", true),
            ("^0.2.3", "0.3.0", false),
            ("^0.0.3", "0.0.4", false),
            (">=1.2, <2", "1.5", true),
            (">=1.2 <2", "2.0.0", false),
            ("1.2 - 1.4.5", "1.4.5", true),
            ("1.2 - 1.4.5", "1.4.6", false),
            ("<1 || >=3", "3.1.0", true),
            ("<1 || >=3", "2.1.0", false),
            (">=1.2.3", "1.2.4-beta", false),
            (">=1.2.3-0", "1.2.4-beta", true),
            ("1.x", "1.9.9", true),
            ("*", "1.9.9", true),
            ("!=1.2.x", "1.2.3", false),
            ("!=1.2.x", "1.3.3", true),
            (">11", "11.1.0", false),
            (">11.1", "11.2.0", true),
            ("<=1.2", "1.2.9", true),
            ("=v1.2.3", "v1.2.3+meta", true),
            (">= 1.2.3", "1.2.3", true),
            ("~>1.2.3", "1.2.5", true),
            ("> 1.0.0-alpha", "1.0.0-beta", true),
            ("> 1.0.0-alpha.10", "1.0.0-alpha.9", false),
        ];
        for (constraint, version, want) in cases {
            assert_eq!(check(constraint, version), Ok(want), "{constraint} {version}");
        }
    }

    #[test]
    fn bad_input_should_fail_with_masterminds_messages() {
        assert_eq!(check("foo", "1.2.3"), Err("improper constraint: foo".into()));
        assert_eq!(check("", "1.2.3"), Err("improper constraint: ".into()));
        assert_eq!(check(">1", "notaversion"), Err(INVALID.into()));
        assert_eq!(check(">1 <", "1.0.0"), Err("improper constraint: >1 <".into()));
    }

    #[test]
    fn versions_should_parse_leniently() {
        let v = Version::parse("v1.2.3-alpha.1+build").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 2, 3));
        assert_eq!((v.pre.as_str(), v.metadata.as_str()), ("alpha.1", "build"));
        assert_eq!(Version::parse("1.02.3").unwrap().minor, 2);
        assert_eq!(Version::parse("v1.2").unwrap().patch, 0);
        assert!(Version::parse("1.2.3.4").is_err());
        assert!(Version::parse("1.2.3-01").is_err());
    }
}
