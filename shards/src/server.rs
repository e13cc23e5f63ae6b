//! The controller's HTTP server: `/healthz` and `/livez`, `/readyz` (ready once the first lists
//! are in), `/metrics` (OpenMetrics text) and, when enabled, `/debug/pprof/*`; HTTPS when
//! given a certificate.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    Router,
    extract::{State, connect_info::Connected},
    http::StatusCode,
    response::IntoResponse,
    routing::get,
    serve::IncomingStream,
};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::{profiling::Peer, tls::TlsListener};

/// Errors of the HTTP server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address does not parse.
    #[error("invalid --server-address {address:?}: {source}")]
    Address {
        /// What was given.
        address: String,
        /// Why it does not parse.
        #[source]
        source: std::net::AddrParseError,
    },
    /// The address cannot be bound.
    #[error("failed to listen on --server-address {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// What the handlers read.
#[derive(Clone)]
pub struct ServerState {
    /// Metrics registry.
    pub registry: Arc<Registry>,
    /// Set once every watch has listed.
    pub ready: Arc<AtomicBool>,
    /// The kubelet API of the managed nodes.
    pub kubelet: Arc<crate::kubelet_api::KubeletApi>,
}

/// What the server serves beyond its fixed routes.
pub struct Options {
    /// HTTPS with this configuration ([`crate::tls::load`]); plain HTTP is served on
    /// the same port too.
    pub tls: TlsAcceptor,
    /// Whether the certificate is kwok's own (no `--tls-cert-file`), for the log.
    pub self_signed: bool,
    /// Every route but the health checks needs a verified client certificate
    /// (`--client-ca-file`).
    pub client_auth: bool,
    /// `/debug/pprof/*` (`enableProfilingHandler`).
    pub profiling: bool,
}

/// A bound server, not yet serving.
pub struct Server {
    listener: TcpListener,
    options: Options,
}

/// Binds `address` (so a clash is reported before anything else starts).
pub async fn bind(address: &str, options: Options) -> Result<Server, Error> {
    let address: SocketAddr = address.parse().map_err(|source| Error::Address {
        address: address.to_owned(),
        source,
    })?;
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| Error::Bind { address, source })?;
    Ok(Server { listener, options })
}

/// Serves `server` until `shutdown` completes.
pub async fn serve(
    server: Server,
    state: ServerState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Server { listener, options } = server;
    let own = listener.local_addr()?;
    let mut guarded = Router::new()
        .route("/metrics", get(metrics))
        .merge(crate::profiling::routes(options.profiling))
        .merge(state.kubelet.clone().routes())
        // CONNECT's authority-form target matches no path.
        .fallback(move |request| crate::connect_proxy::handle(request, own));
    if options.client_auth {
        guarded = guarded.layer(axum::middleware::from_fn(require_client_certificate));
    }
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .merge(guarded)
        .with_state(state);
    let app = app.into_make_service_with_connect_info::<Peer>();
    let address = Some(own);
    let profiling = options.profiling;
    // Both HTTPS and plain HTTP on the one port, as upstream's server.
    let (acceptor, self_signed) = (options.tls, options.self_signed);
    tracing::info!(
        ?address,
        profiling,
        self_signed,
        "serving /healthz, /livez, /readyz, /metrics and the kubelet API over HTTPS and HTTP"
    );
    let listener = TlsListener::new(listener, acceptor)?;
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Self {
            addr: *stream.remote_addr(),
            client_verified: crate::tls::client_verified(stream.io()),
            tls: matches!(stream.io(), tokio_util::either::Either::Left(_)),
        }
    }
}

/// Refuses a request whose connection presented no verified client certificate, as the
/// kubelet's x509 authentication does (`Unauthorized`).
async fn require_client_certificate(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match request.extensions().get::<axum::extract::ConnectInfo<Peer>>() {
        Some(axum::extract::ConnectInfo(Peer {
            client_verified: true,
            ..
        })) => next.run(request).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            "Unauthorized: a client certificate signed by --client-ca-file is required\n",
        )
            .into_response(),
    }
}

async fn readyz(State(state): State<ServerState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: initial lists in progress",
        )
    }
}

async fn metrics(State(state): State<ServerState>) -> impl IntoResponse {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain")],
            String::new(),
        ),
    }
}
