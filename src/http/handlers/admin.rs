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
    domain::{ApiKey, Project, Scope, UsageReport},
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
    /// Requests per minute per replica; unlimited when absent.
    rate_limit_per_minute: Option<u32>,
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
            rate_limit_per_minute: body.rate_limit_per_minute,
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

/// Usage across keys, by UTC day, key, provider and model.
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
    Ok(Json(usage::summary(state.store.as_ref(), params.key_id, params.from, params.to).await?))
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
