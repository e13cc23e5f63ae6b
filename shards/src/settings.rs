//! Flags resolved into what the controller runs with: selectors compiled, CIDR parsed,
//! stages loaded. Everything that can be wrong with the input is found here, before
//! anything touches the cluster.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};
use kube::core::Selector;
use kwok_engine::{lifecycle::Lifecycles, stage::load::Documents};
use serde_json::Value;

use crate::{flags::Flags, ipam::Cidr, selector};

/// Which nodes this controller drives.
#[derive(Debug, Clone)]
pub enum NodeScope {
    /// Every node.
    All,
    /// Only the node with this name.
    Single(String),
    /// Nodes whose annotations and labels match (each `None` matches anything).
    Selected {
        /// Annotation selector.
        annotations: Option<Selector>,
        /// Label selector.
        labels: Option<Selector>,
    },
}

/// The resolved configuration.
pub struct Settings {
    /// Which nodes to drive.
    pub scope: NodeScope,
    /// Objects whose status is left alone (annotations).
    pub disregard_annotations: Option<Selector>,
    /// Objects whose status is left alone (labels).
    pub disregard_labels: Option<Selector>,
    /// Pod IPs of nodes without a podCIDR.
    pub cidr: Cidr,
    /// `NodeIP`.
    pub node_ip: String,
    /// `NodeName`.
    pub node_name: String,
    /// `NodePort`.
    pub node_port: u16,
    /// Lease duration; 0 disables leases.
    pub lease_seconds: u32,
    /// Lease renewals in flight at once while they go out on time (up to 64 times as
    /// many as they run late).
    pub lease_parallelism: usize,
    /// Encoding of Lease renewals.
    pub lease_encoding: crate::flags::LeaseEncoding,
    /// What renewals do with a Lease's `managedFields`.
    pub lease_managed_fields: crate::flags::LeaseManagedFields,
    /// With `--scale-out`: the duration of our member Lease (`None`: not sharing nodes).
    pub member_lease: Option<std::time::Duration>,
    /// Shard workers.
    pub shards: usize,
    /// Writes in flight per shard at most.
    pub writes_in_flight: usize,
    /// Client-side QPS limit.
    pub kube_api_qps: f64,
    /// Client-side burst.
    pub kube_api_burst: u32,
    /// Holder identity of leases.
    pub id: String,
    /// The stages, by kind (empty when they come from the cluster).
    pub lifecycles: Lifecycles,
    /// How watches fetch the initial state.
    pub initial_list: crate::flags::InitialList,
    /// Stages come from Stage objects in the cluster (`--enable-crds=Stage`).
    pub stage_crd: bool,
    /// The stages are the user's (`--config`), not the default sets: each kind they
    /// name must be served (the defaults' DRA stages wait for a cluster that has DRA).
    pub stages_from_files: bool,
    /// The kubelet API's rules, Metrics and resource usages (from `--config`).
    pub kubelet: KubeletRules,
    /// The rule kinds taken from the cluster's objects instead (`--enable-crds`).
    pub rule_crds: Vec<&'static crate::crds::RuleKind>,
}

/// What the kubelet API serves from: upstream's Logs, Exec, Attach, PortForward (and
/// their Cluster kinds), Metric, ResourceUsage and ClusterResourceUsage documents.
#[derive(Debug, Default, Clone)]
pub struct KubeletRules {
    /// Logs, exec, attach and port-forward rules.
    pub debugging: kwok_kubelet::debugging::DebuggingRules,
    /// Metric endpoints.
    pub metrics: kwok_kubelet::metrics::Metrics,
    /// Resource usage rules.
    pub usages: kwok_kubelet::metrics::Usages,
}

impl KubeletRules {
    /// Reads them from the `--config` documents (other kinds are left alone).
    pub fn from_documents(docs: &Documents) -> Result<Self> {
        Ok(Self {
            debugging: kwok_kubelet::debugging::DebuggingRules::from_documents(&docs.others)?,
            metrics: kwok_kubelet::metrics::Metrics::from_documents(&docs.others)?,
            usages: kwok_kubelet::metrics::Usages::from_documents(&docs.others)?,
        })
    }
}

impl Settings {
    /// Resolves `flags`, with `docs` the documents of its `--config` files.
    pub fn resolve(flags: &Flags, docs: Documents) -> Result<Self> {
        let all = flags.manage_all_nodes == Some(true);
        let single = !flags.manage_single_node.is_empty();
        if all && single {
            bail!("--manage-all-nodes and --manage-single-node conflict: give one");
        }
        if (all || single) && !flags.manage_nodes_with_label_selector.is_empty() {
            bail!(
                "--manage-nodes-with-label-selector conflicts with {}: give one",
                if all {
                    "--manage-all-nodes"
                } else {
                    "--manage-single-node"
                }
            );
        }
        let scope = if flags.manage_all_nodes == Some(true) {
            NodeScope::All
        } else if !flags.manage_single_node.is_empty() {
            NodeScope::Single(flags.manage_single_node.clone())
        } else {
            NodeScope::Selected {
                annotations: selector::parse(&flags.manage_nodes_with_annotation_selector)
                    .context("--manage-nodes-with-annotation-selector")?,
                labels: selector::parse(&flags.manage_nodes_with_label_selector)
                    .context("--manage-nodes-with-label-selector")?,
            }
        };
        let shards = flags
            .shards
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if shards == 0 {
            bail!("--shards must be at least 1");
        }
        if flags.kube_api_qps.is_nan() || flags.kube_api_qps <= 0.0 || flags.kube_api_burst == 0 {
            bail!("--kube-api-qps and --kube-api-burst must be positive");
        }
        for crd in &flags.enable_crds {
            if !crate::crds::supported().any(|k| k == crd) {
                let all: Vec<&str> = crate::crds::supported().collect();
                bail!(
                    "--enable-crds: {crd:?} is not supported (supported: {})",
                    all.join(", ")
                );
            }
        }
        let stage_crd = flags.enable_crds.iter().any(|c| c == "Stage");
        let rule_crds = rule_crds(&flags.enable_crds, &docs)?;
        let kubelet = KubeletRules::from_documents(&docs)?;
        let stages_from_files = !docs.stages.is_empty();
        let lifecycles = if stage_crd {
            if let Some((_, source)) = docs.stages.first() {
                bail!(
                    "{}:{}: Stage documents in --config cannot be used with --enable-crds=Stage, \
                     which takes the stages from the cluster",
                    source.file,
                    source.line
                );
            }
            Lifecycles::default()
        } else {
            load_stages(docs, flags.node_lease_duration_seconds > 0)?
        };
        Ok(Self {
            scope,
            disregard_annotations: selector::parse(&flags.disregard_status_with_annotation_selector)
                .context("--disregard-status-with-annotation-selector")?,
            disregard_labels: selector::parse(&flags.disregard_status_with_label_selector)
                .context("--disregard-status-with-label-selector")?,
            cidr: Cidr::parse(&flags.cidr).context("--cidr")?,
            node_ip: flags.node_ip.clone(),
            node_name: flags.node_name.clone(),
            node_port: flags.node_port,
            lease_seconds: flags.node_lease_duration_seconds,
            lease_parallelism: flags.node_lease_parallelism.max(1),
            lease_encoding: flags.node_lease_encoding,
            lease_managed_fields: flags.node_lease_managed_fields,
            member_lease: member_lease(flags)?,
            shards,
            writes_in_flight: flags.writes_in_flight as usize,
            kube_api_qps: flags.kube_api_qps,
            kube_api_burst: flags.kube_api_burst,
            id: flags.id.clone().unwrap_or_else(default_id),
            lifecycles,
            stage_crd,
            stages_from_files,
            initial_list: flags.initial_list,
            kubelet,
            rule_crds,
        })
    }

    /// Whether the node `obj` is driven by this controller.
    pub fn manages_node(&self, obj: &Value) -> bool {
        match &self.scope {
            NodeScope::All => true,
            NodeScope::Single(name) => obj.pointer("/metadata/name").and_then(Value::as_str) == Some(name),
            NodeScope::Selected { annotations, labels } => {
                annotations
                    .as_ref()
                    .is_none_or(|s| selector::matches(s, &string_map(obj, "annotations")))
                    && labels
                        .as_ref()
                        .is_none_or(|s| selector::matches(s, &string_map(obj, "labels")))
                    && (annotations.is_some() || labels.is_some())
            }
        }
    }

    /// Whether `obj`'s status is to be left alone.
    pub fn disregards(&self, obj: &Value) -> bool {
        self.disregard_annotations
            .as_ref()
            .is_some_and(|s| selector::matches(s, &string_map(obj, "annotations")))
            || self
                .disregard_labels
                .as_ref()
                .is_some_and(|s| selector::matches(s, &string_map(obj, "labels")))
    }
}

/// The rule kinds of `enable_crds` (once each, in upstream's order); an error naming
/// the file and line of a `--config` document of one of them, as upstream refuses both.
fn rule_crds(enable_crds: &[String], docs: &Documents) -> Result<Vec<&'static crate::crds::RuleKind>> {
    let kinds: Vec<_> = crate::crds::RULE_KINDS
        .iter()
        .filter(|k| enable_crds.iter().any(|c| c == k.kind))
        .collect();
    for (doc, source) in &docs.others {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
        if kinds.iter().any(|k| k.kind == kind) {
            bail!(
                "{}:{}: {kind} documents in --config cannot be used with --enable-crds={kind}, \
                 which takes them from the cluster",
                source.file,
                source.line
            );
        }
    }
    Ok(kinds)
}

/// The stages of `docs`; the default node, pod and DRA stages when it has none (with the
/// lease-based node heartbeat when leases are on, as kwokctl does).
pub fn load_stages(mut docs: Documents, leases: bool) -> Result<Lifecycles> {
    if docs.stages.is_empty() {
        for text in default_stages(leases) {
            docs.parse("<default stages>", text)?;
        }
    }
    Ok(Lifecycles::compile(&docs)?)
}

/// The default stage sets: node, pod and DRA (node heartbeats through the Lease when
/// leases are on).
pub fn default_stages(leases: bool) -> [&'static str; 3] {
    if leases {
        kwok_engine::catalog::defaults_with_lease()
    } else {
        kwok_engine::catalog::defaults()
    }
}

/// The documents of the `--config` files (read once: flags and stages come from them).
pub fn read_documents(paths: &[std::path::PathBuf]) -> Result<Documents> {
    let mut docs = Documents::default();
    for path in paths {
        docs.read(path)?;
    }
    Ok(docs)
}

fn string_map(obj: &Value, field: &str) -> BTreeMap<String, String> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The member Lease's duration with `--scale-out`, which needs node leases: a node
/// changes hands between kwoks only through its Lease.
fn member_lease(flags: &Flags) -> Result<Option<std::time::Duration>> {
    if !flags.scale_out {
        return Ok(None);
    }
    if flags.node_lease_duration_seconds == 0 {
        bail!("--scale-out needs node leases: --node-lease-duration-seconds must be above 0");
    }
    Ok(Some(std::time::Duration::from_secs(u64::from(
        flags.member_lease_duration_seconds,
    ))))
}

/// `kwok-<hostname>-<n>`: the same after a restart (so a restarted kwok finds its
/// Leases its own), and different for two processes at once on one host (so they never
/// both drive a node). `n` is the lowest slot whose lock file in the temp dir no live
/// process holds; the lock is held until the process exits.
fn default_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "kwok".into());
    let dir = std::env::temp_dir();
    for n in 0..1024 {
        let path = dir.join(format!("kwok-id-{host}-{n}.lock"));
        let Ok(file) = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        else {
            break;
        };
        if file.try_lock().is_ok() {
            // Held for the life of the process: the kernel lets go when it exits.
            std::mem::forget(file);
            return format!("kwok-{host}-{n}");
        }
    }
    // No slot could be locked (temp dir not writable): unique, as upstream's.
    format!("kwok-{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicting_manage_modes_should_be_refused() {
        let resolve = |args: &[&str]| {
            let flags = <Flags as clap::Parser>::try_parse_from([&["kwok"], args].concat()).unwrap();
            Settings::resolve(&flags, Documents::default()).map(|s| s.scope)
        };
        let err = resolve(&["--manage-all-nodes", "--manage-single-node=n"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--manage-all-nodes and --manage-single-node conflict: give one"
        );
        let err = resolve(&["--manage-single-node=n", "--manage-nodes-with-label-selector=a=b"]).unwrap_err();
        assert!(
            err.to_string().contains("conflicts with --manage-single-node"),
            "{err}"
        );
        assert!(matches!(resolve(&["--manage-single-node=n"]), Ok(NodeScope::Single(n)) if n == "n"));
        assert!(matches!(resolve(&["--manage-all-nodes"]), Ok(NodeScope::All)));
    }

    #[test]
    fn a_rule_kind_from_the_cluster_should_refuse_its_config_documents() {
        let resolve = |args: &[&str], text: &str| {
            let flags = <Flags as clap::Parser>::try_parse_from([&["kwok"], args].concat()).unwrap();
            let mut docs = Documents::default();
            docs.parse("rules.yaml", text).unwrap();
            Settings::resolve(&flags, docs).map(|s| s.rule_crds.iter().map(|k| k.kind).collect::<Vec<_>>())
        };
        let exec = "kind: Metric\napiVersion: kwok.x-k8s.io/v1alpha1\nmetadata: {name: m}\n\
                    spec: {path: /metrics/x, metrics: []}\n---\n\
                    kind: ClusterExec\napiVersion: kwok.x-k8s.io/v1alpha1\nmetadata: {name: e}\nspec: {execs: []}\n";
        let err = resolve(&["--enable-crds=Stage,ClusterExec"], exec).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rules.yaml:6: ClusterExec documents in --config cannot be used with \
             --enable-crds=ClusterExec, which takes them from the cluster"
        );
        // Other kinds still come from --config.
        assert_eq!(
            resolve(&["--enable-crds=Exec,ClusterResourceUsage,Logs"], exec).unwrap(),
            ["Logs", "Exec", "ClusterResourceUsage"]
        );
        let err = resolve(&["--enable-crds=Metrics"], "").unwrap_err();
        assert!(err.to_string().contains("\"Metrics\" is not supported"), "{err}");
    }

    #[test]
    fn default_ids_should_differ_between_live_holders_on_one_host() {
        let (a, b) = (default_id(), default_id());
        assert_ne!(a, b);
        assert!(a.starts_with("kwok-") && b.starts_with("kwok-"), "{a} {b}");
        assert!(!a.ends_with(&std::process::id().to_string()), "no pid: {a}");
    }
}
