//! `--kwok-priority`: kwok's requests reach the apiserver as a kubelet's do (its own
//! user, RBAC, API Priority and Fairness at `node-high`), or exempt as upstream's.

use std::time::Duration;

use crate::util::{Cluster, metric_sum};

/// Dispatched requests of flow schema `schema` at priority level `level`, from the
/// apiserver's `/metrics`.
fn dispatched(cluster: &Cluster, schema: &str, level: &str) -> f64 {
    let metrics = cluster.kubectl(&["get", "--raw", "/metrics"]);
    metric_sum(
        &metrics,
        "apiserver_flowcontrol_dispatched_requests_total",
        &format!("flow_schema=\"{schema}\",priority_level=\"{level}\""),
    )
}

/// Two nodes made by kwokctl, Ready by kwok.
fn two_ready_nodes(cluster: &Cluster) {
    cluster
        .kwokctl
        .ok(&["--name", cluster.name, "scale", "node", "--replicas", "2"]);
    cluster.eventually(
        &["get", "nodes", "--no-headers"],
        Duration::from_secs(60),
        |out| {
            out.lines()
                .filter(|l| l.split_whitespace().nth(1) == Some("Ready"))
                .count()
                == 2
        },
    );
}

#[test]
fn kwok_should_be_prioritized_as_a_kubelet_by_default_and_exempt_on_request() {
    let cluster = Cluster::create("prio", &[]);
    two_ready_nodes(&cluster);
    let schema = cluster.kubectl(&[
        "get",
        "flowschema",
        "kwokctl-kwok-controller",
        "-o",
        "jsonpath={.spec.priorityLevelConfiguration.name}",
    ]);
    assert_eq!(schema.trim(), "node-high");
    let role = cluster.kubectl(&[
        "get",
        "clusterrolebinding",
        "kwokctl-kwok-controller",
        "-o",
        "jsonpath={.roleRef.name} {.subjects[0].name}",
    ]);
    assert_eq!(role.trim(), "cluster-admin kwok-controller");
    // kwok's Lease renewals and node writes went through its schema at node-high: it
    // is not in system:masters (which APF exempts and its schema would never see).
    let node_high = dispatched(&cluster, "kwokctl-kwok-controller", "node-high");
    assert!(node_high > 0.0, "no kwok request at node-high");
    let config = std::fs::read_to_string(cluster.dir().join("kwok.yaml")).unwrap();
    assert!(config.contains("kwokPriority: node-high"), "{config}");

    let exempt = Cluster::create("prio-exempt", &["--kwok-priority", "exempt"]);
    two_ready_nodes(&exempt);
    let missing = exempt.kwokctl.err(&[
        "--name",
        exempt.name,
        "kubectl",
        "get",
        "flowschema",
        "kwokctl-kwok-controller",
    ]);
    assert!(
        missing.contains("NotFound") || missing.contains("not found"),
        "{missing}"
    );
    // Upstream's set-up: kwok in system:masters, its requests exempt like the admin's.
    assert_eq!(dispatched(&exempt, "kwokctl-kwok-controller", "node-high"), 0.0);
    let config = std::fs::read_to_string(exempt.dir().join("kwok.yaml")).unwrap();
    assert!(config.contains("kwokPriority: exempt"), "{config}");
}

/// User and groups the apiserver sees for `kubeconfig` (`kubectl auth whoami`).
fn whoami(cluster: &Cluster, kubeconfig: &std::path::Path) -> String {
    cluster.kubectl(&[
        "--kubeconfig",
        &kubeconfig.display().to_string(),
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
    ])
}

#[test]
fn kwok_should_authenticate_by_token_by_default_and_by_certificate_on_request() {
    let cluster = Cluster::create("auth", &[]);
    two_ready_nodes(&cluster);
    let kubeconfig = cluster.kwok_kubeconfig();
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(
        text.contains("token:") && !text.contains("client-certificate-data"),
        "{text}"
    );
    // The apiserver knows the token as kwok's user, in the groups of its priority.
    let who = whoami(&cluster, &kubeconfig);
    assert!(
        who.starts_with("kwok-controller ") && who.contains("system:monitoring"),
        "{who}"
    );
    assert_eq!(cluster.config_value("kwokAuth"), "token");
    // A wrong token is refused: the apiserver reads the file, it does not let anyone in.
    let forged = cluster.dir().join("forged.yaml");
    let token = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("token:"))
        .unwrap()
        .trim();
    std::fs::write(&forged, text.replace(token, "not-the-token")).unwrap();
    let refused = cluster.kwokctl.err(&[
        "--name",
        cluster.name,
        "kubectl",
        "--kubeconfig",
        &forged.display().to_string(),
        "get",
        "nodes",
    ]);
    assert!(refused.contains("Unauthorized"), "{refused}");
    // The token outlives a restart: the apiserver reads the same file again.
    cluster.kwokctl.ok(&["--name", cluster.name, "stop", "cluster"]);
    cluster.kwokctl.ok(&["--name", cluster.name, "start", "cluster"]);
    assert_eq!(whoami(&cluster, &kubeconfig), who);

    let cert = Cluster::create("auth-cert", &["--kwok-auth", "cert", "--kwok-priority", "exempt"]);
    two_ready_nodes(&cert);
    let kubeconfig = cert.kwok_kubeconfig();
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(
        text.contains("client-certificate-data") && !text.contains("token:"),
        "{text}"
    );
    assert!(!cert.dir().join("pki/token-auth.csv").exists());
    let who = whoami(&cert, &kubeconfig);
    assert!(
        who.starts_with("kwok-controller ") && who.contains("system:masters"),
        "{who}"
    );
    assert_eq!(cert.config_value("kwokAuth"), "cert");
}
