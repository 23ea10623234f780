//! OpenAI's speech API, drop-in at `/openai/v1` (the OpenAI SDKs' `base_url`): its request body,
//! its error shape, its model list. Any provider can serve it: the retired model names (`tts-1`,
//! `tts-1-hd`, `gpt-4o-mini-tts`) are aliases (`[providers.aliases]`), and OpenAI's voice names
//! can be mapped to any provider's voices (`[facades.openai.voices]`).

use axum::{
    extract::{Path, State},
    response::Response,
    Extension, Json,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::speech::{respond_with_speech, route_openai_voice};
use crate::{
    facades::openai::OpenAiSpeechBody,
    http::{
        extract::{ApiJson, Caller},
        problem::ApiError,
        AppState,
    },
    service::usage::UsageDetails,
};

/// OpenAI's `{"error": {...}}`.
#[derive(Serialize, ToSchema)]
pub struct OpenAiErrorResponse {
    error: crate::http::problem::OpenAiError,
}

/// OpenAI's `POST /v1/audio/speech`, served by any provider.
#[utoipa::path(
    post,
    path = "/openai/v1/audio/speech",
    tag = "openai",
    request_body = OpenAiSpeechBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Audio (or `text/event-stream` of `speech.audio.delta` / `speech.audio.done` with `stream_format: sse`). Headers: `x-speech-provider`, `x-speech-model`.", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "An invalid field (`param` names it)", body = OpenAiErrorResponse),
        (status = 401, description = "Missing, invalid, expired or revoked key", body = OpenAiErrorResponse),
        (status = 404, description = "Unknown model or voice", body = OpenAiErrorResponse),
        (status = 429, description = "Rate limited, by the gateway or the provider", body = OpenAiErrorResponse),
        (status = 502, description = "The provider refused the gateway's credential or broke off (`x-should-retry: false`)", body = OpenAiErrorResponse),
        (status = 503, description = "The provider is unavailable", body = OpenAiErrorResponse)
    )
)]
pub async fn create_speech(
    State(state): State<AppState>,
    Caller(key): Caller,
    Extension(details): Extension<UsageDetails>,
    ApiJson(body): ApiJson<OpenAiSpeechBody>,
) -> Result<Response, ApiError> {
    let (mut input, sse) = body.into_input()?;
    route_openai_voice(&state, &state.owner(&key), &mut input.segment).await?;
    respond_with_speech(&state, &state.owner(&key), &details, input, sse).await
}

/// OpenAI's `Model`.
#[derive(Serialize, ToSchema)]
pub struct OpenAiModel {
    id: String,
    object: &'static str,
    /// Unknown for provider models: always 0.
    created: i64,
    owned_by: String,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiModelList {
    object: &'static str,
    data: Vec<OpenAiModel>,
}

/// Every model name a request may use: the routes and the aliases (OpenAI's own names among
/// them) that lead to a served model, then every `provider/model`. A route is owned by the
/// provider of its first target.
fn models(state: &AppState) -> Vec<OpenAiModel> {
    let registry = &state.registry;
    let model = |id: &str, owner: &str| OpenAiModel {
        id: id.to_owned(),
        object: "model",
        created: 0,
        owned_by: owner.to_owned(),
    };
    let names = registry.routes().map(|(name, _)| name).chain(registry.aliases().map(|(alias, _)| alias));
    let named = names.filter_map(|name| {
        let first = registry.targets(name).ok()?.into_iter().next()?.0;
        Some(model(name, first.provider.id()))
    });
    let served = registry
        .providers()
        .flat_map(|p| p.capabilities().models.iter().map(move |m| model(&format!("{}/{}", p.id(), m.id), p.id())));
    let mut models: Vec<OpenAiModel> = named.chain(served).collect();
    // A route may take an alias's name: the route is what the name means.
    let mut seen = std::collections::HashSet::new();
    models.retain(|m| seen.insert(m.id.clone()));
    models
}

/// OpenAI's `GET /v1/models`.
#[utoipa::path(
    get,
    path = "/openai/v1/models",
    tag = "openai",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Models", body = OpenAiModelList),
        (status = 401, description = "Missing, invalid, expired or revoked key", body = OpenAiErrorResponse)
    )
)]
pub async fn list_models(State(state): State<AppState>) -> Json<OpenAiModelList> {
    Json(OpenAiModelList { object: "list", data: models(&state) })
}

/// OpenAI's `GET /v1/models/{model}`.
#[utoipa::path(
    get,
    path = "/openai/v1/models/{model}",
    tag = "openai",
    params(("model" = String, Path, description = "A model name from the list (an alias such as `tts-1`)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The model", body = OpenAiModel),
        (status = 401, description = "Missing, invalid, expired or revoked key", body = OpenAiErrorResponse),
        (status = 404, description = "No such model", body = OpenAiErrorResponse)
    )
)]
pub async fn get_model(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<OpenAiModel>, ApiError> {
    models(&state)
        .into_iter()
        .find(|m| m.id == model)
        .map(Json)
        .ok_or_else(|| ApiError::UnknownModel(format!("the model {model:?} does not exist")))
}
