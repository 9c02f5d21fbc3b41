//! Invites and contacts over real QUIC (spec §6.3, §6.8): codes with limits and expiry into
//! private rooms, adding users, friend requests, and what a block keeps away.

use std::time::Duration;

use banter_client::Event;
use banter_client::RequestError;
use banter_client::protocol::ErrorCode;
use banter_client::protocol::bounded::Text;
use banter_client::protocol::ids::{RoomId, UserId};
use banter_client::protocol::message::{
    AuditAction, Ban, Contact, ContactAction, ContactList, ContactSet, ContactState, DmOpen,
    Invite, InviteCreate, InviteUse, Message, PresenceSet, PresenceStatus, RoomInvite,
};
use banter_tests::{TestServer, TestUser, WAIT};

async fn invite(
    user: &TestUser,
    room: RoomId,
    max_uses: Option<u32>,
    expires_in_s: Option<u64>,
) -> Result<Invite, RequestError> {
    match user.conn.request_one(InviteCreate { room, max_uses, expires_in_s }).await? {
        Message::Invite(invite) => Ok(invite),
        other => panic!("expected INVITE, got {other:?}"),
    }
}

async fn use_invite(user: &TestUser, code: &str) -> Result<Message, RequestError> {
    user.conn.request_one(InviteUse { code: Text::new(code).unwrap() }).await
}

fn refusal(result: Result<impl std::fmt::Debug, RequestError>) -> (ErrorCode, String) {
    match result.unwrap_err() {
        RequestError::Server { code, message, .. } => (code, message),
        other => panic!("expected a server error, got {other:?}"),
    }
}

fn add(room: RoomId, name: &str) -> RoomInvite {
    RoomInvite { room, username: Text::new(name).unwrap() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_admit_to_private_rooms_within_their_limits() {
    let server = TestServer::start().await;
    let owner = server.user("owner").await;
    let bob = server.user("bob").await;
    let mut carol = server.user("carol").await;
    let dan = server.user("dan").await;
    let erin = server.user("erin").await;
    let secret = owner.create_room("secret", true).await;

    assert_eq!(
        refusal(use_invite(&bob, "nosuchcode").await),
        (ErrorCode::NOT_FOUND, "no such invite".into())
    );
    // A private room is invisible to others; a plain member cannot hand out invites to it.
    assert_eq!(refusal(invite(&bob, secret, None, None).await).0, ErrorCode::NOT_FOUND);
    owner.conn.request_one(add(secret, "dan")).await.unwrap();
    assert_eq!(refusal(invite(&dan, secret, None, None).await).0, ErrorCode::FORBIDDEN);

    // One use: bob gets in, carol does not.
    let once = invite(&owner, secret, Some(1), None).await.unwrap();
    assert_eq!((once.room, once.max_uses, once.expires), (secret, Some(1), None));
    assert!(once.code.len() >= 10);
    match use_invite(&bob, &once.code).await.unwrap() {
        Message::RoomInfo(info) => assert!(info.room.joined),
        other => panic!("{other:?}"),
    }
    bob.post(secret, "in").await.unwrap();
    assert_eq!(
        refusal(use_invite(&carol, &once.code).await),
        (ErrorCode::NOT_FOUND, "invite used up".into())
    );
    // Using it again as a member costs nothing and answers the room.
    assert!(matches!(use_invite(&bob, &once.code).await.unwrap(), Message::RoomInfo(_)));

    // Expiry.
    let brief = invite(&owner, secret, None, Some(1)).await.unwrap();
    assert!(brief.expires.is_some());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        refusal(use_invite(&carol, &brief.code).await),
        (ErrorCode::NOT_FOUND, "invite expired".into())
    );

    // A banned user gets nowhere with a code.
    owner
        .conn
        .request_one(Ban {
            room: secret,
            user: erin.auth.user,
            reason: Text::default(),
            until: None,
        })
        .await
        .unwrap();
    let open = invite(&owner, secret, None, None).await.unwrap();
    assert_eq!(refusal(use_invite(&erin, &open.code).await).0, ErrorCode::BANNED);
    assert_eq!(refusal(owner.conn.request_one(add(secret, "erin")).await).0, ErrorCode::BANNED);

    // Adding a user: they see their own arrival, sent by the owner.
    owner.conn.request_one(add(secret, "carol")).await.unwrap();
    let joined = loop {
        if let Message::Membership(m) = carol.next_room_event().await {
            break m;
        }
    };
    assert_eq!(
        (joined.meta.room, joined.user, joined.meta.sender),
        (secret, carol.auth.user, owner.auth.user)
    );
    assert_eq!(refusal(owner.conn.request_one(add(secret, "carol")).await).0, ErrorCode::CONFLICT);
    assert_eq!(
        refusal(owner.conn.request_one(add(secret, "nobody")).await).0,
        ErrorCode::NOT_FOUND
    );

    // In a public room any member may invite.
    let lobby = owner.create_room("lobby", false).await;
    bob.join(lobby).await.unwrap();
    invite(&bob, lobby, Some(3), Some(3600)).await.unwrap();

    let actions: Vec<AuditAction> =
        owner.audit(secret, 20).await.iter().map(|e| e.action).collect();
    assert_eq!(actions.iter().filter(|a| **a == AuditAction::INVITE_CREATE).count(), 3);
    assert_eq!(actions.iter().filter(|a| **a == AuditAction::MEMBER_ADD).count(), 2);
}

fn contact(name: &str, action: ContactAction) -> ContactSet {
    ContactSet { username: Text::new(name).unwrap(), action }
}

/// The next CONTACT pushed to `user`.
async fn contact_update(user: &mut TestUser) -> Contact {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Ephemeral(Message::Contact(c)) = user.next_event().await {
                return c;
            }
        }
    })
    .await
    .expect("a CONTACT update")
}

/// The next PRESENCE of `about` pushed to `user`, if one comes within `wait`.
async fn presence_of(user: &mut TestUser, about: UserId, wait: Duration) -> Option<PresenceStatus> {
    tokio::time::timeout(wait, async {
        loop {
            if let Event::Ephemeral(Message::Presence(p)) = user.next_event().await {
                if p.user == about {
                    return p.status;
                }
            }
        }
    })
    .await
    .ok()
}

/// The status `about` ends at for `user` within `wait`: every update until `expected` (or
/// the time is up). On a cluster, presence reaches each node on its own time, so a node may
/// first show a status another node has already replaced.
async fn presence_settles(
    user: &mut TestUser,
    about: UserId,
    expected: PresenceStatus,
    wait: Duration,
) -> Option<PresenceStatus> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut last = None;
    while last != Some(expected) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match presence_of(user, about, left).await {
            Some(status) => last = Some(status),
            None => break,
        }
    }
    last
}

async fn contacts(user: &TestUser) -> Vec<(UserId, ContactState)> {
    match user.conn.request_one(ContactList {}).await.unwrap() {
        Message::ContactListPage(page) => page.contacts.iter().map(|c| (c.user, c.state)).collect(),
        other => panic!("{other:?}"),
    }
}

async fn dm(user: &TestUser, name: &str) -> Result<RoomId, RequestError> {
    match user.conn.request_one(DmOpen { username: Text::new(name).unwrap() }).await? {
        Message::RoomInfo(info) => Ok(info.room.room),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friends_are_made_by_request_and_a_block_keeps_messages_and_presence_away() {
    let mut server = TestServer::start().await;
    let mut ada = server.user("ada").await;
    let mut bob = server.user("bob").await;
    let mut carol = server.user("carol").await;
    let room = ada.create_room("general", false).await;
    bob.join(room).await.unwrap();
    carol.join(room).await.unwrap();
    let direct = dm(&bob, "ada").await.unwrap();

    // A request, seen by both, then accepted.
    ada.conn.request_one(contact("bob", ContactAction::Request)).await.unwrap();
    assert_eq!(contact_update(&mut ada).await.state, Some(ContactState::Outgoing));
    let incoming = contact_update(&mut bob).await;
    assert_eq!((incoming.user, incoming.state), (ada.auth.user, Some(ContactState::Incoming)));
    bob.conn.request_one(contact("ada", ContactAction::Accept)).await.unwrap();
    assert_eq!(contact_update(&mut ada).await.state, Some(ContactState::Friend));
    assert_eq!(contacts(&ada).await, [(bob.auth.user, ContactState::Friend)]);
    assert_eq!(
        refusal(ada.conn.request_one(contact("ada", ContactAction::Request)).await).0,
        ErrorCode::INVALID_REQUEST
    );

    // Ada blocks bob: the friendship ends, bob sees her go offline and nothing of the block.
    ada.conn.request_one(contact("bob", ContactAction::Block)).await.unwrap();
    assert_eq!(
        presence_settles(&mut bob, ada.auth.user, PresenceStatus::Offline, WAIT).await,
        Some(PresenceStatus::Offline)
    );
    assert_eq!(contacts(&ada).await, [(bob.auth.user, ContactState::Blocked)]);
    assert_eq!(contacts(&bob).await, []);
    // He can neither open nor use a direct room with her, nor add her anywhere.
    assert_eq!(refusal(dm(&bob, "ada").await).0, ErrorCode::NOT_FOUND);
    let refused = bob.post(direct, "hello?").await;
    assert_eq!(refusal(refused), (ErrorCode::FORBIDDEN, "cannot message this user".into()));
    let own = bob.create_room("bobs", false).await;
    assert_eq!(refusal(bob.conn.request_one(add(own, "ada")).await).0, ErrorCode::NOT_FOUND);
    // Her presence reaches carol, not bob.
    let away = PresenceSet { status: PresenceStatus::Away, text: Text::default() };
    ada.conn.request_one(away).await.unwrap();
    assert_eq!(
        presence_settles(&mut carol, ada.auth.user, PresenceStatus::Away, WAIT).await,
        Some(PresenceStatus::Away)
    );
    assert_eq!(presence_of(&mut bob, ada.auth.user, Duration::from_millis(300)).await, None);
    // She may still write to him.
    ada.post(direct, "I can still write").await.unwrap();

    // Unblocked: he sees where she is, and may write again.
    ada.conn.request_one(contact("bob", ContactAction::Unblock)).await.unwrap();
    assert_eq!(
        presence_settles(&mut bob, ada.auth.user, PresenceStatus::Away, WAIT).await,
        Some(PresenceStatus::Away)
    );
    bob.post(direct, "thanks").await.unwrap();

    // Blocks survive a restart.
    ada.conn.request_one(contact("bob", ContactAction::Block)).await.unwrap();
    server.restart().await;
    let bob = server.login("bob").await;
    assert_eq!(refusal(bob.post(direct, "after restart").await).0, ErrorCode::FORBIDDEN);
}
