//! Arbitrary datagrams into the voice header parser. Must not panic; a parsed header writes
//! back to a header that parses to the same value, in front of the same payload.
#![no_main]

use banter_protocol::datagram::{MAX_HEADER_LEN, VoiceHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok((header, payload)) = VoiceHeader::parse(bytes) {
        let mut out = vec![0u8; MAX_HEADER_LEN];
        let n = header.write(&mut out).expect("a parsed header fits MAX_HEADER_LEN");
        out.truncate(n);
        out.extend_from_slice(payload);
        let (again, again_payload) = VoiceHeader::parse(&out).unwrap();
        // NaN positions compare unequal; compare their bits.
        assert_eq!(again.source, header.source);
        assert_eq!(again.sequence, header.sequence);
        assert_eq!(again.end, header.end);
        assert_eq!(again.position.map(|p| p.map(f32::to_bits)), header.position.map(|p| p.map(f32::to_bits)));
        assert_eq!(again_payload, payload);
    }
});
