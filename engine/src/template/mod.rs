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
//! - Sprig's families live one per file (`sprig_regex`, `sprig_date`, …); Go's time
//!   layouts and durations, which the date functions need, in [`go_time`] and
//!   [`go_duration`].
//! - [`yaml`] reads the output back with a fast reader for the block YAML templates print
//!   (lines split into tokens, then built into JSON), falling back to `serde-saphyr` for
//!   anything else.
//! - [`tokens`] skips the text for [`Template::render_value`]: each text node is split
//!   into those tokens when parsed, a rendering records its text nodes and values, and
//!   the record becomes tokens directly (a quoted value is never printed and read back).
//!   Lines only the text can tell are printed and tokenized; the result equals the text
//!   path's, which the tests check on every catalog template and on random ones.
//!
//! # Differences from Go
//!
//! - Data numbers are numbers (KWOK decodes them as `json.Number` strings): `0` is false,
//!   `eq` and `lt` compare integers and floats numerically, and they print as decoded.
//! - `set`/`unset` change the map in place only when their first argument is a variable.
//! - `keys` returns sorted keys (Go's map order is random).
//! - Parse-time checks Go does at execution time: a non-function after `|`.
//! - Times are text, not a type: sprig's date functions ([`sprig_date`]) return a time
//!   as its RFC 3339 text with nanoseconds as needed (Go's `RFC3339Nano`, as KWOK's
//!   `Now` prints), and read that text or an integer (Unix seconds) wherever Go takes a
//!   `time.Time`. So `{{ now }}` prints `2024-05-06T07:08:09.12345Z` where Go prints
//!   `2024-05-06 07:08:09.12345 +0000 UTC m=+0.000012`, and `toJson` of a time is the
//!   same as Go's. A time keeps its offset but not its zone's name (`MST` prints `UTC`
//!   or the numeric offset). Data times such as `creationTimestamp` are dates too,
//!   where Go's `date` ignores a string and formats the current time.
//! - There is no local zone: Go's `time.Local` (used by `date`, `htmlDate`, `toDate`)
//!   is UTC, as in a container without `TZ`. `dateInZone` reads zones from the system
//!   tz database and falls back to UTC, as sprig does.
//! - `duration 95` is `1m35s`, as sprig documents (sprig itself gives `0s` for a
//!   template integer, which is an `int`, not the `int64` it checks for); `durationRound`
//!   also takes time text, meaning the time since then.
//! - `semver` returns a dict with `Major`, `Minor`, `Patch`, `Prerelease`, `Metadata` and
//!   `Original`, so `(semver "v1.2.3").Major` works but `{{ semver "1.2.3" }}` prints as a
//!   map, and the `*Version` methods taking arguments (`Compare`, `LessThan`) are missing.
//! - Regular expressions use the `regex` crate, RE2's syntax: a few patterns Go rejects
//!   compile here (`a**`), `\Q…\E` is not supported, and compile errors word some
//!   reasons differently.
//! - `b64dec`/`b32dec` turn bytes that are not UTF-8 into U+FFFD; the byte offset in
//!   their error text can differ from Go's for malformed padding.
//! - Random values (`randAlphaNum`, `randInt`, `uuidv4`, …) come from
//!   [`Host::random_u64`]: seeded and repeatable with `FixedHost`. Lists and strings
//!   they or `until`/`seq` build are capped (2^20 items) instead of exhausting memory.

mod ast;
mod builtin;
mod eval;
mod format;
mod funcs;
pub(crate) mod go_duration;
mod go_time;
mod json;
mod kwok;
mod lexer;
mod marshal;
mod parser;
mod printf;
mod sprig;
mod sprig_date;
mod sprig_encoding;
mod sprig_random;
mod sprig_regex;
mod sprig_semver;
mod sprig_seq;
mod tokens;
mod value;
mod yaml;

pub use yaml::write_json_string;
pub(crate) use yaml::{Leaf, Node};

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
    /// Rendering failed for this object (`line N: ` and Go's reason).
    #[error("{0}")]
    Render(String),
    /// `PodIP`, `PodIPWith` or `PodIPsWith` found no free address: temporary, unlike
    /// the other failures, which repeat for the same object.
    #[error("line {line}: error calling {func}: {exhausted}")]
    PoolExhausted {
        /// 1-based line in the template.
        line: usize,
        /// The function.
        func: &'static str,
        /// Which pool is full (in the message, so not a `source` too).
        exhausted: crate::host::PoolExhausted,
    },
}

/// The result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A compiled template; cloning shares the compiled form.
///
/// ```
/// use kwok_engine::{host::FixedHost, template::Template};
///
/// let t = Template::parse("phase: {{ .phase | default \"Running\" }}").unwrap();
/// let mut host = FixedHost::new(jiff::Timestamp::UNIX_EPOCH);
/// let v = t.render_value(&serde_json::json!({}), &mut host).unwrap();
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
    /// use kwok_engine::{host::{FixedHost, ScaleTarget}, template::Template};
    ///
    /// let t = Template::parse_scale("name: {{ Name }}\ncidr: {{ AddCIDR .cidr Index }}").unwrap();
    /// let target = ScaleTarget { name: "n-000002".into(), namespace: String::new(), index: 2 };
    /// let mut host = FixedHost::new(jiff::Timestamp::UNIX_EPOCH).with_scale_target(target);
    /// let v = t.render_value(&serde_json::json!({"cidr": "10.0.0.1/24"}), &mut host).unwrap();
    /// assert_eq!(v, serde_json::json!({"name": "n-000002", "cidr": "10.0.2.1/24"}));
    /// ```
    pub fn parse_scale(text: &str) -> Result<Self> {
        Ok(Self {
            tree: Arc::new(parser::parse(text, true)?),
        })
    }

    /// Renders with `data` as dot into `out`.
    pub fn render(&self, data: &Value, host: &mut dyn Host, out: &mut String) -> Result<()> {
        eval::execute(&self.tree, data, host, out)
    }

    /// Renders and converts the YAML output into JSON (`null` for empty output).
    ///
    /// Templates whose text is tokenized go straight to the value, without printing
    /// YAML and reading it back ([`tokens`]); the result is the same.
    pub fn render_value(&self, data: &Value, host: &mut dyn Host) -> Result<Value> {
        self.render_tree(data, host, &mut Vec::new())
    }

    /// As [`Template::render_value`], but hands the document to `f` as a [`yaml::Node`]
    /// that borrows its keys and strings from the template and the rendering, so a
    /// patch can be checked and written as JSON without building a `Value`.
    pub(crate) fn render_node<R>(
        &self,
        data: &Value,
        host: &mut dyn Host,
        f: impl FnOnce(yaml::Node<'_>) -> R,
    ) -> Result<R> {
        let mut events = Vec::new();
        Ok(f(self.render_tree(data, host, &mut events)?))
    }

    /// The document as a `T`: built from the rendering's record in `events` (which it
    /// may borrow) for tokenized templates, else read from the printed YAML.
    fn render_tree<'d, 'e, T: yaml::Tree<'e>>(
        &'d self,
        data: &'d Value,
        host: &mut dyn Host,
        events: &'e mut Vec<tokens::Event<'d>>,
    ) -> Result<T> {
        if self.tree.planned {
            // Room for the catalog's templates (45–109 events) without growing.
            events.reserve(128);
            eval::execute(&self.tree, data, host, events)?;
            return match tokens::tokens(events).and_then(yaml::build) {
                Ok(v) => Ok(v),
                Err(yaml::Unsupported) => yaml::to_json(&tokens::print(events)).map(T::from_value),
            };
        }
        let mut out = String::with_capacity(1024);
        self.render(data, host, &mut out)?;
        yaml::to_json(&out).map(T::from_value)
    }
}

/// `value` as YAML the way Go's `sigs.k8s.io/yaml` marshals it (keys sorted, go-yaml's
/// quoting): what KWOK's `YAML` function prints, and upstream's golden files.
pub fn to_go_yaml(value: &Value) -> String {
    let mut out = String::new();
    marshal::write_yaml(value::View::of(value), &mut out);
    out
}

#[cfg(test)]
mod tests;
