//! Access and refresh tokens: forged or bent tokens never verify, parsing never panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| banter_server::auth::fuzz_tokens(data));
