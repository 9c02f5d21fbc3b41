//! Arbitrary bytes as one request stream, served in process on a fresh or an authenticated
//! connection of a real (on-disk) banterd state.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| banter_server::fuzzing::request_stream(data));
