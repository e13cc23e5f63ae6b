//! What a k8s snapshot holds: which objects are worth saving, which fields the server
//! owns (dropped), the order a restore creates them in, and the YAML stream itself.

use std::{collections::HashSet, path::Path};

use serde_json::Value;

use super::{Error, Result};

/// Resources never saved: the control plane or kwok makes them again, or they are history.
const SKIPPED_RESOURCES: [(&str, &str); 5] = [
    ("", "events"),
    // Service IPs are allocated again with the services.
    ("networking.k8s.io", "ipaddresses"),
    ("events.k8s.io", "events"),
    ("coordination.k8s.io", "leases"),
    ("", "componentstatuses"),
];

/// Namespaces every cluster has from the start.
const BUILT_IN_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// ConfigMaps in kube-system that the apiserver writes at start.
const APISERVER_CONFIGMAPS: [&str; 2] = [
    "extension-apiserver-authentication",
    "kube-apiserver-legacy-service-account-token-tracking",
];

/// Annotations marking objects the apiserver bootstraps and keeps up to date itself.
const BOOTSTRAP_ANNOTATIONS: [&str; 2] = [
    "rbac.authorization.kubernetes.io/autoupdate",
    "apf.kubernetes.io/autoupdate-spec",
];

/// Whether objects of `group`/`plural` are saved at all.
pub fn resource_saved(group: &str, plural: &str) -> bool {
    !SKIPPED_RESOURCES.contains(&(group, plural))
}

/// Whether `object` (with `apiVersion` and `kind` set) is saved: not something a
/// controller or the apiserver makes again in a fresh cluster.
pub fn object_saved(object: &Value) -> bool {
    let meta = &object["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    let namespace = meta["namespace"].as_str().unwrap_or_default();
    let controlled = meta["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["controller"] == true));
    let bootstrapped = BOOTSTRAP_ANNOTATIONS
        .iter()
        .any(|a| meta["annotations"][a] == "true")
        || meta["labels"]["kube-aggregator.kubernetes.io/automanaged"].is_string();
    let regenerated = match object["kind"].as_str().unwrap_or_default() {
        "Namespace" => BUILT_IN_NAMESPACES.contains(&name),
        "ConfigMap" => {
            name == "kube-root-ca.crt" || (namespace == "kube-system" && APISERVER_CONFIGMAPS.contains(&name))
        }
        "ServiceCIDR" => name == "kubernetes",
        "ServiceAccount" => name == "default",
        "Secret" => object["type"] == "kubernetes.io/service-account-token",
        "Service" | "Endpoints" => namespace == "default" && name == "kubernetes",
        "PriorityClass" => name.starts_with("system-"),
        _ => false,
    };
    !(controlled || bootstrapped || regenerated)
}

/// Drops what the server owns: identity, versions, timestamps, managed fields, owner
/// links (their uids die with the old cluster), status (except a node's, which
/// whoever runs the node reports), and service IPs (allocated again).
pub fn clean(object: &mut Value) {
    if let Some(meta) = object["metadata"].as_object_mut() {
        for field in [
            "resourceVersion",
            "uid",
            "managedFields",
            "creationTimestamp",
            "generation",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "ownerReferences",
        ] {
            meta.remove(field);
        }
    }
    let kind = object["kind"].as_str().unwrap_or_default().to_owned();
    let Some(fields) = object.as_object_mut() else {
        return;
    };
    if kind != "Node" {
        fields.remove("status");
    }
    if kind == "Service"
        && let Some(spec) = fields.get_mut("spec").and_then(Value::as_object_mut)
        && spec.get("clusterIP").and_then(Value::as_str) != Some("None")
    {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
}

/// Restore order: namespaces and definitions first, then what pods refer to, nodes,
/// everything else, and pods last (their nodes and config must exist).
pub fn rank(object: &Value) -> u8 {
    match object["kind"].as_str().unwrap_or_default() {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        "PriorityClass" | "StorageClass" | "RuntimeClass" | "ClusterRole" | "ClusterRoleBinding" => 2,
        "ServiceAccount" | "Secret" | "ConfigMap" | "Role" | "RoleBinding" => 3,
        "Node" => 4,
        "Pod" => 6,
        _ => 5,
    }
}

/// Sorts objects into restore order, then by namespace and name, for a stable file.
pub fn sort(objects: &mut [Value]) {
    let key = |o: &Value| {
        (
            rank(o),
            o["apiVersion"].as_str().unwrap_or_default().to_owned(),
            o["kind"].as_str().unwrap_or_default().to_owned(),
            o["metadata"]["namespace"].as_str().unwrap_or_default().to_owned(),
            o["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
        )
    };
    objects.sort_by_cached_key(key);
}

/// One version of a resource a CustomResourceDefinition defines.
pub struct CrdVersion<'a> {
    /// API group.
    pub group: &'a str,
    /// Version name.
    pub version: &'a str,
    /// Kind, if the CRD names one.
    pub kind: Option<&'a str>,
    /// Plural resource name, if the CRD names one.
    pub plural: Option<&'a str>,
}

/// Every version of every resource the CustomResourceDefinitions among `objects`
/// define (a CRD without a group defines nothing).
pub fn crd_versions(objects: &[Value]) -> impl Iterator<Item = CrdVersion<'_>> {
    objects
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .filter_map(|crd| {
            let spec = &crd["spec"];
            let names = &spec["names"];
            let (group, kind, plural) = (
                spec["group"].as_str()?,
                names["kind"].as_str(),
                names["plural"].as_str(),
            );
            let versions = spec["versions"].as_array()?;
            Some(versions.iter().filter_map(move |v| {
                Some(CrdVersion {
                    group,
                    version: v["name"].as_str()?,
                    kind,
                    plural,
                })
            }))
        })
        .flatten()
}

/// The (apiVersion, kind) pairs the CustomResourceDefinitions among `objects` define.
pub fn crd_kinds(objects: &[Value]) -> HashSet<(String, String)> {
    crd_versions(objects)
        .filter_map(|v| Some((format!("{}/{}", v.group, v.version), v.kind?.to_owned())))
        .collect()
}

/// The YAML stream of `objects`, one document each.
pub fn to_stream(objects: &[Value]) -> Result<String> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(object).map_err(|e| Error::Api {
            what: "failed to write YAML".into(),
            message: e.to_string(),
        })?);
    }
    Ok(out)
}

/// Parses a k8s snapshot, checking every document is an object with apiVersion, kind
/// and name, so a restore refuses a wrong file before it creates anything.
pub fn from_stream(path: &Path, text: &str) -> Result<Vec<Value>> {
    let not = |reason: String| Error::NotASnapshot {
        path: path.display().to_string(),
        format: "a k8s",
        reason,
    };
    if text.as_bytes().contains(&0) {
        return Err(not("it is binary (an etcd snapshot needs --format etcd)".into()));
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| not(one_line(&e.to_string())))?;
    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    if docs.is_empty() {
        return Err(not("it holds no objects".into()));
    }
    for (i, doc) in docs.iter().enumerate() {
        for field in ["apiVersion", "kind"] {
            if !doc[field].is_string() {
                return Err(not(format!("document {}: no {field}", i + 1)));
            }
        }
        if !doc["metadata"]["name"].is_string() {
            return Err(not(format!("document {}: no metadata.name", i + 1)));
        }
    }
    Ok(docs)
}

fn one_line(message: &str) -> String {
    let line = message.lines().map(str::trim).find(|l| !l.is_empty());
    line.unwrap_or("invalid YAML").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn clean_should_drop_server_owned_fields_and_keep_the_rest() {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "a", "uid": "u", "resourceVersion": "7",
                "creationTimestamp": "t", "managedFields": [], "labels": {"x": "y"}},
            "spec": {"nodeName": "n"},
            "status": {"phase": "Running"},
        });
        clean(&mut pod);
        assert_eq!(
            pod,
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "a", "labels": {"x": "y"}},
                "spec": {"nodeName": "n"}})
        );
        let mut node = json!({"kind": "Node", "metadata": {"name": "n"}, "status": {"capacity": {}}});
        clean(&mut node);
        assert!(node.get("status").is_some(), "a node keeps its status");
    }

    #[test]
    fn clean_should_drop_service_ips_but_keep_headless() {
        let mut svc = json!({"kind": "Service", "metadata": {"name": "s"},
            "spec": {"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"], "ports": []}});
        clean(&mut svc);
        assert_eq!(svc["spec"], json!({"ports": []}));
        let mut headless =
            json!({"kind": "Service", "metadata": {"name": "s"}, "spec": {"clusterIP": "None"}});
        clean(&mut headless);
        assert_eq!(headless["spec"]["clusterIP"], "None");
    }

    #[test]
    fn object_saved_should_skip_what_the_control_plane_regenerates() {
        let cm = |name: &str| json!({"kind": "ConfigMap", "metadata": {"name": name, "namespace": "a"}});
        assert!(object_saved(&cm("mine")));
        assert!(!object_saved(&cm("kube-root-ca.crt")));
        let owned = json!({"kind": "Pod", "metadata": {"name": "p",
            "ownerReferences": [{"kind": "ReplicaSet", "name": "rs", "controller": true}]}});
        assert!(!object_saved(&owned));
        let role = json!({"kind": "ClusterRole", "metadata": {"name": "admin",
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}}});
        assert!(!object_saved(&role));
        assert!(!object_saved(
            &json!({"kind": "Namespace", "metadata": {"name": "default"}})
        ));
        assert!(!resource_saved("coordination.k8s.io", "leases"));
        assert!(resource_saved("", "configmaps"));
    }

    #[test]
    fn crd_kinds_should_list_every_version_of_each_crd() {
        let crd = json!({"kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "names": {"kind": "Widget"},
                "versions": [{"name": "v1"}, {"name": "v2"}]}});
        let kinds = crd_kinds(&[crd, json!({"kind": "ConfigMap"})]);
        assert_eq!(kinds.len(), 2);
        assert!(kinds.contains(&("example.com/v2".to_owned(), "Widget".to_owned())));
    }

    #[test]
    fn sort_should_put_namespaces_first_nodes_before_pods() {
        let mut objects = vec![
            json!({"kind": "Pod", "metadata": {"name": "p"}}),
            json!({"kind": "Node", "metadata": {"name": "n"}}),
            json!({"kind": "ConfigMap", "metadata": {"name": "c"}}),
            json!({"kind": "Namespace", "metadata": {"name": "a"}}),
        ];
        sort(&mut objects);
        let kinds: Vec<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["Namespace", "ConfigMap", "Node", "Pod"]);
    }

    #[test]
    fn stream_should_round_trip_and_refuse_other_files() {
        let objects = vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}),
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}}),
        ];
        let text = to_stream(&objects).unwrap();
        let path = Path::new("s.yaml");
        assert_eq!(from_stream(path, &text).unwrap(), objects);
        let err = from_stream(path, "just: a map\n").unwrap_err().to_string();
        assert_eq!(err, "s.yaml is not a k8s snapshot: document 1: no apiVersion");
        let err = from_stream(path, "").unwrap_err().to_string();
        assert_eq!(err, "s.yaml is not a k8s snapshot: it holds no objects");
        assert!(
            from_stream(path, "\0\0bolt")
                .unwrap_err()
                .to_string()
                .contains("binary")
        );
    }
}
