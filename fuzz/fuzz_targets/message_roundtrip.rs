//! Structure-aware: any message encodes, and decodes back to itself.
#![no_main]
libfuzzer_sys::fuzz_target!(|message: banter_protocol::Message| {
    banter_protocol::fuzzing::message_roundtrip(&message)
});
