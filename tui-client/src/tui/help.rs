//! Every command and key of the TUI, one line each, in groups. The `/help` overlay, `/help
//! CMD` and Tab completion all read this one table, so a new command is documented where it
//! becomes completable.

/// One command or key.
pub(crate) struct Entry {
    pub(crate) group: &'static str,
    /// How it is typed: `/kick USER [WHY]`, or a key.
    pub(crate) usage: &'static str,
    pub(crate) what: &'static str,
}

const fn entry(group: &'static str, usage: &'static str, what: &'static str) -> Entry {
    Entry { group, usage, what }
}

#[rustfmt::skip]
pub(crate) const ENTRIES: &[Entry] = &[
    entry("chat", "TEXT", "send TEXT to the current room (Alt+Enter for a new line)"),
    entry("chat", "/me ACTION", "say what you do: * you ACTION"),
    entry("chat", "/reply SEQ TEXT", "reply to message SEQ (or select it and press r)"),
    entry("chat", "/react SEQ EMOJI", "react with an emoji or :shortcode: (or select, then +)"),
    entry("chat", "/edit SEQ TEXT", "replace the text of your message SEQ (or select, then e)"),
    entry("chat", "/delete SEQ", "delete message SEQ (or select, then d)"),
    entry("chat", "/anon TEXT", "post without your name, where the room allows it"),
    entry("chat", "/upload PATH", "share a file in the current room"),
    entry("chat", "/download SEQ [PATH]", "save the file shared at SEQ"),
    entry("chat", "/search QUERY", "find words, \"phrases\"; -word from:USER in:ROOM has:file"),
    entry("rooms", "/join ROOM", "join ROOM, or switch to it if you are in it (/j)"),
    entry("rooms", "/leave", "leave the current room (/part)"),
    entry("rooms", "/topic TEXT", "set the room's topic"),
    entry("rooms", "/invite [USER]", "add USER to the room, or make an invite code"),
    entry("rooms", "/accept CODE", "join a room with an invite code"),
    entry("people", "/dm USER", "open a direct conversation with USER (/query)"),
    entry("people", "/friend USER", "ask USER to be friends, or accept their request"),
    entry("people", "/unfriend USER", "end a friendship or a request"),
    entry("people", "/block USER", "no direct messages or presence from USER"),
    entry("people", "/unblock USER", "lift a block"),
    entry("people", "/away [TEXT]", "show yourself away"),
    entry("people", "/back", "show yourself online"),
    entry("people", "/keys [remove KEY]", "list your login keys, or remove one"),
    entry("voice", "/voice", "join the current room's voice, or leave it"),
    entry("voice", "/mute", "mute or unmute yourself (F5)"),
    entry("voice", "/hand", "raise or lower your hand on a stage"),
    entry("voice", "F4", "talk (held where the terminal reports releases, else on/off)"),
    entry("voice", "F6", "deafen or undeafen"),
    entry("moderation", "/kick USER [WHY]", "remove USER from the room"),
    entry("moderation", "/ban USER [WHY]", "remove USER and keep them out"),
    entry("moderation", "/unban USER", "let USER back in"),
    entry("moderation", "/mute USER", "mute USER in voice"),
    entry("moderation", "/unmute USER", "unmute USER in voice"),
    entry("moderation", "/grant USER", "let USER speak on a stage"),
    entry("moderation", "/revoke USER", "make USER a listener on a stage"),
    entry("moderation", "/slow SECONDS|off", "set slow mode"),
    entry("moderation", "/lock", "only moderators may post"),
    entry("moderation", "/unlock", "everyone may post again"),
    entry("moderation", "/audit", "show the room's latest moderation acts"),
    entry("keys", "Up", "on an empty input: select messages (also Alt+Up)"),
    entry("keys", "Up Down PgUp PgDn", "in selection: move; Home/End first/last"),
    entry("keys", "r e d + y", "in selection: reply, edit, delete, react, copy (OSC 52)"),
    entry("keys", "Enter", "in selection: jump to the message a reply answers"),
    entry("keys", "Up Down Enter", "in search results: move; open the hit in its room"),
    entry("keys", "Esc", "leave selection, cancel a reply or edit, close results or this help"),
    entry("keys", "Alt+U", "jump to the first unread message"),
    entry("keys", "Alt+1..9 Ctrl+N Ctrl+P", "room N, next room, previous room"),
    entry("keys", "PgUp PgDn", "scroll the room"),
    entry("keys", "Ctrl+Up Ctrl+Down", "recall what you typed before"),
    entry("keys", "Tab", "complete commands, #rooms, nicks and :emoji:"),
    entry("keys", "F1", "this help; /help CMD shows one command"),
    entry("keys", "F2", "mouse: scrolling and click-to-select, or the terminal's selection"),
    entry("keys", "/quit", "quit (Ctrl+C)"),
];

/// The slash commands, sorted, with the aliases: what Tab completes after `/`.
pub(crate) fn commands() -> Vec<&'static str> {
    let mut commands: Vec<&'static str> = ENTRIES
        .iter()
        .filter_map(|e| e.usage.split(' ').next().filter(|c| c.starts_with('/')))
        .chain(["/help", "/part", "/query"])
        .collect();
    commands.sort_unstable();
    commands.dedup();
    commands
}

/// One command's line, for `/help CMD` (with or without the slash; aliases included).
pub(crate) fn one(name: &str) -> Option<String> {
    let name = name.trim_start_matches('/');
    let name = match name {
        "part" => "leave",
        "query" => "dm",
        "j" => "join",
        other => other,
    };
    ENTRIES
        .iter()
        .find(|e| e.usage.split(' ').next() == Some(&format!("/{name}")))
        .map(|e| format!("{} — {}", e.usage, e.what))
}

/// The overlay's lines: a title per group, then its entries as (usage, what).
pub(crate) fn lines() -> Vec<(Option<&'static str>, &'static Entry)> {
    let mut lines = Vec::new();
    let mut group = "";
    for entry in ENTRIES {
        lines.push(((entry.group != group).then_some(entry.group), entry));
        group = entry.group;
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_one_line_and_aliases_find_theirs() {
        let commands = commands();
        assert!(commands.windows(2).all(|w| w[0] < w[1]), "sorted, no twins");
        for command in &commands {
            if !["/help", "/part", "/query"].contains(command) {
                assert!(one(command).is_some(), "{command} has no help line");
            }
        }
        assert!(one("part").unwrap().starts_with("/leave"));
        assert!(one("/query").unwrap().starts_with("/dm USER"));
        assert!(one("nosuch").is_none());
        assert_eq!(lines().iter().filter(|(title, _)| title.is_some()).count(), 6);
    }
}
