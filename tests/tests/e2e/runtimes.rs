//! The container runtimes, docker and podman: a cluster whose every component is a
//! container (built locally from the cached binaries) serves nodes and pods, keeps its
//! data across stop/start, and leaves no container, network or volume when deleted.
//!
//! Each test needs its engine answering. `.ci/run` installs and starts both and sets
//! `KWOK_E2E_RUNTIMES=required`, under which a missing engine fails the test; elsewhere
//! the test says it was skipped and passes.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use crate::{
    util::{Kwokctl, holder_counts, lease_holders, runnable_unless_required},
    wait::{assert_one_line, ready_nodes, running_pods, serial_names, until},
};

const SETTLE: Duration = Duration::from_secs(60);
const NODE_LABEL: &str = "kwok.x-k8s.io/kwokctl-scale=node";
const CORE: [&str; 5] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok-controller",
];

/// Whether `engine` answers; panics when it must (CI) and does not.
fn engine_answers(engine: &str) -> bool {
    let up = Command::new(engine)
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    runnable_unless_required((!up).then(|| format!("{engine} does not answer `{engine} info`")))
}

/// `engine ps|network ls|volume ls` of everything labelled with the cluster's project.
fn labelled(engine: &str, cluster: &str) -> Vec<String> {
    let label = format!("label=com.docker.compose.project=kwok-{cluster}");
    let mut all = Vec::new();
    for what in [&["ps", "--all"][..], &["network", "ls"], &["volume", "ls"]] {
        let out = Command::new(engine)
            .args(what)
            .args(["--filter", &label, "--quiet"])
            .output()
            .expect("engine");
        assert!(out.status.success(), "{engine} {what:?}: {out:?}");
        all.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned),
        );
    }
    all
}

/// Names of the cluster's containers in `status` (`running`, `exited`), sorted.
fn containers(engine: &str, cluster: &str, status: &str) -> Vec<String> {
    let label = format!("label=com.docker.compose.project=kwok-{cluster}");
    let out = Command::new(engine)
        .args(["ps", "--all", "--filter", &label, "--filter"])
        .arg(format!("status={status}"))
        .args(["--format", "{{.Names}}"])
        .output()
        .expect("engine");
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .collect();
    lines.sort();
    lines
}

/// The core components' container names, sorted.
fn expected(cluster: &str) -> Vec<String> {
    let mut want: Vec<String> = CORE.iter().map(|c| format!("kwok-{cluster}-{c}")).collect();
    want.sort();
    want
}

/// A cluster's whole life on `runtime`.
fn cluster_life(runtime: &str) {
    if !engine_answers(runtime) {
        return;
    }
    let kwokctl = Kwokctl::new();
    let c = &format!("rt-{runtime}");
    let started = Instant::now();
    kwokctl.ok(&["create", "cluster", "--name", c, "--runtime", runtime]);
    eprintln!("{runtime}: created in {:.1}s", started.elapsed().as_secs_f64());
    assert_eq!(containers(runtime, c, "running"), expected(c));

    // The images kwokctl built are listed, up to date.
    let artifacts = kwokctl.ok(&["get", "artifacts", "--name", c, "--filter", "image"]);
    for component in CORE {
        let line = artifacts
            .lines()
            .find(|l| l.starts_with(component))
            .unwrap_or_else(|| panic!("{component} missing: {artifacts}"));
        assert!(
            line.contains(&format!("localhost/kwok-rs/{component}:")) && line.contains("built ("),
            "{line}"
        );
    }

    kwokctl.ok(&["--name", c, "scale", "node", "--replicas", "2"]);
    let nodes = serial_names("node", 0..2);
    assert_eq!(
        until(SETTLE, &nodes, || ready_nodes(&kwokctl, c, NODE_LABEL)),
        nodes
    );
    kwokctl.ok(&["--name", c, "scale", "pod", "web", "--replicas", "3"]);
    let pods = serial_names("web", 0..3);
    assert_eq!(
        until(SETTLE, &pods, || running_pods(&kwokctl, c, "default")),
        pods
    );

    // Logs come from the engine; export writes them out as files.
    let log = kwokctl.ok(&["logs", "kwok-controller", "--name", c]);
    assert!(log.contains("connected"), "{log}");
    let exported = tempfile::tempdir().unwrap();
    kwokctl.ok(&[
        "export",
        "logs",
        "--name",
        c,
        &exported.path().display().to_string(),
    ]);
    let etcd_log = std::fs::read_to_string(exported.path().join("etcd.log")).unwrap();
    assert!(etcd_log.contains("serving client traffic"), "{etcd_log}");
    let components = kwokctl.ok(&["get", "components", "--name", c, "-o", "wide"]);
    assert_eq!(components.matches("Ready").count(), 5, "{components}");

    // Stop stops the containers and keeps them and the data; start brings both back.
    kwokctl.ok(&["stop", "cluster", "--name", c]);
    assert_eq!(containers(runtime, c, "exited"), expected(c));
    let components = kwokctl.ok(&["get", "components", "--name", c, "-o", "wide"]);
    assert_eq!(components.matches("Stopped").count(), 5, "{components}");
    let err = kwokctl.err(&["--name", c, "scale", "node", "--replicas", "3"]);
    assert!(err.contains("is stopped"), "{err}");
    kwokctl.ok(&["start", "cluster", "--name", c]);
    assert_eq!(containers(runtime, c, "running"), expected(c));
    assert_eq!(
        until(SETTLE, &nodes, || ready_nodes(&kwokctl, c, NODE_LABEL)),
        nodes
    );
    assert_eq!(
        until(SETTLE, &pods, || running_pods(&kwokctl, c, "default")),
        pods
    );

    kwokctl.ok(&["delete", "cluster", "--name", c]);
    assert_eq!(labelled(runtime, c), Vec::<String>::new(), "left after delete");
    assert!(!kwokctl.cluster_dir(c).exists(), "the cluster folder is gone");
    eprintln!("{runtime}: whole life in {:.1}s", started.elapsed().as_secs_f64());
}

#[test]
fn docker_runtime_should_run_a_cluster_of_containers_and_leave_nothing() {
    cluster_life("docker");
}

#[test]
fn podman_runtime_should_run_a_cluster_of_containers_and_leave_nothing() {
    cluster_life("podman");
}

/// Issue 25: `--kwok-replicas 2` in containers: two kwok containers, each on its own
/// port under its own `--id`, share the nodes by their Leases; stop and start bring
/// both back; delete leaves nothing.
#[test]
fn docker_runtime_should_run_kwok_replicas_that_share_the_nodes() {
    if !engine_answers("docker") {
        return;
    }
    let kwokctl = Kwokctl::new();
    let c = "rt-replicas";
    kwokctl.ok(&[
        "create",
        "cluster",
        "--name",
        c,
        "--runtime",
        "docker",
        "--kwok-replicas",
        "2",
    ]);
    let mut want = expected(c);
    want.push(format!("kwok-{c}-kwok-controller-1"));
    want.sort();
    assert_eq!(containers("docker", c, "running"), want);
    kwokctl.ok(&["--name", c, "scale", "node", "--replicas", "6"]);
    let nodes = serial_names("node", 0..6);
    assert_eq!(
        until(SETTLE, &nodes, || ready_nodes(&kwokctl, c, NODE_LABEL)),
        nodes
    );
    let holders = |kwokctl: &Kwokctl| -> Vec<String> {
        holder_counts(&lease_holders(kwokctl, c, "node-"))
            .into_keys()
            .collect()
    };
    let both = vec![format!("kwok-{c}"), format!("kwok-{c}-1")];
    let started = Instant::now();
    while holders(&kwokctl) != both {
        assert!(
            started.elapsed() < SETTLE,
            "leases held by {:?}, want {both:?}",
            holders(&kwokctl)
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    kwokctl.ok(&["stop", "cluster", "--name", c]);
    assert_eq!(containers("docker", c, "exited"), want);
    kwokctl.ok(&["start", "cluster", "--name", c]);
    assert_eq!(containers("docker", c, "running"), want);
    assert_eq!(
        until(SETTLE, &nodes, || ready_nodes(&kwokctl, c, NODE_LABEL)),
        nodes
    );

    kwokctl.ok(&["delete", "cluster", "--name", c]);
    assert_eq!(labelled("docker", c), Vec::<String>::new(), "left after delete");
}

/// A create that fails after its containers started removes them all.
#[test]
fn a_failed_container_create_should_remove_every_container() {
    if !engine_answers("docker") {
        return;
    }
    let kwokctl = Kwokctl::new();
    let c = "rt-fail";
    // kube-controller-manager exits at once on an unknown flag, after etcd and the
    // apiserver are up: a failure midway.
    let err = kwokctl.err(&[
        "create",
        "cluster",
        "--name",
        c,
        "--runtime",
        "docker",
        "--extra-args",
        "kube-controller-manager=no-such-flag=1",
    ]);
    assert!(err.contains("kube-controller-manager exited"), "{err}");
    assert!(err.contains("unknown flag: --no-such-flag"), "{err}");
    assert_eq!(
        labelled("docker", c),
        Vec::<String>::new(),
        "left after a failed create"
    );
    assert!(!kwokctl.cluster_dir(c).exists());
}

/// An engine that does not answer is one line saying how to start it; nothing is made.
#[test]
fn a_runtime_whose_engine_is_down_should_say_how_to_start_it() {
    let kwokctl = Kwokctl::new();
    let out = kwokctl
        .command(&["create", "cluster", "--name", "down", "--runtime", "docker"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("runtime docker: `docker info` failed"), "{err}");
    assert!(err.contains("start the Docker daemon"), "{err}");
    assert_one_line(&err);
    assert!(!kwokctl.cluster_dir("down").exists());
    for (runtime, lacks) in [
        ("nerdctl", "github.com/containerd/nerdctl"),
        ("kind", "kind node image"),
    ] {
        let err = kwokctl.err(&["create", "cluster", "--name", runtime, "--runtime", runtime]);
        assert!(
            err.contains(&format!("runtime {runtime}: ")) && err.contains(lacks),
            "{err}"
        );
        assert_one_line(&err);
        assert!(!kwokctl.cluster_dir(runtime).exists());
    }
}
