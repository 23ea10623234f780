//! The admin API (`/admin/v1`): projects, keys and usage across keys. Guarded by the admin token or a key
//! with the `admin` scope.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    domain::{ApiKey, KeyLimits, KeyPatch, Project, Scope, UsageReport},
    http::{
        extract::{ApiJson, ApiQuery},
        problem::{ApiError, Problem},
        AppState,
    },
    service::{keys, projects, usage},
};

fn default_scopes() -> Vec<Scope> {
    vec![Scope::Speech, Scope::Voices]
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// A label for people, 1 to 200 characters.
    name: String,
    /// The project the key acts for (`/admin/v1/projects`): a key made for a project sees the
    /// voices of the project's other keys, revoked ones included. When absent the key gets a
    /// new project of its own, named after it.
    project_id: Option<String>,
    /// Default: `["speech", "voices"]`.
    #[serde(default = "default_scopes")]
    scopes: Vec<Scope>,
    /// When the key stops working (RFC 3339); never when absent.
    expires_at: Option<DateTime<Utc>>,
    /// Requests per minute (a sliding window); unlimited when absent. Shared by every replica
    /// on PostgreSQL, per replica on SQLite.
    rate_limit_per_minute: Option<u32>,
    /// The key's requests skip content moderation (`[moderation]`). Default `false`.
    #[serde(default)]
    moderation_exempt: bool,
    /// Characters to synthesise per minute (a sliding window); unlimited when absent. Shared
    /// like `rateLimitPerMinute`.
    characters_per_minute: Option<u32>,
    /// Requests in progress at once; `auth.max_concurrent_per_key` (per replica) when absent.
    /// Shared like `rateLimitPerMinute`.
    max_concurrent: Option<u32>,
    /// Characters per UTC calendar month; a request that would cross it gets 402.
    monthly_character_budget: Option<u64>,
    /// US dollars per UTC calendar month, priced by the `[prices]` table; a request whose
    /// estimated cost would cross it gets 402.
    monthly_spend_limit_usd: Option<f64>,
}

/// A new key. `key` is the secret: it is shown here once and never again.
#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    api_key: ApiKey,
    /// The full key string, `sg_<id>_<secret>`, to send as `Authorization: Bearer`.
    key: String,
}

/// Create an API key; the response is the only time its secret is shown.
#[utoipa::path(
    post,
    path = "/admin/v1/keys",
    tag = "admin",
    request_body = CreateKeyRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new key, with its secret shown this once", body = CreatedKey),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The credential lacks the scope, or the admin API is disabled", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Malformed JSON, or an invalid field or parameter (`validation` names it)", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn create_key(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateKeyRequest>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let created = keys::create(
        state.store.as_ref(),
        keys::CreateKey {
            name: body.name,
            project_id: body.project_id,
            scopes: body.scopes,
            expires_at: body.expires_at,
            limits: KeyLimits {
                rate_limit_per_minute: body.rate_limit_per_minute,
                characters_per_minute: body.characters_per_minute,
                max_concurrent: body.max_concurrent,
                monthly_character_budget: body.monthly_character_budget,
                monthly_spend_limit_usd: body.monthly_spend_limit_usd,
            },
            moderation_exempt: body.moderation_exempt,
        },
    )
    .await?;
    // A guess at this id may have left a brief negative cache entry.
    state.auth.forget(&created.key.id);
    let key = created.token.expose_secret().to_owned();
    Ok((StatusCode::CREATED, Json(CreatedKey { api_key: created.key, key })))
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    data: Vec<ApiKey>,
}

/// Every API key, newest first, revoked ones included.
#[utoipa::path(
    get,
    path = "/admin/v1/keys",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "All keys", body = KeyList),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The credential lacks the scope, or the admin API is disabled", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn list_keys(State(state): State<AppState>) -> Result<Json<KeyList>, ApiError> {
    Ok(Json(KeyList { data: state.store.list_keys().await? }))
}

/// One API key.
#[utoipa::path(
    get,
    path = "/admin/v1/keys/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The key's public id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The key", body = ApiKey),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn get_key(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<ApiKey>, ApiError> {
    Ok(Json(keys::get(state.store.as_ref(), &id).await?))
}

/// The members a key's patch may set (the schema of `PATCH /admin/v1/keys/{id}`; the patch is
/// read by [`KeyPatch`]).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, reason = "documents the body that KeyPatch reads")]
pub struct KeyPatchBody {
    #[serde(flatten)]
    limits: KeyLimits,
    /// The key's requests skip content moderation (`[moderation]`); not nullable.
    moderation_exempt: Option<bool>,
}

/// Change a key's limits, budgets and moderation exemption, as a JSON merge patch (RFC 7396):
/// members left out stay as they are, a limit set to `null` removes that limit. The members are
/// those of [`KeyPatchBody`]; any other is refused. This replica applies the change at once, the
/// others within the auth cache TTL (`auth.cache_ttl_secs`).
#[utoipa::path(
    patch,
    path = "/admin/v1/keys/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The key's public id")),
    request_body(content = KeyPatchBody, content_type = "application/merge-patch+json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The key as changed", body = ApiKey),
        (status = 400, description = "Malformed JSON, an unknown member, or a value out of range (`validation` names each)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn patch_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(document): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<ApiKey>, ApiError> {
    let patch = KeyPatch::from_document(&document).map_err(ApiError::Validation)?;
    let key = keys::update(state.store.as_ref(), &id, &patch).await?;
    state.auth.forget(&id);
    Ok(Json(key))
}

/// Revoke an API key. It stops working on this replica at once and on every other replica
/// within the auth cache TTL (`auth.cache_ttl_secs`, default 5 s).
#[utoipa::path(
    delete,
    path = "/admin/v1/keys/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The key's public id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn delete_key(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    keys::revoke(state.store.as_ref(), &id).await?;
    state.auth.forget(&id);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AdminUsageParams {
    /// Only this key; every key when absent.
    key_id: Option<String>,
    /// Start of the range (inclusive), RFC 3339. Default: 30 days before `to`.
    from: Option<DateTime<Utc>>,
    /// End of the range (exclusive), RFC 3339. Default: now.
    to: Option<DateTime<Utc>>,
}

/// Usage across keys, by UTC day, key, provider and model, with characters and spend; for one
/// key (`keyId`), also its current UTC month against its budgets (`month`).
#[utoipa::path(
    get,
    path = "/admin/v1/usage",
    tag = "admin",
    params(AdminUsageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Usage totals and buckets", body = UsageReport),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Malformed JSON, or an invalid field or parameter (`validation` names it)", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn get_admin_usage(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<AdminUsageParams>,
) -> Result<Json<UsageReport>, ApiError> {
    let mut report = usage::summary(state.store.as_ref(), params.key_id.clone(), params.from, params.to).await?;
    if let Some(id) = &params.key_id {
        if let Some(key) = state.store.get_key(id).await? {
            report.month = Some(usage::month_to_date(state.store.as_ref(), &key).await?);
        }
    }
    Ok(Json(report))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateProjectRequest {
    /// A label for people, 1 to 200 characters.
    name: String,
}

/// Create a project. Keys are made for it with `projectId` on `POST /admin/v1/keys`; its saved
/// voices, PlayHT jobs and provider keys belong to it, not to any one key.
#[utoipa::path(
    post,
    path = "/admin/v1/projects",
    tag = "admin",
    request_body = CreateProjectRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new project", body = Project),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The credential lacks the scope, or the admin API is disabled", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Malformed JSON, or an invalid field or parameter (`validation` names it)", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn create_project(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateProjectRequest>,
) -> Result<(StatusCode, Json<Project>), ApiError> {
    Ok((StatusCode::CREATED, Json(projects::create(state.store.as_ref(), &body.name).await?)))
}

#[derive(Serialize, ToSchema)]
pub struct ProjectList {
    data: Vec<Project>,
}

/// Every project, newest first.
#[utoipa::path(
    get,
    path = "/admin/v1/projects",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "All projects", body = ProjectList),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The credential lacks the scope, or the admin API is disabled", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn list_projects(State(state): State<AppState>) -> Result<Json<ProjectList>, ApiError> {
    Ok(Json(ProjectList { data: projects::list(state.store.as_ref()).await? }))
}

/// One project.
#[utoipa::path(
    get,
    path = "/admin/v1/projects/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The project's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The project", body = Project),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn get_project(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Project>, ApiError> {
    Ok(Json(projects::get(state.store.as_ref(), &id).await?))
}

/// A project's keys, newest first, revoked ones included.
#[utoipa::path(
    get,
    path = "/admin/v1/projects/{id}/keys",
    tag = "admin",
    params(("id" = String, Path, description = "The project's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The project's keys", body = KeyList),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn list_project_keys(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<KeyList>, ApiError> {
    Ok(Json(KeyList { data: projects::keys(state.store.as_ref(), &id).await? }))
}
