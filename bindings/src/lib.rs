//! # libbanter
//!
//! The C ABI of the Banter client (`include/banter.h`), a thin layer over `banter-client`.
//!
//! Conventions, for C programmers:
//!
//! - **Handles.** `banter_config` and `banter_client` are opaque; create them with `_new` /
//!   `banter_register` / `banter_login`, release them with their `_free`. `_free(NULL)` does
//!   nothing. Events (`banter_event`), history pages (`banter_history`) and search pages
//!   (`banter_search_page`) returned to you are yours and freed with their `_free`; a
//!   `banter_event` borrowed from a history page or passed to a callback, or a hit borrowed
//!   from a search page, is not (do not free it, do not keep it).
//! - **Strings in** are `(pointer, length)` pairs of UTF-8, not NUL-terminated; invalid UTF-8
//!   is `BANTER_INVALID_UTF8`. **Strings out** are NUL-terminated and owned by the object they
//!   come from.
//! - **Errors.** Every fallible function returns a `banter_status`; out-parameters are written
//!   only on `BANTER_OK`. After a failure, `banter_last_error()` describes it (per thread) and
//!   `banter_last_server_error()` gives the protocol error code when the server refused.
//!   `NULL` where a pointer is required is `BANTER_NULL_ARGUMENT`, never a crash. No panic
//!   crosses the boundary (it becomes `BANTER_PANIC`).
//! - **Threads.** A `banter_client` may be used from any number of threads at once. Functions
//!   block the calling thread until the server answers; the client's network work runs on
//!   its own threads (a tokio runtime inside the handle), never on yours. Callbacks run on a
//!   dedicated library thread and may call back into the library.
//! - **Events** arrive three ways: `banter_client_poll_event` with a timeout, a file descriptor
//!   (`banter_client_event_fd`) that is readable while events wait (for your own event loop),
//!   or a callback (`banter_client_set_callback`).
//! - **Voice** is PCM: push 20 ms frames of 48 kHz mono 16-bit samples that the user says, pull
//!   20 ms frames of what they hear (everyone else, mixed); Opus, the jitter buffer and loss
//!   recovery are inside.

#![allow(non_camel_case_types)] // C names

mod client;
mod community;
mod config;
mod event;
mod files;
mod search;
mod status;

pub use client::*;
pub use community::*;
pub use config::*;
pub use event::*;
pub use files::*;
pub use search::*;
pub use status::*;

/// The library version, e.g. `"0.1.0"` (NUL-terminated, static).
#[unsafe(no_mangle)]
pub extern "C" fn banter_version() -> *const std::ffi::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The ABI version of the library; equals `BANTER_ABI_VERSION` of a matching header.
#[unsafe(no_mangle)]
pub extern "C" fn banter_abi_version() -> u32 {
    1
}
