//! A numbered event encoded once and stamped with each session's event number. Every
//! session gets its own `event_seq` (spec §7.2), so a fan-out to N sessions used to encode N
//! frames; every numbered event's body starts with that number (a postcard LEB128 varint), so
//! the rest of the body is the same for all of them and is encoded once.

use super::Message;
use crate::varint;

/// An event frame minus its event number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampedEvent {
    /// The frame type, as encoded.
    head: Vec<u8>,
    /// The body after the event number.
    rest: Vec<u8>,
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
        (first == seq)
            .then(|| Self { head: frame[..type_len].to_vec(), rest: body[used..].to_vec() })
    }

    /// The frame with `event_seq`, appended to `out`.
    pub fn encode(&self, event_seq: u64, out: &mut Vec<u8>) {
        let mut seq = [0u8; 10];
        let seq_len = leb128_encode(event_seq, &mut seq);
        let body_len = seq_len + self.rest.len();
        out.reserve(self.head.len() + 8 + body_len);
        out.extend_from_slice(&self.head);
        varint::encode(body_len as u64, out);
        out.extend_from_slice(&seq[..seq_len]);
        out.extend_from_slice(&self.rest);
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
