//! A deterministic mutation fuzzer over YAML → Stage → compile → select → delay →
//! render → apply, seeded from every stage of the catalog. It asserts only that
//! nothing panics; a panic reports the seed, the iteration and the input.
//!
//! `cargo test -p kwok-engine --test fuzz -- --ignored` runs the long variant;
//! `KWOK_FUZZ_ITERATIONS` sets its length and `KWOK_FUZZ_SEED` its seed.

mod common;

use std::panic::{self, AssertUnwindSafe};

use common::now;
use kwok_engine::{catalog, host::FixedHost, lifecycle::Lifecycles, simulate, stage::load::Documents};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde_json::{Value, json};

/// Text mutations in the quick run. Compiling a stage costs tens of milliseconds in a
/// debug build (jq definitions are loaded per expression), so this stays small.
const QUICK_TEXT_ITERATIONS: usize = 300;

/// Object mutations in the quick run, against the compiled default stages (cheap).
const QUICK_OBJECT_ITERATIONS: usize = 3000;

/// Every stage document of the catalog, one text each.
fn corpus() -> Vec<String> {
    catalog::SETS
        .iter()
        .flat_map(|name| catalog::set(name).unwrap().split("\n---\n"))
        .map(str::to_owned)
        .collect()
}

/// Objects every mutated stage is run against.
fn objects() -> Vec<(&'static str, Value)> {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "uid": "u",
                     "labels": {"pod-container-running-failed.stage.kwok.x-k8s.io": "true"},
                     "annotations": {"pod-ready.stage.kwok.x-k8s.io/delay": "1s"},
                     "ownerReferences": [{"kind": "Job", "name": "j"}]},
        "spec": {"nodeName": "n", "restartPolicy": "Never",
                 "initContainers": [{"name": "i", "image": "busybox"}],
                 "containers": [{"name": "c", "image": "nginx"}, {"name": "d", "image": "envoy"}]},
        "status": {"phase": "Pending"}
    });
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n", "labels": {"node-not-ready.stage.kwok.x-k8s.io": "true"},
                     "creationTimestamp": "2026-01-02T03:00:00Z"},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    });
    let mut deleting = pod.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-02T03:04:35Z");
    deleting["metadata"]["finalizers"] = json!(["kwok.x-k8s.io/fake"]);
    vec![
        ("Pod", pod),
        ("Pod", deleting),
        ("Node", node),
        ("Node", json!({"metadata": null, "status": [1, 2]})),
    ]
}

/// Values spliced into the text by [`mutate`]: YAML and template syntax, odd numbers.
const TOKENS: &[&str] = &[
    "{{",
    "}}",
    "{{ end }}",
    "{{ range . }}",
    "[",
    "]",
    "{",
    "}",
    "'",
    "\"",
    ":",
    "- ",
    "---\n",
    "null",
    "~",
    "-1",
    "9223372036854775807",
    "1e400",
    "true",
    "&a",
    "*a",
    "!!binary",
    "|",
    ">",
    ".[]",
    "| select(",
    "$",
    "\t",
    "\u{0}",
    "é",
    "{{ index . 99 }}",
    "{{ YAML . 1 }}",
];

/// One random mutation of `text`.
fn mutate(text: &str, rng: &mut StdRng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if lines.is_empty() {
        return TOKENS.choose(rng).unwrap().to_string();
    }
    let i = rng.random_range(0..lines.len());
    match rng.random_range(0..8) {
        0 => return flip_byte(text, rng),
        1 => {
            lines.remove(i);
        }
        2 => {
            let line = lines[i].clone();
            lines.insert(i, line);
        }
        3 => swap_values(&mut lines, i, rng),
        4 => {
            let cut = rng.random_range(0..=text.len());
            return text.get(..cut).unwrap_or(text).to_owned();
        }
        5 => {
            let token = TOKENS.choose(rng).unwrap();
            let at = floor_char(&lines[i], rng.random_range(0..=lines[i].len()));
            lines[i].insert_str(at, token);
        }
        6 => {
            let j = rng.random_range(0..lines.len());
            lines.swap(i, j);
        }
        _ => {
            let indent = if rng.random_bool(0.5) { "  " } else { "" };
            lines[i] = format!("{indent}{}", lines[i].trim_start_matches(' '));
        }
    }
    lines.join("\n")
}

fn floor_char(s: &str, mut at: usize) -> usize {
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn flip_byte(text: &str, rng: &mut StdRng) -> String {
    let mut bytes = text.as_bytes().to_vec();
    if bytes.is_empty() {
        return String::new();
    }
    let i = rng.random_range(0..bytes.len());
    bytes[i] ^= 1 << rng.random_range(0..8);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Swaps the value of line `i` with the value of another `key: value` line.
fn swap_values(lines: &mut [String], i: usize, rng: &mut StdRng) {
    let j = rng.random_range(0..lines.len());
    let (Some((ka, va)), Some((kb, vb))) = (lines[i].split_once(": "), lines[j].split_once(": ")) else {
        return;
    };
    let (a, b) = (format!("{ka}: {vb}"), format!("{kb}: {va}"));
    lines[i] = a;
    lines[j] = b;
}

/// The whole path for one input; errors are fine, panics are not.
fn exercise(text: &str, objects: &[(&str, Value)], rng: &mut StdRng) {
    let mut docs = Documents::default();
    if docs.parse("fuzz.yaml", text).is_err() {
        return;
    }
    let Ok(lcs) = Lifecycles::compile(&docs) else {
        return;
    };
    let mut host = FixedHost::new(now());
    for (kind, obj) in objects {
        let Some(lc) = lcs.for_kind(None, kind) else {
            continue;
        };
        for stage in lc.stages() {
            let _ = stage.matches(obj);
            let _ = stage.weight(obj);
            let _ = stage.delay(obj, now(), rng);
            let mut copy = obj.clone();
            let effects = stage.render(obj, &mut host).unwrap_or_default();
            simulate::apply_all(&mut copy, kind, &effects, now());
            for effect in &effects {
                let _ = effect.finalizers_json_patch(obj);
            }
        }
        let _ = lc.select(obj, rng);
        let _ = simulate::run(lc, kind, obj.clone(), now(), 2, &mut host, rng);
    }
}

/// Runs `iterations` mutations (1–4 stacked on a corpus document) from `seed`.
fn fuzz(seed: u64, iterations: usize) {
    let corpus = corpus();
    let objects = objects();
    let mut rng = StdRng::seed_from_u64(seed);
    for iteration in 0..iterations {
        let mut text = corpus.choose(&mut rng).unwrap().clone();
        for _ in 0..rng.random_range(1..=4) {
            text = mutate(&text, &mut rng);
        }
        let mut run_rng = StdRng::seed_from_u64(iteration as u64);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| exercise(&text, &objects, &mut run_rng)));
        if let Err(cause) = outcome {
            let cause = describe(&*cause);
            panic!("seed {seed}, iteration {iteration}: panicked: {cause}\n--- input\n{text}\n---");
        }
    }
}

// ===== objects =====

/// Values put into objects by [`mutate_object`], many of them read by the stages'
/// weight and delay annotations.
fn odd_value(rng: &mut StdRng) -> Value {
    let strings = [
        "",
        "-1s",
        "1e400",
        "NaN",
        "99999999999999h",
        "2026-01-02T03:04:05Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "1ns",
        "500us",
        "Running",
        "True",
        "Job",
        "Always",
        "kwok.x-k8s.io/fake",
        "é\u{0}",
    ];
    match rng.random_range(0..8) {
        0 => Value::Null,
        1 => json!(rng.random::<i64>()),
        2 => json!(rng.random::<f64>() * 1e300),
        3 => json!(rng.random_bool(0.5)),
        4 => json!([]),
        5 => json!({}),
        _ => json!(strings.choose(rng).unwrap()),
    }
}

/// A JSON pointer to a random object or array inside `obj` (perhaps `obj` itself).
fn random_container(obj: &Value, rng: &mut StdRng) -> String {
    let (mut path, mut at) = (String::new(), obj);
    for _ in 0..rng.random_range(0..5) {
        let next = match at {
            Value::Object(map) if !map.is_empty() => {
                let (key, value) = map.iter().nth(rng.random_range(0..map.len())).unwrap();
                Some((key.replace('~', "~0").replace('/', "~1"), value))
            }
            Value::Array(items) if !items.is_empty() => {
                let i = rng.random_range(0..items.len());
                Some((i.to_string(), &items[i]))
            }
            _ => None,
        };
        match next {
            Some((step, value)) if value.is_object() || value.is_array() => {
                path = format!("{path}/{step}");
                at = value;
            }
            _ => break,
        }
    }
    path
}

/// Replaces, removes or adds one value somewhere in `obj`.
fn mutate_object(obj: &mut Value, rng: &mut StdRng) {
    let path = random_container(obj, rng);
    let value = odd_value(rng);
    let remove = rng.random_bool(0.3);
    let key = *[
        "status",
        "phase",
        "conditions",
        "annotations",
        "finalizers",
        "containers",
        "pod-ready.stage.kwok.x-k8s.io/delay",
        "pod-delete.stage.kwok.x-k8s.io/jitter-delay",
        "node-heartbeat.stage.kwok.x-k8s.io/weight",
        "deletionTimestamp",
        "hostNetwork",
    ]
    .choose(rng)
    .unwrap();
    let pick = rng.random::<u32>() as usize;
    match obj.pointer_mut(&path) {
        Some(Value::Object(map)) if remove && !map.is_empty() => {
            let key = map.keys().nth(pick % map.len()).unwrap().clone();
            map.remove(&key);
        }
        Some(Value::Object(map)) => {
            map.insert(key.to_owned(), value);
        }
        Some(Value::Array(items)) if remove && !items.is_empty() => {
            items.remove(pick % items.len());
        }
        Some(Value::Array(items)) => items.push(value),
        Some(other) => *other = value,
        None => {}
    }
}

/// Mutated objects through every default stage: select, delay, render, apply.
fn fuzz_objects(seed: u64, iterations: usize) {
    let lcs: Vec<_> = ["node-fast", "node-fast-with-lease", "pod-fast", "pod-general"]
        .iter()
        .map(|set| common::lifecycles(&[set, "node-chaos", "pod-chaos"]))
        .collect();
    let objects = objects();
    let mut host = FixedHost::new(now());
    let mut rng = StdRng::seed_from_u64(seed);
    for iteration in 0..iterations {
        let (kind, mut obj) = objects.choose(&mut rng).unwrap().clone();
        for _ in 0..rng.random_range(1..=6) {
            mutate_object(&mut obj, &mut rng);
        }
        let lcs = lcs.choose(&mut rng).unwrap();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            let Some(lc) = lcs.for_kind(None, kind) else {
                return;
            };
            for stage in lc.stages() {
                let _ = stage.delay(&obj, now(), &mut rng);
                let _ = stage.render(&obj, &mut host);
            }
            let _ = simulate::run(lc, kind, obj.clone(), now(), 3, &mut host, &mut rng);
        }));
        if let Err(cause) = outcome {
            panic!(
                "seed {seed}, iteration {iteration}: {}\n--- object\n{obj:#}",
                describe(&*cause)
            );
        }
    }
}

fn describe(cause: &(dyn std::any::Any + Send)) -> &str {
    cause
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| cause.downcast_ref::<&str>().copied())
        .unwrap_or("?")
}

// ===== tests =====

#[test]
fn mutated_default_stages_should_never_panic() {
    fuzz(0x6b77_6f6b, QUICK_TEXT_ITERATIONS);
}

#[test]
fn mutated_objects_should_never_panic_any_default_stage() {
    fuzz_objects(0x6f62_6a73, QUICK_OBJECT_ITERATIONS);
}

#[test]
fn unmutated_default_stages_should_run_clean() {
    let objects = objects();
    for text in corpus() {
        exercise(&text, &objects, &mut StdRng::seed_from_u64(1));
        let mut docs = Documents::default();
        docs.parse("corpus.yaml", &text).unwrap();
        Lifecycles::compile(&docs).unwrap();
    }
}

#[test]
#[ignore = "long fuzz run; KWOK_FUZZ_ITERATIONS and KWOK_FUZZ_SEED tune it"]
fn mutated_default_stages_should_never_panic_in_a_long_run() {
    let env = |name, default| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (seed, iterations) = (
        env("KWOK_FUZZ_SEED", 1),
        env("KWOK_FUZZ_ITERATIONS", 20_000) as usize,
    );
    fuzz_objects(seed, iterations * 10);
    fuzz(seed, iterations);
}
