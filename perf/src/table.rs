//! The Markdown comparison: one row per figure, ours, upstream and the ratio.

use std::fmt::Write as _;

use crate::side::SideResult;

/// A compared figure: its name, how to read it from one side's result, and which
/// direction is better.
pub type Figure<R> = (&'static str, fn(&R) -> Option<f64>, &'static str);

/// The figures compared, with the direction that is better.
const FIGURES: &[Figure<SideResult>] = &[
    ("nodes Ready/s", |r| r.nodes_ready_per_second, "higher"),
    ("pods Running/s", |r| r.pods_running_per_second, "higher"),
    ("pod startup p50 (ms)", |r| r.pod_startup_p50_ms, "lower"),
    ("pod startup p99 (ms)", |r| r.pod_startup_p99_ms, "lower"),
    (
        "pod scheduled→running p99 (ms)",
        |r| r.pod_scheduled_to_running_p99_ms,
        "lower",
    ),
    (
        "lease renewal lateness p99 (ms)",
        |r| r.lease_lateness_p99_ms,
        "lower",
    ),
    ("expired leases", |r| Some(r.expired_leases as f64), "lower"),
    (
        "expired leases while idle (hold)",
        |r| r.expired_leases_while_idle.map(|n| n as f64),
        "lower",
    ),
    ("transitions", |r| Some(r.transitions as f64), "-"),
    ("kwok CPU s", |r| Some(r.kwok_cpu_seconds), "lower"),
    (
        "kwok CPU s / 1,000 transitions",
        |r| Some(r.kwok_cpu_seconds_per_1000_transitions),
        "lower",
    ),
    ("kwok CPU while idle (cores)", |r| r.kwok_idle_cpu_cores, "lower"),
    (
        "control plane CPU s / 1,000 transitions",
        |r| Some(r.control_plane_cpu_seconds_per_1000_transitions).filter(|v| *v > 0.0),
        "lower",
    ),
    (
        "control plane CPU ms / pod created",
        |r| r.control_plane_cpu_ms_per_pod_created(),
        "lower",
    ),
    (
        "etcd CPU s / 1,000 transitions",
        |r| r.component_cpu_per_1000("etcd"),
        "lower",
    ),
    (
        "kube-apiserver CPU s / 1,000 transitions",
        |r| r.component_cpu_per_1000("kube-apiserver"),
        "lower",
    ),
    (
        "kube-controller-manager CPU s / 1,000 transitions",
        |r| r.component_cpu_per_1000("kube-controller-manager"),
        "lower",
    ),
    (
        "kube-scheduler CPU s / 1,000 transitions",
        |r| r.component_cpu_per_1000("kube-scheduler"),
        "lower",
    ),
    ("kwok peak RSS (MiB)", |r| Some(r.kwok_peak_rss_mib), "lower"),
    (
        "kwok peak RSS / 1,000 nodes (MiB)",
        |r| Some(r.kwok_peak_rss_mib_per_1000_nodes),
        "lower",
    ),
    (
        "control plane peak RSS, summed (MiB)",
        |r| r.control_plane_peak_rss_sum_mib(),
        "lower",
    ),
    (
        "kube-apiserver peak RSS (MiB)",
        |r| r.control_plane_peak_rss_mib.get("kube-apiserver").copied(),
        "lower",
    ),
    (
        "apiserver requests",
        |r| Some(r.apiserver_requests as f64),
        "lower",
    ),
    (
        "pod watches closed as unresponsive",
        |r| {
            let closed = r.apiserver_unresponsive_watches.as_ref()?;
            Some(closed.get("pods").copied().unwrap_or(0) as f64)
        },
        "lower",
    ),
];

/// The table for `ours` and, when it ran, `upstream`.
pub fn markdown(ours: Option<&SideResult>, upstream: Option<&SideResult>) -> String {
    let mut out = rows(FIGURES, ours, upstream);
    out += &replicas(ours);
    for side in [ours, upstream].into_iter().flatten() {
        out += &flows(side);
    }
    out
}

/// What API Priority and Fairness did with the requests of a side's run, when it was on.
fn flows(side: &SideResult) -> String {
    let mut out = String::new();
    if side.apiserver_flows.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\nAPI Priority and Fairness, {}: requests by flow schema and priority level\n\n\
         | requests | flow schema | priority level | count |\n|---|---|---|---:|",
        side.controller.side
    );
    for (key, count) in &side.apiserver_flows {
        let mut parts = key.splitn(3, ' ');
        let (what, schema, level) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let _ = writeln!(out, "| {what} | {schema} | {level} | {count} |");
    }
    out
}

/// The same figures for two runs of ours, headed by `labels` (a run with a feature
/// and one without: what the feature costs).
pub fn markdown_between(labels: [&str; 2], a: Option<&SideResult>, b: Option<&SideResult>) -> String {
    rows_labelled(FIGURES, labels, a, b)
}

/// Each replica's share, when ours ran as several.
fn replicas(ours: Option<&SideResult>) -> String {
    let mut out = String::new();
    if let Some(ours) = ours.filter(|o| !o.kwok_replicas.is_empty()) {
        let _ = writeln!(
            out,
            "\nOurs ran as {} kwok processes (`--kwok-replicas`): kwok CPU above is their sum, \
             peak RSS the largest. Each one:\n\n| replica | CPU s | peak RSS (MiB) |\n|---|---:|---:|",
            ours.kwok_replicas.len()
        );
        for r in &ours.kwok_replicas {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                r.component,
                fmt(r.cpu_seconds),
                fmt(r.peak_rss_mib)
            );
        }
    }
    out
}

/// The comparison table of `figures` (any scenario's result type): one row each, both
/// sides and the ratio.
pub fn rows<R>(figures: &[Figure<R>], ours: Option<&R>, upstream: Option<&R>) -> String {
    rows_labelled(figures, ["ours", "upstream"], ours, upstream)
}

/// [`rows`] with other column names than ours and upstream.
pub fn rows_labelled<R>(figures: &[Figure<R>], labels: [&str; 2], a: Option<&R>, b: Option<&R>) -> String {
    let [la, lb] = labels;
    let mut out = format!("| figure | {la} | {lb} | {la}/{lb} | better |\n|---|---:|---:|---:|---|\n");
    let cell = |v: Option<f64>| v.map_or("-".to_owned(), fmt);
    for (name, get, better) in figures {
        let (a, b) = (a.and_then(get), b.and_then(get));
        let ratio = match (a, b) {
            (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
            _ => "-".into(),
        };
        let _ = writeln!(out, "| {name} | {} | {} | {ratio} | {better} |", cell(a), cell(b));
    }
    out
}

/// A figure for a table cell.
pub(crate) fn fmt(v: f64) -> String {
    // Whole numbers and large ones need no decimals.
    if v.fract() == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_should_keep_three_decimals_when_small() {
        assert_eq!(fmt(0.12345), "0.123");
        assert_eq!(fmt(1234.5), "1234");
        assert_eq!(fmt(7.0), "7");
    }
}
