//! PlayHT and Play.ai, drop-in (both shut down at the end of 2025; code written for them keeps
//! working against the gateway): PlayHT v2 `tts/stream` and `voices`, the v2 lease and v4
//! `sdk-auth` / `websocket-auth` the `pyht` SDK needs, the inference URLs those hand out (HTTP
//! and WebSocket, authenticated by a signed token in the URL), and Play.ai v1 `tts/stream`
//! (camelCase, PlayDialog two-speaker dialogue included).
//!
//! PlayHT voice ids (`s3://…/manifest.json`) mean nothing to other providers: they are routed by
//! `[facades.playht]` (`service::facade`) — a mapping per voice, `provider:voice`, or a default
//! model. A two-speaker request (`voice_2`) is voiced by the conversation engine, one turn per
//! speaker change marked by the turn prefixes in the text.

use axum::{
    body::Body,
    extract::{Path, State, WebSocketUpgrade},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Extension, Json,
};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::speech::audio_response;
use crate::{
    domain::{
        audio::{AudioFormat, AudioSpec},
        FieldError, TtsJob,
    },
    http::{
        extract::{from_document, ApiJson, ApiQuery, Caller},
        problem::ApiError,
        ws::{self, AudioBody, Session},
        AppState,
    },
    service::{
        conversation::{self, ConversationInput, ConversationOutput, TurnInput},
        facade,
        speech::{self, SpeechInput},
        synthesis::{OutputRequest, SegmentInput},
        usage::UsageDetails,
    },
};

/// The models `pyht` asserts in `sdk-auth`, and `websocket-auth` hands URLs for.
const MODELS: [&str; 4] = ["Play3.0-mini", "PlayDialog", "PlayDialogMultilingual", "PlayDialogArabic"];
/// The lease's epoch (PlayHT's: 2018-02-21T23:58:00Z).
const LEASE_EPOCH: i64 = 1_519_257_480;
/// Turn prefixes of a two-speaker request that gives none.
const DEFAULT_PREFIXES: [&str; 2] = ["Voice 1:", "Voice 2:"];

/// `text`: one string, or a list of strings (`pyht` always sends a list).
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PlayText {
    One(String),
    Many(Vec<String>),
}

/// A TTS request in either casing: PlayHT v2 and WebSocket commands in snake_case, Play.ai v1
/// HTTP in camelCase. Unset options may be `null`; fields the gateway has no use for (quality,
/// guidance, temperature...) are accepted and ignored.
#[derive(Deserialize, ToSchema)]
pub struct PlayRequest {
    text: Option<PlayText>,
    /// A PlayHT voice id, mapped per `[facades.playht]`, or `provider:voice`.
    voice: Option<String>,
    /// `Play3.0-mini`, `PlayDialog`, ... (Play.ai: `model`). Only the PlayDialog engines voice
    /// `voice_2`; the provider is chosen by the voice.
    #[serde(alias = "model")]
    voice_engine: Option<String>,
    /// `mp3`, `wav`, `ogg`, `flac`, `mulaw`, `raw` or `pcm`.
    #[serde(alias = "outputFormat")]
    output_format: Option<String>,
    #[serde(alias = "sampleRate")]
    sample_rate: Option<u32>,
    speed: Option<f32>,
    seed: Option<u64>,
    /// English names of languages: `english`, `french`, ...
    language: Option<String>,
    /// The second speaker of a PlayDialog request.
    #[serde(alias = "voice2")]
    voice_2: Option<String>,
    #[serde(alias = "turnPrefix")]
    turn_prefix: Option<String>,
    #[serde(alias = "turnPrefix2")]
    turn_prefix_2: Option<String>,
}

impl PlayRequest {
    fn text(&self) -> String {
        match &self.text {
            Some(PlayText::One(text)) => text.clone(),
            Some(PlayText::Many(parts)) => parts.join(" "),
            None => String::new(),
        }
    }
}

/// Which surface a request came through: its default format differs.
#[derive(Clone, Copy)]
enum Surface {
    /// PlayHT v2 and the inference URLs: `wav` by default.
    PlayHt,
    /// Play.ai v1: `mp3` by default.
    PlayAi,
}

/// PlayHT's format names.
fn output(request: &PlayRequest, surface: Surface) -> Result<OutputRequest, FieldError> {
    let default_format = match surface {
        Surface::PlayHt => AudioFormat::Wav,
        Surface::PlayAi => AudioFormat::Mp3,
    };
    let format = match request.output_format.as_deref() {
        None => None,
        Some(name @ ("mp3" | "wav" | "ogg" | "flac" | "mulaw" | "raw" | "pcm")) => AudioFormat::parse(name),
        Some(other) => {
            let message = format!("unknown format {other:?}; one of mp3, wav, ogg, flac, mulaw, raw, pcm");
            return Err(FieldError::new("output_format", message));
        }
    };
    Ok(OutputRequest {
        format,
        sample_rate: request.sample_rate,
        default_format,
        field: "output_format",
        ..OutputRequest::default()
    })
}

/// PlayHT names languages in English; providers take ISO 639-1 codes.
fn language_code(name: &str) -> Option<&'static str> {
    const CODES: [(&str, &str); 37] = [
        ("afrikaans", "af"),
        ("albanian", "sq"),
        ("amharic", "am"),
        ("arabic", "ar"),
        ("bengali", "bn"),
        ("bulgarian", "bg"),
        ("catalan", "ca"),
        ("croatian", "hr"),
        ("czech", "cs"),
        ("danish", "da"),
        ("dutch", "nl"),
        ("english", "en"),
        ("french", "fr"),
        ("galician", "gl"),
        ("german", "de"),
        ("greek", "el"),
        ("hebrew", "he"),
        ("hindi", "hi"),
        ("hungarian", "hu"),
        ("indonesian", "id"),
        ("italian", "it"),
        ("japanese", "ja"),
        ("korean", "ko"),
        ("malay", "ms"),
        ("mandarin", "zh"),
        ("polish", "pl"),
        ("portuguese", "pt"),
        ("russian", "ru"),
        ("serbian", "sr"),
        ("spanish", "es"),
        ("swedish", "sv"),
        ("tagalog", "tl"),
        ("thai", "th"),
        ("turkish", "tr"),
        ("ukrainian", "uk"),
        ("urdu", "ur"),
        ("xhosa", "xh"),
    ];
    CODES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, code)| *code)
}

/// Splits a two-speaker text at its turn prefixes: `(speaker, text)` in order. Text before the
/// first prefix is the first speaker's.
fn dialogue_turns(text: &str, prefixes: [&str; 2]) -> Vec<(usize, String)> {
    let mut turns = Vec::new();
    let (mut speaker, mut rest) = (0, text);
    loop {
        let next = prefixes
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.is_empty())
            .filter_map(|(who, p)| rest.find(p).map(|at| (at, who, p.len())))
            .min();
        let (end, after) = match next {
            Some((at, who, len)) => (at, Some((who, at + len))),
            None => (rest.len(), None),
        };
        let said = rest[..end].trim();
        if !said.is_empty() {
            turns.push((speaker, said.to_owned()));
        }
        match after {
            Some((who, from)) => {
                speaker = who;
                rest = &rest[from..];
            }
            None => return turns,
        }
    }
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
    owner: &str,
    details: &UsageDetails,
    request: PlayRequest,
    surface: Surface,
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
    let routes = &state.facades.playht;
    let segment = |voice: String, field: &'static str, text: String| {
        let language = language.clone();
        async move {
            let mut segment =
                facade::route_voice(&state.registry, state.store.as_ref(), owner, routes, &voice, None, field).await?;
            segment.text = text;
            segment.text_field = "text";
            segment.speed = request.speed;
            segment.seed = request.seed;
            segment.language = language;
            Ok::<SegmentInput, ApiError>(segment)
        }
    };

    // Only the PlayDialog engines voice a second speaker; the others ignore `voice_2`.
    let dialogue_engine = request.voice_engine.as_deref().is_none_or(|engine| engine.starts_with("PlayDialog"));
    let Some(voice_2) = request.voice_2.as_deref().filter(|_| dialogue_engine) else {
        let input =
            SpeechInput { segment: segment(voice.to_owned(), "voice", text).await?, output, ..SpeechInput::default() };
        let prepared = speech::prepare(&state.registry, state.store.as_ref(), owner, input).await?;
        let spoken = speech::synthesize(prepared, details, &state.metrics).await?;
        return Ok(Voiced { body: spoken.body, output: spoken.output });
    };
    let prefixes = [
        request.turn_prefix.as_deref().unwrap_or(DEFAULT_PREFIXES[0]),
        request.turn_prefix_2.as_deref().unwrap_or(DEFAULT_PREFIXES[1]),
    ];
    let mut turns = Vec::new();
    for (speaker, said) in dialogue_turns(&text, prefixes) {
        let (voice, field) = if speaker == 0 { (voice, "voice") } else { (voice_2, "voice_2") };
        turns.push(TurnInput { segment: segment(voice.to_owned(), field, said).await?, pause_before_ms: None });
    }
    if turns.is_empty() {
        return Err(ApiError::Validation(vec![FieldError::new("text", "must not be empty")]));
    }
    let input = ConversationInput { turns, output, ..ConversationInput::default() };
    let limits = &state.conversation;
    let prepared = conversation::prepare(&state.registry, state.store.as_ref(), owner, input, limits).await?;
    match conversation::start(prepared, details, &state.metrics, limits).await? {
        ConversationOutput::Audio { output, body, .. } => Ok(Voiced { body, output }),
        ConversationOutput::Split(_) | ConversationOutput::Timed(_) => {
            Err(ApiError::Internal("a dialogue without split or timestamps came back split or timed".to_owned()))
        }
    }
}

async fn stream(
    state: AppState,
    owner: &str,
    details: &UsageDetails,
    request: PlayRequest,
    surface: Surface,
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
    stream(state, &key.id, &details, request, Surface::PlayHt).await
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
    stream(state, &key.id, &details, request, Surface::PlayAi).await
}

/// PlayHT's error body.
#[derive(Serialize, ToSchema)]
pub struct PlayError {
    error_message: String,
    error_id: String,
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
    Path(_model): Path<String>,
    ApiJson(request): ApiJson<PlayRequest>,
) -> Result<Response, ApiError> {
    stream(state, &key.id, &details, request, Surface::PlayHt).await
}

/// How long finished jobs are kept.
const JOB_RETENTION: chrono::Duration = chrono::Duration::hours(24);
/// The most audio one job may hold.
const MAX_JOB_BYTES: usize = 50 * 1024 * 1024;

/// A job as PlayHT's v2 job API shows it.
#[derive(Serialize, ToSchema)]
pub struct PlayJob {
    id: String,
    /// When it was created (RFC 3339).
    created: String,
    /// The request as it was sent.
    #[schema(value_type = Object)]
    input: Value,
    output: PlayJobOutput,
    #[serde(rename = "_links")]
    links: Vec<PlayLink>,
}

#[derive(Serialize, ToSchema)]
pub struct PlayJobOutput {
    /// Seconds.
    duration: f64,
    /// Bytes.
    size: usize,
    url: String,
}

#[derive(Serialize, ToSchema)]
pub struct PlayLink {
    href: String,
    method: &'static str,
    #[serde(rename = "contentType")]
    content_type: String,
    rel: &'static str,
}

impl PlayJob {
    fn of(job: &TtsJob, base: &str) -> Self {
        let url = format!("{base}/playht/api/v2/tts/{}?format=audio-mpeg", job.id);
        let input = serde_json::from_str(&job.request).unwrap_or(Value::Null);
        PlayJob {
            id: job.id.clone(),
            created: job.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            input,
            output: PlayJobOutput {
                duration: job.duration_ms as f64 / 1000.0,
                size: job.audio.len(),
                url: url.clone(),
            },
            links: vec![PlayLink { href: url, method: "GET", content_type: job.media_type.clone(), rel: "audio" }],
        }
    }
}

/// A job as JSON, or as a `completed` server-sent event for clients that ask for events.
fn job_answer(job: &TtsJob, base: &str, headers: &HeaderMap, status: StatusCode) -> Response {
    let view = PlayJob::of(job, base);
    let wants_events =
        headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains("text/event-stream"));
    let mut response = if wants_events {
        let event = format!("event: completed\ndata: {}\n\n", serde_json::to_string(&view).unwrap_or_default());
        ([(header::CONTENT_TYPE, "text/event-stream")], event).into_response()
    } else {
        (status, Json(view)).into_response()
    };
    if let Ok(location) = HeaderValue::from_str(&format!("/playht/api/v2/tts/{}", job.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// PlayHT v2's job API: the audio is made at once and kept for a day; the answer (201) is the
/// finished job, with the URL of its audio.
#[utoipa::path(
    post,
    path = "/playht/api/v2/tts",
    tag = "playht",
    request_body = PlayRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The finished job (or, with `Accept: text/event-stream`, a `completed` event)", body = PlayJob),
        (status = 400, description = "An invalid field", body = PlayError),
        (status = 401, description = "Missing, invalid, expired or revoked key", body = PlayError)
    )
)]
pub async fn create_job(
    State(state): State<AppState>,
    Caller(key): Caller,
    Extension(details): Extension<UsageDetails>,
    headers: HeaderMap,
    ApiJson(document): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let request: PlayRequest = from_document(document.clone())?;
    let voiced = voice(&state, &key.id, &details, request, Surface::PlayHt).await?;
    let mut counter = crate::audio::DurationCounter::new(voiced.output);
    let mut audio = Vec::new();
    let mut chunks = voiced.body;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| ApiError::Internal(format!("the job's audio broke off: {e}")))?;
        if audio.len() + chunk.len() > MAX_JOB_BYTES {
            let detail = format!("the job's audio is over {MAX_JOB_BYTES} bytes; use /v2/tts/stream");
            return Err(ApiError::Http { status: StatusCode::PAYLOAD_TOO_LARGE, detail });
        }
        counter.push(&chunk);
        audio.extend_from_slice(&chunk);
    }
    let now = chrono::Utc::now();
    let job = TtsJob {
        id: uuid::Uuid::now_v7().to_string(),
        request: document.to_string(),
        media_type: voiced.output.format.media_type().to_owned(),
        duration_ms: i64::try_from(counter.duration_ms().unwrap_or(0)).unwrap_or(i64::MAX),
        audio,
        created_at: now,
    };
    state.store.delete_jobs_before(now - JOB_RETENTION).await?;
    state.store.insert_job(&key.id, &job).await?;
    Ok(job_answer(&job, &public_base(&state, &headers), &headers, StatusCode::CREATED))
}

/// How a job is asked for: as JSON, or its audio.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct JobQuery {
    /// `audio-mpeg` for the audio, `event-stream` for a `completed` event; else JSON.
    format: Option<String>,
}

/// A job of the caller's: JSON, or its audio with `?format=audio-mpeg` or `Accept: audio/mpeg`
/// (406 when the job's audio is not MP3).
#[utoipa::path(
    get,
    path = "/playht/api/v2/tts/{id}",
    tag = "playht",
    params(("id" = String, Path, description = "The job's id"), JobQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job as JSON, or its audio", body = PlayJob),
        (status = 401, description = "Missing, invalid, expired or revoked key", body = PlayError),
        (status = 404, description = "No such job (or it has expired)", body = PlayError),
        (status = 406, description = "Audio asked for in a format the job is not in", body = PlayError)
    )
)]
pub async fn get_job(
    State(state): State<AppState>,
    Caller(key): Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<JobQuery>,
    mut headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = state.store.get_job(&key.id, &id).await?;
    let job = job
        .filter(|job| job.created_at > chrono::Utc::now() - JOB_RETENTION)
        .ok_or_else(|| ApiError::NotFound(format!("no job {id:?}")))?;
    let accept = headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()).unwrap_or("").to_owned();
    let audio = query.format.as_deref() == Some("audio-mpeg") || accept.contains("audio/mpeg");
    if audio {
        if job.media_type != "audio/mpeg" {
            let detail = format!("the job's audio is {}; leave out format=audio-mpeg", job.media_type);
            return Err(ApiError::Http { status: StatusCode::NOT_ACCEPTABLE, detail });
        }
        let media_type = AudioFormat::Mp3.media_type();
        return Ok(audio_response(Body::from(job.audio), media_type, []));
    }
    if query.format.as_deref() == Some("event-stream") {
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/event-stream"));
    }
    Ok(job_answer(&job, &public_base(&state, &headers), &headers, StatusCode::OK))
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
        (status = 401, description = "Missing, invalid or expired token", body = PlayError)
    )
)]
pub async fn inference_socket(
    State(state): State<AppState>,
    Caller(key): Caller,
    Path(_model): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let voicer_state = state.clone();
    let owner = key.id.clone();
    let voicer: ws::Voicer = Box::new(move |command, details| {
        let (state, owner) = (voicer_state.clone(), owner.clone());
        async move {
            let request: PlayRequest = from_document(command)?;
            voice(&state, &owner, &details, request, Surface::PlayHt).await.map(|voiced| voiced.body)
        }
        .boxed()
    });
    let session = Session { state, key, route: "/playht/api/v4/inference/{model}/ws".to_owned(), voicer };
    upgrade.max_message_size(ws::MAX_COMMAND_BYTES).on_upgrade(move |socket| ws::serve(socket, session))
}

/// The gateway's address as the client reached it: `server.public_url`, else the request's
/// `Host` (and `X-Forwarded-Proto`). URLs built from it go back to the same client only.
pub(crate) fn public_base(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let https = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()) == Some("https");
    format!("{}://{host}", if https { "https" } else { "http" })
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
    let (token, expires) = state.auth.url_token(key);
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
    let (models, expires_at) = inference_urls(&state, &headers, &key);
    let urls: Map<String, Value> =
        models.into_iter().map(|(model, urls)| (model, urls["websocket_url"].clone())).collect();
    Json(serde_json::json!({"websocket_urls": urls, "expires_at": expires_at}))
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
    let (models, expires_at) = inference_urls(&state, &headers, &key);
    let urls: Map<String, Value> =
        models.into_iter().map(|(model, urls)| (model, urls["websocket_url"].clone())).collect();
    Json(serde_json::json!({"webSocketUrls": urls, "expiresAt": expires_at}))
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
    let (token, expires) = state.auth.url_token(&key);
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

/// The voices a PlayHT request can name: the mapped PlayHT ids, then every voice of every
/// provider with a catalogue, as `provider:voice`.
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
pub async fn list_voices(State(state): State<AppState>) -> Json<Vec<PlayVoice>> {
    let mut voices: Vec<PlayVoice> = state
        .facades
        .playht
        .voices
        .iter()
        .map(|(id, target)| PlayVoice {
            id: id.clone(),
            name: target.clone(),
            language: None,
            gender: None,
            voice_engine: "Play3.0-mini".to_owned(),
            is_cloned: false,
        })
        .collect();
    for provider in state.registry.providers() {
        // A catalogue that cannot be read now is left out, not an error of this list.
        let Ok(catalogue) = state.registry.voices(provider.id()).await else { continue };
        voices.extend(catalogue.iter().map(|v| PlayVoice {
            id: format!("{}:{}", provider.id(), v.id),
            name: v.name.clone(),
            language: v.language.clone(),
            gender: v.gender.clone(),
            voice_engine: "Play3.0-mini".to_owned(),
            is_cloned: false,
        }));
    }
    Json(voices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialogue_text_splits_at_either_prefix() {
        let turns = dialogue_turns("Host 1: Hi there. Host 2: Hello! Host 1: Bye.", ["Host 1:", "Host 2:"]);
        assert_eq!(turns, vec![(0, "Hi there.".to_owned()), (1, "Hello!".to_owned()), (0, "Bye.".to_owned())]);
        assert_eq!(dialogue_turns("No prefixes at all", ["A:", "B:"]), vec![(0, "No prefixes at all".to_owned())]);
        assert_eq!(dialogue_turns("B: only second", ["A:", "B:"]), vec![(1, "only second".to_owned())]);
        assert!(dialogue_turns("A: B:", ["A:", "B:"]).is_empty());
    }

    #[test]
    fn timestamps_have_milliseconds_and_z() {
        let time = chrono::DateTime::parse_from_rfc3339("2026-11-29T21:33:47.870123Z").unwrap().to_utc();
        assert_eq!(playht_time(time), "2026-11-29T21:33:47.870Z");
    }
}
