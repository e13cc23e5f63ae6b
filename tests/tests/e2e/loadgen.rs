//! `loadgen` and `perf` against real kwokctl clusters: a tiny scenario whose report must
//! add up exactly, and the perf harness in its scaled-down smoke mode. Also loadgen
//! against perf's fake apiserver, which throttles and fails on purpose.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
};

use serde_json::Value;

use crate::util::{Kwokctl, bin_dir, cache_dir};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run binary");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn u(v: &Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{path} missing in {v:#}"))
}

fn assert_percentiles_ordered(p: &Value, what: &str) {
    let keys = ["p50", "p90", "p99", "p999", "max"];
    let values: Vec<f64> = keys
        .iter()
        .map(|k| p[k].as_f64().unwrap_or_else(|| panic!("{what}: no {k}")))
        .collect();
    assert!(
        values.windows(2).all(|w| w[0] <= w[1]),
        "{what}: percentiles out of order: {values:?}"
    );
    assert!(values[0] > 0.0, "{what}: zero latency: {values:?}");
}

/// Runs loadgen with `args` against cluster `name` and returns its JSON report, checked
/// complete.
fn loadgen_report(kwokctl: &Kwokctl, name: &str, args: &[&str]) -> Value {
    let kubeconfig = kwokctl.cluster_dir(name).join("kubeconfig.yaml");
    let out = run(Command::new(bin_dir().join("loadgen"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(args)
        .args(["--timeout=120s", "--output=json"]));
    let r: Value = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(r["complete"], true, "{r:#}");
    r
}

#[test]
fn loadgen_tiny_scenario_should_report_exact_counts_and_ordered_percentiles() {
    let kwokctl = Kwokctl::new();
    kwokctl.ok(&["create", "cluster", "--name", "lg"]);
    let r = loadgen_report(
        &kwokctl,
        "lg",
        &[
            "--nodes=20",
            "--pods=200",
            "--namespaces=3",
            "--churn-rate=10",
            "--churn-duration=10s",
        ],
    );
    assert_eq!(u(&r, "/counts/nodesCreated"), 20);
    assert_eq!(u(&r, "/counts/nodesReady"), 20);
    assert_eq!(u(&r, "/counts/nodesDeleted"), 20);
    let churned = u(&r, "/counts/podsChurned");
    assert!(churned >= 50, "churn at 10/s for 10 s deleted only {churned}");
    assert_eq!(
        u(&r, "/counts/podsCreated"),
        200 + churned,
        "every churned pod is replaced"
    );
    assert_eq!(u(&r, "/counts/podsRunning"), 200 + churned);
    assert_eq!(u(&r, "/counts/podsDeleted"), 200 + churned);

    let phases = r["phases"].as_array().expect("phases");
    let count = |name: &str| {
        let p = phases
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no phase {name}"));
        assert_percentiles_ordered(&p["latencyMs"], name);
        p["count"].as_u64().unwrap()
    };
    assert_eq!(count("node created→ready"), 20);
    assert_eq!(count("pod created→scheduled"), 200 + churned);
    assert_eq!(count("pod created→running"), 200 + churned);
    assert_eq!(count("pod scheduled→running"), 200 + churned);
    assert_eq!(count("node delete→gone"), 20);
    assert_eq!(count("pod delete→gone"), 200 + churned);
    assert_eq!(u(&r, "/leases/leases"), 20, "every node's lease seen");
    let failed: Vec<_> = r["errors"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.contains("failed"))
        .collect();
    assert!(failed.is_empty(), "requests failed: {failed:?}");
    // Cleanup left nothing with the run's label.
    let run_label = format!("loadgen.kwok.x-k8s.io/run={}", r["run"].as_str().unwrap());
    let left = kwokctl.ok(&[
        "--name",
        "lg",
        "kubectl",
        "get",
        "nodes,pods",
        "-A",
        "-l",
        &run_label,
        "-o",
        "name",
    ]);
    assert_eq!(left.trim(), "", "objects left behind");
}

#[test]
fn loadgen_pods_until_scheduled_should_need_no_kubelet_and_leave_nothing() {
    // kwok with its node stages alone: nodes go Ready, pods are bound and never run.
    let dir = tempfile::tempdir().unwrap();
    let stages = dir.path().join("nodes.yaml");
    let nodes = kwok_engine::catalog::set("node-fast-with-lease").expect("the catalog's node set");
    std::fs::write(&stages, nodes).unwrap();
    let kwokctl = Kwokctl::new();
    kwokctl.ok(&[
        "create",
        "cluster",
        "--name",
        "lgf",
        "--kwok-controller-config",
        stages.to_str().unwrap(),
    ]);
    let r = loadgen_report(
        &kwokctl,
        "lgf",
        &[
            "--nodes=10",
            "--pods=100",
            "--namespaces=2",
            "--pods-until=scheduled",
        ],
    );
    assert_eq!(u(&r, "/counts/nodesReady"), 10);
    assert_eq!(u(&r, "/counts/podsCreated"), 100);
    assert_eq!(
        u(&r, "/counts/podsRunning"),
        0,
        "no pod stages: nothing runs them"
    );
    // Deleted with grace period 0: gone without a kubelet to finish them.
    assert_eq!(u(&r, "/counts/podsDeleted"), 100, "{r:#}");
    let phases = r["phases"].as_array().expect("phases");
    let scheduled = phases
        .iter()
        .find(|p| p["name"] == "pod created→scheduled")
        .expect("scheduled phase");
    assert_eq!(scheduled["count"], 100);
    assert!(
        phases.iter().all(|p| p["name"] != "pod created→running"),
        "{phases:#?}"
    );
    let pods = kwokctl.ok(&["--name", "lgf", "kubectl", "get", "pods", "-A", "-o", "name"]);
    assert_eq!(pods.trim(), "", "pods left behind");
}

#[test]
fn perf_floor_should_refuse_a_churn_scenario_in_one_line() {
    let out = Command::new(bin_dir().join("perf"))
        .args(["churn", "--floor", "--only", "ours"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("--floor with scenario churn") && err.contains("podsUntil"),
        "{err}"
    );
}

#[test]
fn loadgen_bad_scenario_file_should_be_a_one_line_error_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.yaml");
    std::fs::write(&path, "nodes: 3\npodz: 10\n").unwrap();
    let out = Command::new(bin_dir().join("loadgen"))
        .arg("--scenario")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(path.to_str().unwrap()) && err.contains("podz"),
        "{err}"
    );
}

#[test]
fn perf_smoke_should_write_a_ratio_table_and_raw_json() {
    let out_dir = tempfile::tempdir().unwrap();
    let upstream = cache_dir().join("kwok-upstream/v0.8.0/kwok").exists();
    let stdout = run(Command::new(bin_dir().join("perf"))
        .args(["smoke", "--only", "ours-and-upstream-if-built", "--out"])
        .arg(out_dir.path())
        .env("KWOK_CACHE_DIR", cache_dir()));
    let results = std::fs::read_dir(out_dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(
        results.file_name().unwrap().to_str().unwrap().ends_with("-smoke"),
        "{results:?}"
    );
    let summary = std::fs::read_to_string(results.join("summary.md")).unwrap();
    assert!(
        summary.contains("| kwok CPU s / 1,000 transitions |"),
        "{summary}"
    );
    assert!(
        stdout.contains("| figure | ours | upstream | ours/upstream |"),
        "{stdout}"
    );
    let sides: &[&str] = if upstream {
        &["ours", "upstream"]
    } else {
        &["ours"]
    };
    for side in sides {
        let r: Value =
            serde_json::from_str(&std::fs::read_to_string(results.join(format!("{side}.json"))).unwrap())
                .unwrap();
        assert_eq!(r["complete"], true, "{side}: {r:#}");
        assert!(
            r["kwokCpuSeconds"].as_f64().unwrap() > 0.0,
            "{side}: no CPU measured"
        );
        assert!(
            r["kwokPeakRssMib"].as_f64().unwrap() > 1.0,
            "{side}: no RSS measured"
        );
        assert!(
            u(&r, "/apiserverRequests") > 1000,
            "{side}: apiserver requests not counted"
        );
        assert_eq!(u(&r, "/report/counts/nodesReady"), 50, "{side}");
    }
    if upstream {
        // Both ran: every row has a ratio where both sides have the figure.
        assert!(
            summary
                .lines()
                .any(|l| l.starts_with("| pods Running/s |") && !l.contains("| - |")),
            "{summary}"
        );
    }
}

/// A `fake-apiserver` process, killed on drop.
struct FakeApiserver {
    child: Child,
    addr: String,
}

impl FakeApiserver {
    fn start(kubeconfig: &std::path::Path, args: &[&str]) -> Self {
        let mut child = Command::new(bin_dir().join("fake-apiserver"))
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("run fake-apiserver (cargo build --workspace --bins)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().strip_prefix("http://").expect("URL line").to_owned();
        Self { child, addr }
    }

    /// `/fake/stats`: what the stub answered.
    fn stats(&self) -> Value {
        let mut conn = TcpStream::connect(&self.addr).unwrap();
        write!(conn, "GET /fake/stats HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).unwrap();
        let mut raw = String::new();
        conn.read_to_string(&mut raw).unwrap();
        let (_, body) = raw.split_once("\r\n\r\n").expect("HTTP response");
        serde_json::from_str(body).expect("stats JSON")
    }
}

impl Drop for FakeApiserver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// See: issue 6 ("handles 429 and transient errors without losing count").
#[test]
fn loadgen_should_retry_throttled_and_failed_creates_without_losing_count() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    // Every 7th create is answered 429 (Retry-After: 1 s), every 11th of the rest 503.
    let stub = FakeApiserver::start(
        &kubeconfig,
        &["--throttle-every=7", "--fail-every=11", "--retry-after=1"],
    );
    let out = run(Command::new(bin_dir().join("loadgen"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "--dry-run",
            "--nodes=300",
            "--pods=400",
            "--namespaces=2",
            "--rate=2000",
            "--concurrency=32",
            "--timeout=60s",
            "--output=json",
        ]));
    let r: Value = serde_json::from_str(&out).expect("JSON report");
    let stats = stub.stats();
    assert_eq!(r["complete"], true, "{r:#}");
    assert_eq!(u(&r, "/counts/nodesCreated"), 300);
    assert_eq!(u(&r, "/counts/podsCreated"), 400);
    // What loadgen counts matches what the server did, request for request.
    let errors = r["errors"].as_object().unwrap();
    let sum = |suffix: &str| -> u64 {
        errors
            .iter()
            .filter(|(k, _)| k.ends_with(suffix))
            .map(|(_, v)| v.as_u64().unwrap())
            .sum()
    };
    assert_eq!(
        sum("retried HTTP 429"),
        u(&stats, "/throttled"),
        "{errors:?} {stats}"
    );
    assert_eq!(
        sum("retried HTTP 503"),
        u(&stats, "/failed"),
        "{errors:?} {stats}"
    );
    assert!(
        u(&stats, "/throttled") >= 100 && u(&stats, "/failed") >= 50,
        "{stats}"
    );
    assert_eq!(u(&stats, "/created"), 300 + 400 + 2, "nodes, pods, namespaces");
    assert_eq!(
        u(&stats, "/createsReceived"),
        u(&stats, "/created") + u(&stats, "/throttled") + u(&stats, "/failed")
    );
    assert!(
        errors.keys().all(|k| k.contains("retried")),
        "only retries, nothing failed or already there: {errors:?}"
    );
}

/// See: issue 6 ("Ctrl-C stops cleanly, prints the partial report and … deletes what
/// it created"); SIGTERM (`kill`, CI timeouts) must do the same.
#[test]
fn loadgen_should_report_and_clean_up_when_terminated() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let stub = FakeApiserver::start(&kubeconfig, &[]);
    // Far more nodes than 2 s at 100/s create: the run is cut short mid-phase.
    let child = Command::new(bin_dir().join("loadgen"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "--dry-run",
            "--nodes=100000",
            "--namespaces=2",
            "--rate=100",
            "--output=json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while u(&stub.stats(), "/created") < 50 {
        assert!(
            started.elapsed().as_secs() < 30,
            "loadgen created nothing: {}",
            stub.stats()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("interrupted"), "{err}");
    let r: Value = serde_json::from_slice(&out.stdout).expect("partial JSON report");
    assert_eq!(r["complete"], false, "{r:#}");
    // The stub counted 50 creates (namespaces included) before the signal.
    let nodes = u(&r, "/counts/nodesCreated");
    assert!((40..100_000).contains(&nodes), "{nodes} nodes created");
    assert_eq!(u(&stub.stats(), "/deleted"), 2, "its namespaces deleted");
}
