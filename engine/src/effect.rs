//! Effects: what a stage asks the runtime to do to one object, in order.
//!
//! A stage's effects are one transition: a stage renders whole or fails whole
//! ([`crate::error::RenderError`] has the rule), so a list of effects never holds a
//! failed step.

use std::borrow::Cow;

use serde_json::Value;

use crate::patch::PatchType;

/// How an `apply` step patches an object that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApplyType {
    /// Server-side apply (`application/apply-patch+yaml`), forced, as field manager `kwok`.
    #[default]
    Apply,
    /// JSON merge patch.
    Merge,
    /// Strategic merge patch.
    Strategic,
}

impl ApplyType {
    /// The HTTP content type of the patch.
    pub fn content_type(self) -> &'static str {
        match self {
            ApplyType::Apply => "application/apply-patch+yaml",
            ApplyType::Merge => "application/merge-patch+json",
            ApplyType::Strategic => "application/strategic-merge-patch+json",
        }
    }
}

/// A patch body: a [`Value`], or the JSON text a stage's patch is written as straight
/// from its rendering (building a `Value` key by key costs a stage's render a third of
/// its time, and the runtime would only write it out again).
#[derive(Debug, Clone)]
pub enum Body {
    /// A value (built by code, or a patch that had to be checked as one).
    Value(Value),
    /// A JSON object's text.
    Json(JsonText),
}

/// The text of a JSON object, and whether it has a top-level `metadata` field (so the
/// runtime can write fields before it without reading the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText {
    text: String,
    has_metadata: bool,
}

impl JsonText {
    /// `text`, which must be a JSON object, with or without a top-level `metadata`
    /// (the engine writes these; `from_value` for tests and tools).
    pub(crate) fn new(text: String, has_metadata: bool) -> Self {
        Self { text, has_metadata }
    }

    /// The text of `v`'s JSON (`None` unless `v` is an object).
    pub fn from_value(v: &Value) -> Option<Self> {
        let map = v.as_object()?;
        Some(Self::new(v.to_string(), map.contains_key("metadata")))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the object has a top-level `metadata` field.
    pub fn has_metadata(&self) -> bool {
        self.has_metadata
    }
}

impl Body {
    /// The body as a value: borrowed, or read from its text.
    pub fn to_value(&self) -> Cow<'_, Value> {
        match self {
            Body::Value(v) => Cow::Borrowed(v),
            Body::Json(text) => Cow::Owned(parse(text)),
        }
    }

    /// The body as a value.
    pub fn into_value(self) -> Value {
        match self {
            Body::Value(v) => v,
            Body::Json(text) => parse(&text),
        }
    }
}

/// The value of a text the engine wrote (always JSON: the template tests read every
/// catalog template's and thousands of random ones' back).
fn parse(text: &JsonText) -> Value {
    serde_json::from_str(text.as_str()).unwrap_or_default()
}

impl From<Value> for Body {
    fn from(v: Value) -> Self {
        Body::Value(v)
    }
}

/// Bodies are equal when their values are (a text's key order does not count).
impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        *self.to_value() == *other.to_value()
    }
}

impl PartialEq<Value> for Body {
    fn eq(&self, other: &Value) -> bool {
        *self.to_value() == *other
    }
}

/// One thing to do to the object. The runtime batches and sends them.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Emit an event about the object.
    Event {
        /// `Normal` or `Warning`.
        type_: String,
        /// Reason.
        reason: String,
        /// Message.
        message: String,
    },
    /// Add and remove finalizers (already reduced to what changes).
    Finalizers {
        /// To add.
        add: Vec<String>,
        /// To remove.
        remove: Vec<String>,
    },
    /// Patch the object or one of its subresources.
    Patch {
        /// `status`, or `None` for the object itself.
        subresource: Option<String>,
        /// How the body is interpreted.
        ty: PatchType,
        /// The patch body.
        body: Body,
        /// User to impersonate.
        impersonate: Option<String>,
    },
    /// Create the object `body` names (apiVersion, kind, name; the namespace defaults
    /// to the source object's), or patch it with `ty` when it exists. With a
    /// subresource, only patch (the object must exist).
    Apply {
        /// `status`, or `None` for the object itself.
        subresource: Option<String>,
        /// How an existing object is patched.
        ty: ApplyType,
        /// The object.
        body: Value,
        /// User to impersonate.
        impersonate: Option<String>,
    },
    /// Delete the object.
    Delete,
}

/// The finalizers `obj` carries now (`metadata.finalizers`), in order.
pub fn finalizers_of(obj: &Value) -> Vec<&str> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

impl Effect {
    /// A JSON patch for [`Effect::Finalizers`] against `obj`'s current finalizers:
    /// removals by index guarded by a `test` (so a concurrent change fails instead of
    /// removing the wrong entry), then additions. `None` for other effects.
    pub fn finalizers_json_patch(&self, obj: &Value) -> Option<Value> {
        let Effect::Finalizers { add, remove } = self else {
            return None;
        };
        let current = finalizers_of(obj);
        let mut ops = Vec::new();
        if current.is_empty() && !add.is_empty() {
            ops.push(serde_json::json!({"op": "add", "path": "/metadata/finalizers", "value": []}));
        }
        for (i, f) in current
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, f)| remove.iter().any(|r| r == *f))
        {
            let path = format!("/metadata/finalizers/{i}");
            ops.push(serde_json::json!({"op": "test", "path": path, "value": f}));
            ops.push(serde_json::json!({"op": "remove", "path": path}));
        }
        for f in add {
            ops.push(serde_json::json!({"op": "add", "path": "/metadata/finalizers/-", "value": f}));
        }
        Some(Value::Array(ops))
    }
}
