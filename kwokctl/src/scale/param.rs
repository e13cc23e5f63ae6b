//! `--param`: a jq program (usually an assignment like `.spec.x = "y"`) applied to a
//! template once, before any object is made.

use kwok_engine::selector::Jq;
use serde_json::Value;

use super::{Error, Result};

/// One compiled `--param`.
#[derive(Clone)]
pub struct Param {
    code: String,
    filter: Jq,
}

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Param").field(&self.code).finish()
    }
}

impl Param {
    /// Compiles `code` with jq's standard definitions.
    ///
    /// jaq, unlike jq, does not turn a missing (null) parent into an object when a path
    /// below it is assigned; for the usual `.a.b.c = v` the parents are made first.
    pub fn compile(code: &str) -> Result<Self> {
        let err = |message: String| Error::Param {
            code: code.to_owned(),
            message,
        };
        // The user's own program is checked first, so errors point into what they typed.
        Jq::compile(code).map_err(err)?;
        let filter = Jq::compile(&with_parents(code)).map_err(err)?;
        Ok(Self {
            code: code.to_owned(),
            filter,
        })
    }

    /// The first key of the path the program assigns (`allocatable` for
    /// `.allocatable.cpu = "4"`), if it starts with an assignment to a plain path.
    pub fn first_key(&self) -> Option<&str> {
        let first = *leading_path(self.code.trim_start()).first()?;
        let key = first
            .trim_start_matches('.')
            .trim_start_matches('[')
            .trim_end_matches(']');
        Some(key.trim_matches('"'))
    }

    /// Runs the program on `object`; it must yield exactly one object.
    pub fn apply(&self, object: Value) -> Result<Value> {
        let err = |message: String| Error::Param {
            code: self.code.clone(),
            message,
        };
        // Two are enough to tell "exactly one" apart.
        let mut outputs = self.filter.run(&object, 2).map_err(err)?.into_iter();
        let value = outputs.next().ok_or_else(|| err("it yields nothing".into()))?;
        if outputs.next().is_some() {
            return Err(err("it yields more than one value".into()));
        }
        if !value.is_object() {
            return Err(err(format!(
                "it yields {value}, not an object (use an assignment like .a = 1)"
            )));
        }
        Ok(value)
    }
}

/// `code` preceded by `(.a //= {}) | (.a.b //= {}) |` when it starts with the
/// assignment of a plain path `.a.b.c` (identifiers, `."key"` or `["key"]` segments).
fn with_parents(code: &str) -> String {
    let segments = leading_path(code.trim_start());
    let mut prelude = String::new();
    for i in 1..segments.len() {
        prelude.push_str(&format!("({} //= {{}}) | ", segments[..i].concat()));
    }
    if prelude.is_empty() {
        code.to_owned()
    } else {
        format!("{prelude}({code})")
    }
}

/// The segments of the path `code` starts with, if an assignment operator follows it.
fn leading_path(code: &str) -> Vec<&str> {
    let mut segments = Vec::new();
    let mut rest = code;
    loop {
        let len = segment_len(rest);
        if len == 0 {
            break;
        }
        segments.push(&rest[..len]);
        rest = &rest[len..];
    }
    let op = rest.trim_start();
    let assigns = ["=", "|=", "+=", "-=", "*=", "/=", "%=", "//="]
        .iter()
        .any(|a| op.starts_with(a) && !op.starts_with("=="));
    if assigns { segments } else { Vec::new() }
}

/// Length of one path segment at the start of `s`: `.ident`, `."key"`, `.["key"]` or `["key"]`.
fn segment_len(s: &str) -> usize {
    let quoted = |s: &str| -> usize {
        let bytes = s.as_bytes();
        if bytes.first() != Some(&b'"') {
            return 0;
        }
        let mut i = 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => return i + 1,
                _ => i += 1,
            }
        }
        0
    };
    let bracketed = |s: &str| -> usize {
        let Some(inner) = s.strip_prefix('[') else {
            return 0;
        };
        let q = quoted(inner);
        if q > 0 && inner[q..].starts_with(']') {
            q + 2
        } else {
            0
        }
    };
    if let Some(after) = s.strip_prefix('.') {
        let ident = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        let first_ok = after
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
        if ident > 0 && first_ok {
            return 1 + ident;
        }
        let q = quoted(after).max(bracketed(after));
        return if q > 0 { 1 + q } else { 0 };
    }
    bracketed(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn apply_should_assign_nested_paths() {
        let p = Param::compile(r#".a.b = "x""#).unwrap();
        assert_eq!(
            p.apply(json!({"n": 1})).unwrap(),
            json!({"n": 1, "a": {"b": "x"}})
        );
        let p = Param::compile(".n += 1").unwrap();
        assert_eq!(p.apply(json!({"n": 1})).unwrap(), json!({"n": 2}));
    }

    #[test]
    fn apply_should_make_missing_parents_like_jq() {
        let p = Param::compile(r#".metadata.annotations."example.com/x" = "y""#).unwrap();
        assert_eq!(
            p.apply(json!({"metadata": {}})).unwrap(),
            json!({"metadata": {"annotations": {"example.com/x": "y"}}})
        );
        let p = Param::compile(r#".a["b"].c |= 3"#).unwrap();
        assert_eq!(p.apply(json!({})).unwrap(), json!({"a": {"b": {"c": 3}}}));
    }

    #[test]
    fn first_key_should_name_the_assigned_top_level_field() {
        let key = |code: &str| Param::compile(code).unwrap().first_key().map(str::to_owned);
        assert_eq!(key(r#".allocatable.cpu = "4""#).as_deref(), Some("allocatable"));
        assert_eq!(key(r#"."status".x = 1"#).as_deref(), Some("status"));
        assert_eq!(key(".a | .b"), None);
    }

    #[test]
    fn leading_path_should_only_split_assignments() {
        assert_eq!(leading_path(".a.b = 1"), [".a", ".b"]);
        assert_eq!(
            leading_path(r#".a."x.y"["z"] |= 1"#),
            [".a", r#"."x.y""#, r#"["z"]"#]
        );
        assert!(leading_path(".a.b == 1").is_empty());
        assert!(leading_path(".a | .b = 1").is_empty());
    }

    #[test]
    fn compile_should_reject_bad_jq_naming_it() {
        let err = Param::compile(".a = ").unwrap_err().to_string();
        assert!(err.starts_with("invalid --param \".a = \": "), "{err}");
        let err = Param::compile("nosuch").unwrap_err().to_string();
        assert!(err.ends_with("undefined filter nosuch"), "{err}");
    }

    #[test]
    fn apply_should_refuse_non_objects_and_report_run_time_errors() {
        let err = Param::compile(".a").unwrap().apply(json!({"a": 1})).unwrap_err();
        assert!(err.to_string().contains("not an object"), "{err}");
        let err = Param::compile(".a.b = 1")
            .unwrap()
            .apply(json!({"a": "s"}))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid --param \".a.b = 1\": cannot"),
            "{err}"
        );
    }
}
