//! What `pyht` asks for before it speaks — its lease and inference coordinates — and the
//! WebSocket URLs of `websocket-auth`: every URL carries a signed token for the caller's key
//! (`auth::signed`), valid for an hour.

use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderValue},
    response::{IntoResponse, Response},
    Json,
};
use bytes::Bytes;
use serde_json::{Map, Value};

use super::PlayError;
use crate::http::{extract::Caller, AppState};

/// The models `pyht` asserts in `sdk-auth`, and `websocket-auth` hands URLs for.
const MODELS: [&str; 4] = ["Play3.0-mini", "PlayDialog", "PlayDialogMultilingual", "PlayDialogArabic"];
/// The lease's epoch (PlayHT's: 2018-02-21T23:58:00Z).
const LEASE_EPOCH: i64 = 1_519_257_480;

/// The gateway's address as the client reached it: `server.public_url`, else `http://` and the
/// request's `Host` when it is a plain host and port (URLs built from it go back to the same
/// client only), else `http://localhost`. Behind TLS or a proxy, set `server.public_url`.
pub(crate) fn public_base(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
        .filter(|authority| !authority.as_str().contains('@'))
        .map_or_else(|| "localhost".to_owned(), |authority| authority.as_str().to_owned());
    format!("http://{host}")
}

/// `http(s)://` to `ws(s)://`.
pub(crate) fn websocket_base(base: &str) -> String {
    match base.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}"),
        None => format!("ws://{}", base.strip_prefix("http://").unwrap_or(base)),
    }
}

/// PlayHT's timestamps: milliseconds and `Z`, which `pyht` insists on.
fn playht_time(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The inference URLs of every model, each with a token for the caller's key.
fn inference_urls(state: &AppState, headers: &HeaderMap, key: &crate::domain::ApiKey) -> (Map<String, Value>, String) {
    let base = public_base(state, headers);
    let (token, expires) = state.auth.url_token(key, crate::auth::Purpose::PlayHt);
    let mut models = Map::new();
    for model in MODELS {
        let path = format!("/playht/api/v4/inference/{model}");
        models.insert(
            model.to_owned(),
            serde_json::json!({
                "http_streaming_url": format!("{base}{path}/stream?token={token}"),
                "websocket_url": format!("{}{path}/ws?token={token}", websocket_base(&base)),
            }),
        );
    }
    (models, playht_time(expires))
}

/// `pyht`'s inference coordinates: per model, an HTTP streaming URL and a WebSocket URL, both
/// carrying a signed token valid for an hour.
#[utoipa::path(
    post,
    path = "/playht/api/v4/sdk-auth",
    tag = "playht",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`expires_at` and, per model, `http_streaming_url` and `websocket_url`", body = Object),
        (status = 401, description = "Missing, invalid, expired or revoked key", body = PlayError)
    )
)]
pub async fn sdk_auth(State(state): State<AppState>, Caller(key): Caller, headers: HeaderMap) -> Json<Value> {
    let (models, expires_at) = inference_urls(&state, &headers, &key);
    let mut body = models;
    body.insert("expires_at".to_owned(), Value::String(expires_at));
    Json(Value::Object(body))
}

/// PlayHT v4: a WebSocket URL per model, with a signed token valid for an hour.
#[utoipa::path(
    post,
    path = "/playht/api/v4/websocket-auth",
    tag = "playht",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`websocket_urls` per model and `expires_at`", body = Object),
        (status = 401, description = "Missing, invalid, expired or revoked key", body = PlayError)
    )
)]
pub async fn websocket_auth(State(state): State<AppState>, Caller(key): Caller, headers: HeaderMap) -> Json<Value> {
    socket_urls(&state, &headers, &key, ["websocket_urls", "expires_at"])
}

/// The WebSocket URL of every model and their expiry, under the given member names.
fn socket_urls(state: &AppState, headers: &HeaderMap, key: &crate::domain::ApiKey, names: [&str; 2]) -> Json<Value> {
    let (models, expires_at) = inference_urls(state, headers, key);
    let urls: Map<String, Value> =
        models.into_iter().map(|(model, urls)| (model, urls["websocket_url"].clone())).collect();
    let mut body = Map::new();
    body.insert(names[0].to_owned(), Value::Object(urls));
    body.insert(names[1].to_owned(), Value::String(expires_at));
    Json(Value::Object(body))
}

/// Play.ai v1: the same, camelCase.
#[utoipa::path(
    post,
    path = "/playai/api/v1/tts/websocket-auth",
    tag = "playht",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`webSocketUrls` per model and `expiresAt`", body = Object),
        (status = 401, description = "Missing, invalid, expired or revoked key", body = PlayError)
    )
)]
pub async fn playai_websocket_auth(
    State(state): State<AppState>,
    Caller(key): Caller,
    headers: HeaderMap,
) -> Json<Value> {
    socket_urls(&state, &headers, &key, ["webSocketUrls", "expiresAt"])
}

/// `pyht`'s lease: 64 bytes of signature, the creation time (seconds since PlayHT's epoch) and
/// the duration as big-endian 32-bit integers, then JSON metadata with the inference address.
/// The gateway serves no gRPC; the SDK's HTTP and WebSocket calls go to the `sdk-auth` URLs.
#[utoipa::path(
    post,
    path = "/playht/api/v2/leases",
    tag = "playht",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The binary lease", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401, description = "Missing, invalid, expired or revoked key", body = PlayError)
    )
)]
pub async fn create_lease(State(state): State<AppState>, Caller(key): Caller, headers: HeaderMap) -> Response {
    let (token, expires) = state.auth.url_token(&key, crate::auth::Purpose::PlayHt);
    let now = chrono::Utc::now();
    let created = u32::try_from(now.timestamp() - LEASE_EPOCH).unwrap_or(0);
    let duration = u32::try_from((expires - now).num_seconds().max(0)).unwrap_or(0);
    let host = public_base(&state, &headers);
    let address = host.split_once("://").map_or(host.as_str(), |(_, rest)| rest);
    // The token's signature: 64 hex characters.
    let signature = token.rsplit('.').next().unwrap_or_default();
    let mut lease = Vec::with_capacity(128);
    lease.extend(signature.bytes().chain(std::iter::repeat(0)).take(64));
    lease.extend(created.to_be_bytes());
    lease.extend(duration.to_be_bytes());
    lease.extend(serde_json::json!({"inference_address": address}).to_string().into_bytes());
    let mut response = Bytes::from(lease).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_milliseconds_and_z() {
        let time = chrono::DateTime::parse_from_rfc3339("2026-11-29T21:33:47.870123Z").unwrap().to_utc();
        assert_eq!(playht_time(time), "2026-11-29T21:33:47.870Z");
    }
}
