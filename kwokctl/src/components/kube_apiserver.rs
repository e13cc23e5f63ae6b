//! kube-apiserver: secure port on loopback, RBAC, service accounts signed by the cluster key.

use std::path::Path;

use super::{Component, Context, feature_gate_args, path_arg};

pub(super) fn component(ctx: &Context<'_>, binary: &Path) -> Component {
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
    Component {
        name: "kube-apiserver".into(),
        binary: binary.into(),
        args,
        port: o.kube_apiserver_port,
        health_url: format!("https://127.0.0.1:{}/readyz", o.kube_apiserver_port),
        envs: Vec::new(),
    }
}
