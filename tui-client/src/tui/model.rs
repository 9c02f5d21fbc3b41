//! The TUI's state and its pure `update` (ratatui's TEA shape): `update(&mut Model, Action)`
//! changes state and returns the [`Command`]s to run; it does no I/O, so every key and every
//! network event is testable without a terminal or a server.

use std::collections::{BTreeMap, HashMap};

use banter_client::ConnectionState;
use banter_protocol::ids::{RoomId, UserId};
use banter_protocol::message::{
    HistoryMessage, MembershipChange, Message, PresenceStatus, RoomSummary, TypingState,
};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// How long a typing indicator lives without a refresh (spec §6.5: Active 6 s, Paused 30 s).
const TYPING_ACTIVE_MS: u64 = 6_000;
const TYPING_PAUSED_MS: u64 = 30_000;

/// One message as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) seq: u64,
    pub(crate) sender: UserId,
    pub(crate) ts: u64,
    pub(crate) text: String,
    pub(crate) kind: LineKind,
    pub(crate) reply_to: Option<u64>,
    pub(crate) edited: bool,
    pub(crate) deleted: bool,
    /// (emoji, users) in order of first use.
    pub(crate) reactions: Vec<(String, Vec<UserId>)>,
}

/// What a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineKind {
    Message,
    /// A membership or topic change, shown as a notice.
    Notice,
}

/// A room in the list.
#[derive(Debug, Clone)]
pub(crate) struct Room {
    pub(crate) summary: RoomSummary,
    pub(crate) lines: Vec<Line>,
    /// Messages of others with seq above the read marker.
    pub(crate) unread: u64,
    pub(crate) mentions: u64,
    pub(crate) members: Vec<UserId>,
    /// Whether the start of the log has been loaded.
    pub(crate) complete: bool,
    /// The read marker when the room was opened (the "new messages" line).
    pub(crate) marker: u64,
}

/// The input line.
#[derive(Debug, Clone, Default)]
pub(crate) struct Input {
    pub(crate) text: String,
    /// Cursor as a char index.
    pub(crate) cursor: usize,
    history: Vec<String>,
    recalled: Option<usize>,
}

/// Everything the screen shows.
#[derive(Debug)]
pub(crate) struct Model {
    pub(crate) me: UserId,
    pub(crate) my_name: String,
    pub(crate) server: String,
    pub(crate) rooms: Vec<Room>,
    pub(crate) current: usize,
    pub(crate) names: HashMap<UserId, String>,
    pub(crate) presence: HashMap<UserId, PresenceStatus>,
    pub(crate) typing: BTreeMap<(RoomId, UserId), u64>,
    pub(crate) input: Input,
    pub(crate) connection: ConnectionState,
    pub(crate) status: Option<String>,
    /// Lines scrolled up from the bottom.
    pub(crate) scroll: usize,
    pub(crate) now_ms: u64,
    pub(crate) quit: bool,
    /// Ring the terminal bell on the next draw (a mention arrived).
    pub(crate) bell: bool,
    /// Pending own messages: client message id → (room, text), shown until acked.
    pub(crate) pending: Vec<(u128, RoomId, String)>,
}

/// Everything that can happen.
#[derive(Debug)]
pub(crate) enum Action {
    Key(KeyEvent),
    Paste(String),
    Tick(u64),
    Connection(ConnectionState),
    /// A live (or caught-up) log entry.
    Entry(Message),
    /// Soft state.
    Ephemeral(Message),
    RoomsLoaded(Vec<RoomSummary>),
    /// A history page for a room: messages newest first, and whether the log start was reached.
    HistoryLoaded {
        room: RoomId,
        page: Vec<Message>,
        complete: bool,
    },
    MembersLoaded {
        room: RoomId,
        members: Vec<(UserId, String)>,
    },
    Queued {
        client_msg_id: u128,
        room: RoomId,
        text: String,
    },
    Sent {
        client_msg_id: u128,
    },
    Failed(String),
}

/// Work for the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Send { room: RoomId, text: String, reply_to: Option<u64> },
    Join(String),
    Leave(RoomId),
    Topic(RoomId, String),
    Dm(String),
    React { room: RoomId, target: u64, emoji: String },
    Edit { room: RoomId, target: u64, text: String },
    Delete { room: RoomId, target: u64 },
    Presence(PresenceStatus, String),
    Typing(RoomId, TypingState),
    History { room: RoomId, before: Option<u64> },
    Members(RoomId),
    MarkRead(RoomId, u64),
    ReloadRooms,
    Quit,
}

pub(crate) const COMMANDS: &[&str] = &[
    "/away", "/back", "/delete", "/dm", "/edit", "/help", "/join", "/leave", "/me", "/quit",
    "/react", "/reply", "/topic",
];

const HELP: &str = "/join ROOM  /leave  /dm USER  /topic TEXT  /me ACTION  /reply SEQ TEXT  /react SEQ EMOJI  \
/edit SEQ TEXT  /delete SEQ  /away [TEXT]  /back  /quit   keys: Alt+N room N, Ctrl+N/P next/prev, \
PgUp/PgDn scroll, Alt+Enter newline, Tab complete";

impl Model {
    pub(crate) fn new(me: UserId, my_name: &str, server: &str) -> Self {
        let mut names = HashMap::new();
        names.insert(me, my_name.to_owned());
        Self {
            me,
            my_name: my_name.to_owned(),
            server: server.to_owned(),
            rooms: Vec::new(),
            current: 0,
            names,
            presence: HashMap::new(),
            typing: BTreeMap::new(),
            input: Input::default(),
            connection: ConnectionState::Connecting { attempt: 0 },
            status: None,
            scroll: 0,
            now_ms: 0,
            quit: false,
            bell: false,
            pending: Vec::new(),
        }
    }

    pub(crate) fn current_room(&self) -> Option<&Room> {
        self.rooms.get(self.current)
    }

    fn room_index(&self, room: RoomId) -> Option<usize> {
        self.rooms.iter().position(|r| r.summary.room == room)
    }

    pub(crate) fn name(&self, user: UserId) -> String {
        self.names.get(&user).cloned().unwrap_or_else(|| format!("user{}", user.0))
    }

    /// Who is typing in the current room now.
    pub(crate) fn typists(&self) -> Vec<String> {
        let Some(room) = self.current_room().map(|r| r.summary.room) else { return Vec::new() };
        self.typing
            .iter()
            .filter(|((r, u), until)| *r == room && *u != self.me && **until > self.now_ms)
            .map(|((_, u), _)| self.name(*u))
            .collect()
    }

    fn sort_rooms(&mut self) {
        let current = self.current_room().map(|r| r.summary.room);
        self.rooms.sort_by(|a, b| {
            (a.summary.category.to_lowercase(), a.summary.name.to_lowercase())
                .cmp(&(b.summary.category.to_lowercase(), b.summary.name.to_lowercase()))
        });
        if let Some(index) = current.and_then(|room| self.room_index(room)) {
            self.current = index;
        }
    }

    fn select(&mut self, index: usize, commands: &mut Vec<Command>) {
        if index >= self.rooms.len() {
            return;
        }
        self.current = index;
        self.scroll = 0;
        let room = &mut self.rooms[index];
        room.marker = room.summary.read_seq;
        if let Some(last) = room.lines.last().map(|l| l.seq) {
            if room.unread > 0 || room.summary.read_seq < last {
                commands.push(Command::MarkRead(room.summary.room, last));
            }
        }
        room.unread = 0;
        room.mentions = 0;
        room.summary.read_seq = room.lines.last().map_or(room.summary.read_seq, |l| l.seq);
    }
}

/// Applies an action; returns what the runtime must do.
pub(crate) fn update(model: &mut Model, action: Action) -> Vec<Command> {
    let mut commands = Vec::new();
    match action {
        Action::Key(key) => on_key(model, key, &mut commands),
        Action::Paste(text) => {
            for c in text.chars().filter(|c| *c == '\n' || !c.is_control()) {
                insert(&mut model.input, c);
            }
        }
        Action::Tick(now) => {
            model.now_ms = now;
            model.typing.retain(|_, until| *until > now);
        }
        Action::Connection(state) => {
            if state == ConnectionState::Connected && model.connection != ConnectionState::Connected
            {
                commands.push(Command::ReloadRooms);
            }
            model.connection = state;
        }
        Action::Entry(message) => on_entry(model, message, &mut commands),
        Action::Ephemeral(message) => on_ephemeral(model, message),
        Action::RoomsLoaded(summaries) => {
            for summary in summaries {
                match model.room_index(summary.room) {
                    // Known room: fresher metadata; lines and counts stay.
                    Some(i) => model.rooms[i].summary = summary,
                    None => {
                        commands.push(Command::History { room: summary.room, before: None });
                        commands.push(Command::Members(summary.room));
                        model.rooms.push(Room {
                            unread: 0,
                            mentions: 0,
                            marker: summary.read_seq,
                            summary,
                            lines: Vec::new(),
                            members: Vec::new(),
                            complete: false,
                        });
                    }
                }
            }
            model.sort_rooms();
        }
        Action::HistoryLoaded { room, page, complete } => {
            let me = model.me;
            let Some(index) = model.room_index(room) else { return commands };
            let target = &mut model.rooms[index];
            let first_known = target.lines.first().map_or(u64::MAX, |l| l.seq);
            let mut merged: Vec<Line> = page
                .iter()
                .rev()
                .filter_map(|m| history_line(m, me))
                .filter(|l| l.seq < first_known)
                .collect();
            merged.append(&mut target.lines);
            target.lines = merged;
            target.complete = complete;
            if index != model.current {
                let read = target.summary.read_seq;
                target.unread = target
                    .lines
                    .iter()
                    .filter(|l| l.seq > read && l.sender != me && l.kind == LineKind::Message)
                    .count() as u64;
            }
        }
        Action::MembersLoaded { room, members } => {
            if let Some(index) = model.room_index(room) {
                model.rooms[index].members = members.iter().map(|(u, _)| *u).collect();
            }
            for (user, name) in members {
                model.names.insert(user, name);
            }
        }
        Action::Queued { client_msg_id, room, text } => {
            model.pending.push((client_msg_id, room, text))
        }
        Action::Sent { client_msg_id } => model.pending.retain(|(id, _, _)| *id != client_msg_id),
        Action::Failed(error) => model.status = Some(error),
    }
    commands
}

fn on_entry(model: &mut Model, message: Message, commands: &mut Vec<Command>) {
    let me = model.me;
    let my_name = model.my_name.to_lowercase();
    let (room, seq) = match &message {
        Message::Posted(m) => (m.meta.room, m.meta.seq),
        Message::Edited(m) => (m.meta.room, m.meta.seq),
        Message::Deleted(m) => (m.meta.room, m.meta.seq),
        Message::Reacted(m) => (m.meta.room, m.meta.seq),
        Message::Membership(m) => (m.meta.room, m.meta.seq),
        Message::TopicChanged(m) => (m.meta.room, m.meta.seq),
        _ => return,
    };
    if let Message::Membership(m) = &message {
        model.names.insert(m.user, m.username.to_string());
        if m.user == me && m.change != MembershipChange::Joined {
            // We are out of this room.
            if let Some(index) = model.room_index(room) {
                model.rooms.remove(index);
                model.current = model.current.min(model.rooms.len().saturating_sub(1));
            }
            return;
        }
    }
    let Some(index) = model.room_index(room) else {
        // A room we just joined (or were added to): load it.
        commands.push(Command::ReloadRooms);
        return;
    };
    let is_current = index == model.current;
    let target = &mut model.rooms[index];
    target.summary.last_seq = target.summary.last_seq.max(seq);
    match message {
        Message::Posted(m) => {
            model.typing.remove(&(room, m.meta.sender));
            let mention =
                m.meta.sender != me && m.text.to_lowercase().contains(&format!("@{my_name}"));
            target.lines.push(Line {
                seq,
                sender: m.meta.sender,
                ts: m.meta.ts.0,
                text: m.text.to_string(),
                kind: LineKind::Message,
                reply_to: m.reply_to,
                edited: false,
                deleted: false,
                reactions: Vec::new(),
            });
            if let Some(id) = m.client_msg_id {
                model.pending.retain(|(pending, _, _)| *pending != id);
            }
            if m.meta.sender != me {
                if is_current {
                    commands.push(Command::MarkRead(room, seq));
                    target.summary.read_seq = seq;
                } else {
                    target.unread += 1;
                    if mention {
                        target.mentions += 1;
                    }
                }
                if mention {
                    model.bell = true;
                }
            }
        }
        Message::Edited(m) => {
            if let Some(line) = target.lines.iter_mut().find(|l| l.seq == m.target) {
                line.text = m.text.to_string();
                line.edited = true;
            }
        }
        Message::Deleted(m) => {
            if let Some(line) = target.lines.iter_mut().find(|l| l.seq == m.target) {
                line.text.clear();
                line.deleted = true;
            }
        }
        Message::Reacted(m) => {
            if let Some(line) = target.lines.iter_mut().find(|l| l.seq == m.target) {
                react(line, m.meta.sender, &m.emoji, m.on);
            }
        }
        Message::Membership(m) => {
            match m.change {
                MembershipChange::Joined => {
                    if !target.members.contains(&m.user) {
                        target.members.push(m.user);
                    }
                }
                _ => target.members.retain(|u| *u != m.user),
            }
            target.lines.push(notice(
                seq,
                &m.meta,
                membership_text(&m.username, m.change, &m.reason),
            ));
        }
        Message::TopicChanged(m) => {
            target.summary.topic = m.topic.clone();
            let text = format!(
                "{} set the topic: {}",
                model.names.get(&m.meta.sender).cloned().unwrap_or_default(),
                m.topic
            );
            target.lines.push(notice(seq, &m.meta, text));
        }
        _ => {}
    }
}

fn notice(seq: u64, meta: &banter_protocol::message::EventMeta, text: String) -> Line {
    Line {
        seq,
        sender: meta.sender,
        ts: meta.ts.0,
        text,
        kind: LineKind::Notice,
        reply_to: None,
        edited: false,
        deleted: false,
        reactions: Vec::new(),
    }
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

fn react(line: &mut Line, user: UserId, emoji: &str, on: bool) {
    match line.reactions.iter_mut().find(|(e, _)| e == emoji) {
        Some((_, users)) => {
            users.retain(|u| *u != user);
            if on {
                users.push(user);
            }
        }
        None if on => line.reactions.push((emoji.to_owned(), vec![user])),
        None => {}
    }
    line.reactions.retain(|(_, users)| !users.is_empty());
}

/// A history frame as a line (reaction counts become anonymous placeholders, except "me").
fn history_line(message: &Message, me: UserId) -> Option<Line> {
    match message {
        Message::HistoryMessage(HistoryMessage {
            meta,
            reply_to,
            text,
            edited,
            deleted_by,
            reactions,
        }) => Some(Line {
            seq: meta.seq,
            sender: meta.sender,
            ts: meta.ts.0,
            text: text.to_string(),
            kind: LineKind::Message,
            reply_to: *reply_to,
            edited: edited.is_some(),
            deleted: deleted_by.is_some(),
            reactions: reactions
                .iter()
                .map(|r| {
                    // Counts come without names; stand-in ids keep the count, and the caller's
                    // own reaction stays removable.
                    let mut users: Vec<UserId> = (0..r.count.saturating_sub(u32::from(r.me)))
                        .map(|i| UserId(u64::MAX - u64::from(i)))
                        .collect();
                    if r.me {
                        users.push(me);
                    }
                    (r.emoji.to_string(), users)
                })
                .collect(),
        }),
        Message::Membership(m) => {
            Some(notice(m.meta.seq, &m.meta, membership_text(&m.username, m.change, &m.reason)))
        }
        Message::TopicChanged(m) => {
            Some(notice(m.meta.seq, &m.meta, format!("topic: {}", m.topic)))
        }
        _ => None,
    }
}

fn on_ephemeral(model: &mut Model, message: Message) {
    match message {
        Message::Presence(p) => {
            model.presence.insert(p.user, p.status);
        }
        Message::Typing(t) => {
            let ttl = match t.state {
                TypingState::Active => TYPING_ACTIVE_MS,
                TypingState::Paused => TYPING_PAUSED_MS,
                TypingState::Stopped => 0,
            };
            if ttl == 0 {
                model.typing.remove(&(t.room, t.user));
            } else {
                model.typing.insert((t.room, t.user), model.now_ms + ttl);
            }
        }
        Message::ReadUpTo(r) if r.user == model.me => {
            if let Some(index) = model.room_index(r.room) {
                let room = &mut model.rooms[index];
                room.summary.read_seq = room.summary.read_seq.max(r.seq);
                let read = room.summary.read_seq;
                let me = model.me;
                room.unread = room
                    .lines
                    .iter()
                    .filter(|l| l.seq > read && l.sender != me && l.kind == LineKind::Message)
                    .count() as u64;
            }
        }
        _ => {}
    }
}

fn insert(input: &mut Input, c: char) {
    let at = byte_index(&input.text, input.cursor);
    input.text.insert(at, c);
    input.cursor += 1;
}

fn byte_index(text: &str, chars: usize) -> usize {
    text.char_indices().nth(chars).map_or(text.len(), |(i, _)| i)
}

fn on_key(model: &mut Model, key: KeyEvent, commands: &mut Vec<Command>) {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    model.status = None;
    match key.code {
        KeyCode::Char('c') | KeyCode::Char('d') if ctrl => {
            model.quit = true;
            commands.push(Command::Quit);
        }
        KeyCode::Char('n') if ctrl => {
            let next = (model.current + 1) % model.rooms.len().max(1);
            model.select(next, commands);
        }
        KeyCode::Char('p') if ctrl => {
            let count = model.rooms.len().max(1);
            model.select((model.current + count - 1) % count, commands);
        }
        KeyCode::Char(c @ '1'..='9') if alt => {
            model.select(c as usize - '1' as usize, commands);
        }
        KeyCode::Enter if alt => insert(&mut model.input, '\n'),
        KeyCode::Enter => submit(model, commands),
        KeyCode::Char(c) if !ctrl => {
            insert(&mut model.input, c);
            if !model.input.text.starts_with('/') {
                if let Some(room) = model.current_room() {
                    if model.input.text.chars().count() == 1 {
                        commands.push(Command::Typing(room.summary.room, TypingState::Active));
                    }
                }
            }
        }
        KeyCode::Backspace if model.input.cursor > 0 => {
            model.input.cursor -= 1;
            let at = byte_index(&model.input.text, model.input.cursor);
            model.input.text.remove(at);
        }
        KeyCode::Delete if model.input.cursor < model.input.text.chars().count() => {
            let at = byte_index(&model.input.text, model.input.cursor);
            model.input.text.remove(at);
        }
        KeyCode::Left => model.input.cursor = model.input.cursor.saturating_sub(1),
        KeyCode::Right => {
            model.input.cursor = (model.input.cursor + 1).min(model.input.text.chars().count())
        }
        KeyCode::Home => model.input.cursor = 0,
        KeyCode::End => model.input.cursor = model.input.text.chars().count(),
        KeyCode::Up => recall(&mut model.input, true),
        KeyCode::Down => recall(&mut model.input, false),
        KeyCode::PageUp => {
            model.scroll += 10;
            if let Some(room) = model.current_room() {
                if !room.complete && model.scroll + 20 >= room.lines.len() {
                    commands.push(Command::History {
                        room: room.summary.room,
                        before: room.lines.first().map(|l| l.seq),
                    });
                }
            }
        }
        KeyCode::PageDown => model.scroll = model.scroll.saturating_sub(10),
        KeyCode::Tab => complete(model),
        _ => {}
    }
}

fn recall(input: &mut Input, older: bool) {
    if input.history.is_empty() {
        return;
    }
    let next = match (input.recalled, older) {
        (None, true) => Some(input.history.len() - 1),
        (None, false) => None,
        (Some(i), true) => Some(i.saturating_sub(1)),
        (Some(i), false) if i + 1 < input.history.len() => Some(i + 1),
        (Some(_), false) => None,
    };
    input.recalled = next;
    input.text = next.map(|i| input.history[i].clone()).unwrap_or_default();
    input.cursor = input.text.chars().count();
}

/// Completes the word before the cursor: commands after `/`, room names after `#`, else
/// nicks of the current room.
fn complete(model: &mut Model) {
    let text: String = model.input.text.chars().take(model.input.cursor).collect();
    let start = text.rfind(char::is_whitespace).map_or(0, |i| i + 1);
    let word = &text[start..];
    if word.is_empty() {
        return;
    }
    let candidates: Vec<String> = if start == 0 && word.starts_with('/') {
        COMMANDS.iter().map(|c| format!("{c} ")).collect()
    } else if let Some(prefix) = word.strip_prefix('#') {
        let _ = prefix;
        model.rooms.iter().map(|r| format!("#{} ", r.summary.name)).collect()
    } else {
        let members = model.current_room().map(|r| r.members.clone()).unwrap_or_default();
        let suffix = if start == 0 { ": " } else { " " };
        members.iter().map(|u| format!("{}{suffix}", model.name(*u))).collect()
    };
    let lower = word.to_lowercase();
    if let Some(found) = candidates.iter().find(|c| c.to_lowercase().starts_with(&lower)) {
        let rest: String = model.input.text.chars().skip(model.input.cursor).collect();
        model.input.text = format!("{}{found}{rest}", &text[..start]);
        model.input.cursor = text[..start].chars().count() + found.chars().count();
    }
}

fn submit(model: &mut Model, commands: &mut Vec<Command>) {
    let text = std::mem::take(&mut model.input.text);
    model.input.cursor = 0;
    model.input.recalled = None;
    model.scroll = 0;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return;
    }
    if model.input.history.last().map(String::as_str) != Some(trimmed) {
        model.input.history.push(trimmed.to_owned());
    }
    let room = model.current_room().map(|r| r.summary.room);
    let Some(command) = trimmed.strip_prefix('/') else {
        match room {
            Some(room) => {
                commands.push(Command::Typing(room, TypingState::Stopped));
                commands.push(Command::Send { room, text: trimmed.to_owned(), reply_to: None });
            }
            None => model.status = Some("join a room first: /join NAME".into()),
        }
        return;
    };
    let (name, rest) = command.split_once(' ').map_or((command, ""), |(n, r)| (n, r.trim()));
    let need_room = |model: &mut Model| {
        if room.is_none() {
            model.status = Some("no room selected".into());
        }
        room
    };
    let seq_and = |rest: &str| -> Option<(u64, String)> {
        let (seq, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        Some((seq.trim_start_matches('#').parse().ok()?, tail.trim().to_owned()))
    };
    match name {
        "quit" | "q" => {
            model.quit = true;
            commands.push(Command::Quit);
        }
        "help" => model.status = Some(HELP.into()),
        "join" | "j" if !rest.is_empty() => {
            commands.push(Command::Join(rest.trim_start_matches('#').to_owned()))
        }
        "leave" | "part" => {
            if let Some(room) = need_room(model) {
                commands.push(Command::Leave(room));
            }
        }
        "dm" | "query" if !rest.is_empty() => commands.push(Command::Dm(rest.to_owned())),
        "topic" if !rest.is_empty() => {
            if let Some(room) = need_room(model) {
                commands.push(Command::Topic(room, rest.to_owned()));
            }
        }
        "me" if !rest.is_empty() => {
            if let Some(room) = need_room(model) {
                commands.push(Command::Send {
                    room,
                    text: format!("* {} {rest}", model.my_name),
                    reply_to: None,
                });
            }
        }
        "reply" | "react" | "edit" => match (need_room(model), seq_and(rest)) {
            (Some(room), Some((target, tail))) if !tail.is_empty() => commands.push(match name {
                "reply" => Command::Send { room, text: tail, reply_to: Some(target) },
                "react" => Command::React { room, target, emoji: tail },
                _ => Command::Edit { room, target, text: tail },
            }),
            (Some(_), _) => model.status = Some(format!("usage: /{name} SEQ TEXT")),
            (None, _) => {}
        },
        "delete" => match (need_room(model), seq_and(rest)) {
            (Some(room), Some((target, _))) => commands.push(Command::Delete { room, target }),
            (Some(_), None) => model.status = Some("usage: /delete SEQ".into()),
            (None, _) => {}
        },
        "away" => commands.push(Command::Presence(PresenceStatus::Away, rest.to_owned())),
        "back" => commands.push(Command::Presence(PresenceStatus::Online, String::new())),
        _ => model.status = Some(format!("unknown command /{name} (try /help)")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use banter_protocol::bounded::Text;
    use banter_protocol::ids::Timestamp;
    use banter_protocol::message::{
        EventMeta, Posted, Presence, Reacted, RoomKind, Typing, Visibility,
    };
    use crossterm::event::{KeyEvent, KeyModifiers};

    use super::*;

    const ADA: UserId = UserId(1);
    const GRACE: UserId = UserId(2);

    fn summary(id: u64, name: &str, category: &str) -> RoomSummary {
        RoomSummary {
            room: RoomId(id),
            kind: RoomKind::Channel,
            name: Text::new(name).unwrap(),
            topic: Text::default(),
            category: Text::new(category).unwrap(),
            visibility: Visibility::Public,
            voice: false,
            members: 2,
            last_seq: 0,
            joined: true,
            read_seq: 0,
            role: banter_protocol::message::Role::MEMBER,
        }
    }

    pub(crate) fn posted(room: u64, seq: u64, sender: UserId, text: &str) -> Message {
        Posted {
            event_seq: seq,
            meta: EventMeta {
                room: RoomId(room),
                seq,
                ts: Timestamp(1_790_000_000_000 + seq * 1000),
                sender,
            },
            client_msg_id: None,
            reply_to: None,
            text: Text::new(text).unwrap(),
        }
        .into()
    }

    fn key(code: KeyCode) -> Action {
        Action::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn typed(model: &mut Model, text: &str) -> Vec<Command> {
        let mut commands = Vec::new();
        for c in text.chars() {
            commands.extend(update(model, key(KeyCode::Char(c))));
        }
        commands.extend(update(model, key(KeyCode::Enter)));
        commands
    }

    pub(crate) fn model_with_rooms() -> Model {
        let mut model = Model::new(GRACE, "grace", "localhost:4433");
        let commands = update(
            &mut model,
            Action::RoomsLoaded(vec![summary(2, "random", ""), summary(1, "general", "Lobby")]),
        );
        assert!(commands.contains(&Command::History { room: RoomId(1), before: None }));
        model.names.insert(ADA, "ada".into());
        model
    }

    #[test]
    fn rooms_sort_by_category_and_unread_counts_grow_outside_the_current_room() {
        let mut model = model_with_rooms();
        assert_eq!(model.rooms[0].summary.name.as_str(), "random", "no category sorts first");
        assert_eq!(model.current, 0);
        update(&mut model, Action::Entry(posted(1, 1, ADA, "hi @grace")));
        assert_eq!(model.rooms[1].unread, 1);
        assert_eq!(model.rooms[1].mentions, 1);
        assert!(model.bell, "a mention rings the bell");
        // Alt+2 jumps there, clears the counts and marks it read.
        let commands =
            update(&mut model, Action::Key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::ALT)));
        assert_eq!(model.current, 1);
        assert_eq!(model.rooms[1].unread, 0);
        assert_eq!(commands, vec![Command::MarkRead(RoomId(1), 1)]);
    }

    #[test]
    fn enter_sends_to_the_current_room_and_commands_become_requests() {
        let mut model = model_with_rooms();
        update(&mut model, Action::Key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::ALT)));
        let commands = typed(&mut model, "hello");
        assert!(commands.contains(&Command::Send {
            room: RoomId(1),
            text: "hello".into(),
            reply_to: None
        }));
        assert!(model.input.text.is_empty());
        assert_eq!(typed(&mut model, "/join #rust"), vec![Command::Join("rust".into())]);
        assert_eq!(
            typed(&mut model, "/react 5 👍"),
            vec![Command::React { room: RoomId(1), target: 5, emoji: "👍".into() }]
        );
        assert_eq!(
            typed(&mut model, "/reply 5 sure"),
            vec![Command::Send { room: RoomId(1), text: "sure".into(), reply_to: Some(5) }]
        );
        assert_eq!(
            typed(&mut model, "/edit 7 fixed"),
            vec![Command::Edit { room: RoomId(1), target: 7, text: "fixed".into() }]
        );
        assert_eq!(
            typed(&mut model, "/delete 7"),
            vec![Command::Delete { room: RoomId(1), target: 7 }]
        );
        assert_eq!(
            typed(&mut model, "/away lunch"),
            vec![Command::Presence(PresenceStatus::Away, "lunch".into())]
        );
        assert!(typed(&mut model, "/bogus").is_empty());
        assert!(model.status.as_deref().unwrap_or("").contains("unknown command"));
        assert_eq!(typed(&mut model, "/quit"), vec![Command::Quit]);
        assert!(model.quit);
    }

    #[test]
    fn input_edits_recalls_history_and_completes_nicks_and_commands() {
        let mut model = model_with_rooms();
        model.rooms[0].members = vec![ADA, GRACE];
        typed(&mut model, "first");
        for c in "ab".chars() {
            update(&mut model, key(KeyCode::Char(c)));
        }
        update(&mut model, key(KeyCode::Left));
        update(&mut model, key(KeyCode::Char('日')));
        assert_eq!(model.input.text, "a日b");
        update(&mut model, key(KeyCode::Backspace));
        assert_eq!(model.input.text, "ab");
        update(&mut model, key(KeyCode::Up));
        assert_eq!(model.input.text, "first");
        update(&mut model, key(KeyCode::Down));
        assert_eq!(model.input.text, "");
        for c in "ad".chars() {
            update(&mut model, key(KeyCode::Char(c)));
        }
        update(&mut model, key(KeyCode::Tab));
        assert_eq!(model.input.text, "ada: ");
        model.input = Input::default();
        for c in "/jo".chars() {
            update(&mut model, key(KeyCode::Char(c)));
        }
        update(&mut model, key(KeyCode::Tab));
        assert_eq!(model.input.text, "/join ");
        // Alt+Enter is a newline, not a send; a paste keeps newlines and drops escapes.
        update(&mut model, Action::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT)));
        update(&mut model, Action::Paste("x\u{1b}[2Jy\nz".into()));
        assert_eq!(model.input.text, "/join \nx[2Jy\nz");
    }

    #[test]
    fn edits_deletes_reactions_presence_and_typing_fold_into_the_view() {
        let mut model = model_with_rooms();
        update(&mut model, Action::Entry(posted(2, 1, ADA, "hello")));
        update(
            &mut model,
            Action::Entry(
                Reacted {
                    event_seq: 2,
                    meta: EventMeta { room: RoomId(2), seq: 2, ts: Timestamp(0), sender: GRACE },
                    target: 1,
                    emoji: Text::new("👍").unwrap(),
                    on: true,
                }
                .into(),
            ),
        );
        assert_eq!(model.rooms[0].lines[0].reactions, vec![("👍".to_owned(), vec![GRACE])]);
        update(
            &mut model,
            Action::Ephemeral(
                Presence { user: ADA, status: PresenceStatus::Away, text: Text::default() }.into(),
            ),
        );
        assert_eq!(model.presence[&ADA], PresenceStatus::Away);
        update(&mut model, Action::Tick(1000));
        update(
            &mut model,
            Action::Ephemeral(
                Typing { room: RoomId(2), user: ADA, state: TypingState::Active }.into(),
            ),
        );
        assert_eq!(model.typists(), vec!["ada".to_owned()]);
        update(&mut model, Action::Tick(1000 + TYPING_ACTIVE_MS + 1));
        assert!(model.typists().is_empty(), "typing expires without a stop");
    }
}
