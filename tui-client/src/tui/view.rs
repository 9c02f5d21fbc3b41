//! Drawing: `render(&Model, &mut Frame)` reads the model and never changes it; it returns
//! where each message landed, so that a mouse click can select one.
//!
//! ```text
//! ┌ status: user@server, room, topic, voice, connection, unsent, transfer ───────────┐
//! │ rooms by category,│ messages (day separators, new-messages line)  │ members │
//! │ then direct ones  │ typing or status line                          │ voice   │
//! │                   │ (the reply, edit or reaction being written)    │         │
//! │                   │ input                                          │         │
//! ```
//! `/search` results take the place of the messages; `/help` draws its overlay over all of it.

use banter_client::ConnectionState;
use banter_protocol::ids::{RoomId, UserId};
use banter_protocol::message::{PresenceStatus, RoomKind};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use unicode_width::UnicodeWidthChar;

use banter_client::state::{Delivery, EntryKind};

use super::help;
use super::model::{Compose, Model, SearchView};
use crate::output::{clock, date, harmless, highlighted, one_line};

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

/// Where the messages were drawn: the area, and the seq of the message on each of its rows.
#[derive(Debug, Default)]
pub(crate) struct Placed {
    area: Rect,
    rows: Vec<Option<u64>>,
}

impl Placed {
    /// The message at a screen cell, if one is drawn there.
    pub(crate) fn message_at(&self, column: u16, row: u16) -> Option<u64> {
        if !self.area.contains(Position::new(column, row)) {
            return None;
        }
        self.rows.get(usize::from(row - self.area.y)).copied().flatten()
    }
}

pub(crate) fn render(model: &Model, frame: &mut Frame<'_>) -> Placed {
    let area = frame.area();
    if area.width < 20 || area.height < 6 {
        frame.render_widget(Paragraph::new("banter: terminal too small"), area);
        return Placed::default();
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
    let composing = u16::from(model.compose != Compose::Message);
    let [messages, typing, context, input] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(composing),
        Constraint::Length(input_height),
    ])
    .areas(middle);
    let placed = match &model.search {
        Some(search) => {
            render_search(model, search, frame, messages);
            Placed::default()
        }
        None => render_messages(model, frame, messages),
    };
    if composing > 0 {
        render_compose(model, frame, context);
    }
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
    if let Some(scroll) = model.help {
        render_help(frame, body, scroll);
    }
    placed
}

/// The line above the input while a reply, an edit or a reaction is written.
fn render_compose(model: &Model, frame: &mut Frame<'_>, area: Rect) {
    let (what, target) = match model.compose {
        Compose::Message => return,
        Compose::Reply(seq) => ("↪ replying to", seq),
        Compose::Edit(seq) => ("✎ editing", seq),
        Compose::React(seq) => ("☺ reacting to", seq),
    };
    let quoted = model
        .current_room()
        .and_then(|r| r.messages.iter().find(|m| m.seq == target))
        .map(|m| format!("<{}> {}", model.state.name(m.sender), harmless(&m.text)))
        .unwrap_or_else(|| format!("#{target}"));
    let line = format!("{what} {quoted}");
    frame.render_widget(
        Paragraph::new(TextLine::from(vec![
            Span::styled(line, Style::new().fg(Color::Cyan)),
            Span::styled("  (Esc cancels)", Style::new().add_modifier(Modifier::DIM)),
        ])),
        area,
    );
}

/// The help overlay: every command and key, grouped, scrolled by `scroll` lines.
fn render_help(frame: &mut Frame<'_>, area: Rect, scroll: usize) {
    let width = area.width.saturating_sub(4).min(96);
    let height = area.height.saturating_sub(2);
    let overlay = Rect::new(area.x + (area.width - width) / 2, area.y + 1, width, height);
    let usage_width = help::ENTRIES.iter().map(|e| e.usage.chars().count()).max().unwrap_or(0);
    let mut lines = Vec::new();
    for (title, entry) in help::lines() {
        if let Some(title) = title {
            lines.push(TextLine::styled(
                title.to_owned(),
                Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            ));
        }
        lines.push(TextLine::from(vec![
            Span::styled(format!("  {:usage_width$}  ", entry.usage), Style::new().fg(Color::Cyan)),
            Span::raw(entry.what),
        ]));
    }
    let block = Block::bordered()
        .title(" help ")
        .title_bottom(" ↑↓ PgUp PgDn scroll · Esc closes · /help CMD for one ");
    frame.render_widget(Clear, overlay);
    frame.render_widget(
        Paragraph::new(lines).block(block).scroll((u16::try_from(scroll).unwrap_or(0), 0)),
        overlay,
    );
}

/// The search results, in place of the messages: for each hit a line of where, when and who,
/// then its snippet with the matched parts reversed; the selected hit is marked and kept in
/// view.
fn render_search(model: &Model, search: &SearchView, frame: &mut Frame<'_>, area: Rect) {
    let count = match (search.hits.len(), search.next.is_some()) {
        (n, true) => format!("{n}+ hits"),
        (1, false) => "1 hit".to_owned(),
        (n, false) => format!("{n} hits"),
    };
    let block = Block::bordered()
        .title(format!(" search: {} ({count}) ", one_line(&search.query)))
        .title_bottom(" ↑↓ move · Enter opens in its room · Esc closes ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let dim = Style::new().add_modifier(Modifier::DIM);
    if search.hits.is_empty() {
        let what = if search.loading { "searching…" } else { "no messages match" };
        frame.render_widget(Paragraph::new(Span::styled(what, dim)), inner);
        return;
    }
    let fits = usize::from(inner.height.saturating_sub(u16::from(search.loading)) / 2).max(1);
    let first = (search.selected + 1).saturating_sub(fits);
    let mut lines = Vec::new();
    for (i, hit) in search.hits.iter().enumerate().skip(first).take(fits) {
        let selected = i == search.selected;
        let room = model
            .state
            .room(hit.room)
            .map_or_else(|| format!("room {}", hit.room.0), |r| format!("#{}", r.summary.name));
        let name =
            if hit.sender.0 == 0 { "anonymous".to_owned() } else { model.state.name(hit.sender) };
        let mut header = vec![
            if selected {
                Span::styled("▶ ", Style::new().fg(Color::Cyan))
            } else {
                Span::raw("  ")
            },
            Span::styled(one_line(&room), Style::new().add_modifier(Modifier::BOLD)),
            Span::styled(format!("  {} {}  ", date(hit.ts.0), &clock(hit.ts.0)[..5]), dim),
            Span::styled(format!("<{}>", one_line(&name)), Style::new().fg(nick_colour(&name))),
        ];
        if hit.file {
            header.push(Span::styled(" shared a file", dim));
        }
        lines.push(TextLine::from(header));
        let mut snippet = vec![Span::raw("    ")];
        snippet.extend(highlighted(hit).into_iter().map(|(part, matched)| {
            let style = if matched {
                Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED)
            } else {
                Style::new()
            };
            Span::styled(one_line(part), style)
        }));
        lines.push(TextLine::from(snippet));
    }
    if search.loading {
        lines.push(TextLine::styled("  loading more…", dim));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn render_status(model: &Model, frame: &mut Frame<'_>, area: Rect) {
    let (state, colour) = match &model.connection {
        ConnectionState::Connected => ("connected".to_owned(), Color::Green),
        ConnectionState::Connecting { attempt: 0 } => ("connecting…".to_owned(), Color::Yellow),
        ConnectionState::Connecting { attempt } => {
            (format!("reconnecting (attempt {attempt})…"), Color::Yellow)
        }
        ConnectionState::Waiting { attempt, .. } => {
            let left = model.retry_at_ms.unwrap_or(0).saturating_sub(model.now_ms);
            (
                format!("reconnecting (attempt {attempt}, next in {}s)", left.div_ceil(1000)),
                Color::Yellow,
            )
        }
        ConnectionState::Stopped(reason) => (format!("offline: {reason}"), Color::Red),
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
    if let Some((what, done, total)) = &model.transfer {
        let percent = done.saturating_mul(100) / (*total).max(1);
        spans.push(Span::styled(
            format!(" │ {} {percent}%", harmless(what)),
            Style::new().fg(Color::Cyan),
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
        let this = if room.summary.kind == RoomKind::Direct {
            "direct messages".to_owned()
        } else if room.summary.category.is_empty() {
            "rooms".to_owned()
        } else {
            harmless(&room.summary.category)
        };
        if category.as_ref() != Some(&this) {
            let title = this.clone();
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

/// Splits `text` into rows of at most `width` display columns (wide characters count two),
/// breaking between words. A word wider than a row is broken where it must; a URL starts a
/// row of its own first, so that it stays in one piece whenever it fits.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut rows = vec![String::new()];
    let mut used = 0;
    for (i, word) in text.split(' ').enumerate() {
        let w: usize = word.chars().map(|c| c.width().unwrap_or(0)).sum();
        let space = usize::from(i > 0 && used > 0);
        let url = word.starts_with("https://") || word.starts_with("http://");
        if used + space + w <= width {
            if let Some(row) = rows.last_mut() {
                if space == 1 {
                    row.push(' ');
                }
                row.push_str(word);
            }
            used += space + w;
            continue;
        }
        if w <= width || url {
            if used > 0 {
                rows.push(String::new());
            }
            used = 0;
        } else if used > 0 {
            // A long word fills the rest of the row first.
            if let Some(row) = rows.last_mut() {
                row.push(' ');
            }
            used += 1;
        }
        for c in word.chars() {
            let cw = c.width().unwrap_or(0);
            if used + cw > width && used > 0 {
                rows.push(String::new());
                used = 0;
            }
            if let Some(row) = rows.last_mut() {
                row.push(c);
            }
            used += cw;
        }
    }
    rows
}

/// One screen row of the messages pane, and the message it belongs to.
type Row = (TextLine<'static>, Option<u64>);

fn render_messages(model: &Model, frame: &mut Frame<'_>, area: Rect) -> Placed {
    let Some(room) = model.current_room() else {
        frame.render_widget(
            Paragraph::new("No rooms yet. /join NAME to join one, /help for commands."),
            area,
        );
        return Placed::default();
    };
    let width = usize::from(area.width.max(1));
    let mut rows: Vec<Row> = Vec::new();
    let mut last_day = None;
    let mut last_sender: Option<(UserId, u64)> = None;
    let mut marker_drawn = false;
    let marker = model.attention(room.summary.room).marker;
    let dim = Style::new().add_modifier(Modifier::DIM);
    for line in &room.messages {
        let day = line.ts / 86_400_000;
        if last_day != Some(day) {
            rows.push((TextLine::styled(format!("── day {} ──", date(line.ts)), dim), None));
            last_day = Some(day);
            last_sender = None;
        }
        if !marker_drawn && marker > 0 && line.seq > marker && line.sender != model.me() {
            rows.push((TextLine::styled("── new messages ──", Style::new().fg(Color::Red)), None));
            marker_drawn = true;
        }
        let seq = Some(line.seq);
        let time = clock(line.ts)[..5].to_owned();
        let name = model.state.name(line.sender);
        if line.kind == EntryKind::Notice {
            rows.push((TextLine::styled(format!("{time} * {}", harmless(&line.text)), dim), None));
            last_sender = None;
            continue;
        }
        let selected = model.selected == Some(line.seq);
        // `/me` posts read `* name does something`, IRC style.
        let action = line.text.strip_prefix(&format!("* {name} ")).filter(|_| !line.deleted);
        let grouped = action.is_none()
            && last_sender
                .is_some_and(|(u, ts)| u == line.sender && line.ts.saturating_sub(ts) < 300_000);
        last_sender = if action.is_some() { None } else { Some((line.sender, line.ts)) };
        let prefix = match action {
            Some(_) => format!("* {name} "),
            None if grouped => " ".repeat(name.chars().count() + 3),
            None => format!("<{name}> "),
        };
        let mut body = match action {
            _ if line.deleted => "(message deleted)".to_owned(),
            Some(rest) => harmless(rest),
            None => harmless(&line.text),
        };
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
            let quoted = quoted.unwrap_or_else(|| format!("↪ #{target}"));
            rows.push((TextLine::styled(format!("      {quoted}"), dim), seq));
        }
        let mention =
            line.sender != model.me() && !line.deleted && model.state.mentions_me(&line.text);
        let text_style = if line.deleted {
            Style::new().add_modifier(Modifier::DIM | Modifier::ITALIC)
        } else if mention {
            Style::new().fg(Color::Black).bg(Color::Yellow)
        } else if action.is_some() {
            Style::new().add_modifier(Modifier::ITALIC)
        } else {
            Style::new()
        };
        let text_style =
            if selected { text_style.add_modifier(Modifier::REVERSED) } else { text_style };
        let indent = 6 + prefix.chars().count();
        let text_width = width.saturating_sub(indent).max(8);
        let mut first = true;
        for paragraph in body.split('\n') {
            for row in wrap(paragraph, text_width) {
                let mut spans = Vec::new();
                if first {
                    // The selected message is marked where its time is.
                    let gutter = if selected {
                        Span::styled("  ▶   ", Style::new().fg(Color::Cyan))
                    } else {
                        Span::styled(format!("{time} "), dim)
                    };
                    spans.push(gutter);
                    let style = Style::new().fg(nick_colour(&name)).add_modifier(Modifier::BOLD);
                    spans.push(Span::styled(prefix.clone(), style));
                    first = false;
                } else {
                    spans.push(Span::raw(" ".repeat(indent)));
                }
                spans.push(Span::styled(row, text_style));
                rows.push((TextLine::from(spans), seq));
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
            rows.push((
                TextLine::styled(
                    format!("{}{}", " ".repeat(indent), reactions.join("  ")),
                    Style::new().fg(Color::Yellow),
                ),
                seq,
            ));
        }
    }
    for (_, room_id, text) in &model.pending {
        if *room_id == room.summary.room {
            rows.push((
                TextLine::styled(format!("  …   <{}> {}", model.my_name, harmless(text)), dim),
                None,
            ));
        }
    }
    let height = usize::from(area.height);
    let mut end = rows
        .len()
        .saturating_sub(model.scroll.min(rows.len().saturating_sub(height.min(rows.len()))));
    // The selected message is always in view.
    let mut selected_rows =
        rows.iter().enumerate().filter(|(_, (_, s))| s.is_some() && *s == model.selected);
    if let (Some((first, _)), Some((last, _))) =
        (selected_rows.clone().next(), selected_rows.next_back())
    {
        if last >= end {
            end = last + 1;
        } else if first < end.saturating_sub(height) {
            end = (first + height).min(rows.len());
        }
    }
    let start = end.saturating_sub(height);
    // Chat reads upwards from the input: short histories sit at the bottom.
    let padding = height.saturating_sub(end - start);
    let mut visible: Vec<TextLine<'static>> = vec![TextLine::raw(""); padding];
    let mut placed = vec![None; padding];
    for (line, seq) in rows.drain(start..end) {
        visible.push(line);
        placed.push(seq);
    }
    frame.render_widget(Paragraph::new(visible), area);
    Placed { area, rows: placed }
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
    use std::time::Duration;

    use super::*;
    use crate::tui::model::tests::{model_with_rooms, posted};
    use crate::tui::model::{Action, update};

    fn screen(model: &Model, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal
            .draw(|frame| {
                render(model, frame);
            })
            .unwrap();
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
        update(&mut model, Action::Connection(ConnectionState::Connected, 0));
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
            all.contains("1 random") && all.contains("2 general") && all.contains("Lobby"),
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
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_790_000_000_000), "2026-09-21");
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

    #[test]
    fn words_wrap_whole_and_urls_stay_in_one_piece_where_they_fit() {
        assert_eq!(wrap("a very long line", 7), vec!["a very", "long", "line"]);
        assert_eq!(
            wrap("see https://example.org/x now", 22),
            vec!["see", "https://example.org/x", "now"]
        );
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("x abcdefghij", 4), vec!["x ab", "cdef", "ghij"]);
    }

    #[test]
    fn selection_me_mentions_and_the_reply_being_written_show_on_screen() {
        use crossterm::event::{KeyCode, KeyEvent};
        let mut model = model_with_rooms();
        let me = model.me();
        update(&mut model, Action::Entry(posted(2, 1, UserId(1), "* ada waves")));
        update(&mut model, Action::Entry(posted(2, 2, UserId(1), "grace: lunch?")));
        update(&mut model, Action::Entry(posted(2, 3, me, "hello there")));
        let rows = screen(&model, 80, 16);
        let all = rows.join("\n");
        assert!(all.contains("* ada waves") && !all.contains("<ada> * ada"), "{all}");
        // The mention stands out: its text is drawn black on yellow.
        let mut terminal = Terminal::new(TestBackend::new(80, 16)).unwrap();
        terminal.draw(|frame| drop(render(&model, frame))).unwrap();
        let row = rows.iter().position(|r| r.contains("lunch?")).unwrap();
        let column = rows[row].find("grace: lunch").unwrap();
        let column = rows[row][..column].chars().count() as u16;
        assert_eq!(terminal.backend().buffer()[(column, row as u16)].bg, Color::Yellow);

        // Up selects the newest message, r writes a reply: the context shows above the input.
        update(&mut model, Action::Key(KeyEvent::from(KeyCode::Up)));
        update(&mut model, Action::Key(KeyEvent::from(KeyCode::Up)));
        let all = screen(&model, 80, 16).join("\n");
        assert!(all.contains("▶   <ada> grace: lunch?"), "{all}");
        assert!(all.contains("r reply"), "{all}");
        update(&mut model, Action::Key(KeyEvent::from(KeyCode::Char('r'))));
        let all = screen(&model, 80, 16).join("\n");
        assert!(all.contains("↪ replying to <ada> grace: lunch?  (Esc canc"), "{all}");
        assert!(!all.contains('▶'), "{all}");
    }

    #[test]
    fn direct_rooms_list_apart_and_the_status_bar_tells_reconnecting_from_offline() {
        use banter_protocol::message::RoomKind;
        let mut model = model_with_rooms();
        let mut dm = model.state.rooms[0].summary.clone();
        (dm.room, dm.name, dm.kind) =
            (RoomId(9), banter_protocol::bounded::Text::new("ada").unwrap(), RoomKind::Direct);
        update(&mut model, Action::RoomsLoaded(vec![dm]));
        let rows = screen(&model, 100, 12);
        let dms = rows.iter().position(|r| r.starts_with("direct messages")).unwrap();
        assert!(rows[dms + 1].starts_with("3 ada"), "{}", rows.join("\n"));
        let waiting =
            ConnectionState::Waiting { attempt: 2, retry_in: Duration::from_millis(1_500) };
        update(&mut model, Action::Connection(waiting, 10_000));
        assert!(screen(&model, 100, 12)[0].contains("[reconnecting (attempt 2, next in 2s)]"));
        update(&mut model, Action::Tick(11_000));
        assert!(screen(&model, 100, 12)[0].contains("next in 1s"));
        update(&mut model, Action::Connection(ConnectionState::Stopped("revoked".into()), 12_000));
        assert!(screen(&model, 100, 12)[0].contains("[offline: revoked]"));
    }

    #[test]
    fn the_help_overlay_lists_every_group_and_scrolls() {
        let mut model = model_with_rooms();
        model.help = Some(0);
        let all = screen(&model, 100, 60).join("\n");
        for group in ["chat", "rooms", "people", "voice", "moderation", "keys"] {
            assert!(all.contains(group), "{group}: {all}");
        }
        assert!(all.contains("/kick USER [WHY]") && all.contains("Esc closes"), "{all}");
        model.help = Some(5);
        assert!(!screen(&model, 100, 60).join("\n").contains("/me ACTION"));
    }

    #[test]
    fn a_click_finds_the_message_drawn_on_that_row() {
        let mut model = model_with_rooms();
        update(&mut model, Action::Entry(posted(2, 1, UserId(1), "first")));
        update(&mut model, Action::Entry(posted(2, 2, UserId(1), "second")));
        let mut terminal = Terminal::new(TestBackend::new(80, 16)).unwrap();
        let mut placed = Placed::default();
        terminal.draw(|frame| placed = render(&model, frame)).unwrap();
        let rows = screen(&model, 80, 16);
        let second = rows.iter().position(|r| r.contains("second")).unwrap() as u16;
        assert_eq!(placed.message_at(30, second), Some(2));
        assert_eq!(placed.message_at(30, second - 1), Some(1));
        assert_eq!(placed.message_at(0, 0), None, "the status bar is no message");
    }

    #[test]
    fn search_results_show_where_who_and_the_matched_parts_reversed() {
        use crate::tui::model::tests::hit;
        let mut model = model_with_rooms();
        let typed = "/search cafe".chars().map(crossterm::event::KeyCode::Char);
        for code in typed.chain([crossterm::event::KeyCode::Enter]) {
            update(&mut model, Action::Key(code.into()));
        }
        assert!(screen(&model, 100, 16).join("\n").contains("searching…"));
        // The second hit's range splits `é`: shown unmarked, never cut.
        let hits =
            vec![hit(1, 7, "Café au lait at noon", &[(0, 5)]), hit(2, 3, "café?", &[(1, 4)])];
        update(&mut model, Action::Searched { query: "cafe".into(), answer: Ok((hits, None)) });
        let rows = screen(&model, 100, 16);
        let all = rows.join("\n");
        assert!(all.contains("search: cafe (2 hits)"), "{all}");
        assert!(all.contains("▶ #general  2026-09-21") && all.contains("<ada>"), "{all}");
        assert!(all.contains("Café au lait at noon") && all.contains("café?"), "{all}");

        let mut terminal = Terminal::new(TestBackend::new(100, 16)).unwrap();
        terminal.draw(|frame| drop(render(&model, frame))).unwrap();
        let style = |text: &str, nth: usize| {
            let row = rows.iter().position(|r| r.contains(text)).unwrap();
            let column = rows[row][..rows[row].find(text).unwrap()].chars().count() + nth;
            terminal.backend().buffer()[(column as u16, row as u16)].modifier
        };
        let marked = Modifier::BOLD | Modifier::REVERSED;
        assert_eq!(style("Café au", 0), marked);
        assert_eq!(style("Café au", 3), marked, "é is matched");
        assert_eq!(style("Café au", 5), Modifier::empty(), "au is not");
        assert_eq!(style("café?", 0), Modifier::empty());
    }

    #[test]
    fn a_transfer_shows_its_progress_in_the_status_bar_until_it_ends() {
        let mut model = model_with_rooms();
        update(&mut model, Action::Progress("sharing notes.txt".into(), 500, 1000));
        assert!(screen(&model, 100, 12)[0].contains("│ sharing notes.txt 50%"));
        update(&mut model, Action::Progress("sharing notes.txt".into(), 1000, 1000));
        assert!(!screen(&model, 100, 12)[0].contains("sharing"));
    }
}
