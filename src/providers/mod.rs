//! Speech providers. Each vendor is one adapter behind [`SpeechProvider`]; what an adapter can do
//! is data ([`Capabilities`]), so the service plans a request without knowing which vendor it is.
//! The registry (`registry.rs`) is the only place that knows the kinds of provider.

pub mod azure;
pub mod cartesia;
mod circuit;
pub mod deepgram;
pub mod elevenlabs;
pub mod gemini;
pub mod google;
mod http;
#[cfg(feature = "local")]
pub mod local;
pub mod openai;
pub mod polly;
pub mod registry;
mod retry;
mod ssml;

use std::{pin::Pin, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{
    audio::{AudioFormat, AudioSpec},
    text, FieldError, PathSegment,
};

pub use circuit::{Circuit, CircuitState};
pub use http::read_bounded;
pub use registry::Registry;
pub use retry::RetryPolicy;

/// One model a provider serves.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    /// The provider's own model id, e.g. `tts-1` or `eleven_multilingual_v2`.
    pub id: String,
    /// Longest input the model accepts, in characters.
    pub max_characters: usize,
    /// Whether free-form style `instructions` are honoured.
    pub supports_instructions: bool,
}

/// Formats a provider produces itself, each at a set of sample rates.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NativeFormat {
    pub format: AudioFormat,
    pub sample_rates: Vec<u32>,
    /// Bitrates (kbit/s) the provider lets a caller choose; empty when it picks itself.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bitrates_kbps: Vec<u32>,
}

impl NativeFormat {
    pub fn new(format: AudioFormat, sample_rates: &[u32], bitrates_kbps: &[u32]) -> Self {
        Self { format, sample_rates: sample_rates.to_vec(), bitrates_kbps: bitrates_kbps.to_vec() }
    }
}

/// The JSON type a passable option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OptionKind {
    String,
    Number,
    Boolean,
    Object,
    Array,
}

impl OptionKind {
    fn admits(self, value: &serde_json::Value) -> bool {
        use serde_json::Value;
        matches!(
            (self, value),
            (OptionKind::String, Value::String(_))
                | (OptionKind::Number, Value::Number(_))
                | (OptionKind::Boolean, Value::Bool(_))
                | (OptionKind::Object, Value::Object(_))
                | (OptionKind::Array, Value::Array(_))
        )
    }

    fn as_str(self) -> &'static str {
        match self {
            OptionKind::String => "a string",
            OptionKind::Number => "a number",
            OptionKind::Boolean => "a boolean",
            OptionKind::Object => "an object",
            OptionKind::Array => "an array",
        }
    }
}

/// A `providerOptions` member the adapter passes on to its vendor. Anything not declared is
/// refused: the adapter owns its core fields (text, model, voice, format, endpoints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PassableOption {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: OptionKind,
    /// Members of an object option that the gateway sets from the request's own fields (and
    /// checks there, such as `speed` against the provider's range); refused inside the option.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reserved: Vec<String>,
}

impl PassableOption {
    pub fn new(name: &str, kind: OptionKind) -> Self {
        Self { name: name.to_owned(), kind, reserved: Vec::new() }
    }

    /// An object option whose `reserved` members are the gateway's.
    pub fn object_without(name: &str, reserved: &[&str]) -> Self {
        let reserved = reserved.iter().map(|m| (*m).to_owned()).collect();
        Self { name: name.to_owned(), kind: OptionKind::Object, reserved }
    }
}

/// What a provider can do, as data.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub models: Vec<ModelInfo>,
    pub default_model: String,
    /// Formats and rates the provider can return; `pcm` must be among them, so that the gateway
    /// can transcode to anything else.
    pub formats: Vec<NativeFormat>,
    /// Audio arrives incrementally (the first bytes long before the last).
    pub streaming: bool,
    /// The provider reports word or character timings itself...
    pub native_timestamps: bool,
    /// ...with audio in these formats only (the gateway asks for PCM when it needs timing, and
    /// converts it to what was requested).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timestamp_formats: Vec<AudioFormat>,
    /// The provider can voice a multi-speaker dialogue in one request (`SpeechProvider::dialogue`).
    pub native_dialogue: Option<DialogueSupport>,
    /// `GET /v1/audio/providers/{id}/voices` can list the provider's catalogue.
    pub voices_listable: bool,
    /// Accepted `speed` range, when the provider supports speed at all.
    pub speed_range: Option<(f32, f32)>,
    /// The `providerOptions` members passed on to the vendor; every other member is refused.
    pub provider_options: Vec<PassableOption>,
    /// The provider is a vendor called with an API key, so a project may bring its own
    /// (`PUT /v1/api-keys/{providerId}`).
    pub takes_api_key: bool,
}

/// What a provider's native dialogue can take.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DialogueSupport {
    /// The models that voice dialogues.
    pub models: Vec<String>,
    /// Most distinct voices in one dialogue.
    pub max_voices: usize,
    /// Most characters over all lines.
    pub max_characters: usize,
}

impl Capabilities {
    /// Whether the provider times its words when asked for PCM (what the gateway asks for when
    /// it needs timing).
    pub fn times_pcm(&self) -> bool {
        self.native_timestamps && self.timestamp_formats.contains(&AudioFormat::Pcm)
    }

    pub fn model(&self, id: &str) -> Option<&ModelInfo> {
        self.models.iter().find(|m| m.id == id)
    }

    /// Whether the provider returns `spec` itself; a requested bitrate must be one it offers.
    pub fn produces(&self, spec: AudioSpec) -> bool {
        self.formats.iter().any(|f| {
            f.format == spec.format
                && f.sample_rates.contains(&spec.sample_rate)
                && spec.bitrate_kbps.is_none_or(|b| f.bitrates_kbps.contains(&b))
        })
    }

    /// A problem, at `providerOptions.<name>`, for each option the adapter does not pass on or
    /// whose value has the wrong JSON type.
    pub fn check_options(&self, options: &serde_json::Map<String, serde_json::Value>) -> Vec<FieldError> {
        options
            .iter()
            .filter_map(|(name, value)| {
                let message = match self.provider_options.iter().find(|o| &o.name == name) {
                    None if self.provider_options.is_empty() => "this provider takes no providerOptions".to_owned(),
                    None => {
                        let names: Vec<&str> = self.provider_options.iter().map(|o| o.name.as_str()).collect();
                        format!("is not an option this provider passes on; it takes: {}", names.join(", "))
                    }
                    Some(option) if !option.kind.admits(value) => format!("must be {}", option.kind.as_str()),
                    Some(option) => {
                        let member = option.reserved.iter().find(|m| value.get(m.as_str()).is_some())?;
                        let path = ["providerOptions", name.as_str(), member.as_str()];
                        return Some(FieldError {
                            path: path.iter().map(|p| PathSegment::Field(text::for_record((*p).to_owned()))).collect(),
                            message: format!("is set from the request's own `{member}` field"),
                        });
                    }
                };
                Some(FieldError::member("providerOptions", &text::for_record(name.clone()), message))
            })
            .collect()
    }

    /// The rates at which the provider produces `format`, ascending.
    pub fn rates(&self, format: AudioFormat) -> Vec<u32> {
        let mut rates: Vec<u32> =
            self.formats.iter().filter(|f| f.format == format).flat_map(|f| f.sample_rates.iter().copied()).collect();
        rates.sort_unstable();
        rates.dedup();
        rates
    }
}

/// A request as an adapter receives it: everything resolved and validated.
#[derive(Debug, Clone)]
pub struct SynthesisRequest {
    pub model: String,
    pub voice: String,
    pub text: String,
    /// What the adapter must return (one of its native formats).
    pub output: AudioSpec,
    pub speed: Option<f32>,
    pub instructions: Option<String>,
    pub language: Option<String>,
    pub seed: Option<u64>,
    /// Vendor options, already checked against `Capabilities::provider_options`. Adapters add
    /// them to the vendor request without letting them replace a core field.
    pub provider_options: serde_json::Map<String, serde_json::Value>,
    /// Ask for word timings too, when the provider has them.
    pub timestamps: bool,
    /// The caller's project's own key for this vendor, used instead of the operator's.
    pub credential: Option<ProviderKey>,
}

/// A vendor API key a project brought (`PUT /v1/api-keys/{providerId}`), decrypted for one
/// request. Cheap to clone; `Debug` never shows it.
#[derive(Clone)]
pub struct ProviderKey(std::sync::Arc<secrecy::SecretString>);

impl ProviderKey {
    pub fn new(key: secrecy::SecretString) -> Self {
        Self(std::sync::Arc::new(key))
    }

    pub fn expose(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(self.0.as_ref())
    }
}

impl std::fmt::Debug for ProviderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderKey([redacted])")
    }
}

/// A dialogue as an adapter receives it: lines in order, each with its voice, voiced in one
/// request by a model of [`DialogueSupport::models`].
#[derive(Debug, Clone)]
pub struct DialogueRequest {
    pub model: String,
    /// `(voice, text)` per line.
    pub lines: Vec<(String, String)>,
    /// One of the provider's native formats.
    pub output: AudioSpec,
    pub language: Option<String>,
    pub seed: Option<u64>,
    /// The caller's project's own key for this vendor, used instead of the operator's.
    pub credential: Option<ProviderKey>,
}

/// A word and when it is spoken, in seconds from the start of the clip.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WordTiming {
    pub text: String,
    pub start: f64,
    pub end: f64,
}

/// What a call used in a vendor's token billing (Gemini, OpenAI's realtime models), as the
/// vendor reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenUsage {
    pub input: u64,
    pub output: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SynthesisEvent {
    /// Encoded audio in the requested output format.
    Audio(Bytes),
    /// Timings for words spoken so far.
    Words(Vec<WordTiming>),
    /// Tokens the vendor billed for the call (several reports add up).
    Tokens(TokenUsage),
    /// Something the caller should know about the audio (a model that did not read the text
    /// as written): it goes to the response's `warnings` where the response has them, and to
    /// the log.
    Warning(String),
}

pub type EventStream = Pin<Box<dyn Stream<Item = Result<SynthesisEvent, ProviderError>> + Send>>;

/// A voice from a provider's own catalogue.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderVoice {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[async_trait]
pub trait SpeechProvider: Send + Sync + 'static {
    /// The id users write in `model` strings (`openai`, or a configured instance name).
    fn id(&self) -> &str;
    fn capabilities(&self) -> &Capabilities;
    /// What one of its models can do, where that differs from the provider's (a model that
    /// speaks another protocol with other formats): what requests for that model are planned by.
    fn model_capabilities(&self, _model: &str) -> &Capabilities {
        self.capabilities()
    }
    /// Starts synthesis. Errors the vendor reports before any audio come back here (or as the
    /// stream's first item); errors after audio has started come as a later stream item.
    async fn synthesize(&self, request: SynthesisRequest) -> Result<EventStream, ProviderError>;
    /// The provider's voice catalogue (only called when `voices_listable`).
    async fn voices(&self) -> Result<Vec<ProviderVoice>, ProviderError>;
    /// Voices a whole dialogue in one request (only called when `native_dialogue` is set).
    async fn dialogue(&self, request: DialogueRequest) -> Result<EventStream, ProviderError> {
        Err(ProviderError::Invalid {
            provider: self.id().to_owned(),
            detail: format!("{} voices no native dialogue (asked for {} lines)", self.id(), request.lines.len()),
        })
    }
}

/// Which of a provider call's deadlines passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// No connection within `connect_timeout_secs`.
    Connect,
    /// Connected (or still connecting), but no first byte within `timeout_secs`.
    FirstByte,
    /// The stream had started, then went silent for `idle_timeout_secs`.
    Idle,
    /// The call lasted `max_stream_secs` in all.
    Total,
}

impl TimeoutPhase {
    /// The failure's code: `provider_timeout` for a provider that sent nothing in time (as
    /// before there were several deadlines), one of its own for each other deadline.
    pub fn code(self) -> &'static str {
        match self {
            TimeoutPhase::Connect => "provider_connect_timeout",
            TimeoutPhase::FirstByte => "provider_timeout",
            TimeoutPhase::Idle => "provider_idle_timeout",
            TimeoutPhase::Total => "provider_total_timeout",
        }
    }

    fn describe(self, timeout: Duration) -> String {
        let secs = timeout.as_secs();
        match self {
            TimeoutPhase::Connect => format!("could not be connected to within {secs} s"),
            TimeoutPhase::FirstByte => format!("did not answer within {secs} s"),
            TimeoutPhase::Idle => format!("sent nothing more for {secs} s"),
            TimeoutPhase::Total => format!("was still sending after {secs} s"),
        }
    }
}

/// Why a provider call failed. `detail` is already sanitised: it never carries credentials.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The vendor refused the request as invalid (bad voice, text, option): the client's doing.
    #[error("{provider} rejected the request: {detail}")]
    Rejected { provider: String, status: u16, code: Option<String>, detail: String },
    /// The vendor refused our credential: the operator's misconfiguration.
    #[error("{provider} refused the gateway's credential: {detail}")]
    Unauthorized { provider: String, status: u16, code: Option<String>, detail: String },
    #[error("{provider} is rate limiting: {detail}")]
    RateLimited { provider: String, code: Option<String>, retry_after: Option<Duration>, detail: String },
    /// The vendor failed (5xx), or answered something that is not its protocol.
    #[error("{provider} is unavailable: {detail}")]
    Unavailable { provider: String, status: Option<u16>, code: Option<String>, detail: String },
    /// A deadline of `[providers]` (or the provider's own `timeouts`) passed.
    #[error("{provider} {}", .phase.describe(*.timeout))]
    Timeout { provider: String, phase: TimeoutPhase, timeout: Duration },
    /// The audio stream broke off after it had started.
    #[error("{provider}'s audio stream broke off: {detail}")]
    Interrupted { provider: String, detail: String },
    /// The vendor answered something that is not its protocol: a redirect, an HTML page where
    /// audio belongs, JSON that does not parse.
    #[error("{provider} answered something that is not its API's: {detail}")]
    Invalid { provider: String, detail: String },
}

impl ProviderError {
    pub fn provider(&self) -> &str {
        match self {
            ProviderError::Rejected { provider, .. }
            | ProviderError::Unauthorized { provider, .. }
            | ProviderError::RateLimited { provider, .. }
            | ProviderError::Unavailable { provider, .. }
            | ProviderError::Timeout { provider, .. }
            | ProviderError::Interrupted { provider, .. }
            | ProviderError::Invalid { provider, .. } => provider,
        }
    }

    /// The stable slug of this failure: the problem's `code` and the label on provider metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ProviderError::Rejected { status: 404, .. } => "upstream_not_found",
            ProviderError::Rejected { .. } => "upstream_rejected",
            ProviderError::Unauthorized { .. } => "provider_auth_failed",
            ProviderError::RateLimited { .. } => "upstream_rate_limited",
            ProviderError::Unavailable { .. } => "provider_unavailable",
            ProviderError::Timeout { phase, .. } => phase.code(),
            ProviderError::Interrupted { .. } => "upstream_stream_failed",
            ProviderError::Invalid { .. } => "upstream_invalid_response",
        }
    }

    /// Sorts a vendor's HTTP error into the right kind.
    pub fn from_status(
        provider: &str,
        status: u16,
        code: Option<String>,
        detail: String,
        retry_after: Option<Duration>,
    ) -> Self {
        let provider = provider.to_owned();
        match status {
            401 | 403 => ProviderError::Unauthorized { provider, status, code, detail },
            429 => ProviderError::RateLimited { provider, code, retry_after, detail },
            400..=499 => ProviderError::Rejected { provider, status, code, detail },
            _ => ProviderError::Unavailable { provider, status: Some(status), code, detail },
        }
    }
}
