//! The engine's errors, each one line: loading a Stage ([`LoadError`],
//! `file:line: stage "x": field: reason`) and rendering one for an object
//! ([`RenderError`], `stage "x": field: reason`).

use std::fmt;

use crate::{host::PoolExhausted, patch, template};

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

/// Why a stage could not be rendered for one object: the stage, the field of it that
/// failed, and the cause, as one line:
/// `stage "pod-ready": spec.next.statusTemplate: line 3: error calling PodIPWith: no
/// free IP above podCIDR 10.1.0.0/24 of node "n1"`.
///
/// # Partial failure
/// A stage renders whole or not at all: [`Stage::render`](crate::stage::Stage::render)
/// returns this error instead of effects when any step it would send fails, so none of
/// the stage's effects goes out (they are one transition, not independent writes). The
/// controller tries such a stage again ([`RenderError::is_temporary`]): after a backoff
/// when the pool was full, since addresses come back as pods go; when the object
/// changes otherwise, since the same template on the same object fails the same way.
/// Once a rendered stage is being sent, a write that fails part-way stops the rest: that
/// rule is in `kwok_shards::batcher`'s docs.
///
/// The message carries the cause, which is therefore not also a `source` (`{:#}` would
/// print it twice).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("stage {stage:?}: {field}: {cause}")]
pub struct RenderError {
    /// The stage's name.
    pub stage: String,
    /// The field whose template failed, e.g. `spec.next.statusTemplate` or
    /// `spec.steps[1].patch.template`.
    pub field: String,
    /// What went wrong.
    pub cause: RenderCause,
}

impl RenderError {
    /// Whether the same stage may render for the same object later: a full IP pool
    /// frees up as pods go, while a template or patch that fails for an object fails
    /// again until the object changes.
    pub fn is_temporary(&self) -> bool {
        matches!(self.cause, RenderCause::PoolExhausted { .. })
    }
}

/// The cause of a [`RenderError`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderCause {
    /// `PodIP`, `PodIPWith` or `PodIPsWith` found no free address.
    #[error("line {line}: error calling {func}: {exhausted}")]
    PoolExhausted {
        /// 1-based line in the template.
        line: usize,
        /// The function.
        func: &'static str,
        /// Which pool is full.
        exhausted: PoolExhausted,
    },
    /// The template failed for this object: a function refused its arguments, a field
    /// was missing where Go fails, the output is not YAML.
    #[error(transparent)]
    Template(template::Error),
    /// The rendered patch is not one, or does not apply to the object (a JSON patch
    /// that is not a list of operations, a `test` that fails, a strategic merge patch
    /// the apiserver would refuse).
    #[error(transparent)]
    Patch(#[from] patch::Error),
}

impl From<template::Error> for RenderCause {
    /// A full pool is lifted out of the template error, so callers match it directly.
    fn from(e: template::Error) -> Self {
        match e {
            template::Error::PoolExhausted {
                line,
                func,
                exhausted,
            } => RenderCause::PoolExhausted {
                line,
                func,
                exhausted,
            },
            e => RenderCause::Template(e),
        }
    }
}
