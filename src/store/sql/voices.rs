//! The `voices` table: statements and row type, shared by both backends. Tags and provider
//! options are stored as JSON text, so neither backend needs a JSON column type.

use serde_json::{Map, Value};

use super::{from_ms, StoreError};
use crate::domain::{Gender, Voice};

/// The columns every voice statement returns, in [`VoiceRow`] order.
macro_rules! voice_columns {
    () => {
        "id, title, provider, model, voice_id, tags, gender, description, provider_options, created_at, updated_at"
    };
}

pub(in crate::store) const INSERT_VOICE: &str = concat!(
    "INSERT INTO voices (id, project_id, title, provider, model, voice_id, tags, gender, description, ",
    "provider_options, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING ",
    voice_columns!()
);

pub(in crate::store) const GET_VOICE: &str =
    concat!("SELECT ", voice_columns!(), " FROM voices WHERE project_id = $1 AND id = $2");

/// Newest first; `($2, $3)` is the `(created_at, id)` of the last voice of the previous page.
pub(in crate::store) const LIST_VOICES: &str = concat!(
    "SELECT ",
    voice_columns!(),
    " FROM voices WHERE project_id = $1 AND ($2 IS NULL OR (created_at, id) < ($2, $3)) ",
    "ORDER BY created_at DESC, id DESC LIMIT $4"
);

/// A partial update in one statement, so concurrent patches of different fields both land.
/// A NULL leaves a non-nullable column unchanged; each nullable column has a flag saying
/// whether to set it (possibly to NULL).
pub(in crate::store) const UPDATE_VOICE: &str = concat!(
    "UPDATE voices SET title = COALESCE($3, title), provider = COALESCE($4, provider), ",
    "model = CASE WHEN $5 THEN $6 ELSE model END, voice_id = COALESCE($7, voice_id), tags = COALESCE($8, tags), ",
    "gender = CASE WHEN $9 THEN $10 ELSE gender END, description = CASE WHEN $11 THEN $12 ELSE description END, ",
    "provider_options = COALESCE($13, provider_options), updated_at = $14 ",
    "WHERE project_id = $1 AND id = $2 RETURNING ",
    voice_columns!()
);

pub(in crate::store) const DELETE_VOICE: &str = "DELETE FROM voices WHERE project_id = $1 AND id = $2";

pub(in crate::store) fn tags_json(tags: &[String]) -> String {
    Value::Array(tags.iter().cloned().map(Value::String).collect()).to_string()
}

pub(in crate::store) fn options_json(options: &Map<String, Value>) -> String {
    Value::Object(options.clone()).to_string()
}

#[derive(sqlx::FromRow)]
pub(in crate::store) struct VoiceRow {
    id: String,
    title: String,
    provider: String,
    model: Option<String>,
    voice_id: String,
    tags: String,
    gender: Option<String>,
    description: Option<String>,
    provider_options: String,
    created_at: i64,
    updated_at: i64,
}

impl VoiceRow {
    pub(in crate::store) fn into_voice(self) -> Result<Voice, StoreError> {
        let corrupt = |what: &str, e: serde_json::Error| StoreError::Corrupt(format!("voice {} {what}: {e}", self.id));
        let tags: Vec<String> = serde_json::from_str(&self.tags).map_err(|e| corrupt("tags", e))?;
        let provider_options: Map<String, Value> =
            serde_json::from_str(&self.provider_options).map_err(|e| corrupt("provider options", e))?;
        let gender = self
            .gender
            .as_deref()
            .map(|g| Gender::parse(g).ok_or_else(|| StoreError::Corrupt(format!("unknown gender {g:?}"))))
            .transpose()?;
        Ok(Voice {
            created_at: from_ms(self.created_at)?,
            updated_at: from_ms(self.updated_at)?,
            id: self.id,
            title: self.title,
            provider: self.provider,
            model: self.model,
            voice_id: self.voice_id,
            tags,
            gender,
            description: self.description,
            provider_options,
        })
    }
}
