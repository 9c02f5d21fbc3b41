//! UPLOAD and DOWNLOAD (spec §6.9): the two requests that stream, chunk by chunk, on their own
//! request stream, and DELETE of a shared file. The bytes go to and from
//! [`FileStore`](crate::files::FileStore); the room log only gets a FILE_SHARED entry once a
//! whole, verified file is in place.
//!
//! A content is stored once, but knowing its hash is not access: an upload skips the transfer
//! only when the uploader can already read a room where that content is shared, and takes the
//! bytes otherwise. Each user's shared bytes and partial uploads are capped.

use std::time::Duration;

use banter_protocol::ErrorCode;
use banter_protocol::bounded::Blob;
use banter_protocol::message::{Download, FileChunk, FileInfo, Message, Upload, UploadReady, max};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use banter_protocol::ids::{RoomId, UserId};
use banter_protocol::message::{AuditAction, Delete};

use super::events::{ack, append, check_may_post};
use super::{ConnCtx, RequestError, RequestIo, Result, audit, authorize_in, rank_in, text};
use crate::authz::Action;
use crate::files::ClaimRefused;
use crate::store::StoreError;
use crate::wall_clock;

/// How long a content whose last reference went may not be shared again without its bytes
/// (its file is being removed); past that, the remover is presumed dead.
const REMOVAL_GRACE_MS: u64 = 60_000;
use crate::store::records::{EntryKind, LogEntry};
use crate::store::{Records, Txn, keys};

/// How long an upload may go without a chunk.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);

fn io_error(error: std::io::Error) -> RequestError {
    if error.kind() == std::io::ErrorKind::StorageFull {
        // What arrived stays for a resumed upload, once there is room.
        return RequestError::from(StoreError::DiskFull { free: 0, reserve: 0 });
    }
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
    let max_shared = ctx.shared.config.max_shared_bytes_per_user;
    if shared_bytes(&ctx.shared.store, user)?.saturating_add(r.size) > max_shared {
        return Err(RequestError::new(
            ErrorCode::LIMIT_EXCEEDED,
            format!("you share at most {max_shared} bytes of files: delete some first"),
        ));
    }

    let files = &ctx.shared.files;
    let max_partial = ctx.shared.config.max_partial_bytes_per_user;
    let _claim = match files.claim_upload(user, r.sha256, r.size, max_partial).map_err(io_error)? {
        Ok(claim) => claim,
        Err(ClaimRefused::InProgress) => {
            return Err(RequestError::new(
                ErrorCode::CONFLICT,
                "this file is already being uploaded by this account",
            ));
        }
        Err(ClaimRefused::OverQuota) => {
            return Err(RequestError::new(
                ErrorCode::LIMIT_EXCEEDED,
                format!(
                    "your unfinished uploads hold at most {max_partial} bytes: finish them first"
                ),
            ));
        }
    };
    let offset = if files.has_content(&r.sha256, r.size) && may_read_a_share(ctx, user, &r.sha256)?
    {
        r.size
    } else {
        files.resume_offset(user, &r.sha256, r.size).await
    };
    // Room for the rest of the file, above the disk's reserve, before taking a byte of it.
    ctx.shared.files_space.check(r.size - offset)?;
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
    let shared = ctx.shared.clone();
    let files = ctx.shared.files.clone();
    let (size, sha256) = (r.size, r.sha256);
    let kind = EntryKind::FileShared { name: r.name.into_string(), size, sha256 };
    let appended = ctx
        .shared
        .store
        .write(
            move |txn| {
                // Decided again here: a lock, archive, kick or ban that commits first wins.
                let (mut record, _) = authorize_in(txn, room, user, Action::Post)?;
                let usage = shared_bytes(txn, user)?.saturating_add(size);
                if usage > max_shared {
                    return Err(RequestError::new(
                        ErrorCode::LIMIT_EXCEEDED,
                        "too many bytes shared",
                    ));
                }
                // Its last reference went a moment ago, on this node or another: its file
                // is being removed. Past the grace, the remover died on the way; the file
                // is either gone (checked next) or stays, referenced again.
                let removing = keys::content_removing(&sha256);
                if let Some(since) = txn.get::<u64>(&removing)? {
                    if wall_clock().0.saturating_sub(since) < REMOVAL_GRACE_MS {
                        return Err(RequestError::new(
                            ErrorCode::SERVER_BUSY,
                            "this file is being removed: share it again in a minute",
                        ));
                    }
                    txn.delete(removing);
                }
                // Removed by a delete of its last reference since the transfer was skipped:
                // the client uploads again (the bytes this time).
                if !files.has_content(&sha256, size) {
                    return Err(RequestError::new(
                        ErrorCode::REQUEST_CANCELLED,
                        "the file was removed meanwhile: upload it again",
                    ));
                }
                let appended = append(txn, room, &mut record, user, kind);
                txn.put(keys::room(room), &record);
                txn.put(keys::content_ref(&sha256, room, appended.seq), &());
                txn.put(keys::file_usage(user), &usage);
                Ok(appended)
            },
            move |appended| {
                shared.fanout.committed(&shared, &appended);
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
    // A deleted share has no reference (and its content may be gone).
    if !ctx.shared.store.contains(&keys::content_ref(&sha256, r.room, r.seq))? {
        return Err(no_file());
    }
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

/// Bytes of files `user` shares in live entries.
fn shared_bytes(records: &impl Records, user: UserId) -> Result<u64> {
    Ok(records.record::<u64>(&keys::file_usage(user))?.unwrap_or(0))
}

/// How many of a content's shares an upload looks at to find one the uploader can read.
const SHARES_CHECKED: usize = 64;

/// Whether `user` can read a room where the content `sha256` is shared now: only then may
/// an upload of it skip the transfer (knowing a hash is not having the file).
fn may_read_a_share(ctx: &ConnCtx, user: UserId, sha256: &[u8; 32]) -> Result<bool> {
    let prefix = keys::content_refs(sha256);
    let shares = ctx.shared.store.keys_with_prefix(&prefix, SHARES_CHECKED)?;
    Ok(shares.iter().any(|key| {
        let room = RoomId(keys::id_at(key, prefix.len()));
        authorize_in(&ctx.shared.store, room, user, Action::Read).is_ok()
    }))
}

/// DELETE of a FILE_SHARED entry (spec §6.4): by its sharer or a moderator who outranks
/// them; a tombstone like a post's, the sharer's bytes given back, and the content removed
/// once no entry refers to it.
pub(super) async fn delete(
    ctx: &ConnCtx,
    r: Delete,
    sharer: UserId,
    size: u64,
    sha256: [u8; 32],
) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    let (room, target) = (r.room, r.target);
    let shared = ctx.shared.clone();
    let (store, files) = (ctx.shared.store.clone(), ctx.shared.files.clone());
    let runtime = tokio::runtime::Handle::current();
    let appended = ctx
        .shared
        .store
        .write(
            move |txn| delete_share(txn, user, room, target, sharer, size, &sha256),
            move |(appended, removing)| {
                shared.fanout.committed(&shared, &appended);
                if let Some(since) = removing {
                    if let Err(error) = files.remove_content(&sha256) {
                        tracing::warn!(%error, "could not remove an unreferenced file");
                    }
                    runtime.spawn(removed(store, sha256, since));
                }
                appended
            },
        )
        .await?;
    Ok(ack(&appended))
}

/// A removing content's file is gone: new references may be taken (to a new upload of it).
/// Only the record this removal wrote is cleared, not a later one.
async fn removed(store: crate::store::Store, sha256: [u8; 32], since: u64) {
    let cleared = store
        .write(
            move |txn| {
                let key = keys::content_removing(&sha256);
                if txn.get::<u64>(&key)? == Some(since) {
                    txn.delete(key);
                }
                Ok::<_, StoreError>(())
            },
            |()| (),
        )
        .await;
    if let Err(error) = cleared {
        tracing::debug!(%error, "a removed file's record stays until its grace ends");
    }
}

fn delete_share(
    txn: &mut Txn<'_>,
    user: UserId,
    room: RoomId,
    target: u64,
    sharer: UserId,
    size: u64,
    sha256: &[u8; 32],
) -> Result<(super::events::Appended, Option<u64>)> {
    let author = (sharer != user).then(|| rank_in(txn, room, sharer)).transpose()?;
    let (mut record, _) = authorize_in(txn, room, user, Action::Delete { author })?;
    let reference = keys::content_ref(sha256, room, target);
    if !txn.contains(&reference)? {
        return Err(RequestError::new(ErrorCode::NOT_FOUND, "message not found"));
    }
    txn.delete(reference);
    // The last reference: the file goes after the commit, and until it is gone no share may
    // take a new reference (read in this transaction: with PostgreSQL, a share committing
    // on another node at the same moment conflicts with it).
    let refs = keys::content_refs(sha256);
    let last = txn.keys_in(&refs, &keys::prefix_end(&refs))?.is_empty();
    let removing = last.then(|| wall_clock().0);
    if let Some(since) = removing {
        txn.put(keys::content_removing(sha256), &since);
    }
    let usage = shared_bytes(txn, sharer)?.saturating_sub(size);
    txn.put(keys::file_usage(sharer), &usage);
    // The name goes with the file; the entry keeps its slot.
    let mut entry: LogEntry = txn.get(&keys::log(room, target))?.ok_or(ErrorCode::NOT_FOUND)?;
    if let EntryKind::FileShared { name, .. } = &mut entry.kind {
        name.clear();
    }
    txn.put(keys::log(room, target), &entry);
    let appended = append(txn, room, &mut record, user, EntryKind::Deleted { target });
    txn.put(keys::room(room), &record);
    if sharer != user {
        audit(txn, user, AuditAction::DELETE_MESSAGE, Some(room), Some(sharer), "")?;
    }
    Ok((appended, removing))
}
