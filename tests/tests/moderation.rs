//! Roles and the audit log over real QUIC (spec §6.7).

use banter_client::protocol::ErrorCode;
use banter_client::protocol::bounded::Text;
use banter_client::protocol::ids::{RoomId, Timestamp};
use banter_client::protocol::message::{
    AuditAction, AuditQuery, Ban, Delete, History, Kick, MembershipChange, Message, Role, RoleSet,
    Unban,
};
use banter_tests::{TestServer, TestUser};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_appoints_a_moderator_who_may_kick_members_but_not_the_owner_and_acts_are_audited()
 {
    let server = TestServer::start().await;
    let owner = server.user("owner").await; // the first account owns the server
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let room = owner.create_room("general", false).await;
    bob.join(room).await.unwrap();
    carol.join(room).await.unwrap();

    // A member cannot hand out roles.
    let refused = bob
        .conn
        .request_one(RoleSet { room: Some(room), user: carol.auth.user, role: Role::MODERATOR })
        .await;
    assert_eq!(refused.unwrap_err().code(), Some(ErrorCode::FORBIDDEN));
    owner
        .conn
        .request_one(RoleSet { room: Some(room), user: bob.auth.user, role: Role::MODERATOR })
        .await
        .unwrap();

    bob.conn
        .request_one(Kick { room, user: carol.auth.user, reason: Text::new("spam").unwrap() })
        .await
        .unwrap();
    let up =
        bob.conn.request_one(Kick { room, user: owner.auth.user, reason: Text::default() }).await;
    assert_eq!(
        up.unwrap_err().code(),
        Some(ErrorCode::FORBIDDEN),
        "a moderator cannot kick the owner"
    );
    // A moderator cannot make moderators (only below their own rank, and room owners/admins).
    let peer = bob
        .conn
        .request_one(RoleSet { room: Some(room), user: owner.auth.user, role: Role::MEMBER })
        .await;
    assert_eq!(peer.unwrap_err().code(), Some(ErrorCode::FORBIDDEN));

    let Message::AuditPage(page) = bob
        .conn
        .request_one(AuditQuery { room: Some(room), before: None, limit: 10 })
        .await
        .unwrap()
    else {
        panic!()
    };
    let actions: Vec<AuditAction> = page.entries.iter().map(|e| e.action).collect();
    assert_eq!(actions, vec![AuditAction::KICK, AuditAction::ROLE_SET], "newest first");
    assert_eq!(page.entries[0].actor, bob.auth.user);
    assert_eq!(page.entries[0].target, Some(carol.auth.user));
    assert_eq!(page.entries[0].reason.as_str(), "spam");

    // The server-wide log is for admins; the server owner reads it.
    let denied = bob.conn.request_one(AuditQuery { room: None, before: None, limit: 10 }).await;
    assert_eq!(denied.unwrap_err().code(), Some(ErrorCode::FORBIDDEN));
    let Message::AuditPage(all) =
        owner.conn.request_one(AuditQuery { room: None, before: None, limit: 1 }).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(all.entries.len(), 1);
    assert!(all.more);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_transfers_and_the_old_owner_becomes_a_moderator() {
    let server = TestServer::start().await;
    let _server_owner = server.user("root").await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let room = ada.create_room("ada-room", false).await;
    bob.join(room).await.unwrap();
    ada.conn
        .request_one(RoleSet { room: Some(room), user: bob.auth.user, role: Role::OWNER })
        .await
        .unwrap();
    // Bob now owns it: he can demote ada (now a moderator) to member.
    bob.conn
        .request_one(RoleSet { room: Some(room), user: ada.auth.user, role: Role::MEMBER })
        .await
        .unwrap();
    let refused = ada
        .conn
        .request_one(RoleSet { room: Some(room), user: bob.auth.user, role: Role::MEMBER })
        .await;
    assert_eq!(refused.unwrap_err().code(), Some(ErrorCode::FORBIDDEN));
}

fn ban(room: RoomId, user: &TestUser, reason: &str, until: Option<Timestamp>) -> Ban {
    Ban { room, user: user.auth.user, reason: Text::new(reason).unwrap(), until }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_removes_and_bars_a_user_until_lifted_and_every_act_is_audited() {
    let server = TestServer::start().await;
    let owner = server.user("owner").await;
    let mut carol = server.user("carol").await;
    let dave = server.user("dave").await;
    let erin = server.user("erin").await;
    let room = owner.create_room("general", false).await;
    carol.join(room).await.unwrap();
    let spam = carol.post(room, "buy now").await.unwrap().seq;
    owner.conn.request_one(Delete { room, target: spam }).await.unwrap();

    owner.conn.request_one(ban(room, &carol, "spam", None)).await.unwrap();
    // Carol is told she was banned, with the reason.
    let removal = loop {
        if let Message::Membership(m) = carol.next_room_event().await {
            if m.change == MembershipChange::Banned {
                break m;
            }
        }
    };
    assert_eq!((removal.user, removal.reason.as_str()), (carol.auth.user, "spam"));
    // She can neither come back nor read the room.
    assert_eq!(carol.join(room).await.unwrap_err().code(), Some(ErrorCode::BANNED));
    let read = carol.conn.request(History { room, before: None, limit: 10 }).await;
    assert_eq!(read.unwrap_err().code(), Some(ErrorCode::BANNED));

    // A ban also bars someone who is not a member, and is announced in the room.
    owner.conn.request_one(ban(room, &dave, "", None)).await.unwrap();
    assert_eq!(dave.join(room).await.unwrap_err().code(), Some(ErrorCode::BANNED));
    let history = owner.conn.request(History { room, before: None, limit: 100 }).await.unwrap();
    let banned: Vec<_> = history
        .iter()
        .filter_map(|m| match m {
            Message::Membership(m) if m.change == MembershipChange::Banned => Some(m.user),
            _ => None,
        })
        .collect();
    assert_eq!(banned, vec![dave.auth.user, carol.auth.user], "newest first");

    // A ban whose end has passed no longer bars.
    owner.conn.request_one(ban(room, &erin, "", Some(Timestamp(1)))).await.unwrap();
    erin.join(room).await.unwrap();

    // Lifting the ban lets carol back in; lifting it twice is NOT_FOUND.
    owner.conn.request_one(Unban { room, user: carol.auth.user }).await.unwrap();
    carol.join(room).await.unwrap();
    let again = owner.conn.request_one(Unban { room, user: carol.auth.user }).await;
    assert_eq!(again.unwrap_err().code(), Some(ErrorCode::NOT_FOUND));

    let Message::AuditPage(page) = owner
        .conn
        .request_one(AuditQuery { room: Some(room), before: None, limit: 10 })
        .await
        .unwrap()
    else {
        panic!()
    };
    let acts: Vec<_> = page.entries.iter().map(|e| (e.action, e.target)).collect();
    assert_eq!(
        acts,
        vec![
            (AuditAction::UNBAN, Some(carol.auth.user)),
            (AuditAction::BAN, Some(erin.auth.user)),
            (AuditAction::BAN, Some(dave.auth.user)),
            (AuditAction::BAN, Some(carol.auth.user)),
            (AuditAction::DELETE_MESSAGE, Some(carol.auth.user)),
        ],
        "newest first"
    );
    assert!(page.entries.iter().all(|e| e.actor == owner.auth.user));
}
