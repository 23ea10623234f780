//! Plain domain types shared by every layer. Nothing here knows about HTTP, SQL or vendors.

pub mod audio;
pub mod limits;
pub mod pronounce;
pub mod text;
pub mod voice;
pub mod words;

/// A finished job of PlayHT's v2 job API: its request and its audio, kept for a day.
#[derive(Debug, Clone)]
pub struct TtsJob {
    pub id: String,
    /// The request as the client sent it (JSON text), echoed in the job's `input`.
    pub request: String,
    pub media_type: String,
    pub duration_ms: i64,
    /// The audio's size in bytes.
    pub size: i64,
    /// The audio, when it was asked for.
    pub audio: Option<Vec<u8>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use limits::{KeyLimits, KeyPatch, MonthToDate, PriceTable};
pub use voice::{Gender, Voice, VoiceCursor, VoicePage, VoicePatch};

/// What an API key may do. Routes declare the scope they need in the router table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Synthesis endpoints (`/v1/audio/...`).
    Speech,
    /// Saved voices (`/v1/voices`).
    Voices,
    /// The admin API (`/admin/v1`).
    Admin,
    /// The project's own vendor keys (`/v1/api-keys`): whoever holds it can change which
    /// vendor account the project's requests are billed to, so it is not a default scope.
    Credentials,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Speech, Scope::Voices, Scope::Admin, Scope::Credentials];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Speech => "speech",
            Scope::Voices => "voices",
            Scope::Admin => "admin",
            Scope::Credentials => "credentials",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }
}

/// An API key as the admin API shows it. The secret is never part of it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// Public id; also the middle part of the key string `sg_<id>_<secret>`.
    pub id: String,
    pub name: String,
    /// The project the key acts for: its saved voices, jobs and provider keys are the
    /// project's, and outlive the key.
    pub project_id: String,
    pub scopes: Vec<Scope>,
    #[serde(flatten)]
    pub limits: KeyLimits,
    /// Requests with this key skip content moderation (`[moderation]`).
    pub moderation_exempt: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A key about to be stored: everything but the secret, which only exists as its hash.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub scopes: Vec<Scope>,
    pub limits: KeyLimits,
    pub moderation_exempt: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub secret_sha256: [u8; 32],
    pub created_at: DateTime<Utc>,
}

/// A project: what owns keys, saved voices, PlayHT jobs and provider keys, so that they
/// outlive any one key.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    /// Public id, `prj_...`.
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A project's own key for one vendor, as stored: sealed under the operator's master key.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedCredential {
    pub provider: String,
    /// The 96-bit AES-GCM nonce.
    pub nonce: Vec<u8>,
    /// The encrypted key followed by its 128-bit tag.
    pub ciphertext: Vec<u8>,
    /// Fingerprint of the master key that sealed it.
    pub master_key: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A key together with the hash of its secret, for authentication only. The key is shared so
/// that a cached credential hands every request the same key without copying it.
#[derive(Debug, Clone)]
pub struct KeyCredential {
    pub key: std::sync::Arc<ApiKey>,
    pub secret_sha256: Vec<u8>,
}

/// One request as metered: written for every authenticated request, whatever its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageEvent {
    pub request_id: String,
    pub key_id: Option<String>,
    /// The key's project.
    pub project_id: Option<String>,
    /// Route template, e.g. `/v1/audio/speech`.
    pub route: String,
    pub method: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub voice: Option<String>,
    pub characters: i64,
    pub audio_ms: i64,
    /// What the provider calls cost, priced by `[prices]` (the sum of the segments' when there
    /// are segments).
    #[serde(rename = "spendUsd", serialize_with = "limits::serialize_usd")]
    #[schema(value_type = f64)]
    pub spend_nanos: i64,
    /// Tokens the vendor billed, for vendors that bill tokens (the segments' sum when there
    /// are segments).
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub bytes_out: i64,
    /// HTTP status sent, or 499 when the client went away before a response was sent.
    pub status: u16,
    /// Stable error slug (`validation_failed`, `client_disconnected`, ...) when the request failed.
    pub error_code: Option<String>,
    pub latency_ms: i64,
    /// Milliseconds until the first body byte was handed to the client.
    pub ttfb_ms: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// One line per provider call when a request made several (a conversation's turns), so
    /// characters and audio are attributed to each provider and model exactly. Empty when the
    /// request made at most one call: then `provider`, `model`, `voice`, `characters` and
    /// `audio_ms` above describe it. With segments, those fields hold the totals, and
    /// `provider`/`model`/`voice` are set only when every segment shares them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<UsageSegment>,
}

impl UsageEvent {
    /// The characters of the provider calls that produced audio — what vendors bill and what
    /// budgets count: each segment that did not fail, or, without segments, the request's own
    /// characters unless it failed before its response began.
    pub fn billed_characters(&self) -> i64 {
        if self.segments.is_empty() {
            return if self.status < 400 { self.characters } else { 0 };
        }
        self.segments.iter().filter(|s| s.error_code.is_none()).fold(0i64, |n, s| n.saturating_add(s.characters))
    }
}

/// One provider call within a request: a conversation turn, or one native dialogue request.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageSegment {
    /// Position in the request (a conversation's turn index; the first turn for a native
    /// dialogue that voiced all of them).
    pub index: u32,
    pub provider: String,
    pub model: String,
    pub voice: String,
    pub characters: i64,
    pub audio_ms: i64,
    /// What this call cost, priced by `[prices]`; nothing when it failed before its audio.
    #[serde(rename = "spendUsd", serialize_with = "limits::serialize_usd")]
    #[schema(value_type = f64)]
    pub spend_nanos: i64,
    /// Tokens the vendor billed, for vendors that bill tokens (Gemini, OpenAI's realtime models).
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Why this call failed, when it did.
    pub error_code: Option<String>,
}

/// A stored usage event with its position in the log (used as the pagination cursor).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageRecord {
    #[serde(skip)]
    pub seq: i64,
    #[serde(flatten)]
    pub event: UsageEvent,
}

/// Which events an aggregate covers: `[from, to)`, optionally one key.
#[derive(Debug, Clone)]
pub struct UsageFilter {
    pub key_id: Option<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Usage summed per UTC day, key, provider and model.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageBucket {
    pub day: NaiveDate,
    pub key_id: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub requests: i64,
    pub errors: i64,
    pub characters: i64,
    pub audio_ms: i64,
    #[serde(rename = "spendUsd", serialize_with = "limits::serialize_usd")]
    #[schema(value_type = f64)]
    pub spend_nanos: i64,
    /// Tokens billed by the vendors that bill tokens (Gemini, OpenAI's realtime models).
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub bytes_out: i64,
}

/// A page request over the usage log, newest first.
#[derive(Debug, Clone, Copy)]
pub struct LogPage {
    /// Only events older than this sequence number.
    pub before: Option<i64>,
    pub limit: u32,
}

/// One step of a path into a request document: an object member or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum PathSegment {
    Field(String),
    Index(usize),
}

/// A problem with one field of a request, located by its path (`["turns", 2, "text"]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub path: Vec<PathSegment>,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self { path: vec![PathSegment::Field(field.to_owned())], message: message.into() }
    }

    /// The same problem inside an item of a list: `voice` becomes `turns[2].voice`.
    pub fn within(mut self, list: &str, index: usize) -> Self {
        self.path.splice(0..0, [PathSegment::Field(list.to_owned()), PathSegment::Index(index)]);
        self
    }

    /// The same problem inside an object field: `rules[0].word` becomes `pronunciations.rules[0].word`.
    pub fn within_field(mut self, field: &str) -> Self {
        self.path.insert(0, PathSegment::Field(field.to_owned()));
        self
    }

    /// A problem with one member of an object field, e.g. `providerOptions.model`.
    pub fn member(field: &str, member: &str, message: impl Into<String>) -> Self {
        let path = vec![PathSegment::Field(field.to_owned()), PathSegment::Field(member.to_owned())];
        Self { path, message: message.into() }
    }
}

/// Sums over a whole usage report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageTotals {
    pub requests: i64,
    pub errors: i64,
    pub characters: i64,
    pub audio_ms: i64,
    #[serde(rename = "spendUsd", serialize_with = "limits::serialize_usd")]
    #[schema(value_type = f64)]
    pub spend_nanos: i64,
    /// Tokens billed by the vendors that bill tokens (Gemini, OpenAI's realtime models).
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub bytes_out: i64,
}

/// Usage over `[from, to)`: totals, and buckets per UTC day, key, provider and model.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub totals: UsageTotals,
    pub buckets: Vec<UsageBucket>,
    /// For one key: its use of the current UTC month against its budgets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub month: Option<MonthToDate>,
}
