//! Bad input gets a one-line error naming the problem and leaves nothing behind.

use std::{fs, net::TcpListener, os::unix::fs::PermissionsExt};

use crate::util::Kwokctl;

fn assert_nothing_left(kwokctl: &Kwokctl, name: &str) {
    assert!(!kwokctl.cluster_dir(name).exists(), "{name}: folder left behind");
    assert!(
        kwokctl.processes().is_empty(),
        "{name}: processes left: {:?}",
        kwokctl.processes()
    );
}

fn assert_one_line(err: &str) {
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
}

#[test]
fn port_in_use_should_be_refused_before_anything_is_made() {
    let kwokctl = Kwokctl::new();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let err = kwokctl.err(&[
        "create",
        "cluster",
        "--name",
        "busy",
        "--kube-apiserver-port",
        &port,
    ]);
    assert!(
        err.contains(&format!(
            "port {port} for --kube-apiserver-port is already in use"
        )),
        "{err}"
    );
    assert_one_line(&err);
    assert_nothing_left(&kwokctl, "busy");
}

#[test]
fn unknown_runtime_and_bad_name_should_be_refused() {
    let kwokctl = Kwokctl::new();
    let err = kwokctl.err(&["create", "cluster", "--runtime", "lxc"]);
    assert!(err.contains("unknown runtime \"lxc\""), "{err}");
    let err = kwokctl.err(&["create", "cluster", "--name", "Bad_Name"]);
    assert!(err.contains("invalid cluster name \"Bad_Name\""), "{err}");
    assert_nothing_left(&kwokctl, "kwok");
}

#[test]
fn missing_or_wrong_version_binary_should_be_named() {
    let kwokctl = Kwokctl::new();
    let err = kwokctl.err(&[
        "create",
        "cluster",
        "--name",
        "nobin",
        "--etcd-binary",
        "/nonexistent/etcd",
    ]);
    assert!(
        err.contains("etcd binary /nonexistent/etcd does not exist or is not executable"),
        "{err}"
    );
    assert_nothing_left(&kwokctl, "nobin");

    let err = kwokctl.err(&[
        "create",
        "cluster",
        "--name",
        "oldbin",
        "--kube-apiserver-binary",
        "/bin/echo",
    ]);
    assert!(
        err.contains("kube-apiserver binary /bin/echo is not version v1.36."),
        "{err}"
    );
    assert_one_line(&err);
    assert_nothing_left(&kwokctl, "oldbin");
}

#[test]
fn component_dying_during_start_up_should_stop_the_others_and_remove_the_folder() {
    let kwokctl = Kwokctl::new();
    // A kube-scheduler that passes the version check, then exits at start-up.
    let fake = kwokctl.workdir().with_file_name("kube-scheduler");
    let version = fs::read_to_string(crate::util::repo_root().join("kwokctl/controlplane/kubernetes/go.mod"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("require k8s.io/kubernetes ").map(str::to_owned))
        .unwrap();
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'Kubernetes {version}'; exit 0; fi\n\
             echo 'simulated failure: cannot start' >&2\nexit 3\n"
        ),
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();

    let err = kwokctl.err(&[
        "create",
        "cluster",
        "--name",
        "dies",
        "--kube-scheduler-binary",
        fake.to_str().unwrap(),
    ]);
    assert!(err.contains("kube-scheduler exited during start-up"), "{err}");
    assert!(
        err.contains("simulated failure: cannot start"),
        "names the reason: {err}"
    );
    assert!(err.contains("logs kept in "), "{err}");
    assert_one_line(&err);
    assert_nothing_left(&kwokctl, "dies");
    let kubeconfig = fs::read_to_string(kwokctl.kubeconfig()).unwrap_or_default();
    assert!(!kubeconfig.contains("kwok-dies"), "no context left: {kubeconfig}");
}
