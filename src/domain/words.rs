//! The words of a request's text, as word timestamps report them: each with its place in the
//! text, counted in Unicode code points (what JavaScript's `Array.from(text)` and Python's `str`
//! index), end exclusive.
//!
//! A word is a run of non-space characters with the punctuation attached to it (`Hello,` is one
//! word, as captions show it). Scripts written without spaces (Chinese, Japanese, Thai...) give
//! one word per character, punctuation attached to the character before it. Combining marks
//! and emoji modifiers stay with the character they modify.

use std::ops::Range;

/// What follows a word: how long a pause a speaker likely makes there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    None,
    /// `,` `;` `:` or a dash.
    Comma,
    /// `.` `!` `?` `…`, or a line break.
    Sentence,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextWord {
    pub text: String,
    /// Code points of the text.
    pub chars: Range<usize>,
    pub boundary: Boundary,
}

impl TextWord {
    /// The word without the punctuation around it, lowercased: what a vendor's word is
    /// compared with.
    pub fn key(&self) -> String {
        key(&self.text)
    }
}

/// Letters and digits of `text`, lowercased, without their accents (compatibility-decomposed,
/// marks dropped), so that `café` written with a combining accent and `café` precomposed compare
/// equal.
pub fn key(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    text.nfkd().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// Marks that belong to the character before them even in unspaced scripts (Thai vowel and
/// tone marks, kana voicing marks), besides the general combining marks.
fn is_mark(c: char) -> bool {
    matches!(c as u32,
        0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F
        | 0x0E31 | 0x0E34..=0x0E3A | 0x0E47..=0x0E4E | 0x0EB1 | 0x0EB4..=0x0EBC | 0x0EC8..=0x0ECD
        | 0x17B4..=0x17D3 | 0x3099..=0x309A)
}

/// Scripts whose words are not separated by spaces: one word per character.
fn unspaced(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x2FDF      // CJK radicals
        | 0x3040..=0x30FF    // Hiragana, Katakana
        | 0x3100..=0x312F    // Bopomofo
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables (spaced, but one unit each reads best)
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0x0E00..=0x0E7F    // Thai
        | 0x0E80..=0x0EFF    // Lao
        | 0x1780..=0x17FF    // Khmer
        | 0x20000..=0x2FA1F) // CJK extensions B-F
}

fn boundary_of(word: &str) -> Boundary {
    let last = word.chars().rev().find(|c| !matches!(c, '"' | '\'' | ')' | ']' | '”' | '’' | '»'));
    match last {
        Some('.' | '!' | '?' | '…' | '。' | '！' | '？') => Boundary::Sentence,
        Some(',' | ';' | ':' | '-' | '–' | '—' | '、' | '，' | '；' | '：') => Boundary::Comma,
        _ => Boundary::None,
    }
}

/// The words of `text`, in order. Words with no letter or digit at all (a lone dash, an emoji)
/// are words too: they may be spoken, and they have a place in the text.
pub fn split(text: &str) -> Vec<TextWord> {
    let chars: Vec<char> = text.chars().collect();
    let mut words: Vec<TextWord> = Vec::new();
    let mut start: Option<usize> = None;
    let close = |words: &mut Vec<TextWord>, from: usize, to: usize| {
        if from < to {
            let text: String = chars[from..to].iter().collect();
            words.push(TextWord { boundary: boundary_of(&text), text, chars: from..to });
        }
    };
    for (i, &c) in chars.iter().enumerate() {
        // A character of an unspaced script opens a word of its own; so does a letter or digit
        // after one (marks and punctuation stay with it).
        let opens =
            !is_mark(c) && (unspaced(c) || start.is_some_and(|from| unspaced(chars[from]) && c.is_alphanumeric()));
        if c.is_whitespace() || opens {
            if let Some(from) = start.take() {
                close(&mut words, from, i);
            }
        }
        if c.is_whitespace() {
            if let (true, Some(last)) = (c == '\n', words.last_mut()) {
                last.boundary = Boundary::Sentence;
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(from) = start {
        close(&mut words, from, chars.len());
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<(String, usize, usize)> {
        split(text).into_iter().map(|w| (w.text, w.chars.start, w.chars.end)).collect()
    }

    fn owned(list: &[(&str, usize, usize)]) -> Vec<(String, usize, usize)> {
        list.iter().map(|(t, a, b)| ((*t).to_owned(), *a, *b)).collect()
    }

    #[test]
    fn words_keep_their_punctuation_and_code_point_offsets() {
        assert_eq!(texts("Hello, world!"), owned(&[("Hello,", 0, 6), ("world!", 7, 13)]));
        assert_eq!(texts("  two\tspaces  "), owned(&[("two", 2, 5), ("spaces", 6, 12)]));
        assert_eq!(texts(""), owned(&[]));
        assert_eq!(texts(" \n "), owned(&[]));
        let kinds: Vec<Boundary> = split("Yes, no. Maybe\nso").iter().map(|w| w.boundary).collect();
        assert_eq!(kinds, [Boundary::Comma, Boundary::Sentence, Boundary::Sentence, Boundary::None]);
    }

    #[test]
    fn emoji_and_combining_marks_count_as_code_points() {
        // "café" written with a combining acute: five code points.
        assert_eq!(texts("cafe\u{301} ok"), owned(&[("cafe\u{301}", 0, 5), ("ok", 6, 8)]));
        // A thumbs-up with a skin tone is two code points, one word.
        assert_eq!(texts("nice 👍🏽 job"), owned(&[("nice", 0, 4), ("👍🏽", 5, 7), ("job", 8, 11)]));
    }

    #[test]
    fn unspaced_scripts_give_one_word_per_character() {
        assert_eq!(texts("你好，世界。"), owned(&[("你", 0, 1), ("好，", 1, 3), ("世", 3, 4), ("界。", 4, 6)]));
        assert_eq!(texts("Tokyo東京"), owned(&[("Tokyo", 0, 5), ("東", 5, 6), ("京", 6, 7)]));
        assert_eq!(split("好，")[0].boundary, Boundary::Comma);
        // Thai vowel marks and kana voicing marks stay with their character.
        assert_eq!(texts("กิน"), owned(&[("กิ", 0, 2), ("น", 2, 3)]));
        assert_eq!(texts("か\u{3099}"), owned(&[("か\u{3099}", 0, 2)]));
    }

    #[test]
    fn keys_compare_words_without_punctuation_or_case() {
        assert_eq!(key("“Hello,”"), "hello");
        assert_eq!(key("--"), "");
        assert_eq!(key("Ünïcode"), "unicode");
        assert_eq!(key("cafe\u{301}"), key("café"));
    }
}
