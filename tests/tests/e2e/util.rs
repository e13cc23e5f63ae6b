//! Shared fixtures: a `kwokctl` bound to a throw-away work dir, and process checks.

use std::{
    collections::{BTreeMap, HashSet},
    fs,
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use tempfile::TempDir;

/// The folder of the built binaries: the test executable lives in `<target>/<profile>/deps/`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf()
}

/// The shared binary cache.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("KWOK_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".kwok/cache"))
}

/// Whether a test that needs something this machine may lack can run: `lacking` says
/// what is missing, if anything. Under `KWOK_E2E_RUNTIMES=required` (CI) that fails the
/// test; elsewhere it says it was skipped.
pub fn runnable_unless_required(lacking: Option<String>) -> bool {
    let Some(why) = lacking else {
        return true;
    };
    let required = std::env::var("KWOK_E2E_RUNTIMES").is_ok_and(|v| v == "required");
    assert!(!required, "{why} and KWOK_E2E_RUNTIMES=required");
    eprintln!("skipped: {why}");
    false
}

/// Repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A kwokctl whose clusters and kubeconfig live in a temp dir removed on drop
/// (after deleting whatever clusters are left, so a failing test leaves no process).
pub struct Kwokctl {
    home: TempDir,
}

impl Kwokctl {
    pub fn new() -> Self {
        let bin = bin_dir().join("kwokctl");
        assert!(
            bin.exists(),
            "{} is missing: run `cargo build --workspace --bins` first",
            bin.display()
        );
        Self {
            home: tempfile::Builder::new()
                .prefix("kwok-e2e-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    /// The work dir (`KWOK_WORKDIR`).
    pub fn workdir(&self) -> PathBuf {
        self.home.path().join("kwok")
    }

    /// The user kubeconfig (`KUBECONFIG`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.home.path().join("kubeconfig")
    }

    /// The folder of cluster `name`.
    pub fn cluster_dir(&self, name: &str) -> PathBuf {
        self.workdir().join("clusters").join(name)
    }

    /// A kwokctl command with `args` bound to this work dir, to run or spawn as the
    /// caller needs (extra environment, piped streams).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bin_dir().join("kwokctl"));
        command
            .args(args)
            .env("KWOK_WORKDIR", self.workdir())
            .env("KWOK_CACHE_DIR", cache_dir())
            .env("KUBECONFIG", self.kubeconfig())
            .env_remove("KWOK_NAME");
        command
    }

    /// Runs kwokctl with `args`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run kwokctl")
    }

    /// Runs kwokctl and returns stdout, panicking with stderr on failure.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kwokctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kwokctl expecting failure; returns stderr.
    pub fn err(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kwokctl {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Live processes whose command line mentions this work dir.
    pub fn processes(&self) -> Vec<u32> {
        processes_mentioning(&self.workdir())
    }
}

impl Drop for Kwokctl {
    fn drop(&mut self) {
        if self.workdir().join("clusters").exists() {
            let _ = self.run(&["delete", "cluster", "--all"]);
        }
    }
}

/// A cluster created by kwokctl in its own work dir, with kubectl helpers.
pub struct Cluster {
    pub kwokctl: Kwokctl,
    pub name: &'static str,
}

impl Cluster {
    /// Creates cluster `name` with extra `create cluster` flags.
    ///
    /// Tried again (twice at most) when a component found its port taken: kwokctl lets
    /// a picked port go just before the component binds it, and the tests create many
    /// clusters at once, so another kwokctl can pick the same port in between. kwokctl
    /// says so in one line and leaves nothing behind, so trying again is safe.
    pub fn create(name: &'static str, flags: &[&str]) -> Self {
        let kwokctl = Kwokctl::new();
        let mut args = vec!["create", "cluster", "--name", name];
        args.extend_from_slice(flags);
        for _ in 0..2 {
            let out = kwokctl.run(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                return Self { kwokctl, name };
            }
            if !stderr.contains("Address already in use") {
                panic!("kwokctl {args:?} failed: {stderr}");
            }
            eprintln!("kwokctl {args:?} met a port taken meanwhile; trying again: {stderr}");
        }
        kwokctl.ok(&args);
        Self { kwokctl, name }
    }

    /// A value of the cluster's `kwok.yaml` (first line `key: value`).
    pub fn config_value(&self, key: &str) -> String {
        let config = fs::read_to_string(self.dir().join("kwok.yaml")).expect("kwok.yaml");
        config
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(&format!("{key}: "))
                    .map(|v| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("{key} missing from kwok.yaml"))
    }

    /// The cluster's folder.
    pub fn dir(&self) -> PathBuf {
        self.kwokctl.cluster_dir(self.name)
    }

    /// The kubeconfig kwok is given.
    pub fn kwok_kubeconfig(&self) -> PathBuf {
        self.dir().join("kubeconfigs/kwok-controller.yaml")
    }

    /// The apiserver's port, from the kubeconfig kwok is given.
    pub fn apiserver_port(&self) -> u16 {
        let kubeconfig = fs::read_to_string(self.kwok_kubeconfig()).expect("kwok-controller kubeconfig");
        let server = kubeconfig
            .lines()
            .find_map(|l| l.trim().strip_prefix("server:"))
            .expect("server in the kubeconfig");
        server
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("server port")
    }

    /// GET `path` from the cluster's kwok over HTTPS with the admin client certificate
    /// (kwok asks for one signed by the cluster CA); the body, or empty when refused.
    pub fn kwok_get(&self, path: &str) -> String {
        self.kwok_get_at(&self.config_value("kwokControllerPort"), path)
    }

    /// [`Cluster::kwok_get`] from the kwok serving on `port` (one of several replicas).
    pub fn kwok_get_at(&self, port: &str, path: &str) -> String {
        let pki = self.dir().join("pki");
        let out = Command::new("curl")
            .args(["-sf", "--cacert"])
            .arg(pki.join("ca.crt"))
            .arg("--cert")
            .arg(pki.join("admin.crt"))
            .arg("--key")
            .arg(pki.join("admin.key"))
            .arg(format!("https://127.0.0.1:{port}{path}"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The pid of a running component.
    pub fn pid(&self, component: &str) -> u32 {
        fs::read_to_string(self.dir().join("pids").join(format!("{component}.pid")))
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid")
    }

    /// Kills a component (SIGKILL, as a crash) and waits until it is gone (its pid file stays).
    pub fn kill(&self, component: &str) {
        let pid = self.pid(component);
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        let start = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{component} did not stop"
            );
            sleep(Duration::from_millis(100));
        }
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        let mut all = vec!["--name", self.name, "kubectl"];
        all.extend_from_slice(args);
        self.kwokctl.ok(&all)
    }

    /// The Lease of node `node` as JSON, its managedFields shown.
    pub fn node_lease(&self, node: &str) -> serde_json::Value {
        let text = self.kubectl(&[
            "-n",
            "kube-node-lease",
            "get",
            "lease",
            node,
            "-o",
            "json",
            "--show-managed-fields",
        ]);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("kubectl's JSON: {e}: {text}"))
    }

    /// Node Lease holder → how many Leases of nodes named `prefix…` it holds (empty
    /// while kubectl fails).
    pub fn lease_holders(&self, prefix: &str) -> BTreeMap<String, usize> {
        holder_counts(&self.leases(prefix))
    }

    /// Node name → the holder of its Lease, for nodes named `prefix…` (empty while
    /// kubectl fails).
    pub fn leases(&self, prefix: &str) -> BTreeMap<String, String> {
        lease_holders(&self.kwokctl, self.name, prefix)
    }

    /// Applies `yaml`, retrying for a while. Right after start-up the apiserver refuses
    /// pods until their namespace's default ServiceAccount exists, which
    /// kube-controller-manager makes late on a loaded machine (not within 60 s in CI), so
    /// a refusal naming it makes it here (failing if kube-controller-manager made it
    /// meanwhile, which the next try shows).
    pub fn apply(&self, yaml: &str) {
        let start = Instant::now();
        loop {
            match self.try_apply(yaml) {
                Ok(()) => return,
                Err(e) if start.elapsed() > Duration::from_secs(30) => panic!("apply failed: {e}"),
                Err(e) => {
                    if let Some(namespace) = missing_default_service_account(&e) {
                        let account = format!(
                            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: {namespace}\n"
                        );
                        let _ = self.try_apply(&account);
                    }
                    sleep(Duration::from_millis(500));
                }
            }
        }
    }

    pub fn try_apply(&self, yaml: &str) -> Result<(), String> {
        let bin = bin_dir().join("kwokctl");
        let mut child = Command::new(bin)
            .args(["--name", self.name, "kubectl", "apply", "-f", "-"])
            .env("KWOK_WORKDIR", self.kwokctl.workdir())
            .env("KWOK_CACHE_DIR", cache_dir())
            .env("KUBECONFIG", self.kwokctl.kubeconfig())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Polls `args` until kubectl succeeds with output satisfying `done`, or fails after `within`.
    pub fn eventually(&self, args: &[&str], within: Duration, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        let mut all = vec!["--name", self.name, "kubectl"];
        all.extend_from_slice(args);
        loop {
            let out = self.kwokctl.run(&all);
            let text = String::from_utf8_lossy(if out.status.success() {
                &out.stdout
            } else {
                &out.stderr
            });
            if out.status.success() && done(&text) {
                return text.into_owned();
            }
            assert!(
                start.elapsed() < within,
                "{args:?} not done after {within:?}; last output: {text}"
            );
            sleep(Duration::from_millis(500));
        }
    }
}

/// `--kube-audit-policy` for a cluster whose audit log [`Cluster::drivers`] reads:
/// the double-drive check's own policy (`perf/audit-policy.yaml`).
pub fn audit_policy() -> String {
    repo_root().join("perf/audit-policy.yaml").display().to_string()
}

impl Cluster {
    /// Which kwok drove which node, from the cluster's audit log (the cluster made with
    /// [`audit_policy`], its kwoks with 40 s node Leases); asserts that no node was
    /// driven by two kwoks at once and that each of `ids` drove some node, so that the
    /// check cannot pass on a log that names no kwok. Returns the report.
    pub fn assert_driven_once(&self, ids: &[&str]) -> kwok_perf::audit::Report {
        let path = self.dir().join("logs/audit.log");
        let log = fs::File::open(&path).expect("the audit log");
        let report = kwok_perf::audit::check(std::io::BufReader::new(log), Duration::from_secs(40))
            .expect("a readable audit log");
        let summary = report.summary(20);
        println!("{summary}");
        assert!(
            report.findings.is_empty(),
            "nodes driven twice at once:\n{summary}"
        );
        let driven = report.nodes_driven_by();
        for id in ids {
            assert!(
                driven.get(id).is_some_and(|n| *n > 0),
                "no writes by {id} in the audit log:\n{summary}"
            );
        }
        report
    }
}

/// A fake node `<prefix><i>` with podCIDR `10.<i>.0.0/24`, so its pods' IPs come from
/// the node, whichever kwok drives it.
/// Holder → how many of `leases` (node → holder) it holds.
pub fn holder_counts(leases: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for holder in leases.values() {
        *count.entry(holder.clone()).or_insert(0) += 1;
    }
    count
}

pub fn node_with_cidr(prefix: &str, i: usize) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {prefix}{i}\n  annotations: {{kwok.x-k8s.io/node: fake}}\nspec:\n  podCIDR: 10.{i}.0.0/24\n"
    )
}

/// A `kwok` controller started by a test against a cluster, stopped on drop.
pub struct KwokProcess {
    child: Child,
    /// Its `--server-address`.
    pub address: String,
}

impl KwokProcess {
    /// Starts `kwok` with the cluster's kwok-controller kubeconfig, a free server
    /// port and `args`; waits until it is ready.
    pub fn start(cluster: &Cluster, args: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let address = format!("127.0.0.1:{port}");
        let log =
            fs::File::create(cluster.dir().join("logs").join(format!("test-kwok-{port}.log"))).expect("log");
        let child = Command::new(bin_dir().join("kwok"))
            .arg(format!("--kubeconfig={}", cluster.kwok_kubeconfig().display()))
            .arg(format!("--server-address={address}"))
            .args(args)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start kwok");
        let mut me = Self { child, address };
        let start = Instant::now();
        while http_get(&me.address, "/readyz").trim() != "ok" {
            if let Ok(Some(status)) = me.child.try_wait() {
                panic!(
                    "kwok exited with {status} (log under {})",
                    cluster.dir().join("logs").display()
                );
            }
            assert!(start.elapsed() < Duration::from_secs(60), "kwok not ready");
            sleep(Duration::from_millis(200));
        }
        me
    }

    /// A metric's value summed over its label sets.
    pub fn metric(&self, name: &str) -> f64 {
        self.metric_where(name, "")
    }

    /// A metric's value summed over the label sets that contain `label` (such as
    /// `verb="patch"`).
    pub fn metric_where(&self, name: &str, label: &str) -> f64 {
        metric_sum(&http_get(&self.address, "/metrics"), name, label)
    }

    /// Sends it `signal` (`STOP`, `CONT`…).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Its established TCP connections to port `port` (from `/proc`: its socket fds,
    /// looked up in the kernel's tcp tables).
    pub fn connections_to(&self, port: u16) -> usize {
        let pid = self.child.id();
        let sockets: HashSet<String> = fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("kwok's fds")
            .filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
            .filter_map(|link| {
                let link = link.to_string_lossy().into_owned();
                Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
            })
            .collect();
        ["tcp", "tcp6"]
            .iter()
            .filter_map(|table| fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok())
            .flat_map(|table| table.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
            .filter(|line| {
                let cols: Vec<&str> = line.split_whitespace().collect();
                // remote address is `HEXADDR:HEXPORT`; state 01 is ESTABLISHED.
                let remote = cols.get(2).and_then(|r| r.rsplit(':').next());
                remote.and_then(|p| u16::from_str_radix(p, 16).ok()) == Some(port)
                    && cols.get(3) == Some(&"01")
                    && cols.get(9).is_some_and(|inode| sockets.contains(*inode))
            })
            .count()
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for KwokProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain HTTP/1.0 GET (the controller serves metrics without TLS on loopback); empty
/// when nothing answers.
/// The namespace whose default ServiceAccount the apiserver's refusal `error` says is
/// missing (the ServiceAccount admission plugin's "error looking up service account
/// NAMESPACE/default").
fn missing_default_service_account(error: &str) -> Option<&str> {
    let (_, rest) = error.split_once("error looking up service account ")?;
    let (namespace, rest) = rest.split_once('/')?;
    rest.starts_with("default:").then_some(namespace)
}

pub fn http_get(address: &str, path: &str) -> String {
    use std::io::Read;
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return String::new();
    };
    let _ = write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// Live (non-zombie) processes whose command line contains `needle`.
pub fn processes_mentioning(needle: &Path) -> Vec<u32> {
    let needle = needle.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").filter_map(Result::ok) {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) && !is_zombie(pid) {
            pids.push(pid);
        }
    }
    pids
}

fn is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next().map(str::to_owned))
        })
        .is_none_or(|state| state == "Z" || state == "X")
}

#[test]
fn missing_default_service_account_should_be_read_from_the_refusal() {
    let refusal = r#"Error from server (Forbidden): error when creating "STDIN": pods "p-0" is forbidden: error looking up service account ns-a/default: serviceaccount "default" not found"#;
    assert_eq!(missing_default_service_account(refusal), Some("ns-a"));
    let other = r#"pods "p" is forbidden: error looking up service account ns-a/builder: serviceaccount "builder" not found"#;
    assert_eq!(missing_default_service_account(other), None);
    assert_eq!(missing_default_service_account("connection refused"), None);
}

/// A running `kwokctl port-forward`.
pub struct PortForward {
    child: Child,
    local: u16,
}

impl PortForward {
    pub fn start(kwokctl: &Kwokctl, name: &str, component: &str, ports: &str) -> Self {
        let mut child = Command::new(bin_dir().join("kwokctl"))
            .args(["--name", name, "port-forward", component, ports])
            .env("KWOK_WORKDIR", kwokctl.workdir())
            .env("KWOK_CACHE_DIR", cache_dir())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // "Forwarding from 127.0.0.1:LOCAL -> …"
        let mut line = Vec::new();
        let mut stdout = child.stdout.take().unwrap();
        let mut byte = [0u8; 1];
        while stdout.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        let line = String::from_utf8_lossy(&line).into_owned();
        let local = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("127.0.0.1:")?.parse().ok())
            .unwrap_or_else(|| panic!("no local port in {line:?}"));
        Self { child, local }
    }

    pub fn local_port(&self) -> u16 {
        self.local
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Metric `name` in the text of a `/metrics` page, summed over the label sets that
/// contain `label` (such as `verb="patch"`; empty for all).
pub fn metric_sum(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Each kwok of the cluster (`kwok-controller`, `kwok-controller-1`, …) → its port, as
/// `get components -o wide` lists them.
pub fn kwok_ports(cluster: &Cluster) -> BTreeMap<String, String> {
    let wide = cluster
        .kwokctl
        .ok(&["--name", cluster.name, "get", "components", "-o", "wide"]);
    wide.lines()
        .filter(|l| l.starts_with("kwok-controller"))
        .filter_map(|l| {
            let columns: Vec<&str> = l.split_whitespace().collect();
            Some((columns.first()?.to_string(), columns.last()?.to_string()))
        })
        .collect()
}

/// Node name → the holder of its Lease in cluster `cluster`, for nodes named `prefix…`
/// (empty while kubectl fails).
pub fn lease_holders(kwokctl: &Kwokctl, cluster: &str, prefix: &str) -> BTreeMap<String, String> {
    const HOLDERS: &str = "jsonpath={range .items[*]}{.metadata.name}={.spec.holderIdentity}{\"\\n\"}{end}";
    let leases = kwokctl.run(&[
        "--name",
        cluster,
        "kubectl",
        "-n",
        "kube-node-lease",
        "get",
        "leases",
        "-o",
        HOLDERS,
    ]);
    String::from_utf8_lossy(&leases.stdout)
        .lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(name, holder)| (name.to_owned(), holder.to_owned()))
        .collect()
}
