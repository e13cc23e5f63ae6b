//! The server side of a SPDY/3.1 session over an upgraded HTTP connection.

use std::{
    collections::HashMap,
    sync::{Arc, atomic::Ordering},
};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf},
    sync::mpsc,
    task::JoinHandle,
};

use super::{
    frame::{Decoder, Encoder, Frame, FrameError, GOAWAY_OK, rst},
    stream::{SpdyStream, StreamState},
};

/// Frames queued for the writer; bounds the memory a fast local writer can take.
const WRITE_QUEUE: usize = 64;
/// DATA frames queued per stream for its reader (see [`SpdyStream`]'s backpressure).
const STREAM_QUEUE: usize = 32;
/// Streams opened by the peer but not yet taken by [`Connection::next_stream`].
const ACCEPT_QUEUE: usize = 16;

/// What the session's writer task is asked to do.
#[derive(Debug)]
pub(super) enum Command {
    /// Encode and send a frame.
    Frame(Frame),
    /// Send GOAWAY, flush, shut the write side and stop.
    Close,
}

/// A SPDY session failure.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The peer sent bytes that are not SPDY/3.1.
    #[error("reading SPDY frames: {0}")]
    Frame(#[from] FrameError),
    /// The connection failed.
    #[error("SPDY connection I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The session ended before the frame could be sent.
    #[error("SPDY session is closed")]
    Closed,
}

/// The server side of one SPDY/3.1 session, as spdystream's `NewConnection(conn, true)`.
///
/// Two tasks run the session: a reader that decodes the peer's frames and routes them, and
/// a writer that owns the write side and sends queued frames in order. The peer (a kube
/// client: kubectl or the apiserver) opens every stream; we only reply, send data, reset,
/// and answer PINGs.
///
/// # Flow control
/// spdystream neither sends WINDOW_UPDATE nor honours it (it drops SETTINGS and
/// WINDOW_UPDATE frames as unhandled), so windows are not enforced either way here: a
/// sender that waited for credit from spdystream would stall after 64 KiB. TCP's own
/// backpressure is what bounds a transfer, as in kube.
///
/// # Closing
/// [`Connection::close`] (or drop) sends GOAWAY after every frame already queued, then
/// shuts the write side; the peer closes its side once its streams end.
#[derive(Debug)]
pub struct Connection {
    incoming: mpsc::Receiver<IncomingStream>,
    frames: mpsc::Sender<Command>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Connection {
    /// Starts serving a session on `io`, the connection after the 101 response.
    pub fn server<IO>(io: IO) -> Self
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(io);
        let (frames, queue) = mpsc::channel(WRITE_QUEUE);
        let (accept, incoming) = mpsc::channel(ACCEPT_QUEUE);
        let writer = tokio::spawn(write_loop(write, queue));
        let reader = Reader {
            io: read,
            decoder: Decoder::default(),
            buf: BytesMut::with_capacity(16 * 1024),
            streams: HashMap::new(),
            next_id: 1,
            accept: Some(accept),
            frames: frames.clone(),
        };
        let reader = tokio::spawn(reader.run());
        Self {
            incoming,
            frames,
            reader,
            writer,
        }
    }

    /// The next stream the peer opens, or `None` once the session ends or the peer sent
    /// GOAWAY.
    pub async fn next_stream(&mut self) -> Option<IncomingStream> {
        self.incoming.recv().await
    }

    /// Sends GOAWAY after all queued frames and ends the session, waiting for the writer to
    /// flush (kube's `connection.Close`). Streams still held can no longer write.
    pub async fn close(mut self) {
        let _ = self.frames.send(Command::Close).await;
        let _ = (&mut self.writer).await;
        // The peer may keep its side open; nothing it sends matters any more.
        self.reader.abort();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // `close` already queued Close; otherwise ask for it without waiting.
        let _ = self.frames.try_send(Command::Close);
        if self.writer.is_finished() {
            self.reader.abort();
        }
    }
}

/// A stream the peer opened, waiting for our SYN_REPLY or RST_STREAM.
#[derive(Debug)]
pub struct IncomingStream {
    id: u32,
    headers: HeaderMap,
    data: mpsc::Receiver<Bytes>,
    frames: mpsc::Sender<Command>,
    state: Arc<StreamState>,
    /// Set until accepted or rejected; a dropped pending stream is refused.
    pending: bool,
}

impl IncomingStream {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The headers of the peer's SYN_STREAM (names lowercase, e.g. `streamtype`).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Replies with SYN_REPLY (no headers, as kube's `newSpdyStream`) and hands the stream over.
    ///
    /// # Errors
    /// [`SessionError::Closed`] if the session ended.
    pub async fn accept(mut self) -> Result<SpdyStream, SessionError> {
        self.pending = false;
        let reply = Frame::SynReply {
            stream_id: self.id,
            fin: false,
            headers: HeaderMap::new(),
        };
        self.frames
            .send(Command::Frame(reply))
            .await
            .map_err(|_| SessionError::Closed)?;
        let (_, data) = mpsc::channel(1);
        let data = std::mem::replace(&mut self.data, data);
        Ok(SpdyStream::new(
            self.id,
            std::mem::take(&mut self.headers),
            data,
            self.frames.clone(),
            self.state.clone(),
        ))
    }

    /// Refuses the stream with RST_STREAM CANCEL, as kube's `stream.Reset()` for a stream
    /// whose headers it rejects.
    pub async fn reject(mut self) {
        self.pending = false;
        let frame = Frame::RstStream {
            stream_id: self.id,
            status: rst::CANCEL,
        };
        let _ = self.frames.send(Command::Frame(frame)).await;
    }
}

impl Drop for IncomingStream {
    fn drop(&mut self) {
        if self.pending {
            let frame = Frame::RstStream {
                stream_id: self.id,
                status: rst::REFUSED_STREAM,
            };
            let _ = self.frames.try_send(Command::Frame(frame));
        }
    }
}

/// The reader task: sole owner of the read side, the inbound zlib stream and the table of
/// open streams (so the table needs no lock).
struct Reader<R> {
    io: ReadHalf<R>,
    decoder: Decoder,
    buf: BytesMut,
    /// Streams whose peer half is still open: their data queue and shared state.
    streams: HashMap<u32, (mpsc::Sender<Bytes>, Arc<StreamState>)>,
    /// The least id the peer may open next (ids are odd and increase).
    next_id: u32,
    /// `None` after GOAWAY either way: no new streams.
    accept: Option<mpsc::Sender<IncomingStream>>,
    frames: mpsc::Sender<Command>,
}

impl<R: AsyncRead> Reader<R> {
    async fn run(mut self) {
        match self.serve().await {
            Ok(()) => tracing::debug!("SPDY session: peer closed the connection"),
            Err(err) => tracing::debug!(%err, "SPDY session ended"),
        }
        // Every open stream's reader sees the end of its data now.
        for (_, (_, state)) in self.streams.drain() {
            state.reset.store(true, Ordering::Release);
        }
    }

    async fn serve(&mut self) -> Result<(), SessionError> {
        loop {
            while let Some(frame) = self.decoder.decode(&mut self.buf)? {
                self.route(frame).await;
            }
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return Ok(());
            }
        }
    }

    async fn route(&mut self, frame: Frame) {
        match frame {
            Frame::SynStream {
                stream_id,
                fin,
                headers,
                ..
            } => self.open(stream_id, fin, headers).await,
            Frame::Data { stream_id, fin, data } => self.data(stream_id, fin, data).await,
            Frame::RstStream { stream_id, status } => {
                tracing::trace!(stream_id, status, "SPDY RST_STREAM from peer");
                if let Some((_, state)) = self.streams.remove(&stream_id) {
                    state.reset.store(true, Ordering::Release);
                }
            }
            // Odd ids are the client's: echo them. Even ones would answer our own pings,
            // and we send none (kube's kubelet upgrader pings with period 0).
            Frame::Ping { id } if id % 2 == 1 => self.send(Frame::Ping { id }).await,
            Frame::GoAway { .. } => {
                tracing::debug!("SPDY GOAWAY from peer: no new streams");
                self.accept = None;
            }
            other => tracing::trace!(frame = ?other, "SPDY frame ignored"),
        }
    }

    async fn open(&mut self, stream_id: u32, fin: bool, headers: HeaderMap) {
        // spdystream `validateStreamId`: ids must increase; a client's are odd.
        if stream_id < self.next_id || stream_id.is_multiple_of(2) {
            tracing::debug!(stream_id, "SPDY SYN_STREAM with a bad id: PROTOCOL_ERROR");
            let status = rst::PROTOCOL_ERROR;
            return self.send(Frame::RstStream { stream_id, status }).await;
        }
        self.next_id = stream_id + 2;
        let Some(accept) = &self.accept else {
            let status = rst::REFUSED_STREAM;
            return self.send(Frame::RstStream { stream_id, status }).await;
        };
        let (tx, data) = mpsc::channel(STREAM_QUEUE);
        let state = Arc::new(StreamState::default());
        if !fin {
            self.streams.insert(stream_id, (tx, state.clone()));
        }
        let stream = IncomingStream {
            id: stream_id,
            headers,
            data,
            frames: self.frames.clone(),
            state,
            pending: true,
        };
        if accept.send(stream).await.is_err() {
            // Nobody takes streams any more; the dropped IncomingStream refused it.
            self.accept = None;
        }
    }

    async fn data(&mut self, stream_id: u32, fin: bool, data: Bytes) {
        let Some((tx, _)) = self.streams.get(&stream_id) else {
            // spdystream drops data of unknown streams too ("Data frame gone away").
            return tracing::trace!(stream_id, "SPDY data for a closed stream dropped");
        };
        let receiver_gone = !data.is_empty() && tx.send(data).await.is_err();
        if fin || receiver_gone {
            self.streams.remove(&stream_id);
        }
    }

    async fn send(&mut self, frame: Frame) {
        let _ = self.frames.send(Command::Frame(frame)).await;
    }
}

/// The writer task: sole owner of the write side and the outbound zlib stream.
async fn write_loop<W: AsyncWrite>(mut io: WriteHalf<W>, mut queue: mpsc::Receiver<Command>) {
    let mut writer = Writer {
        encoder: Encoder::default(),
        buf: BytesMut::with_capacity(16 * 1024),
        last_stream_id: 0,
    };
    if let Err(err) = writer.run(&mut io, &mut queue).await {
        tracing::debug!(%err, "SPDY writer stopped");
    }
    let _ = io.shutdown().await;
}

struct Writer {
    encoder: Encoder,
    buf: BytesMut,
    /// The highest peer stream id we replied to, for GOAWAY's last-good-stream-id.
    last_stream_id: u32,
}

impl Writer {
    async fn run<W: AsyncWrite>(
        &mut self,
        io: &mut WriteHalf<W>,
        queue: &mut mpsc::Receiver<Command>,
    ) -> Result<(), SessionError> {
        while let Some(command) = queue.recv().await {
            let mut close = self.put(command)?;
            // Batch what is already queued into one write.
            while !close && self.buf.len() < 64 * 1024 {
                match queue.try_recv() {
                    Ok(command) => close = self.put(command)?,
                    Err(_) => break,
                }
            }
            io.write_all(&self.buf).await?;
            io.flush().await?;
            self.buf.clear();
            if close {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Encodes one command; `true` if the session is to end after this batch.
    fn put(&mut self, command: Command) -> Result<bool, SessionError> {
        let frame = match command {
            Command::Frame(frame) => frame,
            Command::Close => Frame::GoAway {
                last_good_stream_id: self.last_stream_id,
                status: GOAWAY_OK,
            },
        };
        if let Frame::SynReply { stream_id, .. } = &frame {
            self.last_stream_id = self.last_stream_id.max(*stream_id);
        }
        self.encoder.encode(&frame, &mut self.buf)?;
        Ok(matches!(frame, Frame::GoAway { .. }))
    }
}
