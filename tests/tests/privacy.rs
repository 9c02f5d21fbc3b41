//! Authorization over real QUIC: private rooms stay private, removed members stop receiving
//! at once, presence goes only to users who share a room.

use banter_client::Event;
use banter_client::protocol::ErrorCode;
use banter_client::protocol::bounded::Text;
use banter_client::protocol::message::{
    CatchUp, History, Kick, ListScope, Members, Message, PresenceSet, PresenceStatus, RoomList,
};
use banter_tests::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_member_cannot_read_post_to_or_see_a_private_room() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let mallory = server.user("mallory").await;
    let room = ada.create_room("secret", true).await;
    ada.post(room, "for members only").await.unwrap();

    let read = mallory.conn.request(History { room, before: None, limit: 10 }).await.unwrap_err();
    assert_eq!(read.code(), Some(ErrorCode::NOT_FOUND));
    let catch_up = mallory.conn.request(CatchUp { room, after: 0, limit: 10 }).await.unwrap_err();
    assert_eq!(catch_up.code(), Some(ErrorCode::NOT_FOUND));
    let post = mallory.post(room, "let me in").await.unwrap_err();
    assert_eq!(post.code(), Some(ErrorCode::NOT_FOUND));
    let join = mallory.join(room).await.unwrap_err();
    assert_eq!(join.code(), Some(ErrorCode::NOT_FOUND));
    let members = mallory.conn.request(Members { room, after: None, limit: 10 }).await.unwrap_err();
    assert_eq!(members.code(), Some(ErrorCode::NOT_FOUND));
    let Message::RoomListPage(page) = mallory
        .conn
        .request_one(RoomList { scope: ListScope::Public, after: None, limit: 100 })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(page.rooms.iter().all(|r| r.room != room), "private rooms are not listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kicked_member_stops_receiving_at_once_and_cannot_post() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let mut bob = server.user("bob").await;
    let room = ada.create_room("general", false).await;
    bob.join(room).await.unwrap();
    bob.next_room_event().await;
    // A member cannot kick.
    let denied =
        bob.conn.request_one(Kick { room, user: ada.auth.user, reason: Text::default() }).await;
    assert_eq!(denied.unwrap_err().code(), Some(ErrorCode::FORBIDDEN));

    ada.conn
        .request_one(Kick { room, user: bob.auth.user, reason: Text::new("off topic").unwrap() })
        .await
        .unwrap();
    let Message::Membership(kicked) = bob.next_room_event().await else {
        panic!("bob sees his removal")
    };
    assert_eq!(kicked.user, bob.auth.user);
    ada.post(room, "after the kick").await.unwrap();
    let post = bob.post(room, "still here?").await.unwrap_err();
    assert_eq!(post.code(), Some(ErrorCode::FORBIDDEN));
    // Nothing more from the room reaches bob.
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(300), async {
        loop {
            if let Event::Room(message) = bob.next_event().await {
                return message;
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "bob received {quiet:?} after being kicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_goes_only_to_users_who_share_a_room() {
    let server = TestServer::start().await;
    let mut ada = server.user("ada").await;
    let grace = server.user("grace").await;
    let mut stranger = server.user("stranger").await;
    let room = ada.create_room("general", false).await;
    grace.join(room).await.unwrap();
    grace
        .conn
        .request_one(PresenceSet { status: PresenceStatus::Dnd, text: Text::new("focus").unwrap() })
        .await
        .unwrap();
    let seen = tokio::time::timeout(banter_tests::WAIT, async {
        loop {
            if let Event::Ephemeral(Message::Presence(p)) = ada.next_event().await {
                if p.user == grace.auth.user && p.status == PresenceStatus::Dnd {
                    return p;
                }
            }
        }
    })
    .await
    .expect("ada sees grace's presence");
    assert_eq!(seen.text.as_str(), "focus");
    let leaked = tokio::time::timeout(std::time::Duration::from_millis(300), async {
        loop {
            if let Event::Ephemeral(Message::Presence(p)) = stranger.next_event().await {
                if p.user == grace.auth.user {
                    return p;
                }
            }
        }
    })
    .await;
    assert!(leaked.is_err(), "presence leaked to a user sharing no room: {leaked:?}");
}
