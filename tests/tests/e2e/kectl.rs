//! `kwokctl kectl …` reads and writes the cluster's etcd, decoding Kubernetes objects,
//! and `kwokctl snapshot export --record` records what changes after its snapshot.

use std::{fs, time::Duration};

use crate::{
    record::{lines_of, spawn, terminate, wait_for_line},
    util::{Cluster, Kwokctl},
    wait::assert_one_line,
};

const WRITTEN: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: written
  namespace: default
  labels:
    origin: kectl
data:
  k: from-etcd
";

#[test]
fn kectl_should_read_and_write_the_objects_kubectl_sees() {
    let cluster = Cluster::create("kectl", &["--components", "etcd,kube-apiserver"]);
    let kectl = |args: &[&str]| {
        let mut all = vec!["--name", cluster.name, "kectl"];
        all.extend_from_slice(args);
        cluster.kwokctl.ok(&all)
    };
    cluster.kubectl(&["create", "configmap", "seen", "--from-literal=k=v"]);
    cluster.kubectl(&["label", "configmap", "seen", "team=blue"]);

    // The key, then the object decoded from etcd's protobuf.
    let keys = kectl(&["get", "configmaps", "-n", "default"]);
    assert!(keys.contains("/registry/configmaps/default/seen"), "{keys}");
    let yaml = kectl(&["get", "configmaps", "seen", "-n", "default", "-o", "yaml"]);
    for want in ["name: seen", "team: blue", "k: v"] {
        assert!(yaml.contains(want), "{want:?} missing from {yaml}");
    }

    // A put straight into etcd is what the apiserver serves.
    let file = cluster.kwokctl.workdir().with_file_name("written.yaml");
    fs::write(&file, WRITTEN).unwrap();
    kectl(&["put", "--path", file.to_str().unwrap()]);
    let path = "jsonpath={.metadata.labels.origin} {.data.k}";
    let within = Duration::from_secs(30);
    cluster.eventually(&["get", "configmap", "written", "-o", path], within, |out| {
        out == "kectl from-etcd"
    });

    // So is a delete.
    kectl(&["delete", "configmaps", "seen", "-n", "default"]);
    cluster.eventually(&["get", "configmaps", "-o", "name"], within, |out| {
        !out.contains("configmap/seen") && out.contains("configmap/written")
    });

    // get artifacts lists the kectl just used, at upstream's pinned version.
    let artifacts = cluster.kwokctl.ok(&["--name", cluster.name, "get", "artifacts"]);
    let line = artifacts
        .lines()
        .find(|l| l.starts_with("kectl "))
        .expect(&artifacts);
    assert!(line.contains("v0.0.10") && line.ends_with("/kectl"), "{line}");
}

#[test]
fn kectl_without_a_cluster_should_be_one_line_naming_it() {
    let kwokctl = Kwokctl::new();
    let err = kwokctl.err(&["--name", "absent", "kectl", "get", "pods"]);
    assert!(err.contains("cluster \"absent\" does not exist"), "{err}");
    assert_one_line(&err);
}

#[test]
fn snapshot_export_record_should_capture_a_change_made_after_it_starts() {
    let cluster = Cluster::create("export-rec", &["--components", "etcd,kube-apiserver"]);
    cluster.kubectl(&["create", "configmap", "before", "--from-literal=k=0"]);
    let path = cluster.kwokctl.workdir().with_file_name("exported.yaml");
    let kubeconfig = cluster.dir().join("kubeconfig.yaml");
    let mut recorder = spawn(
        &cluster.kwokctl,
        &[
            "snapshot",
            "export",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--path",
            path.to_str().unwrap(),
            "--filter",
            "configmap",
            "--record",
        ],
    );
    let recorder_err = lines_of(recorder.stderr.take().unwrap());
    wait_for_line(&recorder_err, "Recording ", Duration::from_secs(30));
    cluster.kubectl(&["create", "configmap", "after", "--from-literal=k=1"]);
    cluster.kubectl(&["patch", "configmap", "after", "-p", r#"{"data":{"k":"2"}}"#]);
    std::thread::sleep(Duration::from_millis(500));
    terminate(&recorder);
    let out = recorder.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", recorder_err.lock().unwrap());
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("and 2 changes over"), "{summary}");

    let text = fs::read_to_string(&path).unwrap();
    let (start, changes) = text
        .split_once("kind: ResourcePatch")
        .unwrap_or_else(|| panic!("no change recorded: {text}"));
    assert!(start.contains("name: before"), "the snapshot comes first: {text}");
    assert!(!start.contains("name: after"), "{text}");
    let methods: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("method: ")).collect();
    assert_eq!(methods, ["create", "patch"], "{text}");
    assert!(changes.contains("name: after"), "{text}");
}
