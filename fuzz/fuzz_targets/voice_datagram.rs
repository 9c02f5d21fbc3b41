//! Arbitrary datagrams into the voice header parser.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| banter_protocol::fuzzing::voice_datagram(data));
