//! The admin socket: a Unix socket `admin.sock` in the data dir (mode 0600, so only the
//! server's own OS user can use it), through which `banterd` commands reach a running server.
//!
//! One request per connection: the client writes an [`AdminRequest`] as one JSON line, the
//! server answers with one [`Reply`] JSON line and closes.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::watch;

use super::{AdminCtx, AdminError, AdminRequest};

/// The socket's file name in the data dir.
pub const FILE: &str = "admin.sock";
/// Longest request line accepted (requests are small; a backup path is the largest field).
const MAX_REQUEST: u64 = 64 * 1024;

/// The answer to one request.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    /// Done; text for the operator.
    Ok(String),
    /// Failed; why.
    Failed(String),
}

/// Where a data dir's admin socket lives.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// Listens on the data dir's admin socket until `shutdown`, then removes it.
pub(crate) fn serve(
    ctx: Arc<AdminCtx>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let path = path(&ctx.data_dir);
    // The server holds the database lock, so a socket file left here belongs to a banterd
    // that died; nobody else can be serving this data dir.
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = tokio::net::UnixListener::bind(&path)?;
    #[cfg(unix)]
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(tokio::spawn(accept_loop(ctx, listener, path, shutdown)))
}

async fn accept_loop(
    ctx: Arc<AdminCtx>,
    listener: tokio::net::UnixListener,
    path: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(answer(ctx.clone(), stream));
                }
                Err(error) => tracing::warn!(%error, "admin socket accept failed"),
            },
            _ = shutdown.changed() => break,
        }
    }
    let _ = std::fs::remove_file(path);
}

async fn answer(ctx: Arc<AdminCtx>, stream: tokio::net::UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let read = tokio::io::BufReader::new(read).take(MAX_REQUEST).read_line(&mut line).await;
    let reply = match read.map_err(|e| e.to_string()).and_then(|_| {
        serde_json::from_str::<AdminRequest>(&line).map_err(|e| format!("bad admin request: {e}"))
    }) {
        Ok(request) => {
            tracing::info!(op = request.op(), "admin request");
            match ctx.execute(request).await {
                Ok(text) => Reply::Ok(text),
                Err(error) => Reply::Failed(error.to_string()),
            }
        }
        Err(error) => Reply::Failed(error),
    };
    let mut bytes = serde_json::to_vec(&reply).unwrap_or_default();
    bytes.push(b'\n');
    let _ = write.write_all(&bytes).await;
    let _ = write.shutdown().await;
}

/// Sends `request` to the banterd serving `data_dir`. `Ok(None)`: no server is listening
/// there (run the request offline).
pub fn call(data_dir: &Path, request: &AdminRequest) -> Result<Option<Reply>, AdminError> {
    let path = path(data_dir);
    let mut stream = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let mut line = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    let reply = serde_json::from_str(&answer)
        .map_err(|e| AdminError::Refused(format!("the server's answer did not parse: {e}")))?;
    Ok(Some(reply))
}

impl AdminRequest {
    /// The operation's name, for the log (never the arguments: they may hold a password).
    pub fn op(&self) -> &'static str {
        match self {
            Self::UserAdd { .. } => "user_add",
            Self::UserList => "user_list",
            Self::UserPasswd { .. } => "user_passwd",
            Self::UserDisable { .. } => "user_disable",
            Self::UserEnable { .. } => "user_enable",
            Self::UserPromote { .. } => "user_promote",
            Self::RoomList => "room_list",
            Self::RoomCreate { .. } => "room_create",
            Self::RoomArchive { .. } => "room_archive",
            Self::Audit { .. } => "audit",
            Self::Backup { .. } => "backup",
            Self::Check => "check",
        }
    }
}
