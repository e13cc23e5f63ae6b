//! `--kube-version`: another Kubernetes release than the pinned one.
//!
//! The cheap part runs always: an unserved or malformed version is one line naming
//! what is available, and nothing is made (the version path's module generation is
//! checked without a build by kwokctl's own `go_modules` tests). The full check builds
//! (or downloads) a second release, minutes of CPU on a cold cache, so it runs only on
//! demand:
//!
//! ```sh
//! cargo build --workspace --bins
//! KWOK_E2E_KUBE_VERSION=v1.35.8 cargo test -p kwok-tests --test e2e second_kube_version -- --ignored
//! ```

use std::time::Duration;

use crate::{
    util::{Cluster, Kwokctl},
    wait::{assert_one_line, ready_nodes, serial_names, until},
};

#[test]
fn an_unserved_or_malformed_version_should_be_one_line_and_make_nothing() {
    let kwokctl = Kwokctl::new();
    let err = kwokctl.err(&["create", "cluster", "--name", "v1", "--kube-version", "v1.99.0"]);
    assert_one_line(&err);
    assert!(
        err.contains("Kubernetes v1.99.0 is not served by the Go module proxy; available: v1."),
        "{err}"
    );
    assert!(err.contains("v1.36.5"), "the pinned one is named: {err}");
    let err = kwokctl.err(&["create", "cluster", "--name", "v2", "--kube-version", "latest"]);
    assert_one_line(&err);
    assert!(
        err.contains("--kube-version \"latest\": not a Kubernetes release (vMAJOR.MINOR.PATCH"),
        "{err}"
    );
    for name in ["v1", "v2"] {
        assert!(!kwokctl.cluster_dir(name).exists(), "{name}: folder made");
    }
    assert!(kwokctl.processes().is_empty());
}

#[test]
fn get_artifacts_should_show_the_asked_version_and_what_the_cache_holds() {
    let kwokctl = Kwokctl::new();
    let out = kwokctl.ok(&["get", "artifacts", "--kube-version", "1.35.8"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("kube-apiserver "))
        .expect(&out);
    assert!(line.contains(" v1.35.8 "), "{line}");
    let etcd = out.lines().find(|l| l.starts_with("etcd ")).expect(&out);
    assert!(etcd.contains(" v3.6.10 "), "upstream's etcd for 1.35: {etcd}");
    // The pinned version is built by the suite, so the cache lists it.
    let out = kwokctl.ok(&["get", "artifacts"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("kube-apiserver "))
        .expect(&out);
    let cached = line.split_whitespace().nth(2).unwrap_or_default();
    assert!(cached.split(',').any(|v| v == "v1.36.5"), "{line}");
}

/// The full check: a cluster on a second served release, its nodes Ready.
#[test]
#[ignore = "builds a second Kubernetes release (minutes of CPU); see the module docs"]
fn second_kube_version_should_run_a_cluster_with_ready_nodes() {
    let version = std::env::var("KWOK_E2E_KUBE_VERSION").unwrap_or_else(|_| "v1.35.8".into());
    let cluster = Cluster::create("kv", &["--kube-version", &version, "--timeout", "90m"]);
    let c = cluster.name;
    let out = cluster.kwokctl.ok(&["--name", c, "kubectl", "version"]);
    assert!(out.contains(&format!("Server Version: {version}")), "{out}");
    assert!(out.contains(&format!("Client Version: {version}")), "{out}");
    let artifacts = cluster.kwokctl.ok(&["--name", c, "get", "artifacts"]);
    for component in ["kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
        let line = artifacts
            .lines()
            .find(|l| l.starts_with(&format!("{component} ")))
            .expect(&artifacts);
        assert!(line.ends_with(&format!("/{version}/{component}")), "{line}");
    }
    cluster
        .kwokctl
        .ok(&["--name", c, "scale", "node", "--replicas", "3"]);
    let all = serial_names("node", 0..3);
    assert_eq!(
        until(Duration::from_secs(60), &all, || ready_nodes(
            &cluster.kwokctl,
            c,
            "kwok.x-k8s.io/kwokctl-scale=node"
        )),
        all
    );
}
