//! The local view of a session's state: rooms, their messages with edits, deletions and
//! reactions folded in, members, names, presence, typing, others' read markers, and who is in
//! voice and talking. Every
//! frontend (the TUI, the C library) reads this one view instead of re-implementing the
//! folding. It is plain data: feed it what the server sends ([`State::apply_entry`] and
//! friends) and read it back.

use std::collections::{BTreeMap, HashMap, HashSet};

use banter_protocol::ids::{RoomId, SourceId, UserId};
use banter_protocol::message::{
    EventMeta, FileShared, HistoryMessage, MembershipChange, Message, PresenceStatus,
    RoomConfigured, RoomKind, RoomSummary, TypingState, VoiceParticipant,
};

/// How long typing indicators live without a refresh (spec §6.5).
const TYPING_ACTIVE_MS: u64 = 6_000;
const TYPING_PAUSED_MS: u64 = 30_000;

/// What a line of a room is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A message.
    Message,
    /// A membership or topic change.
    Notice,
}

/// One reaction on a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    /// The emoji.
    pub emoji: String,
    /// How many users reacted with it.
    pub count: u32,
    /// Whether we did.
    pub mine: bool,
}

/// A message (or notice) as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageView {
    /// Its room_seq (the message's identity in the room).
    pub seq: u64,
    /// The author (for notices, who acted).
    pub sender: UserId,
    /// Server time, ms.
    pub ts: u64,
    /// The current text (empty when deleted).
    pub text: String,
    /// Message or notice.
    pub kind: EntryKind,
    /// The message replied to.
    pub reply_to: Option<u64>,
    /// Edited at least once.
    pub edited: bool,
    /// A tombstone.
    pub deleted: bool,
    /// Reactions in order of first use.
    pub reactions: Vec<Reaction>,
}

/// How far one of our own messages got (spec §6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Durable on the server.
    Sent,
    /// Another member's read marker has passed it.
    Read,
}

/// One room.
#[derive(Debug, Clone)]
pub struct RoomState {
    /// What the server said about the room.
    pub summary: RoomSummary,
    /// Loaded messages, oldest first.
    pub messages: Vec<MessageView>,
    /// Members (as far as loaded).
    pub members: Vec<UserId>,
    /// Whether the start of the log is loaded.
    pub complete: bool,
    /// Other members' public read markers.
    pub read_markers: HashMap<UserId, u64>,
}

/// What an applied entry changed, for the frontend's attention (unread counts, bells).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing a frontend needs to react to.
    Quiet,
    /// A new message.
    Message {
        /// The room.
        room: RoomId,
        /// Its seq.
        seq: u64,
        /// Its author.
        sender: UserId,
        /// It mentions us (`@name`).
        mention: bool,
    },
    /// An entry of a room we do not know yet (we were just added): load the room list.
    UnknownRoom(RoomId),
    /// We are no longer in this room.
    Removed(RoomId),
}

/// The whole view.
#[derive(Debug, Clone)]
pub struct State {
    /// Who we are.
    pub me: UserId,
    /// Rooms, sorted by category then name.
    pub rooms: Vec<RoomState>,
    /// Known user names.
    pub names: HashMap<UserId, String>,
    /// Others' presence.
    pub presence: HashMap<UserId, PresenceStatus>,
    /// (room, user) → until when (ms) they count as typing.
    pub typing: BTreeMap<(RoomId, UserId), u64>,
    /// Who is in each room's voice, by source (complete once we joined, from VOICE_JOINED's
    /// roster; otherwise as far as VOICE_STATE told).
    pub voice: HashMap<RoomId, BTreeMap<SourceId, VoiceParticipant>>,
    /// Sources talking now (server-authored SPEAKING, spec §8.3).
    pub speaking: HashSet<SourceId>,
    /// Our name and the highlight words, folded to lower case once (a view asks about every
    /// message it draws).
    mention_words: Vec<String>,
}

impl State {
    /// Whether `text` mentions us: our name (with or without `@`) or a highlight word, as a
    /// whole word, case-insensitively (`ada` in "hi Ada!" but not in "adamant").
    pub fn mentions_me(&self, text: &str) -> bool {
        text.to_lowercase()
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.'))
            .map(|word| word.trim_matches('.'))
            .any(|word| self.mention_words.iter().any(|w| w == word))
    }

    /// Words besides our name that count as a mention (case-insensitive).
    pub fn set_highlights(&mut self, words: &[String]) {
        let name = self.name(self.me);
        self.mention_words = std::iter::once(name.as_str())
            .chain(words.iter().map(String::as_str))
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
    }

    /// An empty view for `me`.
    pub fn new(me: UserId, my_name: &str) -> Self {
        Self {
            me,
            rooms: Vec::new(),
            // Sender 0 is an anonymous post's (spec §6.4.1).
            names: HashMap::from([(me, my_name.to_owned()), (UserId(0), "anonymous".to_owned())]),
            presence: HashMap::new(),
            typing: BTreeMap::new(),
            voice: HashMap::new(),
            speaking: HashSet::new(),
            mention_words: vec![my_name.to_lowercase()],
        }
    }

    /// A room's index in [`State::rooms`].
    pub fn index(&self, room: RoomId) -> Option<usize> {
        self.rooms.iter().position(|r| r.summary.room == room)
    }

    /// A room.
    pub fn room(&self, room: RoomId) -> Option<&RoomState> {
        self.rooms.iter().find(|r| r.summary.room == room)
    }

    fn room_mut(&mut self, room: RoomId) -> Option<&mut RoomState> {
        self.rooms.iter_mut().find(|r| r.summary.room == room)
    }

    /// A user's name (or `userN` while unknown).
    pub fn name(&self, user: UserId) -> String {
        self.names.get(&user).cloned().unwrap_or_else(|| format!("user{}", user.0))
    }

    /// Merges a room list; returns the rooms that are new (to load their history and members).
    pub fn apply_rooms(&mut self, summaries: Vec<RoomSummary>) -> Vec<RoomId> {
        let mut new = Vec::new();
        for summary in summaries {
            match self.room_mut(summary.room) {
                Some(room) => room.summary = summary,
                None => {
                    new.push(summary.room);
                    self.rooms.push(RoomState {
                        summary,
                        messages: Vec::new(),
                        members: Vec::new(),
                        complete: false,
                        read_markers: HashMap::new(),
                    });
                }
            }
        }
        // Channels by category, then direct conversations (as chat apps list them).
        self.rooms.sort_by_cached_key(|r| {
            let direct = r.summary.kind == RoomKind::Direct;
            (direct, r.summary.category.to_lowercase(), r.summary.name.to_lowercase())
        });
        new
    }

    /// Adds an older page of history (frames as HISTORY answers them, newest first).
    pub fn apply_history(&mut self, room: RoomId, page: &[Message], complete: bool) {
        let Some(target) = self.room_mut(room) else { return };
        let first_known = target.messages.first().map_or(u64::MAX, |m| m.seq);
        let mut merged: Vec<MessageView> =
            page.iter().rev().filter_map(history_view).filter(|m| m.seq < first_known).collect();
        merged.append(&mut target.messages);
        target.messages = merged;
        target.complete = complete;
    }

    /// Sets a room's members and learns their names.
    pub fn apply_members(&mut self, room: RoomId, members: Vec<(UserId, String)>) {
        if let Some(target) = self.room_mut(room) {
            target.members = members.iter().map(|(u, _)| *u).collect();
        }
        self.names.extend(members);
    }

    /// Applies a room log entry (live or caught up).
    pub fn apply_entry(&mut self, message: &Message) -> Change {
        let me = self.me;
        let Some(meta) =
            message.entry_meta().filter(|_| !matches!(message, Message::HistoryMessage(_)))
        else {
            return Change::Quiet;
        };
        let (room, seq) = (meta.room, meta.seq);
        if let Message::Membership(m) = message {
            self.names.insert(m.user, m.username.to_string());
            if m.user == me && m.change != MembershipChange::Joined {
                if let Some(index) = self.index(room) {
                    self.rooms.remove(index);
                }
                return Change::Removed(room);
            }
        }
        let sender_name = self.name(meta.sender);
        let mention = matches!(message, Message::Posted(m) if m.meta.sender != me && self.mentions_me(&m.text));
        let Some(target) = self.room_mut(room) else { return Change::UnknownRoom(room) };
        target.summary.last_seq = target.summary.last_seq.max(seq);
        let mut change = Change::Quiet;
        match message {
            Message::Posted(m) => {
                change = Change::Message { room, seq, sender: m.meta.sender, mention };
                target.messages.push(MessageView {
                    seq,
                    sender: m.meta.sender,
                    ts: m.meta.ts.0,
                    text: m.text.to_string(),
                    kind: EntryKind::Message,
                    reply_to: m.reply_to,
                    edited: false,
                    deleted: false,
                    reactions: Vec::new(),
                });
                self.typing.remove(&(room, m.meta.sender));
            }
            Message::Edited(m) => {
                if let Some(view) = target.messages.iter_mut().find(|v| v.seq == m.target) {
                    view.text = m.text.to_string();
                    view.edited = true;
                }
            }
            Message::Deleted(m) => {
                if let Some(view) = target.messages.iter_mut().find(|v| v.seq == m.target) {
                    view.text.clear();
                    view.deleted = true;
                }
            }
            Message::Reacted(m) => {
                if let Some(view) = target.messages.iter_mut().find(|v| v.seq == m.target) {
                    react(view, &m.emoji, m.on, m.meta.sender == me);
                }
            }
            Message::Membership(m) => {
                if m.change == MembershipChange::Joined {
                    if !target.members.contains(&m.user) {
                        target.members.push(m.user);
                    }
                } else {
                    target.members.retain(|u| *u != m.user);
                }
                target
                    .messages
                    .push(notice(&m.meta, membership_text(&m.username, m.change, &m.reason)));
            }
            Message::TopicChanged(m) => {
                target.summary.topic = m.topic.clone();
                target
                    .messages
                    .push(notice(&m.meta, format!("{sender_name} set the topic: {}", m.topic)));
            }
            Message::FileShared(m) => {
                target.messages.push(notice(&m.meta, format!("{sender_name} {}", file_text(m))));
            }
            Message::RoomConfigured(m) => {
                target.summary.slow_mode_s = m.slow_mode_s;
                target.summary.locked = m.locked;
                target.summary.anonymous = m.anonymous;
                target.summary.stage = m.stage;
                let settings = room_settings_text(m);
                target.messages.push(notice(&m.meta, format!("{sender_name} set {settings}")));
            }
            _ => {}
        }
        change
    }

    /// Applies soft state at time `now_ms` (and the roster of a VOICE_JOINED answer).
    pub fn apply_ephemeral(&mut self, message: &Message, now_ms: u64) {
        match message {
            Message::Presence(p) => {
                self.presence.insert(p.user, p.status);
            }
            Message::Typing(t) => {
                let ttl = match t.state {
                    TypingState::Active => TYPING_ACTIVE_MS,
                    TypingState::Paused => TYPING_PAUSED_MS,
                    TypingState::Stopped => 0,
                };
                if ttl == 0 {
                    self.typing.remove(&(t.room, t.user));
                } else {
                    self.typing.insert((t.room, t.user), now_ms + ttl);
                }
            }
            Message::VoiceJoined(joined) => {
                let roster = joined.roster.iter().map(|p| (p.source, p.clone())).collect();
                self.voice.insert(joined.room, roster);
            }
            Message::VoiceStateChanged(change) => {
                let source = change.participant.source;
                let roster = self.voice.entry(change.room).or_default();
                if change.present {
                    roster.insert(source, change.participant.clone());
                } else {
                    roster.remove(&source);
                    self.speaking.remove(&source);
                    if roster.is_empty() {
                        self.voice.remove(&change.room);
                    }
                }
            }
            Message::Speaking(talk) if talk.on => {
                self.speaking.insert(talk.source);
            }
            Message::Speaking(talk) => {
                self.speaking.remove(&talk.source);
            }
            Message::ReadUpTo(r) => {
                let me = self.me;
                if let Some(room) = self.room_mut(r.room) {
                    if r.user == me {
                        room.summary.read_seq = room.summary.read_seq.max(r.seq);
                    } else {
                        let marker = room.read_markers.entry(r.user).or_default();
                        *marker = (*marker).max(r.seq);
                    }
                }
            }
            _ => {}
        }
    }

    /// Who is in `room`'s voice, each with whether they are talking now.
    pub fn voice_roster(&self, room: RoomId) -> Vec<(&VoiceParticipant, bool)> {
        let Some(roster) = self.voice.get(&room) else { return Vec::new() };
        roster.values().map(|p| (p, self.speaking.contains(&p.source))).collect()
    }

    /// We left `room`'s voice: what we knew of it may go stale, so forget it.
    pub fn left_voice(&mut self, room: RoomId) {
        if let Some(roster) = self.voice.remove(&room) {
            for source in roster.keys() {
                self.speaking.remove(source);
            }
        }
    }

    /// A connection went live ([`ConnectionState::Connected`](crate::ConnectionState)): the
    /// soft state held from before is stale. The server now sends presence afresh, naming
    /// only who is not offline (spec §7.3), so presence, typing and who is talking are
    /// forgotten; anyone not named again is offline.
    pub fn reconnected(&mut self) {
        self.presence.clear();
        self.typing.clear();
        self.speaking.clear();
    }

    /// Drops typing indicators that expired by `now_ms`.
    pub fn expire(&mut self, now_ms: u64) {
        self.typing.retain(|_, until| *until > now_ms);
    }

    /// Who (other than us) is typing in a room at `now_ms`.
    pub fn typists(&self, room: RoomId, now_ms: u64) -> Vec<UserId> {
        self.typing
            .iter()
            .filter(|((r, u), until)| *r == room && *u != self.me && **until > now_ms)
            .map(|((_, u), _)| *u)
            .collect()
    }

    /// How far one of our messages got.
    pub fn delivery(&self, room: RoomId, seq: u64) -> Delivery {
        match self.room(room) {
            Some(r) if r.read_markers.values().any(|read| *read >= seq) => Delivery::Read,
            _ => Delivery::Sent,
        }
    }

    /// Messages of others after `read` in a room.
    pub fn unread_after(&self, room: RoomId, read: u64) -> u64 {
        self.room(room).map_or(0, |r| {
            r.messages
                .iter()
                .filter(|m| m.seq > read && m.sender != self.me && m.kind == EntryKind::Message)
                .count() as u64
        })
    }
}

fn notice(meta: &EventMeta, text: String) -> MessageView {
    MessageView {
        seq: meta.seq,
        sender: meta.sender,
        ts: meta.ts.0,
        text,
        kind: EntryKind::Notice,
        reply_to: None,
        edited: false,
        deleted: false,
        reactions: Vec::new(),
    }
}

/// A shared file in words: "shared report.pdf (1.2 MB), /download 42".
fn file_text(file: &FileShared) -> String {
    let size = match file.size {
        s if s >= 1 << 20 => format!("{:.1} MB", s as f64 / f64::from(1 << 20)),
        s if s >= 1 << 10 => format!("{:.1} kB", s as f64 / f64::from(1 << 10)),
        s => format!("{s} bytes"),
    };
    format!("shared {} ({size}), /download {}", file.name, file.meta.seq)
}

/// A room's settings in words: "slow mode 30 s, locked, anonymous posts allowed".
pub fn room_settings_text(settings: &RoomConfigured) -> String {
    let slow = match settings.slow_mode_s {
        0 => "no slow mode".to_owned(),
        s => format!("slow mode {s} s"),
    };
    let locked = if settings.locked { "locked" } else { "unlocked" };
    let anonymous =
        if settings.anonymous { "anonymous posts allowed" } else { "no anonymous posts" };
    let stage = if settings.stage { ", stage" } else { "" };
    format!("{slow}, {locked}, {anonymous}{stage}")
}

fn membership_text(name: &str, change: MembershipChange, reason: &str) -> String {
    let verb = match change {
        MembershipChange::Joined => "joined",
        MembershipChange::Left => "left",
        MembershipChange::Kicked => "was kicked",
        MembershipChange::Banned => "was banned",
        MembershipChange::Unbanned => "was unbanned",
    };
    if reason.is_empty() { format!("{name} {verb}") } else { format!("{name} {verb} ({reason})") }
}

/// REACTED is sent only when something changed, so counts move by exactly one.
fn react(view: &mut MessageView, emoji: &str, on: bool, mine: bool) {
    match view.reactions.iter_mut().find(|r| r.emoji == emoji) {
        Some(reaction) => {
            reaction.count = if on { reaction.count + 1 } else { reaction.count.saturating_sub(1) };
            if mine {
                reaction.mine = on;
            }
        }
        None if on => view.reactions.push(Reaction { emoji: emoji.to_owned(), count: 1, mine }),
        None => {}
    }
    view.reactions.retain(|r| r.count > 0);
}

fn history_view(message: &Message) -> Option<MessageView> {
    match message {
        Message::HistoryMessage(HistoryMessage {
            meta,
            reply_to,
            text,
            edited,
            deleted_by,
            reactions,
        }) => Some(MessageView {
            seq: meta.seq,
            sender: meta.sender,
            ts: meta.ts.0,
            text: text.to_string(),
            kind: EntryKind::Message,
            reply_to: *reply_to,
            edited: edited.is_some(),
            deleted: deleted_by.is_some(),
            reactions: reactions
                .iter()
                .map(|r| Reaction { emoji: r.emoji.to_string(), count: r.count, mine: r.me })
                .collect(),
        }),
        Message::Membership(m) => {
            Some(notice(&m.meta, membership_text(&m.username, m.change, &m.reason)))
        }
        Message::TopicChanged(m) => Some(notice(&m.meta, format!("topic: {}", m.topic))),
        Message::RoomConfigured(m) => Some(notice(&m.meta, room_settings_text(m))),
        Message::FileShared(m) => Some(notice(&m.meta, file_text(m))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use banter_protocol::bounded::{List, Text};
    use banter_protocol::ids::Timestamp;
    use banter_protocol::message::{
        Deleted, Edited, Posted, Reacted, ReactionCount, ReadUpTo, RoomConfigured, RoomKind,
        Visibility,
    };

    use super::*;

    const ME: UserId = UserId(1);
    const ADA: UserId = UserId(2);
    const ROOM: RoomId = RoomId(7);

    fn meta(seq: u64, sender: UserId) -> EventMeta {
        EventMeta { room: ROOM, seq, ts: Timestamp(seq), sender }
    }

    fn state() -> State {
        let mut state = State::new(ME, "me");
        state.apply_rooms(vec![RoomSummary {
            room: ROOM,
            kind: RoomKind::Channel,
            name: Text::new("general").unwrap(),
            topic: Text::default(),
            category: Text::default(),
            visibility: Visibility::Public,
            voice: false,
            members: 2,
            last_seq: 0,
            joined: true,
            read_seq: 0,
            role: banter_protocol::message::Role::MEMBER,
            slow_mode_s: 0,
            locked: false,
            anonymous: false,
            stage: false,
        }]);
        state
    }

    #[test]
    fn room_settings_update_the_summary_and_leave_a_notice() {
        let mut state = state();
        let configured = RoomConfigured {
            event_seq: 1,
            meta: meta(1, UserId(9)),
            slow_mode_s: 30,
            locked: true,
            anonymous: true,
            stage: false,
        };
        state.apply_entry(&configured.clone().into());
        let room = &state.rooms[0];
        assert_eq!(
            (room.summary.slow_mode_s, room.summary.locked, room.summary.anonymous),
            (30, true, true)
        );
        assert!(
            room.messages[0].text.ends_with("set slow mode 30 s, locked, anonymous posts allowed")
        );
        let off = RoomConfigured { slow_mode_s: 0, locked: false, anonymous: false, ..configured };
        assert_eq!(room_settings_text(&off), "no slow mode, unlocked, no anonymous posts");
    }

    #[test]
    fn live_entries_fold_over_history_exactly() {
        let mut state = state();
        let history = HistoryMessage {
            meta: meta(3, ADA),
            reply_to: None,
            text: Text::new("hello @me").unwrap(),
            edited: None,
            deleted_by: None,
            reactions: List::new(vec![ReactionCount {
                emoji: Text::new("👍").unwrap(),
                count: 2,
                me: false,
            }])
            .unwrap(),
        };
        state.apply_history(ROOM, &[history.into()], true);
        let react = |on, sender| {
            Message::from(Reacted {
                event_seq: 0,
                meta: meta(10, sender),
                target: 3,
                emoji: Text::new("👍").unwrap(),
                on,
            })
        };
        state.apply_entry(&react(true, ME));
        state.apply_entry(&react(false, ADA));
        let reaction = &state.room(ROOM).unwrap().messages[0].reactions[0];
        assert_eq!((reaction.count, reaction.mine), (2, true));
        state.apply_entry(
            &Edited {
                event_seq: 0,
                meta: meta(11, ADA),
                target: 3,
                text: Text::new("edited").unwrap(),
            }
            .into(),
        );
        assert!(state.room(ROOM).unwrap().messages[0].edited);
        state.apply_entry(&Deleted { event_seq: 0, meta: meta(12, ADA), target: 3 }.into());
        let view = &state.room(ROOM).unwrap().messages[0];
        assert!(view.deleted && view.text.is_empty());
    }

    #[test]
    fn a_mention_is_our_name_or_a_highlight_word_as_a_whole_word() {
        let mut state = state();
        let name = state.name(ME);
        assert!(state.mentions_me(&format!("hi @{name}")));
        assert!(state.mentions_me(&format!("{}: lunch?", name.to_uppercase())));
        assert!(!state.mentions_me(&format!("{name}ish is not a name")));
        assert!(!state.mentions_me("deploy done"));
        state.set_highlights(&["Deploy".into()]);
        assert!(state.mentions_me("deploy done."));
        assert!(!state.mentions_me("redeploy done"));
    }

    #[test]
    fn mentions_delivery_and_unknown_rooms_are_reported() {
        let mut state = state();
        let posted = |seq, sender, text: &str| -> Message {
            Posted {
                event_seq: 0,
                meta: meta(seq, sender),
                client_msg_id: None,
                reply_to: None,
                text: Text::new(text).unwrap(),
            }
            .into()
        };
        assert_eq!(
            state.apply_entry(&posted(1, ADA, "hi @Me")),
            Change::Message { room: ROOM, seq: 1, sender: ADA, mention: true }
        );
        state.apply_entry(&posted(2, ME, "mine"));
        assert_eq!(state.delivery(ROOM, 2), Delivery::Sent);
        state.apply_ephemeral(&ReadUpTo { room: ROOM, user: ADA, seq: 2 }.into(), 0);
        assert_eq!(state.delivery(ROOM, 2), Delivery::Read);
        assert_eq!(state.unread_after(ROOM, 0), 1);
        let elsewhere = Posted {
            event_seq: 0,
            meta: EventMeta { room: RoomId(99), seq: 1, ts: Timestamp(0), sender: ADA },
            client_msg_id: None,
            reply_to: None,
            text: Text::new("x").unwrap(),
        };
        assert_eq!(state.apply_entry(&elsewhere.into()), Change::UnknownRoom(RoomId(99)));
    }

    #[test]
    fn the_voice_roster_follows_voice_state_and_speaking() {
        use banter_protocol::message::{Speaking, VoiceStateChanged};
        let mut state = state();
        let participant = |user: UserId, source: u32| VoiceParticipant {
            user,
            source: SourceId(source),
            state: banter_protocol::message::VoiceState {
                self_mute: false,
                self_deaf: false,
                server_mute: false,
                suppressed: false,
                requested_to_speak: None,
            },
        };
        let change = |p: VoiceParticipant, present: bool| -> Message {
            VoiceStateChanged { room: ROOM, participant: p, present, actor: ADA }.into()
        };
        state.apply_ephemeral(&change(participant(ME, 1), true), 0);
        state.apply_ephemeral(&change(participant(ADA, 2), true), 0);
        let talk = |on| -> Message { Speaking { room: ROOM, source: SourceId(2), on }.into() };
        state.apply_ephemeral(&talk(true), 0);
        let roster: Vec<_> = state.voice_roster(ROOM).iter().map(|(p, t)| (p.user, *t)).collect();
        assert_eq!(roster, [(ME, false), (ADA, true)]);
        state.apply_ephemeral(&talk(false), 0);
        assert!(state.voice_roster(ROOM).iter().all(|(_, talking)| !talking));
        // Ada talks, then leaves mid-sentence: gone, and no longer talking.
        state.apply_ephemeral(&talk(true), 0);
        state.apply_ephemeral(&change(participant(ADA, 2), false), 0);
        assert_eq!(state.voice_roster(ROOM).len(), 1);
        assert!(state.speaking.is_empty());
        state.left_voice(ROOM);
        assert!(state.voice_roster(ROOM).is_empty());
    }
}
