//! Reading objects through `kwokctl kubectl` and waiting for them to settle.

use std::time::{Duration, Instant};

use crate::util::Kwokctl;

/// Sorted names printed by `kubectl get ARGS -o name`-style jsonpath, one per line.
pub fn names(kwokctl: &Kwokctl, cluster: &str, args: &[&str]) -> Vec<String> {
    let mut full = vec!["--name", cluster, "kubectl", "get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}"]);
    let mut names: Vec<String> = kwokctl.ok(&full).lines().map(str::to_owned).collect();
    names.sort();
    names
}

/// Names of nodes whose Ready condition is True.
pub fn ready_nodes(kwokctl: &Kwokctl, cluster: &str, selector: &str) -> Vec<String> {
    let path = "jsonpath={range .items[*]}{.metadata.name} \
                {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}";
    let out = kwokctl.ok(&[
        "--name", cluster, "kubectl", "get", "nodes", "-l", selector, "-o", path,
    ]);
    let mut names: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_suffix(" True").map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Names of pods in `namespace` that are Running and not being deleted.
pub fn running_pods(kwokctl: &Kwokctl, cluster: &str, namespace: &str) -> Vec<String> {
    let path = "jsonpath={range .items[*]}{.metadata.name} {.status.phase} \
                {.metadata.deletionTimestamp}{\"\\n\"}{end}";
    let out = kwokctl.ok(&[
        "--name", cluster, "kubectl", "get", "pods", "-n", namespace, "-o", path,
    ]);
    let mut names: Vec<String> = out
        .lines()
        .filter_map(|l| l.trim_end().strip_suffix(" Running").map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Calls `read` until it returns `want` or `within` passes; returns the last reading.
pub fn until<T: PartialEq + std::fmt::Debug>(within: Duration, want: &T, read: impl Fn() -> T) -> T {
    let start = Instant::now();
    loop {
        let got = read();
        if &got == want || start.elapsed() > within {
            return got;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `prefix-000000` … for `range`.
pub fn serial_names(prefix: &str, range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i:06}")).collect()
}

/// Asserts `err` is one line.
pub fn assert_one_line(err: &str) {
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
}
