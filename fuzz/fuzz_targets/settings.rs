//! Arbitrary SETTINGS bodies.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| banter_protocol::fuzzing::settings_body(data));
