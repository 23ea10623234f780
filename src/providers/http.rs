//! What every HTTP adapter shares: sending with a deadline for the response head, turning a
//! vendor's error reply into a [`ProviderError`] (through the adapter's own error parser), and
//! turning a streamed body into audio events with an idle timeout between chunks.

use std::time::Duration;

use futures::StreamExt;
use reqwest::{header::RETRY_AFTER, RequestBuilder, Response};
use secrecy::{ExposeSecret, SecretString};

use super::{EventStream, ProviderError, SynthesisEvent};

/// The shared HTTP client and timeouts every adapter instance gets.
#[derive(Clone)]
pub struct Transport {
    pub http: reqwest::Client,
    /// Longest wait for a response head.
    pub timeout: Duration,
    /// Longest gap between two chunks of a streamed body.
    pub idle: Duration,
}

/// One vendor API instance: where it is, the gateway's key for it, and the transport. Adapters
/// build requests against it and send them through it, so that every vendor call gets the same
/// deadlines, error mapping and credential scrubbing.
pub struct Api {
    pub provider: String,
    base_url: String,
    key: Option<SecretString>,
    transport: Transport,
}

impl Api {
    pub fn new(provider: &str, base_url: &str, key: Option<SecretString>, transport: Transport) -> Self {
        Self { provider: provider.to_owned(), base_url: base_url.trim_end_matches('/').to_owned(), key, transport }
    }

    pub fn key(&self) -> Option<&str> {
        self.key.as_ref().map(|k| k.expose_secret())
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.transport.http.post(format!("{}{path}", self.base_url))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.transport.http.get(format!("{}{path}", self.base_url))
    }

    /// Sends a request built with [`Api::post`]/[`Api::get`] (see [`send`]).
    pub async fn send(&self, request: RequestBuilder, parse_error: ErrorParser) -> Result<Response, ProviderError> {
        send(&self.provider, request, self.transport.timeout, parse_error, self.key()).await
    }

    /// A successful reply's body as audio events (see [`audio_stream`]).
    pub fn audio(&self, response: Response) -> EventStream {
        audio_stream(&self.provider, response, self.transport.idle)
    }

    /// A reply's JSON body, or `Unavailable` when it is not the vendor's protocol.
    pub async fn json<T: serde::de::DeserializeOwned>(&self, response: Response) -> Result<T, ProviderError> {
        response.json().await.map_err(|e| ProviderError::Unavailable {
            provider: self.provider.clone(),
            status: None,
            code: None,
            detail: sanitize(&format!("unreadable reply: {}", without_url(&e))),
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
/// Largest error body read from a vendor.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A vendor's error body, parsed: its machine code (if any) and its message.
pub type ErrorParser = fn(&[u8]) -> (Option<String>, Option<String>);

/// Sends `request`; waits at most `timeout` for the response head. A non-2xx answer becomes
/// the matching `ProviderError`, with the vendor's code and a sanitised message from which
/// `secret` (the credential the request carried) is removed wherever the vendor echoed it.
pub async fn send(
    provider: &str,
    request: RequestBuilder,
    timeout: Duration,
    parse_error: ErrorParser,
    secret: Option<&str>,
) -> Result<Response, ProviderError> {
    let response = match tokio::time::timeout(timeout, request.send()).await {
        Err(_) => return Err(ProviderError::Timeout { provider: provider.to_owned(), timeout }),
        Ok(Err(err)) if err.is_timeout() => {
            return Err(ProviderError::Timeout { provider: provider.to_owned(), timeout });
        }
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
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|secs| secs.is_finite() && *secs >= 0.0)
        .map(Duration::from_secs_f64);
    let body = read_bounded(response, timeout).await;
    let (code, message) = parse_error(&body);
    let detail = message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&body).trim().to_owned();
        if text.is_empty() {
            format!("HTTP {status}")
        } else {
            text
        }
    });
    let detail = match secret.filter(|s| !s.is_empty()) {
        Some(secret) => detail.replace(secret, "[redacted]"),
        None => detail,
    };
    Err(ProviderError::from_status(provider, status, code, sanitize(&detail), retry_after))
}

async fn read_bounded(response: Response, timeout: Duration) -> Vec<u8> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    let read = async {
        while let Some(Ok(chunk)) = stream.next().await {
            let room = MAX_ERROR_BODY.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_ERROR_BODY {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, read).await;
    body
}

/// The body of a successful reply as audio events. A gap longer than `idle` between chunks, or
/// a transport error, ends the stream with `Interrupted`.
pub fn audio_stream(provider: &str, response: Response, idle: Duration) -> EventStream {
    let provider = provider.to_owned();
    let chunks = response.bytes_stream();
    Box::pin(futures::stream::unfold(Some(chunks), move |state| {
        let provider = provider.clone();
        async move {
            let mut chunks = state?;
            match tokio::time::timeout(idle, chunks.next()).await {
                Ok(Some(Ok(bytes))) => Some((Ok(SynthesisEvent::Audio(bytes)), Some(chunks))),
                Ok(None) => None,
                Ok(Some(Err(err))) => {
                    let detail = sanitize(&without_url(&err).to_string());
                    Some((Err(ProviderError::Interrupted { provider, detail }), None))
                }
                Err(_) => {
                    let detail = format!("no data for {} s", idle.as_secs());
                    Some((Err(ProviderError::Interrupted { provider, detail }), None))
                }
            }
        }
    }))
}

/// Splits a streamed body into text lines (for NDJSON and SSE). A last line without its
/// newline still counts.
pub fn lines(body: EventStream) -> futures::stream::BoxStream<'static, Result<String, ProviderError>> {
    struct State {
        body: EventStream,
        buffer: Vec<u8>,
        ready: std::collections::VecDeque<String>,
        ended: bool,
    }
    let state = State { body, buffer: Vec::new(), ready: Default::default(), ended: false };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(line) = s.ready.pop_front() {
                return Some((Ok(line), s));
            }
            if s.ended {
                return None;
            }
            match s.body.next().await {
                Some(Ok(SynthesisEvent::Audio(bytes))) => s.buffer.extend_from_slice(&bytes),
                Some(Ok(SynthesisEvent::Words(_))) => {}
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

/// Shortens vendor text and masks anything shaped like a credential (long tokens with digits
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
    let mut joined = out.join(" ");
    if joined.chars().count() > MAX_DETAIL {
        joined = joined.chars().take(MAX_DETAIL).collect::<String>() + "…";
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

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
