//! ElevenLabs' character alignment from the gateway's word timestamps.
//!
//! ElevenLabs times every character of the request text; the gateway times words. Each
//! character of a word gets an equal slice of the word's time, and the characters between two
//! words (spaces, and anything the timing skipped) share the silence between them. Characters
//! are Unicode code points, as the timestamps' `charStart`/`charEnd` count them, so the arrays
//! have one entry per code point of the text and concatenated `characters` are the text.

use serde::Serialize;
use utoipa::ToSchema;

use crate::service::timestamps::{round_ms, Timestamp};

/// ElevenLabs' `CharacterAlignmentResponseModel`: three arrays of equal length.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct ElevenLabsAlignment {
    pub characters: Vec<String>,
    pub character_start_times_seconds: Vec<f64>,
    pub character_end_times_seconds: Vec<f64>,
}

impl ElevenLabsAlignment {
    pub fn is_empty(&self) -> bool {
        self.characters.is_empty()
    }

    /// The start of character `index` and the end of the character before `end` (exclusive).
    pub fn span(&self, index: usize, end: usize) -> Option<(f64, f64)> {
        let start = *self.character_start_times_seconds.get(index)?;
        let end = *self.character_end_times_seconds.get(end.checked_sub(1)?)?;
        Some((start, end.max(start)))
    }
}

/// Times a text's characters as its words arrive, in order.
pub struct Aligner {
    chars: Vec<char>,
    /// Characters timed so far.
    cursor: usize,
    /// Where the last timed character ends, in seconds.
    time: f64,
}

impl Aligner {
    pub fn new(text: &str) -> Self {
        Self { chars: text.chars().collect(), cursor: 0, time: 0.0 }
    }

    /// The characters up to the end of the last of `words` (the gaps before them included), or
    /// `None` when they time no new character. `words` refer to the text in code points; words
    /// that overlap what is already timed keep only their new characters.
    pub fn words(&mut self, words: &[Timestamp]) -> Option<ElevenLabsAlignment> {
        let mut out = ElevenLabsAlignment::default();
        for word in words {
            let end = word.char_end.min(self.chars.len());
            let start = word.char_start.max(self.cursor);
            if start >= end {
                continue;
            }
            let begins = word.start.max(self.time);
            self.spread(&mut out, start, begins);
            self.spread(&mut out, end, word.end.max(begins));
        }
        (!out.is_empty()).then_some(out)
    }

    /// The characters not yet timed, spread until `end_secs`, or `None` when there are none.
    pub fn rest(&mut self, end_secs: f64) -> Option<ElevenLabsAlignment> {
        let mut out = ElevenLabsAlignment::default();
        self.spread(&mut out, self.chars.len(), end_secs.max(self.time));
        (!out.is_empty()).then_some(out)
    }

    /// Times the characters from the cursor to `upto` evenly from the current time to `until`.
    fn spread(&mut self, out: &mut ElevenLabsAlignment, upto: usize, until: f64) {
        let count = upto.saturating_sub(self.cursor);
        if count > 0 {
            let (from, step) = (self.time, (until - self.time) / count as f64);
            for (i, ch) in self.chars[self.cursor..upto].iter().enumerate() {
                out.characters.push(ch.to_string());
                out.character_start_times_seconds.push(round_ms(from + step * i as f64));
                out.character_end_times_seconds.push(round_ms(from + step * (i + 1) as f64));
            }
            self.cursor = upto;
        }
        self.time = until;
    }
}

/// Every character of `text`, timed from `words`; characters after the last word last until
/// `end_secs`.
pub fn align(text: &str, words: &[Timestamp], end_secs: f64) -> ElevenLabsAlignment {
    let mut aligner = Aligner::new(text);
    let mut all = aligner.words(words).unwrap_or_default();
    if let Some(rest) = aligner.rest(end_secs) {
        all.characters.extend(rest.characters);
        all.character_start_times_seconds.extend(rest.character_start_times_seconds);
        all.character_end_times_seconds.extend(rest.character_end_times_seconds);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, start: f64, end: f64, char_start: usize) -> Timestamp {
        Timestamp {
            text: text.to_owned(),
            start,
            end,
            char_start,
            char_end: char_start + text.chars().count(),
            turn_index: None,
        }
    }

    #[test]
    fn every_character_is_timed_in_order() {
        let text = " Hi, you!";
        let words = [word("Hi,", 0.1, 0.4, 1), word("you!", 0.5, 0.9, 5)];
        let a = align(text, &words, 1.0);
        assert_eq!(a.characters.concat(), text);
        assert_eq!(a.character_start_times_seconds.len(), 9);
        assert_eq!(a.character_end_times_seconds.len(), 9);
        assert_eq!(a.character_start_times_seconds, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]);
        assert_eq!(a.character_end_times_seconds, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);
        assert_eq!(a.span(5, 9), Some((0.5, 0.9)));
    }

    #[test]
    fn trailing_characters_last_until_the_end_and_times_never_fall() {
        // Overlapping and out-of-range words (a hostile or confused provider) are clipped.
        let words = [word("ab", 0.5, 0.2, 0), word("bc", 0.1, 0.3, 1), word("zz", 0.0, 9.0, 40)];
        let a = align("abcdé", &words, 1.5);
        assert_eq!(a.characters, ["a", "b", "c", "d", "é"]);
        let starts = &a.character_start_times_seconds;
        assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
        assert_eq!(*a.character_end_times_seconds.last().unwrap(), 1.5);
    }

    #[test]
    fn words_arriving_in_parts_time_each_character_once() {
        let mut aligner = Aligner::new("one two");
        let first = aligner.words(&[word("one", 0.0, 0.3, 0)]).unwrap();
        assert_eq!(first.characters.concat(), "one");
        assert!(aligner.words(&[word("one", 0.0, 0.3, 0)]).is_none());
        let second = aligner.words(&[word("two", 0.4, 0.7, 4)]).unwrap();
        assert_eq!(second.characters.concat(), " two");
        assert!(aligner.rest(0.7).is_none());
    }
}
