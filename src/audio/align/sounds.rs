//! How long a word takes to say, from its letters: syllables, consonants, numbers read out.

use super::*;

/// Expected duration of a word, in units of about a syllable.
pub(super) fn units(text: &str) -> f64 {
    let (syllables, consonants) = sounds(text);
    let full = PER_SYLLABLE * syllables + PER_CONSONANT * consonants;
    if is_function_word(text) {
        full * FUNCTION_WORD
    } else {
        full
    }
}

/// Syllables and consonant sounds a word is likely spoken with. Letters, digits and the symbols
/// that are read out count; punctuation and emoji do not.
pub(super) fn sounds(text: &str) -> (f64, f64) {
    let chars: Vec<char> = text.chars().collect();
    let is_letter = |c: char| c.is_alphabetic() && !is_cjk(c);
    // An apostrophe between letters joins them ("don't" is one run, its `t` no syllable).
    let in_run = |i: usize| {
        is_letter(chars[i])
            || (matches!(chars[i], '\'' | '’')
                && i > 0
                && is_letter(chars[i - 1])
                && chars.get(i + 1).is_some_and(|&c| is_letter(c)))
    };
    let (mut syllables, mut consonants) = (0.0, 0.0);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            // A number with its separators: 2,500 / 3.14 / 10:30 is two numbers.
            let mut j = i;
            while j < chars.len()
                && (chars[j].is_ascii_digit()
                    || (matches!(chars[j], ',' | '.') && chars.get(j + 1).is_some_and(char::is_ascii_digit)))
            {
                j += 1;
            }
            let number: String = chars[i..j].iter().collect();
            let spoken = number_syllables(&number);
            syllables += spoken;
            consonants += 1.5 * spoken;
            i = j;
        } else if is_cjk(c) {
            syllables += 1.0;
            consonants += 1.0;
            i += 1;
        } else if is_letter(c) {
            let mut j = i;
            while j < chars.len() && in_run(j) {
                j += 1;
            }
            let letters: Vec<char> = chars[i..j].iter().copied().filter(|&c| is_letter(c)).collect();
            let (s, k) = letter_sounds(&letters);
            syllables += s;
            consonants += k;
            i = j;
        } else {
            // Symbols read out as words ("dollars", "percent", "at"...).
            let spoken = match c {
                '$' | '€' | '%' | '°' | '=' | '#' => 2.0,
                '£' | '¥' | '&' | '@' | '+' => 1.0,
                _ => 0.0,
            };
            syllables += spoken;
            consonants += 1.5 * spoken;
            i += 1;
        }
    }
    // Something said, but no vowel: a spelt letter ("plan b"), "hmm", "Mr".
    if syllables == 0.0 && consonants > 0.0 {
        syllables = 1.0;
    }
    (syllables, consonants)
}

/// Han, kana and Hangul: one syllable a character.
pub(super) fn is_cjk(c: char) -> bool {
    matches!(u32::from(c),
        0x3040..=0x30FF // Hiragana, Katakana
        | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F // Han
        | 0xAC00..=0xD7AF) // Hangul syllables
}

/// Vowel letters of Latin (with their accented forms), Greek and Cyrillic script, lower case.
pub(super) fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y' | 'à'..='æ' | 'è'..='ï' | 'ò'..='ö' | 'ø'..='ü' | 'ý' | 'ÿ' | 'œ')
        || matches!(c, 'α' | 'ε' | 'η' | 'ι' | 'ο' | 'υ' | 'ω' | 'ά'..='ώ')
        || matches!(c, 'а' | 'е' | 'ё' | 'и' | 'о' | 'у' | 'ы' | 'э' | 'ю' | 'я')
}

/// Syllables and consonant sounds of a run of letters. Syllables are vowel groups, less a
/// silent final `e` ("make") and the `e` of a silent `-ed`/`-es` ("walked", "makes"); a doubled
/// consonant or a digraph (th sh ch ph wh gh ck ng) is one sound. Two or three capitals are an
/// abbreviation, spelt out.
pub(super) fn letter_sounds(letters: &[char]) -> (f64, f64) {
    let n = letters.len();
    if (2..=3).contains(&n) && letters.iter().all(|c| c.is_uppercase()) {
        return (n as f64, n as f64);
    }
    let lower: Vec<char> = letters.iter().flat_map(|c| c.to_lowercase()).collect();
    let vowel = |i: usize| lower.get(i).is_some_and(|&c| is_vowel(c) && !(c == 'y' && i == 0));
    let groups = (0..lower.len()).filter(|&i| vowel(i) && (i == 0 || !vowel(i - 1))).count();
    let consonants = (0..lower.len())
        .filter(|&i| !vowel(i))
        .filter(|&i| {
            let previous = i.checked_sub(1).map(|p| lower[p]);
            let merged = previous == Some(lower[i])
                || (lower[i] == 'h' && matches!(previous, Some('t' | 's' | 'c' | 'p' | 'w' | 'g')))
                || (lower[i] == 'k' && previous == Some('c'))
                || (lower[i] == 'g' && previous == Some('n'));
            !merged
        })
        .count();
    let word: String = lower.iter().collect();
    // The letter `k` places before the end (0 is the last).
    let from_end = |k: usize| lower.len().checked_sub(k + 1).map(|i| lower[i]);
    let consonant_at = |k: usize| from_end(k).is_some_and(|c| !is_vowel(c));
    let silent_e = word.ends_with('e') && !word.ends_with("le") && consonant_at(1);
    let silent_ed = word.ends_with("ed") && consonant_at(2) && !matches!(from_end(2), Some('t' | 'd'));
    let silent_es =
        word.ends_with("es") && consonant_at(2) && !matches!(from_end(2), Some('s' | 'x' | 'z' | 'c' | 'g' | 'h'));
    let syllables = if groups > 1 && (silent_e || silent_ed || silent_es) { groups - 1 } else { groups };
    (syllables as f64, consonants as f64)
}

/// Syllables of a number as it is read: `1987` "nineteen eighty-seven", `2,500` "two thousand
/// five hundred", `3.14` "three point one four"; long digit strings and ones with a leading zero
/// are read digit by digit.
pub(super) fn number_syllables(number: &str) -> f64 {
    /// Syllables of zero to nine, ten to nineteen, and the tens.
    const ONES: [u32; 10] = [2, 1, 1, 1, 1, 1, 1, 2, 1, 1];
    const TEENS: [u32; 10] = [1, 3, 1, 2, 2, 2, 2, 3, 2, 2];
    const TENS: [u32; 10] = [0, 0, 2, 2, 2, 2, 2, 3, 2, 2];
    /// "hundred", "thousand", "million"...
    const SCALE: u32 = 2;
    fn below_100(n: u64) -> u32 {
        let n = (n % 100) as usize;
        match n {
            0..=9 => ONES[n],
            10..=19 => TEENS[n - 10],
            _ => TENS[n / 10] + if n.is_multiple_of(10) { 0 } else { ONES[n % 10] },
        }
    }
    fn below_1000(n: u64) -> u32 {
        let (hundreds, rest) = ((n / 100 % 10) as usize, n % 100);
        match (hundreds, rest) {
            (0, rest) => below_100(rest),
            (h, 0) => ONES[h] + SCALE,
            (h, rest) => ONES[h] + SCALE + below_100(rest),
        }
    }
    fn cardinal(mut n: u64) -> u32 {
        if n < 1000 {
            return below_1000(n);
        }
        let mut syllables = 0;
        for scale in [1_000_000_000_000, 1_000_000_000, 1_000_000, 1_000, 1] {
            let group = n / scale;
            n %= scale;
            if group > 0 {
                syllables += below_1000(group) + if scale > 1 { SCALE } else { 0 };
            }
        }
        syllables
    }
    let digit_by_digit =
        |digits: &str| -> u32 { digits.bytes().filter(u8::is_ascii_digit).map(|d| ONES[usize::from(d - b'0')]).sum() };
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) if !fraction.contains(['.', ',']) => (whole, Some(fraction)),
        _ => (number, None),
    };
    let digits: String = whole.chars().filter(char::is_ascii_digit).collect();
    let mut syllables = if digits.len() > 12 || (digits.len() > 1 && digits.starts_with('0')) || whole.contains('.') {
        digit_by_digit(whole)
    } else {
        match digits.parse::<u64>() {
            // A year: "nineteen eighty-seven", "eleven hundred", "nineteen oh five".
            Ok(n @ 1100..=1999) if !whole.contains(',') => {
                let (high, low) = (n / 100, n % 100);
                below_100(high)
                    + match low {
                        0 => SCALE,
                        1..=9 => 1 + ONES[low as usize],
                        _ => below_100(low),
                    }
            }
            Ok(n) => cardinal(n),
            Err(_) => digit_by_digit(whole),
        }
    };
    if let Some(fraction) = fraction {
        // "point", then the digits.
        syllables += 1 + digit_by_digit(fraction);
    }
    f64::from(syllables)
}

/// `text` without the punctuation around it.
pub(super) fn bare(text: &str) -> &str {
    text.trim_matches(|c: char| !c.is_alphanumeric())
}

/// English function words (articles, auxiliaries, pronouns, prepositions, conjunctions): said
/// unstressed in running speech, so faster than their letters suggest.
pub(super) fn is_function_word(text: &str) -> bool {
    const WORDS: [&str; 56] = [
        "a", "am", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do", "does",
        "for", "from", "had", "has", "have", "he", "her", "him", "his", "i", "in", "is", "it", "its", "me", "my", "of",
        "or", "our", "she", "than", "that", "the", "them", "then", "there", "they", "to", "us", "was", "we", "were",
        "what", "which", "who", "will", "with", "would", "you", "your",
    ];
    let text = bare(text);
    WORDS.iter().any(|w| w.eq_ignore_ascii_case(text))
}

/// Whether a word opens a clause (a conjunction, a relative pronoun), before which speakers
/// often pause even without a comma.
pub(super) fn opens_clause(text: &str) -> bool {
    const WORDS: [&str; 20] = [
        "and", "or", "but", "nor", "yet", "so", "if", "because", "when", "while", "where", "who", "whose", "which",
        "although", "though", "unless", "until", "since", "whether",
    ];
    let text = bare(text);
    WORDS.iter().any(|w| w.eq_ignore_ascii_case(text))
}

/// Whether a word starts with a stop consonant or an affricate (p b t d k g, hard c, q, j; a
/// number read from "two..."), whose closure makes a short silence just before it.
pub(super) fn starts_with_stop(text: &str) -> bool {
    let mut chars = bare(text).chars().flat_map(char::to_lowercase);
    match (chars.next(), chars.next()) {
        (Some('p' | 't'), next) => next != Some('h'),
        (Some('b' | 'd' | 'k' | 'g' | 'q' | 'j' | '2'), _) => true,
        (Some('c'), next) => !matches!(next, Some('e' | 'i' | 'y')),
        _ => false,
    }
}
