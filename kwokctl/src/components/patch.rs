//! `componentsPatches`: extra flags, environment and volumes for one component, as a
//! `KwokctlConfiguration` or `--extra-args` gives them (upstream's fields).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Extra flags and environment for one component.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentPatch {
    /// The component (`kube-apiserver`, `kwok-controller`, …).
    pub name: String,
    /// Flags: each becomes `--key=value`, replacing a flag of the same key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<ExtraArg>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_envs: Vec<EnvVar>,
    /// Files and folders the component reads. The binary runtime runs processes on the
    /// host, so nothing is mounted: the host path must exist, and where the mount path
    /// differs, the component's arguments naming it are rewritten to the host path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_volumes: Vec<Volume>,
}

/// One volume of a component (upstream's fields).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    /// Name, for messages.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The file or folder on the host; made absolute when read.
    pub host_path: PathBuf,
    /// Where a container would see it; the component's arguments name this path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<PathBuf>,
    /// Accepted; a host process sees the file as the host grants it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// What the host path must be: `File`, `Directory`, `FileOrCreate` or
    /// `DirectoryOrCreate` (made empty by `create cluster` when missing, as the kubelet
    /// does), or anything (unset or `""`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_type: Option<String>,
}

impl Volume {
    /// Checks the host path against the path type; `Err` is the reason.
    pub fn check(&self) -> Result<(), String> {
        let path = &self.host_path;
        let path_type = self.path_type.as_deref().unwrap_or("");
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(_) if matches!(path_type, "FileOrCreate" | "DirectoryOrCreate") => return Ok(()),
            Err(_) => return Err(format!("{} does not exist", path.display())),
        };
        match path_type {
            "" | "Socket" | "CharDevice" | "BlockDevice" => Ok(()),
            "File" | "FileOrCreate" if meta.is_file() => Ok(()),
            "File" | "FileOrCreate" => Err(format!("{} is not a file", path.display())),
            "Directory" | "DirectoryOrCreate" if meta.is_dir() => Ok(()),
            "Directory" | "DirectoryOrCreate" => Err(format!("{} is not a directory", path.display())),
            other => Err(format!(
                "unknown pathType {other:?} (use File, Directory, FileOrCreate or DirectoryOrCreate)"
            )),
        }
    }
}

impl Volume {
    /// The shell command that makes a missing `*OrCreate` host path, if one is needed.
    pub fn create_command(&self) -> Option<String> {
        let path = &self.host_path;
        if path.exists() {
            return None;
        }
        match self.path_type.as_deref() {
            Some("DirectoryOrCreate") => Some(format!("mkdir -p {}", crate::shell::path(path))),
            Some("FileOrCreate") => Some(match path.parent() {
                Some(parent) => format!(
                    "mkdir -p {} && touch {}",
                    crate::shell::path(parent),
                    crate::shell::path(path)
                ),
                None => format!("touch {}", crate::shell::path(path)),
            }),
            _ => None,
        }
    }

    /// Makes a missing `*OrCreate` host path (an empty folder or file, with its parents);
    /// returns the outermost path it made (removing it undoes everything), if any.
    pub fn create_missing(&self) -> std::io::Result<Option<PathBuf>> {
        let path = &self.host_path;
        if path.exists()
            || !matches!(
                self.path_type.as_deref(),
                Some("DirectoryOrCreate" | "FileOrCreate")
            )
        {
            return Ok(None);
        }
        let outermost = path
            .ancestors()
            .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
            .last()
            .map(Path::to_path_buf);
        if self.path_type.as_deref() == Some("DirectoryOrCreate") {
            std::fs::create_dir_all(path)?;
        } else {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::File::create(path)?;
        }
        Ok(outermost)
    }
}

/// One extra flag.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExtraArg {
    /// Flag name without dashes.
    pub key: String,
    /// Its value (a YAML boolean or number is taken as its text); none for a bare
    /// boolean flag (`--key`).
    #[serde(
        default,
        deserialize_with = "scalar_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub value: Option<String>,
    /// Upstream's `override`: only replace a flag the component already has (warn
    /// when it has none). Without it the flag replaces one of the same key, or is added.
    #[serde(default, rename = "override", skip_serializing_if = "std::ops::Not::not")]
    pub override_only: bool,
}

impl ExtraArg {
    /// `key=value` (or a bare `key`).
    pub fn new(key: &str, value: &str) -> Self {
        Self {
            key: key.into(),
            value: Some(value.into()),
            override_only: false,
        }
    }

    /// The command-line flag.
    pub fn flag(&self) -> String {
        match &self.value {
            Some(v) => format!("--{}={v}", self.key),
            None => format!("--{}", self.key),
        }
    }
}

/// A string, or a YAML boolean or number as its text.
fn scalar_text<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    use serde::de::Error as _;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(D::Error::custom(format!("expected a string, got {other}"))),
    }
}

/// One environment variable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}
