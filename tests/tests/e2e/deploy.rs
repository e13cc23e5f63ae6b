//! `shards/deploy/` in a cluster where pods really run: kwok as a Deployment on a real
//! kubelet (containerd, a bridge network and kube-proxy on this machine, made by
//! `shards/deploy/real-node/real-node.sh`), driving fake nodes and their pods through
//! the in-cluster `kubernetes` Service, and reached by the apiserver at its pod IP as
//! each fake node's kubelet.
//!
//! Needs root (or passwordless sudo), docker, containerd, runc, the CNI plugins and iptables. `.ci/run`
//! installs them and sets `KWOK_E2E_RUNTIMES=required`, under which anything missing
//! fails the test; elsewhere the test says it was skipped and passes.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use kwokctl::{
    component::Component,
    runtime::{Engine, EngineKind, image},
};

use crate::{
    util::{Cluster, bin_dir, repo_root, runnable_unless_required},
    wait::{ready_nodes, running_pods, until},
};

const SETTLE: Duration = Duration::from_secs(120);
/// The bridge's address on this host: the pods' gateway, where the apiserver is
/// advertised (real-node.sh's default POD_CIDR is 10.244.0.0/24).
const GATEWAY: &str = "10.244.0.1";

/// Whether this machine can run a real node; panics when it must (CI) and cannot.
fn real_node_possible() -> bool {
    let has = |tool: &str, arg: &str| {
        Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let root = is_root()
        || Command::new("sudo")
            .args(["-n", "true"])
            .status()
            .is_ok_and(|s| s.success());
    let missing: Vec<&str> = [
        ("root or passwordless sudo", root),
        ("docker", has("docker", "info")),
        ("containerd", has("containerd", "--version")),
        ("runc", has("runc", "--version")),
        ("iptables", has("iptables", "--version")),
        ("CNI plugins", Path::new("/usr/lib/cni/bridge").exists()),
    ]
    .into_iter()
    .filter_map(|(what, ok)| (!ok).then_some(what))
    .collect();
    runnable_unless_required((!missing.is_empty()).then(|| format!("a real node needs {missing:?}")))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A real node under a temp dir, taken down on drop (before the cluster goes).
struct RealNode {
    dir: PathBuf,
    _home: tempfile::TempDir,
}

impl RealNode {
    /// `real-node.sh`, as root (through `sudo -n` when the test is not).
    fn script() -> Command {
        let script = repo_root().join("shards/deploy/real-node/real-node.sh");
        let mut command = if is_root() {
            Command::new("bash")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "--preserve-env=KWOK_CACHE_DIR,HOME", "bash"]);
            sudo
        };
        command.arg(script);
        command
    }

    fn up(kubeconfig: &Path) -> Self {
        let home = tempfile::Builder::new()
            .prefix("kwok-e2e-real-node-")
            .tempdir()
            .expect("temp dir");
        let node = Self {
            dir: home.path().join("node"),
            _home: home,
        };
        node.run(&["up".as_ref(), node.dir.as_os_str(), kubeconfig.as_os_str()]);
        node
    }

    fn load(&self, image: &str) {
        self.run(&["load".as_ref(), self.dir.as_os_str(), image.as_ref()]);
    }

    fn run(&self, args: &[&std::ffi::OsStr]) {
        let out = Self::script().args(args).output().expect("bash");
        assert!(
            out.status.success(),
            "real-node.sh {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for RealNode {
    fn drop(&mut self) {
        let _ = Self::script().arg("down").arg(&self.dir).status();
    }
}

/// `shards/deploy/kwok.yaml` with `image` in place of the one it says to build and push.
fn deployment_with(image: &str) -> String {
    let manifest = std::fs::read_to_string(repo_root().join("shards/deploy/kwok.yaml")).expect("kwok.yaml");
    let placeholder = "image: kwok-rs/kwok:0.1.0";
    assert!(
        manifest.contains(placeholder),
        "shards/deploy/kwok.yaml names another image"
    );
    manifest.replace(placeholder, &format!("image: {image}"))
}

/// A fake node for shards/deploy's kwok (its annotation selector) with a kubelet's labels.
fn fake_node(name: &str) -> String {
    format!(
        "- apiVersion: v1
  kind: Node
  metadata:
    name: {name}
    annotations: {{kwok.x-k8s.io/node: fake}}
    labels: {{type: kwok, kubernetes.io/hostname: {name}, kubernetes.io/os: linux, kubernetes.io/arch: amd64}}
  spec:
    taints: [{{key: kwok.x-k8s.io/node, value: fake, effect: NoSchedule}}]
"
    )
}

/// Six pods for the fake nodes.
const FAKE_PODS: &str = r#"- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: fake-pods, namespace: default}
  spec:
    replicas: 6
    selector: {matchLabels: {app: fake-pods}}
    template:
      metadata: {labels: {app: fake-pods}}
      spec:
        nodeSelector: {type: kwok}
        tolerations: [{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}]
        containers: [{name: app, image: fake}]
"#;

#[test]
fn shards_deploy_should_run_kwok_as_a_pod_on_a_real_kubelet_and_drive_fake_nodes() {
    if !real_node_possible() {
        return;
    }
    // Pods reach the apiserver through the `kubernetes` Service at the address it
    // advertises, the bridge's on this host; no kwok runs beside the control plane.
    let cluster = Cluster::create(
        "deploy",
        &[
            "--disable",
            "kwok-controller",
            "--extra-args",
            "kube-apiserver=bind-address=0.0.0.0",
            "--extra-args",
            &format!("kube-apiserver=advertise-address={GATEWAY}"),
            "--extra-args",
            "kube-apiserver=endpoint-reconciler-type=lease",
        ],
    );
    let kubectl = |args: &[&str]| cluster.kubectl(args);
    let node = RealNode::up(&cluster.dir().join("kubeconfig.yaml"));
    let ready = until(SETTLE, &vec!["real-node".to_owned()], || {
        ready_nodes(&cluster.kwokctl, cluster.name, "kubernetes.io/hostname=real-node")
    });
    assert_eq!(ready, ["real-node"], "the real node did not become Ready");

    // The image kwokctl's docker runtime runs, from the kwok just built.
    let reference = image::reference(Component::KwokController, "e2e-deploy");
    image::ensure(
        &Engine::new(EngineKind::Docker),
        Component::KwokController,
        &bin_dir().join("kwok"),
        &reference,
    )
    .expect("kwok image");
    node.load(&reference);

    let crds = repo_root().join("shards/deploy/crds");
    kubectl(&["apply", "-f", crds.to_str().expect("utf-8 path")]);
    cluster.apply(&deployment_with(&reference));
    let rolled = cluster.kwokctl.run(&[
        "--name",
        cluster.name,
        "kubectl",
        "-n",
        "kube-system",
        "rollout",
        "status",
        "deployment/kwok-controller",
        "--timeout=180s",
    ]);
    assert!(
        rolled.status.success(),
        "kwok's Deployment did not become available: {}",
        String::from_utf8_lossy(&rolled.stderr)
    );
    let kwok_pod = kubectl(&[
        "-n",
        "kube-system",
        "get",
        "pods",
        "-l",
        "app=kwok-controller",
        "-o",
        "jsonpath={.items[0].spec.nodeName} {.items[0].status.podIP}",
    ]);
    let (on, pod_ip) = kwok_pod.trim().split_once(' ').expect("node and IP");
    assert_eq!(on, "real-node", "kwok ran on {on}, not on the real kubelet");
    assert!(pod_ip.starts_with("10.244.0."), "kwok's pod IP {pod_ip}");

    // kwok, in its pod, drives the fake nodes and their pods.
    cluster.apply(&format!(
        "apiVersion: v1\nkind: List\nitems:\n{}{}{FAKE_PODS}",
        fake_node("fake-0"),
        fake_node("fake-1")
    ));
    let fakes = until(SETTLE, &vec!["fake-0".to_owned(), "fake-1".to_owned()], || {
        ready_nodes(&cluster.kwokctl, cluster.name, "type=kwok")
    });
    assert_eq!(fakes, ["fake-0", "fake-1"], "the fake nodes did not become Ready");
    let running = until(SETTLE, &6, || {
        running_pods(&cluster.kwokctl, cluster.name, "default").len()
    });
    assert_eq!(running, 6, "the fake pods did not all run");
    let addresses = kubectl(&[
        "get",
        "node",
        "fake-0",
        "-o",
        "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address} {.status.daemonEndpoints.kubeletEndpoint.Port}",
    ]);
    assert_eq!(
        addresses.trim(),
        format!("{pod_ip} 10247"),
        "a fake node advertises kwok's pod as its kubelet"
    );

    // The apiserver reaches kwok's kubelet API at the pod's IP (no tunnel), and the
    // real kubelet serves kwok's own log.
    let healthz = kubectl(&["get", "--raw", "/api/v1/nodes/fake-0/proxy/healthz"]);
    assert_eq!(healthz.trim(), "ok", "fake-0's kubelet endpoint");
    let log = kubectl(&["-n", "kube-system", "logs", "deployment/kwok-controller"]);
    assert!(log.contains("kwok"), "kwok's log through the real kubelet: {log}");

    // Pods on the real node go before it does, so its sandboxes are torn down by the kubelet.
    kubectl(&[
        "-n",
        "kube-system",
        "delete",
        "deployment",
        "kwok-controller",
        "--wait=true",
    ]);
    let left = until(SETTLE, &String::new(), || {
        kubectl(&[
            "get",
            "pods",
            "-A",
            "--field-selector",
            "spec.nodeName=real-node",
            "-o",
            "name",
        ])
        .trim()
        .to_owned()
    });
    assert_eq!(left, "", "pods left on the real node");
    drop(node);
}
