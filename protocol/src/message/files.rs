//! File sharing (spec §6.9): uploads and downloads on their own request streams, in chunks,
//! resumable, checked against a SHA-256 named up front. A finished upload becomes a
//! FILE_SHARED entry in the room's log; downloads name that entry.

use crate::bounded::{Blob, Text};
use crate::ids::RoomId;
use crate::message::events::EventMeta;
use crate::message::{max, wire};

wire! {
    /// UPLOAD: offer a file for a room; the server answers UPLOAD_READY, the client sends the
    /// rest of the file as FILE_CHUNK frames on the same stream, and the server answers
    /// EVENT_ACK of the FILE_SHARED entry.
    pub struct Upload {
        /// The room to share it in.
        pub room: RoomId,
        /// Its file name (no path).
        pub name: Text<{ max::FILE_NAME }>,
        /// Its size in bytes.
        pub size: u64,
        /// SHA-256 of its content.
        pub sha256: [u8; 32],
    }

    /// UPLOAD_READY: how many bytes of this upload the server already holds; the client sends
    /// the file from there.
    pub struct UploadReady {
        /// Where to continue (equal to the size: nothing more to send).
        pub offset: u64,
    }

    /// FILE_CHUNK: the next bytes of a file, in an upload or a download.
    pub struct FileChunk {
        /// The bytes.
        pub data: Blob<{ max::FILE_CHUNK }>,
    }

    /// DOWNLOAD: fetch the file of a FILE_SHARED entry from `offset` on; answered with
    /// FILE_INFO and then FILE_CHUNK frames to the end of the file.
    pub struct Download {
        /// The room.
        pub room: RoomId,
        /// The FILE_SHARED entry.
        pub seq: u64,
        /// Where to start (0, or what an interrupted download already has).
        pub offset: u64,
    }

    /// FILE_INFO: the file a download is about to send.
    pub struct FileInfo {
        /// Its name.
        pub name: Text<{ max::FILE_NAME }>,
        /// Its whole size.
        pub size: u64,
        /// SHA-256 of its whole content.
        pub sha256: [u8; 32],
    }

    /// FILE_SHARED: a file was shared in the room (a log entry).
    pub struct FileShared {
        /// As in POSTED.
        pub event_seq: u64,
        /// Where and who.
        pub meta: EventMeta,
        /// Its name.
        pub name: Text<{ max::FILE_NAME }>,
        /// Its size in bytes.
        pub size: u64,
        /// SHA-256 of its content.
        pub sha256: [u8; 32],
    }
}
