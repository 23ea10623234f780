//! The unified WebSocket, for browsers and other clients that keep one connection open:
//! `POST /v1/websocket-auth` hands out a signed URL per model, valid five minutes, and the socket at
//! that URL speaks the command protocol of `http::ws` (PlayHT's): each text frame is a
//! `/v1/audio/speech` body (plus an optional `request_id`), answered by `start`, binary audio and
//! `end`. A command that names no model and no saved voice is spoken by the URL's model.

use axum::{
    extract::{State, WebSocketUpgrade},
    http::HeaderMap,
    response::Response,
    Json,
};
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::{
    playht::{public_base, websocket_base},
    speech::{read_speech, SpeechBody},
};
use crate::{
    domain::{text, FieldError},
    http::{
        extract::{from_document, ApiQuery, Caller},
        problem::{ApiError, Problem},
        ws, AppState,
    },
    service::speech,
};

/// Signed WebSocket URLs, one per model, and when they stop working.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebSocketUrls {
    /// `provider/model` → `ws(s)://…/v1/audio/speech/websocket?model=…&token=…`.
    web_socket_urls: std::collections::BTreeMap<String, String>,
    /// RFC 3339, five minutes ahead: the socket must be opened before then (it may then stay
    /// open for an hour).
    expires_at: String,
}

/// A WebSocket URL for every model this gateway serves, each with a token that stands for the
/// calling key on this socket route only, for five minutes (less when the key expires sooner):
/// open it at once; the socket then stays open up to an hour. A token is refused once expired or
/// tampered with, and a socket closes when its key is revoked.
#[utoipa::path(
    post,
    path = "/v1/websocket-auth",
    tag = "speech",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The URLs and their expiry", body = WebSocketUrls),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn websocket_auth(
    State(state): State<AppState>,
    Caller(key): Caller,
    headers: HeaderMap,
) -> Json<WebSocketUrls> {
    let base = websocket_base(&public_base(&state, &headers));
    let (token, expires) = state.auth.url_token(&key, crate::auth::Purpose::Socket);
    let web_socket_urls = state
        .registry
        .known_models()
        .into_iter()
        .map(|model| {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("model", &model)
                .append_pair("token", &token)
                .finish();
            let url = format!("{base}/v1/audio/speech/websocket?{query}");
            (model, url)
        })
        .collect();
    Json(WebSocketUrls { web_socket_urls, expires_at: expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true) })
}

#[derive(Deserialize, IntoParams)]
pub struct SocketQuery {
    /// The model that speaks commands naming none (`provider/model`, a provider, or an alias).
    model: Option<String>,
    /// The signed token from `/v1/websocket-auth` (else the usual `Authorization` header).
    #[allow(dead_code, reason = "read by the authentication layer; declared for the document")]
    token: Option<String>,
}

/// The socket: JSON speech commands in; `start`, binary audio and `end` out, in order.
#[utoipa::path(
    get,
    path = "/v1/audio/speech/websocket",
    tag = "speech",
    params(SocketQuery),
    security(("urlToken" = []), ("bearer" = [])),
    responses(
        (status = 101, description = "WebSocket. In: one `/v1/audio/speech` body per text frame, with an optional `request_id`. Out per command: `{\"type\":\"start\",\"request_id\"}`, binary audio frames, `{\"type\":\"end\",\"request_id\"}`; a failed command gets `{\"type\":\"error\",\"request_id\",\"error_message\",\"error_id\",\"status\"}` between its start and end."),
        (status = 400, description = "A `model` that cannot name a model", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired token or key", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway has as many sockets open as it takes (`server.max_websockets`)", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn speech_socket(
    State(state): State<AppState>,
    Caller(key): Caller,
    ApiQuery(query): ApiQuery<SocketQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if let Some(problem) = query.model.as_deref().and_then(text::identifier_problem) {
        return Err(ApiError::Validation(vec![FieldError::new("model", problem)]));
    }
    let (voicer_state, owner, model) = (state.clone(), state.owner(&key), query.model);
    let voicer: ws::Voicer = Box::new(move |mut command, details| {
        // Each command reads the project's provider keys afresh (through the cache).
        let (state, owner) = (voicer_state.clone(), owner.renewed());
        if let Value::Object(fields) = &mut command {
            fields.remove("request_id");
            if let (Some(model), false) = (&model, fields.contains_key("model") || fields.contains_key("voiceId")) {
                fields.insert("model".to_owned(), Value::String(model.clone()));
            }
        }
        async move {
            let body: SpeechBody = from_document(command)?;
            let (input, sse) = read_speech(&state, &owner, body).await?;
            if sse {
                let message = "audio comes as binary frames; leave out stream_format";
                return Err(ApiError::Validation(vec![FieldError::new("stream_format", message)]));
            }
            let prepared = speech::prepare(&state.registry, state.store.as_ref(), &owner, input).await?;
            crate::http::admission::admit(&details, &prepared).await?;
            Ok(speech::synthesize(prepared, &details, &state.metrics).await?.body)
        }
        .boxed()
    });
    ws::accept(upgrade, state, key, "/v1/audio/speech/websocket", voicer)
}
