//! Go `text/template` for Stage templates, with the sprig and KWOK functions stages use.
//!
//! A [`Template`] is compiled once and rendered many times, from many threads, against a
//! [`serde_json::Value`] (the object) and a [`Host`] (the clock and IP allocators).
//! [`Template::render_value`] turns the YAML the template prints into JSON for a patch.
//!
//! # Implementation
//!
//! - [`lexer`] splits the text into text runs and action tokens, applying `{{-`/`-}}`
//!   trimming and dropping comments. [`parser`] builds an [`ast`] in which every function
//!   name is already a [`funcs::Func`] (unknown names fail at parse time, as in Go), every
//!   variable is a slot index in its body's frame, and every field chain is pre-split.
//! - [`eval`] walks the tree. Values are [`value::Val`]: borrowed data and literals are
//!   never copied; computed strings and collections sit behind `Rc`, so variables and
//!   pipelines pass them around for the price of a counter. Function arguments are
//!   evaluated into a stack array. A rendering allocates its variable frame, the output,
//!   and the values functions create; nothing else.
//! - [`yaml`] reads the output back with a fast reader for the block YAML templates print,
//!   falling back to `serde-saphyr` for anything else.
//!
//! # Differences from Go
//!
//! - Data numbers are numbers (KWOK decodes them as `json.Number` strings): `0` is false,
//!   `eq` and `lt` compare integers and floats numerically, and they print as decoded.
//! - `set`/`unset` change the map in place only when their first argument is a variable.
//! - `keys` returns sorted keys (Go's map order is random).
//! - Parse-time checks Go does at execution time: a non-function after `|`.

mod ast;
mod builtin;
mod eval;
mod format;
mod funcs;
mod json;
mod kwok;
mod lexer;
mod marshal;
mod parser;
mod printf;
mod sprig;
mod value;
mod yaml;

use std::sync::Arc;

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

/// The result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A compiled template; cloning shares the compiled form.
///
/// ```
/// use kwok_engine::{host::FixedHost, template::Template};
///
/// let t = Template::parse("phase: {{ .phase | default \"Running\" }}").unwrap();
/// let host = FixedHost::new(jiff::Timestamp::UNIX_EPOCH);
/// let v = t.render_value(&serde_json::json!({}), &host).unwrap();
/// assert_eq!(v, serde_json::json!({"phase": "Running"}));
/// ```
#[derive(Debug, Clone)]
pub struct Template {
    tree: Arc<parser::Tree>,
}

impl Template {
    /// Compiles `text`.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(Self {
            tree: Arc::new(parser::parse(text, false)?),
        })
    }

    /// Compiles a `kwokctl scale` template (upstream's `KwokctlResource.template`): the
    /// Stage functions plus `Name`, `Namespace` and `Index` (the object being made, from
    /// [`Host::scale_target`]) and `AddCIDR cidr n` / `AddIP ip n` (the `n`-th next
    /// subnet or address).
    ///
    /// ```
    /// use kwok_engine::{host::{FixedHost, ScaleHost, ScaleTarget}, template::Template};
    ///
    /// let t = Template::parse_scale("name: {{ Name }}\ncidr: {{ AddCIDR .cidr Index }}").unwrap();
    /// let target = ScaleTarget { name: "n-000002".into(), namespace: String::new(), index: 2 };
    /// let host = ScaleHost::new(FixedHost::new(jiff::Timestamp::UNIX_EPOCH), target);
    /// let v = t.render_value(&serde_json::json!({"cidr": "10.0.0.1/24"}), &host).unwrap();
    /// assert_eq!(v, serde_json::json!({"name": "n-000002", "cidr": "10.0.2.1/24"}));
    /// ```
    pub fn parse_scale(text: &str) -> Result<Self> {
        Ok(Self {
            tree: Arc::new(parser::parse(text, true)?),
        })
    }

    /// Renders with `data` as dot into `out`.
    pub fn render(&self, data: &Value, host: &dyn Host, out: &mut String) -> Result<()> {
        eval::execute(&self.tree, data, host, out)
    }

    /// Renders and converts the YAML output into JSON (`null` for empty output).
    pub fn render_value(&self, data: &Value, host: &dyn Host) -> Result<Value> {
        let mut out = String::with_capacity(1024);
        self.render(data, host, &mut out)?;
        yaml::to_json(&out)
    }
}

#[cfg(test)]
mod tests;
