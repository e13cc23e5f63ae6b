//! Kubeconfig files: the cluster's own (admin and per component) and the context
//! `kwok-NAME` merged into the user's kubeconfig.

use std::{fs, path::Path};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::{
    path_error::{PathError, on},
    pki::PkiPaths,
};

/// Errors on kubeconfig files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named path.
    #[error(transparent)]
    Io(#[from] PathError),
    /// The user's kubeconfig is not valid YAML.
    #[error("{path}: not a kubeconfig: {message}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// Result of kubeconfig operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The context, cluster and user name of cluster `name` in kubeconfigs.
pub fn context_name(cluster: &str) -> String {
    format!("kwok-{cluster}")
}

/// How a kubeconfig's user authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// The client certificate and key of this file stem under `pki/`.
    Certificate(&'a str),
    /// A bearer token.
    Token(&'a str),
}

/// A kubeconfig for `server` authenticating with `credential`, with certificates
/// embedded so it can be copied anywhere.
pub fn build(cluster: &str, server: &str, pki: &PkiPaths, credential: Credential<'_>) -> Result<Value> {
    let name = context_name(cluster);
    let user = match credential {
        Credential::Certificate(client) => json!({
            "client-certificate-data": base64_file(&pki.client_cert(client))?,
            "client-key-data": base64_file(&pki.client_key(client))?,
        }),
        Credential::Token(token) => json!({ "token": token }),
    };
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": name, "cluster": {
            "server": server,
            "certificate-authority-data": base64_file(&pki.ca_cert())?,
        }}],
        "users": [{ "name": name, "user": user }],
        "contexts": [{ "name": name, "context": { "cluster": name, "user": name } }],
        "current-context": name,
    }))
}

/// Writes `config` to `path`.
pub fn write(path: &Path, config: &Value) -> Result<()> {
    let text = serde_saphyr::to_string(config).map_err(|e| Error::Parse {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(on("create", parent))?;
    }
    Ok(fs::write(path, text).map_err(on("write", path))?)
}

/// Reads `path`, or an empty config if it does not exist.
pub fn read_or_empty(path: &Path) -> Result<Value> {
    match fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(json!({ "apiVersion": "v1", "kind": "Config" })),
        Ok(text) => serde_saphyr::from_str(&text).map_err(|e| Error::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(json!({ "apiVersion": "v1", "kind": "Config" }))
        }
        Err(source) => Err(on("read", path)(source).into()),
    }
}

/// The user's kubeconfig: the first file of `$KUBECONFIG`, else `~/.kube/config`.
pub fn user_kubeconfig_path() -> std::path::PathBuf {
    if let Some(first) = std::env::var_os("KUBECONFIG").and_then(|v| std::env::split_paths(&v).next())
        && !first.as_os_str().is_empty()
    {
        return first;
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
    Path::new(&home).join(".kube").join("config")
}

/// Merges the single-context `cluster_config` into the kubeconfig at `path`, replacing
/// entries of the same name and making it the current context.
pub fn merge_into(path: &Path, cluster_config: &Value) -> Result<()> {
    let mut target = read_or_empty(path)?;
    for list in ["clusters", "users", "contexts"] {
        for entry in cluster_config[list].as_array().into_iter().flatten() {
            upsert(&mut target, list, entry.clone());
        }
    }
    target["current-context"] = cluster_config["current-context"].clone();
    write(path, &target)
}

/// Removes the entries of cluster `cluster` from the kubeconfig at `path`, if any.
pub fn remove_from(path: &Path, cluster: &str) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let name = context_name(cluster);
    let mut target = read_or_empty(path)?;
    for list in ["clusters", "users", "contexts"] {
        if let Some(entries) = target[list].as_array_mut() {
            entries.retain(|e| e["name"] != name.as_str());
        }
    }
    if target["current-context"] == name.as_str()
        && let Some(map) = target.as_object_mut()
    {
        map.remove("current-context");
    }
    write(path, &target)
}

fn upsert(target: &mut Value, list: &str, entry: Value) {
    if !target[list].is_array() {
        target[list] = json!([]);
    }
    let entries = target[list].as_array_mut().expect("just made an array");
    match entries.iter_mut().find(|e| e["name"] == entry["name"]) {
        Some(existing) => *existing = entry,
        None => entries.push(entry),
    }
}

fn base64_file(path: &Path) -> Result<String> {
    let bytes = fs::read(path).map_err(on("read", path))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_should_keep_other_contexts_and_replace_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        let other = json!({"apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "other", "cluster": {"server": "https://example:6443"}}],
            "users": [], "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other"}}],
            "current-context": "other"});
        write(&path, &other).unwrap();
        let ours = |server: &str| {
            json!({"clusters": [{"name": "kwok-a", "cluster": {"server": server}}],
            "users": [{"name": "kwok-a", "user": {}}],
            "contexts": [{"name": "kwok-a", "context": {"cluster": "kwok-a", "user": "kwok-a"}}],
            "current-context": "kwok-a"})
        };
        merge_into(&path, &ours("https://127.0.0.1:1")).unwrap();
        merge_into(&path, &ours("https://127.0.0.1:2")).unwrap();
        let merged = read_or_empty(&path).unwrap();
        assert_eq!(merged["clusters"].as_array().unwrap().len(), 2);
        assert_eq!(merged["clusters"][1]["cluster"]["server"], "https://127.0.0.1:2");
        assert_eq!(merged["current-context"], "kwok-a");

        remove_from(&path, "a").unwrap();
        let left = read_or_empty(&path).unwrap();
        assert_eq!(left["contexts"].as_array().unwrap().len(), 1);
        assert_eq!(left["contexts"][0]["name"], "other");
        assert!(left.get("current-context").is_none());
    }
}
