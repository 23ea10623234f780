//! Typed configuration: defaults, then `speechgate.toml` (optional), then
//! `SPEECHGATE__SECTION__KEY` environment variables, then the first-class variables
//! `SPEECHGATE_LISTEN`, `SPEECHGATE_DATABASE_URL`, `SPEECHGATE_ADMIN_TOKEN` and `SPEECHGATE_MASTER_KEY`.
//! Validated once at start; every message names the field it is about.

use std::{collections::BTreeMap, net::SocketAddr, path::Path};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::{
    domain::text,
    http::client::AddrBlock,
    providers::registry::{self, KINDS},
    store,
};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub usage: UsageConfig,
    pub log: LogConfig,
    pub providers: ProvidersConfig,
    pub conversation: ConversationConfig,
    /// The vendor drop-in routes' voice mappings (`facades`).
    pub facades: FacadesConfig,
    /// Fallback routes: a name callers use as a `model`, tried target by target (`[routes.<name>]`).
    pub routes: BTreeMap<String, RouteConfig>,
    /// Content moderation of every text before it is synthesised; off when absent.
    pub moderation: Option<ModerationConfig>,
    /// USD per million characters, by `provider/model` or by provider (the default for its
    /// models): spend in usage, and what `monthlySpendLimitUsd` is checked against. What no
    /// entry prices costs nothing.
    pub prices: BTreeMap<String, f64>,
}

/// `[routes.<name>]`: the targets a route tries, in order, until one serves.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfig {
    pub targets: Vec<RouteTargetConfig>,
}

/// One target of a route: a model, and the voice it speaks with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteTargetConfig {
    /// `provider`, `provider/model` or an alias.
    pub model: String,
    /// The voice this target speaks with, whatever the request asked for (unless `voices` maps
    /// the requested one).
    pub voice: Option<String>,
    /// Request voices mapped to this target's voices: `voices = { alloy = "en-us" }`.
    pub voices: BTreeMap<String, String>,
}

impl RouteTargetConfig {
    /// The voice this target speaks a request for `requested` with: its mapping of that voice,
    /// else its own voice, else the one requested.
    pub fn voice_for<'a>(&'a self, requested: &'a str) -> &'a str {
        self.voices.get(requested).or(self.voice.as_ref()).map_or(requested, String::as_str)
    }
}

/// `[moderation]`: an endpoint with OpenAI's moderation API (`POST /moderations`) that every text
/// is checked with before any provider is called.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModerationConfig {
    /// `openai`: OpenAI's endpoint, with the `openai` provider's key and base URL. Give either
    /// this or `url`.
    pub provider: Option<String>,
    /// The full address of another endpoint with that API, e.g. `http://guard:8000/v1/moderations`.
    pub url: Option<String>,
    /// The key sent (as `Authorization: Bearer`) to `url`.
    #[serde(serialize_with = "serialize_redacted")]
    pub api_key: Option<SecretString>,
    pub model: String,
    /// How long one check may take, connection included.
    pub timeout_ms: u64,
    /// When the moderation service fails or times out: `false` (default) refuses the request
    /// (503, nothing synthesised); `true` lets it through unchecked, logged and counted.
    pub fail_open: bool,
}

impl Default for ModerationConfig {
    fn default() -> Self {
        Self {
            provider: None,
            url: None,
            api_key: None,
            model: "omni-moderation-latest".to_owned(),
            timeout_ms: 2_000,
            fail_open: false,
        }
    }
}

/// `[facades]`: per-vendor voice mappings of the drop-in routes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FacadesConfig {
    pub openai: FacadeConfig,
    pub elevenlabs: FacadeConfig,
    pub playht: FacadeConfig,
}

impl Default for FacadesConfig {
    /// ElevenLabs ids not otherwise routed are the `elevenlabs` provider's; OpenAI requests always
    /// name a model; PlayHT voices exist nowhere any more, so they need mapping.
    fn default() -> Self {
        Self {
            openai: FacadeConfig::default(),
            elevenlabs: FacadeConfig { default_model: Some("elevenlabs".to_owned()), voices: BTreeMap::new() },
            playht: FacadeConfig::default(),
        }
    }
}

/// `[facades.<vendor>]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FacadeConfig {
    /// The model (`provider`, `provider/model` or an alias) for voice ids that nothing else
    /// claims and requests that name no model of their own.
    pub default_model: Option<String>,
    /// Vendor voice ids mapped to `model:voice`, e.g. `alloy = "cartesia:a0e99841-..."` or
    /// `JBFqnCBsd6RMkjVDRZzb = "local:en-gb"`.
    pub voices: BTreeMap<String, String>,
}

impl FacadeConfig {
    /// The provider of `default_model`: the one whose own voice and model ids the facade passes
    /// through unprefixed (the `elevenlabs` provider for the ElevenLabs facade, by default).
    pub fn native_provider(&self) -> Option<&str> {
        self.default_model.as_deref().map(|model| model.split('/').next().unwrap_or(model))
    }

    /// The mapping values that do not have the `model:voice` form, as `(voice, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        self.voices
            .iter()
            .filter(|(_, target)| split_target(target).is_none())
            .map(|(voice, target)| (voice.clone(), format!("{target:?} is not of the form \"model:voice\"")))
            .collect()
    }
}

/// `model:voice`, split at the first `:` (model names have none; voice ids may).
pub fn split_target(target: &str) -> Option<(&str, &str)> {
    target.split_once(':').filter(|(model, voice)| !model.is_empty() && !voice.is_empty())
}

/// `/v1/audio/conversation`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConversationConfig {
    /// Most turns in one conversation.
    pub max_turns: usize,
    /// Most characters of text over all turns.
    pub max_characters: usize,
    /// Turns being synthesised at once, ahead of the one being sent.
    pub concurrency: usize,
}

impl Default for ConversationConfig {
    fn default() -> Self {
        Self { max_turns: 100, max_characters: 20_000, concurrency: 4 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long a graceful shutdown waits for in-flight requests, in seconds.
    pub shutdown_grace_secs: u64,
    /// On SIGTERM, how long the gateway goes on accepting and serving while `/readyz` already
    /// answers 503, so that load balancers polling it stop sending before the listener closes.
    /// (On Kubernetes a `preStop` sleep does the same.)
    pub drain_delay_secs: u64,
    /// How long a client may take to send a request's head; an idle keep-alive connection is
    /// closed after the same time.
    pub header_read_timeout_secs: u64,
    /// How long a client may take to send a request's body.
    pub body_read_timeout_secs: u64,
    /// How long a write may wait for a client that stopped reading before it is dropped.
    pub write_timeout_secs: u64,
    /// Open connections at once; beyond that, new ones wait to be accepted.
    pub max_connections: usize,
    /// Requests in progress at once (streams count until their last byte); beyond that, 503
    /// `overloaded` before any work.
    pub max_concurrent_requests: usize,
    /// Proxies (addresses or blocks such as `10.0.0.0/8`) whose `X-Forwarded-For` names the
    /// client. Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
    /// WebSockets open at once (each holds a connection for up to an hour); beyond that, 503.
    pub max_websockets: usize,
    /// The gateway's address as clients reach it (`https://speech.example.com`), for the URLs it
    /// hands out (PlayHT's inference coordinates, WebSocket URLs). Unset: each request's `Host`.
    pub public_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path.db` (created if missing) or `postgres://user:pass@host/db`.
    pub url: String,
    pub max_connections: u32,
    /// Apply pending migrations when `serve` starts.
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Bearer token for `/admin/v1`. When unset the admin API is disabled.
    #[serde(serialize_with = "serialize_redacted")]
    pub admin_token: Option<SecretString>,
    /// How long a key lookup is cached; a revoked key stops working on every replica within this.
    pub cache_ttl_secs: u64,
    /// Requests one key may have in progress at once (on one replica); beyond that, 429.
    pub max_concurrent_per_key: usize,
    /// Failed authentications one client address may make per minute before it gets 429.
    pub max_failures_per_minute: u32,
    /// While the database cannot be reached, keys it confirmed within this many seconds keep
    /// working from this replica's cache; other keys get 503 `database_unavailable`. 0: none.
    pub outage_grace_secs: u64,
    /// On PostgreSQL, how long a key's concurrency lease (`maxConcurrent`) outlives its
    /// replica: leases are renewed every third of this while their request runs, so those of a
    /// replica that died free their slots within this many seconds.
    pub lease_secs: u64,
    /// Signs the short-lived URL tokens of WebSocket and PlayHT inference URLs. Replicas behind
    /// one load balancer must share it; when unset, each process makes up its own, and a token
    /// works only on the replica that issued it.
    #[serde(serialize_with = "serialize_redacted")]
    pub url_signing_secret: Option<SecretString>,
    /// Seals the vendor keys projects bring (`PUT /v1/api-keys/{providerId}`) with AES-256-GCM:
    /// 32 random bytes as base64 or 64 hex digits (`SPEECHGATE_MASTER_KEY`). When unset, those
    /// routes answer 501 and every request uses the operator's keys. Replicas must share it;
    /// keys sealed with another master key are refused, never used.
    #[serde(serialize_with = "serialize_redacted")]
    pub master_key: Option<SecretString>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsageConfig {
    /// Most events written in one transaction.
    pub batch_size: usize,
    /// How long the writer waits for more events before writing a batch, in milliseconds.
    pub flush_interval_ms: u64,
    /// Most events waiting to be written. When the database falls this far behind, new
    /// requests get 503 `usage_backlog` (before doing any work) until it catches up; requests
    /// already admitted always keep their events.
    pub max_queue: usize,
}

/// Providers. A vendor is enabled when its credential is set, usually from the vendor's own
/// variables (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, `AWS_REGION`...): each kind's are in its row
/// of the registry's table of kinds, and in the README's provider table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProvidersConfig {
    pub openai: VendorConfig,
    pub elevenlabs: VendorConfig,
    pub cartesia: VendorConfig,
    pub deepgram: VendorConfig,
    pub google: VendorConfig,
    pub gemini: VendorConfig,
    /// Amazon Polly: a key pair and a region (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL_POLLY`).
    pub polly: VendorConfig,
    pub azure: VendorConfig,
    pub local: LocalConfig,
    /// OpenAI-compatible servers (Kokoro, LocalAI, speaches...), by the provider id to use.
    pub compatible: BTreeMap<String, CompatibleConfig>,
    /// Model aliases: `alias = "provider/model"`. `tts-1`, `tts-1-hd` and `gpt-4o-mini-tts`
    /// point at `openai/...` unless set here.
    pub aliases: BTreeMap<String, String>,
    /// How long connecting to a provider (TCP and TLS) may take, in seconds.
    pub connect_timeout_secs: u64,
    /// How long a provider may take to send the first byte of its answer (connecting included),
    /// in seconds: its response head and, for a streamed body, the first chunk.
    pub timeout_secs: u64,
    /// How long a gap between two audio chunks may last before the stream counts as broken.
    pub idle_timeout_secs: u64,
    /// How long one provider call may last in all, however steadily its stream flows.
    pub max_stream_secs: u64,
    /// How long a provider's voice catalogue is cached.
    pub voice_cache_secs: u64,
    /// Retries of a provider call that failed before its first byte with a failure a retry can
    /// fix (429, 5xx, timeout, connection lost); never once audio has reached the client.
    pub retries: u32,
    /// The wait before the first retry, in milliseconds; it doubles for each next one (±50 %).
    pub retry_backoff_ms: u64,
    /// The longest wait a retry is worth, in seconds (a `Retry-After` beyond it is not waited for).
    pub retry_max_wait_secs: u64,
    /// Calls in a row that fail with the provider down (5xx, timeout, lost connection) before it
    /// is skipped for `circuit_cooldown_secs`; 0 never skips it.
    pub circuit_failures: u32,
    /// How long a provider whose circuit opened is skipped before one call probes it.
    pub circuit_cooldown_secs: u64,
}

/// One vendor's section. `api_key` and `base_url` are every vendor's; the other fields are for
/// the vendors whose credential is more than one key (each kind says which it reads, and its
/// variables, in the registry's table of kinds).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VendorConfig {
    /// The vendor's API key (for AWS, the access key id).
    #[serde(serialize_with = "serialize_redacted")]
    pub api_key: Option<SecretString>,
    /// Overrides the vendor's public API address (tests, proxies, regional hosts).
    pub base_url: Option<String>,
    /// The vendor region the service is in (`AZURE_SPEECH_REGION`, `AWS_REGION`).
    pub region: Option<String>,
    /// The secret half of a key pair (`AWS_SECRET_ACCESS_KEY`).
    #[serde(serialize_with = "serialize_redacted")]
    pub secret_key: Option<SecretString>,
    /// A temporary credential's session token (`AWS_SESSION_TOKEN`).
    #[serde(serialize_with = "serialize_redacted")]
    pub session_token: Option<SecretString>,
    /// A credentials file (`GOOGLE_APPLICATION_CREDENTIALS`: a service account's JSON key).
    pub credentials_file: Option<String>,
    /// This provider's own timeouts, where they differ from `[providers]`'.
    pub timeouts: TimeoutOverrides,
}

impl VendorConfig {
    /// The section with its empty values unset: `KEY=` (a compose file passing on a variable
    /// the host does not set) is no key, and enables nothing.
    pub fn without_empty(&self) -> Self {
        use secrecy::ExposeSecret;
        let secret = |v: &Option<SecretString>| v.clone().filter(|s| !s.expose_secret().trim().is_empty());
        let text = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        Self {
            api_key: secret(&self.api_key),
            base_url: text(&self.base_url),
            region: text(&self.region),
            secret_key: secret(&self.secret_key),
            session_token: secret(&self.session_token),
            credentials_file: text(&self.credentials_file),
            timeouts: self.timeouts,
        }
    }

    /// The credential and address fields that are set (not `timeouts`).
    pub fn set_fields(&self) -> Vec<&'static str> {
        [
            ("api_key", self.api_key.is_some()),
            ("base_url", self.base_url.is_some()),
            ("region", self.region.is_some()),
            ("secret_key", self.secret_key.is_some()),
            ("session_token", self.session_token.is_some()),
            ("credentials_file", self.credentials_file.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, set)| set.then_some(field))
        .collect()
    }
}

/// `[providers.<id>.timeouts]` (and `[providers.compatible.<id>.timeouts]`): any of the
/// `[providers]` timeouts, for this provider only; an unset one is the `[providers]` value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutOverrides {
    pub connect_timeout_secs: Option<u64>,
    pub timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub max_stream_secs: Option<u64>,
}

/// A provider's timeouts in force: `[providers]`' with its own section's overrides applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest wait for a TCP (and TLS) connection to the provider.
    pub connect: std::time::Duration,
    /// Longest wait from sending a request to the first byte of its answer's body (connecting
    /// included): a provider that accepts and then says nothing.
    pub first_byte: std::time::Duration,
    /// Longest gap between two chunks of a streamed body once it has started.
    pub idle: std::time::Duration,
    /// Longest a call may last in all, however steadily its body flows.
    pub total: std::time::Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalConfig {
    /// Serve the offline `local` provider (in builds that have it).
    pub enabled: bool,
    /// Clips rendered at once (each takes a CPU core); 0 means one per core.
    pub max_jobs: usize,
    /// Requests that may wait for a free slot; beyond that the provider answers 503 at once.
    pub max_waiting: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompatibleConfig {
    /// Base URL including the API version path, e.g. `http://kokoro:8880/v1`.
    pub base_url: String,
    #[serde(serialize_with = "serialize_redacted")]
    pub api_key: Option<SecretString>,
    /// Models the server serves; the first is the default.
    pub models: Vec<String>,
    /// Voices the server offers, for the voice catalogue.
    pub voices: Vec<String>,
    /// Longest input, in characters.
    pub max_characters: Option<usize>,
    /// Extra body fields the server understands, passed on from a request's `providerOptions`,
    /// with their JSON type: `provider_options = { lang_code = "string" }`. Nothing else is.
    pub provider_options: BTreeMap<String, crate::providers::OptionKind>,
    /// This instance's own timeouts, where they differ from `[providers]`'.
    pub timeouts: TimeoutOverrides,
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        Self {
            openai: VendorConfig::default(),
            elevenlabs: VendorConfig::default(),
            cartesia: VendorConfig::default(),
            deepgram: VendorConfig::default(),
            google: VendorConfig::default(),
            gemini: VendorConfig::default(),
            polly: VendorConfig::default(),
            azure: VendorConfig::default(),
            local: LocalConfig::default(),
            compatible: BTreeMap::new(),
            aliases: BTreeMap::new(),
            connect_timeout_secs: 10,
            timeout_secs: 30,
            idle_timeout_secs: 30,
            max_stream_secs: 900,
            voice_cache_secs: 600,
            retries: 2,
            retry_backoff_ms: 200,
            retry_max_wait_secs: 10,
            circuit_failures: 5,
            circuit_cooldown_secs: 30,
        }
    }
}

impl ProvidersConfig {
    /// The timeouts of a provider whose section overrides `own`.
    pub fn timeouts(&self, own: &TimeoutOverrides) -> Timeouts {
        let secs = |own: Option<u64>, global: u64| std::time::Duration::from_secs(own.unwrap_or(global));
        Timeouts {
            connect: secs(own.connect_timeout_secs, self.connect_timeout_secs),
            first_byte: secs(own.timeout_secs, self.timeout_secs),
            idle: secs(own.idle_timeout_secs, self.idle_timeout_secs),
            total: secs(own.max_stream_secs, self.max_stream_secs),
        }
    }

    /// Every provider section's timeout overrides, by the section's path.
    fn timeout_overrides(&self) -> impl Iterator<Item = (String, &TimeoutOverrides)> {
        let vendors = KINDS
            .iter()
            .filter_map(|kind| Some((format!("providers.{}", kind.id), &(kind.vendor()?.section)(self).timeouts)));
        let compatible =
            self.compatible.iter().map(|(id, instance)| (format!("providers.compatible.{id}"), &instance.timeouts));
        vendors.chain(compatible)
    }
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self { enabled: true, max_jobs: 0, max_waiting: 256 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive, e.g. `info` or `speechgate=debug,info`.
    pub filter: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 1024 * 1024,
            shutdown_grace_secs: 30,
            drain_delay_secs: 0,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            write_timeout_secs: 30,
            max_connections: 10_000,
            max_concurrent_requests: 2_048,
            trusted_proxies: Vec::new(),
            public_url: None,
            max_websockets: 1024,
        }
    }
}

/// The highest price accepted, USD per million characters (dearer than any vendor by far).
const MAX_PRICE_PER_MILLION: f64 = 1_000_000.0;

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: "sqlite://speechgate.db".into(), max_connections: 10, migrate_on_start: true }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            admin_token: None,
            cache_ttl_secs: 5,
            max_concurrent_per_key: 256,
            max_failures_per_minute: 30,
            outage_grace_secs: 300,
            lease_secs: 30,
            url_signing_secret: None,
            master_key: None,
        }
    }
}

impl Default for UsageConfig {
    fn default() -> Self {
        Self { batch_size: 256, flush_interval_ms: 100, max_queue: 100_000 }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Json, filter: "info".into() }
    }
}

impl ModerationConfig {
    /// The endpoint's address and key, as configured: `(field, message)` when they are not.
    pub fn endpoint(
        &self,
        providers: &ProvidersConfig,
    ) -> Result<(String, Option<SecretString>), (&'static str, String)> {
        match (self.provider.as_deref(), &self.url) {
            (Some("openai"), None) => {
                let openai = &providers.openai;
                let Some(key) = openai.api_key.clone() else {
                    return Err(("provider", "`openai` needs the openai provider's key (OPENAI_API_KEY)".to_owned()));
                };
                let base = openai.base_url.as_deref().unwrap_or(crate::providers::openai::DEFAULT_BASE_URL);
                Ok((format!("{}/moderations", base.trim_end_matches('/')), Some(key)))
            }
            (Some(other), None) => Err((
                "provider",
                format!(
                    "{:?} is not a moderation provider; use \"openai\" or `url`",
                    text::for_record(other.to_owned())
                ),
            )),
            (None, Some(url)) if is_http_url(url) => Ok((url.clone(), self.api_key.clone())),
            (None, Some(_)) => Err(("url", "must be an http:// or https:// URL".to_owned())),
            (Some(_), Some(_)) => Err(("url", "give `provider` or `url`, not both".to_owned())),
            (None, None) => Err(("provider", "give `provider = \"openai\"` or a `url`".to_owned())),
        }
    }

    fn check(&self, providers: &ProvidersConfig) -> Result<(), (&'static str, String)> {
        self.endpoint(providers)?;
        if self.model.trim().is_empty() || self.model.len() > 128 || self.model.chars().any(char::is_control) {
            return Err(("model", "must be a model name (1 to 128 characters)".to_owned()));
        }
        if !(1..=60_000).contains(&self.timeout_ms) {
            return Err(("timeout_ms", "must be 1 to 60000 milliseconds".to_owned()));
        }
        Ok(())
    }
}

/// The longest any configured timeout may be.
const MAX_DURATION_SECS: u64 = 86_400;

fn is_http_url(url: &str) -> bool {
    (url.starts_with("http://") || url.starts_with("https://")) && url.len() > "https://".len()
}

fn serialize_redacted<S: serde::Serializer>(value: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_some("[redacted]"),
        None => s.serialize_none(),
    }
}

/// The variable naming the configuration file (read by the command line).
pub const CONFIG_FILE_VAR: &str = "SPEECHGATE_CONFIG";

/// The prefix of the variables that set any field: `SPEECHGATE__SECTION__KEY` sets
/// `section.key` (`SPEECHGATE__PROVIDERS__OPENAI__TIMEOUTS__TIMEOUT_SECS`...).
pub const NESTED_VAR_PREFIX: &str = "SPEECHGATE__";

/// The first-class variables and the fields they set; they win over everything else.
pub const FIRST_CLASS_VARS: [(&str, &str); 4] = [
    ("SPEECHGATE_LISTEN", "server.listen"),
    ("SPEECHGATE_DATABASE_URL", "database.url"),
    ("SPEECHGATE_ADMIN_TOKEN", "auth.admin_token"),
    ("SPEECHGATE_MASTER_KEY", "auth.master_key"),
];

/// Every environment variable the gateway reads by its full name: the configuration file's,
/// the first-class ones and the vendors' own. With [`NESTED_VAR_PREFIX`] these are all the
/// variables that configure it (deployment manifests are checked against this list).
pub fn env_vars() -> Vec<&'static str> {
    let vendors = KINDS.iter().filter_map(|kind| kind.vendor()).flat_map(|v| v.vars.iter().map(|(var, _)| *var));
    [CONFIG_FILE_VAR].into_iter().chain(FIRST_CLASS_VARS.iter().map(|(var, _)| *var)).chain(vendors).collect()
}

/// Whether the gateway reads the variable `name` (whether the field a `SPEECHGATE__` variable
/// names exists is for loading to say: an unknown one is refused).
pub fn reads_env_var(name: &str) -> bool {
    name.starts_with(NESTED_VAR_PREFIX) || env_vars().contains(&name)
}

/// The vendors' own variables, from the table of provider kinds: `OPENAI_API_KEY` →
/// `providers.openai.api_key`, `OPENAI_BASE_URL` → `providers.openai.base_url`,
/// `AWS_REGION` → `providers.polly.region`, and so on.
fn vendor_env() -> Env {
    let vars: Vec<(&'static str, String)> = KINDS
        .iter()
        .filter_map(|kind| Some((kind.id, kind.vendor()?)))
        .flat_map(|(id, vendor)| vendor.vars.iter().map(move |(var, field)| (*var, format!("providers.{id}.{field}"))))
        .collect();
    let names: Vec<&str> = vars.iter().map(|(var, _)| *var).collect();
    Env::raw().only(&names).map(move |var| {
        let key = vars.iter().find(|(v, _)| v.eq_ignore_ascii_case(var.as_str())).map_or("", |(_, key)| key.as_str());
        key.to_owned().into()
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration: {field}: {message}")]
    Invalid { field: String, message: String },
}

impl Config {
    /// Loads from `path` (if it exists) and the process environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_figment(Self::figment(path))
    }

    /// The layered sources, in increasing precedence.
    pub fn figment(path: &Path) -> Figment {
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(path))
            .merge(Env::prefixed(NESTED_VAR_PREFIX).split("__"));
        FIRST_CLASS_VARS
            .iter()
            .fold(figment, |figment, (var, field)| figment.merge(Env::raw().only(&[var]).map(|_| (*field).into())))
            .merge(vendor_env())
    }

    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: &str| {
            Err(ConfigError::Invalid { field: field.to_owned(), message: message.to_owned() })
        };
        if self.listen_addr().is_none() {
            return invalid("server.listen", "must be an address such as 127.0.0.1:8080");
        }
        let counts = [
            ("server.max_body_bytes", self.server.max_body_bytes),
            ("server.max_connections", self.server.max_connections),
            ("server.max_concurrent_requests", self.server.max_concurrent_requests),
            ("server.max_websockets", self.server.max_websockets),
            ("database.max_connections", self.database.max_connections as usize),
            ("auth.max_concurrent_per_key", self.auth.max_concurrent_per_key),
            ("auth.max_failures_per_minute", self.auth.max_failures_per_minute as usize),
            ("usage.batch_size", self.usage.batch_size),
            ("usage.max_queue", self.usage.max_queue),
            ("conversation.max_turns", self.conversation.max_turns),
            ("conversation.max_characters", self.conversation.max_characters),
            ("conversation.concurrency", self.conversation.concurrency),
        ];
        if let Some((field, _)) = counts.iter().find(|(_, value)| *value == 0) {
            return invalid(field, "must be greater than 0");
        }
        // Deadlines are added to the clock; a day is far longer than any of them needs. Only the
        // shutdown grace may be 0 (stop at once).
        let deadlines = [
            ("server.header_read_timeout_secs", self.server.header_read_timeout_secs, 1),
            ("server.body_read_timeout_secs", self.server.body_read_timeout_secs, 1),
            ("server.write_timeout_secs", self.server.write_timeout_secs, 1),
            ("server.shutdown_grace_secs", self.server.shutdown_grace_secs, 0),
            ("server.drain_delay_secs", self.server.drain_delay_secs, 0),
            ("providers.connect_timeout_secs", self.providers.connect_timeout_secs, 1),
            ("auth.outage_grace_secs", self.auth.outage_grace_secs, 0),
            ("providers.timeout_secs", self.providers.timeout_secs, 1),
            ("providers.idle_timeout_secs", self.providers.idle_timeout_secs, 1),
            ("providers.max_stream_secs", self.providers.max_stream_secs, 1),
            ("providers.retry_max_wait_secs", self.providers.retry_max_wait_secs, 0),
            ("providers.circuit_cooldown_secs", self.providers.circuit_cooldown_secs, 1),
            ("auth.lease_secs", self.auth.lease_secs, 3),
        ];
        for (field, secs, min) in deadlines {
            if !(min..=MAX_DURATION_SECS).contains(&secs) {
                return invalid(field, &format!("must be {min} to {MAX_DURATION_SECS} seconds (a day)"));
            }
        }
        for (section, own) in self.providers.timeout_overrides() {
            let fields = [
                ("connect_timeout_secs", own.connect_timeout_secs),
                ("timeout_secs", own.timeout_secs),
                ("idle_timeout_secs", own.idle_timeout_secs),
                ("max_stream_secs", own.max_stream_secs),
            ];
            if let Some((name, _)) =
                fields.iter().find(|(_, secs)| secs.is_some_and(|secs| !(1..=MAX_DURATION_SECS).contains(&secs)))
            {
                return invalid(
                    &format!("{section}.timeouts.{name}"),
                    &format!("must be 1 to {MAX_DURATION_SECS} seconds (a day)"),
                );
            }
        }
        for kind in KINDS {
            let Some(vendor) = kind.vendor() else { continue };
            let reads = |field: &&str| vendor.vars.iter().any(|(_, f)| f == field);
            if let Some(field) = (vendor.section)(&self.providers).set_fields().into_iter().find(|f| !reads(f)) {
                return invalid(&format!("providers.{}.{field}", kind.id), &format!("is not a setting of {}", kind.id));
            }
        }
        for (name, price) in &self.prices {
            if name.is_empty() || name.chars().any(char::is_control) {
                return invalid("prices", "names must be a provider id or provider/model");
            }
            if !(price.is_finite() && (0.0..=MAX_PRICE_PER_MILLION).contains(price)) {
                return invalid(&format!("prices.{name}"), "must be 0 to 1000000 USD per million characters");
            }
        }
        if let Err(message) = self.trusted_proxies() {
            return invalid("server.trusted_proxies", &message);
        }
        if let Some(url) = &self.server.public_url {
            if !is_http_url(url) {
                return invalid("server.public_url", "must be an http:// or https:// URL");
            }
            // PlayHT's SDK derives a URL by deleting every `stream` from the ones it is handed.
            if url.to_ascii_lowercase().contains("stream") {
                return invalid("server.public_url", "must not contain the word `stream` (PlayHT's SDK deletes it)");
            }
        }
        if store::backend_of(&self.database.url).is_none() {
            return invalid("database.url", "must start with sqlite: or postgres:");
        }
        if let Some(token) = &self.auth.admin_token {
            if token.expose_secret().len() < 16 {
                return invalid("auth.admin_token", "must be at least 16 characters");
            }
        }
        if let Some(Err(message)) = self.auth.master_key.as_ref().map(crate::auth::vault::MasterKey::parse) {
            return invalid("auth.master_key", &format!("(SPEECHGATE_MASTER_KEY) {message}"));
        }
        if let Some(secret) = &self.auth.url_signing_secret {
            if secret.expose_secret().len() < 32 {
                return invalid("auth.url_signing_secret", "must be at least 32 characters");
            }
        }
        for kind in KINDS {
            let Some(vendor) = kind.vendor() else { continue };
            if (vendor.section)(&self.providers).base_url.as_deref().is_some_and(|url| !is_http_url(url)) {
                return invalid(&format!("providers.{}.base_url", kind.id), "must be an http:// or https:// URL");
            }
        }
        for (name, instance) in &self.providers.compatible {
            let field = format!("providers.compatible.{name}");
            if registry::is_builtin(name) {
                return invalid(&field, "names a built-in provider; give the instance a name of its own");
            }
            if !text::is_provider_id(name) {
                return invalid(
                    &field,
                    "the name must be a lowercase letter or digit, then up to 63 lowercase letters, digits, `-` or `_` (no `/`)",
                );
            }
            if !is_http_url(&instance.base_url) {
                return invalid(
                    "providers.compatible.<name>.base_url",
                    &format!("{name}: must be an http:// or https:// URL"),
                );
            }
            if instance.models.is_empty() {
                return invalid("providers.compatible.<name>.models", &format!("{name}: must list at least one model"));
            }
        }
        let facades = [
            ("openai", &self.facades.openai),
            ("elevenlabs", &self.facades.elevenlabs),
            ("playht", &self.facades.playht),
        ];
        for (vendor, facade) in facades {
            if let Some((voice, message)) = facade.problems().into_iter().next() {
                return invalid(&format!("facades.{vendor}.voices.{voice}"), &message);
            }
        }
        for (name, route) in &self.routes {
            let field = format!("routes.{name}");
            if !text::is_provider_id(name) || registry::is_builtin(name) || self.providers.compatible.contains_key(name)
            {
                return invalid(
                    &field,
                    "the name must be a lowercase letter or digit, then up to 63 lowercase letters, digits, `-` or `_`, \
                     and not a provider's",
                );
            }
            if self.providers.aliases.contains_key(name) {
                return invalid(&field, "is also a model alias in [providers.aliases]; keep one of them");
            }
            if route.targets.is_empty() {
                return invalid(&format!("{field}.targets"), "must list at least one target");
            }
            for (i, target) in route.targets.iter().enumerate() {
                let voices = target.voice.iter().chain(target.voices.keys()).chain(target.voices.values());
                let problem = std::iter::once(&target.model).chain(voices).find_map(|v| text::identifier_problem(v));
                if let Some(problem) = problem {
                    return invalid(&format!("{field}.targets[{i}]"), &problem);
                }
            }
        }
        if let Some(moderation) = &self.moderation {
            if let Err((field, message)) = moderation.check(&self.providers) {
                return invalid(&format!("moderation.{field}"), &message);
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.filter).is_err() {
            return invalid("log.filter", "is not a valid tracing filter directive");
        }
        Ok(())
    }

    /// `server.trusted_proxies`, parsed.
    pub fn trusted_proxies(&self) -> Result<Vec<AddrBlock>, String> {
        self.server.trusted_proxies.iter().map(|block| block.parse()).collect()
    }

    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.server.listen.parse().ok()
    }
}

#[cfg(test)]
#[expect(clippy::result_large_err, reason = "figment::Jail closures return figment::Error")]
mod tests {
    use figment::Jail;

    use super::*;

    #[test]
    fn first_class_variables_override_file_and_nested_variables() {
        Jail::expect_with(|jail| {
            jail.create_file("speechgate.toml", "[server]\nlisten = \"0.0.0.0:1\"\n[usage]\nbatch_size = 7\n")?;
            jail.set_env("SPEECHGATE__SERVER__LISTEN", "0.0.0.0:2");
            jail.set_env("SPEECHGATE_LISTEN", "127.0.0.1:9999");
            jail.set_env("SPEECHGATE_DATABASE_URL", "postgres://u:p@127.0.0.1/db");
            jail.set_env("SPEECHGATE_ADMIN_TOKEN", "a-long-enough-admin-token");
            let config = Config::load(Path::new("speechgate.toml")).map_err(|e| e.to_string())?;
            assert_eq!(config.server.listen, "127.0.0.1:9999");
            assert_eq!(config.database.url, "postgres://u:p@127.0.0.1/db");
            assert_eq!(config.usage.batch_size, 7);
            assert_eq!(
                config.auth.admin_token.as_ref().map(|t| t.expose_secret().to_owned()),
                Some("a-long-enough-admin-token".to_owned())
            );
            Ok(())
        });
    }

    #[test]
    fn vendor_variables_configure_providers() {
        Jail::expect_with(|jail| {
            jail.set_env("OPENAI_API_KEY", "sk-test");
            jail.set_env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1");
            jail.set_env("DEEPGRAM_API_KEY", "dg");
            let config = Config::load(Path::new("none.toml")).map_err(|e| e.to_string())?;
            let openai = &config.providers.openai;
            assert_eq!(openai.api_key.as_ref().map(|k| k.expose_secret().to_owned()), Some("sk-test".to_owned()));
            assert_eq!(openai.base_url.as_deref(), Some("http://127.0.0.1:9/v1"));
            assert!(config.providers.deepgram.api_key.is_some());
            assert!(config.providers.elevenlabs.api_key.is_none());
            jail.set_env("ELEVENLABS_BASE_URL", "ftp://nope");
            let err = Config::load(Path::new("none.toml")).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("providers.elevenlabs.base_url"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn compatible_instances_cannot_take_a_builtin_name_or_a_slash() {
        for (name, expected) in
            [("openai", "built-in"), ("local", "built-in"), ("a/b", "no `/`"), ("Kokoro", "lowercase")]
        {
            let mut config = Config::default();
            config.providers.compatible.insert(
                name.to_owned(),
                CompatibleConfig {
                    base_url: "http://127.0.0.1:1/v1".into(),
                    models: vec!["m".into()],
                    ..Default::default()
                },
            );
            let err = config.validate().err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(&format!("providers.compatible.{name}")) && err.contains(expected), "{name}: {err}");
        }
    }

    #[test]
    fn moderation_needs_one_usable_endpoint() {
        let check = |moderation: ModerationConfig, providers: &ProvidersConfig| {
            let config = Config { moderation: Some(moderation), providers: providers.clone(), ..Config::default() };
            config.validate().err().map(|e| e.to_string()).unwrap_or_default()
        };
        let mut providers = ProvidersConfig::default();
        let openai = || ModerationConfig { provider: Some("openai".into()), ..ModerationConfig::default() };
        assert!(check(openai(), &providers).contains("moderation.provider"), "no OpenAI key to use");
        providers.openai.api_key = Some("sk-x".to_owned().into());
        providers.openai.base_url = Some("http://127.0.0.1:9/v1/".into());
        assert_eq!(check(openai(), &providers), "");
        let endpoint = openai().endpoint(&providers).map(|(url, _)| url);
        assert_eq!(endpoint, Ok("http://127.0.0.1:9/v1/moderations".to_owned()));
        let elsewhere = |url: &str| ModerationConfig { url: Some(url.into()), ..ModerationConfig::default() };
        assert!(check(elsewhere("ftp://x/m"), &providers).contains("moderation.url"));
        assert!(check(ModerationConfig { provider: Some("acme".into()), ..elsewhere("http://x/m") }, &providers)
            .contains("not both"));
        assert!(check(ModerationConfig { provider: Some("acme".into()), ..ModerationConfig::default() }, &providers)
            .contains("not a moderation provider"));
        assert!(check(ModerationConfig::default(), &providers).contains("moderation.provider"));
        assert!(check(ModerationConfig { timeout_ms: 0, ..elsewhere("http://x/m") }, &providers)
            .contains("moderation.timeout_ms"));
        assert!(check(ModerationConfig { model: String::new(), ..elsewhere("http://x/m") }, &providers)
            .contains("moderation.model"));
    }

    #[test]
    fn defaults_are_valid_and_embedded() {
        Jail::expect_with(|_| {
            let config = Config::load(Path::new("missing.toml")).map_err(|e| e.to_string())?;
            assert_eq!(config.server.listen, "127.0.0.1:8080");
            assert_eq!(config.database.url, "sqlite://speechgate.db");
            assert!(config.auth.admin_token.is_none());
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_field() {
        Jail::expect_with(|jail| {
            jail.set_env("SPEECHGATE__USAGE__BATCH_SIZE", "many");
            let err =
                Config::load(Path::new("none.toml")).err().map(|e| e.to_string().to_lowercase()).unwrap_or_default();
            assert!(err.contains("batch_size"), "{err}");
            jail.set_env("SPEECHGATE__USAGE__BATCH_SIZE", "3");
            jail.set_env("SPEECHGATE_LISTEN", "not an address");
            let err =
                Config::load(Path::new("none.toml")).err().map(|e| e.to_string().to_lowercase()).unwrap_or_default();
            assert!(err.contains("server.listen"), "{err}");
            jail.set_env("SPEECHGATE_LISTEN", "127.0.0.1:1");
            jail.set_env("SPEECHGATE__SERVER__LISTN", "typo");
            let err =
                Config::load(Path::new("none.toml")).err().map(|e| e.to_string().to_lowercase()).unwrap_or_default();
            assert!(err.contains("listn"), "{err}");
            jail.clear_env();
            jail.set_env("SPEECHGATE_LISTEN", "127.0.0.1:1");
            jail.create_file("region.toml", "[providers.openai]\nregion = \"eu-west-1\"\n")?;
            let err = Config::load(Path::new("region.toml")).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("providers.openai.region: is not a setting of openai"), "{err}");
            Ok(())
        });
    }

    /// A master key that is ill-formed or visibly not random stops the start with a message
    /// naming the variable; a good one is read from `SPEECHGATE_MASTER_KEY` and never printed.
    #[test]
    fn weak_master_keys_are_refused() {
        Jail::expect_with(|jail| {
            let load = || Config::load(Path::new("none.toml")).err().map(|e| e.to_string()).unwrap_or_default();
            let weak = ["secret", &"a".repeat(64), &"ab".repeat(32), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="];
            for key in weak {
                jail.set_env("SPEECHGATE_MASTER_KEY", key);
                let err = load();
                assert!(err.contains("auth.master_key") && err.contains("SPEECHGATE_MASTER_KEY"), "{err}");
                assert!(!err.contains(key), "the key is not echoed: {err}");
            }
            let good = "5e0c8d1f7a2b94e6c3d05f18a7b2e94c61d03f8a5b7c2e9d40f16a8b3c5d7e92";
            jail.set_env("SPEECHGATE_MASTER_KEY", good);
            let config = Config::load(Path::new("none.toml")).map_err(|e| e.to_string())?;
            assert_eq!(config.auth.master_key.as_ref().map(|k| k.expose_secret().to_owned()).as_deref(), Some(good));
            assert!(!format!("{config:?}").contains(good));
            assert!(!serde_json::to_string(&config).unwrap_or_default().contains(good));
            Ok(())
        });
    }
}
