//! Jaeger all-in-one (built from its pinned Go module): receives the OpenTelemetry
//! spans of kube-apiserver and kwok over OTLP/gRPC and serves them on its UI and query
//! API (`--jaeger-port`), keeping them in memory.

use std::path::Path;

use serde_json::{Value, json};

use super::{Component, ComponentSpec, Context};

/// The ports of a cluster's Jaeger.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// UI and query API (`--jaeger-port`).
    pub query: u16,
    /// OTLP/gRPC receiver the components export to.
    pub otlp_grpc: u16,
}

/// Jaeger's other listeners (collector, OTLP/HTTP, query gRPC, admin) default to fixed
/// ports; two clusters (or anything else on them) would clash, and nothing here uses
/// them, so the kernel picks free ones.
const UNUSED_LISTENERS: [&str; 5] = [
    "collector.grpc-server.host-port",
    "collector.http-server.host-port",
    "collector.otlp.http.host-port",
    "query.grpc-server.host-port",
    "admin.http.host-port",
];

pub(super) fn component(binary: &Path, ports: Ports) -> ComponentSpec {
    let mut args = vec![
        "--collector.otlp.enabled=true".to_owned(),
        format!("--query.http-server.host-port=127.0.0.1:{}", ports.query),
        format!("--collector.otlp.grpc.host-port=127.0.0.1:{}", ports.otlp_grpc),
    ];
    args.extend(
        UNUSED_LISTENERS
            .iter()
            .map(|flag| format!("--{flag}=127.0.0.1:0")),
    );
    ComponentSpec {
        name: Component::Jaeger,
        replica: 0,
        binary: binary.into(),
        args,
        port: ports.query,
        health_url: format!("http://127.0.0.1:{}/api/services", ports.query),
        image: None,
        envs: Vec::new(),
    }
}

/// The OTLP/gRPC endpoint (`host:port`) components send spans to, when Jaeger runs.
pub fn otlp_endpoint(ctx: &Context<'_>) -> Option<String> {
    let port = ctx.options.jaeger_otlp_grpc_port?;
    Some(format!("127.0.0.1:{port}"))
}

/// kube-apiserver's `--tracing-config-file`: every request traced, to `endpoint`.
pub fn apiserver_tracing_config(endpoint: &str) -> Value {
    json!({
        "apiVersion": "apiserver.config.k8s.io/v1beta1",
        "kind": "TracingConfiguration",
        "endpoint": endpoint,
        "samplingRatePerMillion": 1_000_000,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaeger_should_listen_on_its_ports_and_loopback_only() {
        let c = component(
            Path::new("/bin/jaeger"),
            Ports {
                query: 16686,
                otlp_grpc: 4317,
            },
        );
        assert!(
            c.args
                .contains(&"--query.http-server.host-port=127.0.0.1:16686".to_owned())
        );
        assert!(
            c.args
                .contains(&"--collector.otlp.grpc.host-port=127.0.0.1:4317".to_owned())
        );
        assert!(
            c.args.iter().skip(1).all(|a| a.contains("=127.0.0.1:")),
            "{:?}",
            c.args
        );
        assert_eq!(c.health_url, "http://127.0.0.1:16686/api/services");
    }
}
