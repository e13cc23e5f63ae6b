//! `kwokctl snapshot record` / `replay`: a ConfigMap created, changed and deleted while
//! recording shows the same sequence, at about the same pace, when replayed into a
//! fresh cluster; a file that is not a recording changes nothing.

use std::{
    fs,
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread::sleep,
    time::{Duration, Instant},
};

use crate::{
    util::{Kwokctl, bin_dir, cache_dir},
    wait::{assert_one_line, names},
};

pub(crate) fn spawn(kwokctl: &Kwokctl, args: &[&str]) -> Child {
    Command::new(bin_dir().join("kwokctl"))
        .args(args)
        .env("KWOK_WORKDIR", kwokctl.workdir())
        .env("KWOK_CACHE_DIR", cache_dir())
        .env("KUBECONFIG", kwokctl.kubeconfig())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kwokctl")
}

/// Collects the lines a child prints on stdout (or stderr) in the background.
pub(crate) fn lines_of(pipe: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

pub(crate) fn wait_for_line(lines: &Mutex<Vec<String>>, needle: &str, within: Duration) {
    let start = Instant::now();
    while !lines.lock().unwrap().iter().any(|l| l.contains(needle)) {
        assert!(
            start.elapsed() < within,
            "no line with {needle:?}: {:?}",
            lines.lock().unwrap()
        );
        sleep(Duration::from_millis(100));
    }
}

pub(crate) fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

#[test]
fn record_then_replay_should_show_the_same_changes_in_a_fresh_cluster() {
    let kwokctl = Kwokctl::new();
    let (a, b) = ("rec-a", "rec-b");
    for c in [a, b] {
        kwokctl.ok(&[
            "create",
            "cluster",
            "--name",
            c,
            "--components",
            "etcd,kube-apiserver",
        ]);
    }
    let kubectl = |c: &str, args: &[&str]| {
        let mut all = vec!["--name", c, "kubectl"];
        all.extend_from_slice(args);
        kwokctl.ok(&all)
    };
    kubectl(a, &["create", "configmap", "before", "--from-literal=k=0"]);

    let path = kwokctl.workdir().join("recording.yaml");
    let path_arg = path.to_str().unwrap();
    let mut recorder = spawn(&kwokctl, &["--name", a, "snapshot", "record", "--path", path_arg]);
    let recorder_err = lines_of(recorder.stderr.take().unwrap());
    wait_for_line(
        &recorder_err,
        "Recording cluster \"rec-a\"",
        Duration::from_secs(30),
    );
    let began = Instant::now();
    kubectl(a, &["create", "configmap", "live", "--from-literal=k=1"]);
    sleep(Duration::from_secs(1));
    kubectl(a, &["patch", "configmap", "live", "-p", r#"{"data":{"k":"2"}}"#]);
    sleep(Duration::from_secs(1));
    kubectl(a, &["delete", "configmap", "live"]);
    let span = began.elapsed();
    sleep(Duration::from_millis(500));
    terminate(&recorder);
    let out = recorder.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", recorder_err.lock().unwrap());
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("and 3 changes over"), "{summary}");
    let text = fs::read_to_string(&path).unwrap();
    let methods: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("method: ")).collect();
    assert_eq!(methods, ["create", "patch", "delete"], "{text}");
    assert!(
        text.contains("name: before"),
        "the start state is in the file: {text}"
    );
    assert!(
        !text.contains("resourceVersion"),
        "server-owned fields stripped: {text}"
    );

    // A file that is not a recording: one line, nothing changed.
    kubectl(b, &["create", "configmap", "marker"]);
    let before = names(&kwokctl, b, &["cm", "-A"]);
    let bogus = kwokctl.workdir().join("bogus.yaml");
    fs::write(&bogus, "hello: world\n").unwrap();
    let err = kwokctl.err(&[
        "--name",
        b,
        "snapshot",
        "replay",
        "--path",
        bogus.to_str().unwrap(),
    ]);
    assert!(
        err.contains("is not a recording (snapshot record): document 1: no apiVersion"),
        "{err}"
    );
    assert_one_line(&err);
    assert_eq!(names(&kwokctl, b, &["cm", "-A"]), before, "nothing changed");

    // Replay into the fresh cluster while watching its ConfigMaps.
    let mut watcher = spawn(
        &kwokctl,
        &[
            "--name",
            b,
            "kubectl",
            "get",
            "configmaps",
            "--watch",
            "--output-watch-events",
            "-o",
            "jsonpath={.type} {.object.metadata.name} {.object.data.k}{\"\\n\"}",
        ],
    );
    let seen = lines_of(watcher.stdout.take().unwrap());
    wait_for_line(&seen, "ADDED marker", Duration::from_secs(30));
    let started = Instant::now();
    let out = kwokctl.ok(&["--name", b, "snapshot", "replay", "--path", path_arg]);
    let took = started.elapsed();
    assert!(out.contains(", 3 changes, in"), "{out}");
    assert!(
        took >= span.mul_f64(0.8),
        "changes are applied at their offsets: replay took {took:?}, recording spanned {span:?}"
    );
    wait_for_line(&seen, "DELETED live", Duration::from_secs(10));
    let _ = watcher.kill();
    let _ = watcher.wait();
    let events: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|l| l.trim().to_owned())
        .filter(|l| l.contains("before") || l.contains("live"))
        .collect();
    assert_eq!(
        events,
        [
            "ADDED before 0",
            "ADDED live 1",
            "MODIFIED live 2",
            "DELETED live 2"
        ]
    );

    // --duration ends a recording by itself; the file gets its name only then.
    let timed = kwokctl.workdir().join("timed.yaml");
    let started = Instant::now();
    let out = kwokctl.ok(&[
        "--name",
        b,
        "snapshot",
        "record",
        "--path",
        timed.to_str().unwrap(),
        "--duration",
        "1s",
        "--filter",
        "configmap",
    ]);
    assert!(started.elapsed() >= Duration::from_secs(1), "{out}");
    assert!(out.contains("and 0 changes over"), "{out}");
    assert!(fs::read_to_string(&timed).unwrap().contains("name: marker"));
}
