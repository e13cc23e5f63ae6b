//! Upstream's rule kinds (`kwok.x-k8s.io/v1alpha1`): Logs, Exec, Attach and PortForward,
//! each namespaced (for one pod, by name) and cluster-wide (by selector), read from
//! `--config` documents or from the cluster's objects (`--enable-crds`).

use std::path::PathBuf;

use kwok_engine::stage::load::Source;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;

use super::rules::{Entry, ObjectSelector, Rules};

/// `logs[]` of Logs and ClusterLogs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Log {
    /// Containers this entry is for (all others when empty).
    #[serde(default)]
    pub containers: Vec<String>,
    /// The file served as the container's log (CRI or Docker JSON lines).
    pub logs_file: Option<PathBuf>,
    /// The file served for `--previous`.
    pub previous_logs_file: Option<PathBuf>,
    /// Whether `-f` follows the file.
    pub follow: Option<bool>,
}

/// `execs[]` of Exec and ClusterExec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecTarget {
    /// Containers this entry is for (all others when empty).
    #[serde(default)]
    pub containers: Vec<String>,
    /// Run the command on kwok's host.
    pub local: Option<ExecLocal>,
}

/// How a local command runs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecLocal {
    /// Working directory.
    #[serde(default)]
    pub work_dir: String,
    /// Variables added to kwok's environment.
    #[serde(default)]
    pub envs: Vec<EnvVar>,
    /// User and group to run as.
    pub security_context: Option<SecurityContext>,
}

/// One environment variable.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    /// Name.
    pub name: String,
    /// Value.
    #[serde(default)]
    pub value: String,
}

/// `runAsUser` and `runAsGroup`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityContext {
    /// User id.
    pub run_as_user: Option<u32>,
    /// Group id.
    pub run_as_group: Option<u32>,
}

/// `attaches[]` of Attach and ClusterAttach.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttachConfig {
    /// Containers this entry is for (all others when empty).
    #[serde(default)]
    pub containers: Vec<String>,
    /// The file whose lines the attached client sees.
    pub logs_file: Option<PathBuf>,
}

/// `forwards[]` of PortForward and ClusterPortForward.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Forward {
    /// Ports this entry is for (all others when empty).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Dial this address.
    pub target: Option<ForwardTarget>,
    /// Or pipe the connection through this command's stdin and stdout.
    #[serde(default)]
    pub command: Vec<String>,
}

/// An address to dial.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardTarget {
    /// Port.
    pub port: u16,
    /// Host name or IP.
    pub address: String,
}

impl Entry for Log {
    type Key = str;
    fn names(&self, container: &str) -> Option<bool> {
        names(&self.containers, container)
    }
}

impl Entry for ExecTarget {
    type Key = str;
    fn names(&self, container: &str) -> Option<bool> {
        names(&self.containers, container)
    }
}

impl Entry for AttachConfig {
    type Key = str;
    fn names(&self, container: &str) -> Option<bool> {
        names(&self.containers, container)
    }
}

impl Entry for Forward {
    type Key = u16;
    fn names(&self, port: &u16) -> Option<bool> {
        (!self.ports.is_empty()).then(|| self.ports.contains(port))
    }
}

fn names(containers: &[String], container: &str) -> Option<bool> {
    (!containers.is_empty()).then(|| containers.iter().any(|c| c == container))
}

/// Every debugging rule kwok knows.
#[derive(Debug, Clone, Default)]
pub struct DebuggingRules {
    /// Logs and ClusterLogs.
    pub logs: Rules<Log>,
    /// Exec and ClusterExec.
    pub execs: Rules<ExecTarget>,
    /// Attach and ClusterAttach.
    pub attaches: Rules<AttachConfig>,
    /// PortForward and ClusterPortForward.
    pub forwards: Rules<Forward>,
}

/// A rule document that cannot be used: one line naming file, line, object and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {object}: {field}: {reason}")]
pub struct LoadError {
    /// Source file (or the object's origin).
    pub file: String,
    /// 1-based line the document starts on.
    pub line: usize,
    /// Its kind and name: `ClusterLogs "x"`.
    pub object: String,
    /// The field (`spec.logs[0].follow`), empty for the whole document.
    pub field: String,
    /// Why.
    pub reason: String,
}

impl DebuggingRules {
    /// Reads the rule documents among `docs` (others are left alone).
    ///
    /// # Errors
    /// The first document that does not parse as its kind.
    pub fn from_documents(docs: &[(Value, Source)]) -> Result<Self, LoadError> {
        let mut rules = Self::default();
        for (doc, source) in docs {
            rules.add(doc, source)?;
        }
        Ok(rules)
    }

    /// Whether no rule of any kind is known.
    pub fn is_empty(&self) -> bool {
        self.logs.is_empty() && self.execs.is_empty() && self.attaches.is_empty() && self.forwards.is_empty()
    }

    /// Adds one document when it is of a rule kind; other kinds are ignored.
    ///
    /// # Errors
    /// The document does not parse as its kind.
    pub fn add(&mut self, doc: &Value, source: &Source) -> Result<(), LoadError> {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
        let doc = Doc {
            value: doc,
            source,
            kind,
        };
        match kind {
            "Logs" => doc.namespaced("logs", &mut self.logs),
            "ClusterLogs" => doc.cluster("logs", &mut self.logs),
            "Exec" => doc.namespaced("execs", &mut self.execs),
            "ClusterExec" => doc.cluster("execs", &mut self.execs),
            "Attach" => doc.namespaced("attaches", &mut self.attaches),
            "ClusterAttach" => doc.cluster("attaches", &mut self.attaches),
            "PortForward" => doc.namespaced("forwards", &mut self.forwards),
            "ClusterPortForward" => doc.cluster("forwards", &mut self.forwards),
            _ => Ok(()),
        }
    }

    /// Removes the rule object `kind` `name` (in `namespace` for the namespaced kinds,
    /// ignored for the Cluster ones); whether there was one. Other kinds: `false`.
    pub fn remove(&mut self, kind: &str, namespace: &str, name: &str) -> bool {
        match kind {
            "Logs" => self.logs.remove_namespaced(namespace, name),
            "ClusterLogs" => self.logs.remove_cluster(name),
            "Exec" => self.execs.remove_namespaced(namespace, name),
            "ClusterExec" => self.execs.remove_cluster(name),
            "Attach" => self.attaches.remove_namespaced(namespace, name),
            "ClusterAttach" => self.attaches.remove_cluster(name),
            "PortForward" => self.forwards.remove_namespaced(namespace, name),
            "ClusterPortForward" => self.forwards.remove_cluster(name),
            _ => false,
        }
    }
}

struct Doc<'a> {
    value: &'a Value,
    source: &'a Source,
    kind: &'a str,
}

impl Doc<'_> {
    fn meta(&self, field: &str) -> &str {
        self.value
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    fn error(&self, field: String, reason: String) -> LoadError {
        LoadError {
            file: self.source.file.clone(),
            line: self.source.line,
            object: format!("{} {:?}", self.kind, self.meta("name")),
            field,
            reason,
        }
    }

    /// `spec.<list>` as entries of `T`.
    fn entries<T: DeserializeOwned>(&self, list: &str) -> Result<Vec<T>, LoadError> {
        let value = self
            .value
            .pointer(&format!("/spec/{list}"))
            .cloned()
            .unwrap_or(Value::Array(Vec::new()));
        serde_path_to_error::deserialize(value).map_err(|e| {
            let field = field_path(list, &e.path().to_string());
            self.error(field, e.into_inner().to_string())
        })
    }

    fn namespaced<T: Entry + DeserializeOwned>(
        &self,
        list: &str,
        rules: &mut Rules<T>,
    ) -> Result<(), LoadError> {
        let entries = self.entries(list)?;
        let (namespace, name) = (self.meta("namespace"), self.meta("name"));
        if name.is_empty() {
            return Err(self.error("metadata.name".into(), "the pod's name is required".into()));
        }
        // As a namespaced object without a namespace, in kubectl's default one.
        let namespace = if namespace.is_empty() {
            "default"
        } else {
            namespace
        };
        rules.add_namespaced(namespace, name, entries);
        Ok(())
    }

    fn cluster<T: Entry + DeserializeOwned>(
        &self,
        list: &str,
        rules: &mut Rules<T>,
    ) -> Result<(), LoadError> {
        let entries = self.entries(list)?;
        let selector = match self.value.pointer("/spec/selector") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                serde_path_to_error::deserialize::<_, ObjectSelector>(v.clone()).map_err(|e| {
                    self.error(format!("spec.selector.{}", e.path()), e.into_inner().to_string())
                })?,
            ),
        };
        let name = self.meta("name");
        if name.is_empty() {
            return Err(self.error("metadata.name".into(), "a name is required".into()));
        }
        rules.add_cluster(name, selector, entries);
        Ok(())
    }
}

/// `spec.logs[0].follow` from serde_path_to_error's `[0].follow`.
fn field_path(list: &str, path: &str) -> String {
    if path == "." {
        format!("spec.{list}")
    } else {
        format!("spec.{list}{path}")
    }
}

#[cfg(test)]
mod tests {
    use kwok_engine::stage::load::Documents;

    use super::*;

    fn load(text: &str) -> Result<DebuggingRules, LoadError> {
        let mut docs = Documents::default();
        docs.parse("rules.yaml", text).unwrap();
        DebuggingRules::from_documents(&docs.others)
    }

    #[test]
    fn every_kind_should_load_and_resolve() {
        let rules = load(
            "kind: ClusterLogs\napiVersion: kwok.x-k8s.io/v1alpha1\nmetadata: {name: a}\n\
             spec:\n  selector: {matchNamespaces: [web]}\n  logs: [{logsFile: /a.log, follow: true}]\n---\n\
             kind: Logs\napiVersion: kwok.x-k8s.io/v1alpha1\nmetadata: {name: p, namespace: ns}\n\
             spec:\n  logs: [{containers: [c], logsFile: /p.log}]\n---\n\
             kind: ClusterExec\napiVersion: kwok.x-k8s.io/v1alpha1\nmetadata: {name: e}\n\
             spec:\n  execs: [{local: {envs: [{name: TEST, value: test}]}}]\n---\n\
             kind: ClusterPortForward\napiVersion: kwok.x-k8s.io/v1alpha1\nmetadata: {name: f}\n\
             spec:\n  forwards: [{ports: [80], target: {port: 8080, address: 127.0.0.1}}]\n---\n\
             kind: Stage\napiVersion: kwok.x-k8s.io/v1alpha1\nmetadata: {name: s}\nspec: {resourceRef: {kind: Pod}}\n",
        )
        .unwrap();
        let log = rules.logs.find("web", "x", "c", "c").unwrap();
        assert_eq!(log.logs_file.as_deref(), Some(std::path::Path::new("/a.log")));
        assert_eq!(rules.logs.find("ns", "p", "c", "c").unwrap().follow, None);
        assert!(rules.logs.find("other", "x", "c", "c").is_err());
        let exec = rules.execs.find("any", "x", "c", "c").unwrap();
        assert_eq!(exec.local.as_ref().unwrap().envs[0].value, "test");
        assert_eq!(
            rules
                .forwards
                .find("a", "b", &80, "port 80")
                .unwrap()
                .target
                .as_ref()
                .unwrap()
                .port,
            8080
        );
        assert!(rules.forwards.find("a", "b", &81, "port 81").is_err());
        assert!(rules.attaches.is_empty());
    }

    #[test]
    fn a_bad_field_should_name_file_line_object_and_field() {
        let err = load(
            "kind: Stage\napiVersion: kwok.x-k8s.io/v1alpha1\nmetadata: {name: s}\nspec: {resourceRef: {kind: Pod}}\n---\n\
             kind: ClusterLogs\napiVersion: kwok.x-k8s.io/v1alpha1\nmetadata: {name: bad}\nspec:\n  logs: [{follow: sometimes}]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("rules.yaml:6: ClusterLogs \"bad\": spec.logs[0].follow: "),
            "{err}"
        );
        let err = load("kind: PortForward\napiVersion: kwok.x-k8s.io/v1alpha1\nmetadata: {name: p}\nspec:\n  forwards: [{prots: [1]}]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("PortForward \"p\": spec.forwards[0].prots: unknown field"),
            "{err}"
        );
    }

    #[test]
    fn objects_should_be_replaced_and_removed_by_kind_and_name() {
        let mut rules = load(
            "kind: ClusterExec\napiVersion: kwok.x-k8s.io/v1alpha1\nmetadata: {name: e}\n\
             spec:\n  execs: [{local: {workDir: /one}}]\n---\n\
             kind: Exec\napiVersion: kwok.x-k8s.io/v1alpha1\nmetadata: {name: p, namespace: ns}\n\
             spec:\n  execs: [{local: {workDir: /own}}]\n",
        )
        .unwrap();
        let work_dir = |rules: &DebuggingRules, ns: &str| {
            rules
                .execs
                .find(ns, "p", "c", "c")
                .map(|t| t.local.as_ref().unwrap().work_dir.clone())
                .map_err(|e| e.0)
        };
        assert_eq!(work_dir(&rules, "ns").unwrap(), "/own");
        assert_eq!(work_dir(&rules, "other").unwrap(), "/one");
        // A new version of the ClusterExec replaces the old one.
        let mut docs = Documents::default();
        docs.parse(
            "object",
            "kind: ClusterExec\napiVersion: kwok.x-k8s.io/v1alpha1\nmetadata: {name: e}\n\
             spec:\n  execs: [{local: {workDir: /two}}]\n",
        )
        .unwrap();
        rules.add(&docs.others[0].0, &docs.others[0].1).unwrap();
        assert_eq!(work_dir(&rules, "other").unwrap(), "/two");
        assert_eq!(rules.execs.cluster_names().count(), 1);
        // Removal by kind: the namespaced one names its namespace, the cluster one not.
        assert!(!rules.remove("Exec", "other", "p"));
        assert!(!rules.remove("ClusterLogs", "", "e"));
        assert!(rules.remove("Exec", "ns", "p"));
        assert_eq!(work_dir(&rules, "ns").unwrap(), "/two");
        assert!(rules.remove("ClusterExec", "", "e"));
        assert!(work_dir(&rules, "ns").unwrap_err().contains("no rule for c"));
        assert!(rules.is_empty());
    }
}
