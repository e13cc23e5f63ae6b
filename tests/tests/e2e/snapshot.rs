//! `kwokctl snapshot`: a cluster with nodes, pods and a ConfigMap saved in both formats
//! and restored into new clusters with the same objects; files that are not snapshots
//! refused with nothing changed.

use std::{fs, time::Duration};

use crate::{
    util::Kwokctl,
    wait::{assert_one_line, names, ready_nodes, running_pods, serial_names, until},
};

const SETTLE: Duration = Duration::from_secs(60);

/// What the tests compare between the source and a restored cluster.
#[derive(Debug, PartialEq)]
struct Objects {
    nodes: Vec<String>,
    pods: Vec<String>,
    configmap: String,
    /// Custom resources, whose CustomResourceDefinition is in the snapshot too.
    widgets: String,
}

/// A CRD and one of its objects: a k8s restore must create the CRD, wait until its
/// kind is served, then create the object.
const WIDGETS: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: string}}}
";
const WIDGET: &str = "apiVersion: example.com/v1
kind: Widget
metadata: {name: blue, namespace: app}
spec: {size: large}
";

fn kubectl_text(kwokctl: &Kwokctl, c: &str, args: &[&str]) -> String {
    let mut full = vec!["--name", c, "kubectl"];
    full.extend_from_slice(args);
    String::from_utf8_lossy(&kwokctl.run(&full).stdout).into_owned()
}

fn objects(kwokctl: &Kwokctl, c: &str) -> Objects {
    Objects {
        nodes: ready_nodes(kwokctl, c, "kwok.x-k8s.io/kwokctl-scale=node"),
        pods: running_pods(kwokctl, c, "app"),
        configmap: kwokctl
            .run(&[
                "--name",
                c,
                "kubectl",
                "get",
                "cm",
                "settings",
                "-n",
                "app",
                "-o",
                "jsonpath={.data.k}",
            ])
            .stdout
            .iter()
            .map(|&b| char::from(b))
            .collect(),
        widgets: kubectl_text(
            kwokctl,
            c,
            &[
                "get",
                "widgets",
                "-n",
                "app",
                "-o",
                "jsonpath={.items[*].spec.size}",
            ],
        ),
    }
}

fn expected() -> Objects {
    Objects {
        nodes: serial_names("node", 0..3),
        pods: serial_names("pod", 0..4),
        configmap: "v".into(),
        widgets: "large".into(),
    }
}

/// Restores `file` into a new cluster `c` and checks it holds the source's objects.
fn restore_into_new_cluster(kwokctl: &Kwokctl, c: &str, file: &str, format: &str) {
    kwokctl.ok(&["create", "cluster", "--name", c]);
    kwokctl.ok(&[
        "--name", c, "snapshot", "restore", "--path", file, "--format", format,
    ]);
    let want = expected();
    assert_eq!(
        until(SETTLE, &want, || objects(kwokctl, c)),
        want,
        "{format} restore"
    );
}

#[test]
fn snapshot_should_restore_nodes_pods_and_configmaps_in_both_formats() {
    let kwokctl = Kwokctl::new();
    let files = tempfile::tempdir().unwrap();
    let db = files.path().join("snap.db");
    let yaml = files.path().join("snap.yaml");
    let (db, yaml) = (db.to_str().unwrap(), yaml.to_str().unwrap());

    let src = "src";
    kwokctl.ok(&["create", "cluster", "--name", src]);
    kwokctl.ok(&["--name", src, "scale", "node", "--replicas", "3"]);
    kwokctl.ok(&["--name", src, "kubectl", "create", "namespace", "app"]);
    kwokctl.ok(&[
        "--name",
        src,
        "kubectl",
        "-n",
        "app",
        "create",
        "configmap",
        "settings",
        "--from-literal=k=v",
    ]);
    kwokctl.ok(&["--name", src, "scale", "pod", "--replicas", "4", "-n", "app"]);
    let crd = files.path().join("crd.yaml");
    let widget = files.path().join("widget.yaml");
    fs::write(&crd, WIDGETS).unwrap();
    fs::write(&widget, WIDGET).unwrap();
    kwokctl.ok(&["--name", src, "kubectl", "apply", "-f", crd.to_str().unwrap()]);
    kwokctl.ok(&[
        "--name",
        src,
        "kubectl",
        "wait",
        "--for",
        "condition=established",
        "--timeout=60s",
        "crd/widgets.example.com",
    ]);
    kwokctl.ok(&["--name", src, "kubectl", "apply", "-f", widget.to_str().unwrap()]);
    let want = expected();
    assert_eq!(until(SETTLE, &want, || objects(&kwokctl, src)), want);

    kwokctl.ok(&["--name", src, "snapshot", "save", "--path", db]);
    kwokctl.ok(&[
        "--name", src, "snapshot", "save", "--path", yaml, "--format", "k8s",
    ]);
    let text = fs::read_to_string(yaml).unwrap();
    for absent in [
        "resourceVersion:",
        "uid:",
        "managedFields:",
        "creationTimestamp:",
        "kube-root-ca.crt",
    ] {
        assert!(!text.contains(absent), "k8s snapshot holds {absent}");
    }
    let first_pod = text.find("kind: Pod").expect("pods saved");
    assert!(
        text.find("kind: Namespace").unwrap() < first_pod,
        "namespaces first"
    );
    assert!(text.find("kind: Node").unwrap() < first_pod, "nodes before pods");

    restore_into_new_cluster(&kwokctl, "from-etcd", db, "etcd");
    kwokctl.ok(&["delete", "cluster", "--name", "from-etcd"]);
    restore_into_new_cluster(&kwokctl, "from-k8s", yaml, "k8s");

    // Export reads any cluster through a kubeconfig.
    let exported = files.path().join("export.yaml");
    let src_kubeconfig = kwokctl.cluster_dir(src).join("kubeconfig.yaml");
    kwokctl.ok(&[
        "snapshot",
        "export",
        "--kubeconfig",
        src_kubeconfig.to_str().unwrap(),
        "--path",
        exported.to_str().unwrap(),
        "--filter",
        "configmap,namespace",
    ]);
    let text = fs::read_to_string(&exported).unwrap();
    assert!(
        text.contains("name: settings") && text.contains("kind: Namespace"),
        "{text}"
    );
    assert!(!text.contains("kind: Node"), "the filter keeps nodes out: {text}");

    // Files that are not snapshots: one line, the cluster keeps running with its objects.
    let junk = files.path().join("junk.txt");
    fs::write(&junk, "hello, not a snapshot\n").unwrap();
    let junk = junk.to_str().unwrap();
    for (file, format, message) in [
        (junk, "etcd", "is not an etcd snapshot: no bbolt header"),
        (junk, "k8s", "is not a k8s snapshot: document 1: no apiVersion"),
        (db, "k8s", "is not a k8s snapshot: it is binary"),
        (yaml, "etcd", "is not an etcd snapshot"),
    ] {
        let err = kwokctl.err(&[
            "--name", "from-k8s", "snapshot", "restore", "--path", file, "--format", format,
        ]);
        assert!(err.contains(message), "{format} {file}: {err}");
        assert_one_line(&err);
    }
    // An etcd file cut short passes the header check but not etcdutl's: still untouched.
    let cut = files.path().join("cut.db");
    fs::write(&cut, &fs::read(db).unwrap()[..16 * 1024]).unwrap();
    let err = kwokctl.err(&[
        "--name",
        "from-k8s",
        "snapshot",
        "restore",
        "--path",
        cut.to_str().unwrap(),
    ]);
    assert!(
        err.contains("etcdutl failed: ") && err.contains("cluster \"from-k8s\" is unchanged"),
        "{err}"
    );
    assert_one_line(&err);
    assert!(
        !kwokctl.cluster_dir("from-k8s").join("etcd.restore").exists(),
        "staging dir removed"
    );
    let err = kwokctl.err(&[
        "--name",
        "from-k8s",
        "snapshot",
        "restore",
        "--path",
        "/nonexistent.db",
    ]);
    assert!(err.contains("failed to open /nonexistent.db"), "{err}");
    assert_eq!(objects(&kwokctl, "from-k8s"), expected(), "nothing changed");
    assert!(names(&kwokctl, "from-k8s", &["namespaces"]).contains(&"app".to_owned()));
}
