//! The WebSocket command protocol (PlayHT's, which the unified socket speaks too): each text
//! frame is one JSON command; each is answered, strictly in order, by
//! `{"type":"start","request_id":…}`, binary frames of audio, then `{"type":"end","request_id":…}`
//! with the command's `request_id` echoed (or `null`). A command that fails is answered with
//! `start`, `{"type":"error","request_id","error_message","error_id","status"}` and `end`, so
//! that clients counting starts stay in step and later commands still run.
//!
//! Every command is metered as its own usage event and limited by the key's request rate. The
//! key is checked again before each command and while the socket is idle: a socket whose key is
//! revoked (or expires) is closed with 1008.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures::{future::BoxFuture, stream::BoxStream, StreamExt};
use serde_json::{json, Value};

use super::{problem::ApiError, AppState};
use crate::{
    auth::Principal,
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

/// One command's audio, as it streams.
pub type AudioBody = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Turns one command (its JSON) into audio, recording usage in the details it is given.
pub type Voicer = Box<dyn Fn(Value, UsageDetails) -> BoxFuture<'static, Result<AudioBody, ApiError>> + Send + Sync>;

/// Who the socket serves and how its commands are voiced.
pub struct Session {
    pub state: AppState,
    pub key: std::sync::Arc<ApiKey>,
    /// The route, as usage records it.
    pub route: String,
    pub voicer: Voicer,
}

/// Runs the protocol until the client closes, the key stops being valid or the lifetime ends.
pub async fn serve(mut socket: WebSocket, session: Session) {
    let opened = Instant::now();
    let mut check = tokio::time::interval(KEY_CHECK_EVERY);
    loop {
        let message = tokio::select! {
            message = socket.recv() => message,
            _ = check.tick() => {
                if let Some(reason) = refusal(&session, opened).await {
                    close(&mut socket, reason).await;
                    return;
                }
                continue;
            }
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => {
                close(&mut socket, "commands are JSON text frames").await;
                return;
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
        };
        if let Some(reason) = refusal(&session, opened).await {
            close(&mut socket, reason).await;
            return;
        }
        if command(&mut socket, &session, text.as_str()).await.is_err() {
            return;
        }
    }
}

/// Why the socket may not go on, if it may not.
async fn refusal(session: &Session, opened: Instant) -> Option<&'static str> {
    if opened.elapsed() > MAX_SOCKET_LIFETIME {
        return Some("the connection has reached its lifetime of one hour; reconnect");
    }
    match session.state.auth.current_key(&session.key.id).await {
        Ok(Principal::Key(_)) => None,
        Ok(Principal::Admin) | Err(_) => Some("the API key is no longer valid"),
    }
}

async fn close(socket: &mut WebSocket, reason: &'static str) {
    let frame = CloseFrame { code: axum::extract::ws::close_code::POLICY, reason: Utf8Bytes::from_static(reason) };
    let _ = socket.send(Message::Close(Some(frame))).await;
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
    let request_id = parsed.as_ref().ok().and_then(|v| v.get("request_id")).cloned().unwrap_or(Value::Null);
    send_json(socket, json!({"type": "start", "request_id": request_id})).await?;

    let details = UsageDetails::default();
    let mut meter = Meter::new(
        state.usage.clone(),
        MeterStart {
            request_id: uuid::Uuid::now_v7().to_string(),
            key_id: Some(session.key.id.clone()),
            route: session.route.clone(),
            method: "WS".to_owned(),
            started: Instant::now(),
        },
        details.clone(),
    );
    let voiced = match (parsed, state.auth.check_rate(&session.key)) {
        (Err(error), _) => Err(error),
        (Ok(_), Err(wait)) => Err(ApiError::RateLimited(wait)),
        (Ok(command), Ok(())) => (session.voicer)(command, details).await,
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
