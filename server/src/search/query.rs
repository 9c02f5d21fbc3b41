//! The search query language (spec §6.10), parsed without I/O: words, "phrases", -exclusions
//! and the operators from:, in:, before:, after:, has:. Names are resolved and rooms
//! authorized by the request handler, not here.

/// A parsed query.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// Words and phrases that must all match.
    pub(crate) required: Vec<String>,
    /// Words and phrases that must not match.
    pub(crate) excluded: Vec<String>,
    /// `from:` usernames (any of them).
    pub(crate) from: Vec<String>,
    /// `in:` room names (any of them), without a leading `#`.
    pub(crate) rooms: Vec<String>,
    /// `after:`: ms since the epoch, inclusive.
    pub(crate) after: Option<u64>,
    /// `before:`: ms since the epoch, exclusive.
    pub(crate) before: Option<u64>,
    /// `has:file`.
    pub(crate) files_only: bool,
}

impl Parsed {
    /// Whether the query names anything to match or filter by.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

const DAY_MS: u64 = 24 * 3600 * 1000;

/// `YYYY-MM-DD` (UTC) as ms since the epoch at its start.
fn day(value: &str) -> Option<u64> {
    let mut parts = value.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || d < 1 {
        return None;
    }
    if d > days_in_month[(m - 1) as usize] {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days).ok().map(|days| days * DAY_MS)
}

/// Parses a query; the error says what is wrong, for INVALID_REQUEST.
pub(crate) fn parse(query: &str) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut rest = query.trim_start();
    while !rest.is_empty() {
        let negated = rest.starts_with('-') && rest.len() > 1 && !rest[1..].starts_with(' ');
        if negated {
            rest = &rest[1..];
        }
        let item;
        if let Some(quoted) = rest.strip_prefix('"') {
            // A phrase runs to the closing quote, or to the end.
            let end = quoted.find('"').unwrap_or(quoted.len());
            item = Item::Text(quoted[..end].to_owned());
            rest = quoted.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            item = classify(&rest[..end])?;
            rest = &rest[end..];
        }
        rest = rest.trim_start();
        match (item, negated) {
            // Punctuation alone has no terms to match.
            (Item::Text(text), _) if !text.chars().any(char::is_alphanumeric) => {}
            (Item::Text(text), false) => parsed.required.push(text),
            (Item::Text(text), true) => parsed.excluded.push(text),
            (Item::From(user), false) => parsed.from.push(user),
            (Item::In(room), false) => parsed.rooms.push(room),
            (Item::After(ms), false) => parsed.after = Some(parsed.after.unwrap_or(0).max(ms)),
            (Item::Before(ms), false) => {
                parsed.before = Some(parsed.before.unwrap_or(u64::MAX).min(ms));
            }
            (Item::HasFile, false) => parsed.files_only = true,
            (_, true) => return Err("operators cannot be negated".into()),
        }
    }
    Ok(parsed)
}

enum Item {
    Text(String),
    From(String),
    In(String),
    After(u64),
    Before(u64),
    HasFile,
}

/// A bare token: an operator, or a word (a word may contain a colon, like a URL).
fn classify(token: &str) -> Result<Item, String> {
    let Some((name, value)) = token.split_once(':') else { return Ok(Item::Text(token.into())) };
    let missing = || format!("{name}: needs a value");
    match name.to_ascii_lowercase().as_str() {
        "from" if value.is_empty() => Err(missing()),
        "from" => Ok(Item::From(value.trim_start_matches('@').to_owned())),
        "in" if value.trim_start_matches('#').is_empty() => Err(missing()),
        "in" => Ok(Item::In(value.trim_start_matches('#').to_owned())),
        "after" | "before" => {
            let ms =
                day(value).ok_or_else(|| format!("{name}: {value:?} is not a YYYY-MM-DD date"))?;
            // before:D excludes day D; after:D includes it.
            Ok(if name.eq_ignore_ascii_case("after") { Item::After(ms) } else { Item::Before(ms) })
        }
        "has" if value.eq_ignore_ascii_case("file") => Ok(Item::HasFile),
        "has" => Err(format!("has:{value}: only has:file is known")),
        _ => Ok(Item::Text(token.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_phrases_and_exclusions() {
        let parsed = parse(r#"lunch "exact plan" -pizza -"cold pasta" café"#).unwrap();
        assert_eq!(parsed.required, ["lunch", "exact plan", "café"]);
        assert_eq!(parsed.excluded, ["pizza", "cold pasta"]);
        assert!(!parsed.is_empty());
        // An unclosed quote runs to the end; a lone dash is nothing.
        let parsed = parse(r#"- "open phrase"#).unwrap();
        assert_eq!(parsed.required, ["open phrase"]);
    }

    #[test]
    fn operators() {
        let parsed =
            parse("from:@ada in:#general after:2026-11-01 before:2026-12-01 has:file http://x.y")
                .unwrap();
        assert_eq!(parsed.from, ["ada"]);
        assert_eq!(parsed.rooms, ["general"]);
        assert_eq!(parsed.after, Some(1_793_491_200_000)); // 2026-11-01T00:00Z
        assert_eq!(parsed.before, Some(1_796_083_200_000)); // 2026-12-01T00:00Z
        assert!(parsed.files_only);
        assert_eq!(parsed.required, ["http://x.y"], "a word with a colon stays a word");
        assert_eq!(day("1970-01-02"), Some(DAY_MS));
        assert_eq!(day("2024-02-29"), Some(1_709_164_800_000));
    }

    #[test]
    fn bad_operators_are_errors() {
        for bad in
            ["from:", "in:#", "before:2026-13-01", "after:2025-02-29", "has:link", "-from:ada"]
        {
            assert!(parse(bad).is_err(), "{bad} parsed");
        }
        assert!(parse("   ").unwrap().is_empty());
    }
}
