//! The interactive terminal client: `banter` with no subcommand, in a terminal.
//!
//! Three inputs feed one loop: terminal events (read on their own thread, so the network
//! never blocks drawing and drawing never blocks the network), the [`Client`]'s updates, and
//! the results of requests the loop started. Each becomes an [`Action`] for the pure
//! [`model::update`]; the [`Command`]s it returns run as tasks whose results come back as
//! actions. The screen is redrawn after every action.

mod call;
mod help;
pub(crate) mod model;
pub(crate) mod view;

use std::io::Write as _;
use std::time::Duration;

use banter_client::{Client, Update};
use banter_protocol::bounded::Text;
use banter_protocol::ids::RoomId;
use banter_protocol::message::{
    AuditQuery, Ban, ContactSet, Delete, DmOpen, Edit, History, InviteCreate, InviteUse, Kick,
    MarkRead, Message, PresenceSet, React, RoomConfigure, RoomInvite, RoomJoin, RoomLeave,
    RoomSetTopic, Search, SearchCursor, SearchHit, TypingSet, Unban, VoiceAction, VoiceModerate,
    VoiceRequestSpeak, VoiceSelf,
};
use crossterm::event::{
    Event as TermEvent, KeyEventKind, KeyboardEnhancementFlags, MouseEventKind,
    PopKeyboardEnhancementFlags, PushKeyboardEnhancementFlags,
};
use tokio::sync::mpsc;

use self::call::CallTask;
use self::model::{Action, Command, Model, Moderation};
use crate::profile::Notify;

/// Runs the TUI until /quit or Ctrl+C.
pub(crate) async fn run(
    client: Client,
    mut updates: mpsc::UnboundedReceiver<Update>,
    mut model: Model,
    mut on_credentials: impl FnMut(&banter_client::Credentials),
) -> std::io::Result<()> {
    let mut terminal = ratatui::init();
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::EnableBracketedPaste);
    // Where the terminal reports key releases, the talk key is held rather than toggled.
    model.hold_to_talk = crossterm::terminal::supports_keyboard_enhancement().unwrap_or(false);
    if model.hold_to_talk {
        let flags = KeyboardEnhancementFlags::REPORT_EVENT_TYPES;
        let _ = crossterm::execute!(std::io::stdout(), PushKeyboardEnhancementFlags(flags));
    }
    set_mouse(model.mouse);
    let (terminal_tx, mut terminal_events) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        while let Ok(event) = crossterm::event::read() {
            if terminal_tx.send(event).is_err() {
                return;
            }
        }
    });
    let (results_tx, mut results) = mpsc::unbounded_channel::<Action>();
    let mut call = None;
    let _ = execute(Command::ReloadRooms, &client, &results_tx, &mut call);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // Where each message sits on the screen, for mouse clicks.
    let mut on_screen = view::Placed::default();
    let outcome = loop {
        if let Err(error) = terminal.draw(|frame| on_screen = view::render(&model, frame)) {
            break Err(error);
        }
        if std::mem::take(&mut model.bell) {
            print!("\x07");
            let _ = std::io::stdout().flush();
        }
        let action = tokio::select! {
            Some(event) = terminal_events.recv() => match event {
                TermEvent::Key(key) if key.kind != KeyEventKind::Release || key.code == model::TALK_KEY => {
                    Some(Action::Key(key))
                }
                TermEvent::Paste(text) => Some(Action::Paste(text)),
                TermEvent::Mouse(mouse) => match mouse.kind {
                    MouseEventKind::ScrollUp => Some(Action::Scroll(1)),
                    MouseEventKind::ScrollDown => Some(Action::Scroll(-1)),
                    MouseEventKind::Down(crossterm::event::MouseButton::Left) => {
                        on_screen.message_at(mouse.column, mouse.row).map(Action::Click)
                    }
                    _ => None,
                },
                _ => None, // resize and the rest: just redraw
            },
            Some(update) = updates.recv() => match update {
                Update::Connection(state) => {
                    Some(Action::Connection(state, banter_client::wall_clock().0))
                }
                Update::Room(message) => Some(Action::Entry(message)),
                Update::Ephemeral(message) => Some(Action::Ephemeral(message)),
                Update::Credentials(credentials) => {
                    on_credentials(&credentials);
                    None
                }
                Update::Sent { client_msg_id, .. } => Some(Action::Sent { client_msg_id }),
                Update::SendFailed { client_msg_id, error } => {
                    Some(Action::SendFailed { client_msg_id, error })
                }
            },
            Some(action) = results.recv() => Some(action),
            _ = tick.tick() => Some(Action::Tick(banter_client::wall_clock().0)),
        };
        // Actions a command yields at once (a post's queueing) are applied before the next
        // event, so the post's outcome, which comes from the SDK, can never overtake them.
        let mut actions: std::collections::VecDeque<Action> = action.into_iter().collect();
        while let Some(action) = actions.pop_front() {
            for command in model::update(&mut model, action) {
                actions.extend(execute(command, &client, &results_tx, &mut call));
            }
        }
        if model.quit {
            break Ok(());
        }
    };
    if let Some(call) = call {
        call.leave();
    }
    // The server ends the session at once (nothing buffered for a client that quit).
    client.close().await;
    set_mouse(false);
    if model.hold_to_talk {
        let _ = crossterm::execute!(std::io::stdout(), PopKeyboardEnhancementFlags);
    }
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableBracketedPaste);
    ratatui::restore();
    outcome
}

/// Writes an escape sequence to the terminal, between frames.
fn terminal_write(sequence: &str) {
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(sequence.as_bytes());
    let _ = stdout.flush();
}

/// The escape sequence that asks the terminal for a desktop notification (OSC 777 or OSC 9).
/// Other users' text goes into it, so it keeps only printable characters: no control
/// characters (C0 and C1: no ESC, BEL or ST can end the sequence early), no format
/// characters (bidi overrides that would disguise the text), no `;` (a field separator of
/// both sequences).
fn notification(notify: Notify, title: &str, body: &str) -> String {
    let clean = |text: &str| -> String {
        text.chars()
            .filter(|c| !c.is_control() && *c != ';' && !is_format_char(*c))
            .take(200)
            .collect()
    };
    match notify {
        Notify::Off => String::new(),
        Notify::Osc777 => format!("\x1b]777;notify;{};{}\x07", clean(title), clean(body)),
        Notify::Osc9 => format!("\x1b]9;{}: {}\x07", clean(title), clean(body)),
    }
}

/// Unicode format characters (category Cf) that change how text reads: bidi controls,
/// zero-width characters and the like.
fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

fn set_mouse(on: bool) {
    let _ = if on {
        crossterm::execute!(std::io::stdout(), crossterm::event::EnableMouseCapture)
    } else {
        crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture)
    };
}

/// Starts a command; its result comes back as an action, at once (returned) where the command
/// finishes without waiting, else later through `results`. `call` is the voice call, if any.
fn execute(
    command: Command,
    client: &Client,
    results: &mpsc::UnboundedSender<Action>,
    call: &mut Option<CallTask>,
) -> Option<Action> {
    let queued = match &command {
        Command::Send { room, text, reply_to } => {
            Some((*room, text, client.send(*room, text, *reply_to)))
        }
        Command::SendAnonymous { room, text } => {
            Some((*room, text, client.send_anonymous(*room, text)))
        }
        _ => None,
    };
    if let Some((room, text, queued)) = queued {
        return Some(match queued {
            Ok(client_msg_id) => Action::Queued { client_msg_id, room, text: text.clone() },
            Err(error) => Action::Failed(error.to_string()),
        });
    }
    match command {
        Command::Quit => return None,
        Command::Mouse(on) => {
            set_mouse(on);
            return None;
        }
        Command::Copy(text) => {
            // OSC 52: the terminal puts it on the clipboard (over ssh and tmux too, where
            // allowed).
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            terminal_write(&format!("\x1b]52;c;{encoded}\x07"));
            return None;
        }
        Command::Notify { how, title, body } => {
            terminal_write(&notification(how, &title, &body));
            return None;
        }
        Command::VoiceJoin { room, call: id } => {
            if let Some(earlier) = call.take() {
                earlier.leave();
            }
            *call = Some(CallTask::start(client, room, id, results.clone()));
            return None;
        }
        Command::VoiceLeave => {
            if let Some(call) = call.take() {
                call.leave();
            }
            return None;
        }
        Command::Talk(on) => {
            if let Some(call) = call {
                call.talk(on);
            }
            return None;
        }
        _ => {}
    }
    let (client, results) = (client.clone(), results.clone());
    tokio::spawn(async move {
        let outcome = run_command(&client, command, &results).await;
        let action = match outcome {
            Ok(Some(action)) => action,
            Ok(None) => return,
            Err(error) => Action::Failed(error),
        };
        let _ = results.send(action);
    });
    None
}

fn text<const N: usize>(value: &str) -> Result<Text<N>, String> {
    Text::new(value).map_err(|e| e.to_string())
}

async fn rooms(client: &Client) -> Result<Action, String> {
    client.rooms().await.map(Action::RoomsLoaded).map_err(|e| e.to_string())
}

/// A page of search hits (`in:ROOM` and the rest are in the query).
async fn search(
    client: &Client,
    query: &str,
    cursor: Option<SearchCursor>,
) -> Result<(Vec<SearchHit>, Option<SearchCursor>), String> {
    let request = Search { cursor, ..Search::new(text(query)?, 50) };
    client.search(request).await.map_err(|e| e.to_string())
}

async fn find_room(client: &Client, name: &str) -> Result<RoomId, String> {
    let conn = client.connection().await.map_err(|e| e.to_string())?;
    match conn.find_room(name).await.map_err(|e| e.to_string())? {
        Some(room) => Ok(room.room),
        None => Err(format!("no room {name}")),
    }
}

/// Reports a transfer's progress as [`Action::Progress`] (the SDK calls it once per percent).
fn progress_reporter(
    what: String,
    results: &mpsc::UnboundedSender<Action>,
) -> impl Fn(u64, u64) + Send + Sync + use<> {
    let results = results.clone();
    move |done, total| {
        let _ = results.send(Action::Progress(what.clone(), done, total));
    }
}

async fn run_command(
    client: &Client,
    command: Command,
    results: &mpsc::UnboundedSender<Action>,
) -> Result<Option<Action>, String> {
    let request = |r: Message| async move { client.request(r).await.map_err(|e| e.to_string()) };
    match command {
        Command::ReloadRooms => rooms(client).await.map(Some),
        Command::Join(name) => {
            let room = find_room(client, &name).await?;
            request(RoomJoin { room }.into()).await?;
            rooms(client).await.map(Some)
        }
        Command::Dm(name) => {
            request(DmOpen { username: text(&name)? }.into()).await?;
            rooms(client).await.map(Some)
        }
        Command::Leave(room) => request(RoomLeave { room }.into()).await.map(|_| None),
        Command::Topic(room, topic) => {
            request(RoomSetTopic { room, topic: text(&topic)? }.into()).await.map(|_| None)
        }
        Command::React { room, target, emoji } => {
            request(React { room, target, emoji: text(&emoji)?, on: true }.into())
                .await
                .map(|_| None)
        }
        Command::Edit { room, target, text: body } => {
            request(Edit { room, target, text: text(&body)? }.into()).await.map(|_| None)
        }
        Command::Delete { room, target } => {
            request(Delete { room, target }.into()).await.map(|_| None)
        }
        Command::Presence(status, status_text) => {
            request(PresenceSet { status, text: text(&status_text)? }.into()).await.map(|_| None)
        }
        Command::Typing(room, state) => {
            // Best effort: a lost typing notice is harmless.
            let _ = client.request(TypingSet { room, state }).await;
            Ok(None)
        }
        Command::MarkRead(room, seq) => {
            let _ = client.request(MarkRead { room, seq, private: false }).await;
            Ok(None)
        }
        Command::History { room, before } => {
            let answer = request(History { room, before, limit: 50 }.into()).await?;
            let complete =
                matches!(answer.last(), Some(Message::PageEnd(end)) if end.next.is_none());
            let page = answer.into_iter().filter(|m| !matches!(m, Message::PageEnd(_))).collect();
            Ok(Some(Action::HistoryLoaded { room, page, complete }))
        }
        Command::Members(room) => {
            let members = client.members(room).await.map_err(|e| e.to_string())?;
            let members = members.into_iter().map(|m| (m.user, m.username.into_string())).collect();
            Ok(Some(Action::MembersLoaded { room, members }))
        }
        Command::Moderate { room, user, name, act } => {
            let (moderation, done): (Message, String) = match act {
                Moderation::Kick(reason) => {
                    (Kick { room, user, reason: text(&reason)? }.into(), format!("kicked {name}"))
                }
                Moderation::Ban(reason) => (
                    Ban { room, user, reason: text(&reason)?, until: None }.into(),
                    format!("banned {name}"),
                ),
                Moderation::Unban => (Unban { room, user }.into(), format!("unbanned {name}")),
                Moderation::Voice(action) => (
                    VoiceModerate { room, user, action }.into(),
                    match action {
                        VoiceAction::ServerMute => format!("muted {name} in voice"),
                        VoiceAction::ServerUnmute => format!("unmuted {name} in voice"),
                        VoiceAction::GrantSpeak => format!("{name} may speak"),
                        VoiceAction::RevokeSpeak => format!("{name} listens only"),
                    },
                ),
            };
            request(moderation).await.map(|_| Some(Action::Done(done)))
        }
        Command::Configure { room, slow_mode_s, locked } => request(
            RoomConfigure { room, slow_mode_s, locked, anonymous: None, stage: None }.into(),
        )
        .await
        .map(|_| None),
        Command::Audit(room) => {
            let answer = request(AuditQuery { room: Some(room), before: None, limit: 5 }.into());
            match answer.await?.into_iter().next() {
                Some(Message::AuditPage(page)) => {
                    Ok(Some(Action::AuditLoaded(page.entries.into_vec())))
                }
                other => Err(format!("unexpected answer to AUDIT_QUERY: {other:?}")),
            }
        }
        Command::Search { query, cursor } => {
            // A failure goes back as the answer too: the results view waits for it.
            let answer = search(client, &query, cursor).await;
            Ok(Some(Action::Searched { query, answer }))
        }
        Command::Keys { remove: None } => {
            let conn = client.connection().await.map_err(|e| e.to_string())?;
            let keys = conn.keys().await.map_err(|e| e.to_string())?;
            let listed: Vec<String> =
                keys.iter().map(|k| crate::login_key::public_hex(&k.public_key)).collect();
            Ok(Some(Action::Done(if listed.is_empty() {
                "no login keys (add one with `banter key-add FILE`)".into()
            } else {
                format!("login keys: {}", listed.join(", "))
            })))
        }
        Command::Keys { remove: Some(key) } => {
            let public_key = crate::login_key::parse_public(&key)
                .ok_or("a public key is 64 hex digits (see /keys)")?;
            let conn = client.connection().await.map_err(|e| e.to_string())?;
            conn.remove_key(public_key).await.map_err(|e| e.to_string())?;
            Ok(Some(Action::Done("key removed".into())))
        }
        Command::Invite { room, username: Some(username) } => {
            request(RoomInvite { room, username: text(&username)? }.into()).await?;
            Ok(Some(Action::Done(format!("added {username}"))))
        }
        Command::Invite { room, username: None } => {
            let answer = request(InviteCreate { room, max_uses: None, expires_in_s: None }.into());
            match answer.await?.into_iter().next() {
                Some(Message::Invite(invite)) => Ok(Some(Action::Done(format!(
                    "invite code {}: others join with /accept {}",
                    invite.code, invite.code
                )))),
                other => Err(format!("unexpected answer to INVITE_CREATE: {other:?}")),
            }
        }
        Command::Upload { room, path } => {
            let path = std::path::PathBuf::from(path);
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| format!("{} has no usable file name", path.display()))?
                .to_owned();
            let conn = client.connection().await.map_err(|e| e.to_string())?;
            let progress = progress_reporter(format!("sharing {name}"), results);
            let shared = conn.upload_with_progress(room, &name, &path, &progress).await;
            progress(1, 1); // done or failed: the status bar stops showing it
            shared.map_err(|e| e.to_string())?;
            Ok(Some(Action::Done(format!("shared {name}"))))
        }
        Command::Download { room, seq, path } => {
            let conn = client.connection().await.map_err(|e| e.to_string())?;
            // An explicit path must not exist; the shared name is made safe and never
            // replaces a file (NAME (1) …).
            let progress = progress_reporter(format!("fetching #{seq}"), results);
            let fetched = match path {
                Some(path) => {
                    let path = std::path::PathBuf::from(path);
                    let info = conn.download_with_progress(room, seq, &path, &progress).await;
                    info.map(|info| (path, info))
                }
                None => {
                    let here = std::path::Path::new(".");
                    conn.download_into_with_progress(room, seq, here, &progress).await
                }
            };
            progress(1, 1);
            let (path, info) = fetched.map_err(|e| e.to_string())?;
            Ok(Some(Action::Done(format!("saved {} ({} bytes)", path.display(), info.size))))
        }
        Command::AcceptInvite(code) => {
            request(InviteUse { code: text(&code)? }.into()).await?;
            rooms(client).await.map(Some)
        }
        Command::Contact(username, action) => {
            request(ContactSet { username: text(&username)?, action }.into()).await.map(|_| None)
        }
        Command::VoiceSelf { room, mute, deaf } => {
            request(VoiceSelf { room, mute, deaf }.into()).await.map(|_| None)
        }
        Command::RaiseHand { room, raise } => {
            request(VoiceRequestSpeak { room, raise }.into()).await.map(|_| None)
        }
        Command::Send { .. }
        | Command::SendAnonymous { .. }
        | Command::Mouse(_)
        | Command::Copy(_)
        | Command::Notify { .. }
        | Command::VoiceJoin { .. }
        | Command::VoiceLeave
        | Command::Talk(_)
        | Command::Quit => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_notifications_carry_no_escape_or_separator_from_other_users() {
        let hostile = "hi\x1b]0;pwned\x07\u{9c}\u{9b}31m;ls\u{202e}txt.exe";
        for how in [Notify::Osc777, Notify::Osc9] {
            let sequence = notification(how, "banter: room;x", hostile);
            let inner = &sequence[2..sequence.len() - 1];
            assert!(!inner.chars().any(|c| c.is_control() || is_format_char(c)), "{sequence:?}");
            assert_eq!(sequence.matches(';').count(), if how == Notify::Osc777 { 3 } else { 1 });
            assert!(sequence.ends_with('\x07') && sequence.starts_with("\x1b]"));
        }
        assert_eq!(notification(Notify::Off, "t", "b"), "");
    }
}
