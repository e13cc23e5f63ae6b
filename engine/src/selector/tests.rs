//! Tests of whole selectors: the three expression forms, labels, annotations, error fields.

use serde_json::{Value, json};

use super::*;

fn selector(spec: Value) -> Selector {
    Selector::compile(&serde_json::from_value(spec).unwrap()).unwrap()
}

fn compile_err(spec: Value) -> FieldError {
    Selector::compile(&serde_json::from_value(spec).unwrap()).unwrap_err()
}

/// The running pod of the query tests, still Pending as the scheduler leaves it.
fn pod() -> Value {
    let mut pod = super::query::tests::pod();
    pod["metadata"]["ownerReferences"][0]["apiVersion"] = json!("apps/v1");
    pod["spec"]["restartPolicy"] = json!("Always");
    pod["status"] = json!({
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}]
    });
    pod
}

#[test]
fn an_empty_selector_should_match_everything() {
    let s = selector(json!({}));
    for obj in [pod(), json!({}), json!(null), json!("text")] {
        assert!(s.matches(&obj), "{obj}");
    }
}

#[test]
fn match_labels_should_require_every_label_with_its_value() {
    assert!(selector(json!({"matchLabels": {"app": "web", "tier": "front"}})).matches(&pod()));
    assert!(!selector(json!({"matchLabels": {"app": "web", "tier": "back"}})).matches(&pod()));
    assert!(!selector(json!({"matchLabels": {"missing": ""}})).matches(&pod()));
    assert!(!selector(json!({"matchLabels": {"app": "web"}})).matches(&json!({"metadata": {}})));
}

#[test]
fn match_annotations_should_require_every_annotation_with_its_value() {
    let key = "pod-ready.stage.kwok.x-k8s.io/weight";
    assert!(selector(json!({"matchAnnotations": {key: "3"}})).matches(&pod()));
    assert!(!selector(json!({"matchAnnotations": {key: "4"}})).matches(&pod()));
    // Labels are not annotations.
    assert!(!selector(json!({"matchAnnotations": {"app": "web"}})).matches(&pod()));
}

#[test]
fn match_expressions_should_all_hold() {
    let spec = |phase: &str| {
        json!({"matchExpressions": [
            {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
            {"key": ".spec.nodeName", "operator": "Exists"},
            {"key": ".status.phase", "operator": "In", "values": [phase]},
        ]})
    };
    assert!(selector(spec("Pending")).matches(&pod()));
    assert!(!selector(spec("Running")).matches(&pod()));
}

#[test]
fn legacy_jq_and_cel_forms_should_select_alike() {
    let legacy =
        json!({"matchExpressions": [{"key": ".status.phase", "operator": "In", "values": ["Pending"]}]});
    let jq = json!({"matchExpressions": [{"jq": {"key": ".status.phase", "operator": "In", "values": ["Pending"]}}]});
    let cel = json!({"matchExpressions": [{"cel": {"expression": "self.status.phase == 'Pending'"}}]});
    let running = json!({"status": {"phase": "Running"}});
    for spec in [legacy, jq, cel] {
        let s = selector(spec.clone());
        assert!(s.matches(&pod()), "{spec}");
        assert!(!s.matches(&running), "{spec}");
    }
}

#[test]
fn expressions_should_read_owner_kinds_conditions_and_annotations() {
    let s = selector(json!({"matchExpressions": [
        {"key": ".metadata.ownerReferences.[].kind", "operator": "In", "values": ["Job", "StatefulSet"]},
        {"key": ".status.conditions.[] | select( .type == \"Ready\" ) | .status", "operator": "NotIn", "values": ["True"]},
        {"key": ".metadata.annotations[\"pod-ready.stage.kwok.x-k8s.io/weight\"]", "operator": "Exists"},
    ]}));
    assert!(s.matches(&pod()));
}

#[test]
fn compile_should_name_the_jq_key_of_a_syntax_error() {
    let e = compile_err(json!({"matchExpressions": [
        {"key": ".a", "operator": "Exists"},
        {"jq": {"key": ".a |", "operator": "Exists"}},
    ]}));
    assert_eq!(
        e,
        FieldError::new("matchExpressions[1].jq.key", "expected term, found end of input")
    );
}

#[test]
fn compile_should_name_the_legacy_operator_when_unknown() {
    let e = compile_err(json!({"matchExpressions": [{"key": ".a", "operator": "Gt", "values": ["1"]}]}));
    assert_eq!(e.field, "matchExpressions[0].operator");
    assert_eq!(
        e.reason,
        r#"operator "Gt" is not supported (use In, NotIn, Exists or DoesNotExist)"#
    );
}

#[test]
fn compile_should_name_the_jq_values_when_missing_for_in() {
    let e = compile_err(json!({"matchExpressions": [{"jq": {"key": ".a", "operator": "In"}}]}));
    assert_eq!(
        e,
        FieldError::new(
            "matchExpressions[0].jq.values",
            "must not be empty for operator In"
        )
    );
}

#[test]
fn compile_should_name_the_cel_expression_of_a_syntax_error() {
    let e = compile_err(json!({"matchExpressions": [
        {"key": ".a", "operator": "Exists"},
        {"jq": {"key": ".a", "operator": "Exists"}},
        {"cel": {"expression": "self.a =="}},
    ]}));
    assert_eq!(e.field, "matchExpressions[2].cel.expression");
    assert!(!e.reason.is_empty());
}

#[test]
fn compile_should_require_the_legacy_key_and_operator() {
    let e = compile_err(json!({"matchExpressions": [{"operator": "Exists"}]}));
    assert_eq!(e, FieldError::new("matchExpressions[0].key", "is required"));
    let e = compile_err(json!({"matchExpressions": [{"key": ".a"}]}));
    assert_eq!(e, FieldError::new("matchExpressions[0].operator", "is required"));
}

#[test]
fn compile_should_require_exactly_one_form() {
    let e = compile_err(json!({"matchExpressions": [{}]}));
    assert_eq!(
        e,
        FieldError::new("matchExpressions[0]", "one of key, jq or cel is required")
    );
    let both = json!({"key": ".a", "operator": "Exists", "cel": {"expression": "true"}});
    let e = compile_err(json!({"matchExpressions": [both]}));
    assert_eq!(
        e,
        FieldError::new("matchExpressions[0]", "only one of key, jq or cel may be set")
    );
}

#[test]
fn selector_should_be_shareable_between_threads() {
    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    assert_send_sync_clone::<Selector>();
}

// ===== cost =====

/// Selectors shaped like KWOK's pod stages (create, init, ready, complete, finalizers, delete).
fn pod_stage_selectors(with_pipe: bool) -> Vec<Selector> {
    let not_deleted = json!({"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"});
    let deleted = json!({"key": ".metadata.deletionTimestamp", "operator": "Exists"});
    let not_ready = if with_pipe {
        json!({"key": ".status.conditions.[] | select( .type == \"Ready\" ) | .status", "operator": "NotIn", "values": ["True"]})
    } else {
        json!({"key": ".status.podIP", "operator": "Exists"})
    };
    let specs = [
        json!({"matchExpressions": [not_deleted, {"key": ".status.podIP", "operator": "DoesNotExist"}]}),
        json!({"matchExpressions": [not_deleted, {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
            {"key": ".spec.initContainers", "operator": "Exists"}]}),
        json!({"matchExpressions": [not_deleted, {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
            {"key": ".spec.nodeName", "operator": "Exists"}, not_ready]}),
        json!({"matchExpressions": [not_deleted, {"key": ".status.phase", "operator": "In", "values": ["Running"]},
            {"key": ".metadata.ownerReferences.[].kind", "operator": "In", "values": ["Job"]}]}),
        json!({"matchLabels": {"app": "web"}, "matchExpressions": [not_deleted,
            {"key": ".status.phase", "operator": "In", "values": ["Running"]}]}),
        json!({"matchExpressions": [deleted, {"key": ".metadata.finalizers.[]", "operator": "In", "values": ["kwok.x-k8s.io/fake"]}]}),
        json!({"matchExpressions": [deleted, {"key": ".metadata.finalizers", "operator": "DoesNotExist"}]}),
        json!({"matchAnnotations": {"kwok.x-k8s.io/chaos": "true"}, "matchExpressions": [not_deleted]}),
    ];
    specs.into_iter().map(selector).collect()
}

/// Nanoseconds this thread has spent on a CPU (Linux), so other load on the machine does not
/// count; wall-clock time elsewhere.
fn cpu_ns() -> f64 {
    let on_cpu = std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok());
    on_cpu.unwrap_or_else(|| {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed().as_secs_f64() * 1e9
    })
}

/// Average CPU nanoseconds of `f` over `rounds` calls.
fn cost(rounds: u32, mut f: impl FnMut()) -> f64 {
    let start = cpu_ns();
    for _ in 0..rounds {
        f();
    }
    (cpu_ns() - start) / f64::from(rounds)
}

/// Rough cost of selecting among all pod stages; run with
/// `cargo test --release -p kwok-engine selection_cost -- --ignored --nocapture`.
#[test]
#[ignore = "measurement, not a check; run in release"]
fn selection_cost_should_be_reported() {
    let mut pod = pod();
    pod["status"]["podIP"] = json!("10.0.0.5");
    let pod = &pod;
    for with_pipe in [false, true] {
        let selectors = pod_stage_selectors(with_pipe);
        let mut matched = 0;
        let ns = cost(500_000, || {
            matched += selectors
                .iter()
                .filter(|s| s.matches(std::hint::black_box(pod)))
                .count();
        });
        assert!(matched > 0);
        println!(
            "{} pod stages (condition pipe: {with_pipe}): {ns:.0} ns per selection",
            selectors.len()
        );
    }
    let ns = cost(2_000_000, || {
        let v = std::hint::black_box(pod)
            .get("metadata")
            .and_then(|m| m.get("deletionTimestamp"));
        std::hint::black_box(v);
    });
    println!("baseline serde_json get of .metadata.deletionTimestamp: {ns:.1} ns");
    let ns = cost(2_000_000, || {
        std::hint::black_box(std::hint::black_box(pod).pointer("/metadata/deletionTimestamp"));
    });
    println!("baseline serde_json pointer of .metadata.deletionTimestamp: {ns:.1} ns");
    for (expr, rounds) in [
        (".metadata.deletionTimestamp", 2_000_000),
        (".status.phase", 2_000_000),
        (
            r#".status.conditions.[] | select( .type == "Ready" ) | .status"#,
            2_000_000,
        ),
        (".metadata.labels | keys", 20_000),
        ("(.metadata.deletionTimestamp)", 20_000),
    ] {
        let q = Query::compile(expr).unwrap();
        let mut n = 0usize;
        let ns = cost(rounds, || {
            q.visit(std::hint::black_box(pod), &mut |_| n += 1).unwrap()
        });
        println!("{expr}: {ns:.1} ns per evaluation");
    }
}

/// See: issue 21 (a jq error at run time silently matched nothing).
#[test]
fn run_time_failures_of_a_key_should_be_counted_and_name_the_key() {
    let s = selector(json!({"matchExpressions": [
        {"key": ".metadata.name", "operator": "Exists"},
        {"key": ".spec.nodeName.x", "operator": "DoesNotExist"},
    ]}));
    assert_eq!(s.failures().take(), Failed::default());
    let bound = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n"}});
    assert!(s.matches(&bound), "a failed key sees no output, as in KWOK");
    assert!(s.matches(&bound));
    let first = Failed {
        count: 2,
        key: Some(".spec.nodeName.x"),
        first: true,
    };
    assert_eq!(s.failures().take(), first);
    assert_eq!(s.failures().take().count, 0, "taken once");
    s.matches(&bound);
    assert!(!s.failures().take().first, "reported loudly once");
}
