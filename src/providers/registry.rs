//! Builds the configured providers and resolves `model` strings to them. This is the one place
//! that knows which kinds of provider exist.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{
    cartesia::Cartesia, deepgram::Deepgram, elevenlabs::ElevenLabs, http::Transport, openai::OpenAi, ModelInfo,
    ProviderError, ProviderVoice, SpeechProvider,
};
use crate::config::ProvidersConfig;

/// Every kind of provider this build can serve, enabled or not.
const KINDS: &[&str] = &[
    "openai",
    "elevenlabs",
    "cartesia",
    "deepgram",
    #[cfg(feature = "local")]
    "local",
];

/// Aliases every deployment has unless its config says otherwise.
const DEFAULT_ALIASES: [(&str, &str); 3] =
    [("tts-1", "openai/tts-1"), ("tts-1-hd", "openai/tts-1-hd"), ("gpt-4o-mini-tts", "openai/gpt-4o-mini-tts")];

type VoiceCache = HashMap<String, (Instant, Arc<Vec<ProviderVoice>>)>;

pub struct Registry {
    providers: BTreeMap<String, Arc<dyn SpeechProvider>>,
    aliases: BTreeMap<String, String>,
    voice_cache_ttl: Duration,
    voice_cache: Mutex<VoiceCache>,
}

/// A `model` string resolved: the provider and one of its models.
#[derive(Clone)]
pub struct Resolved {
    pub provider: Arc<dyn SpeechProvider>,
    pub model: ModelInfo,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("unknown model {model:?}; known models: {known}")]
    UnknownModel { model: String, known: String },
    #[error("unknown provider {0:?}")]
    UnknownProvider(String),
}

impl Registry {
    /// Every provider whose credential is configured, plus `local` where built in and enabled.
    pub fn from_config(config: &ProvidersConfig) -> Result<Self, reqwest::Error> {
        let transport = Transport::new(
            Duration::from_secs(config.timeout_secs),
            Duration::from_secs(config.idle_timeout_secs),
            Duration::from_secs(config.max_stream_secs),
        )?;
        let mut providers: Vec<Arc<dyn SpeechProvider>> = Vec::new();
        if let Some(key) = &config.openai.api_key {
            providers.push(Arc::new(OpenAi::official(
                config.openai.base_url.as_deref(),
                key.clone(),
                transport.clone(),
            )));
        }
        if let Some(key) = &config.elevenlabs.api_key {
            providers.push(Arc::new(ElevenLabs::new(
                config.elevenlabs.base_url.as_deref(),
                key.clone(),
                transport.clone(),
            )));
        }
        if let Some(key) = &config.cartesia.api_key {
            providers.push(Arc::new(Cartesia::new(
                config.cartesia.base_url.as_deref(),
                key.clone(),
                transport.clone(),
            )));
        }
        if let Some(key) = &config.deepgram.api_key {
            providers.push(Arc::new(Deepgram::new(
                config.deepgram.base_url.as_deref(),
                key.clone(),
                transport.clone(),
            )));
        }
        for (id, instance) in &config.compatible {
            providers.push(Arc::new(OpenAi::compatible(id, instance, transport.clone())));
        }
        #[cfg(feature = "local")]
        if config.local.enabled {
            // A failure here (no writable temporary directory) costs the offline voice, not the
            // gateway: the vendors still serve.
            match super::local::Local::new() {
                Ok(local) => providers.push(Arc::new(local)),
                Err(error) => {
                    tracing::warn!(%error, "the local provider is off: its bundled voice data could not be unpacked");
                }
            }
        }
        let mut aliases: BTreeMap<String, String> =
            DEFAULT_ALIASES.iter().map(|(a, t)| ((*a).to_owned(), (*t).to_owned())).collect();
        aliases.extend(config.aliases.clone());
        Ok(Self::new(providers, aliases, Duration::from_secs(config.voice_cache_secs)))
    }

    pub fn new(
        providers: Vec<Arc<dyn SpeechProvider>>,
        aliases: BTreeMap<String, String>,
        voice_cache_ttl: Duration,
    ) -> Self {
        Self {
            providers: providers.into_iter().map(|p| (p.id().to_owned(), p)).collect(),
            aliases,
            voice_cache_ttl,
            voice_cache: Mutex::default(),
        }
    }

    pub fn providers(&self) -> impl Iterator<Item = &Arc<dyn SpeechProvider>> {
        self.providers.values()
    }

    /// Provider kinds this build knows but this deployment has not enabled.
    pub fn disabled_kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        KINDS.iter().copied().filter(|kind| !self.providers.contains_key(*kind))
    }

    pub fn get(&self, id: &str) -> Option<&Arc<dyn SpeechProvider>> {
        self.providers.get(id)
    }

    /// `provider/model`, a bare provider id (its default model), an alias, or a model id that
    /// exactly one provider serves.
    pub fn resolve(&self, model: &str) -> Result<Resolved, ResolveError> {
        let target = self.aliases.get(model).map_or(model, String::as_str);
        let found = match target.split_once('/') {
            Some((provider, model_id)) => self.providers.get(provider).and_then(|p| Self::pick(p, model_id)),
            None => match self.providers.get(target) {
                Some(p) => Self::pick(p, &p.capabilities().default_model),
                None => {
                    let mut serving = self.providers.values().filter_map(|p| Self::pick(p, target));
                    match (serving.next(), serving.next()) {
                        (Some(only), None) => Some(only),
                        _ => None,
                    }
                }
            },
        };
        found.ok_or_else(|| ResolveError::UnknownModel {
            model: model.to_owned(),
            known: self.known_models().join(", "),
        })
    }

    fn pick(provider: &Arc<dyn SpeechProvider>, model_id: &str) -> Option<Resolved> {
        let model = provider.capabilities().model(model_id)?.clone();
        Some(Resolved { provider: provider.clone(), model })
    }

    /// Every `provider/model` this gateway serves.
    pub fn known_models(&self) -> Vec<String> {
        self.providers
            .values()
            .flat_map(|p| p.capabilities().models.iter().map(move |m| format!("{}/{}", p.id(), m.id)))
            .collect()
    }

    /// The provider's voice catalogue, cached for `providers.voice_cache_secs`.
    pub async fn voices(&self, provider_id: &str) -> Result<Arc<Vec<ProviderVoice>>, VoicesError> {
        let provider =
            self.providers.get(provider_id).ok_or_else(|| VoicesError::UnknownProvider(provider_id.to_owned()))?;
        if !provider.capabilities().voices_listable {
            return Err(VoicesError::NotListable(provider_id.to_owned()));
        }
        if let Some((at, voices)) = self.lock_cache().get(provider_id) {
            if at.elapsed() < self.voice_cache_ttl {
                return Ok(voices.clone());
            }
        }
        let voices = Arc::new(provider.voices().await?);
        self.lock_cache().insert(provider_id.to_owned(), (Instant::now(), voices.clone()));
        Ok(voices)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, VoiceCache> {
        self.voice_cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VoicesError {
    #[error("unknown provider {0:?}")]
    UnknownProvider(String),
    #[error("provider {0:?} has no voice catalogue")]
    NotListable(String),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}
