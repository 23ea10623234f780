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

/// Every model name a request may use: the aliases (OpenAI's own names among them) that lead
/// to a served model, then every `provider/model`.
fn models(state: &AppState) -> Vec<OpenAiModel> {
    let registry = &state.registry;
    let aliases = registry.aliases().filter_map(|(alias, _)| {
        let resolved = registry.resolve(alias).ok()?;
        Some(OpenAiModel {
            id: alias.to_owned(),
            object: "model",
            created: 0,
            owned_by: resolved.provider.id().to_owned(),
        })
    });
    let served = registry.providers().flat_map(|p| {
        p.capabilities().models.iter().map(move |m| OpenAiModel {
            id: format!("{}/{}", p.id(), m.id),
            object: "model",
            created: 0,
            owned_by: p.id().to_owned(),
        })
    });
    aliases.chain(served).collect()
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
