//! OpenAI's speech request (`CreateSpeechRequest`) and its rules: `input` and `instructions` at
//! most 4096 characters, `speed` 0.25 to 4, SSE not for `tts-1`/`tts-1-hd`, raw formats at
//! 24 kHz.

use serde::Deserialize;
use utoipa::ToSchema;

use crate::{
    domain::{audio::AudioFormat, FieldError},
    service::{
        speech::SpeechInput,
        synthesis::{OutputRequest, SegmentInput},
        ServiceError,
    },
};

/// A voice by the provider's id, or OpenAI's `{"id": ...}` object form.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum VoiceField {
    Name(String),
    Object { id: String },
}

impl VoiceField {
    pub fn into_id(self) -> String {
        match self {
            VoiceField::Name(name) | VoiceField::Object { id: name } => name,
        }
    }
}

#[derive(Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StreamFormat {
    Audio,
    Sse,
}

/// OpenAI's limit on `input` and `instructions`, in characters.
const MAX_INPUT_CHARS: usize = 4096;
/// The formats OpenAI's `response_format` names.
const FORMATS: [AudioFormat; 6] =
    [AudioFormat::Mp3, AudioFormat::Opus, AudioFormat::Aac, AudioFormat::Flac, AudioFormat::Wav, AudioFormat::Pcm];
/// OpenAI's raw formats are 24 kHz.
pub const OPENAI_RATE: u32 = 24_000;

/// OpenAI's `CreateSpeechRequest`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAiSpeechBody {
    /// `tts-1`, `tts-1-hd`, `gpt-4o-mini-tts`, or any model of this gateway (`provider/model`).
    model: String,
    /// At most 4096 characters.
    input: String,
    /// An OpenAI voice name (mapped per `[facades.openai.voices]`), `provider:voice`, a saved
    /// voice's id, or `{"id": ...}`.
    voice: VoiceField,
    instructions: Option<String>,
    /// `mp3` (default), `opus`, `aac`, `flac`, `wav` or `pcm` (24 kHz, 16-bit, mono, no header).
    response_format: Option<String>,
    /// 0.25 to 4.
    speed: Option<f32>,
    /// `audio` (default) or `sse`.
    stream_format: Option<StreamFormat>,
}

impl OpenAiSpeechBody {
    /// The request as the speech service takes it, and whether it asks for SSE events.
    pub fn into_input(self) -> Result<(SpeechInput, bool), ServiceError> {
        let mut problems = Vec::new();
        for (field, text) in [("input", Some(&self.input)), ("instructions", self.instructions.as_ref())] {
            if text.is_some_and(|t| t.chars().count() > MAX_INPUT_CHARS) {
                problems.push(FieldError::new(field, format!("must be at most {MAX_INPUT_CHARS} characters")));
            }
        }
        if self.speed.is_some_and(|speed| !(0.25..=4.0).contains(&speed)) {
            problems.push(FieldError::new("speed", "must be between 0.25 and 4"));
        }
        let sse = self.stream_format == Some(StreamFormat::Sse);
        if sse && matches!(self.model.as_str(), "tts-1" | "tts-1-hd") {
            problems.push(FieldError::new("stream_format", "sse is not supported for tts-1 and tts-1-hd"));
        }
        let format = match self.response_format.as_deref() {
            None => AudioFormat::Mp3,
            Some(name) => match FORMATS.iter().find(|f| f.as_str() == name) {
                Some(format) => *format,
                None => {
                    let known: Vec<_> = FORMATS.iter().map(|f| f.as_str()).collect();
                    let message = format!("unknown format {name:?}; one of {}", known.join(", "));
                    problems.push(FieldError::new("response_format", message));
                    AudioFormat::Mp3
                }
            },
        };
        if !problems.is_empty() {
            return Err(ServiceError::Validation(problems));
        }
        let raw = matches!(format, AudioFormat::Pcm | AudioFormat::Wav);
        let input = SpeechInput {
            segment: SegmentInput {
                model: Some(self.model),
                voice: Some(self.voice.into_id()),
                text: self.input,
                text_field: "input",
                speed: self.speed,
                instructions: self.instructions,
                ..SegmentInput::default()
            },
            output: OutputRequest {
                format: Some(format),
                sample_rate: raw.then_some(OPENAI_RATE),
                field: "response_format",
                ..OutputRequest::default()
            },
            ..SpeechInput::default()
        };
        Ok((input, sse))
    }
}
