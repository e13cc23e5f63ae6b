//! Conformance with upstream KWOK v0.8's own golden stage tests.
//!
//! At test time the `sigs.k8s.io/kwok` v0.8.0 Go module is downloaded (`go mod
//! download`; nothing of it is kept in this repository). For every
//! `kustomize/stage/<group>/<set>/testdata/<case>.input.yaml`, the set's Stage files are
//! loaded unchanged, the object is listed as upstream's `stage_test.go` does (its clock
//! fixed at 2006-01-02T15:04:05Z, the runtime functions printed as stand-ins naming the
//! call) and the listing must equal `<case>.output.yaml`: the same stages, weights, delay
//! ranges and requests, field for field, and printed byte for byte as upstream's file.

use std::path::{Path, PathBuf};

use kwok_engine::{host::FixedHost, lifecycle::Lifecycles, listing, stage::load::Documents};
use serde_json::Value;

#[path = "../../tests/support/upstream_module.rs"]
mod upstream_module;

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    found.retain(|p| p.to_string_lossy().ends_with(suffix));
    found.sort();
    found
}

/// Every `(case name, input, expected output, stage files)`.
fn cases(root: &Path) -> Vec<(String, PathBuf, PathBuf, Vec<PathBuf>)> {
    let mut out = Vec::new();
    let stage_root = root.join("kustomize/stage");
    for group in files(&stage_root, "") {
        for set in files(&group, "") {
            let mut stages = files(&set, ".yaml");
            stages.retain(|p| !p.ends_with("kustomization.yaml"));
            for input in files(&set.join("testdata"), ".input.yaml") {
                let base = input.to_string_lossy().trim_end_matches(".input.yaml").to_owned();
                let name = base
                    .trim_start_matches(&*stage_root.to_string_lossy())
                    .trim_start_matches('/')
                    .replace("/testdata/", "/");
                out.push((
                    name,
                    input,
                    PathBuf::from(format!("{base}.output.yaml")),
                    stages.clone(),
                ));
            }
        }
    }
    out
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn listing_of(input: &Path, stages: &[PathBuf]) -> Result<Value, String> {
    let mut docs = Documents::default();
    for file in stages {
        let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
        docs.parse(&file.to_string_lossy(), &text)
            .map_err(|e| e.to_string())?;
    }
    let lifecycles = Lifecycles::compile(&docs).map_err(|e| e.to_string())?;
    let obj = yaml(input);
    let text = |k: &str| obj[k].as_str().unwrap_or_default().to_owned();
    let Some(lifecycle) = lifecycles.for_kind(Some(&text("apiVersion")), &text("kind")) else {
        return Err(format!("no stage for {} {}", text("apiVersion"), text("kind")));
    };
    let now = "2006-01-02T15:04:05Z".parse().expect("a time");
    let mut host = FixedHost::new(now).with_placeholders();
    // Upstream's golden files give merge patches where its controller sends strategic
    // ones (see `Defaults::UpstreamTests`): compared as upstream's test made them.
    listing::list(lifecycle, &obj, now, &mut host, listing::Defaults::UpstreamTests)
        .map_err(|e| e.to_string())
}

#[test]
fn every_upstream_golden_stage_case_should_list_the_same() {
    let root = upstream_module::dir();
    let cases = cases(&root);
    assert!(
        cases.len() >= 15,
        "found only {} golden cases under {}",
        cases.len(),
        root.display()
    );
    let mut failures = Vec::new();
    for (name, input, output, stages) in &cases {
        let want = yaml(output);
        let want_text = std::fs::read_to_string(output).expect("read");
        match listing_of(input, stages) {
            // Byte for byte too: `kwok stage run --all -o yaml --golden` diffs cleanly.
            Ok(got) if got == want && kwok_engine::template::to_go_yaml(&got) == want_text => {}
            Ok(got) if got == want => failures.push(format!(
                "{name}: same values, printed differently:\n{}",
                kwok_engine::template::to_go_yaml(&got)
            )),
            Ok(got) => {
                let mut diffs = Vec::new();
                diff("", &want, &got, &mut diffs);
                failures.push(format!("{name}:\n  {}", diffs.join("\n  ")));
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} upstream golden cases differ:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Where `got` differs from `want`: one line per differing leaf, JSON-pointer paths.
fn diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                diff(&format!("{path}/{k}"), wv, g.get(k).unwrap_or(&Value::Null), out);
            }
            for (k, gv) in g.iter().filter(|(k, _)| !w.contains_key(*k)) {
                out.push(format!("{path}/{k}: upstream has none, ours {gv}"));
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                diff(&format!("{path}/{i}"), wv, gv, out);
            }
        }
        _ if want != got => out.push(format!("{path}: upstream {want}, ours {got}")),
        _ => {}
    }
}

/// Every Stage file upstream ships (`kustomize/stage/**`, the chaos and heartbeat sets
/// too, which have no golden cases) loads and compiles unchanged.
#[test]
fn every_upstream_stage_set_should_load_unchanged() {
    let root = upstream_module::dir().join("kustomize/stage");
    let (mut loaded, mut written) = (0, 0);
    for group in files(&root, "") {
        for set in files(&group, "") {
            let mut docs = Documents::default();
            for file in files(&set, ".yaml") {
                let text = std::fs::read_to_string(&file).expect("read");
                written += text.lines().filter(|l| *l == "kind: Stage").count();
                docs.parse(&file.to_string_lossy(), &text)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            let lifecycles = Lifecycles::compile(&docs).unwrap_or_else(|e| panic!("{e}"));
            loaded += lifecycles.kinds().map(|(_, l)| l.stages().len()).sum::<usize>();
        }
    }
    assert!(
        written >= 19,
        "only {written} Stage documents under {}",
        root.display()
    );
    assert_eq!(loaded, written, "every Stage document compiled");
}

/// The Stage files of upstream's own end-to-end and lifecycle tests (`test/**`: json
/// patches, impersonation, pod stages) load and compile unchanged.
#[test]
fn every_stage_file_of_upstreams_tests_should_load_unchanged() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for path in files(dir, "") {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
    }
    let mut yamls = Vec::new();
    walk(&upstream_module::dir().join("test"), &mut yamls);
    let mut stages = 0;
    for file in yamls {
        let text = std::fs::read_to_string(&file).expect("read");
        if !text.lines().any(|l| l == "kind: Stage") {
            continue;
        }
        let mut docs = Documents::default();
        docs.parse(&file.to_string_lossy(), &text)
            .unwrap_or_else(|e| panic!("{e}"));
        let lifecycles = Lifecycles::compile(&docs).unwrap_or_else(|e| panic!("{e}"));
        stages += lifecycles.kinds().map(|(_, l)| l.stages().len()).sum::<usize>();
    }
    assert!(stages >= 5, "only {stages} stages in upstream's test files");
}
