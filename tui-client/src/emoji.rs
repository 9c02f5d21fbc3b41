//! Emoji by `:shortcode:`, as GitHub, Slack and Discord spell them (gemoji's table): what
//! `/react`, the TUI's reaction key and `banter react` accept.

/// The emoji `typed` names: an emoji itself, or a `:shortcode:` (`:thumbsup:`, `:tada:`).
pub(crate) fn resolve(typed: &str) -> Option<String> {
    let typed = typed.trim();
    if let Some(code) = typed.strip_prefix(':').and_then(|t| t.strip_suffix(':')) {
        return emojis::get_by_shortcode(code).map(|e| e.as_str().to_owned());
    }
    emojis::get(typed).map(|e| e.as_str().to_owned())
}

/// The first shortcode that starts with `prefix` (without colons), as `:code:`.
pub(crate) fn complete(prefix: &str) -> Option<String> {
    if prefix.is_empty() {
        return None;
    }
    emojis::iter()
        .flat_map(|e| e.shortcodes())
        .find(|code| code.starts_with(prefix))
        .map(|code| format!(":{code}:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcodes_and_emoji_resolve_and_other_text_does_not() {
        assert_eq!(resolve(":thumbsup:").as_deref(), Some("👍"));
        assert_eq!(resolve(" 🎉 ").as_deref(), Some("🎉"));
        assert_eq!(resolve(":nosuchcode:"), None);
        assert_eq!(resolve("lol"), None);
        assert_eq!(complete("thumbsu").as_deref(), Some(":thumbsup:"));
        assert_eq!(complete(""), None);
    }
}
