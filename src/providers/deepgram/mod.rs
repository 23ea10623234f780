//! Deepgram Aura: `POST /v1/speak` with everything but the text in the query string, and
//! `Authorization: Token <key>`. The voice is part of Deepgram's model name
//! (`aura-2-thalia-en`): the gateway's model is the family (`aura-2`), the voice the speaker.

use async_trait::async_trait;
use secrecy::SecretString;

use super::{
    http::{Api, Auth, Expect, Transport},
    Capabilities, EventStream, ModelInfo, NativeFormat, OptionKind, PassableOption, ProviderError, ProviderVoice,
    SpeechProvider, SynthesisRequest,
};
use crate::domain::audio::{AudioFormat, AudioSpec};

pub const DEFAULT_BASE_URL: &str = "https://api.deepgram.com";
const ID: &str = "deepgram";

pub struct Deepgram {
    api: Api,
    capabilities: Capabilities,
}

impl Deepgram {
    pub fn new(base_url: Option<&str>, api_key: SecretString, transport: Transport) -> Self {
        let model = |id: &str| ModelInfo { id: id.to_owned(), max_characters: 2_000, supports_instructions: false };
        let linear = [8_000, 16_000, 24_000, 32_000, 48_000];
        let capabilities = Capabilities {
            takes_api_key: true,
            models: vec![model("aura-2"), model("aura")],
            default_model: "aura-2".to_owned(),
            formats: vec![
                NativeFormat::new(AudioFormat::Pcm, &linear, &[]),
                NativeFormat::new(AudioFormat::Wav, &linear, &[]),
                NativeFormat::new(AudioFormat::Ulaw, &[8_000], &[]),
                NativeFormat::new(AudioFormat::Alaw, &[8_000], &[]),
                NativeFormat::new(AudioFormat::Mp3, &[22_050], &[32, 48]),
                NativeFormat::new(AudioFormat::Opus, &[48_000], &[]),
                NativeFormat::new(AudioFormat::Aac, &[22_050], &[]),
            ],
            streaming: true,
            native_timestamps: false,
            timestamp_formats: Vec::new(),
            native_dialogue: None,
            voices_listable: true,
            speed_range: None,
            // Query parameters; `callback`, `model` and the format parameters are the adapter's.
            provider_options: vec![
                PassableOption::new("tag", OptionKind::String),
                PassableOption::new("mip_opt_out", OptionKind::Boolean),
            ],
        };
        Self {
            api: Api::new(ID, base_url.unwrap_or(DEFAULT_BASE_URL), Some(api_key), Auth::Token, transport),
            capabilities,
        }
    }
}

/// `aura-2` + `thalia` → `aura-2-thalia-en`; a voice that is already a full model name stays.
fn model_name(family: &str, voice: &str, language: Option<&str>) -> String {
    if voice.starts_with("aura") {
        return voice.to_owned();
    }
    let has_language = voice.rsplit_once('-').is_some_and(|(_, tail)| tail.len() == 2);
    if has_language {
        format!("{family}-{voice}")
    } else {
        format!("{family}-{voice}-{}", language.unwrap_or("en"))
    }
}

/// The query parameters for a format: `encoding`, `container`, `sample_rate`, `bit_rate`.
fn format_query(spec: AudioSpec) -> Vec<(String, String)> {
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let rate = pair("sample_rate", &spec.sample_rate.to_string());
    match spec.format {
        AudioFormat::Pcm => vec![pair("encoding", "linear16"), pair("container", "none"), rate],
        AudioFormat::Wav => vec![pair("encoding", "linear16"), pair("container", "wav"), rate],
        AudioFormat::Ulaw => vec![pair("encoding", "mulaw"), pair("container", "none"), rate],
        AudioFormat::Alaw => vec![pair("encoding", "alaw"), pair("container", "none"), rate],
        AudioFormat::Mp3 => {
            vec![pair("encoding", "mp3"), pair("bit_rate", &(spec.bitrate_kbps.unwrap_or(48) * 1000).to_string())]
        }
        AudioFormat::Opus => vec![pair("encoding", "opus"), pair("container", "ogg")],
        AudioFormat::Aac => vec![pair("encoding", "aac")],
        AudioFormat::Flac => vec![pair("encoding", "flac")],
    }
}

/// `{"err_code", "err_msg"}` or the newer `{"category", "message", "details"}`.
fn parse_error(body: &[u8]) -> (Option<String>, Option<String>) {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => (
            v["err_code"].as_str().or(v["category"].as_str()).map(str::to_owned),
            v["err_msg"].as_str().or(v["message"].as_str()).map(str::to_owned),
        ),
        Err(_) => (None, None),
    }
}

#[async_trait]
impl SpeechProvider for Deepgram {
    fn id(&self) -> &str {
        ID
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn synthesize(&self, request: SynthesisRequest) -> Result<EventStream, ProviderError> {
        let mut query = format_query(request.output);
        query.push(("model".to_owned(), model_name(&request.model, &request.voice, request.language.as_deref())));
        // Deepgram takes options as query parameters. As `http::with_options` does for bodies,
        // an option never replaces a parameter the adapter set.
        for (name, value) in request.provider_options {
            if query.iter().any(|(set, _)| *set == name) {
                continue;
            }
            match value {
                serde_json::Value::String(s) => query.push((name, s)),
                serde_json::Value::Bool(_) | serde_json::Value::Number(_) => query.push((name, value.to_string())),
                _ => {}
            }
        }
        let body = serde_json::json!({"text": request.text});
        let builder = self.api.post("/v1/speak").query(&query).json(&body);
        let response = self.api.send_as(builder, request.credential.as_ref(), parse_error).await?;
        self.api.stream(response, Expect::Audio)
    }

    /// The text-to-speech half of `GET /v1/models`. Each voice's id is its full model name
    /// (`aura-2-thalia-en`), which works as `voice` with any model family.
    async fn voices(&self) -> Result<Vec<ProviderVoice>, ProviderError> {
        let builder = self.api.get("/v1/models");
        let response = self.api.send(builder, parse_error).await?;
        let models: ModelList = self.api.json(response).await?;
        Ok(models
            .tts
            .into_iter()
            .map(|m| {
                let tag = |t: &str| m.metadata.tags.iter().any(|tag| tag == t);
                ProviderVoice {
                    name: m.metadata.display_name.or(m.name).unwrap_or_else(|| m.canonical_name.clone()),
                    gender: if tag("feminine") {
                        Some("female".to_owned())
                    } else if tag("masculine") {
                        Some("male".to_owned())
                    } else {
                        None
                    },
                    language: m.languages.into_iter().next().or(m.language),
                    description: m.metadata.accent.map(|accent| format!("{accent} accent")),
                    id: m.canonical_name,
                }
            })
            .collect())
    }
}

/// `GET /v1/models`: speech-to-text models (ignored) and text-to-speech voices.
#[derive(serde::Deserialize)]
struct ModelList {
    #[serde(default)]
    tts: Vec<VoiceModel>,
}

#[derive(serde::Deserialize)]
struct VoiceModel {
    canonical_name: String,
    name: Option<String>,
    /// Older entries carry one `language`, newer ones `languages`.
    language: Option<String>,
    #[serde(default)]
    languages: Vec<String>,
    #[serde(default)]
    metadata: VoiceMetadata,
}

#[derive(serde::Deserialize, Default)]
struct VoiceMetadata {
    display_name: Option<String>,
    accent: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}
