//! Effects: what a stage asks the runtime to do to one object, in order.

use serde_json::Value;

use crate::patch::PatchType;

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
    /// Server-side apply a rendered object.
    Apply {
        /// `status`, or `None` for the object itself.
        subresource: Option<String>,
        /// The object to apply.
        body: Value,
        /// User to impersonate.
        impersonate: Option<String>,
    },
    /// Delete the object.
    Delete,
    /// A step failed to render for this object; the others still apply.
    Error {
        /// What went wrong, one line.
        message: String,
    },
}

impl Effect {
    /// A JSON patch for [`Effect::Finalizers`] against `obj`'s current finalizers:
    /// removals by index guarded by a `test` (so a concurrent change fails instead of
    /// removing the wrong entry), then additions. `None` for other effects.
    pub fn finalizers_json_patch(&self, obj: &Value) -> Option<Value> {
        let Effect::Finalizers { add, remove } = self else {
            return None;
        };
        let current: Vec<&str> = obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
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
