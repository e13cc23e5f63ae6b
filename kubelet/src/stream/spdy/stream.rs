//! One SPDY stream as the application sees it: bytes in, bytes out.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, ready},
};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::mpsc,
};
use tokio_util::sync::PollSender;

use super::{
    connection::Command,
    frame::{Frame, rst},
};

/// The largest DATA frame we send. spdystream reads a frame into one allocation of its
/// length, so frames stay small; 32 KiB matches io.Copy's buffer on the Go side.
const MAX_DATA_FRAME: usize = 32 * 1024;

/// State shared between a stream and the session's reader.
#[derive(Debug, Default)]
pub(super) struct StreamState {
    /// The peer sent RST_STREAM: writes fail from now on.
    pub(super) reset: AtomicBool,
}

/// A stream the peer opened and we accepted.
///
/// Reads return the peer's DATA until its FIN (then end of file) or its RST_STREAM.
/// Writes send DATA frames; `shutdown` sends our FIN. Dropping the stream without
/// `shutdown` sends the FIN too, so the peer's reader ends (as kube's `defer stream.Close()`).
///
/// # Backpressure
/// The session's reader hands data over through a small queue per stream and waits when
/// it is full, like spdystream's unbuffered channel: a stream that is never read stalls
/// the whole session. Drop a stream you do not mean to read.
pub struct SpdyStream {
    id: u32,
    headers: HeaderMap,
    data: mpsc::Receiver<Bytes>,
    unread: Bytes,
    frames: PollSender<Command>,
    /// For the FIN or RST sent on drop, which cannot wait for room.
    frames_now: mpsc::Sender<Command>,
    state: Arc<StreamState>,
    /// We sent FIN or RST_STREAM: nothing more may be written.
    closed: bool,
}

impl SpdyStream {
    pub(super) fn new(
        id: u32,
        headers: HeaderMap,
        data: mpsc::Receiver<Bytes>,
        frames: mpsc::Sender<Command>,
        state: Arc<StreamState>,
    ) -> Self {
        Self {
            id,
            headers,
            data,
            unread: Bytes::new(),
            frames: PollSender::new(frames.clone()),
            frames_now: frames,
            state,
            closed: false,
        }
    }

    /// The stream id (odd: the client opened it).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The headers of the peer's SYN_STREAM.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Ends the stream both ways with RST_STREAM CANCEL, as spdystream's `Stream.Reset`.
    pub async fn reset(mut self) {
        self.closed = true;
        let frame = Frame::RstStream {
            stream_id: self.id,
            status: rst::CANCEL,
        };
        // A closed session has nobody left to tell.
        let _ = self.frames_now.send(Command::Frame(frame)).await;
    }

    fn broken(&self) -> Option<io::Error> {
        if self.state.reset.load(Ordering::Acquire) {
            return Some(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "stream reset by peer",
            ));
        }
        self.closed
            .then(|| io::Error::new(io::ErrorKind::BrokenPipe, "stream already closed"))
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, frame: Frame) -> Poll<io::Result<()>> {
        let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "SPDY session closed");
        ready!(self.frames.poll_reserve(cx)).map_err(|_| gone())?;
        self.frames.send_item(Command::Frame(frame)).map_err(|_| gone())?;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for SpdyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.unread.is_empty() {
            match ready!(self.data.poll_recv(cx)) {
                Some(chunk) => self.unread = chunk,
                None if self.state.reset.load(Ordering::Acquire) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "stream reset by peer",
                    )));
                }
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = self.unread.len().min(buf.remaining());
        buf.put_slice(&self.unread[..n]);
        self.unread.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for SpdyStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if let Some(err) = self.broken() {
            return Poll::Ready(Err(err));
        }
        let n = buf.len().min(MAX_DATA_FRAME);
        let frame = Frame::Data {
            stream_id: self.id,
            fin: false,
            data: Bytes::copy_from_slice(&buf[..n]),
        };
        ready!(self.poll_send(cx, frame))?;
        Poll::Ready(Ok(n))
    }

    /// Frames are handed to the session's writer in order; it flushes whenever its
    /// queue runs dry, so there is nothing to wait for here.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.closed || self.state.reset.load(Ordering::Acquire) {
            return Poll::Ready(Ok(()));
        }
        let frame = Frame::Data {
            stream_id: self.id,
            fin: true,
            data: Bytes::new(),
        };
        ready!(self.poll_send(cx, frame))?;
        self.closed = true;
        Poll::Ready(Ok(()))
    }
}

impl Drop for SpdyStream {
    fn drop(&mut self) {
        if self.closed || self.state.reset.load(Ordering::Acquire) {
            return;
        }
        let fin = Frame::Data {
            stream_id: self.id,
            fin: true,
            data: Bytes::new(),
        };
        if self.frames_now.try_send(Command::Frame(fin)).is_err() {
            tracing::debug!(
                stream = self.id,
                "SPDY stream dropped without FIN: writer queue full or closed"
            );
        }
    }
}

impl std::fmt::Debug for SpdyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpdyStream")
            .field("id", &self.id)
            .field("headers", &self.headers)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}
