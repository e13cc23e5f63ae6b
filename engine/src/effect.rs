//! Effects: what a stage asks the runtime to do to one object, in order.
//!
//! A stage's effects are one transition: a stage renders whole or fails whole
//! ([`crate::error::RenderError`] has the rule), so a list of effects never holds a
//! failed step.

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
        body: Value,
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
