//! The Gemini API's `generateContent` on the wire, as its speech models use it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1beta/models/{model}:streamGenerateContent?alt=sse`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Request<'a> {
    pub contents: [Content<'a>; 1],
    pub generation_config: GenerationConfig<'a>,
}

#[derive(Serialize)]
pub struct Content<'a> {
    pub parts: Vec<Part<'a>>,
}

/// A text part; the 3.8 models take a turn's style and speaker beside it, not in it.
#[derive(Serialize)]
pub struct Part<'a> {
    pub text: std::borrow::Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speech_metadata: Option<SpeechMetadata<'a>>,
}

#[derive(Serialize, Default)]
pub struct SpeechMetadata<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speaker: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig<'a> {
    pub response_modalities: [&'static str; 1],
    pub speech_config: SpeechConfig<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// Either one voice or two speakers: the API refuses both at once ("mutually exclusive").
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpeechConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice_config: Option<VoiceConfig<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multi_speaker_voice_config: Option<MultiSpeakerVoiceConfig<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language_code: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceConfig<'a> {
    pub prebuilt_voice_config: PrebuiltVoiceConfig<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrebuiltVoiceConfig<'a> {
    pub voice_name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MultiSpeakerVoiceConfig<'a> {
    pub speaker_voice_configs: Vec<SpeakerVoiceConfig<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpeakerVoiceConfig<'a> {
    pub speaker: &'static str,
    pub voice_config: VoiceConfig<'a>,
}

impl<'a> VoiceConfig<'a> {
    pub fn prebuilt(voice_name: &'a str) -> Self {
        Self { prebuilt_voice_config: PrebuiltVoiceConfig { voice_name } }
    }
}

/// One `data:` event of the stream: a `GenerateContentResponse`, or an error.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Chunk {
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    pub prompt_feedback: Option<PromptFeedback>,
    pub usage_metadata: Option<UsageMetadata>,
    pub error: Option<ErrorDetail>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    pub content: Option<CandidateContent>,
    pub finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct CandidateContent {
    #[serde(default)]
    pub parts: Vec<ResponsePart>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResponsePart {
    pub inline_data: Option<InlineData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InlineData {
    #[serde(default)]
    pub mime_type: String,
    #[serde(default)]
    pub data: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback {
    pub block_reason: Option<String>,
}

/// Counts are cumulative: every streamed chunk repeats the call's totals so far.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    #[serde(default)]
    pub prompt_token_count: u64,
    #[serde(default)]
    pub candidates_token_count: u64,
}

/// `{"error": {"code": 400, "message", "status": "INVALID_ARGUMENT", "details": [...]}}`.
#[derive(Deserialize)]
pub struct ErrorDetail {
    pub code: Option<Value>,
    pub message: Option<String>,
    pub status: Option<String>,
}

impl ErrorDetail {
    /// The HTTP status the error names, when it names one.
    pub fn http_status(&self) -> Option<u16> {
        match &self.code {
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

/// An error reply: `{"error": {...}}`, or (from the streaming method without `alt=sse`) the same
/// inside a one-element array. The code is the `status` slug (`INVALID_ARGUMENT`).
pub fn parse_error(body: &[u8]) -> (Option<String>, Option<String>) {
    // (A struct would also accept an array as its fields in order: unwrap the array first.)
    let parsed = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items.into_iter().next(),
        Ok(value) => Some(value),
        Err(_) => None,
    };
    match parsed.and_then(|value| serde_json::from_value::<ErrorBody>(value).ok()) {
        Some(ErrorBody { error }) => (error.status, error.message),
        None => (None, None),
    }
}

/// `GET`-less catalogue: the prebuilt voices, each with the character the vendor gives it.
pub const VOICES: [(&str, &str); 30] = [
    ("Zephyr", "Bright"),
    ("Puck", "Upbeat"),
    ("Charon", "Informative"),
    ("Kore", "Firm"),
    ("Fenrir", "Excitable"),
    ("Leda", "Youthful"),
    ("Orus", "Firm"),
    ("Aoede", "Breezy"),
    ("Callirrhoe", "Easy-going"),
    ("Autonoe", "Bright"),
    ("Enceladus", "Breathy"),
    ("Iapetus", "Clear"),
    ("Umbriel", "Easy-going"),
    ("Algieba", "Smooth"),
    ("Despina", "Smooth"),
    ("Erinome", "Clear"),
    ("Algenib", "Gravelly"),
    ("Rasalgethi", "Informative"),
    ("Laomedeia", "Upbeat"),
    ("Achernar", "Soft"),
    ("Alnilam", "Firm"),
    ("Schedar", "Even"),
    ("Gacrux", "Mature"),
    ("Pulcherrima", "Forward"),
    ("Achird", "Friendly"),
    ("Zubenelgenubi", "Casual"),
    ("Vindemiatrix", "Gentle"),
    ("Sadachbia", "Lively"),
    ("Sadaltager", "Knowledgeable"),
    ("Sulafat", "Warm"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_read_plain_or_in_an_array() {
        let plain = br#"{"error": {"code": 400, "message": "Bad voice", "status": "INVALID_ARGUMENT"}}"#;
        assert_eq!(parse_error(plain), (Some("INVALID_ARGUMENT".into()), Some("Bad voice".into())));
        let array = br#"[{"error": {"code": 429, "message": "Quota", "status": "RESOURCE_EXHAUSTED"}}]"#;
        assert_eq!(parse_error(array), (Some("RESOURCE_EXHAUSTED".into()), Some("Quota".into())));
        assert_eq!(parse_error(b"<html>"), (None, None));
    }
}
