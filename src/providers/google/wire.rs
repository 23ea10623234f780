//! Google Cloud Text-to-Speech on the wire: `text:synthesize` bodies and replies, the voice
//! list, Google's error body, and the WAV header Google puts before `LINEAR16`, `MULAW` and
//! `ALAW` audio.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::audio::{AudioFormat, AudioSpec};

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
        AudioFormat::Pcm | AudioFormat::Wav => ("LINEAR16", Some((FORMAT_PCM, 16))),
        AudioFormat::Ulaw => ("MULAW", Some((FORMAT_MULAW, 8))),
        AudioFormat::Alaw => ("ALAW", Some((FORMAT_ALAW, 8))),
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

const FORMAT_PCM: u16 = 1;
const FORMAT_ALAW: u16 = 6;
const FORMAT_MULAW: u16 = 7;

/// What a WAV file's `fmt ` chunk says, and where its samples are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    pub format_tag: u16,
    pub channels: u16,
    pub sample_rate: u32,
    pub bits_per_sample: u16,
    /// The `data` chunk's bytes within the file.
    pub data: std::ops::Range<usize>,
}

impl Wav {
    /// Reads a RIFF/WAVE file's chunks: `fmt ` and `data`, skipping any others (`LIST`,
    /// `fact`...). A `data` size of `0xFFFFFFFF` (length unknown) runs to the end of the file.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return Err("the audio is not a RIFF/WAVE file".to_owned());
        }
        let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let mut format = None;
        let mut at = 12;
        while at + 8 <= bytes.len() {
            let id = &bytes[at..at + 4];
            let size = u32_at(at + 4).ok_or("a truncated chunk header")?;
            let body = at + 8;
            if id == b"data" {
                let (tag, channels, rate, bits) = format.ok_or("the `data` chunk comes before `fmt `")?;
                let end = if size == u32::MAX {
                    bytes.len()
                } else {
                    body.checked_add(size as usize)
                        .filter(|end| *end <= bytes.len())
                        .ok_or("the `data` chunk is cut off")?
                };
                return Ok(Wav {
                    format_tag: tag,
                    channels,
                    sample_rate: rate,
                    bits_per_sample: bits,
                    data: body..end,
                });
            }
            if id == b"fmt " {
                if size < 16 {
                    return Err("the `fmt ` chunk is too short".to_owned());
                }
                let field = |v: Option<u16>| v.ok_or("the `fmt ` chunk is cut off");
                format = Some((
                    field(u16_at(body))?,
                    field(u16_at(body + 2))?,
                    u32_at(body + 4).ok_or("the `fmt ` chunk is cut off")?,
                    field(u16_at(body + 14))?,
                ));
            }
            // Chunks are padded to an even size.
            at = body
                .checked_add(size as usize)
                .and_then(|end| end.checked_add(size as usize % 2))
                .ok_or("a chunk size overflows")?;
        }
        Err("the file has no `data` chunk".to_owned())
    }

    /// Checks that the file holds mono audio of the format tag, sample size and rate asked for.
    pub fn expect(&self, (tag, bits): (u16, u16), spec: AudioSpec) -> Result<(), String> {
        if self.format_tag != tag || self.bits_per_sample != bits || self.channels != 1 {
            return Err(format!(
                "the audio is format {} with {} bits and {} channels where format {tag} with {bits} bits, mono, was asked for",
                self.format_tag, self.bits_per_sample, self.channels
            ));
        }
        if self.sample_rate != spec.sample_rate {
            return Err(format!("the audio is at {} Hz where {} Hz was asked for", self.sample_rate, spec.sample_rate));
        }
        Ok(())
    }

    /// How long the samples last, in seconds.
    pub fn seconds(&self) -> f64 {
        let frame = u64::from(self.channels) * u64::from(self.bits_per_sample / 8);
        if frame == 0 || self.sample_rate == 0 {
            return 0.0;
        }
        (self.data.len() as u64 / frame) as f64 / f64::from(self.sample_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(tag: u16, bits: u16, rate: u32, extra: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = b"RIFF\0\0\0\0WAVE".to_vec();
        out.extend_from_slice(b"fmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * u32::from(bits / 8)).to_le_bytes());
        out.extend_from_slice(&(bits / 8).to_le_bytes());
        out.extend_from_slice(&bits.to_le_bytes());
        out.extend_from_slice(extra);
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn data_is_found_past_other_chunks() {
        // An odd-sized LIST chunk and its pad byte come before `data`.
        let list = [b"LIST".as_slice(), &3u32.to_le_bytes(), b"abc\0"].concat();
        let file = wav(1, 16, 24_000, &list, &[1, 2, 3, 4]);
        let parsed = Wav::parse(&file).unwrap();
        assert_eq!(&file[parsed.data.clone()], &[1, 2, 3, 4]);
        let spec = AudioSpec { format: AudioFormat::Pcm, sample_rate: 24_000, bitrate_kbps: None };
        assert!(parsed.expect((1, 16), spec).is_ok());
        assert!((parsed.seconds() - 2.0 / 24_000.0).abs() < 1e-12);
        let other = AudioSpec { sample_rate: 16_000, ..spec };
        assert!(parsed.expect((1, 16), other).unwrap_err().contains("24000 Hz"));
        assert!(parsed.expect((7, 8), spec).is_err());
    }

    #[test]
    fn garbage_and_cut_files_are_errors_not_panics() {
        let file = wav(7, 8, 8_000, &[], &[0xff; 10]);
        for cut in 0..file.len() - 10 {
            assert!(Wav::parse(&file[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Wav::parse(b"ID3\x04 this is an mp3").is_err());
        let mut huge = wav(1, 16, 8_000, &[], &[]);
        huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Wav::parse(&huge).is_err());
        let mut unknown = wav(1, 16, 8_000, &[], &[0; 6]);
        let len = unknown.len();
        unknown[len - 10..len - 6].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Wav::parse(&unknown).unwrap().data.len(), 6);
    }
}
