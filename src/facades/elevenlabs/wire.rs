//! ElevenLabs' wire: `output_format`, where its fields are (for FastAPI-style `loc`), and the
//! JSON shapes its SDKs parse.

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::align::ElevenLabsAlignment;
use crate::{
    domain::{audio::AudioFormat, FieldError, PathSegment},
    service::synthesis::OutputRequest,
};

/// The query of every synthesis route.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SpeechQuery {
    /// `codec_samplerate[_bitrate]`: `mp3_44100_128` (default) and the other mp3, opus, pcm,
    /// `ulaw_8000`, `alaw_8000`; `wav_*` on the routes that are not streams.
    pub output_format: Option<String>,
    /// Accepted and ignored (the gateway's own usage log applies).
    #[param(value_type = Option<bool>)]
    pub enable_logging: Option<String>,
    /// Deprecated by ElevenLabs; accepted and ignored.
    #[param(value_type = Option<i32>)]
    pub optimize_streaming_latency: Option<String>,
}

const PCM_RATES: [u32; 7] = [8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000];
const BITRATES: [u32; 5] = [32, 64, 96, 128, 192];

/// ElevenLabs' output formats, as `(name, format, rate, bitrate)`: 21 on streams, 28 elsewhere.
fn formats(streaming: bool) -> Vec<(String, AudioFormat, u32, Option<u32>)> {
    let mut all = Vec::new();
    let mut add = |format: AudioFormat, rate: u32, bitrate: Option<u32>| {
        let name = match bitrate {
            Some(kbps) => format!("{}_{rate}_{kbps}", format.as_str()),
            None => format!("{}_{rate}", format.as_str()),
        };
        all.push((name, format, rate, bitrate));
    };
    add(AudioFormat::Mp3, 22_050, Some(32));
    add(AudioFormat::Mp3, 24_000, Some(48));
    BITRATES.iter().for_each(|kbps| add(AudioFormat::Mp3, 44_100, Some(*kbps)));
    BITRATES.iter().for_each(|kbps| add(AudioFormat::Opus, 48_000, Some(*kbps)));
    PCM_RATES.iter().for_each(|rate| add(AudioFormat::Pcm, *rate, None));
    add(AudioFormat::Ulaw, 8_000, None);
    add(AudioFormat::Alaw, 8_000, None);
    if !streaming {
        PCM_RATES.iter().for_each(|rate| add(AudioFormat::Wav, *rate, None));
    }
    all
}

/// The error path of the `output_format` query parameter.
pub const OUTPUT_FIELD: &str = "output_format";

/// `output_format` (default `mp3_44100_128`) as the gateway's output request.
pub fn output_request(query: &SpeechQuery, streaming: bool) -> Result<OutputRequest, FieldError> {
    let name = query.output_format.as_deref().unwrap_or("mp3_44100_128");
    let known = formats(streaming);
    let Some((_, format, rate, bitrate)) = known.iter().find(|(known, ..)| known == name) else {
        let shown: String = name.chars().take(40).collect();
        let names: Vec<&str> = known.iter().map(|(n, ..)| n.as_str()).collect();
        let route = if streaming { " on a streaming route" } else { "" };
        let message = format!("unknown output format {shown:?}{route}; one of {}", names.join(", "));
        return Err(in_query(FieldError::new(OUTPUT_FIELD, message)));
    };
    Ok(OutputRequest {
        format: Some(*format),
        sample_rate: Some(*rate),
        bitrate_kbps: *bitrate,
        default_format: AudioFormat::Mp3,
        field: OUTPUT_FIELD,
    })
}

/// A query parameter's path, located as FastAPI does: `["query", name]`.
pub fn query_path(mut path: Vec<PathSegment>) -> Vec<PathSegment> {
    path.insert(0, PathSegment::Field("query".to_owned()));
    path
}

fn in_query(problem: FieldError) -> FieldError {
    FieldError { path: query_path(problem.path), message: problem.message }
}

fn fields(names: &[&str]) -> Vec<PathSegment> {
    names.iter().map(|n| PathSegment::Field((*n).to_owned())).collect()
}

/// The ElevenLabs name of one of the gateway's segment fields (`speed` is `voice_settings.speed`),
/// or `None` for a name both share. `voice` is where the request named its voice.
fn vendor_field(name: &str, voice: &[&str]) -> Option<Vec<PathSegment>> {
    Some(match name {
        "voice" | "voiceId" => fields(voice),
        "model" => fields(&["model_id"]),
        "speed" => fields(&["voice_settings", "speed"]),
        "language" => fields(&["language_code"]),
        OUTPUT_FIELD => fields(&["query", OUTPUT_FIELD]),
        _ => return None,
    })
}

fn rename(path: Vec<PathSegment>, voice: &[&str]) -> Vec<PathSegment> {
    match path.split_first() {
        // ElevenLabs fields the gateway passes on are top-level members of the vendor's body.
        Some((PathSegment::Field(name), rest)) if name == "providerOptions" && !rest.is_empty() => rest.to_vec(),
        Some((PathSegment::Field(name), rest)) => match vendor_field(name, voice) {
            Some(mut renamed) => {
                renamed.extend_from_slice(rest);
                renamed
            }
            None => path,
        },
        _ => path,
    }
}

/// A text-to-speech request's paths: the voice is the URL's `voice_id`.
pub fn speech_path(path: Vec<PathSegment>) -> Vec<PathSegment> {
    rename(path, &["path", "voice_id"])
}

/// A dialogue's paths: `turns[i].voice` is `inputs[i].voice_id`, the model is the top-level
/// `model_id`, the conversation's language its `language_code`.
pub fn dialogue_path(path: Vec<PathSegment>) -> Vec<PathSegment> {
    match path.split_first() {
        Some((PathSegment::Field(turns), rest)) if turns == "turns" => match rest.split_first() {
            // Top-level fields every turn inherits are the request's, not an input's.
            Some((PathSegment::Index(_), [PathSegment::Field(model), ..])) if model == "model" => fields(&["model_id"]),
            Some((PathSegment::Index(_), [PathSegment::Field(language), ..])) if language == "language" => {
                fields(&["language_code"])
            }
            Some((index @ PathSegment::Index(_), inner)) => {
                let mut path = vec![PathSegment::Field("inputs".to_owned()), index.clone()];
                path.extend(rename(inner.to_vec(), &["voice_id"]));
                path
            }
            _ => [fields(&["inputs"]), rest.to_vec()].concat(),
        },
        _ => rename(path, &["voice_id"]),
    }
}

/// `AudioWithTimestampsResponseModel`, also each chunk of `/stream/with-timestamps`.
#[derive(Serialize, ToSchema)]
pub struct ElevenLabsTimedAudio {
    /// Base64 of the whole clip (of this chunk's audio, in a stream).
    pub audio_base64: String,
    /// One entry per character (code point) of the request text; `null` in a chunk without one.
    pub alignment: Option<ElevenLabsAlignment>,
    /// Always `null`: the gateway does not see the provider's normalised text.
    pub normalized_alignment: Option<ElevenLabsAlignment>,
}

/// `AudioWithTimestampsAndVoiceSegmentsResponseModel`, also each chunk of the dialogue's
/// `/stream/with-timestamps`.
#[derive(Serialize, ToSchema)]
pub struct ElevenLabsTimedDialogue {
    #[serde(flatten)]
    pub audio: ElevenLabsTimedAudio,
    pub voice_segments: Vec<ElevenLabsVoiceSegment>,
}

/// Which input is spoken when. Character indices are over the concatenated input texts, in
/// code points, end exclusive (the alignment's characters are exactly that concatenation).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ElevenLabsVoiceSegment {
    pub voice_id: String,
    pub start_time_seconds: f64,
    pub end_time_seconds: f64,
    pub character_start_index: usize,
    pub character_end_index: usize,
    pub dialogue_input_index: usize,
}

impl ElevenLabsTimedAudio {
    pub fn new(audio: &[u8], alignment: Option<ElevenLabsAlignment>) -> Self {
        Self {
            audio_base64: base64::engine::general_purpose::STANDARD.encode(audio),
            alignment,
            normalized_alignment: None,
        }
    }
}

/// One NDJSON line: the value and its `\n`.
pub fn ndjson(value: &impl Serialize) -> Bytes {
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_lists_match_the_vendor_enums() {
        assert_eq!(formats(false).len(), 28);
        assert_eq!(formats(true).len(), 21);
        let query = |f: &str| SpeechQuery {
            output_format: Some(f.to_owned()),
            enable_logging: None,
            optimize_streaming_latency: None,
        };
        let mp3 = output_request(&query("mp3_44100_128"), true).unwrap();
        assert_eq!((mp3.format, mp3.sample_rate, mp3.bitrate_kbps), (Some(AudioFormat::Mp3), Some(44_100), Some(128)));
        let wav = output_request(&query("wav_16000"), false).unwrap();
        assert_eq!((wav.format, wav.sample_rate), (Some(AudioFormat::Wav), Some(16_000)));
        let refused = output_request(&query("wav_16000"), true).unwrap_err();
        assert_eq!(refused.path, fields(&["query", "output_format"]));
        assert!(output_request(&query("mp3_bogus\u{7}"), false).is_err());
    }

    #[test]
    fn gateway_fields_get_their_elevenlabs_names() {
        let path = |names: &[&str]| fields(names);
        assert_eq!(speech_path(path(&["voice"])), path(&["path", "voice_id"]));
        assert_eq!(speech_path(path(&["speed"])), path(&["voice_settings", "speed"]));
        assert_eq!(speech_path(path(&["text"])), path(&["text"]));
        let turn = |i, name: &str| {
            vec![PathSegment::Field("turns".into()), PathSegment::Index(i), PathSegment::Field(name.into())]
        };
        let input = |i, name: &str| {
            vec![PathSegment::Field("inputs".into()), PathSegment::Index(i), PathSegment::Field(name.into())]
        };
        assert_eq!(dialogue_path(turn(1, "voice")), input(1, "voice_id"));
        assert_eq!(dialogue_path(turn(0, "text")), input(0, "text"));
        assert_eq!(dialogue_path(turn(0, "model")), path(&["model_id"]));
        assert_eq!(dialogue_path(path(&["turns"])), path(&["inputs"]));
    }
}
