//! kube-apiserver: secure port on loopback, RBAC, service accounts signed by the cluster key,
//! kwok as every node's kubelet, and the aggregation layer (metrics-server).

use std::path::Path;

use super::{Component, ComponentSpec, Context, feature_gate_args, path_arg};
use crate::{
    auth::KwokAuth,
    pki::{FRONT_PROXY_CLIENT, KUBELET_CLIENT},
};

/// How the apiserver reaches a node's kubelet (kwok, for logs, exec, attach,
/// port-forward and the node proxy): at the node's InternalIP first, as
/// `--kubelet-preferred-address-types` (the default tries the Hostname first, and a
/// fake node's name resolves nowhere). Upstream's order, which metrics-server uses too.
pub const KUBELET_ADDRESS_TYPES: &str = "InternalIP,ExternalIP,Hostname";

pub(super) fn component(ctx: &Context<'_>, binary: &Path, tunnel: bool) -> ComponentSpec {
    let o = ctx.options;
    let pki = ctx.dir.pki();
    let mut args = vec![
        format!("--etcd-servers=http://127.0.0.1:{}", o.etcd_port),
        format!("--etcd-prefix={}", o.etcd_prefix),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={}", o.kube_apiserver_port),
        "--advertise-address=127.0.0.1".into(),
        // No kubelet network: the `kubernetes` Endpoints would point at nothing.
        "--endpoint-reconciler-type=none".into(),
        if o.kube_authorization {
            "--authorization-mode=Node,RBAC".into()
        } else {
            "--authorization-mode=AlwaysAllow".into()
        },
        "--allow-privileged=true".into(),
        "--service-cluster-ip-range=10.96.0.0/12".into(),
        path_arg("client-ca-file", pki.ca_cert()),
        path_arg("tls-cert-file", pki.serving_cert()),
        path_arg("tls-private-key-file", pki.serving_key()),
        path_arg("service-account-key-file", pki.sa_pub()),
        path_arg("service-account-signing-key-file", pki.sa_key()),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
    ];
    if o.kwok_auth == KwokAuth::Token {
        // kwok's bearer token (see `crate::auth`).
        args.push(path_arg("token-auth-file", pki.token_auth_file()));
    }
    args.extend(kubelet_args(ctx, tunnel));
    args.extend(aggregation_args(ctx));
    if !o.kube_admission {
        // Upstream's way to run no admission plugin at all.
        args.push("--admission-control=".into());
    }
    if o.kube_audit_policy.is_some() {
        args.push(path_arg("audit-policy-file", ctx.dir.audit_policy()));
        args.push(path_arg("audit-log-path", ctx.dir.audit_log()));
    }
    if !o.kube_runtime_config.is_empty() {
        args.push(format!("--runtime-config={}", o.kube_runtime_config));
    }
    args.extend(feature_gate_args(ctx));
    // Spans of every request to Jaeger (1.27+ traces without a feature gate).
    if super::jaeger::otlp_endpoint(ctx).is_some() {
        args.push(path_arg(
            "tracing-config-file",
            ctx.dir.apiserver_tracing_config(),
        ));
    }
    if o.disable_qps_limits {
        // Without priority and fairness, 0 means "no in-flight limit".
        args.extend([
            "--enable-priority-and-fairness=false".into(),
            "--max-requests-inflight=0".into(),
            "--max-mutating-requests-inflight=0".into(),
        ]);
    }
    ComponentSpec {
        name: Component::KubeApiserver,
        replica: 0,
        binary: binary.into(),
        args,
        port: o.kube_apiserver_port,
        health_url: format!("https://127.0.0.1:{}/readyz", o.kube_apiserver_port),
        image: None,
        envs: Vec::new(),
    }
}

/// The kubelet client: the apiserver's own certificate for kwok's kubelet API, reached
/// through kwok's CONNECT tunnel (see [`egress_selector_config`]) whatever address a node
/// advertises. The kubelet's serving certificate is not checked (kubeadm's default too):
/// no certificate names every address a fake node may carry.
fn kubelet_args(ctx: &Context<'_>, tunnel: bool) -> Vec<String> {
    let pki = ctx.dir.pki();
    let mut args = vec![
        path_arg("kubelet-client-certificate", pki.client_cert(KUBELET_CLIENT)),
        path_arg("kubelet-client-key", pki.client_key(KUBELET_CLIENT)),
        format!("--kubelet-preferred-address-types={KUBELET_ADDRESS_TYPES}"),
    ];
    // Upstream's kwok has no tunnel: nodes are then reached at their own addresses.
    if tunnel {
        args.push(path_arg(
            "egress-selector-config-file",
            ctx.dir.egress_selector_config(),
        ));
    }
    args
}

/// The apiserver's egress to the cluster (nodes, pods, services, webhooks and aggregated
/// API servers) through kwok's HTTP CONNECT tunnel: loopback targets are passed
/// through, every other address is a fake node's and ends at kwok's kubelet API.
pub fn egress_selector_config(ctx: &Context<'_>) -> serde_json::Value {
    let pki = ctx.dir.pki();
    serde_json::json!({
        "apiVersion": "apiserver.k8s.io/v1beta1",
        "kind": "EgressSelectorConfiguration",
        "egressSelections": [{
            "name": "cluster",
            "connection": {
                "proxyProtocol": "HTTPConnect",
                "transport": {"tcp": {
                    "url": format!("https://127.0.0.1:{}", ctx.options.kwok_controller_port),
                    "tlsConfig": {
                        "caBundle": pki.ca_cert(),
                        "clientCert": pki.client_cert(KUBELET_CLIENT),
                        "clientKey": pki.client_key(KUBELET_CLIENT),
                    },
                }},
            },
        }],
    })
}

/// The aggregation layer, always on (as kubeadm's): the front-proxy client the apiserver
/// proxies to aggregated API servers with, and the request-header settings those read
/// from `kube-system/extension-apiserver-authentication` to trust it.
///
/// An aggregated API server runs on the host at 127.0.0.1 and is registered through an
/// ExternalName Service; the apiserver reaches it that way only with its default
/// service routing (`--enable-aggregator-routing=true` resolves Endpoints, which may
/// not point at loopback, and refuses ExternalName Services).
fn aggregation_args(ctx: &Context<'_>) -> Vec<String> {
    let pki = ctx.dir.pki();
    vec![
        path_arg("requestheader-client-ca-file", pki.front_proxy_ca_cert()),
        format!("--requestheader-allowed-names={FRONT_PROXY_CLIENT}"),
        "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
        "--requestheader-group-headers=X-Remote-Group".into(),
        "--requestheader-username-headers=X-Remote-User".into(),
        path_arg("proxy-client-cert-file", pki.front_proxy_client_cert()),
        path_arg("proxy-client-key-file", pki.front_proxy_client_key()),
    ]
}
