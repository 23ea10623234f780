//! `POST /v1/audio/speech`: one request shape in two dialects — Speechbase (`text`, `voiceId`,
//! `output`) and OpenAI (`input`, `voice` as string or `{id}`, `response_format`,
//! `stream_format: "sse"`) — mapped onto one service call.

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
    Extension, Json,
};
use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::service::provider_keys::Owner;
use crate::{
    domain::{audio::AudioFormat, pronounce::Pronunciations, FieldError},
    facades as facade,
    facades::openai::{StreamFormat, VoiceField},
    http::{
        extract::{ApiJson, Caller},
        problem::{ApiError, Problem},
        AppState,
    },
    service::{
        speech::{self, timed, SpeechInput},
        synthesis::{OutputRequest, SegmentInput},
        timestamps::{Alignment, Mode, TimedClip, Timestamp},
        usage::UsageDetails,
    },
};

/// `"mp3"`, or `{format, sampleRate, bitrate}` (bitrate in kbit/s).
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OutputField {
    Format(String),
    Spec(OutputSpec),
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutputSpec {
    format: Option<String>,
    sample_rate: Option<u32>,
    bitrate: Option<u32>,
}

/// Exactly one of `voiceId` or `model` + `voice`; the text as `text` (or OpenAI's `input`).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpeechBody {
    /// `provider/model`, a bare provider id (its default model), or an alias such as `tts-1`.
    model: Option<String>,
    voice: Option<VoiceField>,
    /// A saved voice's id (`/v1/voices`).
    voice_id: Option<String>,
    text: Option<String>,
    /// OpenAI's name for `text`.
    input: Option<String>,
    /// Default `wav` for Speechbase bodies (`text`), `mp3` for OpenAI ones (`input`).
    output: Option<OutputField>,
    /// OpenAI's name for `output`: mp3, opus, aac, flac, wav, pcm.
    #[serde(rename = "response_format")]
    response_format: Option<String>,
    /// 0.25 to 4 (narrower where the provider says so).
    speed: Option<f32>,
    instructions: Option<String>,
    language: Option<String>,
    seed: Option<u64>,
    /// Normalise the clip's peak to this level (-60 to 0). Needs the whole clip before the first
    /// byte can be sent, so it adds latency.
    volume_dbfs: Option<f32>,
    /// Extra vendor fields, only those the provider declares as passable (listed per provider
    /// in `GET /v1/audio/providers` as `providerOptions`); they never replace a field the
    /// gateway sets (text, model, voice, format). Anything else is a 400 at
    /// `providerOptions.<name>`.
    provider_options: Option<Map<String, Value>>,
    /// `sse`: `text/event-stream` of `speech.audio.delta` / `speech.audio.done` events.
    #[serde(rename = "stream_format")]
    stream_format: Option<StreamFormat>,
    /// Whole words spoken differently, applied to the text before any provider sees it.
    pronunciations: Option<Pronunciations>,
    /// `/with-timestamps` only: `auto` (default; Speechbase's `on` too) uses the provider's
    /// timing or estimates it from the audio; `native` refuses providers without timing.
    timestamps: Option<Mode>,
    /// Legacy Speechbase discriminator (`inline` / `voice`); accepted and ignored.
    #[serde(rename = "mode")]
    #[schema(ignore)]
    _mode: Option<serde::de::IgnoredAny>,
}

impl SpeechBody {
    fn into_input(self) -> Result<(SpeechInput, bool), ApiError> {
        let mut problems = Vec::new();
        let openai = self.input.is_some();
        let (text, text_field) = match (self.text, self.input) {
            (Some(text), None) => (text, "text"),
            (None, Some(input)) => (input, "input"),
            (Some(_), Some(_)) => {
                problems.push(FieldError::new("input", "give `text` or `input`, not both"));
                (String::new(), "text")
            }
            (None, None) => {
                problems.push(FieldError::new("text", "is required"));
                (String::new(), "text")
            }
        };
        let default_format = if openai { AudioFormat::Mp3 } else { AudioFormat::Wav };
        let output = match (self.output, self.response_format) {
            (Some(_), Some(_)) => {
                problems.push(FieldError::new("response_format", "give `output` or `response_format`, not both"));
                OutputRequest::default()
            }
            (None, Some(name)) => {
                let mut output = OutputRequest { default_format, field: "response_format", ..OutputRequest::default() };
                output.format = parse_format(&name, "response_format", &mut problems);
                // OpenAI's raw formats are 24 kHz, whoever speaks.
                if matches!(output.format, Some(AudioFormat::Pcm | AudioFormat::Wav)) {
                    output.sample_rate = Some(crate::facades::openai::OPENAI_RATE);
                }
                output
            }
            (output, None) => read_output(output, default_format, &mut problems),
        };
        if !problems.is_empty() {
            return Err(ApiError::Validation(problems));
        }
        let input = SpeechInput {
            segment: SegmentInput {
                model: self.model,
                voice: self.voice.map(VoiceField::into_id),
                voice_id: self.voice_id,
                text,
                text_field,
                speed: self.speed,
                instructions: self.instructions,
                language: self.language,
                seed: self.seed,
                provider_options: self.provider_options.unwrap_or_default(),
            },
            output,
            volume_dbfs: self.volume_dbfs,
            pronunciations: self.pronunciations.unwrap_or_default(),
            native_only: false,
        };
        Ok((input, self.stream_format == Some(StreamFormat::Sse)))
    }
}

/// The `output` field (absent, a format name, or a spec) as an output request.
pub(super) fn read_output(
    field: Option<OutputField>,
    default_format: AudioFormat,
    problems: &mut Vec<FieldError>,
) -> OutputRequest {
    let mut output = OutputRequest { default_format, ..OutputRequest::default() };
    match field {
        Some(OutputField::Format(name)) => output.format = parse_format(&name, "output", problems),
        Some(OutputField::Spec(spec)) => {
            output.format = spec.format.and_then(|name| parse_format(&name, "output", problems));
            output.sample_rate = spec.sample_rate;
            output.bitrate_kbps = spec.bitrate;
        }
        None => {}
    }
    output
}

fn parse_format(name: &str, field: &str, problems: &mut Vec<FieldError>) -> Option<AudioFormat> {
    let parsed = AudioFormat::parse(name);
    if parsed.is_none() {
        let known: Vec<_> = AudioFormat::ALL.iter().map(|f| f.as_str()).collect();
        problems.push(FieldError::new(field, format!("unknown format {name:?}; one of {}", known.join(", "))));
    }
    parsed
}

/// Synthesise one clip. Audio streams to the client as the provider produces it.
#[utoipa::path(
    post,
    path = "/v1/audio/speech",
    tag = "speech",
    request_body = SpeechBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Audio in the requested format (or `text/event-stream` with `stream_format: sse`). Headers: `x-speech-provider`, `x-speech-model`, `x-speech-characters`.", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "Malformed JSON, or an invalid field or parameter (`validation` names it)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown model (the detail lists the known ones), `voice_not_found` for a `voiceId` with no saved voice, or the provider does not know the voice", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited, by the gateway or the provider", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The provider refused the gateway's credential or broke off", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The provider is unavailable", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The provider did not answer in time", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn create_speech(
    State(state): State<AppState>,
    Caller(key): Caller,
    Extension(details): Extension<UsageDetails>,
    ApiJson(body): ApiJson<SpeechBody>,
) -> Result<Response, ApiError> {
    speak(&state, &state.owner(&key), &details, body, false).await
}

/// The provider's own stream with the least latency: bytes are passed on as they arrive and
/// never converted. `output` must be a format the provider makes itself (default: its mp3,
/// else its PCM); `volumeDbfs` is refused.
#[utoipa::path(
    post,
    path = "/v1/audio/speech/stream",
    tag = "speech",
    request_body = SpeechBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The provider's native audio stream. Headers: `x-speech-provider`, `x-speech-model`, `x-speech-characters`.", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "Malformed JSON, an invalid field, or a format the provider does not make itself", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown model, `voice_not_found` for a `voiceId` with no saved voice, or the provider does not know the voice", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited, by the gateway or the provider", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The provider refused the gateway's credential or broke off", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The provider is unavailable", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The provider did not answer in time", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn create_speech_stream(
    State(state): State<AppState>,
    Caller(key): Caller,
    Extension(details): Extension<UsageDetails>,
    ApiJson(body): ApiJson<SpeechBody>,
) -> Result<Response, ApiError> {
    speak(&state, &state.owner(&key), &details, body, true).await
}

async fn speak(
    state: &AppState,
    owner: &Owner,
    details: &UsageDetails,
    body: SpeechBody,
    native_only: bool,
) -> Result<Response, ApiError> {
    let (mut input, sse) = read_speech(state, owner, body).await?;
    input.native_only = native_only;
    respond_with_speech(state, owner, details, input, sse).await
}

/// A body of the audio routes (not `/with-timestamps`) as a service input, and whether it asks
/// for SSE; an OpenAI body's voice is routed as on the OpenAI drop-in.
pub(super) async fn read_speech(
    state: &AppState,
    owner: &Owner,
    body: SpeechBody,
) -> Result<(SpeechInput, bool), ApiError> {
    if body.timestamps.is_some() {
        let message = "word timing comes from /v1/audio/speech/with-timestamps";
        return Err(ApiError::Validation(vec![FieldError::new("timestamps", message)]));
    }
    let openai = body.input.is_some();
    let (mut input, sse) = body.into_input()?;
    if openai {
        route_openai_voice(state, owner, &mut input.segment).await?;
    }
    Ok((input, sse))
}

/// An OpenAI body's voice, routed as on the OpenAI drop-in (`facades`): OpenAI SDK code
/// pointed at `/v1` can be served by any provider too.
pub(super) async fn route_openai_voice(
    state: &AppState,
    owner: &Owner,
    segment: &mut SegmentInput,
) -> Result<(), ApiError> {
    let (Some(voice), None) = (&segment.voice, &segment.voice_id) else { return Ok(()) };
    let facade = &state.facades.openai;
    let model = segment.model.as_deref();
    // Unclaimed and without a model: left for `resolve`, which reports the missing model.
    if let Some(routed) =
        facade::claim_voice(&state.registry, state.store.as_ref(), owner, facade, voice, model).await?
    {
        (segment.model, segment.voice, segment.voice_id) = (routed.model, routed.voice, routed.voice_id);
    }
    Ok(())
}

/// Synthesises `input` for `key` and answers with the audio as it streams (or OpenAI's SSE
/// events).
pub(super) async fn respond_with_speech(
    state: &AppState,
    owner: &Owner,
    details: &UsageDetails,
    input: SpeechInput,
    sse: bool,
) -> Result<Response, ApiError> {
    let prepared = speech::prepare(&state.registry, state.store.as_ref(), owner, input).await?;
    crate::http::admission::admit(details, &prepared).await?;
    let output = speech::synthesize(prepared, details, &state.metrics).await?;
    let media_type = if sse { "text/event-stream" } else { output.output.format.media_type() };
    let body = if sse { Body::from_stream(sse_events(output.body)) } else { Body::from_stream(output.body) };
    Ok(audio_response(
        body,
        media_type,
        [
            ("x-speech-provider", output.provider),
            ("x-speech-model", output.model),
            ("x-speech-characters", output.characters.to_string()),
        ],
    ))
}

/// A clip and the times of its words.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimedAudio {
    /// The whole clip in the requested format, base64.
    audio: String,
    media_type: &'static str,
    /// What a player plays, the encoder's lead-in included.
    duration_ms: u64,
    /// The request text's words in order, in seconds from the start of `audio`; `charStart` and
    /// `charEnd` count Unicode code points of the request's text, end exclusive.
    timestamps: Vec<Timestamp>,
    /// `native`: the provider's timing; `estimated`: measured by the gateway from the audio.
    alignment: Alignment,
    warnings: Vec<String>,
}

/// Synthesise one clip and time its words: the same body as `/v1/audio/speech`, answered with
/// JSON (the audio base64). Times are the provider's own where it has them (ElevenLabs,
/// Cartesia, the local voice), else estimated from the audio.
#[utoipa::path(
    post,
    path = "/v1/audio/speech/with-timestamps",
    tag = "speech",
    request_body = SpeechBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The clip and its words. Headers: `x-speech-provider`, `x-speech-model`, `x-speech-alignment`.", body = TimedAudio),
        (status = 400, description = "Malformed JSON, or an invalid field or parameter (`validation` names it)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown model, `voice_not_found`, or the provider does not know the voice", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited, by the gateway or the provider", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The provider refused the gateway's credential or broke off", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The provider is unavailable, or `timestamps_unavailable`: `timestamps: native` and the provider has no timing", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The provider did not answer in time", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn create_speech_with_timestamps(
    State(state): State<AppState>,
    Caller(key): Caller,
    Extension(details): Extension<UsageDetails>,
    ApiJson(body): ApiJson<SpeechBody>,
) -> Result<Response, ApiError> {
    let sse = "timestamps come as JSON; for a stream use /v1/audio/speech/with-timestamps/stream";
    let prepared = prepare_timed(&state, &state.owner(&key), body, sse).await?;
    crate::http::admission::admit(&details, &prepared).await?;
    let spoken = timed::synthesize(prepared, &details, &state.metrics).await?;
    Ok(TimedAudio::respond(spoken.clip, [("x-speech-provider", spoken.provider), ("x-speech-model", spoken.model)]))
}

/// The clip and its word times as NDJSON, sent as they are made: `{"type":"audio","audio"}`
/// lines of encoded audio (base64; concatenated, they are the file), `{"type":"words",
/// "timestamps"}` as soon as words are settled (the provider's own timing; estimated times come
/// at the end), then `{"type":"done","durationMs","alignment","warnings"}`. `volumeDbfs` is
/// refused (it needs the whole clip).
#[utoipa::path(
    post,
    path = "/v1/audio/speech/with-timestamps/stream",
    tag = "speech",
    request_body = SpeechBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`application/x-ndjson`: audio, words and done lines. Headers: `x-speech-provider`, `x-speech-model`.", content_type = "application/x-ndjson", body = String),
        (status = 400, description = "Malformed JSON, or an invalid field or parameter (`validation` names it)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown model, `voice_not_found`, or the provider does not know the voice", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited, by the gateway or the provider", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The provider refused the gateway's credential or broke off", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The provider is unavailable, or `timestamps_unavailable`", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The provider did not answer in time", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn create_speech_with_timestamps_stream(
    State(state): State<AppState>,
    Caller(key): Caller,
    Extension(details): Extension<UsageDetails>,
    ApiJson(body): ApiJson<SpeechBody>,
) -> Result<Response, ApiError> {
    let prepared =
        prepare_timed(&state, &state.owner(&key), body, "this route streams NDJSON lines; leave out stream_format")
            .await?;
    crate::http::admission::admit(&details, &prepared).await?;
    let timed::TimedStream { provider, model, chunks } = timed::stream(prepared, &details, &state.metrics).await?;
    let lines = chunks.map(|chunk| Ok::<_, std::io::Error>(chunk.ndjson_line()));
    Ok(audio_response(
        Body::from_stream(lines),
        "application/x-ndjson",
        [("x-speech-provider", provider), ("x-speech-model", model)],
    ))
}

/// A body of the `/with-timestamps` routes, checked and resolved; `sse` says why
/// `stream_format: sse` is refused there.
async fn prepare_timed(
    state: &AppState,
    owner: &Owner,
    body: SpeechBody,
    sse: &'static str,
) -> Result<timed::TimedPrepared, ApiError> {
    let mode = body.timestamps.unwrap_or_default();
    let (input, wants_sse) = body.into_input()?;
    if wants_sse {
        return Err(ApiError::Validation(vec![FieldError::new("stream_format", sse)]));
    }
    Ok(timed::prepare(&state.registry, state.store.as_ref(), owner, input, mode).await?)
}

impl TimedAudio {
    /// `clip` as the JSON answer, with `x-speech-alignment` and the given `x-speech-*` headers.
    pub(super) fn respond<const N: usize>(clip: TimedClip, speech_headers: [(&'static str, String); N]) -> Response {
        let alignment = clip.alignment.as_str();
        let answer = TimedAudio {
            audio: base64::engine::general_purpose::STANDARD.encode(&clip.audio),
            media_type: clip.output.format.media_type(),
            duration_ms: clip.duration_ms,
            timestamps: clip.timestamps,
            alignment: clip.alignment,
            warnings: clip.warnings,
        };
        let mut response = Json(answer).into_response();
        response.headers_mut().insert("x-speech-alignment", HeaderValue::from_static(alignment));
        with_speech_headers(response, speech_headers)
    }
}

/// A streamed audio answer: its media type, never cached, with the `x-speech-*` headers.
pub(super) fn audio_response<const N: usize>(
    body: Body,
    media_type: &'static str,
    speech_headers: [(&'static str, String); N],
) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_speech_headers(response, speech_headers)
}

/// `response` with the `x-speech-*` headers (a value that cannot be a header is left out).
fn with_speech_headers<const N: usize>(mut response: Response, headers: [(&'static str, String); N]) -> Response {
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// OpenAI's speech SSE: one `speech.audio.delta` per chunk, then `speech.audio.done`.
fn sse_events(
    audio: futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let deltas = audio.map(|chunk| {
        chunk.map(|bytes| {
            let event = json!({"type": "speech.audio.delta", "audio": base64::engine::general_purpose::STANDARD.encode(&bytes)});
            Bytes::from(format!("data: {event}\n\n"))
        })
    });
    // Token counts are OpenAI's billing unit; the gateway bills characters and reports none.
    let done =
        json!({"type": "speech.audio.done", "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}});
    deltas.chain(futures::stream::once(async move { Ok(Bytes::from(format!("data: {done}\n\n"))) }))
}
