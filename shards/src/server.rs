//! The controller's HTTP server: `/healthz` (metrics arrive with the shards issue).

use std::net::SocketAddr;

use axum::{Router, routing::get};

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
    #[error("failed to listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Binds `address` and serves until `shutdown` completes.
pub async fn serve(address: &str, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), Error> {
    let address: SocketAddr = address.parse().map_err(|source| Error::Address {
        address: address.to_owned(),
        source,
    })?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| Error::Bind { address, source })?;
    let app = Router::new().route("/healthz", get(|| async { "ok" }));
    tracing::info!(%address, "serving /healthz");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| Error::Bind { address, source })
}
