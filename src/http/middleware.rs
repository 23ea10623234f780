//! The cross-cutting layers, in the order `router()` stacks them (outermost first):
//! observe → render_errors → admit → refuse_control_characters → authenticate → meter →
//! render_errors → rate_limit → catch_panic → normalize_errors → route.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use axum::{
    body::{Body, Bytes},
    extract::{ConnectInfo, MatchedPath, Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http_body::{Frame, SizeHint};
use tracing::Instrument;

use super::{
    client,
    dialect::Dialect,
    problem::{ApiError, ErrorCause, ErrorCode, REQUEST_ID},
    AppState,
};
use crate::{
    auth::{AuthError, Gate, Principal, Purpose, Quota, Refusal, Slot},
    domain::{ApiKey, FieldError, Scope},
    metrics::{ErrorLabels, RequestLabels},
    service::usage::{Meter, MeterStart, UsageDetails},
};

/// Routes anyone may call. Every other route needs a credential (default deny).
pub const PUBLIC_ROUTES: &[&str] =
    &["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/", "/docs/{*rest}"];

/// Routes that also take a signed URL token (`?token=`, see `auth::signed`) in place of a key,
/// each a token of its purpose: the URLs handed to clients that cannot send headers.
pub const TOKEN_ROUTES: &[(&str, Purpose)] = &[
    ("/playht/api/v4/inference/{model}/stream", Purpose::PlayHt),
    ("/playht/api/v4/inference/{model}/", Purpose::PlayHt),
    ("/playht/api/v4/inference/{model}/ws", Purpose::PlayHt),
    ("/v1/audio/speech/websocket", Purpose::Socket),
];

/// Routes under this prefix take the admin token (or a key with the `admin` scope).
pub const ADMIN_PREFIX: &str = "/admin/";

/// The request's id, from a well-formed `x-request-id` or freshly generated.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn route_of(req: &Request) -> String {
    req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned())
}

/// The method as a metric label and in usage events: the standard methods by name, anything
/// made up as `OTHER`, so a client cannot create new series on the public `/metrics`.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN.iter().find(|known| *known == method).map_or("OTHER", Method::as_str)
}

fn accept_request_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("x-request-id")?.to_str().ok()?;
    let ok = !value.is_empty()
        && value.len() <= 128
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| value.to_owned())
}

/// Decrements the in-flight gauge even when the request future is dropped.
struct InFlight<'a>(&'a prometheus_client::metrics::gauge::Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Outermost: request id (task-local for problem bodies, echoed in `x-request-id`), the request
/// span, metrics, and one log line per request — the only place failures are logged.
pub async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let request_id = accept_request_id(req.headers()).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let route = route_of(&req);
    let method = method_label(req.method()).to_owned();
    let span = tracing::info_span!("request", request_id = %request_id, %method, %route);
    let started = Instant::now();
    state.metrics.in_flight.inc();
    let _in_flight = InFlight(&state.metrics.in_flight);

    let mut response = REQUEST_ID.scope(request_id.clone(), next.run(req)).instrument(span.clone()).await;

    let elapsed = started.elapsed();
    let status = response.status();
    let labels = RequestLabels { method, route: route.clone(), status: status.as_u16() };
    state.metrics.requests.get_or_create(&labels).inc();
    state.metrics.request_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    let code = response.extensions().get::<ErrorCode>().map(|c| c.0);
    if let Some(code) = code {
        state.metrics.errors.get_or_create(&ErrorLabels { route, code: code.to_owned() }).inc();
    }
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    span.in_scope(|| match response.extensions().get::<ErrorCause>() {
        Some(cause) => tracing::error!(status = status.as_u16(), code, latency_ms, cause = %cause.0, "request failed"),
        None if status.is_server_error() => {
            tracing::error!(status = status.as_u16(), code, latency_ms, "request failed")
        }
        None if status.is_client_error() => {
            tracing::warn!(status = status.as_u16(), code, latency_ms, "request rejected")
        }
        None => tracing::info!(status = status.as_u16(), latency_ms, "request served"),
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The global limit on requests in progress: beyond it, 503 `overloaded` before any work (not
/// metered: nothing was done). A permit is held until the response body has ended. The public
/// routes that touch nothing but memory are exempt, so that a saturated gateway still reports
/// its liveness and metrics; `/readyz` (a database round trip) is not.
pub async fn admit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let exempt = req
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|route| route.as_str() != "/readyz" && PUBLIC_ROUTES.contains(&route.as_str()));
    if exempt {
        return next.run(req).await;
    }
    let Ok(permit) = state.requests.clone().try_acquire_owned() else {
        state.metrics.shed("overloaded");
        return ApiError::Overloaded.into_response();
    };
    hold_until_body_ends(next.run(req).await, permit)
}

/// Path segments and query parameters reach database queries and logs: none may hold a control
/// character once percent-decoded (a NUL in an id made PostgreSQL fail the query). A 400 names
/// the parameter.
pub async fn refuse_control_characters(req: Request, next: Next) -> Response {
    // A URI cannot carry a raw control character: only a percent-escape can make one.
    let escaped = req.uri().path().contains('%') || req.uri().query().is_some_and(|q| q.contains('%'));
    if !escaped {
        return next.run(req).await;
    }
    let control = |text: &str| text.chars().any(char::is_control);
    let path = percent_encoding::percent_decode_str(req.uri().path()).decode_utf8_lossy();
    let mut bad = control(&path).then(|| "path".to_owned());
    if let Some(query) = req.uri().query().filter(|_| bad.is_none()) {
        bad = form_urlencoded::parse(query.as_bytes())
            .find(|(name, value)| control(name) || control(value))
            .map(|(name, _)| name.chars().filter(|c| !c.is_control()).take(64).collect());
    }
    match bad {
        Some(field) => {
            ApiError::Validation(vec![FieldError::new(&field, "must not contain control characters")]).into_response()
        }
        None => next.run(req).await,
    }
}

/// The credential a request carries: `Authorization: Bearer`, or the vendor-style
/// `xi-api-key` / `X-API-Key` headers that the facades' SDKs send. PlayHT's clients send the bare
/// key as `Authorization: <key>` (with `X-USER-ID`); that form counts on its routes only.
fn credential(headers: &HeaderMap, dialect: Dialect) -> Option<&str> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        return match value.split_once(' ') {
            Some((scheme, token)) => scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()),
            None => (dialect == Dialect::PlayHt).then_some(value),
        };
    }
    ["xi-api-key", "x-api-key"].iter().find_map(|name| headers.get(*name)?.to_str().ok()).map(str::trim)
}

/// Default deny: every matched route that is not in [`PUBLIC_ROUTES`] needs a valid credential.
/// Unmatched paths fall through to the 404 fallback (the route table is public in the OpenAPI
/// document anyway).
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Result<Response, ApiError> {
    let Some(route) = req.extensions().get::<MatchedPath>() else {
        return Ok(next.run(req).await);
    };
    if PUBLIC_ROUTES.contains(&route.as_str()) {
        return Ok(next.run(req).await);
    }
    let admin_route = route.as_str().starts_with(ADMIN_PREFIX);
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|peer| client::throttle_key(client::client_address(peer.0.ip(), req.headers(), &state.trusted_proxies)));
    let purpose = TOKEN_ROUTES.iter().find(|(path, _)| *path == route.as_str()).map(|(_, purpose)| *purpose);
    let token = purpose.and_then(|purpose| {
        let query = req.uri().query().unwrap_or("");
        form_urlencoded::parse(query.as_bytes()).find(|(name, _)| name == "token").map(|(_, token)| (purpose, token))
    });
    let principal = match token {
        Some((purpose, token)) => state.auth.authenticate_token(purpose, &token, client).await,
        None => {
            let dialect = Dialect::of_path(req.uri().path());
            state.auth.authenticate(credential(req.headers(), dialect), admin_route, client).await
        }
    };
    if let Err(AuthError::Throttled(_)) = &principal {
        state.metrics.shed("auth_throttled");
    }
    req.extensions_mut().insert(principal?);
    Ok(next.run(req).await)
}

/// One usage event for every authenticated request, emitted when its body ends or is dropped.
pub async fn meter(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(principal) = req.extensions().get::<Principal>() else {
        return next.run(req).await;
    };
    // Refused before any work, so no usage to record: the backlog stays bounded (see UsageSink).
    if state.usage.is_full() {
        state.metrics.shed("usage_backlog");
        return ApiError::UsageBacklog.into_response();
    }
    let details = UsageDetails::default();
    let mut meter = Meter::new(
        state.usage.clone(),
        MeterStart {
            request_id: req.extensions().get::<RequestId>().map(|id| id.0.clone()).unwrap_or_default(),
            key_id: principal.key_id().map(str::to_owned),
            project_id: principal.project_id().map(str::to_owned),
            route: route_of(&req),
            method: method_label(req.method()).to_owned(),
            started: Instant::now(),
        },
        details.clone(),
    );
    req.extensions_mut().insert(details);
    // If the client goes away now, this future is dropped and so is `meter`, which records it.
    let response = next.run(req).await;
    meter.respond(response.status().as_u16(), response.extensions().get::<ErrorCode>().map(|c| c.0.to_owned()));
    response.map(|body| {
        if http_body::Body::is_end_stream(&body) {
            meter.finish();
            body
        } else {
            Body::new(MeteredBody { inner: body, meter })
        }
    })
}

pin_project_lite::pin_project! {
    /// Counts the bytes and first-byte time of a response body and finishes its meter.
    struct MeteredBody {
        #[pin]
        inner: Body,
        meter: Meter,
    }
}

impl http_body::Body for MeteredBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        let polled = inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.meter.sent(data.len());
                }
                // hyper stops polling a body that says it has ended, so finish here, not at `None`.
                if inner.is_end_stream() {
                    this.meter.finish();
                }
            }
            // An error mid-body leaves the meter unfinished; dropping it records the interruption.
            Poll::Ready(Some(Err(_))) | Poll::Pending => return polled,
            Poll::Ready(None) => this.meter.finish(),
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The key's per-minute request limit and its limit of requests in progress; then the request
/// carries its key's limits (a [`Gate`]) to the handler that learns its characters, and the
/// response the `RateLimit-*` headers of the limit closest to exhaustion, when the key has one.
/// Inside `meter`, so a limited request is still metered.
pub async fn rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(Principal::Key(key)) = req.extensions().get::<Principal>().cloned() else {
        return next.run(req).await;
    };
    let (slot, gate) = match enter_limits(&state, &key).await {
        Ok(entered) => entered,
        Err((error, quota)) => {
            let mut response = error.into_response();
            if let Some(quota) = quota {
                quota_headers(response.headers_mut(), quota);
            }
            return response;
        }
    };
    if let Some(details) = req.extensions().get::<UsageDetails>() {
        details.set_gate(gate.clone());
    }
    let mut response = next.run(req).await;
    if let Some(quota) = gate.quota() {
        quota_headers(response.headers_mut(), quota);
    }
    hold_until_body_ends(response, slot)
}

/// Counts one request of `key` against its rate limit and takes its place among the key's
/// requests in progress. A refusal comes with the quota that refused it, when there is one.
pub(super) async fn enter_limits(
    state: &AppState,
    key: &Arc<ApiKey>,
) -> Result<(Slot, Arc<Gate>), (ApiError, Option<Quota>)> {
    let quota = state.limits.check_rate(key).await.map_err(|refusal| {
        let quota = match &refusal {
            Refusal::RateLimited { quota, .. } => Some(*quota),
            _ => None,
        };
        (ApiError::from(refusal), quota)
    })?;
    let slot = state.limits.enter(key).await.map_err(|refusal| (ApiError::from(refusal), quota))?;
    Ok((slot, Arc::new(Gate::new(state.limits.clone(), key.clone(), quota))))
}

/// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds until the current
/// window ends), as the IETF draft on rate-limit headers defines them.
fn quota_headers(headers: &mut HeaderMap, quota: Quota) {
    let reset = quota.reset.as_secs() + u64::from(quota.reset.subsec_nanos() > 0);
    headers.insert("ratelimit-limit", HeaderValue::from(quota.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(quota.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(reset));
}

/// Keeps `guard` alive until the response body has been sent or abandoned, so that a streamed
/// response counts as in progress until its last byte.
fn hold_until_body_ends<G: Send + 'static>(response: Response, guard: G) -> Response {
    if http_body::Body::is_end_stream(response.body()) {
        return response;
    }
    response.map(|inner| Body::new(HeldBody { inner, _guard: guard }))
}

pin_project_lite::pin_project! {
    struct HeldBody<G> {
        #[pin]
        inner: Body,
        _guard: G,
    }
}

impl<G> http_body::Body for HeldBody<G> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Route-group guard: the caller must hold `scope`.
pub async fn require_scope(State(scope): State<Scope>, req: Request, next: Next) -> Result<Response, ApiError> {
    match req.extensions().get::<Principal>() {
        Some(principal) if principal.has_scope(scope) => Ok(next.run(req).await),
        Some(_) => Err(ApiError::InsufficientScope(scope)),
        None => Err(ApiError::Unauthorized("this route needs a credential".to_owned())),
    }
}

/// Innermost: turns the framework's own error responses (405 from the method router, and any
/// other bare 4xx/5xx) into problem+json, so no client ever sees a plain-text error.
pub async fn normalize_errors(req: Request, next: Next) -> Response {
    let method = method_label(req.method()).to_owned();
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || response.extensions().get::<ErrorCode>().is_some() {
        return response;
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        let allow = response.headers().get(header::ALLOW).cloned();
        let mut replaced = ApiError::MethodNotAllowed(method).into_response();
        if let Some(allow) = allow {
            replaced.headers_mut().insert(header::ALLOW, allow);
        }
        return replaced;
    }
    let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap_or_default();
    let detail = String::from_utf8_lossy(&body).trim().to_owned();
    ApiError::Http { status, detail: if detail.is_empty() { status.to_string() } else { detail } }.into_response()
}

/// The body of a response to a panicking handler.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    ApiError::Internal(format!("handler panicked: {message}")).into_response()
}
