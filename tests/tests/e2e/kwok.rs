//! The `kwok` binary started by the tests themselves (the cluster's own controller is
//! stopped first): which nodes it picks, stages from `--config` and from Stage
//! objects, two replicas sharing a cluster, and an apiserver restart mid-run.

use std::{collections::HashSet, fs, thread::sleep, time::Duration};

use crate::util::{Cluster, KwokProcess};

pub(crate) const READY: &str = "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}";
const HOLDERS: &str = "jsonpath={range .items[*]}{.metadata.name}={.spec.holderIdentity}{\"\\n\"}{end}";

pub(crate) fn node(name: &str, fake: bool, labels: &str) -> String {
    let annotation = if fake {
        "  annotations: {kwok.x-k8s.io/node: fake}\n"
    } else {
        ""
    };
    format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n{annotation}  labels: {{{labels}}}\n")
}

/// A cluster whose own kwok controller is stopped, so the test's kwoks are alone.
pub(crate) fn bare_cluster(name: &'static str) -> Cluster {
    let cluster = Cluster::create(name, &[]);
    cluster.kill("kwok-controller");
    cluster
}

/// A kwok driving the cluster with `stages` (written to a `--config` file), without leases.
pub(crate) fn kwok_with_stages(cluster: &Cluster, stages: &str) -> KwokProcess {
    let config = cluster.dir().join("stages.yaml");
    fs::write(&config, stages).unwrap();
    KwokProcess::start(
        cluster,
        &[
            &format!("--config={}", config.display()),
            "--node-lease-duration-seconds=0",
        ],
    )
}

/// Node name → Ready status.
fn ready(cluster: &Cluster) -> Vec<(String, String)> {
    pairs(&cluster.kubectl(&["get", "nodes", "-o", READY]))
}

fn pairs(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
}

/// A node stage that marks nodes labelled `mark=yes` with an annotation, written as
/// upstream KWOK documents it (a metadata patch).
const MARK_STAGE: &str = r#"apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: mark
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  # Of the stages matching an object one is drawn by weight: with the default stages'
  # weight 0, this one always wins while it matches. Without it a new node could draw
  # the heartbeat stage (minutes away) and stay unmarked past the test's wait.
  weight: 1
  selector:
    matchLabels:
      mark: "yes"
    matchExpressions:
    - key: '.metadata.annotations.marked'
      operator: DoesNotExist
  next:
    patches:
    - type: merge
      template: |
        metadata:
          annotations:
            marked: STAGE
"#;

#[test]
fn kwok_should_drive_annotated_nodes_only_with_stages_from_config() {
    let cluster = bare_cluster("select");
    let node_fast =
        fs::read_to_string(crate::util::repo_root().join("engine/stages/node-fast.yaml")).unwrap();
    let kwok = kwok_with_stages(
        &cluster,
        &format!("{node_fast}\n---\n{}", MARK_STAGE.replace("STAGE", "from-config")),
    );
    cluster.apply(&node("fake-0", true, "mark: \"yes\""));
    cluster.apply(&node("real-0", false, "mark: \"yes\""));

    cluster.eventually(&["get", "nodes", "-o", READY], Duration::from_secs(60), |o| {
        o.contains("fake-0=True")
    });
    let marked = "jsonpath={.metadata.annotations.marked}";
    cluster.eventually(
        &["get", "node", "fake-0", "-o", marked],
        Duration::from_secs(30),
        |o| o == "from-config",
    );
    // The unannotated node is someone else's: no status, no annotation, no lease.
    sleep(Duration::from_secs(3));
    assert_eq!(
        ready(&cluster),
        [
            ("fake-0".to_owned(), "True".to_owned()),
            ("real-0".to_owned(), String::new())
        ]
    );
    assert_eq!(cluster.kubectl(&["get", "node", "real-0", "-o", marked]), "");
    // Its watches share one HTTP/2 connection and its stage writes another (kube's
    // default client would hold one HTTP/1.1 connection per request in flight; on one
    // connection the writes starved the watches: shards/src/client.rs).
    assert_eq!(kwok.connections_to(cluster.apiserver_port()), 2);
}

/// `--manage-single-node`: kwok drives that node and its pods alone, and the apiserver
/// sends it nothing else (its pod and node watches select them by field, as upstream's).
/// Paged initial lists here; the other tests list by streaming.
#[test]
fn kwok_should_drive_its_single_node_and_be_sent_nothing_else() {
    let cluster = bare_cluster("single");
    let kwok = KwokProcess::start(&cluster, &["--manage-single-node=solo", "--initial-list=paged"]);
    cluster.apply(&node("solo", false, ""));
    cluster.apply(&node("other", true, ""));
    cluster.apply(&bound_pod("on-solo", "single", "solo"));
    for i in 0..20 {
        cluster.apply(&bound_pod(&format!("on-other-{i}"), "single", "other"));
    }
    let phases = "jsonpath={range .items[*]}{.metadata.name}={.status.phase}{\"\\n\"}{end}";
    cluster.eventually(
        &["get", "pods", "-l", "app=single", "-o", phases],
        Duration::from_secs(60),
        |o| o.contains("on-solo=Running"),
    );
    cluster.eventually(&["get", "nodes", "-o", READY], Duration::from_secs(30), |o| {
        o.contains("solo=True")
    });
    sleep(Duration::from_secs(3));
    assert_eq!(
        ready(&cluster),
        [
            ("other".to_owned(), String::new()),
            ("solo".to_owned(), "True".to_owned())
        ],
        "the annotated node is not this kwok's"
    );
    let pods = cluster.kubectl(&["get", "pods", "-l", "app=single", "-o", phases]);
    assert_eq!(pods.matches("=Running").count(), 1, "{pods}");
    // Unfiltered, each of the other node's 20 pods would have arrived at least once.
    // (kwok is ready only once both field-selected watches have listed, so the
    // apiserver took the selectors.)
    let pod_events = kwok.metric_where("kwok_watch_events_total", "kind=\"Pod\"");
    assert!((1.0..10.0).contains(&pod_events), "{pod_events} pod events");
}

#[test]
fn kwok_should_take_stages_from_stage_objects_and_apply_changes_live() {
    let cluster = bare_cluster("crds");
    let _kwok = KwokProcess::start(&cluster, &["--enable-crds=Stage"]);
    // The CRD and the default stages were created.
    let stages = cluster.kubectl(&["get", "stages", "-o", "name"]);
    assert!(stages.contains("stage.kwok.x-k8s.io/node-initialize"), "{stages}");
    assert!(stages.contains("stage.kwok.x-k8s.io/pod-ready"), "{stages}");

    cluster.apply(&node("fake-0", true, "mark: \"yes\""));
    cluster.eventually(&["get", "nodes", "-o", READY], Duration::from_secs(60), |o| {
        o.contains("fake-0=True")
    });
    // A Stage created now applies to the node already there.
    cluster.apply(&MARK_STAGE.replace("STAGE", "from-object"));
    let marked = "jsonpath={.metadata.annotations.marked}";
    cluster.eventually(
        &["get", "node", "fake-0", "-o", marked],
        Duration::from_secs(30),
        |o| o == "from-object",
    );
    // Changing it applies to the next node without a restart.
    cluster.apply(&MARK_STAGE.replace("STAGE", "changed"));
    sleep(Duration::from_secs(1));
    cluster.apply(&node("fake-1", true, "mark: \"yes\""));
    cluster.eventually(
        &["get", "node", "fake-1", "-o", marked],
        Duration::from_secs(30),
        |o| o == "changed",
    );
    // A broken Stage object is left out; the rest keep working.
    cluster.apply(
        "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata:\n  name: broken\nspec:\n  resourceRef: {kind: Node}\n  selector:\n    matchExpressions:\n    - {key: '.x', operator: Sideways}\n  next: {}\n",
    );
    cluster.apply(&node("fake-2", true, ""));
    cluster.eventually(&["get", "nodes", "-o", READY], Duration::from_secs(60), |o| {
        o.contains("fake-2=True")
    });
}

#[test]
fn two_kwoks_should_split_nodes_and_one_should_take_over_when_the_other_dies() {
    let cluster = bare_cluster("pair");
    // 8 s leases: renewed every 2 s, taken over at most 8 s after the holder dies.
    let lease = "--node-lease-duration-seconds=8";
    // Which kwok creates a new node's Lease first is a race, so a alone takes the first
    // four (the takeover below needs a to hold some); both race for the other four.
    let mut a = KwokProcess::start(&cluster, &["--id=kwok-a", lease]);
    for i in 0..4 {
        cluster.apply(&node(&format!("fake-{i}"), true, ""));
    }
    cluster.eventually(
        &["-n", "kube-node-lease", "get", "leases", "-o", HOLDERS],
        Duration::from_secs(30),
        |o| o.lines().filter(|l| l.ends_with("=kwok-a")).count() == 4,
    );
    let b = KwokProcess::start(&cluster, &["--id=kwok-b", lease]);
    for i in 4..8 {
        cluster.apply(&node(&format!("fake-{i}"), true, ""));
    }
    cluster.eventually(&["get", "nodes", "-o", READY], Duration::from_secs(60), |o| {
        o.lines().filter(|l| l.ends_with("=True")).count() == 8
    });
    let holders = || pairs(&cluster.kubectl(&["-n", "kube-node-lease", "get", "leases", "-o", HOLDERS]));
    let first = cluster.eventually(
        &["-n", "kube-node-lease", "get", "leases", "-o", HOLDERS],
        Duration::from_secs(30),
        |o| {
            o.lines()
                .filter(|l| l.ends_with("=kwok-a") || l.ends_with("=kwok-b"))
                .count()
                == 8
        },
    );
    // Over three renewal periods no lease changes hands: each node has one driver.
    sleep(Duration::from_secs(6));
    assert_eq!(pairs(&first), holders(), "leases changed hands while both ran");
    assert_eq!(a.metric("kwok_leases_held") + b.metric("kwok_leases_held"), 8.0);

    // a dies: b holds every lease within one lease period (plus a renewal), and
    // the nodes stay Ready.
    a.kill();
    cluster.eventually(
        &["-n", "kube-node-lease", "get", "leases", "-o", HOLDERS],
        Duration::from_secs(8 + 4),
        |o| o.lines().filter(|l| l.ends_with("=kwok-b")).count() == 8,
    );
    assert_eq!(b.metric("kwok_leases_held"), 8.0);
    assert!(
        ready(&cluster).iter().all(|(_, r)| r == "True"),
        "{:?}",
        ready(&cluster)
    );
    // b drives the nodes it took over: a pod bound to one of a's old nodes runs.
    let taken = pairs(&first)
        .into_iter()
        .find(|(_, h)| h == "kwok-a")
        .map(|(n, _)| n)
        .expect("a held a node");
    cluster.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: default}}\nspec:\n  nodeName: {taken}\n  containers: [{{name: c, image: fake}}]\n"
    ));
    cluster.eventually(
        &["get", "pod", "p", "-o", "jsonpath={.status.phase}"],
        Duration::from_secs(30),
        |o| o == "Running",
    );
}

#[test]
fn cluster_should_recover_when_the_apiserver_restarts_mid_run() {
    let cluster = Cluster::create("restart", &[]);
    for i in 0..3 {
        cluster.apply(&node(&format!("fake-{i}"), true, ""));
    }
    cluster.apply(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\nspec:\n  replicas: 10\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: c, image: fake}]\n",
    );
    let pods = "jsonpath={range .items[*]}{.status.phase} {.status.podIP}{\"\\n\"}{end}";
    let running = |n: usize| move |o: &str| o.lines().filter(|l| l.starts_with("Running ")).count() == n;
    cluster.eventually(&["get", "pods", "-o", pods], Duration::from_secs(90), running(10));

    // The apiserver goes away for a while and comes back with the same command line.
    let pid = cluster.pid("kube-apiserver");
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    cluster.kill("kube-apiserver");
    sleep(Duration::from_secs(10));
    let log = fs::OpenOptions::new()
        .append(true)
        .open(cluster.dir().join("logs/kube-apiserver.log"))
        .unwrap();
    let child = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(cluster.dir())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // kwokctl finds (and on delete stops) it through its pid file.
    fs::write(
        cluster.dir().join("pids/kube-apiserver.pid"),
        child.id().to_string(),
    )
    .unwrap();
    let back = std::time::Instant::now();
    let apiserver_up = |_: &str| true;
    cluster.eventually(
        &["get", "--raw", "/readyz"],
        Duration::from_secs(60),
        apiserver_up,
    );

    // Within one lease period (40 s) every node is Ready with a fresh lease, every
    // pod Running, no pod IP twice, and new work is picked up.
    cluster.eventually(&["get", "nodes", "-o", READY], Duration::from_secs(40), |o| {
        o.lines().filter(|l| l.ends_with("=True")).count() == 3
    });
    cluster.kubectl(&["scale", "deployment", "web", "--replicas=15"]);
    let out = cluster.eventually(&["get", "pods", "-o", pods], Duration::from_secs(60), running(15));
    let ips: HashSet<&str> = out.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(ips.len(), 15, "duplicate pod IPs after the restart: {out}");
    assert!(
        back.elapsed() < Duration::from_secs(100),
        "recovery took {:?}",
        back.elapsed()
    );
    let renewed = cluster.kubectl(&[
        "-n",
        "kube-node-lease",
        "get",
        "leases",
        "-o",
        "jsonpath={range .items[*]}{.spec.renewTime}{\"\\n\"}{end}",
    ]);
    assert_eq!(renewed.lines().count(), 3, "{renewed}");
    // The controller saw its watches break and came back through them.
    let metrics = cluster.kwok_get("/metrics");
    let restarts: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("kwok_watch_restarts_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(restarts >= 1.0, "no watch restart counted: {metrics}");
    drop(child);
}

/// Patches annotated as two users: one allowed to patch nodes by RBAC, one not.
const IMPERSONATING_STAGES: &str = r#"apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: as-writer
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchLabels: {as: writer}
    matchExpressions:
    - {key: '.metadata.annotations.written', operator: DoesNotExist}
  next:
    patches:
    - type: merge
      impersonation: {username: stage-writer}
      template: 'metadata: {annotations: {written: by-writer}}'
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: as-nobody
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchLabels: {as: nobody}
    matchExpressions:
    - {key: '.metadata.annotations.written', operator: DoesNotExist}
  next:
    patches:
    - type: merge
      impersonation: {username: nobody}
      template: 'metadata: {annotations: {written: by-nobody}}'
"#;

const WRITER_RBAC: &str = r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: node-patcher}
rules:
- {apiGroups: [""], resources: [nodes], verbs: [get, patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: stage-writer}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: node-patcher}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: stage-writer}
"#;

#[test]
fn kwok_should_send_a_stage_s_writes_as_the_user_it_impersonates() {
    let cluster = bare_cluster("imperson");
    cluster.apply(WRITER_RBAC);
    let kwok = kwok_with_stages(&cluster, IMPERSONATING_STAGES);
    cluster.apply(&node("fake-w", true, "as: writer"));
    cluster.apply(&node("fake-n", true, "as: nobody"));
    let written = "jsonpath={.metadata.annotations.written}";
    cluster.eventually(
        &["get", "node", "fake-w", "-o", written],
        Duration::from_secs(30),
        |o| o == "by-writer",
    );
    // The apiserver refuses `nobody`: the write is counted as failed (and retried
    // with back-off), and never lands.
    let start = std::time::Instant::now();
    while kwok.metric("kwok_apiserver_request_failures_total") < 2.0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no refused write counted"
        );
        sleep(Duration::from_millis(300));
    }
    assert_eq!(cluster.kubectl(&["get", "node", "fake-n", "-o", written]), "");
}

/// A pod already bound to `node` (no scheduler involved), labelled `app`.
fn bound_pod(name: &str, app: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: {app}}}\n\
         spec:\n  nodeName: {node}\n  containers:\n  - name: c\n    image: busybox\n"
    )
}

/// With one shard and one write slot, stages due together wait their turn in the
/// shard's ready queue: every pod still runs with its own IP, and every deleted pod
/// goes.
#[test]
fn kwok_should_queue_stages_beyond_its_write_limit_and_still_run_every_pod() {
    let cluster = bare_cluster("slots");
    let kwok = KwokProcess::start(
        &cluster,
        &[
            "--writes-in-flight=1",
            "--shards=1",
            "--node-lease-duration-seconds=0",
        ],
    );
    cluster.apply(&node("fake-0", true, ""));
    cluster.eventually(&["get", "nodes", "-o", READY], Duration::from_secs(60), |o| {
        o.contains("fake-0=True")
    });
    let pods: Vec<String> = (0..40)
        .map(|i| bound_pod(&format!("p-{i}"), "slots", "fake-0"))
        .collect();
    cluster.apply(&pods.join("---\n"));
    let phases = "jsonpath={range .items[*]}{.status.phase} {.status.podIP}{\"\\n\"}{end}";
    let out = cluster.eventually(
        &["get", "pods", "-l", "app=slots", "-o", phases],
        Duration::from_secs(90),
        |o| o.lines().filter(|l| l.starts_with("Running ")).count() == 40,
    );
    let ips: HashSet<&str> = out.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(ips.len(), 40, "unique pod IPs: {out}");
    // Deleting them all at once queues 40 delete stages behind one slot.
    cluster.kubectl(&["delete", "pods", "-l", "app=slots", "--wait=false"]);
    cluster.eventually(
        &["get", "pods", "-l", "app=slots", "-o", "name"],
        Duration::from_secs(90),
        str::is_empty,
    );
    assert_eq!(kwok.metric("kwok_batcher_queue_depth"), 0.0);
}

/// See: perf/results/2026-11-26-100k-pods (pods beyond a node's /24 podCIDR were
/// patched with `podIP: ""`, which the apiserver refused 15,000 times) and issue 22
/// (upstream KWOK goes on past the CIDR, and benchmarks pinning thousands of pods to
/// one node rely on it). A pod beyond its node's podCIDR runs with the next address,
/// no write is refused, and a freed address is handed out again first.
#[test]
fn a_pod_beyond_its_node_s_pod_cidr_should_run_past_it_without_bad_writes() {
    let cluster = bare_cluster("fullcidr");
    let kwok = KwokProcess::start(&cluster, &["--node-lease-duration-seconds=0"]);
    // A /30: two host addresses, 10.200.0.1 and 10.200.0.2.
    cluster.apply(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: fake-0\n  annotations: {kwok.x-k8s.io/node: fake}\n\
         spec:\n  podCIDR: 10.200.0.0/30\n",
    );
    cluster.eventually(&["get", "nodes", "-o", READY], Duration::from_secs(60), |o| {
        o.contains("fake-0=True")
    });
    let pod = |i: usize| bound_pod(&format!("p-{i}"), "cidr", "fake-0");
    let phases = "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.status.podIP}{\"\\n\"}{end}";
    let running = |o: &str| -> Vec<(String, String)> {
        o.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.get(1) == Some(&"Running")).then(|| (f[0].to_owned(), f.get(2).unwrap_or(&"").to_string()))
            })
            .collect()
    };
    cluster.apply(&[pod(0), pod(1), pod(2)].join("---\n"));
    let out = cluster.eventually(
        &["get", "pods", "-l", "app=cidr", "-o", phases],
        Duration::from_secs(60),
        |o| running(o).len() == 3,
    );
    let mut ips: Vec<String> = running(&out).into_iter().map(|(_, ip)| ip).collect();
    ips.sort();
    assert_eq!(ips, ["10.200.0.1", "10.200.0.2", "10.200.0.3"], "{out}");
    let refused = kwok.metric("kwok_apiserver_request_failures_total");
    assert_eq!(refused, 0.0, "no write was refused");
    // A freed address goes to the next pod before new ones.
    let (gone, freed) = running(&out)[0].clone();
    cluster.kubectl(&["delete", "pod", &gone, "--wait=false"]);
    cluster.eventually(
        &["get", "pods", "-l", "app=cidr", "-o", phases],
        Duration::from_secs(60),
        |o| !o.contains(&format!("{gone} ")),
    );
    cluster.apply(&pod(3));
    let out = cluster.eventually(
        &["get", "pods", "-l", "app=cidr", "-o", phases],
        Duration::from_secs(60),
        |o| running(o).iter().any(|(name, _)| name == "p-3"),
    );
    let p3 = running(&out).into_iter().find(|(n, _)| n == "p-3").unwrap();
    assert_eq!(p3.1, freed, "p-3 got the address {gone} gave back: {out}");
}
