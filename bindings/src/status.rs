//! Status codes, the per-thread last error, argument checks, and the panic boundary every
//! exported function goes through.

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The result of every fallible call. Stable numbers: new codes are added, none is reused.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum banter_status {
    /// Success.
    BANTER_OK = 0,
    /// A required pointer was NULL.
    BANTER_NULL_ARGUMENT = 1,
    /// A string was not UTF-8.
    BANTER_INVALID_UTF8 = 2,
    /// An argument was out of range (too long, zero where an id is needed...).
    BANTER_INVALID_ARGUMENT = 3,
    /// Nothing happened within the timeout.
    BANTER_TIMEOUT = 4,
    /// The server could not be reached.
    BANTER_CONNECT_FAILED = 10,
    /// The server's certificate is not trusted (pin mismatch, unknown CA).
    BANTER_CERTIFICATE_UNTRUSTED = 11,
    /// Wrong credentials, or the session was revoked.
    BANTER_AUTH_FAILED = 12,
    /// The server refused the request; see banter_last_server_error().
    BANTER_SERVER_ERROR = 13,
    /// The connection was lost before an answer arrived.
    BANTER_CONNECTION_LOST = 14,
    /// A bug inside the library (a caught panic).
    BANTER_PANIC = 99,
    /// Anything else.
    BANTER_INTERNAL = 100,
}

use banter_status::*;

/// A failure on its way to C.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: banter_status,
    pub(crate) message: String,
    pub(crate) server_code: u64,
}

impl Failure {
    pub(crate) fn new(status: banter_status, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), server_code: 0 }
    }
}

impl From<::banter_client::RequestError> for Failure {
    fn from(error: ::banter_client::RequestError) -> Self {
        use ::banter_client::RequestError as E;
        use banter_protocol::ErrorCode;
        match &error {
            E::Server { code, .. } => Self {
                status: match *code {
                    ErrorCode::AUTH_FAILED
                    | ErrorCode::SESSION_REVOKED
                    | ErrorCode::TOKEN_EXPIRED => BANTER_AUTH_FAILED,
                    _ => BANTER_SERVER_ERROR,
                },
                message: error.to_string(),
                server_code: code.0,
            },
            E::Untrusted(_) => Self::new(BANTER_CERTIFICATE_UNTRUSTED, error.to_string()),
            E::Connection(_) => Self::new(BANTER_CONNECTION_LOST, error.to_string()),
            E::Protocol(_) | E::Local(_) => Self::new(BANTER_INTERNAL, error.to_string()),
        }
    }
}

struct LastError {
    message: CString,
    server_code: u64,
}

thread_local! {
    static LAST_ERROR: RefCell<LastError> =
        RefCell::new(LastError { message: CString::default(), server_code: 0 });
}

fn set_last_error(message: &str, server_code: u64) {
    let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = LastError { message, server_code });
}

/// Runs `f` behind the panic boundary and records its failure for banter_last_error().
pub(crate) fn guard(f: impl FnOnce() -> Result<(), Failure>) -> banter_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            set_last_error("", 0);
            BANTER_OK
        }
        Ok(Err(failure)) => {
            set_last_error(&failure.message, failure.server_code);
            failure.status
        }
        Err(_) => {
            set_last_error("internal error (panic) in libbanter", 0);
            BANTER_PANIC
        }
    }
}

/// Runs an infallible-looking function behind the panic boundary, with a fallback value.
pub(crate) fn guard_value<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// Borrows a `(pointer, length)` UTF-8 string.
///
/// # Safety
/// `ptr` must be NULL or point to `len` readable bytes that stay valid for `'a`.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, len: usize) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return if len == 0 {
            Ok("")
        } else {
            Err(Failure::new(BANTER_NULL_ARGUMENT, "NULL string"))
        };
    }
    // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    std::str::from_utf8(bytes).map_err(|_| Failure::new(BANTER_INVALID_UTF8, "string is not UTF-8"))
}

/// Writes an out-parameter.
///
/// # Safety
/// `out` must be NULL or valid for a write of `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::new(BANTER_NULL_ARGUMENT, "NULL out-parameter"));
    }
    // SAFETY: checked non-NULL; the caller guarantees it is valid for writes.
    unsafe { out.write(value) };
    Ok(())
}

/// Borrows a handle.
///
/// # Safety
/// `ptr` must be NULL or a live handle of this type from this library.
pub(crate) unsafe fn handle<'a, T>(ptr: *const T) -> Result<&'a T, Failure> {
    // SAFETY: the caller guarantees a live handle or NULL.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::new(BANTER_NULL_ARGUMENT, "NULL handle"))
}

/// A description of the last failure on this thread (empty after a success). The string is
/// owned by the library and valid until the next libbanter call on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn banter_last_error() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().message.as_ptr())
}

/// The protocol error code (spec §9) of the last BANTER_SERVER_ERROR or BANTER_AUTH_FAILED on
/// this thread, else 0.
#[unsafe(no_mangle)]
pub extern "C" fn banter_last_server_error() -> u64 {
    LAST_ERROR.with(|last| last.borrow().server_code)
}

impl banter_status {
    /// Every status, to map an integer from C back to one without undefined behaviour.
    const ALL: [Self; 12] = [
        BANTER_OK,
        BANTER_NULL_ARGUMENT,
        BANTER_INVALID_UTF8,
        BANTER_INVALID_ARGUMENT,
        BANTER_TIMEOUT,
        BANTER_CONNECT_FAILED,
        BANTER_CERTIFICATE_UNTRUSTED,
        BANTER_AUTH_FAILED,
        BANTER_SERVER_ERROR,
        BANTER_CONNECTION_LOST,
        BANTER_PANIC,
        BANTER_INTERNAL,
    ];

    fn name(self) -> &'static str {
        match self {
            BANTER_OK => "ok\0",
            BANTER_NULL_ARGUMENT => "NULL argument\0",
            BANTER_INVALID_UTF8 => "invalid UTF-8\0",
            BANTER_INVALID_ARGUMENT => "invalid argument\0",
            BANTER_TIMEOUT => "timed out\0",
            BANTER_CONNECT_FAILED => "could not connect\0",
            BANTER_CERTIFICATE_UNTRUSTED => "server certificate not trusted\0",
            BANTER_AUTH_FAILED => "authentication failed\0",
            BANTER_SERVER_ERROR => "refused by the server\0",
            BANTER_CONNECTION_LOST => "connection lost\0",
            BANTER_PANIC => "internal error (panic)\0",
            BANTER_INTERNAL => "internal error\0",
        }
    }
}

/// A static, NUL-terminated name for `status`, a banter_status value ("unknown status" for
/// any other number). It takes an integer because C may pass any int where an enum is
/// declared, and a Rust enum holding an undeclared value is undefined behaviour.
#[unsafe(no_mangle)]
pub extern "C" fn banter_status_str(status: u32) -> *const c_char {
    let text = banter_status::ALL
        .iter()
        .find(|known| **known as u32 == status)
        .map_or("unknown status\0", |known| known.name());
    text.as_ptr().cast()
}
