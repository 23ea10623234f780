//! Rules for caller text that travels further than the request: identifiers that reach vendor
//! URLs and queries, free text that reaches the database, and the one sanitiser every usage
//! event passes through before it is queued (DESIGN §8).

/// Longest voice, model or saved-voice id accepted.
pub const MAX_IDENTIFIER_CHARS: usize = 256;

/// Why `value` cannot be a voice or model identifier, if it cannot: it must be 1 to
/// [`MAX_IDENTIFIER_CHARS`] characters, hold no control character, and not be `.` or `..`
/// (which a URL resolves as a path step, even percent-encoded).
pub fn identifier_problem(value: &str) -> Option<String> {
    if value.trim().is_empty() {
        return Some("must not be empty".to_owned());
    }
    if value.chars().count() > MAX_IDENTIFIER_CHARS {
        return Some(format!("must be at most {MAX_IDENTIFIER_CHARS} characters"));
    }
    if value.chars().any(char::is_control) {
        return Some("must not contain control characters".to_owned());
    }
    if value == "." || value == ".." {
        return Some("must not be `.` or `..`".to_owned());
    }
    None
}

/// Longest provider id (a built-in kind or a configured OpenAI-compatible instance).
pub const MAX_PROVIDER_ID_CHARS: usize = 64;

/// Whether `value` can name a provider: `[a-z0-9][a-z0-9_-]{0,63}`. Saved voices and configured
/// instance names follow the same rule, so every instance can be named by a saved voice.
pub fn is_provider_id(value: &str) -> bool {
    let mut bytes = value.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && value.len() <= MAX_PROVIDER_ID_CHARS
}

/// Longest text kept in one field of a usage event.
pub const MAX_RECORD_CHARS: usize = 256;

/// A caller-influenced string made safe to store and log: control characters (NUL among them,
/// which PostgreSQL's `text` refuses) become U+FFFD, and the result is cut to
/// [`MAX_RECORD_CHARS`] characters. Returns the input unchanged, without copying, when clean.
pub fn for_record(value: String) -> String {
    let clean = value.chars().count() <= MAX_RECORD_CHARS && !value.chars().any(char::is_control);
    if clean {
        return value;
    }
    value.chars().take(MAX_RECORD_CHARS).map(|c| if c.is_control() { '\u{FFFD}' } else { c }).collect()
}

/// Bytes left as they are in a path segment: letters, digits, `-`, `_`, `~`. (`.` is encoded
/// too, although unreserved: it is what `.` and `..` segments are made of.)
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');

/// Encodes `raw` as exactly one URL path segment: every other byte is percent-encoded, so `/`,
/// `?`, `#` and `%` cannot change where the request goes.
pub fn path_segment(raw: &str) -> String {
    percent_encoding::utf8_percent_encode(raw, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_refuse_path_steps_controls_and_size() {
        for bad in ["", "  ", ".", "..", "a\0b", "line\nbreak", "\u{7f}"] {
            assert!(identifier_problem(bad).is_some(), "{bad:?}");
        }
        assert!(identifier_problem(&"v".repeat(MAX_IDENTIFIER_CHARS + 1)).is_some());
        for good in ["alloy", "JBFqnCBsd6RMkjVDRZzb", "en-us+f3", "...", "a/b", "ünï"] {
            assert_eq!(identifier_problem(good), None, "{good:?}");
        }
    }

    #[test]
    fn provider_ids_are_lowercase_slugs() {
        for good in ["openai", "kokoro-2", "a_b", "0"] {
            assert!(is_provider_id(good), "{good}");
        }
        for bad in ["", "-x", "_x", "Open", "a/b", "a b", &"p".repeat(65)] {
            assert!(!is_provider_id(bad), "{bad}");
        }
    }

    #[test]
    fn path_segments_cannot_escape() {
        assert_eq!(path_segment("../x?y#z%"), "%2E%2E%2Fx%3Fy%23z%25");
        assert_eq!(path_segment("JBFq-n_C~1"), "JBFq-n_C~1");
        assert_eq!(path_segment("é"), "%C3%A9");
    }

    #[test]
    fn records_lose_controls_and_length_but_clean_text_is_untouched() {
        assert_eq!(for_record("al\0loy".to_owned()), "al\u{FFFD}loy");
        assert_eq!(for_record("x".repeat(10_000)).chars().count(), MAX_RECORD_CHARS);
        assert_eq!(for_record("alloy".to_owned()), "alloy");
    }
}
