//! Errors of loading Stages: each renders as one line, `file:line: stage "x": field: reason`.

use std::fmt;

/// A problem with one field of a Stage, before the file and stage are known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// Path of the field, e.g. `spec.selector.matchExpressions[0].key`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    /// A field error at `field`.
    pub fn new(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// Prefixes the field path with `parent` (`spec` + `delay` gives `spec.delay`).
    #[must_use]
    pub fn under(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_owned()
        } else if self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

/// Errors loading Stage documents.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The YAML does not parse into a Stage (unknown field, wrong type, syntax).
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// Source file (or `<inline>`).
        file: String,
        /// 1-based line of the problem (0 when unknown).
        line: usize,
        /// The parser's message, one line.
        message: String,
    },
    /// A field holds a value the engine cannot use.
    #[error("{file}:{line}: stage {stage:?}: {error}")]
    Field {
        /// Source file.
        file: String,
        /// 1-based line where the stage document starts.
        line: usize,
        /// Stage name.
        stage: String,
        /// The field and reason.
        error: FieldError,
    },
    /// The file could not be read.
    #[error("failed to read {file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
