//! The TUI's state and its pure `update` (ratatui's TEA shape): `update(&mut Model, Action)`
//! changes state and returns the [`Command`]s to run; it does no I/O, so every key and every
//! network event is testable without a terminal or a server.

use std::collections::HashMap;

use banter_client::ConnectionState;
use banter_client::state::{Change, EntryKind, RoomState, State};
use banter_protocol::ids::{RoomId, UserId};
use banter_protocol::message::{
    AuditEntry, ContactAction, ContactState, Message, PresenceStatus, RoomKind, RoomSummary,
    SearchCursor, SearchHit, TypingState, VoiceAction, VoiceJoined,
};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::help;
use crate::profile::Notify;

/// The input line.
#[derive(Debug, Clone, Default)]
pub(crate) struct Input {
    pub(crate) text: String,
    /// Cursor as a char index.
    pub(crate) cursor: usize,
    history: Vec<String>,
    recalled: Option<usize>,
}

/// Per-room attention counters.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Attention {
    pub(crate) unread: u64,
    pub(crate) mentions: u64,
    /// The read marker when the room was opened (where the "new messages" line goes).
    pub(crate) marker: u64,
}

/// Our voice call as the screen knows it (the audio runs in the runtime's call task).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    /// This call's number, so that news of an earlier call is not taken for this one.
    pub(crate) id: u64,
    pub(crate) room: RoomId,
    /// The server answered the join.
    pub(crate) joined: bool,
    /// The microphone goes out.
    pub(crate) talking: bool,
    pub(crate) mute: bool,
    pub(crate) deaf: bool,
    /// Hand raised to speak on a stage.
    pub(crate) hand: bool,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallEnd {
    /// We left.
    Left,
    /// The join was refused or voice failed; why, in words.
    Failed(String),
    /// The connection went: the call is joined again once the client has reconnected.
    Lost,
}

/// What Enter does with the input line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Compose {
    /// Post it.
    #[default]
    Message,
    /// Post it as a reply to this seq.
    Reply(u64),
    /// Make it the new text of our message at this seq.
    Edit(u64),
    /// React with it (an emoji or a `:shortcode:`) to this seq.
    React(u64),
}

/// The `/search` results view (spec §6.10): the hits so far, newest first, one selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SearchView {
    pub(crate) query: String,
    pub(crate) hits: Vec<SearchHit>,
    /// The selected hit's index.
    pub(crate) selected: usize,
    /// Where the next page starts, when the server said there is one.
    pub(crate) next: Option<SearchCursor>,
    /// A page was asked for and has not come: no second request meanwhile.
    pub(crate) loading: bool,
}

/// The push-to-talk key; with a terminal that reports key releases, talk while it is held.
pub(crate) const TALK_KEY: KeyCode = KeyCode::F(4);
const MUTE_KEY: KeyCode = KeyCode::F(5);
const DEAFEN_KEY: KeyCode = KeyCode::F(6);

/// Everything the screen shows: the shared session [`State`] plus what only the screen has.
#[derive(Debug)]
pub(crate) struct Model {
    pub(crate) state: State,
    pub(crate) my_name: String,
    pub(crate) server: String,
    pub(crate) current: Option<RoomId>,
    pub(crate) attention: HashMap<RoomId, Attention>,
    pub(crate) input: Input,
    pub(crate) connection: ConnectionState,
    pub(crate) status: Option<String>,
    /// Lines scrolled up from the bottom.
    pub(crate) scroll: usize,
    pub(crate) now_ms: u64,
    pub(crate) quit: bool,
    /// Ring the terminal bell on the next draw (a mention arrived).
    pub(crate) bell: bool,
    /// Whether mentions ring the bell at all.
    pub(crate) bell_on_mention: bool,
    /// Whether the mouse wheel scrolls (captured) or the terminal keeps the mouse (selection).
    pub(crate) mouse: bool,
    /// Own messages not yet acknowledged: client message id → (room, text).
    pub(crate) pending: Vec<(u128, RoomId, String)>,
    /// The voice call, if any.
    pub(crate) voice: Option<Call>,
    /// Calls started so far (numbers them).
    calls: u64,
    /// The terminal reports key releases: the talk key is held, not toggled.
    pub(crate) hold_to_talk: bool,
    /// A call lost with the connection, to join again when it is back.
    rejoin: Option<RoomId>,
    /// While waiting to reconnect: when the next attempt starts (ms, wall clock).
    pub(crate) retry_at_ms: Option<u64>,
    /// The selected message (its seq in the current room): message actions act on it.
    pub(crate) selected: Option<u64>,
    /// What Enter does with the input.
    pub(crate) compose: Compose,
    /// A delete waiting for `y`.
    pub(crate) confirm_delete: Option<u64>,
    /// The help overlay, scrolled this many lines, when open.
    pub(crate) help: Option<usize>,
    /// Desktop notifications for mentions.
    pub(crate) notify: Notify,
    /// A room to show once the room list has it (after /join or /dm): name, direct.
    switch_to: Option<(String, bool)>,
    /// A file transfer under way: what, bytes done, bytes in all.
    pub(crate) transfer: Option<(String, u64, u64)>,
    /// The search results view, when open.
    pub(crate) search: Option<SearchView>,
    /// A search hit being opened in its room: shown once the history reaches back to it.
    jump: Option<(RoomId, u64)>,
}

/// Everything that can happen.
#[derive(Debug)]
pub(crate) enum Action {
    Key(KeyEvent),
    Paste(String),
    /// Mouse wheel: positive scrolls back.
    Scroll(i32),
    Tick(u64),
    /// The connection's state, and the wall clock (ms) when it was reported.
    Connection(ConnectionState, u64),
    /// A click on a message (the mouse is captured).
    Click(u64),
    /// A file transfer progressed: what, bytes done, bytes in all.
    Progress(String, u64, u64),
    /// A live (or caught-up) log entry.
    Entry(Message),
    /// Soft state.
    Ephemeral(Message),
    RoomsLoaded(Vec<RoomSummary>),
    /// A history page for a room: frames newest first, and whether the log start was reached.
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
    /// A queued post the server refused for good: it is no longer pending.
    SendFailed {
        client_msg_id: u128,
        error: String,
    },
    /// The newest audit entries of a room.
    AuditLoaded(Vec<AuditEntry>),
    /// A page of `/search QUERY` hits, newest first, and where the next page starts; or why
    /// the search failed.
    Searched {
        query: String,
        answer: Result<(Vec<SearchHit>, Option<SearchCursor>), String>,
    },
    /// A moderation request went through.
    Done(String),
    Failed(String),
    /// The server let us into voice; `note` says what the sound devices lack.
    VoiceJoined {
        call: u64,
        joined: VoiceJoined,
        note: Option<String>,
    },
    /// A call ended.
    VoiceLeft {
        call: u64,
        end: CallEnd,
    },
}

/// What a moderator does to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Moderation {
    Kick(String),
    Ban(String),
    Unban,
    /// A voice action: server mute or unmute, grant or revoke speech on a stage.
    Voice(VoiceAction),
}

/// Work for the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Send {
        room: RoomId,
        text: String,
        reply_to: Option<u64>,
    },
    /// Post without a name, where the room allows it.
    SendAnonymous {
        room: RoomId,
        text: String,
    },
    Join(String),
    Leave(RoomId),
    Topic(RoomId, String),
    Dm(String),
    React {
        room: RoomId,
        target: u64,
        emoji: String,
    },
    Edit {
        room: RoomId,
        target: u64,
        text: String,
    },
    Delete {
        room: RoomId,
        target: u64,
    },
    Presence(PresenceStatus, String),
    Typing(RoomId, TypingState),
    History {
        room: RoomId,
        before: Option<u64>,
    },
    Members(RoomId),
    MarkRead(RoomId, u64),
    Moderate {
        room: RoomId,
        user: UserId,
        name: String,
        act: Moderation,
    },
    Configure {
        room: RoomId,
        slow_mode_s: Option<u32>,
        locked: Option<bool>,
    },
    Audit(RoomId),
    /// A page of search hits, after `cursor` (none: the newest).
    Search {
        query: String,
        cursor: Option<SearchCursor>,
    },
    /// Add a user to the room (ROOM_INVITE), or with no name, make an invite code.
    Invite {
        room: RoomId,
        username: Option<String>,
    },
    Contact(String, ContactAction),
    AcceptInvite(String),
    /// List the account's login keys, or unregister one (its public key in hex).
    Keys {
        remove: Option<String>,
    },
    Upload {
        room: RoomId,
        path: String,
    },
    /// Fetch the file at `seq` into `path` (default: its shared name).
    Download {
        room: RoomId,
        seq: u64,
        path: Option<String>,
    },
    /// Start call `call` in `room`'s voice (leaving any other).
    VoiceJoin {
        room: RoomId,
        call: u64,
    },
    VoiceLeave,
    /// Send the microphone or stop.
    Talk(bool),
    VoiceSelf {
        room: RoomId,
        mute: bool,
        deaf: bool,
    },
    RaiseHand {
        room: RoomId,
        raise: bool,
    },
    ReloadRooms,
    /// Capture the mouse (wheel scrolling) or give it back to the terminal.
    Mouse(bool),
    /// Put text on the clipboard (OSC 52: the terminal's, even over ssh).
    Copy(String),
    /// A desktop notification, through the terminal.
    Notify {
        how: Notify,
        title: String,
        body: String,
    },
    Quit,
}

impl Model {
    pub(crate) fn new(me: UserId, my_name: &str, server: &str) -> Self {
        Self {
            state: State::new(me, my_name),
            my_name: my_name.to_owned(),
            server: server.to_owned(),
            current: None,
            attention: HashMap::new(),
            input: Input::default(),
            connection: ConnectionState::Connecting { attempt: 0 },
            status: None,
            scroll: 0,
            now_ms: 0,
            quit: false,
            bell: false,
            bell_on_mention: true,
            mouse: true,
            pending: Vec::new(),
            voice: None,
            calls: 0,
            hold_to_talk: false,
            rejoin: None,
            retry_at_ms: None,
            selected: None,
            compose: Compose::Message,
            confirm_delete: None,
            help: None,
            notify: Notify::Off,
            switch_to: None,
            transfer: None,
            search: None,
            jump: None,
        }
    }

    pub(crate) fn me(&self) -> UserId {
        self.state.me
    }

    /// A user this client has seen (as a member or sender), by name, case-insensitive.
    pub(crate) fn user_named(&self, name: &str) -> Option<UserId> {
        self.state.names.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)).map(|(id, _)| *id)
    }

    pub(crate) fn current_room(&self) -> Option<&RoomState> {
        self.current.and_then(|room| self.state.room(room))
    }

    pub(crate) fn attention(&self, room: RoomId) -> Attention {
        self.attention.get(&room).copied().unwrap_or_default()
    }

    /// Names of who is typing in the current room now.
    pub(crate) fn typists(&self) -> Vec<String> {
        let Some(room) = self.current else { return Vec::new() };
        self.state.typists(room, self.now_ms).into_iter().map(|u| self.state.name(u)).collect()
    }

    fn select(&mut self, index: usize, commands: &mut Vec<Command>) {
        let Some(room) = self.state.rooms.get(index) else { return };
        let id = room.summary.room;
        let read = room.summary.read_seq;
        let last = room.messages.last().map(|m| m.seq);
        if self.current != Some(id) {
            self.selected = None;
            self.confirm_delete = None;
            self.jump = None;
            if self.compose != Compose::Message {
                self.compose = Compose::Message;
                self.input =
                    Input { history: std::mem::take(&mut self.input.history), ..Input::default() };
            }
        }
        self.current = Some(id);
        self.scroll = 0;
        let attention = self.attention.entry(id).or_default();
        attention.marker = read;
        attention.unread = 0;
        attention.mentions = 0;
        if let Some(last) = last.filter(|last| *last > read) {
            commands.push(Command::MarkRead(id, last));
        }
    }

    /// The index of the joined room called `name` (a direct room: the other user's name).
    fn room_index(&self, name: &str, direct: bool) -> Option<usize> {
        self.state.rooms.iter().position(|r| {
            r.summary.name.eq_ignore_ascii_case(name)
                && (r.summary.kind == RoomKind::Direct) == direct
        })
    }

    fn current_index(&self) -> usize {
        self.current.and_then(|room| self.state.index(room)).unwrap_or(0)
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
        Action::Scroll(lines) => {
            model.scroll = model.scroll.saturating_add_signed(lines as isize * 3);
            load_older_if_needed(model, &mut commands);
        }
        Action::Tick(now) => {
            model.now_ms = now;
            model.state.expire(now);
        }
        Action::Connection(state, now) => {
            model.now_ms = model.now_ms.max(now);
            model.retry_at_ms = match &state {
                ConnectionState::Waiting { retry_in, .. } => {
                    Some(now + u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX / 2))
                }
                _ => None,
            };
            if state == ConnectionState::Connected && model.connection != ConnectionState::Connected
            {
                model.state.reconnected();
                commands.push(Command::ReloadRooms);
                if let Some(room) = model.rejoin.take() {
                    start_call(model, room, &mut commands);
                }
            }
            model.connection = state;
        }
        Action::Entry(message) => on_entry(model, &message, &mut commands),
        Action::Click(seq) if model.help.is_none() => {
            model.selected = Some(seq);
            model.status = Some(SELECTION_HINT.into());
        }
        Action::Click(_) => {}
        Action::Progress(what, done, total) => {
            model.transfer = (done < total).then_some((what, done, total));
        }
        Action::Ephemeral(message) => {
            model.state.apply_ephemeral(&message, model.now_ms);
            if let Message::ReadUpTo(read) = &message {
                if read.user == model.me() {
                    let unread = model.state.unread_after(read.room, read.seq);
                    model.attention.entry(read.room).or_default().unread = unread;
                }
            }
            if let Message::Contact(contact) = &message {
                let name = &contact.username;
                model.status = Some(match contact.state {
                    Some(ContactState::Incoming) => {
                        format!("{name} asks to be friends: /friend {name} to accept")
                    }
                    Some(ContactState::Outgoing) => format!("friend request sent to {name}"),
                    Some(ContactState::Friend) => format!("{name} and you are friends"),
                    Some(ContactState::Blocked) => format!("{name} is blocked"),
                    None => format!("{name} is no longer a contact"),
                });
            }
        }
        Action::RoomsLoaded(summaries) => {
            for room in model.state.apply_rooms(summaries) {
                commands.push(Command::History { room, before: None });
                commands.push(Command::Members(room));
            }
            if let Some((name, direct)) = model.switch_to.take() {
                match model.room_index(&name, direct) {
                    Some(index) => model.select(index, &mut commands),
                    None => model.switch_to = Some((name, direct)), // not in this list yet
                }
            }
            if model.current_room().is_none() && !model.state.rooms.is_empty() {
                model.select(0, &mut commands);
            }
        }
        Action::HistoryLoaded { room, page, complete } => {
            model.state.apply_history(room, &page, complete);
            if model.jump.is_some_and(|(to, _)| to == room) {
                reveal_jump(model, &mut commands);
            }
            if model.current != Some(room) {
                let read = model.state.room(room).map_or(0, |r| r.summary.read_seq);
                model.attention.entry(room).or_default().unread =
                    model.state.unread_after(room, read);
            }
        }
        Action::MembersLoaded { room, members } => model.state.apply_members(room, members),
        Action::Queued { client_msg_id, room, text } => {
            model.pending.push((client_msg_id, room, text))
        }
        Action::Sent { client_msg_id } => model.pending.retain(|(id, _, _)| *id != client_msg_id),
        Action::SendFailed { client_msg_id, error } => {
            model.pending.retain(|(id, _, _)| *id != client_msg_id);
            model.status = Some(error);
        }
        Action::AuditLoaded(entries) => model.status = Some(audit_line(model, &entries)),
        Action::Searched { query, answer } => on_searched(model, &query, answer),
        Action::Done(what) => model.status = Some(what),
        Action::Failed(error) => {
            // A /join or /dm that failed shows nothing later by surprise.
            model.switch_to = None;
            model.status = Some(error);
        }
        Action::VoiceJoined { call, joined, note } => {
            let Some(ours) = model.voice.as_mut().filter(|c| c.id == call) else {
                return commands;
            };
            ours.joined = true;
            let room = joined.room;
            model.state.apply_ephemeral(&Message::VoiceJoined(joined), model.now_ms);
            let talk = if model.hold_to_talk { "hold F4 to talk" } else { "F4 talk on/off" };
            let name = model.state.room(room).map(|r| r.summary.name.to_string());
            let mut status =
                format!("in voice of {}: {talk}, F5 mute, F6 deafen", name.unwrap_or_default());
            if let Some(note) = note {
                status.push_str(&format!(" ({note})"));
            }
            model.status = Some(status);
        }
        Action::VoiceLeft { call, end } => {
            if let Some(ours) = model.voice.take_if(|c| c.id == call) {
                model.state.left_voice(ours.room);
                model.status = Some(match end {
                    CallEnd::Left => "left voice".into(),
                    CallEnd::Failed(why) => why,
                    CallEnd::Lost => {
                        model.rejoin = Some(ours.room);
                        "voice lost with the connection: joining again when it is back".into()
                    }
                });
            }
        }
    }
    commands
}

/// A page of search hits came, or the search failed. An answer to a search that was closed
/// or replaced meanwhile is dropped.
fn on_searched(
    model: &mut Model,
    query: &str,
    answer: Result<(Vec<SearchHit>, Option<SearchCursor>), String>,
) {
    let Some(view) = model.search.as_mut().filter(|v| v.query == query && v.loading) else {
        return;
    };
    view.loading = false;
    match answer {
        Ok((hits, next)) => {
            view.hits.extend(hits);
            view.next = next;
        }
        Err(error) => {
            // Nothing to show: the view goes; hits already shown stay, and the next page is
            // asked again from the same place when the bottom is reached again.
            if view.hits.is_empty() {
                model.search = None;
            }
            model.status = Some(format!("search: {error}"));
        }
    }
}

/// Keys while the search results are open: move, open a hit, close. What else is typed goes
/// to the input (a new `/search`, say); Home, End and Enter are the view's while the input is
/// empty. Returns whether the key was the view's.
fn search_key(model: &mut Model, code: KeyCode, commands: &mut Vec<Command>) -> bool {
    let typing = !model.input.text.is_empty();
    let Some(view) = model.search.as_mut() else { return false };
    let last = view.hits.len().saturating_sub(1);
    match code {
        KeyCode::Esc => model.search = None,
        KeyCode::Up => view.selected = view.selected.saturating_sub(1),
        KeyCode::Down => view.selected = (view.selected + 1).min(last),
        KeyCode::PageUp => view.selected = view.selected.saturating_sub(10),
        KeyCode::PageDown => view.selected = (view.selected + 10).min(last),
        KeyCode::Home if !typing => view.selected = 0,
        KeyCode::End if !typing => view.selected = last,
        KeyCode::Enter if !typing => return open_hit(model, commands),
        _ => return false,
    }
    if let Some(view) = model.search.as_mut() {
        more_hits(view, commands);
    }
    true
}

/// At the last hit: asks for the next page, if the server said there is one and none is on
/// its way.
fn more_hits(view: &mut SearchView, commands: &mut Vec<Command>) {
    let Some(cursor) = view.next.as_ref().filter(|_| !view.loading) else { return };
    if view.selected + 1 >= view.hits.len() {
        commands.push(Command::Search { query: view.query.clone(), cursor: Some(cursor.clone()) });
        view.loading = true;
    }
}

/// Enter on a hit: closes the results and shows the hit in its room, selected, once the
/// history reaches back to it.
fn open_hit(model: &mut Model, commands: &mut Vec<Command>) -> bool {
    let Some((room, seq)) =
        model.search.as_ref().and_then(|v| v.hits.get(v.selected)).map(|h| (h.room, h.seq))
    else {
        return true;
    };
    let Some(index) = model.state.index(room) else {
        // A public room we are not in: its hits are readable, its history not ours to load.
        model.status = Some(format!("not a member of room {0}: /join {0} to read it", room.0));
        return true;
    };
    model.search = None;
    model.select(index, commands);
    model.jump = Some((room, seq));
    reveal_jump(model, commands);
    true
}

/// Selects the hit being opened once its room's history holds it; until then asks for the
/// page before the oldest entry loaded. (The state adds only pages that reach further back,
/// so the walk goes page by page from what is loaded: a page fetched right at the hit would
/// leave a hole between it and the newer entries.)
fn reveal_jump(model: &mut Model, commands: &mut Vec<Command>) {
    let Some((room, seq)) = model.jump else { return };
    let Some(loaded) = model.state.room(room) else {
        model.jump = None;
        return;
    };
    let oldest = loaded.messages.first().map(|m| m.seq);
    if !loaded.complete && oldest.is_none_or(|oldest| oldest > seq) {
        commands.push(Command::History { room, before: oldest });
        model.status = Some(format!("loading history back to #{seq}…"));
        return;
    }
    model.jump = None;
    model.status = Some(match loaded.messages.iter().find(|m| m.seq == seq) {
        Some(m) if m.kind == EntryKind::Message => {
            model.selected = Some(seq);
            SELECTION_HINT.into()
        }
        Some(_) => format!("#{seq} is a shared file: /download {seq} saves it"),
        None => format!("message #{seq} is no longer there"),
    });
}

/// `/voice`: joins the current room's voice, or leaves the call in it.
fn toggle_voice(model: &mut Model, commands: &mut Vec<Command>) {
    let Some(room) = model.current_room() else {
        model.status = Some("no room selected".into());
        return;
    };
    let (id, name, voice) = (room.summary.room, room.summary.name.to_string(), room.summary.voice);
    model.rejoin = None;
    if model.voice.as_ref().is_some_and(|c| c.room == id) {
        commands.push(Command::VoiceLeave);
        return;
    }
    if !voice {
        model.status = Some(format!("{name} has no voice"));
        return;
    }
    start_call(model, id, commands);
}

/// Starts a call in `room`'s voice.
fn start_call(model: &mut Model, id: RoomId, commands: &mut Vec<Command>) {
    let name = model.state.room(id).map(|r| r.summary.name.to_string()).unwrap_or_default();
    model.calls += 1;
    model.voice = Some(Call {
        id: model.calls,
        room: id,
        joined: false,
        talking: false,
        mute: false,
        deaf: false,
        hand: false,
    });
    model.status = Some(format!("joining voice of {name}…"));
    commands.push(Command::VoiceJoin { room: id, call: model.calls });
}

/// The talk key went down (or up): talk while held, or toggle where releases are not seen.
fn talk_key(model: &mut Model, kind: KeyEventKind, commands: &mut Vec<Command>) {
    let hold = model.hold_to_talk;
    let Some(call) = model.voice.as_mut().filter(|c| c.joined) else {
        if kind == KeyEventKind::Press {
            model.status = Some("not in voice: /voice joins the room's".into());
        }
        return;
    };
    let talking = match kind {
        KeyEventKind::Press if hold => true,
        KeyEventKind::Press => !call.talking,
        KeyEventKind::Release => false,
        KeyEventKind::Repeat => return,
    };
    if talking && (call.mute || call.deaf) {
        model.status = Some("muted: F5 to unmute".into());
        return;
    }
    if talking != call.talking {
        call.talking = talking;
        commands.push(Command::Talk(talking));
    }
}

/// F5 or `/mute`: mute, or unmute (which also ends deafening).
fn toggle_mute(model: &mut Model, commands: &mut Vec<Command>) {
    let (mute, deaf) = model.voice.as_ref().map_or((false, false), |c| (c.mute, c.deaf));
    set_self(model, !mute, deaf && !mute, commands);
}

/// Self mute or deafen, told to the server (which enforces it) and to the call.
fn set_self(model: &mut Model, mute: bool, deaf: bool, commands: &mut Vec<Command>) {
    let Some(call) = model.voice.as_mut().filter(|c| c.joined) else {
        model.status = Some("not in voice".into());
        return;
    };
    // Deafened means muted too, as in every voice app.
    let mute = mute || deaf;
    (call.mute, call.deaf) = (mute, deaf);
    if mute && call.talking {
        call.talking = false;
        commands.push(Command::Talk(false));
    }
    commands.push(Command::VoiceSelf { room: call.room, mute, deaf });
    model.status = Some(match (mute, deaf) {
        (_, true) => "deafened (F6 to undo)".into(),
        (true, false) => "muted (F5 to unmute)".into(),
        (false, false) => "unmuted".into(),
    });
}

/// The newest audit entries on one line: `bob KICK carol (spam) · ...`.
fn audit_line(model: &Model, entries: &[AuditEntry]) -> String {
    if entries.is_empty() {
        return "audit: nothing yet".into();
    }
    let name = |user: UserId| {
        if user.0 == 0 {
            "(console)".to_owned()
        } else {
            model.state.names.get(&user).cloned().unwrap_or_else(|| format!("#{}", user.0))
        }
    };
    let items: Vec<String> = entries
        .iter()
        .map(|e| {
            let action = e.action.name().map_or_else(|| e.action.0.to_string(), str::to_lowercase);
            let mut item = format!("{} {action}", name(e.actor));
            if let Some(target) = e.target {
                item.push_str(&format!(" {}", name(target)));
            }
            if !e.reason.is_empty() {
                item.push_str(&format!(" ({})", e.reason));
            }
            item
        })
        .collect();
    format!("audit: {}", items.join(" · "))
}

fn on_entry(model: &mut Model, message: &Message, commands: &mut Vec<Command>) {
    if let Message::Posted(posted) = message {
        if let Some(id) = posted.client_msg_id {
            model.pending.retain(|(pending, _, _)| *pending != id);
        }
    }
    match model.state.apply_entry(message) {
        Change::Message { room, seq, sender, mention } if sender != model.me() => {
            if mention && model.notify != Notify::Off {
                if let Message::Posted(posted) = message {
                    let room_name = model
                        .state
                        .room(room)
                        .map(|r| r.summary.name.to_string())
                        .unwrap_or_default();
                    commands.push(Command::Notify {
                        how: model.notify,
                        title: format!("banter: {room_name}"),
                        body: format!("{}: {}", model.state.name(sender), posted.text),
                    });
                }
            }
            if model.current == Some(room) {
                commands.push(Command::MarkRead(room, seq));
            } else {
                let attention = model.attention.entry(room).or_default();
                attention.unread += 1;
                attention.mentions += u64::from(mention);
            }
            model.bell |= mention && model.bell_on_mention;
        }
        Change::UnknownRoom(_) => commands.push(Command::ReloadRooms),
        Change::Removed(room) if model.current == Some(room) => {
            model.current = None;
            if !model.state.rooms.is_empty() {
                model.select(0, commands);
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

/// What the status line says while a message is selected.
const SELECTION_HINT: &str =
    "r reply · e edit · d delete · + react · y copy · Enter original · Esc back";

fn on_key(model: &mut Model, key: KeyEvent, commands: &mut Vec<Command>) {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    if key.code == TALK_KEY {
        return talk_key(model, key.kind, commands);
    }
    if key.kind == KeyEventKind::Release {
        return;
    }
    model.status = None;
    // Keys that work everywhere: quit, help, mouse, and the call's mute and deafen.
    match key.code {
        KeyCode::Char('c') | KeyCode::Char('d') if ctrl => {
            model.quit = true;
            return commands.push(Command::Quit);
        }
        KeyCode::F(1) => {
            model.help = if model.help.is_some() { None } else { Some(0) };
            return;
        }
        KeyCode::F(2) => {
            model.mouse = !model.mouse;
            model.status =
                Some(format!("mouse scrolling {}", if model.mouse { "on" } else { "off" }));
            return commands.push(Command::Mouse(model.mouse));
        }
        MUTE_KEY => return toggle_mute(model, commands),
        DEAFEN_KEY => {
            let deaf = model.voice.as_ref().is_some_and(|c| c.deaf);
            return set_self(model, !deaf, !deaf, commands);
        }
        _ => {}
    }
    if model.help.is_some() {
        return help_key(model, key.code);
    }
    if !ctrl && !alt && search_key(model, key.code, commands) {
        return;
    }
    if let Some(target) = model.confirm_delete.take() {
        if let (Some(room), KeyCode::Char('y')) = (model.current, key.code) {
            commands.push(Command::Delete { room, target });
            model.selected = None;
        } else {
            model.status = Some("not deleted".into());
        }
        return;
    }
    if model.selected.is_some() && !ctrl && !alt {
        return selection_key(model, key.code, commands);
    }
    match key.code {
        KeyCode::Char('n') if ctrl => {
            let next = (model.current_index() + 1) % model.state.rooms.len().max(1);
            model.select(next, commands);
        }
        KeyCode::Char('p') if ctrl => {
            let count = model.state.rooms.len().max(1);
            model.select((model.current_index() + count - 1) % count, commands);
        }
        KeyCode::Char(c @ '1'..='9') if alt => {
            model.select(c as usize - '1' as usize, commands);
        }
        KeyCode::Char('u') if alt => jump_to_unread(model),
        KeyCode::Enter if alt => insert(&mut model.input, '\n'),
        KeyCode::Enter => submit(model, commands),
        KeyCode::Esc if model.compose != Compose::Message => {
            model.compose = Compose::Message;
            model.input.text.clear();
            model.input.cursor = 0;
        }
        KeyCode::Char(c) if !ctrl => {
            insert(&mut model.input, c);
            // The first character of a post tells the room we are typing.
            let posting = matches!(model.compose, Compose::Message | Compose::Reply(_));
            if posting
                && !model.input.text.starts_with('/')
                && model.input.text.chars().count() == 1
            {
                if let Some(room) = model.current_room() {
                    commands.push(Command::Typing(room.summary.room, TypingState::Active));
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
        // Up on an empty input (or Alt+Up anywhere) selects messages; Ctrl+Up, or Up on a
        // line being written, recalls what was typed before.
        KeyCode::Up if alt || (!ctrl && model.input.text.is_empty()) => select_last(model),
        KeyCode::Up => recall(&mut model.input, true),
        KeyCode::Down => recall(&mut model.input, false),
        KeyCode::PageUp => {
            model.scroll += 10;
            load_older_if_needed(model, commands);
        }
        KeyCode::PageDown => model.scroll = model.scroll.saturating_sub(10),
        KeyCode::Tab => complete(model),
        _ => {}
    }
}

/// Keys while the help overlay is open.
fn help_key(model: &mut Model, code: KeyCode) {
    let Some(scroll) = model.help.as_mut() else { return };
    match code {
        KeyCode::Esc | KeyCode::Char('q') | KeyCode::Enter => model.help = None,
        KeyCode::Up | KeyCode::Char('k') => *scroll = scroll.saturating_sub(1),
        KeyCode::Down | KeyCode::Char('j') => *scroll = (*scroll + 1).min(help::ENTRIES.len()),
        KeyCode::PageUp => *scroll = scroll.saturating_sub(10),
        KeyCode::PageDown => *scroll = (*scroll + 10).min(help::ENTRIES.len()),
        KeyCode::Home => *scroll = 0,
        _ => {}
    }
}

/// The messages (not notices) of the current room, by seq, oldest first.
fn selectable(model: &Model) -> Vec<u64> {
    model.current_room().map_or_else(Vec::new, |room| {
        room.messages.iter().filter(|m| m.kind == EntryKind::Message).map(|m| m.seq).collect()
    })
}

fn select_last(model: &mut Model) {
    match selectable(model).last() {
        Some(&last) => {
            model.selected = Some(last);
            model.status = Some(SELECTION_HINT.into());
        }
        None => model.status = Some("no messages here yet".into()),
    }
}

/// Alt+U: selects the first message after the read marker the room was opened with.
fn jump_to_unread(model: &mut Model) {
    let Some(room) = model.current else { return };
    let marker = model.attention(room).marker;
    let me = model.me();
    let first = model.current_room().and_then(|r| {
        r.messages
            .iter()
            .find(|m| m.kind == EntryKind::Message && m.seq > marker && m.sender != me)
            .map(|m| m.seq)
    });
    match first {
        Some(seq) => {
            model.selected = Some(seq);
            model.status = Some(SELECTION_HINT.into());
        }
        None => model.status = Some("no unread messages here".into()),
    }
}

/// Keys while a message is selected: move, act on it, or leave.
fn selection_key(model: &mut Model, code: KeyCode, commands: &mut Vec<Command>) {
    let ids = selectable(model);
    let Some(selected) = model.selected else { return };
    let Some(at) = ids.iter().position(|seq| *seq == selected) else {
        model.selected = None; // gone (the room changed under it)
        return;
    };
    let move_to = |model: &mut Model, commands: &mut Vec<Command>, to: isize| {
        if to < 0 {
            model.selected = ids.first().copied();
            // At the oldest loaded message: fetch the page before it.
            if let Some(room) = model.current_room().filter(|r| !r.complete) {
                commands.push(Command::History {
                    room: room.summary.room,
                    before: room.messages.first().map(|m| m.seq),
                });
            }
        } else {
            // Past the newest message: back to the input.
            model.selected = ids.get(to as usize).copied();
        }
        if model.selected.is_some() {
            model.status = Some(SELECTION_HINT.into());
        }
    };
    let at = at as isize;
    let Some(line) =
        model.current_room().and_then(|r| r.messages.iter().find(|m| m.seq == selected))
    else {
        return;
    };
    let (mine, deleted, text, reply_to) =
        (line.sender == model.me(), line.deleted, line.text.clone(), line.reply_to);
    match code {
        KeyCode::Up | KeyCode::Char('k') => move_to(model, commands, at - 1),
        KeyCode::Down | KeyCode::Char('j') => move_to(model, commands, at + 1),
        KeyCode::PageUp => move_to(model, commands, if at == 0 { -1 } else { (at - 10).max(0) }),
        KeyCode::PageDown => move_to(model, commands, (at + 10).min(ids.len() as isize - 1)),
        KeyCode::Home => move_to(model, commands, 0),
        KeyCode::End => move_to(model, commands, ids.len() as isize - 1),
        KeyCode::Esc => model.selected = None,
        KeyCode::Char('r' | 'e' | '+' | ':' | 'd') if deleted => {
            model.status = Some("that message was deleted".into());
        }
        KeyCode::Char('r') => start_compose(model, Compose::Reply(selected), ""),
        KeyCode::Char('e') if mine => start_compose(model, Compose::Edit(selected), &text),
        KeyCode::Char('e') => model.status = Some("you can only edit your own messages".into()),
        KeyCode::Char('+' | ':') => start_compose(model, Compose::React(selected), ":"),
        KeyCode::Char('d') => {
            model.confirm_delete = Some(selected);
            model.status = Some("delete this message? y deletes, any other key keeps it".into());
        }
        KeyCode::Char('y') if !deleted => {
            commands.push(Command::Copy(text));
            model.status = Some("copied".into());
        }
        KeyCode::Enter => match reply_to {
            Some(original) if ids.contains(&original) => {
                model.selected = Some(original);
                model.status = Some(SELECTION_HINT.into());
            }
            Some(original) => {
                model.status = Some(format!("message {original} is not loaded: scroll up"));
            }
            None => model.status = Some("not a reply".into()),
        },
        _ => model.status = Some(SELECTION_HINT.into()),
    }
}

/// Leaves selection to write a reply, an edit or a reaction in the input.
fn start_compose(model: &mut Model, compose: Compose, text: &str) {
    model.selected = None;
    model.compose = compose;
    model.input.text = text.to_owned();
    model.input.cursor = text.chars().count();
    model.input.recalled = None;
    if let Compose::React(_) = compose {
        model.status = Some("an emoji or :shortcode: (Tab completes), Enter reacts".into());
    }
}

/// Scrolled near the top of what is loaded: ask the server for the page before it.
fn load_older_if_needed(model: &Model, commands: &mut Vec<Command>) {
    if let Some(room) = model.current_room() {
        if !room.complete && model.scroll + 20 >= room.messages.len() {
            commands.push(Command::History {
                room: room.summary.room,
                before: room.messages.first().map(|m| m.seq),
            });
        }
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
        help::commands().iter().map(|c| format!("{c} ")).collect()
    } else if word.starts_with(':') {
        crate::emoji::complete(word.trim_matches(':')).into_iter().collect()
    } else if word.starts_with('#') {
        model.state.rooms.iter().map(|r| format!("#{} ", r.summary.name)).collect()
    } else {
        let members = model.current_room().map(|r| r.members.clone()).unwrap_or_default();
        let suffix = if start == 0 { ": " } else { " " };
        members.iter().map(|u| format!("{}{suffix}", model.state.name(*u))).collect()
    };
    let lower = word.to_lowercase();
    if let Some(found) = candidates.iter().find(|c| c.to_lowercase().starts_with(&lower)) {
        let rest: String = model.input.text.chars().skip(model.input.cursor).collect();
        model.input.text = format!("{}{found}{rest}", &text[..start]);
        model.input.cursor = text[..start].chars().count() + found.chars().count();
    }
}

/// Enter on a reply, an edit or a reaction being written.
fn submit_composed(
    model: &mut Model,
    room: RoomId,
    compose: Compose,
    text: &str,
    commands: &mut Vec<Command>,
) {
    match compose {
        Compose::Reply(target) => {
            commands.push(Command::Typing(room, TypingState::Stopped));
            commands.push(Command::Send { room, text: text.to_owned(), reply_to: Some(target) });
        }
        Compose::Edit(target) => {
            commands.push(Command::Edit { room, target, text: text.to_owned() })
        }
        Compose::React(target) => match crate::emoji::resolve(text) {
            Some(emoji) => commands.push(Command::React { room, target, emoji }),
            None => {
                // Kept, to fix.
                start_compose(model, compose, text);
                model.status = Some(format!("{text} is not an emoji or :shortcode:"));
            }
        },
        Compose::Message => {}
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
    let room = model.current_room().map(|r| r.summary.room);
    // While a reply or an edit is written, a line that starts with `/` is still a command
    // (the reply or edit waits); a reaction is whatever was typed.
    let command_line = trimmed.starts_with('/') && !matches!(model.compose, Compose::React(_));
    if let (Some(room), false) = (room, command_line) {
        if let compose @ (Compose::Reply(_) | Compose::Edit(_) | Compose::React(_)) =
            std::mem::take(&mut model.compose)
        {
            return submit_composed(model, room, compose, trimmed, commands);
        }
    }
    if model.input.history.last().map(String::as_str) != Some(trimmed) {
        model.input.history.push(trimmed.to_owned());
    }
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
        "help" if rest.is_empty() => model.help = Some(0),
        "help" => {
            model.status = Some(help::one(rest).unwrap_or_else(|| format!("no command /{rest}")))
        }
        "join" | "j" if !rest.is_empty() => {
            let name = rest.trim_start_matches('#');
            match model.room_index(name, false) {
                Some(index) => model.select(index, commands),
                None => {
                    model.switch_to = Some((name.to_owned(), false));
                    commands.push(Command::Join(name.to_owned()));
                }
            }
        }
        "leave" | "part" => {
            if let Some(room) = need_room(model) {
                commands.push(Command::Leave(room));
            }
        }
        "dm" | "query" if !rest.is_empty() => {
            let name = rest.trim_start_matches('@');
            match model.room_index(name, true) {
                Some(index) => model.select(index, commands),
                None => {
                    model.switch_to = Some((name.to_owned(), true));
                    commands.push(Command::Dm(name.to_owned()));
                }
            }
        }
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
                "react" => match crate::emoji::resolve(&tail) {
                    Some(emoji) => Command::React { room, target, emoji },
                    None => {
                        model.status = Some(format!("{tail} is not an emoji or :shortcode:"));
                        return;
                    }
                },
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
        "voice" => toggle_voice(model, commands),
        "mute" if rest.is_empty() => toggle_mute(model, commands),
        "hand" => match model.voice.as_mut().filter(|c| c.joined) {
            Some(call) => {
                call.hand = !call.hand;
                let raise = call.hand;
                commands.push(Command::RaiseHand { room: call.room, raise });
                model.status = Some(if raise { "hand raised" } else { "hand lowered" }.into());
            }
            None => model.status = Some("not in voice".into()),
        },
        "kick" | "ban" | "unban" | "mute" | "unmute" | "grant" | "revoke" => {
            let (who, why) = rest.split_once(' ').map_or((rest, ""), |(w, r)| (w, r.trim()));
            let who = who.trim_start_matches('@');
            match (need_room(model), model.user_named(who)) {
                (Some(_), _) if who.is_empty() => {
                    model.status = Some(format!("usage: /{name} USER"));
                }
                (Some(room), Some(user)) => commands.push(Command::Moderate {
                    room,
                    user,
                    name: who.to_owned(),
                    act: match name {
                        "kick" => Moderation::Kick(why.to_owned()),
                        "ban" => Moderation::Ban(why.to_owned()),
                        "unban" => Moderation::Unban,
                        "mute" => Moderation::Voice(VoiceAction::ServerMute),
                        "unmute" => Moderation::Voice(VoiceAction::ServerUnmute),
                        "grant" => Moderation::Voice(VoiceAction::GrantSpeak),
                        _ => Moderation::Voice(VoiceAction::RevokeSpeak),
                    },
                }),
                (Some(_), None) => model.status = Some(format!("no user {who} seen here")),
                (None, _) => {}
            }
        }
        "slow" => {
            let seconds = match rest {
                "off" | "0" => Some(0),
                _ => rest.trim_end_matches('s').parse().ok(),
            };
            match (need_room(model), seconds) {
                (Some(room), Some(s)) => {
                    commands.push(Command::Configure { room, slow_mode_s: Some(s), locked: None });
                }
                (Some(_), None) => model.status = Some("usage: /slow SECONDS|off".into()),
                (None, _) => {}
            }
        }
        "lock" | "unlock" => {
            if let Some(room) = need_room(model) {
                let locked = Some(name == "lock");
                commands.push(Command::Configure { room, slow_mode_s: None, locked });
            }
        }
        "audit" => {
            if let Some(room) = need_room(model) {
                commands.push(Command::Audit(room));
            }
        }
        "keys" => match rest.split_once(' ') {
            None if rest.is_empty() => commands.push(Command::Keys { remove: None }),
            Some(("remove", key)) => {
                commands.push(Command::Keys { remove: Some(key.trim().to_owned()) });
            }
            _ => model.status = Some("usage: /keys [remove PUBLIC_KEY]".into()),
        },
        "invite" => {
            if let Some(room) = need_room(model) {
                let username = (!rest.is_empty()).then(|| rest.trim_start_matches('@').to_owned());
                commands.push(Command::Invite { room, username });
            }
        }
        "accept" if !rest.is_empty() => commands.push(Command::AcceptInvite(rest.to_owned())),
        "search" if !rest.is_empty() => {
            model.selected = None;
            model.search = Some(SearchView {
                query: rest.to_owned(),
                hits: Vec::new(),
                selected: 0,
                next: None,
                loading: true,
            });
            commands.push(Command::Search { query: rest.to_owned(), cursor: None });
        }
        "search" => model.status = Some("usage: /search QUERY".into()),
        "anon" if !rest.is_empty() => {
            if let Some(room) = need_room(model) {
                commands.push(Command::SendAnonymous { room, text: rest.to_owned() });
            }
        }
        "upload" => match need_room(model) {
            Some(room) if !rest.is_empty() => {
                commands.push(Command::Upload { room, path: rest.to_owned() });
            }
            Some(_) => model.status = Some("usage: /upload PATH".into()),
            None => {}
        },
        "download" => match (need_room(model), seq_and(rest)) {
            (Some(room), Some((seq, path))) => commands.push(Command::Download {
                room,
                seq,
                path: (!path.is_empty()).then_some(path),
            }),
            (Some(_), None) => model.status = Some("usage: /download SEQ [PATH]".into()),
            (None, _) => {}
        },
        "friend" | "unfriend" | "block" | "unblock" if !rest.is_empty() => {
            let action = match name {
                "friend" => ContactAction::Request,
                "unfriend" => ContactAction::Remove,
                "block" => ContactAction::Block,
                _ => ContactAction::Unblock,
            };
            commands.push(Command::Contact(rest.trim_start_matches('@').to_owned(), action));
        }
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
            slow_mode_s: 0,
            locked: false,
            anonymous: false,
            stage: false,
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

    /// A search hit by Ada: `snippet`, with the byte ranges `matched` marked.
    pub(crate) fn hit(room: u64, seq: u64, snippet: &str, matched: &[(u32, u32)]) -> SearchHit {
        use banter_protocol::bounded::List;
        use banter_protocol::message::Highlight;
        let highlights = matched.iter().map(|&(start, end)| Highlight { start, end }).collect();
        SearchHit {
            room: RoomId(room),
            seq,
            sender: ADA,
            ts: Timestamp(1_790_000_000_000 + seq * 1000),
            file: false,
            snippet: Text::new(snippet).unwrap(),
            highlights: List::new(highlights).unwrap(),
        }
    }

    /// A HISTORY page of Ada's messages `seqs` in `room`, newest first, as the server sends it.
    fn page(room: u64, seqs: std::ops::RangeInclusive<u64>, complete: bool) -> Action {
        use banter_protocol::message::HistoryMessage;
        let page = seqs
            .rev()
            .map(|seq| {
                HistoryMessage {
                    meta: EventMeta { room: RoomId(room), seq, ts: Timestamp(seq), sender: ADA },
                    reply_to: None,
                    text: Text::new(format!("message {seq}")).unwrap(),
                    edited: None,
                    deleted_by: None,
                    reactions: Default::default(),
                }
                .into()
            })
            .collect();
        Action::HistoryLoaded { room: RoomId(room), page, complete }
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
        model.state.names.insert(ADA, "ada".into());
        model
    }

    #[test]
    fn search_results_page_at_the_bottom_and_enter_shows_the_hit_in_its_room() {
        let mut model = model_with_rooms();
        let general = RoomId(1);
        update(&mut model, page(1, 101..=150, false));
        let lunch = |cursor| Command::Search { query: "lunch".into(), cursor };
        assert_eq!(typed(&mut model, "/search lunch"), [lunch(None)]);
        assert!(model.search.as_ref().is_some_and(|v| v.loading && v.hits.is_empty()));
        let cursor = SearchCursor { ts: Timestamp(20), room: general, seq: 20 };
        let first = vec![hit(1, 130, "lunch at noon", &[(0, 5)]), hit(1, 20, "lunch?", &[(0, 5)])];
        let answer = Ok((first, Some(cursor.clone())));
        update(&mut model, Action::Searched { query: "lunch".into(), answer });

        // Down to the last hit asks for the next page, once; an answer to another query is
        // not this view's.
        assert_eq!(keys(&mut model, &[KeyCode::Down]), [lunch(Some(cursor))]);
        assert_eq!(keys(&mut model, &[KeyCode::Down, KeyCode::PageDown]), []);
        let stale = Ok((vec![hit(2, 1, "other", &[])], None));
        update(&mut model, Action::Searched { query: "other".into(), answer: stale });
        let last = Ok((vec![hit(2, 3, "lunch!", &[(0, 5)])], None));
        update(&mut model, Action::Searched { query: "lunch".into(), answer: last });
        let view = model.search.as_ref().unwrap();
        assert_eq!(view.hits.iter().map(|h| h.seq).collect::<Vec<_>>(), [130, 20, 3]);
        assert_eq!(keys(&mut model, &[KeyCode::End]), [], "no more pages");
        assert_eq!(model.search.as_ref().unwrap().selected, 2);

        // Enter on #20 of general: there, history loaded page by page back to it, selected.
        let commands = keys(&mut model, &[KeyCode::Up, KeyCode::Enter]);
        assert_eq!(model.search, None);
        assert_eq!(model.current, Some(general));
        assert!(
            commands.contains(&Command::History { room: general, before: Some(101) }),
            "{commands:?}"
        );
        assert_eq!(model.selected, None);
        assert_eq!(
            update(&mut model, page(1, 51..=100, false)),
            [Command::History { room: general, before: Some(51) }]
        );
        assert_eq!(update(&mut model, page(1, 1..=50, true)), []);
        assert_eq!(model.selected, Some(20));
        assert_eq!(model.status.as_deref(), Some(SELECTION_HINT));

        // A hit already loaded is selected at once; one in a room we are not in is not ours
        // to open; Esc closes.
        keys(&mut model, &[KeyCode::Esc]);
        typed(&mut model, "/search noon");
        let answer =
            Ok((vec![hit(1, 130, "lunch at noon", &[(9, 13)]), hit(9, 1, "x", &[])], None));
        update(&mut model, Action::Searched { query: "noon".into(), answer });
        keys(&mut model, &[KeyCode::Down]);
        assert_eq!(keys(&mut model, &[KeyCode::Enter]), []);
        assert!(model.status.as_deref().unwrap().starts_with("not a member of room 9"));
        assert!(model.search.is_some());
        let commands = keys(&mut model, &[KeyCode::Up, KeyCode::Enter]);
        assert!(!commands.iter().any(|c| matches!(c, Command::History { .. })), "{commands:?}");
        assert_eq!((model.selected, model.search.is_none()), (Some(130), true));
        typed(&mut model, "/search noon");
        keys(&mut model, &[KeyCode::Esc]);
        assert_eq!(model.search, None);
    }

    #[test]
    fn a_failed_search_says_why_in_the_status_line() {
        let mut model = model_with_rooms();
        typed(&mut model, "/search lunch");
        let error = "refused (UNSUPPORTED_EXTENSION): this server has no search".to_owned();
        update(&mut model, Action::Searched { query: "lunch".into(), answer: Err(error) });
        assert_eq!(model.search, None, "nothing to show");
        assert_eq!(
            model.status.as_deref(),
            Some("search: refused (UNSUPPORTED_EXTENSION): this server has no search")
        );
        assert_eq!(typed(&mut model, "/search"), []);
        assert_eq!(model.status.as_deref(), Some("usage: /search QUERY"));
        // Typing goes to the input while the results are open: a new search replaces them.
        typed(&mut model, "/search a");
        let commands = typed(&mut model, "/search b");
        assert_eq!(commands, [Command::Search { query: "b".into(), cursor: None }]);
        assert_eq!(model.search.as_ref().unwrap().query, "b");
    }

    #[test]
    fn rooms_sort_by_category_and_unread_counts_grow_outside_the_current_room() {
        let mut model = model_with_rooms();
        assert_eq!(model.state.rooms[0].summary.name.as_str(), "random", "no category sorts first");
        assert_eq!(model.current, Some(RoomId(2)));
        update(&mut model, Action::Entry(posted(1, 1, ADA, "hi @grace")));
        assert_eq!(model.attention(RoomId(1)).unread, 1);
        assert_eq!(model.attention(RoomId(1)).mentions, 1);
        assert!(model.bell, "a mention rings the bell");
        // Alt+2 jumps there, clears the counts and marks it read.
        let commands =
            update(&mut model, Action::Key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::ALT)));
        assert_eq!(model.current, Some(RoomId(1)));
        assert_eq!(model.attention(RoomId(1)).unread, 0);
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
    fn moderation_commands_name_users_this_client_has_seen() {
        let mut model = model_with_rooms();
        let room = model.current.unwrap();
        model.state.names.insert(ADA, "ada".into());
        let moderate = |act| Command::Moderate { room, user: ADA, name: "Ada".into(), act };
        assert_eq!(
            typed(&mut model, "/kick Ada spamming links"),
            vec![moderate(Moderation::Kick("spamming links".into()))]
        );
        assert_eq!(typed(&mut model, "/ban Ada"), vec![moderate(Moderation::Ban(String::new()))]);
        assert_eq!(typed(&mut model, "/unban Ada"), vec![moderate(Moderation::Unban)]);
        assert_eq!(
            typed(&mut model, "/mute @Ada"),
            vec![Command::Moderate {
                room,
                user: ADA,
                name: "Ada".into(),
                act: Moderation::Voice(VoiceAction::ServerMute)
            }]
        );
        assert!(typed(&mut model, "/kick nobody").is_empty());
        assert_eq!(model.status.as_deref(), Some("no user nobody seen here"));
        let configure = |slow_mode_s, locked| Command::Configure { room, slow_mode_s, locked };
        assert_eq!(typed(&mut model, "/slow 30"), vec![configure(Some(30), None)]);
        assert_eq!(typed(&mut model, "/slow off"), vec![configure(Some(0), None)]);
        assert!(typed(&mut model, "/slow soon").is_empty());
        assert_eq!(typed(&mut model, "/lock"), vec![configure(None, Some(true))]);
        assert_eq!(typed(&mut model, "/unlock"), vec![configure(None, Some(false))]);
        assert_eq!(typed(&mut model, "/audit"), vec![Command::Audit(room)]);
    }

    #[test]
    fn invites_and_contacts_from_the_input_line_and_contact_news_in_the_status_line() {
        let mut model = model_with_rooms();
        let room = model.current.unwrap();
        assert_eq!(
            typed(&mut model, "/invite @carol"),
            vec![Command::Invite { room, username: Some("carol".into()) }]
        );
        assert_eq!(typed(&mut model, "/invite"), vec![Command::Invite { room, username: None }]);
        assert_eq!(typed(&mut model, "/keys"), vec![Command::Keys { remove: None }]);
        assert_eq!(
            typed(&mut model, "/keys remove 00ff"),
            vec![Command::Keys { remove: Some("00ff".into()) }]
        );
        assert!(typed(&mut model, "/keys bogus").is_empty());
        assert_eq!(model.status.as_deref(), Some("usage: /keys [remove PUBLIC_KEY]"));
        assert_eq!(
            typed(&mut model, "/accept k7q2m9xw4h"),
            vec![Command::AcceptInvite("k7q2m9xw4h".into())]
        );
        assert_eq!(
            typed(&mut model, "/upload ~/notes.txt"),
            vec![Command::Upload { room, path: "~/notes.txt".into() }]
        );
        assert_eq!(
            typed(&mut model, "/download 42"),
            vec![Command::Download { room, seq: 42, path: None }]
        );
        assert_eq!(
            typed(&mut model, "/download #42 copy.txt"),
            vec![Command::Download { room, seq: 42, path: Some("copy.txt".into()) }]
        );
        assert!(typed(&mut model, "/download soon").is_empty());
        assert_eq!(
            typed(&mut model, "/anon who ate the cake?"),
            vec![Command::SendAnonymous { room, text: "who ate the cake?".into() }]
        );
        assert_eq!(
            typed(&mut model, "/friend ada"),
            vec![Command::Contact("ada".into(), ContactAction::Request)]
        );
        assert_eq!(
            typed(&mut model, "/block ada"),
            vec![Command::Contact("ada".into(), ContactAction::Block)]
        );
        let request = banter_protocol::message::Contact {
            user: ADA,
            username: Text::new("ada").unwrap(),
            state: Some(ContactState::Incoming),
        };
        update(&mut model, Action::Ephemeral(request.into()));
        assert_eq!(model.status.as_deref(), Some("ada asks to be friends: /friend ada to accept"));
    }

    #[test]
    fn a_post_refused_for_good_is_no_longer_pending() {
        let mut model = model_with_rooms();
        let room = model.current.unwrap();
        update(&mut model, Action::Queued { client_msg_id: 7, room, text: "hi".into() });
        assert_eq!(model.pending.len(), 1);
        let error = "the room is locked: only moderators may post (ROOM_LOCKED)".to_owned();
        update(&mut model, Action::SendFailed { client_msg_id: 7, error: error.clone() });
        assert!(model.pending.is_empty());
        assert_eq!(model.status, Some(error));
    }

    #[test]
    fn the_audit_log_and_refusals_show_in_the_status_line() {
        let mut model = model_with_rooms();
        model.state.names.insert(ADA, "ada".into());
        let entry = AuditEntry {
            id: 2,
            ts: Timestamp(0),
            actor: GRACE,
            action: banter_protocol::message::AuditAction::KICK,
            room: model.current,
            target: Some(ADA),
            reason: Text::new("spam").unwrap(),
        };
        let console = AuditEntry {
            id: 1,
            ts: Timestamp(0),
            actor: UserId(0),
            action: banter_protocol::message::AuditAction(99),
            room: None,
            target: None,
            reason: Text::default(),
        };
        update(&mut model, Action::AuditLoaded(vec![entry, console]));
        assert_eq!(model.status.as_deref(), Some("audit: grace kick ada (spam) · (console) 99"));
        update(&mut model, Action::Failed("not allowed: your role does not permit this".into()));
        assert_eq!(model.status.as_deref(), Some("not allowed: your role does not permit this"));
    }

    #[test]
    fn input_edits_recalls_history_and_completes_nicks_and_commands() {
        let mut model = model_with_rooms();
        model.state.rooms[0].members = vec![ADA, GRACE];
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
    fn scrolling_back_loads_older_history_and_f2_toggles_the_mouse() {
        let mut model = model_with_rooms();
        let commands = update(&mut model, Action::Scroll(2));
        assert_eq!(model.scroll, 6);
        assert_eq!(commands, vec![Command::History { room: RoomId(2), before: None }]);
        update(&mut model, Action::Scroll(-5));
        assert_eq!(model.scroll, 0);
        assert!(model.mouse);
        assert_eq!(update(&mut model, key(KeyCode::F(2))), vec![Command::Mouse(false)]);
        assert!(!model.mouse);
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
        let reaction = &model.state.rooms[0].messages[0].reactions[0];
        assert_eq!((reaction.emoji.as_str(), reaction.count, reaction.mine), ("👍", 1, true));
        update(
            &mut model,
            Action::Ephemeral(
                Presence { user: ADA, status: PresenceStatus::Away, text: Text::default() }.into(),
            ),
        );
        assert_eq!(model.state.presence[&ADA], PresenceStatus::Away);
        update(&mut model, Action::Tick(1000));
        update(
            &mut model,
            Action::Ephemeral(
                Typing { room: RoomId(2), user: ADA, state: TypingState::Active }.into(),
            ),
        );
        assert_eq!(model.typists(), vec!["ada".to_owned()]);
        update(&mut model, Action::Tick(1000 + 6_001));
        assert!(model.typists().is_empty(), "typing expires without a stop");
    }

    /// The model in a call in the voice room "random" (room 2), joined, with Ada in voice.
    pub(crate) fn model_in_call(hold_to_talk: bool) -> Model {
        use banter_protocol::bounded::List;
        use banter_protocol::ids::SourceId;
        use banter_protocol::message::{CodecParams, VoiceParticipant, VoiceState};
        let mut model = model_with_rooms();
        model.hold_to_talk = hold_to_talk;
        model.state.rooms[0].summary.voice = true;
        assert_eq!(typed(&mut model, "/voice"), [Command::VoiceJoin { room: RoomId(2), call: 1 }]);
        let participant = |user, source| VoiceParticipant {
            user,
            source: SourceId(source),
            state: VoiceState {
                self_mute: false,
                self_deaf: false,
                server_mute: false,
                suppressed: false,
                requested_to_speak: None,
            },
        };
        let joined = VoiceJoined {
            room: RoomId(2),
            source: SourceId(8),
            codec: CodecParams {
                codec: Text::new("opus").unwrap(),
                sample_rate: 48_000,
                channels: 1,
                frame_ms: 20,
                max_bitrate: 64_000,
            },
            roster: List::new(vec![participant(ADA, 7), participant(GRACE, 8)]).unwrap(),
        };
        update(&mut model, Action::VoiceJoined { call: 1, joined, note: None });
        model
    }

    #[test]
    fn voice_joins_talks_mutes_and_leaves_from_keys_and_commands() {
        let mut model = model_with_rooms();
        assert_eq!(typed(&mut model, "/voice"), []);
        assert_eq!(model.status.as_deref(), Some("random has no voice"));
        let mut model = model_in_call(false);
        let call = model.voice.clone().unwrap();
        assert!(call.joined && !call.talking);
        assert_eq!(model.state.voice_roster(RoomId(2)).len(), 2, "the roster of VOICE_JOINED");
        // Without key releases, F4 toggles talking.
        assert_eq!(update(&mut model, key(TALK_KEY)), [Command::Talk(true)]);
        assert_eq!(update(&mut model, key(TALK_KEY)), [Command::Talk(false)]);
        update(&mut model, key(TALK_KEY));
        // Muting stops the microphone first; talking is refused while muted.
        let room = RoomId(2);
        assert_eq!(
            update(&mut model, key(MUTE_KEY)),
            [Command::Talk(false), Command::VoiceSelf { room, mute: true, deaf: false }]
        );
        assert_eq!(update(&mut model, key(TALK_KEY)), []);
        assert_eq!(model.status.as_deref(), Some("muted: F5 to unmute"));
        // Deafening mutes too; unmuting undeafens.
        assert_eq!(
            update(&mut model, key(DEAFEN_KEY)),
            [Command::VoiceSelf { room, mute: true, deaf: true }]
        );
        assert_eq!(
            typed(&mut model, "/mute"),
            [Command::VoiceSelf { room, mute: false, deaf: false }]
        );
        assert_eq!(typed(&mut model, "/hand"), [Command::RaiseHand { room, raise: true }]);
        assert_eq!(
            typed(&mut model, "/grant ada"),
            [Command::Moderate {
                room,
                user: ADA,
                name: "ada".into(),
                act: Moderation::Voice(VoiceAction::GrantSpeak)
            }]
        );
        // /voice again leaves; news of the call ending clears it, news of an older one not.
        assert_eq!(typed(&mut model, "/voice"), [Command::VoiceLeave]);
        update(&mut model, Action::VoiceLeft { call: 0, end: CallEnd::Left });
        assert!(model.voice.is_some());
        update(&mut model, Action::VoiceLeft { call: 1, end: CallEnd::Left });
        assert_eq!(model.voice, None);
        assert!(model.state.voice_roster(room).is_empty());
        assert_eq!(model.status.as_deref(), Some("left voice"));
    }

    #[test]
    fn where_the_terminal_reports_releases_the_talk_key_is_held() {
        let mut model = model_in_call(true);
        let with_kind =
            |kind| Action::Key(KeyEvent::new_with_kind(TALK_KEY, KeyModifiers::NONE, kind));
        assert_eq!(update(&mut model, with_kind(KeyEventKind::Press)), [Command::Talk(true)]);
        assert_eq!(update(&mut model, with_kind(KeyEventKind::Repeat)), []);
        assert_eq!(update(&mut model, with_kind(KeyEventKind::Press)), [], "still held");
        assert_eq!(update(&mut model, with_kind(KeyEventKind::Release)), [Command::Talk(false)]);
        // Other keys' releases do nothing (no double typing).
        let release =
            KeyEvent::new_with_kind(KeyCode::Char('x'), KeyModifiers::NONE, KeyEventKind::Release);
        update(&mut model, Action::Key(release));
        assert_eq!(model.input.text, "");
    }

    #[test]
    fn a_call_lost_with_the_connection_is_joined_again_when_it_is_back() {
        let mut model = model_in_call(false);
        update(&mut model, Action::Connection(ConnectionState::Connected, 0));
        update(&mut model, Action::VoiceLeft { call: 1, end: CallEnd::Lost });
        assert_eq!(model.voice, None);
        update(&mut model, Action::Connection(ConnectionState::Connecting { attempt: 1 }, 0));
        let commands = update(&mut model, Action::Connection(ConnectionState::Connected, 0));
        assert!(
            commands.contains(&Command::VoiceJoin { room: RoomId(2), call: 2 }),
            "{commands:?}"
        );
        // Once only; and a refused or left call is not joined again.
        update(&mut model, Action::VoiceLeft { call: 2, end: CallEnd::Failed("no".into()) });
        update(&mut model, Action::Connection(ConnectionState::Connecting { attempt: 1 }, 0));
        let commands = update(&mut model, Action::Connection(ConnectionState::Connected, 0));
        assert!(!commands.iter().any(|c| matches!(c, Command::VoiceJoin { .. })), "{commands:?}");
    }

    #[test]
    fn a_reconnect_forgets_who_was_online_until_the_server_says_again() {
        use banter_client::protocol::message::{Presence, PresenceStatus};
        let mut model = model_in_call(false);
        update(&mut model, Action::Connection(ConnectionState::Connected, 0));
        let online =
            |user| Presence { user, status: PresenceStatus::Online, text: Text::default() };
        update(&mut model, Action::Ephemeral(online(UserId(8)).into()));
        update(&mut model, Action::Ephemeral(online(UserId(9)).into()));
        update(&mut model, Action::Connection(ConnectionState::Connecting { attempt: 1 }, 0));
        assert_eq!(model.state.presence.len(), 2, "kept while away, for the screen");
        // Back: the server names who is online now; 9 left meanwhile and is not named.
        update(&mut model, Action::Connection(ConnectionState::Connected, 0));
        update(&mut model, Action::Ephemeral(online(UserId(8)).into()));
        assert_eq!(model.state.presence.keys().collect::<Vec<_>>(), [&UserId(8)]);
    }

    fn reply(room: u64, seq: u64, sender: UserId, text: &str, to: u64) -> Message {
        let Message::Posted(mut posted) = posted(room, seq, sender, text) else { unreachable!() };
        posted.reply_to = Some(to);
        posted.into()
    }

    fn keys(model: &mut Model, codes: &[KeyCode]) -> Vec<Command> {
        codes.iter().flat_map(|code| update(model, key(*code))).collect()
    }

    /// Types `text` without pressing Enter.
    fn write(model: &mut Model, text: &str) {
        for c in text.chars() {
            update(model, key(KeyCode::Char(c)));
        }
    }

    #[test]
    fn selected_messages_are_replied_to_edited_deleted_reacted_to_and_copied_by_keys() {
        let mut model = model_with_rooms();
        let room = RoomId(2);
        update(&mut model, Action::Entry(posted(2, 1, ADA, "hello")));
        update(&mut model, Action::Entry(posted(2, 2, GRACE, "mine")));
        update(&mut model, Action::Entry(reply(2, 3, ADA, "re: hello", 1)));

        // Up on an empty input selects the newest message; Up walks back and, at the oldest
        // loaded one, fetches the page before it.
        keys(&mut model, &[KeyCode::Up]);
        assert_eq!(model.selected, Some(3));
        assert!(model.status.as_deref().unwrap().contains("r reply"));
        let commands = keys(&mut model, &[KeyCode::Up, KeyCode::Up, KeyCode::Up]);
        assert_eq!(model.selected, Some(1));
        assert!(commands.contains(&Command::History { room, before: Some(1) }), "{commands:?}");

        // e on our own message: the input holds its text, Enter edits it.
        keys(&mut model, &[KeyCode::Down, KeyCode::Char('e')]);
        assert_eq!((model.selected, model.compose), (None, Compose::Edit(2)));
        assert_eq!(model.input.text, "mine");
        write(&mut model, " too");
        let commands = keys(&mut model, &[KeyCode::Enter]);
        assert_eq!(commands, vec![Command::Edit { room, target: 2, text: "mine too".into() }]);
        assert_eq!(model.compose, Compose::Message);

        // Not someone else's; r writes a reply to it.
        keys(&mut model, &[KeyCode::Up, KeyCode::Char('e')]);
        assert_eq!(model.compose, Compose::Message);
        assert!(model.status.as_deref().unwrap().contains("only edit your own"));
        keys(&mut model, &[KeyCode::Char('r')]);
        assert_eq!(model.compose, Compose::Reply(3));
        write(&mut model, "ok");
        let commands = keys(&mut model, &[KeyCode::Enter]);
        assert!(commands.contains(&Command::Send { room, text: "ok".into(), reply_to: Some(3) }));

        // Enter on a reply jumps to the original; + reacts, with :shortcode: completion.
        keys(&mut model, &[KeyCode::Up, KeyCode::Enter]);
        assert_eq!(model.selected, Some(1));
        keys(&mut model, &[KeyCode::Char('+')]);
        assert_eq!((model.compose, model.input.text.as_str()), (Compose::React(1), ":"));
        write(&mut model, "thumbsu");
        keys(&mut model, &[KeyCode::Tab]);
        assert_eq!(model.input.text, ":thumbsup:");
        let commands = keys(&mut model, &[KeyCode::Enter]);
        assert_eq!(commands, vec![Command::React { room, target: 1, emoji: "👍".into() }]);
        // Not an emoji: kept to fix.
        keys(&mut model, &[KeyCode::Up, KeyCode::Char(':')]);
        write(&mut model, "nosuch:");
        assert_eq!(keys(&mut model, &[KeyCode::Enter]), vec![]);
        assert_eq!(model.compose, Compose::React(3));
        assert!(model.status.as_deref().unwrap().contains("not an emoji"));
        keys(&mut model, &[KeyCode::Esc]);
        assert_eq!((model.compose, model.input.text.as_str()), (Compose::Message, ""));

        // d asks first: any key but y keeps the message.
        assert_eq!(keys(&mut model, &[KeyCode::Up, KeyCode::Char('d'), KeyCode::Char('n')]), []);
        assert_eq!(model.status.as_deref(), Some("not deleted"));
        let commands = keys(&mut model, &[KeyCode::Char('d'), KeyCode::Char('y')]);
        assert_eq!(commands, vec![Command::Delete { room, target: 3 }]);

        // y copies; Esc leaves the selection; Down past the newest does too.
        keys(&mut model, &[KeyCode::Up]);
        assert_eq!(keys(&mut model, &[KeyCode::Char('y')]), [Command::Copy("re: hello".into())]);
        keys(&mut model, &[KeyCode::Esc]);
        assert_eq!(model.selected, None);
        keys(&mut model, &[KeyCode::Up, KeyCode::Down]);
        assert_eq!(model.selected, None);
        // A click selects too.
        update(&mut model, Action::Click(2));
        assert_eq!(model.selected, Some(2));
    }

    #[test]
    fn join_switches_to_a_joined_room_and_help_opens_scrolls_and_closes() {
        let mut model = model_with_rooms();
        assert_eq!(model.current, Some(RoomId(2)));
        // Already in it: just switch, no request.
        assert_eq!(typed(&mut model, "/join #General"), [Command::MarkRead(RoomId(1), 0)][..0]);
        assert_eq!(model.current, Some(RoomId(1)));
        // A new one: joined, then shown once the room list has it.
        assert_eq!(typed(&mut model, "/j rust"), vec![Command::Join("rust".into())]);
        update(&mut model, Action::RoomsLoaded(vec![summary(7, "rust", "")]));
        assert_eq!(model.state.room(model.current.unwrap()).unwrap().summary.name.as_str(), "rust");
        // /query opens a direct room and shows it.
        assert_eq!(typed(&mut model, "/query ada"), vec![Command::Dm("ada".into())]);
        let mut dm = summary(9, "ada", "");
        dm.kind = RoomKind::Direct;
        update(&mut model, Action::RoomsLoaded(vec![dm]));
        assert_eq!(model.current, Some(RoomId(9)));
        assert_eq!(model.state.rooms.last().unwrap().summary.room, RoomId(9), "DMs list last");
        assert_eq!(typed(&mut model, "/part"), vec![Command::Leave(RoomId(9))]);

        typed(&mut model, "/help");
        assert_eq!(model.help, Some(0));
        keys(&mut model, &[KeyCode::Down, KeyCode::Down, KeyCode::Char('x')]);
        assert_eq!((model.help, model.input.text.as_str()), (Some(2), ""), "keys go to the help");
        keys(&mut model, &[KeyCode::Esc]);
        assert_eq!(model.help, None);
        keys(&mut model, &[KeyCode::F(1)]);
        assert_eq!(model.help, Some(0));
        keys(&mut model, &[KeyCode::Char('q')]);
        typed(&mut model, "/help react");
        assert!(model.status.as_deref().unwrap().starts_with("/react SEQ EMOJI"));
    }

    #[test]
    fn alt_u_selects_the_first_unread_message_and_mentions_notify_where_asked() {
        let mut model = model_with_rooms();
        model.notify = Notify::Osc777;
        model.state.set_highlights(&["deploy".into()]);
        update(&mut model, Action::Entry(posted(1, 1, ADA, "old")));
        update(&mut model, Action::Entry(posted(1, 2, ADA, "new one")));
        let commands = update(&mut model, Action::Entry(posted(1, 3, ADA, "deploy is done")));
        assert!(commands.contains(&Command::Notify {
            how: Notify::Osc777,
            title: "banter: general".into(),
            body: "ada: deploy is done".into(),
        }));
        assert!(model.bell);
        model.state.rooms[1].summary.read_seq = 1;
        update(&mut model, Action::Key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::ALT)));
        update(&mut model, Action::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::ALT)));
        assert_eq!(model.selected, Some(2));
        model.notify = Notify::Off;
        let commands = update(&mut model, Action::Entry(posted(1, 4, ADA, "@grace hi")));
        assert!(!commands.iter().any(|c| matches!(c, Command::Notify { .. })));
    }

    #[test]
    fn call_keys_and_quit_work_in_selection_and_help_and_commands_while_replying() {
        let mut model = model_in_call(false);
        update(&mut model, Action::Entry(posted(2, 1, ADA, "hello")));
        keys(&mut model, &[KeyCode::Up]);
        assert_eq!(model.selected, Some(1));
        let commands = keys(&mut model, &[KeyCode::F(5)]);
        assert!(commands.iter().any(|c| matches!(c, Command::VoiceSelf { mute: true, .. })));
        assert_eq!(model.selected, Some(1), "still selected");
        keys(&mut model, &[KeyCode::Char('r')]);
        assert_eq!(
            typed(&mut model, "/away lunch"),
            vec![Command::Presence(PresenceStatus::Away, "lunch".into())]
        );
        assert_eq!(model.compose, Compose::Reply(1), "the reply waits");
        keys(&mut model, &[KeyCode::F(1)]);
        let quit = update(
            &mut model,
            Action::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        );
        assert_eq!(quit, vec![Command::Quit]);
        // A click under the help overlay selects nothing.
        model.selected = None;
        update(&mut model, Action::Click(1));
        assert_eq!(model.selected, None);
    }
}
