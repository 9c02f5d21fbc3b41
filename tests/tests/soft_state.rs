//! Markers, typing and direct rooms over real QUIC.

use banter_client::Event;
use banter_client::protocol::ErrorCode;
use banter_client::protocol::bounded::Text;
use banter_client::protocol::message::{
    DmOpen, History, MarkDelivered, MarkRead, Members, Message, RoomKind, TypingSet, TypingState,
};
use banter_tests::{TestServer, TestUser, WAIT};

async fn next_ephemeral(user: &mut TestUser, want: impl Fn(&Message) -> bool) -> Message {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Ephemeral(message) = user.next_event().await {
                if want(&message) {
                    return message;
                }
            }
        }
    })
    .await
    .expect("the ephemeral frame arrives")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_markers_never_go_backwards_and_reach_the_room() {
    let server = TestServer::start().await;
    let mut ada = server.user("ada").await;
    let grace = server.user("grace").await;
    let room = ada.create_room("general", false).await;
    grace.join(room).await.unwrap();
    let last = ada.post(room, "read me").await.unwrap().seq;

    let Message::MarkerOk(ok) =
        grace.conn.request_one(MarkRead { room, seq: last, private: false }).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(ok.seq, last);
    let Message::MarkerOk(ok) =
        grace.conn.request_one(MarkRead { room, seq: 1, private: false }).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(ok.seq, last, "an older marker is answered with the stored one");
    // Beyond the head is clamped to it.
    let Message::MarkerOk(ok) =
        grace.conn.request_one(MarkRead { room, seq: 10_000, private: false }).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(ok.seq, last);
    let Message::ReadUpTo(read) =
        next_ephemeral(&mut ada, |m| matches!(m, Message::ReadUpTo(_))).await
    else {
        panic!()
    };
    assert_eq!((read.user, read.seq), (grace.auth.user, last));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_receipts_reach_the_room_and_private_read_markers_only_ones_own_devices() {
    let server = TestServer::start().await;
    let mut ada = server.user("ada").await;
    let grace = server.user("grace").await;
    let mut grace_phone = server.login("grace").await;
    let room = ada.create_room("general", false).await;
    grace.join(room).await.unwrap();
    let first = ada.post(room, "did you get this?").await.unwrap().seq;

    grace.conn.request_one(MarkDelivered { room, seq: first }).await.unwrap();
    let Message::DeliveredUpTo(delivered) =
        next_ephemeral(&mut ada, |m| matches!(m, Message::DeliveredUpTo(_))).await
    else {
        panic!()
    };
    assert_eq!((delivered.user, delivered.seq), (grace.auth.user, first));

    grace.conn.request_one(MarkRead { room, seq: first, private: true }).await.unwrap();
    let Message::ReadUpTo(synced) =
        next_ephemeral(&mut grace_phone, |m| matches!(m, Message::ReadUpTo(_))).await
    else {
        panic!()
    };
    assert_eq!((synced.user, synced.seq), (grace.auth.user, first), "synced to her devices");
    // A later public marker is the first ada sees: the private one never reached her.
    let second = ada.post(room, "and this?").await.unwrap().seq;
    grace.conn.request_one(MarkRead { room, seq: second, private: false }).await.unwrap();
    let Message::ReadUpTo(read) =
        next_ephemeral(&mut ada, |m| matches!(m, Message::ReadUpTo(_))).await
    else {
        panic!()
    };
    assert_eq!((read.user, read.seq), (grace.auth.user, second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_others_and_a_post_clears_it() {
    let server = TestServer::start().await;
    let mut ada = server.user("ada").await;
    let grace = server.user("grace").await;
    let room = ada.create_room("general", false).await;
    grace.join(room).await.unwrap();
    grace.conn.request_one(TypingSet { room, state: TypingState::Active }).await.unwrap();
    let Message::Typing(typing) =
        next_ephemeral(&mut ada, |m| matches!(m, Message::Typing(_))).await
    else {
        panic!()
    };
    assert_eq!((typing.user, typing.state), (grace.auth.user, TypingState::Active));
    grace.post(room, "done typing").await.unwrap();
    let Message::Typing(stopped) =
        next_ephemeral(&mut ada, |m| matches!(m, Message::Typing(_))).await
    else {
        panic!()
    };
    assert_eq!(stopped.state, TypingState::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_room_has_exactly_its_two_users() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let mut grace = server.user("grace").await;
    let mallory = server.user("mallory").await;
    let Message::RoomInfo(info) =
        ada.conn.request_one(DmOpen { username: Text::new("grace").unwrap() }).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(info.room.kind, RoomKind::Direct);
    assert_eq!(info.room.name.as_str(), "grace", "named after the other user");
    let room = info.room.room;
    // Opening again finds the same room, from either side.
    let Message::RoomInfo(again) =
        grace.conn.request_one(DmOpen { username: Text::new("ada").unwrap() }).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(again.room.room, room);
    let Message::MembersPage(members) =
        ada.conn.request_one(Members { room, after: None, limit: 10 }).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(members.members.len(), 2);
    ada.post(room, "psst").await.unwrap();
    loop {
        if let Message::Posted(p) = grace.next_room_event().await {
            assert_eq!(p.text.as_str(), "psst");
            break;
        }
    }
    let snoop = mallory.conn.request(History { room, before: None, limit: 10 }).await.unwrap_err();
    assert_eq!(snoop.code(), Some(ErrorCode::NOT_FOUND));
    let unknown =
        ada.conn.request_one(DmOpen { username: Text::new("nobody").unwrap() }).await.unwrap_err();
    assert_eq!(unknown.code(), Some(ErrorCode::NOT_FOUND));
}
