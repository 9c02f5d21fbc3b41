//! A numbered event encoded once and stamped with each session's event number. Every
//! session gets its own `event_seq` (spec §7.2), so a fan-out to N sessions used to encode N
//! frames; every numbered event's body starts with that number (a postcard LEB128 varint), so
//! the rest of the body is the same for all of them and is encoded once. Each session's copy
//! ([`EventFrame`]) holds only its own few bytes and shares that rest: a fan-out allocates
//! nothing per recipient.

use bytes::Bytes;

use super::Message;
use crate::varint;

/// An event frame minus its event number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampedEvent {
    /// The frame type, as encoded.
    head: Vec<u8>,
    /// The body after the event number, shared by every stamp.
    rest: Bytes,
}

impl StampedEvent {
    /// Encodes `event` once; `None` for a message that is not a numbered event.
    pub fn new(event: &Message) -> Option<Self> {
        let seq = event.event_seq()?;
        let mut frame = Vec::new();
        event.encode(&mut frame);
        let (_, type_len) = varint::decode(&frame).ok()?;
        let (_, length_len) = varint::decode(&frame[type_len..]).ok()?;
        let body = &frame[type_len + length_len..];
        let (first, used) = leb128_decode(body)?;
        // The body's first field must be the event number; anything else is a bug here.
        (first == seq).then(|| Self {
            head: frame[..type_len].to_vec(),
            rest: Bytes::copy_from_slice(&body[used..]),
        })
    }

    /// The frame with `event_seq`.
    pub fn stamp(&self, event_seq: u64) -> EventFrame {
        let mut seq = [0u8; 10];
        let seq_len = leb128_encode(event_seq, &mut seq);
        let mut head = [0u8; EventFrame::HEAD_MAX];
        let type_len = self.head.len();
        head[..type_len].copy_from_slice(&self.head);
        let body_len = (seq_len + self.rest.len()) as u64;
        let length_len = varint::write(body_len, &mut head[type_len..])
            .expect("a frame type and a body length, 8 bytes at most each, fit in HEAD_MAX");
        let seq_at = type_len + length_len;
        head[seq_at..seq_at + seq_len].copy_from_slice(&seq[..seq_len]);
        EventFrame { head, head_len: (seq_at + seq_len) as u8, rest: self.rest.clone() }
    }
}

/// One session's copy of a frame on its events stream: the bytes that differ per session
/// (frame type, body length, event number) inline, the rest shared. Cloning copies no frame
/// bytes.
#[derive(Debug, Clone)]
pub struct EventFrame {
    head: [u8; Self::HEAD_MAX],
    head_len: u8,
    rest: Bytes,
}

impl EventFrame {
    /// A frame type (a varint, at most 8 bytes), a body length (the same) and an event number
    /// (a LEB128 u64, at most 10).
    const HEAD_MAX: usize = 26;

    /// Encoded length in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.head_len) + self.rest.len()
    }

    /// Whether the frame has no bytes at all (never one that was encoded).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame's bytes, in order.
    fn bytes(&self) -> impl Iterator<Item = &u8> {
        self.head[..usize::from(self.head_len)].iter().chain(self.rest.iter())
    }

    /// Appends the frame's bytes to `out`.
    pub fn append_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head[..usize::from(self.head_len)]);
        out.extend_from_slice(&self.rest);
    }
}

/// Frames are equal when their bytes are, however they are held.
impl PartialEq for EventFrame {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.bytes().eq(other.bytes())
    }
}

impl Eq for EventFrame {}

/// A frame encoded whole (one not stamped from a shared event).
impl From<Vec<u8>> for EventFrame {
    fn from(frame: Vec<u8>) -> Self {
        Self { head: [0; Self::HEAD_MAX], head_len: 0, rest: frame.into() }
    }
}

/// postcard's unsigned varint: 7 bits a byte, low first, high bit set on all but the last.
fn leb128_encode(mut value: u64, out: &mut [u8; 10]) -> usize {
    let mut n = 0;
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out[n] = byte;
            return n + 1;
        }
        out[n] = byte | 0x80;
        n += 1;
    }
}

fn leb128_decode(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{RoomId, Timestamp, UserId};
    use crate::message::{EventMeta, Posted, max};

    fn posted(event_seq: u64, text_len: usize) -> Message {
        let meta = EventMeta { room: RoomId(1), seq: 2, ts: Timestamp(3), sender: UserId(4) };
        let text = "x".repeat(text_len).try_into().unwrap();
        Posted { event_seq, meta, client_msg_id: None, reply_to: None, text }.into()
    }

    #[test]
    fn a_stamp_is_the_full_encoding_byte_for_byte_across_every_length_boundary() {
        // Event numbers of each LEB128 length, and bodies whose length varint grows from one
        // byte to two (63/64) and from two to four (16383/16384) as the number grows.
        let numbers = [0, 1, 127, 128, 16_383, 16_384, 1 << 35, u64::MAX];
        let near = |edge: usize| edge.saturating_sub(30)..edge + 2;
        for text_len in near(64).chain(near(16_384).filter(|n| *n <= max::MESSAGE_TEXT)) {
            let stamped = StampedEvent::new(&posted(0, text_len)).unwrap();
            for seq in numbers {
                let mut whole = Vec::new();
                posted(seq, text_len).encode(&mut whole);
                let frame = stamped.stamp(seq);
                let mut bytes = Vec::new();
                frame.append_to(&mut bytes);
                assert_eq!(bytes, whole, "text {text_len}, event_seq {seq}");
                assert_eq!(frame.len(), whole.len());
                assert_eq!(frame, EventFrame::from(whole), "equal by bytes");
            }
        }
    }

    #[test]
    fn leb128_round_trips_at_every_length() {
        for value in [0, 1, 127, 128, 16_383, 16_384, 1 << 35, u64::MAX] {
            let mut buf = [0u8; 10];
            let n = leb128_encode(value, &mut buf);
            assert_eq!(leb128_decode(&buf[..n]), Some((value, n)));
            let mut postcard = Vec::new();
            crate::message::postcard_encode(&value, &mut postcard);
            assert_eq!(&buf[..n], &postcard[..], "{value} as postcard encodes it");
        }
    }
}
