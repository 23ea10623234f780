//! Saved voices: a named, reusable choice of provider, model, provider voice and options, owned
//! by the API key that saved it. A speech request may name one by `id` instead of spelling the
//! choice out.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// How a voice sounds, for filtering and display; not sent to providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Male,
    Female,
    Neutral,
}

impl Gender {
    pub const ALL: [Gender; 3] = [Gender::Male, Gender::Female, Gender::Neutral];

    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
            Gender::Neutral => "neutral",
        }
    }

    pub fn parse(s: &str) -> Option<Gender> {
        Gender::ALL.into_iter().find(|gender| gender.as_str() == s)
    }
}

/// A saved voice. Only the API key that saved it can see, use or change it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Voice {
    /// UUID v7, assigned by the gateway.
    pub id: String,
    /// A name for people, unique among the owner's voices.
    pub title: String,
    /// The provider id, e.g. `openai`.
    pub provider: String,
    /// The provider's model; the provider's default model when `null`.
    pub model: Option<String>,
    /// The provider's own voice id or name, e.g. `alloy`.
    pub voice_id: String,
    pub tags: Vec<String>,
    pub gender: Option<Gender>,
    pub description: Option<String>,
    /// Passed to the provider adapter verbatim with every request that uses this voice.
    #[schema(value_type = Object)]
    pub provider_options: Map<String, Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A validated partial update. `None` leaves a field unchanged; for the nullable fields,
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VoicePatch {
    pub title: Option<String>,
    pub provider: Option<String>,
    pub model: Option<Option<String>>,
    pub voice_id: Option<String>,
    pub tags: Option<Vec<String>>,
    pub gender: Option<Option<Gender>>,
    pub description: Option<Option<String>>,
    pub provider_options: Option<Map<String, Value>>,
}

/// A position in an owner's voice list: the ordering key of the last voice a page showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceCursor {
    pub created_at: DateTime<Utc>,
    pub id: String,
}

/// A page request over an owner's voices, newest first (by creation time, then id).
#[derive(Debug, Clone)]
pub struct VoicePage {
    /// Only voices after this position.
    pub after: Option<VoiceCursor>,
    pub limit: u32,
}
