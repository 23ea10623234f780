//! OpenAI's moderation API on the wire: `{"model", "input": [...]}` →
//! `{"results": [{"flagged", "categories": {name: bool}, "category_scores": {...}}]}`. The answer
//! is untrusted: it must hold one result per input, each with a boolean `flagged`; category names
//! are kept only when they look like names, and only so many.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Serialize)]
pub struct Request<'a> {
    pub model: &'a str,
    pub input: &'a [&'a str],
}

#[derive(Deserialize)]
struct Response {
    results: Vec<Result>,
}

#[derive(Deserialize)]
struct Result {
    flagged: bool,
    #[serde(default)]
    categories: Map<String, Value>,
}

/// Longest category name passed on to a client.
const MAX_CATEGORY_CHARS: usize = 64;
/// Most categories passed on for one text.
const MAX_CATEGORIES: usize = 32;

/// One text's judgement: `None` when clean, else the categories it was flagged for (possibly
/// none the gateway can name).
pub type Judgement = Option<Vec<String>>;

/// The judgements of `inputs` texts, in order, or what is wrong with the answer.
pub fn parse(body: &[u8], inputs: usize) -> std::result::Result<Vec<Judgement>, String> {
    let response: Response =
        serde_json::from_slice(body).map_err(|e| format!("not a moderation answer ({})", e.classify_name()))?;
    if response.results.len() != inputs {
        return Err(format!("{} results for {inputs} inputs", response.results.len()));
    }
    Ok(response.results.into_iter().map(|result| result.flagged.then(|| categories(&result.categories))).collect())
}

/// The categories set to `true`, sorted, those with a plausible name only.
fn categories(map: &Map<String, Value>) -> Vec<String> {
    let plausible = |name: &str| {
        !name.is_empty()
            && name.chars().count() <= MAX_CATEGORY_CHARS
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c))
    };
    let mut names: Vec<String> = map
        .iter()
        .filter(|(name, value)| **value == Value::Bool(true) && plausible(name))
        .map(|(name, _)| name.clone())
        .take(MAX_CATEGORIES)
        .collect();
    names.sort();
    names
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "not JSON",
            serde_json::error::Category::Data => "wrong shape",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked_before_they_are_believed() {
        let ok = br#"{"id":"x","results":[{"flagged":false,"categories":{"violence":false}},
            {"flagged":true,"categories":{"violence":true,"hate":true,"sexual":false,"bad name\n":true},"category_scores":{}}]}"#;
        assert_eq!(parse(ok, 2), Ok(vec![None, Some(vec!["hate".to_owned(), "violence".to_owned()])]));
        assert!(parse(ok, 3).is_err_and(|e| e.contains("2 results for 3")));
        assert!(parse(b"<html>", 1).is_err_and(|e| e.contains("not JSON")));
        assert!(parse(br#"{"results":[{"flagged":"yes"}]}"#, 1).is_err_and(|e| e.contains("wrong shape")));
        assert!(parse(br#"{"results":{}}"#, 1).is_err());
        let many: Map<String, Value> = (0..100).map(|i| (format!("c{i:03}"), Value::Bool(true))).collect();
        assert_eq!(categories(&many).len(), MAX_CATEGORIES);
    }
}
