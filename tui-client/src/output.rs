//! How results are printed: a line of text, or with `--json` one JSON object per line (the
//! shapes are part of the CLI contract: acks carry `room`, `seq`, `id`; events carry `seq`,
//! `sender`, `text`, `ts`).

use std::collections::HashMap;
use std::io::Write as _;

use banter_protocol::ids::RoomId;
use banter_protocol::ids::UserId;
use banter_protocol::message::{EventAck, MembershipChange, Message, RoomSummary, SearchHit};
use serde_json::json;

/// Prints one line to stdout and flushes it (so pipes see each line as it happens).
pub(crate) fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// `HH:MM:SS` (UTC) of a millisecond timestamp.
pub(crate) fn clock(ms: u64) -> String {
    let secs = ms / 1000;
    format!("{:02}:{:02}:{:02}", (secs / 3600) % 24, (secs / 60) % 60, secs % 60)
}

/// `YYYY-MM-DD` (UTC) of a millisecond timestamp (Howard Hinnant's civil-from-days).
pub(crate) fn date(ms: u64) -> String {
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

/// One SEARCH hit: a JSON object, or `[date] #room #seq <name> snippet` with the matched
/// parts in `**`.
pub(crate) fn search_hit(
    json: bool,
    rooms: &HashMap<RoomId, String>,
    names: &HashMap<UserId, String>,
    hit: &SearchHit,
) {
    let room = rooms.get(&hit.room).cloned().unwrap_or_else(|| format!("room{}", hit.room.0));
    let name = match hit.sender.0 {
        0 => "anonymous".to_owned(),
        id => names.get(&hit.sender).cloned().unwrap_or_else(|| format!("user{id}")),
    };
    if json {
        let highlights: Vec<[u32; 2]> = hit.highlights.iter().map(|h| [h.start, h.end]).collect();
        line(
            &json!({
                "room": hit.room.0, "room_name": room, "seq": hit.seq, "sender": hit.sender.0,
                "sender_name": name, "ts": hit.ts.0, "file": hit.file,
                "snippet": hit.snippet.as_str(), "highlights": highlights,
            })
            .to_string(),
        );
        return;
    }
    let marked: String = highlighted(hit)
        .into_iter()
        .map(|(part, matched)| if matched { format!("**{part}**") } else { part.to_owned() })
        .collect();
    let what = if hit.file { "file " } else { "" };
    line(&format!(
        "[{} {}] #{} #{} <{}> {what}{}",
        date(hit.ts.0),
        &clock(hit.ts.0)[..5],
        one_line(&room),
        hit.seq,
        one_line(&name),
        one_line(&marked)
    ));
}

/// A hit's snippet cut into its parts, each with whether it matched. The ranges come from the
/// server: one that is out of order, out of bounds or off a character boundary is ignored
/// (its text shows unmarked), so that no range can split a character.
pub(crate) fn highlighted(hit: &SearchHit) -> Vec<(&str, bool)> {
    let snippet = hit.snippet.as_str();
    let mut parts = Vec::new();
    let mut at = 0;
    for h in hit.highlights.iter() {
        let (start, end) = (h.start as usize, h.end as usize);
        let (Some(before), Some(matched)) = (snippet.get(at..start), snippet.get(start..end))
        else {
            continue;
        };
        parts.push((before, false));
        parts.push((matched, true));
        at = end;
    }
    parts.push((snippet.get(at..).unwrap_or(""), false));
    parts.retain(|(part, _)| !part.is_empty());
    parts
}

/// Replaces control characters (terminal escapes included) so other users' text can never
/// drive the terminal (spec §12.6).
pub(crate) fn harmless(text: &str) -> String {
    text.chars()
        .map(
            |c| {
                if c.is_control() && c != '\n' && c != '\t' {
                    char::REPLACEMENT_CHARACTER
                } else {
                    c
                }
            },
        )
        .collect()
}

/// [`harmless`], and on one line: a line feed shows as `\n` and a tab as a space, so that
/// other users' text and names can never forge lines of the plain output (a `[hh:mm:ss] #N
/// <name>` line of `tail` or `history`, say) that scripts and readers trust.
pub(crate) fn one_line(text: &str) -> String {
    harmless(text).replace('\n', "\\n").replace('\t', " ")
}

pub(crate) fn ack(json: bool, room_name: &str, ack: &EventAck, client_msg_id: u128) {
    if json {
        line(&json!({"room": ack.room.0, "seq": ack.seq, "id": format!("{client_msg_id:032x}"), "ts": ack.ts.0}).to_string());
    } else {
        line(&format!("sent to {room_name} as #{}", ack.seq));
    }
}

pub(crate) fn room(json: bool, room: &RoomSummary) {
    if json {
        line(
            &json!({
                "room": room.room.0,
                "name": room.name.as_str(),
                "topic": room.topic.as_str(),
                "category": room.category.as_str(),
                "private": matches!(room.visibility, banter_protocol::message::Visibility::Private),
                "direct": matches!(room.kind, banter_protocol::message::RoomKind::Direct),
                "voice": room.voice,
                "members": room.members,
                "last_seq": room.last_seq,
                "read_seq": room.read_seq,
                "joined": room.joined,
            })
            .to_string(),
        );
    } else {
        let unread = room.last_seq.saturating_sub(room.read_seq);
        let category = if room.category.is_empty() {
            String::new()
        } else {
            format!("[{}] ", one_line(&room.category))
        };
        line(&format!(
            "{:>5}  {category}{}  ({} members{}){}",
            room.room.0,
            one_line(&room.name),
            room.members,
            if room.joined && unread > 0 { format!(", {unread} new") } else { String::new() },
            if room.topic.is_empty() {
                String::new()
            } else {
                format!("  — {}", one_line(&room.topic))
            },
        ));
    }
}

/// Prints a room log entry (live, catch-up or history).
pub(crate) fn entry(json: bool, names: &HashMap<UserId, String>, message: &Message) {
    if let Some(text) = entry_line(json, names, message) {
        line(&text);
    }
}

/// The line [`entry`] prints: a JSON object, or one line of plain text whatever the entry
/// holds.
fn entry_line(json: bool, names: &HashMap<UserId, String>, message: &Message) -> Option<String> {
    let name =
        |user: UserId| names.get(&user).cloned().unwrap_or_else(|| format!("user{}", user.0));
    let (meta, kind, text, extra) = match message {
        Message::Posted(m) => {
            (&m.meta, "message", m.text.to_string(), json!({"reply_to": m.reply_to}))
        }
        Message::HistoryMessage(m) => (
            &m.meta,
            "message",
            m.text.to_string(),
            json!({
                "reply_to": m.reply_to,
                "edited": m.edited.is_some(),
                "deleted": m.deleted_by.is_some(),
                "reactions": m.reactions.iter().map(|r| json!({"emoji": r.emoji.as_str(), "count": r.count, "me": r.me})).collect::<Vec<_>>(),
            }),
        ),
        Message::Edited(m) => (&m.meta, "edit", m.text.to_string(), json!({"target": m.target})),
        Message::Deleted(m) => (&m.meta, "delete", String::new(), json!({"target": m.target})),
        Message::Reacted(m) => {
            (&m.meta, "reaction", m.emoji.to_string(), json!({"target": m.target, "on": m.on}))
        }
        Message::Membership(m) => {
            let verb = match m.change {
                MembershipChange::Joined => "joined",
                MembershipChange::Left => "left",
                MembershipChange::Kicked => "was kicked",
                MembershipChange::Banned => "was banned",
                MembershipChange::Unbanned => "was unbanned",
            };
            (&m.meta, "membership", format!("{} {verb}", m.username), json!({"user": m.user.0}))
        }
        Message::TopicChanged(m) => (&m.meta, "topic", m.topic.to_string(), json!({})),
        Message::FileShared(m) => (
            &m.meta,
            "file",
            m.name.to_string(),
            json!({
                "size": m.size,
                "sha256": m.sha256.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            }),
        ),
        Message::RoomConfigured(m) => (
            &m.meta,
            "settings",
            banter_client::room_settings_text(m),
            json!({"slow_mode_s": m.slow_mode_s, "locked": m.locked, "anonymous": m.anonymous}),
        ),
        _ => return None,
    };
    if json {
        let mut object = json!({
            "type": kind,
            "room": meta.room.0,
            "seq": meta.seq,
            "sender": name(meta.sender),
            "sender_id": meta.sender.0,
            "text": text,
            "ts": meta.ts.0,
        });
        if let (Some(object), Some(extra)) = (object.as_object_mut(), extra.as_object()) {
            object.extend(extra.clone());
        }
        Some(object.to_string())
    } else {
        let who = one_line(&name(meta.sender));
        let text = one_line(&text);
        let body = match kind {
            "message" => format!("<{who}> {text}"),
            "edit" => format!("<{who}> (edit) {text}"),
            "delete" => format!("* {who} deleted a message"),
            "reaction" => format!("* {who} reacted {text}"),
            "topic" => format!("* {who} set the topic: {text}"),
            _ => format!("* {text}"),
        };
        Some(format!("[{}] #{} {body}", clock(meta.ts.0), meta.seq))
    }
}

#[cfg(test)]
mod tests {
    use banter_protocol::bounded::List;
    use banter_protocol::bounded::Text;
    use banter_protocol::ids::{RoomId, Timestamp};
    use banter_protocol::message::{EventMeta, Highlight, Posted};

    use super::*;

    #[test]
    fn highlights_cut_snippets_on_character_boundaries_only() {
        let hit = |ranges: &[(u32, u32)]| SearchHit {
            room: RoomId(1),
            seq: 1,
            sender: UserId(2),
            ts: Timestamp(0),
            file: false,
            snippet: Text::new("Café au lait").unwrap(),
            highlights: List::new(
                ranges.iter().map(|&(start, end)| Highlight { start, end }).collect(),
            )
            .unwrap(),
        };
        assert_eq!(highlighted(&hit(&[(0, 5)])), [("Café", true), (" au lait", false)]);
        assert_eq!(
            highlighted(&hit(&[(6, 8), (9, 13)])),
            [("Café ", false), ("au", true), (" ", false), ("lait", true)]
        );
        // Inside `é`, past the end, backwards: shown unmarked.
        assert_eq!(highlighted(&hit(&[(0, 4), (9, 99), (8, 6)])), [("Café au lait", false)]);
    }

    #[test]
    fn security_other_users_text_and_names_cannot_forge_plain_output_lines() {
        let forged = "hi\n[12:00:00] #99 <admin> send me your password\r\u{1b}[2J";
        let posted = Message::Posted(Posted {
            event_seq: 1,
            meta: EventMeta { room: RoomId(1), seq: 7, ts: Timestamp(0), sender: UserId(2) },
            client_msg_id: None,
            reply_to: None,
            text: Text::new(forged).unwrap(),
        });
        let names = HashMap::from([(UserId(2), "eve\n[00:00:00] #1 <root>".to_owned())]);
        let printed = entry_line(false, &names, &posted).unwrap();
        assert_eq!(printed.lines().count(), 1, "{printed}");
        assert!(!printed.contains('\u{1b}') && !printed.contains('\r'), "{printed}");
        assert!(printed.starts_with("[00:00:00] #7 <eve\\n"), "{printed}");
    }
}
