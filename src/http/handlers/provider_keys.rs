//! The project's own vendor keys (`/v1/api-keys`, Speechbase's shape): stored sealed, used for
//! the project's requests to that vendor instead of the operator's key, never shown again.
//! Needs the `credentials` scope.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    http::{
        extract::{ApiJson, Caller},
        problem::{ApiError, Problem},
        AppState,
    },
    service::provider_keys::ProviderKeyInfo,
};

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutProviderKeyRequest {
    /// The vendor API key: 1 to 512 printable ASCII characters, no spaces.
    #[schema(value_type = String)]
    api_key: SecretString,
}

#[derive(Serialize, ToSchema)]
pub struct ProviderKeyList {
    data: Vec<ProviderKeyInfo>,
}

/// The vendors this project has its own key for. The keys themselves are never shown.
#[utoipa::path(
    get,
    path = "/v1/api-keys",
    tag = "provider keys",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The project's vendor keys, by provider", body = ProviderKeyList),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the `credentials` scope", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "Provider keys are not enabled (no master key)", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn list_provider_keys(
    State(state): State<AppState>,
    Caller(key): Caller,
) -> Result<Json<ProviderKeyList>, ApiError> {
    Ok(Json(ProviderKeyList { data: state.provider_keys.list(&key.project_id).await? }))
}

/// Store the project's own key for a vendor, replacing one it had. The project's requests to
/// that vendor use it from now on (on other replicas within `auth.cache_ttl_secs`).
#[utoipa::path(
    put,
    path = "/v1/api-keys/{providerId}",
    tag = "provider keys",
    params(("providerId" = String, Path, description = "A provider this gateway serves that takes an API key, e.g. `openai`")),
    request_body = PutProviderKeyRequest,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Stored"),
        (status = 400, description = "Malformed JSON, an invalid `apiKey`, or a provider that takes no key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the `credentials` scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such provider", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "Provider keys are not enabled (no master key)", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn put_provider_key(
    State(state): State<AppState>,
    Caller(key): Caller,
    Path(provider_id): Path<String>,
    ApiJson(body): ApiJson<PutProviderKeyRequest>,
) -> Result<StatusCode, ApiError> {
    state.provider_keys.put(&state.registry, &key.project_id, &provider_id, &body.api_key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete the project's own key for a vendor: its requests use the operator's key again.
#[utoipa::path(
    delete,
    path = "/v1/api-keys/{providerId}",
    tag = "provider keys",
    params(("providerId" = String, Path, description = "A provider this gateway serves that takes an API key")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A provider that takes no key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the `credentials` scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such provider, or the project has no key for it", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "Provider keys are not enabled (no master key)", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn delete_provider_key(
    State(state): State<AppState>,
    Caller(key): Caller,
    Path(provider_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.provider_keys.delete(&state.registry, &key.project_id, &provider_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
