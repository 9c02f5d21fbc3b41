//! kill -9 during sends (issue 3, "Done when"): a banterd child process is killed while several
//! clients post; after a restart, each client resends what it did not see acked (and what it
//! did, to prove idempotency), and every acked message is in history exactly once, at the
//! room_seq its ack named, in each sender's order.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use banter_client::protocol::bounded::Text;
use banter_client::protocol::ids::RoomId;
use banter_client::protocol::message::{Message, Post, RoomJoin};
use banter_client::{Connection, Event};
use common::{connect, create_room, free_port, history, login, start};

/// One message a client tried to send.
#[derive(Debug, Clone)]
struct Attempt {
    id: u128,
    text: String,
    acked: Option<u64>,
}

async fn post(
    conn: &Connection,
    room: RoomId,
    attempt: &Attempt,
) -> Result<u64, banter_client::RequestError> {
    let request = Post {
        room,
        client_msg_id: attempt.id,
        text: Text::new(attempt.text.as_str()).unwrap(),
        reply_to: None,
        anonymous: false,
    };
    match conn.request_one(request).await? {
        Message::EventAck(ack) => Ok(ack.seq),
        other => panic!("expected EVENT_ACK, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acked_message_survives_kill_9_exactly_once_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let mut server = start(dir.path(), addr);
    let _ = connect(addr).await;

    let names = ["ada", "bob", "cy"];
    let (owner, _owner_events, _) = login(addr, names[0], true).await;
    let room = create_room(&owner, "crash").await;
    let mut clients = vec![owner];
    for name in &names[1..] {
        let (conn, _events, _) = login(addr, name, true).await;
        conn.request_one(RoomJoin { room }).await.unwrap();
        clients.push(conn);
    }

    // Each client posts as fast as acks come back until the server dies.
    let mut tasks = Vec::new();
    for (n, conn) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut attempts = Vec::new();
            for i in 0u128.. {
                let mut attempt = Attempt {
                    id: (n as u128) << 64 | i,
                    text: format!("{} {i}", names[n]),
                    acked: None,
                };
                // A request in flight when the server dies would wait for the QUIC idle
                // timeout; two seconds without an answer is a failure here.
                let result =
                    tokio::time::timeout(Duration::from_secs(2), post(&conn, room, &attempt)).await;
                let acked = result.ok().and_then(Result::ok);
                let failed = acked.is_none();
                attempt.acked = acked;
                attempts.push(attempt);
                if failed {
                    return attempts;
                }
            }
            unreachable!()
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // SIGKILL: no shutdown, no flush beyond what group commit already made durable.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let mut attempts = Vec::new();
    for task in tasks {
        attempts.push(task.await.unwrap());
    }
    let acked: usize = attempts.iter().flatten().filter(|a| a.acked.is_some()).count();
    assert!(acked >= 30, "only {acked} posts acked before the kill; the test needs load");
    eprintln!("{acked} posts acked before kill -9");

    let _server = start(dir.path(), addr);
    // Every client resends everything it attempted, acked or not, with the same ids.
    for (n, attempts) in attempts.iter().enumerate() {
        let (conn, _events, _) = login(addr, names[n], false).await;
        for attempt in attempts {
            let seq = post(&conn, room, attempt).await.expect("resend after restart");
            if let Some(acked) = attempt.acked {
                assert_eq!(seq, acked, "a resend of an acked post returns the original ack");
            }
        }
    }

    // History: each attempted message exactly once; acked ones at their acked seq; each
    // sender's messages in the order sent.
    let (reader, _events, _) = login(addr, "ada", false).await;
    let posts = history(&reader, room).await;
    let texts: Vec<&String> = posts.values().collect();
    let unique: HashSet<&String> = texts.iter().copied().collect();
    assert_eq!(unique.len(), texts.len(), "no message appears twice");
    let attempted: usize = attempts.iter().map(Vec::len).sum();
    assert_eq!(texts.len(), attempted, "every attempted message is in history once");
    for attempt in attempts.iter().flatten() {
        if let Some(seq) = attempt.acked {
            assert_eq!(posts.get(&seq), Some(&attempt.text), "acked message at its acked seq");
        }
    }
    for name in names {
        let order: Vec<u64> = posts
            .values()
            .filter(|t| t.starts_with(&format!("{name} ")))
            .map(|t| t.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{name}'s messages out of order: {order:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero_with_everything_acked_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let mut server = start(dir.path(), addr);
    let (conn, mut events, _) = login(addr, "ada", true).await;
    let room = create_room(&conn, "term").await;
    for i in 0..10u128 {
        post(&conn, room, &Attempt { id: i, text: format!("m{i}"), acked: None }).await.unwrap();
    }
    let status =
        Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    // The client is told to go away before the connection closes.
    let went_away = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Some(Event::GoAway(_)) => return true,
                Some(Event::Closed { .. }) | None => return false,
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert!(went_away, "GO_AWAY before the close");
    let exit = server.child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "banterd exits 0 after SIGTERM");

    let _server = start(dir.path(), addr);
    let (reader, _events, _) = login(addr, "ada", false).await;
    assert_eq!(history(&reader, room).await.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_after_kill_9_resets_the_dead_connections_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let mut server = start(dir.path(), addr);
    let (conn, mut events, _) = login(addr, "ada", true).await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let _server = start(dir.path(), addr);
    // The old connection's next packet reaches the new process, which answers with a
    // stateless reset keyed like its predecessor's: the client learns at once that the
    // connection is gone, instead of after the 30 s idle timeout.
    conn.quic().send_datagram(bytes::Bytes::from_static(b"anyone there?")).unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.recv().await {
                Some(Event::Closed { .. }) | None => return,
                Some(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the client still waits on a connection the restart ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_posts_not_yet_indexed_at_a_kill_9_are_searchable_after_the_restart() {
    use banter_client::protocol::message::Search;
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let mut server = start(dir.path(), addr);
    let (conn, _events, _) = login(addr, "ada", true).await;
    let room = create_room(&conn, "index").await;
    for i in 0..20u128 {
        let attempt = Attempt { id: i, text: format!("kumquat {i}"), acked: None };
        post(&conn, room, &attempt).await.unwrap();
    }
    // At once: the index commits about once a second, so most of these are not in it yet.
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let _server = start(dir.path(), addr);
    let (conn, _events, _) = login(addr, "ada", false).await;
    let query = Search::new(Text::new("kumquat").unwrap(), 100);
    let mut found = 0;
    for _ in 0..100 {
        found = conn.search(query.clone()).await.unwrap().0.len();
        if found == 20 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{found} of 20 acked posts are searchable after the restart");
}

/// `banterd reindex` rebuilds the index offline and `banterd check` reports it up to date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_rebuilds_the_search_index_and_check_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    reindex_and_check(dir.path(), &[], || {
        std::fs::remove_dir_all(dir.path().join("search")).unwrap();
    })
    .await;
}

/// The same on a cluster's store: the index is tables in PostgreSQL, emptied and rebuilt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_and_check_work_on_postgres_too() {
    let postgres = banter_tests::postgres::TestPostgres::start();
    let url = postgres.url();
    let dir = tempfile::tempdir().unwrap();
    let env = [("BANTER_STORE", "postgres"), ("BANTER_DATABASE_URL", url.as_str())];
    reindex_and_check(dir.path(), &env, || {
        // The blocking client runs a runtime of its own: not on this test's.
        let url = url.clone();
        std::thread::spawn(move || {
            let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            db.batch_execute("TRUNCATE banter_search").unwrap();
        })
        .join()
        .unwrap();
    })
    .await;
}

/// Posts 7 messages through a banterd with `env`, kills it, runs `forget` (the index may
/// be lost), then `banterd reindex` must index all 7 and `banterd check` call it up to date.
async fn reindex_and_check(dir: &std::path::Path, env: &[(&str, &str)], forget: impl FnOnce()) {
    let addr = free_port();
    let mut server = common::start_adjusted(dir, addr, &[], |command| {
        command.envs(env.iter().copied());
    });
    let (conn, _events, _) = login(addr, "ada", true).await;
    let room = create_room(&conn, "indexed").await;
    for i in 0..7u128 {
        let attempt = Attempt { id: i, text: format!("entry {i}"), acked: None };
        post(&conn, room, &attempt).await.unwrap();
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    forget();

    let stdout = |args: &[&str]| {
        let out = common::banterd(args, dir).envs(env.iter().copied()).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let reindexed = stdout(&["reindex"]);
    assert!(reindexed.starts_with("search index rebuilt: 7 documents"), "{reindexed}");
    let checked = stdout(&["check"]);
    assert!(checked.contains("search index: 7 documents, up to date"), "{checked}");
}
