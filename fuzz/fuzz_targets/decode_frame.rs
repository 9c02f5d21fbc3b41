//! Arbitrary bytes, split at an arbitrary point, into the incremental frame decoder. Must not
//! panic; whatever decodes must re-encode to something that decodes to the same message.
#![no_main]

use banter_protocol::FrameDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, &[u8])| {
    let (split, bytes) = input;
    let split = usize::from(split) % (bytes.len() + 1);
    let mut decoder = FrameDecoder::new(64 * 1024);
    for part in [&bytes[..split], &bytes[split..]] {
        decoder.push(part);
        while let Ok(Some(message)) = decoder.next_message() {
            let mut again = Vec::new();
            message.encode(&mut again);
            let mut check = FrameDecoder::new(64 * 1024);
            check.push(&again);
            assert_eq!(check.next_message().unwrap(), Some(message));
        }
    }
});
