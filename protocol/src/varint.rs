//! QUIC variable-length integers (RFC 9000 §16), used for every frame header, stream type and
//! SETTINGS entry. postcard bodies use their own LEB128 varints; the two never mix (see
//! `spec/PROTOCOL.md` §3).

use crate::error::DecodeError;

/// The largest value a QUIC varint can hold: 2^62 - 1.
pub const MAX: u64 = (1 << 62) - 1;

/// Number of bytes [`encode`] writes for `value`, or `None` when it exceeds [`MAX`].
pub const fn encoded_len(value: u64) -> Option<usize> {
    match value {
        0..=63 => Some(1),
        64..=16_383 => Some(2),
        16_384..=1_073_741_823 => Some(4),
        1_073_741_824..=MAX => Some(8),
        _ => None,
    }
}

/// Appends `value` in its shortest encoding.
///
/// # Panics
/// When `value > MAX`. Every caller passes a value that is bounded by construction (frame
/// types, lengths of in-memory buffers, setting ids); this is local misuse, never peer input.
pub fn encode(value: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 8];
    let len = write(value, &mut buf).expect("varint value above 2^62-1 is a local bug");
    out.extend_from_slice(&buf[..len]);
}

/// Writes `value` in its shortest encoding into `buf`, returning the byte count; `None` when
/// `value > MAX` or `buf` is too short. Never allocates (the voice datagram path uses it).
pub fn write(value: u64, buf: &mut [u8]) -> Option<usize> {
    let len = encoded_len(value)?;
    let dst = buf.get_mut(..len)?;
    match len {
        1 => dst[0] = value as u8,
        2 => dst.copy_from_slice(&(value as u16 | 0x4000).to_be_bytes()),
        4 => dst.copy_from_slice(&(value as u32 | 0x8000_0000).to_be_bytes()),
        _ => dst.copy_from_slice(&(value | 0xc000_0000_0000_0000).to_be_bytes()),
    }
    Some(len)
}

/// Reads one varint from the front of `bytes`, returning the value and the bytes consumed.
///
/// Returns [`DecodeError::Incomplete`] when `bytes` ends inside the varint. Non-minimal
/// encodings are accepted, as RFC 9000 requires of receivers.
pub fn decode(bytes: &[u8]) -> Result<(u64, usize), DecodeError> {
    let first = *bytes.first().ok_or(DecodeError::Incomplete)?;
    let len = 1usize << (first >> 6);
    let raw = bytes.get(..len).ok_or(DecodeError::Incomplete)?;
    let mut value = u64::from(first & 0x3f);
    for byte in &raw[1..] {
        value = (value << 8) | u64::from(*byte);
    }
    Ok((value, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9000_examples_decode() {
        // RFC 9000 appendix A.1.
        let cases: [(&str, u64); 4] = [
            ("c2197c5eff14e88c", 151_288_809_941_952_652),
            ("9d7f3e7d", 494_878_333),
            ("7bbd", 15_293),
            ("25", 37),
        ];
        for (hex, value) in cases {
            let bytes = hex::decode(hex).unwrap();
            assert_eq!(decode(&bytes).unwrap(), (value, bytes.len()));
        }
        // The non-minimal two-byte encoding of 37 is accepted.
        assert_eq!(decode(&[0x40, 0x25]).unwrap(), (37, 2));
    }

    #[test]
    fn shortest_encoding_round_trips_at_every_boundary() {
        for value in [0, 63, 64, 16_383, 16_384, 1_073_741_823, 1_073_741_824, MAX] {
            let mut out = Vec::new();
            encode(value, &mut out);
            assert_eq!(out.len(), encoded_len(value).unwrap());
            assert_eq!(decode(&out).unwrap(), (value, out.len()));
        }
        assert_eq!(encoded_len(MAX + 1), None);
        assert_eq!(write(MAX + 1, &mut [0; 8]), None);
    }

    #[test]
    fn truncated_varint_is_incomplete_not_malformed() {
        assert_eq!(decode(&[]), Err(DecodeError::Incomplete));
        assert_eq!(decode(&[0x9d, 0x7f, 0x3e]), Err(DecodeError::Incomplete));
    }
}
