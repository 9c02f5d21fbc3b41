//! ROOM_CREATE, ROOM_LIST, ROOM_JOIN, ROOM_LEAVE, ROOM_SET_TOPIC, DM_OPEN, MEMBERS, and the
//! removals KICK, BAN, UNBAN (spec §6.3, §6.7).

use banter_protocol::ErrorCode;
use banter_protocol::bounded::List;
use banter_protocol::ids::{RoomId, Timestamp, UserId};
use banter_protocol::message::{
    AuditAction, Ban, DmOpen, EventAck, Kick, ListScope, Member, Members, MembersPage,
    MembershipChange, Message, Role, RoomConfigure, RoomCreate, RoomInfo, RoomJoin, RoomKind,
    RoomLeave, RoomList, RoomListPage, RoomSetTopic, RoomSummary, Unban, Visibility,
};

use super::events::{Appended, append, membership, room_in, topic_entry};
use super::moderation::audit;
use super::{
    ConnCtx, RequestError, Result, authorize_in, authorize_moderation_in, check_text, text,
};
use crate::authz::Action;
use crate::store::records::{
    BanRecord, EntryKind, MarkerRecord, MemberRecord, RoomRecord, RoomSettings, UserRecord,
};
use crate::store::{Txn, keys};
use crate::wall_clock;

/// A room as the caller sees it.
pub(crate) fn summary(
    ctx: &ConnCtx,
    room: RoomId,
    record: &RoomRecord,
    viewer: UserId,
) -> Result<RoomSummary> {
    let member: Option<MemberRecord> = ctx.shared.store.get(&keys::member(room, viewer))?;
    let marker: MarkerRecord =
        ctx.shared.store.get(&keys::marker(room, viewer))?.unwrap_or_default();
    let settings = ctx.room_settings(room)?;
    let name = match record.direct_pair {
        Some((a, b)) => {
            let other = UserId(if a == viewer.0 { b } else { a });
            ctx.shared
                .store
                .get::<UserRecord>(&keys::user(other))?
                .map(|u| u.username)
                .unwrap_or_default()
        }
        None => record.name.clone(),
    };
    Ok(RoomSummary {
        room,
        kind: if record.direct { RoomKind::Direct } else { RoomKind::Channel },
        name: text(&name),
        topic: text(&record.topic),
        category: text(&record.category),
        visibility: if record.private { Visibility::Private } else { Visibility::Public },
        voice: record.voice,
        members: record.members,
        last_seq: ctx.shared.hub.head(room).min(record.last_seq),
        joined: member.is_some(),
        read_seq: marker.read,
        role: member.map_or(Role::MEMBER, |m| Role(m.role)),
        slow_mode_s: settings.slow_mode_s,
        // An archived room is read-only for everyone: clients show it locked.
        locked: settings.locked || settings.archived,
        anonymous: settings.anonymous,
        stage: settings.stage,
    })
}

pub(super) fn info(ctx: &ConnCtx, room: RoomId, viewer: UserId) -> Result<Vec<Message>> {
    let record: RoomRecord =
        ctx.shared.store.get(&keys::room(room))?.ok_or(ErrorCode::NOT_FOUND)?;
    Ok(vec![RoomInfo { room: summary(ctx, room, &record, viewer)? }.into()])
}

fn username_in(txn: &Txn<'_>, user: UserId) -> Result<String> {
    Ok(txn.get::<UserRecord>(&keys::user(user))?.ok_or(ErrorCode::NOT_FOUND)?.username)
}

/// Adds a member inside a commit and appends the Joined entry, sent by `actor` (the user
/// themself, or whoever added them). Every way into a room comes here, so this is where a
/// user's room count is held to `max_rooms` (direct rooms included).
fn add_member(
    txn: &mut Txn<'_>,
    room: RoomId,
    record: &mut RoomRecord,
    actor: UserId,
    user: UserId,
    role: Role,
    max_rooms: u32,
) -> Result<Appended> {
    let rooms_of = keys::ids(keys::tag::USER_ROOM, &[user.0]);
    if txn.keys_in(&rooms_of, &keys::prefix_end(&rooms_of))?.len() >= max_rooms as usize {
        let whose = if actor == user { "you are" } else { "that user is" };
        return Err(RequestError::new(
            ErrorCode::LIMIT_EXCEEDED,
            format!("{whose} in too many rooms"),
        ));
    }
    txn.put(keys::member(room, user), &MemberRecord { role: role.0 });
    txn.put(keys::user_room(user, room), &());
    record.members += 1;
    let name = username_in(txn, user)?;
    Ok(append(txn, room, record, actor, membership(user, &name, MembershipChange::Joined, "")))
}

/// Runs a commit that appends entries (joins, removals, topic and settings changes), then fans
/// them out in commit order; what a membership change does to the hub and to voice follows
/// from the entry itself (see [`crate::fanout`]).
pub(super) async fn commit_membership(
    ctx: &ConnCtx,
    f: impl FnOnce(&mut Txn<'_>) -> Result<Vec<Appended>> + Send + 'static,
) -> Result<Vec<Appended>> {
    let shared = ctx.shared.clone();
    Ok(ctx
        .shared
        .store
        .write(f, move |entries| {
            for entry in &entries {
                shared.fanout.committed(&shared, entry);
            }
            entries
        })
        .await?)
}

pub(crate) fn check_room_fields(name: &str, topic: &str, category: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(RequestError::new(ErrorCode::INVALID_REQUEST, "room names are 1-64 bytes"));
    }
    check_text("name", name, false)?;
    check_text("topic", topic, false)?;
    check_text("category", category, false)
}

pub(super) async fn create(ctx: &ConnCtx, r: RoomCreate) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    check_room_fields(&r.name, &r.topic, &r.category)?;
    ctx.rate("join")?;
    let max_rooms = ctx.shared.config.max_rooms_per_user;
    let appended = commit_membership(ctx, move |txn| {
        let (room, mut record) = new_channel(txn, r)?;
        let joined = add_member(txn, room, &mut record, user, user, Role::OWNER, max_rooms)?;
        txn.put(keys::room(room), &record);
        Ok(vec![joined])
    })
    .await?;
    info(ctx, appended[0].room, user)
}

/// Allocates a channel and indexes its name, refusing a taken name. The caller adds members
/// and stores the record.
pub(crate) fn new_channel(txn: &mut Txn<'_>, r: RoomCreate) -> Result<(RoomId, RoomRecord)> {
    let name_key = keys::room_name(&r.name);
    if txn.contains(&name_key)? {
        return Err(RequestError::new(ErrorCode::CONFLICT, "a room with that name exists"));
    }
    let room = RoomId(txn.next_id("room")?);
    txn.put(name_key, &room.0);
    if r.visibility == Visibility::Public {
        txn.put(keys::public_room(room), &());
    }
    let record = RoomRecord {
        direct: false,
        name: r.name.into_string(),
        topic: r.topic.into_string(),
        category: r.category.into_string(),
        private: r.visibility == Visibility::Private,
        voice: r.voice,
        created: wall_clock().0,
        last_seq: 0,
        members: 0,
        direct_pair: None,
        last_ts: 0,
    };
    Ok((room, record))
}

pub(super) fn list(ctx: &ConnCtx, r: RoomList) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    let limit = usize::from(r.limit).clamp(1, List::<RoomSummary, 100>::MAX);
    let after = r.after.map_or(0, |room| room.0.saturating_add(1));
    // One page of an index of room ids: the caller's rooms, or the listed channels (so that
    // direct, private and archived rooms are never walked for the public scope).
    let (start, end, id_at) = match r.scope {
        ListScope::Joined => {
            let mine = keys::ids(keys::tag::USER_ROOM, &[user.0]);
            (keys::ids(keys::tag::USER_ROOM, &[user.0, after]), keys::prefix_end(&mine), 9)
        }
        ListScope::Public => {
            ctx.rate("directory")?;
            let listed = keys::prefix_end(&[keys::tag::PUBLIC_ROOM]);
            (keys::public_room(RoomId(after)), listed, 1)
        }
    };
    let found = ctx.shared.store.range::<()>(&start, &end, false, limit + 1)?;
    let more = found.len() > limit;
    let mut rooms = Vec::with_capacity(limit);
    for (key, ()) in found.into_iter().take(limit) {
        let room = RoomId(keys::id_at(&key, id_at));
        if let Some(record) = ctx.shared.store.get::<RoomRecord>(&keys::room(room))? {
            rooms.push(summary(ctx, room, &record, user)?);
        }
    }
    Ok(vec![RoomListPage { rooms: List::new(rooms).expect("at most the limit"), more }.into()])
}

pub(super) async fn join(ctx: &ConnCtx, r: RoomJoin) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    ctx.rate("join")?;
    let (record, standing) = ctx.authorize(r.room, Action::Join)?;
    if standing.member.is_some() {
        return info(ctx, r.room, user);
    }
    if record.direct {
        return Err(ErrorCode::NOT_FOUND.into());
    }
    let room = r.room;
    let max_rooms = ctx.shared.config.max_rooms_per_user;
    commit_membership(ctx, move |txn| {
        let (_, standing) = authorize_in(txn, room, user, Action::Join)?;
        if standing.member.is_some() {
            return Ok(Vec::new());
        }
        Ok(vec![add_to_room(txn, room, user, user, max_rooms)?])
    })
    .await?;
    info(ctx, room, user)
}

/// Makes `user` a member of an existing room inside a commit (joining themself, or added by
/// `actor`) and saves the room; the entry and hub change for [`commit_membership`].
pub(super) fn add_to_room(
    txn: &mut Txn<'_>,
    room: RoomId,
    actor: UserId,
    user: UserId,
    max_rooms: u32,
) -> Result<Appended> {
    let mut record = room_in(txn, room)?;
    let joined = add_member(txn, room, &mut record, actor, user, Role::MEMBER, max_rooms)?;
    txn.put(keys::room(room), &record);
    Ok(joined)
}

/// Removes `user` from `room` inside a commit with a MEMBERSHIP entry by `actor`.
fn remove_member(
    txn: &mut Txn<'_>,
    room: RoomId,
    actor: UserId,
    user: UserId,
    change: MembershipChange,
    reason: &str,
) -> Result<Option<Appended>> {
    if !txn.contains(&keys::member(room, user))? {
        return Ok(None);
    }
    let mut record = room_in(txn, room)?;
    txn.delete(keys::member(room, user));
    txn.delete(keys::user_room(user, room));
    record.members = record.members.saturating_sub(1);
    membership_entry(txn, room, record, actor, user, change, reason).map(Some)
}

/// Appends a MEMBERSHIP entry about `user` by `actor` inside a commit and saves the room.
fn membership_entry(
    txn: &mut Txn<'_>,
    room: RoomId,
    mut record: RoomRecord,
    actor: UserId,
    user: UserId,
    change: MembershipChange,
    reason: &str,
) -> Result<Appended> {
    let name = username_in(txn, user)?;
    let appended = append(txn, room, &mut record, actor, membership(user, &name, change, reason));
    txn.put(keys::room(room), &record);
    Ok(appended)
}

pub(super) fn acked(appended: &[Appended], ctx: &ConnCtx, room: RoomId) -> Vec<Message> {
    match appended.last() {
        Some(a) => vec![EventAck { room: a.room, seq: a.seq, ts: Timestamp(a.entry.ts) }.into()],
        None => {
            vec![EventAck { room, seq: ctx.shared.hub.head(room), ts: wall_clock() }.into()]
        }
    }
}

pub(super) async fn leave(ctx: &ConnCtx, r: RoomLeave) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    let (_, standing) = ctx.standing(r.room)?;
    if standing.member.is_none() {
        return Err(ErrorCode::NOT_FOUND.into());
    }
    let room = r.room;
    let appended = commit_membership(ctx, move |txn| {
        let removed = remove_member(txn, room, user, user, MembershipChange::Left, "")?;
        Ok(removed.into_iter().collect())
    })
    .await?;
    Ok(acked(&appended, ctx, room))
}

pub(super) async fn set_topic(ctx: &ConnCtx, r: RoomSetTopic) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    check_text("topic", &r.topic, false)?;
    ctx.rate("edit")?;
    let room = r.room;
    let appended = commit_membership(ctx, move |txn| {
        let (mut record, _) = authorize_in(txn, room, user, Action::SetTopic)?;
        let appended = topic_entry(txn, room, &mut record, user, &r.topic);
        txn.put(keys::room(room), &record);
        Ok(vec![appended])
    })
    .await?;
    Ok(acked(&appended, ctx, room))
}

/// Longest slow mode: a day.
const MAX_SLOW_MODE_S: u32 = 86_400;

pub(super) async fn configure(ctx: &ConnCtx, r: RoomConfigure) -> Result<Vec<Message>> {
    let actor = ctx.authed()?.user;
    if r.slow_mode_s.is_some_and(|s| s > MAX_SLOW_MODE_S) {
        return Err(RequestError::new(ErrorCode::INVALID_REQUEST, "slow mode is at most 86400 s"));
    }
    let room = r.room;
    let appended = commit_membership(ctx, move |txn| {
        let (mut record, _) = authorize_in(txn, room, actor, Action::Configure)?;
        if record.direct {
            return Err(RequestError::new(
                ErrorCode::INVALID_REQUEST,
                "direct rooms have no settings",
            ));
        }
        let key = keys::room_settings(room);
        let mut settings: RoomSettings = txn.get(&key)?.unwrap_or_default();
        settings.slow_mode_s = r.slow_mode_s.unwrap_or(settings.slow_mode_s);
        settings.locked = r.locked.unwrap_or(settings.locked);
        settings.anonymous = r.anonymous.unwrap_or(settings.anonymous);
        settings.stage = r.stage.unwrap_or(settings.stage);
        txn.put(key, &settings);
        let reason = format!(
            "slow mode {} s, {}, {}",
            settings.slow_mode_s,
            if settings.locked { "locked" } else { "unlocked" },
            if settings.anonymous { "anonymous posts" } else { "no anonymous posts" },
        ) + if settings.stage { ", stage" } else { "" };
        audit(txn, actor, AuditAction::ROOM_CONFIGURE, Some(room), None, &reason)?;
        let kind = EntryKind::Configured {
            slow_mode_s: settings.slow_mode_s,
            locked: settings.locked,
            anonymous: settings.anonymous,
            stage: settings.stage,
        };
        let appended = append(txn, room, &mut record, actor, kind);
        txn.put(keys::room(room), &record);
        Ok(vec![appended])
    })
    .await?;
    Ok(acked(&appended, ctx, room))
}

pub(super) async fn dm_open(ctx: &ConnCtx, r: DmOpen) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    ctx.rate("join")?;
    let other = ctx.user_named(&r.username)?;
    // Someone who blocks the caller looks like no one (spec §6.8).
    if ctx.shared.hub.blocks(other, user) {
        return Err(ErrorCode::NOT_FOUND.into());
    }
    if other == user {
        return Err(RequestError::new(
            ErrorCode::INVALID_REQUEST,
            "cannot open a direct room with yourself",
        ));
    }
    let max_rooms = ctx.shared.config.max_rooms_per_user;
    if let Some(room) = ctx.shared.store.get::<u64>(&keys::direct(user, other))? {
        // A caller who left the direct room comes back to it (with its history).
        let room = RoomId(room);
        if ctx.shared.store.get::<MemberRecord>(&keys::member(room, user))?.is_none() {
            commit_membership(ctx, move |txn| {
                if txn.contains(&keys::member(room, user))? {
                    return Ok(Vec::new());
                }
                Ok(vec![add_to_room(txn, room, user, user, max_rooms)?])
            })
            .await?;
        }
        return info(ctx, room, user);
    }
    let appended = commit_membership(ctx, move |txn| {
        let pair_key = keys::direct(user, other);
        if txn.contains(&pair_key)? {
            // Opened by the other side in the same moment; ROOM_INFO below finds it.
            return Ok(Vec::new());
        }
        let room = RoomId(txn.next_id("room")?);
        let mut record = RoomRecord {
            direct: true,
            name: String::new(),
            topic: String::new(),
            category: String::new(),
            private: true,
            voice: false,
            created: wall_clock().0,
            last_seq: 0,
            members: 0,
            direct_pair: Some((user.0.min(other.0), user.0.max(other.0))),
            last_ts: 0,
        };
        txn.put(pair_key, &room.0);
        let first = add_member(txn, room, &mut record, user, user, Role::MEMBER, max_rooms)?;
        let second = add_member(txn, room, &mut record, user, other, Role::MEMBER, max_rooms)?;
        txn.put(keys::room(room), &record);
        Ok(vec![first, second])
    })
    .await?;
    let room = match appended.first() {
        Some(a) => a.room,
        None => RoomId(
            ctx.shared.store.get::<u64>(&keys::direct(user, other))?.ok_or(ErrorCode::INTERNAL)?,
        ),
    };
    info(ctx, room, user)
}

pub(super) fn members(ctx: &ConnCtx, r: Members) -> Result<Vec<Message>> {
    ctx.authed()?;
    ctx.authorize(r.room, Action::Read)?;
    let limit = usize::from(r.limit).clamp(1, List::<Member, 100>::MAX);
    let after = r.after.map_or(0, |u| u.0.saturating_add(1));
    let start = keys::ids(keys::tag::MEMBER, &[r.room.0, after]);
    let end = keys::prefix_end(&keys::ids(keys::tag::MEMBER, &[r.room.0]));
    let found = ctx.shared.store.range::<MemberRecord>(&start, &end, false, limit + 1)?;
    let more = found.len() > limit;
    let mut members = Vec::new();
    for (key, record) in found.into_iter().take(limit) {
        let user = UserId(keys::id_at(&key, 9));
        let username = ctx
            .shared
            .store
            .get::<UserRecord>(&keys::user(user))?
            .map(|u| u.username)
            .unwrap_or_default();
        members.push(Member { user, username: text(&username), role: Role(record.role) });
    }
    Ok(vec![MembersPage { members: List::new(members).expect("at most the limit"), more }.into()])
}

pub(super) async fn kick(ctx: &ConnCtx, r: Kick) -> Result<Vec<Message>> {
    let actor = ctx.authed()?.user;
    check_text("reason", &r.reason, false)?;
    let room = r.room;
    let appended = commit_membership(ctx, move |txn| {
        authorize_moderation_in(txn, room, actor, r.user)?;
        let removed = remove_member(txn, room, actor, r.user, MembershipChange::Kicked, &r.reason)?
            .ok_or_else(|| RequestError::new(ErrorCode::NOT_FOUND, "not a member"))?;
        audit(txn, actor, AuditAction::KICK, Some(room), Some(r.user), &r.reason)?;
        Ok(vec![removed])
    })
    .await?;
    Ok(acked(&appended, ctx, room))
}

pub(super) async fn ban(ctx: &ConnCtx, r: Ban) -> Result<Vec<Message>> {
    let actor = ctx.authed()?.user;
    check_text("reason", &r.reason, false)?;
    let room = r.room;
    let appended = commit_membership(ctx, move |txn| {
        authorize_moderation_in(txn, room, actor, r.user)?;
        txn.put(
            keys::ban(room, r.user),
            &BanRecord { until: r.until.map(|t| t.0), reason: r.reason.to_string(), by: actor.0 },
        );
        audit(txn, actor, AuditAction::BAN, Some(room), Some(r.user), &r.reason)?;
        let banned = MembershipChange::Banned;
        let entry = match remove_member(txn, room, actor, r.user, banned, &r.reason)? {
            Some(removed) => removed,
            // Not a member: the ban is still announced in the room.
            None => {
                membership_entry(txn, room, room_in(txn, room)?, actor, r.user, banned, &r.reason)?
            }
        };
        Ok(vec![entry])
    })
    .await?;
    Ok(acked(&appended, ctx, room))
}

pub(super) async fn unban(ctx: &ConnCtx, r: Unban) -> Result<Vec<Message>> {
    let actor = ctx.authed()?.user;
    let room = r.room;
    let appended = commit_membership(ctx, move |txn| {
        authorize_moderation_in(txn, room, actor, r.user)?;
        if !txn.contains(&keys::ban(room, r.user))? {
            return Err(RequestError::new(ErrorCode::NOT_FOUND, "not banned"));
        }
        txn.delete(keys::ban(room, r.user));
        audit(txn, actor, AuditAction::UNBAN, Some(room), Some(r.user), "")?;
        let record = room_in(txn, room)?;
        let unbanned = MembershipChange::Unbanned;
        let entry = membership_entry(txn, room, record, actor, r.user, unbanned, "")?;
        Ok(vec![entry])
    })
    .await?;
    Ok(acked(&appended, ctx, room))
}
