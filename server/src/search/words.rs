//! How text becomes search terms (spec §6.10), for documents and queries alike: runs of
//! letters and digits, then lower-cased and folded to ASCII where a folding exists (`Café` →
//! `cafe`, `Straße` → `strasse`); runs of Han, Hiragana, Katakana and Hangul, which are not
//! separated by spaces, as overlapping pairs of characters, so that any two or more
//! characters of such a run can be found (a phrase of pairs).

use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// The analyzer's name in the index.
pub(crate) const ANALYZER: &str = "banter_words";

/// The analyzer for message texts and file names.
pub(crate) fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(Words)
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// The terms of `text`, in order (for queries).
pub(crate) fn terms(text: &str) -> Vec<String> {
    positioned(text).into_iter().map(|(_, term)| term).collect()
}

/// The terms of `text` with their positions (0 for the first word; a word too long to be a
/// term still takes its position, as in the tantivy index).
pub(crate) fn positioned(text: &str) -> Vec<(usize, String)> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while let Some(token) = stream.next() {
        out.push((token.position, token.text.clone()));
    }
    out
}

/// Whether `c` belongs to a script written without spaces between words.
fn unspaced(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30ff       // Hiragana, Katakana
        | 0x31f0..=0x31ff     // Katakana phonetic extensions
        | 0x3400..=0x4dbf     // CJK extension A
        | 0x4e00..=0x9fff     // CJK unified ideographs
        | 0xf900..=0xfaff     // CJK compatibility ideographs
        | 0xff66..=0xff9f     // half-width Katakana
        | 0x1100..=0x11ff     // Hangul Jamo
        | 0x3130..=0x318f     // Hangul compatibility Jamo
        | 0xac00..=0xd7af     // Hangul syllables
        | 0x20000..=0x2ebef   // CJK extensions B–F
    )
}

/// Splits text into words and pairs (see the module docs).
#[derive(Debug, Clone, Default)]
pub(crate) struct Words;

/// The tokens of one text, computed up front.
pub(crate) struct WordStream {
    tokens: Vec<Token>,
    next: usize,
}

impl Tokenizer for Words {
    type TokenStream<'a> = WordStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordStream {
        let mut tokens = Vec::new();
        let mut token = |from: usize, to: usize| {
            let position = tokens.len();
            tokens.push(Token {
                offset_from: from,
                offset_to: to,
                position,
                text: text[from..to].to_owned(),
                position_length: 1,
            });
        };
        let mut chars = text.char_indices().peekable();
        while let Some((start, c)) = chars.next() {
            if unspaced(c) {
                let mut run = vec![(start, c.len_utf8())];
                while let Some(&(at, next)) = chars.peek() {
                    if !unspaced(next) {
                        break;
                    }
                    run.push((at, next.len_utf8()));
                    chars.next();
                }
                match run.as_slice() {
                    [(at, len)] => token(*at, at + len),
                    pairs => {
                        for pair in pairs.windows(2) {
                            token(pair[0].0, pair[1].0 + pair[1].1);
                        }
                    }
                }
            } else if c.is_alphanumeric() {
                let mut end = start + c.len_utf8();
                while let Some(&(at, next)) = chars.peek() {
                    if !next.is_alphanumeric() || unspaced(next) {
                        break;
                    }
                    end = at + next.len_utf8();
                    chars.next();
                }
                token(start, end);
            }
        }
        WordStream { tokens, next: 0 }
    }
}

impl TokenStream for WordStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_folded_without_case_or_accents() {
        assert_eq!(
            terms("Café au LAIT, naïve Straße!"),
            ["cafe", "au", "lait", "naive", "strasse"]
        );
        assert_eq!(terms("e-mail 2026-11-29"), ["e", "mail", "2026", "11", "29"]);
        assert_eq!(terms("  ...  "), Vec::<String>::new());
    }

    #[test]
    fn unspaced_scripts_become_overlapping_pairs() {
        assert_eq!(terms("東京タワー"), ["東京", "京タ", "タワ", "ワー"]);
        assert_eq!(terms("東"), ["東"]);
        assert_eq!(terms("in 東京 now"), ["in", "東京", "now"]);
        assert_eq!(terms("한국어"), ["한국", "국어"]);
    }

    #[test]
    fn offsets_point_into_the_original_text() {
        let text = "Café 東京";
        let mut analyzer = analyzer();
        let mut stream = analyzer.token_stream(text);
        let mut spans = Vec::new();
        while let Some(token) = stream.next() {
            spans.push(&text[token.offset_from..token.offset_to]);
        }
        assert_eq!(spans, ["Café", "東京"]);
    }
}
