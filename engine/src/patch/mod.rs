//! Applying patches locally, exactly as the kube-apiserver would.
//!
//! The simulator uses this to skip patches that would not change an object ([`would_change`],
//! called for every heartbeat) and to show, in a dry run, an object after a Stage applies
//! ([`apply`]).
//!
//! ```
//! use kwok_engine::patch::{apply, would_change, PatchType};
//! use serde_json::json;
//!
//! let mut node = json!({"status": {"conditions": [
//!     {"type": "Ready", "status": "False"},
//!     {"type": "MemoryPressure", "status": "False"},
//! ]}});
//! let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
//! assert!(would_change(&node, "Node", &patch, PatchType::Strategic).unwrap());
//! apply(&mut node, "Node", &patch, PatchType::Strategic).unwrap();
//! assert_eq!(node["status"]["conditions"][0]["status"], "True");
//! assert_eq!(node["status"]["conditions"][1]["type"], "MemoryPressure");
//! assert!(!would_change(&node, "Node", &patch, PatchType::Strategic).unwrap());
//! ```

mod merge_keys;
mod strategic;

use serde::Deserialize;
use serde_json::Value;

use crate::template::Node;

pub use strategic::Reason;

/// How a patch body is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902 JSON patch.
    Json,
    /// RFC 7386 JSON merge patch.
    Merge,
    /// Kubernetes strategic merge patch (list merge keys per kind and field).
    Strategic,
}

impl PatchType {
    /// The HTTP content type of the patch.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
        }
    }
}

/// Patch errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The JSON patch is not a list of RFC 6902 operations.
    #[error("failed to parse JSON patch: {0}")]
    InvalidJsonPatch(String),
    /// A JSON patch operation failed (a `test` that did not match, a missing path, ...).
    #[error("failed to apply JSON patch: {0}")]
    JsonPatch(String),
    /// The strategic merge patch is malformed for this object.
    #[error("failed to apply strategic merge patch at {}: {reason}", display_path(.path))]
    Strategic {
        /// Where in the patch, as a JSON pointer (empty for the whole patch).
        path: String,
        /// What is wrong there.
        reason: Reason,
    },
}

/// Results of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn display_path(path: &str) -> &str {
    if path.is_empty() { "the root" } else { path }
}

impl From<strategic::Failure> for Error {
    fn from(f: strategic::Failure) -> Self {
        Self::Strategic {
            path: f.path,
            reason: f.reason,
        }
    }
}

/// Applies `patch` to `target` (an object of `kind`, e.g. `Pod`).
///
/// `kind` only matters for [`PatchType::Strategic`]: it selects the merge keys of list fields
/// (Pod, Node and the other core and workload kinds are known; for any other kind every list is
/// replaced, while the `$patch`/`$retainKeys` directives still work).
///
/// # Errors
///
/// A malformed patch, a JSON patch operation that fails, or a strategic patch the apiserver
/// would reject (a keyed list element without its merge key, an unknown `$patch`, ...). On error
/// `target` is left unchanged.
pub fn apply(target: &mut Value, kind: &str, patch: &Value, ty: PatchType) -> Result<()> {
    match ty {
        PatchType::Json => {
            let ops = json_operations(patch)?;
            json_patch::patch(target, &ops).map_err(|e| Error::JsonPatch(e.to_string()))
        }
        PatchType::Merge => {
            json_patch::merge(target, patch);
            Ok(())
        }
        PatchType::Strategic => Ok(strategic::apply(target, kind, patch)?),
    }
}

/// Prepares a strategic merge patch of `kind` so the apiserver takes it: a keyed list
/// whose elements repeat a merge key is sent whole (see
/// `strategic::replace_lists_with_repeated_keys`). Other patch types are left alone.
///
/// Returns whether applying the prepared patch surely cannot fail (always for a merge
/// patch; never said of a JSON patch), so that [`surely_changes`] may decide alone.
pub(crate) fn prepare(patch: &mut Node<'_>, kind: &str, ty: PatchType) -> bool {
    match ty {
        PatchType::Strategic => strategic::replace_lists_with_repeated_keys(patch, kind),
        PatchType::Merge => true,
        PatchType::Json => false,
    }
}

/// Whether applying the merge or strategic `patch`, which [`prepare`] said cannot fail,
/// surely changes `target`, told without a `Value` of the patch; `false` when that takes
/// [`would_change`].
pub(crate) fn surely_changes(target: &Value, patch: &Node<'_>) -> bool {
    strategic::surely_changes(target, patch)
}

/// Whether applying `patch` would change `target`.
///
/// # Implementation
///
/// Merge and strategic patches are decided by walking the patch and the object together, with
/// no clone on the common no-op path (a strategic keyed list is cloned only when the patch adds,
/// deletes or reorders elements, or carries directives). A JSON patch is applied to a clone.
/// When the answer is `true` the walk stops early, so a later malformed part of the patch is
/// reported only by [`apply`]; `Ok(false)` means [`apply`] succeeds and changes nothing.
///
/// # Errors
///
/// As [`apply`].
pub fn would_change(target: &Value, kind: &str, patch: &Value, ty: PatchType) -> Result<bool> {
    match ty {
        PatchType::Json => {
            let mut copy = target.clone();
            apply(&mut copy, kind, patch, ty)?;
            Ok(copy != *target)
        }
        PatchType::Merge => Ok(merge_changes(target, patch)),
        PatchType::Strategic => Ok(strategic::would_change(target, kind, patch)?),
    }
}

fn json_operations(patch: &Value) -> Result<json_patch::Patch> {
    if !patch.is_array() {
        return Err(Error::InvalidJsonPatch("expected a list of operations".into()));
    }
    json_patch::Patch::deserialize(patch).map_err(|e| Error::InvalidJsonPatch(e.to_string()))
}

/// Whether RFC 7386 `merge(target, patch)` changes `target`.
fn merge_changes(target: &Value, patch: &Value) -> bool {
    let Value::Object(p) = patch else {
        return target != patch;
    };
    let Value::Object(t) = target else { return true };
    p.iter().any(|(k, v)| match (t.get(k), v) {
        (None, Value::Null) => false,
        (Some(_), Value::Null) | (None, _) => true,
        (Some(old), v) => merge_changes(old, v),
    })
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng, rngs::SmallRng, seq::IndexedRandom};
    use serde_json::{Value, json};

    use super::{Error, Node, PatchType, apply, prepare, surely_changes, would_change};

    fn applied(target: &Value, kind: &str, patch: &Value, ty: PatchType) -> Result<Value, Error> {
        let mut t = target.clone();
        apply(&mut t, kind, patch, ty).map(|()| t)
    }

    #[test]
    fn json_patch_should_test_add_and_remove() {
        let pod = json!({"metadata": {"labels": {"a": "1"}}, "status": {"phase": "Pending"}});
        let cases = [
            (
                json!([{"op": "test", "path": "/status/phase", "value": "Pending"},
                    {"op": "replace", "path": "/status/phase", "value": "Running"}]),
                Ok(json!({"metadata": {"labels": {"a": "1"}}, "status": {"phase": "Running"}})),
            ),
            (
                json!([{"op": "add", "path": "/metadata/labels/b", "value": "2"},
                    {"op": "remove", "path": "/metadata/labels/a"}]),
                Ok(json!({"metadata": {"labels": {"b": "2"}}, "status": {"phase": "Pending"}})),
            ),
            (
                json!([{"op": "test", "path": "/status/phase", "value": "Running"}]),
                Err(
                    "failed to apply JSON patch: operation '/0' failed at path '/status/phase': value did not match",
                ),
            ),
            (
                json!({"op": "add"}),
                Err("failed to parse JSON patch: expected a list of operations"),
            ),
        ];
        for (patch, want) in cases {
            let got = applied(&pod, "Pod", &patch, PatchType::Json).map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_owned), "{patch}");
        }
    }

    #[test]
    fn json_patch_should_leave_the_target_unchanged_on_error() {
        let mut pod = json!({"a": 1});
        let patch = json!([{"op": "add", "path": "/b", "value": 2}, {"op": "remove", "path": "/zz"}]);
        assert!(apply(&mut pod, "Pod", &patch, PatchType::Json).is_err());
        assert_eq!(pod, json!({"a": 1}));
    }

    #[test]
    fn merge_and_strategic_should_differ_on_keyed_lists() {
        let node = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PIDPressure"}]}});
        let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let merged = applied(&node, "Node", &patch, PatchType::Merge).expect("merge");
        let strategic = applied(&node, "Node", &patch, PatchType::Strategic).expect("strategic");
        assert_eq!(
            merged,
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
        );
        assert_eq!(
            strategic,
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "PIDPressure"}]}})
        );
    }

    #[test]
    fn strategic_should_handle_each_directive() {
        let pod = json!({
            "metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}},
            "spec": {"containers": [{"name": "c1", "image": "i1", "args": ["p", "q"]}, {"name": "c2", "image": "i2"}],
                     "volumes": [{"name": "v", "emptyDir": {}}]},
        });
        let cases = [
            (
                "null deletes a key",
                json!({"metadata": {"labels": {"x": null}}}),
                "/metadata/labels",
                json!({"y": "2"}),
            ),
            (
                "containers merge by name",
                json!({"spec": {"containers": [{"name": "c2", "image": "i3"}]}}),
                "/spec/containers",
                json!([{"name": "c1", "image": "i1", "args": ["p", "q"]}, {"name": "c2", "image": "i3"}]),
            ),
            (
                "a primitive list is replaced",
                json!({"spec": {"containers": [{"name": "c1", "args": ["r"]}]}}),
                "/spec/containers/0/args",
                json!(["r"]),
            ),
            (
                "$patch delete of a list element",
                json!({"spec": {"containers": [{"name": "c1", "$patch": "delete"}]}}),
                "/spec/containers",
                json!([{"name": "c2", "image": "i2"}]),
            ),
            (
                "$patch replace of a map",
                json!({"metadata": {"labels": {"$patch": "replace", "z": "3"}}}),
                "/metadata/labels",
                json!({"z": "3"}),
            ),
            (
                "$retainKeys",
                json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["name", "secret"], "secret": {"secretName": "s"}}]}}),
                "/spec/volumes",
                json!([{"name": "v", "secret": {"secretName": "s"}}]),
            ),
            (
                "$deleteFromPrimitiveList",
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
                "/metadata/finalizers",
                json!(["b"]),
            ),
            (
                "$setElementOrder",
                json!({"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"], "finalizers": ["c"]}}),
                "/metadata/finalizers",
                json!(["b", "c", "a"]),
            ),
        ];
        for (name, patch, path, want) in cases {
            let got = applied(&pod, "Pod", &patch, PatchType::Strategic).expect(name);
            assert_eq!(got.pointer(path), Some(&want), "{name}");
        }
    }

    #[test]
    fn errors_should_render_as_one_descriptive_line() {
        let node = json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready"}]}});
        let cases = [
            (
                json!({"status": {"conditions": [{"status": "True"}]}}),
                r#"failed to apply strategic merge patch at /status/conditions/0: map {"status":"True"} does not contain declared merge key "type""#,
            ),
            (
                json!("x"),
                "failed to apply strategic merge patch at the root: expected a JSON object, found a string",
            ),
            (
                json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}}),
                r#"failed to apply strategic merge patch at /metadata: directive "$deleteFromPrimitiveList" names no field (expected "<directive>/<field>")"#,
            ),
            (
                json!({"status": {"$patch": "merge"}}),
                r#"failed to apply strategic merge patch at /status: unknown $patch directive "merge""#,
            ),
        ];
        for (patch, want) in cases {
            let err = applied(&node, "Node", &patch, PatchType::Strategic).expect_err("rejected");
            assert_eq!(err.to_string(), want);
        }
    }

    // ===== would_change agrees with apply =====

    const TYPES: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

    fn condition(rng: &mut SmallRng, ty: &str) -> Value {
        match rng.random_range(0..10) {
            0 => json!({"type": ty, "$patch": "delete"}),
            1 => json!({"type": ty, "status": null}),
            2 => json!({"type": ty}),
            _ => json!({"type": ty, "status": *["True", "False"].choose(rng).expect("non-empty")}),
        }
    }

    fn conditions(rng: &mut SmallRng, patch: bool) -> Value {
        let n = rng.random_range(0..=TYPES.len());
        let picked: Vec<_> = TYPES.choose_multiple(rng, n).collect();
        let list: Vec<Value> = picked
            .into_iter()
            .map(|t| {
                if patch {
                    condition(rng, t)
                } else {
                    json!({"type": t, "status": "False"})
                }
            })
            .collect();
        Value::Array(list)
    }

    fn scalar(rng: &mut SmallRng) -> Value {
        [
            json!(null),
            json!("a"),
            json!("b"),
            json!(1),
            json!({"k": "v"}),
            json!(["a"]),
        ]
        .choose(rng)
        .expect("non-empty")
        .clone()
    }

    type Maker = fn(&mut SmallRng, bool) -> Value;

    /// An object or a patch over a few fields that exercise every branch.
    fn document(rng: &mut SmallRng, patch: bool) -> Value {
        let mut doc = json!({});
        let fields: [(&str, Maker); 4] = [
            ("/status/conditions", conditions),
            ("/metadata/finalizers", |r, _| {
                json!(["a", "b", "c"].choose_multiple(r, 2).collect::<Vec<_>>())
            }),
            ("/metadata/labels", |r, _| json!({"x": scalar(r), "y": scalar(r)})),
            ("/spec/taints", |r, _| json!([{"key": scalar(r)}])),
        ];
        for (path, make) in fields {
            if rng.random_bool(0.6) {
                let value = make(rng, patch);
                insert(&mut doc, path, value);
            }
        }
        if patch && rng.random_bool(0.1) {
            insert(&mut doc, "/status/phase", scalar(rng));
        }
        doc
    }

    fn insert(doc: &mut Value, path: &str, value: Value) {
        let (parent, last) = path.rsplit_once('/').expect("a path");
        let mut at = doc;
        for seg in parent.split('/').skip(1) {
            at = at
                .as_object_mut()
                .expect("object")
                .entry(seg)
                .or_insert_with(|| json!({}));
        }
        at.as_object_mut().expect("object").insert(last.to_owned(), value);
    }

    #[test]
    fn would_change_should_agree_with_apply_and_compare() {
        let mut rng = SmallRng::seed_from_u64(42);
        let (mut changed, mut sure) = ([0, 0], 0);
        for round in 0..3000 {
            let target = document(&mut rng, false);
            // A third of the patches restate the object, for the no-op side.
            let patch = if round % 3 == 0 {
                target.clone()
            } else {
                document(&mut rng, true)
            };
            for ty in [PatchType::Merge, PatchType::Strategic] {
                let mut node = Node::owned(patch.clone());
                let surely = prepare(&mut node, "Node", ty) && surely_changes(&target, &node);
                let Ok(after) = applied(&target, "Node", &patch, ty) else {
                    assert!(
                        !surely,
                        "round {round} {ty:?} fails\n target {target}\n patch  {patch}"
                    );
                    continue;
                };
                let want = after != target;
                if surely {
                    assert!(
                        want,
                        "round {round} {ty:?} surely changes\n target {target}\n patch  {patch}"
                    );
                    sure += 1;
                }
                let got = would_change(&target, "Node", &patch, ty);
                assert_eq!(
                    got,
                    Ok(want),
                    "round {round} {ty:?}\n target {target}\n patch  {patch}\n after  {after}"
                );
                changed[usize::from(want)] += 1;
                // Applying again is a no-op.
                assert_eq!(
                    would_change(&after, "Node", &patch, ty),
                    Ok(false),
                    "round {round} {ty:?} idempotent"
                );
            }
        }
        assert!(
            changed[0] > 300 && changed[1] > 300,
            "both outcomes covered: {changed:?}"
        );
        assert!(
            sure > 300,
            "the fast answer is exercised: {sure} of {}",
            changed[1]
        );
    }

    #[test]
    fn would_change_should_agree_on_json_patches() {
        let pod = json!({"status": {"phase": "Pending"}});
        let same = json!([{"op": "replace", "path": "/status/phase", "value": "Pending"}]);
        let other = json!([{"op": "replace", "path": "/status/phase", "value": "Running"}]);
        assert_eq!(would_change(&pod, "Pod", &same, PatchType::Json), Ok(false));
        assert_eq!(would_change(&pod, "Pod", &other, PatchType::Json), Ok(true));
    }
}
