//! `create cluster` options against real components: Prometheus scraping every
//! component, the audit log, configuration files (options, component patches and a
//! Stage for kwok), disabled components, and the read-only commands around them.

use std::{
    fs,
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    thread::sleep,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::util::{Kwokctl, PortForward};

const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n";

/// A plain HTTP/1.0 GET on loopback; returns the body.
fn http_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// `options.<key>` of the cluster's kwok.yaml, as a port.
fn option_port(kwokctl: &Kwokctl, name: &str, key: &str) -> u16 {
    let text = fs::read_to_string(kwokctl.cluster_dir(name).join("kwok.yaml")).unwrap();
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("{key} not in kwok.yaml: {text}"))
        .parse()
        .unwrap()
}

/// Polls `f` until it returns `Some`, or fails after `within` with `what`.
fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if start.elapsed() > within => panic!("{what} not true after {within:?}: {last}"),
            Err(_) => sleep(Duration::from_millis(500)),
        }
    }
}

/// Prometheus's `up` per job.
fn up_by_job(port: u16) -> Vec<(String, String)> {
    let body = http_get(port, "/api/v1/query?query=up");
    let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let mut jobs: Vec<(String, String)> = value["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["metric"]["job"].as_str().unwrap_or("").to_owned(),
                r["value"][1].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    jobs.sort();
    jobs
}

#[test]
fn prometheus_should_see_every_component_up_and_audit_log_should_be_written() {
    let kwokctl = Kwokctl::new();
    let name = "prom";
    let policy = kwokctl.workdir().with_file_name("audit-policy.yaml");
    fs::write(&policy, AUDIT_POLICY).unwrap();
    kwokctl.ok(&[
        "create",
        "cluster",
        "--name",
        name,
        "--enable",
        "prometheus",
        "--kube-audit-policy",
        policy.to_str().unwrap(),
    ]);
    let port = option_port(&kwokctl, name, "prometheusPort");

    // Every component is a target, and every target is up (1) once scraped.
    let expected = [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok-controller",
        "prometheus",
    ];
    let up = eventually(Duration::from_secs(60), "all targets up", || {
        let up = up_by_job(port);
        let all_up = up.len() == expected.len() && up.iter().all(|(_, v)| v == "1");
        if all_up { Ok(up) } else { Err(format!("{up:?}")) }
    });
    let jobs: Vec<&str> = up.iter().map(|(j, _)| j.as_str()).collect();
    assert_eq!(jobs, expected);

    // The apiserver wrote audit events, and `logs audit` shows them.
    let audit = kwokctl.ok(&["--name", name, "logs", "audit"]);
    assert!(
        audit.contains("\"kind\":\"Event\""),
        "audit log: {}",
        &audit[..audit.len().min(300)]
    );
    assert!(audit.contains("\"auditID\""), "audit events");

    // get artifacts names each binary, Prometheus's from the Debian package.
    let artifacts = kwokctl.ok(&["--name", name, "get", "artifacts"]);
    let prom_line = artifacts
        .lines()
        .find(|l| l.starts_with("prometheus "))
        .expect(&artifacts);
    assert!(prom_line.contains("v2."), "{prom_line}");
    assert!(
        artifacts.contains("kube-apiserver") && artifacts.contains("v1.36."),
        "{artifacts}"
    );

    // export logs copies the component logs, the audit log and kwok.yaml.
    let out = kwokctl.workdir().with_file_name("exported");
    kwokctl.ok(&["--name", name, "export", "logs", out.to_str().unwrap()]);
    for file in ["audit.log", "kube-apiserver.log", "prometheus.log", "kwok.yaml"] {
        let len = fs::metadata(out.join(file)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{file} exported empty or missing");
    }

    // port-forward carries a real request to Prometheus.
    let mut forward = PortForward::start(&kwokctl, name, "prometheus", &format!("0:{port}"));
    let body = http_get(forward.local_port(), "/-/ready");
    assert!(body.contains("Ready"), "{body}");
    forward.stop();
}

const CONFIG: &str = r#"apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  etcdPrefix: /kwokctl-e2e
componentsPatches:
- name: kube-controller-manager
  extraArgs:
  - key: node-monitor-grace-period
    value: 77s
  extraEnvs:
  - name: KWOKCTL_E2E
    value: patched
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-from-config
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'NotIn'
      values:
      - 'True'
  next:
    statusTemplate: |
      conditions:
      - type: Ready
        status: "True"
        reason: FromKwokctlConfig
        message: set by a Stage passed with kwokctl --config
"#;

const NODE: &str =
    "apiVersion: v1\nkind: Node\nmetadata:\n  name: cfg-node\n  annotations:\n    kwok.x-k8s.io/node: fake\n";

/// The command line and environment of the live process of `component` in `dir`.
pub(crate) fn process_of(dir: &Path, component: &str) -> (Vec<String>, Vec<String>) {
    let pid = fs::read_to_string(dir.join("pids").join(format!("{component}.pid"))).unwrap();
    let read = |file: &str| -> Vec<String> {
        fs::read(format!("/proc/{}/{file}", pid.trim()))
            .unwrap()
            .split(|b| *b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    };
    (read("cmdline"), read("environ"))
}

#[test]
fn config_file_should_set_options_patch_components_and_give_kwok_its_stages() {
    let kwokctl = Kwokctl::new();
    let name = "cfg";
    let config = kwokctl.workdir().with_file_name("config.yaml");
    fs::write(&config, CONFIG).unwrap();
    kwokctl.ok(&[
        "create",
        "cluster",
        "--name",
        name,
        "--config",
        config.to_str().unwrap(),
        "--disable",
        "kube-scheduler",
        "--extra-args",
        "kube-apiserver=v=2",
    ]);
    let dir = kwokctl.cluster_dir(name);

    // options.etcdPrefix: the apiserver keeps its objects under the new prefix.
    let keys = kwokctl.ok(&[
        "--name",
        name,
        "etcdctl",
        "get",
        "--prefix",
        "--keys-only",
        "/kwokctl-e2e/namespaces/",
    ]);
    assert!(keys.contains("/kwokctl-e2e/namespaces/default"), "{keys}");
    let old = kwokctl.ok(&[
        "--name",
        name,
        "etcdctl",
        "get",
        "--prefix",
        "--keys-only",
        "/registry/",
    ]);
    assert!(old.trim().is_empty(), "nothing under /registry: {old}");

    // componentsPatches: the flag is replaced (not doubled) and the env is set;
    // --extra-args adds a flag to the apiserver.
    let (cmdline, environ) = process_of(&dir, "kube-controller-manager");
    let grace: Vec<&String> = cmdline
        .iter()
        .filter(|a| a.starts_with("--node-monitor-grace-period"))
        .collect();
    assert_eq!(grace, ["--node-monitor-grace-period=77s"]);
    assert!(environ.iter().any(|e| e == "KWOKCTL_E2E=patched"), "env not set");
    let (apiserver, _) = process_of(&dir, "kube-apiserver");
    assert!(apiserver.iter().any(|a| a == "--v=2"), "{apiserver:?}");

    // No --kube-audit-policy: no audit log, and `logs audit` says how to get one.
    let err = kwokctl.err(&["--name", name, "logs", "audit"]);
    assert!(
        err.contains("has no audit log: create it with --kube-audit-policy FILE"),
        "{err}"
    );

    // --disable kube-scheduler: not in the cluster, no such process.
    let components = kwokctl.ok(&["--name", name, "get", "components"]);
    assert!(!components.contains("kube-scheduler"), "{components}");
    assert!(!dir.join("pids/kube-scheduler.pid").exists());
    let schedulers: Vec<u32> = kwokctl
        .processes()
        .into_iter()
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("kube-scheduler "))
                .unwrap_or(false)
        })
        .collect();
    assert!(schedulers.is_empty(), "kube-scheduler processes: {schedulers:?}");

    // The Stage document reached kwok: a new node gets the stage's own Ready reason.
    let node = kwokctl.workdir().with_file_name("node.yaml");
    fs::write(&node, NODE).unwrap();
    kwokctl.ok(&["--name", name, "kubectl", "apply", "-f", node.to_str().unwrap()]);
    eventually(
        Duration::from_secs(30),
        "node Ready from the config's stage",
        || {
            let reason = kwokctl.ok(&[
                "--name",
                name,
                "kubectl",
                "get",
                "node",
                "cfg-node",
                "-o",
                r#"jsonpath={.status.conditions[?(@.type=="Ready")].reason}"#,
            ]);
            if reason == "FromKwokctlConfig" {
                Ok(())
            } else {
                Err(reason)
            }
        },
    );
}

const SCHEDULER_CONFIG: &str = "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
- schedulerName: e2e-scheduler
";

const NODE_AND_POD: &str = "apiVersion: v1
kind: Node
metadata:
  name: sched-node
  annotations:
    kwok.x-k8s.io/node: fake
---
apiVersion: v1
kind: Pod
metadata:
  name: by-profile
  namespace: default
spec:
  schedulerName: e2e-scheduler
  containers:
  - name: c
    image: fake
";

#[test]
fn kube_options_should_reach_the_components() {
    let kwokctl = Kwokctl::new();
    let name = "opts";
    let scheduler = kwokctl.workdir().with_file_name("scheduler.yaml");
    fs::write(&scheduler, SCHEDULER_CONFIG).unwrap();
    let other_kubeconfig = kwokctl.workdir().with_file_name("other-kubeconfig");
    kwokctl.ok(&[
        "create",
        "cluster",
        "--name",
        name,
        "--kube-scheduler-config",
        scheduler.to_str().unwrap(),
        "--kube-authorization=false",
        "--kube-feature-gates",
        "APIServingWithRoutine=true",
        "--heartbeat-factor",
        "1",
        "--node-lease-duration-seconds",
        "20",
        "--control-plane-gogc",
        "250",
        "--kubeconfig",
        other_kubeconfig.to_str().unwrap(),
        "--timeout",
        "90s",
        "--quiet-pull",
    ]);
    let kubectl = |args: &[&str]| {
        let mut all = vec!["--name", name, "kubectl"];
        all.extend_from_slice(args);
        kwokctl.ok(&all)
    };

    // --kube-authorization=false: anyone may do anything.
    assert_eq!(
        kubectl(&["auth", "can-i", "create", "pods", "--as=nobody"]).trim(),
        "yes"
    );
    // --kube-feature-gates reaches the apiserver.
    let metrics = kubectl(&["get", "--raw", "/metrics"]);
    assert!(
        metrics.contains("kubernetes_feature_enabled{name=\"APIServingWithRoutine\",stage=\"ALPHA\"} 1"),
        "feature gate not on"
    );
    // --heartbeat-factor and --node-lease-duration-seconds reach kcm and kwok: factor 1
    // keeps Kubernetes' 5 s and 40 s node checks and the lease as given (upstream's).
    let dir = kwokctl.cluster_dir(name);
    let (kcm, _) = process_of(&dir, "kube-controller-manager");
    assert!(kcm.iter().any(|a| a == "--node-monitor-period=5000ms"), "{kcm:?}");
    assert!(
        kcm.iter().any(|a| a == "--node-monitor-grace-period=40000ms"),
        "{kcm:?}"
    );
    let (kwok, _) = process_of(&dir, "kwok-controller");
    assert!(
        kwok.iter().any(|a| a == "--node-lease-duration-seconds=20"),
        "{kwok:?}"
    );
    // --control-plane-gogc reaches the Go control plane's runtime, with a memory limit;
    // kwok (Rust) is left alone.
    for component in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        let (_, env) = process_of(&dir, component);
        assert!(env.iter().any(|e| e == "GOGC=250"), "{component}: {env:?}");
        let limit = env.iter().find_map(|e| e.strip_prefix("GOMEMLIMIT="));
        assert!(
            limit.is_some_and(|l| l.parse::<u64>().is_ok_and(|b| b > 0)),
            "{component}: {env:?}"
        );
    }
    let (_, kwok_env) = process_of(&dir, "kwok-controller");
    assert!(!kwok_env.iter().any(|e| e == "GOGC=250"), "{kwok_env:?}");
    assert!(
        metrics.lines().any(|l| l == "go_gc_gogc_percent 250"),
        "the apiserver's Go runtime does not report GOGC 250: {:?}",
        metrics
            .lines()
            .filter(|l| l.starts_with("go_gc_go"))
            .collect::<Vec<_>>()
    );
    // --kubeconfig: the context went there, not into $KUBECONFIG.
    let other = fs::read_to_string(&other_kubeconfig).unwrap();
    assert!(other.contains("kwok-opts"), "{other}");
    assert!(
        !fs::read_to_string(kwokctl.kubeconfig())
            .unwrap_or_default()
            .contains("kwok-opts")
    );

    // --kube-scheduler-config: the second profile schedules a pod that asks for it.
    let manifest = kwokctl.workdir().with_file_name("node-and-pod.yaml");
    fs::write(&manifest, NODE_AND_POD).unwrap();
    let path = manifest.to_str().unwrap().to_owned();
    eventually(
        Duration::from_secs(30),
        "apply (default ServiceAccount made)",
        || {
            let out = kwokctl.run(&["--name", name, "kubectl", "apply", "-f", &path]);
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        },
    );
    eventually(Duration::from_secs(30), "pod scheduled by e2e-scheduler", || {
        let node = kubectl(&["get", "pod", "by-profile", "-o", "jsonpath={.spec.nodeName}"]);
        if node == "sched-node" { Ok(()) } else { Err(node) }
    });

    kwokctl.ok(&["delete", "cluster", "--name", name]);
    let other = fs::read_to_string(&other_kubeconfig).unwrap();
    assert!(!other.contains("kwok-opts"), "context left after delete: {other}");
}
