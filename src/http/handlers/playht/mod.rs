//! PlayHT and Play.ai, drop-in (both shut down at the end of 2025; code written for them keeps
//! working against the gateway): PlayHT v2 `tts/stream` and `voices`, the v2 lease and v4
//! `sdk-auth` / `websocket-auth` the `pyht` SDK needs, the inference URLs those hand out (HTTP
//! and WebSocket, authenticated by a signed token in the URL), and Play.ai v1 `tts/stream`
//! (camelCase, PlayDialog two-speaker dialogue included).
//!
//! PlayHT voice ids (`s3://…/manifest.json`) mean nothing to other providers: they are routed by
//! `[facades.playht]` (`facades`) — a mapping per voice, `provider:voice`, or a default
//! model. A two-speaker request (`voice_2`) is voiced by the conversation engine, one turn per
//! speaker change marked by the turn prefixes in the text.

mod auth;
pub mod jobs;

use axum::{
    body::Body,
    extract::{Path, State, WebSocketUpgrade},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Extension, Json,
};
use futures::FutureExt;
use serde::Serialize;
use utoipa::ToSchema;

pub use self::auth::*;
pub(crate) use self::auth::{public_base, websocket_base};
use super::speech::audio_response;
pub use crate::facades::playht::PlayRequest;
use crate::facades::playht::{dialogue_turns, language_code, output, Surface, DEFAULT_PREFIXES, PLAYAI_V1, PLAYHT_V2};
use crate::service::provider_keys::Owner;
use crate::{
    domain::{
        audio::{AudioFormat, AudioSpec},
        FieldError,
    },
    facades as facade,
    http::{
        extract::{from_document, ApiJson, Caller},
        problem::ApiError,
        ws::{self, AudioBody},
        AppState,
    },
    service::{
        conversation::{self, ConversationInput, ConversationOutput, TurnInput},
        speech::{self, SpeechInput},
        synthesis::SegmentInput,
        usage::UsageDetails,
    },
};

/// PlayHT's error body.
#[derive(Serialize, ToSchema)]
pub struct PlayError {
    error_message: String,
    error_id: String,
}

/// A request's audio as it streams, and its format.
struct Voiced {
    body: AudioBody,
    output: AudioSpec,
}

/// Voices a request: one clip, or a dialogue when it names a second voice. Nothing is sent to
/// a provider before every field has been checked.
async fn voice(
    state: &AppState,
    owner: &Owner,
    details: &UsageDetails,
    request: PlayRequest,
    surface: Surface<'_>,
) -> Result<Voiced, ApiError> {
    let mut problems = Vec::new();
    let output = output(&request, surface).map_err(|p| problems.push(p)).ok();
    let language = match request.language.as_deref() {
        None => None,
        Some(name) => {
            let code = language_code(name);
            if code.is_none() {
                problems.push(FieldError::new("language", format!("unknown language {name:?}")));
            }
            code.map(str::to_owned)
        }
    };
    let text = request.text();
    let Some(voice) = request.voice.as_deref() else {
        problems.push(FieldError::new("voice", "is required"));
        return Err(ApiError::Validation(problems));
    };
    let (Some(output), true) = (output, problems.is_empty()) else {
        return Err(ApiError::Validation(problems));
    };
    let limits = &state.conversation;
    if text.chars().count() > limits.max_characters {
        let message = format!("must be at most {} characters", limits.max_characters);
        return Err(ApiError::Validation(vec![FieldError::new("text", message)]));
    }
    let routes = &state.facades.playht;
    let route = |voice: String, field: &'static str| {
        let language = language.clone();
        async move {
            let segment =
                facade::route_voice(&state.registry, state.store.as_ref(), owner, routes, &voice, None, field);
            Ok::<SegmentInput, ApiError>(SegmentInput {
                text_field: "text",
                speed: request.speed,
                seed: request.seed,
                language,
                ..segment.await?
            })
        }
    };
    let speaking = |segment: &SegmentInput, text: String| SegmentInput { text, ..segment.clone() };

    // Only the PlayDialog engines voice a second speaker; the others ignore `voice_2`.
    let engine = request.voice_engine.as_deref().or(request.model.as_deref()).or(surface.engine);
    let dialogue_engine = engine.is_none_or(|engine| engine.starts_with("PlayDialog"));
    let Some(voice_2) = request.voice_2.as_deref().filter(|_| dialogue_engine) else {
        let segment = speaking(&route(voice.to_owned(), "voice").await?, text);
        let input = SpeechInput { segment, output, ..SpeechInput::default() };
        let prepared = speech::prepare(&state.registry, state.store.as_ref(), owner, input).await?;
        crate::http::admission::admit(details, &prepared).await?;
        let spoken = speech::synthesize(prepared, details, &state.metrics).await?;
        return Ok(Voiced { body: spoken.body, output: spoken.output });
    };
    let prefixes = [
        request.turn_prefix.as_deref().unwrap_or(DEFAULT_PREFIXES[0]),
        request.turn_prefix_2.as_deref().unwrap_or(DEFAULT_PREFIXES[1]),
    ];
    let Some(said) = dialogue_turns(&text, prefixes, limits.max_turns) else {
        let message = format!("holds more than {} turns", limits.max_turns);
        return Err(ApiError::Validation(vec![FieldError::new("text", message)]));
    };
    if said.is_empty() {
        return Err(ApiError::Validation(vec![FieldError::new("text", "must not be empty")]));
    }
    let speakers = [route(voice.to_owned(), "voice").await?, route(voice_2.to_owned(), "voice_2").await?];
    let turns = said
        .into_iter()
        .map(|(speaker, text)| TurnInput { segment: speaking(&speakers[speaker], text), pause_before_ms: None })
        .collect();
    let input = ConversationInput { turns, output, ..ConversationInput::default() };
    let prepared = conversation::prepare(&state.registry, state.store.as_ref(), owner, input, limits).await?;
    crate::http::admission::admit(details, &prepared).await?;
    match conversation::start(prepared, details, &state.metrics, limits).await? {
        ConversationOutput::Audio { output, body, .. } => Ok(Voiced { body, output }),
        ConversationOutput::Split(_) | ConversationOutput::Timed(_) => {
            Err(ApiError::Internal("a dialogue without split or timestamps came back split or timed".to_owned()))
        }
    }
}

async fn stream(
    state: AppState,
    owner: &Owner,
    details: &UsageDetails,
    request: PlayRequest,
    surface: Surface<'_>,
) -> Result<Response, ApiError> {
    let voiced = voice(&state, owner, details, request, surface).await?;
    Ok(audio_response(Body::from_stream(voiced.body), voiced.output.format.media_type(), []))
}

/// PlayHT v2: text to a stream of audio. Takes the key as `Authorization: <key>` or `Bearer
/// <key>` (with `X-USER-ID`, which the gateway does not need).
#[utoipa::path(
    post,
    path = "/playht/api/v2/tts/stream",
    tag = "playht",
    request_body = PlayRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Audio in `output_format` (default wav)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "An invalid field", body = PlayError),
        (status = 401, description = "Missing, invalid, expired or revoked key", body = PlayError),
        (status = 404, description = "Unknown voice or model", body = PlayError)
    )
)]
pub async fn create_stream(
    State(state): State<AppState>,
    Caller(key): Caller,
    Extension(details): Extension<UsageDetails>,
    ApiJson(request): ApiJson<PlayRequest>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&key);
    stream(state, &owner, &details, request, PLAYHT_V2).await
}

/// Play.ai v1: text (or a PlayDialog two-speaker script) to a stream of audio, camelCase body.
#[utoipa::path(
    post,
    path = "/playai/api/v1/tts/stream",
    tag = "playht",
    request_body = PlayRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Audio in `outputFormat` (default mp3)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "An invalid field", body = PlayError),
        (status = 401, description = "Missing, invalid, expired or revoked key", body = PlayError),
        (status = 404, description = "Unknown voice or model", body = PlayError)
    )
)]
pub async fn create_playai_stream(
    State(state): State<AppState>,
    Caller(key): Caller,
    Extension(details): Extension<UsageDetails>,
    ApiJson(request): ApiJson<PlayRequest>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&key);
    stream(state, &owner, &details, request, PLAYAI_V1).await
}

/// An inference URL `sdk-auth` handed out (authenticated by its `token`): the body of a
/// `pyht` HTTP request, audio streamed back. `{model}` is the default engine.
#[utoipa::path(
    post,
    path = "/playht/api/v4/inference/{model}/stream",
    tag = "playht",
    request_body = PlayRequest,
    params(
        ("model" = String, Path, description = "`Play3.0-mini`, `PlayDialog`, ...")
    ),
    security(("urlToken" = [])),
    responses(
        (status = 200, description = "Audio", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "An invalid field", body = PlayError),
        (status = 401, description = "Missing, invalid or expired token", body = PlayError)
    )
)]
pub async fn inference_stream(
    State(state): State<AppState>,
    Caller(key): Caller,
    Extension(details): Extension<UsageDetails>,
    Path(model): Path<String>,
    ApiJson(request): ApiJson<PlayRequest>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&key);
    stream(state, &owner, &details, request, Surface { engine: Some(&model), ..PLAYHT_V2 }).await
}

/// `pyht`'s CORS preflight of the streaming URL, answered so that it need not log a failure.
#[utoipa::path(
    options,
    path = "/playht/api/v4/inference/{model}/stream",
    tag = "playht",
    params(
        ("model" = String, Path, description = "`Play3.0-mini`, `PlayDialog`, ...")
    ),
    security(("urlToken" = [])),
    responses(
        (status = 204, description = "The methods and headers the URL takes"),
        (status = 401, description = "Missing, invalid or expired token", body = PlayError)
    )
)]
pub async fn inference_preflight() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type, accept"));
    response
}

/// The non-streaming twin `pyht` derives from the streaming URL (it deletes the word
/// `stream`): the same audio, sent as it is made.
#[utoipa::path(
    post,
    path = "/playht/api/v4/inference/{model}/",
    tag = "playht",
    request_body = PlayRequest,
    params(
        ("model" = String, Path, description = "`Play3.0-mini`, `PlayDialog`, ...")
    ),
    security(("urlToken" = [])),
    responses(
        (status = 200, description = "Audio", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "An invalid field", body = PlayError),
        (status = 401, description = "Missing, invalid or expired token", body = PlayError)
    )
)]
pub async fn inference_whole(
    state: State<AppState>,
    caller: Caller,
    details: Extension<UsageDetails>,
    model: Path<String>,
    request: ApiJson<PlayRequest>,
) -> Result<Response, ApiError> {
    inference_stream(state, caller, details, model, request).await
}

/// The WebSocket of an inference URL: PlayHT's command protocol (`http::ws`). A command's
/// `voice_engine` beats the URL's model (`pyht` reuses one socket for every engine).
#[utoipa::path(
    get,
    path = "/playht/api/v4/inference/{model}/ws",
    tag = "playht",
    params(
        ("model" = String, Path, description = "`Play3.0-mini`, `PlayDialog`, ...")
    ),
    security(("urlToken" = [])),
    responses(
        (status = 101, description = "WebSocket: JSON commands in; `start`, binary audio, `end` out"),
        (status = 401, description = "Missing, invalid or expired token", body = PlayError),
        (status = 503, description = "The gateway has as many sockets open as it takes", body = PlayError)
    )
)]
pub async fn inference_socket(
    State(state): State<AppState>,
    Caller(key): Caller,
    Path(model): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let voicer_state = state.clone();
    let owner = state.owner(&key);
    let voicer: ws::Voicer = Box::new(move |command, details| {
        // Each command reads the project's provider keys afresh (through the cache).
        let (state, owner, model) = (voicer_state.clone(), owner.renewed(), model.clone());
        async move {
            let request: PlayRequest = from_document(command)?;
            let surface = Surface { format: AudioFormat::Mp3, engine: Some(&model) };
            voice(&state, &owner, &details, request, surface).await.map(|voiced| voiced.body)
        }
        .boxed()
    });
    ws::accept(upgrade, state, key, "/playht/api/v4/inference/{model}/ws", voicer)
}

/// PlayHT's `V2APIVoiceInfo`.
#[derive(Serialize, ToSchema)]
pub struct PlayVoice {
    id: String,
    name: String,
    language: Option<String>,
    gender: Option<String>,
    voice_engine: String,
    is_cloned: bool,
}

/// The voices a PlayHT request can name: the mapped PlayHT ids, the caller's saved voices, then
/// every voice of every provider with a catalogue, as `provider:voice`.
#[utoipa::path(
    get,
    path = "/playht/api/v2/voices",
    tag = "playht",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A JSON array of voices", body = Vec<PlayVoice>),
        (status = 401, description = "Missing, invalid, expired or revoked key", body = PlayError)
    )
)]
pub async fn list_voices(State(state): State<AppState>, Caller(key): Caller) -> Result<Json<Vec<PlayVoice>>, ApiError> {
    let facade = &state.facades.playht;
    let listed = facade::voices(&state.registry, state.store.as_ref(), &key.project_id, facade, None).await?;
    let voices = listed
        .into_iter()
        .map(|voice| PlayVoice {
            is_cloned: voice.origin == facade::VoiceOrigin::Saved,
            id: voice.id,
            name: voice.name,
            language: voice.language,
            gender: voice.gender,
            voice_engine: "Play3.0-mini".to_owned(),
        })
        .collect();
    Ok(Json(voices))
}
