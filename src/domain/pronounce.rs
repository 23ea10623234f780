//! Pronunciation rules: whole words in a request's text replaced before synthesis, so a name or
//! an acronym is spoken the same way by every provider (`{"word": "SQL", "replacement": "sequel"}`).

use std::ops::Range;

use serde::Deserialize;
use utoipa::ToSchema;

use super::FieldError;

/// Most rules one request may carry.
pub const MAX_RULES: usize = 100;
/// Longest word or replacement, in characters.
pub const MAX_RULE_CHARS: usize = 200;

/// `{"rules": [...]}`, as Speechbase sends it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pronunciations {
    pub rules: Vec<Rule>,
}

/// Every whole-word occurrence of `word` is spoken as `replacement`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = PronunciationRule)]
pub struct Rule {
    pub word: String,
    pub replacement: String,
    /// Default false: `sql` and `SQL` both match.
    #[serde(default)]
    pub case_sensitive: bool,
}

impl Pronunciations {
    /// Problems at `pronunciations.rules[i].<field>`.
    pub fn check(&self) -> Vec<FieldError> {
        let at = |i: usize, field: &str, message: String| {
            FieldError::new(field, message).within("rules", i).within_field("pronunciations")
        };
        let mut problems = Vec::new();
        if self.rules.len() > MAX_RULES {
            problems.push(FieldError::member("pronunciations", "rules", format!("at most {MAX_RULES} rules")));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.word.trim().is_empty() || rule.word.chars().count() > MAX_RULE_CHARS {
                problems.push(at(i, "word", format!("must be 1 to {MAX_RULE_CHARS} characters")));
            }
            // An empty replacement would leave the caller's word with nothing spoken (and no time).
            if rule.replacement.trim().is_empty() || rule.replacement.chars().count() > MAX_RULE_CHARS {
                problems.push(at(i, "replacement", format!("must be 1 to {MAX_RULE_CHARS} characters")));
            }
        }
        problems
    }

    /// `text` with every rule applied in order, or `None` as soon as it grows past `max_chars`
    /// characters (replacements may be longer than their words). A match must stand alone: the
    /// characters on either side of it are not letters or digits (so `SQL` does not match inside
    /// `MySQL`). Each rule is one linear search of the text.
    pub fn apply(&self, text: &str, max_chars: usize) -> Option<Spoken> {
        let mut spoken = Spoken { text: text.to_owned(), origins: None };
        for rule in &self.rules {
            spoken = replace_words(spoken, rule, max_chars)?;
        }
        Some(spoken)
    }
}

/// Text as it is spoken, and where each of its characters came from in the caller's text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spoken {
    pub text: String,
    /// For each character of `text`, the code points of the caller's text it stands for (a
    /// replacement's characters all stand for the word they replaced). `None` while no rule has
    /// changed anything: then every character stands for itself.
    pub origins: Option<Vec<Range<usize>>>,
}

impl Spoken {
    /// The caller's code points behind `chars` of the spoken text.
    pub fn origin(&self, chars: Range<usize>) -> Range<usize> {
        match &self.origins {
            None => chars,
            Some(origins) => {
                let covered = origins.get(chars.start..chars.end.min(origins.len())).unwrap_or_default();
                let start = covered.iter().map(|r| r.start).min().unwrap_or(chars.start);
                let end = covered.iter().map(|r| r.end).max().unwrap_or(start);
                start..end
            }
        }
    }
}

/// Case folding that keeps one character per character (the first of its lowercase form), so a
/// position in the folded text is a position in the original.
fn fold(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

/// `spoken` with `rule` applied, or `None` once the result passes `max_chars`.
fn replace_words(spoken: Spoken, rule: &Rule, max_chars: usize) -> Option<Spoken> {
    if rule.word.is_empty() {
        return Some(spoken);
    }
    let text = spoken.text.as_str();
    let chars: Vec<char> = text.chars().collect();
    let before = |i: usize| spoken.origins.as_ref().map_or(i..i + 1, |o| o[i].clone());
    let word_len = rule.word.chars().count();
    // The text and word as searched, and where each searched character starts, in bytes.
    let (haystack, needle): (String, String) = if rule.case_sensitive {
        (text.to_owned(), rule.word.clone())
    } else {
        (chars.iter().copied().map(fold).collect(), rule.word.chars().map(fold).collect())
    };
    let starts: Vec<usize> = haystack.char_indices().map(|(i, _)| i).collect();
    let alone = |at: usize| {
        (at == 0 || !chars[at - 1].is_alphanumeric()) && chars.get(at + word_len).is_none_or(|c| !c.is_alphanumeric())
    };
    let replacement_len = rule.replacement.chars().count();
    let mut out = String::with_capacity(text.len());
    let mut origins: Vec<Range<usize>> = Vec::new();
    let mut changed = false;
    let (mut copied, mut from, mut out_chars) = (0, 0, 0);
    while let Some(found) = haystack[from..].find(&needle) {
        let byte = from + found;
        let at = starts.partition_point(|s| *s < byte);
        if alone(at) {
            out_chars += at - copied + replacement_len;
            if out_chars > max_chars {
                return None;
            }
            out.extend(&chars[copied..at]);
            origins.extend((copied..at).map(before));
            out.push_str(&rule.replacement);
            let replaced = before(at).start..before(at + word_len - 1).end;
            origins.extend(std::iter::repeat_n(replaced, replacement_len));
            copied = at + word_len;
            changed = true;
        }
        // Past this character: a match inside the replaced word, or a later one, is next.
        let next = if alone(at) { at + word_len } else { at + 1 };
        match starts.get(next) {
            Some(start) => from = *start,
            None => break,
        }
    }
    let copied = copied.min(chars.len());
    if out_chars + chars.len() - copied > max_chars {
        return None;
    }
    if !changed {
        return Some(spoken);
    }
    out.extend(&chars[copied..]);
    origins.extend((copied..chars.len()).map(before));
    Some(Spoken { text: out, origins: Some(origins) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[(&str, &str, bool)]) -> Pronunciations {
        Pronunciations {
            rules: list
                .iter()
                .map(|(w, r, c)| Rule { word: (*w).into(), replacement: (*r).into(), case_sensitive: *c })
                .collect(),
        }
    }

    #[test]
    fn whole_words_are_replaced_in_order() {
        let p = rules(&[("SQL", "sequel", false), ("Dr.", "Doctor", true)]);
        let apply = |p: &Pronunciations, text: &str| p.apply(text, 1_000).map(|s| s.text).unwrap_or_default();
        assert_eq!(apply(&p, "sql, SQL and MySQL; Dr. Who"), "sequel, sequel and MySQL; Doctor Who");
        assert_eq!(apply(&rules(&[("gif", "jif", true)]), "GIF gif"), "GIF jif");
        assert_eq!(apply(&rules(&[("Ürün", "product", false)]), "ürün! İstanbul"), "product! İstanbul");
        assert_eq!(apply(&rules(&[("İ", "I", false)]), "İ i"), "I I", "one-to-many case folds keep positions");
        assert_eq!(apply(&rules(&[("a a", "b", false)]), "a a a a"), "b b", "matches do not overlap");
        assert_eq!(apply(&rules(&[("ab", "x", false)]), "abab ab"), "abab x");
    }

    #[test]
    fn growth_is_bounded_and_the_work_linear() {
        let p = rules(&[("a", &"a ".repeat(100), false), ("a", &"a ".repeat(100), false)]);
        assert_eq!(
            p.apply("a a a", 10_000),
            None,
            "the first rule alone makes 300 words; the second would make 60,000"
        );
        // A word that nearly matches everywhere: each rule is one linear scan, not one compare
        // per position.
        let almost = format!("{}b", "a ".repeat(99));
        let text = "a ".repeat(20_000);
        let p =
            Pronunciations { rules: vec![Rule { word: almost, replacement: "x".into(), case_sensitive: false }; 100] };
        assert_eq!(p.apply(&text, 100_000).map(|t| t.text.len()), Some(text.len()));
    }

    #[test]
    fn spoken_characters_know_their_origin() {
        let p = rules(&[("SQL", "sequel server", false), ("server", "box", false)]);
        let spoken = p.apply("My SQL server.", 1_000).unwrap_or_else(|| unreachable!());
        assert_eq!(spoken.text, "My sequel box box.");
        // "sequel" and the first "box" both stand for "SQL" (3..6); the second "box" for "server".
        assert_eq!(spoken.origin(3..9), 3..6);
        assert_eq!(spoken.origin(10..13), 3..6);
        assert_eq!(spoken.origin(14..17), 7..13);
        assert_eq!(spoken.origin(0..2), 0..2);
        assert_eq!(spoken.origin(17..18), 13..14);
        let untouched = rules(&[("zzz", "y", false)]).apply("abc", 10).unwrap_or_else(|| unreachable!());
        assert_eq!((untouched.origins, untouched.text.as_str()), (None, "abc"));
    }

    #[test]
    fn bad_rules_are_field_errors() {
        let p = rules(&[("ok", "fine", false), (" ", "x", false), ("w", &"r".repeat(201), false)]);
        let paths: Vec<String> = p.check().iter().map(|f| format!("{:?}", f.path)).collect();
        assert_eq!(paths.len(), 2, "{paths:?}");
        assert!(paths[0].contains("Index(1)") && paths[0].contains("word"), "{paths:?}");
    }
}
