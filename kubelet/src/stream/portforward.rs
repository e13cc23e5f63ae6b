//! port-forward: the portforward protocols, server side.
//!
//! Follows k8s.io/cri-streaming/pkg/streaming/portforward. Over SPDY (`httpstream.go`),
//! each forwarded connection is a pair of client streams with the same `requestID`, one
//! `streamType: error`, one `streamType: data`, both naming the `port`; one session
//! carries any number of them. Over WebSocket (`websocket.go`), the ports are in the
//! query and each has two channels, data (2i) and error (2i+1), each opened by the server
//! with the port as a little-endian u16.

use std::{collections::HashMap, fmt, time::Duration};

use http::HeaderMap;
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    time::Instant,
};

use super::{
    negotiate::{self, Negotiated, Protocols, Transport, UpgradeError},
    spdy::{self, IncomingStream, SpdyStream},
    websocket,
};

/// The SPDY subprotocol (`ProtocolV1Name`).
pub const PORT_FORWARD_V1: &str = "portforward.k8s.io";

/// What the kubelet accepts (`SupportedProtocols`; the `wsstream.NewConn` table of `websocket.go`).
pub const PROTOCOLS: Protocols = Protocols {
    spdy: &[PORT_FORWARD_V1],
    websocket: &["v4.channel.k8s.io", "v4.base64.channel.k8s.io", ""],
};

/// How long a pair may wait for its second stream (`DefaultStreamCreationTimeout`).
pub const DEFAULT_STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Stream headers (portforward `constants.go`; SPDY header names travel lowercase).
mod wire {
    pub const PORT: &str = "port";
    pub const REQUEST_ID: &str = "requestid";
    pub const STREAM_TYPE: &str = "streamtype";
}

/// A readable and writable byte stream.
pub trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Duplex for T {}

/// Chooses the transport and protocol of a port-forward upgrade; see [`negotiate::negotiate`].
///
/// # Errors
/// The response to send instead of 101.
pub fn negotiate(headers: &HeaderMap) -> Result<Negotiated, UpgradeError> {
    negotiate::negotiate(headers, PROTOCOLS)
}

/// A port list the kubelet refuses (it answers 400).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PortsError {
    /// No `port` parameter.
    #[error("query parameter \"port\" is required")]
    Missing,
    /// A value that is not a port in 1..=65535.
    #[error("unable to parse {0:?} as a port")]
    Invalid(String),
}

/// The ports of a WebSocket port-forward: every `port` parameter, each comma-separated
/// (`NewV4Options`). SPDY requests name ports per stream instead and need none.
///
/// # Errors
/// [`PortsError`] as the kubelet's 400.
pub fn ports_from_query(query: &str) -> Result<Vec<u16>, PortsError> {
    let values: Vec<&str> = query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .filter(|(key, _)| *key == wire::PORT)
        .map(|(_, value)| value)
        .collect();
    if values.is_empty() {
        return Err(PortsError::Missing);
    }
    values
        .iter()
        .flat_map(|value| value.split(','))
        .map(|p| parse_port(p).ok_or_else(|| PortsError::Invalid(p.to_owned())))
        .collect()
}

fn parse_port(s: &str) -> Option<u16> {
    s.parse::<u16>().ok().filter(|p| *p > 0)
}

/// One forwarded connection: bytes to and from `port` of the pod.
pub struct ForwardedPort {
    /// The pod port.
    pub port: u16,
    /// The client's id of this connection (SPDY), or the port's index (WebSocket).
    pub request_id: String,
    /// The connection's bytes; dropping or shutting it down ends the client's copy.
    pub stream: Box<dyn Duplex>,
    /// Where to say that forwarding failed.
    pub error: ErrorReporter,
}

impl fmt::Debug for ForwardedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardedPort")
            .field("port", &self.port)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

/// The error stream of a forwarded connection. Dropping it ends the stream with no
/// error, which kubectl takes as success.
pub struct ErrorReporter(Box<dyn AsyncWrite + Send + Unpin>);

impl ErrorReporter {
    /// Sends `message` (kubectl prints "an error occurred forwarding L -> R: message")
    /// and ends the error stream.
    ///
    /// # Errors
    /// The connection is gone.
    pub async fn report(mut self, message: &str) -> std::io::Result<()> {
        self.0.write_all(message.as_bytes()).await?;
        self.0.shutdown().await
    }
}

impl fmt::Debug for ErrorReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ErrorReporter")
    }
}

/// The forwarded connections of one port-forward session, in the order they complete.
///
/// Keep it alive while its ports are in use: dropping it ends the session.
pub struct PortForwards(Inner);

enum Inner {
    Spdy(SpdyPairs),
    WebSocket {
        connection: websocket::Connection,
        ready: std::vec::IntoIter<ForwardedPort>,
    },
}

impl fmt::Debug for PortForwards {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PortForwards")
    }
}

/// Takes over `io`, the upgraded connection of a request that `negotiated` answered with
/// 101. `ports` is used by WebSocket only ([`ports_from_query`]); `timeout` bounds the
/// wait for a SPDY pair's second stream.
pub async fn accept<IO>(io: IO, negotiated: &Negotiated, ports: &[u16], timeout: Duration) -> PortForwards
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    match negotiated.transport {
        Transport::Spdy => PortForwards(Inner::Spdy(SpdyPairs {
            connection: spdy::Connection::server(io),
            pairs: HashMap::new(),
            timeout,
        })),
        Transport::WebSocket { base64 } => {
            let mut connection = websocket::Connection::server(io, base64, false, ports.len() * 2);
            let mut ready = Vec::with_capacity(ports.len());
            for (i, port) in ports.iter().enumerate() {
                let (data_n, error_n) = ((2 * i) as u8, (2 * i + 1) as u8);
                connection.send(data_n, &port.to_le_bytes()).await;
                connection.send(error_n, &port.to_le_bytes()).await;
                let (Some(data), Some(error)) = (connection.channel(data_n), connection.channel(error_n))
                else {
                    continue;
                };
                ready.push(ForwardedPort {
                    port: *port,
                    request_id: i.to_string(),
                    stream: Box::new(data),
                    error: ErrorReporter(Box::new(error)),
                });
            }
            PortForwards(Inner::WebSocket {
                connection,
                ready: ready.into_iter(),
            })
        }
    }
}

impl PortForwards {
    /// The next forwarded connection, or `None` when the client is gone.
    ///
    /// Over WebSocket all ports are ready at once; after the last, this waits for the
    /// client to close the session.
    pub async fn next(&mut self) -> Option<ForwardedPort> {
        match &mut self.0 {
            Inner::Spdy(pairs) => pairs.next().await,
            Inner::WebSocket { connection, ready } => match ready.next() {
                Some(port) => Some(port),
                None => {
                    connection.closed().await;
                    None
                }
            },
        }
    }

    /// Ends the session (GOAWAY or a close frame after what is queued).
    pub async fn close(self) {
        match self.0 {
            Inner::Spdy(pairs) => pairs.connection.close().await,
            Inner::WebSocket { connection, .. } => connection.close().await,
        }
    }
}

/// Half-received pairs (kube's `httpStreamPair`).
#[derive(Default)]
struct Pair {
    data: Option<SpdyStream>,
    error: Option<SpdyStream>,
    deadline: Option<Instant>,
}

struct SpdyPairs {
    connection: spdy::Connection,
    pairs: HashMap<String, Pair>,
    timeout: Duration,
}

enum StreamKind {
    Data,
    Error,
}

impl SpdyPairs {
    async fn next(&mut self) -> Option<ForwardedPort> {
        loop {
            let deadline = self.pairs.values().filter_map(|p| p.deadline).min();
            let expire = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                incoming = self.connection.next_stream() => {
                    if let Some(port) = self.add(incoming?).await {
                        return Some(port);
                    }
                }
                () = expire => self.expire().await,
            }
        }
    }

    /// Validates, accepts and pairs one stream (kube's `httpStreamReceived` then `run`).
    async fn add(&mut self, incoming: IncomingStream) -> Option<ForwardedPort> {
        let (port, kind) = match classify(incoming.headers()) {
            Ok(found) => found,
            Err(reason) => {
                tracing::warn!(stream = incoming.id(), reason, "port-forward stream rejected");
                incoming.reject().await;
                return None;
            }
        };
        let request_id = request_id(incoming.headers(), incoming.id(), &kind);
        let stream = incoming.accept().await.ok()?;
        let timeout = self.timeout;
        let pair = self.pairs.entry(request_id.clone()).or_insert_with(|| Pair {
            deadline: Some(Instant::now() + timeout),
            ..Pair::default()
        });
        let slot = match kind {
            StreamKind::Data => &mut pair.data,
            StreamKind::Error => &mut pair.error,
        };
        if slot.is_some() {
            let message =
                format!("error processing stream for request {request_id}: stream already assigned");
            print_error(pair, &message).await;
            return None;
        }
        *slot = Some(stream);
        if pair.data.is_none() || pair.error.is_none() {
            return None;
        }
        let pair = self.pairs.remove(&request_id)?;
        Some(ForwardedPort {
            port,
            request_id,
            stream: Box::new(pair.data?),
            error: ErrorReporter(Box::new(pair.error?)),
        })
    }

    /// Drops pairs whose second stream did not come in time (kube's `monitorStreamPair`).
    async fn expire(&mut self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .pairs
            .iter()
            .filter(|(_, p)| p.deadline.is_some_and(|at| at <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(mut pair) = self.pairs.remove(&id) {
                let message = format!("request {id}: timed out waiting for streams");
                tracing::warn!(request_id = %id, "port-forward: timed out waiting for streams");
                print_error(&mut pair, &message).await;
            }
        }
    }
}

async fn print_error(pair: &mut Pair, message: &str) {
    if let Some(error) = pair.error.as_mut() {
        let _ = error.write_all(message.as_bytes()).await;
    }
}

/// The port and stream type of a stream, or why it is refused (`httpStreamReceived`).
fn classify(headers: &HeaderMap) -> Result<(u16, StreamKind), &'static str> {
    let port = headers.get(wire::PORT).ok_or("\"port\" header is required")?;
    let port = port.to_str().ok().and_then(parse_port).ok_or("invalid port")?;
    let kind = match headers.get(wire::STREAM_TYPE).map(|v| v.as_bytes()) {
        None => return Err("\"streamType\" header is required"),
        Some(b"data") => StreamKind::Data,
        Some(b"error") => StreamKind::Error,
        Some(_) => return Err("invalid stream type"),
    };
    Ok((port, kind))
}

/// The `requestID` header, or for old clients without one a guess from the stream id:
/// error and data streams of one connection are opened back to back (`requestID`).
fn request_id(headers: &HeaderMap, stream_id: u32, kind: &StreamKind) -> String {
    if let Some(id) = headers.get(wire::REQUEST_ID).and_then(|v| v.to_str().ok()) {
        return id.to_owned();
    }
    match kind {
        StreamKind::Error => stream_id.to_string(),
        StreamKind::Data => (i64::from(stream_id) - 2).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_every_port_parameter() {
        assert_eq!(
            ports_from_query("port=80,443&port=8080").unwrap(),
            [80, 443, 8080]
        );
        assert!(matches!(ports_from_query("x=1"), Err(PortsError::Missing)));
        assert!(matches!(ports_from_query("port=0"), Err(PortsError::Invalid(_))));
        assert!(matches!(ports_from_query("port="), Err(PortsError::Invalid(_))));
    }
}
