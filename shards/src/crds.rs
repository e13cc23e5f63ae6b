//! The custom resources `--enable-crds` turns on: which kinds there are, the CRD of
//! each kubelet API rule kind, and how a CRD is installed when the cluster lacks it.
//!
//! Names, plurals and scopes are upstream KWOK v0.8's (`kwok.x-k8s.io/v1alpha1`), so
//! objects written for upstream apply unchanged. The schemas are kwok's own and loose:
//! `spec` (and `status`) keep any field (`x-kubernetes-preserve-unknown-fields`); kwok
//! checks an object when it loads it and logs the field it cannot use (see
//! [`crate::rule_watch`]), as it does for Stage objects.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::json;
use tracing::info;

/// The API group of every kwok kind.
pub const GROUP: &str = "kwok.x-k8s.io";
/// Their version.
pub const VERSION: &str = "v1alpha1";

/// Which rule set of the kubelet API a kind feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleSet {
    /// Logs, exec, attach and port-forward (`kwok_kubelet::debugging`).
    Debugging,
    /// Metric endpoints.
    Metrics,
    /// Resource usages.
    Usages,
}

/// A kind of the kubelet API's rules, as upstream's CRD names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleKind {
    /// `ClusterExec`.
    pub kind: &'static str,
    /// `clusterexecs`.
    pub plural: &'static str,
    /// `clusterexec`.
    pub singular: &'static str,
    /// Namespaced (the rule is for the pod of the object's name) or cluster-wide.
    pub namespaced: bool,
    /// The set it feeds.
    pub set: RuleSet,
}

const fn rule(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    set: RuleSet,
) -> RuleKind {
    RuleKind {
        kind,
        plural,
        singular,
        namespaced,
        set,
    }
}

/// Every rule kind, with upstream's names and scopes.
pub const RULE_KINDS: &[RuleKind] = &[
    rule("Logs", "logs", "logs", true, RuleSet::Debugging),
    rule(
        "ClusterLogs",
        "clusterlogs",
        "clusterlogs",
        false,
        RuleSet::Debugging,
    ),
    rule("Exec", "execs", "exec", true, RuleSet::Debugging),
    rule(
        "ClusterExec",
        "clusterexecs",
        "clusterexec",
        false,
        RuleSet::Debugging,
    ),
    rule("Attach", "attaches", "attach", true, RuleSet::Debugging),
    rule(
        "ClusterAttach",
        "clusterattaches",
        "clusterattach",
        false,
        RuleSet::Debugging,
    ),
    rule(
        "PortForward",
        "portforwards",
        "portforward",
        true,
        RuleSet::Debugging,
    ),
    rule(
        "ClusterPortForward",
        "clusterportforwards",
        "clusterportforward",
        false,
        RuleSet::Debugging,
    ),
    rule(
        "ResourceUsage",
        "resourceusages",
        "resourceusage",
        true,
        RuleSet::Usages,
    ),
    rule(
        "ClusterResourceUsage",
        "clusterresourceusages",
        "clusterresourceusage",
        false,
        RuleSet::Usages,
    ),
    rule("Metric", "metrics", "metric", false, RuleSet::Metrics),
];

/// The kinds `--enable-crds` accepts (upstream's list): Stage and every rule kind.
pub fn supported() -> impl Iterator<Item = &'static str> {
    std::iter::once("Stage").chain(RULE_KINDS.iter().map(|k| k.kind))
}

impl RuleKind {
    /// The rule kind named `kind`, if it is one.
    pub fn named(kind: &str) -> Option<&'static RuleKind> {
        RULE_KINDS.iter().find(|k| k.kind == kind)
    }

    /// The API resource of its objects.
    pub fn resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, self.kind), self.plural)
    }

    /// The CRD's name: `clusterexecs.kwok.x-k8s.io`.
    pub fn crd_name(&self) -> String {
        format!("{}.{GROUP}", self.plural)
    }

    /// Its CRD: upstream's names and scope, a `spec` kwok checks itself.
    pub fn crd(&self) -> CustomResourceDefinition {
        let open = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        let value = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": self.crd_name()},
            "spec": {
                "group": GROUP,
                "names": {
                    "kind": self.kind,
                    "listKind": format!("{}List", self.kind),
                    "plural": self.plural,
                    "singular": self.singular,
                },
                "scope": if self.namespaced { "Namespaced" } else { "Cluster" },
                "versions": [{
                    "name": VERSION,
                    "served": true,
                    "storage": true,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "description": format!(
                            "{}: a kubelet API rule of kwok; kwok checks the spec when it loads the object.",
                            self.kind
                        ),
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": open,
                            "status": open,
                        },
                    }},
                }],
            },
        });
        serde_json::from_value(value).expect("a CRD built from constants is one")
    }
}

/// Makes sure `crd` is served: applied when missing, then waited for until Established.
/// Returns whether this call created it.
pub async fn install(client: &Client, crd: &CustomResourceDefinition) -> Result<bool> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().unwrap_or_default();
    let kind = &crd.spec.names.kind;
    let existed = crds
        .get_opt(&name)
        .await
        .with_context(|| format!("--enable-crds={kind}: failed to read the CRD {name}"))?
        .is_some();
    if !existed {
        crds.patch(&name, &PatchParams::apply("kwok").force(), &Patch::Apply(crd))
            .await
            .with_context(|| {
                format!("--enable-crds={kind}: the CRD {name} is missing and could not be created")
            })?;
        info!(crd = %name, "created the CRD");
    }
    wait_established(&crds, &name).await?;
    Ok(!existed)
}

async fn wait_established(crds: &Api<CustomResourceDefinition>, name: &str) -> Result<()> {
    for _ in 0..300 {
        let crd = crds
            .get(name)
            .await
            .with_context(|| format!("failed to read the CRD {name}"))?;
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the CRD {name} was not established within 30 s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_kind_should_be_supported_and_get_upstreams_names() {
        for kind in RULE_KINDS {
            let crd = kind.crd();
            assert_eq!(crd.metadata.name.as_deref(), Some(kind.crd_name().as_str()));
            assert_eq!(crd.spec.names.kind, kind.kind);
            assert_eq!(crd.spec.names.plural, kind.plural);
            assert_eq!(
                crd.spec.names.list_kind.as_deref(),
                Some(&*format!("{}List", kind.kind))
            );
            let scope = if kind.namespaced { "Namespaced" } else { "Cluster" };
            assert_eq!(crd.spec.scope, scope);
            let version = &crd.spec.versions[0];
            let schema = version
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap();
            let spec = &schema.properties.as_ref().unwrap()["spec"];
            assert_eq!(spec.x_kubernetes_preserve_unknown_fields, Some(true));
        }
        // The rule kinds are the engine's list of the kubelet API's kinds, no more.
        let mut ours: Vec<&str> = RULE_KINDS.iter().map(|k| k.kind).collect();
        let mut engines = kwok_engine::stage::load::KUBELET_API_KINDS.to_vec();
        ours.sort_unstable();
        engines.sort_unstable();
        assert_eq!(ours, engines);
        assert_eq!(supported().count(), RULE_KINDS.len() + 1);
        assert_eq!(
            RuleKind::named("Metric").unwrap().crd_name(),
            "metrics.kwok.x-k8s.io"
        );
        assert_eq!(
            RuleKind::named("ClusterExec").unwrap().resource().plural,
            "clusterexecs"
        );
        assert!(RuleKind::named("Stage").is_none());
    }
}
