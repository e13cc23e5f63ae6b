//! The values a template computes with: borrowed data, literals and results of functions.

use std::rc::Rc;

use serde_json::{Map, Number, Value};

use crate::host::PoolExhausted;

/// The result of a function: Go's error text on failure.
pub type FnResult<'a> = Result<Val<'a>, String>;

/// Why a call failed, as [`Func::call`](super::funcs::Func::call) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Go's error text (`error calling f: …` once `Func::call` names the function).
    Failed(String),
    /// A pod IP function found its pool full: kept typed, so the caller can tell a
    /// temporary shortage from a template that cannot work. Boxed, so that a
    /// `CallError` is no bigger than a `String`: every step of an evaluation returns
    /// one in its `Result`, and a rare failure should not widen them all.
    PoolExhausted(Box<Exhausted>),
}

/// A pod IP function's full pool ([`CallError::PoolExhausted`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted {
    /// The function (named by [`Func::call`](super::funcs::Func::call)).
    pub func: &'static str,
    /// Which pool is full.
    pub exhausted: PoolExhausted,
}

impl From<String> for CallError {
    fn from(message: String) -> Self {
        CallError::Failed(message)
    }
}

/// The result of `Func::call`.
pub type CallResult<'a> = Result<Val<'a>, CallError>;

impl From<PoolExhausted> for CallError {
    /// The function is named by `Func::call`.
    fn from(exhausted: PoolExhausted) -> Self {
        CallError::PoolExhausted(Box::new(Exhausted { func: "", exhausted }))
    }
}

/// A value during rendering.
///
/// Borrowed variants point into the data or the compiled template and cost nothing to
/// clone; computed strings and collections sit behind an `Rc`, so passing them through
/// variables and pipelines never copies them.
///
/// Invariant: `Data` never holds `Value::Null`, `Value::Bool` or `Value::String`; those are
/// normalised into `Nil`, `Bool` and `Str` by [`Val::from_data`]. `Data` numbers stay as
/// data so they print exactly as they were decoded (`1.0` stays `1.0`).
#[derive(Debug, Clone, Default)]
pub enum Val<'a> {
    /// Go's `nil` / a missing map key.
    #[default]
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer computed or written in the template.
    Int(i64),
    /// A float computed or written in the template.
    Float(f64),
    /// A borrowed string.
    Str(&'a str),
    /// A computed string.
    Text(Rc<str>),
    /// A borrowed number, array or object.
    Data(&'a Value),
    /// A computed value (lists, dicts, decoded JSON).
    Owned(Rc<Value>),
}

/// Objects up to this many keys are searched by a scan that compares lengths first.
const SCAN_KEYS: usize = 24;

/// `m.get(key)`, for the field chains every template follows. An object's keys are
/// mostly of different lengths, so a scan that compares lengths first calls `memcmp`
/// about once, where the tree's search compares each key it passes in full.
fn lookup<'m>(m: &'m Map<String, Value>, key: &str) -> Option<&'m Value> {
    if m.len() > SCAN_KEYS {
        return m.get(key);
    }
    m.iter()
        .find(|(k, _)| k.len() == key.len() && k.as_str() == key)
        .map(|(_, v)| v)
}

/// What a value is, for functions that dispatch on kind.
#[derive(Debug, Clone, Copy)]
pub enum View<'v> {
    /// `nil`.
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A number from the data.
    Num(&'v Number),
    /// A string.
    Str(&'v str),
    /// An array.
    List(&'v [Value]),
    /// An object.
    Map(&'v Map<String, Value>),
}

impl<'a> Val<'a> {
    /// Wraps a borrowed data value, keeping the invariant on `Data`.
    pub fn from_data(v: &'a Value) -> Self {
        match v {
            Value::Null => Val::Nil,
            Value::Bool(b) => Val::Bool(*b),
            Value::String(s) => Val::Str(s),
            _ => Val::Data(v),
        }
    }

    /// Wraps an owned value.
    pub fn from_value(v: Value) -> Self {
        match v {
            Value::Null => Val::Nil,
            Value::Bool(b) => Val::Bool(b),
            Value::String(s) => Val::Text(s.into()),
            v => Val::Owned(Rc::new(v)),
        }
    }

    /// A computed string.
    pub fn text(s: impl Into<Rc<str>>) -> Self {
        Val::Text(s.into())
    }

    /// The kind and contents of this value.
    pub fn view(&self) -> View<'_> {
        match self {
            Val::Nil => View::Nil,
            Val::Bool(b) => View::Bool(*b),
            Val::Int(i) => View::Int(*i),
            Val::Float(f) => View::Float(*f),
            Val::Str(s) => View::Str(s),
            Val::Text(s) => View::Str(s),
            Val::Data(v) => View::of(v),
            Val::Owned(v) => View::of(v),
        }
    }

    /// Go's truth: false, 0, nil and empty strings, arrays and maps are false.
    pub fn truth(&self) -> bool {
        self.view().truth()
    }

    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            Val::Text(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this is `nil`.
    pub fn is_nil(&self) -> bool {
        matches!(self, Val::Nil)
    }

    /// Converts into an owned JSON value.
    pub fn to_value(&self) -> Value {
        match self.view() {
            View::Nil => Value::Null,
            View::Bool(b) => Value::Bool(b),
            View::Int(i) => Value::from(i),
            View::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
            View::Num(n) => Value::Number(n.clone()),
            View::Str(s) => Value::String(s.to_owned()),
            View::List(l) => Value::Array(l.to_vec()),
            View::Map(m) => Value::Object(m.clone()),
        }
    }

    /// Looks up `key` when this is a map: `None` when it is not a map, `Some(None)` when
    /// the key is absent, `Some(Some(Nil))` when it holds an explicit `null`. Go tells the
    /// two apart: a field chain stops quietly at an absent key but fails on a `null`.
    pub fn entry(&self, key: &str) -> Option<Option<Val<'a>>> {
        match self {
            Val::Data(Value::Object(m)) => Some(lookup(m, key).map(Val::from_data)),
            Val::Owned(v) => match &**v {
                Value::Object(m) => Some(lookup(m, key).map(|v| Val::from_value(v.clone()))),
                _ => None,
            },
            _ => None,
        }
    }

    /// Looks up `key` when this is a map; `None` when it is not a map.
    /// An absent key is `Nil`, as a `null` is.
    pub fn field(&self, key: &str) -> Option<Val<'a>> {
        self.entry(key).map(Option::unwrap_or_default)
    }

    /// The `i`th element when this is a list: `None` when it is not a list,
    /// `Some(None)` when `i` is out of range.
    pub fn element(&self, i: usize) -> Option<Option<Val<'a>>> {
        match self {
            Val::Data(Value::Array(l)) => Some(l.get(i).map(Val::from_data)),
            Val::Owned(v) => match &**v {
                Value::Array(l) => Some(l.get(i).map(|v| Val::from_value(v.clone()))),
                _ => None,
            },
            _ => None,
        }
    }

    /// Go's name for the type of this value, for error messages.
    pub fn type_name(&self) -> &'static str {
        self.view().type_name()
    }
}

impl<'v> View<'v> {
    /// The view of a JSON value.
    pub fn of(v: &'v Value) -> Self {
        match v {
            Value::Null => View::Nil,
            Value::Bool(b) => View::Bool(*b),
            Value::Number(n) => View::Num(n),
            Value::String(s) => View::Str(s),
            Value::Array(l) => View::List(l),
            Value::Object(m) => View::Map(m),
        }
    }

    /// Go's truth of this value.
    pub fn truth(self) -> bool {
        match self {
            View::Nil => false,
            View::Bool(b) => b,
            View::Int(i) => i != 0,
            View::Float(f) => f != 0.0,
            View::Num(n) => n.as_f64().is_some_and(|f| f != 0.0),
            View::Str(s) => !s.is_empty(),
            View::List(l) => !l.is_empty(),
            View::Map(m) => !m.is_empty(),
        }
    }

    /// The number as an `i64` when it is an integer.
    pub fn as_i64(self) -> Option<i64> {
        match self {
            View::Int(i) => Some(i),
            View::Num(n) => n.as_i64(),
            _ => None,
        }
    }

    /// The number as an `f64`, for any number.
    pub fn as_f64(self) -> Option<f64> {
        match self {
            View::Int(i) => Some(i as f64),
            View::Float(f) => Some(f),
            View::Num(n) => n.as_f64(),
            _ => None,
        }
    }

    /// Go's name for the type, for error messages.
    pub fn type_name(self) -> &'static str {
        match self {
            View::Nil => "nil",
            View::Bool(_) => "bool",
            View::Int(_) => "int",
            View::Num(n) if n.is_f64() => "float64",
            View::Num(_) => "int64",
            View::Float(_) => "float64",
            View::Str(_) => "string",
            View::List(_) => "[]interface {}",
            View::Map(_) => "map[string]interface {}",
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Every evaluation step returns a `CallResult`: a failure must not widen it.
    #[test]
    fn a_call_error_should_be_no_bigger_than_a_string() {
        assert!(size_of::<CallError>() <= size_of::<String>());
        assert!(size_of::<CallResult<'_>>() <= size_of::<FnResult<'_>>());
    }

    #[test]
    fn a_lookup_should_find_what_the_map_holds_on_either_side_of_the_scan_limit() {
        // Keys that share lengths and prefixes, so neither the length nor the first byte
        // decides.
        let keys: Vec<String> = (0..2 * SCAN_KEYS)
            .map(|i| format!("{}{}", ["a", "ab", "b", ""][i % 4], i / 4))
            .collect();
        for size in [0, 1, SCAN_KEYS - 1, SCAN_KEYS, SCAN_KEYS + 1, 2 * SCAN_KEYS] {
            let m: Map<String, Value> = keys[..size].iter().map(|k| (k.clone(), json!(k))).collect();
            for key in keys.iter().map(String::as_str).chain(["", "a", "zz", "a10x"]) {
                assert_eq!(lookup(&m, key), m.get(key), "{key:?} in {size} keys");
            }
        }
    }

    #[test]
    fn truth_should_follow_go_for_each_kind() {
        let data = json!([0, 1, 0.0, "", "x", [], [1], {}, {"a": 1}]);
        let truths: Vec<bool> = data
            .as_array()
            .unwrap()
            .iter()
            .map(|v| Val::from_data(v).truth())
            .collect();
        assert_eq!(
            truths,
            [false, true, false, false, true, false, true, false, true]
        );
        assert!(!Val::Nil.truth());
        assert!(!Val::Bool(false).truth());
    }

    #[test]
    fn from_data_should_normalise_scalars() {
        assert!(matches!(Val::from_data(&json!("s")), Val::Str("s")));
        assert!(matches!(Val::from_data(&json!(null)), Val::Nil));
        assert!(matches!(Val::from_data(&json!(1)), Val::Data(_)));
    }

    #[test]
    fn field_should_give_nil_for_a_missing_key_and_none_for_a_non_map() {
        let data = json!({"a": "b"});
        let v = Val::from_data(&data);
        assert!(v.field("x").unwrap().is_nil());
        assert_eq!(v.field("a").unwrap().as_str(), Some("b"));
        assert!(Val::Int(1).field("a").is_none());
    }
}
