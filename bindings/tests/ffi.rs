//! The C functions called from Rust: NULL and invalid arguments give errors, never crashes.

use std::ffi::CStr;
use std::ptr;

use banter::*;

#[test]
fn null_and_invalid_arguments_are_errors_with_a_message() {
    // SAFETY: every pointer passed is NULL, a live handle, or valid for the length given,
    // as the C API requires.
    unsafe {
        assert_eq!(
            banter_client_send(ptr::null(), 1, c"x".as_ptr(), 1, 0, ptr::null_mut()),
            banter_status::BANTER_NULL_ARGUMENT
        );
        let message = CStr::from_ptr(banter_last_error()).to_str().unwrap();
        assert!(message.contains("NULL"), "{message}");
        assert_eq!(
            banter_config_set_server(ptr::null_mut(), c"x".as_ptr(), 1),
            banter_status::BANTER_NULL_ARGUMENT
        );

        let config = banter_config_new();
        assert_eq!(
            banter_config_set_server(config, ptr::null(), 5),
            banter_status::BANTER_NULL_ARGUMENT
        );
        assert_eq!(
            banter_config_set_server(config, b"\xff\xfe".as_ptr().cast(), 2),
            banter_status::BANTER_INVALID_UTF8
        );
        assert_eq!(
            banter_config_set_server(config, c"".as_ptr(), 0),
            banter_status::BANTER_INVALID_ARGUMENT
        );
        assert_eq!(
            banter_config_set_server(config, c"127.0.0.1:9".as_ptr(), 11),
            banter_status::BANTER_OK
        );
        assert_eq!(CStr::from_ptr(banter_last_error()).to_bytes(), b"", "success clears the error");
        assert_eq!(
            banter_config_set_pinned_fingerprint(config, ptr::null()),
            banter_status::BANTER_NULL_ARGUMENT
        );
        let mut client = ptr::null_mut();
        assert_eq!(
            banter_login(config, c"ada".as_ptr(), 3, c"pw".as_ptr(), 2, ptr::null_mut()),
            banter_status::BANTER_NULL_ARGUMENT
        );
        assert_eq!(
            banter_login(ptr::null(), c"ada".as_ptr(), 3, c"pw".as_ptr(), 2, &mut client),
            banter_status::BANTER_NULL_ARGUMENT
        );
        assert!(client.is_null(), "out-parameters are written only on success");
        banter_config_free(config);

        let mut event = ptr::null_mut();
        assert_eq!(
            banter_client_poll_event(ptr::null(), 0, &mut event),
            banter_status::BANTER_NULL_ARGUMENT
        );
        assert_eq!(banter_event_get_type(ptr::null()), 0);
        assert_eq!(CStr::from_ptr(banter_event_text(ptr::null())).to_bytes(), b"");
        assert_eq!(banter_history_len(ptr::null()), 0);
        assert!(banter_history_get(ptr::null(), 0).is_null());
        assert_eq!(banter_client_event_fd(ptr::null()), -1);
        banter_client_free(ptr::null_mut());
        banter_config_free(ptr::null_mut());
        banter_event_free(ptr::null_mut());
        banter_history_free(ptr::null_mut());
    }
}

#[test]
fn versions_and_status_names_are_static_strings() {
    assert_eq!(banter_abi_version(), 1);
    // SAFETY: both return static NUL-terminated strings.
    unsafe {
        assert_eq!(CStr::from_ptr(banter_version()).to_str().unwrap(), env!("CARGO_PKG_VERSION"));
        assert_eq!(
            CStr::from_ptr(banter_status_str(banter_status::BANTER_TIMEOUT)).to_str().unwrap(),
            "timed out"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_certificate_does_not_match_the_pin_is_refused_as_untrusted() {
    let server = banter_tests::TestServer::start().await;
    let addr = server.addr().to_string();
    let (status, message) = tokio::task::spawn_blocking(move || {
        // SAFETY: a live config, valid (pointer, length) strings, a 32-byte fingerprint and a
        // writable out-parameter.
        unsafe {
            let config = banter_config_new();
            banter_config_set_server(config, addr.as_ptr().cast(), addr.len());
            banter_config_set_pinned_fingerprint(config, [0u8; 32].as_ptr());
            let mut client = ptr::null_mut();
            let status =
                banter_register(config, c"ada".as_ptr(), 3, c"pw".as_ptr(), 2, &mut client);
            banter_config_free(config);
            assert!(client.is_null());
            (status, CStr::from_ptr(banter_last_error()).to_string_lossy().into_owned())
        }
    })
    .await
    .unwrap();
    assert_eq!(status, banter_status::BANTER_CERTIFICATE_UNTRUSTED, "{message}");
    assert!(message.contains("pinned fingerprint"), "{message}");
}
