//! File sharing over real QUIC (spec §6.9): uploads on their own streams that resume after an
//! interruption, contents stored once, downloads that resume and are checked against their
//! SHA-256, and the limits and permissions around them.

use std::path::Path;

use banter_client::protocol::bounded::{Blob, Text};
use banter_client::protocol::ids::RoomId;
use banter_client::protocol::message::{
    Delete, FileChunk, Frame, Message, RoomConfigure, Upload, UploadReady,
};
use banter_client::protocol::{ErrorCode, FrameDecoder};
use banter_client::{Connection, RequestError};
use banter_tests::{TestServer, TestUser};

/// Deterministic, incompressible-looking bytes.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().try_into().unwrap()
}

/// One UPLOAD by hand: the server's UPLOAD_READY offset, then `send` bytes of `data` from
/// there, then the stream ends; the answer frames after UPLOAD_READY.
async fn raw_upload(
    conn: &Connection,
    room: RoomId,
    data: &[u8],
    claimed: [u8; 32],
    send: usize,
) -> (u64, Vec<Message>) {
    let (mut tx, mut rx) = conn.quic().open_bi().await.unwrap();
    let mut bytes = Vec::new();
    let upload = Upload {
        room,
        name: Text::new("data.bin").unwrap(),
        size: data.len() as u64,
        sha256: claimed,
    };
    upload.encode_frame(&mut bytes);
    tx.write_all(&bytes).await.unwrap();
    let mut decoder = FrameDecoder::new(1 << 20);
    let mut frames = Vec::new();
    let mut buf = vec![0u8; 65536];
    let offset = loop {
        if let Some(message) = decoder.next_message().unwrap() {
            match message {
                Message::UploadReady(UploadReady { offset }) => break offset,
                other => return (u64::MAX, vec![other]),
            }
        }
        let n = rx.read(&mut buf).await.unwrap().expect("an answer");
        decoder.push(&buf[..n]);
    };
    let start = usize::try_from(offset).unwrap();
    for chunk in data[start..start.saturating_add(send).min(data.len())].chunks(32 * 1024) {
        let mut bytes = Vec::new();
        FileChunk { data: Blob::new(chunk.to_vec()).unwrap() }.encode_frame(&mut bytes);
        tx.write_all(&bytes).await.unwrap();
    }
    tx.finish().unwrap();
    while let Some(n) = rx.read(&mut buf).await.unwrap() {
        decoder.push(&buf[..n]);
    }
    while let Some(message) = decoder.next_message().unwrap() {
        frames.push(message);
    }
    (offset, frames)
}

fn error_code(frames: &[Message]) -> Option<ErrorCode> {
    match frames.last() {
        Some(Message::Error(e)) => Some(e.code),
        _ => None,
    }
}

async fn write(dir: &Path, name: &str, data: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    tokio::fs::write(&path, data).await.unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_shared_resumed_stored_once_and_fetched_intact() {
    let server = TestServer::start_with(|config| config.max_upload_bytes = 2 << 20).await;
    let dir = tempfile::tempdir().unwrap();
    let ada = server.user("ada").await;
    let mut bob = server.user("bob").await;
    let room = ada.create_room("files", false).await;
    bob.join(room).await.unwrap();
    let data = content(1_000_000, 7);
    let path = write(dir.path(), "report.bin", &data).await;

    // An upload cut off halfway keeps what arrived; the next one resumes there.
    let (offset, answer) = raw_upload(&ada.conn, room, &data, sha256(&data), 400_000).await;
    assert_eq!(offset, 0);
    assert_eq!(error_code(&answer), Some(ErrorCode::REQUEST_CANCELLED));
    let (offset, answer) = raw_upload(&ada.conn, room, &data, sha256(&data), usize::MAX).await;
    assert_eq!(offset, 400_000, "resumed where the first attempt stopped");
    let Some(Message::EventAck(first)) = answer.last() else { panic!("{answer:?}") };

    // Members see the file arrive and fetch it whole.
    let shared = loop {
        if let Message::FileShared(f) = bob.next_room_event().await {
            break f;
        }
    };
    assert_eq!(
        (shared.meta.seq, shared.meta.sender, shared.size, shared.sha256),
        (first.seq, ada.auth.user, data.len() as u64, sha256(&data))
    );
    let fetched = dir.path().join("fetched.bin");
    let info = bob.conn.download(room, first.seq, &fetched).await.unwrap();
    assert_eq!((info.name.as_str(), info.size), ("data.bin", data.len() as u64));
    assert_eq!(tokio::fs::read(&fetched).await.unwrap(), data);

    // A download cut short continues from its .part file.
    write(dir.path(), "partial.bin.part", &data[..123_457]).await;
    let partial = dir.path().join("partial.bin");
    bob.conn.download(room, first.seq, &partial).await.unwrap();
    assert_eq!(tokio::fs::read(&partial).await.unwrap(), data);
    assert!(!dir.path().join("partial.bin.part").exists());

    // Content the server has costs nothing to share again, from anyone.
    let (offset, answer) = raw_upload(&bob.conn, room, &data, sha256(&data), 0).await;
    assert_eq!(offset, data.len() as u64);
    assert!(matches!(answer.last(), Some(Message::EventAck(_))), "{answer:?}");
    // The SDK's upload, end to end.
    let small = content(70_000, 9);
    let small_path = write(dir.path(), "notes.txt", &small).await;
    let ack = ada.conn.upload(room, "notes.txt", &small_path).await.unwrap();
    // Bob downloads it once it reaches him, as a client does (in a cluster, his node
    // serves an entry once it has delivered it).
    loop {
        if let Message::FileShared(shared) = bob.next_room_event().await {
            if shared.meta.seq == ack.seq {
                break;
            }
        }
    }
    let again = dir.path().join("notes-again.txt");
    bob.conn.download(room, ack.seq, &again).await.unwrap();
    assert_eq!(tokio::fs::read(&again).await.unwrap(), small);
    assert!(path.exists());

    // Content that does not match its hash is refused and dropped.
    let (_, answer) = raw_upload(&ada.conn, room, &small, [0; 32], usize::MAX).await;
    assert_eq!(error_code(&answer), Some(ErrorCode::INVALID_REQUEST));
}

fn refused(result: Result<impl std::fmt::Debug, RequestError>) -> Option<ErrorCode> {
    result.unwrap_err().code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_downloads_keep_to_limits_and_permissions() {
    let server = TestServer::start_with(|config| config.max_upload_bytes = 100_000).await;
    let dir = tempfile::tempdir().unwrap();
    let ada = server.user("ada").await;
    let bob: TestUser = server.user("bob").await;
    let private = ada.create_room("private", true).await;
    let big = write(dir.path(), "big.bin", &content(100_001, 3)).await;
    let ok = write(dir.path(), "ok.bin", &content(1000, 4)).await;

    assert_eq!(
        refused(ada.conn.upload(private, "big.bin", &big).await),
        Some(ErrorCode::LIMIT_EXCEEDED)
    );
    assert_eq!(
        refused(ada.conn.upload(private, "../etc/passwd", &ok).await),
        Some(ErrorCode::INVALID_REQUEST)
    );
    // Outsiders can neither share into nor fetch from a private room.
    let ack = ada.conn.upload(private, "ok.bin", &ok).await.unwrap();
    assert_eq!(refused(bob.conn.upload(private, "ok.bin", &ok).await), Some(ErrorCode::NOT_FOUND));
    let target = dir.path().join("stolen.bin");
    assert_eq!(
        refused(bob.conn.download(private, ack.seq, &target).await),
        Some(ErrorCode::NOT_FOUND)
    );
    // Only FILE_SHARED entries can be fetched.
    let post = ada.post(private, "not a file").await.unwrap();
    let mine = dir.path().join("nothing.bin");
    assert_eq!(
        refused(ada.conn.download(private, post.seq, &mine).await),
        Some(ErrorCode::NOT_FOUND)
    );
    // A locked room takes no uploads from members.
    let public = ada.create_room("public", false).await;
    bob.join(public).await.unwrap();
    ada.conn
        .request_one(RoomConfigure {
            room: public,
            slow_mode_s: None,
            locked: Some(true),
            anonymous: None,
            stage: None,
        })
        .await
        .unwrap();
    assert_eq!(refused(bob.conn.upload(public, "ok.bin", &ok).await), Some(ErrorCode::ROOM_LOCKED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_one_upload_of_a_content_at_a_time_per_account() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let room = ada.create_room("files", false).await;
    let data = content(200_000, 11);
    // A first upload is under way (its UPLOAD_READY came, no bytes yet).
    let (mut first, mut first_answers) = ada.conn.quic().open_bi().await.unwrap();
    let mut bytes = Vec::new();
    Upload {
        room,
        name: Text::new("data.bin").unwrap(),
        size: data.len() as u64,
        sha256: sha256(&data),
    }
    .encode_frame(&mut bytes);
    first.write_all(&bytes).await.unwrap();
    let mut buf = [0u8; 64];
    let n = first_answers.read(&mut buf).await.unwrap().unwrap();
    let mut decoder = FrameDecoder::new(1 << 20);
    decoder.push(&buf[..n]);
    assert!(matches!(decoder.next_message().unwrap(), Some(Message::UploadReady(_))));
    // A second one of the same content would write the same partial file: refused.
    let (_, answer) = raw_upload(&ada.conn, room, &data, sha256(&data), usize::MAX).await;
    assert_eq!(error_code(&answer), Some(ErrorCode::CONFLICT), "{answer:?}");
    // Once the first is gone, the content can be uploaded.
    drop((first, first_answers));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (_, answer) = raw_upload(&ada.conn, room, &data, sha256(&data), usize::MAX).await;
    assert!(matches!(answer.last(), Some(Message::EventAck(_))), "{answer:?}");
}

/// The seq an upload was acked at (panics on anything else).
fn acked_seq(answer: &[Message]) -> u64 {
    match answer.last() {
        Some(Message::EventAck(ack)) => ack.seq,
        other => panic!("expected EVENT_ACK, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_knowing_a_files_hash_is_not_access() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let mallory = server.user("mallory").await;
    let vault = ada.create_room("vault", true).await;
    ada.add(vault, "bob").await.unwrap();
    let secret = content(50_000, 21);
    let seq =
        acked_seq(&raw_upload(&ada.conn, vault, &secret, sha256(&secret), usize::MAX).await.1);

    // Mallory learned the hash and size (say, before a kick): her upload into her own room is
    // not short-cut; without the bytes it goes nowhere.
    let own = mallory.create_room("mine", false).await;
    let (offset, answer) = raw_upload(&mallory.conn, own, &secret, sha256(&secret), 0).await;
    assert_eq!(offset, 0, "the server must not reveal or grant a content it holds");
    assert_eq!(error_code(&answer), Some(ErrorCode::REQUEST_CANCELLED));
    let stolen = dir.path().join("stolen.bin");
    assert!(mallory.conn.download(vault, seq, &stolen).await.is_err());

    // Bob can read the vault: sharing the same content elsewhere costs him nothing.
    let lounge = bob.create_room("lounge", false).await;
    let (offset, answer) = raw_upload(&bob.conn, lounge, &secret, sha256(&secret), 0).await;
    assert_eq!(offset, secret.len() as u64);
    acked_seq(&answer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_shared_files_are_deletable_quota_bound_and_removed_when_unreferenced() {
    let server = TestServer::start_with(|config| {
        config.max_upload_bytes = 100_000;
        config.max_shared_bytes_per_user = 150_000;
        config.max_partial_bytes_per_user = 100_000;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let room = ada.create_room("files", false).await;
    bob.join(room).await.unwrap();
    let (one, two, three) = (content(60_000, 1), content(60_000, 2), content(60_000, 3));
    let first = acked_seq(&raw_upload(&ada.conn, room, &one, sha256(&one), usize::MAX).await.1);
    acked_seq(&raw_upload(&ada.conn, room, &two, sha256(&two), usize::MAX).await.1);
    // 120,000 bytes shared: 60,000 more would pass the 150,000 quota, before any transfer.
    let (offset, answer) = raw_upload(&ada.conn, room, &three, sha256(&three), usize::MAX).await;
    assert_eq!((offset, error_code(&answer)), (u64::MAX, Some(ErrorCode::LIMIT_EXCEEDED)));

    // Bob shares the same content as ada's first file (he can read it: no transfer).
    let bobs = acked_seq(&raw_upload(&bob.conn, room, &one, sha256(&one), 0).await.1);
    // A member cannot delete another's file; its sharer can (and so can a moderator).
    let delete = |seq| Delete { room, target: seq };
    assert_eq!(refused(bob.conn.request_one(delete(first)).await), Some(ErrorCode::FORBIDDEN));
    ada.conn.request_one(delete(first)).await.unwrap();
    let gone = dir.path().join("gone.bin");
    assert_eq!(refused(bob.conn.download(room, first, &gone).await), Some(ErrorCode::NOT_FOUND));
    assert_eq!(refused(ada.conn.request_one(delete(first)).await), Some(ErrorCode::NOT_FOUND));
    // Bob's share still refers to the content; once the owner deletes it too, it is removed.
    let kept = dir.path().join("kept.bin");
    bob.conn.download(room, bobs, &kept).await.unwrap();
    let stored =
        server.data_dir().join("files").join(&hex(&sha256(&one))[..2]).join(hex(&sha256(&one)));
    assert!(stored.exists());
    ada.conn.request_one(delete(bobs)).await.unwrap();
    assert!(!stored.exists(), "a content no entry refers to is removed");

    // The deleted bytes are given back: the third file fits now.
    acked_seq(&raw_upload(&ada.conn, room, &three, sha256(&three), usize::MAX).await.1);

    // Unfinished uploads are capped too: 50,000 bytes waiting, and 60,000 more would pass
    // 100,000.
    let (big, other) = (content(90_000, 4), content(60_000, 5));
    let (_, answer) = raw_upload(&bob.conn, room, &big, sha256(&big), 50_000).await;
    assert_eq!(error_code(&answer), Some(ErrorCode::REQUEST_CANCELLED));
    let (offset, answer) = raw_upload(&bob.conn, room, &other, sha256(&other), usize::MAX).await;
    assert_eq!((offset, error_code(&answer)), (u64::MAX, Some(ErrorCode::LIMIT_EXCEEDED)));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Issue 15 (spec §6.9): bytes kept from an interrupted upload that exceed a later UPLOAD's
/// declared size are not that upload's: it starts at 0 (it used to be told to start at its
/// end, and then failed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_bytes_longer_than_the_declared_size_restart_the_upload_at_zero() {
    let server = TestServer::start_with(|config| config.max_upload_bytes = 2 << 20).await;
    let ada = server.user("ada").await;
    let room = ada.create_room("files", false).await;
    let data = content(1_000_000, 5);
    let (_, answer) = raw_upload(&ada.conn, room, &data, sha256(&data), 400_000).await;
    assert_eq!(error_code(&answer), Some(ErrorCode::REQUEST_CANCELLED));
    let shorter = &data[..300_000];
    let (offset, answer) = raw_upload(&ada.conn, room, shorter, sha256(&data), usize::MAX).await;
    assert_eq!(offset, 0);
    assert_eq!(error_code(&answer), Some(ErrorCode::INVALID_REQUEST), "the hash does not match");
    // And the real content uploads whole afterwards.
    let (offset, answer) = raw_upload(&ada.conn, room, &data, sha256(&data), usize::MAX).await;
    assert_eq!(offset, 0, "the mismatch dropped what was kept");
    assert!(matches!(answer.last(), Some(Message::EventAck(_))), "{answer:?}");
}
