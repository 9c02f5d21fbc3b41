//! The CLI forms of what the TUI does to messages and people: `dm`, `react`, `edit`,
//! `delete`, and the moderator's `kick`, `ban`, `unban`, `mute`, `unmute`, `role`, `slow`,
//! `lock`, `unlock` and `audit`, for scripts and bots. Each is one connection and as few
//! round trips as its request needs.

use std::collections::HashMap;

use banter_client::Connection;
use banter_protocol::bounded::Text;
use banter_protocol::ids::{RoomId, Timestamp, UserId};
use banter_protocol::message::{
    AuditQuery, Ban, Delete, DmOpen, Edit, EventAck, History, Kick, Message, Post, React, Role,
    RoleSet, RoomConfigure, Unban, VoiceAction, VoiceModerate,
};

use super::{Ctx, Result, cached_room, fail, member_names, text};
use crate::output;

/// What a moderator does to a user.
pub(super) enum Moderation {
    Kick(String),
    /// With the ban's length in seconds (`None`: until lifted).
    Ban(String, Option<u64>),
    Unban,
    /// Server mute in voice (true) or its end.
    Mute(bool),
    Role(Role),
}

/// `member`, `moderator`, `admin` or `owner`.
pub(super) fn parse_role(name: &str) -> Result<Role> {
    [Role::MEMBER, Role::MODERATOR, Role::ADMIN, Role::OWNER]
        .into_iter()
        .find(|role| role.name().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .ok_or_else(|| fail(2, format!("no role {name}: member, moderator, admin or owner")))
}

/// Prints what an acknowledged act did: `{"room", "seq"}`, or a sentence.
fn acked(ctx: &Ctx, ack: &EventAck, done: &str) {
    output::line(&if ctx.json {
        serde_json::json!({"room": ack.room.0, "seq": ack.seq, "ts": ack.ts.0}).to_string()
    } else {
        format!("{done} (#{})", ack.seq)
    });
}

async fn ack(conn: &Connection, request: impl Into<Message>) -> Result<EventAck> {
    match conn.request_one(request).await? {
        Message::EventAck(ack) => Ok(ack),
        other => Err(fail(1, format!("unexpected answer: {:?}", other.frame_type()))),
    }
}

/// A session and the room `spec` names on it, looked up afresh (these acts are not latency
/// critical, and a remembered id could be stale; the lookup refreshes it).
async fn in_room(ctx: &Ctx, spec: &str) -> Result<(Connection, RoomId, String)> {
    let (conn, _events, mut profile) = ctx.session().await?;
    let (room, name) = cached_room(ctx, &conn, &mut profile, spec, true).await?;
    Ok((conn, room, output::one_line(&name)))
}

pub(super) async fn dm(ctx: &Ctx, user: &str, body: &str) -> Result<()> {
    let (conn, _events, _) = ctx.session().await?;
    let Message::RoomInfo(info) =
        conn.request_one(DmOpen { username: text("user", user)? }).await?
    else {
        return Err(fail(1, "unexpected answer to DM_OPEN"));
    };
    let client_msg_id = banter_client::new_client_msg_id();
    let post = Post {
        room: info.room.room,
        client_msg_id,
        text: text("text", body)?,
        reply_to: None,
        anonymous: false,
    };
    let ack = ack(&conn, post).await?;
    output::ack(ctx.json, &output::one_line(user), &ack, client_msg_id);
    Ok(())
}

pub(super) async fn react(ctx: &Ctx, spec: &str, seq: u64, typed: &str, on: bool) -> Result<()> {
    let emoji = crate::emoji::resolve(typed)
        .ok_or_else(|| fail(2, format!("{typed} is not an emoji or :shortcode:")))?;
    let (conn, room, name) = in_room(ctx, spec).await?;
    let request = React { room, target: seq, emoji: Text::new(&emoji).unwrap_or_default(), on };
    let ack = ack(&conn, request).await?;
    let verb = if on { "reacted" } else { "took back" };
    acked(ctx, &ack, &format!("{verb} {emoji} on #{seq} in {name}"));
    Ok(())
}

pub(super) async fn edit(ctx: &Ctx, spec: &str, seq: u64, body: &str) -> Result<()> {
    let (conn, room, name) = in_room(ctx, spec).await?;
    let ack = ack(&conn, Edit { room, target: seq, text: text("text", body)? }).await?;
    acked(ctx, &ack, &format!("edited #{seq} in {name}"));
    Ok(())
}

pub(super) async fn delete(ctx: &Ctx, spec: &str, seq: u64) -> Result<()> {
    let (conn, room, name) = in_room(ctx, spec).await?;
    let ack = ack(&conn, Delete { room, target: seq }).await?;
    acked(ctx, &ack, &format!("deleted #{seq} in {name}"));
    Ok(())
}

/// A user by name: a member of the room, else one its log shows (someone kicked, banned or
/// gone); `#ID` is taken as it is.
async fn find_user(conn: &Connection, room: RoomId, name: &str) -> Result<UserId> {
    if let Some(id) = name.strip_prefix('#').and_then(|id| id.parse().ok()) {
        return Ok(UserId(id));
    }
    let name = name.trim_start_matches('@');
    let members = member_names(conn, room).await?;
    if let Some((id, _)) = members.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)) {
        return Ok(*id);
    }
    let mut before = None;
    for _ in 0..20 {
        let page = conn.request(History { room, before, limit: 100 }).await?;
        let mut next = None;
        for message in page {
            match message {
                Message::Membership(m) if m.username.eq_ignore_ascii_case(name) => {
                    return Ok(m.user);
                }
                Message::PageEnd(end) => next = end.next,
                _ => {}
            }
        }
        match next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    Err(fail(5, format!("no user {name} in this room or its history")))
}

pub(super) async fn moderate(ctx: &Ctx, spec: &str, who: &str, act: Moderation) -> Result<()> {
    let (conn, room, name) = in_room(ctx, spec).await?;
    let user = find_user(&conn, room, who).await?;
    let who = &output::one_line(who);
    let done = match act {
        Moderation::Kick(reason) => {
            let ack = ack(&conn, Kick { room, user, reason: text("reason", &reason)? }).await?;
            acked(ctx, &ack, &format!("kicked {who} from {name}"));
            return Ok(());
        }
        Moderation::Ban(reason, seconds) => {
            let until = seconds.map(|s| {
                Timestamp(banter_client::wall_clock().0.saturating_add(s.saturating_mul(1000)))
            });
            let ban = Ban { room, user, reason: text("reason", &reason)?, until };
            let ack = ack(&conn, ban).await?;
            acked(ctx, &ack, &format!("banned {who} from {name}"));
            return Ok(());
        }
        Moderation::Unban => {
            let ack = ack(&conn, Unban { room, user }).await?;
            acked(ctx, &ack, &format!("unbanned {who} in {name}"));
            return Ok(());
        }
        Moderation::Mute(mute) => {
            let action = if mute { VoiceAction::ServerMute } else { VoiceAction::ServerUnmute };
            conn.request_one(VoiceModerate { room, user, action }).await?;
            format!("{} {who} in the voice of {name}", if mute { "muted" } else { "unmuted" })
        }
        Moderation::Role(role) => {
            conn.request_one(RoleSet { room: Some(room), user, role }).await?;
            format!("{who} is {} in {name}", role.name().unwrap_or("?"))
        }
    };
    output::line(&if ctx.json {
        serde_json::json!({"room": room.0, "user": user.0, "done": done}).to_string()
    } else {
        done
    });
    Ok(())
}

pub(super) async fn configure(
    ctx: &Ctx,
    spec: &str,
    slow_mode_s: Option<u32>,
    locked: Option<bool>,
) -> Result<()> {
    let (conn, room, name) = in_room(ctx, spec).await?;
    let request = RoomConfigure { room, slow_mode_s, locked, anonymous: None, stage: None };
    let ack = ack(&conn, request).await?;
    let done = match (slow_mode_s, locked) {
        (Some(0), _) => format!("slow mode off in {name}"),
        (Some(s), _) => format!("slow mode {s} s in {name}"),
        (None, Some(true)) => format!("locked {name}"),
        (None, _) => format!("unlocked {name}"),
    };
    acked(ctx, &ack, &done);
    Ok(())
}

pub(super) async fn audit(ctx: &Ctx, spec: &str, limit: u16) -> Result<()> {
    let (conn, room, _) = in_room(ctx, spec).await?;
    let query = AuditQuery { room: Some(room), before: None, limit: limit.clamp(1, 100) };
    let Message::AuditPage(page) = conn.request_one(query).await? else {
        return Err(fail(1, "unexpected answer to AUDIT_QUERY"));
    };
    let names: HashMap<UserId, String> = member_names(&conn, room).await?;
    let name = |user: UserId| match user.0 {
        0 => "(console)".to_owned(),
        _ => names.get(&user).cloned().unwrap_or_else(|| format!("#{}", user.0)),
    };
    for entry in page.entries.iter() {
        let action = entry.action.name().map_or_else(|| entry.action.0.to_string(), str::to_owned);
        output::line(&if ctx.json {
            serde_json::json!({
                "id": entry.id,
                "ts": entry.ts.0,
                "actor": entry.actor.0,
                "actor_name": name(entry.actor),
                "action": action,
                "target": entry.target.map(|t| t.0),
                "target_name": entry.target.map(name),
                "reason": entry.reason.as_str(),
            })
            .to_string()
        } else {
            let target = entry.target.map(|t| format!(" {}", name(t))).unwrap_or_default();
            let reason = if entry.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", output::one_line(&entry.reason))
            };
            format!(
                "[{}] {} {}{target}{reason}",
                output::clock(entry.ts.0),
                output::one_line(&name(entry.actor)),
                action.to_lowercase()
            )
        });
    }
    Ok(())
}
