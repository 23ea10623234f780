//! What this gateway can serve: providers, models (also in OpenAI's list shape) and each
//! provider's own voice catalogue.

use axum::{
    extract::{Path, State},
    Json,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    http::{
        extract::Caller,
        problem::{ApiError, Problem},
        AppState,
    },
    providers::{registry::VoicesError, Capabilities, ProviderVoice},
};

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderEntry {
    id: String,
    /// Whether this gateway is configured to use the provider.
    enabled: bool,
    /// Whether the caller's project has its own key for the provider (`/v1/api-keys`), which
    /// its requests use instead of the operator's.
    byok: bool,
    /// `provider/model` strings, usable as `model`.
    models: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    capabilities: Option<Capabilities>,
}

#[derive(Serialize, ToSchema)]
pub struct ProviderList {
    data: Vec<ProviderEntry>,
}

/// Every provider kind this build knows, whether enabled, and what each enabled one can do.
#[utoipa::path(
    get,
    path = "/v1/audio/providers",
    tag = "speech",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Providers", body = ProviderList),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn list_providers(
    State(state): State<AppState>,
    Caller(key): Caller,
) -> Result<Json<ProviderList>, ApiError> {
    let own = state.provider_keys.stored_providers(&key.project_id).await?;
    let mut data: Vec<ProviderEntry> = state
        .registry
        .providers()
        .map(|p| ProviderEntry {
            id: p.id().to_owned(),
            enabled: true,
            byok: own.iter().any(|id| id == p.id()),
            models: p.capabilities().models.iter().map(|m| format!("{}/{}", p.id(), m.id)).collect(),
            capabilities: Some(p.capabilities().clone()),
        })
        .collect();
    for id in state.registry.disabled_kinds() {
        let byok = own.iter().any(|own| own == id);
        data.push(ProviderEntry { id: id.to_owned(), enabled: false, byok, models: Vec::new(), capabilities: None });
    }
    Ok(Json(ProviderList { data }))
}

/// A model in OpenAI's list shape, with the gateway's capability fields added.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelEntry {
    /// `provider/model`.
    id: String,
    object: &'static str,
    /// Unknown for provider models: always 0.
    created: i64,
    #[serde(rename = "owned_by")]
    owned_by: String,
    provider: String,
    max_characters: usize,
    supports_instructions: bool,
    streaming: bool,
    native_timestamps: bool,
    /// This model voices a whole dialogue in one request (`strategy: native`).
    native_dialogue: bool,
    /// Formats the provider makes itself; every other format is converted by the gateway.
    native_formats: Vec<&'static str>,
    /// A fallback route (`[routes.<name>]`): the models it tries, in order. The other members
    /// describe the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    targets: Option<Vec<String>>,
}

impl ModelEntry {
    fn new(id: String, provider: &dyn crate::providers::SpeechProvider, model: &crate::providers::ModelInfo) -> Self {
        let caps = provider.model_capabilities(&model.id);
        Self {
            id,
            object: "model",
            created: 0,
            owned_by: provider.id().to_owned(),
            provider: provider.id().to_owned(),
            max_characters: model.max_characters,
            supports_instructions: model.supports_instructions,
            streaming: caps.streaming,
            native_timestamps: caps.native_timestamps,
            native_dialogue: caps.native_dialogue.as_ref().is_some_and(|d| d.models.contains(&model.id)),
            native_formats: caps.formats.iter().map(|f| f.format.as_str()).collect(),
            targets: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ModelList {
    object: &'static str,
    data: Vec<ModelEntry>,
}

/// Every fallback route, then every model this gateway serves (OpenAI's `GET /v1/models` shape).
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "speech",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Models", body = ModelList),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn list_models(State(state): State<AppState>) -> Json<ModelList> {
    let registry = &state.registry;
    let routes = registry.routes().filter_map(|(name, _)| {
        let targets = registry.targets(name).ok()?;
        let (first, _) = targets.first()?;
        let mut entry = ModelEntry::new(name.to_owned(), first.provider.as_ref(), &first.model);
        let models = targets.iter().map(|(t, _)| format!("{}/{}", t.provider.id(), t.model.id)).collect();
        entry.targets = Some(models);
        Some(entry)
    });
    let served = registry.providers().flat_map(|p| {
        p.capabilities().models.iter().map(move |m| ModelEntry::new(format!("{}/{}", p.id(), m.id), p.as_ref(), m))
    });
    Json(ModelList { object: "list", data: routes.chain(served).collect() })
}

#[derive(Serialize, ToSchema)]
pub struct ProviderVoiceList {
    data: Vec<ProviderVoice>,
}

/// The provider's own voice catalogue (cached by the gateway).
#[utoipa::path(
    get,
    path = "/v1/audio/providers/{id}/voices",
    tag = "speech",
    params(("id" = String, Path, description = "Provider id, e.g. `openai`")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Voices", body = ProviderVoiceList),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown provider, or one without a catalogue", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The provider failed", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn list_provider_voices(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ProviderVoiceList>, ApiError> {
    match state.registry.voices(&id).await {
        Ok(voices) => Ok(Json(ProviderVoiceList { data: voices.as_ref().clone() })),
        Err(e @ (VoicesError::UnknownProvider(_) | VoicesError::NotListable(_))) => {
            Err(ApiError::NotFound(e.to_string()))
        }
        Err(VoicesError::Provider(e)) => Err(ApiError::Provider(e)),
    }
}
