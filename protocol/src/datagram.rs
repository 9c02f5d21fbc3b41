//! The voice datagram (spec §8.2): a 5–6 byte header and one Opus packet, sent as a QUIC
//! datagram (RFC 9221) or as a record on the voice tunnel stream.
//!
//! ```text
//! VoiceDatagram {
//!   Kind (8),            0x01 OPUS_FRAME, 0x02 VOICE_PING
//!   Flags (8),           bit0 END, bit1 POSITIONAL, bits2-3 CTX, bits4-7 zero
//!   Source (i),          c→s: target (0 = the joined room); s→c: the speaker's source id
//!   Sequence (16),       big-endian, +1 per frame
//!   [Position (96)],     3 × f32 little-endian, only with POSITIONAL
//!   Payload (..),        the rest: one Opus packet
//! }
//! ```
//!
//! Parsing borrows, writing fills a caller's buffer: nothing on this path allocates. The
//! server relays a packet by writing a new header in front of the same payload.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::DecodeError;
use crate::varint;

/// The largest header: kind, flags, an 8-byte varint, sequence, position.
pub const MAX_HEADER_LEN: usize = 1 + 1 + 8 + 2 + 12;

/// The largest whole datagram a sender produces (spec §8.2): small enough for any path MTU
/// QUIC allows, and far above a 20 ms Opus frame at 64 kbit/s (about 160 bytes).
pub const MAX_DATAGRAM_LEN: usize = 1100;

/// What a datagram carries. Open: receivers drop and count unknown kinds (never close).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kind(pub u8);

impl Kind {
    /// One Opus packet.
    pub const OPUS_FRAME: Self = Self(0x01);
    /// An echo request/answer for RTT measurement; the payload is opaque and echoed.
    pub const VOICE_PING: Self = Self(0x02);
}

/// The context of a relayed packet (flags bits 2–3, server → client only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// Ordinary speech in the joined room.
    Normal = 0,
    /// Whispered to a target.
    Whisper = 1,
    /// From a priority speaker.
    Priority = 2,
    /// Heard through a listen-only link.
    Listen = 3,
}

const FLAG_END: u8 = 0x01;
const FLAG_POSITIONAL: u8 = 0x02;
const CTX_SHIFT: u8 = 2;

/// A parsed voice header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoiceHeader {
    /// What the payload is.
    pub kind: Kind,
    /// Last frame of a talk spurt.
    pub end: bool,
    /// The context (always `Normal` from a client).
    pub context: Context,
    /// Target (client → server) or source id (server → client).
    pub source: u64,
    /// The 16-bit frame sequence.
    pub sequence: u16,
    /// Position in 3-D space, if sent.
    pub position: Option<[f32; 3]>,
}

impl VoiceHeader {
    /// A plain Opus frame header.
    pub fn opus(source: u64, sequence: u16, end: bool) -> Self {
        Self {
            kind: Kind::OPUS_FRAME,
            end,
            context: Context::Normal,
            source,
            sequence,
            position: None,
        }
    }

    /// Splits a datagram into its header and payload. Reserved flag bits are ignored.
    pub fn parse(datagram: &[u8]) -> Result<(Self, &[u8]), DecodeError> {
        let truncated = |_| DecodeError::Truncated;
        let (&kind, rest) = datagram.split_first().ok_or(DecodeError::Truncated)?;
        let (&flags, rest) = rest.split_first().ok_or(DecodeError::Truncated)?;
        let (source, n) = varint::decode(rest).map_err(truncated)?;
        let rest = &rest[n..];
        let (sequence, rest) = rest.split_first_chunk::<2>().ok_or(DecodeError::Truncated)?;
        let (position, payload) = if flags & FLAG_POSITIONAL != 0 {
            let (pos, payload) = rest.split_first_chunk::<12>().ok_or(DecodeError::Truncated)?;
            let coord = |i: usize| {
                f32::from_le_bytes([pos[i * 4], pos[i * 4 + 1], pos[i * 4 + 2], pos[i * 4 + 3]])
            };
            (Some([coord(0), coord(1), coord(2)]), payload)
        } else {
            (None, rest)
        };
        let context = match (flags >> CTX_SHIFT) & 0b11 {
            0 => Context::Normal,
            1 => Context::Whisper,
            2 => Context::Priority,
            _ => Context::Listen,
        };
        let header = Self {
            kind: Kind(kind),
            end: flags & FLAG_END != 0,
            context,
            source,
            sequence: u16::from_be_bytes(*sequence),
            position,
        };
        Ok((header, payload))
    }

    /// Writes the header into `buf`, returning its length; `None` when `buf` is too short or
    /// `source` exceeds a varint. `buf` of [`MAX_HEADER_LEN`] bytes always suffices.
    pub fn write(&self, buf: &mut [u8]) -> Option<usize> {
        let mut flags = (self.context as u8) << CTX_SHIFT;
        if self.end {
            flags |= FLAG_END;
        }
        if self.position.is_some() {
            flags |= FLAG_POSITIONAL;
        }
        *buf.get_mut(0)? = self.kind.0;
        *buf.get_mut(1)? = flags;
        let mut at = 2 + varint::write(self.source, buf.get_mut(2..)?)?;
        buf.get_mut(at..at + 2)?.copy_from_slice(&self.sequence.to_be_bytes());
        at += 2;
        if let Some(position) = self.position {
            for coord in position {
                buf.get_mut(at..at + 4)?.copy_from_slice(&coord.to_le_bytes());
                at += 4;
            }
        }
        Some(at)
    }

    /// The header's encoded length.
    pub fn len(&self) -> usize {
        let source = varint::encoded_len(self.source).unwrap_or(8);
        4 + source + if self.position.is_some() { 12 } else { 0 }
    }

    /// Always false: a header has at least four bytes. (For clippy's `len` convention.)
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Appends one voice tunnel record (spec §8.4): the datagram's length as a QUIC varint, then
/// the datagram unchanged.
pub fn encode_tunnel_record(datagram: &[u8], out: &mut Vec<u8>) {
    varint::encode(datagram.len() as u64, out);
    out.extend_from_slice(datagram);
}

/// Splits a voice tunnel stream (spec §8.4) into its records as the bytes arrive. A record
/// longer than [`MAX_DATAGRAM_LEN`] is [`DecodeError::FrameTooLarge`], before anything of it
/// is buffered beyond what arrived.
#[derive(Debug, Default)]
pub struct TunnelReader {
    buffer: BytesMut,
}

impl TunnelReader {
    /// An empty reader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole record (one voice datagram), `Ok(None)` until more bytes arrive.
    pub fn next_record(&mut self) -> Result<Option<Bytes>, DecodeError> {
        let (len, used) = match varint::decode(&self.buffer) {
            Ok(found) => found,
            Err(DecodeError::Incomplete) => return Ok(None),
            Err(other) => return Err(other),
        };
        if len > MAX_DATAGRAM_LEN as u64 {
            return Err(DecodeError::FrameTooLarge { len, max: MAX_DATAGRAM_LEN as u64 });
        }
        let len = len as usize;
        if self.buffer.len() < used + len {
            return Ok(None);
        }
        self.buffer.advance(used);
        Ok(Some(self.buffer.split_to(len).freeze()))
    }

    /// Bytes held that do not yet form a whole record.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_records_split_at_any_point_and_oversized_records_are_refused() {
        let datagrams: [&[u8]; 3] = [&[1, 0, 0, 0, 1, 0xfc], &[2, 0, 0, 0, 2], &[0xaa; 300]];
        let mut stream = Vec::new();
        for datagram in datagrams {
            encode_tunnel_record(datagram, &mut stream);
        }
        for split in 0..=stream.len() {
            let mut reader = TunnelReader::new();
            let mut records = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                reader.push(part);
                while let Some(record) = reader.next_record().unwrap() {
                    records.push(record);
                }
            }
            assert_eq!(records, datagrams.map(Bytes::copy_from_slice), "split at {split}");
            assert_eq!(reader.buffered(), 0);
        }
        let mut reader = TunnelReader::new();
        reader.push(&[0x44, 0x4d]); // 1101
        assert_eq!(
            reader.next_record(),
            Err(DecodeError::FrameTooLarge { len: 1101, max: MAX_DATAGRAM_LEN as u64 })
        );
    }

    #[test]
    fn header_round_trips_with_and_without_position() {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let mut header = VoiceHeader::opus(7, 0xbeef, true);
        let n = header.write(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[0x01, 0x01, 0x07, 0xbe, 0xef]);
        assert_eq!(n, header.len());
        let mut datagram = buf[..n].to_vec();
        datagram.extend_from_slice(b"opus");
        assert_eq!(VoiceHeader::parse(&datagram).unwrap(), (header, &b"opus"[..]));

        header.position = Some([1.0, -2.5, 0.0]);
        header.context = Context::Priority;
        header.source = 20_000;
        let n = header.write(&mut buf).unwrap();
        assert_eq!(n, 1 + 1 + 4 + 2 + 12);
        assert_eq!(VoiceHeader::parse(&buf[..n]).unwrap(), (header, &[][..]));
    }

    #[test]
    fn short_datagrams_are_truncated_and_reserved_flags_ignored() {
        for len in 0..4 {
            assert_eq!(VoiceHeader::parse(&[1, 0, 5, 0][..len]), Err(DecodeError::Truncated));
        }
        assert_eq!(VoiceHeader::parse(&[1, 0x02, 5, 0, 1, 0, 0]), Err(DecodeError::Truncated));
        let (header, payload) = VoiceHeader::parse(&[1, 0xf0, 5, 0, 1, 9]).unwrap();
        assert!(!header.end);
        assert_eq!(payload, [9]);
    }

    #[test]
    fn writing_into_a_short_buffer_fails_cleanly() {
        let header = VoiceHeader::opus(1, 1, false);
        assert_eq!(header.write(&mut [0u8; 4]), None);
    }
}
