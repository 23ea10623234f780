//! Liveness, readiness, metrics and the OpenAPI document. All public.

use axum::{
    extract::State,
    http::{header, HeaderValue},
    response::IntoResponse,
    Json,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::{
    problem::{ApiError, Problem},
    AppState,
};

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` when the process is serving, `ready` when its dependencies answer too.
    status: &'static str,
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Healthy", body = Health)))]
pub async fn get_healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// What `/readyz` reports: the database, and each provider's circuit breaker.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`.
    status: &'static str,
    /// `ok`: it answered.
    database: &'static str,
    /// By provider id: `{"circuit": "closed" | "open" | "half_open"}`.
    providers: std::collections::BTreeMap<String, ProviderHealth>,
}

#[derive(Serialize, ToSchema)]
pub struct ProviderHealth {
    circuit: &'static str,
}

/// Readiness: the database answers and the gateway is not shutting down. Load balancers should
/// route only to ready replicas: on SIGTERM this turns 503 `draining` first (for
/// `server.drain_delay_secs`, while requests are still served), then the listener closes and
/// in-flight requests finish. Each provider's circuit breaker is reported too; an open circuit
/// does not make the replica unready (the others may serve).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "The database does not answer (`database_unavailable`), or the gateway is shutting down (`draining`)", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn get_readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    if state.draining.is_cancelled() {
        return Err(ApiError::Draining);
    }
    state.store.ping().await.map_err(|e| ApiError::DatabaseUnavailable(e.to_string()))?;
    let providers = state
        .registry
        .circuits()
        .map(|(id, circuit)| (id.to_owned(), ProviderHealth { circuit: circuit.as_str() }))
        .collect();
    Ok(Json(Readiness { status: "ready", database: "ok", providers }))
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text"))
)]
pub async fn get_metrics(State(state): State<AppState>) -> impl IntoResponse {
    for (provider, circuit) in state.registry.circuits() {
        state.metrics.circuit(provider, circuit.as_str());
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        state.metrics.render(),
    )
}

/// This OpenAPI document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
pub async fn get_openapi(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], state.openapi_json.clone())
}
