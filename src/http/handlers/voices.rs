//! Saved voices (`/v1/voices`), the calling key's project's own. Needs the `voices` scope.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::{
    domain::{Gender, Voice},
    http::{
        extract::{patch_member, ApiJson, ApiQuery, Caller},
        problem::{ApiError, Problem},
        AppState,
    },
    service::voices,
};

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateVoiceRequest {
    /// A name for people, 1 to 200 characters (surrounding whitespace is trimmed); unique among
    /// the caller's voices.
    title: String,
    /// The provider id: a lowercase letter or digit, then up to 63 lowercase letters, digits,
    /// `-` or `_` (e.g. `openai`).
    provider: String,
    /// The provider's model, at most 200 characters; the provider's default when absent.
    model: Option<String>,
    /// The provider's own voice id or name, 1 to 256 characters.
    voice_id: String,
    /// At most 32 tags of 1 to 64 characters each.
    tags: Option<Vec<String>>,
    gender: Option<Gender>,
    /// At most 2000 characters.
    description: Option<String>,
    /// A JSON object passed to the provider adapter verbatim; `{}` when absent.
    #[schema(value_type = Option<Object>)]
    provider_options: Option<Value>,
}

/// A partial update: members left out are unchanged; `null` clears `model`, `gender` and
/// `description` and empties `tags` and `providerOptions`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateVoiceRequest {
    /// 1 to 200 characters, unique among the caller's voices; may not be `null`.
    #[serde(default, deserialize_with = "patch_member")]
    #[schema(value_type = String)]
    title: Option<Option<String>>,
    /// A provider id; may not be `null`.
    #[serde(default, deserialize_with = "patch_member")]
    #[schema(value_type = String)]
    provider: Option<Option<String>>,
    /// At most 200 characters; `null` for the provider's default.
    #[serde(default, deserialize_with = "patch_member")]
    #[schema(value_type = Option<String>)]
    model: Option<Option<String>>,
    /// 1 to 256 characters; may not be `null`.
    #[serde(default, deserialize_with = "patch_member")]
    #[schema(value_type = String)]
    voice_id: Option<Option<String>>,
    /// Replaces every tag; at most 32 of 1 to 64 characters each.
    #[serde(default, deserialize_with = "patch_member")]
    #[schema(value_type = Option<Vec<String>>)]
    tags: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "patch_member")]
    #[schema(value_type = Option<Gender>)]
    gender: Option<Option<Gender>>,
    /// At most 2000 characters.
    #[serde(default, deserialize_with = "patch_member")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    /// Replaces the whole object.
    #[serde(default, deserialize_with = "patch_member")]
    #[schema(value_type = Option<Object>)]
    provider_options: Option<Option<Value>>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VoiceListParams {
    /// Page size, 1 to 200. Default 50.
    limit: Option<u32>,
    /// `nextCursor` from the previous page.
    cursor: Option<String>,
}

/// A page of saved voices, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VoiceList {
    data: Vec<Voice>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    /// Whether another page follows.
    has_more: bool,
    /// The page size used.
    limit: u32,
}

/// Save a voice.
#[utoipa::path(
    post,
    path = "/v1/voices",
    tag = "voices",
    request_body = CreateVoiceRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The saved voice", body = Voice),
        (status = 400, description = "Malformed JSON, or an invalid field or parameter (`validation` names it)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the `voices` scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The caller already has a voice with this title", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn create_voice(
    State(state): State<AppState>,
    Caller(key): Caller,
    ApiJson(body): ApiJson<CreateVoiceRequest>,
) -> Result<(StatusCode, Json<Voice>), ApiError> {
    let request = voices::CreateVoice {
        title: body.title,
        provider: body.provider,
        model: body.model,
        voice_id: body.voice_id,
        tags: body.tags.unwrap_or_default(),
        gender: body.gender,
        description: body.description,
        provider_options: body.provider_options,
    };
    Ok((
        StatusCode::CREATED,
        Json(voices::create(state.store.as_ref(), &state.registry, &key.project_id, request).await?),
    ))
}

/// The caller's saved voices, newest first, with cursor pagination.
#[utoipa::path(
    get,
    path = "/v1/voices",
    tag = "voices",
    params(VoiceListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of voices", body = VoiceList),
        (status = 400, description = "Malformed JSON, or an invalid field or parameter (`validation` names it)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the `voices` scope", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn list_voices(
    State(state): State<AppState>,
    Caller(key): Caller,
    ApiQuery(params): ApiQuery<VoiceListParams>,
) -> Result<Json<VoiceList>, ApiError> {
    let page = voices::list(state.store.as_ref(), &key.project_id, params.cursor.as_deref(), params.limit).await?;
    Ok(Json(VoiceList {
        data: page.voices,
        has_more: page.next_cursor.is_some(),
        next_cursor: page.next_cursor,
        limit: page.limit,
    }))
}

/// One saved voice.
#[utoipa::path(
    get,
    path = "/v1/voices/{id}",
    tag = "voices",
    params(("id" = String, Path, description = "The voice's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The voice", body = Voice),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the `voices` scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The caller has no voice with this id", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn get_voice(
    State(state): State<AppState>,
    Caller(key): Caller,
    Path(id): Path<String>,
) -> Result<Json<Voice>, ApiError> {
    Ok(Json(voices::get(state.store.as_ref(), &key.project_id, &id).await?))
}

/// Change some of a saved voice's fields.
#[utoipa::path(
    patch,
    path = "/v1/voices/{id}",
    tag = "voices",
    params(("id" = String, Path, description = "The voice's id")),
    request_body = UpdateVoiceRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated voice", body = Voice),
        (status = 400, description = "Malformed JSON, or an invalid field or parameter (`validation` names it)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the `voices` scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The caller has no voice with this id", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The caller already has a voice with this title", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn update_voice(
    State(state): State<AppState>,
    Caller(key): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateVoiceRequest>,
) -> Result<Json<Voice>, ApiError> {
    let request = voices::UpdateVoice {
        title: body.title,
        provider: body.provider,
        model: body.model,
        voice_id: body.voice_id,
        tags: body.tags,
        gender: body.gender,
        description: body.description,
        provider_options: body.provider_options,
    };
    Ok(Json(voices::update(state.store.as_ref(), &state.registry, &key.project_id, &id, request).await?))
}

/// Delete a saved voice.
#[utoipa::path(
    delete,
    path = "/v1/voices/{id}",
    tag = "voices",
    params(("id" = String, Path, description = "The voice's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the `voices` scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The caller has no voice with this id", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn delete_voice(
    State(state): State<AppState>,
    Caller(key): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    voices::delete(state.store.as_ref(), &key.project_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
