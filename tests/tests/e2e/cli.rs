//! Everyday kwokctl commands with upstream's flags against a real cluster: `--config`
//! naming a kustomization (with upstream's own `node/fast` set), `extraVolumes` that
//! create their path, `get … -o`, `get kubeconfig` with another identity and host,
//! the global `--dry-run` and `-v`, `port-forward` by port name, `start --wait/--timeout`
//! and `delete --kubeconfig/--force`.

use std::{fs, path::Path, process::Command};

use serde_json::Value;

use crate::{
    upstream_stages::upstream_set,
    util::{Kwokctl, PortForward, cache_dir},
};

const NAME: &str = "cli";

/// The cached kubectl, for requests with a kubeconfig kwokctl printed.
fn kubectl() -> std::path::PathBuf {
    let versions = fs::read_dir(cache_dir().join("kubectl")).expect("kubectl in the cache");
    let dir = versions.flatten().next().expect("a kubectl version").path();
    dir.join("kubectl")
}

fn kubectl_with(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new(kubectl())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn everyday_commands_should_take_upstreams_flags() {
    let kwokctl = Kwokctl::new();
    let home = kwokctl.workdir().with_file_name("inputs");
    fs::create_dir_all(&home).unwrap();

    // --config names a folder whose kustomization lists a KwokctlConfiguration file and
    // upstream's node/fast set (a folder with its own kustomization).
    let made_dir = home.join("made/by/create");
    fs::write(
        home.join("options.yaml"),
        format!(
            "kind: KwokctlConfiguration\ncomponentsPatches:\n- name: kube-scheduler\n  extraVolumes:\n  \
             - name: scratch\n    hostPath: {}\n    mountPath: /scratch\n    pathType: DirectoryOrCreate\n",
            made_dir.display()
        ),
    )
    .unwrap();
    fs::write(
        home.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- options.yaml\n- {}\n",
            upstream_set("node/fast").display()
        ),
    )
    .unwrap();
    let config = home.to_str().unwrap();

    // A dry run creates nothing, the volume path included, and says it would make it.
    let plan = kwokctl.ok(&["--dry-run", "-c", config, "create", "cluster", "--name", NAME]);
    assert!(
        plan.contains(&format!("mkdir -p {}", made_dir.display())),
        "{plan}"
    );
    assert!(!made_dir.exists() && !kwokctl.cluster_dir(NAME).exists());

    kwokctl.ok(&[
        "-c",
        config,
        "create",
        "cluster",
        "--name",
        NAME,
        "--kube-admission=false",
        "--etcd-quota-backend-size",
        "2Gi",
    ]);
    assert!(made_dir.is_dir(), "DirectoryOrCreate made {}", made_dir.display());
    // No admission: NamespaceLifecycle no longer refuses an object in a missing namespace.
    kwokctl.ok(&[
        "--name",
        NAME,
        "kubectl",
        "create",
        "configmap",
        "orphan",
        "-n",
        "nowhere",
    ]);
    let etcd = fs::read_to_string(format!(
        "/proc/{}/cmdline",
        fs::read_to_string(kwokctl.cluster_dir(NAME).join("pids/etcd.pid"))
            .unwrap()
            .trim()
    ))
    .unwrap();
    assert!(etcd.contains("--quota-backend-bytes=2147483648"), "{etcd}");
    let err = kwokctl.err(&[
        "--dry-run",
        "create",
        "cluster",
        "--name",
        "x",
        "--etcd-quota-backend-size",
        "lots",
    ]);
    assert!(
        err.contains("--etcd-quota-backend-size") && err.contains("lots"),
        "{err}"
    );
    let stages =
        fs::read_to_string(kwokctl.cluster_dir(NAME).join("kwok-controller-config.yaml")).unwrap_or_default();
    assert!(
        stages.contains("node-initialize"),
        "upstream's node/fast reached kwok: {stages}"
    );

    // Upstream's node-initialize stage makes a statusless node Ready.
    let node = "apiVersion: v1\nkind: Node\nmetadata:\n  name: cli-node\n  annotations: {kwok.x-k8s.io/node: fake}\n";
    let node_file = home.join("node.yaml");
    fs::write(&node_file, node).unwrap();
    kwokctl.ok(&[
        "--name",
        NAME,
        "kubectl",
        "apply",
        "-f",
        node_file.to_str().unwrap(),
    ]);
    kwokctl.ok(&[
        "--name",
        NAME,
        "kubectl",
        "wait",
        "--for=condition=Ready",
        "node/cli-node",
        "--timeout=60s",
    ]);

    // get -o: names by default (upstream), wide and json with readiness.
    assert_eq!(kwokctl.ok(&["get", "clusters"]).trim(), NAME);
    let wide = kwokctl.ok(&["get", "clusters", "-o", "wide"]);
    let row: Vec<&str> = wide
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row, [NAME, "5/5", "Ready"], "{wide}");
    let json: Value = serde_json::from_str(&kwokctl.ok(&["get", "clusters", "-o", "json"])).unwrap();
    assert_eq!(json[0]["status"], "Ready", "{json}");
    let names = kwokctl.ok(&["--name", NAME, "get", "components"]);
    assert!(names.lines().any(|l| l == "kube-apiserver"), "{names}");
    let components: Value =
        serde_json::from_str(&kwokctl.ok(&["--name", NAME, "get", "components", "-o", "json"])).unwrap();
    let statuses: Vec<&str> = components
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["Ready"; 5], "{components}");
    let err = kwokctl.err(&["get", "clusters", "-o", "yaml"]);
    assert!(err.contains("invalid value 'yaml'"), "{err}");

    // get kubeconfig: another user and groups are signed by the cluster's CA.
    let other = home.join("alice.kubeconfig");
    let text = kwokctl.ok(&[
        "--name",
        NAME,
        "get",
        "kubeconfig",
        "--user",
        "alice",
        "--group",
        "devs",
        "--host",
        "localhost",
        "--insecure-skip-tls-verify",
    ]);
    fs::write(&other, &text).unwrap();
    assert!(
        text.contains("insecure-skip-tls-verify: true") && text.contains("https://localhost:"),
        "{text}"
    );
    let who: Value = serde_json::from_str(&kubectl_with(&other, &["auth", "whoami", "-o", "json"])).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], "alice", "{who}");
    let groups = who["status"]["userInfo"]["groups"].to_string();
    assert!(groups.contains("devs"), "{groups}");
    let err = kwokctl.err(&[
        "--name",
        NAME,
        "get",
        "kubeconfig",
        "--user",
        "bob",
        "--group",
        "a,b",
    ]);
    assert!(err.contains("a client certificate carries one group"), "{err}");

    // port-forward by upstream's port name reaches the apiserver.
    let mut forward = PortForward::start(&kwokctl, NAME, "kube-apiserver", "0:https");
    let server = format!("--server=https://127.0.0.1:{}", forward.local_port());
    let admin = kwokctl.cluster_dir(NAME).join("kubeconfig.yaml");
    let ns = kubectl_with(&admin, &[&server, "get", "ns", "-o", "name"]);
    // kube-system, not default: the apiserver makes `default` a while after it is
    // ready, and under load this test once listed kube-public and kube-system only.
    assert!(ns.contains("namespace/kube-system"), "{ns}");
    forward.stop();
    let err = kwokctl.err(&["--name", NAME, "port-forward", "etcd", "0:metrics"]);
    assert!(
        err.contains("has no port named \"metrics\" (it has: http, peer-http)"),
        "{err}"
    );

    // --dry-run changes nothing: scale, stop and delete only print.
    let plan = kwokctl.ok(&["--name", NAME, "--dry-run", "scale", "node", "--replicas", "2"]);
    assert!(
        plan.contains("# create node-000000") && plan.contains("kind: Node"),
        "{plan}"
    );
    let plan = kwokctl.ok(&["--name", NAME, "stop", "cluster", "--dry-run"]);
    assert_eq!(plan.matches("kill ").count(), 5, "{plan}");
    let plan = kwokctl.ok(&["--name", NAME, "delete", "cluster", "--dry-run"]);
    assert!(plan.contains("rm -rf "), "{plan}");
    let nodes = kwokctl.ok(&["--name", NAME, "kubectl", "get", "nodes", "-o", "name"]);
    assert_eq!(nodes.trim(), "node/cli-node", "the dry run scaled nothing");
    assert!(kwokctl.processes().len() >= 5, "the dry run stopped nothing");

    let snap = home.join("snap.db");
    let plan = kwokctl.ok(&[
        "--name",
        NAME,
        "--dry-run",
        "snapshot",
        "save",
        "--path",
        snap.to_str().unwrap(),
    ]);
    assert!(plan.contains("snapshot save") && !snap.exists(), "{plan}");
    let plan = kwokctl.ok(&["--dry-run", "-c", config, "config", "tidy"]);
    assert!(
        plan.contains("cat <<'EOF' >") && plan.contains("kind: KwokctlConfiguration"),
        "{plan}"
    );
    assert!(
        !kwokctl.workdir().join("kwok.yaml").exists(),
        "the dry run wrote nothing"
    );

    // -v takes upstream's levels and refuses others in one line.
    kwokctl.ok(&["-v", "DEBUG", "get", "clusters"]);
    kwokctl.ok(&["--v=-4", "get", "clusters"]);
    let err = kwokctl.err(&["-v", "LOUD", "get", "clusters"]);
    assert!(err.contains("invalid level name \"LOUD\""), "{err}");

    // start --wait/--timeout after a stop.
    kwokctl.ok(&["--name", NAME, "stop", "cluster"]);
    kwokctl.ok(&[
        "--name",
        NAME,
        "start",
        "cluster",
        "--wait",
        "1m",
        "--timeout",
        "3m",
    ]);
    let wide = kwokctl.ok(&["get", "clusters", "-o", "wide"]);
    assert!(wide.contains("5/5"), "{wide}");

    // delete --kubeconfig removes the context from the file it names.
    let copy = home.join("copy.kubeconfig");
    fs::copy(kwokctl.kubeconfig(), &copy).unwrap();
    assert!(fs::read_to_string(&copy).unwrap().contains("kwok-cli"));
    kwokctl.ok(&[
        "--name",
        NAME,
        "delete",
        "cluster",
        "--kubeconfig",
        copy.to_str().unwrap(),
    ]);
    assert!(
        !fs::read_to_string(&copy).unwrap().contains("kwok-cli"),
        "context removed"
    );
    assert!(kwokctl.processes().is_empty(), "{:?}", kwokctl.processes());
    let err = kwokctl.err(&["--name", NAME, "delete", "cluster"]);
    assert!(err.contains("does not exist"), "{err}");
    let out = kwokctl.ok(&["--name", NAME, "delete", "cluster", "--force"]);
    assert!(out.contains("nothing to delete"), "{out}");
}
