//! The run's report: achieved rates, latency percentiles per phase, errors by kind,
//! lease renewals; rendered as a table or JSON.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::scenario::Scenario;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// From a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Self {
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            p999: ms(0.999),
            max: h.max() as f64 / 1000.0,
        }
    }

    /// Whether p50 ≤ p90 ≤ p99 ≤ p999 ≤ max.
    pub fn ordered(&self) -> bool {
        self.p50 <= self.p90 && self.p90 <= self.p99 && self.p99 <= self.p999 && self.p999 <= self.max
    }
}

/// One latency phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseReport {
    /// Phase name (`pod created→running`, …).
    pub name: String,
    /// Objects that completed the phase.
    pub count: u64,
    /// Completions per second between the first and the last.
    pub rate_per_second: f64,
    /// Seconds from the start of the run to the first completion.
    pub first_at_seconds: f64,
    /// Latencies.
    pub latency_ms: Percentiles,
}

impl PhaseReport {
    /// From a histogram of microseconds and the span of completions.
    pub fn from_histogram(name: &str, h: &Histogram<u64>, first_at: Duration, span: Duration) -> Self {
        let count = h.len();
        // One completion has no span: report its count over a millisecond-floor span.
        let secs = span.as_secs_f64().max(0.001);
        Self {
            name: name.to_owned(),
            count,
            rate_per_second: if count > 1 { (count - 1) as f64 / secs } else { 0.0 },
            first_at_seconds: first_at.as_secs_f64(),
            latency_ms: Percentiles::of(h),
        }
    }
}

/// Node lease renewals as seen through the apiserver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseReport {
    /// Leases seen.
    pub leases: u64,
    /// Renewals seen (intervals measured).
    pub renewals: u64,
    /// Interval between successive renewTimes of a lease.
    pub interval_ms: Option<Percentiles>,
    /// How much later than a quarter of the lease duration each renewal came.
    pub lateness_ms: Option<Percentiles>,
    /// Renewals that came after the lease had expired, plus leases overdue at the end.
    pub expired: u64,
    /// Renewals that ended during the hold phase (none without one).
    #[serde(default)]
    pub while_holding: Option<HoldLeaseReport>,
}

/// Lease renewals that ended while the nodes sat idle (the hold phase).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldLeaseReport {
    /// Renewals seen.
    pub renewals: u64,
    /// Interval between successive renewTimes of a lease.
    pub interval_ms: Option<Percentiles>,
    /// Renewals after the lease had expired, plus leases overdue at the end.
    pub expired: u64,
}

impl LeaseReport {
    /// From the recorder's histograms.
    pub fn from_histograms(
        leases: u64,
        intervals: &Histogram<u64>,
        lateness: &Histogram<u64>,
        expired: u64,
        overdue: u64,
    ) -> Self {
        let p = |h: &Histogram<u64>| (!h.is_empty()).then(|| Percentiles::of(h));
        Self {
            leases,
            renewals: intervals.len(),
            interval_ms: p(intervals),
            lateness_ms: p(lateness),
            expired: expired + overdue,
            while_holding: None,
        }
    }
}

/// Object counts at the end of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CountReport {
    /// Nodes created.
    pub nodes_created: u64,
    /// Nodes seen Ready.
    pub nodes_ready: u64,
    /// Pods created (bare: by loadgen; Deployments and Jobs: seen).
    pub pods_created: u64,
    /// Pods seen Running with all containers ready (or Succeeded).
    pub pods_running: u64,
    /// Pods deleted by churn.
    pub pods_churned: u64,
    /// Nodes gone after cleanup.
    pub nodes_deleted: u64,
    /// Pods gone (churn and cleanup).
    pub pods_deleted: u64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The scenario as run.
    pub scenario: Scenario,
    /// Run id (the label value on every object).
    pub run: String,
    /// Whether the run finished (false: interrupted or timed out).
    pub complete: bool,
    /// Why it stopped early, if it did.
    pub stopped_because: Option<String>,
    /// Wall-clock seconds.
    pub duration_seconds: f64,
    /// Node creates per second achieved (successful creates over the create phase).
    pub node_create_rate_per_second: Option<f64>,
    /// Pod creates per second achieved (Deployments and Jobs: workload creates).
    pub pod_create_rate_per_second: Option<f64>,
    /// Counts.
    pub counts: CountReport,
    /// Latencies per phase.
    pub phases: Vec<PhaseReport>,
    /// Lease renewals.
    pub leases: LeaseReport,
    /// Errors and retries by kind (`retried 429`, `failed 500`, …).
    pub errors: BTreeMap<String, u64>,
    /// The devices the claims were allocated, when pods claim devices.
    #[serde(default)]
    pub devices: Option<crate::devices::DeviceReport>,
}

impl Report {
    /// The phase named `name`.
    pub fn phase(&self, name: &str) -> Option<&PhaseReport> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// A human table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let c = &self.counts;
        let state = match &self.stopped_because {
            None => "complete".to_owned(),
            Some(why) => format!("INCOMPLETE: {why}"),
        };
        let _ = writeln!(
            out,
            "loadgen run {} ({}) — {state}, {:.1}s",
            self.run, self.scenario.name, self.duration_seconds
        );
        let _ = writeln!(
            out,
            "nodes: {} created, {} ready, {} deleted | pods: {} created, {} running, {} churned, {} deleted | creates/s: nodes {:.0}, pods {:.0}",
            c.nodes_created,
            c.nodes_ready,
            c.nodes_deleted,
            c.pods_created,
            c.pods_running,
            c.pods_churned,
            c.pods_deleted,
            self.node_create_rate_per_second.unwrap_or_default(),
            self.pod_create_rate_per_second.unwrap_or_default(),
        );
        if let Some(d) = &self.devices {
            let _ = writeln!(
                out,
                "devices: {} claims, {} allocated, {} devices, {} allocated twice",
                d.claims, d.allocated_claims, d.devices, d.allocated_twice
            );
        }
        let _ = writeln!(
            out,
            "\n{:<24} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "phase", "count", "rate/s", "p50 ms", "p90 ms", "p99 ms", "p999 ms", "max ms"
        );
        let row = |out: &mut String, name: &str, count: u64, rate: String, p: &Percentiles| {
            let _ = writeln!(
                out,
                "{name:<24} {count:>8} {rate:>9} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                p.p50, p.p90, p.p99, p.p999, p.max
            );
        };
        for p in &self.phases {
            row(
                &mut out,
                &p.name,
                p.count,
                format!("{:.1}", p.rate_per_second),
                &p.latency_ms,
            );
        }
        let l = &self.leases;
        if let Some(p) = &l.interval_ms {
            row(&mut out, "lease renew interval", l.renewals, "-".into(), p);
        }
        if let Some(p) = &l.lateness_ms {
            row(&mut out, "lease renew lateness", l.renewals, "-".into(), p);
        }
        let _ = writeln!(
            out,
            "\nleases: {} seen, {} renewals, {} expired",
            l.leases, l.renewals, l.expired
        );
        if let Some(h) = &l.while_holding {
            let _ = writeln!(
                out,
                "while holding: {} renewals, {} expired",
                h.renewals, h.expired
            );
            if let Some(p) = &h.interval_ms {
                row(&mut out, "lease renew interval (hold)", h.renewals, "-".into(), p);
            }
        }
        if self.errors.is_empty() {
            let _ = writeln!(out, "errors: none");
        } else {
            let _ = writeln!(out, "errors:");
            for (kind, n) in &self.errors {
                let _ = writeln!(out, "  {kind}: {n}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_should_be_ordered_and_in_milliseconds() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let p = Percentiles::of(&h);
        assert!(p.ordered(), "{p:?}");
        assert!(
            (p.p50 - 500.0).abs() < 1.0 && (p.max - 1000.0).abs() < 1.0,
            "{p:?}"
        );
    }

    #[test]
    fn phase_rate_should_count_completions_over_their_span() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for _ in 0..11 {
            h.record(5).unwrap();
        }
        let p = PhaseReport::from_histogram("x", &h, Duration::ZERO, Duration::from_secs(2));
        assert_eq!((p.count, p.rate_per_second), (11, 5.0));
    }
}
