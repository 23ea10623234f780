//! The WebSocket command protocol (PlayHT's, which the unified socket speaks too): each text
//! frame is one JSON command; each is answered, strictly in order, by
//! `{"type":"start","request_id":…}`, binary frames of audio, then `{"type":"end","request_id":…}`
//! with the command's `request_id` echoed (or `null`). A command that fails is answered with
//! `start`, `{"type":"error","request_id","error_message","error_id","status"}` and `end`, so
//! that clients counting starts stay in step and later commands still run.
//!
//! Every command is metered as its own usage event and admitted like a request: the key's request
//! rate and requests in progress, the gateway's requests in progress, the usage backlog. The key
//! is checked again before each command and while the socket is idle: a socket whose key is
//! revoked (or expires) is closed with 1008. Open sockets are limited in number
//! (`server.max_websockets`), closed after [`IDLE_TIMEOUT`] without a command, and closed (1001)
//! when the gateway stops, before the usage writer does.

use std::time::{Duration, Instant};

use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures::{future::BoxFuture, stream::BoxStream, StreamExt};
use serde_json::{json, Value};

use super::{problem::ApiError, AppState};
use crate::{
    auth::{AuthError, Principal},
    domain::ApiKey,
    service::usage::{Meter, MeterStart, UsageDetails},
};

/// Largest command accepted, in bytes.
pub const MAX_COMMAND_BYTES: usize = 256 * 1024;
/// Largest audio frame sent (PlayHT's SDK refuses frames over 1 MiB).
const MAX_FRAME_BYTES: usize = 64 * 1024;
/// How often an idle socket re-checks its key.
const KEY_CHECK_EVERY: Duration = Duration::from_secs(5);
/// How long one socket may stay open.
const MAX_SOCKET_LIFETIME: Duration = Duration::from_secs(3600);
/// How long a socket may stay open without a command.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The open sockets: how many may be open, and their tasks, so that shutdown can close them.
pub struct Sockets {
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    tracker: tokio_util::task::TaskTracker,
    closing: tokio_util::sync::CancellationToken,
}

/// Held by an open socket: its slot, and its place among the tasks shutdown waits for.
pub struct Admission {
    _slot: tokio::sync::OwnedSemaphorePermit,
    _task: tokio_util::task::task_tracker::TaskTrackerToken,
    closing: tokio_util::sync::CancellationToken,
}

impl Sockets {
    pub fn new(max: usize) -> Self {
        Self {
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(max)),
            tracker: tokio_util::task::TaskTracker::new(),
            closing: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// Room for one more socket, or 503 `overloaded`.
    pub fn admit(&self) -> Result<Admission, ApiError> {
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| ApiError::Overloaded)?;
        Ok(Admission { _slot: slot, _task: self.tracker.token(), closing: self.closing.clone() })
    }

    /// Closes every socket (1001) and waits up to `grace` for their commands to finish and be
    /// metered.
    pub async fn close(&self, grace: Duration) {
        self.closing.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait()).await.is_err() {
            tracing::warn!(grace_secs = grace.as_secs(), "WebSocket sessions still running after the grace period");
        }
    }
}

/// One command's audio, as it streams.
pub type AudioBody = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Turns one command (its JSON) into audio, recording usage in the details it is given.
pub type Voicer = Box<dyn Fn(Value, UsageDetails) -> BoxFuture<'static, Result<AudioBody, ApiError>> + Send + Sync>;

/// Who the socket serves and how its commands are voiced.
struct Session {
    state: AppState,
    key: std::sync::Arc<ApiKey>,
    /// The route, as usage records it.
    route: String,
    voicer: Voicer,
    admission: Admission,
}

/// Accepts a socket for `key` if there is room for one: commands of at most
/// [`MAX_COMMAND_BYTES`], each voiced by `voicer` and metered under `route`.
pub fn accept(
    upgrade: axum::extract::WebSocketUpgrade,
    state: AppState,
    key: std::sync::Arc<ApiKey>,
    route: &str,
    voicer: Voicer,
) -> Result<axum::response::Response, ApiError> {
    let admission = state.sockets.admit()?;
    let session = Session { state, key, route: route.to_owned(), voicer, admission };
    Ok(upgrade
        .max_message_size(MAX_COMMAND_BYTES)
        .max_frame_size(MAX_COMMAND_BYTES)
        .on_upgrade(move |socket| serve(socket, session)))
}

/// Runs the protocol until the client closes, the key stops being valid, the socket idles or
/// its lifetime ends, or the gateway stops.
async fn serve(mut socket: WebSocket, mut session: Session) {
    let opened = Instant::now();
    let mut check = tokio::time::interval(KEY_CHECK_EVERY);
    let mut last_command = Instant::now();
    loop {
        let closing = session.admission.closing.clone();
        let message = tokio::select! {
            message = socket.recv() => message,
            () = closing.cancelled() => {
                close(&mut socket, close_code::AWAY, "the gateway is shutting down").await;
                return;
            }
            _ = check.tick() => {
                if last_command.elapsed() > IDLE_TIMEOUT {
                    close(&mut socket, close_code::NORMAL, "idle").await;
                    return;
                }
                if let Some(reason) = refusal(&mut session, opened).await {
                    close(&mut socket, close_code::POLICY, reason).await;
                    return;
                }
                continue;
            }
        };
        last_command = Instant::now();
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => {
                close(&mut socket, close_code::UNSUPPORTED, "commands are JSON text frames").await;
                return;
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
        };
        if let Some(reason) = refusal(&mut session, opened).await {
            close(&mut socket, close_code::POLICY, reason).await;
            return;
        }
        if command(&mut socket, &session, text.as_str()).await.is_err() {
            return;
        }
    }
}

/// Why the socket may not go on, if it may not. Keeps the session's key current (its limits
/// may have changed); a database that cannot be asked right now is no reason to close.
async fn refusal(session: &mut Session, opened: Instant) -> Option<&'static str> {
    if opened.elapsed() > MAX_SOCKET_LIFETIME {
        return Some("the connection has reached its lifetime of one hour; reconnect");
    }
    match session.state.auth.current_key(&session.key.id).await {
        Ok(Principal::Key(key)) => {
            session.key = key;
            None
        }
        // The database cannot say: the key is not known to be invalid.
        Err(error @ (AuthError::Store(_) | AuthError::Unavailable)) => {
            tracing::warn!(%error, "could not check a WebSocket's key; checking again later");
            None
        }
        Ok(Principal::Admin) | Err(_) => Some("the API key is no longer valid"),
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// A command is admitted like a request: the usage backlog, the gateway's requests in progress,
/// the key's request rate and requests in progress; and its characters, once known, count against
/// the key's limits through `details` (see `http::admission`). The guards are held until it is
/// answered.
async fn admit_command(session: &Session, details: &UsageDetails) -> Result<impl Sized, ApiError> {
    let state = &session.state;
    if state.usage.is_full() {
        state.metrics.shed("usage_backlog");
        return Err(ApiError::UsageBacklog);
    }
    let permit = state.requests.clone().try_acquire_owned().map_err(|_| {
        state.metrics.shed("overloaded");
        ApiError::Overloaded
    })?;
    let (slot, gate) = super::middleware::enter_limits(state, &session.key).await.map_err(|(error, _)| error)?;
    details.set_gate(gate);
    Ok((permit, slot))
}

/// Longest `request_id` echoed.
const MAX_REQUEST_ID_CHARS: usize = 128;

/// Whether a command's `request_id` may be echoed: an integer, or a short string without
/// control characters or bidirectional overrides (which would reach the client's logs as
/// they are).
fn echoable(id: &Value) -> bool {
    match id {
        Value::Number(n) => n.is_i64() || n.is_u64(),
        Value::String(s) => {
            s.chars().count() <= MAX_REQUEST_ID_CHARS
                && !s.chars().any(|c| {
                    c.is_control()
                        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
                })
        }
        _ => false,
    }
}

/// Answers one command: start, audio frames, end. `Err` when the socket is gone.
async fn command(socket: &mut WebSocket, session: &Session, text: &str) -> Result<(), axum::Error> {
    let state = &session.state;
    let parsed: Result<Value, ApiError> = serde_json::from_str::<Value>(text)
        .map_err(|e| ApiError::MalformedJson(e.to_string()))
        .and_then(|value| match value.is_object() {
            true => Ok(value),
            false => Err(ApiError::MalformedJson("a command is a JSON object".to_owned())),
        });
    // Echoed in every answer: only an id, never whatever the command carried there.
    let (request_id, parsed) = match parsed.as_ref().ok().and_then(|v| v.get("request_id")) {
        None | Some(Value::Null) => (Value::Null, parsed),
        Some(id) if echoable(id) => (id.clone(), parsed),
        Some(_) => {
            let message =
                format!("must be a string of at most {MAX_REQUEST_ID_CHARS} printable characters, or an integer");
            (Value::Null, Err(ApiError::Validation(vec![crate::domain::FieldError::new("request_id", message)])))
        }
    };
    send_json(socket, json!({"type": "start", "request_id": request_id})).await?;

    let details = UsageDetails::default();
    let mut meter = Meter::new(
        state.usage.clone(),
        MeterStart {
            request_id: uuid::Uuid::now_v7().to_string(),
            key_id: Some(session.key.id.clone()),
            project_id: Some(session.key.project_id.clone()),
            route: session.route.clone(),
            method: "WS".to_owned(),
            started: Instant::now(),
        },
        details.clone(),
    );
    // The guards live until this command has been answered in full.
    let admitted = match parsed {
        Ok(command) => admit_command(session, &details).await.map(|guards| (command, guards)),
        Err(error) => Err(error),
    };
    let (voiced, _guards) = match admitted {
        Err(error) => (Err(error), None),
        Ok((command, guards)) => ((session.voicer)(command, details).await, Some(guards)),
    };
    match voiced {
        Err(error) => {
            meter.respond(error.status().as_u16(), Some(error.code().to_owned()));
            meter.finish();
            let message = json!({
                "type": "error",
                "request_id": request_id,
                "error_message": error.to_string(),
                "error_id": error.code(),
                "status": error.status().as_u16(),
            });
            send_json(socket, message).await?;
        }
        Ok(mut audio) => {
            meter.respond(200, None);
            while let Some(chunk) = audio.next().await {
                match chunk {
                    Ok(bytes) => {
                        for frame in bytes.chunks(MAX_FRAME_BYTES) {
                            socket.send(Message::Binary(Bytes::copy_from_slice(frame))).await?;
                            meter.sent(frame.len());
                        }
                    }
                    Err(error) => {
                        // Dropping the meter unfinished records the interruption.
                        let message = json!({
                            "type": "error",
                            "request_id": request_id,
                            "error_message": format!("the audio stream broke off: {error}"),
                            "error_id": "stream_interrupted",
                            "status": 502,
                        });
                        send_json(socket, message).await?;
                        send_json(socket, json!({"type": "end", "request_id": request_id})).await?;
                        return Ok(());
                    }
                }
            }
            meter.finish();
        }
    }
    send_json(socket, json!({"type": "end", "request_id": request_id})).await
}

async fn send_json(socket: &mut WebSocket, value: Value) -> Result<(), axum::Error> {
    socket.send(Message::Text(Utf8Bytes::from(value.to_string()))).await
}
