//! SPDY/3.1 frames and their codec.
//!
//! Layouts are those of the SPDY/3.1 draft as github.com/moby/spdystream/spdy
//! (`types.go`, `read.go`, `write.go`) reads and writes them: every frame starts with
//! 8 bytes; a control frame's first bit is 1, then a 15-bit version (3) and a 16-bit type;
//! a data frame's first bit is 0, then a 31-bit stream id; both continue with 8 bits of
//! flags and a 24-bit payload length.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::HeaderMap;

use super::header_block::{HeaderCompressor, HeaderDecompressor};

/// The SPDY version of every control frame (spdystream `spdy.Version`).
const VERSION: u16 = 3;
/// Payload lengths are 24-bit (spdystream `MaxDataLength`).
pub const MAX_PAYLOAD: usize = (1 << 24) - 1;

/// Control frame types (spdystream `types.go`, `Type*`).
mod kind {
    pub const SYN_STREAM: u16 = 1;
    pub const SYN_REPLY: u16 = 2;
    pub const RST_STREAM: u16 = 3;
    pub const SETTINGS: u16 = 4;
    pub const PING: u16 = 6;
    pub const GOAWAY: u16 = 7;
    pub const HEADERS: u16 = 8;
    pub const WINDOW_UPDATE: u16 = 9;
}

/// FLAG_FIN of data and control frames (`DataFlagFin`, `ControlFlagFin`).
const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL of SYN_STREAM (`ControlFlagUnidirectional`).
const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// RST_STREAM status codes (spdystream `RstStreamStatus`, counted from 1).
pub mod rst {
    /// The peer broke the protocol (e.g. a stream id that does not increase).
    pub const PROTOCOL_ERROR: u32 = 1;
    /// The stream was refused before any processing.
    pub const REFUSED_STREAM: u32 = 3;
    /// The stream is no longer needed (spdystream's `Stream.Reset`).
    pub const CANCEL: u32 = 5;
}

/// GOAWAY status: normal end of the session (spdystream `GoAwayOK`).
pub const GOAWAY_OK: u32 = 0;

/// One SPDY/3.1 frame, as read from or written to the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream; a client's ids are odd and increase.
    SynStream {
        /// The new stream's id (31 bits).
        stream_id: u32,
        /// The stream this one is associated to, 0 if none.
        associated_to: u32,
        /// 0 (highest) to 7.
        priority: u8,
        /// The sender will send nothing more on it.
        fin: bool,
        /// The receiver may send nothing on it.
        unidirectional: bool,
        /// The stream's headers (names lowercase).
        headers: HeaderMap,
    },
    /// Accepts a stream opened by the peer.
    SynReply {
        /// The accepted stream.
        stream_id: u32,
        /// The sender will send nothing more on it.
        fin: bool,
        /// Reply headers (kube sends none).
        headers: HeaderMap,
    },
    /// Ends a stream abnormally, both directions.
    RstStream {
        /// The stream.
        stream_id: u32,
        /// One of [`rst`].
        status: u32,
    },
    /// Session settings: `(flags, id, value)` entries.
    Settings {
        /// FLAG_SETTINGS_CLEAR_SETTINGS.
        clear: bool,
        /// The entries, in order.
        entries: Vec<(u8, u32, u32)>,
    },
    /// A liveness check, echoed by the receiver when the id's parity is the sender's.
    Ping {
        /// Odd from clients, even from servers.
        id: u32,
    },
    /// The sender accepts no more streams; those up to `last_good_stream_id` go on.
    GoAway {
        /// The last stream id the sender processed.
        last_good_stream_id: u32,
        /// [`GOAWAY_OK`] or an error.
        status: u32,
    },
    /// More headers on an open stream.
    Headers {
        /// The stream.
        stream_id: u32,
        /// The sender will send nothing more on it.
        fin: bool,
        /// The headers.
        headers: HeaderMap,
    },
    /// Flow control credit (0 = the whole session).
    WindowUpdate {
        /// The stream, or 0.
        stream_id: u32,
        /// Bytes granted (31 bits).
        delta: u32,
    },
    /// Stream payload.
    Data {
        /// The stream.
        stream_id: u32,
        /// The sender will send nothing more on it.
        fin: bool,
        /// The bytes (at most [`MAX_PAYLOAD`]).
        data: Bytes,
    },
}

/// A frame that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A control frame of a SPDY version other than 3.
    #[error("unsupported SPDY version {0} (want 3)")]
    Version(u16),
    /// A payload shorter than its frame type needs.
    #[error("truncated frame: {0}")]
    Truncated(&'static str),
    /// A frame about stream 0 where a stream is required, or a bad length.
    #[error("invalid {kind} frame: {reason}")]
    Invalid {
        /// The frame type.
        kind: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The header block did not inflate.
    #[error("header block does not decompress: {0}")]
    Decompress(String),
    /// The header block did not deflate.
    #[error("header block does not compress: {0}")]
    Compress(String),
    /// A header block over 1 MiB, or a payload over 24 bits.
    #[error("header block or payload too large")]
    HeaderBlockTooLarge,
    /// A header name or value that HTTP does not allow.
    #[error("invalid header {0:?}")]
    InvalidHeader(String),
}

/// Writes frames of one session direction; owns that direction's header zlib stream.
pub struct Encoder {
    headers: HeaderCompressor,
}

impl Default for Encoder {
    fn default() -> Self {
        Self {
            headers: HeaderCompressor::new(),
        }
    }
}

impl Encoder {
    /// Appends `frame` to `dst`.
    ///
    /// # Errors
    /// A payload over 24 bits, or headers zlib refuses.
    pub fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        match frame {
            Frame::Data { stream_id, fin, data } => {
                put_head(dst, stream_id & 0x7fff_ffff, flag(*fin, FLAG_FIN), data.len())?;
                dst.put_slice(data);
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                fin,
                unidirectional,
                headers,
            } => {
                let mut body = Vec::with_capacity(64);
                body.extend_from_slice(&stream_id.to_be_bytes());
                body.extend_from_slice(&associated_to.to_be_bytes());
                body.extend_from_slice(&[(priority & 0x7) << 5, 0]);
                self.headers.compress(headers, &mut body)?;
                let flags = flag(*fin, FLAG_FIN) | flag(*unidirectional, FLAG_UNIDIRECTIONAL);
                put_control(dst, kind::SYN_STREAM, flags, &body)?;
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            } => {
                self.put_with_headers(dst, kind::SYN_REPLY, *stream_id, *fin, headers)?;
            }
            Frame::Headers {
                stream_id,
                fin,
                headers,
            } => {
                self.put_with_headers(dst, kind::HEADERS, *stream_id, *fin, headers)?;
            }
            Frame::RstStream { stream_id, status } => {
                put_words(dst, kind::RST_STREAM, &[*stream_id, *status])?
            }
            Frame::Settings { clear, entries } => {
                let mut body = Vec::with_capacity(4 + 8 * entries.len());
                put_len(&mut body, entries.len())?;
                for (flags, id, value) in entries {
                    body.extend_from_slice(&((u32::from(*flags) << 24) | (id & 0xff_ffff)).to_be_bytes());
                    body.extend_from_slice(&value.to_be_bytes());
                }
                put_control(dst, kind::SETTINGS, flag(*clear, 0x01), &body)?;
            }
            Frame::Ping { id } => put_words(dst, kind::PING, &[*id])?,
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => put_words(dst, kind::GOAWAY, &[*last_good_stream_id, *status])?,
            Frame::WindowUpdate { stream_id, delta } => {
                put_words(dst, kind::WINDOW_UPDATE, &[*stream_id, *delta])?
            }
        }
        Ok(())
    }

    fn put_with_headers(
        &mut self,
        dst: &mut BytesMut,
        kind: u16,
        stream_id: u32,
        fin: bool,
        headers: &HeaderMap,
    ) -> Result<(), FrameError> {
        let mut body = Vec::with_capacity(32);
        body.extend_from_slice(&stream_id.to_be_bytes());
        self.headers.compress(headers, &mut body)?;
        put_control(dst, kind, flag(fin, FLAG_FIN), &body)
    }
}

fn flag(on: bool, bit: u8) -> u8 {
    if on { bit } else { 0 }
}

fn put_len(body: &mut Vec<u8>, n: usize) -> Result<(), FrameError> {
    let n = u32::try_from(n).map_err(|_| FrameError::HeaderBlockTooLarge)?;
    body.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

fn put_head(dst: &mut BytesMut, first_word: u32, flags: u8, len: usize) -> Result<(), FrameError> {
    if len > MAX_PAYLOAD {
        return Err(FrameError::HeaderBlockTooLarge);
    }
    dst.reserve(8 + len);
    dst.put_u32(first_word);
    dst.put_u32((u32::from(flags) << 24) | len as u32);
    Ok(())
}

fn put_control(dst: &mut BytesMut, kind: u16, flags: u8, body: &[u8]) -> Result<(), FrameError> {
    put_head(
        dst,
        0x8000_0000 | (u32::from(VERSION) << 16) | u32::from(kind),
        flags,
        body.len(),
    )?;
    dst.put_slice(body);
    Ok(())
}

fn put_words(dst: &mut BytesMut, kind: u16, words: &[u32]) -> Result<(), FrameError> {
    let body: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    put_control(dst, kind, 0, &body)
}

/// Reads frames of one session direction; owns that direction's header zlib stream.
pub struct Decoder {
    headers: HeaderDecompressor,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            headers: HeaderDecompressor::new(),
        }
    }
}

impl Decoder {
    /// Takes one whole frame off the front of `src`, or `None` if `src` holds less than one.
    ///
    /// Control frames of unknown types are skipped, as SPDY/3 asks.
    ///
    /// # Errors
    /// A malformed frame; the session cannot go on after one, since the header zlib
    /// stream may have lost its place.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        loop {
            let Some(head) = src.first_chunk::<8>() else {
                return Ok(None);
            };
            let first = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            let flags = head[4];
            let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
            if src.len() < 8 + len {
                src.reserve(8 + len - src.len());
                return Ok(None);
            }
            src.advance(8);
            let mut body = src.split_to(len).freeze();
            if first & 0x8000_0000 == 0 {
                let stream_id = first & 0x7fff_ffff;
                let fin = flags & FLAG_FIN != 0;
                return Ok(Some(Frame::Data {
                    stream_id,
                    fin,
                    data: body,
                }));
            }
            let version = ((first >> 16) & 0x7fff) as u16;
            if version != VERSION {
                return Err(FrameError::Version(version));
            }
            if let Some(frame) = self.control((first & 0xffff) as u16, flags, &mut body)? {
                return Ok(Some(frame));
            }
        }
    }

    fn control(&mut self, kind: u16, flags: u8, body: &mut Bytes) -> Result<Option<Frame>, FrameError> {
        let fin = flags & FLAG_FIN != 0;
        let frame = match kind {
            kind::SYN_STREAM => {
                let stream_id = take(body, "SYN_STREAM")? & 0x7fff_ffff;
                let associated_to = take(body, "SYN_STREAM")? & 0x7fff_ffff;
                let priority = take_u16(body)?;
                Frame::SynStream {
                    stream_id: nonzero(stream_id, "SYN_STREAM")?,
                    associated_to,
                    priority: (priority >> 13) as u8,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers: self.headers.decompress(body)?,
                }
            }
            kind::SYN_REPLY => Frame::SynReply {
                stream_id: nonzero(take(body, "SYN_REPLY")? & 0x7fff_ffff, "SYN_REPLY")?,
                fin,
                headers: self.headers.decompress(body)?,
            },
            kind::HEADERS => Frame::Headers {
                stream_id: nonzero(take(body, "HEADERS")? & 0x7fff_ffff, "HEADERS")?,
                fin,
                headers: self.headers.decompress(body)?,
            },
            kind::RST_STREAM => Frame::RstStream {
                stream_id: take(body, "RST_STREAM")? & 0x7fff_ffff,
                status: take(body, "RST_STREAM")?,
            },
            kind::SETTINGS => settings(flags, body)?,
            kind::PING => Frame::Ping {
                id: take(body, "PING")?,
            },
            kind::GOAWAY => Frame::GoAway {
                last_good_stream_id: take(body, "GOAWAY")? & 0x7fff_ffff,
                // SPDY/2 GOAWAY had no status; a 4-byte body means OK.
                status: if body.is_empty() {
                    GOAWAY_OK
                } else {
                    take(body, "GOAWAY")?
                },
            },
            kind::WINDOW_UPDATE => Frame::WindowUpdate {
                stream_id: take(body, "WINDOW_UPDATE")? & 0x7fff_ffff,
                delta: take(body, "WINDOW_UPDATE")? & 0x7fff_ffff,
            },
            _ => return Ok(None),
        };
        Ok(Some(frame))
    }
}

fn settings(flags: u8, body: &mut Bytes) -> Result<Frame, FrameError> {
    let count = take(body, "SETTINGS")? as usize;
    if body.len() != count * 8 {
        return Err(FrameError::Invalid {
            kind: "SETTINGS",
            reason: "length does not match the entry count",
        });
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let flag_id = take(body, "SETTINGS")?;
        entries.push((
            (flag_id >> 24) as u8,
            flag_id & 0xff_ffff,
            take(body, "SETTINGS")?,
        ));
    }
    Ok(Frame::Settings {
        clear: flags & 0x01 != 0,
        entries,
    })
}

fn take(body: &mut Bytes, kind: &'static str) -> Result<u32, FrameError> {
    if body.len() < 4 {
        return Err(FrameError::Truncated(kind));
    }
    Ok(body.get_u32())
}

fn take_u16(body: &mut Bytes) -> Result<u16, FrameError> {
    if body.len() < 2 {
        return Err(FrameError::Truncated("SYN_STREAM"));
    }
    Ok(body.get_u16())
}

fn nonzero(stream_id: u32, kind: &'static str) -> Result<u32, FrameError> {
    if stream_id == 0 {
        return Err(FrameError::Invalid {
            kind,
            reason: "stream id 0",
        });
    }
    Ok(stream_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn stream_type(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("streamtype", HeaderValue::from_static(value));
        headers
    }

    fn round_trip(frames: &[Frame]) {
        let mut enc = Encoder::default();
        let mut wire = BytesMut::new();
        for frame in frames {
            enc.encode(frame, &mut wire).unwrap();
        }
        let mut dec = Decoder::default();
        // Feed one byte at a time: a frame is returned only once it is whole.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in wire {
            buf.put_u8(byte);
            while let Some(frame) = dec.decode(&mut buf).unwrap() {
                got.push(frame);
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn every_frame_type_round_trips() {
        round_trip(&[
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                fin: false,
                unidirectional: false,
                headers: stream_type("error"),
            },
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: HeaderMap::new(),
            },
            Frame::SynStream {
                stream_id: 3,
                associated_to: 1,
                priority: 7,
                fin: true,
                unidirectional: true,
                headers: stream_type("stdout"),
            },
            Frame::Headers {
                stream_id: 3,
                fin: true,
                headers: stream_type("x"),
            },
            Frame::Data {
                stream_id: 3,
                fin: false,
                data: Bytes::from_static(b"hello"),
            },
            Frame::Data {
                stream_id: 3,
                fin: true,
                data: Bytes::new(),
            },
            Frame::RstStream {
                stream_id: 5,
                status: rst::CANCEL,
            },
            Frame::Settings {
                clear: true,
                entries: vec![(1, 7, 65536), (0, 4, 100)],
            },
            Frame::Ping { id: 1 },
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 1 << 20,
            },
            Frame::GoAway {
                last_good_stream_id: 3,
                status: GOAWAY_OK,
            },
        ]);
    }

    #[test]
    fn fixed_layouts_match_the_draft() {
        let mut wire = BytesMut::new();
        let mut enc = Encoder::default();
        enc.encode(&Frame::Ping { id: 1 }, &mut wire).unwrap();
        enc.encode(
            &Frame::RstStream {
                stream_id: 3,
                status: rst::CANCEL,
            },
            &mut wire,
        )
        .unwrap();
        enc.encode(
            &Frame::Data {
                stream_id: 5,
                fin: true,
                data: Bytes::from_static(b"ab"),
            },
            &mut wire,
        )
        .unwrap();
        #[rustfmt::skip]
        let want: &[u8] = &[
            0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01, // PING 1
            0x80, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x05, // RST 3 CANCEL
            0x00, 0x00, 0x00, 0x05, 0x01, 0x00, 0x00, 0x02, b'a', b'b', // DATA 5 FIN "ab"
        ];
        assert_eq!(&wire[..], want);
    }

    #[test]
    fn unknown_control_frames_are_skipped() {
        let mut wire = BytesMut::new();
        // Type 5 was SPDY/2's NOOP; SPDY/3 ignores unknown types.
        wire.put_slice(&[0x80, 0x03, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00]);
        Encoder::default()
            .encode(&Frame::Ping { id: 7 }, &mut wire)
            .unwrap();
        let frame = Decoder::default().decode(&mut wire).unwrap();
        assert_eq!(frame, Some(Frame::Ping { id: 7 }));
    }

    #[test]
    fn other_versions_are_refused() {
        let mut wire = BytesMut::from(&[0x80, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1][..]);
        assert!(matches!(
            Decoder::default().decode(&mut wire),
            Err(FrameError::Version(2))
        ));
    }
}
