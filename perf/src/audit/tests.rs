//! The checker on synthetic audit lines.

use std::time::Duration;

use super::*;

const LEASE: Duration = Duration::from_secs(40);
const KUBECTL: &str = "kubectl/v1.36.5 (linux/amd64) kubernetes/abc";
const KCM: &str = "kube-controller-manager/v1.36.5 (linux/amd64) kubernetes/abc";

fn kwok(id: &str) -> String {
    format!("kwok/0.1.0 ({id})")
}

/// Second `s` of a fixed day, as the apiserver writes it (microseconds).
fn at(s: f64) -> String {
    let micros = (s * 1e6) as i64;
    let t = Timestamp::from_microsecond(1_796_000_000_000_000 + micros).unwrap();
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// One `ResponseComplete` event; `object` is `resource[/subresource] namespace/name`.
fn line(agent: &str, verb: &str, object: &str, s: f64, code: u16, body: Option<&str>) -> String {
    let (resource, key) = object.split_once(' ').unwrap();
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    let body = body.map_or(String::new(), |b| format!(r#""requestObject":{b},"#));
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"x","stage":"ResponseComplete","requestURI":"/","verb":"{verb}","user":{{"username":"admin"}},"userAgent":"{agent}","objectRef":{{"resource":"{resource}","subresource":"{subresource}","namespace":"{namespace}","name":"{name}","apiVersion":"v1"}},"responseStatus":{{"metadata":{{}},"code":{code}}},{body}"requestReceivedTimestamp":"{}","stageTimestamp":"{}"}}"#,
        at(s),
        at(s + 0.002)
    ) + "\n"
}

fn status(id: &str, node: &str, s: f64) -> String {
    line(&kwok(id), "patch", &format!("nodes/status {node}"), s, 200, None)
}

fn lease(id: &str, node: &str, s: f64) -> String {
    let object = format!("leases kube-node-lease/{node}");
    line(&kwok(id), "update", &object, s, 200, Some("{}"))
}

fn pod_status(id: &str, pod: &str, s: f64) -> String {
    line(
        &kwok(id),
        "patch",
        &format!("pods/status default/{pod}"),
        s,
        200,
        None,
    )
}

fn run(lines: &[String]) -> Report {
    check(lines.concat().as_bytes(), LEASE).unwrap()
}

#[test]
fn identity_should_be_read_from_a_kwok_user_agent_only() {
    assert_eq!(identity("kwok/0.1.0 (kwok-a-1)"), Some("kwok-a-1"));
    assert_eq!(identity("kwok/0.1.0 (kwok (x))"), Some("kwok (x)"));
    assert_eq!(identity(KCM), None);
    assert_eq!(identity("kwok/0.1.0 ()"), None);
    assert_eq!(identity("kwok/0.1.0"), None);
}

#[test]
fn a_clean_handover_should_pass_and_be_counted() {
    let log = [
        lease("a", "n1", 0.0),
        status("a", "n1", 0.5),
        lease("a", "n1", 10.0),
        status("a", "n1", 20.0),
        lease("a", "n1", 20.0),
        // a stops; b takes the Lease over once it lapsed, then drives.
        lease("b", "n1", 61.0),
        status("b", "n1", 61.5),
        lease("b", "n1", 71.0),
        status("b", "n1", 80.0),
    ];
    let report = run(&log);
    assert_eq!(report.findings, vec![]);
    assert!(report.double_driven_nodes().is_empty());
    let node = &report.nodes["n1"];
    assert_eq!(node.driver_changes, 1);
    assert_eq!(node.lease_takeovers, 1);
    assert_eq!(
        node.writers["a"],
        Writes {
            node: 2,
            pods: 0,
            lease: 3
        }
    );
    assert_eq!(report.nodes_driven_by(), [("a", 1), ("b", 1)].into());
    assert_eq!(report.identities["b"], 4);
    assert_eq!(report.drives, 4);
    assert_eq!(report.events, 9);
}

#[test]
fn a_write_after_another_kwok_took_the_lease_should_be_flagged() {
    let log = [
        lease("a", "n1", 0.0),
        status("a", "n1", 1.0),
        lease("b", "n1", 60.0),
        status("b", "n1", 61.0),
        lease("b", "n1", 62.0),
        // a's write comes more than a lease period after its last one, yet b holds it.
        status("a", "n1", 65.0),
    ];
    let report = run(&log);
    let want = Finding::AfterTakeover {
        node: "n1".into(),
        a: "a".into(),
        b: "b".into(),
        taken_at: at(60.002).parse().unwrap(),
        a_at: at(65.0).parse().unwrap(),
    };
    assert_eq!(report.findings, vec![want]);
    assert_eq!(report.double_driven_nodes(), ["n1"].into());
    assert!(report.summary(5).contains("double-driven nodes: 1 (1 findings)"));
    assert!(
        report.summary(5).contains("node n1: a wrote at"),
        "{}",
        report.summary(5)
    );
}

#[test]
fn a_write_racing_a_takeover_should_not_be_flagged_as_after_it() {
    // a's write was received before b's take-over was answered: either may have gone first.
    let log = [
        lease("a", "n1", 0.0),
        lease("b", "n1", 60.0),
        status("a", "n1", 60.001),
    ];
    assert_eq!(run(&log).findings, vec![]);
}

#[test]
fn an_interleave_within_one_lease_period_should_be_flagged_without_leases_in_the_log() {
    let log = [
        status("a", "n1", 0.0),
        status("b", "n1", 5.0),
        status("a", "n1", 10.0),
    ];
    let report = run(&log);
    assert_eq!(
        report.findings,
        vec![Finding::Interleaved {
            node: "n1".into(),
            a: "a".into(),
            b: "b".into(),
            a_before: at(0.0).parse().unwrap(),
            b_at: at(5.0).parse().unwrap(),
            a_again: at(10.0).parse().unwrap(),
        }]
    );
    assert_eq!(report.nodes["n1"].driver_changes, 2);
}

/// A replica killed, its node taken over, the replica started again and the node dealt
/// back, all within one lease period: the Lease writes show both handovers.
#[test]
fn a_handover_there_and_back_within_a_lease_period_should_pass_when_the_leases_show_it() {
    let there_and_back = [
        lease("a", "n1", 0.0),
        status("a", "n1", 0.5),
        lease("b", "n1", 15.0),
        status("b", "n1", 15.1),
        lease("a", "n1", 30.0),
        status("a", "n1", 30.1),
    ];
    assert_eq!(run(&there_and_back).findings, vec![]);
    // The same writes with a never taking the Lease back: flagged (both checks).
    let not_back = [
        lease("a", "n1", 0.0),
        status("a", "n1", 0.5),
        lease("b", "n1", 15.0),
        status("b", "n1", 15.1),
        status("a", "n1", 30.1),
    ];
    let findings = run(&not_back).findings;
    assert!(
        findings.iter().any(|f| matches!(f, Finding::Interleaved { .. }))
            && findings
                .iter()
                .any(|f| matches!(f, Finding::AfterTakeover { .. })),
        "{findings:?}"
    );
}

#[test]
fn a_kwok_driving_a_node_again_after_a_lease_period_should_pass() {
    let log = [
        status("a", "n1", 0.0),
        status("b", "n1", 50.0),
        status("a", "n1", 120.0),
        status("a", "n2", 0.0),
    ];
    let report = run(&log);
    assert_eq!(report.findings, vec![]);
    assert_eq!(report.nodes.len(), 2);
}

#[test]
fn pod_writes_should_count_for_the_node_the_pod_was_placed_on() {
    let pod = |name: &str, node: &str| {
        format!(r#"{{"metadata":{{"name":"{name}"}},"spec":{{"nodeName":"{node}"}}}}"#)
    };
    let log = [
        // p1 created on n1 (objectRef without a name: taken from the body).
        line(
            KUBECTL,
            "create",
            "pods default/",
            0.0,
            201,
            Some(&pod("p1", "n1")),
        ),
        // p2 bound to n2 by the scheduler.
        line(
            KUBECTL,
            "create",
            "pods default/p2",
            0.0,
            201,
            Some(r#"{"spec":{}}"#),
        ),
        line(
            "kube-scheduler/v1.36.5",
            "create",
            "pods/binding default/p2",
            0.1,
            201,
            Some(r#"{"target":{"kind":"Node","name":"n2"}}"#),
        ),
        pod_status("a", "p1", 1.0),
        status("b", "n1", 2.0),
        pod_status("a", "p1", 3.0),
        pod_status("b", "p2", 4.0),
        pod_status("b", "p3", 5.0),
    ];
    let report = run(&log);
    assert_eq!(report.double_driven_nodes(), ["n1"].into());
    assert_eq!(report.nodes["n1"].writers["a"].pods, 2);
    assert_eq!(report.nodes["n2"].writers["b"].pods, 1);
    assert_eq!(report.unplaced_pod_writes, 1);
}

#[test]
fn a_pod_recreated_on_another_node_should_count_there() {
    let pod = |node: &str| format!(r#"{{"metadata":{{"name":"p"}},"spec":{{"nodeName":"{node}"}}}}"#);
    let log = [
        line(KUBECTL, "create", "pods default/p", 0.0, 201, Some(&pod("n1"))),
        pod_status("a", "p", 1.0),
        line(KUBECTL, "create", "pods default/p", 5.0, 201, Some(&pod("n2"))),
        pod_status("b", "p", 6.0),
        pod_status("a", "p", 7.0),
    ];
    let report = run(&log);
    // On n2, b then a: a change of driver, not yet a double drive.
    assert_eq!(report.findings, vec![]);
    assert_eq!(report.nodes["n1"].writers["a"].pods, 1);
    assert_eq!(report.nodes["n2"].writers.len(), 2);
    assert_eq!(report.nodes["n2"].driver_changes, 1);
}

#[test]
fn other_agents_and_failed_writes_should_not_count() {
    let log = [
        status("a", "n1", 0.0),
        line(KCM, "patch", "nodes/status n1", 1.0, 200, None),
        line(&kwok("b"), "patch", "nodes/status n1", 2.0, 409, None),
        line(&kwok("b"), "get", "nodes n1", 2.5, 200, None),
        status("a", "n1", 3.0),
    ];
    let report = run(&log);
    assert_eq!(report.findings, vec![]);
    assert_eq!(report.identities, [("a".to_owned(), 2)].into());
}

#[test]
fn a_partly_written_last_line_should_be_skipped_and_a_bad_line_named() {
    let mut text = status("a", "n1", 0.0);
    text.push_str(&status("a", "n1", 1.0)[..50]);
    let report = check(text.as_bytes(), LEASE).unwrap();
    assert_eq!(report.drives, 1);

    let text = status("a", "n1", 0.0) + "not json\n";
    let err = check(text.as_bytes(), LEASE).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("audit log line 2: not an audit event:"),
        "{err}"
    );
}
