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

/// OpenAI's Realtime API (GA shape) on the wire: the client events the gateway sends and the
/// server events it reads (`realtime.rs`). Server events are untrusted: every field is
/// optional, unknown event types are [`ServerEvent::Other`].
pub mod realtime {
    use serde::{Deserialize, Serialize};

    /// A client event.
    #[derive(Serialize)]
    #[serde(tag = "type")]
    pub enum ClientEvent<'a> {
        #[serde(rename = "session.update")]
        SessionUpdate { session: Session<'a> },
        #[serde(rename = "response.create")]
        ResponseCreate { response: ResponseParams<'a> },
    }

    /// `session.update`'s `session`: audio out only, at 24 kHz PCM, in one voice.
    #[derive(Serialize)]
    pub struct Session<'a> {
        #[serde(rename = "type")]
        pub kind: &'static str,
        pub output_modalities: [&'static str; 1],
        pub instructions: &'a str,
        pub audio: Audio<'a>,
    }

    #[derive(Serialize)]
    pub struct Audio<'a> {
        pub input: AudioInput,
        pub output: AudioOutput<'a>,
    }

    /// No turn detection: nothing is ever spoken to the session, and no response may start by
    /// itself.
    #[derive(Serialize)]
    pub struct AudioInput {
        pub turn_detection: Option<()>,
    }

    #[derive(Serialize)]
    pub struct AudioOutput<'a> {
        pub format: Format,
        pub voice: Voice<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub speed: Option<f32>,
    }

    #[derive(Serialize)]
    pub struct Format {
        #[serde(rename = "type")]
        pub kind: &'static str,
        pub rate: u32,
    }

    /// A built-in voice by name, or a custom voice (`voice_…`) as `{"id": …}`.
    #[derive(Serialize)]
    #[serde(untagged)]
    pub enum Voice<'a> {
        Named(&'a str),
        Custom { id: &'a str },
    }

    impl<'a> Voice<'a> {
        pub fn of(voice: &'a str) -> Self {
            if voice.starts_with("voice_") {
                Voice::Custom { id: voice }
            } else {
                Voice::Named(voice)
            }
        }
    }

    /// `response.create`'s `response`: out of band (`conversation: "none"`), so that nothing
    /// accumulates in the session between requests.
    #[derive(Serialize)]
    pub struct ResponseParams<'a> {
        pub conversation: &'static str,
        pub output_modalities: [&'static str; 1],
        pub instructions: &'a str,
        pub input: [InputMessage<'a>; 1],
        pub metadata: Metadata<'a>,
    }

    #[derive(Serialize)]
    pub struct InputMessage<'a> {
        #[serde(rename = "type")]
        pub kind: &'static str,
        pub role: &'static str,
        pub content: [InputText<'a>; 1],
    }

    #[derive(Serialize)]
    pub struct InputText<'a> {
        #[serde(rename = "type")]
        pub kind: &'static str,
        pub text: &'a str,
    }

    #[derive(Serialize)]
    pub struct Metadata<'a> {
        pub speechgate_request: &'a str,
    }

    impl<'a> ResponseParams<'a> {
        pub fn speak(text: &'a str, instructions: &'a str, tag: &'a str) -> Self {
            let content = [InputText { kind: "input_text", text }];
            Self {
                conversation: "none",
                output_modalities: ["audio"],
                instructions,
                input: [InputMessage { kind: "message", role: "user", content }],
                metadata: Metadata { speechgate_request: tag },
            }
        }
    }

    /// A server event the gateway acts on.
    #[derive(Deserialize)]
    #[serde(tag = "type")]
    pub enum ServerEvent {
        #[serde(rename = "response.created")]
        ResponseCreated { response: Response },
        #[serde(rename = "response.output_audio.delta")]
        AudioDelta { response_id: Option<String>, delta: String },
        #[serde(rename = "response.output_audio_transcript.delta")]
        TranscriptDelta { response_id: Option<String>, delta: String },
        #[serde(rename = "response.output_audio_transcript.done")]
        TranscriptDone { response_id: Option<String>, transcript: String },
        #[serde(rename = "response.done")]
        ResponseDone { response: Response },
        #[serde(rename = "error")]
        Error { error: ErrorInfo },
        /// Everything else (`session.created`, `session.updated`, `rate_limits.updated`, the
        /// item and content-part events...).
        #[serde(other)]
        Other,
    }

    #[derive(Deserialize, Default)]
    pub struct Response {
        pub id: Option<String>,
        pub status: Option<String>,
        pub status_details: Option<StatusDetails>,
        pub usage: Option<Usage>,
    }

    #[derive(Deserialize, Default)]
    pub struct StatusDetails {
        pub reason: Option<String>,
        pub error: Option<ErrorInfo>,
    }

    #[derive(Deserialize, Default)]
    pub struct Usage {
        pub input_tokens: Option<u64>,
        pub output_tokens: Option<u64>,
    }

    /// `{"type", "code", "message", "param", "event_id"}`.
    #[derive(Deserialize, Default)]
    pub struct ErrorInfo {
        #[serde(rename = "type")]
        pub kind: Option<String>,
        pub code: Option<serde_json::Value>,
        pub message: Option<String>,
    }

    impl ErrorInfo {
        pub fn code(&self) -> Option<String> {
            match &self.code {
                Some(serde_json::Value::String(code)) => Some(code.clone()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => self.kind.clone(),
            }
        }

        /// The HTTP status the error stands for, by its type and code (the events carry none).
        pub fn status(&self) -> u16 {
            let code = self.code().unwrap_or_default();
            match (self.kind.as_deref().unwrap_or_default(), code.as_str()) {
                (_, "invalid_api_key" | "authentication_error") | ("authentication_error", _) => 401,
                ("permission_error", _) => 403,
                (_, "rate_limit_exceeded" | "insufficient_quota") | ("rate_limit_error", _) => 429,
                ("invalid_request_error", _) => 400,
                _ => 502,
            }
        }
    }
}
