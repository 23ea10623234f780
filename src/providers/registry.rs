//! Builds the configured providers and resolves `model` strings to them. This is the one place
//! that knows which kinds of provider exist.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{
    azure, cartesia::Cartesia, deepgram::Deepgram, elevenlabs::ElevenLabs, gemini::Gemini, google::Google,
    http::Transport, openai::OpenAi, polly::Polly, Circuit, CircuitState, ModelInfo, ProviderError, ProviderVoice,
    RetryPolicy, SpeechProvider,
};
use secrecy::SecretString;

use crate::config::{ProvidersConfig, RouteConfig, RouteTargetConfig, VendorConfig};

/// One kind of provider this build can serve: its id and where it comes from. The
/// configuration (`config.rs`) and the registry both read the table of kinds ([`KINDS`]);
/// nothing else lists them.
pub struct Kind {
    pub id: &'static str,
    source: Source,
}

enum Source {
    /// A vendor, built when its configuration section holds a key.
    Vendor(VendorKind),
    /// Built into the binary (`local`), built when its configuration enables it.
    #[cfg_attr(not(feature = "local"), expect(dead_code, reason = "only `local` is built in"))]
    Builtin(fn(&ProvidersConfig) -> Option<Arc<dyn SpeechProvider>>),
}

/// A vendor adapter's constructor: `Ok(None)` when its section holds no credential.
type VendorConstructor = fn(&VendorConfig, Transport) -> Result<Option<Arc<dyn SpeechProvider>>, String>;

/// Where a vendor's settings come from (its own variables, `[providers.<id>]`) and its
/// adapter's constructor.
pub struct VendorKind {
    /// The vendor's own environment variables, each with the field of its section it sets
    /// (`("OPENAI_API_KEY", "api_key")`).
    pub vars: &'static [(&'static str, &'static str)],
    pub section: fn(&ProvidersConfig) -> &VendorConfig,
    /// The adapter, from its section and transport: `Ok(None)` when the section holds no
    /// credential (the vendor is off), an error when it holds one that cannot work.
    new: VendorConstructor,
}

impl Kind {
    pub fn vendor(&self) -> Option<&VendorKind> {
        match &self.source {
            Source::Vendor(vendor) => Some(vendor),
            Source::Builtin(_) => None,
        }
    }

    /// The provider, when the configuration enables it; a vendor gets its own transport, with
    /// its section's timeouts.
    fn build(&self, config: &ProvidersConfig) -> Result<Option<Arc<dyn SpeechProvider>>, BuildError> {
        match &self.source {
            Source::Vendor(vendor) => {
                let section = (vendor.section)(config).without_empty();
                // A vendor with nothing configured costs nothing (no HTTP client, no TLS setup).
                if section.set_fields().is_empty() {
                    return Ok(None);
                }
                let transport = Transport::new(config.timeouts(&section.timeouts))?;
                (vendor.new)(&section, transport).map_err(|message| BuildError::Vendor { id: self.id, message })
            }
            Source::Builtin(build) => Ok(build(config)),
        }
    }
}

/// Why the registry could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("an HTTP client could not be built: {0}")]
    Client(#[from] reqwest::Error),
    #[error("providers.{id}: {message}")]
    Vendor { id: &'static str, message: String },
    /// A configured alias names a model this gateway does not serve: refusing to start beats
    /// answering 400 to every request that used to work under that name.
    #[error("providers.aliases.{alias}: {source}")]
    Alias { alias: String, source: ResolveError },
}

/// A vendor's row of [`KINDS`].
const fn vendor(
    id: &'static str,
    vars: &'static [(&'static str, &'static str)],
    section: fn(&ProvidersConfig) -> &VendorConfig,
    new: VendorConstructor,
) -> Kind {
    Kind { id, source: Source::Vendor(VendorKind { vars, section, new }) }
}

/// A vendor enabled by an API key alone: its adapter from the base URL override, the key and
/// the transport, when the key is set.
fn keyed(
    section: &VendorConfig,
    transport: Transport,
    new: impl FnOnce(Option<&str>, SecretString, Transport) -> Arc<dyn SpeechProvider>,
) -> Result<Option<Arc<dyn SpeechProvider>>, String> {
    Ok(section.api_key.clone().map(|key| new(section.base_url.as_deref(), key, transport)))
}

/// Every kind of provider this build can serve, enabled or not.
pub const KINDS: &[Kind] = &[
    vendor(
        "openai",
        &[("OPENAI_API_KEY", "api_key"), ("OPENAI_BASE_URL", "base_url")],
        |c| &c.openai,
        |c, t| keyed(c, t, |url, key, t| Arc::new(OpenAi::official(url, key, t))),
    ),
    vendor(
        "elevenlabs",
        &[("ELEVENLABS_API_KEY", "api_key"), ("ELEVENLABS_BASE_URL", "base_url")],
        |c| &c.elevenlabs,
        |c, t| keyed(c, t, |url, key, t| Arc::new(ElevenLabs::new(url, key, t))),
    ),
    vendor(
        "cartesia",
        &[("CARTESIA_API_KEY", "api_key"), ("CARTESIA_BASE_URL", "base_url")],
        |c| &c.cartesia,
        |c, t| keyed(c, t, |url, key, t| Arc::new(Cartesia::new(url, key, t))),
    ),
    vendor(
        "deepgram",
        &[("DEEPGRAM_API_KEY", "api_key"), ("DEEPGRAM_BASE_URL", "base_url")],
        |c| &c.deepgram,
        |c, t| keyed(c, t, |url, key, t| Arc::new(Deepgram::new(url, key, t))),
    ),
    vendor(
        "google",
        &[
            ("GOOGLE_CLOUD_TTS_API_KEY", "api_key"),
            ("GOOGLE_APPLICATION_CREDENTIALS", "credentials_file"),
            ("GOOGLE_CLOUD_TTS_BASE_URL", "base_url"),
        ],
        |c| &c.google,
        Google::from_config,
    ),
    vendor(
        "gemini",
        &[("GEMINI_API_KEY", "api_key"), ("GEMINI_BASE_URL", "base_url")],
        |c| &c.gemini,
        |c, t| keyed(c, t, |url, key, t| Arc::new(Gemini::new(url, key, t))),
    ),
    vendor(
        "polly",
        &[
            ("AWS_ACCESS_KEY_ID", "api_key"),
            ("AWS_SECRET_ACCESS_KEY", "secret_key"),
            ("AWS_SESSION_TOKEN", "session_token"),
            ("AWS_REGION", "region"),
            ("AWS_ENDPOINT_URL_POLLY", "base_url"),
        ],
        |c| &c.polly,
        |c, t| Ok(Polly::from_config(c, t)?.map(|p| Arc::new(p) as Arc<dyn SpeechProvider>)),
    ),
    vendor(
        "azure",
        &[("AZURE_SPEECH_KEY", "api_key"), ("AZURE_SPEECH_REGION", "region"), ("AZURE_SPEECH_ENDPOINT", "base_url")],
        |c| &c.azure,
        azure::build,
    ),
    #[cfg(feature = "local")]
    Kind { id: "local", source: Source::Builtin(build_local) },
];

/// The offline voice. A failure here (no writable temporary directory) costs the offline
/// voice, not the gateway: the vendors still serve.
#[cfg(feature = "local")]
fn build_local(config: &ProvidersConfig) -> Option<Arc<dyn SpeechProvider>> {
    if !config.local.enabled {
        return None;
    }
    match super::local::Local::new(&config.local) {
        Ok(local) => Some(Arc::new(local)),
        Err(error) => {
            tracing::warn!(%error, "the local provider is off: its bundled voice data could not be unpacked");
            None
        }
    }
}

/// Whether `id` names a built-in kind (an OpenAI-compatible instance may not take it).
pub fn is_builtin(id: &str) -> bool {
    KINDS.iter().any(|k| k.id == id)
}

/// Aliases every deployment has unless its config says otherwise.
const DEFAULT_ALIASES: [(&str, &str); 3] =
    [("tts-1", "openai/tts-1"), ("tts-1-hd", "openai/tts-1-hd"), ("gpt-4o-mini-tts", "openai/gpt-4o-mini-tts")];

type VoiceCache = HashMap<String, (Instant, Arc<Vec<ProviderVoice>>)>;

pub struct Registry {
    providers: BTreeMap<String, Arc<dyn SpeechProvider>>,
    /// How every provider call is retried (`[providers] retries`...).
    retry: RetryPolicy,
    /// Each provider's circuit breaker (`[providers] circuit_failures`...).
    circuits: BTreeMap<String, Arc<Circuit>>,
    aliases: BTreeMap<String, String>,
    /// Fallback routes (`[routes.<name>]`), each target checked to resolve.
    routes: BTreeMap<String, Vec<RouteTargetConfig>>,
    voice_cache_ttl: Duration,
    voice_cache: Mutex<VoiceCache>,
}

/// A `model` string resolved: the provider and one of its models.
#[derive(Clone)]
pub struct Resolved {
    pub provider: Arc<dyn SpeechProvider>,
    pub model: ModelInfo,
    /// How calls to it are retried.
    pub retry: RetryPolicy,
    /// Its provider's circuit breaker.
    pub circuit: Arc<Circuit>,
}

/// A route target whose model this gateway does not serve.
#[derive(Debug, thiserror::Error)]
#[error("routes.{route}.targets[{index}].model: {source}")]
pub struct RouteError {
    route: String,
    index: usize,
    source: ResolveError,
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
    pub fn from_config(config: &ProvidersConfig) -> Result<Self, BuildError> {
        let mut providers = Vec::new();
        for kind in KINDS {
            providers.extend(kind.build(config)?);
        }
        for (id, instance) in &config.compatible {
            let transport = Transport::new(config.timeouts(&instance.timeouts))?;
            providers.push(Arc::new(OpenAi::compatible(id, instance, transport)) as Arc<dyn SpeechProvider>);
        }
        let mut aliases: BTreeMap<String, String> =
            DEFAULT_ALIASES.iter().map(|(a, t)| ((*a).to_owned(), (*t).to_owned())).collect();
        aliases.extend(config.aliases.clone());
        let retry = RetryPolicy {
            retries: config.retries,
            backoff: Duration::from_millis(config.retry_backoff_ms),
            max_wait: Duration::from_secs(config.retry_max_wait_secs),
        };
        let breaker = (config.circuit_failures, Duration::from_secs(config.circuit_cooldown_secs));
        let registry = Self::new(providers, aliases, Duration::from_secs(config.voice_cache_secs))
            .with_reliability(retry, breaker);
        for alias in config.aliases.keys() {
            registry.resolve(alias).map_err(|source| BuildError::Alias { alias: alias.clone(), source })?;
        }
        Ok(registry)
    }

    /// The providers, with no retries and circuits that never open (see
    /// [`Registry::with_reliability`]).
    pub fn new(
        providers: Vec<Arc<dyn SpeechProvider>>,
        aliases: BTreeMap<String, String>,
        voice_cache_ttl: Duration,
    ) -> Self {
        let circuits =
            providers.iter().map(|p| (p.id().to_owned(), Arc::new(Circuit::new(0, Duration::ZERO)))).collect();
        Self {
            providers: providers.into_iter().map(|p| (p.id().to_owned(), p)).collect(),
            retry: RetryPolicy::NONE,
            circuits,
            aliases,
            routes: BTreeMap::new(),
            voice_cache_ttl,
            voice_cache: Mutex::default(),
        }
    }

    /// Retries every call per `retry`; opens a provider's circuit after `breaker.0` failures in a
    /// row, for `breaker.1`.
    pub fn with_reliability(mut self, retry: RetryPolicy, breaker: (u32, Duration)) -> Self {
        self.retry = retry;
        for circuit in self.circuits.values_mut() {
            *circuit = Arc::new(Circuit::new(breaker.0, breaker.1));
        }
        self
    }

    /// Serves `routes` as models; fails when a target names a model this gateway does not serve
    /// (its provider has no key, or the name is wrong), so a route never silently loses a target.
    pub fn with_routes(mut self, routes: &BTreeMap<String, RouteConfig>) -> Result<Self, RouteError> {
        for (name, route) in routes {
            for (index, target) in route.targets.iter().enumerate() {
                self.resolve(&target.model).map_err(|source| RouteError { route: name.clone(), index, source })?;
            }
            self.routes.insert(name.clone(), route.targets.clone());
        }
        Ok(self)
    }

    /// The fallback routes, each with its targets.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &[RouteTargetConfig])> {
        self.routes.iter().map(|(name, targets)| (name.as_str(), targets.as_slice()))
    }

    /// What `model` names, in the order to try: a route's targets, each with the target (for
    /// its voice), or the one model [`Registry::resolve`] finds. A route's name wins over an
    /// alias of the same name (so `[routes.tts-1]` can take over OpenAI's retired model).
    pub fn targets(&self, model: &str) -> Result<Vec<(Resolved, Option<&RouteTargetConfig>)>, ResolveError> {
        match self.routes.get(model) {
            Some(targets) => targets.iter().map(|t| Ok((self.resolve(&t.model)?, Some(t)))).collect(),
            None => Ok(vec![(self.resolve(model)?, None)]),
        }
    }

    pub fn is_route(&self, name: &str) -> bool {
        self.routes.contains_key(name)
    }

    /// Whether `model` names a route or a model this gateway serves.
    pub fn serves(&self, model: &str) -> bool {
        self.is_route(model) || self.resolve(model).is_ok()
    }

    /// Every provider's circuit state.
    pub fn circuits(&self) -> impl Iterator<Item = (&str, CircuitState)> {
        self.circuits.iter().map(|(id, circuit)| (id.as_str(), circuit.state()))
    }

    /// The model aliases, each with the model it stands for.
    pub fn aliases(&self) -> impl Iterator<Item = (&str, &str)> {
        self.aliases.iter().map(|(alias, target)| (alias.as_str(), target.as_str()))
    }

    pub fn providers(&self) -> impl Iterator<Item = &Arc<dyn SpeechProvider>> {
        self.providers.values()
    }

    /// Provider kinds this build knows but this deployment has not enabled.
    pub fn disabled_kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        KINDS.iter().map(|kind| kind.id).filter(|id| !self.providers.contains_key(*id))
    }

    pub fn get(&self, id: &str) -> Option<&Arc<dyn SpeechProvider>> {
        self.providers.get(id)
    }

    /// `provider/model`, a bare provider id (its default model), an alias, or a model id that
    /// exactly one provider serves.
    pub fn resolve(&self, model: &str) -> Result<Resolved, ResolveError> {
        let target = self.aliases.get(model).map_or(model, String::as_str);
        let found = match target.split_once('/') {
            Some((provider, model_id)) => self.providers.get(provider).and_then(|p| self.pick(p, model_id)),
            None => match self.providers.get(target) {
                Some(p) => self.pick(p, &p.capabilities().default_model),
                None => {
                    let mut serving = self.providers.values().filter_map(|p| self.pick(p, target));
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

    fn pick(&self, provider: &Arc<dyn SpeechProvider>, model_id: &str) -> Option<Resolved> {
        let model = provider.capabilities().model(model_id)?.clone();
        let circuit =
            self.circuits.get(provider.id()).cloned().unwrap_or_else(|| Arc::new(Circuit::new(0, Duration::ZERO)));
        Some(Resolved { provider: provider.clone(), model, retry: self.retry, circuit })
    }

    /// Every route, then every `provider/model` this gateway serves.
    pub fn known_models(&self) -> Vec<String> {
        let served = self
            .providers
            .values()
            .flat_map(|p| p.capabilities().models.iter().map(move |m| format!("{}/{}", p.id(), m.id)));
        self.routes.keys().cloned().chain(served).collect()
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
