//! The API client: kube's stack (base URI, auth, impersonation headers) over a
//! connection that speaks HTTP/2 when the apiserver offers it, as client-go does.
//!
//! kube's default client speaks HTTP/1.1 only, so every request in flight holds a TLS
//! connection of its own: with hundreds of stage writes and lease renewals in flight,
//! kwok kept ~500 connections open, each with its read, write and TLS buffers (16 MiB of
//! live heap in a profile of the `small` shape, and churn for the allocator), and the
//! apiserver as many. Over HTTP/2 the stage writes share one connection (the watches
//! another, below).
//!
//! The apiserver limits the streams per HTTP/2 connection (`--http2-max-streams-per-connection`);
//! requests beyond that wait in the client for a stream, in order. One connection also
//! serializes everything through the apiserver's one reader and writer for it: lease
//! renewals, which need many requests per second at 10,000 nodes, stay on kube's
//! HTTP/1.1 client (`controller.rs`).
//!
//! Watches and stage writes take two clients, so two connections: the apiserver writes
//! a connection's streams in turn (Go's HTTP/2 server, one frame per stream with data
//! per round), and a watch writes one frame at a time, each waiting for the last. Behind
//! hundreds of write responses on the same connection kwok's pod watch got a frame per
//! round, fell behind the events, and the apiserver closed it as unresponsive every few
//! seconds, to replay its backlog for kwok alone on the next watch
//! (`perf/results/2026-12-07-watch-connection/`).

use std::time::Duration;

use http::{HeaderValue, header::USER_AGENT};
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
    /// `--id` holds a character a header cannot carry (a control character).
    #[error("invalid --id {0:?}: it cannot go into the User-Agent header")]
    Identity(String),
}

/// `kwok/<version> (<id>)`, the User-Agent every request of this kwok carries.
///
/// Replicas of `--scale-out` share one client certificate, so the apiserver's audit log
/// names them all by one user; its `userAgent` tells them apart (`perf/src/audit.rs`
/// reads the id back from it: keep the two in step).
pub fn user_agent(id: &str) -> Result<HeaderValue, ClientError> {
    let agent = format!("kwok/{} ({id})", env!("CARGO_PKG_VERSION"));
    HeaderValue::from_bytes(agent.as_bytes()).map_err(|_| ClientError::Identity(id.to_owned()))
}

/// Makes every client built from `config` send [`user_agent`]`(id)`: the stage writes,
/// watches, impersonating writers and the lease client alike. Per request, kube's
/// extra-headers layer clones the value: a reference count, not a new string.
pub fn identify(config: &mut Config, id: &str) -> Result<(), ClientError> {
    let agent = user_agent(id)?;
    config.headers.retain(|(name, _)| name != USER_AGENT);
    config.headers.push((USER_AGENT, agent));
    Ok(())
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

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    #[test]
    fn user_agent_should_carry_the_version_and_the_id() {
        let agent = user_agent("kwok-a-1").unwrap();
        let agent = agent.to_str().unwrap();
        assert_eq!(agent, format!("kwok/{} (kwok-a-1)", env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn user_agent_should_refuse_an_id_with_a_control_character() {
        let err = user_agent("a\nb").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid --id "a\nb": it cannot go into the User-Agent header"#
        );
    }

    /// What a client made by [`build`] and one made by kube's own builder (the lease
    /// client's) send as User-Agent to a plain HTTP server.
    #[tokio::test]
    async fn every_client_made_from_an_identified_config_should_send_the_user_agent() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut config = Config::new(url.parse().unwrap());
        identify(&mut config, "kwok-b").unwrap();
        identify(&mut config, "kwok-c").unwrap(); // the last one wins, once
        let server = tokio::spawn(async move {
            let mut agents = Vec::new();
            for _ in 0..2 {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut head = vec![0; 4096];
                let n = socket.read(&mut head).await.unwrap();
                let head = String::from_utf8_lossy(&head[..n]).to_lowercase();
                agents.push(
                    head.lines()
                        .filter_map(|l| l.strip_prefix("user-agent: "))
                        .map(str::to_owned)
                        .collect::<Vec<_>>(),
                );
                let body = "{}";
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                socket.write_all(reply.as_bytes()).await.unwrap();
            }
            agents
        });
        let want = vec![format!("kwok/{} (kwok-c)", env!("CARGO_PKG_VERSION"))];
        for client in [
            build(&config, false).unwrap(),
            Client::try_from(config.clone()).unwrap(),
        ] {
            let request = http::Request::get("/version").body(Vec::new()).unwrap();
            let _ = client.request_text(request).await;
        }
        assert_eq!(server.await.unwrap(), vec![want.clone(), want]);
    }
}
