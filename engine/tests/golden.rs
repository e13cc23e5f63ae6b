//! Golden tests: every default stage against a realistic object at a fixed time, with
//! the stage chosen, its delay range and its effects pinned. Rendered effects are
//! snapshots under `tests/data/golden/` (rewrite with `KWOK_BLESS=1`, then review).

mod common;

use std::time::Duration;

use common::{NOW, assert_snapshot, delay_range, effects_json, later, lifecycle, now, rng, stage};
use kwok_engine::{
    effect::Effect,
    host::FixedHost,
    lifecycle::Lifecycle,
    simulate::{self, End},
};
use serde_json::{Value, json};

// ===== objects =====

/// A node as `kwokctl scale node` creates it: typical labels, a taint, its own resources.
fn node() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "kwok-node-0",
            "uid": "6b1a8a0e-node-0",
            "creationTimestamp": "2026-01-02T03:00:00Z",
            "labels": {
                "beta.kubernetes.io/arch": "arm64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "arm64",
                "kubernetes.io/hostname": "kwok-node-0",
                "kubernetes.io/os": "linux",
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
                "type": "kwok"
            },
            "annotations": {
                "kwok.x-k8s.io/node": "fake",
                "node.alpha.kubernetes.io/ttl": "0"
            }
        },
        "spec": {
            "taints": [{"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}]
        },
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"}
        }
    })
}

/// [`node`] after `node-initialize`, as the apiserver stores it.
fn ready_node() -> Value {
    let lc = lifecycle(&["node-fast"], "Node");
    let mut node = node();
    let effects = stage(&lc, "node-initialize")
        .render(&node, &mut FixedHost::new(now()))
        .expect("renders");
    assert!(!simulate::apply_all(&mut node, "Node", &effects, now()));
    node
}

/// A pod created with `spec.nodeName` (no scheduler, so no PodScheduled condition).
fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-0",
            "namespace": "default",
            "uid": "0f1e2d3c-web-0",
            "creationTimestamp": "2026-01-02T03:04:00Z",
            "labels": {"app": "web"}
        },
        "spec": {
            "nodeName": "kwok-node-0",
            "restartPolicy": "Always",
            "containers": [
                {"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}]},
                {"name": "sidecar", "image": "envoyproxy/envoy:v1.30"}
            ]
        },
        "status": {"phase": "Pending", "qosClass": "BestEffort"}
    })
}

/// [`pod`] bound by kube-scheduler: it carries a PodScheduled condition.
fn scheduled_pod() -> Value {
    let mut pod = pod();
    pod["status"]["conditions"] = json!([{
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": null,
        "lastTransitionTime": "2026-01-02T03:04:01Z"
    }]);
    pod
}

/// A pod of Job `pi`: owned by the Job, `restartPolicy: Never`.
fn job_pod() -> Value {
    let mut pod = scheduled_pod();
    pod["metadata"]["name"] = json!("pi-7xk2p");
    pod["metadata"]["uid"] = json!("9a8b7c6d-pi");
    pod["metadata"]["labels"] = json!({"batch.kubernetes.io/job-name": "pi", "job-name": "pi"});
    pod["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": "pi",
        "uid": "5d4c3b2a-job-pi",
        "controller": true,
        "blockOwnerDeletion": true
    }]);
    pod["spec"]["restartPolicy"] = json!("Never");
    pod["spec"]["containers"] = json!([{"name": "pi", "image": "perl:5.34.0"}]);
    pod
}

/// A pod with an init container and a native sidecar (`restartPolicy: Always`).
fn init_pod() -> Value {
    let mut pod = job_pod();
    pod["spec"]["initContainers"] = json!([
        {"name": "migrate", "image": "busybox:1.36"},
        {"name": "proxy", "image": "envoyproxy/envoy:v1.30", "restartPolicy": "Always"}
    ]);
    pod
}

/// `obj` after the stage `name` of `lc` ran at `at`.
fn after(lc: &Lifecycle, name: &str, mut obj: Value, at: jiff::Timestamp) -> Value {
    let effects = stage(lc, name)
        .render(&obj, &mut FixedHost::new(at))
        .expect("renders");
    assert!(!simulate::apply_all(&mut obj, "Pod", &effects, at));
    obj
}

/// A running pod of [`job_pod`] (after pod-fast's `pod-ready`).
fn running_job_pod() -> Value {
    after(&lifecycle(&["pod-fast"], "Pod"), "pod-ready", job_pod(), now())
}

/// A deleted pod still held by finalizers, with a 30 s grace period.
fn deleting_pod(finalizers: &[&str]) -> Value {
    let mut pod = running_job_pod();
    pod["metadata"]["deletionTimestamp"] = json!("2026-01-02T03:04:35Z");
    pod["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    // The apiserver never stores an empty list.
    if !finalizers.is_empty() {
        pod["metadata"]["finalizers"] = json!(finalizers);
    }
    pod
}

// ===== helpers =====

/// The stage `select` draws for `obj` with the seeded rng; it must be the same for
/// every seed tried (the golden stage is not a matter of luck).
fn selected<'a>(lc: &'a Lifecycle, obj: &Value) -> &'a str {
    let mut rng = rng();
    let first = lc.select(obj, &mut rng).expect("a stage matches").name();
    for _ in 0..200 {
        assert_eq!(lc.select(obj, &mut rng).map(|s| s.name()), Some(first));
    }
    first
}

fn status_patch(effects: &[Effect]) -> Value {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Patch {
                subresource, body, ..
            } if subresource.as_deref() == Some("status") => Some(body.to_value()["status"].clone()),
            _ => None,
        })
        .expect("a status patch")
}

fn condition<'a>(status: &'a Value, ty: &str) -> Option<&'a Value> {
    status["conditions"].as_array()?.iter().find(|c| c["type"] == ty)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

// ===== nodes =====

#[test]
fn node_initialize_should_make_a_new_labelled_node_ready_at_once_keeping_its_resources() {
    let lc = lifecycle(&["node-fast"], "Node");
    let node = node();
    assert_eq!(selected(&lc, &node), "node-initialize");
    let stage = stage(&lc, "node-initialize");
    assert_eq!(delay_range(stage, &node, 100), (Duration::ZERO, Duration::ZERO));
    let effects = stage.render(&node, &mut FixedHost::new(now())).expect("renders");
    let status = &status_patch(&effects);
    assert_eq!(status["phase"], "Running");
    assert_eq!(condition(status, "Ready").unwrap()["status"], "True");
    assert_eq!(condition(status, "Ready").unwrap()["lastHeartbeatTime"], NOW);
    assert_eq!(
        status["allocatable"]["cpu"], "32",
        "the node's own allocatable is kept"
    );
    assert_eq!(
        status["nodeInfo"]["architecture"], "arm64",
        "from kubernetes.io/arch"
    );
    assert_eq!(
        status["addresses"][0],
        json!({"type": "InternalIP", "address": "196.168.0.1"})
    );
    assert_snapshot("golden/node-initialize", &effects_json(&effects));
}

#[test]
fn node_heartbeat_should_refresh_only_the_conditions_every_20_to_25_seconds() {
    let lc = lifecycle(&["node-fast"], "Node");
    let node = ready_node();
    assert_eq!(selected(&lc, &node), "node-heartbeat");
    let stage = stage(&lc, "node-heartbeat");
    assert!(stage.immediate_next_stage());
    let (min, max) = delay_range(stage, &node, 2000);
    assert!(min >= secs(20) && min < secs(21), "{min:?}");
    assert!(max < secs(25) && max > secs(24), "{max:?}");
    let effects = stage
        .render(&node, &mut FixedHost::new(later(22)))
        .expect("renders");
    let status = &status_patch(&effects);
    let keys: Vec<_> = status.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["conditions"]);
    let ready = condition(status, "Ready").unwrap();
    assert_eq!(ready["lastHeartbeatTime"], "2026-01-02T03:04:27Z");
    assert_eq!(
        ready["lastTransitionTime"], "2026-01-02T03:00:00Z",
        "since creation"
    );
    assert_snapshot("golden/node-heartbeat", &effects_json(&effects));
}

#[test]
fn node_heartbeat_with_lease_should_refresh_status_every_600_to_610_seconds() {
    let lc = lifecycle(&["node-fast-with-lease"], "Node");
    let names: Vec<_> = lc.stages().iter().map(|s| s.name()).collect();
    assert_eq!(names, ["node-initialize", "node-heartbeat-with-lease"]);
    let node = ready_node();
    assert_eq!(selected(&lc, &node), "node-heartbeat-with-lease");
    let stage = stage(&lc, "node-heartbeat-with-lease");
    let (min, max) = delay_range(stage, &node, 2000);
    assert!(min >= secs(600) && min < secs(601), "{min:?}");
    assert!(max < secs(610) && max > secs(609), "{max:?}");
    let effects = stage
        .render(&node, &mut FixedHost::new(later(605)))
        .expect("renders");
    // Addresses and daemonEndpoints equal what is stored, so only conditions change,
    // but the patch still carries them (the template renders them).
    let status = &status_patch(&effects);
    assert_eq!(status["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
    assert_snapshot("golden/node-heartbeat-with-lease", &effects_json(&effects));
}

#[test]
fn node_not_ready_should_win_over_node_heartbeat_for_a_labelled_node() {
    let lc = lifecycle(&["node-fast", "node-chaos"], "Node");
    let mut node = ready_node();
    node["metadata"]["labels"]["node-not-ready.stage.kwok.x-k8s.io"] = json!("true");
    node["metadata"]["annotations"]["node-not-ready.stage.kwok.x-k8s.io/type"] = json!("MemoryPressure");
    let matching: Vec<_> = lc.matching(&node).map(|s| s.name()).collect();
    assert_eq!(matching, ["node-heartbeat", "node-not-ready"]);
    assert_eq!(selected(&lc, &node), "node-not-ready");
    let stage = stage(&lc, "node-not-ready");
    assert_eq!(delay_range(stage, &node, 100), (secs(1), secs(1)));
    let effects = stage
        .render(&node, &mut FixedHost::new(later(1)))
        .expect("renders");
    let status = &status_patch(&effects);
    let ready = condition(status, "Ready").unwrap();
    assert_eq!(
        (&ready["status"], &ready["reason"]),
        (&json!("False"), &json!("nodeFailed"))
    );
    assert_eq!(condition(status, "MemoryPressure").unwrap()["status"], "True");
    assert_eq!(condition(status, "DiskPressure").unwrap()["status"], "False");
    assert_snapshot("golden/node-not-ready", &effects_json(&effects));
}

// ===== pod-fast =====

#[test]
fn pod_ready_should_make_a_two_container_pod_running_and_ready_in_one_write() {
    let lc = lifecycle(&["pod-fast"], "Pod");
    let pod = pod();
    assert_eq!(selected(&lc, &pod), "pod-ready");
    let stage = stage(&lc, "pod-ready");
    assert_eq!(delay_range(stage, &pod, 100), (Duration::ZERO, Duration::ZERO));
    let effects = stage.render(&pod, &mut FixedHost::new(now())).expect("renders");
    assert_eq!(effects.len(), 1, "{effects:?}");
    let status = &status_patch(&effects);
    assert_eq!(status["phase"], "Running");
    assert_eq!(status["podIP"], "10.0.0.1");
    assert_eq!(status["hostIP"], "196.168.0.1");
    assert_eq!(status["startTime"], NOW);
    for ty in ["Initialized", "Ready", "ContainersReady"] {
        assert_eq!(condition(status, ty).unwrap()["status"], "True", "{ty}");
    }
    assert!(condition(status, "PodScheduled").is_none(), "never added");
    for (c, name) in status["containerStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["app", "sidecar"])
    {
        assert_eq!(c["name"], name);
        assert_eq!(c["ready"], true);
        assert_eq!(c["state"]["running"]["startedAt"], NOW);
    }
    assert!(status.get("initContainerStatuses").is_none());
    assert_snapshot("golden/pod-fast-pod-ready", &effects_json(&effects));
}

#[test]
fn pod_ready_should_carry_over_an_existing_pod_scheduled_condition_unchanged() {
    let lc = lifecycle(&["pod-fast"], "Pod");
    let pod = scheduled_pod();
    let effects = stage(&lc, "pod-ready")
        .render(&pod, &mut FixedHost::new(now()))
        .expect("renders");
    let status = status_patch(&effects);
    let scheduled = condition(&status, "PodScheduled").expect("kept");
    assert_eq!(
        scheduled,
        &json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null,
                "lastTransitionTime": "2026-01-02T03:04:01Z"})
    );
}

#[test]
fn pod_ready_should_give_a_host_network_pod_the_node_ip() {
    let lc = lifecycle(&["pod-fast"], "Pod");
    let mut pod = pod();
    pod["spec"]["hostNetwork"] = json!(true);
    let effects = stage(&lc, "pod-ready")
        .render(&pod, &mut FixedHost::new(now()))
        .expect("renders");
    let status = &status_patch(&effects);
    assert_eq!(status["podIP"], status["hostIP"]);
    assert_eq!(status["podIPs"], json!([{"ip": "196.168.0.1"}]));
}

#[test]
fn pod_ready_should_complete_init_containers_and_keep_native_sidecars_running() {
    let lc = lifecycle(&["pod-fast"], "Pod");
    let effects = stage(&lc, "pod-ready")
        .render(&init_pod(), &mut FixedHost::new(now()))
        .expect("renders");
    let init = &status_patch(&effects)["initContainerStatuses"].clone();
    assert_eq!(init[0]["name"], "migrate");
    assert_eq!(init[0]["state"]["terminated"]["reason"], "Completed");
    assert_eq!(init[0]["started"], false);
    assert_eq!(init[1]["name"], "proxy");
    assert_eq!(init[1]["state"]["running"]["startedAt"], NOW);
    assert_eq!(init[1]["started"], true);
    assert_snapshot("golden/pod-fast-pod-ready-init", &effects_json(&effects));
}

#[test]
fn pod_complete_should_let_a_running_job_pod_succeed() {
    let lc = lifecycle(&["pod-fast"], "Pod");
    let pod = running_job_pod();
    assert_eq!(selected(&lc, &pod), "pod-complete");
    let stage = stage(&lc, "pod-complete");
    assert_eq!(delay_range(stage, &pod, 100), (Duration::ZERO, Duration::ZERO));
    let effects = stage
        .render(&pod, &mut FixedHost::new(later(10)))
        .expect("renders");
    let status = &status_patch(&effects);
    assert_eq!(status["phase"], "Succeeded");
    let terminated = &status["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (&terminated["exitCode"], &terminated["reason"]),
        (&json!(0), &json!("Completed"))
    );
    assert_snapshot("golden/pod-fast-pod-complete", &effects_json(&effects));
}

#[test]
fn pod_complete_should_leave_a_running_pod_without_a_job_owner_alone() {
    let lc = lifecycle(&["pod-fast"], "Pod");
    let running = after(&lc, "pod-ready", pod(), now());
    assert_eq!(running["status"]["phase"], "Running");
    assert!(lc.select(&running, &mut rng()).is_none());
}

#[test]
fn pod_delete_should_drop_every_finalizer_then_delete_at_once() {
    let lc = lifecycle(&["pod-fast"], "Pod");
    let pod = deleting_pod(&["example.com/protect", "kwok.x-k8s.io/fake"]);
    assert_eq!(selected(&lc, &pod), "pod-delete");
    let stage = stage(&lc, "pod-delete");
    assert_eq!(delay_range(stage, &pod, 100), (Duration::ZERO, Duration::ZERO));
    let effects = stage.render(&pod, &mut FixedHost::new(now())).expect("renders");
    assert_eq!(
        effects,
        [
            Effect::Finalizers {
                add: vec![],
                remove: vec!["example.com/protect".into(), "kwok.x-k8s.io/fake".into()]
            },
            Effect::Delete
        ]
    );
}

// ===== pod-general =====

#[test]
fn pod_create_should_report_containers_initializing_without_a_finalizer() {
    let lc = lifecycle(&["pod-general"], "Pod");
    let pod = init_pod();
    assert_eq!(selected(&lc, &pod), "pod-create");
    let stage = stage(&lc, "pod-create");
    let (min, max) = delay_range(stage, &pod, 2000);
    assert!(
        min >= secs(1) && min < secs(2) && max < secs(5) && max > secs(4),
        "{min:?}..{max:?}"
    );
    let effects = stage.render(&pod, &mut FixedHost::new(now())).expect("renders");
    // No fake finalizer, as upstream v0.8 (it held DaemonSet pods back from deletion).
    assert_eq!(
        effects[..1],
        [Effect::Event {
            type_: "Normal".into(),
            reason: "Created".into(),
            message: "Created container".into()
        }]
    );
    assert!(!effects.iter().any(|e| matches!(e, Effect::Finalizers { .. })));
    let status = &status_patch(&effects);
    assert_eq!(status["phase"], "Pending");
    let initialized = condition(status, "Initialized").unwrap();
    assert_eq!(initialized["status"], "False");
    assert_eq!(
        initialized["message"],
        "containers with incomplete status: [migrate proxy]"
    );
    assert_eq!(
        status["containerStatuses"][0]["state"]["waiting"]["reason"],
        "PodInitializing"
    );
    assert_eq!(
        condition(status, "PodScheduled").unwrap()["lastTransitionTime"],
        "2026-01-02T03:04:01Z"
    );
    assert_snapshot("golden/pod-general-pod-create", &effects_json(&effects));
}

#[test]
fn pod_general_should_walk_an_init_container_job_pod_through_every_phase_in_order() {
    let lc = lifecycle(&["pod-general"], "Pod");
    let mut host = FixedHost::new(now());
    let (steps, end) = simulate::run(&lc, "Pod", init_pod(), now(), 20, &mut host, &mut rng());
    let names: Vec<_> = steps.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(
        names,
        [
            "pod-create",
            "pod-init-container-running",
            "pod-init-container-completed",
            "pod-ready",
            "pod-complete"
        ]
    );
    assert_eq!(end, End::NoMatch);
    for step in &steps {
        assert!(
            step.delay >= secs(1) && step.delay < secs(5),
            "{}: {:?}",
            step.stage,
            step.delay
        );
    }
    let last = steps.last().unwrap().object.as_ref().unwrap();
    assert_eq!(last["status"]["phase"], "Succeeded");
    assert!(last["metadata"].get("finalizers").is_none(), "{last}");
    // The effects of each stage, rendered at the host's fixed clock.
    let golden: Vec<Value> = steps
        .iter()
        .map(|s| json!({"stage": s.stage, "effects": effects_json(&s.effects)}))
        .collect();
    assert_snapshot("golden/pod-general-init-job-pod", &Value::Array(golden));
}

#[test]
fn pod_general_should_take_a_plain_pod_from_pending_to_running_and_stop() {
    let lc = lifecycle(&["pod-general"], "Pod");
    let mut host = FixedHost::new(now());
    let (steps, end) = simulate::run(&lc, "Pod", pod(), now(), 20, &mut host, &mut rng());
    let names: Vec<_> = steps.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(names, ["pod-create", "pod-ready"]);
    assert_eq!(end, End::NoMatch);
    let pod = steps[1].object.as_ref().unwrap();
    assert_eq!(pod["status"]["phase"], "Running");
    let ready: Vec<_> = [
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodReadyToStartContainers",
    ]
    .iter()
    .map(|t| condition(&pod["status"], t).map(|c| c["status"].clone()))
    .collect();
    assert_eq!(ready, vec![Some(json!("True")); 4]);
    assert!(condition(&pod["status"], "PodScheduled").is_none());
}

#[test]
fn pod_delete_should_delete_a_pod_within_its_grace_period() {
    let lc = lifecycle(&["pod-general"], "Pod");
    let gone = deleting_pod(&[]);
    assert_eq!(selected(&lc, &gone), "pod-delete");
    let delete = stage(&lc, "pod-delete");
    // From 1 s up to the deletionTimestamp (30 s after now).
    let (min, max) = delay_range(delete, &gone, 2000);
    assert!(
        min >= secs(1) && min < secs(2) && max < secs(30) && max > secs(29),
        "{min:?}..{max:?}"
    );
    assert_eq!(
        delete.render(&gone, &mut FixedHost::new(now())).expect("renders"),
        [Effect::Delete]
    );
}

#[test]
fn pod_general_should_not_delete_a_pod_another_controller_still_holds() {
    let lc = lifecycle(&["pod-general"], "Pod");
    let pod = deleting_pod(&["example.com/protect"]);
    assert!(lc.select(&pod, &mut rng()).is_none());
}

// ===== pod-chaos =====

#[test]
fn pod_init_container_running_failed_should_fail_the_named_init_container_of_a_labelled_pending_pod() {
    let lc = lifecycle(&["pod-general", "pod-chaos"], "Pod");
    let mut pod = init_pod();
    pod["metadata"]["labels"]["pod-init-container-running-failed.stage.kwok.x-k8s.io"] = json!("true");
    pod["metadata"]["annotations"] = json!({
        "pod-init-container-running-failed.stage.kwok.x-k8s.io/container-name": "migrate",
        "pod-init-container-running-failed.stage.kwok.x-k8s.io/exit-code": "7"
    });
    // A new pod is Pending: the chaos stage's weight (10000) beats pod-create's (1).
    assert_eq!(pod["status"]["phase"], "Pending");
    let pending = pod;
    assert_eq!(selected(&lc, &pending), "pod-init-container-running-failed");
    let mut running = pending.clone();
    running["status"]["phase"] = json!("Running");
    assert_ne!(selected(&lc, &running), "pod-init-container-running-failed");
    let effects = stage(&lc, "pod-init-container-running-failed")
        .render(&pending, &mut FixedHost::new(now()))
        .expect("renders");
    let status = &status_patch(&effects);
    assert_eq!(status["phase"], "Failed");
    let inits = status["initContainerStatuses"].as_array().unwrap();
    let migrate = &inits[0]["state"]["terminated"];
    assert_eq!(
        (migrate["exitCode"].clone(), migrate["reason"].clone()),
        (json!(7), json!("initContainerError"))
    );
    assert_eq!(
        inits[1]["state"]["terminated"]["reason"], "Completed",
        "the others completed"
    );
    assert_eq!(
        status["containerStatuses"][0]["state"]["waiting"]["reason"],
        "PodInitializing"
    );
}

// ===== volume-fast =====

#[test]
fn pvc_provision_should_create_a_volume_for_the_claim_and_bind_the_claim_to_it() {
    let lc = lifecycle(&["volume-fast"], "PersistentVolumeClaim");
    let claim = json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "db", "uid": "u-1", "resourceVersion": "7"},
        "spec": {"storageClassName": "kwok-volume", "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "5Gi"}}},
        "status": {"phase": "Pending"}
    });
    assert_eq!(selected(&lc, &claim), "pvc-provision");
    let effects = stage(&lc, "pvc-provision")
        .render(&claim, &mut FixedHost::new(now()))
        .expect("renders");
    let Effect::Apply {
        subresource: None,
        body,
        ..
    } = &effects[0]
    else {
        panic!("{effects:?}");
    };
    assert_eq!(body["kind"], "PersistentVolume");
    assert_eq!(body["metadata"]["name"], "pvc-u-1");
    assert_eq!(body["spec"]["capacity"], json!({"storage": "5Gi"}));
    assert_eq!(body["spec"]["claimRef"]["namespace"], "db");
    let mut bound = claim.clone();
    assert!(!simulate::apply_all(
        &mut bound,
        "PersistentVolumeClaim",
        &effects,
        now()
    ));
    assert_eq!(bound["spec"]["volumeName"], "pvc-u-1");
    assert_eq!(bound["status"]["phase"], "Bound");
    assert!(
        lc.select(&bound, &mut rng()).is_none(),
        "a bound claim is left alone"
    );
}

// ===== dra =====

/// The ResourceSlice an effect list applies.
fn applied(effects: &[Effect]) -> &Value {
    match effects.first() {
        Some(Effect::Apply {
            subresource: None,
            body,
            ..
        }) => body,
        other => panic!("not an apply first: {other:?}"),
    }
}

#[test]
fn node_gpu_resource_slice_should_publish_the_labelled_count_once_and_again_with_a_new_generation() {
    let lc = lifecycle(&["node-fast-with-lease", "dra"], "Node");
    assert_eq!(
        selected(&lc, &node()),
        "node-initialize",
        "not before the node is Ready"
    );
    let mut gpu = node();
    gpu["metadata"]["labels"]["kwok.x-k8s.io/gpus"] = json!("2");
    assert_eq!(selected(&lc, &gpu), "node-initialize");
    let ready = after(&lc, "node-initialize", gpu, now());
    assert_eq!(
        selected(&lc, &ready),
        "node-gpu-resource-slice",
        "ahead of the heartbeat"
    );
    let stage = stage(&lc, "node-gpu-resource-slice");
    assert_eq!(delay_range(stage, &ready, 100), (secs(0), secs(0)));
    let effects = stage.render(&ready, &mut FixedHost::new(now())).expect("renders");
    let slice = applied(&effects);
    assert_eq!(slice["apiVersion"], "resource.k8s.io/v1");
    assert_eq!(slice["kind"], "ResourceSlice");
    assert_eq!(slice["metadata"]["name"], "kwok-node-0-gpu.kwok.x-k8s.io");
    assert_eq!(
        slice["metadata"]["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "Node", "name": "kwok-node-0",
                "uid": "6b1a8a0e-node-0", "controller": true}])
    );
    assert_eq!(slice["spec"]["driver"], "gpu.kwok.x-k8s.io");
    assert_eq!(slice["spec"]["nodeName"], "kwok-node-0");
    assert_eq!(
        slice["spec"]["pool"],
        json!({"name": "kwok-node-0", "generation": 1, "resourceSliceCount": 1})
    );
    assert_eq!(
        slice["spec"]["devices"][1],
        json!({"name": "gpu-1",
               "attributes": {"productName": {"string": "KWOK Fake GPU"}, "index": {"int": 1},
                              "uuid": {"string": "GPU-kwok-node-0-1"}},
               "capacity": {"memory": {"value": "80Gi"}}})
    );
    assert_eq!(slice["spec"]["devices"].as_array().map(Vec::len), Some(2));

    let mut published = ready.clone();
    assert!(!simulate::apply_all(&mut published, "Node", &effects, now()));
    let annotations = &published["metadata"]["annotations"];
    assert_eq!(annotations["kwok.x-k8s.io/gpus-published"], "2");
    assert_eq!(annotations["kwok.x-k8s.io/gpus-generation"], "1");
    assert_eq!(
        selected(&lc, &published),
        "node-heartbeat-with-lease",
        "published once"
    );

    // Asking for more publishes the pool again, one generation on.
    published["metadata"]["labels"]["kwok.x-k8s.io/gpus"] = json!("8");
    assert_eq!(selected(&lc, &published), "node-gpu-resource-slice");
    let effects = stage
        .render(&published, &mut FixedHost::new(later(5)))
        .expect("renders");
    let slice = applied(&effects);
    assert_eq!(slice["spec"]["pool"]["generation"], 2);
    assert_eq!(slice["spec"]["devices"].as_array().map(Vec::len), Some(8));
    assert!(!simulate::apply_all(&mut published, "Node", &effects, later(5)));
    assert_eq!(
        published["metadata"]["annotations"]["kwok.x-k8s.io/gpus-generation"],
        "2"
    );
    assert_eq!(selected(&lc, &published), "node-heartbeat-with-lease");
    assert!(slice["spec"]["devices"][0].get("taints").is_none());

    // Tainting devices by index publishes again; the effect is NoSchedule unless named.
    for (tainted, effect) in [("1,3", "NoSchedule"), ("2:NoExecute", "NoExecute")] {
        published["metadata"]["annotations"]["kwok.x-k8s.io/gpus-tainted"] = json!(tainted);
        assert_eq!(selected(&lc, &published), "node-gpu-resource-slice", "{tainted}");
        let effects = stage
            .render(&published, &mut FixedHost::new(later(9)))
            .expect("renders");
        let devices = applied(&effects)["spec"]["devices"]
            .as_array()
            .expect("devices")
            .clone();
        let with_taint: Vec<_> = devices
            .iter()
            .filter(|d| d.get("taints").is_some())
            .map(|d| d["name"].as_str().unwrap_or_default())
            .collect();
        let wanted: Vec<_> = tainted
            .split(':')
            .next()
            .unwrap_or_default()
            .split(',')
            .map(|i| format!("gpu-{i}"))
            .collect();
        assert_eq!(with_taint, wanted, "{tainted}");
        let taint = &devices
            .iter()
            .find(|d| d.get("taints").is_some())
            .expect("a taint")["taints"];
        assert_eq!(
            taint,
            &json!([{"key": "kwok.x-k8s.io/unhealthy", "value": "true", "effect": effect}])
        );
        assert!(!simulate::apply_all(&mut published, "Node", &effects, later(9)));
        assert_eq!(
            published["metadata"]["annotations"]["kwok.x-k8s.io/gpus-published-tainted"],
            tainted
        );
        assert_eq!(
            selected(&lc, &published),
            "node-heartbeat-with-lease",
            "{tainted}"
        );
    }
}

/// [`node`] labelled `label: value` once Ready, and the effects of the stage chosen for
/// it then.
fn first_dra_stage(lc: &Lifecycle, label: &str, value: &str) -> (Value, Vec<Effect>) {
    let mut labelled = node();
    labelled["metadata"]["labels"][label] = json!(value);
    let ready = after(lc, "node-initialize", labelled, now());
    let name = selected(lc, &ready).to_owned();
    let effects = stage(lc, &name)
        .render(&ready, &mut FixedHost::new(now()))
        .expect("renders");
    (ready, effects)
}

#[test]
fn node_partitionable_gpus_should_publish_counters_and_the_devices_drawing_on_them() {
    let lc = lifecycle(&["node-fast-with-lease", "dra"], "Node");
    let (ready, effects) = first_dra_stage(&lc, "kwok.x-k8s.io/partitionable-gpus", "2");
    assert_eq!(selected(&lc, &ready), "node-partitionable-gpu-resource-slice");
    let bodies: Vec<&Value> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Apply { body, .. } => Some(body),
            _ => None,
        })
        .collect();
    let [counters, devices] = bodies[..] else {
        panic!("two slices: {effects:?}")
    };
    let pool = json!({"name": "kwok-node-0-partitionable", "generation": 1, "resourceSliceCount": 2});
    assert_eq!(counters["spec"]["pool"], pool);
    assert_eq!(devices["spec"]["pool"], pool);
    assert!(
        counters["spec"].get("devices").is_none(),
        "one of devices and counters per slice"
    );
    assert_eq!(
        counters["spec"]["sharedCounters"][1],
        json!({"name": "gpu-1", "counters": {"memory": {"value": "80Gi"}}})
    );
    let devices = devices["spec"]["devices"].as_array().expect("devices");
    let names: Vec<_> = devices
        .iter()
        .map(|d| d["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        [
            "gpu-0",
            "gpu-0-half-0",
            "gpu-0-half-1",
            "gpu-1",
            "gpu-1-half-0",
            "gpu-1-half-1"
        ]
    );
    assert_eq!(
        devices[4]["consumesCounters"],
        json!([{"counterSet": "gpu-1", "counters": {"memory": {"value": "40Gi"}}}])
    );
    assert_eq!(devices[4]["attributes"]["partition"], json!({"string": "half"}));
    assert_eq!(devices[3]["capacity"]["memory"], json!({"value": "80Gi"}));
    let mut published = ready.clone();
    assert!(!simulate::apply_all(&mut published, "Node", &effects, now()));
    assert_eq!(selected(&lc, &published), "node-heartbeat-with-lease");
}

#[test]
fn node_nics_should_publish_a_slice_of_the_nic_driver() {
    let lc = lifecycle(&["node-fast-with-lease", "dra"], "Node");
    let (ready, effects) = first_dra_stage(&lc, "kwok.x-k8s.io/nics", "2");
    assert_eq!(selected(&lc, &ready), "node-nic-resource-slice");
    let slice = applied(&effects);
    assert_eq!(slice["metadata"]["name"], "kwok-node-0-nic.kwok.x-k8s.io");
    assert_eq!(slice["spec"]["driver"], "nic.kwok.x-k8s.io");
    assert_eq!(
        slice["spec"]["devices"][1],
        json!({"name": "nic-1",
               "attributes": {"model": {"string": "KWOK Fake NIC"}, "index": {"int": 1},
                              "rdma": {"bool": true}, "pciBusID": {"string": "0000:11:00.0"}},
               "capacity": {"bandwidth": {"value": "100G"}}})
    );
    let mut published = ready.clone();
    assert!(!simulate::apply_all(&mut published, "Node", &effects, now()));
    assert_eq!(
        published["metadata"]["annotations"]["kwok.x-k8s.io/nics-published"],
        "2"
    );
    assert_eq!(selected(&lc, &published), "node-heartbeat-with-lease");
}

#[test]
fn resourceclaim_device_status_should_report_kwoks_allocated_devices_ready_once_reserved() {
    let lc = lifecycle(&["dra"], "ResourceClaim");
    let mut claim = json!({
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
        "metadata": {"name": "web-0-gpu-x1", "namespace": "default", "uid": "c-1"},
        "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.kwok.x-k8s.io"}}]}},
        "status": {"allocation": {"devices": {"results": [
            {"request": "gpu", "driver": "gpu.kwok.x-k8s.io", "pool": "kwok-node-0", "device": "gpu-1"},
            {"request": "other", "driver": "gpu.example.com", "pool": "p", "device": "d"}
        ]}}}
    });
    assert!(
        lc.select(&claim, &mut rng()).is_none(),
        "not before a pod reserves it"
    );
    claim["status"]["reservedFor"] = json!([{"resource": "pods", "name": "web-0", "uid": "p-1"}]);
    assert_eq!(selected(&lc, &claim), "resourceclaim-device-status");
    let effects = stage(&lc, "resourceclaim-device-status")
        .render(&claim, &mut FixedHost::new(now()))
        .expect("renders");
    let mut reported = claim.clone();
    assert!(!simulate::apply_all(
        &mut reported,
        "ResourceClaim",
        &effects,
        now()
    ));
    assert_eq!(
        reported["status"]["devices"],
        json!([{"driver": "gpu.kwok.x-k8s.io", "pool": "kwok-node-0", "device": "gpu-1",
                "conditions": [{"type": "Ready", "status": "True", "reason": "Prepared",
                                "message": "prepared by kwok", "lastTransitionTime": NOW}]}]),
        "only kwok's own devices"
    );
    assert!(lc.select(&reported, &mut rng()).is_none(), "reported once");
}

#[test]
fn pod_dra_prepare_should_come_before_pod_ready_and_fail_by_the_weight_asked() {
    let lc = lifecycle(&["pod-fast", "dra"], "Pod");
    assert_eq!(
        selected(&lc, &pod()),
        "pod-ready",
        "a pod without claims as before"
    );
    let mut claiming = pod();
    claiming["spec"]["resourceClaims"] = json!([{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}]);
    assert_eq!(selected(&lc, &claiming), "pod-dra-prepare");
    let prepared = after(&lc, "pod-dra-prepare", claiming.clone(), now());
    assert_eq!(
        prepared["metadata"]["annotations"]["kwok.x-k8s.io/dra-prepared"],
        NOW
    );
    assert_eq!(selected(&lc, &prepared), "pod-ready");

    // Weights 0 and 1: preparing always fails, reporting what a kubelet would, and the
    // pod stays as it was, to be tried again after the failure's delay.
    claiming["metadata"]["annotations"] = json!({
        "pod-dra-prepare.stage.kwok.x-k8s.io/weight": "0",
        "pod-dra-prepare-failed.stage.kwok.x-k8s.io/weight": "1",
    });
    assert_eq!(selected(&lc, &claiming), "pod-dra-prepare-failed");
    let failed = stage(&lc, "pod-dra-prepare-failed");
    assert_eq!(delay_range(failed, &claiming, 100), (secs(1), secs(1)));
    let effects = failed
        .render(&claiming, &mut FixedHost::new(now()))
        .expect("renders");
    let [Effect::Event { type_, reason, .. }] = &effects[..] else {
        panic!("one event: {effects:?}")
    };
    assert_eq!(
        (type_.as_str(), reason.as_str()),
        ("Warning", "FailedPrepareDynamicResources")
    );
    let mut after_failure = claiming.clone();
    assert!(!simulate::apply_all(&mut after_failure, "Pod", &effects, now()));
    assert_eq!(after_failure, claiming);
}

#[test]
fn pod_container_running_failed_should_fail_the_named_container_of_a_labelled_running_pod() {
    let lc = lifecycle(&["pod-fast", "pod-chaos"], "Pod");
    let mut pod = pod();
    pod["metadata"]["labels"]["pod-container-running-failed.stage.kwok.x-k8s.io"] = json!("true");
    pod["metadata"]["annotations"] = json!({
        "pod-container-running-failed.stage.kwok.x-k8s.io/container-name": "app",
        "pod-container-running-failed.stage.kwok.x-k8s.io/exit-code": "3",
        "pod-container-running-failed.stage.kwok.x-k8s.io/reason": "OOMKilled"
    });
    assert_eq!(selected(&lc, &pod), "pod-ready", "not before it runs");
    let running = after(&lc, "pod-ready", pod, now());
    assert_eq!(selected(&lc, &running), "pod-container-running-failed");
    let stage = stage(&lc, "pod-container-running-failed");
    assert_eq!(delay_range(stage, &running, 100), (secs(1), secs(1)));
    let effects = stage
        .render(&running, &mut FixedHost::new(later(1)))
        .expect("renders");
    let status = &status_patch(&effects);
    assert_eq!(status["phase"], "Failed");
    let app = &status["containerStatuses"][0];
    assert_eq!(app["state"]["terminated"]["exitCode"], 3);
    assert_eq!(app["state"]["terminated"]["reason"], "OOMKilled");
    assert_eq!(
        status["containerStatuses"][1]["state"]["running"]["startedAt"],
        "2026-01-02T03:04:06Z"
    );
    assert_eq!(condition(status, "Ready").unwrap()["status"], "False");
    assert_snapshot("golden/pod-container-running-failed", &effects_json(&effects));
}

// ===== dry runs =====

#[test]
fn pod_fast_should_take_a_job_pod_to_succeeded() {
    let lc = lifecycle(&["pod-fast"], "Pod");
    let mut host = FixedHost::new(now());
    let (steps, end) = simulate::run(&lc, "Pod", job_pod(), now(), 10, &mut host, &mut rng());
    let names: Vec<_> = steps.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(names, ["pod-ready", "pod-complete"]);
    assert_eq!(end, End::NoMatch);
    let pod = steps[1].object.as_ref().unwrap();
    assert_eq!(pod["status"]["phase"], "Succeeded");
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        0
    );
    assert_eq!(steps[1].at, now(), "no delay in pod-fast");
}

#[test]
fn pod_fast_should_delete_a_deleted_pod() {
    let lc = lifecycle(&["pod-fast"], "Pod");
    let mut host = FixedHost::new(now());
    let pod = deleting_pod(&["kwok.x-k8s.io/fake"]);
    let (steps, end) = simulate::run(&lc, "Pod", pod, now(), 10, &mut host, &mut rng());
    let names: Vec<_> = steps.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(names, ["pod-delete"]);
    assert_eq!(end, End::Deleted);
    assert!(steps[0].object.is_none());
}

#[test]
fn pod_general_should_delete_a_deleted_pod_without_finalizers() {
    let lc = lifecycle(&["pod-general"], "Pod");
    let mut host = FixedHost::new(now());
    let (steps, end) = simulate::run(&lc, "Pod", deleting_pod(&[]), now(), 10, &mut host, &mut rng());
    let names: Vec<_> = steps.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(names, ["pod-delete"]);
    assert_eq!(end, End::Deleted);
}

#[test]
fn node_fast_should_initialize_a_node_then_heartbeat_forever() {
    let lc = lifecycle(&["node-fast"], "Node");
    let mut host = FixedHost::new(now());
    let (steps, end) = simulate::run(&lc, "Node", node(), now(), 4, &mut host, &mut rng());
    let names: Vec<_> = steps.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(
        names,
        [
            "node-initialize",
            "node-heartbeat",
            "node-heartbeat",
            "node-heartbeat"
        ]
    );
    assert_eq!(end, End::Limit);
    let elapsed = steps[3].at.duration_since(now());
    assert!(elapsed >= jiff::SignedDuration::from_secs(60) && elapsed < jiff::SignedDuration::from_secs(75));
}
