//! SPDY/3 name/value header blocks: the plain layout and its zlib stream.
//!
//! Each direction of a session keeps one zlib stream for all its header blocks (SYN_STREAM,
//! SYN_REPLY, HEADERS), primed with the SPDY/3 dictionary and ended by a sync flush per
//! frame, so a block can only be decoded after every earlier block of that direction.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::{dictionary::DICTIONARY, frame::FrameError};

/// Values of one header name travel joined by NUL (spdystream `headerValueSeparator`).
const VALUE_SEPARATOR: u8 = 0;

/// The most bytes a decompressed header block may take: spdystream caps one field at
/// 1 MiB (`defaultMaxHeaderFieldSize`), kube's blocks are a few dozen bytes.
const MAX_BLOCK_LEN: usize = 1 << 20;

/// The compressing half: one per session direction we write.
pub(super) struct HeaderCompressor {
    zlib: Compress,
}

impl HeaderCompressor {
    /// A zlib stream primed with the SPDY/3 dictionary, at spdystream's level (`BestCompression`).
    pub(super) fn new() -> Self {
        let mut zlib = Compress::new(Compression::best(), true);
        zlib.set_dictionary(&DICTIONARY)
            .expect("a fresh zlib stream takes a dictionary");
        Self { zlib }
    }

    /// Appends the compressed block of `headers` to `dst`, ending with a sync flush.
    pub(super) fn compress(&mut self, headers: &HeaderMap, dst: &mut Vec<u8>) -> Result<(), FrameError> {
        let plain = encode_plain(headers)?;
        let start_in = self.zlib.total_in();
        loop {
            let done = (self.zlib.total_in() - start_in) as usize;
            dst.reserve(plain.len() - done + 64);
            self.zlib
                .compress_vec(&plain[done..], dst, FlushCompress::Sync)
                .map_err(|e| FrameError::Compress(e.to_string()))?;
            // A sync flush is complete once all input is in and zlib left spare room.
            let all_in = (self.zlib.total_in() - start_in) as usize == plain.len();
            if all_in && dst.len() < dst.capacity() {
                return Ok(());
            }
        }
    }
}

/// The decompressing half: one per session direction we read.
pub(super) struct HeaderDecompressor {
    zlib: Decompress,
}

impl HeaderDecompressor {
    pub(super) fn new() -> Self {
        Self {
            zlib: Decompress::new(true),
        }
    }

    /// Decodes one frame's compressed block, which must hold all of it.
    pub(super) fn decompress(&mut self, block: &[u8]) -> Result<HeaderMap, FrameError> {
        let plain = self.inflate(block)?;
        decode_plain(&plain)
    }

    fn inflate(&mut self, block: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(block.len() * 4 + 64);
        let start_in = self.zlib.total_in();
        loop {
            let done = (self.zlib.total_in() - start_in) as usize;
            match self
                .zlib
                .decompress_vec(&block[done..], &mut out, FlushDecompress::Sync)
            {
                Ok(Status::StreamEnd) => return Err(FrameError::Decompress("zlib stream ended".into())),
                Ok(_) => {}
                // The first block asks for the dictionary named in its zlib header.
                Err(e) if e.needs_dictionary().is_some() => {
                    self.zlib
                        .set_dictionary(&DICTIONARY)
                        .map_err(|e| FrameError::Decompress(e.to_string()))?;
                }
                Err(e) => return Err(FrameError::Decompress(e.to_string())),
            }
            let consumed = (self.zlib.total_in() - start_in) as usize;
            if consumed == block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if out.len() > MAX_BLOCK_LEN {
                return Err(FrameError::HeaderBlockTooLarge);
            }
            out.reserve(out.capacity().max(256));
        }
    }
}

/// `u32 count, then (u32 len, name, u32 len, value)*`, big endian; names lowercase.
fn encode_plain(headers: &HeaderMap) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(64);
    put_u32(&mut out, headers.keys_len())?;
    for name in headers.keys() {
        put_u32(&mut out, name.as_str().len())?;
        out.extend_from_slice(name.as_str().as_bytes());
        let mut joined = Vec::new();
        for (i, value) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                joined.push(VALUE_SEPARATOR);
            }
            joined.extend_from_slice(value.as_bytes());
        }
        put_u32(&mut out, joined.len())?;
        out.extend_from_slice(&joined);
    }
    Ok(out)
}

fn put_u32(out: &mut Vec<u8>, n: usize) -> Result<(), FrameError> {
    let n = u32::try_from(n).map_err(|_| FrameError::HeaderBlockTooLarge)?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

fn decode_plain(mut plain: &[u8]) -> Result<HeaderMap, FrameError> {
    let count = take_u32(&mut plain)?;
    let mut headers = HeaderMap::new();
    for _ in 0..count {
        let name = take_field(&mut plain)?;
        let name = HeaderName::from_bytes(name)
            .map_err(|_| FrameError::InvalidHeader(String::from_utf8_lossy(name).into_owned()))?;
        for value in take_field(&mut plain)?.split(|b| *b == VALUE_SEPARATOR) {
            let value = HeaderValue::from_bytes(value)
                .map_err(|_| FrameError::InvalidHeader(name.as_str().to_owned()))?;
            headers.append(name.clone(), value);
        }
    }
    if !plain.is_empty() {
        return Err(FrameError::Truncated("header block has trailing bytes"));
    }
    Ok(headers)
}

fn take_u32(plain: &mut &[u8]) -> Result<usize, FrameError> {
    let (head, rest) = plain
        .split_first_chunk::<4>()
        .ok_or(FrameError::Truncated("header block length"))?;
    *plain = rest;
    Ok(u32::from_be_bytes(*head) as usize)
}

fn take_field<'a>(plain: &mut &'a [u8]) -> Result<&'a [u8], FrameError> {
    let len = take_u32(plain)?;
    if len > plain.len() {
        return Err(FrameError::Truncated("header field"));
    }
    let (field, rest) = plain.split_at(len);
    *plain = rest;
    Ok(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn blocks_share_one_zlib_stream_per_direction() {
        let mut tx = HeaderCompressor::new();
        let mut rx = HeaderDecompressor::new();
        let blocks = [
            headers(&[("streamtype", "error")]),
            headers(&[("streamtype", "data"), ("port", "8080"), ("requestid", "0")]),
            HeaderMap::new(),
            headers(&[("streamtype", "stdout"), ("x-multi", "a"), ("x-multi", "b")]),
        ];
        let mut wires = Vec::new();
        for block in &blocks {
            let mut wire = Vec::new();
            tx.compress(block, &mut wire).unwrap();
            wires.push(wire);
        }
        // The first block carries the zlib header with FDICT set (RFC 1950: bit 5 of FLG).
        assert_eq!(wires[0][0], 0x78);
        assert_ne!(wires[0][1] & 0x20, 0);
        // Later blocks continue the stream: no new zlib header, and they repeat names
        // already seen, so they are shorter than their plain form.
        assert_ne!(wires[1][0], 0x78);
        for (block, wire) in blocks.iter().zip(&wires) {
            assert_eq!(&rx.decompress(wire).unwrap(), block);
        }
    }

    #[test]
    fn an_out_of_order_block_does_not_decode() {
        let mut tx = HeaderCompressor::new();
        let mut first = Vec::new();
        tx.compress(&headers(&[("streamtype", "error")]), &mut first)
            .unwrap();
        let mut second = Vec::new();
        tx.compress(&headers(&[("streamtype", "data")]), &mut second)
            .unwrap();
        assert!(HeaderDecompressor::new().decompress(&second).is_err());
    }

    #[test]
    fn nul_joined_values_split_into_several() {
        let mut plain = Vec::new();
        plain.extend_from_slice(&1u32.to_be_bytes());
        plain.extend_from_slice(&1u32.to_be_bytes());
        plain.extend_from_slice(b"a");
        plain.extend_from_slice(&3u32.to_be_bytes());
        plain.extend_from_slice(b"x\0y");
        let map = decode_plain(&plain).unwrap();
        let values: Vec<_> = map.get_all("a").iter().collect();
        assert_eq!(values, ["x", "y"]);
        assert_eq!(encode_plain(&map).unwrap(), plain);
    }
}
