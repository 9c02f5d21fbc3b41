//! Power loss (issue 20, item 1): banterd's data dir on lossyfs, a FUSE filesystem that drops
//! every write and directory entry not yet fsync'ed when the power is cut. Writers post, edit,
//! react, leave and rejoin rooms and upload files; at a random moment the power goes off
//! (nothing more becomes durable), banterd is killed, the disk remounts with only what was
//! durable, `banterd check` must find nothing wrong, banterd must start, and every acked
//! operation must be in the raw log at the seq its ack named, with no gap, every acked file
//! downloadable with its content. Needs /dev/fuse and root, as CI runs.
//!
//! `BANTER_POWER_CUTS` sets the number of cuts (CI: 4); docs/reliability.md has the long run.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use banter_client::protocol::bounded::Text;
use banter_client::protocol::ids::{RoomId, UserId};
use banter_client::protocol::message::{
    CatchUp, Edit, EventAck, MembershipChange, Message, React, RoomJoin, RoomLeave,
};
use banter_client::{Connection, RequestError};
use banter_tests::Dice;
use common::{Banterd, banterd, create_room, free_port, login, post, start_adjusted};

const WRITERS: usize = 4;
const ROOMS: usize = 3;
const EMOJIS: [&str; WRITERS] = ["👍", "🎉", "🚀", "👀"];

/// What an acked operation must have left in its room's log, at its seq.
#[derive(Debug, Clone)]
enum Expected {
    Posted { text: String },
    Edited { target: u64, text: String },
    Reacted { target: u64, emoji: &'static str },
    Left { user: UserId },
    FileShared { sha256: [u8; 32], content: Arc<Vec<u8>> },
}

/// Every acked operation so far: (room, seq) → what must be there.
type Ledger = Arc<Mutex<BTreeMap<(RoomId, u64), Expected>>>;

fn start(data: &Path, addr: SocketAddr) -> Banterd {
    start_adjusted(data, addr, &[], |command| {
        command
            .env("BANTER_RATE_EDIT", "100000/6000000")
            .env("BANTER_RATE_REACT", "100000/6000000")
            .env("BANTER_MAX_HISTORY_PAGE", "1000");
    })
}

/// A request's answer, or `None` once the power is off (`off` is set just before the cut,
/// and a request then gets at most 2 s more). A request that fails while the power is on
/// fails the test: a writer never stops quietly.
async fn within<T>(
    off: &AtomicBool,
    request: impl Future<Output = Result<T, RequestError>>,
) -> Option<T> {
    let cut = async {
        while !off.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    tokio::select! {
        answer = request => match answer {
            Ok(value) => Some(value),
            Err(_) if off.load(Ordering::SeqCst) => None,
            Err(error) => panic!("a request failed with the power on: {error:?}"),
        },
        () = cut => None,
    }
}

fn acked(answer: Message) -> EventAck {
    match answer {
        Message::EventAck(ack) => ack,
        other => panic!("expected EVENT_ACK, got {other:?}"),
    }
}

/// One writer: its account, and the posts it has reacted to (or tried to: a reaction sent
/// again would change nothing, and its ack would name no entry of its own).
struct Writer {
    n: usize,
    user: UserId,
    reacted: HashSet<(RoomId, u64)>,
}

/// One writer's work until the power goes off: mostly posts, and edits of its posts,
/// reactions to anyone's, a leave and rejoin, an upload now and then.
async fn write(
    writer: &mut Writer,
    conn: Connection,
    rooms: Vec<RoomId>,
    ledger: Ledger,
    off: Arc<AtomicBool>,
    mut dice: Dice,
    scratch: PathBuf,
) {
    let Writer { n, user, ref mut reacted } = *writer;
    let mut mine: Vec<(RoomId, u64)> = Vec::new();
    let mut i = 0u64;
    while !off.load(Ordering::SeqCst) {
        i += 1;
        let room = rooms[dice.below(rooms.len() as u64) as usize];
        let expected = match dice.below(20) {
            0..=10 => {
                let text = format!("w{n} post {i} {}", dice.below(u64::MAX));
                let Some(ack) = within(&off, post(&conn, room, &text)).await else { return };
                mine.push((room, ack.seq));
                (ack, Expected::Posted { text })
            }
            11..=13 if !mine.is_empty() => {
                let (room, target) = mine[dice.below(mine.len() as u64) as usize];
                let text = format!("w{n} edit {i}");
                let edit = Edit { room, target, text: Text::new(text.as_str()).unwrap() };
                let Some(answer) = within(&off, conn.request_one(edit)).await else { return };
                (acked(answer), Expected::Edited { target, text })
            }
            14..=16 => {
                let all: Vec<(RoomId, u64)> = {
                    let ledger = ledger.lock().unwrap();
                    let posts = ledger.iter().filter(|(_, e)| matches!(e, Expected::Posted { .. }));
                    posts.map(|(at, _)| *at).filter(|at| !reacted.contains(at)).collect()
                };
                if all.is_empty() {
                    continue;
                }
                let (room, target) = all[dice.below(all.len() as u64) as usize];
                let emoji = EMOJIS[n];
                let react = React { room, target, emoji: Text::new(emoji).unwrap(), on: true };
                reacted.insert((room, target));
                let Some(answer) = within(&off, conn.request_one(react)).await else { return };
                (acked(answer), Expected::Reacted { target, emoji })
            }
            17 => {
                let Some(answer) = within(&off, conn.request_one(RoomLeave { room })).await else {
                    return;
                };
                record(&ledger, &acked(answer), Expected::Left { user });
                // Back in at once: the writer's posts must keep landing in every room.
                if within(&off, conn.request_one(RoomJoin { room })).await.is_none() {
                    return;
                }
                continue;
            }
            _ => {
                // Mostly small files; one in eight takes several chunks.
                let largest = if dice.below(8) == 0 { 600_000 } else { 20_000 };
                let size = 1 + dice.below(largest);
                let content: Vec<u8> = (0..size).map(|_| dice.below(256) as u8).collect();
                let path = scratch.join(format!("w{n}-{i}"));
                std::fs::write(&path, &content).unwrap();
                let name = format!("file-{n}-{i}.bin");
                let Some(ack) = within(&off, conn.upload(room, &name, &path)).await else { return };
                let sha256 = sha256(&content);
                (ack, Expected::FileShared { sha256, content: Arc::new(content) })
            }
        };
        let (ack, expected) = expected;
        record(&ledger, &ack, expected);
    }
}

fn record(ledger: &Ledger, ack: &EventAck, expected: Expected) {
    let earlier = ledger.lock().unwrap().insert((ack.room, ack.seq), expected);
    assert!(earlier.is_none(), "two acks named {:?}/{}: {earlier:?}", ack.room, ack.seq);
}

fn sha256(data: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().try_into().unwrap()
}

/// Every acked file's content is on the disk at its size (the download check fetches each
/// once; this catches a content lost at a later cut).
fn files_on_disk(data: &Path, ledger: &Ledger) {
    for expected in ledger.lock().unwrap().values() {
        if let Expected::FileShared { sha256, content } = expected {
            let hex: String = sha256.iter().map(|b| format!("{b:02x}")).collect();
            let path = data.join("files").join(&hex[..2]).join(&hex);
            let size = std::fs::metadata(&path).map(|m| m.len());
            assert_eq!(size.ok(), Some(content.len() as u64), "{} lost", path.display());
        }
    }
}

/// The room's whole raw log, by seq.
async fn raw_log(reader: &Connection, room: RoomId) -> BTreeMap<u64, Message> {
    let mut log = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = reader.request(CatchUp { room, after, limit: 1000 }).await.unwrap();
        let mut next = None;
        for message in page {
            if let Message::PageEnd(end) = &message {
                next = end.next;
            } else {
                let seq = message.entry_meta().expect("an entry").seq;
                assert!(log.insert(seq, message).is_none(), "seq {seq} twice");
            }
        }
        match next {
            Some(n) => after = n,
            None => return log,
        }
    }
}

/// Checks every acked operation against the logs (the content of files acked since the last
/// check is downloaded; older ones were, and their entries still name the same SHA-256);
/// returns how many were checked.
async fn verify(
    reader: &Connection,
    rooms: &[RoomId],
    ledger: &Ledger,
    scratch: &Path,
    downloaded: &mut HashSet<(RoomId, u64)>,
) -> usize {
    let expected = ledger.lock().unwrap().clone();
    let mut logs = HashMap::new();
    for &room in rooms {
        let log = raw_log(reader, room).await;
        let seqs: Vec<u64> = log.keys().copied().collect();
        let contiguous: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, contiguous, "room {room:?}'s log has a gap");
        logs.insert(room, log);
    }
    for ((room, seq), expected) in &expected {
        let entry = logs[room].get(seq);
        let found = match (expected, entry) {
            (Expected::Posted { text }, Some(Message::Posted(p))) => p.text.as_str() == text,
            (Expected::Edited { target, text }, Some(Message::Edited(e))) => {
                e.target == *target && e.text.as_str() == text
            }
            (Expected::Reacted { target, emoji }, Some(Message::Reacted(r))) => {
                r.target == *target && r.emoji.as_str() == *emoji && r.on
            }
            (Expected::Left { user }, Some(Message::Membership(m))) => {
                m.user == *user && m.change == MembershipChange::Left
            }
            (Expected::FileShared { sha256, .. }, Some(Message::FileShared(f)))
                if downloaded.contains(&(*room, *seq)) =>
            {
                f.sha256 == *sha256
            }
            (Expected::FileShared { sha256, content }, Some(Message::FileShared(f))) => {
                downloaded.insert((*room, *seq));
                let path = scratch.join(format!("check-{room:?}-{seq}"));
                let _ = std::fs::remove_file(&path);
                reader.download(*room, *seq, &path).await.unwrap_or_else(|e| {
                    panic!("acked file at {room:?}/{seq} cannot be downloaded: {e:?}")
                });
                let same = std::fs::read(&path).unwrap() == **content;
                std::fs::remove_file(&path).unwrap();
                f.sha256 == *sha256 && same
            }
            _ => false,
        };
        assert!(found, "acked {expected:?} at {room:?}/{seq}, the log has {entry:?}");
    }
    expected.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acked_write_survives_power_cuts_and_banterd_check_stays_clean() {
    let cuts: u64 =
        std::env::var("BANTER_POWER_CUTS").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let dir = tempfile::tempdir().unwrap();
    let (store, mountpoint, scratch) =
        (dir.path().join("store"), dir.path().join("disk"), dir.path().join("scratch"));
    for d in [&store, &mountpoint, &scratch] {
        std::fs::create_dir(d).unwrap();
    }
    let disk = lossyfs::Disk::new(&store).unwrap();
    let mut mounted = disk.mount(&mountpoint).expect("mount lossyfs (needs /dev/fuse and root)");
    let data = mountpoint.join("data");
    let addr = free_port();
    let ledger: Ledger = Arc::default();

    let mut server = start(&data, addr);
    let names: Vec<String> = (0..WRITERS).map(|n| format!("writer{n}")).collect();
    let mut writers = Vec::new();
    let mut rooms = Vec::new();
    for (n, name) in names.iter().enumerate() {
        let (conn, _events, user) = login(addr, name, true).await;
        if n == 0 {
            for r in 0..ROOMS {
                rooms.push(create_room(&conn, &format!("room{r}")).await);
            }
        }
        writers.push(Writer { n, user, reacted: HashSet::new() });
    }
    let mut total_loss = lossyfs::Loss::default();
    let mut downloaded = HashSet::new();
    for cut in 0..cuts {
        let off = Arc::new(AtomicBool::new(false));
        let before = ledger.lock().unwrap().len();
        let mut running = Vec::new();
        for mut writer in writers.drain(..) {
            let (conn, events, _) = login(addr, &names[writer.n], false).await;
            for &room in &rooms {
                conn.request_one(RoomJoin { room }).await.unwrap();
            }
            let dice = Dice(0x9e37_79b9_7f4a_7c15 ^ (cut << 8 | writer.n as u64));
            let (ledger, off, rooms, scratch) =
                (ledger.clone(), off.clone(), rooms.clone(), scratch.clone());
            running.push(tokio::spawn(async move {
                let _events = events;
                write(&mut writer, conn, rooms, ledger, off, dice, scratch).await;
                writer
            }));
        }
        let mut dice = Dice(0x2545_f491_4f6c_dd1d ^ cut);
        tokio::time::sleep(Duration::from_millis(300 + dice.below(1200))).await;

        // The power goes off: nothing more becomes durable; then the process dies with it.
        off.store(true, Ordering::SeqCst);
        mounted.cut_power();
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        for writer in running {
            writers.push(writer.await.unwrap());
        }
        let (disk, loss) = mounted.unmount().unwrap();
        let loss = loss.unwrap();
        total_loss.unsynced_bytes += loss.unsynced_bytes;
        total_loss.unsynced_lengths += loss.unsynced_lengths;
        total_loss.unsynced_listings += loss.unsynced_listings;
        mounted = disk.mount(&mountpoint).unwrap();

        let check = banterd(&["check"], &data).output().unwrap();
        let report = String::from_utf8_lossy(&check.stdout);
        assert!(
            check.status.success() && report.lines().any(|line| line.starts_with("ok: ")),
            "banterd check after cut {cut}: {report}{}",
            String::from_utf8_lossy(&check.stderr)
        );
        server = start(&data, addr);
        let (reader, _events, _) = login(addr, &names[0], false).await;
        let checked = verify(&reader, &rooms, &ledger, &scratch, &mut downloaded).await;
        files_on_disk(&data, &ledger);
        eprintln!(
            "cut {cut}: {} operations acked in this run, {checked} checked; lost at the cut: {loss:?}",
            checked - before
        );
        assert!(checked > before, "nothing was acked before cut {cut}: the test tested nothing");
    }
    eprintln!("{cuts} power cuts; lost in all: {total_loss:?}");
    assert_ne!(total_loss, lossyfs::Loss::default(), "no cut lost anything: lossyfs kept it all");
    let ledger = ledger.lock().unwrap();
    let kinds: HashSet<&str> = ledger
        .values()
        .map(|e| match e {
            Expected::Posted { .. } => "post",
            Expected::Edited { .. } => "edit",
            Expected::Reacted { .. } => "reaction",
            Expected::Left { .. } => "leave",
            Expected::FileShared { .. } => "upload",
        })
        .collect();
    assert_eq!(kinds.len(), 5, "every kind of operation was acked at least once: {kinds:?}");
    drop(server);
    mounted.unmount().unwrap();
}
