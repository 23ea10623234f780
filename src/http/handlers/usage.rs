//! The caller's own usage: aggregates and the per-request log.

use axum::{extract::State, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    domain::{UsageRecord, UsageReport},
    http::{
        extract::{ApiQuery, Caller},
        problem::{ApiError, Problem},
        AppState,
    },
    service::usage,
};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// Start of the range (inclusive), RFC 3339. Default: 30 days before `to`.
    from: Option<DateTime<Utc>>,
    /// End of the range (exclusive), RFC 3339. Default: now.
    to: Option<DateTime<Utc>>,
}

/// Usage of the calling key, by UTC day, provider and model, with characters and spend, and its
/// current UTC month against its budgets (`month`).
#[utoipa::path(
    get,
    path = "/v1/usage",
    tag = "usage",
    params(UsageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Usage totals and buckets", body = UsageReport),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Malformed JSON, or an invalid field or parameter (`validation` names it)", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn get_usage(
    State(state): State<AppState>,
    Caller(key): Caller,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> Result<Json<UsageReport>, ApiError> {
    let mut report = usage::summary(state.store.as_ref(), Some(key.id.clone()), params.from, params.to).await?;
    report.month = Some(usage::month_to_date(state.store.as_ref(), &key).await?);
    Ok(Json(report))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Page size, 1 to 200. Default 50.
    limit: Option<u32>,
    /// `nextCursor` from the previous page.
    cursor: Option<String>,
}

/// A page of usage events, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogPage {
    data: Vec<UsageRecord>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// The calling key's recent requests, newest first, with cursor pagination.
#[utoipa::path(
    get,
    path = "/v1/logs",
    tag = "usage",
    params(LogParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of usage events", body = LogPage),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Malformed JSON, or an invalid field or parameter (`validation` names it)", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn get_logs(
    State(state): State<AppState>,
    Caller(key): Caller,
    ApiQuery(params): ApiQuery<LogParams>,
) -> Result<Json<LogPage>, ApiError> {
    let (data, next_cursor) =
        usage::log_page(state.store.as_ref(), Some(&key.id), params.cursor.as_deref(), params.limit).await?;
    Ok(Json(LogPage { data, next_cursor }))
}
