//! The kubelet API's rules as objects of the cluster (`--enable-crds`, issue 20):
//! upstream KWOK v0.8's own files (`test/e2e/exec.yaml`, `kustomize/metrics/*` of its
//! Go module, downloaded at test time) applied with kubectl to a kwokctl cluster whose
//! kwok installed the CRDs, then `kubectl exec`, the resource metrics, a bad object
//! left out, a pod's own (namespaced) rule before the cluster rules, and a deleted rule
//! gone.

use std::{
    thread::sleep,
    time::{Duration, Instant},
};

use crate::{kwok::node, util::Cluster};

/// A file of upstream's module.
fn upstream(path: &str) -> String {
    let path = crate::upstream_module::dir().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `kubectl exec pod0 -- env`: whether it ran, and its stdout or stderr.
fn exec_env(cluster: &Cluster) -> (bool, String) {
    let out = cluster
        .kwokctl
        .run(&["--name", cluster.name, "kubectl", "exec", "pod0", "--", "env"]);
    let text = if out.status.success() {
        &out.stdout
    } else {
        &out.stderr
    };
    (out.status.success(), String::from_utf8_lossy(text).into_owned())
}

/// Polls `check` until it returns `Some`, failing with the last `what` after `within`.
fn until<T>(within: Duration, what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) => assert!(
                start.elapsed() < within,
                "{what} not seen after {within:?}; last: {last}"
            ),
        }
        sleep(Duration::from_millis(500));
    }
}

/// The value of the sample of `family` for pod0's container `c` in `text`.
fn container_sample(text: &str, family: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .find(|l| l.contains("pod=\"pod0\"") && l.contains("container=\"c\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn rules_applied_as_objects_should_serve_exec_and_metrics_until_deleted() {
    let cluster = Cluster::create(
        "crdrules",
        &["--enable-crds=ClusterExec,Exec,Metric,ClusterResourceUsage"],
    );
    // kwok installs the CRDs as it starts.
    for (crd, scope) in [
        ("execs.kwok.x-k8s.io", "Namespaced"),
        ("clusterexecs.kwok.x-k8s.io", "Cluster"),
        ("metrics.kwok.x-k8s.io", "Cluster"),
        ("clusterresourceusages.kwok.x-k8s.io", "Cluster"),
    ] {
        cluster.eventually(
            &["get", "crd", crd, "-o", "jsonpath={.spec.scope}"],
            Duration::from_secs(60),
            |o| o == scope,
        );
    }
    cluster.apply(&upstream("test/e2e/exec.yaml"));
    cluster.apply(&upstream("kustomize/metrics/resource/metrics-resource.yaml"));
    cluster.apply(&upstream("kustomize/metrics/usage/usage-from-annotation.yaml"));
    // The CRD keeps any spec; kwok refuses this one when it loads it, and goes on.
    cluster.apply(
        "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: ClusterExec\nmetadata:\n  name: a-bad-one\n\
         spec:\n  execs:\n  - local:\n      workDir: [not, a, path]\n",
    );
    cluster.apply(&node("node0", true, "type: kwok"));
    cluster.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pod0\n  namespace: default\n  annotations:\n    \
         kwok.x-k8s.io/usage-cpu: 250m\n    kwok.x-k8s.io/usage-memory: 100Mi\n\
         spec:\n  nodeName: node0\n  containers:\n  - name: c\n    image: fake\n",
    );
    cluster.eventually(
        &["get", "pod", "pod0", "-o", "jsonpath={.status.phase}"],
        Duration::from_secs(60),
        |o| o == "Running",
    );

    // The ClusterExec object: the configured variable is in the command's environment.
    let env = until(
        Duration::from_secs(60),
        "exec with TEST=test",
        || match exec_env(&cluster) {
            (true, out) if out.lines().any(|l| l == "TEST=test") => Ok(out),
            (_, out) => Err(out),
        },
    );
    assert!(
        env.lines().any(|l| l.starts_with("PATH=")),
        "kwok's own environment too: {env}"
    );
    let log = std::fs::read_to_string(cluster.dir().join("logs/kwok-controller.log")).unwrap();
    let refused = log
        .lines()
        .find(|l| l.contains("rule object left out") && l.contains("a-bad-one"))
        .unwrap_or_else(|| panic!("the bad object is not logged:\n{log}"));
    assert!(refused.contains("spec.execs[0].local.workDir"), "{refused}");

    // The Metric and ClusterResourceUsage objects: the pod's usage from its annotations.
    let path = "/metrics/nodes/node0/metrics/resource";
    let text = until(Duration::from_secs(60), "pod0's usage", || {
        let text = cluster.kwok_get(path);
        // 100Mi, the pod's annotation.
        let bytes = container_sample(&text, "container_memory_working_set_bytes");
        if bytes.is_some_and(|b| (b - 104_857_600.0).abs() < 0.5) {
            Ok(text)
        } else {
            Err(text)
        }
    });
    assert!(
        container_sample(&text, "container_cpu_usage_seconds_total").is_some(),
        "{text}"
    );
    assert!(text.contains("scrape_error 0"), "{text}");

    // A namespaced Exec named after the pod is its own rule, before any cluster rule;
    // deleted, the cluster rule answers again.
    cluster.apply(
        "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Exec\nmetadata:\n  name: pod0\n  namespace: default\n\
         spec:\n  execs:\n  - local:\n      envs: [{name: OWN, value: pod0}]\n",
    );
    until(Duration::from_secs(60), "exec with OWN=pod0", || {
        match exec_env(&cluster) {
            (true, out) if out.lines().any(|l| l == "OWN=pod0") && !out.contains("TEST=test") => Ok(()),
            (_, out) => Err(out),
        }
    });
    cluster.kubectl(&["delete", "exec", "pod0", "-n", "default"]);
    until(
        Duration::from_secs(60),
        "exec with TEST=test again",
        || match exec_env(&cluster) {
            (true, out) if out.lines().any(|l| l == "TEST=test") && !out.contains("OWN=") => Ok(()),
            (_, out) => Err(out),
        },
    );

    // Deleted, the ClusterExec no longer lets commands run.
    cluster.kubectl(&["delete", "clusterexec", "cluster-exec-rules"]);
    let refused = until(Duration::from_secs(60), "exec refused", || {
        match exec_env(&cluster) {
            (false, err) => Ok(err),
            (true, out) => Err(out),
        }
    });
    assert!(refused.contains("no rule for container \"c\""), "{refused}");
    // And the Metric's deletion takes its path away.
    cluster.kubectl(&["delete", "metric", "metrics-resource"]);
    until(
        Duration::from_secs(60),
        "the Metric's path gone",
        || match cluster.kwok_get(path) {
            text if text.is_empty() => Ok(()),
            text => Err(text),
        },
    );
}
