//! File transfers (spec §6.9): [`Connection::upload`] and [`Connection::download`], each on
//! its own request stream, in FILE_CHUNK frames, resuming what an interrupted attempt left.

use std::path::Path;

use banter_protocol::FrameDecoder;
use banter_protocol::bounded::{Blob, Text};
use banter_protocol::ids::RoomId;
use banter_protocol::message::{
    Download, EventAck, FileChunk, FileInfo, FileShared, Frame, History, Message, Upload,
    UploadReady, max,
};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use crate::connection::{Connection, RequestError};

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
        while sent < size {
            let want = usize::try_from(size - sent).unwrap_or(usize::MAX).min(buf.len());
            let n = file.read(&mut buf[..want]).await.map_err(local)?;
            if n == 0 {
                return Err(RequestError::Local("the file shrank while uploading".into()));
            }
            let data = Blob::new(buf[..n].to_vec()).expect("at most one chunk");
            write(&mut send, &FileChunk { data }).await?;
            sent += n as u64;
        }
        let _ = send.finish();
        match frames.next().await? {
            Some(Message::EventAck(ack)) => Ok(ack),
            other => Err(RequestError::Protocol(format!("expected EVENT_ACK: {other:?}"))),
        }
    }

    /// Fetches the file shared at `seq` in `room` into `path`. A partial file already at
    /// `path` (an interrupted download) is continued, not fetched again. The whole file is
    /// checked against the SHA-256 the server names; on a mismatch the file is removed.
    pub async fn download(
        &self,
        room: RoomId,
        seq: u64,
        path: &Path,
    ) -> Result<FileInfo, RequestError> {
        let offset = tokio::fs::metadata(path).await.map_or(0, |m| m.len());
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
            .open(path)
            .await
            .map_err(local)?;
        while let Some(frame) = frames.next().await? {
            match frame {
                Message::FileChunk(chunk) => file.write_all(&chunk.data).await.map_err(local)?,
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
        let (sha256, size) = digest(path).await.map_err(local)?;
        if (sha256, size) != (info.sha256, info.size) {
            let _ = tokio::fs::remove_file(path).await;
            return Err(RequestError::Protocol(
                "the downloaded file does not match its SHA-256; removed it".into(),
            ));
        }
        Ok(info)
    }
}
