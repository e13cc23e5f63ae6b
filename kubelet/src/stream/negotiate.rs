//! The HTTP upgrade of a streaming request: which transport and subprotocol, and the 101.
//!
//! SPDY requests name their subprotocols in `X-Stream-Protocol-Version`
//! (k8s.io/streaming/pkg/httpstream/httpstream.go `Handshake`); WebSocket requests in
//! `Sec-WebSocket-Protocol` (golang.org/x/net/websocket as wrapped by
//! k8s.io/streaming/pkg/httpstream/wsstream/conn.go). In both, the client's order wins:
//! the first protocol it lists that the server knows is chosen.

use base64::Engine as _;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

/// The request header listing the client's SPDY subprotocols (`HeaderProtocolVersion`).
pub const STREAM_PROTOCOL_VERSION: &str = "x-stream-protocol-version";
/// The error response header listing ours (`HeaderAcceptedProtocolVersions`).
pub const ACCEPTED_STREAM_PROTOCOL_VERSIONS: &str = "x-accepted-stream-protocol-versions";
/// The `Upgrade` token of SPDY (k8s.io/streaming/pkg/httpstream/spdy/upgrade.go `HeaderSpdy31`).
pub const SPDY_31: &str = "SPDY/3.1";
/// RFC 6455 §1.3: appended to the client's key before hashing it into the accept value.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The transport a request upgrades to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// SPDY/3.1 streams.
    Spdy,
    /// WebSocket messages prefixed by a channel byte; `base64` for the
    /// `base64.channel.k8s.io` family (text frames, channel as an ASCII digit).
    WebSocket {
        /// Text frames with base64 payloads.
        base64: bool,
    },
}

/// The outcome of a successful handshake.
#[derive(Debug, Clone)]
pub struct Negotiated {
    /// The transport.
    pub transport: Transport,
    /// The chosen subprotocol; empty for a WebSocket client that named none.
    pub protocol: String,
    /// The 101 Switching Protocols response to send before taking over the connection.
    pub response: Response<()>,
}

/// A request that cannot be upgraded; [`UpgradeError::into_response`] is what the kubelet answers.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unable to upgrade: {message}")]
pub struct UpgradeError {
    /// 400 for a malformed request, 403 for no common protocol.
    pub status: StatusCode,
    /// What went wrong.
    pub message: String,
    /// Our protocols, sent back in `X-Accepted-Stream-Protocol-Versions` on a SPDY 403.
    pub accepted: Vec<&'static str>,
}

impl UpgradeError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            accepted: Vec::new(),
        }
    }

    /// A plain-text error response, as Go's `http.Error`.
    pub fn into_response(self) -> Response<String> {
        let mut response = Response::new(format!("{self}\n"));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        for protocol in self.accepted {
            headers.append(
                ACCEPTED_STREAM_PROTOCOL_VERSIONS,
                HeaderValue::from_static(protocol),
            );
        }
        response
    }
}

/// The subprotocols a handler speaks on each transport.
#[derive(Debug, Clone, Copy)]
pub struct Protocols {
    /// SPDY subprotocols, e.g. `v4.channel.k8s.io`.
    pub spdy: &'static [&'static str],
    /// WebSocket subprotocols; `""` accepts a client that names none.
    pub websocket: &'static [&'static str],
}

/// Chooses transport and subprotocol for an upgrade request, as the kubelet does: a
/// WebSocket request (`Upgrade: websocket`) goes to the WebSocket path, anything else to SPDY.
///
/// # Errors
/// The response the kubelet would send instead of 101.
pub fn negotiate(headers: &HeaderMap, protocols: Protocols) -> Result<Negotiated, UpgradeError> {
    if is_websocket(headers) {
        negotiate_websocket(headers, protocols.websocket)
    } else {
        negotiate_spdy(headers, protocols.spdy)
    }
}

/// `Upgrade: websocket` with `Connection` naming `upgrade` (wsstream `IsWebSocketRequest`).
pub fn is_websocket(headers: &HeaderMap) -> bool {
    let upgrade = headers.get(header::UPGRADE).and_then(|v| v.to_str().ok());
    upgrade.is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket")) && connection_upgrade(headers)
}

fn connection_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("upgrade"))
}

/// Comma-separated values of every instance of `name`, trimmed, empty ones dropped
/// (httpstream `commaSeparatedHeaderValues`).
fn listed(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

fn negotiate_spdy(headers: &HeaderMap, ours: &'static [&'static str]) -> Result<Negotiated, UpgradeError> {
    if !headers.contains_key(STREAM_PROTOCOL_VERSION) {
        return Err(UpgradeError::bad_request(format!(
            "header {STREAM_PROTOCOL_VERSION} does not exist in request"
        )));
    }
    let theirs = listed(headers, STREAM_PROTOCOL_VERSION);
    if theirs.is_empty() {
        return Err(UpgradeError::bad_request(format!(
            "header {STREAM_PROTOCOL_VERSION} contains no valid protocols"
        )));
    }
    let Some(protocol) = theirs.iter().find(|p| ours.contains(&p.as_str())) else {
        return Err(UpgradeError {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "unable to negotiate protocol: client supports {theirs:?}, server accepts {ours:?}"
            ),
            accepted: ours.to_vec(),
        });
    };
    // spdy/upgrade.go `UpgradeResponse` checks these after the protocol.
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !connection_upgrade(headers) || !upgrade.to_ascii_lowercase().contains("spdy/3.1") {
        return Err(UpgradeError::bad_request("missing upgrade headers in request"));
    }
    let response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(STREAM_PROTOCOL_VERSION, protocol.as_str())
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, SPDY_31)
        .body(())
        .map_err(|e| UpgradeError::bad_request(e.to_string()))?;
    Ok(Negotiated {
        transport: Transport::Spdy,
        protocol: protocol.clone(),
        response,
    })
}

fn negotiate_websocket(
    headers: &HeaderMap,
    ours: &'static [&'static str],
) -> Result<Negotiated, UpgradeError> {
    let version = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes);
    if version != Some(b"13") {
        return Err(UpgradeError::bad_request("Sec-WebSocket-Version must be 13"));
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Err(UpgradeError::bad_request("missing Sec-WebSocket-Key"));
    };
    let mut theirs = listed(headers, header::SEC_WEBSOCKET_PROTOCOL.as_str());
    if theirs.is_empty() {
        theirs.push(String::new());
    }
    let Some(protocol) = theirs.iter().find(|p| ours.contains(&p.as_str())) else {
        // x/net/websocket answers a failed Handshake with 403.
        return Err(UpgradeError {
            status: StatusCode::FORBIDDEN,
            message: format!("requested protocol(s) are not supported: {theirs:?}; supports {ours:?}"),
            accepted: Vec::new(),
        });
    };
    let mut response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, websocket_accept(key.as_bytes()));
    if !protocol.is_empty() {
        response = response.header(header::SEC_WEBSOCKET_PROTOCOL, protocol.as_str());
    }
    let response = response
        .body(())
        .map_err(|e| UpgradeError::bad_request(e.to_string()))?;
    Ok(Negotiated {
        transport: Transport::WebSocket {
            base64: protocol.contains("base64."),
        },
        protocol: protocol.clone(),
        response,
    })
}

/// `base64(SHA-1(key + GUID))` (RFC 6455 §4.2.2).
pub fn websocket_accept(key: &[u8]) -> String {
    let mut input = key.to_vec();
    input.extend_from_slice(WEBSOCKET_GUID.as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXEC: Protocols = Protocols {
        spdy: &[
            "v4.channel.k8s.io",
            "v3.channel.k8s.io",
            "v2.channel.k8s.io",
            "channel.k8s.io",
        ],
        websocket: &["", "channel.k8s.io", "base64.channel.k8s.io", "v4.channel.k8s.io"],
    };

    fn request(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn spdy_takes_the_clients_first_known_protocol() {
        // client-go sends one header per protocol, newest first (spdy.go Negotiate).
        let headers = request(&[
            ("Connection", "Upgrade"),
            ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", "v5.channel.k8s.io"),
            (
                "X-Stream-Protocol-Version",
                "v4.channel.k8s.io, v3.channel.k8s.io",
            ),
        ]);
        let got = negotiate(&headers, EXEC).unwrap();
        assert_eq!(got.transport, Transport::Spdy);
        assert_eq!(got.protocol, "v4.channel.k8s.io");
        assert_eq!(got.response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            got.response.headers()["x-stream-protocol-version"],
            "v4.channel.k8s.io"
        );
        assert_eq!(got.response.headers()["upgrade"], "SPDY/3.1");
    }

    #[test]
    fn spdy_without_common_protocol_is_403_with_ours() {
        let headers = request(&[
            ("Connection", "Upgrade"),
            ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", "v9.channel.k8s.io"),
        ]);
        let err = negotiate(&headers, EXEC).unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        let response = err.into_response();
        assert_eq!(
            response
                .headers()
                .get_all(ACCEPTED_STREAM_PROTOCOL_VERSIONS)
                .iter()
                .count(),
            4
        );
    }

    #[test]
    fn spdy_without_protocol_header_is_400() {
        let headers = request(&[("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")]);
        assert_eq!(
            negotiate(&headers, EXEC).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn websocket_accept_matches_rfc_6455_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            websocket_accept(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn websocket_picks_protocol_and_codec() {
        let base = [
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        let mut with = base.to_vec();
        with.push((
            "Sec-WebSocket-Protocol",
            "v5.channel.k8s.io, base64.channel.k8s.io",
        ));
        let got = negotiate(&request(&with), EXEC).unwrap();
        assert_eq!(got.transport, Transport::WebSocket { base64: true });
        assert_eq!(
            got.response.headers()["sec-websocket-protocol"],
            "base64.channel.k8s.io"
        );
        // No protocol named: the "" entry, binary, and no protocol header in the answer.
        let got = negotiate(&request(&base), EXEC).unwrap();
        assert_eq!(got.transport, Transport::WebSocket { base64: false });
        assert!(!got.response.headers().contains_key("sec-websocket-protocol"));
    }
}
