//! The Stage examples and rules of KWOK's user documentation
//! (`site/content/en/docs/user/stages-configuration.md` in kubernetes-sigs/kwok),
//! written as fixtures under `tests/data/docs/` and checked to behave as documented.

mod common;

use std::{path::Path, time::Duration};

use common::{compile_text, delay_range, lifecycle, now, rng, stage};
use kwok_engine::{
    effect::Effect,
    host::FixedHost,
    lifecycle::{Lifecycle, Lifecycles},
    stage::load::Documents,
};
use serde_json::{Value, json};

fn fixture(name: &str) -> Lifecycles {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/docs")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    compile_text(name, &text)
}

fn kind(lcs: &Lifecycles, kind: &str) -> Lifecycle {
    lcs.for_kind(None, kind).unwrap().clone()
}

fn pod(phase: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "example", "namespace": "default", "uid": "u-1",
                     "labels": {"app": "example"},
                     "annotations": {"example.com/simulate": "true"},
                     "finalizers": ["example.com/removed"]},
        "spec": {"nodeName": "kwok-node-0", "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": phase}
    })
}

fn render(lc: &Lifecycle, name: &str, obj: &Value) -> Vec<Effect> {
    stage(lc, name)
        .render(obj, &mut FixedHost::new(now()))
        .expect("renders")
}

// ===== "A Stage resource has the following fields" =====

#[test]
fn the_documented_field_reference_should_load_and_select_by_labels_annotations_and_expressions() {
    let lc = kind(&fixture("stage-fields.yaml"), "Pod");
    let s = stage(&lc, "pod-example");
    assert!(s.immediate_next_stage());
    assert!(s.matches(&pod("Pending")));
    assert!(!s.matches(&pod("Running")), "matchExpressions");
    let mut unlabelled = pod("Pending");
    unlabelled["metadata"]["labels"] = json!({});
    assert!(!s.matches(&unlabelled), "matchLabels");
    let mut unannotated = pod("Pending");
    unannotated["metadata"]["annotations"] = json!({"example.com/simulate": "false"});
    assert!(!s.matches(&unannotated), "matchAnnotations");
    let effects = render(&lc, "pod-example", &pod("Pending"));
    assert_eq!(
        effects[..2],
        [
            Effect::Event {
                type_: "Normal".into(),
                reason: "Example".into(),
                message: "example stage applied".into()
            },
            Effect::Finalizers {
                add: vec!["example.com/added".into()],
                remove: vec!["example.com/removed".into()]
            }
        ]
    );
    assert!(
        matches!(&effects[2], Effect::Patch { subresource: Some(sub), body, .. }
            if sub == "status" && body == &json!({"status": {"phase": "Running"}})),
        "{effects:?}"
    );
    assert_eq!(effects.len(), 3);
}

// ===== next =====

/// Older KWOK docs said `delete: true` wins over `statusTemplate`; v0.8 converts `next`
/// into a status patch followed by the delete (its `Convert_v1alpha1_StageSpec…`).
#[test]
fn delete_should_follow_the_status_template_as_v0_8_converts_next() {
    let lc = kind(&fixture("delete-priority.yaml"), "Pod");
    let mut obj = pod("Running");
    obj["metadata"]["deletionTimestamp"] = json!("2026-01-02T03:04:35Z");
    obj["metadata"]["finalizers"] = json!([]);
    let effects = render(&lc, "pod-delete-wins", &obj);
    assert!(
        matches!(effects.as_slice(), [Effect::Patch { body, .. }, Effect::Delete]
            if body == &json!({"status": {"phase": "Succeeded"}})),
        "{effects:?}"
    );
}

#[test]
fn an_event_or_finalizers_alone_should_neither_patch_status_nor_delete() {
    let lc = kind(&fixture("event-and-finalizers-only.yaml"), "Pod");
    assert_eq!(
        render(&lc, "pod-annotate-only", &pod("Running")),
        [
            Effect::Event {
                type_: "Warning".into(),
                reason: "Simulated".into(),
                message: "nothing else changes".into()
            },
            Effect::Finalizers {
                add: vec!["example.com/hold".into()],
                remove: vec![]
            }
        ]
    );
}

#[test]
fn stages_sharing_a_selector_should_be_chosen_in_proportion_to_their_weight() {
    let lc = kind(&fixture("weights.yaml"), "Pod");
    let obj = pod("Running");
    let mut rng = rng();
    let draws = 4000;
    let succeed = (0..draws)
        .filter(|_| lc.select(&obj, &mut rng).unwrap().name() == "pod-succeed")
        .count();
    // weight 3 against 1: three in four.
    assert!((2800..3200).contains(&succeed), "{succeed} of {draws}");
}

// ===== "How Delay is Calculated" =====

#[test]
fn the_delay_should_be_the_duration_plus_a_random_part_up_to_the_jitter() {
    let lc = kind(&fixture("delay.yaml"), "ConfigMap");
    let (min, max) = delay_range(stage(&lc, "jittered"), &json!({}), 2000);
    assert!(
        min >= Duration::from_secs(1) && min < Duration::from_millis(1100),
        "{min:?}"
    );
    assert!(
        max < Duration::from_secs(5) && max > Duration::from_millis(4900),
        "{max:?}"
    );
}

#[test]
fn a_jitter_not_above_the_duration_should_be_used_directly_as_the_delay() {
    // "It shall be larger than `durationMilliseconds` if you want to inject jitter to the
    // delay. Otherwise, it will be used directly as the delay time without any randomization."
    let lc = kind(&fixture("delay.yaml"), "Secret");
    let range = delay_range(stage(&lc, "jitter-below-duration"), &json!({}), 100);
    assert_eq!(range, (Duration::from_secs(2), Duration::from_secs(2)));
}

#[test]
fn a_delete_stage_with_jitter_from_the_deletion_timestamp_should_delete_before_it() {
    let lc = kind(&fixture("delay.yaml"), "Pod");
    let mut obj = pod("Running");
    obj["metadata"]["deletionTimestamp"] = json!("2026-01-02T03:04:35Z"); // now + 30 s
    let s = stage(&lc, "pod-delete-before-grace-period-ends");
    // jitterDurationFrom wins over jitterDurationMilliseconds (60 s).
    let (min, max) = delay_range(s, &obj, 2000);
    assert!(
        min >= Duration::from_secs(1) && max < Duration::from_secs(30),
        "{min:?}..{max:?}"
    );
    assert!(max > Duration::from_secs(29), "{max:?}");
    assert_eq!(
        s.render(&obj, &mut FixedHost::new(now())).expect("renders"),
        [Effect::Delete]
    );
}

#[test]
fn a_delete_stage_with_duration_from_the_deletion_timestamp_should_delete_exactly_then() {
    let lc = kind(&fixture("delay.yaml"), "Node");
    let s = stage(&lc, "node-delete-at-deletion-timestamp");
    let obj = json!({"metadata": {"name": "n", "deletionTimestamp": "2026-01-02T03:05:05Z"}});
    // durationFrom wins over durationMilliseconds (99 s): the deletion is 60 s away.
    assert_eq!(
        delay_range(s, &obj, 10),
        (Duration::from_secs(60), Duration::from_secs(60))
    );
    // Without the field, durationMilliseconds is used.
    let pending = json!({"metadata": {"name": "n"}});
    assert_eq!(
        delay_range(s, &pending, 10),
        (Duration::from_secs(99), Duration::from_secs(99))
    );
}

// ===== "Examples": the default Node and Pod stages =====

#[test]
fn node_initialize_should_apply_to_a_node_without_conditions_and_set_its_status() {
    let lc = lifecycle(&["node-fast"], "Node");
    let node = json!({"metadata": {"name": "kwok-node-0"}});
    assert_eq!(lc.select(&node, &mut rng()).unwrap().name(), "node-initialize");
    let effects = render(&lc, "node-initialize", &node);
    let Effect::Patch { body, .. } = &effects[0] else {
        panic!("{effects:?}")
    };
    let body = body.to_value();
    for field in ["conditions", "addresses", "allocatable", "capacity"] {
        assert!(body["status"].get(field).is_some(), "{field}");
    }
}

#[test]
fn node_heartbeat_should_apply_to_a_ready_node_and_maintain_its_conditions() {
    let lc = lifecycle(&["node-fast"], "Node");
    let node = json!({"metadata": {"name": "kwok-node-0"},
                      "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
    assert_eq!(lc.select(&node, &mut rng()).unwrap().name(), "node-heartbeat");
    let effects = render(&lc, "node-heartbeat", &node);
    let Effect::Patch { body, .. } = &effects[0] else {
        panic!("{effects:?}")
    };
    let body = body.to_value();
    assert!(body["status"]["conditions"].is_array());
}

#[test]
fn pod_ready_should_apply_to_a_pod_without_pod_ip_and_set_the_documented_fields() {
    let lc = lifecycle(&["pod-fast"], "Pod");
    let mut obj = pod("Pending");
    obj["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox"}]);
    assert_eq!(lc.select(&obj, &mut rng()).unwrap().name(), "pod-ready");
    let effects = render(&lc, "pod-ready", &obj);
    let Effect::Patch { body, .. } = &effects[0] else {
        panic!("{effects:?}")
    };
    let body = body.to_value();
    for field in [
        "conditions",
        "containerStatuses",
        "initContainerStatuses",
        "hostIP",
        "podIP",
        "startTime",
    ] {
        assert!(body["status"].get(field).is_some(), "{field}");
    }
    assert_eq!(body["status"]["phase"], "Running");
    let mut with_ip = obj.clone();
    with_ip["status"]["podIP"] = json!("10.0.0.9");
    assert!(!stage(&lc, "pod-ready").matches(&with_ip));
}

#[test]
fn pod_complete_should_apply_to_a_running_job_pod_and_set_succeeded() {
    let lc = lifecycle(&["pod-fast"], "Pod");
    let mut obj = pod("Running");
    obj["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "j-1"}]);
    assert_eq!(lc.select(&obj, &mut rng()).unwrap().name(), "pod-complete");
    let effects = render(&lc, "pod-complete", &obj);
    let Effect::Patch { body, .. } = &effects[0] else {
        panic!("{effects:?}")
    };
    let body = body.to_value();
    assert_eq!(body["status"]["phase"], "Succeeded");
    assert!(body["status"]["containerStatuses"][0]["state"]["terminated"].is_object());
}

#[test]
fn pod_delete_should_empty_the_finalizers_then_delete_the_pod() {
    let lc = lifecycle(&["pod-fast"], "Pod");
    let mut obj = pod("Running");
    obj["metadata"]["deletionTimestamp"] = json!("2026-01-02T03:04:35Z");
    assert_eq!(lc.select(&obj, &mut rng()).unwrap().name(), "pod-delete");
    assert_eq!(
        render(&lc, "pod-delete", &obj),
        [
            Effect::Finalizers {
                add: vec![],
                remove: vec!["example.com/removed".into()]
            },
            Effect::Delete
        ]
    );
}

#[test]
fn every_docs_fixture_should_load_as_stages_only() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/docs");
    let mut docs = Documents::default();
    docs.read(&dir).unwrap();
    assert!(docs.others.is_empty());
    assert_eq!(docs.stages.len(), 9);
    Lifecycles::compile(&docs).unwrap();
}
