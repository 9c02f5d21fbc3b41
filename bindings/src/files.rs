//! File sharing through the C ABI: upload and download with a progress callback, which runs
//! on the calling thread (the one blocked in the call), so it may touch the caller's state
//! without locks.

use std::ffi::{c_char, c_void};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use banter_protocol::ids::RoomId;

use crate::client::{banter_client, client_ref};
use crate::status::banter_status::*;
use crate::status::*;

/// Told how far a transfer got: `user_data` as given, bytes done, bytes in all.
pub type banter_progress_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, done: u64, total: u64)>;

enum Step<T> {
    Progress(u64, u64),
    Done(Result<T, Failure>),
}

/// Reports progress to the calling thread.
type Report = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// A transfer's work on the runtime.
type Transfer<T> = Pin<Box<dyn Future<Output = Result<T, Failure>> + Send>>;

/// Runs `transfer` on the client's runtime, calling `progress` on this thread as it goes,
/// and returns its outcome. Waiting for a connection is bounded
/// like every call (BANTER_TIMEOUT); the transfer itself takes as long as the file needs,
/// and a connection lost under it ends it with an error.
fn run_transfer<T: Send + 'static>(
    client: &banter_client,
    progress: banter_progress_callback,
    user_data: *mut c_void,
    transfer: impl FnOnce(::banter_client::Connection, Report) -> Transfer<T> + Send + 'static,
) -> Result<T, Failure> {
    let runtime = client
        .runtime
        .as_ref()
        .ok_or_else(|| Failure::new(BANTER_INTERNAL, "client is shutting down"))?;
    let (steps, received) = std::sync::mpsc::channel();
    let sdk = client.client.clone();
    let done = steps.clone();
    // The SDK reports once per percent; each report wakes this thread.
    let report: Report = Arc::new(move |done: u64, total: u64| {
        let _ = steps.send(Step::Progress(done, total));
    });
    runtime.spawn(async move {
        let outcome =
            match tokio::time::timeout(crate::client::CALL_TIMEOUT, sdk.connection()).await {
                Ok(Ok(conn)) => transfer(conn, report).await,
                Ok(Err(error)) => Err(error.into()),
                Err(_) => Err(Failure::new(BANTER_TIMEOUT, "no connection in time")),
            };
        let _ = done.send(Step::Done(outcome));
    });
    loop {
        match received.recv() {
            Ok(Step::Progress(done, total)) => {
                if let Some(callback) = progress {
                    // SAFETY: the application registered this function for this call shape.
                    unsafe { callback(user_data, done, total) };
                }
            }
            Ok(Step::Done(outcome)) => return outcome,
            Err(_) => return Err(Failure::new(BANTER_INTERNAL, "the transfer task ended")),
        }
    }
}

/// Shares the file at `path` in `room` under `name` (empty: the file's own name); the
/// FILE_SHARED entry's seq in `*seq_out`. An interrupted upload of the same content resumes
/// where the server's copy ends. `progress` (may be NULL) is called on this thread.
///
/// # Safety
/// `client` is a live client; strings are (pointer, length); `seq_out` is writable;
/// `user_data` is passed to `progress` untouched.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_upload(
    client: *const banter_client,
    room: u64,
    path: *const c_char,
    path_len: usize,
    name: *const c_char,
    name_len: usize,
    progress: banter_progress_callback,
    user_data: *mut c_void,
    seq_out: *mut u64,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        // SAFETY: forwarded caller contract.
        let path = PathBuf::from(unsafe { str_arg(path, path_len) }?);
        // SAFETY: forwarded caller contract.
        let name = unsafe { str_arg(name, name_len) }?;
        let name = match name {
            "" => path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| Failure::new(BANTER_INVALID_ARGUMENT, "the path has no file name"))?
                .to_owned(),
            given => given.to_owned(),
        };
        if seq_out.is_null() {
            return Err(Failure::new(BANTER_NULL_ARGUMENT, "NULL out-parameter"));
        }
        let ack = run_transfer(client, progress, user_data, move |conn, report| {
            Box::pin(async move {
                Ok(conn.upload_with_progress(RoomId(room), &name, &path, &*report).await?)
            })
        })?;
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { write_out(seq_out, ack.seq) }
    })
}

/// Fetches the file shared at `seq` in `room` into `path`, which must not exist (an existing
/// file is never replaced). The bytes are checked against the SHA-256 the server names; an
/// interrupted download continues from `PATH.part`. `progress` (may be NULL) is called on
/// this thread.
///
/// # Safety
/// `client` is a live client; `path` is (pointer, length); `user_data` is passed to
/// `progress` untouched.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_download(
    client: *const banter_client,
    room: u64,
    seq: u64,
    path: *const c_char,
    path_len: usize,
    progress: banter_progress_callback,
    user_data: *mut c_void,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        // SAFETY: forwarded caller contract.
        let path = PathBuf::from(unsafe { str_arg(path, path_len) }?);
        run_transfer(client, progress, user_data, move |conn, report| {
            Box::pin(async move {
                conn.download_with_progress(RoomId(room), seq, &path, &*report).await?;
                Ok(())
            })
        })
    })
}
