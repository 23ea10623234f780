//! PlayHT v2's job API: `POST /v2/tts` makes the audio at once and keeps it a day in the
//! database, so that any replica can answer `GET /v2/tts/{id}` for it.

use axum::{
    body::Body,
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Extension, Json,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{auth::public_base, voice, PlayError, PlayRequest};
use crate::facades::playht::PLAYHT_V2;
use crate::{
    domain::{audio::AudioFormat, FieldError, TtsJob},
    http::{
        extract::{from_document, ApiJson, ApiQuery, Caller},
        handlers::speech::audio_response,
        problem::ApiError,
        AppState,
    },
    service::usage::UsageDetails,
};

/// How long finished jobs are kept.
const JOB_RETENTION: chrono::Duration = chrono::Duration::hours(24);
/// The most jobs one project may keep (one day's), whichever of its keys made them.
const MAX_JOBS_PER_PROJECT: u64 = 1000;
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
        (status = 429, description = "`quota_exceeded`: the project keeps 1000 jobs, a day's limit", body = PlayError),
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
    let kept = state.store.count_jobs_since(&key.project_id, chrono::Utc::now() - JOB_RETENTION).await?;
    if kept >= MAX_JOBS_PER_PROJECT {
        let message = format!(
            "this project keeps {MAX_JOBS_PER_PROJECT} jobs, its limit for a day; use /v2/tts/stream, or wait for the oldest to expire"
        );
        return Err(ApiError::QuotaExceeded(message));
    }
    let voiced = voice(&state, &state.owner(&key), &details, request, PLAYHT_V2).await?;
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
    state.store.insert_job(&key.project_id, &job).await?;
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
    let job = state.store.get_job(&key.project_id, &id, audio).await?;
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
