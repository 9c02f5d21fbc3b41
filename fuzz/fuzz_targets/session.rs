//! The connection state machines driven by operation sequences.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| banter_protocol::fuzzing::session_ops(data));
