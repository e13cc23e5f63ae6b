//! The strategic-merge-patch schema: which lists merge, and by which key, per kind and field.
//!
//! Transcribed from the `patchStrategy`/`patchMergeKey` struct tags of the Kubernetes API types at
//! v1.36.5 (`k8s.io/api/core/v1/types.go`, `apps/v1/types.go`, `batch/v1/types.go` and
//! `k8s.io/apimachinery/pkg/apis/meta/v1/types.go`). A field not listed here has no strategy: a
//! list is replaced by the patch and a map is merged key by key. Fields tagged
//! `merge,retainKeys` (Pod `spec.volumes`, `spec.resourceClaims`, `status.resourceClaimStatuses`)
//! and `retainKeys` (Deployment `spec.strategy`) need no extra entry: the `$retainKeys` directive
//! is honoured wherever a patch carries it.

/// How a list field is patched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListStrategy {
    /// No strategy: the patch replaces the whole list.
    Replace,
    /// `patchStrategy:"merge"` on a list of primitives: a deduplicated union.
    MergePrimitives,
    /// `patchStrategy:"merge" patchMergeKey:"<key>"`: elements merge by the value of `<key>`.
    MergeByKey(&'static str),
}

/// One field of a struct: its JSON name, its list strategy and the fields of its value (for a
/// list, of each element).
#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) list: ListStrategy,
    pub(crate) fields: &'static [Field],
}

/// A map-valued field with known sub-fields.
const fn map(name: &'static str, fields: &'static [Field]) -> Field {
    Field {
        name,
        list: ListStrategy::Replace,
        fields,
    }
}

/// A list of objects merged by `key`.
const fn by_key(name: &'static str, key: &'static str, fields: &'static [Field]) -> Field {
    Field {
        name,
        list: ListStrategy::MergeByKey(key),
        fields,
    }
}

/// A list of primitives merged as a set.
const fn primitives(name: &'static str) -> Field {
    Field {
        name,
        list: ListStrategy::MergePrimitives,
        fields: &[],
    }
}

// ===== meta/v1 =====

/// `ObjectMeta`.
const META: &[Field] = &[by_key("ownerReferences", "uid", &[]), primitives("finalizers")];

// ===== core/v1 =====

/// `Container` and `EphemeralContainerCommon` (same tags).
const CONTAINER: &[Field] = &[
    by_key("ports", "containerPort", &[]),
    by_key("env", "name", &[]),
    by_key("volumeMounts", "mountPath", &[]),
    by_key("volumeDevices", "devicePath", &[]),
];

/// `PodSpec`.
const POD_SPEC: &[Field] = &[
    by_key("volumes", "name", &[]),
    by_key("initContainers", "name", CONTAINER),
    by_key("containers", "name", CONTAINER),
    by_key("ephemeralContainers", "name", CONTAINER),
    by_key("imagePullSecrets", "name", &[]),
    by_key("hostAliases", "ip", &[]),
    by_key("topologySpreadConstraints", "topologyKey", &[]),
    by_key("schedulingGates", "name", &[]),
    by_key("resourceClaims", "name", &[]),
];

/// `PodStatus`. `containerStatuses`, `initContainerStatuses` and `ephemeralContainerStatuses`
/// carry no strategy, so they are replaced whole.
const POD_STATUS: &[Field] = &[
    by_key("conditions", "type", &[]),
    by_key("hostIPs", "ip", &[]),
    by_key("podIPs", "ip", &[]),
    by_key("resourceClaimStatuses", "name", &[]),
];

/// `PodTemplateSpec`.
const POD_TEMPLATE: &[Field] = &[map("metadata", META), map("spec", POD_SPEC)];

/// `NodeSpec` (`taints` has no strategy) and `NodeStatus` (`images`, `volumesAttached` neither).
const NODE_SPEC: &[Field] = &[primitives("podCIDRs")];
const NODE_STATUS: &[Field] = &[
    by_key("conditions", "type", &[]),
    by_key("addresses", "type", &[]),
];

/// A `status` whose only strategic list is `conditions` by `type`.
const CONDITIONS: &[Field] = &[by_key("conditions", "type", &[])];

const POD: &[Field] = &[
    map("metadata", META),
    map("spec", POD_SPEC),
    map("status", POD_STATUS),
];
const NODE: &[Field] = &[
    map("metadata", META),
    map("spec", NODE_SPEC),
    map("status", NODE_STATUS),
];
const SERVICE: &[Field] = &[
    map("metadata", META),
    map("spec", &[by_key("ports", "port", &[])]),
    map("status", CONDITIONS),
];
const SERVICE_ACCOUNT: &[Field] = &[map("metadata", META), by_key("secrets", "name", &[])];
const WITH_CONDITIONS: &[Field] = &[map("metadata", META), map("status", CONDITIONS)];
const COMPONENT_STATUS: &[Field] = &[map("metadata", META), by_key("conditions", "type", &[])];
const POD_TEMPLATE_KIND: &[Field] = &[map("metadata", META), map("template", POD_TEMPLATE)];
const ONLY_META: &[Field] = &[map("metadata", META)];

// ===== apps/v1, batch/v1 =====

/// Deployment, ReplicaSet, StatefulSet, DaemonSet, Job and ReplicationController.
const WORKLOAD: &[Field] = &[
    map("metadata", META),
    map("spec", &[map("template", POD_TEMPLATE)]),
    map("status", CONDITIONS),
];
const JOB_TEMPLATE: &[Field] = &[
    map("metadata", META),
    map("spec", &[map("template", POD_TEMPLATE)]),
];
const CRON_JOB: &[Field] = &[
    map("metadata", META),
    map("spec", &[map("jobTemplate", JOB_TEMPLATE)]),
];

/// The fields of an object of `kind`, or `None` for a kind this table does not know (then every
/// list is replaced, as the apiserver's merge patch would).
pub(crate) fn root(kind: &str) -> Option<&'static [Field]> {
    Some(match kind {
        "Pod" => POD,
        "Node" => NODE,
        "Service" => SERVICE,
        "ServiceAccount" => SERVICE_ACCOUNT,
        "Namespace" | "PersistentVolumeClaim" => WITH_CONDITIONS,
        "ComponentStatus" => COMPONENT_STATUS,
        "PodTemplate" => POD_TEMPLATE_KIND,
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" | "ReplicationController" => {
            WORKLOAD
        }
        "CronJob" => CRON_JOB,
        "ConfigMap" | "Secret" | "Endpoints" | "Event" | "LimitRange" | "ResourceQuota"
        | "PersistentVolume" | "Lease" => ONLY_META,
        _ => return None,
    })
}

/// A position in the schema: the fields of the map being patched, if known.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schema(pub(crate) Option<&'static [Field]>);

impl Schema {
    /// The schema of an object of `kind`.
    pub(crate) fn of_kind(kind: &str) -> Self {
        Self(root(kind))
    }

    fn field(self, name: &str) -> Option<&'static Field> {
        self.0?.iter().find(|f| f.name == name)
    }

    /// How the list in field `name` is patched, and the schema of its value: [`Self::list`]
    /// and [`Self::child`] with one look-up.
    pub(crate) fn entry(self, name: &str) -> (ListStrategy, Self) {
        match self.field(name) {
            Some(f) => (f.list, Self(Some(f.fields))),
            None => (ListStrategy::Replace, Self(None)),
        }
    }

    /// The schema of the value of field `name` (for a list, of its elements).
    pub(crate) fn child(self, name: &str) -> Self {
        Self(self.field(name).map(|f| f.fields))
    }

    /// How the list in field `name` is patched.
    pub(crate) fn list(self, name: &str) -> ListStrategy {
        self.field(name).map_or(ListStrategy::Replace, |f| f.list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keys_should_match_the_kubernetes_tags() {
        let pod = Schema::of_kind("Pod");
        let node = Schema::of_kind("Node");
        let cases: &[(Schema, &[&str], ListStrategy)] = &[
            (pod, &["spec", "containers"], ListStrategy::MergeByKey("name")),
            (pod, &["spec", "initContainers"], ListStrategy::MergeByKey("name")),
            (pod, &["spec", "volumes"], ListStrategy::MergeByKey("name")),
            (
                pod,
                &["spec", "containers", "ports"],
                ListStrategy::MergeByKey("containerPort"),
            ),
            (
                pod,
                &["spec", "containers", "env"],
                ListStrategy::MergeByKey("name"),
            ),
            (pod, &["spec", "tolerations"], ListStrategy::Replace),
            (pod, &["status", "conditions"], ListStrategy::MergeByKey("type")),
            (pod, &["status", "podIPs"], ListStrategy::MergeByKey("ip")),
            (pod, &["status", "hostIPs"], ListStrategy::MergeByKey("ip")),
            (pod, &["status", "containerStatuses"], ListStrategy::Replace),
            (pod, &["metadata", "finalizers"], ListStrategy::MergePrimitives),
            (
                pod,
                &["metadata", "ownerReferences"],
                ListStrategy::MergeByKey("uid"),
            ),
            (node, &["spec", "podCIDRs"], ListStrategy::MergePrimitives),
            (node, &["spec", "taints"], ListStrategy::Replace),
            (node, &["status", "conditions"], ListStrategy::MergeByKey("type")),
            (node, &["status", "addresses"], ListStrategy::MergeByKey("type")),
            (
                Schema::of_kind("Widget"),
                &["status", "conditions"],
                ListStrategy::Replace,
            ),
        ];
        for (schema, path, want) in cases {
            let (last, parents) = path.split_last().expect("non-empty path");
            let parent = parents.iter().fold(*schema, |s, name| s.child(name));
            assert_eq!(parent.list(last), *want, "{path:?}");
        }
    }
}
