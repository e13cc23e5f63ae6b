//! kwok's kubelet API (issue 20) through a real kwokctl cluster, driven by kubectl as a
//! user drives it: `logs -f/--tail/--since-time/--timestamps`, `exec`, `attach` and
//! `port-forward` (over kubectl's default, WebSocket to the apiserver, and over SPDY),
//! `top` and an HPA on metrics-server, Prometheus scraping the per-node targets of
//! kwok's HTTP service discovery, and the refusal of clients without a certificate of
//! the cluster's CA.
//!
//! The rules are upstream KWOK v0.8's own files (`test/e2e/*.yaml` and
//! `kustomize/metrics/*` of its Go module, downloaded at test time), passed with
//! `--config` as upstream's e2e suite passes them; only the port-forward rules are
//! ours, since upstream's targets a fixed port (10247, its controller's).

use std::{
    fs::OpenOptions,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Arc, Mutex},
    thread::{self, sleep},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::util::{Cluster, http_get};

/// A file or folder of upstream's module.
fn upstream(path: &str) -> PathBuf {
    crate::upstream_module::dir().join(path)
}

/// A fake node whose resource metrics are at kwok's Metric path (the annotation
/// metrics-server reads, as on upstream's e2e nodes), labelled `pool: NAME`.
fn node(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  annotations:\n    kwok.x-k8s.io/node: fake\n    \
         metrics.k8s.io/resource-metrics-path: /metrics/nodes/{name}/metrics/resource\n  \
         labels:\n    type: kwok\n    pool: {name}\n"
    )
}

/// A pod bound to `node` with one container `c` requesting 100m of CPU; `annotations`
/// is a YAML flow map.
fn pod(name: &str, node: &str, annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  annotations: {annotations}\n\
         spec:\n  nodeName: {node}\n  containers:\n  - name: c\n    image: fake\n    \
         resources:\n      requests:\n        cpu: 100m\n"
    )
}

/// The usage upstream's usage-from-annotation ClusterResourceUsage reads.
const USAGE: &str = "{kwok.x-k8s.io/usage-cpu: 250m, kwok.x-k8s.io/usage-memory: 100Mi}";
/// 100Mi.
const USAGE_BYTES: f64 = 104_857_600.0;

/// Waits until pod `name` runs.
fn running(cluster: &Cluster, name: &str) {
    cluster.eventually(
        &["get", "pod", name, "-o", "jsonpath={.status.phase}"],
        Duration::from_secs(60),
        |o| o == "Running",
    );
}

/// A cluster made with `configs` (each a `--config`), a node `node0` and a running pod
/// `pod0` on it.
fn cluster_with_pod(name: &'static str, configs: &[PathBuf]) -> Cluster {
    let configs: Vec<String> = configs.iter().map(|c| c.display().to_string()).collect();
    let flags: Vec<&str> = configs.iter().flat_map(|c| ["--config", c.as_str()]).collect();
    let cluster = Cluster::create(name, &flags);
    cluster.apply(&node("node0"));
    cluster.apply(&pod("pod0", "node0", "{}"));
    running(&cluster, "pod0");
    cluster
}

/// How kubectl streams exec, attach and port-forward: its default (WebSocket to the
/// apiserver, which speaks SPDY to kwok) or SPDY all the way (its switches off).
#[derive(Debug, Clone, Copy)]
enum Transport {
    WebSocket,
    Spdy,
}

const TRANSPORTS: [Transport; 2] = [Transport::WebSocket, Transport::Spdy];

/// `kwokctl --name NAME kubectl ARGS` over `transport`.
fn kubectl(cluster: &Cluster, transport: Transport, args: &[&str]) -> Command {
    let mut all = vec!["--name", cluster.name, "kubectl"];
    all.extend_from_slice(args);
    let mut command = cluster.kwokctl.command(&all);
    for switch in [
        "KUBECTL_REMOTE_COMMAND_WEBSOCKETS",
        "KUBECTL_PORT_FORWARD_WEBSOCKETS",
    ] {
        match transport {
            Transport::WebSocket => command.env_remove(switch),
            Transport::Spdy => command.env(switch, "false"),
        };
    }
    command
}

/// Runs `command` to its end without input.
fn output(mut command: Command) -> Output {
    command.stdin(Stdio::null()).output().expect("run kubectl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A kubectl that keeps running (`logs -f`, `attach`, `port-forward`), its output
/// collected as it comes; killed on drop.
struct Streaming {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Streaming {
    fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kubectl");
        fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<String>> {
            let text = Arc::new(Mutex::new(String::new()));
            let into = text.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n @ 1..) = from.read(&mut buf) {
                    into.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
            text
        }
        let stdout = collect(child.stdout.take().expect("stdout"));
        let stderr = collect(child.stderr.take().expect("stderr"));
        Self {
            child,
            stdout,
            stderr,
        }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until its output so far satisfies `done`; fails naming `what`, with both
    /// streams, after `within` or once kubectl has exited without it.
    fn wait_for(&mut self, what: &str, within: Duration, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() {
                // What it wrote last is read by now.
                sleep(Duration::from_millis(300));
            }
            let out = self.stdout();
            if done(&out) {
                return out;
            }
            assert!(
                exited.is_none() && start.elapsed() < within,
                "{what}: not seen within {within:?} (kubectl exited: {exited:?})\nstdout: {out:?}\nstderr: {}",
                self.stderr()
            );
            sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Appends `lines` to the file at `path` (made if missing).
fn append(path: &Path, lines: &[String]) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the log file");
    for line in lines {
        writeln!(file, "{line}").expect("append");
    }
}

/// A complete stdout line of a CRI log file, as upstream's cases write them.
fn cri(text: &str) -> String {
    format!("2016-10-06T00:00:00Z stdout F {text}")
}

/// See: issue 20 ("`kubectl logs [-f] [--previous] [--tail] [--since] [--timestamps]`
/// stream a configured file per container"); upstream's `CaseLogs` with its logs.yaml.
#[test]
fn kubectl_logs_should_follow_upstreams_log_file_with_tail_since_and_timestamps() {
    let cluster = cluster_with_pod("kl-logs", &[upstream("test/e2e/logs.yaml")]);
    // Upstream's rule names `./logs.log`, relative to kwok's working directory: the
    // cluster's folder in the binary runtime.
    let file = cluster.dir().join("logs.log");
    append(&file, &[cri("log content 1")]);

    let mut follow = Streaming::spawn(kubectl(&cluster, Transport::WebSocket, &["logs", "-f", "pod0"]));
    follow.wait_for("the line already there", Duration::from_secs(30), |o| {
        o == "log content 1\n"
    });
    // What is appended while it follows comes as it is written (upstream's case): a
    // partial line (`P`) joined to its end, and stderr lines with stdout's.
    append(&file, &[cri("log content 2"), cri("log content 3")]);
    append(
        &file,
        &[
            "2016-10-06T00:00:00Z stdout P hello ".into(),
            "2016-10-06T00:00:00Z stdout F world".into(),
            "2016-10-06T00:00:00Z stderr F to stderr".into(),
            "2016-10-07T01:02:03.5Z stdout F late line".into(),
        ],
    );
    let all = "log content 1\nlog content 2\nlog content 3\nhello world\nto stderr\nlate line\n";
    follow.wait_for("the appended lines", Duration::from_secs(30), |o| o == all);
    assert!(follow.running(), "kubectl logs -f ended: {}", follow.stderr());

    // Without -f: the whole file, then kubectl ends.
    assert_eq!(cluster.kubectl(&["logs", "pod0"]), all);
    assert_eq!(
        cluster.kubectl(&["logs", "--tail=2", "pod0"]),
        "to stderr\nlate line\n"
    );
    // The kubelet (cri-client's ReadLogs, which upstream KWOK uses too) counts the
    // file's lines for --tail, a partial one included: the last three start at "world".
    assert_eq!(
        cluster.kubectl(&["logs", "--tail=3", "pod0"]),
        "world\nto stderr\nlate line\n"
    );
    assert_eq!(
        cluster.kubectl(&["logs", "--since-time=2016-10-07T00:00:00Z", "pod0"]),
        "late line\n"
    );
    // The kubelet's timestamps: RFC 3339 with nine fraction digits (cri-client's
    // RFC3339NanoFixed), whatever the file's precision, on each line's first part only.
    assert_eq!(
        cluster.kubectl(&["logs", "--timestamps", "--tail=1", "pod0"]),
        "2016-10-07T01:02:03.500000000Z late line\n"
    );
    assert_eq!(
        cluster.kubectl(&["logs", "--timestamps", "--tail=4", "pod0"]),
        "2016-10-06T00:00:00.000000000Z hello world\n2016-10-06T00:00:00.000000000Z to stderr\n\
         2016-10-07T01:02:03.500000000Z late line\n"
    );
    // The follower is still there and still following.
    append(&file, &[cri("after the others")]);
    follow.wait_for("a line after the others", Duration::from_secs(30), |o| {
        o == format!("{all}after the others\n")
    });
}

/// See: issue 20 ("Attach / ClusterAttach"); upstream's `CaseAttach` with its
/// attach.yaml: only what is appended after kubectl attached.
#[test]
fn kubectl_attach_should_show_lines_appended_to_upstreams_attach_file() {
    let cluster = cluster_with_pod("kl-attach", &[upstream("test/e2e/attach.yaml")]);
    let file = cluster.dir().join("attach.log");
    append(&file, &[cri("before attach")]);
    for transport in TRANSPORTS {
        let mut attach = Streaming::spawn(kubectl(&cluster, transport, &["attach", "pod0"]));
        // As upstream's case: "wait" lines until one shows, then the content.
        let start = Instant::now();
        while attach.stdout().is_empty() {
            assert!(
                attach.running() && start.elapsed() < Duration::from_secs(30),
                "{transport:?}: attach showed nothing; stderr: {}",
                attach.stderr()
            );
            append(&file, &[cri("wait")]);
            sleep(Duration::from_secs(1));
        }
        let lines: Vec<String> = (1..=3)
            .map(|i| format!("attach content {transport:?} {i}"))
            .collect();
        append(&file, &lines.iter().map(|l| cri(l)).collect::<Vec<_>>());
        let want: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let got = attach.wait_for(
            &format!("{transport:?}: the appended lines"),
            Duration::from_secs(30),
            |o| o.replace("wait\n", "") == want,
        );
        assert!(!got.contains("before attach"), "{transport:?}: {got}");
        assert!(attach.running(), "{transport:?}: {}", attach.stderr());
    }
}

/// See: issue 20 ("`kubectl exec POD -- CMD` runs a local command with the configured
/// env"); upstream's `CaseExec` with its exec.yaml, plus exit codes, stdin, separate
/// stderr and a command that does not exist, over both transports.
#[test]
fn kubectl_exec_should_run_upstreams_exec_rule_and_pass_exit_codes_back() {
    let cluster = cluster_with_pod("kl-exec", &[upstream("test/e2e/exec.yaml")]);
    for transport in TRANSPORTS {
        let exec = |args: &[&str]| {
            let mut all = vec!["exec", "pod0", "--"];
            all.extend_from_slice(args);
            output(kubectl(&cluster, transport, &all))
        };
        let env = exec(&["env"]);
        assert!(env.status.success(), "{transport:?}: {}", text(&env.stderr));
        assert!(
            text(&env.stdout).lines().any(|l| l == "TEST=test"),
            "{transport:?}: {}",
            text(&env.stdout)
        );

        let split = exec(&["sh", "-c", "echo out; echo err >&2"]);
        assert!(split.status.success(), "{transport:?}: {}", text(&split.stderr));
        assert_eq!(text(&split.stdout), "out\n", "{transport:?}");
        assert!(text(&split.stderr).contains("err\n"), "{transport:?}");

        let failed = exec(&["sh", "-c", "exit 3"]);
        assert_eq!(
            failed.status.code(),
            Some(3),
            "{transport:?}: {}",
            text(&failed.stderr)
        );

        let mut cat = kubectl(&cluster, transport, &["exec", "-i", "pod0", "--", "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kubectl exec -i");
        cat.stdin
            .take()
            .expect("stdin")
            .write_all(b"through stdin\n")
            .expect("write stdin");
        let cat = cat.wait_with_output().expect("kubectl exec -i");
        assert!(cat.status.success(), "{transport:?}: {}", text(&cat.stderr));
        assert_eq!(text(&cat.stdout), "through stdin\n", "{transport:?}");

        // A command that does not exist: a non-zero exit and an error naming it, and
        // kwok serves the next request (the next transport's, or the health check).
        let missing = "/nonexistent/kwok-e2e-command";
        let out = exec(&[missing]);
        assert!(!out.status.success(), "{transport:?}: {}", text(&out.stdout));
        assert!(
            text(&out.stderr).contains(missing),
            "{transport:?}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(cluster.kwok_get("/healthz").trim(), "ok");
}

/// An echo server on loopback (every connection on its own thread); its port.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the echo server");
    let port = listener.local_addr().expect("local address").port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let Ok(mut reader) = stream.try_clone() else {
                    return;
                };
                let mut writer = stream;
                let _ = std::io::copy(&mut reader, &mut writer);
            });
        }
    });
    port
}

/// Sends `size` bytes to 127.0.0.1:`port` and reads them back.
fn echo_through(port: u16, size: usize) -> Result<(), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let sent = payload.clone();
    let writing = thread::spawn(move || writer.write_all(&sent));
    let mut got = vec![0u8; size];
    let read = stream.read_exact(&mut got);
    let written = writing.join().expect("writer thread");
    read.map_err(|e| format!("read back: {e}"))?;
    written.map_err(|e| format!("write: {e}"))?;
    if got == payload {
        Ok(())
    } else {
        Err("the bytes read back differ from those sent".into())
    }
}

/// The local port of `kubectl port-forward`'s first "Forwarding from 127.0.0.1:PORT" line.
fn forwarding_port(forward: &mut Streaming) -> u16 {
    let out = forward.wait_for("Forwarding from", Duration::from_secs(30), |o| o.contains('\n'));
    out.split_whitespace()
        .find_map(|w| w.strip_prefix("127.0.0.1:")?.parse().ok())
        .unwrap_or_else(|| panic!("no local port in {out:?}"))
}

/// See: issue 20 ("PortForward / ClusterPortForward (dial a target address …)",
/// "an unreachable port-forward target: the kubectl user sees a clear error and kwok
/// keeps serving"); upstream's `CasePortForward`, at a listener of the test's own.
#[test]
fn kubectl_port_forward_should_reach_a_local_listener() {
    let target = echo_server();
    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let rules = tempfile::Builder::new()
        .prefix("kwok-e2e-forward-")
        .suffix(".yaml")
        .tempfile()
        .expect("temp file");
    // Every pod forwards to the echo server; pod1's own rule (which wins over the
    // cluster's) to the closed port.
    std::fs::write(
        rules.path(),
        format!(
            "kind: ClusterPortForward\napiVersion: kwok.x-k8s.io/v1alpha1\nmetadata:\n  name: to-echo\n\
             spec:\n  forwards:\n  - target:\n      port: {target}\n      address: 127.0.0.1\n---\n\
             kind: PortForward\napiVersion: kwok.x-k8s.io/v1alpha1\nmetadata:\n  name: pod1\n  namespace: default\n\
             spec:\n  forwards:\n  - target:\n      port: {closed}\n      address: 127.0.0.1\n"
        ),
    )
    .expect("write the rules");
    let cluster = cluster_with_pod("kl-forward", &[rules.path().to_path_buf()]);
    cluster.apply(&pod("pod1", "node0", "{}"));
    running(&cluster, "pod1");

    for transport in TRANSPORTS {
        let mut forward = Streaming::spawn(kubectl(
            &cluster,
            transport,
            &["port-forward", "pod/pod0", ":8080"],
        ));
        let local = forwarding_port(&mut forward);
        // Two connections at once, 256 KiB each way.
        let both: Vec<_> = (0..2)
            .map(|_| thread::spawn(move || echo_through(local, 256 * 1024)))
            .collect();
        for result in both {
            if let Err(e) = result.join().expect("echo thread") {
                panic!("{transport:?}: {e}; kubectl: {}", forward.stderr());
            }
        }

        // The unreachable target: no bytes back, and kubectl says which address failed.
        let mut failing = Streaming::spawn(kubectl(
            &cluster,
            transport,
            &["port-forward", "pod/pod1", ":8080"],
        ));
        let failing_port = forwarding_port(&mut failing);
        assert!(
            echo_through(failing_port, 16).is_err(),
            "{transport:?}: pod1 reached the echo server"
        );
        let start = Instant::now();
        while !failing.stderr().contains(&closed.to_string()) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{transport:?}: no error naming 127.0.0.1:{closed}; stderr: {}",
                failing.stderr()
            );
            sleep(Duration::from_millis(200));
        }
        drop(failing);

        // kwok still serves the first forward.
        if let Err(e) = echo_through(local, 1024) {
            panic!(
                "{transport:?} after the failure: {e}; kubectl: {}",
                forward.stderr()
            );
        }
    }
}

/// A sample's value in a Prometheus text page: the first line of metric `name` whose
/// labels contain `label`.
fn sample(page: &str, name: &str, label: &str) -> Option<f64> {
    page.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(['{', ' '])))
        .find(|l| l.contains(label))
        .and_then(|l| l.rsplit_once('}').map_or(l.split_once(' '), Some))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
}

/// `250m` (or `1`, in cores) as millicores.
fn millicores(cpu: &str) -> Option<u64> {
    match cpu.strip_suffix('m') {
        Some(m) => m.parse().ok(),
        None => cpu.parse::<u64>().ok().map(|c| c * 1000),
    }
}

/// Whether `cpu` is 250m give or take 2% (the rate metrics-server takes over two
/// scrapes of the cumulative counter).
fn about_250m(cpu: &str) -> bool {
    millicores(cpu).is_some_and(|m| (245..=255).contains(&m))
}

const HPA: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: busy
  namespace: default
spec:
  replicas: 1
  selector:
    matchLabels: {app: busy}
  template:
    metadata:
      labels: {app: busy}
      annotations: {kwok.x-k8s.io/usage-cpu: 250m, kwok.x-k8s.io/usage-memory: 100Mi}
    spec:
      nodeSelector: {pool: hpa-0}
      containers:
      - name: c
        image: fake
        resources:
          requests: {cpu: 100m}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: busy
  namespace: default
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: busy}
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 50}
"#;

/// See: issue 20 ("`kubectl top pod/node` then shows the configured usage; an HPA
/// scales a Deployment on it", "a pod without a rule gives a clear error"); upstream's
/// `CaseResourceUsage`, with kwokctl's default Metric and ClusterResourceUsage.
#[test]
fn kubectl_top_and_an_hpa_should_see_the_usage_of_pod_annotations() {
    let cluster = Cluster::create("kl-top", &["--enable", "metrics-server"]);
    cluster.apply(&node("top-0"));
    cluster.apply(&node("hpa-0"));
    cluster.apply(&pod("hog", "top-0", USAGE));
    // 250m used of 100m requested: 250% against a 50% target.
    cluster.apply(HPA);
    running(&cluster, "hog");

    // kwokctl's kwok gives every node its address and port (`--node-ip`, `--node-port`).
    let port = cluster.config_value("kwokControllerPort");
    for name in ["top-0", "hpa-0"] {
        cluster.eventually(
            &[
                "get",
                "node",
                name,
                "-o",
                r#"jsonpath={.status.addresses[?(@.type=="InternalIP")].address} {.status.daemonEndpoints.kubeletEndpoint.Port}"#,
            ],
            Duration::from_secs(60),
            |o| o == format!("127.0.0.1 {port}"),
        );
    }

    // No logs or exec rule here: each request fails with an error naming the pod and
    // container (not a DNS or dial error), and kwok keeps serving (top below).
    for args in [&["logs", "hog"][..], &["exec", "hog", "--", "env"]] {
        let out = output(kubectl(&cluster, Transport::WebSocket, args));
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {}", text(&out.stdout));
        assert!(
            err.contains("hog") && err.contains("\"c\"") && !err.contains("dial tcp"),
            "{args:?}: {err}"
        );
    }

    // metrics-server needs two scrapes 15 s apart.
    let top = cluster.eventually(
        &["top", "pod", "hog", "--no-headers"],
        Duration::from_secs(90),
        |o| {
            let cols: Vec<&str> = o.split_whitespace().collect();
            cols.len() >= 3 && about_250m(cols[1]) && cols[2] == "100Mi"
        },
    );
    assert!(top.starts_with("hog "), "{top}");
    // The node's usage is its pods': hog's alone.
    cluster.eventually(
        &["top", "node", "top-0", "--no-headers"],
        Duration::from_secs(60),
        |o| {
            let cols: Vec<&str> = o.split_whitespace().collect();
            cols.len() >= 5 && cols[0] == "top-0" && about_250m(cols[1]) && cols[3] == "100Mi"
        },
    );

    // kube-controller-manager's HPA sync is 15 s: from 1 replica to the maximum, 4.
    cluster.eventually(
        &["get", "deployment", "busy", "-o", "jsonpath={.status.replicas}"],
        Duration::from_secs(180),
        |o| o == "4",
    );
    let utilization = cluster.kubectl(&[
        "get",
        "hpa",
        "busy",
        "-o",
        "jsonpath={.status.currentMetrics[0].resource.current.averageUtilization}",
    ]);
    let utilization: u32 = utilization.parse().unwrap_or_else(|_| panic!("{utilization:?}"));
    assert!((240..=260).contains(&utilization), "{utilization}%");
}

/// Prometheus's active targets of the job scraping kwok's discovered targets:
/// (scrape URL, health).
fn discovered_targets(prometheus: &str) -> Vec<(String, String)> {
    let body = http_get(prometheus, "/api/v1/targets?state=active");
    let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    value["data"]["activeTargets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["scrapePool"] == "kwok-controller-metrics-discovery")
        .map(|t| {
            (
                t["scrapeUrl"].as_str().unwrap_or_default().to_owned(),
                t["health"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// See: issue 20 ("Prometheus (the existing component) scrapes the per-node metrics
/// targets found through the HTTP SD"; upstream's `metrics-usage.yaml` and
/// `metrics-resource.yaml` "load unchanged from `--config`").
#[test]
fn prometheus_should_scrape_every_node_kwoks_discovery_lists() {
    let usage = upstream("kustomize/metrics/usage").display().to_string();
    let cluster = Cluster::create("kl-prom", &["--prometheus-port", "0", "--config", usage.as_str()]);
    let nodes = ["prom-0", "prom-1"];
    for name in nodes {
        cluster.apply(&node(name));
    }
    cluster.apply(&pod("hog", "prom-0", USAGE));
    running(&cluster, "hog");

    // kwok serves upstream's Metric with upstream's usage for each node.
    let page = cluster.kwok_get("/metrics/nodes/prom-0/metrics/resource");
    assert_eq!(
        sample(&page, "pod_memory_working_set_bytes", "pod=\"hog\""),
        Some(USAGE_BYTES),
        "{page}"
    );
    assert_eq!(
        sample(&page, "node_memory_working_set_bytes", ""),
        Some(USAGE_BYTES),
        "{page}"
    );
    assert!(
        sample(&page, "container_cpu_usage_seconds_total", "pod=\"hog\"").is_some(),
        "{page}"
    );
    let discovery = cluster.kwok_get("/discovery/prometheus");
    let groups: Value = serde_json::from_str(&discovery).unwrap_or_else(|e| panic!("{e}: {discovery:?}"));
    for name in nodes {
        let path = format!("/metrics/nodes/{name}/metrics/resource");
        assert!(
            groups
                .as_array()
                .into_iter()
                .flatten()
                .any(|g| g["labels"]["__metrics_path__"] == path.as_str()),
            "{name} not discovered: {discovery}"
        );
    }

    // Prometheus finds them (its HTTP SD refreshes every 60 s by default) and scrapes them.
    let prometheus = format!("127.0.0.1:{}", cluster.config_value("prometheusPort"));
    let start = Instant::now();
    loop {
        let targets = discovered_targets(&prometheus);
        let up = |name: &str| {
            targets.iter().any(|(url, health)| {
                url.ends_with(&format!("/metrics/nodes/{name}/metrics/resource")) && health == "up"
            })
        };
        if nodes.iter().all(|n| up(n)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(150),
            "not every node's target up: {targets:?}"
        );
        sleep(Duration::from_secs(2));
    }
    let start = Instant::now();
    loop {
        let body = http_get(
            &prometheus,
            "/api/v1/query?query=pod_memory_working_set_bytes%7Bpod%3D%22hog%22%7D",
        );
        let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let found = value["data"]["result"][0]["value"][1].as_str().map(str::to_owned);
        if found.as_deref() == Some("104857600") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "hog's memory not in Prometheus: {body}"
        );
        sleep(Duration::from_secs(1));
    }
}

/// `curl` to kwok's port with the client certificate `cert` of the cluster's pki
/// (none with `None`): the HTTP status (`000` when the TLS handshake failed) and body.
fn curl(cluster: &Cluster, cert: Option<&str>, method: &str, path: &str) -> (String, String) {
    let pki = cluster.dir().join("pki");
    let port = cluster.config_value("kwokControllerPort");
    let mut command = Command::new("curl");
    command
        .args([
            "-s",
            "--max-time",
            "10",
            "-X",
            method,
            "-w",
            "\n%{http_code}",
            "--cacert",
        ])
        .arg(pki.join("ca.crt"));
    if let Some(cert) = cert {
        command
            .arg("--cert")
            .arg(pki.join(format!("{cert}.crt")))
            .arg("--key")
            .arg(pki.join(format!("{cert}.key")));
    }
    let out = command
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .expect("run curl");
    let all = text(&out.stdout);
    let (body, code) = all.rsplit_once('\n').unwrap_or(("", &all));
    (code.to_owned(), body.to_owned())
}

/// See: issue 20 ("client authentication by the apiserver's kubelet client
/// certificate, so only the apiserver gets in", "A client without the apiserver's
/// certificate is refused"); the rules are upstream's whole test/e2e folder, read as
/// its e2e suite reads it.
#[test]
fn kwok_should_refuse_kubelet_api_requests_without_a_certificate_of_the_cluster_ca() {
    let cluster = cluster_with_pod("kl-auth", &[upstream("test/e2e")]);
    append(&cluster.dir().join("logs.log"), &[cri("secret line")]);
    let logs = "/containerLogs/default/pod0/c";

    // The health checks need no certificate.
    assert_eq!(
        curl(&cluster, None, "GET", "/healthz"),
        ("200".to_owned(), "ok".to_owned())
    );
    // Everything else does: 401, as the kubelet's x509 authentication answers.
    for (method, path) in [
        ("GET", logs),
        ("GET", "/metrics/nodes/node0/metrics/resource"),
        ("GET", "/discovery/prometheus"),
        ("GET", "/metrics"),
        ("POST", "/exec/default/pod0/c?command=env&output=1"),
        ("POST", "/attach/default/pod0/c?output=1"),
        ("POST", "/portForward/default/pod0"),
    ] {
        let (code, body) = curl(&cluster, None, method, path);
        assert_eq!(code, "401", "{method} {path}: {body}");
    }
    // A certificate of another CA (the front proxy's) gets nothing either: refused in
    // the handshake or with 401.
    let (code, body) = curl(&cluster, Some("front-proxy-client"), "GET", logs);
    assert!(
        (code == "000" || code == "401") && !body.contains("secret line"),
        "{code}: {body}"
    );
    // One of the cluster CA's is served (the apiserver's is such a certificate).
    assert_eq!(
        curl(&cluster, Some("admin"), "GET", logs),
        ("200".to_owned(), "secret line\n".to_owned())
    );
    // Plain HTTP gets no answer of ours.
    let port = cluster.config_value("kwokControllerPort");
    assert!(!http_get(&format!("127.0.0.1:{port}"), logs).contains("secret line"));
}
