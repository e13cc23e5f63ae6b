//! Compression of cached objects: each kind's objects are zstd frames against a
//! dictionary that is simply the first object of that kind the shard stored.
//!
//! Objects of one kind share almost all their text (keys, defaults, the stage-written
//! status), so a frame against one of them holds little more than what differs: names,
//! uids, timestamps, IPs. A 2.4 KB pod packs into about 100 bytes, where zstd alone
//! gives 1 KB and lz4 1.4 KB. The cache holds every managed object for as long as it
//! lives, so this is most of kwok's memory per object.
//!
//! # Invariants
//! - A kind's dictionary never changes once set: every stored frame was made with it.
//! - Compression is for memory, never for correctness: if zstd refuses, the text is
//!   kept as it is ([`Packed::raw`]).
//! - A `Packer`'s scratch buffer only grows to the largest object of its kind.
//! - A dictionary is at most [`MAX_DICTIONARY`] bytes, whatever the first object's size.
//! - A kind whose packer zstd refused once is kept raw from then on, not retried (and
//!   logged) per object.

use std::io;

use zstd::bulk::{Compressor, Decompressor};

/// zstd level: the fastest; the dictionary, not the level, makes the ratio.
const LEVEL: i32 = 1;

/// Most bytes of a first object used as its kind's dictionary: one per kind per shard,
/// so a huge first object (a ConfigMap near 1 MiB) must not become one. Objects of the
/// kinds kwok drives are 2–6 KB; their shared text is near the start (apiVersion, kind,
/// metadata keys, spec).
const MAX_DICTIONARY: usize = 16 * 1024;

/// The dictionary made from a kind's first object: its first [`MAX_DICTIONARY`] bytes.
fn dictionary(sample: &[u8]) -> &[u8] {
    &sample[..sample.len().min(MAX_DICTIONARY)]
}

/// One object's JSON text, packed.
#[derive(Debug)]
pub struct Packed {
    bytes: Box<[u8]>,
    /// Length of the text (the frame's content size).
    len: u32,
    /// `bytes` is a zstd frame (else the text itself).
    packed: bool,
}

impl Packed {
    /// Text kept as it is.
    pub fn raw(text: &str) -> Self {
        Self {
            bytes: text.as_bytes().into(),
            len: text.len() as u32,
            packed: false,
        }
    }

    /// Bytes held.
    #[cfg(test)]
    pub fn size(&self) -> usize {
        self.bytes.len()
    }
}

/// The compressor and decompressor of one kind, with their dictionary.
pub struct Packer {
    compressor: Compressor<'static>,
    decompressor: Decompressor<'static>,
    /// Scratch for frames being made and text being unpacked (kept: no allocation per call).
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Packer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packer").finish_non_exhaustive()
    }
}

impl Packer {
    /// A packer whose dictionary is made from `sample` (raw content: any text of the kind).
    fn new(sample: &[u8]) -> io::Result<Self> {
        let dictionary = dictionary(sample);
        Ok(Self {
            compressor: Compressor::with_dictionary(LEVEL, dictionary)?,
            decompressor: Decompressor::with_dictionary(dictionary)?,
            scratch: Vec::new(),
        })
    }

    fn pack(&mut self, text: &str) -> io::Result<Packed> {
        self.scratch.clear();
        self.scratch.reserve(zstd::zstd_safe::compress_bound(text.len()));
        let n = self
            .compressor
            .compress_to_buffer(text.as_bytes(), &mut self.scratch)?;
        Ok(Packed {
            bytes: self.scratch[..n].into(),
            len: text.len() as u32,
            packed: true,
        })
    }

    /// Runs `f` on the text of `packed`.
    fn with_text<R>(&mut self, packed: &Packed, f: impl FnOnce(&[u8]) -> R) -> io::Result<R> {
        self.scratch.clear();
        self.scratch.reserve(packed.len as usize);
        self.decompressor
            .decompress_to_buffer(&packed.bytes, &mut self.scratch)?;
        Ok(f(&self.scratch))
    }
}

/// A kind's packer, once its first object was seen.
#[derive(Debug, Default)]
enum Slot {
    /// No object of the kind stored yet.
    #[default]
    Unset,
    Ready(Packer),
    /// zstd refused to make one: the kind is kept raw.
    Refused,
}

/// The packers of a shard, one per kind (index into the kinds table), each made from
/// the first object of its kind.
#[derive(Debug, Default)]
pub struct Packers {
    kinds: Vec<Slot>,
}

impl Packers {
    /// Packs `text`, an object of `kind`.
    pub fn pack(&mut self, kind: usize, text: &str) -> Packed {
        if self.kinds.len() <= kind {
            self.kinds.resize_with(kind + 1, Slot::default);
        }
        let slot = &mut self.kinds[kind];
        if matches!(slot, Slot::Unset) {
            *slot = match Packer::new(text.as_bytes()) {
                Ok(packer) => Slot::Ready(packer),
                Err(e) => {
                    tracing::warn!(kind, error = %e, "cannot compress cached objects; keeping them as text");
                    Slot::Refused
                }
            };
        }
        match slot {
            Slot::Ready(packer) => packer.pack(text).unwrap_or_else(|_| Packed::raw(text)),
            Slot::Unset | Slot::Refused => Packed::raw(text),
        }
    }

    /// Runs `f` on the text of `packed`, an object of `kind` packed by [`Self::pack`];
    /// `None` (logged) if it cannot be unpacked, which would be a bug: a frame is made
    /// only by its kind's packer, and packers are never dropped.
    pub fn with_text<R>(&mut self, kind: usize, packed: &Packed, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        if !packed.packed {
            return Some(f(&packed.bytes));
        }
        let Some(Slot::Ready(packer)) = self.kinds.get_mut(kind) else {
            tracing::error!(kind, "no packer for a packed cached object");
            return None;
        };
        packer
            .with_text(packed, f)
            .inspect_err(|e| tracing::error!(kind, error = %e, "cannot unpack a cached object"))
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str) -> String {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"default","uid":"{name}-uid"}},"spec":{{"containers":[{{"name":"app","image":"nginx","resources":{{}}}}],"nodeName":"node-0","tolerations":[{{"effect":"NoExecute","key":"node.kubernetes.io/not-ready","operator":"Exists","tolerationSeconds":300}}]}},"status":{{"phase":"Running","podIP":"{ip}","conditions":[{{"type":"Ready","status":"True"}}]}}}}"#
        )
    }

    #[test]
    fn packed_objects_should_read_back_as_they_were_and_take_far_less_room() {
        let mut packers = Packers::default();
        let texts: Vec<String> = (0..50)
            .map(|i| pod(&format!("web-{i}"), &format!("10.0.0.{i}")))
            .collect();
        let packed: Vec<Packed> = texts.iter().map(|t| packers.pack(1, t)).collect();
        for (text, packed) in texts.iter().zip(&packed) {
            let back = packers
                .with_text(1, packed, |b| String::from_utf8(b.to_vec()).unwrap())
                .unwrap();
            assert_eq!(&back, text);
        }
        let raw: usize = texts.iter().map(String::len).sum();
        let held: usize = packed.iter().map(Packed::size).sum();
        assert!(held * 5 < raw, "{held} bytes held for {raw} of text");
    }

    #[test]
    fn kinds_should_have_their_own_dictionaries() {
        let mut packers = Packers::default();
        let node = r#"{"kind":"Node","metadata":{"name":"n"}}"#;
        let a = packers.pack(0, node);
        let b = packers.pack(3, &pod("p", "10.0.0.1"));
        assert_eq!(packers.with_text(0, &a, <[u8]>::to_vec).unwrap(), node.as_bytes());
        assert_eq!(
            packers.with_text(3, &b, <[u8]>::to_vec).unwrap(),
            pod("p", "10.0.0.1").as_bytes()
        );
    }

    #[test]
    fn raw_text_should_read_back_without_a_packer() {
        let mut packers = Packers::default();
        let raw = Packed::raw("{}");
        assert_eq!(packers.with_text(7, &raw, <[u8]>::to_vec).unwrap(), b"{}");
    }

    #[test]
    fn a_huge_first_object_should_give_a_capped_dictionary_and_still_pack() {
        // A ConfigMap-like first object of 1 MiB.
        let huge = format!(
            r#"{{"kind":"ConfigMap","data":{{"blob":"{}"}}}}"#,
            "x".repeat(1 << 20)
        );
        assert_eq!(dictionary(huge.as_bytes()).len(), MAX_DICTIONARY);
        assert_eq!(dictionary(b"{}"), b"{}", "small objects are used whole");
        let mut packers = Packers::default();
        let first = packers.pack(0, &huge);
        let small = r#"{"kind":"ConfigMap","data":{"a":"b"}}"#;
        let second = packers.pack(0, small);
        assert_eq!(
            packers.with_text(0, &first, <[u8]>::to_vec).unwrap(),
            huge.as_bytes()
        );
        assert_eq!(
            packers.with_text(0, &second, <[u8]>::to_vec).unwrap(),
            small.as_bytes()
        );
    }
}
