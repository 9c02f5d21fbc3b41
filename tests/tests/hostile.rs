//! Bad input over real QUIC gets typed errors and never disturbs other clients.

use std::future::Future;
use std::time::{Duration, Instant};

use banter_client::Event;
use banter_client::protocol::bounded::{Blob, Text};
use banter_client::protocol::frame::encode_raw;
use banter_client::protocol::ids::RoomId;
use banter_client::protocol::message::{
    ListScope, Message, Post, RoomCreate, RoomList, Visibility,
};
use banter_client::protocol::{ErrorCode, FrameDecoder, FrameType, varint};
use banter_tests::{ImpairedPath, Impairment, TestServer, TestUser, WAIT, fresh_id};

/// Writes raw bytes as a request stream and returns the decoded answer.
async fn raw_request(conn: &quinn::Connection, bytes: &[u8]) -> Vec<Message> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    // The server may stop reading early (that is the point); a failed write is fine.
    let _ = send.write_all(bytes).await;
    let _ = send.finish();
    let mut decoder = FrameDecoder::new(65536);
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::new();
    while let Ok(Some(n)) = tokio::time::timeout(WAIT, recv.read(&mut buf)).await.unwrap() {
        decoder.push(&buf[..n]);
        while let Some(message) = decoder.next_message().unwrap() {
            out.push(message);
        }
    }
    out
}

/// A raw connection (no SDK reading it) that has sent SETTINGS and HELLO with `token`, and
/// then reads nothing; its CONTROL stream, to keep it open.
async fn raw_hello(server: &TestServer, token: &[u8]) -> (quinn::Connection, quinn::SendStream) {
    use banter_client::protocol::message::Hello;
    use banter_client::protocol::session::{ClientConfig, ClientConnection, Greeting};
    use banter_client::protocol::stream::StreamType;

    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let options = banter_client::Options::new(banter_client::Trust::AcceptAny, "localhost");
    let raw =
        banter_client::Connection::connect_raw(&endpoint, server.addr(), options).await.unwrap();
    let now = Instant::now();
    let mut session = ClientConnection::new(&ClientConfig::default(), now);
    let access_token = Blob::new(token.to_vec()).unwrap();
    session.greet(now, Greeting::Hello { access_token, interests: Hello::INTEREST_ALL });
    let mut control = raw.open_uni().await.unwrap();
    let mut bytes = Vec::new();
    StreamType::CONTROL.encode(&mut bytes);
    bytes.extend(session.poll_transmit().unwrap());
    control.write_all(&bytes).await.unwrap();
    (raw, control)
}

fn error_code(answer: &[Message]) -> Option<ErrorCode> {
    match answer.last() {
        Some(Message::Error(error)) => Some(error.code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_unknown_requests_get_typed_errors_while_others_chat() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let mut grace = server.user("grace").await;
    let mallory = server.user("mallory").await;
    let room = ada.create_room("general", false).await;
    grace.join(room).await.unwrap();
    grace.next_room_event().await;
    let raw = mallory.conn.quic();

    // A POST whose body stops in the middle of its fields.
    let mut truncated = Vec::new();
    encode_raw(FrameType(0x30), &[0x07, 0x01], &mut truncated);
    assert_eq!(error_code(&raw_request(raw, &truncated).await), Some(ErrorCode::FRAME_ERROR));

    // A frame that declares 1 MiB.
    let mut oversized = Vec::new();
    varint::encode(0x30, &mut oversized);
    varint::encode(1 << 20, &mut oversized);
    oversized.extend_from_slice(&[0; 1024]);
    assert_eq!(error_code(&raw_request(raw, &oversized).await), Some(ErrorCode::FRAME_TOO_LARGE));

    // A control-stream frame as a request, and a type nobody registered before the request.
    let mut wrong_way = Vec::new();
    Message::from(banter_client::protocol::message::Pong { t: 1 }).encode(&mut wrong_way);
    assert_eq!(
        error_code(&raw_request(raw, &wrong_way).await),
        Some(ErrorCode::PROTOCOL_VIOLATION)
    );
    let mut unknown = Vec::new();
    encode_raw(FrameType(0x3f00), b"??", &mut unknown);
    let mut post = Vec::new();
    Message::from(Post {
        room,
        client_msg_id: fresh_id(),
        text: Text::new("x").unwrap(),
        reply_to: None,
        anonymous: false,
    })
    .encode(&mut post);
    unknown.extend_from_slice(&post);
    // The unknown frame is skipped and the POST after it is the request (spec §4.3); mallory
    // is not a member, so it is refused for that reason, with a typed error.
    assert_eq!(error_code(&raw_request(raw, &unknown).await), Some(ErrorCode::FORBIDDEN));

    // Invalid UTF-8 in a text field.
    let mut bad_utf8 = Vec::new();
    encode_raw(FrameType(0x28), &[0x02, 0xc3, 0x28], &mut bad_utf8);
    assert_eq!(error_code(&raw_request(raw, &bad_utf8).await), Some(ErrorCode::FRAME_ERROR));

    // Meanwhile, chat goes on.
    ada.post(room, "still fine").await.unwrap();
    let Message::Posted(posted) = grace.next_room_event().await else { panic!() };
    assert_eq!(posted.text.as_str(), "still fine");
    // And mallory's connection is still usable.
    mallory.join(room).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_names_are_refused() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let request = RoomCreate {
        name: Text::new("evil\u{1b}[2Jroom").unwrap(),
        topic: Text::default(),
        category: Text::default(),
        visibility: Visibility::Public,
        voice: false,
    };
    let refused = ada.conn.request_one(request).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::INVALID_REQUEST));
    let room = ada.create_room("fine", false).await;
    let escape = ada.post(room, "clear screen \u{1b}[2J").await.unwrap_err();
    assert_eq!(escape.code(), Some(ErrorCode::INVALID_REQUEST));
    ada.post(room, "two\nlines\tand a tab").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posting_over_the_rate_limit_is_refused_with_a_retry_time() {
    let server = TestServer::start_with(|c| {
        c.rate.get_mut("message").unwrap().burst = 3;
        c.rate.get_mut("message").unwrap().per_minute = 60;
    })
    .await;
    let ada = server.user("ada").await;
    let room = ada.create_room("general", false).await;
    for _ in 0..3 {
        ada.post(room, "ok").await.unwrap();
    }
    let limited = ada.post(room, "one too many").await.unwrap_err();
    match limited {
        banter_client::RequestError::Server { code, retry_after_ms, .. } => {
            assert_eq!(code, ErrorCode::RATE_LIMITED);
            let retry = retry_after_ms.expect("a retry time");
            assert!(retry > 0 && retry <= 1000, "{retry}");
        }
        other => panic!("expected RATE_LIMITED, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_authenticates_is_closed() {
    let server = TestServer::start_with(|c| c.auth_timeout_ms = 300).await;
    let (_conn, mut events) = server.connect().await;
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Event::Closed { code, .. }) = events.recv().await {
                return code;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(closed, Some(ErrorCode::NOT_AUTHENTICATED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_uni_streams_are_stopped_and_a_second_control_stream_closes_the_connection() {
    let server = TestServer::start().await;
    let mut ada = server.user("ada").await;
    let raw = ada.conn.quic().clone();

    let mut grease = raw.open_uni().await.unwrap();
    let mut prefix = Vec::new();
    varint::encode(0x21 + 0x1f * 3, &mut prefix);
    grease.write_all(&prefix).await.unwrap();
    let stopped = tokio::time::timeout(WAIT, grease.stopped()).await.unwrap().unwrap();
    assert_eq!(stopped.map(|code| code.into_inner()), Some(ErrorCode::UNKNOWN_STREAM.0));
    // Still connected and working.
    ada.create_room("still-here", false).await;

    let mut second = raw.open_uni().await.unwrap();
    second.write_all(&[0x00]).await.unwrap();
    let (code, _) = ada.closed().await;
    assert_eq!(code, Some(ErrorCode::PROTOCOL_VIOLATION));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_devices_share_one_rate_budget() {
    // Rate budgets are per node (docs/cluster.md): one node, whatever the backend.
    let server = TestServer::node(|c| {
        c.rate.get_mut("message").unwrap().burst = 4;
        c.rate.get_mut("message").unwrap().per_minute = 1;
    })
    .await;
    let phone = server.user("ada").await;
    let laptop = server.login("ada").await;
    let room = phone.create_room("general", false).await;
    for _ in 0..2 {
        phone.post(room, "from the phone").await.unwrap();
        laptop.post(room, "from the laptop").await.unwrap();
    }
    let limited = laptop.post(room, "a fifth").await.unwrap_err();
    assert_eq!(limited.code(), Some(ErrorCode::RATE_LIMITED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_per_address_cap_are_refused() {
    let server = TestServer::start_with(|c| c.max_connections_per_ip = 2).await;
    let _first = server.connect().await;
    let _second = server.connect().await;
    let options = banter_client::Options::new(banter_client::Trust::AcceptAny, "localhost");
    let third = banter_client::Connection::connect(server.addr(), options).await;
    assert!(third.is_err(), "a third connection from one address was accepted");
}

/// A post's round trip while something hostile goes on: what other users feel.
async fn post_latency(user: &TestUser, room: RoomId) -> Duration {
    let started = Instant::now();
    user.post(room, "still here").await.unwrap();
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_request_streams_is_served_in_bounded_batches_while_others_chat() {
    let server = TestServer::start().await;
    let flooder = server.user("flooder").await;
    let ada = server.user("ada").await;
    let room = ada.create_room("general", false).await;
    // 2,000 requests at once: QUIC admits 32 streams at a time (the server's stream limit), so
    // the rest wait for credit instead of piling up in banterd.
    let conn = flooder.conn.clone();
    let flood = tokio::spawn(async move {
        let requests = (0..2000).map(|_| {
            let conn = conn.clone();
            async move {
                conn.request(RoomList { scope: ListScope::Public, after: None, limit: 10 }).await
            }
        });
        let answers = join_all(requests).await;
        answers.iter().filter(|a| a.is_ok()).count()
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let latency = post_latency(&ada, room).await;
    assert!(latency < Duration::from_secs(2), "a post took {latency:?} during the flood");
    assert_eq!(flood.await.unwrap(), 2000, "every request answered, none dropped");
}

/// Runs futures concurrently and collects their outputs in order.
async fn join_all<F: Future + Send + 'static>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authentication_flood_is_cut_off_by_the_address_limit_before_it_costs_hashing() {
    // Real limits for authentication (the test server's are loose).
    let server = TestServer::start_with(|c| {
        let auth = c.rate.get_mut("auth").unwrap();
        auth.burst = 10;
        auth.per_minute = 30;
    })
    .await;
    let ada = server.user("ada").await;
    let room = ada.create_room("general", false).await;
    let (conn, _events) = server.connect().await;
    let started = Instant::now();
    let attempts =
        join_all(
            (0..60).map(|i| {
                let conn = conn.clone();
                async move {
                    conn.login("ada", &format!("wrong password {i}")).await.unwrap_err().code()
                }
            }),
        )
        .await;
    let failed = attempts.iter().filter(|c| **c == Some(ErrorCode::AUTH_FAILED)).count();
    let limited = attempts.iter().filter(|c| **c == Some(ErrorCode::RATE_LIMITED)).count();
    // The first attempts were checked (one password hash each); the others were refused
    // before hashing, so the flood costs at most a burst of hashes.
    assert!(failed <= 11, "{failed} attempts were hashed");
    assert_eq!(failed + limited, 60, "{attempts:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The logged-in user chats on.
    let latency = post_latency(&ada, room).await;
    assert!(latency < Duration::from_secs(2), "{latency:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_events_is_paused_while_others_get_everything() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let mut bob = server.user("bob").await;
    let mallory = server.user("mallory").await;
    let room = ada.create_room("flood", false).await;
    bob.join(room).await.unwrap();
    mallory.join(room).await.unwrap();

    // Mallory logs in on a raw connection, says SETTINGS and HELLO, and then reads nothing:
    // not the control stream, not the events stream.
    let (raw, control) = raw_hello(&server, &mallory.auth.access_token).await;

    // Ada posts 1000 messages of 3 kB (3 MB, beyond what flow control and the live backlog
    // hold for one session); Bob receives every one of them.
    let text = "x".repeat(3000);
    let posts = (0..1000).map(|_| {
        let (conn, text) = (ada.conn.clone(), text.clone());
        async move {
            let post = Post {
                room,
                client_msg_id: fresh_id(),
                text: Text::new(text).unwrap(),
                reply_to: None,
                anonymous: false,
            };
            conn.request_one(post).await.map(|_| ())
        }
    });
    let started = Instant::now();
    for result in join_all(posts).await {
        result.unwrap();
    }
    let mut received = 0;
    while received < 1000 {
        if let Message::Posted(_) = tokio::time::timeout(WAIT, bob.next_room_event()).await.unwrap()
        {
            received += 1;
        }
    }
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());

    // Now Mallory reads: what was buffered for her, then LIVE_PAUSED for the room, well short
    // of the 1000 posts (she would CATCH_UP the rest).
    let mut events = loop {
        let mut stream = tokio::time::timeout(WAIT, raw.accept_uni()).await.unwrap().unwrap();
        let mut head = [0u8; 1];
        stream.read_exact(&mut head).await.unwrap();
        if head[0] == 0x01 {
            break stream;
        }
    };
    let mut decoder = FrameDecoder::new(1 << 20);
    let mut buf = vec![0u8; 65536];
    let (mut posted, mut last_seq) = (0, 0);
    let paused = loop {
        match decoder.next_message().unwrap() {
            Some(Message::Posted(post)) => {
                posted += 1;
                last_seq = post.meta.seq;
            }
            Some(Message::LivePaused(paused)) => break paused,
            Some(_) => {}
            None => {
                let n = tokio::time::timeout(WAIT, events.read(&mut buf)).await.unwrap().unwrap();
                decoder.push(&buf[..n.expect("the events stream stays open")]);
            }
        }
    };
    assert_eq!(paused.room, room);
    assert!(posted < 1000, "buffered for a reader that never read: {posted} posts");
    assert_eq!(paused.delivered_seq, last_seq, "where her catch-up starts");
    drop(control);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_that_never_finish_expire_while_others_chat_and_connect() {
    let server = TestServer::node(|c| {
        c.metrics = true;
        c.metrics_listen = "127.0.0.1:0".parse().unwrap();
        c.idle_timeout_ms = 2_000;
        c.keep_alive_ms = 500;
        c.max_connections_per_ip = 1_000;
        c.retry_above_incoming = 50;
    })
    .await;
    let metrics = server.metrics_addr().unwrap();
    let connections = || async move {
        let (_, text) = banter_tests::http_get(metrics, "/metrics").await;
        banter_tests::metric_samples(&text)["banter_connections"]
    };
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let room = ada.create_room("still", false).await;
    bob.join(room).await.unwrap();
    let before = connections().await;

    // 200 clients start a handshake through a path that loses everything the server sends
    // (so none can finish), then loses everything both ways: they vanished mid-handshake.
    let deaf = Impairment { loss_to_server: 0.0, loss_to_client: 1.0, jitter: Duration::ZERO };
    let path = ImpairedPath::start(server.addr(), deaf).await;
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let stalled: Vec<_> = (0..200)
        .map(|_| {
            let (endpoint, addr) = (endpoint.clone(), path.addr());
            let options = banter_client::Options::new(banter_client::Trust::AcceptAny, "x");
            tokio::spawn(async move {
                banter_client::Connection::connect_raw(&endpoint, addr, options).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    path.set(Impairment { loss_to_server: 1.0, ..deaf });
    let half_open = connections().await - before;
    // Beyond retry_above_incoming handshakes at once, newcomers get a stateless QUIC retry
    // (which these never answer); how many got in before depends on timing.
    assert!(half_open >= 50.0, "half-open connections held: {half_open}");

    // Meanwhile the others chat, and a newcomer still gets in (past a QUIC retry).
    assert!(post_latency(&ada, room).await < Duration::from_secs(2));
    let carol = server.user("carol").await;
    carol.join(room).await.unwrap();

    // The half-open connections expire with the idle timeout; the live ones stay.
    let mut now = connections().await;
    for _ in 0..100 {
        if now == before + 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = connections().await;
    }
    assert_eq!(now, before + 1.0, "only carol's connection is new");
    assert!(post_latency(&bob, room).await < Duration::from_secs(2));
    for handshake in stalled {
        handshake.abort();
    }
}

/// Spec §3.2 (issue 15 A): the server never finishes a critical stream before it closes, so
/// a strict client learns the close's real reason (here AUTH_FAILED), not
/// CLOSED_CRITICAL_STREAM; the ERROR frame arrives first, on the open stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_hello_ends_with_error_then_the_close_and_no_fin_on_the_control_stream() {
    let server = TestServer::start().await;
    let (raw, _control) = raw_hello(&server, &[7u8; 64]).await;

    let mut theirs = tokio::time::timeout(WAIT, raw.accept_uni()).await.unwrap().unwrap();
    let mut head = [0u8; 1];
    theirs.read_exact(&mut head).await.unwrap();
    assert_eq!(head[0], 0x00, "the server's control stream");
    let mut decoder = FrameDecoder::new(65536);
    let mut buf = vec![0u8; 4096];
    let mut frames = Vec::new();
    let end = loop {
        match tokio::time::timeout(WAIT, theirs.read(&mut buf)).await.unwrap() {
            Ok(Some(n)) => {
                decoder.push(&buf[..n]);
                while let Some(message) = decoder.next_message().unwrap() {
                    frames.push(message);
                }
            }
            other => break other,
        }
    };
    assert!(
        frames.iter().any(|m| matches!(m, Message::Error(e) if e.code == ErrorCode::AUTH_FAILED)),
        "{frames:?}"
    );
    match end {
        Err(quinn::ReadError::ConnectionLost(quinn::ConnectionError::ApplicationClosed(close))) => {
            assert_eq!(close.error_code.into_inner(), ErrorCode::AUTH_FAILED.0);
        }
        other => panic!("the control stream ended with {other:?}, not the connection's close"),
    }
}
