//! Error bodies in the dialect of the route that failed.
//!
//! Every failure is an [`ApiError`]. Turned into a response it carries itself, unrendered, as a
//! [`Failure`] extension; [`render_errors`] writes the body in the wire format of the route the
//! request was for: problem+json on the gateway's own API, and each vendor's own error shape on
//! its drop-in routes, so that the vendor's SDK raises its usual exception with a useful message.
//! That covers every failure a client can see on a route, from authentication and rate limits to
//! 404/405 and panics.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::Request,
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::Response,
};
use serde_json::{json, Value};

use super::problem::{ApiError, PROBLEM_JSON};
use crate::domain::PathSegment;

/// The wire format of a route's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The gateway's own API (and Speechbase's, which it is): `application/problem+json`.
    Problem,
    /// `/openai/...`: `{"error": {message, type, param, code}}`.
    OpenAi,
    /// `/elevenlabs/...`: `{"detail": [{loc, msg, type}]}` for 422, `{"detail": {status, message}}`
    /// otherwise.
    ElevenLabs,
    /// `/playht/...` and `/playai/...`: `{"error_message", "error_id"}`.
    PlayHt,
}

/// Mount points of the drop-in routes, by dialect.
pub const OPENAI_PREFIX: &str = "/openai";
pub const ELEVENLABS_PREFIX: &str = "/elevenlabs";
pub const PLAYHT_PREFIX: &str = "/playht";
pub const PLAYAI_PREFIX: &str = "/playai";

impl Dialect {
    /// The dialect of the route a request path falls under (matched or not, so that a 404 under
    /// `/elevenlabs/` is ElevenLabs-shaped too).
    pub fn of_path(path: &str) -> Self {
        let under =
            |prefix: &str| path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if under(OPENAI_PREFIX) {
            Dialect::OpenAi
        } else if under(ELEVENLABS_PREFIX) {
            Dialect::ElevenLabs
        } else if under(PLAYHT_PREFIX) || under(PLAYAI_PREFIX) {
            Dialect::PlayHt
        } else {
            Dialect::Problem
        }
    }

    /// The status, content type and body `error` is answered with in this dialect.
    pub fn render(self, error: &ApiError) -> (StatusCode, &'static str, Value) {
        let status = error.status();
        match self {
            Dialect::Problem => (status, PROBLEM_JSON, json!(error.to_problem())),
            Dialect::OpenAi => {
                // A spent budget is what OpenAI calls `insufficient_quota`: a 429 its SDKs surface
                // as a rate-limit error (not retried: see `render_errors`).
                if let ApiError::BudgetExceeded(message) = error {
                    let body = json!({"error": {"message": message, "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}});
                    return (StatusCode::TOO_MANY_REQUESTS, "application/json", body);
                }
                // The SDKs retry 409 whatever the header says; nothing here is a retryable conflict.
                let status = if status == StatusCode::CONFLICT { StatusCode::BAD_REQUEST } else { status };
                (status, "application/json", json!({ "error": error.to_problem().error }))
            }
            Dialect::ElevenLabs => {
                let field =
                    |path: Vec<Value>, message: &str| json!({"loc": path, "msg": message, "type": "value_error"});
                if let Some(fields) = error.field_errors() {
                    let mut detail: Vec<Value> =
                        fields.iter().map(|f| field(elevenlabs_loc(&f.path), &f.message)).collect();
                    // Several of the gateway's fields can be one of ElevenLabs' (every dialogue
                    // input inherits `language_code`): each problem once.
                    let mut seen = std::collections::HashSet::new();
                    detail.retain(|entry| seen.insert(entry.to_string()));
                    return (StatusCode::UNPROCESSABLE_ENTITY, "application/json", json!({ "detail": detail }));
                }
                // ElevenLabs refusing a request keeps its own status and slug through the gateway,
                // so that its SDKs raise what they would have raised talking to it directly.
                if let Some((upstream, code)) = error.upstream_refusal() {
                    let message = error.to_string();
                    if upstream == StatusCode::UNPROCESSABLE_ENTITY {
                        let detail = json!([field(vec![json!("body")], &message)]);
                        return (upstream, "application/json", json!({ "detail": detail }));
                    }
                    let slug = code.unwrap_or_else(|| error.code());
                    return (upstream, "application/json", json!({"detail": {"status": slug, "message": message}}));
                }
                // ElevenLabs answers a spent quota with 401 `quota_exceeded`, which its clients know.
                if let ApiError::BudgetExceeded(message) = error {
                    let detail = json!({"detail": {"status": "quota_exceeded", "message": message}});
                    return (StatusCode::UNAUTHORIZED, "application/json", detail);
                }
                let slug = match error {
                    ApiError::Unauthorized(_) => "invalid_api_key",
                    ApiError::TooManyConcurrent(_) => "too_many_concurrent_requests",
                    ApiError::Overloaded => "system_busy",
                    other => other.code(),
                };
                (status, "application/json", json!({"detail": {"status": slug, "message": error.to_string()}}))
            }
            Dialect::PlayHt => {
                (status, "application/json", json!({"error_message": error.to_string(), "error_id": error.code()}))
            }
        }
    }
}

/// FastAPI's `loc`: where the field was (`body`, `query`, `path`), then its path. Paths the
/// facades build for query and path parameters start with `query` or `path` already.
fn elevenlabs_loc(path: &[PathSegment]) -> Vec<Value> {
    let located = matches!(path.first(), Some(PathSegment::Field(first)) if first == "query" || first == "path");
    let mut loc = if located { Vec::new() } else { vec![json!("body")] };
    loc.extend(path.iter().map(|segment| match segment {
        PathSegment::Field(name) => json!(name),
        PathSegment::Index(i) => json!(i),
    }));
    loc
}

/// Response extension: the error a failed response stands for, not yet rendered.
#[derive(Debug, Clone)]
pub struct Failure(pub Arc<ApiError>);

/// Writes the body of a failed response in its route's dialect. Installed twice with the same
/// effect: inside the meter, so that usage records the status the client gets, and outermost, for
/// the failures decided before the meter (authentication, load shedding). Whichever sees the
/// failure first renders it.
pub async fn render_errors(req: Request, next: Next) -> Response {
    let dialect = Dialect::of_path(req.uri().path());
    let mut response = next.run(req).await;
    let Some(Failure(error)) = response.extensions_mut().remove::<Failure>() else {
        return response;
    };
    let (status, content_type, body) = dialect.render(&error);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if (status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS) && !error.retryable() {
        // The OpenAI SDKs retry every 5xx and 429 unless told not to, on `/v1` as well as on
        // their drop-in; other clients ignore the header.
        headers.insert("x-should-retry", HeaderValue::from_static("false"));
    }
    *response.body_mut() = Body::from(serde_json::to_vec(&body).unwrap_or_default());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FieldError;

    #[test]
    fn paths_choose_dialects_at_segment_boundaries() {
        assert_eq!(Dialect::of_path("/openai/v1/audio/speech"), Dialect::OpenAi);
        assert_eq!(Dialect::of_path("/elevenlabs/v1/voices"), Dialect::ElevenLabs);
        assert_eq!(Dialect::of_path("/playai/api/v1/tts/stream"), Dialect::PlayHt);
        assert_eq!(Dialect::of_path("/playht"), Dialect::PlayHt);
        assert_eq!(Dialect::of_path("/openaiX/v1"), Dialect::Problem);
        assert_eq!(Dialect::of_path("/v1/audio/speech"), Dialect::Problem);
    }

    #[test]
    fn elevenlabs_validation_is_fastapi_shaped() {
        let error = ApiError::Validation(vec![
            FieldError::new("text", "is required"),
            FieldError {
                path: vec![PathSegment::Field("query".into()), PathSegment::Field("output_format".into())],
                message: "bad".into(),
            },
        ]);
        let (status, _, body) = Dialect::ElevenLabs.render(&error);
        assert_eq!(status, 422);
        assert_eq!(body["detail"][0]["loc"], json!(["body", "text"]));
        assert_eq!(body["detail"][1]["loc"], json!(["query", "output_format"]));
        let (status, _, body) = Dialect::ElevenLabs.render(&ApiError::Unauthorized("no".into()));
        assert_eq!(status, 401);
        assert_eq!(body["detail"]["status"], "invalid_api_key");
    }

    #[test]
    fn openai_errors_have_all_four_members() {
        let (status, _, body) = Dialect::OpenAi.render(&ApiError::Conflict("taken".into()));
        assert_eq!(status, 400);
        let error = body["error"].as_object().unwrap();
        for member in ["message", "type", "param", "code"] {
            assert!(error.contains_key(member), "{body}");
        }
    }
}
