//! Word timing through SSML marks: the text becomes SSML with `<mark name="wN"/>` before word
//! N (the text itself escaped), and the times Google reports for the marks become each word's
//! start; a word ends where the next timed word starts, the last at the end of the audio.
//!
//! Wire facts (Cloud Text-to-Speech REST reference, v1beta1 `text:synthesize`):
//! `enableTimePointing: ["SSML_MARK"]` makes the reply carry
//! `timepoints: [{"markName": "...", "timeSeconds": 0.42}]`, one per `<mark>` reached; v1 has
//! no timepoints. SSML is XML: `&`, `<`, `>`, `"` and `'` are escaped in text.

use serde_json::Value;

use crate::{
    domain::words::{self, TextWord},
    providers::WordTiming,
};

/// The text as SSML with a mark before each word, and the words.
pub fn ssml(text: &str) -> (String, Vec<TextWord>) {
    let words = words::split(text);
    let mut ssml = String::with_capacity(text.len() * 2 + 16 * words.len() + 16);
    ssml.push_str("<speak>");
    let mut next = words.iter().enumerate().peekable();
    for (at, c) in text.chars().enumerate() {
        if let Some((index, _)) = next.next_if(|(_, w)| w.chars.start == at) {
            ssml.push_str(&format!("<mark name=\"w{index}\"/>"));
        }
        crate::providers::ssml::push_escaped(&mut ssml, c);
    }
    ssml.push_str("</speak>");
    (ssml, words)
}

/// Word timings from the reply's `timepoints`. Marks this request did not place, duplicate
/// marks, and times that are not finite, negative, past the audio's end or earlier than an
/// earlier word's are ignored; a word without a usable mark gets no timing.
pub fn timings(words: &[TextWord], timepoints: &[Value], duration: f64) -> Vec<WordTiming> {
    let mut starts: Vec<Option<f64>> = vec![None; words.len()];
    for point in timepoints {
        let Some(index) = point["markName"].as_str().and_then(mark_index).filter(|i| *i < words.len()) else {
            continue;
        };
        let Some(time) = point["timeSeconds"].as_f64().filter(|t| t.is_finite() && *t >= 0.0 && *t <= duration) else {
            continue;
        };
        starts[index].get_or_insert(time);
    }
    let mut last = 0.0;
    let timed: Vec<(usize, f64)> = starts
        .iter()
        .enumerate()
        .filter_map(|(i, start)| {
            let start = start.filter(|s| *s >= last)?;
            last = start;
            Some((i, start))
        })
        .collect();
    timed
        .iter()
        .enumerate()
        .map(|(k, &(i, start))| {
            let end = timed.get(k + 1).map_or(duration, |&(_, next)| next).max(start);
            WordTiming { text: words[i].text.clone(), start, end }
        })
        .collect()
}

/// `wN` → N; anything else (`w01`, `w+1`, `x1`) is not a mark of ours.
fn mark_index(name: &str) -> Option<usize> {
    let digits = name.strip_prefix('w')?;
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_word_gets_a_mark_and_the_text_is_escaped() {
        let (ssml, words) = ssml("Tom & Jerry </speak><audio src=\"http://x\"/> it's");
        assert_eq!(words.len(), 6);
        assert_eq!(
            ssml,
            "<speak><mark name=\"w0\"/>Tom <mark name=\"w1\"/>&amp; <mark name=\"w2\"/>Jerry \
             <mark name=\"w3\"/>&lt;/speak&gt;&lt;audio <mark name=\"w4\"/>src=&quot;http://x&quot;/&gt; \
             <mark name=\"w5\"/>it&apos;s</speak>"
        );
        let (ssml, _) = super::ssml("Crème brûlée\u{0}");
        assert_eq!(ssml, "<speak><mark name=\"w0\"/>Crème <mark name=\"w1\"/>brûlée </speak>");
    }

    #[test]
    fn marks_become_words_and_nonsense_is_ignored() {
        let (_, words) = ssml("one two three four");
        let points = [
            json!({"markName": "w0", "timeSeconds": 0.1}),
            json!({"markName": "w1", "timeSeconds": 0.5}),
            json!({"markName": "w2", "timeSeconds": 0.3}), // earlier than w1: ignored
            json!({"markName": "w3", "timeSeconds": 0.9}),
            json!({"markName": "w0", "timeSeconds": 0.7}), // duplicate
            json!({"markName": "w9", "timeSeconds": 0.2}), // not ours
            json!({"markName": "w01", "timeSeconds": 0.2}),
            json!({"markName": "w3", "timeSeconds": -1.0}),
            json!({"markName": "w2", "timeSeconds": "NaN"}),
            json!({"markName": "w2", "timeSeconds": 9.0}), // past the end
            json!("garbage"),
        ];
        let got = timings(&words, &points, 1.2);
        let want = [("one", 0.1, 0.5), ("two", 0.5, 0.9), ("four", 0.9, 1.2)];
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (g, (text, start, end)) in got.iter().zip(want) {
            assert_eq!(g.text, text);
            assert!((g.start - start).abs() < 1e-9 && (g.end - end).abs() < 1e-9, "{g:?}");
        }
        assert!(timings(&words, &[], 1.0).is_empty());
    }
}
