//! What every HTTP adapter shares: sending under the provider's deadlines (connect, first byte,
//! idle between chunks, total), turning a vendor's error reply into a [`ProviderError`] (through
//! the adapter's own error parser), and turning a streamed body into audio events.

use std::time::Duration;

use tokio::time::Instant;

use futures::StreamExt;
use reqwest::{header::RETRY_AFTER, RequestBuilder, Response};
use secrecy::{ExposeSecret, SecretString};

use super::{EventStream, ProviderError, SynthesisEvent, TimeoutPhase};
use crate::config::Timeouts;

/// One provider instance's HTTP client and deadlines.
#[derive(Clone)]
pub struct Transport {
    pub http: reqwest::Client,
    pub timeouts: Timeouts,
}

impl Transport {
    /// The client a provider instance's calls use (its own: the connect timeout is the client's).
    /// It never follows a redirect: a vendor's 3xx is an invalid answer, so the credential
    /// headers never travel to another host.
    pub fn new(timeouts: Timeouts) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { http, timeouts })
    }
}

/// When a request was sent, kept on its response so that the body's first-byte and total
/// deadlines count from there.
#[derive(Clone, Copy)]
struct SentAt(Instant);

/// What a successful reply must carry, by its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Audio bytes: `audio/*` or `application/octet-stream`.
    Audio,
    /// JSON, NDJSON or server-sent events.
    Structured,
}

impl Expect {
    fn admits(self, content_type: Option<&str>) -> bool {
        // A reply without a Content-Type is judged by its body later (decoders, parsers).
        let Some(media) = content_type else {
            return true;
        };
        let media = media.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match self {
            Expect::Audio => media.starts_with("audio/") || media == "application/octet-stream",
            Expect::Structured => {
                [
                    "application/json",
                    "application/x-ndjson",
                    "application/jsonl",
                    // Polly's speech marks.
                    "application/x-json-stream",
                    "text/event-stream",
                    "text/plain",
                ]
                .contains(&media.as_str())
            }
        }
    }
}

/// How a vendor takes its API key: data each adapter declares once, so that [`Api::send_as`]
/// can put either the operator's key or a project's own in the one right place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// `Authorization: Token <key>`.
    Token,
    /// The key alone, in this header.
    Header(&'static str),
}

impl Auth {
    fn apply(self, request: RequestBuilder, key: &str) -> RequestBuilder {
        match self {
            Auth::Bearer => request.bearer_auth(key),
            Auth::Token => request.header(reqwest::header::AUTHORIZATION, format!("Token {key}")),
            Auth::Header(name) => request.header(name, key),
        }
    }
}

/// One vendor API instance: where it is, the gateway's key for it and how it is sent, and the
/// transport. Adapters build requests against it and send them through it, so that every
/// vendor call gets the same deadlines, error mapping, authentication and credential scrubbing.
pub struct Api {
    pub provider: String,
    base_url: String,
    /// `base_url` parsed once: parsing each request's URL from text was about 4% of the
    /// gateway's CPU time per request (BENCHMARKS.md).
    base: Option<reqwest::Url>,
    key: Option<SecretString>,
    auth: Auth,
    transport: Transport,
}

impl Api {
    pub fn new(provider: &str, base_url: &str, key: Option<SecretString>, auth: Auth, transport: Transport) -> Self {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let base = reqwest::Url::parse(&base_url).ok().filter(|url| url.query().is_none() && url.fragment().is_none());
        Self { provider: provider.to_owned(), base_url, base, key, auth, transport }
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(reqwest::Method::POST, path)
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(reqwest::Method::GET, path)
    }

    /// A request for `path` (a path only: queries go through `RequestBuilder::query`) under the
    /// base URL.
    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        match &self.base {
            Some(base) => {
                let mut url = base.clone();
                url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
                self.transport.http.request(method, url)
            }
            // Not a URL: reqwest reports it when the request is sent.
            None => self.transport.http.request(method, format!("{}{path}", self.base_url)),
        }
    }

    /// Sends a request built with [`Api::post`]/[`Api::get`] with the operator's key (see
    /// [`send`]).
    pub async fn send(&self, request: RequestBuilder, parse_error: ErrorParser) -> Result<Response, ProviderError> {
        self.send_as(request, None, parse_error).await
    }

    /// Sends a request with `credential` (a project's own key) when given, else with the
    /// operator's; whichever was sent is scrubbed from error details.
    pub async fn send_as(
        &self,
        request: RequestBuilder,
        credential: Option<&super::ProviderKey>,
        parse_error: ErrorParser,
    ) -> Result<Response, ProviderError> {
        let key = credential.map(super::ProviderKey::expose).or(self.key.as_ref().map(|k| k.expose_secret()));
        let request = match key {
            Some(key) => self.auth.apply(request, key),
            None => request,
        };
        let sent = send(&self.provider, request, self.transport.timeouts, parse_error, key.as_slice()).await;
        match (sent, credential) {
            // The vendor refused the project's own key: say so, so that the caller (not the
            // operator) knows whose key to fix.
            (Err(ProviderError::Unauthorized { provider, status, code, detail }), Some(_)) => {
                let detail =
                    format!("the project's own {provider} key (PUT /v1/api-keys/{provider}) was refused: {detail}");
                Err(ProviderError::Unauthorized { provider, status, code, detail })
            }
            (sent, _) => sent,
        }
    }

    /// Sends a request the adapter authenticated itself (an AWS signature over its bytes):
    /// nothing is added to it, and each of `secrets` is scrubbed from error details.
    pub async fn send_signed(
        &self,
        request: RequestBuilder,
        secrets: &[&str],
        parse_error: ErrorParser,
    ) -> Result<Response, ProviderError> {
        send(&self.provider, request, self.transport.timeouts, parse_error, secrets).await
    }

    /// A successful reply's body as raw events (see [`audio_stream`]), once its Content-Type
    /// says it is what the adapter asked for: an HTML page from a CDN is not audio.
    pub fn stream(&self, response: Response, expect: Expect) -> Result<EventStream, ProviderError> {
        self.check_type(&response, expect)?;
        Ok(audio_stream(&self.provider, response, self.transport.timeouts))
    }

    /// A reply's JSON body (at most [`MAX_JSON_BODY`] bytes), or `Invalid` when it is not the
    /// vendor's protocol.
    pub async fn json<T: serde::de::DeserializeOwned>(&self, response: Response) -> Result<T, ProviderError> {
        let body = self.body(response).await?;
        serde_json::from_slice(&body).map_err(|e| ProviderError::Invalid {
            provider: self.provider.clone(),
            detail: sanitize(&format!("unreadable reply: {e}")),
        })
    }

    /// A structured reply's whole body (JSON, NDJSON), at most [`MAX_JSON_BODY`] bytes, or
    /// `Invalid` when it is not the vendor's protocol or cannot be read in full in time.
    pub async fn body(&self, response: Response) -> Result<Vec<u8>, ProviderError> {
        self.check_type(&response, Expect::Structured)?;
        let (body, complete) = read_bounded(response, MAX_JSON_BODY, self.transport.timeouts.first_byte).await;
        if !complete {
            return Err(ProviderError::Invalid {
                provider: self.provider.clone(),
                detail: format!("the reply was not read in full (over {MAX_JSON_BODY} bytes, or too slow)"),
            });
        }
        Ok(body)
    }

    fn check_type(&self, response: &Response, expect: Expect) -> Result<(), ProviderError> {
        let content_type = response.headers().get(reqwest::header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("?"));
        if expect.admits(content_type) {
            return Ok(());
        }
        Err(ProviderError::Invalid {
            provider: self.provider.clone(),
            detail: format!(
                "answered {} with Content-Type {:?} where {} was expected",
                response.status().as_u16(),
                sanitize(content_type.unwrap_or_default()),
                match expect {
                    Expect::Audio => "audio",
                    Expect::Structured => "JSON or events",
                }
            ),
        })
    }

    /// The error for an output format the adapter cannot ask the vendor for.
    pub fn unsupported(&self, format: crate::domain::audio::AudioFormat) -> ProviderError {
        ProviderError::Rejected {
            provider: self.provider.clone(),
            status: 400,
            code: None,
            detail: format!("{} is not an output format of {}", format.as_str(), self.provider),
        }
    }
}

/// Longest vendor error text passed on to clients.
const MAX_DETAIL: usize = 300;
/// Longest vendor error code passed on.
const MAX_CODE: usize = 64;
/// Largest error body read from a vendor.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Largest JSON reply (a voice catalogue) read from a vendor.
pub const MAX_JSON_BODY: usize = 16 * 1024 * 1024;
/// Longest line of a streamed NDJSON or SSE body.
const MAX_LINE: usize = 8 * 1024 * 1024;
/// Longest `Retry-After` passed on; vendors have sent absurd values.
const MAX_RETRY_AFTER_SECS: f64 = 3600.0;

/// A vendor's error body, parsed: its machine code (if any) and its message.
pub type ErrorParser = fn(&[u8]) -> (Option<String>, Option<String>);

/// Sends `request`; waits for the response head at most `timeouts.first_byte` (which includes
/// connecting, itself bounded by `timeouts.connect`). A non-2xx answer becomes the matching
/// `ProviderError`, with the vendor's code and a sanitised message from which `secrets` (the
/// credentials the request carried) are removed wherever the vendor echoed them.
pub async fn send(
    provider: &str,
    request: RequestBuilder,
    timeouts: Timeouts,
    parse_error: ErrorParser,
    secrets: &[&str],
) -> Result<Response, ProviderError> {
    let sent_at = Instant::now();
    let timeout = timeouts.first_byte.min(timeouts.total);
    let timed_out = |phase, timeout| ProviderError::Timeout { provider: provider.to_owned(), phase, timeout };
    let mut response = match tokio::time::timeout(timeout, request.send()).await {
        Err(_) => return Err(timed_out(TimeoutPhase::FirstByte, timeout)),
        Ok(Err(err)) if err.is_timeout() && err.is_connect() => {
            return Err(timed_out(TimeoutPhase::Connect, timeouts.connect));
        }
        Ok(Err(err)) if err.is_timeout() => return Err(timed_out(TimeoutPhase::FirstByte, timeout)),
        Ok(Err(err)) => {
            return Err(ProviderError::Unavailable {
                provider: provider.to_owned(),
                status: None,
                code: None,
                detail: sanitize(&format!("cannot reach the provider: {}", without_url(&err))),
            });
        }
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    if status.is_success() {
        response.extensions_mut().insert(SentAt(sent_at));
        return Ok(response);
    }
    if status.is_redirection() || status.is_informational() {
        return Err(ProviderError::Invalid {
            provider: provider.to_owned(),
            detail: format!("answered HTTP {} (redirects are not followed)", status.as_u16()),
        });
    }
    let status = status.as_u16();
    let headers = response.headers().clone();
    let (body, _) = read_bounded(response, MAX_ERROR_BODY, timeout).await;
    Err(error_reply(provider, status, &headers, &body, parse_error, secrets))
}

/// A vendor's error reply (over HTTP, or refusing a WebSocket handshake) as the matching
/// `ProviderError`: its `Retry-After`, its code from the body (or AWS's `x-amzn-ErrorType`
/// header), its message with `secrets` removed wherever the vendor echoed them. At most
/// [`MAX_ERROR_BODY`] bytes of `body` are read.
pub fn error_reply(
    provider: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    parse_error: ErrorParser,
    secrets: &[&str],
) -> ProviderError {
    let body = &body[..body.len().min(MAX_ERROR_BODY)];
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|secs| secs.is_finite() && *secs >= 0.0)
        .map(|secs| Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER_SECS)));
    // AWS's REST-JSON services name the error in a header (`x-amzn-ErrorType:
    // ValidationException:<uri>`) rather than in the body.
    let header_code = headers.get("x-amzn-errortype").and_then(|v| v.to_str().ok());
    let header_code = header_code.map(|v| v.split(':').next().unwrap_or_default().to_owned());
    let (code, message) = parse_error(body);
    let code = code.or(header_code);
    // AWS answers throttling with a 400 naming it: it is a rate limit (retried, and a 429 with
    // `Retry-After` to the caller), not the caller's mistake.
    let status = match code.as_deref() {
        Some("ThrottlingException" | "TooManyRequestsException" | "Throttling") if status == 400 => 429,
        _ => status,
    };
    let mut message = message.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        message = message.replace(secret, "[redacted]");
    }
    vendor_error(provider, status, code, &message, retry_after)
}

/// A vendor's error — from an HTTP status or from an error event inside a stream — as the
/// gateway passes it on: the code kept to a slug, the message scrubbed and shortened, and for
/// 401, 402, 403 and 429 the vendor's words about the gateway's own account (organisation,
/// plan, credits, quota) replaced with the gateway's: they are the operator's business, not the
/// caller's. A status that is not an error is taken as the vendor failing.
pub fn vendor_error(
    provider: &str,
    status: u16,
    code: Option<String>,
    message: &str,
    retry_after: Option<Duration>,
) -> ProviderError {
    let status = if (400..=599).contains(&status) { status } else { 502 };
    let code = code.map(|c| scrub_code(&c)).filter(|c| !c.is_empty());
    let detail = match status {
        401 | 403 => "the provider refused the gateway's credential for it".to_owned(),
        402 => "the provider refused the gateway's account for billing reasons".to_owned(),
        429 => "the provider is limiting the gateway's requests; retry later".to_owned(),
        _ if message.trim().is_empty() => format!("HTTP {status}"),
        _ => sanitize(message),
    };
    ProviderError::from_status(provider, status, code, detail, retry_after)
}

/// A vendor's error code, kept to a machine slug: letters, digits, `_`, `-`, `.`, at most
/// [`MAX_CODE`] characters.
fn scrub_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')).take(MAX_CODE).collect()
}

/// Reads at most `limit` bytes of a body within `timeout`; says whether it read all of it.
pub async fn read_bounded(response: Response, limit: usize, timeout: Duration) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    let read = async {
        loop {
            match stream.next().await {
                None => return true,
                Some(Err(_)) => return false,
                Some(Ok(chunk)) => {
                    let room = limit.saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if chunk.len() > room {
                        return false;
                    }
                }
            }
        }
    };
    let complete = tokio::time::timeout(timeout, read).await.unwrap_or(false);
    (body, complete)
}

/// The body of a successful reply as audio events, under the provider's deadlines counted from
/// when the request was sent: the first chunk within `first_byte`, each next one within `idle`
/// of the last, all within `total`. A deadline passing ends the stream with a `Timeout` of its
/// phase; a transport error with `Interrupted`.
pub fn audio_stream(provider: &str, response: Response, timeouts: Timeouts) -> EventStream {
    let provider = provider.to_owned();
    let sent_at = response.extensions().get::<SentAt>().map_or_else(Instant::now, |sent| sent.0);
    let chunks = response.bytes_stream();
    let end = sent_at + timeouts.total;
    let first_byte = sent_at + timeouts.first_byte;
    // `None` once the stream has ended; otherwise the chunks and whether one has arrived.
    Box::pin(futures::stream::unfold(Some((chunks, false)), move |state| {
        let provider = provider.clone();
        async move {
            let (mut chunks, started) = state?;
            let (phase, timeout, until) = if started {
                (TimeoutPhase::Idle, timeouts.idle, Instant::now() + timeouts.idle)
            } else {
                (TimeoutPhase::FirstByte, timeouts.first_byte, first_byte)
            };
            let (phase, timeout) = if until >= end { (TimeoutPhase::Total, timeouts.total) } else { (phase, timeout) };
            match tokio::time::timeout_at(until.min(end), chunks.next()).await {
                Ok(Some(Ok(bytes))) => Some((Ok(SynthesisEvent::Audio(bytes)), Some((chunks, true)))),
                Ok(None) => None,
                Ok(Some(Err(err))) => {
                    let detail = sanitize(&without_url(&err).to_string());
                    Some((Err(ProviderError::Interrupted { provider, detail }), None))
                }
                Err(_) => Some((Err(ProviderError::Timeout { provider, phase, timeout }), None)),
            }
        }
    }))
}

/// Splits a streamed body into text lines (for NDJSON and SSE). A last line without its
/// newline still counts.
pub fn lines(provider: &str, body: EventStream) -> futures::stream::BoxStream<'static, Result<String, ProviderError>> {
    struct State {
        provider: String,
        body: EventStream,
        buffer: Vec<u8>,
        ready: std::collections::VecDeque<String>,
        ended: bool,
    }
    let state =
        State { provider: provider.to_owned(), body, buffer: Vec::new(), ready: Default::default(), ended: false };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(line) = s.ready.pop_front() {
                return Some((Ok(line), s));
            }
            if s.ended {
                return None;
            }
            match s.body.next().await {
                Some(Ok(SynthesisEvent::Audio(bytes))) => {
                    s.buffer.extend_from_slice(&bytes);
                    if s.buffer.len() > MAX_LINE && !s.buffer.contains(&b'\n') {
                        s.ended = true;
                        let detail = format!("a line of the stream exceeds {MAX_LINE} bytes");
                        let provider = s.provider.clone();
                        return Some((Err(ProviderError::Interrupted { provider, detail }), s));
                    }
                }
                Some(Ok(SynthesisEvent::Words(_) | SynthesisEvent::Tokens(_) | SynthesisEvent::Warning(_))) => {}
                Some(Err(err)) => {
                    s.ended = true;
                    return Some((Err(err), s));
                }
                None => {
                    s.ended = true;
                    s.buffer.push(b'\n');
                }
            }
            while let Some(end) = s.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = s.buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line).trim().to_owned();
                if !line.is_empty() {
                    s.ready.push_back(line);
                }
            }
        }
    })
    .boxed()
}

/// Adds a request's (already checked) `providerOptions` to a vendor body. The adapter's own
/// fields always win: an option never replaces a member the body has, and an object option
/// (`voice_settings`, `generation_config`) only fills the members the adapter left unset.
pub fn with_options(
    mut body: serde_json::Value,
    options: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    use serde_json::{map::Entry, Value};
    let Some(object) = body.as_object_mut() else {
        return body;
    };
    for (name, value) in options {
        match (object.entry(name), value) {
            (Entry::Vacant(slot), value) => {
                slot.insert(value);
            }
            (Entry::Occupied(mut slot), Value::Object(extra)) => {
                if let Some(core) = slot.get_mut().as_object_mut() {
                    for (member, value) in extra {
                        core.entry(member).or_insert(value);
                    }
                }
            }
            (Entry::Occupied(_), _) => {}
        }
    }
    body
}

/// The first error item of a FastAPI-style 422 (`{"detail": [{"loc", "msg", "type"}]}`) or a
/// `{"detail": {"status", "message"}}` business error, as `(code, message)`.
pub fn parse_detail_error(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, None);
    };
    let detail = &value["detail"];
    if let Some(first) = detail.as_array().and_then(|items| items.first()) {
        let loc: Vec<String> = first["loc"]
            .as_array()
            .map(|l| l.iter().map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned)).collect())
            .unwrap_or_default();
        let message = format!("{}: {}", loc.join("."), first["msg"].as_str().unwrap_or("invalid"));
        return (first["type"].as_str().map(str::to_owned), Some(message));
    }
    (detail["status"].as_str().map(str::to_owned), detail["message"].as_str().map(str::to_owned))
}

fn without_url(err: &reqwest::Error) -> String {
    // reqwest errors print the URL, which may carry a credential in its query.
    let mut text = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = source {
        let part = e.to_string();
        if !part.contains("://") {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        source = e.source();
    }
    if text.is_empty() {
        "transport error".to_owned()
    } else {
        text
    }
}

/// Shortens vendor text, drops control characters and masks anything shaped like a credential (long tokens with digits
/// and letters, `sk-…`, `Bearer …`), so a vendor echoing our key never forwards it.
pub fn sanitize(text: &str) -> String {
    let mut out = Vec::new();
    let mut redact_next = false;
    for word in text.split_whitespace() {
        let bare = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_');
        let looks_secret = bare.starts_with("sk-")
            || bare.starts_with("sg_")
            || (bare.len() >= 20
                && bare.chars().any(|c| c.is_ascii_digit())
                && bare.chars().any(|c| c.is_ascii_alphabetic())
                && bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        if redact_next || looks_secret {
            out.push("[redacted]".to_owned());
        } else {
            out.push(word.to_owned());
        }
        redact_next = word.eq_ignore_ascii_case("bearer") || word.eq_ignore_ascii_case("token");
    }
    let mut joined: String = out.join(" ").chars().filter(|c| !c.is_control()).collect();
    if joined.chars().count() > MAX_DETAIL {
        joined = joined.chars().take(MAX_DETAIL).collect::<String>() + "…";
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_errors_keep_status_and_code_but_not_account_talk() {
        let err = vendor_error("v", 402, Some("payment_required\u{0}<b>".into()), "Workspace acme has 0 credits", None);
        assert!(
            matches!(&err, ProviderError::Rejected { status: 402, code: Some(c), detail, .. }
                if c == "payment_requiredb" && !detail.contains("acme")),
            "{err:?}"
        );
        // A stream's error event may claim any status; one that is not an error is the vendor failing.
        assert!(matches!(vendor_error("v", 200, None, "", None), ProviderError::Unavailable { status: Some(502), .. }));
        let err = vendor_error("v", 400, None, "bad\u{7}voice\nid", None);
        assert!(matches!(&err, ProviderError::Rejected { detail, .. } if detail == "badvoice id"), "{err:?}");
    }

    #[test]
    fn options_never_replace_core_fields() {
        let body = serde_json::json!({"text": "spoken", "model_id": "m", "voice_settings": {"speed": 1.1}});
        let options = serde_json::json!({
            "text": "x", "model_id": "other", "next_text": "after",
            "voice_settings": {"speed": 3.0, "stability": 0.4}
        });
        let merged = with_options(body, options.as_object().cloned().unwrap_or_default());
        assert_eq!(
            merged,
            serde_json::json!({"text": "spoken", "model_id": "m", "next_text": "after",
                               "voice_settings": {"speed": 1.1, "stability": 0.4}})
        );
    }

    #[test]
    fn sanitize_masks_credentials_and_shortens() {
        let text = "Incorrect API key provided: sk-proj-abc123. Header was Bearer abcdef and key 4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c";
        let clean = sanitize(text);
        assert!(!clean.contains("sk-proj") && !clean.contains("abcdef") && !clean.contains("4f9a8b7c"), "{clean}");
        assert!(clean.starts_with("Incorrect API key provided:"));
        assert!(sanitize(&"word ".repeat(200)).chars().count() <= MAX_DETAIL + 1);
    }
}
