//! Loading Stages from a folder of multi-document files.

mod common;

use std::path::{Path, PathBuf};

use kwok_engine::{lifecycle::Lifecycles, stage::load::Documents};

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/stages-folder")
}

#[test]
fn a_folder_should_load_every_yaml_file_in_name_order_with_other_kinds_set_aside() {
    let mut docs = Documents::default();
    docs.read(&folder()).unwrap();
    let stages: Vec<_> = docs
        .stages
        .iter()
        .map(|(s, src)| {
            let file = Path::new(&src.file).file_name().unwrap().to_str().unwrap();
            (s.metadata.name.as_str(), file.to_owned(), src.line)
        })
        .collect();
    let expected = [
        ("node-up", "a-nodes.yaml", 7),
        ("pod-run", "b-pods.yaml", 1),
        ("pod-gone", "b-pods.yaml", 18),
        ("job-done", "c-jobs.yml", 4),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(n, f, l)| (*n, (*f).to_owned(), *l))
        .collect();
    assert_eq!(stages, expected);
    let others: Vec<_> = docs
        .others
        .iter()
        .map(|(v, src)| (v["kind"].as_str().unwrap(), src.line))
        .collect();
    assert_eq!(others, [("KwokConfiguration", 1), ("KwokctlConfiguration", 1)]);
}

#[test]
fn a_loaded_folder_should_compile_into_one_lifecycle_per_kind() {
    let mut docs = Documents::default();
    docs.read(&folder()).unwrap();
    let lcs = Lifecycles::compile(&docs).unwrap();
    let kinds: Vec<_> = lcs
        .kinds()
        .map(|(r, l)| (r.api_group.as_str(), r.kind.as_str(), l.stages().len()))
        .collect();
    assert_eq!(
        kinds,
        [("v1", "Node", 1), ("v1", "Pod", 2), ("batch/v1", "Job", 1)]
    );
    assert!(lcs.for_kind(Some("batch/v1"), "Job").is_some());
    assert!(lcs.for_kind(Some("v1"), "Job").is_none());
}

#[test]
fn a_single_file_should_load_like_a_folder_of_one() {
    let mut docs = Documents::default();
    docs.read(&folder().join("b-pods.yaml")).unwrap();
    assert_eq!(docs.stages.len(), 2);
    assert!(docs.others.is_empty());
}

#[test]
fn a_missing_path_should_be_an_io_error_naming_it() {
    let err = Documents::default()
        .read(&folder().join("missing.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("failed to read ") && err.contains("missing.yaml"),
        "{err}"
    );
}
