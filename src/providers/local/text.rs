//! Cutting text into sentences and words.
//!
//! Sentences are the unit the engine renders: each gets its own intonation (the engine gives one
//! tune to everything it is handed at once, so a question in the middle of a paragraph would not
//! rise), the audio of one sentence goes out before the next is rendered, and word timings are
//! matched within a sentence, so one odd token cannot shift the timings of the rest of the text.
//! A cut in the wrong place only costs a pause, never audio, so the rules are simple: end
//! punctuation followed by a space (not before a lower-case word, not after a known
//! abbreviation or an initial), or a blank line.
//!
//! Words are what word timings are reported for: the text's space-separated tokens, without
//! the punctuation around them. The engine's spoken words are finer (`well-known` is two,
//! `bob@example.org` five), so [`parts`] estimates how many spoken words a token makes, for the
//! alignment in `timing.rs`.

const TERMINATORS: [char; 4] = ['.', '!', '?', '…'];
/// Closing quotes and brackets that belong to the sentence they end.
const CLOSERS: [char; 8] = ['"', '\'', ')', ']', '}', '”', '’', '»'];
/// Opening quotes and brackets.
const OPENERS: [char; 9] = ['"', '\'', '(', '[', '{', '“', '‘', '«', '¿'];
const DASHES: [char; 4] = ['-', '‐', '–', '—'];
/// Symbols the engine reads out as a word of their own ("at", "plus", "hash"...).
const SPOKEN_SYMBOLS: [char; 6] = ['@', '+', '#', '&', '=', '*'];
/// Clause punctuation that follows a word.
const SEPARATORS: [char; 3] = [',', ';', ':'];
/// Words that a full stop follows without ending the sentence ("Mr. Smith").
const ABBREVIATIONS: [&str; 24] = [
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "fig", "inc", "ltd", "co", "corp", "dept", "approx",
    "gen", "gov", "capt", "col", "lt", "sgt", "ave",
];

/// The non-blank sentences of `text`, in order, trimmed.
pub(super) fn sentences(text: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let byte_at = |i: usize| chars.get(i).map_or(text.len(), |(at, _)| *at);
    let mut cuts = Vec::new();
    let mut i = 0;
    while let Some(&(at, c)) = chars.get(i) {
        if c == '\n' {
            let mut j = i + 1;
            while chars.get(j).is_some_and(|(_, c)| c.is_whitespace() && *c != '\n') {
                j += 1;
            }
            if chars.get(j).is_some_and(|(_, c)| *c == '\n') {
                cuts.push(at);
                i = j + 1;
                continue;
            }
        } else if TERMINATORS.contains(&c) {
            let mut j = i;
            while chars.get(j).is_some_and(|(_, c)| TERMINATORS.contains(c)) {
                j += 1;
            }
            let lone_stop = c == '.' && j == i + 1;
            while chars.get(j).is_some_and(|(_, c)| CLOSERS.contains(c)) {
                j += 1;
            }
            let at_space = chars.get(j).is_none_or(|(_, c)| c.is_whitespace());
            let next = chars[j..].iter().map(|(_, c)| *c).find(|c| !c.is_whitespace());
            let continues = next.is_some_and(char::is_lowercase);
            if at_space && !continues && !(lone_stop && abbreviation_before(&text[..at])) {
                cuts.push(byte_at(j));
            }
            i = j;
            continue;
        }
        i += 1;
    }
    let mut start = 0;
    let mut out = Vec::new();
    for end in cuts.into_iter().chain([text.len()]) {
        let sentence = text[start..end].trim();
        if !sentence.is_empty() {
            out.push(sentence);
        }
        start = end;
    }
    out
}

/// Whether `before` (the text up to a full stop) ends in an abbreviation or an initial.
fn abbreviation_before(before: &str) -> bool {
    let word_start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '.'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = &before[word_start..];
    // Glued to a symbol ("40°C."), it is a unit or a code, not an abbreviation.
    if before[..word_start].chars().next_back().is_some_and(|c| !(c.is_whitespace() || OPENERS.contains(&c))) {
        return false;
    }
    let letters = word.chars().filter(|c| c.is_alphabetic()).count();
    // An initial ("J. Smith") or a dotted abbreviation ("e.g.", "U.S.").
    if letters == 1 || word.contains('.') {
        return letters > 0;
    }
    ABBREVIATIONS.iter().any(|a| a.eq_ignore_ascii_case(word))
}

/// The words of `sentence`, in order: its space-separated tokens without the punctuation around
/// them (`"(yes),"` is `yes`), skipping tokens with nothing to say (`--`, `&`). A token keeps
/// what is inside it (`example.com`, `555-1234`, `C++`, `$5`): the engine may speak it as
/// several words, and [`parts`] says how many to expect.
pub(super) fn words(sentence: &str) -> Vec<&str> {
    sentence
        .split_whitespace()
        .filter_map(|token| {
            let start = token.len() - token.trim_start_matches(|c| OPENERS.contains(&c) || DASHES.contains(&c)).len();
            let end = token
                .trim_end_matches(|c| {
                    TERMINATORS.contains(&c) || CLOSERS.contains(&c) || DASHES.contains(&c) || SEPARATORS.contains(&c)
                })
                .len();
            let word = token.get(start..end.max(start))?;
            if !word.chars().any(char::is_alphanumeric) {
                return None;
            }
            // The last full stop of a dotted abbreviation is part of it: `e.g.`, `a.m.`, `U.S.`.
            let dotted = word.chars().rev().nth(1) == Some('.') && token[end..].starts_with('.');
            Some(if dotted { &token[start..=end] } else { word })
        })
        .collect()
}

/// How many words the engine is likely to speak for `word`: one per run of letters or digits
/// (an apostrophe inside a word and a separator inside a number do not cut a run), plus one per
/// symbol it reads out: `well-known` is 2, `don't` 1, `2,500` 1, `C++` 3, `example.com` 3 (a
/// full stop between two longer runs of letters is "dot"; in `e.g.` it is silent).
pub(super) fn parts(word: &str) -> usize {
    let chars: Vec<char> = word.chars().collect();
    let c = |i: usize| chars.get(i).copied();
    let is_alnum = |i: usize| c(i).is_some_and(char::is_alphanumeric);
    let is_digit = |i: usize| c(i).is_some_and(|c| c.is_ascii_digit());
    let joins = |i: usize| {
        (matches!(c(i), Some('\'' | '’')) && i > 0 && is_alnum(i - 1) && c(i + 1).is_some_and(char::is_alphabetic))
            || (matches!(c(i), Some('.' | ',')) && i > 0 && is_digit(i - 1) && is_digit(i + 1))
    };
    let letters_before = |i: usize| chars[..i].iter().rev().take_while(|c| c.is_alphabetic()).count();
    let letters_after = |i: usize| chars[i + 1..].iter().take_while(|c| c.is_alphabetic()).count();
    let spoken = |i: usize| match chars[i] {
        c if SPOKEN_SYMBOLS.contains(&c) => true,
        '.' | '/' => letters_before(i) >= 2 && letters_after(i) >= 2,
        _ => false,
    };
    (0..chars.len()).filter(|&i| (is_alnum(i) && (i == 0 || !(is_alnum(i - 1) || joins(i - 1)))) || spoken(i)).count()
}

#[cfg(test)]
mod tests {
    use super::{parts, sentences, words};

    #[test]
    fn sentences_end_at_terminal_punctuation() {
        assert_eq!(sentences("Hello world. This is a test."), ["Hello world.", "This is a test."]);
        assert_eq!(sentences("Really?! Yes… \"Fine.\" Go"), ["Really?!", "Yes…", "\"Fine.\"", "Go"]);
        assert_eq!(sentences("No full stop at the end"), ["No full stop at the end"]);
    }

    #[test]
    fn sentences_survive_abbreviations_initials_numbers_and_lower_case() {
        assert_eq!(
            sentences("Mr. Smith met J. R. Tolkien. Then e.g. tea."),
            ["Mr. Smith met J. R. Tolkien.", "Then e.g. tea."]
        );
        assert_eq!(sentences("Pi is 3.14 today. Ok"), ["Pi is 3.14 today.", "Ok"]);
        assert_eq!(sentences("Wait... what? no way"), ["Wait... what? no way"]);
        assert_eq!(sentences("a.b.c"), ["a.b.c"]);
    }

    #[test]
    fn blank_lines_end_a_sentence_single_newlines_do_not() {
        assert_eq!(sentences("Title\n\nBody text\nwraps here"), ["Title", "Body text\nwraps here"]);
        assert_eq!(sentences("A\n \t\nB"), ["A", "B"]);
    }

    #[test]
    fn blank_text_has_no_sentences() {
        assert!(sentences("").is_empty());
        assert!(sentences(" \n\n \t").is_empty());
    }

    #[test]
    fn words_are_tokens_without_the_punctuation_around_them() {
        assert_eq!(words("Hello world."), ["Hello", "world"]);
        assert_eq!(
            words("\"Don't\" pay $5 (50%) -- e.g. at 10 a.m., C++ & well-known."),
            ["Don't", "pay", "$5", "50%", "e.g.", "at", "10", "a.m.", "C++", "well-known"]
        );
        assert_eq!(words("mail bob@example.org… see 2,500—3,000!"), ["mail", "bob@example.org", "see", "2,500—3,000"]);
        assert_eq!(words("naïve café, 東京"), ["naïve", "café", "東京"]);
        assert!(words(" -- & ... ").is_empty());
    }

    #[test]
    fn parts_count_the_runs_the_engine_speaks_as_words() {
        assert_eq!(parts("Don't"), 1);
        assert_eq!(parts("2,500"), 1);
        assert_eq!(parts("3.14"), 1);
        assert_eq!(parts("$5"), 1);
        assert_eq!(parts("well-known"), 2);
        assert_eq!(parts("e.g."), 2);
        assert_eq!(parts("bob@example.org"), 5);
        assert_eq!(parts("C++"), 3);
        assert_eq!(parts("a.m."), 2);
        assert_eq!(parts("12/25/2024"), 3);
        assert_eq!(parts("'n'"), 1);
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        assert_eq!(sentences("It hit 40°C. Then 104°F."), ["It hit 40°C.", "Then 104°F."]);
        assert_eq!(sentences("Café. Été."), ["Café.", "Été."]);
    }
}
