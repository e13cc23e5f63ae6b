//! The shard core, driven by hand: every transition of an object's [`State`], the races
//! between the watch and our writes, and random event sequences (proptest) that must
//! keep the core's invariants.

use std::{sync::Arc, time::Duration};

use clap::Parser;
use kube::core::ApiResource;
use kwok_engine::{lifecycle::Lifecycles, stage::load::Documents};
use proptest::prelude::*;
use rand::{SeedableRng, rngs::SmallRng};
use serde_json::{Value, json};

use super::{
    Input, Kind, Now, Role,
    cache::{Due, ObjKey, State},
    core::{Command, Config, Core, Event, Ticket},
};
use crate::{
    batcher::Outcome,
    flags::Flags,
    host::SharedIps,
    ipam::Pool,
    lease::{Dealt, Fence, Ownership, Pressure},
    metrics::Metrics,
    object::JsonObject,
    settings::Settings,
};

/// A node stage due at once and a pod stage due a second after the pod is seen, so a
/// pending timer can be raced; a deleted pod is deleted at once. Pods labelled `test`
/// get stages that fail to render: `broken` a template error, `ip` a pod IP (from a
/// pool that [`Harness::with_pool`] can make small); `nudge` an event every second
/// that changes nothing (`immediateNextStage`).
const STAGES: &str = r#"
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: node-ready}
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - {key: .status.phase, operator: DoesNotExist}
  next:
    statusTemplate: |
      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: pod-ready}
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: .metadata.deletionTimestamp, operator: DoesNotExist}
    - {key: .status.phase, operator: DoesNotExist}
    - {key: .metadata.labels.test, operator: DoesNotExist}
  delay: {durationMilliseconds: 1000}
  next:
    statusTemplate: |
      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: pod-delete}
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: .metadata.deletionTimestamp, operator: Exists}
  next:
    delete: true
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: pod-broken}
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchLabels: {test: broken}
    matchExpressions:
    - {key: .status.phase, operator: DoesNotExist}
  next:
    statusTemplate: |
      phase: {{ index .spec.containers 5 }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: pod-ip}
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchLabels: {test: ip}
    matchExpressions:
    - {key: .metadata.deletionTimestamp, operator: DoesNotExist}
    - {key: .status.phase, operator: DoesNotExist}
  next:
    statusTemplate: |
      phase: Running
      podIP: {{ PodIPWith .spec.nodeName false .metadata.uid .metadata.name .metadata.namespace }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: pod-nudge}
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchLabels: {test: nudge}
  delay: {durationMilliseconds: 1000}
  immediateNextStage: true
  steps:
  - event: {type: Warning, reason: Nudged, message: again}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: configmap-delete}
spec:
  resourceRef: {apiGroup: v1, kind: ConfigMap}
  selector:
    matchLabels: {gone: "yes"}
  next:
    delete: true
"#;

const NODE: usize = 0;
const POD: usize = 1;
const CONFIGMAP: usize = 2;
const CLAIM: usize = 3;
const SECOND: Duration = Duration::from_secs(1);

/// A core over the stages above with `writes` write slots, its clock at `t0`, pod IPs
/// from `cidr`; with `fences`, node leases are on (nodes driven only while held) and
/// `Some` member fence is our member Lease's.
fn core(writes: u32, t0: Now, cidr: &str, fences: Option<Option<Fence>>) -> Core {
    let flags = Flags::try_parse_from([
        "kwok",
        "--manage-all-nodes",
        "--shards=1",
        "--node-lease-duration-seconds=0",
        "--id=me",
        &format!("--writes-in-flight={writes}"),
    ])
    .unwrap();
    let mut docs = Documents::default();
    docs.parse("<test stages>", STAGES).unwrap();
    let lifecycles = Lifecycles::compile(&docs).unwrap();
    let settings = Settings::resolve(&flags, Documents::default()).unwrap();
    let lifecycle = |kind| lifecycles.for_kind(None, kind).cloned().unwrap();
    let kinds = vec![
        Kind {
            resource: ApiResource::erase::<k8s_openapi::api::core::v1::Node>(&()),
            namespaced: false,
            role: Role::Node,
            lifecycle: lifecycle("Node"),
        },
        Kind {
            resource: ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&()),
            namespaced: true,
            role: Role::Pod,
            lifecycle: lifecycle("Pod"),
        },
        Kind {
            resource: ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
            namespaced: true,
            role: Role::Other,
            lifecycle: lifecycle("ConfigMap"),
        },
        // Watched, as the `dra` set's claim stage has kwok watch claims.
        Kind {
            resource: ApiResource::erase::<k8s_openapi::api::resource::v1::ResourceClaim>(&()),
            namespaced: true,
            role: Role::Other,
            lifecycle: Default::default(),
        },
    ];
    let metrics = Metrics::unregistered();
    let config = Config {
        index: 0,
        kinds: Arc::new(kinds),
        settings: Arc::new(settings),
        metrics: Arc::new(metrics),
        leases: fences.is_some(),
        member_fence: fences.flatten(),
        shared_ips: SharedIps::new(Pool::new(crate::ipam::Cidr::parse(cidr).unwrap())),
        claims: Default::default(),
        start: t0.wall,
    };
    Core::new(config, t0)
}

/// A harness: the core, its clock and random source, and the writes it has out.
struct Harness {
    core: Core,
    now: Now,
    rng: SmallRng,
    /// Writes sent and not yet answered, in order.
    out: Vec<(Ticket, Due)>,
    /// Every command's `Due` of the last step, for assertions.
    last: Vec<Due>,
    /// The effects of the last step's writes, as JSON text.
    last_effects: Vec<String>,
    /// Fetches of a node's pods asked for: node, generation, resourceVersion.
    fetches: Vec<(String, u64, String)>,
}

impl Harness {
    /// A core with `writes` slots that has listed its (no) pods, with a managed, Running
    /// node `n`.
    fn new(writes: u32) -> Self {
        Self::with_pool(writes, "10.0.0.1/16")
    }

    /// As [`Harness::new`], pod IPs from `cidr`.
    fn with_pool(writes: u32, cidr: &str) -> Self {
        Self::with_fences(writes, cidr, None)
    }

    /// As [`Harness::with_pool`], with node leases on when `fences` is `Some` (see
    /// [`core`]); the node's Lease is not held yet.
    fn with_fences(writes: u32, cidr: &str, fences: Option<Option<Fence>>) -> Self {
        let now = Now::read();
        let mut h = Self {
            core: core(writes, now, cidr, fences),
            now,
            rng: SmallRng::seed_from_u64(7),
            out: Vec::new(),
            last: Vec::new(),
            last_effects: Vec::new(),
            fetches: Vec::new(),
        };
        h.step(Event::Watch(Input::Relisted(POD)));
        h.step(Event::AllPodsListed);
        h.apply(NODE, node("n", "1", true));
        assert!(h.out.is_empty(), "a Running node has nothing to do");
        h
    }

    fn step(&mut self, event: Event) {
        self.last.clear();
        self.last_effects.clear();
        for command in self.core.step(event, self.now, &mut self.rng) {
            if let Command::FetchPods {
                node,
                generation,
                not_older_than,
            } = command
            {
                self.fetches.push((node, generation, not_older_than));
            } else if let Command::Write(write) = command {
                self.last_effects.push(format!("{:?}", write.effects));
                let (ticket, due) = (write.ticket, write.due);
                assert!(
                    self.out.iter().all(|(t, _)| t.key != ticket.key),
                    "two writes out for {:?}",
                    ticket.key
                );
                self.last.push(due);
                self.out.push((ticket, due));
            }
        }
        self.core.check_invariants();
    }

    fn apply(&mut self, kind: usize, obj: Value) {
        let obj = Box::new(JsonObject::new(&obj));
        self.step(Event::Watch(Input::Applied { kind, obj }));
    }

    fn delete(&mut self, kind: usize, obj: Value) {
        let obj = Box::new(JsonObject::new(&obj));
        self.step(Event::Watch(Input::Deleted { kind, obj }));
    }

    fn advance(&mut self, by: Duration) {
        self.now = Now {
            wall: self.now.wall + by,
            mono: self.now.mono + by,
        };
        self.step(Event::TimersDue);
    }

    /// Answers the `i`-th write out with `outcome`.
    fn land(&mut self, i: usize, outcome: Outcome) {
        let (ticket, _) = self.out.remove(i);
        self.step(Event::Written { ticket, outcome });
    }

    fn state(&self, name: &str) -> Option<State> {
        self.core.state(&pod_key(name))
    }

    /// A new pod `name` of the `ip` test stage, a second later: the effects rendered
    /// (they name the address it was given).
    fn ip_pod_effects(&mut self, name: &str, rv: &str) -> String {
        self.apply(POD, test_pod(name, rv, "ip"));
        self.advance(SECOND);
        self.last_effects.concat()
    }
}

fn node(name: &str, rv: &str, running: bool) -> Value {
    let mut node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": format!("uid-{name}"), "resourceVersion": rv},
    });
    if running {
        node["status"] = json!({"phase": "Running"});
    }
    node
}

/// Pod `name` on node `n` at `rv`, of uid `uid-{name}{generation}`.
fn pod(name: &str, generation: u32, rv: &str, phase: Option<&str>, deleting: bool) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}{generation}"), "resourceVersion": rv},
        "spec": {"nodeName": "n"},
    });
    if let Some(phase) = phase {
        pod["status"] = json!({"phase": phase});
    }
    if deleting {
        pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    pod
}

/// [`pod`] labelled `test: {test}`.
fn test_pod(name: &str, rv: &str, test: &str) -> Value {
    let mut p = pod(name, 0, rv, None, false);
    p["metadata"]["labels"] = json!({ "test": test });
    p
}

fn pod_key(name: &str) -> ObjKey {
    ObjKey {
        kind: POD,
        namespace: "ns".into(),
        name: name.into(),
    }
}

fn response(obj: Value) -> Option<Box<JsonObject>> {
    Some(Box::new(JsonObject::new(&obj)))
}

/// The lease worker's word that we hold node `node`'s Lease (`Some` fence) or not.
fn held(node: &str, fence: Option<Fence>) -> Event {
    Event::Lease(Ownership {
        node: node.into(),
        fence,
        lapsed: false,
    })
}

fn scheduled(due: Due) -> impl Fn(Option<State>) -> bool {
    move |s| matches!(s, Some(State::Scheduled { due: d, .. }) if d == due)
}

const READY: Due = Due::Stage(0);
const DELETE: Due = Due::Stage(1);

#[test]
fn a_pod_should_go_idle_scheduled_in_flight_idle_as_its_stage_is_written() {
    let mut h = Harness::new(8);
    h.apply(POD, pod("p", 0, "10", None, false));
    assert!(scheduled(READY)(h.state("p")), "{:?}", h.state("p"));
    h.advance(SECOND / 2);
    assert!(h.out.is_empty(), "due only after its delay");
    h.advance(SECOND / 2);
    assert_eq!(h.last, [READY]);
    assert_eq!(h.state("p"), Some(State::InFlight { dirty: false }));
    // The response is news: matched at once (nothing matches a Running pod).
    h.land(
        0,
        Outcome::Written(response(pod("p", 0, "11", Some("Running"), false))),
    );
    assert_eq!(h.state("p"), Some(State::Idle));
    // Its watch event then changes nothing.
    h.apply(POD, pod("p", 0, "11", Some("Running"), false));
    assert_eq!(h.state("p"), Some(State::Idle));
}

/// See: issue 24. Each row: the version the watch delivered while the write was out,
/// and the version of the write's response; the newer one must be cached.
#[test]
fn a_write_response_older_than_the_watch_state_should_not_replace_it() {
    // (watch rv during the write, response rv, the rv cached after)
    let cases = [
        ("100", "99", "100"),
        ("12", "11", "12"),
        ("11", "12", "12"),
        ("99", "100", "100"),
        // Unknown order: the watch's state is kept until the watch says more.
        ("x1", "x2", "x1"),
    ];
    for (watched, answered, cached) in cases {
        let mut h = Harness::new(8);
        h.apply(POD, pod("p", 0, "10", None, false));
        h.advance(SECOND);
        assert_eq!(h.last, [READY]);
        // Someone else's change, seen while our write is out: matched when it lands.
        h.apply(POD, pod("p", 0, watched, None, true));
        assert_eq!(h.state("p"), Some(State::InFlight { dirty: true }));
        h.land(
            0,
            Outcome::Written(response(pod("p", 0, answered, Some("Running"), false))),
        );
        let deleting = cached == watched;
        assert_eq!(
            (h.core.cached_rv(&pod_key("p")), scheduled(DELETE)(h.state("p"))),
            (Some(cached.to_owned()), deleting),
            "watch {watched}, response {answered}: {:?}",
            h.state("p")
        );
    }
}

/// A write sent by name for `p` (uid p0) that the server applied to `p` re-created
/// (uid p1) meanwhile: its answer must not become p0's cached state, or p0's later
/// watch delete would release p1's IP.
#[test]
fn a_write_answered_by_a_re_created_object_should_not_be_cached() {
    let mut h = Harness::new(8);
    h.apply(POD, pod("p", 0, "10", None, false));
    h.advance(SECOND);
    assert_eq!(h.last, [READY]);
    h.land(
        0,
        Outcome::Written(response(pod("p", 1, "20", Some("Running"), false))),
    );
    assert_eq!(h.core.cached_rv(&pod_key("p")).as_deref(), Some("10"));
    assert_eq!(h.state("p"), Some(State::Idle));
}

#[test]
fn a_watch_event_older_than_our_write_should_be_skipped() {
    let mut h = Harness::new(8);
    h.apply(POD, pod("p", 0, "98", None, false));
    h.advance(SECOND);
    h.land(
        0,
        Outcome::Written(response(pod("p", 0, "100", Some("Running"), false))),
    );
    // The watch lags: an event from before our write arrives after its response.
    h.apply(POD, pod("p", 0, "99", None, false));
    assert_eq!(h.core.cached_rv(&pod_key("p")).as_deref(), Some("100"));
    assert_eq!(h.state("p"), Some(State::Idle), "the stage was not started again");
}

#[test]
fn a_relist_during_a_write_should_keep_one_write_per_object() {
    let mut h = Harness::new(8);
    h.apply(POD, pod("p", 0, "10", None, false));
    h.apply(POD, pod("q", 0, "10", None, false));
    h.advance(SECOND);
    assert_eq!(h.out.len(), 2);
    h.step(Event::Watch(Input::Relisting(POD)));
    // q is listed again (deleted and re-created meanwhile: a new uid); p is not.
    h.apply(POD, pod("q", 1, "20", None, false));
    h.step(Event::Watch(Input::Relisted(POD)));
    assert_eq!(h.state("p"), None, "gone from the list: forgotten");
    assert_eq!(
        h.state("q"),
        Some(State::InFlight { dirty: true }),
        "the old q's write is still out"
    );
    assert_eq!(h.core.writes_out(), 2);
    // p's write lands on nothing; q's old one frees the new q, which is matched afresh.
    h.land(0, Outcome::Gone);
    h.land(
        0,
        Outcome::Written(response(pod("q", 0, "15", Some("Running"), false))),
    );
    assert!(scheduled(READY)(h.state("q")), "{:?}", h.state("q"));
    assert_eq!(h.core.cached_rv(&pod_key("q")).as_deref(), Some("20"));
    assert_eq!(h.core.writes_out(), 0);
}

#[test]
fn a_delete_during_a_delayed_stage_should_leave_no_timer() {
    let mut h = Harness::new(8);
    h.apply(POD, pod("p", 0, "10", None, false));
    assert!(scheduled(READY)(h.state("p")));
    h.delete(POD, pod("p", 0, "11", None, false));
    assert_eq!(h.state("p"), None);
    h.advance(SECOND * 5);
    assert!(h.out.is_empty(), "the cancelled stage fired");
}

#[test]
fn stages_due_beyond_the_write_slots_should_wait_ready_and_fire_in_turn() {
    let mut h = Harness::new(1);
    for name in ["a", "b", "c"] {
        h.apply(POD, pod(name, 0, "10", None, false));
    }
    h.advance(SECOND);
    assert_eq!(h.out.len(), 1, "one slot");
    let first = h.out[0].0.key.name.clone();
    let waiting: Vec<_> = ["a", "b", "c"].into_iter().filter(|n| *n != first).collect();
    for name in &waiting {
        assert_eq!(h.state(name), Some(State::Ready { due: READY }));
    }
    // One that waits is deleted meanwhile: its turn is skipped.
    h.delete(POD, pod(waiting[0], 0, "11", None, false));
    h.land(0, Outcome::Written(None));
    assert_eq!(h.last, [READY]);
    assert_eq!(h.out[0].0.key.name, waiting[1], "the next live one got the slot");
    h.land(0, Outcome::Written(None));
    assert!(h.out.is_empty());
    assert_eq!(h.core.writes_out(), 0);
}

#[test]
fn a_gone_object_should_stay_deleted_until_another_object_takes_its_name() {
    let mut h = Harness::new(8);
    h.apply(POD, pod("p", 0, "10", None, true));
    h.advance(Duration::ZERO);
    assert_eq!(h.last, [DELETE]);
    h.land(0, Outcome::Gone);
    assert_eq!(h.state("p"), Some(State::Deleted));
    // A late update of the same object starts nothing.
    h.apply(POD, pod("p", 0, "11", None, true));
    assert_eq!(h.state("p"), Some(State::Deleted));
    // A new object by that name is driven.
    h.apply(POD, pod("p", 1, "12", None, false));
    assert!(scheduled(READY)(h.state("p")));
}

#[test]
fn a_failed_write_should_be_tried_again_backing_off() {
    let mut h = Harness::new(8);
    h.apply(POD, pod("p", 0, "10", None, false));
    h.advance(SECOND);
    // (failures so far, wait before the retry)
    for (failures, wait) in [(1, 1), (2, 2), (3, 4)] {
        h.land(0, Outcome::Failed);
        assert!(scheduled(READY)(h.state("p")), "after {failures} failures");
        h.advance(SECOND * wait - Duration::from_millis(1));
        assert!(h.out.is_empty(), "retried early after {failures} failures");
        h.advance(Duration::from_millis(1));
        assert_eq!(h.last, [READY], "not retried after {failures} failures");
    }
}

#[test]
fn a_stage_whose_template_fails_should_send_nothing_and_wait_for_the_object_to_change() {
    let mut h = Harness::new(8);
    h.apply(POD, test_pod("p", "10", "broken"));
    h.advance(Duration::ZERO);
    assert!(h.out.is_empty(), "nothing of a failed stage is sent");
    assert_eq!(
        h.state("p"),
        Some(State::Idle),
        "no retry timer: it would fail the same way"
    );
    assert_eq!(h.core.writes_out(), 0, "no write slot taken");
    assert_eq!(h.core.render_failures("pod-broken"), 1);
    h.advance(SECOND * 120);
    assert!(h.out.is_empty());
    // The object changed (here: fixed by hand): matched again.
    let mut fixed = test_pod("p", "11", "broken");
    fixed["spec"]["containers"] = json!([{}, {}, {}, {}, {}, {"name": "c5"}]);
    h.apply(POD, fixed);
    h.advance(Duration::ZERO);
    assert_eq!(h.out.len(), 1, "rendered once the template works for the object");
}

#[test]
fn an_immediate_next_stage_that_changes_nothing_should_be_matched_again_once_written() {
    let mut h = Harness::new(8);
    h.apply(POD, test_pod("p", "10", "nudge"));
    for _ in 0..3 {
        h.advance(SECOND);
        assert_eq!(h.out.len(), 1, "an event each second");
        assert!(matches!(h.state("p"), Some(State::InFlight { dirty: true })));
        // An event's write returns no object and no watch event follows.
        h.land(0, Outcome::Written(None));
        assert!(
            matches!(h.state("p"), Some(State::Scheduled { .. })),
            "{:?}",
            h.state("p")
        );
    }
}

#[test]
fn a_stage_short_of_pod_ips_should_be_tried_again_until_one_is_free() {
    // Pools run past their CIDR (as upstream's), so only the top of the address space
    // fills: three addresses above 255.255.255.252.
    let mut h = Harness::with_pool(8, "255.255.255.252/30");
    for (name, rv) in [("a", "10"), ("b", "11"), ("x", "12")] {
        h.apply(POD, test_pod(name, rv, "ip"));
    }
    h.advance(Duration::ZERO);
    assert_eq!(h.out.len(), 3);
    for _ in 0..3 {
        h.land(0, Outcome::Written(None));
    }
    h.apply(POD, test_pod("c", "13", "ip"));
    h.advance(Duration::ZERO);
    assert!(h.out.is_empty(), "no address left for c");
    assert!(
        matches!(h.state("c"), Some(State::Scheduled { .. })),
        "a full pool frees up: c is tried again, {:?}",
        h.state("c")
    );
    h.advance(SECOND);
    assert!(h.out.is_empty(), "still none free");
    assert_eq!(h.core.render_failures("pod-ip"), 2, "tried again once");
    h.delete(POD, test_pod("a", "14", "ip"));
    h.advance(SECOND * 2);
    assert_eq!(h.out.len(), 1, "c got a's address");
    assert_eq!(h.out[0].0.key, pod_key("c"));
}

#[test]
fn a_conflict_should_match_the_fresh_read_again() {
    let mut h = Harness::new(8);
    h.apply(POD, pod("p", 0, "10", None, false));
    h.advance(SECOND);
    h.land(0, Outcome::Conflict(response(pod("p", 0, "12", None, true))));
    assert!(scheduled(DELETE)(h.state("p")), "{:?}", h.state("p"));
    h.advance(Duration::ZERO);
    assert_eq!(h.last, [DELETE]);
}

#[test]
fn an_unmanaged_node_should_cancel_its_pods_stages() {
    let mut h = Harness::new(8);
    h.apply(POD, pod("p", 0, "10", None, false));
    assert!(scheduled(READY)(h.state("p")));
    h.delete(NODE, node("n", "2", true));
    assert_eq!(h.state("p"), Some(State::Idle));
    h.advance(SECOND * 2);
    assert!(h.out.is_empty(), "a pod of a deleted node was written");
    // The node back, the pod is driven again from its next event.
    h.apply(NODE, node("n", "3", true));
    h.apply(POD, pod("p", 0, "11", None, false));
    assert!(scheduled(READY)(h.state("p")));
}

/// One thing that can happen to the core.
#[derive(Debug, Clone)]
enum Op {
    /// The watch delivers pod `name` (of generation `generation`), running or not,
    /// being deleted or not.
    Apply {
        name: usize,
        generation: u32,
        running: bool,
        deleting: bool,
    },
    /// The watch says pod `name` is gone.
    Delete {
        name: usize,
    },
    Relisting,
    /// The re-list ends; only pods in `seen` were listed again meanwhile (as the test
    /// cannot list, it applies them).
    Relisted {
        seen: Vec<bool>,
    },
    /// Time passes.
    Advance {
        ms: u64,
    },
    /// The `i`-th write out (modulo how many) lands so.
    Land {
        i: usize,
        outcome: u8,
        newer: bool,
    },
    /// The node's readiness or management changes.
    NodeGone,
    NodeBack,
    /// The node's Lease is ours, or no longer.
    Held(bool),
    /// The table deals the node elsewhere, or back.
    Dealt(bool),
    /// The last fetch asked for (or a stale one) answers with the pods in `listed`.
    Fetched {
        stale: bool,
        listed: Vec<bool>,
    },
    /// The lease worker reports a pressure: none, calm, behind, at risk.
    Pressure(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4usize, 0..2u32, any::<bool>(), any::<bool>())
            .prop_map(|(name, generation, running, deleting)| Op::Apply { name, generation, running, deleting }),
        1 => (0..4usize).prop_map(|name| Op::Delete { name }),
        1 => Just(Op::Relisting),
        1 => proptest::collection::vec(any::<bool>(), 4).prop_map(|seen| Op::Relisted { seen }),
        3 => (0..2_500u64).prop_map(|ms| Op::Advance { ms }),
        4 => (0..8usize, 0..4u8, any::<bool>()).prop_map(|(i, outcome, newer)| Op::Land { i, outcome, newer }),
        1 => Just(Op::NodeGone),
        1 => Just(Op::NodeBack),
        1 => any::<bool>().prop_map(Op::Held),
        1 => any::<bool>().prop_map(Op::Dealt),
        1 => (any::<bool>(), proptest::collection::vec(any::<bool>(), 4))
            .prop_map(|(stale, listed)| Op::Fetched { stale, listed }),
        1 => (0..4u8).prop_map(Op::Pressure),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the watch, the clock, the apiserver and the lease worker do, in any
    /// order: never two writes out for one object, never a timer for a deleted or
    /// forgotten object, no write slot leaked (`Harness::step` and
    /// `Core::check_invariants` check each step).
    #[test]
    fn random_event_sequences_should_keep_the_invariants(ops in proptest::collection::vec(op(), 1..50), writes in 1..4u32) {
        let fence = Fence::closed();
        let mut h = Harness::with_fences(writes, "10.0.0.1/16", Some(None));
        fence.open_until(h.now.mono + 3600 * SECOND);
        h.step(held("n", Some(fence.clone())));
        let mut rv = 100u64;
        let name = |i: usize| format!("p{i}");
        for op in ops {
            rv += 1;
            match op {
                Op::Apply { name: i, generation, running, deleting } => {
                    let phase = running.then_some("Running");
                    h.apply(POD, pod(&name(i), generation, &rv.to_string(), phase, deleting));
                }
                Op::Delete { name: i } => h.delete(POD, pod(&name(i), 0, &rv.to_string(), None, false)),
                Op::Relisting => h.step(Event::Watch(Input::Relisting(POD))),
                Op::Relisted { seen } => {
                    for (i, seen) in seen.into_iter().enumerate() {
                        if seen && h.state(&name(i)).is_some() {
                            h.apply(POD, pod(&name(i), 0, &rv.to_string(), None, false));
                        }
                    }
                    h.step(Event::Watch(Input::Relisted(POD)));
                }
                Op::Advance { ms } => h.advance(Duration::from_millis(ms)),
                Op::Land { i, outcome, newer } => {
                    if h.out.is_empty() {
                        continue;
                    }
                    let i = i % h.out.len();
                    let answer_rv = if newer { rv + 1 } else { rv - 50 };
                    let obj = response(pod(&h.out[i].0.key.name, 0, &answer_rv.to_string(), Some("Running"), false));
                    let outcome = match outcome {
                        0 => Outcome::Written(obj),
                        1 => Outcome::Conflict(obj),
                        2 => Outcome::Gone,
                        3 => Outcome::Fenced,
                        _ => Outcome::Failed,
                    };
                    h.land(i, outcome);
                }
                Op::NodeGone => h.delete(NODE, node("n", &rv.to_string(), true)),
                Op::NodeBack => h.apply(NODE, node("n", &rv.to_string(), true)),
                Op::Held(yes) => h.step(held("n", yes.then(|| fence.clone()))),
                Op::Dealt(elsewhere) => h.step(dealt("n", elsewhere)),
                Op::Pressure(level) => {
                    let pressure = [None, Some(Pressure::Calm), Some(Pressure::Behind), Some(Pressure::AtRisk)];
                    h.step(Event::Pressure(pressure[usize::from(level)]));
                }
                Op::Fetched { stale, listed } => {
                    let Some((node, generation, _)) = h.fetches.last().cloned() else {
                        continue;
                    };
                    let pods = listed
                        .into_iter()
                        .enumerate()
                        .filter(|(_, listed)| *listed)
                        .map(|(i, _)| JsonObject::new(&pod(&name(i), 0, &rv.to_string(), None, false)))
                        .collect();
                    let generation = generation + u64::from(stale);
                    h.step(Event::PodsFetched { node, generation, pods });
                }
            }
            prop_assert_eq!(h.core.writes_out(), h.out.len(), "writes out, as the core counts them");
        }
        // Every write lands: the slots all come back and nothing stays in flight.
        while !h.out.is_empty() {
            h.land(0, Outcome::Failed);
        }
        prop_assert_eq!(h.core.writes_out(), 0);
    }
}

/// Issue 25: a write goes out only while its node's Lease fence is open; while it is
/// closed (renewals late, kwok stopped past them) the stage waits and is tried again
/// each second, and goes out once a renewal reopens the fence.
#[test]
fn a_stage_should_wait_while_its_node_lease_fence_is_closed() {
    let fence = Fence::closed();
    let mut h = Harness::with_fences(8, "10.0.0.1/16", Some(None));
    h.apply(POD, pod("p", 0, "10", None, false));
    h.advance(SECOND);
    assert!(h.out.is_empty(), "the node's Lease is not ours yet");
    h.step(held("n", Some(fence.clone())));
    h.advance(SECOND);
    assert!(h.out.is_empty(), "held, but its fence is not open yet");
    assert_eq!(h.core.fenced_writes(), 1);
    fence.open_until(h.now.mono + 10 * SECOND);
    h.advance(SECOND);
    assert_eq!(h.last, [READY], "a renewal opened the fence");
    h.land(
        0,
        Outcome::Written(response(pod("p", 0, "11", Some("Running"), false))),
    );
    // Renewals fall behind: 10 s after the last one a new owner may take the node.
    h.apply(POD, pod("q", 0, "12", None, false));
    h.advance(10 * SECOND);
    assert!(h.out.is_empty(), "fenced: {:?}", h.state("q"));
    assert_eq!(h.core.fenced_writes(), 2);
    assert!(
        scheduled(READY)(h.state("q")),
        "tried again later: {:?}",
        h.state("q")
    );
    h.advance(SECOND);
    assert!(h.out.is_empty());
    fence.open_until(h.now.mono + 10 * SECOND);
    h.advance(SECOND);
    assert_eq!(h.last, [READY], "the renewal landed: the stage goes out");
    // A write already out when its fence closes comes back fenced: tried again.
    fence.close();
    h.land(0, Outcome::Fenced);
    assert!(scheduled(READY)(h.state("q")), "{:?}", h.state("q"));
    // The lease worker says the node is lost: nothing is tried any more.
    h.step(held("n", None));
    fence.open_until(h.now.mono + 60 * SECOND);
    h.advance(5 * SECOND);
    assert!(h.out.is_empty(), "not ours: {:?}", h.state("q"));
}

/// Issue 21: a Ready node whose Lease we take back after our renewals ran past its
/// expiry (the apiserver away longer than a Lease) sends its status heartbeat at once,
/// even with every write slot the lease pressure leaves taken; a node held without a
/// lapse, or not Ready, does not.
#[test]
fn a_ready_node_whose_lease_lapsed_should_send_its_status_heartbeat_at_once() {
    let fence = Fence::closed();
    let mut h = Harness::with_fences(8, "10.0.0.1/16", Some(None));
    fence.open_until(h.now.mono + 600 * SECOND);
    let mut n = node("n", "2", true);
    n["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    h.apply(NODE, n);
    let lapsed = |node: &str| {
        Event::Lease(Ownership {
            node: node.into(),
            fence: Some(fence.clone()),
            lapsed: true,
        })
    };
    h.step(held("n", Some(fence.clone())));
    h.advance(SECOND);
    assert!(h.out.is_empty(), "held without a lapse: nothing due");
    // At risk, the pressure leaves 2 slots; two pods' stages take them.
    h.step(Event::Pressure(Some(Pressure::AtRisk)));
    h.apply(POD, pod("p", 0, "10", None, false));
    h.apply(POD, pod("q", 0, "11", None, false));
    h.advance(SECOND);
    assert_eq!(h.last, [READY, READY]);
    h.step(held("n", None));
    h.step(lapsed("n"));
    h.advance(Duration::from_millis(10));
    assert_eq!(h.last, [Due::Heartbeat], "ahead of the slots the pressure leaves");
    let effects = h.last_effects.concat();
    assert!(
        effects.contains("lastHeartbeatTime") && effects.contains("Strategic"),
        "{effects}"
    );
    assert!(
        !effects.contains("\"status\": String(\"True\")"),
        "only the heartbeat: {effects}"
    );
    let mut beaten = node("n", "3", true);
    beaten["status"]["conditions"] =
        json!([{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-12-04T00:00:00Z"}]);
    let i = h.out.iter().position(|(_, due)| *due == Due::Heartbeat).unwrap();
    h.land(i, Outcome::Written(response(beaten)));
    h.advance(SECOND);
    assert!(h.last.is_empty(), "matched again: nothing due for a Ready node");
    // A lapsed node the control plane already marked lost gets its stages, not a
    // heartbeat.
    h.step(held("n", None));
    let mut lost = node("n", "4", true);
    lost["status"]["conditions"] = json!([{"type": "Ready", "status": "Unknown"}]);
    h.apply(NODE, lost);
    h.step(lapsed("n"));
    h.advance(SECOND);
    assert!(!h.last.contains(&Due::Heartbeat), "{:?}", h.last);
}

/// Issue 25: with `--scale-out`, a Ready node taken over from another replica that
/// advertises that replica's kubelet port gets our heartbeat, with our port, at once:
/// the apiserver sends `kubectl logs/exec` to the port a node advertises. One that
/// advertises ours already is left to its stages.
#[test]
fn a_node_taken_over_from_another_replica_should_advertise_our_kubelet_port_at_once() {
    let (fence, member) = (Fence::closed(), Fence::closed());
    let mut h = Harness::with_fences(8, "10.0.0.1/16", Some(Some(member.clone())));
    fence.open_until(h.now.mono + 600 * SECOND);
    member.open_until(h.now.mono + 600 * SECOND);
    // kwok's default --node-port.
    let ours = 10247;
    for (rv, port, beats) in [("2", 20000, true), ("4", ours, false)] {
        let mut n = node("n", rv, true);
        n["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        n["status"]["daemonEndpoints"] = json!({"kubeletEndpoint": {"Port": port}});
        h.apply(NODE, n);
        h.step(held("n", Some(fence.clone())));
        h.advance(Duration::from_millis(10));
        match beats {
            true => {
                assert_eq!(h.last, [Due::Heartbeat]);
                let effects = h.last_effects.concat();
                assert!(effects.contains(&format!("Number({ours})")), "{effects}");
                h.land(0, Outcome::Written(None));
                h.step(held("n", None));
            }
            false => assert!(h.last.is_empty(), "advertises us already: {:?}", h.last),
        }
    }
    // Held, and a late write of the old holder shows its port again.
    let mut late = node("n", "6", true);
    late["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    late["status"]["daemonEndpoints"] = json!({"kubeletEndpoint": {"Port": 20000}});
    h.apply(NODE, late);
    h.advance(Duration::from_millis(10));
    assert_eq!(h.last, [Due::Heartbeat]);
}

/// Issue 25: with `--scale-out`, nothing goes out once our member Lease's fence has
/// closed, even for a node whose own Lease fence is open.
#[test]
fn no_stage_should_go_out_past_the_member_lease_fence() {
    let (node, member) = (Fence::closed(), Fence::closed());
    let mut h = Harness::with_fences(8, "10.0.0.1/16", Some(Some(member.clone())));
    node.open_until(h.now.mono + 60 * SECOND);
    h.step(held("n", Some(node.clone())));
    h.apply(POD, pod("p", 0, "10", None, false));
    h.advance(SECOND);
    assert!(h.out.is_empty(), "member Lease not renewed yet");
    member.open_until(h.now.mono + 10 * SECOND);
    h.advance(SECOND);
    assert_eq!(h.last, [READY]);
}

/// Issue 25: pods on a node another kwok drives are cached unparsed (counted), and
/// when the node's Lease becomes ours their IPs are adopted before any pod of the node
/// is given one: no IP is handed out twice across a handover.
#[test]
fn pods_of_a_node_driven_elsewhere_should_be_cached_unparsed_and_their_ips_adopted_on_takeover() {
    let fence = Fence::closed();
    let mut h = Harness::with_fences(8, "10.0.0.1/16", Some(None));
    let mut n = node("n", "2", true);
    n["spec"] = json!({"podCIDR": "10.1.0.0/24"});
    h.apply(NODE, n);
    // The other kwok gave p the node pool's first address.
    let mut p = pod("p", 0, "10", Some("Running"), false);
    p["status"]["podIP"] = json!("10.1.0.1");
    h.apply(POD, p);
    h.apply(POD, test_pod("q", "11", "ip"));
    assert_eq!(h.core.events_not_driven(), 2);
    h.advance(SECOND);
    assert!(h.out.is_empty(), "not ours to drive");
    fence.open_until(h.now.mono + 60 * SECOND);
    h.step(held("n", Some(fence.clone())));
    h.advance(SECOND);
    assert_eq!(h.out.len(), 1, "q's stage went out");
    let effects = h.last_effects.concat();
    assert!(effects.contains("10.1.0.2"), "q got the next free IP: {effects}");
    assert!(
        !effects.contains("10.1.0.1"),
        "p's IP handed out again: {effects}"
    );
    // Driven now: its pods' events are parsed again.
    h.apply(POD, pod("r", 0, "12", Some("Running"), false));
    assert_eq!(h.core.events_not_driven(), 2);
}

/// Issue 25: pods on a node without a podCIDR that another kwok drives are not parsed
/// either, but their `--cidr` address is read and kept from our own pods.
#[test]
fn pods_driven_elsewhere_on_a_node_without_pod_cidr_should_keep_their_address_unparsed() {
    let fence = Fence::closed();
    let mut h = Harness::with_fences(8, "10.0.0.1/16", Some(None));
    h.apply(NODE, node("theirs", "2", true));
    h.apply(NODE, node("n", "3", true));
    h.apply(POD, running_on("p", "10", "theirs", "10.0.0.1"));
    assert_eq!(h.core.events_not_driven(), 1);
    fence.open_until(h.now.mono + 60 * SECOND);
    h.step(held("n", Some(fence.clone())));
    let effects = h.ip_pod_effects("q", "11");
    assert!(effects.contains("10.0.0.2"), "q got the next free IP: {effects}");
    assert!(
        !effects.contains("10.0.0.1"),
        "p's IP handed out again: {effects}"
    );
}

/// Pod `name` at `rv`, Running on node `node` with IP `ip` (given by another kwok).
fn running_on(name: &str, rv: &str, node: &str, ip: &str) -> Value {
    let mut p = pod(name, 0, rv, Some("Running"), false);
    p["spec"]["nodeName"] = json!(node);
    p["status"]["podIP"] = json!(ip);
    p
}

/// A harness whose node `n` (no podCIDR) is driven here, beside node `theirs` (no
/// podCIDR either), which the table deals to another member.
fn driving_n_beside_theirs() -> Harness {
    let fence = Fence::closed();
    let mut h = Harness::with_fences(8, "10.0.0.1/16", Some(None));
    h.apply(NODE, node("theirs", "2", true));
    h.step(dealt("theirs", true));
    fence.open_until(h.now.mono + 60 * SECOND);
    h.step(held("n", Some(fence)));
    h
}

/// The lease worker's word that the table deals `node` elsewhere, or no longer.
fn dealt(node: &str, elsewhere: bool) -> Event {
    Event::Dealt(Dealt {
        node: node.into(),
        elsewhere,
    })
}

/// Issue 25: the pods of a node the table deals to another member are not cached at
/// all (dropped at the watch, and the cached ones forgotten); when the node is dealt
/// back they are fetched by one list no older than the newest pod event seen, and no
/// pod of the node is driven before that list is in: no IP the other member gave out
/// is handed out again, and a pod deleted while the list was out stays gone.
#[test]
fn pods_of_a_node_dealt_elsewhere_should_not_be_cached_and_be_fetched_before_it_is_driven() {
    let fence = Fence::closed();
    let mut h = Harness::with_fences(8, "10.0.0.1/16", Some(None));
    let mut n = node("n", "2", true);
    n["spec"] = json!({"podCIDR": "10.1.0.0/24"});
    h.apply(NODE, n);
    h.apply(POD, pod("p", 0, "10", Some("Running"), false));
    assert!(h.state("p").is_some(), "cached while nobody is known to drive it");
    h.step(dealt("n", true));
    assert_eq!(h.state("p"), None, "forgotten once dealt elsewhere");
    // The other member gave p the node pool's first address; q arrives.
    let mut p = pod("p", 0, "11", Some("Running"), false);
    p["status"]["podIP"] = json!("10.1.0.1");
    h.apply(POD, p.clone());
    h.apply(POD, test_pod("q", "12", "ip"));
    h.apply(POD, pod("x", 0, "13", Some("Running"), false));
    assert_eq!((h.state("p"), h.state("q")), (None, None), "not cached");
    assert_eq!(h.core.events_not_driven(), 4, "p twice, q, x: none parsed");
    assert!(h.fetches.is_empty());

    // Dealt back: one fetch, no older than the newest pod event seen.
    h.step(dealt("n", false));
    assert_eq!(h.fetches.len(), 1);
    let (node, generation, rv) = h.fetches[0].clone();
    assert_eq!((node.as_str(), rv.as_str()), ("n", "13"));
    // The Lease is ours before the list is in; a new pod arrives; x is deleted.
    fence.open_until(h.now.mono + 60 * SECOND);
    h.step(held("n", Some(fence.clone())));
    h.apply(POD, test_pod("r", "14", "ip"));
    h.delete(POD, pod("x", 0, "15", Some("Running"), false));
    h.advance(SECOND);
    assert!(
        h.out.is_empty(),
        "no pod of the node driven before its pods are in"
    );
    assert_eq!(h.state("r"), Some(State::Idle));

    // A stale fetch's answer changes nothing.
    let list = |pods: &[&Value]| pods.iter().map(|p| JsonObject::new(p)).collect::<Vec<_>>();
    let x = pod("x", 0, "13", Some("Running"), false);
    let q = test_pod("q", "12", "ip");
    h.step(Event::PodsFetched {
        node: "n".into(),
        generation: generation + 1,
        pods: list(&[&p, &q, &x]),
    });
    assert_eq!(h.state("q"), None);
    // The list, taken before x's deletion.
    h.step(Event::PodsFetched {
        node: "n".into(),
        generation,
        pods: list(&[&p, &q, &x]),
    });
    assert_eq!(h.state("x"), None, "deleted while the list was out: stays gone");
    assert!(h.state("p").is_some());
    h.advance(SECOND);
    assert_eq!(h.out.len(), 2, "q's and r's stages went out");
    let effects = h.last_effects.concat();
    assert!(
        effects.contains("10.1.0.2") && effects.contains("10.1.0.3"),
        "q and r got the next free IPs: {effects}"
    );
    assert!(
        !effects.contains("10.1.0.1"),
        "p's IP handed out again: {effects}"
    );
    // Ours now: nothing more is fetched, and its pods' events are cached.
    h.apply(POD, pod("s", 0, "16", Some("Running"), false));
    assert!(h.state("s").is_some());
    assert_eq!(h.fetches.len(), 1);
}

/// Issue 25 (review): a pod forgotten while our write giving it an IP is out keeps that
/// IP, even when the node comes back and its list predates the write; and a deletion of
/// an older pod of the same name, still queued behind the list, leaves the listed pod
/// (and its IP) alone.
#[test]
fn an_ip_should_stay_taken_across_a_drop_while_its_write_is_out_and_a_stale_delete() {
    let fence = Fence::closed();
    let mut h = Harness::with_fences(8, "10.0.0.1/16", Some(None));
    let mut n = node("n", "2", true);
    n["spec"] = json!({"podCIDR": "10.1.0.0/24"});
    h.apply(NODE, n);
    fence.open_until(h.now.mono + 60 * SECOND);
    h.step(held("n", Some(fence.clone())));
    assert!(
        h.ip_pod_effects("p", "10").contains("10.1.0.1"),
        "p's write gives it .1"
    );
    // Dealt away while p's write is out, and back before it lands.
    h.step(held("n", None));
    h.step(dealt("n", true));
    assert_eq!(h.state("p"), None);
    h.step(dealt("n", false));
    h.step(held("n", Some(fence.clone())));
    let (_, generation, _) = h.fetches.last().cloned().unwrap();
    // The list predates the write: p without an IP; r, re-created as uid r1 after its
    // first pod r0 (whose deletion is still queued), holds .2.
    let mut r = pod("r", 1, "12", Some("Running"), false);
    r["status"]["podIP"] = json!("10.1.0.2");
    let pods = [test_pod("p", "10", "ip"), r]
        .iter()
        .map(JsonObject::new)
        .collect();
    h.step(Event::PodsFetched {
        node: "n".into(),
        generation,
        pods,
    });
    h.delete(POD, pod("r", 0, "11", Some("Running"), false));
    assert!(h.state("r").is_some(), "the newer r stays");
    let effects = h.ip_pod_effects("q", "13");
    assert!(
        !effects.contains("10.1.0.1") && !effects.contains("10.1.0.2"),
        "an IP a pod may hold handed out again: {effects}"
    );
}

/// Issue 25 (review): a pod not cached that is deleted while the watch is away (a
/// re-list) frees its IP when the re-list ends without it.
#[test]
fn a_re_list_should_free_the_ips_of_pods_not_cached_that_are_gone() {
    let mut h = driving_n_beside_theirs();
    h.apply(POD, running_on("p", "10", "theirs", "10.0.0.1"));
    let kept = running_on("kept", "11", "theirs", "10.0.0.2");
    h.apply(POD, kept.clone());
    // The watch re-lists: p is gone, `kept` is listed again.
    h.step(Event::Watch(Input::Relisting(POD)));
    h.apply(POD, kept);
    h.step(Event::Watch(Input::Relisted(POD)));
    let effects = h.ip_pod_effects("q", "13");
    assert!(effects.contains("10.0.0.1"), "p's address free again: {effects}");
    let effects = h.ip_pod_effects("s", "14");
    assert!(
        effects.contains("10.0.0.3"),
        "kept's address still taken: {effects}"
    );
}

/// Issue 25: a pod not cached (its node dealt elsewhere) keeps the `--cidr` address it
/// holds from our pods while it lives, and frees it when it is deleted.
#[test]
fn a_pod_not_cached_should_hold_its_cidr_address_until_deleted() {
    let mut h = driving_n_beside_theirs();
    let p = running_on("p", "10", "theirs", "10.0.0.1");
    h.apply(POD, p.clone());
    assert_eq!(h.state("p"), None, "not cached");
    let effects = h.ip_pod_effects("q", "11");
    assert!(
        effects.contains("10.0.0.2"),
        "q passed over p's address: {effects}"
    );
    h.delete(POD, p);
    let effects = h.ip_pod_effects("r", "13");
    assert!(effects.contains("10.0.0.1"), "p's address free again: {effects}");
}

/// Issue 25: with `--scale-out`, an object not bound to a node (a Stage's other kinds)
/// is driven by the one member [`kwok_members::owner_of`] gives it, none before the
/// members are known; when the members change, the objects dealt to us start.
#[test]
fn with_scale_out_objects_off_nodes_should_be_driven_by_one_member_each() {
    let member = Fence::closed();
    let mut h = Harness::with_fences(8, "10.0.0.1/16", Some(Some(member.clone())));
    member.open_until(h.now.mono + 60 * SECOND);
    let both: Arc<[String]> = Arc::from(["me".to_owned(), "other".to_owned()]);
    let name = |owner: &str| {
        (0..)
            .map(|i| format!("cm-{i}"))
            .find(|n| kwok_members::owner_of(&both, &format!("ns/{n}")) == Some(owner))
            .unwrap()
    };
    let (mine, theirs) = (name("me"), name("other"));
    let configmap = |name: &str| {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                         "resourceVersion": "5", "labels": {"gone": "yes"}},
        })
    };
    h.apply(CONFIGMAP, configmap(&mine));
    h.apply(CONFIGMAP, configmap(&theirs));
    h.advance(SECOND);
    assert!(h.out.is_empty(), "no members known yet: no object is ours");
    h.step(Event::Members(both.clone()));
    h.advance(SECOND);
    let written: Vec<&str> = h.out.iter().map(|(t, _)| t.key.name.as_str()).collect();
    assert_eq!(written, [mine.as_str()], "only the one dealt to us");
    // The other member leaves: its object is ours now.
    h.step(Event::Members(Arc::from(["me".to_owned()])));
    h.advance(SECOND);
    let written: Vec<&str> = h.out.iter().map(|(t, _)| t.key.name.as_str()).collect();
    assert_eq!(written, [mine.as_str(), theirs.as_str()]);
}

#[test]
fn a_lost_nodes_status_should_go_out_past_the_lease_pressure_limit() {
    let mut h = Harness::new(8);
    h.step(Event::Pressure(Some(Pressure::AtRisk)));
    for name in ["a", "b", "c"] {
        h.apply(POD, pod(name, 0, "10", None, false));
    }
    h.advance(SECOND);
    assert_eq!(h.out.len(), 2, "at risk: two writes per shard");
    // A new node (no Ready condition) waits for a slot like any stage, but a node the
    // control plane marked lost is made Ready again at once: its status write is the
    // heartbeat the renewals at risk are there to keep.
    h.apply(NODE, node("fresh", "20", false));
    let mut lost = node("lost", "21", false);
    lost["status"] = json!({"conditions": [{"type": "Ready", "status": "Unknown"}]});
    h.apply(NODE, lost);
    h.advance(SECOND);
    assert_eq!(h.last, [Due::Stage(0)], "only the lost node's stage went out");
    assert_eq!(h.out.last().unwrap().0.key.name, "lost");
    assert_eq!(h.core.writes_out(), 3);
    // Calm again: everything waiting goes out as slots free.
    h.step(Event::Pressure(Some(Pressure::Calm)));
    h.land(0, Outcome::Written(None));
    assert_eq!(h.out.len(), 4, "the pod and the new node: {:?}", h.last);
}

#[test]
fn a_lost_node_should_take_the_next_free_slot_before_writes_queued_earlier() {
    let mut h = Harness::new(2);
    for name in ["a", "b", "c"] {
        h.apply(POD, pod(name, 0, "10", None, false));
    }
    h.advance(SECOND);
    assert_eq!(h.out.len(), 2, "two slots");
    // Queued behind pod c: a new node, and one that is lost by the time a slot frees
    // (it queued before the control plane marked it), then one lost when it came due.
    h.apply(NODE, node("fresh", "20", false));
    h.apply(NODE, node("later-lost", "21", false));
    h.advance(SECOND);
    let lost = |name: &str, rv: &str| {
        let mut lost = node(name, rv, false);
        lost["status"] = json!({"conditions": [{"type": "Ready", "status": "Unknown"}]});
        lost
    };
    h.apply(NODE, lost("later-lost", "22"));
    h.apply(NODE, lost("lost", "23"));
    h.advance(SECOND);
    assert_eq!(h.core.writes_out(), 2, "no slot is free yet");
    let mut order = Vec::new();
    while !h.out.is_empty() {
        h.land(0, Outcome::Written(None));
        let started = &h.out[h.out.len() - h.last.len()..];
        order.extend(started.iter().map(|(t, _)| t.key.name.clone()));
    }
    assert_eq!(order, ["later-lost", "lost", "c", "fresh"]);
}

/// A Ready node `n` (at `rv`) whose `kwok.x-k8s.io/gpus-tainted` annotation is `tainted`.
fn gpu_node(rv: &str, tainted: Option<&str>) -> Value {
    let mut n = node("n", rv, true);
    n["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    if let Some(tainted) = tainted {
        n["metadata"]["annotations"] = json!({"kwok.x-k8s.io/gpus-tainted": tainted});
    }
    n
}

/// A Running pod `p` on `n` whose container `c` uses claim `gpu`, made from a template
/// as claim `p-gpu`; `report` is what its container reports.
fn claiming_pod(rv: &str, report: Option<Value>) -> Value {
    let mut p = pod("p", 0, rv, Some("Running"), false);
    p["spec"]["resourceClaims"] = json!([{"name": "gpu", "resourceClaimTemplateName": "t"}]);
    p["spec"]["containers"] = json!([{"name": "c", "resources": {"claims": [{"name": "gpu"}]}}]);
    p["status"]["resourceClaimStatuses"] = json!([{"name": "gpu", "resourceClaimName": "p-gpu"}]);
    p["status"]["containerStatuses"] = json!([{"name": "c", "ready": true}]);
    if let Some(report) = report {
        p["status"]["containerStatuses"][0]["allocatedResourcesStatus"] = report;
    }
    p
}

/// See: issue 26. A kubelet reports the health of a pod's DRA devices in its container
/// statuses; the devices are in the claim, which another watch (and shard) delivers.
#[test]
fn a_pod_should_report_its_devices_once_its_claim_is_known_and_again_when_its_node_taints_them() {
    let mut h = Harness::new(8);
    h.apply(NODE, gpu_node("2", None));
    h.apply(POD, claiming_pod("10", None));
    assert!(scheduled(Due::ResourceHealth)(h.state("p")), "{:?}", h.state("p"));
    h.advance(SECOND);
    assert!(h.last.is_empty(), "the claim is not known yet");
    h.apply(
        CLAIM,
        json!({
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": "p-gpu", "namespace": "ns", "uid": "uid-c", "resourceVersion": "11"},
            "status": {"allocation": {"devices": {"results": [
                {"request": "gpu", "driver": "gpu.kwok.x-k8s.io", "pool": "n", "device": "gpu-1"},
            ]}}},
        }),
    );
    h.advance(SECOND);
    assert_eq!(h.last, [Due::ResourceHealth], "tried again after its backoff");
    let healthy = json!([{"name": "claim:gpu", "resources": [
        {"resourceID": "gpu.kwok.x-k8s.io/n/gpu-1", "health": "Healthy"},
    ]}]);
    assert!(
        h.last_effects[0].contains("gpu.kwok.x-k8s.io/n/gpu-1"),
        "{:?}",
        h.last_effects
    );
    h.land(
        0,
        Outcome::Written(response(claiming_pod("12", Some(healthy.clone())))),
    );
    assert_eq!(h.state("p"), Some(State::Idle), "reported as it should be");
    // The node taints the GPU: its pods report it unhealthy at once.
    h.apply(NODE, gpu_node("3", Some("1")));
    assert!(scheduled(Due::ResourceHealth)(h.state("p")), "{:?}", h.state("p"));
    h.advance(Duration::ZERO);
    assert_eq!(h.last, [Due::ResourceHealth]);
    assert!(h.last_effects[0].contains("Unhealthy"), "{:?}", h.last_effects);
    h.land(0, Outcome::Written(None));
    // A deleted claim is forgotten: a pod that still names it waits again.
    h.delete(
        CLAIM,
        json!({"metadata": {"name": "p-gpu", "namespace": "ns", "uid": "uid-c"}}),
    );
    h.apply(POD, claiming_pod("13", Some(healthy)));
    assert!(scheduled(Due::ResourceHealth)(h.state("p")), "{:?}", h.state("p"));
}
