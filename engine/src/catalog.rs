//! The Stage sets shipped with kwok-rs, embedded from `engine/stages/*.yaml`.
//!
//! Each set is one multi-document YAML text of `kwok.x-k8s.io/v1alpha1` Stages, with
//! the stage names, selectors and delays of upstream KWOK's `kustomize/stage/` sets:
//!
//! | set | stages | what it simulates |
//! |---|---|---|
//! | `node-fast` | `node-initialize`, `node-heartbeat` | a node is Ready at once, its conditions are refreshed every 20–25 s (no leases) |
//! | `node-fast-with-lease` | `node-initialize`, `node-heartbeat-with-lease` | the same when node leases carry liveness: status heartbeat every 10 min |
//! | `pod-fast` | `pod-ready`, `pod-complete`, `pod-delete` | a scheduled pod is Running and Ready in one write, a Job's pod Succeeds, a deleted pod goes at once |
//! | `pod-general` | `pod-create`, `pod-init-container-running`, `pod-init-container-completed`, `pod-ready`, `pod-complete`, `pod-delete` | kubelet-like phases, each after 1–5 s |
//! | `node-chaos` | `node-not-ready` | nodes labelled `node-not-ready.stage.kwok.x-k8s.io=true` turn NotReady (use with a node set) |
//! | `pod-chaos` | `pod-container-running-failed`, `pod-init-container-running-failed` | pods labelled `<stage>.stage.kwok.x-k8s.io=true` fail once Running, or while Pending by an init container (use with a pod set) |
//! | `volume-fast` | `pvc-provision`, `pv-bind`, `pvc-delete`, `pv-delete` | claims of the StorageClass `kwok-volume` get a bound volume at once; a deleted claim's volume is released and deleted |
//! | `dra` | `node-gpu-resource-slice`, `node-partitionable-gpu-resource-slice`, `node-nic-resource-slice`, `resourceclaim-device-status` | a Ready node labelled `kwok.x-k8s.io/gpus`, `…/partitionable-gpus` or `…/nics: "<count>"` publishes DRA ResourceSlices of that many fake devices; claims allocated them get a Ready device status (kwok-rs's own: upstream has no DRA set) |
//!
//! Every stage reads per-object overrides from the annotations
//! `<stage>.stage.kwok.x-k8s.io/weight`, `…/delay` and `…/jitter-delay`
//! (Go durations such as `5s`). `engine/stages/README.md` describes each stage.

use std::sync::LazyLock;

/// `node-fast`: `node-initialize` and `node-heartbeat`.
pub const NODE_FAST: &str = include_str!("../stages/node-fast.yaml");
/// `pod-fast`: `pod-ready`, `pod-complete` and `pod-delete`.
pub const POD_FAST: &str = include_str!("../stages/pod-fast.yaml");
/// `pod-general`: the kubelet-like pod lifecycle with realistic delays.
pub const POD_GENERAL: &str = include_str!("../stages/pod-general.yaml");
/// `node-chaos`: `node-not-ready`, for opted-in nodes.
pub const NODE_CHAOS: &str = include_str!("../stages/node-chaos.yaml");
/// `pod-chaos`: `pod-container-running-failed` and `pod-init-container-running-failed`,
/// for opted-in pods.
pub const POD_CHAOS: &str = include_str!("../stages/pod-chaos.yaml");
/// `volume-fast`: claims and volumes of the StorageClass `kwok-volume`.
pub const VOLUME_FAST: &str = include_str!("../stages/volume-fast.yaml");
/// `dra`: DRA ResourceSlices of fake GPUs and NICs for nodes labelled
/// `kwok.x-k8s.io/gpus`, `…/partitionable-gpus` or `…/nics`, and the device status of
/// the claims allocated them.
pub const DRA: &str = include_str!("../stages/dra.yaml");

/// The single `node-heartbeat-with-lease` stage; not a set on its own (it would race
/// `node-heartbeat`), see [`set`]`("node-fast-with-lease")`.
const NODE_HEARTBEAT_WITH_LEASE: &str = include_str!("../stages/node-heartbeat-with-lease.yaml");

/// The YAML document separator between two stages of a set file.
const SEPARATOR: &str = "\n---\n";

/// `node-initialize` from `node-fast` followed by `node-heartbeat-with-lease`.
static NODE_FAST_WITH_LEASE: LazyLock<String> = LazyLock::new(|| {
    let initialize = NODE_FAST.split(SEPARATOR).next().unwrap_or(NODE_FAST);
    format!("{initialize}{SEPARATOR}{NODE_HEARTBEAT_WITH_LEASE}")
});

/// The canonical set names, each accepted by [`set`].
pub const SETS: &[&str] = &[
    "node-fast",
    "node-fast-with-lease",
    "pod-fast",
    "pod-general",
    "node-chaos",
    "pod-chaos",
    "volume-fast",
    "dra",
];

/// The stages of set `name` as one multi-document YAML text, or `None` if there is no
/// such set.
///
/// Besides the names in [`SETS`], a few aliases are accepted: `node` (`node-fast`),
/// `node-lease` / `node-fast-lease` (`node-fast-with-lease`), `pod` (`pod-fast`),
/// `general` (`pod-general`).
///
/// ## Warning
///
/// Sets for the same kind overlap: `node-fast` and `node-fast-with-lease` both hold
/// `node-initialize`, and `pod-fast` and `pod-general` both match a new pod. Load one
/// node set and one pod set, plus the chaos sets if wanted.
///
/// ```
/// let text = kwok_engine::catalog::set("pod-fast").unwrap();
/// assert!(text.contains("name: pod-ready"));
/// assert!(kwok_engine::catalog::set("no-such-set").is_none());
/// ```
pub fn set(name: &str) -> Option<&'static str> {
    match name {
        "node-fast" | "node" => Some(NODE_FAST),
        "node-fast-with-lease" | "node-fast-lease" | "node-lease" => Some(NODE_FAST_WITH_LEASE.as_str()),
        "pod-fast" | "pod" => Some(POD_FAST),
        "pod-general" | "general" => Some(POD_GENERAL),
        "node-chaos" => Some(NODE_CHAOS),
        "pod-chaos" => Some(POD_CHAOS),
        "volume-fast" | "volume" => Some(VOLUME_FAST),
        "dra" => Some(DRA),
        _ => None,
    }
}

/// The sets used when no Stage is configured: `node-fast` and `pod-fast`, as upstream
/// KWOK's defaults (`node-initialize` + `node-heartbeat`, `pod-ready` + `pod-complete` +
/// `pod-delete`), and `dra`, which acts only on nodes that ask for devices by
/// label and the claims allocated them, so nodes without those labels behave as
/// upstream's (its claim stage waits where the cluster serves no `resource.k8s.io/v1`).
///
/// Upstream `kwokctl` swaps `node-heartbeat` for `node-heartbeat-with-lease` when node
/// leases are on; [`defaults_with_lease`] is that choice.
pub fn defaults() -> [&'static str; 3] {
    [NODE_FAST, POD_FAST, DRA]
}

/// The default sets when node leases are on: `node-fast-with-lease`, `pod-fast` and
/// `dra`.
pub fn defaults_with_lease() -> [&'static str; 3] {
    [NODE_FAST_WITH_LEASE.as_str(), POD_FAST, DRA]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::spec::{ExpressionFrom, Stage};

    /// The stage names of each set, in file order, as upstream names them.
    const EXPECTED: &[(&str, &[&str])] = &[
        ("node-fast", &["node-initialize", "node-heartbeat"]),
        (
            "node-fast-with-lease",
            &["node-initialize", "node-heartbeat-with-lease"],
        ),
        ("pod-fast", &["pod-ready", "pod-complete", "pod-delete"]),
        (
            "pod-general",
            &[
                "pod-create",
                "pod-init-container-running",
                "pod-init-container-completed",
                "pod-ready",
                "pod-complete",
                "pod-delete",
            ],
        ),
        ("node-chaos", &["node-not-ready"]),
        (
            "pod-chaos",
            &[
                "pod-container-running-failed",
                "pod-init-container-running-failed",
            ],
        ),
        (
            "volume-fast",
            &["pvc-provision", "pv-bind", "pvc-delete", "pv-delete"],
        ),
        (
            "dra",
            &[
                "node-gpu-resource-slice",
                "node-partitionable-gpu-resource-slice",
                "node-nic-resource-slice",
                "resourceclaim-device-status",
                "pod-dra-prepare",
                "pod-dra-prepare-failed",
            ],
        ),
    ];

    fn parse(name: &str) -> Vec<Stage> {
        let text = set(name).unwrap_or_else(|| panic!("set {name} is missing"));
        serde_saphyr::from_multiple::<Stage>(text).unwrap_or_else(|e| panic!("set {name}: {e}"))
    }

    fn all_stages() -> impl Iterator<Item = (&'static str, Stage)> {
        SETS.iter()
            .flat_map(|&set| parse(set).into_iter().map(move |stage| (set, stage)))
    }

    /// Every `.metadata.annotations["…"]` name read by a jq expression.
    fn annotation_names(expression: &str) -> Vec<&str> {
        const OPEN: &str = ".metadata.annotations[\"";
        expression
            .match_indices(OPEN)
            .filter_map(|(at, _)| {
                let rest = &expression[at + OPEN.len()..];
                rest.find('"').map(|end| &rest[..end])
            })
            .collect()
    }

    /// The templates of a stage: status template and patch templates.
    fn templates(stage: &Stage) -> Vec<&str> {
        let next = stage.spec.next.as_ref();
        let status = next.and_then(|n| n.status_template.as_deref());
        let patches = next.and_then(|n| n.patches.as_deref()).unwrap_or_default();
        status
            .into_iter()
            .chain(patches.iter().map(|p| p.template.as_str()))
            .collect()
    }

    /// The first word of every `{{ … }}` action in `template`.
    fn action_keywords(template: &str) -> Vec<&str> {
        template
            .split("{{")
            .skip(1)
            .map(|rest| {
                let action = rest.split("}}").next().unwrap_or_default();
                action
                    .trim_matches(|c: char| c == '-' || c.is_whitespace())
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
            })
            .collect()
    }

    #[test]
    fn every_set_should_parse_into_stages_with_the_upstream_names() {
        for (name, expected) in EXPECTED {
            let names: Vec<_> = parse(name).into_iter().map(|s| s.metadata.name).collect();
            assert_eq!(&names, expected, "set {name}");
        }
        let listed: Vec<_> = EXPECTED.iter().map(|(name, _)| *name).collect();
        assert_eq!(listed, SETS, "every set in SETS is checked");
    }

    #[test]
    fn stage_names_should_be_unique_within_a_set() {
        for name in SETS {
            let mut names: Vec<_> = parse(name).into_iter().map(|s| s.metadata.name).collect();
            let count = names.len();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), count, "set {name} repeats a stage name");
        }
    }

    #[test]
    /// Node and pod stages use `next` as upstream's do; volume stages use `steps`
    /// (their apply steps have no `next` form), also as upstream's, and so does the
    /// `dra` set (its stages create slices, mark pods and send events).
    fn every_stage_should_be_a_v1alpha1_stage_for_a_core_kind_named_after_it() {
        for (set, stage) in all_stages() {
            let at = format!("set {set}: stage {}", stage.metadata.name);
            assert_eq!(stage.api_version, "kwok.x-k8s.io/v1alpha1", "{at}");
            assert_eq!(stage.kind, "Stage", "{at}");
            let kind = stage.spec.resource_ref.kind.as_str();
            let group = match kind {
                "ResourceClaim" => "resource.k8s.io/v1",
                _ => "v1",
            };
            assert_eq!(stage.spec.resource_ref.api_group, group, "{at}");
            let (prefix, uses_next) = match kind {
                "Node" if set == "dra" => ("node-", false),
                "Pod" if set == "dra" => ("pod-", false),
                "ResourceClaim" => ("resourceclaim-", false),
                "Node" => ("node-", true),
                "Pod" => ("pod-", true),
                "PersistentVolumeClaim" => ("pvc-", false),
                "PersistentVolume" => ("pv-", false),
                other => panic!("{at}: kind {other}"),
            };
            assert!(stage.metadata.name.starts_with(prefix), "{at}: kind {kind}");
            assert_eq!(stage.spec.next.is_some(), uses_next, "{at}");
            assert_eq!(stage.spec.steps.is_some(), !uses_next, "{at}");
        }
    }

    #[test]
    fn every_stage_should_have_a_selector() {
        for (set, stage) in all_stages() {
            let selector = stage.spec.selector.as_ref();
            let expressions = selector
                .and_then(|s| s.match_expressions.as_ref())
                .map_or(0, Vec::len);
            let labels = selector
                .and_then(|s| s.match_labels.as_ref())
                .map_or(0, |l| l.len());
            assert!(
                expressions + labels > 0,
                "set {set}: stage {} has no selector",
                stage.metadata.name
            );
        }
    }

    #[test]
    fn every_node_and_pod_stage_should_read_weight_delay_and_jitter_from_its_own_annotations() {
        let node_or_pod = |s: &Stage| matches!(s.spec.resource_ref.kind.as_str(), "Node" | "Pod");
        for (set, stage) in all_stages().filter(|(_, s)| node_or_pod(s)) {
            let name = &stage.metadata.name;
            let delay = stage.spec.delay.as_ref();
            let fields: [(&str, Option<&ExpressionFrom>); 3] = [
                ("weight", stage.spec.weight_from.as_ref()),
                ("delay", delay.and_then(|d| d.duration_from.as_ref())),
                (
                    "jitter-delay",
                    delay.and_then(|d| d.jitter_duration_from.as_ref()),
                ),
            ];
            for (suffix, from) in fields {
                let from = from.unwrap_or_else(|| panic!("set {set}: stage {name}: no {suffix} override"));
                let annotations = annotation_names(from.expression_from.as_deref().unwrap_or_default());
                let expected = format!("{name}.stage.kwok.x-k8s.io/{suffix}");
                assert_eq!(
                    annotations,
                    [expected.as_str()],
                    "set {set}: stage {name}: {suffix}"
                );
            }
        }
    }

    #[test]
    fn stage_annotations_and_labels_should_be_named_after_their_own_stage() {
        for (set, stage) in all_stages() {
            let name = &stage.metadata.name;
            let own = format!("{name}.stage.kwok.x-k8s.io");
            let labels = stage
                .spec
                .selector
                .as_ref()
                .and_then(|s| s.match_labels.clone())
                .unwrap_or_default();
            let texts = templates(&stage)
                .into_iter()
                .chain(labels.keys().map(String::as_str));
            for text in texts {
                for (at, _) in text.match_indices(".stage.kwok.x-k8s.io") {
                    let start = text[..at]
                        .rfind(|c: char| c == '"' || c.is_whitespace())
                        .map_or(0, |i| i + 1);
                    assert_eq!(&text[start..at + 20], own, "set {set}: stage {name}");
                }
            }
        }
    }

    #[test]
    fn every_template_should_have_balanced_actions_and_use_only_supported_keywords() {
        for (set, stage) in all_stages() {
            for template in templates(&stage) {
                let at = format!("set {set}: stage {}", stage.metadata.name);
                assert_eq!(
                    template.matches("{{").count(),
                    template.matches("}}").count(),
                    "{at}"
                );
                let keywords = action_keywords(template);
                let opened = keywords
                    .iter()
                    .filter(|k| matches!(**k, "if" | "range" | "with"))
                    .count();
                let closed = keywords.iter().filter(|k| **k == "end").count();
                assert_eq!(opened, closed, "{at}: if/range/with vs end");
                for unsupported in ["define", "template", "block", "break", "continue"] {
                    assert!(!keywords.contains(&unsupported), "{at}: uses {unsupported}");
                }
            }
        }
    }

    #[test]
    fn pod_ready_should_only_carry_over_an_existing_pod_scheduled_condition() {
        for set in ["pod-fast", "pod-general"] {
            for stage in parse(set) {
                for template in templates(&stage) {
                    let scheduled = template.matches("type: PodScheduled").count();
                    let guarded = template.matches("if eq .type \"PodScheduled\"").count();
                    assert_eq!(scheduled, guarded, "set {set}: stage {}", stage.metadata.name);
                }
            }
        }
    }

    #[test]
    fn both_node_sets_should_share_node_initialize() {
        let plain = parse("node-fast").into_iter().next();
        let lease = parse("node-fast-with-lease").into_iter().next();
        assert_eq!(plain, lease);
    }

    #[test]
    fn defaults_should_be_node_fast_pod_fast_and_the_gpu_slices() {
        assert_eq!(defaults(), [NODE_FAST, POD_FAST, DRA]);
        assert_eq!(
            defaults_with_lease(),
            [set("node-fast-with-lease").unwrap(), POD_FAST, DRA]
        );
    }

    #[test]
    fn aliases_should_resolve_to_their_set() {
        for (alias, name) in [
            ("node", "node-fast"),
            ("node-lease", "node-fast-with-lease"),
            ("node-fast-lease", "node-fast-with-lease"),
            ("pod", "pod-fast"),
            ("general", "pod-general"),
        ] {
            assert_eq!(set(alias), set(name), "{alias}");
        }
        assert_eq!(set("node-heartbeat-with-lease"), None);
    }
}
