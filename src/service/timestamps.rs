//! Word timestamps in one shape for every provider: the caller's own words, each with its
//! place in the caller's text and when it is spoken in the returned audio.
//!
//! Providers report timing on *their* words — ElevenLabs per character (folded into words by
//! the adapter), Cartesia per word, the local engine per word without punctuation — of the text
//! they were sent, which pronunciation rules may have changed and which the provider itself may
//! have rewritten (numbers spoken out). So timing is matched letter by letter: the letters and
//! digits of the spoken text against those of the provider's words, each provider letter timed
//! evenly within its word. Where the two agree (the usual case) a word's start is its first
//! letter's and its end its last's; where the provider rewrote something, the letters between
//! the nearest agreeing ones share the time between them, and a warning says so. Spoken words
//! are then mapped back to the caller's words (a replaced word keeps its original text and
//! range; several spoken words from one replacement make one word).
//!
//! Providers without timing get estimates from the audio (`audio::align`).

use std::ops::Range;

use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    audio::{align, AudioSpec},
    domain::{
        pronounce::Spoken,
        words::{self, Boundary, TextWord},
    },
    providers::WordTiming,
};

/// A word and when it is spoken.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timestamp {
    /// The word as the caller wrote it, with its punctuation.
    pub text: String,
    /// Seconds from the start of the returned audio.
    pub start: f64,
    pub end: f64,
    /// Where the word is in the request's text (a conversation: the turn's text), in Unicode
    /// code points, end exclusive.
    pub char_start: usize,
    pub char_end: usize,
    /// The conversation turn the word belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn_index: Option<usize>,
}

/// Audio held whole, and the times of its words: what every JSON `/with-timestamps` answer
/// carries.
pub struct TimedClip {
    pub audio: Vec<u8>,
    pub output: AudioSpec,
    /// What a player plays, the encoder's lead-in included.
    pub duration_ms: u64,
    pub timestamps: Vec<Timestamp>,
    pub alignment: Alignment,
    pub warnings: Vec<String>,
}

/// Where the times come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Alignment {
    /// Reported by the provider.
    Native,
    /// Estimated by the gateway from the audio.
    Estimated,
}

/// What timing a with-timestamps request accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The provider's own timing where it has it, else an estimate from the audio (Speechbase's
    /// `"on"` means the same).
    #[default]
    #[serde(alias = "on")]
    Auto,
    /// Only the provider's own timing: a provider without it is refused before synthesis (503
    /// `timestamps_unavailable`).
    Native,
}

/// Times the caller's words of one clip: from the provider's word timings when it sent any,
/// else estimated from `samples` (mono at `rate`). With `Mode::Native`, no estimate is made:
/// `None` then means the provider sent no timing after all.
pub fn time_words(
    original: &str,
    spoken: &Spoken,
    provider_words: &[WordTiming],
    samples: &[i16],
    rate: u32,
    mode: Mode,
) -> Option<(Vec<Timestamp>, Alignment, Vec<String>)> {
    if !provider_words.is_empty() {
        let clip_secs = samples.len() as f64 / f64::from(rate.max(1));
        let (stamps, warning) = from_native(original, spoken, provider_words, clip_secs);
        return Some((stamps, Alignment::Native, warning.into_iter().collect()));
    }
    if mode == Mode::Native {
        return None;
    }
    let warning = "word times are estimated from the audio: the provider reports none".to_owned();
    Some((estimated(original, spoken, samples, rate), Alignment::Estimated, vec![warning]))
}

/// Moves every timestamp `seconds` later (a lead-in, or the turn's place in a mix).
pub fn shift(stamps: &mut [Timestamp], seconds: f64) {
    for stamp in stamps {
        stamp.start = round_ms(stamp.start + seconds);
        stamp.end = round_ms(stamp.end + seconds);
    }
}

impl Alignment {
    pub fn as_str(self) -> &'static str {
        match self {
            Alignment::Native => "native",
            Alignment::Estimated => "estimated",
        }
    }
}

/// How far ahead a mismatch looks for the letters to agree again.
const RESYNC_WINDOW: usize = 400;
/// Letters that must agree for the two texts to count as in step again.
const RESYNC_RUN: usize = 4;

/// The caller's words timed from the provider's words. Returns the timestamps and a warning
/// when some words had to be interpolated.
///
/// Provider times are kept inside `[0, clip_secs]`, the audio actually received.
pub fn from_native(
    original: &str,
    spoken: &Spoken,
    vendor: &[WordTiming],
    clip_secs: f64,
) -> (Vec<Timestamp>, Option<String>) {
    let native = native(original, spoken, vendor, clip_secs);
    (native.timestamps, native.warning)
}

/// [`from_native`], and how much of it is settled.
pub struct Native {
    pub timestamps: Vec<Timestamp>,
    pub warning: Option<String>,
    /// How far into the caller's text (in code points) the words are settled by what the
    /// provider has sent so far: the words whose letters all agree, letter for letter from the
    /// start, with the provider's words received (each provider word arrives complete, so their
    /// times cannot change). Words without letters are settled with the next word that has
    /// some. A stream sends the words before this point and keeps the rest for later.
    pub settled_chars: usize,
}

pub fn native(original: &str, spoken: &Spoken, vendor: &[WordTiming], clip_secs: f64) -> Native {
    let words = words::split(&spoken.text);
    let theirs = their_letters(vendor, clip_secs);
    let ours = our_letters(&words);
    let (times, exact) = match_letters(&ours, &theirs);
    let differing = ours.len().max(theirs.len()) - exact;
    let mut spans: Vec<Option<(f64, f64)>> = vec![None; words.len()];
    for ((_, w), (start, end)) in ours.iter().zip(&times) {
        let span = spans[*w].get_or_insert((*start, *end));
        span.0 = span.0.min(*start);
        span.1 = span.1.max(*end);
    }
    let timed = fill_gaps(&spans);
    let warning = (differing > 0).then(|| {
        format!(
            "the provider's words differ from the text in {differing} letters (numbers or symbols read out, \
             words rewritten); the times of the words around them are interpolated"
        )
    });
    // Settled: every word (with letters) before the first word that does not agree in full.
    let agreeing = ours.iter().zip(&theirs).take_while(|(a, b)| a.0 == b.0).count();
    let unsettled = ours.get(agreeing).map_or(usize::MAX, |letter| letter.1);
    let settled_words = ours[..agreeing].iter().rev().map(|l| l.1).find(|w| *w < unsettled).map_or(0, |w| w + 1);
    let settled_chars = match words.get(settled_words) {
        Some(next) => spoken.origin(next.chars.start..next.chars.start + 1).start,
        None => usize::MAX,
    };
    Native { timestamps: to_caller(original, spoken, &words, &timed), warning, settled_chars }
}

/// The provider's letters, each timed evenly within its word, inside the clip.
fn their_letters(vendor: &[WordTiming], clip_secs: f64) -> Vec<(char, f64, f64)> {
    let clip_secs = finite(clip_secs);
    let mut theirs = Vec::new();
    for word in vendor {
        let key: Vec<char> = words::key(&word.text).chars().collect();
        let start = finite(word.start).min(clip_secs);
        let end = finite(word.end).clamp(start, clip_secs);
        let step = (end - start) / key.len().max(1) as f64;
        theirs
            .extend(key.iter().enumerate().map(|(i, c)| (*c, start + step * i as f64, start + step * (i + 1) as f64)));
    }
    theirs
}

/// Our letters, each with the word it belongs to.
fn our_letters(words: &[TextWord]) -> Vec<(char, usize)> {
    words.iter().enumerate().flat_map(|(w, word)| word.key().chars().map(move |c| (c, w)).collect::<Vec<_>>()).collect()
}

/// The caller's words timed by estimate from the audio (mono PCM at `rate`).
pub fn estimated(original: &str, spoken: &Spoken, samples: &[i16], rate: u32) -> Vec<Timestamp> {
    let words = words::split(&spoken.text);
    let input: Vec<align::Word> = words.iter().map(|w| align::Word { text: &w.text, boundary: boundary(w) }).collect();
    let timed = align::estimate(samples, rate, &input);
    to_caller(original, spoken, &words, &timed)
}

fn boundary(word: &TextWord) -> align::Boundary {
    match word.boundary {
        Boundary::None => align::Boundary::None,
        Boundary::Comma => align::Boundary::Comma,
        Boundary::Sentence => align::Boundary::Sentence,
    }
}

/// Most letter comparisons spent finding where the texts agree again after they fall out of
/// step (a few milliseconds); past it, the rest is interpolated, so a provider answering
/// something else entirely cannot cost quadratic time.
const RESYNC_BUDGET: usize = 4_000_000;

/// Matches our letters to theirs in order; returns a time for each of ours (those without a
/// counterpart get the time between their neighbours) and how many matched exactly.
fn match_letters(ours: &[(char, usize)], theirs: &[(char, f64, f64)]) -> (Vec<(f64, f64)>, usize) {
    let mut times: Vec<Option<(f64, f64)>> = vec![None; ours.len()];
    let mut exact = 0;
    let (mut i, mut j) = (0, 0);
    let mut budget = RESYNC_BUDGET;
    while i < ours.len() && j < theirs.len() {
        if ours[i].0 == theirs[j].0 {
            times[i] = Some((theirs[j].1, theirs[j].2));
            exact += 1;
            i += 1;
            j += 1;
            continue;
        }
        let Some((next_i, next_j)) = resync(ours, theirs, i, j, &mut budget) else {
            break;
        };
        // Our skipped letters share the time of their skipped letters.
        let from = theirs[j].1;
        let to = if next_j > j { theirs[next_j - 1].2 } else { from };
        let step = (to - from) / (next_i - i).max(1) as f64;
        for (k, slot) in times[i..next_i].iter_mut().enumerate() {
            *slot = Some((from + step * k as f64, from + step * (k + 1) as f64));
        }
        (i, j) = (next_i, next_j);
    }
    // Letters left over sit at the last time known before them.
    let mut last = 0.0;
    let filled = times
        .iter()
        .map(|t| {
            let t = t.unwrap_or((last, last));
            last = t.1;
            t
        })
        .collect();
    (filled, exact)
}

/// The nearest `(i', j')` past a mismatch at `(i, j)` where [`RESYNC_RUN`] letters agree (or all
/// of ours that is left, or the end of both).
fn resync(
    ours: &[(char, usize)],
    theirs: &[(char, f64, f64)],
    i: usize,
    j: usize,
    budget: &mut usize,
) -> Option<(usize, usize)> {
    for distance in 1..=RESYNC_WINDOW {
        for di in 0..=distance {
            *budget = budget.checked_sub(RESYNC_RUN)?;
            let (a, b) = (i + di, j + distance - di);
            if a > ours.len() || b > theirs.len() {
                continue;
            }
            if a == ours.len() && b == theirs.len() {
                return Some((a, b));
            }
            let run = RESYNC_RUN.min(ours.len() - a).min(theirs.len() - b);
            let agree = run > 0 && (0..run).all(|k| ours[a + k].0 == theirs[b + k].0);
            if agree && (run == RESYNC_RUN || run == ours.len() - a) {
                return Some((a, b));
            }
        }
    }
    None
}

fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x.max(0.0)
    } else {
        0.0
    }
}

/// Words without letters (a dash, an emoji) take the moment the word before them ends; no word
/// starts before the one before it ended.
fn fill_gaps(spans: &[Option<(f64, f64)>]) -> Vec<(f64, f64)> {
    let mut previous_end = 0.0;
    spans
        .iter()
        .map(|span| {
            let (start, end) = span.map_or((previous_end, previous_end), |(start, end)| {
                let start = start.max(previous_end);
                (start, end.max(start))
            });
            previous_end = end;
            (start, end)
        })
        .collect()
}

/// Spoken words, timed, as the caller's words: offsets into the caller's text, the caller's
/// spelling, and words that came from one replacement merged.
fn to_caller(original: &str, spoken: &Spoken, words: &[TextWord], timed: &[(f64, f64)]) -> Vec<Timestamp> {
    let caller: Vec<char> = original.chars().collect();
    let mut out: Vec<Timestamp> = Vec::with_capacity(words.len());
    for (word, (start, end)) in words.iter().zip(timed) {
        let range: Range<usize> = spoken.origin(word.chars.clone());
        let range = range.start.min(caller.len())..range.end.min(caller.len());
        // Spoken words from one replacement ("SQL" → "sequel server,") stand for overlapping
        // ranges of the caller's text: one word.
        if let Some(last) = out.last_mut().filter(|l| range.start < l.char_end) {
            last.end = round_ms(last.end.max(*end));
            last.char_end = last.char_end.max(range.end);
            if spoken.origins.is_some() {
                last.text = caller[last.char_start..last.char_end].iter().collect();
            }
            continue;
        }
        let text = match &spoken.origins {
            None => word.text.clone(),
            Some(_) => caller[range.clone()].iter().collect(),
        };
        out.push(Timestamp {
            text,
            start: round_ms(*start),
            end: round_ms(*end),
            char_start: range.start,
            char_end: range.end,
            turn_index: None,
        });
    }
    out
}

/// Seconds to the millisecond: finer is noise.
/// Seconds rounded to the millisecond, as every time the gateway reports is.
pub(crate) fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::pronounce::{Pronunciations, Rule};

    fn plain(text: &str) -> Spoken {
        Spoken { text: text.to_owned(), origins: None }
    }

    fn vendor(list: &[(&str, f64, f64)]) -> Vec<WordTiming> {
        list.iter().map(|(t, s, e)| WordTiming { text: (*t).to_owned(), start: *s, end: *e }).collect()
    }

    fn summary(stamps: &[Timestamp]) -> Vec<(String, f64, f64, usize, usize)> {
        stamps.iter().map(|t| (t.text.clone(), t.start, t.end, t.char_start, t.char_end)).collect()
    }

    #[test]
    fn vendor_words_become_the_callers_words_with_offsets() {
        let text = "Hello, world! Bye.";
        let (stamps, warning) = from_native(
            text,
            &plain(text),
            &vendor(&[("Hello", 0.0, 0.4), ("world", 0.5, 0.9), ("Bye", 1.2, 1.5)]),
            10.0,
        );
        assert_eq!(warning, None);
        assert_eq!(
            summary(&stamps),
            [
                ("Hello,".to_owned(), 0.0, 0.4, 0, 6),
                ("world!".to_owned(), 0.5, 0.9, 7, 13),
                ("Bye.".to_owned(), 1.2, 1.5, 14, 18)
            ]
        );
    }

    #[test]
    fn rewritten_numbers_are_interpolated_with_a_warning() {
        let text = "I have 3 apples today";
        let (stamps, warning) = from_native(
            text,
            &plain(text),
            &vendor(&[
                ("I", 0.0, 0.1),
                ("have", 0.2, 0.5),
                ("three", 0.6, 0.9),
                ("apples", 1.0, 1.4),
                ("today", 1.5, 2.0),
            ]),
            10.0,
        );
        assert!(warning.is_some());
        let starts: Vec<f64> = stamps.iter().map(|t| t.start).collect();
        assert_eq!(stamps.len(), 5);
        assert_eq!((starts[0], starts[1], starts[3], starts[4]), (0.0, 0.2, 1.0, 1.5));
        assert!((0.5..=1.0).contains(&starts[2]), "{starts:?}");
        assert!(stamps.windows(2).all(|w| w[0].end <= w[1].start + 1e-9), "monotone: {stamps:?}");
    }

    #[test]
    fn replaced_words_keep_the_callers_text_and_range() {
        let rules = Pronunciations {
            rules: vec![Rule { word: "SQL".into(), replacement: "sequel server".into(), case_sensitive: false }],
        };
        let text = "Use SQL now";
        let spoken = rules.apply(text, 100).unwrap_or_else(|| unreachable!());
        let (stamps, _) = from_native(
            text,
            &spoken,
            &vendor(&[("Use", 0.0, 0.2), ("sequel", 0.3, 0.6), ("server", 0.6, 0.9), ("now", 1.0, 1.2)]),
            10.0,
        );
        assert_eq!(
            summary(&stamps),
            [
                ("Use".to_owned(), 0.0, 0.2, 0, 3),
                ("SQL".to_owned(), 0.3, 0.9, 4, 7),
                ("now".to_owned(), 1.0, 1.2, 8, 11)
            ]
        );
    }

    #[test]
    fn a_replacement_with_punctuation_is_one_word() {
        let rules = Pronunciations {
            rules: vec![Rule { word: "SQL".into(), replacement: "sequel server".into(), case_sensitive: false }],
        };
        let text = "Use SQL, now";
        let spoken = rules.apply(text, 100).unwrap_or_else(|| unreachable!());
        let vendor = vendor(&[("Use", 0.0, 0.2), ("sequel", 0.3, 0.6), ("server,", 0.6, 0.9), ("now", 1.0, 1.2)]);
        let (stamps, _) = from_native(text, &spoken, &vendor, 10.0);
        assert_eq!(summary(&stamps)[1], ("SQL,".to_owned(), 0.3, 0.9, 4, 8));
        assert_eq!(stamps.len(), 3);
    }

    #[test]
    fn only_words_that_agree_so_far_are_settled() {
        let text = "Hello — world and 3 more";
        // The provider has sent "Hello" and the dash: "Hello" is settled, nothing after it.
        let settled = native(text, &plain(text), &vendor(&[("Hello", 0.0, 0.4), ("—", 0.4, 0.5)]), 10.0).settled_chars;
        assert_eq!(settled, 6, "up to the dash, which waits for the next word");
        // "3" read as "three": the words before it are settled, not those after.
        let sent = vendor(&[
            ("Hello", 0.0, 0.4),
            ("world", 0.5, 0.9),
            ("and", 1.0, 1.2),
            ("three", 1.3, 1.6),
            ("more", 1.7, 2.0),
        ]);
        assert_eq!(native(text, &plain(text), &sent, 10.0).settled_chars, 18);
        let all = vendor(&[("a", 0.0, 0.1), ("b", 0.2, 0.3)]);
        assert_eq!(native("a b", &plain("a b"), &all, 10.0).settled_chars, usize::MAX);
    }

    #[test]
    fn decomposed_accents_match_precomposed_ones() {
        let text = "cafe\u{301} cre\u{300}me";
        let (stamps, warning) =
            from_native(text, &plain(text), &vendor(&[("café", 0.0, 0.4), ("crème", 0.5, 0.9)]), 10.0);
        assert_eq!(warning, None);
        assert_eq!(stamps[1].start, 0.5);
    }

    #[test]
    fn unspaced_scripts_emoji_and_marks_never_break_it() {
        // One vendor "word" for a whole Chinese sentence: each character gets its share.
        let text = "你好世界";
        let (stamps, warning) = from_native(text, &plain(text), &vendor(&[("你好世界", 0.0, 0.8)]), 10.0);
        assert_eq!(warning, None);
        assert_eq!(stamps.iter().map(|t| t.start).collect::<Vec<_>>(), [0.0, 0.2, 0.4, 0.6]);
        // An emoji has no letters: it sits between its neighbours.
        let text = "nice 👍🏽 cafe\u{301}";
        let (stamps, _) = from_native(text, &plain(text), &vendor(&[("nice", 0.0, 0.3), ("café", 0.5, 0.9)]), 10.0);
        assert_eq!(summary(&stamps)[1], ("👍🏽".to_owned(), 0.3, 0.3, 5, 7));
        assert_eq!((stamps[2].char_start, stamps[2].char_end), (8, 13));
        // Nothing from the vendor, or nonsense: still one timestamp per word, in order.
        for garbage in [vendor(&[]), vendor(&[("zzz", f64::NAN, -1.0), ("", 5.0, 1.0)])] {
            let (stamps, _) = from_native("a b c", &plain("a b c"), &garbage, 10.0);
            assert_eq!(stamps.len(), 3);
            assert!(stamps.windows(2).all(|w| w[0].end <= w[1].start + 1e-9));
        }
        assert!(from_native("", &plain(""), &vendor(&[("x", 0.0, 1.0)]), 10.0).0.is_empty());
        // Times past the audio are kept inside it; absurd ones stay numbers.
        let (stamps, _) = from_native("a b", &plain("a b"), &vendor(&[("a", 0.0, 0.5), ("b", 100.0, 1e308)]), 2.0);
        assert_eq!((stamps[1].start, stamps[1].end), (2.0, 2.0));
    }
}
