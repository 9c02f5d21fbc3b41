//! Voice packets as a relay could send them (length-prefixed, with playout ticks) into the
//! client's receive path: header parse, jitter buffer, Opus decode (transpiled libopus), mix.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| banter_client::fuzzing::voice_receive(data));
