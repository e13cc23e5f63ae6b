//! Full jq filters, compiled once with jaq and run on `serde_json::Value`s.

use std::{fmt::Write as _, sync::Arc};

use jaq_core::{
    Compiler, Ctx, Vars,
    data::JustLut,
    load::{self, Arena, File, Loader},
};
use jaq_json::{Num, Val};
use serde::Deserialize;
use serde_json::Value;

use super::{QueryError, path::Visitor};

type Filter = jaq_core::Filter<JustLut<Val>>;

/// A jq filter compiled with jaq's core, standard and JSON definitions.
///
/// # Implementation
/// The compiled filter is behind an `Arc`, so clones are cheap and share one program.
/// Running it converts the input `serde_json::Value` into jaq's `Val` (a deep copy of the
/// input, which dominates the cost for whole Kubernetes objects) and each output back.
#[derive(Clone)]
pub struct Jq {
    filter: Arc<Filter>,
}

impl std::fmt::Debug for Jq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jq").finish_non_exhaustive()
    }
}

impl Jq {
    /// Compiles `code`; the error is jaq's message, e.g. `expected term, found "}"`.
    pub fn compile(code: &str) -> Result<Self, String> {
        let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
        let funs = jaq_core::funs().chain(jaq_std::funs()).chain(jaq_json::funs());
        let arena = Arena::default();
        let modules = Loader::new(defs)
            .load(&arena, File { code, path: () })
            .map_err(|errs| load_message(&errs))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errs| {
                let names = errs.iter().flat_map(|(_, es)| es.iter());
                join(names.map(|(name, undefined)| format!("undefined {} {name}", undefined.as_str())))
            })?;
        Ok(Self {
            filter: Arc::new(filter),
        })
    }

    /// The first `limit` outputs for `input` (a program may yield without end), or the
    /// first error's message (`kwokctl scale --param` reports it to the user).
    pub fn run(&self, input: &Value, limit: usize) -> Result<Vec<Value>, String> {
        let input = Val::deserialize(input).map_err(|e| e.to_string())?;
        let ctx = Ctx::<JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        self.filter
            .id
            .run((ctx, input))
            .take(limit)
            .map(|output| match output {
                Ok(val) => Ok(to_json(&val)),
                Err(e) => Err(match e.get_err() {
                    Ok(e) => e.to_string(),
                    Err(_) => "it breaks out of the program".to_owned(),
                }),
            })
            .collect()
    }

    /// Calls `out` on every output for `input`, stopping at the first error.
    pub(crate) fn visit(&self, input: &Value, out: &mut Visitor<'_>) -> Result<(), QueryError> {
        let input = Val::deserialize(input).map_err(|_| QueryError)?;
        let ctx = Ctx::<JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        for output in self.filter.id.run((ctx, input)) {
            out(&to_json(&output.map_err(|_| QueryError)?))?;
        }
        Ok(())
    }
}

fn load_message(errs: &load::Errors<&str, ()>) -> String {
    let mut messages = Vec::new();
    for (_, err) in errs {
        match err {
            load::Error::Io(es) => messages.extend(es.iter().map(|(path, e)| format!("{path}: {e}"))),
            load::Error::Lex(es) => messages.extend(es.iter().map(|(expect, found)| {
                let expected = match expect {
                    // `as_str` panics on delimiters other than these.
                    load::lex::Expect::Delim(d) if !matches!(*d, "(" | "[" | "{" | "\"") => {
                        format!("closing delimiter for {d}")
                    }
                    other => other.as_str().to_owned(),
                };
                found_message(&expected, found)
            })),
            load::Error::Parse(es) => messages.extend(
                es.iter()
                    .map(|(expect, found)| found_message(expect.as_str(), found)),
            ),
        }
    }
    join(messages.into_iter())
}

/// `expected X, found "Y"`, with `Y` cut to its first few characters (lexer errors carry the
/// whole rest of the input).
fn found_message(expected: &str, found: &str) -> String {
    const SHOWN: usize = 20;
    let mut cut: String = found.chars().take(SHOWN).collect();
    if found.chars().nth(SHOWN).is_some() {
        cut.push('…');
    }
    if found.is_empty() {
        format!("expected {expected}, found end of input")
    } else {
        format!("expected {expected}, found {cut:?}")
    }
}

fn join(messages: impl Iterator<Item = String>) -> String {
    let mut out = String::new();
    for m in messages {
        if !out.is_empty() {
            out.push_str("; ");
        }
        let _ = write!(out, "{m}");
    }
    out
}

/// Converts a jq output to JSON: byte strings become text (lossily), non-finite numbers
/// `null`, and non-string object keys their JSON text.
fn to_json(val: &Val) -> Value {
    match val {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => num_to_json(n),
        Val::TStr(b) | Val::BStr(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Val::Arr(items) => Value::Array(items.iter().map(to_json).collect()),
        Val::Obj(map) => Value::Object(map.iter().map(|(k, v)| (key_to_string(k), to_json(v))).collect()),
    }
}

fn num_to_json(n: &Num) -> Value {
    match n {
        Num::Int(i) => Value::from(i64::try_from(*i).unwrap_or(i64::MAX)),
        Num::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        other => other
            .to_string()
            .parse::<serde_json::Number>()
            .map_or(Value::Null, Value::Number),
    }
}

fn key_to_string(key: &Val) -> String {
    match key {
        Val::TStr(b) | Val::BStr(b) => String::from_utf8_lossy(b).into_owned(),
        other => to_json(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(code: &str, input: &Value) -> Result<Vec<Value>, QueryError> {
        let mut out = Vec::new();
        Jq::compile(code).unwrap().visit(input, &mut |v| {
            out.push(v.clone());
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn jq_should_be_shareable_between_threads() {
        fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
        assert_send_sync_clone::<Jq>();
    }

    #[test]
    fn jq_should_accept_gojq_style_dot_before_brackets() {
        let obj = json!({"a": [{"b": 1}, {"b": 2}]});
        assert_eq!(run(".a.[].b", &obj), Ok(vec![json!(1), json!(2)]));
    }

    #[test]
    fn jq_should_run_standard_filters_and_keep_json_types() {
        let obj = json!({"a": [3, 1.5, "x", null, true, {"k": [1]}]});
        assert_eq!(run(".a | length", &obj), Ok(vec![json!(6)]));
        assert_eq!(run(".a[]", &obj), Ok(obj["a"].as_array().unwrap().clone()));
        assert_eq!(
            run(r#".a | map(select(type == "number")) | add"#, &obj),
            Ok(vec![json!(4.5)])
        );
    }

    #[test]
    fn jq_should_report_run_time_errors() {
        assert_eq!(run(".a.b", &json!({"a": "text"})), Err(QueryError));
        assert_eq!(run(r#"error("x")"#, &json!(null)), Err(QueryError));
    }

    #[test]
    fn compile_should_report_syntax_errors() {
        assert_eq!(
            Jq::compile(".a |").unwrap_err(),
            "expected term, found end of input"
        );
        let err = Jq::compile(".a[").unwrap_err();
        assert!(err.starts_with("expected closing bracket"), "{err}");
    }

    #[test]
    fn compile_should_report_undefined_names() {
        assert_eq!(Jq::compile("nosuchfn").unwrap_err(), "undefined filter nosuchfn");
        assert_eq!(Jq::compile("$nope").unwrap_err(), "undefined variable $nope");
    }
}
