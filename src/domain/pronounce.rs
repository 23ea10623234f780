//! Pronunciation rules: whole words in a request's text replaced before synthesis, so a name or
//! an acronym is spoken the same way by every provider (`{"word": "SQL", "replacement": "sequel"}`).

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
            if rule.replacement.chars().count() > MAX_RULE_CHARS {
                problems.push(at(i, "replacement", format!("must be at most {MAX_RULE_CHARS} characters")));
            }
        }
        problems
    }

    /// `text` with every rule applied in order, or `None` as soon as it grows past `max_chars`
    /// characters (replacements may be longer than their words). A match must stand alone: the
    /// characters on either side of it are not letters or digits (so `SQL` does not match inside
    /// `MySQL`). Each rule is one linear search of the text.
    pub fn apply(&self, text: &str, max_chars: usize) -> Option<String> {
        let mut text = text.to_owned();
        for rule in &self.rules {
            text = replace_words(&text, rule, max_chars)?;
        }
        Some(text)
    }
}

/// Case folding that keeps one character per character (the first of its lowercase form), so a
/// position in the folded text is a position in the original.
fn fold(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

/// `text` with `rule` applied, or `None` once the result passes `max_chars`.
fn replace_words(text: &str, rule: &Rule, max_chars: usize) -> Option<String> {
    if rule.word.is_empty() {
        return Some(text.to_owned());
    }
    let chars: Vec<char> = text.chars().collect();
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
            out.push_str(&rule.replacement);
            copied = at + word_len;
        }
        // Past this character: a match inside the replaced word, or a later one, is next.
        let next = if alone(at) { at + word_len } else { at + 1 };
        match starts.get(next) {
            Some(start) => from = *start,
            None => break,
        }
    }
    let rest = &chars[copied.min(chars.len())..];
    (out_chars + rest.len() <= max_chars).then(|| {
        out.extend(rest);
        out
    })
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
        let apply = |p: &Pronunciations, text: &str| p.apply(text, 1_000).unwrap_or_default();
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
        assert_eq!(p.apply(&text, 100_000).map(|t| t.len()), Some(text.len()));
    }

    #[test]
    fn bad_rules_are_field_errors() {
        let p = rules(&[("ok", "fine", false), (" ", "x", false), ("w", &"r".repeat(201), false)]);
        let paths: Vec<String> = p.check().iter().map(|f| format!("{:?}", f.path)).collect();
        assert_eq!(paths.len(), 2, "{paths:?}");
        assert!(paths[0].contains("Index(1)") && paths[0].contains("word"), "{paths:?}");
    }
}
