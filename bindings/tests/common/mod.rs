//! Shared by the tests that drive the C API against a real banterd.
#![allow(dead_code)] // each test binary uses a different part

use std::ffi::{CStr, c_char};
use std::ptr;

use banter::*;

/// Registers `user` on `server` through the C API, pinning a certificate fingerprint or
/// (without one) accepting any certificate explicitly; the status, the client (NULL unless
/// OK) and banter_last_error().
pub(crate) fn register(
    server: &str,
    user: &str,
    pin: Option<&[u8; 32]>,
) -> (banter_status, *mut banter_client, String) {
    let password = "correct horse battery";
    let mut client = ptr::null_mut();
    // SAFETY: a live config, valid (pointer, length) strings, a 32-byte fingerprint and a
    // writable out-parameter.
    unsafe {
        let config = banter_config_new();
        banter_config_set_server(config, server.as_ptr().cast::<c_char>(), server.len());
        match pin {
            Some(pin) => banter_config_set_pinned_fingerprint(config, pin.as_ptr()),
            None => banter_config_accept_any_certificate(config),
        };
        let status = banter_register(
            config,
            user.as_ptr().cast(),
            user.len(),
            password.as_ptr().cast(),
            password.len(),
            &mut client,
        );
        banter_config_free(config);
        let error = CStr::from_ptr(banter_last_error()).to_string_lossy().into_owned();
        (status, client, error)
    }
}

/// Registers `user`, expecting success.
pub(crate) fn client(server: &str, user: &str) -> *mut banter_client {
    let (status, client, error) = register(server, user, None);
    assert_eq!(status, banter_status::BANTER_OK, "{error}");
    client
}
