//! OpenAI's speech API on the wire (`POST {base}/audio/speech`).

use serde::{Deserialize, Serialize};

use crate::domain::audio::AudioFormat;

#[derive(Serialize)]
pub struct SpeechBody<'a> {
    pub model: &'a str,
    pub input: &'a str,
    pub voice: &'a str,
    pub response_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<&'a str>,
}

/// OpenAI's `response_format` names are the gateway's own; it has no G.711.
pub fn response_format(format: AudioFormat) -> Option<&'static str> {
    match format {
        AudioFormat::Ulaw | AudioFormat::Alaw => None,
        other => Some(other.as_str()),
    }
}

/// `{"error": {"message", "type", "param", "code"}}`
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<serde_json::Value>,
}

pub fn parse_error(body: &[u8]) -> (Option<String>, Option<String>) {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => {
            let code = match error.code {
                Some(serde_json::Value::String(code)) => Some(code),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => error.kind,
            };
            (code, error.message)
        }
        Err(_) => (None, None),
    }
}

/// The built-in voices (the API has no catalogue endpoint).
pub const VOICES: [&str; 13] =
    ["alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse", "marin", "cedar"];
