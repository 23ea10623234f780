//! Voices and models as ElevenLabs lists them. The voices are every id the facade can route:
//! the mapped ids of `[facades.elevenlabs.voices]`, the caller's saved voices, and the catalogue
//! of every provider that lists one — as `provider:voice`, except the `elevenlabs` provider's
//! own voices, whose ids are ElevenLabs' own.

use std::collections::BTreeMap;

use axum::{extract::Path, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{relocate, Call, ElevenLabsError, ElevenLabsValidationError};
use crate::{
    domain::{FieldError, PathSegment},
    facades::{self as facade, elevenlabs::wire::query_path, VoiceOrigin},
    http::{extract::ApiQuery, problem::ApiError},
};

/// ElevenLabs' `Voice`, with the members the gateway knows.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ElevenLabsVoice {
    /// What `voice_id` takes on the speech routes.
    voice_id: String,
    name: String,
    /// `cloned` for the caller's saved voices, `premade` otherwise.
    category: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// `provider`, and `gender`/`language` where known.
    labels: BTreeMap<String, String>,
    available_for_tiers: Vec<String>,
    high_quality_base_model_ids: Vec<String>,
    /// Whether the voice is one of the caller's saved voices.
    is_owner: bool,
}

impl ElevenLabsVoice {
    fn new(voice_id: String, name: String, provider: &str) -> Self {
        let labels = BTreeMap::from([("provider".to_owned(), provider.to_owned())]);
        Self {
            voice_id,
            name,
            category: "premade",
            description: None,
            labels,
            available_for_tiers: Vec::new(),
            high_quality_base_model_ids: Vec::new(),
            is_owner: false,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ElevenLabsVoices {
    voices: Vec<ElevenLabsVoice>,
}

#[derive(Serialize, ToSchema)]
pub struct ElevenLabsVoicesPage {
    voices: Vec<ElevenLabsVoice>,
    has_more: bool,
    total_count: usize,
    /// Pass as `next_page_token` for the next page; `null` on the last.
    next_page_token: Option<String>,
}

/// Every voice id the facade routes, each once, in a stable order.
async fn all_voices(call: &Call) -> Result<Vec<ElevenLabsVoice>, ApiError> {
    let state = &call.state;
    let facade = &state.facades.elevenlabs;
    let native = facade.native_provider();
    let listed = facade::voices(&state.registry, state.store.as_ref(), &call.owner, facade, native).await?;
    Ok(listed
        .into_iter()
        .map(|voice| {
            let mut entry = ElevenLabsVoice::new(voice.id, voice.name, &voice.provider);
            entry.description = voice.description;
            if voice.origin == VoiceOrigin::Saved {
                entry.category = "cloned";
                entry.is_owner = true;
            }
            for (label, value) in [("gender", voice.gender), ("language", voice.language)] {
                if let Some(value) = value {
                    entry.labels.insert(label.to_owned(), value);
                }
            }
            entry
        })
        .collect())
}

/// ElevenLabs' `GET /v1/voices`: every voice the facade can route.
#[utoipa::path(
    get,
    path = "/elevenlabs/v1/voices",
    tag = "elevenlabs",
    security(("xiApiKey" = [])),
    responses(
        (status = 200, description = "Mapped ids, the caller's saved voices, and every listable provider catalogue", body = ElevenLabsVoices),
        (status = 401, description = "`invalid_api_key`", body = ElevenLabsError),
        (status = 502, description = "A provider's catalogue could not be read", body = ElevenLabsError)
    )
)]
pub async fn list_voices(call: Call) -> Result<Json<ElevenLabsVoices>, ApiError> {
    Ok(Json(ElevenLabsVoices { voices: all_voices(&call).await? }))
}

/// The query of `GET /v2/voices` the gateway reads; ElevenLabs' other filters are accepted and
/// ignored.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// 1 to 100 (default 10).
    page_size: Option<u32>,
    /// From the previous page.
    next_page_token: Option<String>,
    /// Case-insensitive, in the name or the id.
    search: Option<String>,
}

const DEFAULT_PAGE_SIZE: u32 = 10;
const MAX_PAGE_SIZE: u32 = 100;

/// ElevenLabs' `GET /v2/voices`: the same voices, filtered and in pages.
#[utoipa::path(
    get,
    path = "/elevenlabs/v2/voices",
    tag = "elevenlabs",
    params(SearchQuery),
    security(("xiApiKey" = [])),
    responses(
        (status = 200, description = "A page of voices", body = ElevenLabsVoicesPage),
        (status = 401, description = "`invalid_api_key`", body = ElevenLabsError),
        (status = 422, description = "An invalid parameter", body = ElevenLabsValidationError),
        (status = 502, description = "A provider's catalogue could not be read", body = ElevenLabsError)
    )
)]
pub async fn search_voices(
    call: Call,
    query: Result<ApiQuery<SearchQuery>, ApiError>,
) -> Result<Json<ElevenLabsVoicesPage>, ApiError> {
    let ApiQuery(query) = query.map_err(|e| relocate(e, &query_path))?;
    let mut problems = Vec::new();
    let size = query.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&size) {
        problems.push(FieldError::new("page_size", format!("must be 1 to {MAX_PAGE_SIZE}")));
    }
    let start = match query.next_page_token.as_deref().map(str::parse::<usize>) {
        None => 0,
        Some(Ok(start)) => start,
        Some(Err(_)) => {
            problems.push(FieldError::new("next_page_token", "is not a token this API returned"));
            0
        }
    };
    if !problems.is_empty() {
        let located = problems.into_iter().map(|p| FieldError { path: query_path(p.path), message: p.message });
        return Err(ApiError::Validation(located.collect()));
    }
    let needle = query.search.as_deref().map(str::to_lowercase).filter(|s| !s.is_empty());
    let mut found = all_voices(&call).await?;
    if let Some(needle) = needle {
        found.retain(|v| v.name.to_lowercase().contains(&needle) || v.voice_id.to_lowercase().contains(&needle));
    }
    let total_count = found.len();
    let end = start.saturating_add(size as usize).min(total_count);
    let voices = found.get(start..end).map(<[_]>::to_vec).unwrap_or_default();
    let has_more = end < total_count;
    let next_page_token = has_more.then(|| end.to_string());
    Ok(Json(ElevenLabsVoicesPage { voices, has_more, total_count, next_page_token }))
}

/// ElevenLabs' `GET /v1/voices/{voice_id}`.
#[utoipa::path(
    get,
    path = "/elevenlabs/v1/voices/{voice_id}",
    tag = "elevenlabs",
    params(("voice_id" = String, Path, description = "A voice id from the list")),
    security(("xiApiKey" = [])),
    responses(
        (status = 200, description = "The voice", body = ElevenLabsVoice),
        (status = 401, description = "`invalid_api_key`", body = ElevenLabsError),
        (status = 404, description = "`voice_not_found`", body = ElevenLabsError)
    )
)]
pub async fn get_voice(call: Call, Path(voice_id): Path<String>) -> Result<Json<ElevenLabsVoice>, ApiError> {
    all_voices(&call).await?.into_iter().find(|v| v.voice_id == voice_id).map(Json).ok_or_else(|| {
        let shown: String = voice_id.chars().take(64).collect();
        let path = vec![PathSegment::Field("path".to_owned()), PathSegment::Field("voice_id".to_owned())];
        ApiError::VoiceNotFound(FieldError { path, message: format!("no voice {shown:?}") })
    })
}

/// ElevenLabs' `Model`, with the members the gateway knows.
#[derive(Serialize, ToSchema)]
pub struct ElevenLabsModel {
    /// An `elevenlabs` model's own id, else `provider/model`: what `model_id` takes.
    model_id: String,
    name: String,
    can_do_text_to_speech: bool,
    can_do_voice_conversion: bool,
    can_be_finetuned: bool,
    maximum_text_length_per_request: usize,
    /// Not known per model: empty.
    languages: Vec<ElevenLabsLanguage>,
    model_rates: ElevenLabsModelRates,
}

#[derive(Serialize, ToSchema)]
pub struct ElevenLabsLanguage {
    language_id: String,
    name: String,
}

#[derive(Serialize, ToSchema)]
pub struct ElevenLabsModelRates {
    /// The gateway bills characters as they are: 1.
    character_cost_multiplier: f64,
}

/// ElevenLabs' `GET /v1/models`: a bare array of every model this gateway serves.
#[utoipa::path(
    get,
    path = "/elevenlabs/v1/models",
    tag = "elevenlabs",
    security(("xiApiKey" = [])),
    responses(
        (status = 200, description = "Models (a bare array)", body = Vec<ElevenLabsModel>),
        (status = 401, description = "`invalid_api_key`", body = ElevenLabsError)
    )
)]
pub async fn list_models(call: Call) -> Json<Vec<ElevenLabsModel>> {
    let native = call.state.facades.elevenlabs.native_provider();
    let models = call.state.registry.providers().flat_map(|provider| {
        let id = provider.id().to_owned();
        provider.capabilities().models.iter().map(move |m| {
            let model_id = if Some(id.as_str()) == native { m.id.clone() } else { format!("{id}/{}", m.id) };
            ElevenLabsModel {
                name: model_id.clone(),
                model_id,
                can_do_text_to_speech: true,
                can_do_voice_conversion: false,
                can_be_finetuned: false,
                maximum_text_length_per_request: m.max_characters,
                languages: Vec::new(),
                model_rates: ElevenLabsModelRates { character_cost_multiplier: 1.0 },
            }
        })
    });
    Json(models.collect())
}
