//! POST, EDIT, DELETE, REACT, HISTORY, CATCH_UP (spec §6.4), and the room log helpers every
//! log-writing request shares: [`append`] inside a commit, [`publish`] after it.

use std::cell::OnceCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use banter_protocol::ErrorCode;
use banter_protocol::bounded::List;
use banter_protocol::ids::{RoomId, Timestamp, UserId};
use banter_protocol::message::{
    AuditAction, Author, CatchUp, Delete, Deleted, Edit, Edited, EventAck, EventMeta, FileShared,
    History, HistoryMessage, Membership, MembershipChange, Message, PageEnd, Post, Posted, React,
    Reacted, ReactionCount, RevealAuthor, Role, RoomConfigured, StampedEvent, TopicChanged,
};

use super::moderation::audit;
use super::post_stream::InStream;
use super::{ConnCtx, RequestError, Result, authorize_in, check_text, rank_in, text};
use crate::authz::{Action, Standing, authorize};
use crate::hub::Hub;
use crate::ratelimit::SlowModeSlot;
use crate::store::records::{
    DedupRecord, EntryKind, LogEntry, MessageState, RoomRecord, RoomSettings,
};
use crate::store::{Txn, keys};
use crate::wall_clock;

/// A committed entry, for fan-out and the ack.
#[derive(Debug, Clone)]
pub(crate) struct Appended {
    pub(crate) room: RoomId,
    pub(crate) seq: u64,
    pub(crate) entry: LogEntry,
    /// Shown with sender 0 to all but its sender (spec §6.4.1).
    pub(crate) anonymous: bool,
}

impl Appended {
    /// Records the entry as anonymous, in the same commit.
    fn mark_anonymous(&mut self, txn: &mut Txn<'_>) {
        txn.put(keys::anonymous(self.room, self.seq), &());
        self.anonymous = true;
    }
}

/// Appends an entry to a room's log: the next room_seq, the entry, the room's head.
pub(crate) fn append(
    txn: &mut Txn<'_>,
    room: RoomId,
    record: &mut RoomRecord,
    sender: UserId,
    kind: EntryKind,
) -> Appended {
    record.last_seq += 1;
    // Never below the room's latest: the clock may have stepped back, the server restarted
    // on a slower clock, or another node's clock be ahead.
    record.last_ts = record.last_ts.max(wall_clock().0);
    let entry = LogEntry { ts: record.last_ts, sender: sender.0, kind };
    txn.put(keys::log(room, record.last_seq), &entry);
    Appended { room, seq: record.last_seq, entry, anonymous: false }
}

/// Reads the room record inside a commit.
pub(crate) fn room_in(txn: &Txn<'_>, room: RoomId) -> Result<RoomRecord> {
    txn.get(&keys::room(room))?.ok_or_else(|| ErrorCode::NOT_FOUND.into())
}

/// The wire frame of a log entry. `to_author` includes the POST's client_msg_id; `masked`
/// shows the sender as 0 (an anonymous entry, to someone other than its sender).
pub(crate) fn entry_frame(
    room: RoomId,
    seq: u64,
    entry: &LogEntry,
    event_seq: u64,
    to_author: bool,
    masked: bool,
) -> Message {
    let sender = if masked { ANONYMOUS } else { UserId(entry.sender) };
    let meta = EventMeta { room, seq, ts: Timestamp(entry.ts), sender };
    match &entry.kind {
        EntryKind::Posted { client_msg_id, reply_to, text: body } => Posted {
            event_seq,
            meta,
            client_msg_id: to_author.then_some(*client_msg_id),
            reply_to: *reply_to,
            text: text(body),
        }
        .into(),
        EntryKind::Edited { target, text: body } => {
            Edited { event_seq, meta, target: *target, text: text(body) }.into()
        }
        EntryKind::Deleted { target } => Deleted { event_seq, meta, target: *target }.into(),
        EntryKind::Reacted { target, emoji, on } => {
            Reacted { event_seq, meta, target: *target, emoji: text(emoji), on: *on }.into()
        }
        EntryKind::Membership { user, username, change, reason } => Membership {
            event_seq,
            meta,
            user: UserId(*user),
            username: text(username),
            change: membership_change(*change),
            reason: text(reason),
        }
        .into(),
        EntryKind::Topic { topic } => TopicChanged { event_seq, meta, topic: text(topic) }.into(),
        EntryKind::FileShared { name, size, sha256 } => {
            FileShared { event_seq, meta, name: text(name), size: *size, sha256: *sha256 }.into()
        }
        EntryKind::Configured { slow_mode_s, locked, anonymous, stage } => RoomConfigured {
            event_seq,
            meta,
            slow_mode_s: *slow_mode_s,
            locked: *locked,
            anonymous: *anonymous,
            stage: *stage,
        }
        .into(),
    }
}

pub(crate) fn membership_code(change: MembershipChange) -> u8 {
    match change {
        MembershipChange::Joined => 0,
        MembershipChange::Left => 1,
        MembershipChange::Kicked => 2,
        MembershipChange::Banned => 3,
        MembershipChange::Unbanned => 4,
    }
}

pub(crate) fn membership_change(code: u8) -> MembershipChange {
    match code {
        0 => MembershipChange::Joined,
        1 => MembershipChange::Left,
        2 => MembershipChange::Kicked,
        3 => MembershipChange::Banned,
        _ => MembershipChange::Unbanned,
    }
}

/// Fans a durable entry out to the room (and to `extra`, a user who just left or was removed
/// and must still see that entry). The frame is encoded once for the author's sessions and
/// once for everyone else's (they differ in `client_msg_id`, and in the sender of an
/// anonymous post), then stamped with each session's event number.
pub(crate) fn publish(hub: &Hub, appended: &Appended, extra: Option<UserId>) {
    let Appended { room, seq, entry, anonymous } = appended;
    let frames: [OnceCell<Option<StampedEvent>>; 2] = Default::default();
    hub.publish(*room, *seq, UserId(entry.sender), extra, |event_seq, to_author| {
        let stamped = frames[usize::from(to_author)].get_or_init(|| {
            let masked = *anonymous && !to_author;
            StampedEvent::new(&entry_frame(*room, *seq, entry, 0, to_author, masked))
        });
        match stamped {
            Some(stamped) => stamped.stamp(event_seq),
            // Unreachable: every entry frame is a numbered event. Encoding it in full keeps
            // delivery correct even so.
            None => {
                let mut out = Vec::new();
                entry_frame(*room, *seq, entry, event_seq, to_author, *anonymous && !to_author)
                    .encode(&mut out);
                out.into()
            }
        }
    });
}

pub(super) fn ack(appended: &Appended) -> Vec<Message> {
    vec![
        EventAck { room: appended.room, seq: appended.seq, ts: Timestamp(appended.entry.ts) }
            .into(),
    ]
}

fn check_message_text(ctx: &ConnCtx, body: &str) -> Result<()> {
    if body.is_empty() || body.len() as u64 > ctx.shared.config.max_message_bytes {
        return Err(RequestError::new(
            ErrorCode::INVALID_REQUEST,
            format!("messages are 1 to {} bytes", ctx.shared.config.max_message_bytes),
        ));
    }
    check_text("text", body, true)
}

/// What a POST did: appended a new message, or found the earlier one with the same id.
enum Posting {
    New(Appended),
    Repeat(DedupRecord),
}

fn digest(room: RoomId, body: &str) -> [u8; 32] {
    let mut bytes = room.0.to_be_bytes().to_vec();
    bytes.extend_from_slice(body.as_bytes());
    crate::auth::sha256(&bytes)
}

/// A POST. On a post stream, its `place` refuses it once an earlier post of the stream was
/// refused, and is told when this one is (spec §3.1.1).
pub(super) async fn post(ctx: &ConnCtx, r: Post, place: Option<InStream>) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    check_message_text(ctx, &r.text)?;
    ctx.rate("message")?;
    // A retry of a post already taken is answered with its ack (from the writer, below)
    // whatever changed since, a kick, a ban, a lock or slow mode included: refusing it would
    // make the client think a delivered message was lost (spec §7.2).
    let retry = ctx.shared.store.contains(&keys::dedup(user, r.client_msg_id))?;
    let mut slot = None;
    if !retry {
        let (record, standing) = ctx.authorize(r.room, Action::Participate)?;
        let (settings, taken) = check_may_post(ctx, r.room, &record, &standing)?;
        if r.anonymous && !settings.anonymous {
            return Err(RequestError::new(
                ErrorCode::INVALID_REQUEST,
                "this room does not allow anonymous posts",
            ));
        }
        slot = taken;
    }
    let anonymous = r.anonymous;
    let shared = ctx.shared.clone();
    let outcome = ctx
        .shared
        .store
        .write(
            move |txn| {
                let taken = match &place {
                    Some(place) => place.check().and_then(|()| take_post(txn, r, user)),
                    None => take_post(txn, r, user),
                };
                if let (Err(_), Some(place)) = (&taken, &place) {
                    place.refused();
                }
                taken
            },
            move |posting| {
                if let Posting::New(appended) = &posting {
                    shared.fanout.committed(&shared, appended);
                    // An anonymous post does not end its author's typing notice: "X stopped
                    // typing" at the moment it appears would name the author.
                    if !anonymous {
                        shared.clear_typing(appended.room, user);
                    }
                }
                posting
            },
        )
        .await?;
    if let (Some(slot), Posting::New(_)) = (slot, &outcome) {
        slot.keep();
    }
    Ok(match outcome {
        Posting::New(appended) => ack(&appended),
        Posting::Repeat(seen) => {
            vec![EventAck { room: RoomId(seen.room), seq: seen.seq, ts: Timestamp(seen.ts) }.into()]
        }
    })
}

/// A POST's write, on the writer thread: the answer to a retry, or the new entry with its
/// dedup record.
fn take_post(txn: &mut Txn<'_>, r: Post, user: UserId) -> Result<Posting> {
    let room = r.room;
    let body = r.text.into_string();
    let digest = digest(room, &body);
    let dedup_key = keys::dedup(user, r.client_msg_id);
    if let Some(seen) = txn.get::<DedupRecord>(&dedup_key)? {
        return if seen.digest == digest {
            Ok(Posting::Repeat(seen))
        } else {
            Err(RequestError::new(ErrorCode::CONFLICT, "client_msg_id reused with other content"))
        };
    }
    // Decided again here: a lock, archive, kick or ban that commits first wins.
    let (mut record, _) = authorize_in(txn, room, user, Action::Post)?;
    if let Some(target) = r.reply_to {
        let target: Option<LogEntry> = txn.get(&keys::log(room, target))?;
        if !matches!(target, Some(LogEntry { kind: EntryKind::Posted { .. }, .. })) {
            return Err(RequestError::new(ErrorCode::NOT_FOUND, "reply target not found"));
        }
    }
    let mut appended = append(
        txn,
        room,
        &mut record,
        user,
        EntryKind::Posted { client_msg_id: r.client_msg_id, reply_to: r.reply_to, text: body },
    );
    if r.anonymous {
        appended.mark_anonymous(txn);
    }
    // The dedup record commits in the same batch as the message (spec §7.2).
    txn.put(
        dedup_key,
        &DedupRecord { room: room.0, seq: appended.seq, ts: appended.entry.ts, digest },
    );
    txn.put(keys::room(room), &record);
    Ok(Posting::New(appended))
}

/// The sender shown for anonymous entries (spec §6.4.1).
const ANONYMOUS: UserId = UserId(0);

/// REVEAL_AUTHOR: who wrote an entry, for moderators, and the reveal is audited.
pub(super) async fn reveal_author(ctx: &ConnCtx, r: RevealAuthor) -> Result<Vec<Message>> {
    let moderator = ctx.authed()?.user;
    let (room, seq) = (r.room, r.seq);
    let head = ctx.shared.hub.head(room);
    let author = ctx
        .shared
        .store
        .write(
            move |txn| {
                authorize_in(txn, room, moderator, Action::RevealAuthor)?;
                let entry: LogEntry = txn
                    .get(&keys::log(room, seq))?
                    .filter(|_| seq <= head)
                    .ok_or(ErrorCode::NOT_FOUND)?;
                let author = UserId(entry.sender);
                let reason = format!("seq {seq}");
                audit(
                    txn,
                    moderator,
                    AuditAction::REVEAL_AUTHOR,
                    Some(room),
                    Some(author),
                    &reason,
                )?;
                Ok::<_, RequestError>(author)
            },
            |author| author,
        )
        .await?;
    Ok(vec![Author { room, seq, user: author }.into()])
}

/// What a new post or upload must pass beyond membership: the room's lock, slow mode, and in
/// a direct room the other side's block (spec §6.3, §6.8). Returns the room's settings, read
/// once for all of it, and the slow-mode slot the post takes (keep it once committed).
pub(super) fn check_may_post<'a>(
    ctx: &'a ConnCtx,
    room: RoomId,
    record: &RoomRecord,
    standing: &Standing,
) -> Result<(RoomSettings, Option<SlowModeSlot<'a>>)> {
    let user = ctx.authed()?.user;
    authorize(standing, Action::Post)?;
    check_direct_block(ctx, record, user)?;
    let settings = ctx.room_settings(room)?;
    let slot = take_slow_mode_slot(ctx, room, user, standing, settings.slow_mode_s)?;
    Ok((settings, slot))
}

/// In a direct room, nothing of the caller's reaches a user who blocks them: posts, edits,
/// reactions, typing, read markers (spec §6.8).
pub(super) fn check_direct_block(ctx: &ConnCtx, record: &RoomRecord, user: UserId) -> Result<()> {
    let other = record.direct_pair.map(|(a, b)| UserId(if a == user.0 { b } else { a }));
    if other.is_some_and(|other| ctx.shared.hub.blocks(other, user)) {
        return Err(RequestError::new(ErrorCode::FORBIDDEN, "cannot message this user"));
    }
    Ok(())
}

/// Slow mode: members below moderator post at most once per interval (spec §6.3). The slot
/// is taken when the post is admitted, so that parallel posts cannot all pass.
fn take_slow_mode_slot<'a>(
    ctx: &'a ConnCtx,
    room: RoomId,
    user: UserId,
    standing: &Standing,
    interval: u32,
) -> Result<Option<SlowModeSlot<'a>>> {
    if interval == 0 || standing.rank() >= Role::MODERATOR {
        return Ok(None);
    }
    let interval = Duration::from_secs(u64::from(interval));
    let slot =
        ctx.shared.slow_mode.reserve(room, user, interval, Instant::now()).map_err(|wait| {
            RequestError {
                code: ErrorCode::RATE_LIMITED,
                message: format!("slow mode: one post every {} s", interval.as_secs()),
                retry_after_ms: Some(wait),
            }
        })?;
    Ok(Some(slot))
}

/// Reads a POSTED entry and its state inside a commit. A post's state record is first
/// written by its first edit, delete or reaction (a post itself writes none: one record
/// fewer on the hot path); until then its state is the default one, by the entry's sender.
fn posted_in(txn: &Txn<'_>, room: RoomId, target: u64) -> Result<(LogEntry, MessageState)> {
    let not_found = || RequestError::new(ErrorCode::NOT_FOUND, "message not found");
    let entry: LogEntry = txn.get(&keys::log(room, target))?.ok_or_else(not_found)?;
    if !matches!(entry.kind, EntryKind::Posted { .. }) {
        return Err(not_found());
    }
    let state = txn
        .get::<MessageState>(&keys::message(room, target))?
        .unwrap_or_else(|| MessageState { author: entry.sender, ..MessageState::default() });
    if state.deleted_by.is_some() {
        return Err(not_found());
    }
    Ok((entry, state))
}

/// Runs a log-appending commit and fans the entry out after it.
async fn commit_entry(
    ctx: &ConnCtx,
    f: impl FnOnce(&mut Txn<'_>) -> Result<Option<Appended>> + Send + 'static,
) -> Result<Option<Appended>> {
    let shared = ctx.shared.clone();
    Ok(ctx
        .shared
        .store
        .write(f, move |appended: Option<Appended>| {
            if let Some(appended) = &appended {
                shared.fanout.committed(&shared, appended);
            }
            appended
        })
        .await?)
}

pub(super) async fn edit(ctx: &ConnCtx, r: Edit) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    check_message_text(ctx, &r.text)?;
    ctx.rate("edit")?;
    let (record, _) = ctx.authorize(r.room, Action::Post)?;
    check_direct_block(ctx, &record, user)?;
    let max_edits = ctx.shared.config.max_edits_per_message as usize;
    let appended = commit_entry(ctx, move |txn| {
        let room = r.room;
        authorize_in(txn, room, user, Action::Post)?;
        let (entry, mut state) = posted_in(txn, room, r.target)?;
        if entry.sender != user.0 {
            return Err(RequestError::new(ErrorCode::FORBIDDEN, "only the author may edit"));
        }
        // The message's record holds every edit's seq: bounded, so that its rewrite on the
        // single writer stays cheap.
        if state.edit_seqs.len() >= max_edits {
            return Err(RequestError::new(
                ErrorCode::LIMIT_EXCEEDED,
                format!("a message can be edited at most {max_edits} times"),
            ));
        }
        let mut record = room_in(txn, room)?;
        let body = r.text.into_string();
        let mut appended = append(
            txn,
            room,
            &mut record,
            user,
            EntryKind::Edited { target: r.target, text: body.clone() },
        );
        if txn.contains(&keys::anonymous(room, r.target))? {
            appended.mark_anonymous(txn);
        }
        state.edited = Some((appended.seq, appended.entry.ts, body));
        state.edit_seqs.push(appended.seq);
        txn.put(keys::message(room, r.target), &state);
        txn.put(keys::room(room), &record);
        Ok(Some(appended))
    })
    .await?;
    Ok(ack(&appended.expect("edits always append")))
}

pub(super) async fn delete(ctx: &ConnCtx, r: Delete) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    ctx.rate("edit")?;
    ctx.authorize(r.room, Action::Read)?;
    // What is at a seq never changes kind: a shared file is deleted its own way.
    if let Some(LogEntry { sender, kind: EntryKind::FileShared { size, sha256, .. }, .. }) =
        ctx.shared.store.get(&keys::log(r.room, r.target))?
    {
        return super::files::delete(ctx, r, UserId(sender), size, sha256).await;
    }
    let appended = commit_entry(ctx, move |txn| {
        let room = r.room;
        let (mut entry, mut state) = posted_in(txn, room, r.target)?;
        let author = UserId(entry.sender);
        // Another's message: the author's rank as kick and ban see it (server staff outrank
        // room moderators).
        let author_rank = (author != user).then(|| rank_in(txn, room, author)).transpose()?;
        let (mut record, _) =
            authorize_in(txn, room, user, Action::Delete { author: author_rank })?;
        let mut appended =
            append(txn, room, &mut record, user, EntryKind::Deleted { target: r.target });
        // The author deleting their own anonymous post stays anonymous; a moderator does not.
        if author == user && txn.contains(&keys::anonymous(room, r.target))? {
            appended.mark_anonymous(txn);
        }
        // Purge the content: the posted text and every edit's text (spec §6.4).
        if let EntryKind::Posted { text, .. } = &mut entry.kind {
            text.clear();
        }
        txn.put(keys::log(room, r.target), &entry);
        for seq in &state.edit_seqs {
            if let Some(mut edit) = txn.get::<LogEntry>(&keys::log(room, *seq))? {
                if let EntryKind::Edited { text, .. } = &mut edit.kind {
                    text.clear();
                }
                txn.put(keys::log(room, *seq), &edit);
            }
        }
        state.edited = state.edited.map(|(seq, ts, _)| (seq, ts, String::new()));
        state.deleted_by = Some(user.0);
        txn.put(keys::message(room, r.target), &state);
        txn.put(keys::room(room), &record);
        if author != user {
            audit(txn, user, AuditAction::DELETE_MESSAGE, Some(room), Some(author), "")?;
        }
        Ok(Some(appended))
    })
    .await?;
    Ok(ack(&appended.expect("deletes always append")))
}

pub(super) async fn react(ctx: &ConnCtx, r: React) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    if r.emoji.is_empty() {
        return Err(RequestError::new(ErrorCode::INVALID_REQUEST, "empty reaction"));
    }
    check_text("reaction", &r.emoji, false)?;
    ctx.rate("react")?;
    let (record, _) = ctx.authorize(r.room, Action::Post)?;
    check_direct_block(ctx, &record, user)?;
    let room = r.room;
    let max_reactions = ctx.shared.config.max_reactions_per_message as usize;
    let appended = commit_entry(ctx, move |txn| {
        authorize_in(txn, room, user, Action::Post)?;
        let (_, mut state) = posted_in(txn, room, r.target)?;
        let key = keys::reaction(room, r.target, user, &r.emoji);
        if txn.contains(&key)? == r.on {
            return Ok(None); // no change: nothing appended (spec §6.4 REACT)
        }
        let emoji = r.emoji.into_string();
        let new_kind = r.on && !state.reactions.iter().any(|(e, _)| *e == emoji);
        if new_kind && state.reactions.len() >= max_reactions {
            return Err(RequestError::new(
                ErrorCode::LIMIT_EXCEEDED,
                format!("a message takes at most {max_reactions} different reactions"),
            ));
        }
        match state.reactions.iter_mut().find(|(e, _)| *e == emoji) {
            Some((_, count)) if r.on => *count += 1,
            Some((_, count)) => *count = count.saturating_sub(1),
            None if r.on => state.reactions.push((emoji.clone(), 1)),
            None => {}
        }
        state.reactions.retain(|(_, count)| *count > 0);
        if r.on {
            txn.put(key, &())
        } else {
            txn.delete(key)
        }
        let mut record = room_in(txn, room)?;
        let appended = append(
            txn,
            room,
            &mut record,
            user,
            EntryKind::Reacted { target: r.target, emoji, on: r.on },
        );
        txn.put(keys::message(room, r.target), &state);
        txn.put(keys::room(room), &record);
        Ok(Some(appended))
    })
    .await?;
    Ok(match appended {
        Some(appended) => ack(&appended),
        None => {
            let head = ctx.shared.hub.head(room);
            vec![EventAck { room, seq: head, ts: wall_clock() }.into()]
        }
    })
}

fn page_limit(ctx: &ConnCtx, limit: u16) -> usize {
    (u64::from(limit).clamp(1, ctx.shared.config.max_history_page)) as usize
}

pub(super) fn history(ctx: &ConnCtx, r: History) -> Result<Vec<Message>> {
    let user = ctx.authed()?.user;
    ctx.rate("history")?;
    ctx.authorize(r.room, Action::Read)?;
    let room = r.room;
    // Never beyond what is durable and delivered.
    let head = ctx.shared.hub.head(room);
    let before = r.before.unwrap_or(u64::MAX).min(head + 1);
    let limit = page_limit(ctx, r.limit);
    let entries = ctx.shared.store.range::<LogEntry>(
        &keys::log(room, 1),
        &keys::log(room, before),
        true,
        limit,
    )?;
    let mut out = Vec::with_capacity(entries.len() + 1);
    let mut lowest = before;
    for (key, entry) in &entries {
        let seq = keys::id_at(key, 9);
        lowest = seq;
        match &entry.kind {
            EntryKind::Posted { reply_to, text: body, .. } => {
                let state: MessageState =
                    ctx.shared.store.get(&keys::message(room, seq))?.unwrap_or_default();
                let current = state.edited.as_ref().map_or(body.as_str(), |(_, _, t)| t.as_str());
                let mut reactions = Vec::new();
                for (emoji, count) in state.reactions.iter().take(List::<ReactionCount, 64>::MAX) {
                    let me = ctx.shared.store.contains(&keys::reaction(room, seq, user, emoji))?;
                    reactions.push(ReactionCount { emoji: text(emoji), count: *count, me });
                }
                let masked = entry.sender != user.0
                    && ctx.shared.store.contains(&keys::anonymous(room, seq))?;
                let author = UserId(entry.sender);
                let shown = |u: UserId| if masked && u == author { ANONYMOUS } else { u };
                out.push(
                    HistoryMessage {
                        meta: EventMeta {
                            room,
                            seq,
                            ts: Timestamp(entry.ts),
                            sender: shown(author),
                        },
                        reply_to: *reply_to,
                        text: text(current),
                        edited: state.edited.as_ref().map(|(seq, ts, _)| (*seq, Timestamp(*ts))),
                        deleted_by: state.deleted_by.map(|u| shown(UserId(u))),
                        reactions: List::new(reactions).expect("taken up to the limit"),
                    }
                    .into(),
                );
            }
            EntryKind::Membership { .. }
            | EntryKind::Topic { .. }
            | EntryKind::Configured { .. }
            | EntryKind::FileShared { .. } => {
                out.push(entry_frame(room, seq, entry, 0, false, false));
            }
            // Folded into the messages they change.
            EntryKind::Edited { .. } | EntryKind::Deleted { .. } | EntryKind::Reacted { .. } => {}
        }
    }
    let next = (entries.len() == limit && lowest > 1).then_some(lowest);
    out.push(PageEnd { room, next }.into());
    Ok(out)
}

pub(super) async fn catch_up(ctx: &ConnCtx, r: CatchUp) -> Result<Vec<Message>> {
    let authed = ctx.authed()?;
    ctx.rate("history")?;
    ctx.authorize(r.room, Action::Read)?;
    let (room, user) = (r.room, authed.user);
    let head = ctx.shared.hub.head(room);
    let limit = page_limit(ctx, r.limit);
    let start = r.after.saturating_add(1);
    let mut entries = if start <= head {
        ctx.shared.store.range::<LogEntry>(
            &keys::log(room, start),
            &keys::log(room, head + 1),
            false,
            limit,
        )?
    } else {
        Vec::new()
    };
    // The page may reach the head: short, or full up to the head read above. Whether it
    // does is settled in the writer, where no entry can commit between the read and the
    // unpause of a paused live push (spec §7.7): one entry more than fits is read to know.
    let at_head = entries.last().is_none_or(|(k, _)| keys::id_at(k, 9) >= head);
    let mut caught_up = false;
    if entries.len() < limit || at_head {
        let session = Arc::clone(&authed.session);
        let from = entries.last().map_or(start, |(k, _)| keys::id_at(k, 9) + 1);
        let room_end = keys::log(room, u64::MAX);
        let remaining = limit - entries.len();
        let (tail, reached) = ctx
            .shared
            .store
            .write(
                move |txn| {
                    let raw =
                        txn.durable_range(&keys::log(room, from), &room_end, remaining + 1)?;
                    let reached = raw.len() <= remaining;
                    if reached {
                        session.unpause(room);
                    }
                    Ok::<_, RequestError>((raw, reached))
                },
                |answer| answer,
            )
            .await?;
        caught_up = reached;
        for (key, value) in tail.into_iter().take(remaining) {
            entries.push((key.clone(), crate::store::decode(&key, &value)?));
        }
    }
    let mut out = Vec::with_capacity(entries.len() + 1);
    for (key, entry) in &entries {
        let seq = keys::id_at(key, 9);
        let own = entry.sender == user.0;
        let masked = !own && ctx.shared.store.contains(&keys::anonymous(room, seq))?;
        out.push(entry_frame(room, seq, entry, 0, own, masked));
    }
    // Next is absent exactly when the answer reaches the head (spec §6.4).
    let next = if caught_up { None } else { entries.last().map(|(k, _)| keys::id_at(k, 9)) };
    out.push(PageEnd { room, next }.into());
    Ok(out)
}

/// A MEMBERSHIP entry's content (joins, leaves, kicks, bans).
pub(crate) fn membership(
    user: UserId,
    username: &str,
    change: MembershipChange,
    reason: &str,
) -> EntryKind {
    EntryKind::Membership {
        user: user.0,
        username: username.to_owned(),
        change: membership_code(change),
        reason: reason.to_owned(),
    }
}

/// TOPIC_CHANGED entry.
pub(crate) fn topic_entry(
    txn: &mut Txn<'_>,
    room: RoomId,
    record: &mut RoomRecord,
    actor: UserId,
    topic: &str,
) -> Appended {
    record.topic = topic.to_owned();
    append(txn, room, record, actor, EntryKind::Topic { topic: topic.to_owned() })
}
