//! Roles and the audit log over real QUIC (spec §6.7).

use banter_client::protocol::ErrorCode;
use banter_client::protocol::bounded::Text;
use banter_client::protocol::message::{AuditAction, AuditQuery, Kick, Message, Role, RoleSet};
use banter_tests::TestServer;

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
