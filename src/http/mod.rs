//! The HTTP boundary: the router table, the layer stack, extractors, thin handlers and the one
//! problem+json error type.

pub mod extract;
pub mod handlers;
pub mod middleware;
pub mod openapi;
pub mod problem;

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, FromRef, Request},
    http::header,
    middleware::{from_fn, from_fn_with_state},
    Router,
};
use tower::ServiceBuilder;
use tower_http::{catch_panic::CatchPanicLayer, sensitive_headers::SetSensitiveRequestHeadersLayer};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use self::{extract::BodyLimit, handlers::*, problem::ApiError};
use crate::{auth::Authenticator, domain::Scope, metrics::Metrics, service::usage::UsageSink, store::Store};

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub auth: Arc<Authenticator>,
    pub usage: UsageSink,
    pub metrics: Arc<Metrics>,
    pub body_limit: BodyLimit,
    /// The serialized OpenAPI document, built once.
    pub openapi_json: Bytes,
}

impl FromRef<AppState> for BodyLimit {
    fn from_ref(state: &AppState) -> Self {
        state.body_limit
    }
}

/// The route table. Each group's guard says which scope its routes need; routes outside any
/// group need only a valid credential, unless listed in `middleware::PUBLIC_ROUTES`.
fn api_routes() -> OpenApiRouter<AppState> {
    let admin = OpenApiRouter::new()
        .routes(routes!(admin::create_key, admin::list_keys))
        .routes(routes!(admin::get_key, admin::delete_key))
        .routes(routes!(admin::get_admin_usage))
        .route_layer(from_fn_with_state(Scope::Admin, middleware::require_scope));

    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(ops::get_healthz))
        .routes(routes!(ops::get_readyz))
        .routes(routes!(ops::get_metrics))
        .routes(routes!(ops::get_openapi))
        .routes(routes!(usage::get_usage))
        .routes(routes!(usage::get_logs))
        .merge(admin)
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().split_for_parts().1
}

/// The complete application: routes, docs UI, fallback and the layer stack.
pub fn router(state: AppState) -> Router {
    let (api, _) = api_routes().split_for_parts();
    let docs = utoipa_swagger_ui::SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::from("/openapi.json"));

    // Outermost first. Position matters for each layer, as noted.
    let layers = ServiceBuilder::new()
        // Before anything can log a header: credentials print as "Sensitive".
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::HeaderName::from_static("xi-api-key"),
            header::HeaderName::from_static("x-api-key"),
        ]))
        // Request id, span, metrics and the one log line; sees every response, including 401s.
        .layer(from_fn_with_state(state.clone(), middleware::observe))
        // Default deny. Outside `meter`: unauthenticated requests are not metered.
        .layer(from_fn_with_state(state.clone(), middleware::authenticate))
        // One usage event per authenticated request, whatever happens inside.
        .layer(from_fn_with_state(state.clone(), middleware::meter))
        // Inside `meter`, so a limited request is still recorded.
        .layer(from_fn_with_state(state.clone(), middleware::rate_limit))
        // Panics become a metered, logged 500 problem.
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        // Innermost: framework errors (405...) become problems before anyone reads their status.
        .layer(from_fn(middleware::normalize_errors))
        .layer(DefaultBodyLimit::max(state.body_limit.0));

    Router::new().merge(api).merge(docs).fallback(fallback).layer(layers).with_state(state)
}

async fn fallback(req: Request) -> ApiError {
    ApiError::RouteNotFound { method: req.method().to_string(), path: req.uri().path().to_owned() }
}
