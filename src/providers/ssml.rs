//! Escaping text into SSML, which Google, Azure and Polly take as XML: the caller's text must
//! stay text (`</speak><audio src="...">` is words to read, not markup).

/// Appends `c` to an SSML document: the five XML special characters escaped (so the result is
/// safe in element content and in attribute values in either quotes), and the control
/// characters XML 1.0 forbids as spaces (a vendor refuses the whole document for one of them).
pub fn push_escaped(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&apos;"),
        '\t' | '\n' | '\r' => out.push(c),
        c if c.is_control() || matches!(c, '\u{FFFE}' | '\u{FFFF}') => out.push(' '),
        c => out.push(c),
    }
}

/// `text`, escaped for SSML (see [`push_escaped`]).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    text.chars().for_each(|c| push_escaped(&mut out, c));
    out
}

/// The text an escaped piece of SSML stands for (the inverse of [`escape`] on what it kept).
pub fn unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_stays_text() {
        let hostile = "Tom & \"Jerry\" <3 </speak><audio src='x'/>\u{0}\u{1b}";
        let escaped = escape(hostile);
        assert_eq!(escaped, "Tom &amp; &quot;Jerry&quot; &lt;3 &lt;/speak&gt;&lt;audio src=&apos;x&apos;/&gt;  ");
        assert!(!escaped.contains('<') && !escaped.contains('>'));
        assert_eq!(unescape(&escaped), hostile.replace(['\u{0}', '\u{1b}'], " "));
    }
}
