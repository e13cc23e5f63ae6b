//! metrics-server (built from its pinned Go module): scrapes every node's resource
//! metrics from kwok's kubelet API and serves them as the aggregated
//! `metrics.k8s.io` API, for `kubectl top` and the HorizontalPodAutoscaler.
//!
//! It runs on the host like the other components, so the apiserver reaches it through
//! an ExternalName Service at 127.0.0.1 (as upstream kwokctl's binary runtime does);
//! [`manifests`] are the objects that register it, applied once the apiserver is up.

use std::path::Path;

use base64::Engine as _;
use serde_json::{Value, json};

use super::{Component, ComponentSpec, Context, EnvVar, kube_apiserver::KUBELET_ADDRESS_TYPES, path_arg};
use crate::pki::{FRONT_PROXY_CLIENT, METRICS_SERVER_USER};

/// The APIService that makes the apiserver proxy `metrics.k8s.io` to it.
pub const API_SERVICE: &str = "v1beta1.metrics.k8s.io";

/// Its Service (and the name the apiserver checks in its serving certificate:
/// `metrics-server.kube-system.svc`).
const SERVICE: &str = "metrics-server";
const NAMESPACE: &str = "kube-system";

/// How often it scrapes every node (upstream kwokctl's).
const RESOLUTION: &str = "15s";

/// kwok's Metric serving the kubelet's `/metrics/resource` for every node.
pub const METRICS_RESOURCE: &str = include_str!("metrics/metrics-resource.yaml");
/// kwok's ClusterResourceUsage reading each pod's usage from its annotations.
pub const USAGE_FROM_ANNOTATION: &str = include_str!("metrics/usage-from-annotation.yaml");

pub(super) fn component(ctx: &Context<'_>, binary: &Path, port: u16, tunnel: bool) -> ComponentSpec {
    let pki = ctx.dir.pki();
    let kubeconfig = ctx.dir.component_kubeconfig(Component::MetricsServer);
    let args = vec![
        format!("--kubelet-preferred-address-types={KUBELET_ADDRESS_TYPES}"),
        // The port each node advertises in daemonEndpoints: kwok's.
        "--kubelet-use-node-status-port".into(),
        format!("--metric-resolution={RESOLUTION}"),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        path_arg("kubeconfig", &kubeconfig),
        path_arg("authentication-kubeconfig", &kubeconfig),
        path_arg("authorization-kubeconfig", &kubeconfig),
        path_arg("tls-cert-file", pki.serving_cert()),
        path_arg("tls-private-key-file", pki.serving_key()),
        // Given here rather than read from kube-system/extension-apiserver-authentication,
        // so it trusts the apiserver's front proxy from its first request on.
        path_arg("client-ca-file", pki.ca_cert()),
        path_arg("requestheader-client-ca-file", pki.front_proxy_ca_cert()),
        format!("--requestheader-allowed-names={FRONT_PROXY_CLIENT}"),
        // Nodes are reached through kwok's CONNECT tunnel (HTTPS_PROXY below) at whatever
        // address they advertise, which kwok's certificate cannot name: upstream's
        // --kubelet-insecure-tls. The client certificate is still checked by kwok.
        "--kubelet-insecure-tls".into(),
        path_arg(
            "kubelet-client-certificate",
            pki.client_cert(Component::MetricsServer),
        ),
        path_arg("kubelet-client-key", pki.client_key(Component::MetricsServer)),
    ];
    ComponentSpec {
        name: Component::MetricsServer,
        replica: 0,
        binary: binary.into(),
        args,
        port,
        // /readyz waits for two scrapes of some node; /livez only for the server.
        health_url: format!("https://127.0.0.1:{port}/livez"),
        // Go's proxy from the environment: a node at a non-loopback address is reached
        // through kwok (the proxy connection carries the kubelet client certificate).
        image: None,
        envs: if tunnel {
            vec![EnvVar {
                name: "HTTPS_PROXY".into(),
                value: format!("https://127.0.0.1:{}", ctx.options.kwok_controller_port),
            }]
        } else {
            Vec::new()
        },
    }
}

/// The objects that register metrics-server listening on 127.0.0.1:`port`: its RBAC
/// (bound to the user of its client certificate), the ExternalName Service and the
/// APIService, which trusts its serving certificate through `ca_pem` (the cluster CA).
pub fn manifests(port: u16, ca_pem: &str) -> Vec<Value> {
    let user = json!([{
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "User",
        "name": METRICS_SERVER_USER,
    }]);
    let labels = json!({ "k8s-app": Component::MetricsServer });
    let cluster_role_binding = |name: &str, role: &str| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": { "name": name, "labels": labels },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
            "subjects": user,
        })
    };
    vec![
        // Who may read metrics: whoever has view, edit or admin.
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": "system:aggregated-metrics-reader",
                "labels": {
                    "k8s-app": Component::MetricsServer,
                    "rbac.authorization.k8s.io/aggregate-to-admin": "true",
                    "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                    "rbac.authorization.k8s.io/aggregate-to-view": "true",
                },
            },
            "rules": [{
                "apiGroups": ["metrics.k8s.io"],
                "resources": ["pods", "nodes"],
                "verbs": ["get", "list", "watch"],
            }],
        }),
        // What metrics-server reads: the nodes' metrics endpoints, nodes and pods.
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": { "name": "system:metrics-server", "labels": labels },
            "rules": [
                { "apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"] },
                { "apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"] },
            ],
        }),
        cluster_role_binding("system:metrics-server", "system:metrics-server"),
        // Checking its callers' tokens and permissions with the apiserver.
        cluster_role_binding("metrics-server:system:auth-delegator", "system:auth-delegator"),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": { "name": "metrics-server-auth-reader", "namespace": NAMESPACE, "labels": labels },
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "extension-apiserver-authentication-reader",
            },
            "subjects": user,
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": { "name": SERVICE, "namespace": NAMESPACE, "labels": labels },
            "spec": {
                "type": "ExternalName",
                "externalName": "127.0.0.1",
                "ports": [{ "name": "https", "port": port, "protocol": "TCP", "targetPort": port }],
            },
        }),
        json!({
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": { "name": API_SERVICE, "labels": labels },
            "spec": {
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
                "service": { "name": SERVICE, "namespace": NAMESPACE, "port": port },
                "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem),
            },
        }),
    ]
}

/// The documents kwok needs beside `documents` (the user's) to serve metrics-server:
/// [`METRICS_RESOURCE`] unless a Metric is configured or served as a CRD, and
/// [`USAGE_FROM_ANNOTATION`] likewise for ClusterResourceUsage (upstream kwokctl's rule).
pub fn kwok_documents(documents: &[String], enable_crds: &[String]) -> Vec<String> {
    let has_kind = |kind: &str| {
        enable_crds.iter().any(|c| c == kind)
            || documents.iter().any(|d| {
                kwok_engine::stage::load::split(d).into_iter().any(|(_, doc)| {
                    serde_saphyr::from_str::<Value>(doc)
                        .ok()
                        .is_some_and(|v| v["kind"] == kind)
                })
            })
    };
    [
        ("Metric", METRICS_RESOURCE),
        ("ClusterResourceUsage", USAGE_FROM_ANNOTATION),
    ]
    .into_iter()
    .filter(|(kind, _)| !has_kind(kind))
    .map(|(_, text)| text.trim().to_owned())
    .collect()
}

/// Whether `api_service` (an APIService as JSON) says it is Available.
pub fn available(api_service: &Value) -> bool {
    api_service["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Available" && c["status"] == "True")
}

/// The reason an APIService gives for not being Available, for a timeout's message.
pub fn unavailable_reason(api_service: &Value) -> String {
    api_service["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Available")
        .map(|c| {
            format!(
                "{}: {}",
                c["reason"].as_str().unwrap_or_default(),
                c["message"].as_str().unwrap_or_default()
            )
        })
        .unwrap_or_else(|| "no Available condition yet".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Options;

    fn component_of(port: u16) -> ComponentSpec {
        let dir = crate::paths::Workdir::from_env().cluster("t");
        let options = Options::default();
        component(
            &Context {
                options: &options,
                dir: &dir,
            },
            Path::new("/bin/metrics-server"),
            port,
            true,
        )
    }

    #[test]
    fn metrics_server_should_run_as_upstream_and_reach_nodes_through_kwok() {
        let c = component_of(4443);
        let dir = crate::paths::Workdir::from_env().cluster("t");
        let pki = dir.pki();
        for arg in [
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname".to_owned(),
            "--kubelet-use-node-status-port".to_owned(),
            "--metric-resolution=15s".to_owned(),
            "--bind-address=127.0.0.1".to_owned(),
            "--secure-port=4443".to_owned(),
            "--kubelet-insecure-tls".to_owned(),
            format!(
                "--kubelet-client-certificate={}",
                pki.client_cert(Component::MetricsServer).display()
            ),
            format!(
                "--kubeconfig={}",
                dir.component_kubeconfig(Component::MetricsServer).display()
            ),
            "--requestheader-allowed-names=front-proxy-client".to_owned(),
        ] {
            assert!(c.args.contains(&arg), "{arg} missing from {:?}", c.args);
        }
        assert_eq!(c.envs[0].name, "HTTPS_PROXY");
        assert_eq!(c.health_url, "https://127.0.0.1:4443/livez");
    }

    #[test]
    fn manifests_should_register_the_api_service_through_an_external_name_service() {
        let objects = manifests(4443, "PEM");
        let find = |kind: &str, name: &str| {
            objects
                .iter()
                .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
                .unwrap_or_else(|| panic!("no {kind} {name}"))
        };
        let service = find("Service", "metrics-server");
        assert_eq!(service["metadata"]["namespace"], "kube-system");
        assert_eq!(service["spec"]["type"], "ExternalName");
        assert_eq!(service["spec"]["externalName"], "127.0.0.1");
        let api = find("APIService", API_SERVICE);
        assert_eq!(
            api["spec"]["service"],
            json!({"name": "metrics-server", "namespace": "kube-system", "port": 4443})
        );
        assert_eq!(api["spec"]["caBundle"], "UEVN", "base64 of the CA PEM");
        let reader = find("RoleBinding", "metrics-server-auth-reader");
        assert_eq!(reader["metadata"]["namespace"], "kube-system");
        assert_eq!(
            reader["roleRef"]["name"],
            "extension-apiserver-authentication-reader"
        );
        assert_eq!(reader["subjects"][0]["name"], METRICS_SERVER_USER);
        let role = find("ClusterRole", "system:metrics-server");
        assert_eq!(role["rules"][0]["resources"], json!(["nodes/metrics"]));
        let aggregated = find("ClusterRole", "system:aggregated-metrics-reader");
        assert_eq!(
            aggregated["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"],
            "true"
        );
        find("ClusterRoleBinding", "metrics-server:system:auth-delegator");
        find("ClusterRoleBinding", "system:metrics-server");
    }

    #[test]
    fn kwok_should_get_the_default_metric_and_usage_unless_configured_or_served_as_crds() {
        let kinds = |docs: Vec<String>| -> Vec<String> {
            docs.iter()
                .map(|d| {
                    let v: Value = serde_saphyr::from_str(d).unwrap();
                    v["kind"].as_str().unwrap().to_owned()
                })
                .collect()
        };
        assert_eq!(
            kinds(kwok_documents(&[], &[])),
            ["Metric", "ClusterResourceUsage"]
        );
        let own = "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Metric\nmetadata:\n  name: mine\n".to_owned();
        assert_eq!(kinds(kwok_documents(&[own], &[])), ["ClusterResourceUsage"]);
        assert_eq!(
            kinds(kwok_documents(&[], &["ClusterResourceUsage".into()])),
            ["Metric"]
        );
    }

    #[test]
    fn the_default_documents_should_keep_upstreams_fields() {
        let metric: Value = serde_saphyr::from_str(METRICS_RESOURCE).unwrap();
        assert_eq!(metric["apiVersion"], "kwok.x-k8s.io/v1alpha1");
        assert_eq!(metric["metadata"]["name"], "metrics-resource");
        assert_eq!(
            metric["spec"]["path"],
            "/metrics/nodes/{nodeName}/metrics/resource"
        );
        let names: Vec<&str> = metric["spec"]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        for needed in [
            "container_cpu_usage_seconds_total",
            "container_memory_working_set_bytes",
            "node_cpu_usage_seconds_total",
            "node_memory_working_set_bytes",
        ] {
            assert!(names.contains(&needed), "{needed}");
        }
        let usage: Value = serde_saphyr::from_str(USAGE_FROM_ANNOTATION).unwrap();
        let cpu = usage["spec"]["usages"][0]["usage"]["cpu"]["expression"]
            .as_str()
            .unwrap();
        assert!(cpu.contains("kwok.x-k8s.io/usage-cpu") && cpu.contains("Quantity(\"1m\")"));
    }

    #[test]
    fn available_should_read_the_condition() {
        let api = json!({"status": {"conditions": [
            {"type": "Available", "status": "False", "reason": "FailedDiscoveryCheck", "message": "no"}
        ]}});
        assert!(!available(&api));
        assert_eq!(unavailable_reason(&api), "FailedDiscoveryCheck: no");
        let api = json!({"status": {"conditions": [{"type": "Available", "status": "True"}]}});
        assert!(available(&api));
    }
}
