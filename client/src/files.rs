//! File transfers (spec §6.9): [`Connection::upload`] and [`Connection::download`], each on
//! its own request stream, in FILE_CHUNK frames, resuming what an interrupted attempt left.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use banter_protocol::FrameDecoder;
use banter_protocol::bounded::{Blob, Text};
use banter_protocol::ids::RoomId;
use banter_protocol::message::{
    Download, EventAck, FileChunk, FileInfo, FileShared, Frame, History, Message, Upload,
    UploadReady, max,
};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use crate::connection::{Connection, RequestError};

/// Told the bytes done and the bytes in all as a transfer goes (for a progress bar): at the
/// start, then at most once per percent, the end included. It is called from the transfer's
/// task: it should be quick.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// A [`Progress`] that shows nothing.
fn unseen(_done: u64, _total: u64) {}

/// Passes progress on once per percent (a chunk is 64 KiB: a big file has many).
struct Reporter<'a> {
    progress: Progress<'a>,
    shown: Option<u64>,
}

impl<'a> Reporter<'a> {
    fn new(progress: Progress<'a>) -> Self {
        Self { progress, shown: None }
    }

    fn report(&mut self, done: u64, total: u64) {
        let percent = done.saturating_mul(100) / total.max(1);
        if self.shown != Some(percent) {
            self.shown = Some(percent);
            (self.progress)(done, total);
        }
    }
}

fn local(error: std::io::Error) -> RequestError {
    RequestError::Local(error.to_string())
}

fn lost(error: impl std::fmt::Display) -> RequestError {
    RequestError::Connection(error.to_string())
}

/// SHA-256 and size of a local file.
async fn digest(path: &Path) -> std::io::Result<([u8; 32], u64)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok((digest.finish().as_ref().try_into().expect("32 bytes"), size));
        }
        size += n as u64;
        digest.update(&buf[..n]);
    }
}

/// The frames of one request stream, read as they come.
struct Frames {
    recv: quinn::RecvStream,
    decoder: FrameDecoder,
}

impl Frames {
    /// The next frame; ERROR becomes [`RequestError::Server`]; `None` at the end.
    async fn next(&mut self) -> Result<Option<Message>, RequestError> {
        loop {
            if let Some(message) =
                self.decoder.next_message().map_err(|e| RequestError::Protocol(e.to_string()))?
            {
                return match message {
                    Message::Error(error) => Err(RequestError::from(&error)),
                    other => Ok(Some(other)),
                };
            }
            let mut buf = [0u8; 64 * 1024];
            match self.recv.read(&mut buf).await.map_err(lost)? {
                Some(n) => self.decoder.push(&buf[..n]),
                None => {
                    self.decoder.finish().map_err(|e| RequestError::Protocol(e.to_string()))?;
                    return Ok(None);
                }
            }
        }
    }
}

async fn write(send: &mut quinn::SendStream, frame: &impl Frame) -> Result<(), RequestError> {
    let mut bytes = Vec::new();
    frame.encode_frame(&mut bytes);
    send.write_all(&bytes).await.map_err(lost)
}

impl Connection {
    /// The FILE_SHARED entry at `seq` in `room` (name, size, hash), read from the room's log.
    /// Its name is checked to be a plain file name, safe to save under in a directory.
    pub async fn shared_file(&self, room: RoomId, seq: u64) -> Result<FileShared, RequestError> {
        let page = self.request(History { room, before: Some(seq.saturating_add(1)), limit: 1 });
        match page.await?.into_iter().next() {
            Some(Message::FileShared(file)) if file.meta.seq == seq => {
                let name = file.name.as_str();
                let plain = !matches!(name, "" | "." | "..")
                    && !name.chars().any(|c| c == '/' || c == '\\' || c.is_control());
                if plain {
                    Ok(file)
                } else {
                    Err(RequestError::Protocol(format!("unsafe file name {name:?}")))
                }
            }
            _ => Err(RequestError::Local(format!("no file at seq {seq}"))),
        }
    }

    /// Shares the file at `path` in `room` under `name`. Only what the server does not have
    /// yet is sent (an interrupted upload of the same content resumes; content it already
    /// has costs nothing). Returns the ack of the FILE_SHARED entry.
    pub async fn upload(
        &self,
        room: RoomId,
        name: &str,
        path: &Path,
    ) -> Result<EventAck, RequestError> {
        self.upload_with_progress(room, name, path, &unseen).await
    }

    /// [`Connection::upload`], telling `progress` how far it got (a resumed upload starts
    /// where the server's copy ends).
    pub async fn upload_with_progress(
        &self,
        room: RoomId,
        name: &str,
        path: &Path,
        progress: Progress<'_>,
    ) -> Result<EventAck, RequestError> {
        let (sha256, size) = digest(path).await.map_err(local)?;
        let name = Text::new(name).map_err(|e| RequestError::Local(e.to_string()))?;
        let (mut send, recv) = self.quic().open_bi().await.map_err(lost)?;
        let mut frames = Frames { recv, decoder: FrameDecoder::new(max::FILE_CHUNK as u64 * 2) };
        write(&mut send, &Upload { room, name, size, sha256 }).await?;
        let offset = match frames.next().await? {
            Some(Message::UploadReady(UploadReady { offset })) => offset,
            other => {
                return Err(RequestError::Protocol(format!("expected UPLOAD_READY: {other:?}")));
            }
        };
        let mut file = tokio::fs::File::open(path).await.map_err(local)?;
        file.seek(std::io::SeekFrom::Start(offset)).await.map_err(local)?;
        let mut buf = vec![0u8; max::FILE_CHUNK];
        let mut sent = offset;
        let mut reporter = Reporter::new(progress);
        reporter.report(sent, size);
        while sent < size {
            let want = usize::try_from(size - sent).unwrap_or(usize::MAX).min(buf.len());
            let n = file.read(&mut buf[..want]).await.map_err(local)?;
            if n == 0 {
                return Err(RequestError::Local("the file shrank while uploading".into()));
            }
            let data = Blob::new(buf[..n].to_vec()).expect("at most one chunk");
            write(&mut send, &FileChunk { data }).await?;
            sent += n as u64;
            reporter.report(sent, size);
        }
        let _ = send.finish();
        match frames.next().await? {
            Some(Message::EventAck(ack)) => Ok(ack),
            other => Err(RequestError::Protocol(format!("expected EVENT_ACK: {other:?}"))),
        }
    }

    /// Fetches the file shared at `seq` in `room` into `path`, which must not exist: an
    /// existing file is never appended to, replaced or removed. The bytes go to `PATH.part`
    /// first (an interrupted download's `.part` is continued, not fetched again), which is
    /// checked against the SHA-256 the server names and then moved to `path`; on a mismatch
    /// only the `.part` is removed.
    pub async fn download(
        &self,
        room: RoomId,
        seq: u64,
        path: &Path,
    ) -> Result<FileInfo, RequestError> {
        self.download_with_progress(room, seq, path, &unseen).await
    }

    /// [`Connection::download`], telling `progress` how far it got.
    pub async fn download_with_progress(
        &self,
        room: RoomId,
        seq: u64,
        path: &Path,
        progress: Progress<'_>,
    ) -> Result<FileInfo, RequestError> {
        refuse_existing(path).await?;
        let part = part_path(path);
        let info = self.fetch(room, seq, &part, progress).await?;
        move_into_place(&part, path).await?;
        Ok(info)
    }

    /// Fetches the file shared at `seq` in `room` into the directory `dir`, under the name
    /// it was shared with, made safe ([`safe_file_name`]: no path, no leading dots) and never
    /// replacing a file: `NAME (1)`, `NAME (2)` … when `NAME` exists. Returns where it went.
    pub async fn download_into(
        &self,
        room: RoomId,
        seq: u64,
        dir: &Path,
    ) -> Result<(PathBuf, FileInfo), RequestError> {
        self.download_into_with_progress(room, seq, dir, &unseen).await
    }

    /// [`Connection::download_into`], telling `progress` how far it got.
    pub async fn download_into_with_progress(
        &self,
        room: RoomId,
        seq: u64,
        dir: &Path,
        progress: Progress<'_>,
    ) -> Result<(PathBuf, FileInfo), RequestError> {
        let shared = self.shared_file(room, seq).await?;
        let name = safe_file_name(shared.name.as_str());
        let part = dir.join(format!("{name}.part"));
        let info = self.fetch(room, seq, &part, progress).await?;
        for n in 0..1000 {
            let candidate = match n {
                0 => dir.join(&name),
                n => dir.join(numbered(&name, n)),
            };
            match move_into_place(&part, &candidate).await {
                Err(RequestError::Local(reason)) if reason == EXISTS => continue,
                moved => return moved.map(|()| (candidate, info)),
            }
        }
        Err(RequestError::Local(format!("no free name for {name} in {}", dir.display())))
    }

    /// Downloads into `part` (continuing what it holds) and checks the whole against the
    /// server's SHA-256; a mismatch removes `part`.
    async fn fetch(
        &self,
        room: RoomId,
        seq: u64,
        part: &Path,
        progress: Progress<'_>,
    ) -> Result<FileInfo, RequestError> {
        let offset = tokio::fs::metadata(part).await.map_or(0, |m| m.len());
        let (mut send, recv) = self.quic().open_bi().await.map_err(lost)?;
        let mut frames = Frames { recv, decoder: FrameDecoder::new(max::FILE_CHUNK as u64 * 2) };
        write(&mut send, &Download { room, seq, offset }).await?;
        let _ = send.finish();
        let info = match frames.next().await? {
            Some(Message::FileInfo(info)) => info,
            other => return Err(RequestError::Protocol(format!("expected FILE_INFO: {other:?}"))),
        };
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(part)
            .await
            .map_err(local)?;
        let mut received = offset;
        let mut reporter = Reporter::new(progress);
        reporter.report(received, info.size);
        while let Some(frame) = frames.next().await? {
            match frame {
                Message::FileChunk(chunk) => {
                    file.write_all(&chunk.data).await.map_err(local)?;
                    received += chunk.data.len() as u64;
                    reporter.report(received.min(info.size), info.size);
                }
                other => {
                    return Err(RequestError::Protocol(format!(
                        "{:?} in a download",
                        other.frame_type()
                    )));
                }
            }
        }
        file.flush().await.map_err(local)?;
        drop(file);
        let (sha256, size) = digest(part).await.map_err(local)?;
        if (sha256, size) != (info.sha256, info.size) {
            let _ = tokio::fs::remove_file(part).await;
            return Err(RequestError::Protocol(
                "the downloaded file does not match its SHA-256; removed the partial file".into(),
            ));
        }
        Ok(info)
    }
}

/// Why [`move_into_place`] refused.
const EXISTS: &str = "the file exists; not replacing it";

async fn refuse_existing(path: &Path) -> Result<(), RequestError> {
    match tokio::fs::symlink_metadata(path).await {
        Ok(_) => Err(RequestError::Local(EXISTS.into())),
        Err(_) => Ok(()),
    }
}

/// `PATH.part`: where a download to `path` collects its bytes.
fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(".part");
    path.with_file_name(name)
}

/// Moves the verified `part` to `path` without ever replacing a file there (a hard link
/// fails when `path` exists, atomically), then removes `part`.
async fn move_into_place(part: &Path, path: &Path) -> Result<(), RequestError> {
    match tokio::fs::hard_link(part, path).await {
        Ok(()) => tokio::fs::remove_file(part).await.map_err(local),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(RequestError::Local(EXISTS.into()))
        }
        // A filesystem without hard links: check, then rename (not atomic, but never blind).
        Err(_) => {
            refuse_existing(path).await?;
            tokio::fs::rename(part, path).await.map_err(local)
        }
    }
}

/// `NAME (n).EXT` for `NAME.EXT`.
fn numbered(name: &str, n: u32) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem} ({n}).{ext}"),
        _ => format!("{name} ({n})"),
    }
}

/// A server-given file name made safe to save in a directory: path separators and control
/// characters dropped, leading dots stripped (no hidden files, no `..`), never empty.
pub fn safe_file_name(name: &str) -> String {
    let kept: String =
        name.chars().filter(|c| !matches!(c, '/' | '\\') && !c.is_control()).collect();
    let trimmed = kept.trim_start_matches('.').trim();
    if trimmed.is_empty() { "download".to_owned() } else { trimmed.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_given_names_lose_paths_leading_dots_and_control_characters() {
        assert_eq!(safe_file_name(".bashrc"), "bashrc");
        assert_eq!(safe_file_name("../../etc/passwd"), "etcpasswd");
        assert_eq!(safe_file_name("..\\x.txt"), "x.txt");
        assert_eq!(safe_file_name("a\u{1b}[2Jb.txt"), "a[2Jb.txt");
        assert_eq!(safe_file_name("..."), "download");
        assert_eq!(numbered("notes.txt", 2), "notes (2).txt");
        assert_eq!(numbered("bashrc", 1), "bashrc (1)");
        assert_eq!(part_path(Path::new("/tmp/a.bin")), Path::new("/tmp/a.bin.part"));
    }

    #[test]
    fn progress_is_reported_at_the_start_then_once_per_percent_to_the_end() {
        let seen = std::sync::Mutex::new(Vec::new());
        let record = |done, total| seen.lock().unwrap().push((done, total));
        let mut reporter = Reporter::new(&record);
        let total = 10_000_000;
        for done in (0..=total).step_by(1000) {
            reporter.report(done, total);
        }
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.len(), 101, "0%, then 1% to 100%");
        assert_eq!((seen[0], seen[100]), ((0, total), (total, total)));
    }
}
