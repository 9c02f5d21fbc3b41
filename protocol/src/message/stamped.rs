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
        let mut head = Vec::with_capacity(EventFrame::HEAD_MAX);
        head.extend_from_slice(&self.head);
        varint::encode((seq_len + self.rest.len()) as u64, &mut head);
        head.extend_from_slice(&seq[..seq_len]);
        EventFrame::split(&head, self.rest.clone())
    }
}

/// One session's copy of a frame on its events stream: the bytes that differ per session
/// (frame type, body length, event number) inline, the rest shared. Cloning copies no frame
/// bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFrame {
    head: [u8; Self::HEAD_MAX],
    head_len: u8,
    rest: Bytes,
}

impl EventFrame {
    /// A frame type (a varint, at most 8 bytes), a body length (the same) and an event number
    /// (a LEB128 u64, at most 10).
    const HEAD_MAX: usize = 26;

    /// `head` then `rest`; a head too long to hold inline (none is) joins the rest.
    fn split(head: &[u8], rest: Bytes) -> Self {
        let mut frame = Self { head: [0; Self::HEAD_MAX], head_len: 0, rest };
        if head.len() <= Self::HEAD_MAX {
            frame.head[..head.len()].copy_from_slice(head);
            frame.head_len = head.len() as u8;
        } else {
            frame.rest = [head, &frame.rest].concat().into();
        }
        frame
    }

    /// Encoded length in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.head_len) + self.rest.len()
    }

    /// Whether the frame has no bytes at all (never one that was encoded).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the frame's bytes to `out`.
    pub fn append_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head[..usize::from(self.head_len)]);
        out.extend_from_slice(&self.rest);
    }
}

/// A frame encoded whole (one not stamped from a shared event).
impl From<Vec<u8>> for EventFrame {
    fn from(frame: Vec<u8>) -> Self {
        Self::split(&[], frame.into())
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
