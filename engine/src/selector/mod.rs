//! PLACEHOLDER (replaced by the selector work): Stage selectors and jq queries.

use serde_json::Value;

use crate::{error::FieldError, stage::spec};

/// A compiled jq expression evaluated against an object.
#[derive(Debug, Clone)]
pub struct Query {}

impl Query {
    /// Compiles `expr`.
    pub fn compile(_expr: &str) -> Result<Self, String> {
        Err("jq is not implemented yet".into())
    }

    /// Every output of the expression on `obj`; errors yield no output.
    pub fn eval(&self, _obj: &Value) -> Vec<Value> {
        Vec::new()
    }
}

/// A compiled `spec.selector`.
#[derive(Debug, Clone)]
pub struct Selector {}

impl Selector {
    /// Compiles `spec` (field paths in errors are relative to the selector).
    pub fn compile(_spec: &spec::Selector) -> Result<Self, FieldError> {
        Err(FieldError::new("", "selectors are not implemented yet"))
    }

    /// Whether `obj` is selected.
    pub fn matches(&self, _obj: &Value) -> bool {
        false
    }
}
