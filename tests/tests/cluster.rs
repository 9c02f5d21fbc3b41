//! Two banterd nodes on one PostgreSQL, hearing of each other's commits over NATS (issue 17):
//! members on either node get every entry of a room, live, in order, exactly once; writers on
//! both nodes at once keep the room's log gap-free; and with NATS gone, entries still arrive
//! (the head check fills them from the database).

use std::time::Duration;

use banter_client::protocol::ErrorCode;
use banter_client::protocol::bounded::Text;
use banter_client::protocol::ids::RoomId;
use banter_client::protocol::message::{
    Message, PresenceSet, PresenceStatus, TypingSet, TypingState,
};
use banter_tests::nats::TestNats;
use banter_tests::postgres::TestPostgres;
use banter_tests::{TestServer, TestUser, WAIT, clustered, fresh_id};

async fn node(postgres: &TestPostgres, nats: &TestNats) -> TestServer {
    TestServer::node(clustered(postgres, nats)).await
}

/// Posts `n` messages as a client does: a SERVER_BUSY (the other node's commit won a race) is
/// retried with the same client_msg_id, so a retry can never post twice. Their seqs.
async fn post_many(user: &TestUser, room: RoomId, prefix: &str, n: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    for i in 0..n {
        let id = fresh_id();
        loop {
            match user.post_with_id(room, id, &format!("{prefix}{i}")).await {
                Ok(ack) => break seqs.push(ack.seq),
                Err(e) if e.code() == Some(ErrorCode::SERVER_BUSY) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
    seqs
}

/// The texts of the next `n` posts `user` receives live.
async fn posts(user: &mut TestUser, n: usize) -> Vec<(u64, String)> {
    tokio::time::timeout(WAIT, async {
        let mut seen = Vec::new();
        while seen.len() < n {
            if let Message::Posted(post) = user.next_room_event().await {
                seen.push((post.meta.seq, post.text.to_string()));
            }
        }
        seen
    })
    .await
    .expect("every post arrives")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_two_nodes_get_each_others_posts_in_order_exactly_once() {
    let postgres = TestPostgres::start();
    let mut nats = TestNats::start();
    let (a, b) = (node(&postgres, &nats).await, node(&postgres, &nats).await);
    let mut ada = a.user("ada").await;
    let mut bob = b.user("bob").await;
    let room = ada.create_room("general", false).await;
    bob.join(room).await.unwrap();

    ada.post(room, "hello from a").await.unwrap();
    assert_eq!(posts(&mut bob, 1).await[0].1, "hello from a");
    bob.post(room, "hello from b").await.unwrap();
    assert_eq!(posts(&mut ada, 2).await.last().unwrap().1, "hello from b");
    assert_eq!(posts(&mut bob, 1).await[0].1, "hello from b", "his own, echoed");

    // Typing notices cross nodes too.
    let typing = TypingSet { room, state: TypingState::Active };
    bob.conn.request_one(typing).await.unwrap();
    let bobs = bob.auth.user;
    ada.ephemeral(
        "bob's typing on node B reaches ada on node A",
        |m| matches!(m, Message::Typing(t) if t.user == bobs && t.state == TypingState::Active),
    )
    .await;
    // So does presence.
    let away = PresenceSet { status: PresenceStatus::Away, text: Text::new("lunch").unwrap() };
    bob.conn.request_one(away).await.unwrap();
    ada.ephemeral(
        "bob's presence on node B reaches ada on node A",
        |m| matches!(m, Message::Presence(p) if p.user == bobs && p.status == PresenceStatus::Away),
    )
    .await;

    // Writers on both nodes at once: one gap-free log, and each side sees every post once.
    let (from_a, from_b) =
        tokio::join!(post_many(&ada, room, "a", 15), post_many(&bob, room, "b", 15));
    let mut all: Vec<u64> = from_a.iter().chain(&from_b).copied().collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 30, "no seq taken twice");
    assert_eq!(all.last().unwrap() - all.first().unwrap(), 29, "no gap: {all:?}");
    for user in [&mut ada, &mut bob] {
        let seen = posts(user, 30).await;
        let seqs: Vec<u64> = seen.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, all, "in order, each once");
    }

    // NATS gone: the head check still brings bob what ada posts.
    nats.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    ada.post(room, "while the bus is down").await.unwrap();
    assert_eq!(posts(&mut bob, 1).await[0].1, "while the bus is down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_and_a_password_reset_on_one_node_hold_on_the_other() {
    use banter_client::protocol::message::{ContactAction, ContactSet};
    use banter_server::admin::{AdminRequest, socket};

    let postgres = TestPostgres::start();
    let nats = TestNats::start();
    let (a, b) = (node(&postgres, &nats).await, node(&postgres, &nats).await);
    let ada = a.user("ada").await;
    let mut bob = b.user("bob").await;

    // Bob blocks ada on node B: on node A she can no longer open a direct room with him.
    let block = ContactSet { username: Text::new("ada").unwrap(), action: ContactAction::Block };
    bob.conn.request_one(block).await.unwrap();
    tokio::time::timeout(WAIT, async {
        while ada.open_dm("bob").await.err().and_then(|e| e.code()) != Some(ErrorCode::NOT_FOUND) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the block reaches node A");

    // The operator resets bob's password on node A: his connection on node B closes.
    let reset =
        AdminRequest::UserPasswd { username: "bob".into(), password: "a brand new one".into() };
    socket::call(a.data_dir(), &reset).unwrap();
    let (code, _) = tokio::time::timeout(WAIT, bob.closed()).await.expect("closed on node B");
    assert_eq!(code, Some(ErrorCode::SESSION_REVOKED));
}

/// Waits for the client's next acknowledged send.
async fn acked(updates: &mut tokio::sync::mpsc::UnboundedReceiver<banter_client::Update>) {
    tokio::time::timeout(WAIT, async {
        while !matches!(updates.recv().await, Some(banter_client::Update::Sent { .. })) {}
    })
    .await
    .expect("the send is acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_given_the_cluster_fails_over_to_another_node_and_loses_nothing() {
    use banter_client::protocol::message::History;
    use banter_client::{Client, ClientConfig, Credentials, Options, Trust};

    let postgres = TestPostgres::start();
    let nats = TestNats::start();
    let mut a = node(&postgres, &nats).await;
    let mut b = TestServer::start_beside(&a, clustered(&postgres, &nats)).await;
    let ada = a.user("ada").await;
    let room = ada.create_room("general", false).await;

    let config = ClientConfig {
        addrs: vec![a.addr(), b.addr()],
        options: Options::new(Trust::AcceptAny, "localhost"),
        outbox: None,
        known_rooms: [(room, 0)].into(),
    };
    let (client, mut updates) = Client::start(config, Credentials::from(ada.auth.clone())).unwrap();
    // Whichever node the client picked first, it is stopped under it once: after m0 node A
    // goes; after m1 node A is back and node B goes.
    client.send(room, "m0", None).unwrap();
    acked(&mut updates).await;
    a.stop().await;
    client.send(room, "m1", None).unwrap();
    acked(&mut updates).await;
    a.restart().await;
    b.stop().await;
    client.send(room, "m2", None).unwrap();
    acked(&mut updates).await;

    // Every send is in the room once, in order (read from the database through node A).
    let reader = a.login("ada").await;
    let page = reader.conn.request(History { room, before: None, limit: 10 }).await.unwrap();
    let mut texts: Vec<String> = page
        .iter()
        .filter_map(|m| match m {
            Message::HistoryMessage(h) => Some(h.text.to_string()),
            _ => None,
        })
        .collect();
    texts.reverse();
    assert_eq!(texts, ["m0", "m1", "m2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_room_spans_nodes_rosters_packets_and_moderation_included() {
    use banter_client::protocol::message::{VoiceAction, VoiceModerate};
    use banter_tests::voice::{datagram, heard, join_voice, voice_state};

    let postgres = TestPostgres::start();
    let nats = TestNats::start();
    let a = node(&postgres, &nats).await;
    let mut b = TestServer::start_beside(&a, clustered(&postgres, &nats)).await;
    let mut ada = a.user("ada").await;
    let mut bob = b.user("bob").await;
    let room = ada.create_voice_room("talk").await;
    bob.join(room).await.unwrap();

    let hers = join_voice(&ada, room).await.source;
    voice_state(&mut bob, ada.auth.user, |s| s.present, "ada's join on A reaches B").await;
    let joined = join_voice(&bob, room).await;
    voice_state(&mut ada, bob.auth.user, |s| s.present, "bob's join on B reaches A").await;
    // Each node takes its own slot of source ids: no two participants share one.
    assert_ne!(hers.0 >> 20, joined.source.0 >> 20, "{hers:?} and {:?}", joined.source);
    assert!(
        joined.roster.iter().any(|p| p.user == ada.auth.user && p.source == hers),
        "node B's roster names ada on node A: {:?}",
        joined.roster
    );

    // Voice both ways, stamped by the speaker's node.
    ada.conn.quic().send_datagram(datagram(999, 1, false, b"from A")).unwrap();
    let (header, payload) = heard(&bob, WAIT).await.expect("A's packet reaches B");
    assert_eq!((header.source, payload.as_slice()), (u64::from(hers.0), &b"from A"[..]));
    bob.conn.quic().send_datagram(datagram(0, 1, false, b"from B")).unwrap();
    assert_eq!(heard(&ada, WAIT).await.expect("B's packet reaches A").1, b"from B");

    // Ada, the owner, server-mutes bob from node A: node B applies it and drops his voice.
    let mute = VoiceModerate { room, user: bob.auth.user, action: VoiceAction::ServerMute };
    ada.conn.request_one(mute).await.unwrap();
    voice_state(&mut ada, bob.auth.user, |s| s.participant.state.server_mute, "bob muted").await;
    bob.conn.quic().send_datagram(datagram(0, 2, false, b"muted")).unwrap();
    assert!(heard(&ada, Duration::from_millis(400)).await.is_none(), "B dropped bob's voice");

    // The decision is in the database: on a node started after it, bob joins voice muted.
    let c = TestServer::start_beside(&a, clustered(&postgres, &nats)).await;
    let bob_on_c = c.login("bob").await;
    let joined = join_voice(&bob_on_c, room).await;
    let state = &joined.roster.iter().find(|p| p.source == joined.source).unwrap().state;
    assert!(state.server_mute, "a node that never heard the decision still applies it");
    drop(bob_on_c);

    // Node B stops: bob leaves voice on node A too.
    b.stop().await;
    voice_state(&mut ada, bob.auth.user, |s| !s.present, "bob's departure reaches A").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_shared_on_one_node_downloads_on_another_and_its_delete_holds_everywhere() {
    use banter_client::protocol::message::Delete;

    let postgres = TestPostgres::start();
    let nats = TestNats::start();
    // One files_dir for the cluster, as a shared mount would be.
    let files = tempfile::tempdir().unwrap();
    let shared_files = |config: &mut banter_server::config::Config| {
        clustered(&postgres, &nats)(config);
        config.files_dir = files.path().to_owned();
    };
    let a = TestServer::node(shared_files).await;
    let b = TestServer::start_beside(&a, shared_files).await;
    let mut ada = a.user("ada").await;
    let mut bob = b.user("bob").await;
    let room = ada.create_room("files", false).await;
    bob.join(room).await.unwrap();

    let work = tempfile::tempdir().unwrap();
    let original = work.path().join("notes.txt");
    std::fs::write(&original, "minutes of the meeting\n".repeat(5000)).unwrap();
    let seq = ada.conn.upload(room, "notes.txt", &original).await.unwrap().seq;
    // Bob fetches it once it has reached him, as a client does: his node serves an entry
    // once it has it (it comes over NATS, a moment after the ack on node A).
    file_shared(&mut bob, seq).await;
    let copy = work.path().join("copy.txt");
    bob.conn.download(room, seq, &copy).await.expect("node B serves what node A stored");
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&original).unwrap());

    // Deleted on node A: the content goes from the shared directory, and node B no longer
    // serves it.
    ada.conn.request_one(Delete { room, target: seq }).await.unwrap();
    let stored: Vec<_> =
        walk(files.path()).into_iter().filter(|p| !p.contains("partial")).collect();
    assert!(stored.is_empty(), "the content is removed: {stored:?}");
    let again = work.path().join("again.txt");
    let refused = bob.conn.download(room, seq, &again).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NOT_FOUND));
    // Shared again from node B, its bytes are uploaded afresh and serve on node A.
    let seq = bob.conn.upload(room, "notes.txt", &original).await.unwrap().seq;
    file_shared(&mut ada, seq).await;
    let third = work.path().join("third.txt");
    ada.conn.download(room, seq, &third).await.unwrap();
    assert_eq!(std::fs::read(&third).unwrap(), std::fs::read(&original).unwrap());
}

/// Waits until `user` gets the FILE_SHARED of `seq`.
async fn file_shared(user: &mut TestUser, seq: u64) {
    tokio::time::timeout(WAIT, async {
        while !matches!(user.next_room_event().await, Message::FileShared(f) if f.meta.seq == seq) {
        }
    })
    .await
    .expect("the shared file reaches the other node");
}

/// Polls `/healthz` at `addr` until it answers `status`; its body.
async fn healthz_until(addr: std::net::SocketAddr, status: u16) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            let (got, body) = banter_tests::http_get(addr, "/healthz").await;
            if got == status {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("/healthz never answered {status}"))
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_guessing_a_password_through_several_nodes_is_as_slow_as_through_one() {
    let postgres = TestPostgres::start();
    let nats = TestNats::start();
    let four_a_minute = |config: &mut banter_server::config::Config| {
        clustered(&postgres, &nats)(config);
        let bucket = banter_server::config::Bucket { burst: 4, per_minute: 1 };
        config.rate.insert("auth".into(), bucket);
    };
    let a = TestServer::node(four_a_minute).await;
    let b = TestServer::start_beside(&a, four_a_minute).await;
    a.user("ada").await;

    let guess = |server: &TestServer| {
        let addr = server.addr();
        async move {
            let (conn, _events) = banter_tests::connect(addr).await;
            conn.login("ada", "a wrong guess").await.unwrap_err()
        }
    };
    for _ in 0..2 {
        assert_eq!(guess(&a).await.code(), Some(ErrorCode::AUTH_FAILED));
    }
    // Node B hears of those two; its own bucket for ada (and for the address) still had four.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..2 {
        assert_eq!(guess(&b).await.code(), Some(ErrorCode::AUTH_FAILED));
    }
    let refused = guess(&b).await;
    assert_eq!(refused.code(), Some(ErrorCode::RATE_LIMITED), "{refused}");
    assert!(refused.to_string().contains("for this account"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_nats_restart_live_delivery_resumes_and_what_was_missed_is_filled_in_order() {
    let postgres = TestPostgres::start();
    let mut nats = TestNats::start();
    // Head checks a minute apart: what arrives here comes by the bus, or by a gap it shows.
    let slow_checks = |config: &mut banter_server::config::Config| {
        clustered(&postgres, &nats)(config);
        config.bus_head_check_ms = 60_000;
        config.metrics = true;
        config.metrics_listen = "127.0.0.1:0".parse().unwrap();
    };
    let a = TestServer::node(slow_checks).await;
    let b = TestServer::node(slow_checks).await;
    let ada = a.user("ada").await;
    let mut bob = b.user("bob").await;
    let room = ada.create_room("general", false).await;
    bob.join(room).await.unwrap();
    ada.post(room, "before").await.unwrap();
    assert_eq!(posts(&mut bob, 1).await[0].1, "before");

    nats.stop();
    let health = a.metrics_addr().unwrap();
    let said = healthz_until(health, 503).await;
    assert!(said.contains("NATS"), "/healthz says why: {said}");
    ada.post(room, "during").await.unwrap();
    nats.restart();
    healthz_until(health, 200).await;
    // The nodes reconnect by themselves; the first announcement after that shows bob's node
    // the gap, which it fills from the database before delivering what showed it.
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        for i in 0.. {
            ada.post(room, &format!("after {i}")).await.unwrap();
            seen.extend(posts(&mut bob, 1).await);
            if seen.iter().any(|(_, text)| text == "during") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("delivery resumes after NATS is back");
    assert_eq!(seen[0].1, "during", "what was missed comes first, in order: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_is_a_retryable_error_and_the_node_recovers_by_itself() {
    let mut postgres = TestPostgres::start();
    let nats = TestNats::start();
    let a = node(&postgres, &nats).await;
    let ada = a.user("ada").await;
    let room = ada.create_room("general", false).await;
    let first = ada.post(room, "before").await.unwrap().seq;

    postgres.stop();
    let refused = ada.post(room, "while the database is down").await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::SERVER_BUSY), "{refused}");
    assert!(refused.to_string().contains("database is unavailable"), "{refused}");
    postgres.restart();
    // The node reconnects on the next request: a client's retry goes through.
    let id = fresh_id();
    let second = tokio::time::timeout(WAIT, async {
        loop {
            match ada.post_with_id(room, id, "after").await {
                Ok(ack) => return ack.seq,
                Err(e) if e.code() == Some(ErrorCode::SERVER_BUSY) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .expect("the node recovers");
    assert_eq!(second, first + 1, "nothing was half-written while the database was away");
}
