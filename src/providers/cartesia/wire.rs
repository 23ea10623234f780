//! Cartesia TTS on the wire (`/tts/bytes`, `/tts/sse`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::audio::{AudioFormat, AudioSpec};

/// The API version this adapter speaks (the current SDK's default).
pub const VERSION: &str = "2026-08-14";

#[derive(Serialize)]
pub struct SpeechBody<'a> {
    pub model_id: &'a str,
    pub transcript: &'a str,
    pub voice: Voice<'a>,
    pub output_format: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation_config: Option<Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub add_timestamps: bool,
}

#[derive(Serialize)]
pub struct Voice<'a> {
    pub mode: &'static str,
    pub id: &'a str,
}

pub fn output_format(spec: AudioSpec) -> Option<Value> {
    let rate = spec.sample_rate;
    let raw = |encoding: &str| serde_json::json!({"container": "raw", "encoding": encoding, "sample_rate": rate});
    Some(match spec.format {
        AudioFormat::Pcm => raw("pcm_s16le"),
        AudioFormat::Ulaw => raw("pcm_mulaw"),
        AudioFormat::Alaw => raw("pcm_alaw"),
        AudioFormat::Wav => serde_json::json!({"container": "wav", "encoding": "pcm_s16le", "sample_rate": rate}),
        AudioFormat::Mp3 => serde_json::json!({
            "container": "mp3", "sample_rate": rate, "bit_rate": spec.bitrate_kbps.unwrap_or(128) * 1000
        }),
        AudioFormat::Opus | AudioFormat::Aac | AudioFormat::Flac => return None,
    })
}

/// One page of `GET /voices`: the next page starts after the last id while `has_more`.
#[derive(Deserialize)]
pub struct VoicePage {
    pub data: Vec<CatalogVoice>,
    #[serde(default)]
    pub has_more: Option<bool>,
}

#[derive(Deserialize)]
pub struct CatalogVoice {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub language: Option<String>,
    /// `masculine`, `feminine` or `gender_neutral`.
    pub gender: Option<String>,
}

/// One `data:` event of `/tts/sse`.
#[derive(Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    pub data: Option<String>,
    pub word_timestamps: Option<WordTimestamps>,
    pub error_code: Option<String>,
    pub message: Option<String>,
    pub title: Option<String>,
    pub status_code: Option<u16>,
}

#[derive(Deserialize)]
pub struct WordTimestamps {
    pub words: Vec<String>,
    pub start: Vec<f64>,
    pub end: Vec<f64>,
}

/// `{"error_code", "title", "message", "request_id"}`; older versions answer plain
/// `Title: Message` text, which the caller shows as is.
pub fn parse_error(body: &[u8]) -> (Option<String>, Option<String>) {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => (
            value["error_code"].as_str().map(str::to_owned),
            value["message"].as_str().or(value["title"].as_str()).map(str::to_owned),
        ),
        Err(_) => (None, None),
    }
}
