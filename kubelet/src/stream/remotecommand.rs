//! exec and attach: the remotecommand protocols, server side.
//!
//! Follows k8s.io/cri-streaming/pkg/streaming/remotecommand (`httpstream.go` for SPDY,
//! `websocket.go` for WebSocket, `exec.go` and `status.go` for the final status): the
//! client opens one stream per standard stream plus an error stream and, with a TTY, a
//! resize stream; the server reports how the command ended on the error stream.

use std::{fmt, time::Duration};

use http::HeaderMap;
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::watch,
};

use super::{
    negotiate::{self, Negotiated, Protocols, Transport, UpgradeError},
    spdy::{self, SpdyStream},
    websocket,
};

/// Stream type headers and channel numbers (remotecommand `constants.go`).
pub mod wire {
    /// The SPDY stream header saying what a stream carries.
    pub const STREAM_TYPE: &str = "streamtype";
    /// The command's standard input.
    pub const STDIN: &str = "stdin";
    /// The command's standard output.
    pub const STDOUT: &str = "stdout";
    /// The command's standard error.
    pub const STDERR: &str = "stderr";
    /// The final status.
    pub const ERROR: &str = "error";
    /// Terminal sizes, JSON.
    pub const RESIZE: &str = "resize";
}

/// `v4.channel.k8s.io`: the error stream carries a JSON `metav1.Status` with the exit code.
pub const V4: &str = "v4.channel.k8s.io";
/// `v5.channel.k8s.io`: v4 plus the WebSocket close signal (channel 255).
pub const V5: &str = "v5.channel.k8s.io";

/// What the kubelet accepts for exec and attach (`SupportedStreamingProtocols` for SPDY;
/// the `wsstream.NewConn` table of `websocket.go` for WebSocket).
///
/// `v5.channel.k8s.io` is ours on top: the kubelet leaves it to the apiserver, which then
/// speaks SPDY to the kubelet. Offering it means a kubectl that reaches us directly over
/// WebSocket can half-close stdin, which v4 has no way to say.
pub const PROTOCOLS: Protocols = Protocols {
    spdy: &[V4, "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"],
    websocket: &[
        V5,
        V4,
        "v4.base64.channel.k8s.io",
        "channel.k8s.io",
        "base64.channel.k8s.io",
        "",
    ],
};

/// How long the client has to open its streams (`DefaultStreamCreationTimeout`).
pub const DEFAULT_STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// A readable stream of the client (stdin).
pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
/// A writable stream to the client (stdout, stderr).
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Which streams a request asks for, from its query (remotecommand `NewOptions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// `input=1`.
    pub stdin: bool,
    /// `output=1`.
    pub stdout: bool,
    /// `error=1`; always false with a TTY, whose output is one stream.
    pub stderr: bool,
    /// `tty=1`.
    pub tty: bool,
}

/// A request that asks for no stream at all.
#[derive(Debug, Clone, thiserror::Error)]
#[error("you must specify at least 1 of stdin, stdout, stderr")]
pub struct NoStreamsRequested;

impl ExecOptions {
    /// Reads `input`, `output`, `error` and `tty` from a URL query (`a=1&b=2`, no `?`);
    /// a flag is on only when its value is `1`, as Go's `req.FormValue(..) == "1"`.
    ///
    /// # Errors
    /// [`NoStreamsRequested`] when neither stdin, stdout nor stderr is on; the kubelet
    /// answers such a request with 400.
    pub fn from_query(query: &str) -> Result<Self, NoStreamsRequested> {
        let flag = |name: &str| {
            // FormValue takes the first value of a repeated key.
            let value = query.split('&').find_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (key == name).then_some(value)
            });
            value == Some("1")
        };
        let tty = flag("tty");
        let options = Self {
            stdin: flag("input"),
            stdout: flag("output"),
            // The kubelet drops stderr with a TTY rather than failing.
            stderr: flag("error") && !tty,
            tty,
        };
        if !options.stdin && !options.stdout && !options.stderr {
            return Err(NoStreamsRequested);
        }
        Ok(options)
    }
}

/// Chooses the transport and protocol of an exec or attach upgrade; see [`negotiate::negotiate`].
///
/// # Errors
/// The response to send instead of 101.
pub fn negotiate(headers: &HeaderMap) -> Result<Negotiated, UpgradeError> {
    negotiate::negotiate(headers, PROTOCOLS)
}

/// A terminal size, as client-go's `remotecommand.TerminalSize` encodes it (no JSON tags,
/// so the keys are `Width` and `Height`; Go's decoder also takes them lowercase).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    /// Columns.
    #[serde(rename = "Width", alias = "width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height", alias = "height")]
    pub height: u16,
}

/// Terminal resizes of a TTY session; only the latest size is kept, so a caller that
/// never looks does not hold the session back.
#[derive(Debug)]
pub struct ResizeEvents(watch::Receiver<Option<TerminalSize>>);

impl ResizeEvents {
    /// The next size the client sent, or `None` once it stops sending.
    pub async fn next(&mut self) -> Option<TerminalSize> {
        self.0.changed().await.ok()?;
        *self.0.borrow_and_update()
    }
}

/// How the command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exit code 0.
    Success,
    /// A non-zero exit code: kubectl exits with it (v4+ only; older protocols get text).
    /// client-go parses the code as 8 bits, hence `u8`.
    Code(u8),
    /// The command could not run: shown to the user as an internal error.
    Error(String),
}

/// The streams of an accepted exec or attach, for the caller to run the fake command on.
///
/// Drop (or shut down) stdout and stderr when the command's output ends, then report
/// with [`StatusWriter::finish`]; a stream left unread (e.g. stdin) may be dropped early.
pub struct CommandStreams {
    /// The client's input, if it asked for stdin.
    pub stdin: Option<Reader>,
    /// Output, if asked for.
    pub stdout: Option<Writer>,
    /// Error output, if asked for and no TTY.
    pub stderr: Option<Writer>,
    /// Resizes of the client's terminal, with a TTY and a protocol that has them.
    pub resize: Option<ResizeEvents>,
    /// Whether the client asked for a TTY.
    pub tty: bool,
    /// The way to end the session.
    pub status: StatusWriter,
}

impl fmt::Debug for CommandStreams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandStreams")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("resize", &self.resize.is_some())
            .field("tty", &self.tty)
            .finish_non_exhaustive()
    }
}

/// Ends a session by writing its status on the error stream and closing the connection.
pub struct StatusWriter {
    error: Writer,
    /// v4 and later send a JSON `Status`; older ones a message on failure only.
    json: bool,
    /// Ends the connection once the status is out.
    close: Closer,
}

/// What keeps the connection alive until [`StatusWriter::finish`].
pub(crate) enum Closer {
    /// A SPDY session: GOAWAY after the status.
    Spdy(spdy::Connection),
    /// A WebSocket session: a close frame after the status.
    WebSocket(websocket::Connection),
}

impl Closer {
    pub(crate) async fn close(self) {
        match self {
            Self::Spdy(connection) => connection.close().await,
            Self::WebSocket(connection) => connection.close().await,
        }
    }
}

/// A session that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The client did not open its streams in time (the kubelet logs this and closes).
    #[error("timed out waiting for client to create streams ({0:?})")]
    Timeout(Duration),
    /// The connection ended before all streams were opened.
    #[error("connection closed while waiting for streams")]
    Closed,
    /// The SPDY session failed.
    #[error("SPDY session: {0}")]
    Spdy(#[from] spdy::SessionError),
    /// The WebSocket session failed.
    #[error("WebSocket session: {0}")]
    WebSocket(#[from] websocket::WebSocketError),
    /// The status could not be written.
    #[error("writing the exit status: {0}")]
    Status(#[from] std::io::Error),
}

/// Takes over `io`, the upgraded connection of a request that `negotiated` answered with
/// 101, and waits up to `timeout` for the client's streams.
///
/// # Errors
/// A timeout or a broken connection; the connection is closed then.
pub async fn accept<IO>(
    io: IO,
    negotiated: &Negotiated,
    options: ExecOptions,
    timeout: Duration,
) -> Result<CommandStreams, CommandError>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    match negotiated.transport {
        Transport::Spdy => {
            accept_spdy(
                spdy::Connection::server(io),
                &negotiated.protocol,
                options,
                timeout,
            )
            .await
        }
        Transport::WebSocket { base64 } => {
            let protocol = negotiated.protocol.as_str();
            let close_signal = protocol == V5;
            let connection = websocket::Connection::server(io, base64, close_signal, 5);
            Ok(websocket_streams(connection, protocol, options).await)
        }
    }
}

/// Streams received so far, by type (kube's `connectionContext`).
#[derive(Default)]
struct Received {
    stdin: Option<SpdyStream>,
    stdout: Option<SpdyStream>,
    stderr: Option<SpdyStream>,
    error: Option<SpdyStream>,
    resize: Option<SpdyStream>,
    count: usize,
}

impl Received {
    fn take(&mut self, stream: SpdyStream, resizable: bool) {
        let kind = stream
            .headers()
            .get(wire::STREAM_TYPE)
            .and_then(|v| v.to_str().ok());
        let slot = match kind.unwrap_or_default() {
            wire::STDIN => &mut self.stdin,
            wire::STDOUT => &mut self.stdout,
            wire::STDERR => &mut self.stderr,
            wire::ERROR => &mut self.error,
            wire::RESIZE if resizable => &mut self.resize,
            other => return tracing::warn!(kind = other, "unexpected remotecommand stream type"),
        };
        *slot = Some(stream);
        self.count += 1;
    }
}

async fn accept_spdy(
    mut connection: spdy::Connection,
    protocol: &str,
    options: ExecOptions,
    timeout: Duration,
) -> Result<CommandStreams, CommandError> {
    // Resize arrived with v3; JSON status with v4 (httpstream.go's protocol handlers).
    let resizable = !matches!(protocol, "v2.channel.k8s.io" | "channel.k8s.io" | "");
    let expected = 1
        + usize::from(options.stdin)
        + usize::from(options.stdout)
        + usize::from(options.stderr)
        + usize::from(options.tty && resizable);
    let mut received = Received::default();
    let wait = async {
        while received.count < expected {
            let incoming = connection.next_stream().await.ok_or(CommandError::Closed)?;
            received.take(incoming.accept().await?, resizable);
        }
        Ok::<_, CommandError>(())
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(result) => result?,
        Err(_) => {
            connection.close().await;
            return Err(CommandError::Timeout(timeout));
        }
    }
    let Some(error) = received.error else {
        // Counted streams are all there, but two of one type replaced each other.
        connection.close().await;
        return Err(CommandError::Closed);
    };
    Ok(CommandStreams {
        stdin: received.stdin.map(|s| Box::new(s) as Reader),
        stdout: received.stdout.map(|s| Box::new(s) as Writer),
        stderr: received.stderr.map(|s| Box::new(s) as Writer),
        resize: received.resize.map(resize_events),
        tty: options.tty,
        status: StatusWriter {
            error: Box::new(error),
            json: protocol == V4,
            close: Closer::Spdy(connection),
        },
    })
}

async fn websocket_streams(
    mut connection: websocket::Connection,
    protocol: &str,
    options: ExecOptions,
) -> CommandStreams {
    use websocket::channel;
    // The kubelet sends an empty message on the lowest channel it writes, to tell the
    // client the connection is ready (websocket.go `createWebSocketStreams`).
    let first = if options.stdout {
        channel::STDOUT
    } else if options.stderr {
        channel::STDERR
    } else {
        channel::ERROR
    };
    connection.send(first, &[]).await;
    let mut take = |n: u8, wanted: bool| connection.channel(n).filter(|_| wanted);
    let stdin = take(channel::STDIN, options.stdin);
    let stdout = take(channel::STDOUT, options.stdout);
    let stderr = take(channel::STDERR, options.stderr);
    let resize = take(channel::RESIZE, options.tty);
    let error = take(channel::ERROR, true).expect("the error channel exists");
    CommandStreams {
        stdin: stdin.map(|s| Box::new(s) as Reader),
        stdout: stdout.map(|s| Box::new(s) as Writer),
        stderr: stderr.map(|s| Box::new(s) as Writer),
        resize: resize.map(resize_events),
        tty: options.tty,
        status: StatusWriter {
            error: Box::new(error),
            json: matches!(protocol, V4 | V5 | "v4.base64.channel.k8s.io"),
            close: Closer::WebSocket(connection),
        },
    }
}

/// Decodes the resize stream's concatenated JSON objects (Go's `json.Decoder` loop in
/// `handleResizeEvents`) into a watch channel, until the stream or the receiver ends.
fn resize_events<R: AsyncRead + Send + Unpin + 'static>(mut stream: R) -> ResizeEvents {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let mut buf = Vec::with_capacity(256);
        while matches!(stream.read_buf(&mut buf).await, Ok(n) if n > 0) {
            let mut values = serde_json::Deserializer::from_slice(&buf).into_iter::<TerminalSize>();
            for size in values.by_ref() {
                match size {
                    Ok(size) if tx.send(Some(size)).is_err() => return,
                    Ok(_) => {}
                    // An incomplete value: wait for the rest of it.
                    Err(err) if err.is_eof() => break,
                    Err(err) => return tracing::debug!(%err, "bad resize event; ignoring further resizes"),
                }
            }
            let used = values.byte_offset();
            buf.drain(..used);
        }
    });
    ResizeEvents(rx)
}

/// The JSON of the error stream in v4 (remotecommand `status.go`: a `metav1.Status`
/// subset; causes say `reason` on the wire).
#[derive(Debug, Serialize)]
struct Status<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

#[derive(Debug, Serialize)]
struct Details {
    causes: Vec<Cause>,
}

#[derive(Debug, Serialize)]
struct Cause {
    reason: &'static str,
    message: String,
}

impl ExitStatus {
    /// The message of a failure, as exec.go words it.
    fn message(&self) -> String {
        match self {
            Self::Success | Self::Code(0) => String::new(),
            Self::Code(code) => format!("command terminated with non-zero exit code: exit status {code}"),
            Self::Error(err) => {
                format!("Internal error occurred: error executing command in container: {err}")
            }
        }
    }

    /// The v4 error-stream body.
    fn to_json(&self) -> Vec<u8> {
        let message = self.message();
        let status = match self {
            Self::Success | Self::Code(0) => Status {
                status: "Success",
                message: "",
                reason: "",
                details: None,
                code: None,
            },
            Self::Code(code) => Status {
                status: "Failure",
                message: &message,
                reason: "NonZeroExitCode",
                details: Some(Details {
                    causes: vec![Cause {
                        reason: "ExitCode",
                        message: code.to_string(),
                    }],
                }),
                code: None,
            },
            Self::Error(_) => Status {
                status: "Failure",
                message: &message,
                reason: "InternalError",
                details: None,
                code: Some(500),
            },
        };
        serde_json::to_vec(&status).expect("a status serializes")
    }
}

impl StatusWriter {
    /// Writes how the command ended, ends the error stream and closes the connection.
    ///
    /// v4 and later carry a JSON `Status` (kubectl exits with `Code`); older protocols
    /// carry the failure message only, nothing on success (`v1WriteStatusFunc`).
    ///
    /// # Errors
    /// The connection is gone; it is closed anyway.
    pub async fn finish(mut self, status: ExitStatus) -> Result<(), CommandError> {
        let body = if self.json {
            status.to_json()
        } else {
            status.message().into_bytes()
        };
        let written = self.write(&body).await;
        self.close.close().await;
        Ok(written?)
    }

    async fn write(&mut self, body: &[u8]) -> std::io::Result<()> {
        if !body.is_empty() {
            self.error.write_all(body).await?;
        }
        self.error.shutdown().await
    }
}

impl fmt::Debug for StatusWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusWriter")
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_follow_form_values() {
        let o = ExecOptions::from_query("command=ls&input=1&output=1&error=1&tty=0").unwrap();
        assert_eq!(
            o,
            ExecOptions {
                stdin: true,
                stdout: true,
                stderr: true,
                tty: false
            }
        );
        let o = ExecOptions::from_query("output=1&error=1&tty=1").unwrap();
        assert!(!o.stderr && o.tty);
        assert!(ExecOptions::from_query("tty=1&output=true").is_err());
    }

    #[test]
    fn status_json_is_what_client_go_decodes() {
        // client-go tools/remotecommand/v4.go errorDecoderV4 reads status, reason and
        // details.causes[].{reason,message}; the code must parse as 8 bits.
        let json = String::from_utf8(ExitStatus::Code(3).to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"status":"Failure","message":"command terminated with non-zero exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        assert_eq!(ExitStatus::Success.to_json(), br#"{"status":"Success"}"#);
        assert_eq!(ExitStatus::Code(0).to_json(), br#"{"status":"Success"}"#);
        let json = String::from_utf8(ExitStatus::Error("boom".into()).to_json()).unwrap();
        assert!(json.contains(r#""reason":"InternalError""#) && json.contains(r#""code":500"#));
    }

    #[tokio::test]
    async fn resize_events_decode_concatenated_json() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut events = resize_events(rx);
        tx.write_all(b"{\"Width\":80,\"Height\":24}\n{\"Width\":1")
            .await
            .unwrap();
        assert_eq!(
            events.next().await,
            Some(TerminalSize {
                width: 80,
                height: 24
            })
        );
        tx.write_all(b"00,\"Height\":40}\n").await.unwrap();
        assert_eq!(
            events.next().await,
            Some(TerminalSize {
                width: 100,
                height: 40
            })
        );
        drop(tx);
        assert_eq!(events.next().await, None);
    }
}
