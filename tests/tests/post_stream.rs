//! Post streams (spec §3.1.1): many POSTs on one request stream, committed and answered in
//! the order sent, each post checked on its own, retries deduplicated, and anything but a
//! POST after a POST refused in its place.

use banter_client::protocol::ErrorCode;
use banter_client::protocol::bounded::Text;
use banter_client::protocol::ids::RoomId;
use banter_client::protocol::message::{History, Message, Post, RoomList};
use banter_client::{PostStream, RequestError};
use banter_tests::{TestServer, TestUser, fresh_id};

fn post(room: RoomId, id: u128, text: &str) -> Post {
    Post {
        room,
        client_msg_id: id,
        text: Text::new(text).unwrap(),
        reply_to: None,
        anonymous: false,
    }
}

async fn open(user: &TestUser) -> PostStream {
    user.conn.post_stream().await.unwrap().expect("banterd offers post streams")
}

/// The texts of a room's posts, oldest first.
async fn texts(user: &TestUser, room: RoomId) -> Vec<String> {
    let history = user.conn.request(History { room, before: None, limit: 100 }).await.unwrap();
    let mut texts: Vec<_> = history
        .into_iter()
        .filter_map(|m| match m {
            Message::HistoryMessage(h) => Some((h.meta.seq, h.text.into_string())),
            _ => None,
        })
        .collect();
    texts.sort();
    texts.into_iter().map(|(_, text)| text).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_posts_commit_and_are_answered_in_the_order_sent() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let room = ada.create_room("general", false).await;
    let mut stream = open(&ada).await;
    // All 80 go out before any answer is read: more than the server reads ahead (32), so
    // flow control and read-ahead are both exercised.
    for i in 0..80 {
        stream.send(post(room, fresh_id(), &format!("p{i}"))).await.unwrap();
    }
    stream.finish();
    let mut seqs = Vec::new();
    while stream.unanswered() > 0 {
        seqs.push(stream.answer().await.unwrap().seq);
    }
    // The room's first entry is its creator's join; the posts follow with no gap, in order.
    assert_eq!(seqs, (2..82).collect::<Vec<_>>());
    let expected: Vec<_> = (0..80).map(|i| format!("p{i}")).collect();
    assert_eq!(texts(&ada, room).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_post_is_answered_in_its_place_and_the_stream_goes_on() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let grace = server.user("grace").await;
    let room = ada.create_room("general", false).await;
    let graces = grace.create_room("grace's", true).await;
    let repeated = fresh_id();
    let mut stream = open(&ada).await;
    stream.send(post(room, repeated, "first")).await.unwrap();
    stream.send(post(graces, fresh_id(), "not a member there")).await.unwrap();
    stream.send(post(room, repeated, "first")).await.unwrap();
    stream.send(post(room, repeated, "same id, other text")).await.unwrap();
    stream.send(post(room, fresh_id(), "last")).await.unwrap();
    stream.finish();
    let first = stream.answer().await.unwrap();
    let refused = stream.answer().await.unwrap_err();
    assert!(
        matches!(refused.code(), Some(ErrorCode::FORBIDDEN | ErrorCode::NOT_FOUND)),
        "{refused:?}"
    );
    assert_eq!(stream.answer().await.unwrap(), first, "a resent post is acked identically");
    assert_eq!(stream.answer().await.unwrap_err().code(), Some(ErrorCode::CONFLICT));
    assert_eq!(stream.answer().await.unwrap().seq, first.seq + 1);
    assert_eq!(texts(&ada, room).await, ["first", "last"]);
    assert_eq!(texts(&grace, graces).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_posts_may_follow_a_post() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let room = ada.create_room("general", false).await;
    let (mut send, mut recv) = ada.conn.quic().open_bi().await.unwrap();
    let mut bytes = Vec::new();
    for frame in [
        Message::Post(post(room, fresh_id(), "one")),
        Message::Post(post(room, fresh_id(), "two")),
        Message::RoomList(RoomList {
            scope: banter_client::protocol::message::ListScope::Joined,
            after: None,
            limit: 10,
        }),
        Message::Post(post(room, fresh_id(), "never read")),
    ] {
        frame.encode(&mut bytes);
    }
    send.write_all(&bytes).await.unwrap();
    send.finish().unwrap();
    let answer = recv.read_to_end(1 << 16).await.unwrap();
    let mut decoder = banter_client::protocol::FrameDecoder::new(
        banter_client::protocol::frame::DEFAULT_MAX_FRAME_SIZE,
    );
    decoder.push(&answer);
    let mut frames = Vec::new();
    while let Some(frame) = decoder.next_message().unwrap() {
        frames.push(frame);
    }
    assert_eq!(frames.len(), 3, "two acks and the refusal, then the end: {frames:?}");
    assert!(matches!(frames[0], Message::EventAck(_)));
    assert!(matches!(frames[1], Message::EventAck(_)));
    let Message::Error(error) = &frames[2] else { panic!("expected ERROR, got {:?}", frames[2]) };
    assert_eq!(error.code, ErrorCode::PROTOCOL_VIOLATION);
    assert_eq!(texts(&ada, room).await, ["one", "two"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_stream_ended_by_the_connection_leaves_its_posts_to_be_resent() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let room = ada.create_room("general", false).await;
    let ids: Vec<u128> = (0..20).map(|_| fresh_id()).collect();
    let mut stream = open(&ada).await;
    for (i, id) in ids.iter().enumerate() {
        stream.send(post(room, *id, &format!("p{i}"))).await.unwrap();
    }
    ada.conn.close();
    let error = stream.answer().await.unwrap_err();
    assert!(matches!(error, RequestError::Connection(_)), "{error:?}");
    // Resent on a new connection, every post appears once, in order, whatever was taken.
    let ada = server.login("ada").await;
    let mut stream = open(&ada).await;
    for (i, id) in ids.iter().enumerate() {
        stream.send(post(room, *id, &format!("p{i}"))).await.unwrap();
    }
    stream.finish();
    while stream.unanswered() > 0 {
        stream.answer().await.unwrap();
    }
    let expected: Vec<_> = (0..20).map(|i| format!("p{i}")).collect();
    assert_eq!(texts(&ada, room).await, expected);
}
