//! Structure-aware: any message encodes, and decodes back to itself.
#![no_main]

use banter_protocol::{FrameDecoder, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|message: Message| {
    let mut bytes = Vec::new();
    message.encode(&mut bytes);
    let mut decoder = FrameDecoder::new(64 * 1024);
    decoder.push(&bytes);
    assert_eq!(decoder.next_message().unwrap(), Some(message));
    assert_eq!(decoder.buffered(), 0);
});
