//! Upstream KWOK v0.8's own stage sets, read unchanged from its Go module (downloaded
//! at test time), drive a real cluster: a claim gets a volume and binds with
//! `volume/fast`, a node without status becomes Ready with `node/fast`.

use std::{path::PathBuf, time::Duration};

use crate::kwok::{READY, bare_cluster, kwok_with_stages, node};

/// `kustomize/stage/<set>` of the upstream module, downloaded if absent.
pub(crate) fn upstream_set(set: &str) -> PathBuf {
    crate::upstream_module::dir().join("kustomize/stage").join(set)
}

/// Every YAML document of the set but its kustomization, joined; and the non-Stage
/// documents among them (a StorageClass) to apply to the cluster.
fn documents(set: &str) -> (String, Vec<String>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(upstream_set(set))
        .expect("the set's folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    let texts: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("read"))
        .collect();
    let others = texts
        .iter()
        .filter(|t| !t.contains("kind: Stage\n"))
        .cloned()
        .collect();
    (texts.join("\n---\n"), others)
}

/// The StorageClass both volume sets serve.
const STORAGE_CLASS: &str = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: kwok-volume\n\
     provisioner: kwok.x-k8s.io/volume\nreclaimPolicy: Delete\nvolumeBindingMode: Immediate\n";

/// A claim made on a cluster driven by `stages` gets a volume and both are Bound.
fn claim_should_be_provisioned_and_bound(name: &'static str, stages: &str, others: &[String]) {
    let cluster = bare_cluster(name);
    for doc in others {
        cluster.apply(doc);
    }
    let _kwok = kwok_with_stages(&cluster, stages);
    cluster.apply(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\n  namespace: default\n\
         spec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: kwok-volume\n  \
         resources:\n    requests:\n      storage: 5Gi\n",
    );
    let uid = cluster.kubectl(&["get", "pvc", "data", "-o", "jsonpath={.metadata.uid}"]);
    let volume = format!("pvc-{uid}");
    cluster.eventually(
        &[
            "get",
            "pvc",
            "data",
            "-o",
            "jsonpath={.status.phase}/{.spec.volumeName}",
        ],
        Duration::from_secs(60),
        |o| o == format!("Bound/{volume}"),
    );
    // The volume was created from the claim (an apply step naming another object) and
    // bound by pv-bind.
    cluster.eventually(
        &[
            "get",
            "pv",
            &volume,
            "-o",
            "jsonpath={.status.phase}/{.spec.claimRef.name}/{.spec.capacity.storage}",
        ],
        Duration::from_secs(60),
        |o| o == "Bound/data/5Gi",
    );
    let provisioned = cluster.kubectl(&[
        "get",
        "pv",
        &volume,
        "-o",
        "jsonpath={.metadata.annotations.pv\\.kubernetes\\.io/provisioned-by}",
    ]);
    assert_eq!(provisioned, "kwok.x-k8s.io/volume");
}

#[test]
fn upstream_volume_stages_should_provision_and_bind_a_claim() {
    let (stages, others) = documents("volume/fast");
    assert!(
        others.iter().any(|d| d.contains("kind: StorageClass")),
        "upstream ships its class"
    );
    claim_should_be_provisioned_and_bound("upvolume", &stages, &others);
}

#[test]
fn our_volume_fast_set_should_provision_and_bind_a_claim() {
    let stages =
        std::fs::read_to_string(crate::util::repo_root().join("engine/stages/volume-fast.yaml")).unwrap();
    claim_should_be_provisioned_and_bound("ourvolume", &stages, &[STORAGE_CLASS.to_owned()]);
}

#[test]
fn upstream_node_initialize_should_make_a_node_without_status_ready() {
    let cluster = bare_cluster("upnode");
    let (stages, _) = documents("node/fast");
    let kwok = kwok_with_stages(&cluster, &stages);
    // Upstream's liveness path too.
    assert_eq!(crate::util::http_get(&kwok.address, "/livez").trim(), "ok");
    cluster.apply(&node("bare-0", true, "a: b"));
    cluster.eventually(&["get", "nodes", "-o", READY], Duration::from_secs(60), |o| {
        o.contains("bare-0=True")
    });
    // NodeName is `--node-name` (empty by default, as upstream's), so only the
    // InternalIP address has a value.
    let address = cluster.kubectl(&[
        "get",
        "node",
        "bare-0",
        "-o",
        "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}",
    ]);
    assert_eq!(address, "196.168.0.1");
}
