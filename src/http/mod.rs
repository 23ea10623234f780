//! The HTTP boundary: the router table, the layer stack, extractors, thin handlers and the one
//! problem+json error type.

mod admission;
pub mod client;
pub mod dialect;
pub mod extract;
pub mod handlers;
pub mod middleware;
pub mod openapi;
pub mod problem;
pub mod server;
pub mod ws;

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, FromRef, Request},
    http::header,
    middleware::{from_fn, from_fn_with_state},
    Router,
};
use tower::ServiceBuilder;
use tower_http::{catch_panic::CatchPanicLayer, sensitive_headers::SetSensitiveRequestHeadersLayer};
use utoipa::{
    openapi::{schema::Schema, RefOr},
    OpenApi,
};
use utoipa_axum::{
    router::{OpenApiRouter, UtoipaMethodRouter},
    routes,
};

use self::{extract::BodyLimit, handlers::*, problem::ApiError};
use crate::{
    auth::Authenticator,
    domain::{ApiKey, Scope},
    metrics::Metrics,
    providers::Registry,
    service::{
        moderation::{Moderator, Screen},
        usage::UsageSink,
    },
    store::Store,
};

/// What every handler can reach: one shared [`State`]. Every layer and extractor clones it, so a
/// clone is one reference count, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<State>);

impl AppState {
    pub fn new(state: State) -> Self {
        Self(Arc::new(state))
    }
}

impl std::ops::Deref for AppState {
    type Target = State;

    fn deref(&self) -> &State {
        &self.0
    }
}

/// The gateway's shared parts, built once at start.
pub struct State {
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub auth: Arc<Authenticator>,
    /// Every key's limits and budgets.
    pub limits: Arc<crate::auth::Limits>,
    pub usage: UsageSink,
    pub metrics: Arc<Metrics>,
    pub body_limit: BodyLimit,
    /// Permits for requests in progress (`server.max_concurrent_requests`).
    pub requests: Arc<tokio::sync::Semaphore>,
    /// `server.trusted_proxies`: whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<[client::AddrBlock]>,
    /// The serialized OpenAPI document, built once.
    pub openapi_json: Bytes,
    /// Limits of `/v1/audio/conversation`.
    pub conversation: crate::config::ConversationConfig,
    /// The vendor drop-in routes' voice mappings.
    pub facades: Arc<crate::config::FacadesConfig>,
    /// `server.public_url`: the base of URLs handed to clients.
    pub public_url: Option<Arc<str>>,
    /// The open WebSockets (`server.max_websockets`).
    pub sockets: Arc<ws::Sockets>,
    /// Cancelled when shutdown begins: `/readyz` answers 503 from then on.
    pub draining: tokio_util::sync::CancellationToken,
    /// `[moderation]`, when configured.
    pub moderation: Option<Arc<Moderator>>,
    /// The projects' own vendor keys (`/v1/api-keys`).
    pub provider_keys: Arc<crate::service::provider_keys::ProviderKeys>,
}

impl AppState {
    /// The owner of a request made with `key`: its project, the project's vendor keys, and the
    /// content moderation the key is subject to.
    pub fn owner(&self, key: &ApiKey) -> crate::service::provider_keys::Owner {
        self.provider_keys.owner(&key.project_id, Screen::for_key(self.moderation.as_ref(), key))
    }
}

impl FromRef<AppState> for BodyLimit {
    fn from_ref(state: &AppState) -> Self {
        state.body_limit
    }
}

/// The route table, each route with the scope it needs. Routes without a scope need only a
/// valid credential, unless listed in `middleware::PUBLIC_ROUTES`.
fn route_table() -> Vec<(Option<Scope>, UtoipaMethodRouter<AppState>)> {
    vec![
        (None, routes!(ops::get_healthz)),
        (None, routes!(ops::get_readyz)),
        (None, routes!(ops::get_metrics)),
        (None, routes!(ops::get_openapi)),
        (None, routes!(usage::get_usage)),
        (None, routes!(usage::get_logs)),
        (Some(Scope::Speech), routes!(speech::create_speech)),
        (Some(Scope::Speech), routes!(speech::create_speech_stream)),
        (Some(Scope::Speech), routes!(speech::create_speech_with_timestamps)),
        (Some(Scope::Speech), routes!(speech::create_speech_with_timestamps_stream)),
        (Some(Scope::Speech), routes!(conversation::create_conversation)),
        (Some(Scope::Speech), routes!(conversation::create_conversation_with_timestamps)),
        (Some(Scope::Speech), routes!(websocket::websocket_auth)),
        (Some(Scope::Speech), routes!(websocket::speech_socket)),
        (Some(Scope::Speech), routes!(catalog::list_providers)),
        (Some(Scope::Speech), routes!(catalog::list_models)),
        (Some(Scope::Speech), routes!(catalog::list_provider_voices)),
        (Some(Scope::Speech), routes!(openai::create_speech)),
        (Some(Scope::Speech), routes!(openai::list_models)),
        (Some(Scope::Speech), routes!(openai::get_model)),
        (Some(Scope::Speech), routes!(elevenlabs::text_to_speech)),
        (Some(Scope::Speech), routes!(elevenlabs::text_to_speech_stream)),
        (Some(Scope::Speech), routes!(elevenlabs::text_to_speech_with_timestamps)),
        (Some(Scope::Speech), routes!(elevenlabs::text_to_speech_stream_with_timestamps)),
        (Some(Scope::Speech), routes!(elevenlabs::text_to_dialogue)),
        (Some(Scope::Speech), routes!(elevenlabs::text_to_dialogue_stream)),
        (Some(Scope::Speech), routes!(elevenlabs::text_to_dialogue_with_timestamps)),
        (Some(Scope::Speech), routes!(elevenlabs::text_to_dialogue_stream_with_timestamps)),
        (Some(Scope::Speech), routes!(elevenlabs::list_voices)),
        (Some(Scope::Speech), routes!(elevenlabs::search_voices)),
        (Some(Scope::Speech), routes!(elevenlabs::get_voice)),
        (Some(Scope::Speech), routes!(elevenlabs::list_models)),
        (Some(Scope::Speech), routes!(playht::create_stream)),
        (Some(Scope::Speech), routes!(playht::create_playai_stream)),
        (Some(Scope::Speech), routes!(playht::inference_stream, playht::inference_preflight)),
        (Some(Scope::Speech), routes!(playht::inference_whole)),
        (Some(Scope::Speech), routes!(playht::inference_socket)),
        (Some(Scope::Speech), routes!(playht::sdk_auth)),
        (Some(Scope::Speech), routes!(playht::websocket_auth)),
        (Some(Scope::Speech), routes!(playht::playai_websocket_auth)),
        (Some(Scope::Speech), routes!(playht::create_lease)),
        (Some(Scope::Speech), routes!(playht::list_voices)),
        (Some(Scope::Speech), routes!(playht::jobs::create_job)),
        (Some(Scope::Speech), routes!(playht::jobs::get_job)),
        (Some(Scope::Voices), routes!(voices::create_voice, voices::list_voices)),
        (Some(Scope::Voices), routes!(voices::get_voice, voices::update_voice, voices::delete_voice)),
        (Some(Scope::Admin), routes!(admin::create_key, admin::list_keys)),
        (Some(Scope::Admin), routes!(admin::get_key, admin::patch_key, admin::delete_key)),
        (Some(Scope::Admin), routes!(admin::get_admin_usage)),
        (Some(Scope::Credentials), routes!(provider_keys::list_provider_keys)),
        (Some(Scope::Credentials), routes!(provider_keys::put_provider_key, provider_keys::delete_provider_key)),
        (Some(Scope::Admin), routes!(admin::create_project, admin::list_projects)),
        (Some(Scope::Admin), routes!(admin::get_project)),
        (Some(Scope::Admin), routes!(admin::list_project_keys)),
    ]
}

/// The routes, each scope's group behind its guard.
fn api_routes() -> OpenApiRouter<AppState> {
    let mut open = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi());
    let mut guarded: BTreeMap<Scope, OpenApiRouter<AppState>> = BTreeMap::new();
    for (scope, route) in route_table() {
        match scope {
            None => open = open.routes(route),
            Some(scope) => {
                let group = guarded.remove(&scope).unwrap_or_default();
                guarded.insert(scope, group.routes(route));
            }
        }
    }
    for (scope, group) in guarded {
        open = open.merge(group.route_layer(from_fn_with_state(scope, middleware::require_scope)));
    }
    open
}

/// Schema names that two different types claim. utoipa keeps one of them silently, which
/// documents a route with another type's schema; the contract test keeps this list empty.
pub fn schema_name_collisions() -> Vec<String> {
    let fixed = openapi::ApiDoc::openapi().components.map(|c| c.schemas).unwrap_or_default();
    let mut seen: BTreeMap<String, RefOr<Schema>> = fixed.into_iter().collect();
    let mut collisions = Vec::new();
    for (_, (schemas, _, _)) in route_table() {
        for (name, schema) in schemas {
            match seen.get(&name) {
                Some(known) if *known != schema => collisions.push(name),
                Some(_) => {}
                None => {
                    seen.insert(name, schema);
                }
            }
        }
    }
    collisions.sort();
    collisions.dedup();
    collisions
}

/// The OpenAPI document of every route. The provider listing names the kinds of provider this
/// build can serve, from the registry's table (so the document cannot fall behind it).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api_routes().split_for_parts().1;
    let listing = doc.paths.paths.get_mut("/v1/audio/providers").and_then(|item| item.get.as_mut());
    if let Some(operation) = listing {
        let kinds: Vec<String> =
            crate::providers::registry::KINDS.iter().map(|kind| format!("`{}`", kind.id)).collect();
        let known = format!(
            "Provider kinds of this build: {}, and each `[providers.compatible.<name>]` instance. A kind is \
             enabled when its credential is configured.",
            kinds.join(", ")
        );
        operation.description = Some(match operation.description.take() {
            Some(description) => format!("{description}\n\n{known}"),
            None => known,
        });
    }
    doc
}

/// The complete application: routes, docs UI, fallback and the layer stack.
pub fn router(state: AppState) -> Router {
    assemble(api_routes(), state)
}

fn assemble(routes: OpenApiRouter<AppState>, state: AppState) -> Router {
    let (api, _) = routes.split_for_parts();
    // Assets are compiled in (the crate's `vendored` feature); the validator badge, which would
    // call a public service from the browser, is off. The page works with no network. A pasted
    // credential is not persisted in the browser, and the page may load only its own assets
    // and may not be framed.
    let docs = utoipa_swagger_ui::SwaggerUi::new("/docs")
        .config(utoipa_swagger_ui::Config::from("/openapi.json").validator_url("none").persist_authorization(false));
    let docs = Router::<AppState>::from(docs).layer(axum::middleware::map_response(docs_headers));

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
        // Error bodies in the route's dialect, for failures decided before `meter` (see below).
        .layer(from_fn(dialect::render_errors))
        // The global limit of requests in progress: sheds load before any lookup.
        .layer(from_fn_with_state(state.clone(), middleware::admit))
        // No control characters in decoded paths or queries (they reach queries and logs).
        .layer(from_fn(middleware::refuse_control_characters))
        // Default deny. Outside `meter`: unauthenticated requests are not metered.
        .layer(from_fn_with_state(state.clone(), middleware::authenticate))
        // One usage event per authenticated request, whatever happens inside.
        .layer(from_fn_with_state(state.clone(), middleware::meter))
        // Inside `meter`, so that usage records the status the client gets in its dialect.
        .layer(from_fn(dialect::render_errors))
        // Inside `meter`, so a limited request is still recorded.
        .layer(from_fn_with_state(state.clone(), middleware::rate_limit))
        // Panics become a metered, logged 500 problem.
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        // Innermost: framework errors (405...) become problems before anyone reads their status.
        .layer(from_fn(middleware::normalize_errors))
        .layer(DefaultBodyLimit::max(state.body_limit.bytes));

    Router::new().merge(api).merge(docs).fallback(fallback).layer(layers).with_state(state)
}

/// The Content-Security-Policy of `/docs`: its own scripts, styles and images (Swagger UI sets
/// inline styles and uses `data:` icons), requests to this gateway only, never in a frame.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                        img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
                        base-uri 'none'; form-action 'none'";

async fn docs_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, header::HeaderValue::from_static(DOCS_CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, header::HeaderValue::from_static("no-referrer"));
    response
}

async fn fallback(req: Request) -> ApiError {
    ApiError::RouteNotFound { method: req.method().to_string(), path: req.uri().path().to_owned() }
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request, routing::get};
    use secrecy::ExposeSecret;
    use tower::ServiceExt;

    use super::*;
    use crate::{app::App, config::Config, domain::LogPage, service::keys};

    /// A panicking handler yields a 500 problem that does not leak the panic, and is still metered.
    #[tokio::test]
    async fn panics_become_metered_problems() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.database.url = format!("sqlite://{}", dir.path().join("t.db").display());
        let app = App::build(&config).await.unwrap();
        let state = app.state();
        let created = keys::create(
            state.store.as_ref(),
            keys::CreateKey {
                name: "t".into(),
                project_id: None,
                scopes: vec![Scope::Speech],
                expires_at: None,
                limits: Default::default(),
                moderation_exempt: false,
            },
        )
        .await
        .unwrap();
        let routes = api_routes().route("/boom", get(|| async { panic!("secret internals") as &str }));
        let response = assemble(routes, state.clone())
            .oneshot(
                Request::get("/boom")
                    .header("authorization", format!("Bearer {}", created.token.expose_secret()))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()["content-type"], problem::PROBLEM_JSON);
        let body = axum::body::to_bytes(response.into_body(), 10_000).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "internal_error");
        assert!(!body.to_string().contains("secret internals"), "{body}");
        assert!(body["requestId"].is_string());

        app.drain().await;
        let store = crate::store::connect(&config.database.url, 1).await.unwrap();
        let events = store.list_usage(None, LogPage { before: None, limit: 10 }).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event.status, 500);
        assert_eq!(events[0].event.error_code.as_deref(), Some("internal_error"));
    }
}
