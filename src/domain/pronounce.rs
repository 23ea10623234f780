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

    /// `text` with every rule applied in order. A match must stand alone: the characters on
    /// either side of it are not letters or digits (so `SQL` does not match inside `MySQL`).
    pub fn apply(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for rule in &self.rules {
            text = replace_words(&text, rule);
        }
        text
    }
}

fn replace_words(text: &str, rule: &Rule) -> String {
    let word: Vec<char> = rule.word.chars().collect();
    let chars: Vec<char> = text.chars().collect();
    let same = |a: char, b: char| {
        if rule.case_sensitive {
            a == b
        } else {
            a == b || a.to_lowercase().eq(b.to_lowercase())
        }
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let fits = i + word.len() <= chars.len();
        let alone = fits
            && (i == 0 || !chars[i - 1].is_alphanumeric())
            && chars.get(i + word.len()).is_none_or(|c| !c.is_alphanumeric());
        if alone && chars[i..i + word.len()].iter().zip(&word).all(|(a, b)| same(*a, *b)) {
            out.push_str(&rule.replacement);
            i += word.len();
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
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
        assert_eq!(p.apply("sql, SQL and MySQL; Dr. Who"), "sequel, sequel and MySQL; Doctor Who");
        assert_eq!(rules(&[("gif", "jif", true)]).apply("GIF gif"), "GIF jif");
        assert_eq!(rules(&[("Ürün", "product", false)]).apply("ürün!"), "product!");
    }

    #[test]
    fn bad_rules_are_field_errors() {
        let p = rules(&[("ok", "fine", false), (" ", "x", false), ("w", &"r".repeat(201), false)]);
        let paths: Vec<String> = p.check().iter().map(|f| format!("{:?}", f.path)).collect();
        assert_eq!(paths.len(), 2, "{paths:?}");
        assert!(paths[0].contains("Index(1)") && paths[0].contains("word"), "{paths:?}");
    }
}
