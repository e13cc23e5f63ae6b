//! Fixtures shared by the integration tests: the fixed clock, stage sets compiled from
//! the catalog, effects as JSON, and snapshot files under `tests/data/`.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::{path::PathBuf, time::Duration};

use jiff::Timestamp;
use kwok_engine::{
    catalog,
    effect::Effect,
    lifecycle::{Lifecycle, Lifecycles},
    patch::PatchType,
    stage::{Stage, load::Documents},
};
use rand::{SeedableRng, rngs::StdRng};
use serde_json::{Value, json};

/// The time every golden test runs at.
pub const NOW: &str = "2026-01-02T03:04:05Z";

/// [`NOW`] as a timestamp.
pub fn now() -> Timestamp {
    NOW.parse().expect("NOW is RFC 3339")
}

/// `now()` plus `secs` seconds.
pub fn later(secs: i64) -> Timestamp {
    now() + jiff::SignedDuration::from_secs(secs)
}

/// The seeded random numbers of every test.
pub fn rng() -> StdRng {
    StdRng::seed_from_u64(0x6b77_6f6b)
}

/// Every stage of the catalog sets `names`, loaded and compiled in that order.
pub fn lifecycles(names: &[&str]) -> Lifecycles {
    let mut docs = Documents::default();
    for name in names {
        let text = catalog::set(name).unwrap_or_else(|| panic!("no set {name}"));
        docs.parse(&format!("{name}.yaml"), text)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    Lifecycles::compile(&docs).unwrap_or_else(|e| panic!("{e}"))
}

/// The lifecycle of `kind` from the catalog sets `names`.
pub fn lifecycle(names: &[&str], kind: &str) -> Lifecycle {
    lifecycles(names)
        .for_kind(None, kind)
        .unwrap_or_else(|| panic!("no {kind} stages in {names:?}"))
        .clone()
}

/// Compiles YAML `text` (named `file`) into lifecycles.
pub fn compile_text(file: &str, text: &str) -> Lifecycles {
    let mut docs = Documents::default();
    docs.parse(file, text).unwrap_or_else(|e| panic!("{e}"));
    Lifecycles::compile(&docs).unwrap_or_else(|e| panic!("{e}"))
}

/// The stage of `lifecycle` named `name`.
pub fn stage<'a>(lifecycle: &'a Lifecycle, name: &str) -> &'a Stage {
    lifecycle
        .stages()
        .iter()
        .find(|s| s.name() == name)
        .unwrap_or_else(|| panic!("no stage {name}"))
}

/// The smallest and largest delay of `stage` for `obj` over `draws` seeded draws.
pub fn delay_range(stage: &Stage, obj: &Value, draws: usize) -> (Duration, Duration) {
    let mut rng = rng();
    let delays: Vec<Duration> = (0..draws).map(|_| stage.delay(obj, now(), &mut rng)).collect();
    let min = delays.iter().min().copied().unwrap_or_default();
    let max = delays.iter().max().copied().unwrap_or_default();
    (min, max)
}

/// An effect as JSON, the form snapshots are written in.
pub fn effect_json(effect: &Effect) -> Value {
    match effect {
        Effect::Event {
            type_,
            reason,
            message,
        } => json!({"event": {"type": type_, "reason": reason, "message": message}}),
        Effect::Finalizers { add, remove } => json!({"finalizers": {"add": add, "remove": remove}}),
        Effect::Patch {
            subresource,
            ty,
            body,
            impersonate,
        } => json!({"patch": {
            "subresource": subresource,
            "type": patch_type(*ty),
            "impersonate": impersonate,
            "body": body.to_value(),
        }}),
        Effect::Apply {
            subresource,
            ty,
            body,
            impersonate,
        } => json!({"apply": {
            "subresource": subresource,
            "type": ty.content_type(),
            "impersonate": impersonate,
            "body": body,
        }}),
        Effect::Delete => json!("delete"),
    }
}

/// Effects as one JSON array.
pub fn effects_json(effects: &[Effect]) -> Value {
    Value::Array(effects.iter().map(effect_json).collect())
}

fn patch_type(ty: PatchType) -> &'static str {
    match ty {
        PatchType::Json => "json",
        PatchType::Merge => "merge",
        PatchType::Strategic => "strategic",
    }
}

/// Compares `actual` with the snapshot `tests/data/<name>.json`. With
/// `KWOK_BLESS=1` the file is (re)written instead; review the diff before committing.
pub fn assert_snapshot(name: &str, actual: &Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("{name}.json"));
    let pretty = serde_json::to_string_pretty(actual).expect("JSON") + "\n";
    if std::env::var_os("KWOK_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &pretty).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with KWOK_BLESS=1 to create it)", path.display()));
    assert!(
        expected == pretty,
        "snapshot {} differs\n--- expected\n{expected}\n--- actual\n{pretty}",
        path.display()
    );
}
