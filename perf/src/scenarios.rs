//! The named benchmark scenarios (issue 6), as loadgen scenarios.

use std::time::Duration;

use kwok_loadgen::{Scenario, scenario::PodKind};

/// Scenario names, in the order `perf --help` lists them.
pub const NAMES: [&str; 5] = ["smoke", "small", "large", "lease-soak", "churn"];

/// The scenario called `name`.
pub fn named(name: &str) -> Option<Scenario> {
    let base = Scenario {
        name: name.to_owned(),
        pod_kind: PodKind::Bare,
        namespaces: 10,
        // The same target for both controllers; the 2-core apiserver caps it first.
        rate: 2000,
        concurrency: 512,
        timeout: Duration::from_secs(900),
        ..Scenario::default()
    };
    let s = match name {
        // `small` scaled down 20x with a short churn: exercises every phase in ~1 min.
        "smoke" => Scenario {
            nodes: 50,
            pods: 500,
            namespaces: 2,
            rate: 500,
            churn_rate: 50,
            churn_duration: Duration::from_secs(5),
            timeout: Duration::from_secs(180),
            ..base
        },
        "small" => Scenario {
            nodes: 1_000,
            pods: 10_000,
            ..base
        },
        // The 2-core control plane runs ~50 pods/s: 100,000 take over half an hour.
        // Paced: with 10,000 leases to renew (250–1,000 PUTs/s) the apiserver has
        // little left, and 512 creates in flight at 2,000/s (kwokctl turns priority
        // and fairness off) starved the renewals of either kwok, 4,783 expired in
        // 3 minutes; clusterloader2 paces its load the same way.
        "large" => Scenario {
            nodes: 10_000,
            pods: 100_000,
            rate: 100,
            concurrency: 64,
            timeout: Duration::from_secs(3 * 3600),
            ..base
        },
        "lease-soak" => Scenario {
            nodes: 10_000,
            pods: 0,
            hold: Duration::from_secs(600),
            ..base
        },
        "churn" => Scenario {
            nodes: 2_000,
            pods: 2_000,
            churn_rate: 500,
            churn_duration: Duration::from_secs(300),
            ..base
        },
        _ => return None,
    };
    Some(s)
}

/// Whether a run of scenario `name` ends by deleting what it made, measuring pod and
/// node deletion. Not on `large`: deleting 100,000 pods one by one takes the 2-core
/// control plane longer than creating them, and `churn` measures deletion already.
pub fn measures_cleanup(name: &str) -> bool {
    name != "large"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_should_be_a_valid_scenario() {
        for name in NAMES {
            let s = named(name).unwrap();
            s.validate().unwrap();
            assert_eq!(s.name, name);
        }
        assert!(named("huge").is_none());
    }

    #[test]
    fn sizes_should_match_the_issue() {
        let n = |name| named(name).map(|s| (s.nodes, s.pods)).unwrap();
        assert_eq!(n("small"), (1_000, 10_000));
        assert_eq!(n("large"), (10_000, 100_000));
        assert_eq!(named("lease-soak").unwrap().hold, Duration::from_secs(600));
        assert_eq!(named("churn").unwrap().churn_rate, 500);
    }
}
