//! §6.1, §6.2 (sessions), §6.3 (rooms), §6.4 (more of the log), §6.5 (markers, typing,
//! presence), §6.7 (moderation), §6.8 (contacts), §6.9 (file errors).

use std::time::Duration;

use banter_client::Event;
use banter_client::protocol::ErrorCode;
use banter_client::protocol::Frame;
use banter_client::protocol::bounded::Text;
use banter_client::protocol::ids::{RoomId, Timestamp};
use banter_client::protocol::message::{
    AuditQuery, Ban, CatchUp, ContactAction, ContactList, ContactSet, ContactState, Delete, DmOpen,
    Download, Edit, History, InviteCreate, InviteUse, Kick, ListScope, Logout, MarkRead, Members,
    MembershipChange, Message, Ping, Post, PresenceSet, PresenceStatus, React, Role, RoleSet,
    RoomConfigure, RoomInvite, RoomJoin, RoomKind, RoomLeave, RoomList, RoomSetTopic, SessionList,
    SessionRevoke, TypingSet, TypingState, Unban,
};

use super::streams::session;
use crate::raw::{self, User};
use crate::{Check, Level::*, Outcome};

fn text<const N: usize>(value: &str) -> Text<N> {
    Text::new(value).unwrap_or_default()
}

/// Expects `result` to be refused with one of `codes`.
fn refused<T: std::fmt::Debug>(
    result: Result<T, banter_client::RequestError>,
    codes: &[ErrorCode],
) -> Outcome {
    match result {
        Err(e) if e.code().is_some_and(|c| codes.contains(&c)) => Ok(()),
        other => Err(format!("expected one of {codes:?}, got {other:?}")),
    }
}

/// Ada, and grace a member of ada's public room.
async fn two_in_a_room(t: &crate::Target) -> Result<(User, User, RoomId), String> {
    let ada = User::new(t, "ada").await?;
    let grace = User::new(t, "grace").await?;
    let room = ada.room(false, false).await?;
    grace.conn.request_one(RoomJoin { room }).await.map_err(|e| e.to_string())?;
    Ok((ada, grace, room))
}

/// The next frame on the EPHEMERAL stream that `pick` accepts.
async fn ephemeral<T>(user: &mut User, pick: impl Fn(&Message) -> Option<T>) -> Result<T, String> {
    loop {
        match tokio::time::timeout(raw::WAIT, user.events.recv()).await {
            Ok(Some(Event::Ephemeral(message))) => {
                if let Some(found) = pick(&message) {
                    return Ok(found);
                }
            }
            Ok(Some(_)) => {}
            _ => return Err("no such EPHEMERAL frame in time".into()),
        }
    }
}

pub(super) fn checks() -> Vec<Check> {
    vec![
        Check::new(
            "6.1-1",
            "§6.1",
            Must,
            "PING is answered with PONG carrying the same T",
            |t| async move {
                let (_conn, mut control, mut theirs) = session(&t).await?;
                let mut ping = Vec::new();
                Ping { t: 424_242, ack_event_seq: 0 }.encode_frame(&mut ping);
                control.write_all(&ping).await.map_err(|e| e.to_string())?;
                loop {
                    match theirs.next().await? {
                        Some(Message::Pong(pong)) if pong.t == 424_242 => return Ok(()),
                        Some(_) => {}
                        None => return Err("the CONTROL stream ended".into()),
                    }
                }
            },
        ),
        Check::new(
            "6.2-9",
            "§6.2",
            Must,
            "a password shorter than 8 bytes is refused INVALID_REQUEST",
            |t| async move {
                let (conn, _events) = banter_client::Connection::connect(t.addr, t.options.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                refused(
                    conn.register(&raw::fresh_name("short"), "1234567").await,
                    &[ErrorCode::INVALID_REQUEST],
                )
            },
        ),
        Check::new(
            "6.2-10",
            "§6.2",
            Must,
            "SESSION_LIST lists the caller's login sessions",
            |t| async move {
                let ada = User::new(&t, "lists").await?;
                let _laptop = ada.again(&t).await?;
                match ada.conn.request_one(SessionList {}).await {
                    Ok(Message::SessionListPage(page)) if page.sessions.len() >= 2 => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        ),
        Check::new(
            "6.2-11",
            "§6.2",
            Must,
            "LOGOUT answers DONE and ends the login: its refresh token is refused",
            |t| async move {
                let ada = User::new(&t, "bye").await?;
                ada.conn.request_one(Logout {}).await.map_err(|e| e.to_string())?;
                let (conn, _events) = banter_client::Connection::connect(t.addr, t.options.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                let refresh = banter_client::protocol::message::Refresh {
                    refresh_token: ada.auth.refresh_token.clone(),
                };
                refused(
                    conn.request_one(refresh).await,
                    &[ErrorCode::SESSION_REVOKED, ErrorCode::AUTH_FAILED],
                )
            },
        ),
        Check::new(
            "6.3-2",
            "§6.3",
            Must,
            "ROOM_LIST Joined lists a room the caller created; Public lists public rooms",
            |t| async move {
                let ada = User::new(&t, "lister").await?;
                let room = ada.room(false, false).await?;
                for scope in [ListScope::Joined, ListScope::Public] {
                    match ada.conn.request_one(RoomList { scope, after: None, limit: 100 }).await {
                        Ok(Message::RoomListPage(page))
                            if page.rooms.iter().any(|r| r.room == room) => {}
                        Ok(Message::RoomListPage(page)) if page.more => {}
                        other => return Err(format!("{scope:?}: {other:?}")),
                    }
                }
                Ok(())
            },
        ),
        Check::new(
            "6.3-3",
            "§6.3",
            Must,
            "joining a private room without an invite is refused",
            |t| async move {
                let ada = User::new(&t, "private").await?;
                let mallory = User::new(&t, "gatecrash").await?;
                let room = ada.room(true, false).await?;
                refused(
                    mallory.conn.request_one(RoomJoin { room }).await,
                    &[ErrorCode::FORBIDDEN, ErrorCode::NOT_FOUND],
                )
            },
        ),
        Check::new(
            "6.3-4",
            "§6.3",
            Must,
            "an invite with one use lets one user in and refuses the next",
            |t| async move {
                let ada = User::new(&t, "inviter").await?;
                let grace = User::new(&t, "guest").await?;
                let carol = User::new(&t, "late").await?;
                let room = ada.room(true, false).await?;
                let code = match ada
                    .conn
                    .request_one(InviteCreate { room, max_uses: Some(1), expires_in_s: None })
                    .await
                {
                    Ok(Message::Invite(invite)) => invite.code,
                    other => return Err(format!("INVITE_CREATE: {other:?}")),
                };
                match grace.conn.request_one(InviteUse { code: code.clone() }).await {
                    Ok(Message::RoomInfo(info)) if info.room.room == room => {}
                    other => return Err(format!("INVITE_USE: {other:?}")),
                }
                match carol.conn.request_one(InviteUse { code }).await {
                    Err(e) if e.code().is_some() => Ok(()),
                    other => Err(format!("a second use: {other:?}")),
                }
            },
        ),
        Check::new(
            "6.3-5",
            "§6.3",
            Must,
            "ROOM_LEAVE appends a MEMBERSHIP Left entry",
            |t| async move {
                let (mut ada, grace, room) = two_in_a_room(&t).await?;
                grace.conn.request_one(RoomLeave { room }).await.map_err(|e| e.to_string())?;
                loop {
                    if let Message::Membership(m) = ada.next_entry().await? {
                        if m.user == grace.auth.user && m.change == MembershipChange::Left {
                            return Ok(());
                        }
                    }
                }
            },
        ),
        Check::new(
            "6.3-6",
            "§6.3",
            Must,
            "DM_OPEN makes a direct room named after the other user, for both",
            |t| async move {
                let ada = User::new(&t, "dmfrom").await?;
                let grace = User::new(&t, "dmto").await?;
                let room = match ada.conn.request_one(DmOpen { username: text(&grace.name) }).await
                {
                    Ok(Message::RoomInfo(info))
                        if info.room.kind == RoomKind::Direct
                            && info.room.name.as_str() == grace.name =>
                    {
                        info.room.room
                    }
                    other => return Err(format!("DM_OPEN: {other:?}")),
                };
                match grace
                    .conn
                    .request_one(RoomList { scope: ListScope::Joined, after: None, limit: 100 })
                    .await
                {
                    Ok(Message::RoomListPage(page))
                        if page
                            .rooms
                            .iter()
                            .any(|r| r.room == room && r.name.as_str() == ada.name) =>
                    {
                        Ok(())
                    }
                    other => Err(format!("grace's rooms: {other:?}")),
                }
            },
        ),
        Check::new(
            "6.3-7",
            "§6.3",
            Must,
            "MEMBERS lists every member with a name",
            |t| async move {
                let (ada, grace, room) = two_in_a_room(&t).await?;
                match ada.conn.request_one(Members { room, after: None, limit: 100 }).await {
                    Ok(Message::MembersPage(page)) => {
                        let names: Vec<&str> =
                            page.members.iter().map(|m| m.username.as_str()).collect();
                        if names.contains(&ada.name.as_str())
                            && names.contains(&grace.name.as_str())
                        {
                            Ok(())
                        } else {
                            Err(format!("{names:?}"))
                        }
                    }
                    other => Err(format!("{other:?}")),
                }
            },
        ),
        Check::new("6.3-8", "§6.3", Must, "ROOM_SET_TOPIC appends TOPIC_CHANGED", |t| async move {
            let mut ada = User::new(&t, "topic").await?;
            let room = ada.room(false, false).await?;
            ada.conn
                .request_one(RoomSetTopic { room, topic: text("conformance") })
                .await
                .map_err(|e| e.to_string())?;
            loop {
                if let Message::TopicChanged(changed) = ada.next_entry().await? {
                    return if changed.topic.as_str() == "conformance" {
                        Ok(())
                    } else {
                        Err(format!("{changed:?}"))
                    };
                }
            }
        }),
        Check::new(
            "6.4-7",
            "§6.4",
            Must,
            "a reply to a message that does not exist is NOT_FOUND",
            |t| async move {
                let ada = User::new(&t, "replier").await?;
                let room = ada.room(false, false).await?;
                let reply = Post { reply_to: Some(999_999), ..raw::post_request(room, "re") };
                refused(ada.conn.request_one(reply).await, &[ErrorCode::NOT_FOUND])
            },
        ),
        Check::new(
            "6.4-8",
            "§6.4",
            Must,
            "a member who is not a moderator cannot delete another's message",
            |t| async move {
                let (ada, grace, room) = two_in_a_room(&t).await?;
                let seq = ada.post(room, "keep me").await?.seq;
                refused(
                    grace.conn.request_one(Delete { room, target: seq }).await,
                    &[ErrorCode::FORBIDDEN],
                )
            },
        ),
        Check::new(
            "6.4-9",
            "§6.4",
            Must,
            "an edit of one's own message appends EDITED with the new text",
            |t| async move {
                let mut ada = User::new(&t, "editown").await?;
                let room = ada.room(false, false).await?;
                let seq = ada.post(room, "draft").await?.seq;
                ada.conn
                    .request_one(Edit { room, target: seq, text: text("final") })
                    .await
                    .map_err(|e| e.to_string())?;
                loop {
                    if let Message::Edited(edited) = ada.next_entry().await? {
                        return if edited.target == seq && edited.text.as_str() == "final" {
                            Ok(())
                        } else {
                            Err(format!("{edited:?}"))
                        };
                    }
                }
            },
        ),
        Check::new(
            "6.4-10",
            "§6.4",
            Must,
            "an anonymous post in a room that does not allow them is INVALID_REQUEST",
            |t| async move {
                let ada = User::new(&t, "anon").await?;
                let room = ada.room(false, false).await?;
                let post = Post { anonymous: true, ..raw::post_request(room, "who") };
                refused(ada.conn.request_one(post).await, &[ErrorCode::INVALID_REQUEST])
            },
        ),
        Check::new(
            "6.4-11",
            "§6.4",
            Must,
            "a message longer than MAX_MESSAGE_BYTES is refused",
            |t| async move {
                let ada = User::new(&t, "long").await?;
                let room = ada.room(false, false).await?;
                let post = raw::post_request(room, &"x".repeat(16_000));
                refused(
                    ada.conn.request_one(post).await,
                    &[ErrorCode::INVALID_REQUEST, ErrorCode::LIMIT_EXCEEDED],
                )
            },
        ),
        Check::new(
            "6.5-1",
            "§6.5",
            Must,
            "MARK_READ answers the stored marker, which never goes back",
            |t| async move {
                let ada = User::new(&t, "marker").await?;
                let room = ada.room(false, false).await?;
                let seq = ada.post(room, "read me").await?.seq;
                let mark = |seq| MarkRead { room, seq, private: false };
                match ada.conn.request_one(mark(seq)).await {
                    Ok(Message::MarkerOk(ok)) if ok.seq == seq => {}
                    other => return Err(format!("{other:?}")),
                }
                match ada.conn.request_one(mark(1)).await {
                    Ok(Message::MarkerOk(ok)) if ok.seq == seq => Ok(()),
                    other => Err(format!("going back: {other:?}")),
                }
            },
        ),
        Check::new(
            "6.5-2",
            "§6.5",
            Must,
            "TYPING_SET reaches the room's other members as TYPING",
            |t| async move {
                let (mut ada, grace, room) = two_in_a_room(&t).await?;
                grace
                    .conn
                    .request_one(TypingSet { room, state: TypingState::Active })
                    .await
                    .map_err(|e| e.to_string())?;
                let who = grace.auth.user;
                ephemeral(&mut ada, |m| {
                    matches!(m, Message::Typing(t) if t.user == who && t.room == room).then_some(())
                })
                .await
            },
        ),
        Check::new(
            "6.5-3",
            "§6.5",
            Must,
            "PRESENCE_SET reaches those who share a room as PRESENCE",
            |t| async move {
                let (mut ada, grace, _room) = two_in_a_room(&t).await?;
                grace
                    .conn
                    .request_one(PresenceSet { status: PresenceStatus::Away, text: text("lunch") })
                    .await
                    .map_err(|e| e.to_string())?;
                let who = grace.auth.user;
                ephemeral(&mut ada, |m| matches!(m, Message::Presence(p) if p.user == who && p.status == PresenceStatus::Away).then_some(())).await
            },
        ),
        Check::new(
            "6.7-1",
            "§6.7",
            Must,
            "a member cannot kick; a moderator's KICK appends MEMBERSHIP Kicked and the kicked user reads nothing more",
            |t| async move {
                let (mut ada, grace, room) = two_in_a_room(&t).await?;
                refused(
                    grace
                        .conn
                        .request_one(Kick { room, user: ada.auth.user, reason: text("") })
                        .await,
                    &[ErrorCode::FORBIDDEN],
                )?;
                ada.conn
                    .request_one(Kick { room, user: grace.auth.user, reason: text("test") })
                    .await
                    .map_err(|e| e.to_string())?;
                loop {
                    if let Message::Membership(m) = ada.next_entry().await? {
                        if m.user == grace.auth.user && m.change == MembershipChange::Kicked {
                            break;
                        }
                    }
                }
                let post = raw::post_request(room, "still here?");
                refused(
                    grace.conn.request_one(post).await,
                    &[ErrorCode::FORBIDDEN, ErrorCode::NOT_FOUND],
                )
            },
        ),
        Check::new(
            "6.7-2",
            "§6.7",
            Must,
            "a banned user cannot join again until unbanned",
            |t| async move {
                let (ada, grace, room) = two_in_a_room(&t).await?;
                ada.conn
                    .request_one(Ban { room, user: grace.auth.user, reason: text(""), until: None })
                    .await
                    .map_err(|e| e.to_string())?;
                refused(
                    grace.conn.request_one(RoomJoin { room }).await,
                    &[ErrorCode::BANNED, ErrorCode::FORBIDDEN],
                )?;
                ada.conn
                    .request_one(Unban { room, user: grace.auth.user })
                    .await
                    .map_err(|e| e.to_string())?;
                grace
                    .conn
                    .request_one(RoomJoin { room })
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("after UNBAN: {e}"))
            },
        ),
        Check::new("6.7-3", "§6.7", Must, "a timed ban ends by itself", |t| async move {
            let (ada, grace, room) = two_in_a_room(&t).await?;
            let until = Timestamp(banter_client::wall_clock().0 + 1_000);
            ada.conn
                .request_one(Ban {
                    room,
                    user: grace.auth.user,
                    reason: text(""),
                    until: Some(until),
                })
                .await
                .map_err(|e| e.to_string())?;
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            grace
                .conn
                .request_one(RoomJoin { room })
                .await
                .map(|_| ())
                .map_err(|e| format!("after the ban's end: {e}"))
        }),
        Check::new(
            "6.7-4",
            "§6.7",
            Must,
            "the audit log records a kick, for moderators only",
            |t| async move {
                let (ada, grace, room) = two_in_a_room(&t).await?;
                ada.conn
                    .request_one(Kick { room, user: grace.auth.user, reason: text("audited") })
                    .await
                    .map_err(|e| e.to_string())?;
                match ada
                    .conn
                    .request_one(AuditQuery { room: Some(room), before: None, limit: 10 })
                    .await
                {
                    Ok(Message::AuditPage(page))
                        if page.entries.iter().any(|e| {
                            e.target == Some(grace.auth.user) && e.reason.as_str() == "audited"
                        }) => {}
                    other => return Err(format!("{other:?}")),
                }
                refused(
                    grace
                        .conn
                        .request_one(AuditQuery { room: Some(room), before: None, limit: 10 })
                        .await,
                    &[ErrorCode::FORBIDDEN, ErrorCode::NOT_FOUND],
                )
            },
        ),
        Check::new(
            "6.8-1",
            "§6.8",
            Must,
            "a friend request shows as outgoing and incoming; a block shows only to the blocker",
            |t| async move {
                let ada = User::new(&t, "friend").await?;
                let grace = User::new(&t, "asked").await?;
                ada.conn
                    .request_one(ContactSet {
                        username: text(&grace.name),
                        action: ContactAction::Request,
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                let state = |user: &User, other: &User| {
                    let (conn, other) = (user.conn.clone(), other.auth.user);
                    async move {
                        match conn.request_one(ContactList {}).await {
                            Ok(Message::ContactListPage(page)) => {
                                Ok(page.contacts.iter().find(|c| c.user == other).map(|c| c.state))
                            }
                            other => Err(format!("{other:?}")),
                        }
                    }
                };
                if state(&ada, &grace).await? != Some(ContactState::Outgoing)
                    || state(&grace, &ada).await? != Some(ContactState::Incoming)
                {
                    return Err("the request is not outgoing and incoming".into());
                }
                grace
                    .conn
                    .request_one(ContactSet {
                        username: text(&ada.name),
                        action: ContactAction::Block,
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                match (state(&grace, &ada).await?, state(&ada, &grace).await?) {
                    (Some(ContactState::Blocked), None) => Ok(()),
                    other => Err(format!("after the block: {other:?}")),
                }
            },
        ),
        Check::new(
            "6.8-2",
            "§6.8",
            Must,
            "a blocked user cannot open a direct room with the blocker",
            |t| async move {
                let ada = User::new(&t, "blocker").await?;
                let mallory = User::new(&t, "blocked").await?;
                ada.conn
                    .request_one(ContactSet {
                        username: text(&mallory.name),
                        action: ContactAction::Block,
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                refused(
                    mallory.conn.request_one(DmOpen { username: text(&ada.name) }).await,
                    &[ErrorCode::FORBIDDEN, ErrorCode::NOT_FOUND],
                )
            },
        ),
        Check::new("6.1-2", "§6.1", Must, "WELCOME names the token's user", |t| async move {
            let ada = User::new(&t, "welcome").await?;
            if ada.welcome.user == ada.auth.user && ada.welcome.username.as_str() == ada.name {
                Ok(())
            } else {
                Err(format!("{:?} for {:?}", ada.welcome, ada.auth.user))
            }
        }),
        Check::new(
            "6.2-12",
            "§6.2",
            Must,
            "SESSION_REVOKE ends another login session of the caller: its connection is closed SESSION_REVOKED",
            |t| async move {
                let ada = User::new(&t, "revoker").await?;
                let mut laptop = ada.again(&t).await?;
                ada.conn
                    .request_one(SessionRevoke { session: laptop.auth.session })
                    .await
                    .map_err(|e| e.to_string())?;
                loop {
                    match tokio::time::timeout(raw::WAIT, laptop.events.recv()).await {
                        Ok(Some(Event::Rejected(e))) if e.code == ErrorCode::SESSION_REVOKED => {
                            return Ok(());
                        }
                        Ok(Some(Event::Closed { code: Some(code), .. }))
                            if code == ErrorCode::SESSION_REVOKED =>
                        {
                            return Ok(());
                        }
                        Ok(Some(Event::Closed { code, reason })) => {
                            return Err(format!("closed with {code:?}: {reason}"));
                        }
                        Ok(Some(_)) => {}
                        _ => return Err("the revoked session's connection stayed open".into()),
                    }
                }
            },
        ),
        Check::new(
            "6.3-9",
            "§6.3",
            Must,
            "ROOM_JOIN of a room already joined appends nothing",
            |t| async move {
                let (mut ada, grace, room) = two_in_a_room(&t).await?;
                grace.conn.request_one(RoomJoin { room }).await.map_err(|e| e.to_string())?;
                let marker = ada.post(room, "marker").await?.seq;
                let mut joins = 0;
                loop {
                    match ada.next_entry().await? {
                        Message::Membership(m) if m.user == grace.auth.user => joins += 1,
                        Message::Posted(p) if p.meta.seq == marker => break,
                        _ => {}
                    }
                }
                if joins == 1 { Ok(()) } else { Err(format!("{joins} joins")) }
            },
        ),
        Check::new(
            "6.3-10",
            "§6.3",
            Must,
            "ROOM_INVITE needs consent: a stranger cannot be added, a friend can",
            |t| async move {
                let ada = User::new(&t, "adder").await?;
                let grace = User::new(&t, "added").await?;
                let room = ada.room(true, false).await?;
                let add = || RoomInvite { room, username: text(&grace.name) };
                refused(ada.conn.request_one(add()).await, &[ErrorCode::FORBIDDEN])?;
                let befriend = |other: &User| ContactSet {
                    username: text(&other.name),
                    action: ContactAction::Request,
                };
                ada.conn.request_one(befriend(&grace)).await.map_err(|e| e.to_string())?;
                grace.conn.request_one(befriend(&ada)).await.map_err(|e| e.to_string())?;
                ada.conn.request_one(add()).await.map_err(|e| format!("adding a friend: {e}"))?;
                grace
                    .conn
                    .request(History { room, before: None, limit: 5 })
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("the added user cannot read: {e}"))
            },
        ),
        Check::new(
            "6.3-11",
            "§6.3",
            Must,
            "ROOM_CONFIGURE is for moderators: a member is FORBIDDEN, the owner's appends ROOM_CONFIGURED",
            |t| async move {
                let (mut ada, grace, room) = two_in_a_room(&t).await?;
                let configure = RoomConfigure {
                    room,
                    slow_mode_s: Some(5),
                    locked: None,
                    anonymous: None,
                    stage: None,
                };
                refused(grace.conn.request_one(configure.clone()).await, &[ErrorCode::FORBIDDEN])?;
                ada.conn.request_one(configure).await.map_err(|e| e.to_string())?;
                loop {
                    if let Message::RoomConfigured(c) = ada.next_entry().await? {
                        return if c.slow_mode_s == 5 { Ok(()) } else { Err(format!("{c:?}")) };
                    }
                }
            },
        ),
        Check::new(
            "6.3-12",
            "§6.3",
            Must,
            "slow mode refuses a member's second post within the interval with RATE_LIMITED and a retry time",
            |t| async move {
                let (ada, grace, room) = two_in_a_room(&t).await?;
                let configure = RoomConfigure {
                    room,
                    slow_mode_s: Some(60),
                    locked: None,
                    anonymous: None,
                    stage: None,
                };
                ada.conn.request_one(configure).await.map_err(|e| e.to_string())?;
                grace.post(room, "first").await?;
                let second = raw::post_request(room, "second");
                match grace.conn.request_one(second).await {
                    Err(banter_client::RequestError::Server {
                        code: ErrorCode::RATE_LIMITED,
                        retry_after_ms: Some(ms),
                        ..
                    }) if ms > 0 => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        ),
        Check::new(
            "6.3-13",
            "§6.3",
            Must,
            "a locked room refuses members' posts and takes the owner's",
            |t| async move {
                let (ada, grace, room) = two_in_a_room(&t).await?;
                let configure = RoomConfigure {
                    room,
                    slow_mode_s: None,
                    locked: Some(true),
                    anonymous: None,
                    stage: None,
                };
                ada.conn.request_one(configure).await.map_err(|e| e.to_string())?;
                let by_member = raw::post_request(room, "may I?");
                refused(
                    grace.conn.request_one(by_member).await,
                    &[ErrorCode::FORBIDDEN, ErrorCode::ROOM_LOCKED],
                )?;
                ada.post(room, "announcement").await.map(|_| ())
            },
        ),
        Check::new(
            "6.4-12",
            "§6.4",
            Must,
            "DELETE appends DELETED, and HISTORY shows a tombstone without the text",
            |t| async move {
                let mut ada = User::new(&t, "deleter").await?;
                let room = ada.room(false, false).await?;
                let seq = ada.post(room, "regret").await?.seq;
                ada.conn
                    .request_one(Delete { room, target: seq })
                    .await
                    .map_err(|e| e.to_string())?;
                loop {
                    if let Message::Deleted(d) = ada.next_entry().await? {
                        if d.target == seq {
                            break;
                        }
                    }
                }
                let page = ada
                    .conn
                    .request(History { room, before: None, limit: 10 })
                    .await
                    .map_err(|e| e.to_string())?;
                match page.iter().find_map(|m| match m {
                    Message::HistoryMessage(h) if h.meta.seq == seq => Some(h),
                    _ => None,
                }) {
                    Some(h) if h.deleted_by.is_some() && h.text.is_empty() => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        ),
        Check::new(
            "6.4-13",
            "§6.4",
            Must,
            "REACT with On false takes a reaction back",
            |t| async move {
                let ada = User::new(&t, "unreact").await?;
                let room = ada.room(false, false).await?;
                let target = ada.post(room, "x").await?.seq;
                let react = |on| React { room, target, emoji: text("🎉"), on };
                ada.conn.request_one(react(true)).await.map_err(|e| e.to_string())?;
                ada.conn.request_one(react(false)).await.map_err(|e| e.to_string())?;
                let page = ada
                    .conn
                    .request(History { room, before: None, limit: 10 })
                    .await
                    .map_err(|e| e.to_string())?;
                match page.iter().find_map(|m| match m {
                    Message::HistoryMessage(h) if h.meta.seq == target => Some(h),
                    _ => None,
                }) {
                    Some(h) if h.reactions.is_empty() => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        ),
        Check::new(
            "6.4-14",
            "§6.4",
            Must,
            "HISTORY with Before reads only below it",
            |t| async move {
                let ada = User::new(&t, "before").await?;
                let room = ada.room(false, false).await?;
                for _ in 0..4 {
                    ada.post(room, "b").await?;
                }
                let page = ada
                    .conn
                    .request(History { room, before: Some(4), limit: 10 })
                    .await
                    .map_err(|e| e.to_string())?;
                let seqs: Vec<u64> =
                    page.iter().filter_map(|m| m.entry_meta().map(|m| m.seq)).collect();
                if seqs == [3, 2, 1] { Ok(()) } else { Err(format!("{seqs:?}")) }
            },
        ),
        Check::new(
            "6.4-15",
            "§6.4",
            Must,
            "CATCH_UP after the head is an empty page without Next",
            |t| async move {
                let ada = User::new(&t, "head").await?;
                let room = ada.room(false, false).await?;
                let head = ada.post(room, "h").await?.seq;
                let page = ada
                    .conn
                    .request(CatchUp { room, after: head, limit: 10 })
                    .await
                    .map_err(|e| e.to_string())?;
                match page.as_slice() {
                    [Message::PageEnd(end)] if end.next.is_none() => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        ),
        Check::new(
            "6.7-5",
            "§6.7",
            Must,
            "ROLE_SET by the owner makes a moderator, who may then kick",
            |t| async move {
                let (ada, grace, room) = two_in_a_room(&t).await?;
                let carol = User::new(&t, "carol").await?;
                carol.conn.request_one(RoomJoin { room }).await.map_err(|e| e.to_string())?;
                ada.conn
                    .request_one(RoleSet {
                        room: Some(room),
                        user: grace.auth.user,
                        role: Role::MODERATOR,
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                grace
                    .conn
                    .request_one(Kick { room, user: carol.auth.user, reason: text("") })
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("the new moderator's KICK: {e}"))
            },
        ),
        Check::new(
            "6.7-6",
            "§6.7",
            Must,
            "a member cannot give roles, not even to themselves",
            |t| async move {
                let (_ada, grace, room) = two_in_a_room(&t).await?;
                refused(
                    grace
                        .conn
                        .request_one(RoleSet {
                            room: Some(room),
                            user: grace.auth.user,
                            role: Role::OWNER,
                        })
                        .await,
                    &[ErrorCode::FORBIDDEN],
                )
            },
        ),
        Check::new(
            "6.9-2",
            "§6.9",
            Must,
            "DOWNLOAD of a seq that is no shared file is refused",
            |t| async move {
                let ada = User::new(&t, "nofile").await?;
                let room = ada.room(false, false).await?;
                let seq = ada.post(room, "not a file").await?.seq;
                refused(
                    ada.conn.request(Download { room, seq, offset: 0 }).await,
                    &[ErrorCode::NOT_FOUND, ErrorCode::INVALID_REQUEST],
                )
            },
        ),
    ]
}
