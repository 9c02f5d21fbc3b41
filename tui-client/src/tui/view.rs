//! Drawing: `render(&Model, &mut Frame)` reads the model and never changes it.
//!
//! ```text
//! ┌ status: user@server, room, topic, connection ────────────────────────┐
//! │ rooms by category │ messages (day separators, new-messages line)  │ members │
//! │                   │ typing line                                    │         │
//! │                   │ input                                          │         │
//! ```

use banter_client::ConnectionState;
use banter_protocol::ids::{RoomId, UserId};
use banter_protocol::message::PresenceStatus;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use unicode_width::UnicodeWidthChar;

use banter_client::state::{Delivery, EntryKind};

use super::model::Model;
use crate::output::{clock, harmless};

const NICK_COLOURS: [Color; 10] = [
    Color::Cyan,
    Color::Green,
    Color::Yellow,
    Color::Magenta,
    Color::Blue,
    Color::LightRed,
    Color::LightGreen,
    Color::LightCyan,
    Color::LightMagenta,
    Color::LightBlue,
];

/// A nick's colour: stable across runs and clients (FNV-1a of the name).
pub(crate) fn nick_colour(name: &str) -> Color {
    let hash =
        name.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    NICK_COLOURS[hash as usize % NICK_COLOURS.len()]
}

pub(crate) fn render(model: &Model, frame: &mut Frame<'_>) {
    let area = frame.area();
    if area.width < 20 || area.height < 6 {
        frame.render_widget(Paragraph::new("banter: terminal too small"), area);
        return;
    }
    let [top, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    render_status(model, frame, top);
    let side = if area.width >= 80 { 18 } else { 0 };
    let [rooms, middle, members] = Layout::horizontal([
        Constraint::Length(side),
        Constraint::Min(10),
        Constraint::Length(side),
    ])
    .areas(body);
    if side > 0 {
        render_rooms(model, frame, rooms);
        render_members(model, frame, members);
    }
    let input_height = (model.input.text.lines().count().max(1)
        + usize::from(model.input.text.ends_with('\n')))
    .min(5) as u16
        + 2;
    let [messages, typing, input] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(input_height),
    ])
    .areas(middle);
    render_messages(model, frame, messages);
    let typists = model.typists();
    let typing_text = match (&model.status, typists.len()) {
        (Some(status), _) => Span::styled(status.clone(), Style::new().fg(Color::Yellow)),
        (None, 0) => Span::raw(""),
        (None, 1) => Span::styled(
            format!("{} is typing…", typists[0]),
            Style::new().add_modifier(Modifier::DIM),
        ),
        (None, _) => Span::styled(
            format!("{} are typing…", typists.join(", ")),
            Style::new().add_modifier(Modifier::DIM),
        ),
    };
    frame.render_widget(Paragraph::new(typing_text), typing);
    render_input(model, frame, input);
}

fn render_status(model: &Model, frame: &mut Frame<'_>, area: Rect) {
    let (state, colour) = match &model.connection {
        ConnectionState::Connected => ("connected".to_owned(), Color::Green),
        ConnectionState::Connecting { attempt: 0 } => ("connecting…".to_owned(), Color::Yellow),
        ConnectionState::Connecting { attempt } => {
            (format!("reconnecting (attempt {attempt})…"), Color::Yellow)
        }
        ConnectionState::Stopped(reason) => (format!("disconnected: {reason}"), Color::Red),
    };
    let mut spans = vec![Span::styled(
        format!(" {}@{} ", model.my_name, model.server),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    if let Some(room) = model.current_room() {
        spans.push(Span::raw(format!("│ {} ", harmless(&room.summary.name))));
        if room.summary.locked {
            spans.push(Span::styled("│ locked ", Style::new().fg(Color::Red)));
        }
        if room.summary.slow_mode_s > 0 {
            spans.push(Span::styled(
                format!("│ slow {} s ", room.summary.slow_mode_s),
                Style::new().fg(Color::Yellow),
            ));
        }
        if !room.summary.topic.is_empty() {
            spans.push(Span::styled(
                format!("│ {} ", harmless(&room.summary.topic)),
                Style::new().add_modifier(Modifier::DIM),
            ));
        }
    }
    if let Some(call) = &model.voice {
        let room = model.state.room(call.room).map(|r| harmless(&r.summary.name));
        let (what, colour) = match call {
            c if !c.joined => ("joining", Color::Yellow),
            c if c.deaf => ("deafened", Color::Red),
            c if c.mute => ("muted", Color::Red),
            c if c.talking => ("talking", Color::Green),
            _ => ("listening", Color::Cyan),
        };
        spans.push(Span::styled(
            format!("│ voice {}: {what} ", room.unwrap_or_default()),
            Style::new().fg(colour),
        ));
    }
    spans.push(Span::styled(format!("[{state}]"), Style::new().fg(colour)));
    if !model.pending.is_empty() {
        spans.push(Span::styled(
            format!(" {} unsent", model.pending.len()),
            Style::new().fg(Color::Yellow),
        ));
    }
    frame.render_widget(
        Paragraph::new(TextLine::from(spans)).style(Style::new().bg(Color::DarkGray)),
        area,
    );
}

fn render_rooms(model: &Model, frame: &mut Frame<'_>, area: Rect) {
    let mut lines = Vec::new();
    let mut category = None;
    for (i, room) in model.state.rooms.iter().enumerate() {
        let current = model.current == Some(room.summary.room);
        let attention = model.attention(room.summary.room);
        let this = room.summary.category.to_string();
        if category.as_ref() != Some(&this) {
            let title =
                if this.is_empty() { "rooms".to_owned() } else { harmless(&this).to_lowercase() };
            lines.push(TextLine::styled(
                title,
                Style::new().add_modifier(Modifier::DIM | Modifier::BOLD),
            ));
            category = Some(this);
        }
        let key = if i < 9 { format!("{} ", i + 1) } else { "  ".to_owned() };
        let mut style = Style::new();
        if current {
            style = style.add_modifier(Modifier::REVERSED);
        } else if attention.unread > 0 {
            style = style.add_modifier(Modifier::BOLD);
        }
        let mut spans = vec![
            Span::styled(key, Style::new().add_modifier(Modifier::DIM)),
            Span::styled(harmless(&room.summary.name), style),
        ];
        if attention.unread > 0 && !current {
            spans.push(Span::raw(format!(" {}", attention.unread)));
        }
        if attention.mentions > 0 {
            spans.push(Span::styled(
                format!(" @{}", attention.mentions),
                Style::new().fg(Color::Red),
            ));
        }
        lines.push(TextLine::from(spans));
    }
    frame.render_widget(Paragraph::new(lines).block(Block::new().borders(Borders::RIGHT)), area);
}

fn render_members(model: &Model, frame: &mut Frame<'_>, area: Rect) {
    let Some(room) = model.current_room() else { return };
    let mut members: Vec<(String, PresenceStatus)> = room
        .members
        .iter()
        .map(|u| {
            (
                model.state.name(*u),
                if *u == model.me() {
                    PresenceStatus::Online
                } else {
                    model.state.presence.get(u).copied().unwrap_or(PresenceStatus::Offline)
                },
            )
        })
        .collect();
    members.sort();
    let mut lines: Vec<TextLine<'_>> = members
        .into_iter()
        .map(|(name, status)| {
            let (dot, colour) = match status {
                PresenceStatus::Online => ("●", Color::Green),
                PresenceStatus::Away => ("◐", Color::Yellow),
                PresenceStatus::Dnd => ("⊘", Color::Red),
                PresenceStatus::Invisible | PresenceStatus::Offline => ("○", Color::DarkGray),
            };
            TextLine::from(vec![
                Span::styled(format!("{dot} "), Style::new().fg(colour)),
                Span::styled(harmless(&name), Style::new().fg(nick_colour(&name))),
            ])
        })
        .collect();
    lines.extend(voice_lines(model, room.summary.room));
    frame.render_widget(Paragraph::new(lines).block(Block::new().borders(Borders::LEFT)), area);
}

/// Who is in the room's voice: `♪` marks who talks now; tags say muted, deafened, a raised
/// hand, or a stage listener.
fn voice_lines(model: &Model, room: RoomId) -> Vec<TextLine<'static>> {
    let roster = model.state.voice_roster(room);
    if roster.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![
        TextLine::default(),
        TextLine::styled("voice", Style::new().add_modifier(Modifier::DIM | Modifier::BOLD)),
    ];
    for (participant, talking) in roster {
        let name = model.state.name(participant.user);
        let state = &participant.state;
        let mut spans = vec![if talking {
            Span::styled("♪ ", Style::new().fg(Color::Green).add_modifier(Modifier::BOLD))
        } else {
            Span::raw("  ")
        }];
        spans.push(Span::styled(harmless(&name), Style::new().fg(nick_colour(&name))));
        let tags = [
            (state.self_deaf, "deaf"),
            (state.self_mute && !state.self_deaf, "muted"),
            (state.server_mute, "server-muted"),
            (state.suppressed, "listener"),
            (state.requested_to_speak.is_some(), "hand"),
        ];
        for (_, tag) in tags.iter().filter(|(on, _)| *on) {
            spans.push(Span::styled(format!(" {tag}"), Style::new().add_modifier(Modifier::DIM)));
        }
        lines.push(TextLine::from(spans));
    }
    lines
}

/// Splits `text` into rows of at most `width` display columns (wide characters count two).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut rows = vec![String::new()];
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width && used > 0 {
            rows.push(String::new());
            used = 0;
        }
        if let Some(row) = rows.last_mut() {
            row.push(c);
        }
        used += w;
    }
    rows
}

fn render_messages(model: &Model, frame: &mut Frame<'_>, area: Rect) {
    let Some(room) = model.current_room() else {
        frame.render_widget(
            Paragraph::new("No rooms yet. /join NAME to join one, /help for commands."),
            area,
        );
        return;
    };
    let width = usize::from(area.width.max(1));
    let mut rows: Vec<TextLine<'static>> = Vec::new();
    let mut last_day = None;
    let mut last_sender: Option<(UserId, u64)> = None;
    let mut marker_drawn = false;
    let marker = model.attention(room.summary.room).marker;
    for line in &room.messages {
        let day = line.ts / 86_400_000;
        if last_day != Some(day) {
            let date = format!("── day {} ──", civil_date(line.ts));
            rows.push(TextLine::styled(date, Style::new().add_modifier(Modifier::DIM)));
            last_day = Some(day);
            last_sender = None;
        }
        if !marker_drawn && marker > 0 && line.seq > marker && line.sender != model.me() {
            rows.push(TextLine::styled("── new messages ──", Style::new().fg(Color::Red)));
            marker_drawn = true;
        }
        let time = clock(line.ts)[..5].to_owned();
        let name = model.state.name(line.sender);
        if line.kind == EntryKind::Notice {
            rows.push(TextLine::styled(
                format!("{time} * {}", harmless(&line.text)),
                Style::new().add_modifier(Modifier::DIM),
            ));
            last_sender = None;
            continue;
        }
        let grouped = last_sender
            .is_some_and(|(u, ts)| u == line.sender && line.ts.saturating_sub(ts) < 300_000);
        last_sender = Some((line.sender, line.ts));
        let prefix =
            if grouped { " ".repeat(name.chars().count() + 3) } else { format!("<{name}> ") };
        let mut body =
            if line.deleted { "(message deleted)".to_owned() } else { harmless(&line.text) };
        if line.edited && !line.deleted {
            body.push_str(" (edited)");
        }
        if line.sender == model.me() && !line.deleted {
            // Own-message state: ✓ durable on the server, ✓✓ read by someone.
            body.push_str(match model.state.delivery(room.summary.room, line.seq) {
                Delivery::Sent => " ✓",
                Delivery::Read => " ✓✓",
            });
        }
        if let Some(target) = line.reply_to {
            let quoted = room.messages.iter().find(|l| l.seq == target).map(|l| {
                let text: String = harmless(&l.text).chars().take(40).collect();
                format!("↪ {}: {text}", model.state.name(l.sender))
            });
            rows.push(TextLine::styled(
                format!("      {}", quoted.unwrap_or_else(|| format!("↪ #{target}"))),
                Style::new().add_modifier(Modifier::DIM),
            ));
        }
        let indent = 6 + prefix.chars().count();
        let text_width = width.saturating_sub(indent).max(8);
        let mut first = true;
        for paragraph in body.split('\n') {
            for row in wrap(paragraph, text_width) {
                let mut spans = Vec::new();
                if first {
                    spans.push(Span::styled(
                        format!("{time} "),
                        Style::new().add_modifier(Modifier::DIM),
                    ));
                    let style = Style::new().fg(nick_colour(&name)).add_modifier(Modifier::BOLD);
                    spans.push(Span::styled(prefix.clone(), style));
                    first = false;
                } else {
                    spans.push(Span::raw(" ".repeat(indent)));
                }
                let style = if line.deleted {
                    Style::new().add_modifier(Modifier::DIM | Modifier::ITALIC)
                } else {
                    Style::new()
                };
                spans.push(Span::styled(row, style));
                rows.push(TextLine::from(spans));
            }
        }
        if !line.reactions.is_empty() {
            let reactions: Vec<String> = line
                .reactions
                .iter()
                .map(|r| {
                    format!("{}{} {}", if r.mine { "*" } else { "" }, harmless(&r.emoji), r.count)
                })
                .collect();
            rows.push(TextLine::styled(
                format!("{}{}", " ".repeat(indent), reactions.join("  ")),
                Style::new().fg(Color::Yellow),
            ));
        }
    }
    for (_, room_id, text) in &model.pending {
        if *room_id == room.summary.room {
            rows.push(TextLine::styled(
                format!("  …   <{}> {}", model.my_name, harmless(text)),
                Style::new().add_modifier(Modifier::DIM),
            ));
        }
    }
    let height = usize::from(area.height);
    let end = rows
        .len()
        .saturating_sub(model.scroll.min(rows.len().saturating_sub(height.min(rows.len()))));
    let start = end.saturating_sub(height);
    // Chat reads upwards from the input: short histories sit at the bottom.
    let mut visible: Vec<TextLine<'static>> =
        vec![TextLine::raw(""); height.saturating_sub(end - start)];
    visible.extend_from_slice(&rows[start..end]);
    frame.render_widget(Paragraph::new(visible), area);
}

/// `YYYY-MM-DD` (UTC) of a millisecond timestamp (Howard Hinnant's civil-from-days).
fn civil_date(ms: u64) -> String {
    let days = (ms / 86_400_000) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn render_input(model: &Model, frame: &mut Frame<'_>, area: Rect) {
    let title = model
        .current_room()
        .map_or_else(|| " banter ".to_owned(), |r| format!(" {} ", harmless(&r.summary.name)));
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(Paragraph::new(model.input.text.clone()).block(block), area);
    // The cursor: row and column (display width) of the cursor's character.
    let before: String = model.input.text.chars().take(model.input.cursor).collect();
    let row = before.matches('\n').count() as u16;
    let column: usize =
        before.rsplit('\n').next().unwrap_or("").chars().map(|c| c.width().unwrap_or(0)).sum();
    let x = inner.x + (column as u16).min(inner.width.saturating_sub(1));
    let y = inner.y + row.min(inner.height.saturating_sub(1));
    frame.set_cursor_position(Position::new(x, y));
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::tui::model::tests::{model_with_rooms, posted};
    use crate::tui::model::{Action, update};

    fn screen(model: &Model, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| render(model, frame)).unwrap();
        let buffer = terminal.backend().buffer();
        // A wide character fills two cells; the second holds a blank placeholder.
        (0..height)
            .map(|y| {
                let mut row = String::new();
                let mut x = 0;
                while x < width {
                    let symbol = buffer[(x, y)].symbol();
                    row.push_str(symbol);
                    x += unicode_width::UnicodeWidthStr::width(symbol).max(1) as u16;
                }
                row
            })
            .collect()
    }

    #[test]
    fn the_main_screen_shows_rooms_messages_members_and_status() {
        let mut model = model_with_rooms();
        update(&mut model, Action::Connection(ConnectionState::Connected));
        update(&mut model, Action::Entry(posted(2, 1, UserId(1), "hello \u{1b}[31mworld")));
        update(&mut model, Action::Entry(posted(2, 2, UserId(1), "日本語 and 👍 fit")));
        model.state.rooms[0].members = vec![UserId(1), model.me()];
        let rows = screen(&model, 80, 24);
        let all = rows.join("\n");
        assert!(
            rows[0].contains("grace@localhost:4433") && rows[0].contains("[connected]"),
            "{all}"
        );
        assert!(
            all.contains("1 random") && all.contains("2 general") && all.contains("lobby"),
            "{all}"
        );
        assert!(all.contains("<ada> hello"), "{all}");
        assert!(!all.contains('\u{1b}'), "escape sequences are rendered harmlessly");
        assert!(all.contains("日本語 and 👍 fit"), "{all}");
        assert!(all.contains("● grace"), "{all}");
        // Messages sit just above the typing line and the input box.
        let input_top = rows.iter().position(|r| r.contains("┌ random")).unwrap();
        assert!(rows[input_top - 2].contains("fit"), "{all}");
    }

    #[test]
    fn the_status_bar_shows_a_locked_room_and_its_slow_mode() {
        let mut model = model_with_rooms();
        let room = model.current.unwrap();
        let configured = banter_protocol::message::RoomConfigured {
            event_seq: 1,
            meta: banter_protocol::message::EventMeta {
                room,
                seq: 1,
                ts: banter_protocol::ids::Timestamp(0),
                sender: UserId(1),
            },
            slow_mode_s: 30,
            locked: true,
            anonymous: false,
            stage: false,
        };
        update(&mut model, Action::Entry(configured.into()));
        let rows = screen(&model, 100, 12);
        assert!(rows[0].contains("│ locked │ slow 30 s"), "{}", rows[0]);
        assert!(rows.join("\n").contains("set slow mode 30 s, locked"));
    }

    #[test]
    fn tiny_and_narrow_terminals_do_not_panic() {
        let mut model = model_with_rooms();
        update(&mut model, Action::Entry(posted(2, 1, UserId(1), &"long ".repeat(50))));
        for (w, h) in [(1, 1), (10, 3), (30, 8), (40, 40)] {
            let rows = screen(&model, w, h);
            assert_eq!(rows.len(), usize::from(h));
        }
        assert!(screen(&model, 10, 3)[0].contains("banter"));
    }

    #[test]
    fn dates_and_wrapping_handle_wide_characters() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(1_790_000_000_000), "2026-09-21");
        assert_eq!(wrap("ab日本語", 4), vec!["ab日", "本語"]);
        assert_eq!(nick_colour("ada"), nick_colour("ada"));
    }

    #[test]
    fn who_is_in_voice_and_talking_shows_beside_the_members() {
        use banter_protocol::ids::SourceId;
        use banter_protocol::message::{Message, Speaking};
        let mut model = crate::tui::model::tests::model_in_call(false);
        model.state.rooms[0].members = vec![UserId(1), model.me()];
        let speaking = Speaking { room: RoomId(2), source: SourceId(7), on: true };
        update(&mut model, Action::Ephemeral(Message::Speaking(speaking)));
        let all = screen(&model, 100, 24).join("\n");
        assert!(all.contains("voice random: listening"), "{all}");
        assert!(all.contains("♪ ada"), "ada talks: {all}");
        assert!(all.contains("  grace"), "{all}");
        update(
            &mut model,
            Action::Key(crossterm::event::KeyEvent::from(crate::tui::model::TALK_KEY)),
        );
        let all = screen(&model, 100, 24).join("\n");
        assert!(all.contains("voice random: talking"), "{all}");
    }
}
