//! Roles and the audit log over real QUIC (spec §6.7).

use banter_client::RequestError;
use banter_client::protocol::ErrorCode;
use banter_client::protocol::bounded::Text;
use banter_client::protocol::ids::UserId;
use banter_client::protocol::ids::{RoomId, Timestamp};
use banter_client::protocol::message::{
    AuditAction, AuditQuery, Ban, CatchUp, Delete, DmOpen, Edit, History, Kick, ListScope,
    MarkRead, MembershipChange, Message, Post, React, RevealAuthor, Role, RoleSet, RoomConfigure,
    RoomSetTopic, Unban,
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

    let entries = bob.audit(room, 10).await;
    let actions: Vec<AuditAction> = entries.iter().map(|e| e.action).collect();
    assert_eq!(actions, vec![AuditAction::KICK, AuditAction::ROLE_SET], "newest first");
    assert_eq!(entries[0].actor, bob.auth.user);
    assert_eq!(entries[0].target, Some(carol.auth.user));
    assert_eq!(entries[0].reason.as_str(), "spam");

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

    let entries = owner.audit(room, 10).await;
    let acts: Vec<_> = entries.iter().map(|e| (e.action, e.target)).collect();
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
    assert!(entries.iter().all(|e| e.actor == owner.auth.user));
}

fn configure(room: RoomId, slow_mode_s: Option<u32>, locked: Option<bool>) -> RoomConfigure {
    RoomConfigure { room, slow_mode_s, locked, anonymous: None, stage: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_mode_and_lock_hold_members_back_but_not_moderators() {
    let server = TestServer::start().await;
    let owner = server.user("owner").await;
    let mut bob = server.user("bob").await;
    let room = owner.create_room("general", false).await;
    bob.join(room).await.unwrap();
    bob.next_room_event().await; // his own join

    // Only moderators configure a room, and direct rooms have no settings.
    let refused = bob.conn.request_one(configure(room, Some(30), None)).await;
    assert_eq!(refused.unwrap_err().code(), Some(ErrorCode::FORBIDDEN));
    let dm = match owner.conn.request_one(DmOpen { username: Text::new("bob").unwrap() }).await {
        Ok(Message::RoomInfo(info)) => info.room.room,
        other => panic!("{other:?}"),
    };
    let refused = owner.conn.request_one(configure(dm, Some(30), None)).await;
    assert_eq!(refused.unwrap_err().code(), Some(ErrorCode::INVALID_REQUEST));

    // Slow mode: members see the change, then may post once per 30 s.
    owner.conn.request_one(configure(room, Some(30), None)).await.unwrap();
    let configured = loop {
        // (Skipping the direct room's joins.)
        if let Message::RoomConfigured(c) = bob.next_room_event().await {
            break c;
        }
    };
    assert_eq!(
        (configured.meta.room, configured.slow_mode_s, configured.locked, configured.meta.sender),
        (room, 30, false, owner.auth.user)
    );
    let first_id = banter_tests::fresh_id();
    let first = bob.post_with_id(room, first_id, "first").await.unwrap();
    let early = bob.post(room, "too soon").await.unwrap_err();
    match &early {
        RequestError::Server { code, retry_after_ms, .. } => {
            assert_eq!(*code, ErrorCode::RATE_LIMITED);
            let wait = retry_after_ms.expect("slow mode says how long to wait");
            assert!(wait > 25_000 && wait <= 30_000, "{wait} ms");
        }
        other => panic!("{other:?}"),
    }
    // A retry of the post that was taken is still answered with its ack.
    let again = bob.post_with_id(room, first_id, "first").await.unwrap();
    assert_eq!(again.seq, first.seq);
    // Moderators are exempt.
    owner.post(room, "one").await.unwrap();
    owner.post(room, "two").await.unwrap();

    // Locked: members may no longer post, react or set the topic, but may still read, mark
    // and delete their own messages; the owner may post.
    owner.conn.request_one(configure(room, Some(0), Some(true))).await.unwrap();
    let listed = owner.conn.rooms(ListScope::Joined).await.unwrap();
    let summary = listed.iter().find(|r| r.room == room).unwrap();
    assert_eq!((summary.slow_mode_s, summary.locked), (0, true));
    let locked = |result: Result<Vec<Message>, RequestError>| {
        assert_eq!(result.unwrap_err().code(), Some(ErrorCode::ROOM_LOCKED));
    };
    assert_eq!(bob.post(room, "hello?").await.unwrap_err().code(), Some(ErrorCode::ROOM_LOCKED));
    let react = React { room, target: first.seq, emoji: Text::new("👍").unwrap(), on: true };
    locked(bob.conn.request(react).await);
    locked(bob.conn.request(RoomSetTopic { room, topic: Text::new("mine").unwrap() }).await);
    bob.conn.request_one(MarkRead { room, seq: first.seq, private: false }).await.unwrap();
    bob.conn.request_one(Delete { room, target: first.seq }).await.unwrap();
    owner.post(room, "announcement").await.unwrap();
    owner.conn.request_one(configure(room, None, Some(false))).await.unwrap();
    bob.post(room, "back").await.unwrap();

    // Each change is audited with the settings it left.
    let reasons: Vec<String> = owner
        .audit(room, 10)
        .await
        .iter()
        .filter(|e| e.action == AuditAction::ROOM_CONFIGURE)
        .map(|e| e.reason.to_string())
        .collect();
    assert_eq!(
        reasons,
        [
            "slow mode 0 s, unlocked, no anonymous posts",
            "slow mode 0 s, locked, no anonymous posts",
            "slow mode 30 s, unlocked, no anonymous posts"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_posts_hide_their_author_from_all_but_a_moderator_who_asks_on_the_record() {
    let server = TestServer::start().await;
    let owner = server.user("owner").await;
    let mut bob = server.user("bob").await;
    let mut carol = server.user("carol").await;
    let room = owner.create_room("confessions", false).await;
    bob.join(room).await.unwrap();
    carol.join(room).await.unwrap();
    let anonymous = |text: &str| Post {
        room,
        client_msg_id: banter_tests::fresh_id(),
        text: Text::new(text).unwrap(),
        reply_to: None,
        anonymous: true,
    };
    // Only where the room allows it.
    let refused = bob.conn.request_one(anonymous("too early")).await;
    assert_eq!(refused.unwrap_err().code(), Some(ErrorCode::INVALID_REQUEST));
    owner.allow_anonymous(room).await;

    let Message::EventAck(ack) = bob.conn.request_one(anonymous("I ate the cake")).await.unwrap()
    else {
        panic!()
    };
    async fn sender_of(user: &mut TestUser, seq: u64) -> UserId {
        loop {
            if let Message::Posted(p) = user.next_room_event().await {
                if p.meta.seq == seq {
                    return p.meta.sender;
                }
            }
        }
    }
    assert_eq!(sender_of(&mut carol, ack.seq).await, UserId(0), "others see no author");
    assert_eq!(sender_of(&mut bob, ack.seq).await, bob.auth.user, "the author sees himself");
    // His edit stays anonymous too.
    bob.conn
        .request_one(Edit { room, target: ack.seq, text: Text::new("I ate all the cake").unwrap() })
        .await
        .unwrap();
    loop {
        if let Message::Edited(e) = carol.next_room_event().await {
            assert_eq!(e.meta.sender, UserId(0));
            break;
        }
    }
    // History and catch-up: the same masks.
    let sender_in_history = |page: Vec<Message>| {
        page.into_iter().find_map(|m| match m {
            Message::HistoryMessage(h) if h.meta.seq == ack.seq => Some(h.meta.sender),
            _ => None,
        })
    };
    let history = History { room, before: None, limit: 50 };
    assert_eq!(
        sender_in_history(carol.conn.request(history.clone()).await.unwrap()),
        Some(UserId(0))
    );
    assert_eq!(sender_in_history(bob.conn.request(history).await.unwrap()), Some(bob.auth.user));
    let caught_up = carol.conn.request(CatchUp { room, after: 0, limit: 50 }).await.unwrap();
    let anonymous_entries: Vec<UserId> = caught_up
        .iter()
        .filter(|m| matches!(m, Message::Posted(_) | Message::Edited(_)))
        .filter_map(|m| m.entry_meta().map(|meta| meta.sender))
        .collect();
    assert_eq!(anonymous_entries, [UserId(0), UserId(0)], "the post and its edit, unsigned");

    // Members cannot unmask; a moderator can, and the reveal is audited.
    let reveal = RevealAuthor { room, seq: ack.seq };
    let refused = carol.conn.request_one(reveal.clone()).await;
    assert_eq!(refused.unwrap_err().code(), Some(ErrorCode::FORBIDDEN));
    match owner.conn.request_one(reveal).await.unwrap() {
        Message::Author(author) => assert_eq!(author.user, bob.auth.user),
        other => panic!("{other:?}"),
    }
    let entries = owner.audit(room, 5).await;
    let newest = &entries[0];
    assert_eq!(
        (newest.action, newest.actor, newest.target),
        (AuditAction::REVEAL_AUTHOR, owner.auth.user, Some(bob.auth.user))
    );

    // His own delete stays anonymous; the text is gone for everyone.
    bob.conn.request_one(Delete { room, target: ack.seq }).await.unwrap();
    loop {
        if let Message::Deleted(d) = carol.next_room_event().await {
            assert_eq!(d.meta.sender, UserId(0));
            break;
        }
    }
    let page = carol.conn.request(History { room, before: None, limit: 50 }).await.unwrap();
    let deleted = page.iter().find_map(|m| match m {
        Message::HistoryMessage(h) if h.meta.seq == ack.seq => Some(h),
        _ => None,
    });
    let deleted = deleted.unwrap();
    assert_eq!((deleted.deleted_by, deleted.text.as_str()), (Some(UserId(0)), ""));
}

/// Every caller × action × kind of room, each a real request over QUIC, answered as the one
/// authorization policy (`banter_server::authz::authorize`) says it must be: the refusals with
/// its exact code, the rest not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_and_action_over_quic_is_answered_as_the_policy_says() {
    use banter_client::protocol::message::{
        Delete, History, InviteCreate, InviteUse, RoomJoin, RoomSetTopic,
    };
    use banter_server::authz::{ACTIONS, Action, Standing, authorize};

    let server = TestServer::start().await;
    // The first account is the server's owner; "admin" is made a server admin.
    let root = server.user("root").await;
    let admin = server.user("admin").await;
    root.conn
        .request_one(RoleSet { room: None, user: admin.auth.user, role: Role::ADMIN })
        .await
        .unwrap();
    let owner = server.user("owner").await;
    let moderator = server.user("moderator").await;
    let member = server.user("member").await;
    let outsider = server.user("outsider").await;
    let banned = server.user("banned").await;
    let victim = server.user("victim").await;
    let victim_moderator = server.user("victimmod").await;

    let post = |room, anonymous| Post {
        room,
        client_msg_id: banter_tests::fresh_id(),
        text: Text::new("matrix").unwrap(),
        reply_to: None,
        anonymous,
    };
    let seq_of = |answer: Result<Message, RequestError>| match answer.unwrap() {
        Message::EventAck(ack) => ack.seq,
        other => panic!("expected EVENT_ACK, got {other:?}"),
    };
    let mut checked = 0;
    for (kind, private, locked) in
        [("public", false, false), ("private", true, false), ("locked", false, true)]
    {
        let room = owner.create_room(kind, private).await;
        // Everyone comes in with an invite code (adding people takes their consent).
        let code = match owner
            .conn
            .request_one(InviteCreate { room, max_uses: None, expires_in_s: None })
            .await
            .unwrap()
        {
            Message::Invite(invite) => invite.code,
            other => panic!("expected INVITE, got {other:?}"),
        };
        for user in [&root, &moderator, &member, &banned, &victim, &victim_moderator] {
            user.conn.request_one(InviteUse { code: code.clone() }).await.unwrap();
        }
        for user in [&moderator, &victim_moderator] {
            let set = RoleSet { room: Some(room), user: user.auth.user, role: Role::MODERATOR };
            owner.conn.request_one(set).await.unwrap();
        }
        owner.allow_anonymous(room).await;
        let anonymous_seq = seq_of(member.conn.request_one(post(room, true)).await);
        owner.conn.request_one(ban(room, &banned, "matrix", None)).await.unwrap();
        if locked {
            owner.conn.request_one(configure(room, None, Some(true))).await.unwrap();
        }

        let callers: [(&TestUser, Option<Role>, Role); 7] = [
            (&root, Some(Role::MEMBER), Role::OWNER),
            (&admin, None, Role::ADMIN),
            (&owner, Some(Role::OWNER), Role::MEMBER),
            (&moderator, Some(Role::MODERATOR), Role::MEMBER),
            (&member, Some(Role::MEMBER), Role::MEMBER),
            (&outsider, None, Role::MEMBER),
            (&banned, None, Role::MEMBER),
        ];
        for (caller, room_role, server_role) in callers {
            let standing = Standing {
                member: room_role,
                server_role,
                banned: std::ptr::eq(caller, &banned),
                private,
                locked,
                archived: false,
            };
            for action in ACTIONS {
                let request: Message = match action {
                    Action::Read => History { room, before: None, limit: 1 }.into(),
                    Action::Participate => MarkRead { room, seq: 1, private: true }.into(),
                    Action::Post => post(room, false).into(),
                    Action::SetTopic => {
                        RoomSetTopic { room, topic: Text::new("t").unwrap() }.into()
                    }
                    Action::Configure => configure(room, Some(0), None).into(),
                    Action::Invite => {
                        InviteCreate { room, max_uses: Some(1), expires_in_s: None }.into()
                    }
                    Action::RevealAuthor => RevealAuthor { room, seq: anonymous_seq }.into(),
                    Action::Moderate { target } => {
                        // A fresh message of someone else holding `target` rank, to delete
                        // (the room's owner and the server's owner both rank as owners).
                        let author = match target {
                            Role::MEMBER => &victim,
                            Role::MODERATOR => &victim_moderator,
                            _ if std::ptr::eq(caller, &owner) => &root,
                            _ => &owner,
                        };
                        let unlock = locked.then(|| configure(room, None, Some(false)));
                        if let Some(unlock) = unlock {
                            owner.conn.request_one(unlock).await.unwrap();
                        }
                        let seq = seq_of(author.conn.request_one(post(room, false)).await);
                        if locked {
                            owner
                                .conn
                                .request_one(configure(room, None, Some(true)))
                                .await
                                .unwrap();
                        }
                        Delete { room, target: seq }.into()
                    }
                    Action::Join => RoomJoin { room }.into(),
                    _ => unreachable!("{action:?} is not in ACTIONS"),
                };
                let answer = caller.conn.request(request.clone()).await;
                let refused = match &answer {
                    Err(error) => error.code(),
                    Ok(_) => None,
                };
                let expected = authorize(&standing, action).err();
                match expected {
                    Some(code) => assert_eq!(refused, Some(code), "{kind} {standing:?} {action:?}"),
                    None => assert!(
                        answer.is_ok(),
                        "{kind} {standing:?} {action:?}: allowed by the policy, refused: {answer:?}"
                    ),
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 3 * 7 * 11);
}
