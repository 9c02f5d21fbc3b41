//! A full disk (issue 20): banterd's data dir on a small tmpfs of its own, which the test
//! fills to below `min_free_disk_mb` while a user posts. Posts are refused with a retryable
//! SERVER_BUSY (never INTERNAL, never an abort), history still reads, /healthz says why;
//! once space returns, posts go through again by themselves; and after a restart every
//! acked post is there, once. Needs root (mount), as CI runs.

mod common;

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use banter_client::RequestError;
use banter_client::protocol::ErrorCode;
use banter_tests::http_get;
use common::{create_room, free_port, history, login, post, start_adjusted};

/// What banterd keeps free, in MiB.
const RESERVE_MB: u64 = 8;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size_mb: u64) -> Self {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "mount a tmpfs (the test needs root)");
        Self(path.to_owned())
    }

    /// Bytes available, as `stat --file-system` reports them.
    fn available(&self) -> u64 {
        let out = Command::new("stat").args(["-f", "-c", "%a %S"]).arg(&self.0).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().unwrap());
        fields.next().unwrap() * fields.next().unwrap()
    }

    /// Writes a filler file until less than `left` bytes are available.
    fn fill_until(&self, left: u64) -> PathBuf {
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0x5a; 256 * 1024];
        while self.available() >= left {
            file.write_all(&chunk).unwrap();
            file.sync_data().unwrap();
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn start(data: &Path, addr: SocketAddr, metrics: SocketAddr) -> common::Banterd {
    let metrics = metrics.to_string();
    start_adjusted(data, addr, &[], |command| {
        command
            .env("BANTER_MIN_FREE_DISK_MB", RESERVE_MB.to_string())
            .env("BANTER_METRICS", "true")
            .env("BANTER_METRICS_LISTEN", &metrics);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_retryably_keeps_reads_and_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("disk"), 64);
    let data = disk.0.join("data");
    let addr = free_port();
    let metrics = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut server = start(&data, addr, metrics);

    let (conn, _events, _) = login(addr, "ada", true).await;
    let room = create_room(&conn, "full").await;
    let mut acked = Vec::new();
    for i in 0..20 {
        let text = format!("before {i}");
        acked.push((post(&conn, room, &text).await.unwrap().seq, text));
    }

    // Another program fills the disk to below the reserve.
    let filler = disk.fill_until(RESERVE_MB * 1024 * 1024 / 2);
    let started = Instant::now();
    let refused = loop {
        match post(&conn, room, "while full").await {
            Ok(ack) => acked.push((ack.seq, "while full".to_owned())),
            Err(RequestError::Server { code, retry_after_ms, message }) => {
                break (code, retry_after_ms, message);
            }
            Err(other) => panic!("{other}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5), "posts still accepted on a full disk");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(refused.0, ErrorCode::SERVER_BUSY, "{}", refused.2);
    assert!(refused.1.is_some(), "a retry_after_ms comes with it");
    // An upload is refused before its first byte (the file lives outside the disk).
    let file = dir.path().join("upload.bin");
    std::fs::write(&file, vec![7u8; 256 * 1024]).unwrap();
    match conn.upload(room, "upload.bin", &file).await {
        Err(RequestError::Server { code: ErrorCode::SERVER_BUSY, .. }) => {}
        other => panic!("an upload on a full disk: {other:?}"),
    }
    let partial = data.join("files/partial");
    let taken = std::fs::read_dir(&partial).map_or(0, |files| files.count());
    assert_eq!(taken, 0, "an upload took bytes of a full disk ({})", partial.display());
    // Reads go on; the server says why it is unhealthy.
    let read = history(&conn, room).await;
    for (seq, text) in &acked {
        assert_eq!(read.get(seq), Some(text));
    }
    let (status, health) = http_get(metrics, "/healthz").await;
    assert!(status == 503 && health.contains("disk is full"), "{status} {health}");

    // Space returns: posts and uploads go through again without a restart.
    std::fs::remove_file(filler).unwrap();
    let started = Instant::now();
    loop {
        match post(&conn, room, "after").await {
            Ok(ack) => {
                acked.push((ack.seq, "after".to_owned()));
                break;
            }
            Err(RequestError::Server { code: ErrorCode::SERVER_BUSY, .. }) => {
                assert!(started.elapsed() < Duration::from_secs(5), "never recovered");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(other) => panic!("{other}"),
        }
    }
    let (status, health) = http_get(metrics, "/healthz").await;
    assert_eq!(status, 200, "{health}");
    let shared = conn.upload(room, "upload.bin", &file).await.unwrap();
    acked.push((shared.seq, String::new()));

    // And after a restart every acked post is there, once, at its seq.
    drop(conn);
    drop(server);
    server = start(&data, addr, metrics);
    let (conn, _events, _) = login(addr, "ada", false).await;
    let read = history(&conn, room).await;
    let posts: Vec<_> = acked.iter().filter(|(_, text)| !text.is_empty()).collect();
    assert_eq!(read.len(), posts.len(), "{read:?}");
    for (seq, text) in posts {
        assert_eq!(read.get(seq), Some(text));
    }
    drop(server);
}
