//! UPLOAD and DOWNLOAD (spec §6.9): the two requests that stream, chunk by chunk, on their own
//! request stream. The bytes go to and from [`FileStore`](crate::files::FileStore); the room
//! log only gets a FILE_SHARED entry once a whole, verified file is in place.

use std::time::Duration;

use banter_protocol::ErrorCode;
use banter_protocol::bounded::Blob;
use banter_protocol::message::{Download, FileChunk, FileInfo, Message, Upload, UploadReady, max};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use super::events::{ack, append, check_may_post, member_in, publish, room_in};
use super::{ConnCtx, RequestError, RequestIo, Result, text};
use crate::authz::Action;
use crate::store::keys;
use crate::store::records::{EntryKind, LogEntry};

/// How long an upload may go without a chunk.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);

fn io_error(error: std::io::Error) -> RequestError {
    tracing::error!(%error, "file storage");
    RequestError::new(ErrorCode::INTERNAL, "file storage failed")
}

/// A file name as shown to others: no path, no control characters, not `.` or `..`.
fn check_file_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.chars().any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        return Err(RequestError::new(ErrorCode::INVALID_REQUEST, "not a plain file name"));
    }
    Ok(())
}

pub(super) async fn upload(
    ctx: &ConnCtx,
    r: Upload,
    io: &mut RequestIo<'_>,
) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    check_file_name(&r.name)?;
    if r.size > ctx.shared.config.max_upload_bytes {
        return Err(RequestError::new(
            ErrorCode::LIMIT_EXCEEDED,
            format!("files are at most {} bytes", ctx.shared.config.max_upload_bytes),
        ));
    }
    ctx.rate("message")?;
    let (record, standing) = ctx.authorize(r.room, Action::Participate)?;
    let (_, slot) = check_may_post(ctx, r.room, &record, &standing)?;

    let files = &ctx.shared.files;
    let Some(_claim) = files.claim_upload(user, r.sha256) else {
        return Err(RequestError::new(
            ErrorCode::CONFLICT,
            "this file is already being uploaded by this account",
        ));
    };
    let offset = files.resume_offset(user, &r.sha256, r.size).await;
    io.send(&UploadReady { offset }).await?;
    if offset < r.size {
        let mut partial = files.open_partial(user, &r.sha256, offset).await.map_err(io_error)?;
        let mut received = offset;
        while received < r.size {
            let frame = tokio::time::timeout(CHUNK_TIMEOUT, io.next_or_end())
                .await
                .map_err(|_| RequestError::new(ErrorCode::REQUEST_CANCELLED, "no data in time"))?;
            let chunk = match frame? {
                Some(Message::FileChunk(chunk)) => chunk,
                // Ended early: what arrived stays for the next attempt.
                None => {
                    partial.flush().await.map_err(io_error)?;
                    return Err(RequestError::new(
                        ErrorCode::REQUEST_CANCELLED,
                        "upload incomplete",
                    ));
                }
                Some(other) => {
                    return Err(RequestError::new(
                        ErrorCode::PROTOCOL_VIOLATION,
                        format!("{:?} in an upload", other.frame_type()),
                    ));
                }
            };
            received += chunk.data.len() as u64;
            if received > r.size {
                return Err(RequestError::new(
                    ErrorCode::INVALID_REQUEST,
                    "more bytes than the size",
                ));
            }
            partial.write_all(&chunk.data).await.map_err(io_error)?;
        }
        partial.flush().await.map_err(io_error)?;
        drop(partial);
        if !files.finish(user, &r.sha256).await.map_err(io_error)? {
            return Err(RequestError::new(
                ErrorCode::INVALID_REQUEST,
                "the content does not match its SHA-256",
            ));
        }
    } else {
        files.drop_partial(user, &r.sha256).await;
    }

    let room = r.room;
    let hub = ctx.shared.hub.clone();
    let kind = EntryKind::FileShared { name: r.name.into_string(), size: r.size, sha256: r.sha256 };
    let appended = ctx
        .shared
        .store
        .write(
            move |txn| {
                member_in(txn, room, user)?;
                let mut record = room_in(txn, room)?;
                let appended = append(txn, room, &mut record, user, kind);
                txn.put(keys::room(room), &record);
                Ok(appended)
            },
            move |appended| {
                publish(&hub, &appended, None);
                appended
            },
        )
        .await?;
    if let Some(slot) = slot {
        slot.keep();
    }
    Ok(ack(&appended))
}

pub(super) async fn download(
    ctx: &ConnCtx,
    r: Download,
    io: &mut RequestIo<'_>,
) -> Result<Vec<Message>> {
    ctx.rate("history")?;
    ctx.authorize(r.room, Action::Read)?;
    let no_file = || RequestError::new(ErrorCode::NOT_FOUND, "no file at that seq");
    if r.seq > ctx.shared.hub.head(r.room) {
        return Err(no_file());
    }
    let entry: LogEntry = ctx.shared.store.get(&keys::log(r.room, r.seq))?.ok_or_else(no_file)?;
    let EntryKind::FileShared { name, size, sha256 } = entry.kind else { return Err(no_file()) };
    if r.offset > size {
        return Err(RequestError::new(ErrorCode::INVALID_REQUEST, "offset beyond the file"));
    }
    let mut file =
        tokio::fs::File::open(ctx.shared.files.content(&sha256)).await.map_err(io_error)?;
    file.seek(std::io::SeekFrom::Start(r.offset)).await.map_err(io_error)?;
    io.send(&FileInfo { name: text(&name), size, sha256 }).await?;
    let mut buf = vec![0u8; max::FILE_CHUNK];
    loop {
        let n = file.read(&mut buf).await.map_err(io_error)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let data = Blob::new(buf[..n].to_vec()).expect("at most one chunk");
        io.send(&FileChunk { data }).await?;
    }
}
