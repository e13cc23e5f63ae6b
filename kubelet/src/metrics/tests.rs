//! The metrics with upstream's own files (`kustomize/metrics/...` of KWOK v0.8, read
//! from the Go module cache), and the load errors.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use kwok_engine::stage::load::Documents;

use super::*;

#[path = "../../../tests/support/upstream_module.rs"]
mod upstream_module;

const USAGE: &str = "kustomize/metrics/usage/usage-from-annotation.yaml";
const RESOURCE: &str = "kustomize/metrics/resource/metrics-resource.yaml";
const PATH: &str = "/metrics/nodes/node-1/metrics/resource";

fn upstream_documents() -> Documents {
    let root = upstream_module::dir();
    let mut docs = Documents::default();
    for file in [USAGE, RESOURCE] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        docs.parse(file, &text).unwrap();
    }
    docs
}

fn documents(text: &str) -> Documents {
    let mut docs = Documents::default();
    docs.parse("test.yaml", text).unwrap();
    docs
}

fn t0() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap()
}

fn node() -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": "node-1", "uid": "n", "creationTimestamp": "2023-11-14T22:00:00Z"}})
}

fn pod(name: &str, annotations: Value, containers: &[&str]) -> Value {
    let containers: Vec<Value> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "x"}))
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                        "annotations": annotations, "creationTimestamp": "2023-11-14T22:13:10Z"},
           "spec": {"nodeName": "node-1", "containers": containers},
           "status": {"containerStatuses": [{"name": containers[0]["name"], "restartCount": 0,
                                               "state": {"running": {}}}]}})
}

/// The sample line of `text` that starts with `series ` (name and labels).
fn sample(text: &str, series: &str) -> String {
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .to_owned()
}

struct Upstream {
    usages: Usages,
    metrics: Metrics,
}

fn upstream() -> Upstream {
    let docs = upstream_documents();
    Upstream {
        usages: Usages::from_documents(&docs.others).unwrap(),
        metrics: Metrics::from_documents(&docs.others).unwrap(),
    }
}

#[test]
fn upstreams_usage_and_resource_files_should_load_unchanged() {
    let u = upstream();
    assert!(!u.usages.is_empty());
    let (metric, node) = u.metrics.route(PATH).unwrap();
    assert_eq!((metric.name(), node), ("metrics-resource", "node-1"));
    assert_eq!(metric.path(), "/metrics/nodes/{nodeName}/metrics/resource");
    assert!(
        u.metrics
            .route("/metrics/nodes/node-1/metrics/cadvisor")
            .is_none()
    );
    assert!(u.metrics.route("/metrics/nodes//metrics/resource").is_none());
}

#[test]
fn the_cpu_counter_should_grow_by_the_annotated_usage_per_second() {
    let u = upstream();
    let (metric, _) = u.metrics.route(PATH).unwrap();
    let node = node();
    let p = pod(
        "p1",
        json!({"kwok.x-k8s.io/usage-cpu": "250m", "kwok.x-k8s.io/usage-memory": "100Mi"}),
        &["c"],
    );
    let mut state = Cumulative::new();
    let first = metric.render(&node, &[&p], &u.usages, &mut state, t0());
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let series = r#"container_cpu_usage_seconds_total{container="c",namespace="default",pod="p1"}"#;
    assert_eq!(sample(&first.text, series), "0");

    let later = metric.render(
        &node,
        &[&p],
        &u.usages,
        &mut state,
        t0() + SignedDuration::from_secs(4),
    );
    let text = &later.text;
    assert_eq!(sample(text, series), "1");
    assert_eq!(
        sample(
            text,
            r#"pod_cpu_usage_seconds_total{namespace="default",pod="p1"}"#
        ),
        "1"
    );
    assert_eq!(sample(text, "node_cpu_usage_seconds_total"), "1");
    let memory = r#"container_memory_working_set_bytes{container="c",namespace="default",pod="p1"}"#;
    assert_eq!(sample(text, memory), "1.048576e+08");
    assert_eq!(
        sample(
            text,
            r#"pod_memory_working_set_bytes{namespace="default",pod="p1"}"#
        ),
        "1.048576e+08"
    );
    assert_eq!(sample(text, "node_memory_working_set_bytes"), "1.048576e+08");
    assert_eq!(sample(text, "scrape_error"), "0");
    // `pod.SinceSecond()`: from the pod's creation (22:13:10) to now (22:13:24).
    let start = r#"container_start_time_seconds{container="c",namespace="default",pod="p1"}"#;
    assert_eq!(sample(text, start), "14");
}

#[test]
fn the_exposition_should_be_written_as_upstreams_registry_writes_it() {
    let u = upstream();
    let (metric, _) = u.metrics.route(PATH).unwrap();
    let a = pod("b-pod", json!({"kwok.x-k8s.io/usage-cpu": "1"}), &["c"]);
    let b = pod("a-pod", json!({}), &["c"]);
    let out = metric.render(&node(), &[&a, &b], &u.usages, &mut Cumulative::new(), t0());
    let families: Vec<&str> = out
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .collect();
    assert_eq!(
        families,
        [
            "container_cpu_usage_seconds_total counter",
            "container_memory_working_set_bytes gauge",
            "container_start_time_seconds gauge",
            "node_cpu_usage_seconds_total counter",
            "node_memory_working_set_bytes gauge",
            "pod_cpu_usage_seconds_total counter",
            "pod_memory_working_set_bytes gauge",
            "scrape_error gauge",
        ]
    );
    // HELP keeps upstream's trailing newline, escaped.
    assert!(out.text.contains(
        "# HELP scrape_error [ALPHA] 1 if there was an error while getting metrics from the node, 0 otherwise\\n\n"
    ));
    // Samples in label-value order; a pod without annotations uses the defaults (1Mi).
    let pods: Vec<&str> = out
        .text
        .lines()
        .filter(|l| l.starts_with("pod_memory_working_set_bytes{"))
        .collect();
    assert_eq!(
        pods,
        [
            r#"pod_memory_working_set_bytes{namespace="default",pod="a-pod"} 1.048576e+06"#,
            r#"pod_memory_working_set_bytes{namespace="default",pod="b-pod"} 1.048576e+06"#,
        ]
    );
}

#[test]
fn node_usage_should_sum_every_container_of_every_pod() {
    let u = upstream();
    let (metric, _) = u.metrics.route(PATH).unwrap();
    let a = pod("a", json!({"kwok.x-k8s.io/usage-cpu": "500m"}), &["c1", "c2"]);
    let b = pod("b", json!({"kwok.x-k8s.io/usage-cpu": "2"}), &["c"]);
    let mut state = Cumulative::new();
    metric.render(&node(), &[&a, &b], &u.usages, &mut state, t0());
    let out = metric.render(
        &node(),
        &[&a, &b],
        &u.usages,
        &mut state,
        t0() + SignedDuration::from_secs(2),
    );
    assert_eq!(sample(&out.text, "node_cpu_usage_seconds_total"), "6");
    assert_eq!(
        sample(
            &out.text,
            r#"pod_cpu_usage_seconds_total{namespace="default",pod="a"}"#
        ),
        "2"
    );
    assert_eq!(state.pods(), 2);
    metric.render(
        &node(),
        &[&b],
        &u.usages,
        &mut state,
        t0() + SignedDuration::from_secs(3),
    );
    assert_eq!(
        state.pods(),
        1,
        "a deleted pod is forgotten at its node's next scrape"
    );
}

const RULES: &str = r#"
kind: ClusterResourceUsage
apiVersion: kwok.x-k8s.io/v1alpha1
metadata: {name: all}
spec:
  usages:
  - usage: {cpu: {value: 100m}}
  - containers: [sidecar]
    usage: {cpu: {value: 10m}}
---
kind: ClusterResourceUsage
apiVersion: kwok.x-k8s.io/v1alpha1
metadata: {name: never}
spec:
  selector: {matchNamespaces: [other]}
  usages:
  - usage: {cpu: {value: "5"}}
---
kind: ResourceUsage
apiVersion: kwok.x-k8s.io/v1alpha1
metadata: {name: special, namespace: default}
spec:
  usages:
  - containers: [main]
    usage:
      cpu: {expression: 'Quantity("3") + double(size(container.name))'}
      memory: {value: 1Gi}
"#;

#[test]
fn a_pods_own_resource_usage_should_win_and_containers_match_as_upstream() {
    let docs = documents(RULES);
    let usages = Usages::from_documents(&docs.others).unwrap();
    let usage = |p: &Value, c: &str, r: &str| usages.container_usage(&node(), p, c, r, t0());
    let plain = pod("plain", json!({}), &["main", "sidecar"]);
    assert_eq!(usage(&plain, "main", "cpu"), Ok(0.1));
    assert_eq!(usage(&plain, "sidecar", "cpu"), Ok(0.01));
    assert_eq!(usage(&plain, "main", "memory"), Ok(0.0));
    let special = pod("special", json!({}), &["main", "sidecar"]);
    assert_eq!(usage(&special, "main", "cpu"), Ok(7.0));
    assert_eq!(usage(&special, "main", "memory"), Ok(1024f64.powi(3)));
    // The pod's own rule has no entry for the sidecar, and the cluster rules are then
    // not consulted.
    assert!(matches!(
        usage(&special, "sidecar", "cpu"),
        Err(UsageError::NotFound { .. })
    ));
    assert!(matches!(
        usage(&plain, "nope", "cpu"),
        Err(UsageError::NoContainer { .. })
    ));
}

#[test]
fn a_scrape_should_keep_only_the_fields_read_and_convert_again_once_a_rule_reads_more() {
    let u = upstream();
    let (metric, _) = u.metrics.route(PATH).unwrap();
    let mut usages = u.usages.clone();
    let node = node();
    let mut p = pod("p1", json!({"kwok.x-k8s.io/usage-memory": "2Mi"}), &["c"]);
    // With a resourceVersion the conversion is kept between scrapes.
    p["metadata"]["resourceVersion"] = json!("7");
    let mut state = Cumulative::new();
    let has = |state: &Cumulative, field: &str| {
        let pod = &state.converted("node-1", "default", "p1").unwrap().pod;
        pod.as_indexer()
            .unwrap()
            .get(&cel::common::types::CelString::from(field))
            .is_ok()
    };
    let memory = r#"container_memory_working_set_bytes{container="c",namespace="default",pod="p1"}"#;
    let first = metric.render(&node, &[&p], &usages, &mut state, t0());
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert_eq!(sample(&first.text, memory), "2.097152e+06");
    // Upstream's files read metadata (name, namespace, annotations, creation time) only.
    assert!(has(&state, "metadata") && !has(&state, "spec") && !has(&state, "status"));

    // A rule that reads the spec: the same pod version is converted again with it.
    let rule = documents(
        r#"
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterResourceUsage
metadata: {name: usage-from-annotation}
spec:
  usages:
  - usage:
      memory:
        expression: 'pod.spec.nodeName == "node-1" ? Quantity("3Mi") : Quantity("1Mi")'
"#,
    );
    let (value, source) = &rule.others[0];
    usages.add(value, source).unwrap();
    let second = metric.render(&node, &[&p], &usages, &mut state, t0());
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    assert_eq!(sample(&second.text, memory), "3.145728e+06");
    assert!(has(&state, "spec") && !has(&state, "status"));
}

#[test]
fn rules_should_be_added_and_removed_one_by_one() {
    let docs = documents(RULES);
    let mut usages = Usages::default();
    for (v, s) in &docs.others {
        usages.add(v, s).unwrap();
    }
    let special = pod("special", json!({}), &["main"]);
    assert_eq!(
        usages.container_usage(&node(), &special, "main", "cpu", t0()),
        Ok(7.0)
    );
    assert!(usages.remove(Some("default"), "special"));
    assert_eq!(
        usages.container_usage(&node(), &special, "main", "cpu", t0()),
        Ok(0.1)
    );
    assert!(usages.remove(None, "all") && usages.remove(None, "never") && usages.is_empty());
}

#[test]
fn histograms_should_count_cumulatively_and_hide_hidden_buckets() {
    let docs = documents(
        r#"
kind: Metric
apiVersion: kwok.x-k8s.io/v1alpha1
metadata: {name: h}
spec:
  path: /metrics/nodes/{nodeName}/metrics/h
  metrics:
  - name: latency
    kind: histogram
    help: how long
    labels: [{name: node, value: node.metadata.name}]
    buckets:
    - {le: 1, value: '2'}
    - {le: 0.5, value: '1'}
    - {le: 2, value: '3', hidden: true}
    - {le: 5, value: 'StartedContainersTotal(node)'}
"#,
    );
    let metrics = Metrics::from_documents(&docs.others).unwrap();
    let (metric, node_name) = metrics.route("/metrics/nodes/node-1/metrics/h").unwrap();
    assert_eq!(node_name, "node-1");
    let p = pod("p", json!({}), &["c"]);
    let out = metric.render(&node(), &[&p], &Usages::default(), &mut Cumulative::new(), t0());
    assert_eq!(
        out.text,
        "# HELP latency how long\n# TYPE latency histogram\n\
         latency_bucket{node=\"node-1\",le=\"0.5\"} 1\n\
         latency_bucket{node=\"node-1\",le=\"1\"} 3\n\
         latency_bucket{node=\"node-1\",le=\"5\"} 7\n\
         latency_bucket{node=\"node-1\",le=\"+Inf\"} 7\n\
         latency_sum{node=\"node-1\"} 13.5\n\
         latency_count{node=\"node-1\"} 7\n"
    );
    // The pod's container has no usage rule: reported, read as 0.
    assert!(matches!(
        out.errors[..],
        [RenderError::Usage(UsageError::NotFound { .. })]
    ));
}

#[test]
fn a_failing_family_should_be_left_out_and_reported() {
    let docs = documents(
        r#"
kind: Metric
apiVersion: kwok.x-k8s.io/v1alpha1
metadata: {name: m}
spec:
  path: /metrics/nodes/{nodeName}/metrics/m
  metrics:
  - {name: good, kind: gauge, value: 'UnixSecond(Now())'}
  - {name: bad, kind: gauge, dimension: pod, value: 'pod.metadata.nope'}
"#,
    );
    let metrics = Metrics::from_documents(&docs.others).unwrap();
    let (metric, _) = metrics.route("/metrics/nodes/node-1/metrics/m").unwrap();
    let p = pod("p", json!({}), &["c"]);
    let out = metric.render(&node(), &[&p], &Usages::default(), &mut Cumulative::new(), t0());
    assert_eq!(out.text, "# HELP good \n# TYPE good gauge\ngood 1.7e+09\n");
    let errors: Vec<String> = out.errors.iter().map(ToString::to_string).collect();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(r#"metric "bad": failed to evaluate value: "#)),
        "{errors:?}"
    );
}

/// The load error of `text` (documents start at line 1 of `test.yaml`).
fn load_error(text: &str) -> String {
    let docs = documents(text);
    let usages = Usages::from_documents(&docs.others).err();
    let metrics = Metrics::from_documents(&docs.others).err();
    usages.or(metrics).expect("an error").to_string()
}

#[test]
fn load_errors_should_name_file_line_object_and_field_on_one_line() {
    let metric = |m: &str| {
        format!(
            "---\nkind: Metric\napiVersion: kwok.x-k8s.io/v1alpha1\nmetadata: {{name: m}}\nspec:\n  path: /metrics/x\n  metrics: [{m}]\n"
        )
    };
    let cases = [
        (
            metric("{name: a, kind: gauge, value: 'node.metadata.'}"),
            "test.yaml:2: Metric \"m\": spec.metrics[0].value: ",
        ),
        (
            metric("{name: a, kind: summary, value: '1'}"),
            "test.yaml:2: Metric \"m\": spec.metrics[0].kind: unknown variant `summary`",
        ),
        (
            metric("{name: a, kind: gauge, value: '1', colour: red}"),
            "test.yaml:2: Metric \"m\": spec.metrics[0].colour: unknown field `colour`",
        ),
        (
            metric("{name: a, kind: gauge, dimension: cluster, value: '1'}"),
            "test.yaml:2: Metric \"m\": spec.metrics[0].dimension: unknown variant `cluster`",
        ),
        (
            metric("{name: 'a-b', kind: gauge, value: '1'}"),
            "test.yaml:2: Metric \"m\": spec.metrics[0].name: \"a-b\" is not a Prometheus metric name",
        ),
        (
            metric("{name: a, kind: histogram}"),
            "test.yaml:2: Metric \"m\": spec.metrics[0].buckets: a histogram needs buckets",
        ),
        (
            metric("{name: a, kind: gauge}"),
            "test.yaml:2: Metric \"m\": spec.metrics[0].value: the expression is empty",
        ),
        (
            "kind: ClusterResourceUsage\nmetadata: {name: u}\nspec:\n  usages: [{usage: {cpu: {expression: 'Quantity(\"1\" +'}}}]\n".into(),
            "test.yaml:1: ClusterResourceUsage \"u\": spec.usages[0].usage.cpu.expression: ",
        ),
        (
            "kind: ResourceUsage\nmetadata: {name: u}\nspec:\n  usages: [{usage: {cpu: {value: lots}}}]\n".into(),
            "test.yaml:1: ResourceUsage \"u\": spec.usages[0].usage.cpu.value: \"lots\" is not a quantity",
        ),
        (
            "kind: ResourceUsage\nmetadata: {name: u}\nspec:\n  usage: []\n".into(),
            "test.yaml:1: ResourceUsage \"u\": spec.usage: unknown field `usage`",
        ),
    ];
    for (text, want) in cases {
        let got = load_error(&text);
        assert!(got.starts_with(want), "want {want:?}\n got {got:?}");
        assert!(!got.contains('\n'), "{got:?}");
    }
}

#[test]
fn a_path_outside_metrics_or_taken_should_be_refused() {
    let doc = |name: &str, path: &str| {
        format!("---\nkind: Metric\nmetadata: {{name: {name}}}\nspec:\n  path: {path}\n  metrics: []\n")
    };
    assert_eq!(
        load_error(&doc("m", "/stats/x")),
        "test.yaml:2: Metric \"m\": spec.path: \"/stats/x\" does not start with \"/metrics\""
    );
    let both = doc("a", "/metrics/x") + &doc("b", "/metrics/x");
    assert!(load_error(&both).starts_with("test.yaml:8: Metric \"b\": spec.path: "));
}

#[test]
fn a_path_without_node_name_should_name_the_metric() {
    let docs = documents(
        "kind: Metric\nmetadata: {name: kubelet-1}\nspec:\n  path: /metrics/kubelet\n  metrics: []\n",
    );
    let metrics = Metrics::from_documents(&docs.others).unwrap();
    let (_, node) = metrics.route("/metrics/kubelet").unwrap();
    assert_eq!(node, "kubelet-1");
}
