//! ElevenLabs text-to-speech on the wire.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::audio::{AudioFormat, AudioSpec};

#[derive(Serialize)]
pub struct SpeechBody<'a> {
    pub text: &'a str,
    pub model_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice_settings: Option<Map<String, Value>>,
}

/// `POST /v1/text-to-dialogue/stream`: lines in order, each with its voice.
#[derive(Serialize)]
pub struct DialogueBody<'a> {
    pub inputs: Vec<DialogueInput<'a>>,
    pub model_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

#[derive(Serialize)]
pub struct DialogueInput<'a> {
    pub text: &'a str,
    pub voice_id: &'a str,
}

/// `output_format`: `<codec>_<rate>[_<kbps>]`, for the combinations ElevenLabs streams.
pub fn output_format(spec: AudioSpec) -> Option<String> {
    let rate = spec.sample_rate;
    Some(match spec.format {
        AudioFormat::Mp3 => {
            let kbps = spec.bitrate_kbps.unwrap_or(match rate {
                22_050 => 32,
                24_000 => 48,
                _ => 128,
            });
            format!("mp3_{rate}_{kbps}")
        }
        AudioFormat::Opus => format!("opus_48000_{}", spec.bitrate_kbps.unwrap_or(64)),
        AudioFormat::Pcm => format!("pcm_{rate}"),
        AudioFormat::Ulaw => "ulaw_8000".to_owned(),
        AudioFormat::Alaw => "alaw_8000".to_owned(),
        AudioFormat::Aac | AudioFormat::Flac | AudioFormat::Wav => return None,
    })
}

/// One line of `/stream/with-timestamps` (NDJSON).
#[derive(Deserialize)]
pub struct TimestampChunk {
    pub audio_base64: Option<String>,
    pub alignment: Option<Alignment>,
    /// An error reported inside the stream (`{"detail": {"status", "message"}}`).
    pub detail: Option<Value>,
}

#[derive(Deserialize)]
pub struct Alignment {
    pub characters: Vec<String>,
    pub character_start_times_seconds: Vec<f64>,
    pub character_end_times_seconds: Vec<f64>,
}

#[derive(Deserialize)]
pub struct VoicesResponse {
    pub voices: Vec<Voice>,
}

#[derive(Deserialize)]
pub struct Voice {
    pub voice_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub labels: Map<String, Value>,
}
