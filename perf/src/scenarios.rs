//! The named benchmark scenarios (issue 6), as loadgen scenarios.

use std::time::Duration;

use kwok_loadgen::{Scenario, scenario::PodKind};

/// Scenario names, in the order `perf --help` lists them.
pub const NAMES: [&str; 6] = ["smoke", "small", "large", "lease-soak", "churn", "dra"];

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
        // Fake GPUs: 8 per node (kwok's `dra` stages publish them), one per
        // pod, so the pods fill every device; `perf dra` runs it beside [`without_devices`].
        // The scheduler allocates a few pods a second at 1,000 nodes (2 cores): 8,000
        // take most of an hour.
        "dra" => Scenario {
            nodes: 1_000,
            pods: 8_000,
            timeout: Duration::from_secs(3 * 3600),
            node_labels: [(GPUS_LABEL.to_owned(), GPUS_PER_NODE.to_string())].into(),
            device_class: Some(GPU_CLASS.to_owned()),
            ..base
        },
        _ => return None,
    };
    Some(s)
}

/// The node label asking kwok for fake GPUs, and how many each `dra` node gets.
pub const GPUS_LABEL: &str = "kwok.x-k8s.io/gpus";
pub const GPUS_PER_NODE: u32 = 8;
/// The DeviceClass kwokctl makes for them.
pub const GPU_CLASS: &str = "gpu.kwok.x-k8s.io";

/// `s` with `nodes` nodes and as many pods as their devices, `GPUS_PER_NODE` each.
pub fn with_gpu_nodes(s: &Scenario, nodes: u32) -> Scenario {
    Scenario {
        nodes,
        pods: nodes * GPUS_PER_NODE,
        ..s.clone()
    }
}

/// The same load with plain pods: the nodes keep their devices, the pods claim none.
pub fn without_devices(s: &Scenario) -> Scenario {
    Scenario {
        device_class: None,
        ..s.clone()
    }
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
        let dra = named("dra").unwrap();
        assert_eq!((dra.nodes, dra.pods), (1_000, 8_000));
        assert_eq!(dra.device_class.as_deref(), Some(GPU_CLASS));
        assert_eq!(dra.node_labels[GPUS_LABEL], "8");
        let plain = without_devices(&dra);
        assert_eq!(
            (plain.nodes, plain.pods, plain.device_class),
            (1_000, 8_000, None)
        );
        assert_eq!(with_gpu_nodes(&dra, 5_000).pods, 40_000);
    }
}
