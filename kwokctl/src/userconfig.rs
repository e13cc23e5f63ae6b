//! The user's configuration files (`--config`, else `~/.kwok/kwok.yaml`): multi-document
//! YAML holding a `KwokctlConfiguration` (options and component patches),
//! `KwokctlResource` templates for `kwokctl scale`, and the `Stage` and
//! `KwokConfiguration` documents handed on to the kwok controller.
//!
//! Every problem is one line naming the file, the line and the field; Stage documents
//! are checked by the engine exactly as the kwok controller will read them.

use std::path::{Path, PathBuf};

use kwok_engine::stage::load::{Documents, KUBELET_API_KINDS};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    components::patch::ComponentPatch,
    config::{API_VERSION, KIND},
    flags::ClusterOptions,
    scale::{KwokctlResource, RESOURCE_KIND},
};

/// Errors reading configuration files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("failed to read config {path}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A Stage document or the YAML itself is invalid (the engine's message).
    #[error(transparent)]
    Stage(#[from] kwok_engine::error::LoadError),
    /// A document has a kind kwokctl does not take.
    #[error(
        "{file}:{line}: unsupported kind {kind:?} (use KwokctlConfiguration, KwokctlResource, KwokConfiguration or Stage)"
    )]
    Kind {
        /// The file.
        file: String,
        /// The document's first line.
        line: usize,
        /// Its kind.
        kind: String,
    },
    /// A KwokctlConfiguration or KwokctlResource field is unknown, has the wrong type
    /// or a bad value.
    #[error("{file}:{line}: {kind}: {field}: {reason}")]
    Field {
        /// The file.
        file: String,
        /// The line of the problem.
        line: usize,
        /// The document's kind (and name, for a KwokctlResource).
        kind: String,
        /// The field path.
        field: String,
        /// Why.
        reason: String,
    },
}

/// Result of loading configuration.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A `KwokctlConfiguration` document as users write it: every option optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KwokctlConfiguration {
    /// `config.kwok.x-k8s.io/v1alpha1` (the default when left out, as upstream's).
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// `KwokctlConfiguration`.
    pub kind: String,
    /// Ignored; accepted because upstream documents carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Options, as the `create cluster` flags of the same name.
    #[serde(default)]
    pub options: ClusterOptions,
    /// Extra arguments and environment of components.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components_patches: Vec<ComponentPatch>,
}

fn default_api_version() -> String {
    API_VERSION.into()
}

/// Options of upstream's `KwokctlConfiguration` that kwokctl-rs does not implement:
/// images and image prefixes (no image runtime yet), versions, add-on components,
/// ports and binaries of components it does not run. A file setting one loads with one
/// warning line per option; any other unknown option is a mistake and refused.
const UPSTREAM_ONLY_OPTIONS: &[&str] = &[
    "kubeApiserverInsecurePort",
    "insecureKubeconfig",
    "runtimes",
    "jaegerOtlpGrpcPort",
    "kwokVersion",
    "etcdVersion",
    "kectlVersion",
    "dashboardVersion",
    "dashboardMetricsScraperVersion",
    "prometheusVersion",
    "jaegerVersion",
    "metricsServerVersion",
    "schedulerPluginsVersion",
    "kueueVersion",
    "jobsetVersion",
    "lwsVersion",
    "deschedulerVersion",
    "kindVersion",
    "kubeImagePrefix",
    "etcdImagePrefix",
    "kwokImagePrefix",
    "dashboardImagePrefix",
    "prometheusImagePrefix",
    "jaegerImagePrefix",
    "metricsServerImagePrefix",
    "schedulerPluginsImagePrefix",
    "kueueImagePrefix",
    "jobsetImagePrefix",
    "lwsImagePrefix",
    "deschedulerImagePrefix",
    "etcdImage",
    "kubeApiserverImage",
    "kubeControllerManagerImage",
    "kubeSchedulerImage",
    "kubectlImage",
    "kwokControllerImage",
    "dashboardImage",
    "dashboardMetricsScraperImage",
    "prometheusImage",
    "jaegerImage",
    "metricsServerImage",
    "metricsServerManifests",
    "schedulerPluginsControllerImage",
    "schedulerPluginsSchedulerImage",
    "schedulerPluginsManifests",
    "kueueImage",
    "kueueManifests",
    "jobsetImage",
    "jobsetManifests",
    "lwsImage",
    "lwsManifests",
    "deschedulerImage",
    "deschedulerManifests",
    "kueuevizFrontendImage",
    "kueuevizBackendImage",
    "kindNodeImagePrefix",
    "kindNodeImage",
    "binSuffix",
    "kubeApiserverBinary",
    "kubeControllerManagerBinary",
    "kubeSchedulerBinary",
    "kubectlBinary",
    "etcdctlBinary",
    "etcdutlBinary",
    "kectlBinary",
    "etcdBinary",
    "etcdBinaryTar",
    "kwokBinaryPrefix",
    "kwokControllerBinary",
    "prometheusBinaryPrefix",
    "prometheusBinary",
    "prometheusBinaryTar",
    "jaegerBinaryPrefix",
    "jaegerBinary",
    "jaegerBinaryTar",
    "metricsServerBinaryPrefix",
    "metricsServerBinary",
    "kindBinaryPrefix",
    "kindBinary",
    "etcdPeerPort",
    "dashboardPort",
    "kueuevizPort",
    "cacheDir",
    "kubeControllerManagerNodeMonitorPeriodMilliseconds",
    "kubeControllerManagerNodeMonitorGracePeriodMilliseconds",
    "nodeStatusUpdateFrequencyMilliseconds",
    "bindAddress",
    "kubeApiserverCertSANs",
];

/// Drops from `value` (a KwokctlConfiguration) what upstream has and kwokctl-rs does not
/// implement, warning once per field: `options` in [`UPSTREAM_ONLY_OPTIONS`], custom
/// `components` and `status`.
fn drop_upstream_only(file: &str, line: usize, value: &mut Value) {
    let warn = |field: &str| {
        tracing::warn!("{file}:{line}: {KIND}: {field}: not implemented by kwokctl-rs; ignored")
    };
    if let Some(options) = value.get_mut("options").and_then(Value::as_object_mut) {
        for name in UPSTREAM_ONLY_OPTIONS {
            if options.remove(*name).is_some() {
                warn(&format!("options.{name}"));
            }
        }
    }
    if let Some(doc) = value.as_object_mut() {
        if doc.remove("components").is_some() {
            warn("components");
        }
        // Written by upstream's `kwokctl get config`-style dumps; nothing to act on.
        doc.remove("status");
    }
}

/// Everything read from the configuration files, merged in order.
#[derive(Debug, Clone, Default)]
pub struct UserConfig {
    /// Options: a later file's field wins over an earlier one's.
    pub options: ClusterOptions,
    /// Component patches, in file order.
    pub patches: Vec<ComponentPatch>,
    /// `Stage` and `KwokConfiguration` documents, verbatim, for the kwok controller.
    pub kwok_documents: Vec<String>,
    /// `KwokctlResource` templates for `kwokctl scale`; a later one of a name wins.
    pub resources: Vec<KwokctlResource>,
    /// The files read.
    pub files: Vec<PathBuf>,
}

impl UserConfig {
    /// Reads `paths` in order; with none, the default file `default` if it exists.
    pub fn load(paths: &[PathBuf], default: &Path) -> Result<Self> {
        let mut config = Self::default();
        if paths.is_empty() {
            if default.exists() {
                config.read(default)?;
            }
            return Ok(config);
        }
        for path in paths {
            config.read(path)?;
        }
        Ok(config)
    }

    /// Reads a file, or a folder's files as the engine expands it (a kustomization's
    /// `resources`, else its YAML files), as upstream reads `--config` folders.
    fn read(&mut self, path: &Path) -> Result<()> {
        // A file that cannot be read is kwokctl's "failed to read config" error.
        let error = |e| match e {
            kwok_engine::error::LoadError::Io { file, source } => Error::Io { path: file, source },
            other => other.into(),
        };
        for read in kwok_engine::stage::load::config_texts(path).map_err(error)? {
            let (file, text) = read.map_err(error)?;
            self.parse(&file.display().to_string(), &text)?;
            self.files.push(file);
        }
        Ok(())
    }

    /// Parses the documents of `text` (named `file` in errors) into this configuration.
    pub fn parse(&mut self, file: &str, text: &str) -> Result<()> {
        // The engine checks syntax and every Stage, with file:line errors.
        Documents::default().parse(file, text)?;
        for (line, doc) in kwok_engine::stage::load::split(text) {
            let value: Value = serde_saphyr::from_str(doc).unwrap_or(Value::Null);
            match value.get("kind").and_then(Value::as_str) {
                Some("Stage" | "KwokConfiguration") => self.kwok_documents.push(doc.trim().to_owned()),
                // The kubelet-API and metrics kinds go to kwok too (which says it does
                // not implement them yet) rather than failing a user's upstream file.
                Some(kind) if KUBELET_API_KINDS.contains(&kind) => {
                    self.kwok_documents.push(doc.trim().to_owned())
                }
                Some(KIND) => self.apply(checked_volumes(file, line, typed(file, line, doc, value)?)?),
                Some(RESOURCE_KIND) => self.add_resource(typed_resource(file, line, doc, value)?),
                _ if value.is_null() => {}
                other => {
                    return Err(Error::Kind {
                        file: file.into(),
                        line,
                        kind: other.unwrap_or("").into(),
                    });
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, doc: KwokctlConfiguration) {
        self.options = self.options.overlay(&doc.options, false);
        self.patches.extend(doc.components_patches);
    }

    fn add_resource(&mut self, resource: KwokctlResource) {
        self.resources.retain(|r| r.name() != resource.name());
        self.resources.push(resource);
    }

    /// The `KwokctlResource` called `name`.
    pub fn resource(&self, name: &str) -> Option<&KwokctlResource> {
        self.resources.iter().find(|r| r.name() == name)
    }

    /// The merged configuration as one multi-document YAML stream.
    pub fn to_yaml(&self) -> String {
        let doc = KwokctlConfiguration {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            metadata: None,
            options: self.options.clone(),
            components_patches: self.patches.clone(),
        };
        let mut out = serde_saphyr::to_string(&doc).expect("plain data serializes");
        for resource in &self.resources {
            out.push_str("---\n");
            out.push_str(&serde_saphyr::to_string(resource).expect("plain data serializes"));
        }
        for kwok in &self.kwok_documents {
            out.push_str("---\n");
            out.push_str(kwok);
            out.push('\n');
        }
        out
    }
}

/// Checks a `KwokctlConfiguration`: the field path from the JSON value, the line from the
/// YAML parser.
fn typed(file: &str, start: usize, doc: &str, mut value: Value) -> Result<KwokctlConfiguration> {
    drop_upstream_only(file, start, &mut value);
    check_document(file, start, doc, value, KIND.to_owned())
}

/// Makes every volume's host path absolute and checks it exists, before anything is made.
fn checked_volumes(file: &str, line: usize, mut doc: KwokctlConfiguration) -> Result<KwokctlConfiguration> {
    for (p, patch) in doc.components_patches.iter_mut().enumerate() {
        for (v, volume) in patch.extra_volumes.iter_mut().enumerate() {
            if volume.host_path.is_relative() {
                volume.host_path = std::env::current_dir()
                    .map(|d| d.join(&volume.host_path))
                    .unwrap_or_else(|_| volume.host_path.clone());
            }
            volume.check().map_err(|reason| Error::Field {
                file: file.into(),
                line,
                kind: KIND.into(),
                field: format!("componentsPatches[{p}].extraVolumes[{v}].hostPath"),
                reason: format!("component {}: {reason}", patch.name),
            })?;
        }
    }
    Ok(doc)
}

/// Checks a `KwokctlResource` like a `KwokctlConfiguration`, then compiles its template.
fn typed_resource(file: &str, start: usize, doc: &str, value: Value) -> Result<KwokctlResource> {
    let name = value["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let kind = format!("{RESOURCE_KIND} {name:?}");
    let resource: KwokctlResource = check_document(file, start, doc, value, kind.clone())?;
    if name.is_empty() {
        return Err(Error::Field {
            file: file.into(),
            line: start,
            kind,
            field: "metadata.name".into(),
            reason: "must be set: it is what `kwokctl scale` is given".into(),
        });
    }
    resource.compile().map_err(|e| Error::Field {
        file: file.into(),
        line: start,
        kind,
        field: "template".into(),
        reason: match e {
            crate::scale::Error::Template { reason, .. } => reason,
            other => other.to_string(),
        },
    })?;
    Ok(resource)
}

/// Deserializes one document of ours with `deny_unknown_fields`: the field path from the
/// JSON value, the line from the YAML parser.
fn check_document<T: serde::de::DeserializeOwned>(
    file: &str,
    start: usize,
    doc: &str,
    value: Value,
    kind: String,
) -> Result<T> {
    let field_err = |line: usize, field: String, reason: String| Error::Field {
        file: file.into(),
        line,
        kind: kind.clone(),
        field,
        reason,
    };
    // Left out, it is the default (upstream's); given, it must be ours.
    if value
        .get("apiVersion")
        .is_some_and(|v| v.as_str() != Some(API_VERSION))
    {
        return Err(field_err(
            start,
            "apiVersion".into(),
            format!("must be {API_VERSION}"),
        ));
    }
    let line = serde_saphyr::from_str::<T>(doc)
        .err()
        .and_then(|e| e.location())
        .map_or(start, |l| start + l.line() as usize - 1);
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let field = e.path().to_string();
        let reason = e.into_inner().to_string();
        // serde lists every known field after an unknown one: too long for one line.
        let reason = reason.split(", expected").next().unwrap_or(&reason).to_owned();
        field_err(line, field, reason)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAGE: &str = "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata:\n  name: s\nspec:\n  resourceRef:\n    apiGroup: v1\n    kind: Node\n  next:\n    statusTemplate: '{}'\n";

    fn parse(text: &str) -> Result<UserConfig> {
        let mut config = UserConfig::default();
        config.parse("c.yaml", text)?;
        Ok(config)
    }

    #[test]
    fn parse_should_merge_options_and_keep_kwok_documents() {
        let text = format!(
            "apiVersion: {API_VERSION}\nkind: {KIND}\noptions:\n  prometheusPort: 9090\n  etcdPrefix: /a\n---\n{STAGE}---\napiVersion: {API_VERSION}\nkind: {KIND}\noptions:\n  etcdPrefix: /b\ncomponentsPatches:\n- name: kube-apiserver\n  extraArgs:\n  - key: v\n    value: '4'\n"
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.options.prometheus_port, Some(9090));
        assert_eq!(config.options.etcd_prefix.as_deref(), Some("/b"));
        assert_eq!(config.patches[0].extra_args[0].key, "v");
        assert_eq!(config.kwok_documents.len(), 1);
        assert!(config.kwok_documents[0].contains("kind: Stage"));
    }

    #[test]
    fn unknown_field_should_name_file_line_and_field() {
        let text =
            format!("apiVersion: {API_VERSION}\nkind: {KIND}\noptions:\n  etcdPrefix: /a\n  bogus: 1\n");
        let err = parse(&text).unwrap_err().to_string();
        assert_eq!(
            err,
            "c.yaml:5: KwokctlConfiguration: options.bogus: unknown field `bogus`"
        );
    }

    #[test]
    fn upstream_options_not_implemented_should_load_and_typos_should_not() {
        let text = format!(
            "apiVersion: {API_VERSION}\nkind: {KIND}\noptions:\n  kubeImagePrefix: registry.k8s.io\n  \
             jaegerPort: 16686\n  etcdPrefix: /a\ncomponents:\n- name: extra\nstatus:\n  version: v0.8.0\n\
             ---\napiVersion: kwok.x-k8s.io/v1alpha1\nkind: ClusterLogs\nmetadata:\n  name: l\n"
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.options.etcd_prefix.as_deref(), Some("/a"));
        assert_eq!(config.kwok_documents.len(), 1, "ClusterLogs is handed to kwok");
        let typo = format!("apiVersion: {API_VERSION}\nkind: {KIND}\noptions:\n  kubeImagePrefx: x\n");
        assert!(
            parse(&typo)
                .unwrap_err()
                .to_string()
                .contains("unknown field `kubeImagePrefx`")
        );
    }

    #[test]
    fn a_configuration_without_api_version_should_get_the_default() {
        let config = parse(&format!("kind: {KIND}\noptions:\n  etcdPrefix: /x\n")).unwrap();
        assert_eq!(config.options.etcd_prefix.as_deref(), Some("/x"));
    }

    #[test]
    fn extra_args_should_take_override_bare_flags_and_boolean_values() {
        let text = format!(
            "apiVersion: {API_VERSION}\nkind: {KIND}\ncomponentsPatches:\n- name: kube-apiserver\n  extraArgs:\n  \
             - key: v\n    value: '4'\n    override: true\n  - key: profiling\n  - key: allow-privileged\n    value: true\n"
        );
        let config = parse(&text).unwrap();
        let flags: Vec<String> = config.patches[0]
            .extra_args
            .iter()
            .map(crate::components::ExtraArg::flag)
            .collect();
        assert_eq!(flags, ["--v=4", "--profiling", "--allow-privileged=true"]);
        assert!(config.patches[0].extra_args[0].override_only);
    }

    #[test]
    fn wrong_type_should_name_the_field() {
        let text =
            format!("# c\n---\napiVersion: {API_VERSION}\nkind: {KIND}\noptions:\n  prometheusPort: abc\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.starts_with("c.yaml:6: KwokctlConfiguration: options.prometheusPort: "),
            "{err}"
        );
    }

    #[test]
    fn bad_yaml_and_unknown_kind_should_be_refused() {
        let err = parse("a: [1\n").unwrap_err().to_string();
        assert!(err.starts_with("c.yaml:"), "{err}");
        let err = parse("apiVersion: v1\nkind: Pod\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "c.yaml:1: unsupported kind \"Pod\" (use KwokctlConfiguration, KwokctlResource, KwokConfiguration or Stage)"
        );
    }

    #[test]
    fn bad_stage_should_be_reported_by_the_engine() {
        let err = parse(&STAGE.replace("resourceRef", "resourceRefx")).unwrap_err();
        assert!(err.to_string().starts_with("c.yaml:"), "{err}");
    }

    #[test]
    fn kwokctl_resources_should_be_kept_by_name_and_their_templates_checked() {
        let resource = |name: &str, template: &str| {
            format!(
                "apiVersion: {API_VERSION}\nkind: KwokctlResource\nmetadata:\n  name: {name}\nparameters:\n  a: 1\ntemplate: '{template}'\n"
            )
        };
        let text = format!(
            "{}---\n{}---\n{}",
            resource("w", "kind: A"),
            resource("v", "kind: V"),
            resource("w", "kind: B")
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.resources.len(), 2);
        assert_eq!(
            config.resource("w").unwrap().template,
            "kind: B",
            "the later one wins"
        );
        assert!(config.to_yaml().contains("kind: KwokctlResource"));
        let err = parse(&format!("# x\n---\n{}", resource("w", "{{ Nope }}")))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "c.yaml:3: KwokctlResource \"w\": template: line 1: function \"Nope\" not defined"
        );
        let err = parse(&resource("w", "x").replace("template:", "templat:"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("c.yaml:7: KwokctlResource \"w\": templat: unknown field"),
            "{err}"
        );
    }

    #[test]
    fn extra_volumes_should_need_an_existing_host_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sched.yaml");
        std::fs::write(&file, "x").unwrap();
        let doc = |host: &str, path_type: &str| {
            format!(
                "apiVersion: {API_VERSION}\nkind: {KIND}\ncomponentsPatches:\n- name: kube-scheduler\n  extraVolumes:\n  - name: cfg\n    hostPath: {host}\n    mountPath: /etc/kube/sched.yaml\n    readOnly: true\n    pathType: {path_type}\n"
            )
        };
        let config = parse(&doc(file.to_str().unwrap(), "File")).unwrap();
        let volume = &config.patches[0].extra_volumes[0];
        assert_eq!(volume.host_path, file);
        assert_eq!(
            volume.mount_path.as_deref(),
            Some(Path::new("/etc/kube/sched.yaml"))
        );
        let missing = dir.path().join("nope.yaml");
        let err = parse(&doc(missing.to_str().unwrap(), "File"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "c.yaml:1: KwokctlConfiguration: componentsPatches[0].extraVolumes[0].hostPath: component kube-scheduler: {} does not exist",
                missing.display()
            )
        );
        let err = parse(&doc(file.to_str().unwrap(), "Directory"))
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("is not a directory"), "{err}");
        let err = parse(&doc(file.to_str().unwrap(), "Fifo"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown pathType \"Fifo\""), "{err}");
        // *OrCreate: a missing path is made by `create cluster`, not while reading.
        let later = dir.path().join("later/dir");
        let config = parse(&doc(later.to_str().unwrap(), "DirectoryOrCreate")).unwrap();
        let volume = &config.patches[0].extra_volumes[0];
        assert!(!later.exists());
        assert_eq!(
            volume.create_command(),
            Some(format!("mkdir -p {}", later.display()))
        );
        assert_eq!(volume.create_missing().unwrap(), Some(dir.path().join("later")));
        assert!(later.is_dir());
        assert_eq!(volume.create_missing().unwrap(), None, "already there");
        let err = parse(&doc(file.to_str().unwrap(), "DirectoryOrCreate"))
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("is not a directory"), "{err}");
        let new_file = dir.path().join("f/new.conf");
        let config = parse(&doc(new_file.to_str().unwrap(), "FileOrCreate")).unwrap();
        assert_eq!(
            config.patches[0].extra_volumes[0].create_missing().unwrap(),
            Some(dir.path().join("f"))
        );
        assert!(new_file.is_file());
    }
}
