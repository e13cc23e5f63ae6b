//! PLACEHOLDER (replaced by the template work): Go `text/template` for Stage templates.

use serde_json::Value;

use crate::host::Host;

/// Template errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The template text does not parse.
    #[error("line {line}: {reason}")]
    Parse {
        /// 1-based line in the template.
        line: usize,
        /// Why.
        reason: String,
    },
    /// Rendering failed for this object.
    #[error("{0}")]
    Render(String),
}

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {}

impl Template {
    /// Compiles `text`.
    pub fn parse(_text: &str) -> Result<Self, Error> {
        Err(Error::Parse {
            line: 1,
            reason: "templates are not implemented yet".into(),
        })
    }

    /// Renders with `data` as dot into `out`.
    pub fn render(&self, _data: &Value, _host: &dyn Host, _out: &mut String) -> Result<(), Error> {
        Err(Error::Render("templates are not implemented yet".into()))
    }

    /// Renders and converts the YAML output into JSON (`null` for empty output).
    pub fn render_value(&self, _data: &Value, _host: &dyn Host) -> Result<Value, Error> {
        Err(Error::Render("templates are not implemented yet".into()))
    }
}
