//! Reading Stage documents from multi-document YAML, keeping the line each document
//! starts on so errors can point at it. Documents of other kinds (e.g.
//! `KwokConfiguration`) are handed back untouched for the caller.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::spec;
use crate::error::LoadError;

/// Where a document came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// File name (or `<inline>`).
    pub file: String,
    /// 1-based line the document starts on.
    pub line: usize,
}

/// Upstream's `kwok.x-k8s.io/v1alpha1` kinds for the kubelet API and metrics, which
/// files written for KWOK carry beside their Stages (their behaviour is not the
/// engine's: kwok and kwokctl accept them and say what they do with them).
pub const KUBELET_API_KINDS: &[&str] = &[
    "Metric",
    "Logs",
    "ClusterLogs",
    "Exec",
    "ClusterExec",
    "Attach",
    "ClusterAttach",
    "PortForward",
    "ClusterPortForward",
    "ResourceUsage",
    "ClusterResourceUsage",
];

/// The documents of one or more files.
#[derive(Debug, Default)]
pub struct Documents {
    /// Stage documents with their source.
    pub stages: Vec<(spec::Stage, Source)>,
    /// Every other document (kind is not `Stage`), as JSON.
    pub others: Vec<(Value, Source)>,
}

impl Documents {
    /// Parses `text` (named `file` in errors) and appends its documents.
    pub fn parse(&mut self, file: &str, text: &str) -> Result<(), LoadError> {
        for (line, doc) in split(text) {
            let source = Source {
                file: file.to_owned(),
                line,
            };
            let value: Value = serde_saphyr::from_str(doc).map_err(|e| syntax(&source, &e))?;
            match value.get("kind").and_then(Value::as_str) {
                Some("Stage") => self.stages.push((typed(Some(doc), value, &source)?, source)),
                _ if value.is_null() => {}
                _ => self.others.push((value, source)),
            }
        }
        Ok(())
    }

    /// Appends one Stage given as a JSON object (e.g. read from a cluster); `origin`
    /// names it in errors (e.g. `Stage/node-ready`).
    pub fn push_stage(&mut self, origin: &str, value: Value) -> Result<(), LoadError> {
        let source = Source {
            file: origin.to_owned(),
            line: 1,
        };
        let stage = typed(None, value, &source)?;
        self.stages.push((stage, source));
        Ok(())
    }

    /// Reads `path`: a file, or a folder as [`config_files`] expands it.
    pub fn read(&mut self, path: &Path) -> Result<(), LoadError> {
        for read in config_texts(path)? {
            let (file, text) = read?;
            self.parse(&file.display().to_string(), &text)?;
        }
        Ok(())
    }
}

/// The files of [`config_files`] with their text, each read when the iterator reaches
/// it (so a file's errors come before the next file is read).
pub fn config_texts(
    path: &Path,
) -> Result<impl Iterator<Item = Result<(PathBuf, String), LoadError>>, LoadError> {
    Ok(config_files(path)?
        .into_iter()
        .map(|file| match std::fs::read_to_string(&file) {
            Ok(text) => Ok((file, text)),
            Err(source) => Err(LoadError::Io {
                file: file.display().to_string(),
                source,
            }),
        }))
}

/// The names kustomize looks for in a folder, in its order.
const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The files a `--config` path stands for, in reading order: a file is itself; a
/// folder with a kustomization is its `resources` in order (files, or folders expanded
/// the same way), as upstream reads such folders with kustomize; any other folder is
/// its `*.yaml`/`*.yml` files in name order. Kustomize's transformers and generators
/// are refused by name rather than ignored.
pub fn config_files(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    expand(path, &mut out, 0)?;
    Ok(out)
}

fn expand(path: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<(), LoadError> {
    let io = |file: &Path| {
        let file = file.display().to_string();
        move |source| LoadError::Io { file, source }
    };
    // A resource cycle would otherwise recurse for ever.
    if depth > 32 {
        return Err(LoadError::Io {
            file: path.display().to_string(),
            source: std::io::Error::other("kustomization resources nest deeper than 32 (a cycle?)"),
        });
    }
    if !std::fs::metadata(path).map_err(io(path))?.is_dir() {
        out.push(path.to_owned());
        return Ok(());
    }
    if let Some(k) = KUSTOMIZATION_FILES
        .iter()
        .map(|n| path.join(n))
        .find(|p| p.is_file())
    {
        let text = std::fs::read_to_string(&k).map_err(io(&k))?;
        for resource in kustomization_resources(&k, &text)? {
            expand(&path.join(resource), out, depth + 1)?;
        }
        return Ok(());
    }
    let mut files: Vec<_> = std::fs::read_dir(path)
        .map_err(io(path))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    out.extend(files);
    Ok(())
}

/// The `resources` of the kustomization `file`; any field but those kwok can honour is
/// an error naming it.
fn kustomization_resources(file: &Path, text: &str) -> Result<Vec<String>, LoadError> {
    let source = Source {
        file: file.display().to_string(),
        line: 1,
    };
    let value: Value = serde_saphyr::from_str(text).map_err(|e| syntax(&source, &e))?;
    let fail = |message: String| LoadError::Syntax {
        file: source.file.clone(),
        line: 1,
        message,
    };
    let Some(map) = value.as_object() else {
        return Err(fail("a kustomization must be a mapping".into()));
    };
    if let Some(field) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "apiVersion" | "kind" | "resources"))
    {
        return Err(fail(format!(
            "kustomization field {field:?} is not supported (only resources are followed)"
        )));
    }
    match map.get("resources") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| fail(format!("resources: {v} is not a path")))
            })
            .collect(),
        Some(other) => Err(fail(format!("resources: {other} is not a list"))),
    }
}

/// Splits a YAML stream at `---` lines; yields (1-based start line, text) of the
/// documents that hold more than comments. (kwokctl reads its config files with it.)
pub fn split(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let (mut start_line, mut start_byte, mut offset) = (1, 0, 0);
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            docs.push((start_line, &text[start_byte..offset]));
            start_line = i + 2;
            start_byte = offset + line.len();
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start_byte..]));
    docs.retain(|(_, d)| {
        d.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    docs
}

/// Deserializes a Stage, reporting the exact line (from the YAML parser) and the
/// field path (from the JSON value) of the first problem.
fn typed(doc: Option<&str>, value: Value, source: &Source) -> Result<spec::Stage, LoadError> {
    let line_err = doc.and_then(|doc| serde_saphyr::from_str::<spec::Stage>(doc).err());
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    match serde_path_to_error::deserialize::<_, spec::Stage>(value) {
        Ok(stage) => Ok(stage),
        Err(e) => {
            let line = line_err
                .and_then(|e| e.location())
                .map_or(source.line, |l| source.line + l.line() as usize - 1);
            let field = e.path().to_string();
            let reason = e.into_inner().to_string();
            Err(LoadError::Field {
                file: source.file.clone(),
                line,
                stage: name,
                error: crate::error::FieldError::new(field, reason),
            })
        }
    }
}

fn syntax(source: &Source, e: &serde_saphyr::Error) -> LoadError {
    let line = e
        .location()
        .map_or(source.line, |l| source.line + l.line() as usize - 1);
    let first = e.to_string().lines().next().unwrap_or_default().to_owned();
    // "error: line 4 column 1: reason" → "reason"
    let message = first.split_once(": ").map_or(first.clone(), |(_, rest)| {
        rest.split_once(": ")
            .map_or(rest.to_owned(), |(_, reason)| reason.to_owned())
    });
    LoadError::Syntax {
        file: source.file.clone(),
        line,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata:\n  name: a\nspec:\n  resourceRef:\n    kind: Pod\n---\n# comment\napiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\n---\napiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata:\n  name: b\nspec:\n  resourceRef:\n    kind: Node\n";

    #[test]
    fn config_files_should_follow_kustomization_resources_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(root.join("plain")).unwrap();
        for f in [
            "a.yaml",
            "b.yaml",
            "unlisted.yaml",
            "sub/c.yaml",
            "plain/2.yml",
            "plain/1.yaml",
        ] {
            std::fs::write(root.join(f), "").unwrap();
        }
        std::fs::write(
            root.join("kustomization.yaml"),
            "kind: Kustomization\nresources: [b.yaml, sub, plain, a.yaml]\n",
        )
        .unwrap();
        std::fs::write(root.join("sub/kustomization.yml"), "resources:\n- c.yaml\n").unwrap();
        let names: Vec<_> = config_files(root)
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            ["b.yaml", "sub/c.yaml", "plain/1.yaml", "plain/2.yml", "a.yaml"]
        );

        std::fs::write(
            root.join("kustomization.yaml"),
            "resources: [a.yaml]\nnamePrefix: x-\n",
        )
        .unwrap();
        let err = config_files(root).unwrap_err().to_string();
        assert!(
            err.contains("kustomization.yaml:1: kustomization field \"namePrefix\" is not supported"),
            "{err}"
        );
        std::fs::write(root.join("kustomization.yaml"), "resources: [missing.yaml]\n").unwrap();
        let err = config_files(root).unwrap_err().to_string();
        assert!(err.contains("missing.yaml"), "{err}");
    }

    #[test]
    fn parse_should_separate_stages_from_other_documents_with_lines() {
        let mut docs = Documents::default();
        docs.parse("s.yaml", TWO).unwrap();
        let names: Vec<_> = docs
            .stages
            .iter()
            .map(|(s, src)| (s.metadata.name.as_str(), src.line))
            .collect();
        assert_eq!(names, [("a", 1), ("b", 13)]);
        assert_eq!(docs.others.len(), 1);
        assert_eq!(docs.others[0].1.line, 9);
    }

    #[test]
    fn unknown_field_should_name_file_line_stage_and_path() {
        let text = "kind: Stage\napiVersion: kwok.x-k8s.io/v1alpha1\nmetadata:\n  name: x\nspec:\n  resourceRef:\n    kind: Pod\n  selector:\n    matchLabelz: {}\n";
        let mut docs = Documents::default();
        let err = docs
            .parse("bad.yaml", &format!("---\n{text}"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "bad.yaml:10: stage \"x\": spec.selector.matchLabelz: unknown field `matchLabelz`"
            ),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_should_name_the_field() {
        let text = "kind: Stage\napiVersion: kwok.x-k8s.io/v1alpha1\nmetadata:\n  name: x\nspec:\n  resourceRef:\n    kind: Pod\n  weight: heavy\n";
        let err = Documents::default()
            .parse("w.yaml", text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("w.yaml:8: stage \"x\": spec.weight: invalid type: string \"heavy\""),
            "{err}"
        );
    }

    #[test]
    fn bad_yaml_should_be_a_one_line_syntax_error() {
        let err = Documents::default()
            .parse("y.yaml", "kind: Stage\n  bad: [\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("y.yaml:"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
