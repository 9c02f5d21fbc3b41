//! Framing (spec §4): every frame on every stream is
//!
//! ```text
//! Frame {
//!   Type (i),              QUIC varint
//!   Length (i),            QUIC varint, ≤ the receiver's max_frame_size
//!   Body (..Length),       postcard (or SETTINGS' own key/value layout)
//! }
//! ```
//!
//! [`FrameDecoder`] is the incremental reader: feed it whatever a stream read returned (a frame
//! split anywhere, several frames at once) and take whole frames out. It checks the declared
//! length against the maximum before it buffers a byte of the body.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

use crate::error::DecodeError;
use crate::message::Message;
use crate::varint;

/// The default (and minimum a peer may advertise) maximum frame size: 64 KiB (spec §5.1).
pub const DEFAULT_MAX_FRAME_SIZE: u64 = 64 * 1024;

/// A frame type. Open: types this build does not know are carried, and skipped by readers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameType(pub u64);

impl FrameType {
    /// True for the reserved GREASE values (spec §10.5).
    pub fn is_grease(self) -> bool {
        crate::grease::is_grease(self.0)
    }
}

impl fmt::Debug for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match crate::message::registry_entry(*self) {
            Some(info) => write!(f, "{}({:#x})", info.name, self.0),
            None => write!(f, "FrameType({:#x})", self.0),
        }
    }
}

/// One frame as read off a stream: its type and undecoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// The frame type.
    pub frame_type: FrameType,
    /// The body bytes (exactly `Length` of them).
    pub body: Bytes,
}

/// Writes a frame header followed by `body`.
pub fn encode_raw(frame_type: FrameType, body: &[u8], out: &mut Vec<u8>) {
    varint::encode(frame_type.0, out);
    varint::encode(body.len() as u64, out);
    out.extend_from_slice(body);
}

/// Reads exactly one frame from `bytes`, which must hold it completely and nothing more.
/// For vectors and tests; streams use [`FrameDecoder`].
pub fn decode_exact(bytes: &[u8], max_frame_size: u64) -> Result<RawFrame, DecodeError> {
    let mut decoder = FrameDecoder::new(max_frame_size);
    decoder.push(bytes);
    match decoder.next_frame()? {
        Some(frame) if decoder.buffered() == 0 => Ok(frame),
        Some(_) => Err(DecodeError::TrailingBytes { extra: decoder.buffered() }),
        None => Err(DecodeError::Truncated),
    }
}

/// Incremental frame reader for one stream.
///
/// Call [`push`](Self::push) with each chunk read, then [`next_frame`](Self::next_frame) (or
/// [`next_message`](Self::next_message)) until it returns `Ok(None)`. At end of stream call
/// [`finish`](Self::finish): a partial frame left over is [`DecodeError::Truncated`].
/// After an error the stream is unusable; the caller closes it with [`DecodeError::code`].
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: BytesMut,
    max_frame_size: u64,
    skipped: u64,
}

impl FrameDecoder {
    /// A reader that accepts frames of up to `max_frame_size` body bytes.
    pub fn new(max_frame_size: u64) -> Self {
        Self { buffer: BytesMut::new(), max_frame_size, skipped: 0 }
    }

    /// Changes the limit, e.g. once SETTINGS are known. Applies to frames not yet started.
    pub fn set_max_frame_size(&mut self, max_frame_size: u64) {
        self.max_frame_size = max_frame_size;
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes held that do not yet form a whole frame (or have not been taken).
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Frames of unknown type skipped by [`next_message`](Self::next_message) so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Takes the next whole frame, or `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<RawFrame>, DecodeError> {
        let (frame_type, type_len) = match varint::decode(&self.buffer) {
            Ok(v) => v,
            Err(DecodeError::Incomplete) => return Ok(None),
            Err(e) => return Err(e),
        };
        let rest = &self.buffer[type_len..];
        let (len, len_len) = match varint::decode(rest) {
            Ok(v) => v,
            Err(DecodeError::Incomplete) => return Ok(None),
            Err(e) => return Err(e),
        };
        // spec §4.2: the length is checked before any of the body is buffered or allocated.
        if len > self.max_frame_size {
            return Err(DecodeError::FrameTooLarge { len, max: self.max_frame_size });
        }
        let header = type_len + len_len;
        // `len` ≤ max_frame_size, which fits in usize on every supported target.
        let total = header + len as usize;
        if self.buffer.len() < total {
            self.buffer.reserve(total - self.buffer.len());
            return Ok(None);
        }
        self.buffer.advance(header);
        let body = self.buffer.split_to(len as usize).freeze();
        Ok(Some(RawFrame { frame_type: FrameType(frame_type), body }))
    }

    /// Takes the next frame of a registered type, decoded; unknown types (GREASE included)
    /// are skipped and counted (spec §4.3). `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        while let Some(frame) = self.next_frame()? {
            match Message::decode(frame.frame_type, &frame.body) {
                Err(DecodeError::UnknownFrameType(_)) => self.skipped += 1,
                other => return other.map(Some),
            }
        }
        Ok(None)
    }

    /// Call at end of stream: fails when a partial frame is left over.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.buffer.is_empty() { Ok(()) } else { Err(DecodeError::Truncated) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(bytes: &[u8]) -> Vec<RawFrame> {
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_SIZE);
        decoder.push(bytes);
        let mut out = Vec::new();
        while let Some(frame) = decoder.next_frame().unwrap() {
            out.push(frame);
        }
        decoder.finish().unwrap();
        out
    }

    #[test]
    fn several_frames_in_one_read_come_out_in_order() {
        let mut bytes = Vec::new();
        encode_raw(FrameType(0x02), b"ab", &mut bytes);
        encode_raw(FrameType(0x3fff), &[7; 300], &mut bytes);
        encode_raw(FrameType(0x05), b"", &mut bytes);
        let got = frames(&bytes);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].body.as_ref(), b"ab");
        assert_eq!(got[1].frame_type, FrameType(0x3fff));
        assert_eq!(got[1].body.len(), 300);
        assert!(got[2].body.is_empty());
    }

    #[test]
    fn a_frame_split_at_every_point_decodes_the_same() {
        let mut bytes = Vec::new();
        encode_raw(FrameType(0x41), &[1; 100], &mut bytes);
        encode_raw(FrameType(0x02), b"xy", &mut bytes);
        let whole = frames(&bytes);
        for split in 0..=bytes.len() {
            let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_SIZE);
            let mut got = Vec::new();
            for part in [&bytes[..split], &bytes[split..]] {
                decoder.push(part);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    got.push(frame);
                }
            }
            assert_eq!(got, whole, "split at {split}");
        }
    }

    #[test]
    fn an_oversized_length_fails_before_the_body_arrives() {
        let mut decoder = FrameDecoder::new(1024);
        // Type 1, length 2^30: only the header has arrived.
        decoder.push(&[0x01, 0xc0, 0, 0, 0, 0x40, 0, 0, 0]);
        assert_eq!(
            decoder.next_frame(),
            Err(DecodeError::FrameTooLarge { len: 1 << 30, max: 1024 })
        );
        assert!(decoder.buffer.capacity() < 4096, "nothing was reserved for the body");
    }

    #[test]
    fn a_partial_frame_at_end_of_stream_is_truncated() {
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_SIZE);
        decoder.push(&[0x02, 0x05, 1, 2]);
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(decoder.finish(), Err(DecodeError::Truncated));
    }
}
