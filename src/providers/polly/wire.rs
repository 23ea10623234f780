//! Amazon Polly's REST-JSON shapes (PascalCase members).

use serde::{Deserialize, Serialize};

/// `POST /v1/speech` (SynthesizeSpeech).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SpeechBody<'a> {
    pub text: &'a str,
    /// `ssml` when the text is an SSML document (speed via `<prosody rate>`); otherwise unset
    /// (Polly's default, plain text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_type: Option<&'static str>,
    pub voice_id: &'a str,
    pub engine: &'a str,
    /// `pcm`, `mp3`, `ogg_opus`, `mulaw`, `alaw`; `json` for speech marks.
    pub output_format: &'static str,
    /// Hertz, as a string; unset for speech marks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<String>,
    /// `["word"]` for word speech marks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speech_mark_types: Option<[&'static str; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language_code: Option<&'a str>,
}

/// One page of `GET /v1/voices` (DescribeVoices).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VoicePage {
    #[serde(default)]
    pub voices: Vec<Voice>,
    pub next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Voice {
    pub id: String,
    pub name: Option<String>,
    pub gender: Option<String>,
    pub language_code: Option<String>,
    pub language_name: Option<String>,
    #[serde(default)]
    pub supported_engines: Vec<String>,
}

/// One line of a speech-marks reply: `{"time":373,"type":"word","start":5,"end":8,"value":"had"}`.
/// Every member is optional and loosely typed here: the adapter checks them.
#[derive(Deserialize)]
pub struct Mark {
    pub time: Option<f64>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub start: Option<u64>,
    pub end: Option<u64>,
}

/// Polly's error body: `{"message": …}` (or `Message`), the type in `__type` or, more often, in
/// the `x-amzn-ErrorType` header (read by `http::send`).
pub fn parse_error(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, None);
    };
    let code = value["__type"].as_str().map(|t| {
        // `com.amazonaws.polly#ValidationException` or `ValidationException:http://…`.
        let t = t.rsplit('#').next().unwrap_or(t);
        t.split(':').next().unwrap_or(t).to_owned()
    });
    let message = value["message"].as_str().or(value["Message"].as_str()).map(str::to_owned);
    (code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_their_type() {
        let body = br#"{"__type":"com.amazonaws.polly#TextLengthExceededException","Message":"too long"}"#;
        assert_eq!(parse_error(body), (Some("TextLengthExceededException".into()), Some("too long".into())));
        assert_eq!(parse_error(br#"{"message":"bad voice"}"#), (None, Some("bad voice".into())));
        assert_eq!(parse_error(b"<html>"), (None, None));
    }
}
