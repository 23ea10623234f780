//! The one error type at the HTTP boundary and its one body: `application/problem+json`
//! (RFC 9457). Every failure a client can see — extractor rejections, auth, unknown routes,
//! panics — becomes an [`ApiError`] and is rendered here. Rendering has no side effects: the
//! error slug and any internal cause travel in response extensions to the observe middleware,
//! which logs each failure once.

use std::{sync::Arc, time::Duration};

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::dialect::Failure;
use crate::{
    auth::{AuthError, Refusal},
    domain::{FieldError, PathSegment, Scope},
    providers::ProviderError,
    service::{moderation::Blocked, ServiceError},
    store::StoreError,
};

tokio::task_local! {
    /// The current request's id, set by the observe middleware so every problem body carries it.
    pub static REQUEST_ID: String;
}

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{}", describe_fields(.0))]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unauthorized(String),
    #[error("this API key lacks the `{}` scope", .0.as_str())]
    InsufficientScope(Scope),
    #[error("the admin API is disabled: set SPEECHGATE_ADMIN_TOKEN to enable it")]
    AdminDisabled,
    #[error("{0}")]
    NotFound(String),
    /// A `voiceId` that names no saved voice of the caller's, with its path.
    #[error("{}", describe_fields(std::slice::from_ref(.0)))]
    VoiceNotFound(FieldError),
    #[error("no route for {method} {path}")]
    RouteNotFound { method: String, path: String },
    #[error("this route does not accept the {0} method")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the request body exceeds the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body did not arrive within {} s", .0.as_secs())]
    BodyTimeout(Duration),
    #[error("rate limit exceeded; retry in {} s", retry_after_secs(*.0))]
    RateLimited(Duration),
    #[error("this API key already has {0} requests in flight, its limit; retry when one ends")]
    TooManyConcurrent(usize),
    /// One request larger than a per-minute limit of its key: it can never pass as it is.
    #[error("{0}")]
    OverLimit(String),
    /// The request would cross a monthly budget of its key.
    #[error("{0}")]
    BudgetExceeded(String),
    /// A quota of stored things (not of requests) is used up.
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("too many failed authentications from this address; retry in {} s", retry_after_secs(*.0))]
    AuthThrottled(Duration),
    #[error("the gateway is at its limit of concurrent requests; retry shortly")]
    Overloaded,
    #[error("usage records are waiting to be written; retry shortly")]
    UsageBacklog,
    /// The gateway is shutting down: `/readyz` says so, so that load balancers stop sending.
    #[error("the gateway is shutting down; retry on another replica")]
    Draining,
    #[error("the database is unavailable; retry shortly")]
    DatabaseUnavailable(String),
    #[error("{0}")]
    UnknownModel(String),
    /// A provider failed; the status says whose fault it is (a vendor refusing the gateway's
    /// own credential is the operator's misconfiguration: 502, not 401).
    #[error("{0}")]
    Provider(ProviderError),
    /// Native word timing was asked for and the provider has none.
    #[error("{0} reports no word timing; ask with \"timestamps\": \"auto\" for estimated times")]
    TimestampsUnavailable(String),
    /// Content moderation refused the text (400), or could not check it and the gateway fails
    /// closed (503).
    #[error("{0}")]
    ContentModeration(Blocked),
    /// One turn of a conversation failed: the problem is the turn's, with its `turn_index`.
    #[error("turn {index}: {error}")]
    Turn { index: usize, error: Box<ApiError> },
    /// A status the framework produced that no other variant covers.
    #[error("{detail}")]
    Http { status: StatusCode, detail: String },
    /// A feature this deployment has not enabled (provider keys without a master key).
    #[error("{0}")]
    NotConfigured(String),
    /// The project's own vendor key is stored but this gateway cannot open it.
    #[error("{0}")]
    ProviderKeyUnusable(String),
    /// A bug or an unexpected failure. The cause is logged, never sent.
    #[error("an internal error occurred; quote the request id when reporting it")]
    Internal(String),
}

/// `name: must be ...` for one field; the first and a count for several.
fn describe_fields(fields: &[FieldError]) -> String {
    let Some(first) = fields.first() else {
        return "the request is not valid".to_owned();
    };
    let path = dotted(&first.path);
    let path = if path.is_empty() { "body".to_owned() } else { path };
    match fields.len() {
        1 => format!("{path}: {}", first.message),
        n => format!("{path}: {} (and {} more)", first.message, n - 1),
    }
}

fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::InsufficientScope(_) | ApiError::AdminDisabled => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::VoiceNotFound(_) | ApiError::RouteNotFound { .. } => {
                StatusCode::NOT_FOUND
            }
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::RateLimited(_)
            | ApiError::TooManyConcurrent(_)
            | ApiError::OverLimit(_)
            | ApiError::AuthThrottled(_)
            | ApiError::QuotaExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BudgetExceeded(_) => StatusCode::PAYMENT_REQUIRED,
            ApiError::Overloaded | ApiError::UsageBacklog | ApiError::Draining => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::DatabaseUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::UnknownModel(_) => StatusCode::NOT_FOUND,
            ApiError::Provider(e) => match e {
                ProviderError::Rejected { status: 404, .. } => StatusCode::NOT_FOUND,
                ProviderError::Rejected { .. } => StatusCode::BAD_REQUEST,
                ProviderError::Unauthorized { .. }
                | ProviderError::Interrupted { .. }
                | ProviderError::Invalid { .. } => StatusCode::BAD_GATEWAY,
                ProviderError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
                ProviderError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                ProviderError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            },
            ApiError::TimestampsUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            // A failed check says nothing about the text: the gateway's dependency is down, and
            // the same request may pass once it is back (Speechbase answers 403, which clients
            // take as final).
            ApiError::ContentModeration(Blocked::FailedClosed(_)) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::ContentModeration(Blocked::Flagged { .. }) => StatusCode::BAD_REQUEST,
            ApiError::NotConfigured(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::ProviderKeyUnusable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Turn { error, .. } => error.status(),
            ApiError::Http { status, .. } => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine slug: the `code` member, and the label on error metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Validation(_) => "validation_failed",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::InsufficientScope(_) => "insufficient_scope",
            ApiError::AdminDisabled => "admin_api_disabled",
            ApiError::NotFound(_) => "not_found",
            ApiError::VoiceNotFound(_) => "voice_not_found",
            ApiError::RouteNotFound { .. } => "route_not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::BodyTimeout(_) => "request_timeout",
            ApiError::RateLimited(_) | ApiError::OverLimit(_) => "rate_limited",
            ApiError::BudgetExceeded(_) => "budget_exceeded",
            ApiError::TooManyConcurrent(_) => "too_many_concurrent_requests",
            ApiError::QuotaExceeded(_) => "quota_exceeded",
            ApiError::AuthThrottled(_) => "auth_throttled",
            ApiError::Overloaded => "overloaded",
            ApiError::UsageBacklog => "usage_backlog",
            ApiError::Draining => "draining",
            ApiError::DatabaseUnavailable(_) => "database_unavailable",
            ApiError::UnknownModel(_) => "unknown_model",
            ApiError::Provider(e) => e.code(),
            ApiError::TimestampsUnavailable(_) => "timestamps_unavailable",
            ApiError::ContentModeration(_) => "content_moderation_blocked",
            ApiError::NotConfigured(_) => "not_configured",
            ApiError::ProviderKeyUnusable(_) => "provider_key_unusable",
            ApiError::Turn { error, .. } => error.code(),
            ApiError::Http { .. } => "http_error",
            ApiError::Internal(_) => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "Malformed JSON",
            ApiError::UnsupportedMediaType(_) => "Unsupported media type",
            ApiError::Validation(_) => "Validation failed",
            ApiError::Unauthorized(_) => "Unauthorized",
            ApiError::InsufficientScope(_) => "Insufficient scope",
            ApiError::AdminDisabled => "Admin API disabled",
            ApiError::NotFound(_) => "Not found",
            ApiError::VoiceNotFound(_) => "Voice not found",
            ApiError::RouteNotFound { .. } => "Route not found",
            ApiError::MethodNotAllowed(_) => "Method not allowed",
            ApiError::Conflict(_) => "Conflict",
            ApiError::PayloadTooLarge(_) => "Payload too large",
            ApiError::BodyTimeout(_) => "Request timeout",
            ApiError::RateLimited(_)
            | ApiError::TooManyConcurrent(_)
            | ApiError::OverLimit(_)
            | ApiError::AuthThrottled(_) => "Rate limited",
            ApiError::BudgetExceeded(_) => "Budget exceeded",
            ApiError::QuotaExceeded(_) => "Quota exceeded",
            ApiError::Overloaded | ApiError::UsageBacklog | ApiError::Draining => "Service unavailable",
            ApiError::DatabaseUnavailable(_) => "Service unavailable",
            ApiError::UnknownModel(_) => "Unknown model",
            ApiError::Provider(_) => "Provider error",
            ApiError::TimestampsUnavailable(_) => "Timestamps unavailable",
            ApiError::ContentModeration(_) => "Content moderation blocked",
            ApiError::NotConfigured(_) => "Not configured",
            ApiError::ProviderKeyUnusable(_) => "Provider key unusable",
            ApiError::Turn { error, .. } => error.title(),
            ApiError::Http { status, .. } => status.canonical_reason().unwrap_or("HTTP error"),
            ApiError::Internal(_) => "Internal error",
        }
    }

    /// The invalid fields, for errors that are about the request's fields.
    pub fn field_errors(&self) -> Option<Vec<FieldError>> {
        match self {
            ApiError::Validation(fields) => Some(fields.clone()),
            ApiError::MalformedJson(detail) => Some(vec![FieldError { path: Vec::new(), message: detail.clone() }]),
            ApiError::Turn { error, .. } => error.field_errors(),
            _ => None,
        }
    }

    /// A provider's judgement of the request itself — 400, 404 or 422 — with its own (scrubbed)
    /// error code. Other refusals (402 for the operator's account, 405 or 407 from a
    /// misconfigured address) say nothing about the caller's request and are not passed on.
    pub fn upstream_refusal(&self) -> Option<(StatusCode, Option<&str>)> {
        match self {
            ApiError::Provider(ProviderError::Rejected { status: status @ (400 | 404 | 422), code, .. }) => {
                Some((StatusCode::from_u16(*status).ok()?, code.as_deref()))
            }
            ApiError::Turn { error, .. } => error.upstream_refusal(),
            _ => None,
        }
    }

    /// Whether the same request may succeed if simply sent again later.
    pub fn retryable(&self) -> bool {
        match self {
            ApiError::RateLimited(_)
            | ApiError::TooManyConcurrent(_)
            | ApiError::AuthThrottled(_)
            | ApiError::Overloaded
            | ApiError::UsageBacklog
            | ApiError::Draining
            | ApiError::DatabaseUnavailable(_)
            | ApiError::BodyTimeout(_)
            | ApiError::ContentModeration(Blocked::FailedClosed(_)) => true,
            ApiError::Provider(e) => matches!(
                e,
                ProviderError::RateLimited { .. }
                    | ProviderError::Unavailable { .. }
                    | ProviderError::Timeout { .. }
                    | ProviderError::Interrupted { .. }
            ),
            ApiError::Turn { error, .. } => error.retryable(),
            _ => false,
        }
    }

    /// The cause to log (never sent to the client).
    fn cause(&self) -> Option<&str> {
        match self {
            ApiError::DatabaseUnavailable(cause) | ApiError::Internal(cause) => Some(cause),
            ApiError::Turn { error, .. } => error.cause(),
            _ => None,
        }
    }

    pub fn to_problem(&self) -> Problem {
        if let ApiError::Turn { index, error } = self {
            let mut problem = error.to_problem();
            problem.turn_index = Some(*index);
            problem.detail = self.to_string();
            problem.error.message = problem.detail.clone();
            return problem;
        }
        let code = self.code();
        let (provider, upstream_status, upstream_code) = match self {
            ApiError::Provider(e) => {
                let (status, code) = match e {
                    ProviderError::Rejected { status, code, .. } | ProviderError::Unauthorized { status, code, .. } => {
                        (Some(*status), code.clone())
                    }
                    ProviderError::RateLimited { code, .. } => (Some(429), code.clone()),
                    ProviderError::Unavailable { status, code, .. } => (*status, code.clone()),
                    ProviderError::Timeout { .. }
                    | ProviderError::Interrupted { .. }
                    | ProviderError::Invalid { .. } => (None, None),
                };
                (Some(e.provider().to_owned()), status, code)
            }
            _ => (None, None, None),
        };
        let validation = match self {
            ApiError::Validation(fields) => fields.clone(),
            ApiError::VoiceNotFound(field) => vec![field.clone()],
            _ => Vec::new(),
        };
        let status = self.status();
        let reason = match self {
            ApiError::ContentModeration(blocked @ Blocked::Flagged { categories }) => {
                Some(json!({"type": blocked.reason_type(), "categories": categories}))
            }
            ApiError::ContentModeration(blocked @ Blocked::FailedClosed(failure)) => {
                Some(json!({"type": blocked.reason_type(), "detail": failure.to_string()}))
            }
            _ => None,
        };
        let error = OpenAiError {
            message: self.to_string(),
            kind: match status.as_u16() {
                401 => "authentication_error",
                402 => "insufficient_quota",
                403 => "permission_error",
                429 => "rate_limit_error",
                500..=599 => "server_error",
                _ => "invalid_request_error",
            },
            param: validation.first().map(|f| dotted(&f.path)),
            code,
            reason,
        };
        Problem {
            type_: format!("urn:speechgate:problem:{code}"),
            title: self.title().to_owned(),
            status: self.status().as_u16(),
            detail: self.to_string(),
            code: code.to_owned(),
            request_id: REQUEST_ID.try_with(Clone::clone).ok(),
            validation,
            provider,
            upstream_status,
            upstream_code,
            turn_index: None,
            error,
        }
    }
}

/// RFC 9457 problem details, as every error response carries them.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "type": "urn:speechgate:problem:validation_failed",
    "title": "Validation failed",
    "status": 400,
    "detail": "the request is not valid",
    "code": "validation_failed",
    "requestId": "01933c52-7f0e-7b3a-9c1e-2f4d5a6b7c8d",
    "validation": [{"path": ["scopes", 0], "message": "unknown variant `speak`"}]
}))]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:speechgate:problem:<code>`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    /// What went wrong, for people.
    pub detail: String,
    /// Stable machine slug, e.g. `validation_failed`, `unauthorized`, `rate_limited`.
    pub code: String,
    /// The `x-request-id` of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// One entry per invalid field, located by its path in the request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub validation: Vec<FieldError>,
    /// The provider that failed, for upstream errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The provider's HTTP status.
    #[serde(rename = "upstream_status", skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    /// The provider's own error code.
    #[serde(rename = "upstream_code", skip_serializing_if = "Option::is_none")]
    pub upstream_code: Option<String>,
    /// The conversation turn that failed (0-based), as Speechbase names it.
    #[serde(rename = "turn_index", skip_serializing_if = "Option::is_none")]
    pub turn_index: Option<usize>,
    /// The same error in OpenAI's shape, so OpenAI SDKs pointed at the gateway report it.
    pub error: OpenAiError,
}

/// `{"message", "type", "param", "code"}` as OpenAI's SDKs read it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpenAiError {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The first invalid field, dotted (`voice`, `output.sampleRate`).
    pub param: Option<String>,
    pub code: &'static str,
    /// Why content moderation refused the request (`content_moderation_blocked` only), as
    /// Speechbase sends it: `{"type": "flagged", "categories": [...]}` or
    /// `{"type": "error_fail_closed", "detail"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub reason: Option<serde_json::Value>,
}

/// `scopes[1]`, `output.sampleRate`.
fn dotted(path: &[PathSegment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            PathSegment::Field(name) if out.is_empty() => out.push_str(name),
            PathSegment::Field(name) => {
                out.push('.');
                out.push_str(name);
            }
            PathSegment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Response extension: the error slug of a failed response, for metrics, usage and logs.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

/// Response extension: an internal cause to log once.
#[derive(Debug, Clone)]
pub struct ErrorCause(pub String);

/// The response for an error: status, headers and the error itself as a [`Failure`] extension.
/// The body is written by `dialect::render_errors`, in the dialect of the route that failed.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status().into_response();
        if let ApiError::Unauthorized(_) = self {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        let wait = match &self {
            ApiError::RateLimited(wait) | ApiError::AuthThrottled(wait) => Some(*wait),
            ApiError::TooManyConcurrent(_)
            | ApiError::Overloaded
            | ApiError::UsageBacklog
            | ApiError::ContentModeration(Blocked::FailedClosed(_)) => Some(Duration::from_secs(1)),
            ApiError::Provider(ProviderError::RateLimited { retry_after, .. }) => *retry_after,
            _ => None,
        };
        if let Some(wait) = wait {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs(wait)));
        }
        response.extensions_mut().insert(ErrorCode(self.code()));
        if let Some(cause) = self.cause() {
            response.extensions_mut().insert(ErrorCause(cause.to_owned()));
        }
        response.extensions_mut().insert(Failure(Arc::new(self)));
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(what) => ApiError::Conflict(format!("a resource with this {what} already exists")),
            unavailable if unavailable.is_unavailable() => ApiError::DatabaseUnavailable(unavailable.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Validation(fields) => ApiError::Validation(fields),
            ServiceError::NotFound { .. } => ApiError::NotFound(err.to_string()),
            ServiceError::VoiceNotFound(field) => ApiError::VoiceNotFound(field),
            ServiceError::Store(e) => e.into(),
            ServiceError::UnknownModel(detail) => ApiError::UnknownModel(detail),
            ServiceError::Provider(e) => ApiError::Provider(e),
            ServiceError::TimestampsUnavailable(provider) => ApiError::TimestampsUnavailable(provider),
            ServiceError::Moderation(blocked) => ApiError::ContentModeration(blocked),
            ServiceError::Turn { index, error } => ApiError::Turn { index, error: Box::new((*error).into()) },
            ServiceError::NotConfigured(detail) => ApiError::NotConfigured(detail.to_owned()),
            ServiceError::ProviderKeyUnusable(detail) => ApiError::ProviderKeyUnusable(detail),
            ServiceError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::RateLimited { wait, .. } => ApiError::RateLimited(wait),
            Refusal::LargerThanLimit { .. } => ApiError::OverLimit(refusal.to_string()),
            Refusal::TooManyConcurrent(max) => ApiError::TooManyConcurrent(max),
            Refusal::Budget(detail) => ApiError::BudgetExceeded(detail),
            Refusal::Store(e) => e.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Missing
            | AuthError::Invalid
            | AuthError::Revoked
            | AuthError::Expired
            | AuthError::TokenExpired => ApiError::Unauthorized(err.to_string()),
            AuthError::AdminDisabled => ApiError::AdminDisabled,
            AuthError::Throttled(wait) => ApiError::AuthThrottled(wait),
            AuthError::Store(e) => e.into(),
            AuthError::Unavailable => ApiError::DatabaseUnavailable(err.to_string()),
        }
    }
}
