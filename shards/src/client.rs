//! The API client: kube's stack (base URI, auth, impersonation headers) over a
//! connection that speaks HTTP/2 when the apiserver offers it, as client-go does.
//!
//! kube's default client speaks HTTP/1.1 only, so every request in flight holds a TLS
//! connection of its own: with hundreds of stage writes and lease renewals in flight,
//! kwok kept ~500 connections open, each with its read, write and TLS buffers (16 MiB of
//! live heap in a profile of the `small` shape, and churn for the allocator), and the
//! apiserver as many. Over HTTP/2 they share one connection.
//!
//! The apiserver limits the streams per HTTP/2 connection (`--http2-max-streams-per-connection`);
//! requests beyond that wait in the client for a stream, in order. One connection also
//! serializes everything through the apiserver's one reader and writer for it: lease
//! renewals, which need many requests per second at 10,000 nodes, stay on kube's
//! HTTP/1.1 client (`controller.rs`).

use std::time::Duration;

use hyper_rustls::{FixedServerNameResolver, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client as HyperClient, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use kube::{Client, Config, client::ConfigExt};
use tower::{BoxError, ServiceBuilder};

/// How often an idle HTTP/2 connection is pinged, and how long a ping may go
/// unanswered before the connection counts as dead (an apiserver gone without a reset).
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// kube refused the config (credentials, certificates).
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The kubeconfig's `tls-server-name` is not a DNS name or IP address.
    #[error("invalid tls-server-name {0:?} in the kubeconfig")]
    ServerName(String),
}

/// A client for `config`: HTTP/2 over TLS when the server negotiates it, HTTP/1.1
/// otherwise (a plain `http://` server, or one without h2). With `traced`, requests carry
/// the current span's `traceparent` ([`crate::otel::inject`]).
pub fn build(config: &Config, traced: bool) -> Result<Client, ClientError> {
    let tls = config.rustls_client_config()?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let mut https = HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = name
            .clone()
            .try_into()
            .map_err(|_| ClientError::ServerName(name.clone()))?;
        https = https.with_server_name_resolver(FixedServerNameResolver::new(name));
    }
    let connector = https.enable_all_versions().wrap_connector(http);
    let transport = HyperClient::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .http2_keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        // Watches sit idle between events: keep pinging while they are open.
        .http2_keep_alive_while_idle(true)
        .build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .option_layer(traced.then(|| tower::util::MapRequestLayer::new(crate::otel::inject)))
        .map_err(BoxError::from)
        .service(transport);
    Ok(Client::new(service, config.default_namespace.clone()))
}
