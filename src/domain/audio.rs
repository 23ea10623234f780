//! Audio formats as the API names them, and what a concrete output is.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An audio format a client may ask for or a provider may produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AudioFormat {
    /// MPEG-1/2 Layer III.
    Mp3,
    /// Opus in an Ogg container.
    Opus,
    /// AAC in ADTS framing (decode only; no encoder).
    Aac,
    /// FLAC, native container.
    Flac,
    /// RIFF WAVE, 16-bit PCM.
    Wav,
    /// Raw signed 16-bit little-endian PCM, no header.
    Pcm,
    /// G.711 μ-law, 8 bits per sample.
    Ulaw,
    /// G.711 A-law, 8 bits per sample.
    Alaw,
}

impl AudioFormat {
    pub const ALL: [AudioFormat; 8] = [
        AudioFormat::Mp3,
        AudioFormat::Opus,
        AudioFormat::Aac,
        AudioFormat::Flac,
        AudioFormat::Wav,
        AudioFormat::Pcm,
        AudioFormat::Ulaw,
        AudioFormat::Alaw,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Opus => "opus",
            AudioFormat::Aac => "aac",
            AudioFormat::Flac => "flac",
            AudioFormat::Wav => "wav",
            AudioFormat::Pcm => "pcm",
            AudioFormat::Ulaw => "ulaw",
            AudioFormat::Alaw => "alaw",
        }
    }

    pub fn parse(s: &str) -> Option<AudioFormat> {
        let s = s.trim().to_ascii_lowercase();
        let s = match s.as_str() {
            "mulaw" | "mu-law" | "pcm_mulaw" => "ulaw",
            "pcm_alaw" | "a-law" => "alaw",
            "pcm_s16le" | "linear16" | "raw" => "pcm",
            "ogg" | "ogg_opus" => "opus",
            other => other,
        };
        AudioFormat::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// The `Content-Type` of a body in this format.
    pub fn media_type(self) -> &'static str {
        match self {
            AudioFormat::Mp3 => "audio/mpeg",
            AudioFormat::Opus => "audio/ogg; codecs=opus",
            AudioFormat::Aac => "audio/aac",
            AudioFormat::Flac => "audio/flac",
            AudioFormat::Wav => "audio/wav",
            AudioFormat::Pcm => "audio/pcm",
            AudioFormat::Ulaw => "audio/basic",
            AudioFormat::Alaw => "audio/x-alaw-basic",
        }
    }

    /// Whether the gateway can encode this format (AAC it can only decode).
    pub fn encodable(self) -> bool {
        !matches!(self, AudioFormat::Aac)
    }

    /// Whether bytes of this format are raw samples with no framing (any chunk boundary is fine
    /// once aligned to the sample size).
    pub fn is_raw(self) -> bool {
        matches!(self, AudioFormat::Pcm | AudioFormat::Ulaw | AudioFormat::Alaw)
    }
}

/// Lowest and highest sample rate the gateway produces.
pub const MIN_SAMPLE_RATE: u32 = 8_000;
pub const MAX_SAMPLE_RATE: u32 = 48_000;

/// A concrete output: format, sample rate (Hz, mono) and, for lossy formats, bitrate (kbit/s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AudioSpec {
    pub format: AudioFormat,
    pub sample_rate: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitrate_kbps: Option<u32>,
}

impl AudioSpec {
    pub fn pcm(sample_rate: u32) -> Self {
        Self { format: AudioFormat::Pcm, sample_rate, bitrate_kbps: None }
    }
}
