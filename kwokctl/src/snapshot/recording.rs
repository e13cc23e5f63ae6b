//! Recordings (`snapshot record` / `snapshot replay`): a k8s snapshot of the start state
//! followed by one `ResourcePatch` document (upstream KWOK v0.8's kind) per change, with
//! its time offset from the start. Pure: the recorder turns watch events into changes,
//! the parser checks a file before a replay touches anything.
//!
//! A change is `create` (the whole object), `patch` (an RFC 7386 merge patch from the
//! object as last recorded) or `delete`. Objects are cleaned as in a k8s snapshot, so a
//! change the server alone made (resourceVersion, status of most kinds) records nothing.

use std::{collections::HashMap, path::Path, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Error, Result, objects};

/// API version of a `ResourcePatch` document.
pub const PATCH_API_VERSION: &str = "kwok.x-k8s.io/v1alpha1";
/// Kind of a `ResourcePatch` document.
pub const PATCH_KIND: &str = "ResourcePatch";

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourcePatch {
    /// `kwok.x-k8s.io/v1alpha1`.
    pub api_version: String,
    /// `ResourcePatch`.
    pub kind: String,
    /// The resource of the object.
    pub resource: Gvr,
    /// The object.
    pub target: Target,
    /// When it happened, from the start of the recording.
    pub duration_nanosecond: u64,
    /// What happened.
    pub method: Method,
    /// `create`: the object; `patch`: a merge patch; `delete`: nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
}

/// A resource by group, version and plural name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gvr {
    /// API group (empty for core).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Version.
    pub version: String,
    /// Plural name.
    pub resource: String,
}

/// The object a change applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Name.
    pub name: String,
    /// Namespace (empty for cluster-scoped objects).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Creates the object.
    Create,
    /// Merge-patches the object.
    Patch,
    /// Deletes the object.
    Delete,
}

/// A watch event, as the recorder sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The object was added (or seen again after a re-list).
    Applied,
    /// The object was deleted.
    Deleted,
}

/// Turns watch events into changes, remembering each object as last recorded.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Every recorded object, cleaned, by resource and target.
    state: HashMap<(Gvr, Target), Value>,
}

impl Recorder {
    /// Remembers a start-state object of `resource` (already cleaned).
    pub fn seed(&mut self, resource: &Gvr, object: Value) {
        self.state.insert((resource.clone(), target_of(&object)), object);
    }

    /// The targets of `resource` recorded as existing.
    pub fn targets(&self, resource: &Gvr) -> Vec<Target> {
        self.state
            .keys()
            .filter(|(r, _)| r == resource)
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// The change `event` on `object` (as the server sent it, with apiVersion and kind)
    /// makes at `offset`, if any: objects a fresh control plane makes again are not
    /// recorded, and neither are changes only to what the server owns.
    pub fn observe(
        &mut self,
        resource: &Gvr,
        event: Event,
        mut object: Value,
        offset: Duration,
    ) -> Option<ResourcePatch> {
        let target = target_of(&object);
        let key = (resource.clone(), target.clone());
        let change = |method, template| ResourcePatch {
            api_version: PATCH_API_VERSION.into(),
            kind: PATCH_KIND.into(),
            resource: resource.clone(),
            target: target.clone(),
            duration_nanosecond: u64::try_from(offset.as_nanos()).unwrap_or(u64::MAX),
            method,
            template,
        };
        if event == Event::Deleted || !objects::object_saved(&object) {
            // An object that became controller-owned is gone from a snapshot's view too.
            return self.state.remove(&key).map(|_| change(Method::Delete, None));
        }
        objects::clean(&mut object);
        match self.state.get(&key) {
            Some(old) if *old == object => None,
            Some(old) => {
                let patch = merge_diff(old, &object);
                self.state.insert(key, object);
                Some(change(Method::Patch, Some(patch)))
            }
            None => {
                self.state.insert(key, object.clone());
                Some(change(Method::Create, Some(object)))
            }
        }
    }
}

fn target_of(object: &Value) -> Target {
    let meta = &object["metadata"];
    Target {
        name: meta["name"].as_str().unwrap_or_default().to_owned(),
        namespace: meta["namespace"].as_str().unwrap_or_default().to_owned(),
    }
}

/// The RFC 7386 merge patch that turns `old` into `new`: changed members, `null` for
/// removed ones; arrays and scalars are replaced whole.
pub fn merge_diff(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) if ov == nv => {}
                    Some(ov) if ov.is_object() && nv.is_object() => {
                        patch.insert(k.clone(), merge_diff(ov, nv));
                    }
                    _ => {
                        patch.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                patch.insert(k.clone(), Value::Null);
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

/// A parsed recording.
#[derive(Debug, Default, PartialEq)]
pub struct Recording {
    /// The start state, in restore order.
    pub objects: Vec<Value>,
    /// The changes, in time order.
    pub changes: Vec<ResourcePatch>,
}

impl Recording {
    /// How long the recorded changes span.
    pub fn span(&self) -> Duration {
        Duration::from_nanos(self.changes.last().map_or(0, |c| c.duration_nanosecond))
    }
}

/// Parses a recording, checking every document, so a replay refuses a wrong file before
/// it changes anything.
pub fn parse(path: &Path, text: &str) -> Result<Recording> {
    let not = |reason: String| Error::NotARecording {
        path: path.display().to_string(),
        reason,
    };
    if text.as_bytes().contains(&0) {
        return Err(not("it is binary (an etcd snapshot?)".into()));
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| not(first_line(&e.to_string())))?;
    let mut recording = Recording::default();
    let mut objects_text = Vec::new();
    for (i, doc) in docs.into_iter().enumerate().filter(|(_, d)| !d.is_null()) {
        if doc["kind"] == PATCH_KIND && doc["apiVersion"] == PATCH_API_VERSION {
            let change: ResourcePatch =
                serde_json::from_value(doc).map_err(|e| not(format!("document {}: {e}", i + 1)))?;
            check_change(&change).map_err(|reason| not(format!("document {}: {reason}", i + 1)))?;
            if recording
                .changes
                .last()
                .is_some_and(|last| last.duration_nanosecond > change.duration_nanosecond)
            {
                return Err(not(format!("document {}: changes are out of time order", i + 1)));
            }
            recording.changes.push(change);
        } else if !recording.changes.is_empty() {
            return Err(not(format!(
                "document {}: an object after the first ResourcePatch",
                i + 1
            )));
        } else {
            objects_text.push(doc);
        }
    }
    if objects_text.is_empty() && recording.changes.is_empty() {
        return Err(not("it holds no objects and no changes".into()));
    }
    if !objects_text.is_empty() {
        let stream = objects::to_stream(&objects_text)?;
        recording.objects = objects::from_stream(path, &stream).map_err(|e| match e {
            Error::NotASnapshot { reason, .. } => not(reason),
            other => other,
        })?;
        objects::sort(&mut recording.objects);
    }
    Ok(recording)
}

fn check_change(change: &ResourcePatch) -> Result<(), String> {
    if change.resource.version.is_empty() || change.resource.resource.is_empty() {
        return Err("resource needs a version and a resource".into());
    }
    if change.target.name.is_empty() {
        return Err("target needs a name".into());
    }
    match (change.method, &change.template) {
        (Method::Create, Some(t)) if t.is_object() => Ok(()),
        (Method::Patch, Some(t)) if t.is_object() => Ok(()),
        (Method::Delete, _) => Ok(()),
        (method, _) => Err(format!("method {method:?} needs an object as template")),
    }
}

fn first_line(message: &str) -> String {
    let line = message.lines().map(str::trim).find(|l| !l.is_empty());
    line.unwrap_or("invalid YAML").to_owned()
}

/// A change as one YAML document (with its `---`).
pub fn to_document(change: &ResourcePatch) -> Result<String> {
    let yaml = serde_saphyr::to_string(change).map_err(|e| Error::Api {
        what: "failed to write YAML".into(),
        message: e.to_string(),
    })?;
    Ok(format!("---\n{yaml}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn configmaps() -> Gvr {
        Gvr {
            group: String::new(),
            version: "v1".into(),
            resource: "configmaps".into(),
        }
    }

    fn cm(data: Value, rv: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "a", "resourceVersion": rv, "uid": "u"},
            "data": data})
    }

    #[test]
    fn merge_diff_should_round_trip_through_a_merge_patch() {
        let old = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2], "gone": true});
        let new = json!({"a": 1, "b": {"c": 5, "d": 3}, "e": [2], "f": "x"});
        let patch = merge_diff(&old, &new);
        assert_eq!(patch, json!({"b": {"c": 5}, "e": [2], "f": "x", "gone": null}));
        let mut applied = old.clone();
        json_patch::merge(&mut applied, &patch);
        assert_eq!(applied, new);
    }

    #[test]
    fn recorder_should_turn_events_into_create_patch_delete_and_skip_server_only_changes() {
        let mut r = Recorder::default();
        let at = Duration::from_millis;
        let created = r
            .observe(&configmaps(), Event::Applied, cm(json!({"k": "1"}), "1"), at(10))
            .unwrap();
        assert_eq!(
            (created.method, created.duration_nanosecond),
            (Method::Create, 10_000_000)
        );
        assert_eq!(
            created.template.as_ref().unwrap()["metadata"].get("uid"),
            None,
            "cleaned"
        );
        assert_eq!(
            created.target,
            Target {
                name: "c".into(),
                namespace: "a".into()
            }
        );
        assert!(
            r.observe(&configmaps(), Event::Applied, cm(json!({"k": "1"}), "2"), at(20))
                .is_none(),
            "only the resourceVersion changed"
        );
        let patched = r
            .observe(&configmaps(), Event::Applied, cm(json!({"k": "2"}), "3"), at(30))
            .unwrap();
        assert_eq!(patched.method, Method::Patch);
        assert_eq!(patched.template, Some(json!({"data": {"k": "2"}})));
        let deleted = r
            .observe(&configmaps(), Event::Deleted, cm(json!({"k": "2"}), "4"), at(40))
            .unwrap();
        assert_eq!((deleted.method, deleted.template), (Method::Delete, None));
        assert!(
            r.observe(&configmaps(), Event::Deleted, cm(json!({}), "5"), at(50))
                .is_none(),
            "deleting what is not there records nothing"
        );
    }

    #[test]
    fn recordings_should_round_trip_and_other_files_be_refused() {
        let mut r = Recorder::default();
        let change = r
            .observe(
                &configmaps(),
                Event::Applied,
                cm(json!({"k": "1"}), "1"),
                Duration::from_secs(1),
            )
            .unwrap();
        let start = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}});
        let text = objects::to_stream(std::slice::from_ref(&start)).unwrap() + &to_document(&change).unwrap();
        let path = Path::new("r.yaml");
        let parsed = parse(path, &text).unwrap();
        assert_eq!(parsed.objects, [start]);
        assert_eq!(parsed.changes, std::slice::from_ref(&change));
        assert_eq!(parsed.span(), Duration::from_secs(1));

        let err = |text: &str| parse(path, text).unwrap_err().to_string();
        assert_eq!(
            err("hello: world\n"),
            "r.yaml is not a recording (snapshot record): document 1: no apiVersion"
        );
        assert!(err("\0\0bolt").contains("binary"));
        assert!(err("").contains("holds no objects and no changes"));
        let bad_method = to_document(&change)
            .unwrap()
            .replace("method: create", "method: replace");
        assert!(
            err(&bad_method)
                .starts_with("r.yaml is not a recording (snapshot record): document 1: unknown variant")
        );
        let no_template = to_document(&ResourcePatch {
            template: None,
            ..change.clone()
        })
        .unwrap();
        assert!(err(&no_template).contains("method Create needs an object as template"));
        let late = ResourcePatch {
            duration_nanosecond: 5,
            ..change.clone()
        };
        let order = to_document(&change).unwrap() + &to_document(&late).unwrap();
        assert!(err(&order).contains("out of time order"));
    }
}
