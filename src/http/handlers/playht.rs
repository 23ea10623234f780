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
        ws::{self, AudioBody},
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
    /// `Play3.0-mini`, `PlayDialog`, ... Only the PlayDialog engines voice `voice_2`; the
    /// provider is chosen by the voice.
    voice_engine: Option<String>,
    /// Play.ai's name for `voice_engine`.
    model: Option<String>,
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

/// What a request leaves out means different things depending on where it came through.
#[derive(Clone, Copy)]
struct Surface<'a> {
    /// `wav` on PlayHT v2 and its HTTP inference URLs, `mp3` on Play.ai v1 and the WebSocket.
    format: AudioFormat,
    /// The engine of the inference URL the request came to.
    engine: Option<&'a str>,
}

const PLAYHT_V2: Surface<'static> = Surface { format: AudioFormat::Wav, engine: None };
const PLAYAI_V1: Surface<'static> = Surface { format: AudioFormat::Mp3, engine: None };

/// PlayHT's format names.
fn output(request: &PlayRequest, surface: Surface<'_>) -> Result<OutputRequest, FieldError> {
    let default_format = surface.format;
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

/// Splits a two-speaker text at its turn prefixes: `(speaker, text)` in order, at most `max`
/// turns (`None` beyond). Text before the first prefix is the first speaker's. One pass over the
/// text per prefix.
fn dialogue_turns(text: &str, prefixes: [&str; 2], max: usize) -> Option<Vec<(usize, String)>> {
    let mut marks: Vec<(usize, usize, usize)> = prefixes
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.is_empty())
        .flat_map(|(who, p)| text.match_indices(p).map(move |(at, m)| (at, who, m.len())))
        .collect();
    marks.sort_unstable();
    let mut turns = Vec::new();
    let (mut speaker, mut from) = (0, 0);
    for (at, who, len) in marks.into_iter().chain(std::iter::once((text.len(), 0, 0))) {
        // A mark inside the previous prefix (the two prefixes overlap) is not a turn.
        if at < from {
            continue;
        }
        let said = text[from..at].trim();
        if !said.is_empty() {
            if turns.len() == max {
                return None;
            }
            turns.push((speaker, said.to_owned()));
        }
        (speaker, from) = (who, at + len);
    }
    Some(turns)
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
    stream(state, &key.id, &details, request, PLAYHT_V2).await
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
    stream(state, &key.id, &details, request, PLAYAI_V1).await
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
    Path(model): Path<String>,
    ApiJson(request): ApiJson<PlayRequest>,
) -> Result<Response, ApiError> {
    stream(state, &key.id, &details, request, Surface { engine: Some(&model), ..PLAYHT_V2 }).await
}

/// How long finished jobs are kept.
const JOB_RETENTION: chrono::Duration = chrono::Duration::hours(24);
/// The most audio one job may hold.
const MAX_JOB_BYTES: usize = 16 * 1024 * 1024;

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
    size: i64,
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
        let input = serde_json::from_str(&job.request).unwrap_or(Value::Null);
        let url = job_audio_url(job, base);
        PlayJob {
            id: job.id.clone(),
            created: job.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            input,
            output: PlayJobOutput { duration: job.duration_ms as f64 / 1000.0, size: job.size, url: url.clone() },
            links: vec![PlayLink { href: url, method: "GET", content_type: job.media_type.clone(), rel: "audio" }],
        }
    }
}

/// Where a job's audio is: `format=audio-mpeg` as PlayHT named it for MP3, `format=audio` for
/// the other formats.
fn job_audio_url(job: &TtsJob, base: &str) -> String {
    let format = if job.media_type == AudioFormat::Mp3.media_type() { "audio-mpeg" } else { "audio" };
    format!("{base}/playht/api/v2/tts/{}?format={format}", job.id)
}

/// A job as JSON, or, for clients that ask for events, a `completed` event whose data is what
/// PlayHT's SDKs read from it (`id`, `url`, `duration`, `size`).
fn job_answer(job: &TtsJob, base: &str, events: bool, status: StatusCode) -> Response {
    let mut response = if events {
        let data = serde_json::json!({
            "id": job.id,
            "url": job_audio_url(job, base),
            "duration": job.duration_ms as f64 / 1000.0,
            "size": job.size,
        });
        ([(header::CONTENT_TYPE, "text/event-stream")], format!("event: completed\ndata: {data}\n\n")).into_response()
    } else {
        (status, Json(PlayJob::of(job, base))).into_response()
    };
    if let Ok(location) = HeaderValue::from_str(&format!("/playht/api/v2/tts/{}", job.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Whether a request's `Accept` asks for `media_type`.
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains(media_type))
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
        (status = 400, description = "An invalid field, or audio too long to keep (use `/v2/tts/stream`)", body = PlayError),
        (status = 401, description = "Missing, invalid, expired or revoked key", body = PlayError),
        (status = 502, description = "The provider broke off", body = PlayError)
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
    let voiced = voice(&state, &key.id, &details, request, PLAYHT_V2).await?;
    let mut counter = crate::audio::DurationCounter::new(voiced.output);
    let mut audio = Vec::new();
    let mut chunks = voiced.body;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| ApiError::Http {
            status: StatusCode::BAD_GATEWAY,
            detail: format!("the job's audio broke off: {e}"),
        })?;
        if audio.len() + chunk.len() > MAX_JOB_BYTES {
            let message =
                format!("makes over {MAX_JOB_BYTES} bytes of audio, more than a job keeps; use /v2/tts/stream");
            return Err(ApiError::Validation(vec![FieldError::new("text", message)]));
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
        size: i64::try_from(audio.len()).unwrap_or(i64::MAX),
        audio: Some(audio),
        created_at: now,
    };
    state.store.insert_job(&key.id, &job).await?;
    // Expired jobs go as new ones come; a failure here costs nothing but space until the next.
    if let Err(error) = state.store.delete_jobs_before(now - JOB_RETENTION).await {
        tracing::warn!(%error, "expired PlayHT jobs could not be deleted");
    }
    let events = accepts(&headers, "text/event-stream");
    Ok(job_answer(&job, &public_base(&state, &headers), events, StatusCode::CREATED))
}

/// How a job is asked for: as JSON, or its audio.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct JobQuery {
    /// `audio-mpeg` for MP3 audio, `audio` for the audio in its format, `event-stream` for a
    /// `completed` event; else JSON.
    format: Option<String>,
}

/// A job of the caller's: JSON; its audio with `?format=audio` (or `audio-mpeg`, or `Accept:
/// audio/mpeg`, for an MP3 job: 406 for another format); or a `completed` event.
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
        (status = 406, description = "MP3 asked for and the job is in another format", body = PlayError)
    )
)]
pub async fn get_job(
    State(state): State<AppState>,
    Caller(key): Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<JobQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = query.format.as_deref();
    let mp3 = format == Some("audio-mpeg") || (format.is_none() && accepts(&headers, "audio/mpeg"));
    let audio = mp3 || format == Some("audio");
    let job = state.store.get_job(&key.id, &id, audio).await?;
    let job = job
        .filter(|job| job.created_at > chrono::Utc::now() - JOB_RETENTION)
        .ok_or_else(|| ApiError::NotFound(format!("no job {id:?}")))?;
    if !audio {
        let events = format == Some("event-stream") || accepts(&headers, "text/event-stream");
        return Ok(job_answer(&job, &public_base(&state, &headers), events, StatusCode::OK));
    }
    let stored = AudioFormat::ALL.into_iter().find(|f| f.media_type() == job.media_type);
    match stored {
        Some(format) if !mp3 || format == AudioFormat::Mp3 => {
            Ok(audio_response(Body::from(job.audio.unwrap_or_default()), format.media_type(), []))
        }
        _ => {
            let detail = format!("the job's audio is {}; ask with format=audio", job.media_type);
            Err(ApiError::Http { status: StatusCode::NOT_ACCEPTABLE, detail })
        }
    }
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
    let owner = key.id.clone();
    let voicer: ws::Voicer = Box::new(move |command, details| {
        let (state, owner, model) = (voicer_state.clone(), owner.clone(), model.clone());
        async move {
            let request: PlayRequest = from_document(command)?;
            let surface = Surface { format: AudioFormat::Mp3, engine: Some(&model) };
            voice(&state, &owner, &details, request, surface).await.map(|voiced| voiced.body)
        }
        .boxed()
    });
    ws::accept(upgrade, state, key, "/playht/api/v4/inference/{model}/ws", voicer)
}

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
        let split = |text: &str, prefixes| dialogue_turns(text, prefixes, 10);
        let turns = split("Host 1: Hi there. Host 2: Hello! Host 1: Bye.", ["Host 1:", "Host 2:"]);
        let expected = vec![(0, "Hi there.".to_owned()), (1, "Hello!".to_owned()), (0, "Bye.".to_owned())];
        assert_eq!(turns, Some(expected));
        assert_eq!(split("No prefixes at all", ["A:", "B:"]), Some(vec![(0, "No prefixes at all".to_owned())]));
        assert_eq!(split("B: only second", ["A:", "B:"]), Some(vec![(1, "only second".to_owned())]));
        assert_eq!(split("A: B:", ["A:", "B:"]), Some(vec![]));
        // Overlapping prefixes: a match inside the previous prefix does not start a turn.
        assert_eq!(split("AA: x A: y", ["A:", "AA:"]), Some(vec![(1, "x".to_owned()), (0, "y".to_owned())]));
    }

    #[test]
    fn dialogue_turns_stop_at_the_limit() {
        let text = "A: x B: y ".repeat(6);
        assert_eq!(dialogue_turns(&text, ["A:", "B:"], 12).map(|t| t.len()), Some(12));
        assert_eq!(dialogue_turns(&text, ["A:", "B:"], 11), None);
    }

    #[test]
    fn timestamps_have_milliseconds_and_z() {
        let time = chrono::DateTime::parse_from_rfc3339("2026-11-29T21:33:47.870123Z").unwrap().to_utc();
        assert_eq!(playht_time(time), "2026-11-29T21:33:47.870Z");
    }
}
