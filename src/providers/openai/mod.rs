//! OpenAI text-to-speech, and any server that speaks its wire format (Kokoro, LocalAI,
//! speaches...) as a named "compatible" instance with its own base URL, key and models.

pub mod realtime;
mod wire;

use async_trait::async_trait;
use secrecy::SecretString;

use super::{
    http::{self, Api, Auth, Expect, Transport},
    Capabilities, EventStream, ModelInfo, NativeFormat, PassableOption, ProviderError, ProviderVoice, SpeechProvider,
    SynthesisRequest,
};
use crate::{config::CompatibleConfig, domain::audio::AudioFormat};

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// OpenAI returns every format at 24 kHz; `pcm` is headerless s16le mono.
const NATIVE_RATE: u32 = 24_000;
const MAX_INPUT: usize = 4096;

pub struct OpenAi {
    api: Api,
    voices: Vec<String>,
    capabilities: Capabilities,
    /// The realtime models, on the official API only.
    realtime: Option<realtime::Realtime>,
}

fn formats() -> Vec<NativeFormat> {
    [AudioFormat::Mp3, AudioFormat::Opus, AudioFormat::Aac, AudioFormat::Flac, AudioFormat::Wav, AudioFormat::Pcm]
        .into_iter()
        .map(|format| NativeFormat { format, sample_rates: vec![NATIVE_RATE], bitrates_kbps: Vec::new() })
        .collect()
}

fn model(id: &str, max_characters: usize, supports_instructions: bool) -> ModelInfo {
    ModelInfo { id: id.to_owned(), max_characters, supports_instructions }
}

impl OpenAi {
    /// The OpenAI API itself.
    pub fn official(base_url: Option<&str>, api_key: SecretString, transport: Transport) -> Self {
        let capabilities = Capabilities {
            takes_api_key: true,
            models: vec![
                model("gpt-4o-mini-tts", MAX_INPUT, true),
                model("gpt-4o-mini-tts-2025-12-15", MAX_INPUT, true),
                model("gpt-4o-mini-tts-2025-03-20", MAX_INPUT, true),
                model("tts-1", MAX_INPUT, false),
                model("tts-1-hd", MAX_INPUT, false),
            ]
            .into_iter()
            .chain(realtime::MODELS.iter().map(|id| model(id, MAX_INPUT, true)))
            .collect(),
            default_model: "gpt-4o-mini-tts".to_owned(),
            formats: formats(),
            streaming: true,
            native_timestamps: false,
            timestamp_formats: Vec::new(),
            native_dialogue: None,
            voices_listable: true,
            speed_range: Some((0.25, 4.0)),
            provider_options: Vec::new(),
        };
        let base_url = base_url.unwrap_or(DEFAULT_BASE_URL);
        let realtime = realtime::Realtime::new("openai", base_url, api_key.clone(), transport.timeouts);
        let mut openai = Self::new(
            "openai",
            base_url,
            Some(api_key),
            wire::VOICES.map(String::from).to_vec(),
            capabilities,
            transport,
        );
        openai.realtime = Some(realtime);
        openai
    }

    /// A self-hosted server speaking OpenAI's wire format.
    pub fn compatible(id: &str, config: &CompatibleConfig, transport: Transport) -> Self {
        let max = config.max_characters.unwrap_or(MAX_INPUT);
        let provider_options =
            config.provider_options.iter().map(|(name, kind)| PassableOption::new(name, *kind)).collect();
        let capabilities = Capabilities {
            takes_api_key: true,
            models: config.models.iter().map(|m| model(m, max, true)).collect(),
            default_model: config.models.first().cloned().unwrap_or_default(),
            formats: formats(),
            streaming: true,
            native_timestamps: false,
            timestamp_formats: Vec::new(),
            native_dialogue: None,
            voices_listable: !config.voices.is_empty(),
            speed_range: Some((0.25, 4.0)),
            provider_options,
        };
        Self::new(id, &config.base_url, config.api_key.clone(), config.voices.clone(), capabilities, transport)
    }

    fn new(
        id: &str,
        base_url: &str,
        api_key: Option<SecretString>,
        voices: Vec<String>,
        capabilities: Capabilities,
        transport: Transport,
    ) -> Self {
        Self { api: Api::new(id, base_url, api_key, Auth::Bearer, transport), voices, capabilities, realtime: None }
    }
}

#[async_trait]
impl SpeechProvider for OpenAi {
    fn id(&self) -> &str {
        &self.api.provider
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn model_capabilities(&self, model: &str) -> &Capabilities {
        match &self.realtime {
            Some(realtime) if realtime.serves(model) => realtime.capabilities(),
            _ => &self.capabilities,
        }
    }

    async fn synthesize(&self, request: SynthesisRequest) -> Result<EventStream, ProviderError> {
        if let Some(realtime) = self.realtime.as_ref().filter(|r| r.serves(&request.model)) {
            return realtime.synthesize(request).await;
        }
        let response_format =
            wire::response_format(request.output.format).ok_or_else(|| self.api.unsupported(request.output.format))?;
        let body = wire::SpeechBody {
            model: &request.model,
            input: &request.text,
            voice: &request.voice,
            response_format,
            speed: request.speed,
            instructions: request.instructions.as_deref(),
        };
        let body = http::with_options(serde_json::to_value(&body).unwrap_or_default(), request.provider_options);
        let builder = self.api.post("/audio/speech").json(&body);
        let response = self.api.send_as(builder, request.credential.as_ref(), wire::parse_error).await?;
        self.api.stream(response, Expect::Audio)
    }

    async fn voices(&self) -> Result<Vec<ProviderVoice>, ProviderError> {
        Ok(self
            .voices
            .iter()
            .map(|v| ProviderVoice { id: v.clone(), name: v.clone(), gender: None, language: None, description: None })
            .collect())
    }
}
