//! Stage selectors and the compiled jq queries they (and `weightFrom`, `durationFrom`) use.

mod jq;
mod path;
mod query;

pub use query::Query;

use serde_json::Value;

use crate::{error::FieldError, stage::spec};

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
