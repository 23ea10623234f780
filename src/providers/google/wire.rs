//! Google Cloud Text-to-Speech on the wire: `text:synthesize` bodies and replies, the voice
//! list, Google's error body, and the WAV header Google puts before `LINEAR16`, `MULAW` and
//! `ALAW` audio.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{audio, domain::audio::AudioFormat};

/// `POST /v1/text:synthesize` (and `/v1beta1/...` with `enableTimePointing`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SynthesizeBody<'a> {
    pub input: Input<'a>,
    pub voice: VoiceSelection<'a>,
    pub audio_config: AudioConfig,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub enable_time_pointing: Vec<&'static str>,
}

/// Exactly one of `text` and `ssml`.
#[derive(Serialize)]
pub struct Input<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssml: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceSelection<'a> {
    pub language_code: &'a str,
    pub name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AudioConfig {
    pub audio_encoding: &'static str,
    pub sample_rate_hertz: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speaking_rate: Option<f32>,
}

/// The reply: base64 audio, and (v1beta1, when asked) the times of the SSML marks.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SynthesizeReply {
    #[serde(default)]
    pub audio_content: Option<String>,
    #[serde(default)]
    pub timepoints: Vec<Value>,
}

/// `audioEncoding` for an output, with the WAV header's format tag and bits per sample when
/// Google wraps that encoding in a WAV header.
pub fn encoding(format: AudioFormat) -> Option<(&'static str, Option<(u16, u16)>)> {
    Some(match format {
        AudioFormat::Pcm | AudioFormat::Wav => ("LINEAR16", Some((audio::FORMAT_PCM, 16))),
        AudioFormat::Ulaw => ("MULAW", Some((audio::FORMAT_MULAW, 8))),
        AudioFormat::Alaw => ("ALAW", Some((audio::FORMAT_ALAW, 8))),
        AudioFormat::Mp3 => ("MP3", None),
        AudioFormat::Opus => ("OGG_OPUS", None),
        AudioFormat::Aac | AudioFormat::Flac => return None,
    })
}

/// `{"error": {"code": 400, "message": "...", "status": "INVALID_ARGUMENT"}}` → (status, message).
pub fn parse_error(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let error = &value["error"];
    (error["status"].as_str().map(str::to_owned), error["message"].as_str().map(str::to_owned))
}

/// The OAuth token endpoint's error: `{"error": "invalid_grant", "error_description": "..."}`.
pub fn parse_oauth_error(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    (value["error"].as_str().map(str::to_owned), value["error_description"].as_str().map(str::to_owned))
}
