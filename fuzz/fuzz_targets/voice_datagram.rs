//! Arbitrary datagrams into the voice header parser, and the same bytes as a voice tunnel
//! stream into the tunnel record reader.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    banter_protocol::fuzzing::voice_datagram(data);
    banter_protocol::fuzzing::voice_tunnel(data);
});
