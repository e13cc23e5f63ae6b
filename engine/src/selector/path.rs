//! Plain jq paths (`.a.b`, `.a["b-c"]`, `.a[0]`, `.a.[]`) walked directly over `serde_json::Value`.
//!
//! Most Stage expressions are such paths. Walking the object by reference costs a few map
//! look-ups and allocates nothing, where running jaq first converts the object into jaq values.

use serde_json::Value;

use super::QueryError;

/// `null`, yielded for a missing key or an index past the end, as jq does.
static NULL: Value = Value::Null;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// `.name` or `["name"]`: the field of an object; `null` on `null` or a missing key.
    Key(String),
    /// `[3]` or `[-1]`: the element of an array (negative counts from the end); `null` on `null`.
    Index(i64),
    /// `[]`: every element of an array or every value of an object.
    Iter,
}

/// A parsed plain path: jq's `.` followed by zero or more segments.
///
/// # Implementation
/// The semantics follow jq: a key or index on `null` yields `null`, a key on anything but an
/// object or `null` is an error, `[]` on anything but an array or object is an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Path {
    segments: Vec<Segment>,
}

impl Path {
    /// Reads a plain path at the start of `s` (after optional spaces) and returns it with the
    /// text after it; `None` if `s` does not start with one.
    ///
    /// The path must end at the end of `s`, a space, or one of `|=!),`: `.a-1` or `.a?` are not
    /// paths.
    pub(crate) fn parse(s: &str) -> Option<(Self, &str)> {
        let mut p = Parser {
            s: s.trim_start(),
            segments: Vec::new(),
        };
        p.parse_path()?;
        Some((Self { segments: p.segments }, p.s))
    }

    /// Whether the path yields exactly one output (or an error) on any input.
    pub(crate) fn is_single(&self) -> bool {
        !self.segments.contains(&Segment::Iter)
    }

    /// The one output of a path without `[]` on `obj`, walked without callbacks.
    ///
    /// # Panics
    /// In debug builds, if the path has a `[]` segment.
    pub(crate) fn get<'v>(&self, obj: &'v Value) -> Result<&'v Value, QueryError> {
        debug_assert!(self.is_single(), "get on a path with []: {self:?}");
        self.segments
            .iter()
            .try_fold(obj, |value, segment| match segment {
                Segment::Key(key) => field(value, key),
                Segment::Index(i) => element(value, *i),
                Segment::Iter => Err(QueryError),
            })
    }

    /// Calls `out` on every output of the path on `obj`, in jq order, stopping at the first error
    /// (of the path or of `out`).
    ///
    /// Outputs produced before the error have already been passed to `out`.
    pub(crate) fn visit(&self, obj: &Value, out: &mut Visitor<'_>) -> Result<(), QueryError> {
        walk(&self.segments, obj, out)
    }

    /// The segments, in order.
    #[cfg(test)]
    pub(crate) fn segments(&self) -> &[Segment] {
        &self.segments
    }
}

/// A callback receiving the outputs of a query; an error stops the query.
pub(crate) type Visitor<'a> = dyn FnMut(&Value) -> Result<(), QueryError> + 'a;

fn walk(segments: &[Segment], value: &Value, out: &mut Visitor<'_>) -> Result<(), QueryError> {
    let Some((first, rest)) = segments.split_first() else {
        return out(value);
    };
    match first {
        Segment::Key(key) => walk(rest, field(value, key)?, out),
        Segment::Index(i) => walk(rest, element(value, *i)?, out),
        Segment::Iter => match value {
            Value::Array(items) => items.iter().try_for_each(|v| walk(rest, v, out)),
            Value::Object(map) => map.values().try_for_each(|v| walk(rest, v, out)),
            _ => Err(QueryError),
        },
    }
}

/// The value at `key` if `value` is an object that has it (`Map` is a `BTreeMap`: its
/// search stops at the first key past `key`, cheaper than scanning every entry).
pub(crate) fn lookup<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    match value {
        Value::Object(map) => map.get(key),
        _ => None,
    }
}

fn field<'v>(value: &'v Value, key: &str) -> Result<&'v Value, QueryError> {
    match value {
        Value::Object(_) => Ok(lookup(value, key).unwrap_or(&NULL)),
        Value::Null => Ok(&NULL),
        _ => Err(QueryError),
    }
}

fn element(value: &Value, i: i64) -> Result<&Value, QueryError> {
    match value {
        Value::Array(items) => {
            let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
            let at = if i < 0 { len + i } else { i };
            let at = usize::try_from(at).ok();
            Ok(at.and_then(|at| items.get(at)).unwrap_or(&NULL))
        }
        Value::Null => Ok(&NULL),
        _ => Err(QueryError),
    }
}

// ===== parsing =====

/// A cursor over the expression text; `s` is what is left to read.
struct Parser<'s> {
    s: &'s str,
    segments: Vec<Segment>,
}

impl Parser<'_> {
    /// Reads `.` and the segments after it; `None` if this is not a plain path.
    fn parse_path(&mut self) -> Option<()> {
        self.s = self.s.strip_prefix('.')?;
        if self.at_end_of_path() {
            return Some(()); // `.` alone
        }
        self.parse_after_dot()?;
        loop {
            if self.at_end_of_path() {
                return Some(());
            }
            if let Some(rest) = self.s.strip_prefix('.') {
                self.s = rest;
                self.parse_after_dot()?;
            } else {
                self.parse_bracket()?;
            }
        }
    }

    /// Whether the path ends here: at the end, a space, or a character that cannot continue a
    /// path but can follow one (`|`, `=`, `!`, `)`, `,`); callers check what follows.
    fn at_end_of_path(&self) -> bool {
        self.s.is_empty()
            || self
                .s
                .starts_with(|c: char| c.is_whitespace() || "|=!),".contains(c))
    }

    /// After a `.`: a name, a quoted name, or a bracket.
    fn parse_after_dot(&mut self) -> Option<()> {
        if self.s.starts_with('[') {
            return self.parse_bracket();
        }
        let key = if self.s.starts_with('"') {
            self.parse_string()?
        } else {
            self.parse_ident()?
        };
        self.segments.push(Segment::Key(key));
        Some(())
    }

    fn parse_ident(&mut self) -> Option<String> {
        let first = self.s.chars().next()?;
        if !(first.is_ascii_alphabetic() || first == '_') {
            return None;
        }
        let end = self
            .s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.s.len());
        let (ident, rest) = self.s.split_at(end);
        self.s = rest;
        Some(ident.to_owned())
    }

    /// A string literal without escapes or interpolation (those go to jq).
    fn parse_string(&mut self) -> Option<String> {
        let body = self.s.strip_prefix('"')?;
        let end = body.find(['"', '\\'])?;
        if body[end..].starts_with('\\') {
            return None;
        }
        self.s = &body[end + 1..];
        Some(body[..end].to_owned())
    }

    /// `[]`, `["name"]` or `[integer]`, with optional spaces inside.
    fn parse_bracket(&mut self) -> Option<()> {
        self.s = self.s.strip_prefix('[')?.trim_start();
        let segment = if self.s.starts_with(']') {
            Segment::Iter
        } else if self.s.starts_with('"') {
            Segment::Key(self.parse_string()?)
        } else {
            Segment::Index(self.parse_int()?)
        };
        self.s = self.s.trim_start().strip_prefix(']')?;
        self.segments.push(segment);
        Some(())
    }

    fn parse_int(&mut self) -> Option<i64> {
        let digits_from = usize::from(self.s.starts_with('-'));
        let end = self.s[digits_from..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(self.s.len(), |e| e + digits_from);
        if end == digits_from {
            return None;
        }
        let (int, rest) = self.s.split_at(end);
        self.s = rest;
        int.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(expr: &str) -> Path {
        match Path::parse(expr) {
            Some((p, rest)) if rest.trim().is_empty() => p,
            other => panic!("{expr:?} is not a plain path: {other:?}"),
        }
    }

    fn outputs(expr: &str, obj: &Value) -> Result<Vec<Value>, QueryError> {
        let mut out = Vec::new();
        path(expr).visit(obj, &mut |v| {
            out.push(v.clone());
            Ok(())
        })?;
        Ok(out)
    }

    fn key(k: &str) -> Segment {
        Segment::Key(k.into())
    }

    #[test]
    fn parse_should_read_dotted_quoted_and_bracketed_segments() {
        let p = path(r#".metadata.annotations["a/b-c"]."x y".list.[][0][ -1 ]"#);
        let want = [
            key("metadata"),
            key("annotations"),
            key("a/b-c"),
            key("x y"),
            key("list"),
            Segment::Iter,
            Segment::Index(0),
            Segment::Index(-1),
        ];
        assert_eq!(p.segments(), want);
    }

    #[test]
    fn parse_should_accept_identity_and_surrounding_spaces() {
        assert_eq!(path(" . ").segments(), []);
        assert_eq!(path(" .a ").segments(), [key("a")]);
    }

    #[test]
    fn parse_should_stop_before_a_pipe() {
        let (p, rest) = Path::parse(".status.conditions.[]| .status").unwrap();
        assert_eq!(p.segments(), [key("status"), key("conditions"), Segment::Iter]);
        assert_eq!(rest, "| .status");
    }

    #[test]
    fn parse_should_reject_what_is_not_a_plain_path() {
        for expr in [
            "..",
            ".a..b",
            ".5",
            ".a-1",
            ".a?",
            r#".["a\"b"]"#,
            ".a[1:2]",
            "(.a)",
            ".[.a]",
            "length",
        ] {
            assert_eq!(Path::parse(expr), None, "{expr}");
        }
    }

    #[test]
    fn visit_should_yield_null_for_missing_keys_and_indexes() {
        let obj = json!({"a": {"b": [1, 2]}});
        assert_eq!(outputs(".x.y", &obj), Ok(vec![Value::Null]));
        assert_eq!(outputs(".a.b[5]", &obj), Ok(vec![Value::Null]));
        assert_eq!(outputs(".a.b[-1]", &obj), Ok(vec![json!(2)]));
        assert_eq!(outputs(".a.b[-3]", &obj), Ok(vec![Value::Null]));
    }

    #[test]
    fn visit_should_iterate_arrays_and_object_values() {
        let obj = json!({"a": [{"k": 1}, {"k": 2}], "o": {"x": 1, "y": "z"}});
        assert_eq!(outputs(".a.[].k", &obj), Ok(vec![json!(1), json!(2)]));
        assert_eq!(outputs(".o[]", &obj), Ok(vec![json!(1), json!("z")]));
        assert_eq!(outputs(".none[]", &json!({})), Err(QueryError));
    }

    #[test]
    fn visit_should_fail_on_a_key_of_a_scalar_or_an_index_of_an_object() {
        let obj = json!({"s": "text", "o": {}});
        assert_eq!(outputs(".s.x", &obj), Err(QueryError));
        assert_eq!(outputs(".o[0]", &obj), Err(QueryError));
    }

    #[test]
    fn visit_should_find_keys_in_large_objects_by_hash() {
        let map: serde_json::Map<String, Value> = (0..40).map(|i| (format!("k{i}"), json!(i))).collect();
        let obj = Value::Object(map);
        assert_eq!(outputs(".k33", &obj), Ok(vec![json!(33)]));
        assert_eq!(outputs(".k40", &obj), Ok(vec![Value::Null]));
    }
}
