//! Arbitrary bytes, split at an arbitrary point, into the incremental frame decoder.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| banter_protocol::fuzzing::decode_stream(data));
