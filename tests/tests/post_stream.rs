//! Post streams (spec §3.1.1): many POSTs on one request stream, committed and answered in
//! the order sent, each post checked on its own, retries deduplicated, and anything but a
//! POST after a POST refused in its place.

use banter_client::protocol::ErrorCode;
use banter_client::protocol::bounded::Text;
use banter_client::protocol::ids::RoomId;
use banter_client::protocol::message::{History, Message, Post, RoomList};
use banter_client::{Connection, PostStream, RequestError};
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

async fn open(conn: &Connection) -> PostStream {
    // The server's SETTINGS, which say whether it offers post streams, may still be on the way.
    for _ in 0..100 {
        if let Some(stream) = conn.post_stream().await.unwrap() {
            return stream;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("banterd offers post streams")
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
    let mut stream = open(&ada.conn).await;
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

/// Sends `posts` on a new post stream, finishes it, and returns an answer for each in order:
/// the acked seq, or the ERROR's code (`None`: no answer, or not sent because the server had
/// stopped reading).
async fn send_all(conn: &Connection, posts: Vec<Post>) -> Vec<Result<u64, Option<ErrorCode>>> {
    let count = posts.len();
    let mut stream = open(conn).await;
    for post in posts {
        if stream.send(post).await.is_err() {
            break;
        }
    }
    stream.finish();
    let mut answers = Vec::new();
    while stream.unanswered() > 0 {
        answers.push(stream.answer().await.map(|ack| ack.seq).map_err(|e| e.code()));
    }
    answers.resize(count, Err(None));
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_refused_post_nothing_later_on_the_stream_is_taken() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let grace = server.user("grace").await;
    let room = ada.create_room("general", false).await;
    let graces = grace.create_room("grace's", true).await;
    // After a refusal, a post the server read is answered REQUEST_CANCELLED, and one it did
    // not read yet goes unanswered (the stream ends): either way it was not taken.
    let not_taken = |answers: &[Result<u64, Option<ErrorCode>>]| {
        answers.iter().all(|a| matches!(a, Err(Some(ErrorCode::REQUEST_CANCELLED) | None)))
    };

    // Refused by the checks before the writer (not a member there).
    let answers = send_all(
        &ada.conn,
        vec![
            post(room, fresh_id(), "a1"),
            post(room, fresh_id(), "a2"),
            post(graces, fresh_id(), "not a member there"),
            post(room, fresh_id(), "a3"),
            post(room, fresh_id(), "a4"),
        ],
    )
    .await;
    assert_eq!(answers[..2], [Ok(2), Ok(3)]);
    assert!(matches!(answers[2], Err(Some(ErrorCode::FORBIDDEN | ErrorCode::NOT_FOUND))));
    assert!(not_taken(&answers[3..]), "{answers:?}");

    // Refused by the writer (a reused id with other text: CONFLICT), with the posts after it
    // already queued behind it.
    let reused = fresh_id();
    let answers = send_all(
        &ada.conn,
        vec![
            post(room, reused, "b1"),
            post(room, fresh_id(), "b2"),
            post(room, reused, "b1"),
            post(room, reused, "b1, edited"),
            post(room, fresh_id(), "b3"),
            post(room, fresh_id(), "b4"),
        ],
    )
    .await;
    assert_eq!(answers[..3], [Ok(4), Ok(5), Ok(4)], "a resent post is acked identically");
    assert_eq!(answers[3], Err(Some(ErrorCode::CONFLICT)));
    assert!(not_taken(&answers[4..]), "{answers:?}");

    // Resent from the refused post on (here: after it), the posts keep their order.
    let answers =
        send_all(&ada.conn, vec![post(room, fresh_id(), "b3"), post(room, fresh_id(), "b4")]).await;
    assert_eq!(answers, [Ok(6), Ok(7)]);
    assert_eq!(texts(&ada, room).await, ["a1", "a2", "b1", "b2", "b3", "b4"]);
    assert_eq!(texts(&grace, graces).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_first_post_ends_the_stream() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let room = ada.create_room("general", false).await;
    let answers = send_all(
        &ada.conn,
        vec![post(RoomId(999_999), fresh_id(), "nowhere"), post(room, fresh_id(), "after")],
    )
    .await;
    assert_eq!(answers.len(), 2);
    assert!(answers[0].is_err());
    // The second was never read: the stream ended without its answer.
    assert!(answers[1].is_err());
    assert_eq!(texts(&ada, room).await, Vec::<String>::new());
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
    let mut stream = open(&ada.conn).await;
    for (i, id) in ids.iter().enumerate() {
        stream.send(post(room, *id, &format!("p{i}"))).await.unwrap();
    }
    ada.conn.close();
    let mut answers = Vec::new();
    while stream.unanswered() > 0 {
        answers.push(stream.answer().await);
    }
    // Whatever was answered before the close comes first; the rest ends as not answered.
    let answered = answers.iter().take_while(|a| a.is_ok()).count();
    assert!(
        answers[answered..].iter().all(|a| matches!(a, Err(RequestError::Connection(_)))),
        "{answers:?}"
    );
    // Resent on a new connection, every post appears once, in order, whatever was taken.
    let ada = server.login("ada").await;
    let mut stream = open(&ada.conn).await;
    for (i, id) in ids.iter().enumerate() {
        stream.send(post(room, *id, &format!("p{i}"))).await.unwrap();
    }
    stream.finish();
    while stream.unanswered() > 0 {
        stream.answer().await.unwrap();
    }
    let expected: Vec<_> = (0..20).map(|i| format!("p{i}")).collect();
    assert_eq!(banter_tests::settled(&expected, async || texts(&ada, room).await).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_post_stream_is_refused_before_login_and_takes_nothing() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let room = ada.create_room("general", false).await;
    // Connected and past SETTINGS (its own say it finishes post streams), but no HELLO.
    let (stranger, _events) = server.connect().await;
    let posts = (0..20).map(|i| post(room, fresh_id(), &format!("s{i}"))).collect();
    let answers = send_all(&stranger, posts).await;
    assert_eq!(answers[0], Err(Some(ErrorCode::NOT_AUTHENTICATED)));
    assert!(
        answers[1..].iter().all(|a| matches!(a, Err(Some(ErrorCode::REQUEST_CANCELLED) | None))),
        "{answers:?}"
    );
    assert_eq!(texts(&ada, room).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_stream_left_idle_is_ended_and_a_late_post_is_not_taken() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let room = ada.create_room("general", false).await;
    let mut stream = open(&ada.conn).await;
    stream.send(post(room, fresh_id(), "on time")).await.unwrap();
    stream.answer().await.unwrap();
    // Nothing waits for an answer for longer than the server's bound (10 s): it stops
    // reading the stream, finishes its side and holds nothing for it.
    tokio::time::sleep(std::time::Duration::from_millis(10_500)).await;
    // The server's STOP_SENDING refuses the late post at once; should it not have arrived
    // yet, the post goes out but is never read, and the stream ends without its answer.
    match stream.send(post(room, fresh_id(), "too late")).await {
        Err(RequestError::Connection(_)) => {}
        Ok(()) => {
            let late = stream.answer().await;
            assert!(matches!(late, Err(RequestError::Connection(_))), "{late:?}");
        }
        Err(other) => panic!("the late post: {other:?}"),
    }
    assert_eq!(texts(&ada, room).await, ["on time"]);
    // The connection itself is fine: a new stream takes the post.
    let mut again = open(&ada.conn).await;
    again.send(post(room, fresh_id(), "resent")).await.unwrap();
    again.answer().await.unwrap();
    assert_eq!(texts(&ada, room).await, ["on time", "resent"]);
}
