//! WebSocket channel streams, server side (k8s.io/streaming/pkg/httpstream/wsstream/conn.go).
//!
//! Every message carries one channel's bytes, prefixed by the channel number: a raw byte
//! in binary frames (`channel.k8s.io`), an ASCII digit followed by base64 in text frames
//! (`base64.channel.k8s.io`). With `v5.channel.k8s.io` the client may half-close a channel
//! with the two bytes `[255, channel]`. The RFC 6455 framing here is the part a server
//! needs: masked frames in, unmasked frames out, fragments, ping, close.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use base64::Engine as _;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf},
    sync::mpsc,
    task::JoinHandle,
};
use tokio_util::sync::PollSender;

/// Channel numbers of remotecommand (remotecommand `websocket.go`).
pub mod channel {
    /// The command's standard input.
    pub const STDIN: u8 = 0;
    /// The command's standard output.
    pub const STDOUT: u8 = 1;
    /// The command's standard error.
    pub const STDERR: u8 = 2;
    /// The final status.
    pub const ERROR: u8 = 3;
    /// Terminal sizes.
    pub const RESIZE: u8 = 4;
    /// v5: `[CLOSE, n]` half-closes channel n (wsstream `streamCloseSignal`).
    pub const CLOSE: u8 = 255;
}

/// Messages larger than this end the session; kube's clients send at most 32 KiB.
const MAX_MESSAGE: usize = 16 << 20;
/// The largest payload we put in one message.
const MAX_WRITE: usize = 32 * 1024;
const WRITE_QUEUE: usize = 64;
const CHANNEL_QUEUE: usize = 32;

/// RFC 6455 opcodes.
mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
}

/// A WebSocket session failure.
#[derive(Debug, thiserror::Error)]
pub enum WebSocketError {
    /// The connection failed.
    #[error("WebSocket I/O: {0}")]
    Io(#[from] io::Error),
    /// The client broke RFC 6455 or the channel protocol.
    #[error("WebSocket protocol: {0}")]
    Protocol(&'static str),
}

enum Out {
    Message { channel: u8, data: Bytes },
    Pong(Bytes),
    Close,
}

/// One WebSocket session carrying numbered channels.
pub struct Connection {
    channels: Vec<Option<ChannelStream>>,
    out: mpsc::Sender<Out>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Connection {
    /// Serves `channels` channels on `io`, the connection after the 101 response.
    pub fn server<IO>(io: IO, base64: bool, close_signal: bool, channels: usize) -> Self
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(io);
        let (out, queue) = mpsc::channel(WRITE_QUEUE);
        let mut inbound = Vec::with_capacity(channels);
        let mut streams = Vec::with_capacity(channels);
        for n in 0..channels {
            let (tx, rx) = mpsc::channel(CHANNEL_QUEUE);
            inbound.push(Some(tx));
            streams.push(Some(ChannelStream {
                channel: n as u8,
                inbound: rx,
                unread: Bytes::new(),
                out: PollSender::new(out.clone()),
            }));
        }
        let reader = Reader {
            io: read,
            base64,
            close_signal,
            inbound,
            out: out.clone(),
        };
        Self {
            channels: streams,
            reader: tokio::spawn(reader.run()),
            writer: tokio::spawn(write_loop(write, queue, base64)),
            out,
        }
    }

    /// Takes channel `n` (once; `None` after, or past the count).
    pub fn channel(&mut self, n: u8) -> Option<ChannelStream> {
        self.channels.get_mut(usize::from(n))?.take()
    }

    /// Sends `data` on channel `n` as one message, e.g. the empty "ready" message of exec
    /// or the port number that opens each port-forward channel.
    pub async fn send(&self, n: u8, data: &[u8]) {
        let message = Out::Message {
            channel: n,
            data: Bytes::copy_from_slice(data),
        };
        let _ = self.out.send(message).await;
    }

    /// Waits until the client closes the session (or the connection fails).
    pub async fn closed(&mut self) {
        let _ = (&mut self.reader).await;
    }

    /// Sends a close frame after everything queued and ends the session.
    pub async fn close(mut self) {
        let _ = self.out.send(Out::Close).await;
        let _ = (&mut self.writer).await;
        self.reader.abort();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let _ = self.out.try_send(Out::Close);
        if self.writer.is_finished() {
            self.reader.abort();
        }
    }
}

/// One channel: reads what the client sends on it, writes messages to it.
///
/// Like SPDY streams, a channel nobody reads holds the session's reader back once its
/// small queue is full: drop channels you do not read.
pub struct ChannelStream {
    channel: u8,
    inbound: mpsc::Receiver<Bytes>,
    unread: Bytes,
    out: PollSender<Out>,
}

impl AsyncRead for ChannelStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.unread.is_empty() {
            match ready!(self.inbound.poll_recv(cx)) {
                Some(data) => self.unread = data,
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = self.unread.len().min(buf.remaining());
        buf.put_slice(&self.unread[..n]);
        self.unread.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ChannelStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "WebSocket session closed");
        ready!(self.out.poll_reserve(cx)).map_err(|_| gone())?;
        let n = buf.len().min(MAX_WRITE);
        let message = Out::Message {
            channel: self.channel,
            data: Bytes::copy_from_slice(&buf[..n]),
        };
        self.out.send_item(message).map_err(|_| gone())?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Channels have no end of their own before v5, and kube's server sends none: the
    /// session's close frame ends them all.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

struct Reader<R> {
    io: ReadHalf<R>,
    base64: bool,
    close_signal: bool,
    /// Each channel's queue; `None` once half-closed.
    inbound: Vec<Option<mpsc::Sender<Bytes>>>,
    out: mpsc::Sender<Out>,
}

impl<R: AsyncRead> Reader<R> {
    async fn run(mut self) {
        if let Err(err) = self.serve().await {
            tracing::debug!(%err, "WebSocket session ended");
        }
    }

    async fn serve(&mut self) -> Result<(), WebSocketError> {
        let mut message = BytesMut::new();
        loop {
            let (fin, op, payload) = read_frame(&mut self.io).await?;
            match op {
                opcode::CLOSE => {
                    let _ = self.out.send(Out::Close).await;
                    return Ok(());
                }
                opcode::PING => {
                    let _ = self.out.send(Out::Pong(payload)).await;
                    continue;
                }
                opcode::TEXT | opcode::BINARY | opcode::CONTINUATION => message.extend_from_slice(&payload),
                _ => {}
            }
            if message.len() > MAX_MESSAGE {
                return Err(WebSocketError::Protocol("message too large"));
            }
            if fin && matches!(op, opcode::TEXT | opcode::BINARY | opcode::CONTINUATION) {
                let whole = message.split().freeze();
                self.deliver(whole).await?;
            }
        }
    }

    /// Routes one message to its channel (wsstream `Conn.handle`).
    async fn deliver(&mut self, mut message: Bytes) -> Result<(), WebSocketError> {
        if message.is_empty() {
            return Ok(());
        }
        if self.close_signal && message[0] == channel::CLOSE {
            let [_, n] = message[..] else {
                return Err(WebSocketError::Protocol("close signal must name one channel"));
            };
            if let Some(slot) = self.inbound.get_mut(usize::from(n)) {
                *slot = None;
            }
            return Ok(());
        }
        let mut n = message.get_u8();
        if self.base64 {
            n = n.wrapping_sub(b'0');
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(&message)
                .map_err(|_| WebSocketError::Protocol("bad base64 payload"))?;
            message = decoded.into();
        }
        let Some(Some(tx)) = self.inbound.get(usize::from(n)) else {
            tracing::trace!(channel = n, "WebSocket message for no channel dropped");
            return Ok(());
        };
        if tx.send(message).await.is_err() {
            self.inbound[usize::from(n)] = None;
        }
        Ok(())
    }
}

/// One frame: FIN, opcode and the unmasked payload (RFC 6455 §5.2).
async fn read_frame<R: AsyncRead + Unpin>(io: &mut R) -> Result<(bool, u8, Bytes), WebSocketError> {
    let mut head = [0u8; 2];
    io.read_exact(&mut head).await?;
    let fin = head[0] & 0x80 != 0;
    let op = head[0] & 0x0f;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7f {
        126 => u64::from(io.read_u16().await?),
        127 => io.read_u64().await?,
        n => u64::from(n),
    };
    if len > MAX_MESSAGE as u64 {
        return Err(WebSocketError::Protocol("frame too large"));
    }
    let mut mask = [0u8; 4];
    if masked {
        io.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; len as usize];
    io.read_exact(&mut payload).await?;
    if masked {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
    }
    Ok((fin, op, payload.into()))
}

/// Appends one unmasked, unfragmented frame to `dst`.
fn put_frame(dst: &mut BytesMut, op: u8, payload: &[&[u8]]) {
    let len: usize = payload.iter().map(|p| p.len()).sum();
    dst.put_u8(0x80 | op);
    match len {
        0..=125 => dst.put_u8(len as u8),
        126..=0xffff => {
            dst.put_u8(126);
            dst.put_u16(len as u16);
        }
        _ => {
            dst.put_u8(127);
            dst.put_u64(len as u64);
        }
    }
    for part in payload {
        dst.put_slice(part);
    }
}

async fn write_loop<W: AsyncWrite>(mut io: WriteHalf<W>, mut queue: mpsc::Receiver<Out>, base64: bool) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    while let Some(out) = queue.recv().await {
        let close = matches!(out, Out::Close);
        match out {
            Out::Message { channel, data } if base64 => {
                let text = base64::engine::general_purpose::STANDARD.encode(&data);
                put_frame(&mut buf, opcode::TEXT, &[&[b'0' + channel], text.as_bytes()]);
            }
            Out::Message { channel, data } => put_frame(&mut buf, opcode::BINARY, &[&[channel], &data]),
            Out::Pong(data) => put_frame(&mut buf, 0xA, &[&data]),
            // Status 1000, normal closure.
            Out::Close => put_frame(&mut buf, opcode::CLOSE, &[&1000u16.to_be_bytes()]),
        }
        if let Err(err) = io.write_all(&buf).await.and(io.flush().await) {
            tracing::debug!(%err, "WebSocket writer stopped");
            break;
        }
        buf.clear();
        if close {
            break;
        }
    }
    let _ = io.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked, as RFC 6455 requires of clients.
    pub(crate) fn client_frame(op: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![0x80 | op];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[tokio::test]
    async fn channels_route_both_ways_binary() {
        let (server, mut client) = tokio::io::duplex(1 << 16);
        let mut conn = Connection::server(server, false, true, 2);
        let mut ch0 = conn.channel(0).unwrap();
        let mut ch1 = conn.channel(1).unwrap();
        client
            .write_all(&client_frame(opcode::BINARY, b"\x00hello"))
            .await
            .unwrap();
        let mut got = [0u8; 5];
        ch0.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        // v5 close signal ends channel 0's input.
        client
            .write_all(&client_frame(opcode::BINARY, &[255, 0]))
            .await
            .unwrap();
        assert_eq!(ch0.read(&mut got).await.unwrap(), 0);
        ch1.write_all(b"out").await.unwrap();
        let mut frame = [0u8; 6];
        client.read_exact(&mut frame).await.unwrap();
        assert_eq!(frame, [0x82, 4, 1, b'o', b'u', b't']);
        conn.close().await;
        let mut close = [0u8; 4];
        client.read_exact(&mut close).await.unwrap();
        assert_eq!(close, [0x88, 2, 0x03, 0xe8]);
    }

    #[tokio::test]
    async fn base64_channels_use_ascii_digits() {
        let (server, mut client) = tokio::io::duplex(1 << 16);
        let mut conn = Connection::server(server, true, false, 2);
        let mut ch1 = conn.channel(1).unwrap();
        client
            .write_all(&client_frame(opcode::TEXT, b"1aGk="))
            .await
            .unwrap();
        let mut got = [0u8; 2];
        ch1.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hi");
        ch1.write_all(b"hi").await.unwrap();
        let mut frame = [0u8; 7];
        client.read_exact(&mut frame).await.unwrap();
        assert_eq!(&frame, b"\x81\x051aGk=");
    }
}
