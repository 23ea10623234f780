//! ElevenLabs' API, drop-in at `/elevenlabs` (the SDKs' `base_url`): text to speech (audio,
//! stream, with timestamps, stream with timestamps), text to dialogue (the same four), voices
//! and models, with ElevenLabs' error shapes (rendered by `http::dialect`). Any provider can
//! serve it: ElevenLabs voice ids are routed as every facade routes them (`facades`):
//! a saved voice, `provider:voice`, `[facades.elevenlabs.voices]`, then the request's
//! `model_id` (a model of the facade's native provider, `elevenlabs` by default) or the facade's
//! `default_model`.

mod catalog;
mod dialogue;

use axum::{
    body::Body,
    extract::{FromRequestParts, Path},
    http::{request::Parts, HeaderValue},
    response::{IntoResponse, Response},
    Json,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

// Globs, so that each route's OpenAPI item comes along with its handler.
pub use self::{catalog::*, dialogue::*};
use super::speech::{audio_response, respond_with_speech};
use crate::service::provider_keys::Owner;
use crate::{
    domain::{FieldError, PathSegment},
    facades::{
        self as facade,
        elevenlabs::{
            align::{align, Aligner, ElevenLabsAlignment},
            wire::{self, speech_path, ElevenLabsTimedAudio, SpeechQuery},
        },
    },
    http::{
        extract::{ApiJson, ApiQuery, Caller},
        middleware::RequestId,
        problem::ApiError,
        AppState,
    },
    service::{
        speech::{timed, timed::TimedChunk, SpeechInput},
        synthesis::SegmentInput,
        timestamps::Mode,
        usage::UsageDetails,
    },
};

/// `error` with every field path rewritten by `locate`.
pub fn relocate(error: ApiError, locate: &dyn Fn(Vec<PathSegment>) -> Vec<PathSegment>) -> ApiError {
    let moved = |f: FieldError| FieldError { path: locate(f.path), message: f.message };
    match error {
        ApiError::Validation(fields) => ApiError::Validation(fields.into_iter().map(moved).collect()),
        ApiError::VoiceNotFound(field) => ApiError::VoiceNotFound(moved(field)),
        ApiError::Turn { index, error } => ApiError::Turn { index, error: Box::new(relocate(*error, locate)) },
        other => other,
    }
}

/// ElevenLabs' error body: `{"detail": {"status", "message"}}` (e.g. `invalid_api_key`,
/// `voice_not_found`).
#[derive(Serialize, ToSchema)]
pub struct ElevenLabsError {
    detail: ElevenLabsErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ElevenLabsErrorDetail {
    status: String,
    message: String,
}

/// ElevenLabs' (FastAPI's) 422 body: `{"detail": [{"loc", "msg", "type"}]}`, `loc` starting
/// with `body`, `query` or `path`.
#[derive(Serialize, ToSchema)]
pub struct ElevenLabsValidationError {
    detail: Vec<ElevenLabsFieldError>,
}

#[derive(Serialize, ToSchema)]
pub struct ElevenLabsFieldError {
    #[schema(value_type = Vec<Object>)]
    loc: Vec<Value>,
    msg: String,
    #[serde(rename = "type")]
    kind: String,
}

/// A facade request's context: the state, the calling key, its usage line and request id.
pub struct Call {
    state: AppState,
    owner: Owner,
    details: UsageDetails,
    request_id: RequestId,
}

impl FromRequestParts<AppState> for Call {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Caller(key) = Caller::from_request_parts(parts, state).await?;
        let missing = |what: &str| ApiError::Internal(format!("no {what} on the request"));
        let details = parts.extensions.get::<UsageDetails>().cloned().ok_or_else(|| missing("usage details"))?;
        let request_id = parts.extensions.get::<RequestId>().cloned().ok_or_else(|| missing("request id"))?;
        Ok(Call { state: state.clone(), owner: state.owner(&key), details, request_id })
    }
}

impl Call {
    /// What every successful answer carries: the gateway's request id and the characters
    /// billed.
    fn answer(&self, mut response: Response, characters: usize) -> Response {
        let headers = response.headers_mut();
        if let Ok(id) = HeaderValue::from_str(&self.request_id.0) {
            headers.insert("request-id", id);
        }
        headers.insert("character-cost", HeaderValue::from(characters));
        response
    }

    /// Who speaks `voice`, as a segment's addressing fields ([`facade::route_voice`]). A voice
    /// that nothing routes, on a provider this gateway does not serve, is a 404 that says so.
    async fn route(&self, voice: &str, model_id: Option<&str>, field: &str) -> Result<SegmentInput, ApiError> {
        let state = &self.state;
        let facade = &state.facades.elevenlabs;
        // `provider/model` and route names are taken as they are; an ElevenLabs model id is the native provider's when it
        // serves that model, else the facade's default model speaks.
        let native_model = |id: &str| {
            let model = format!("{}/{id}", facade.native_provider()?);
            state.registry.resolve(&model).is_ok().then_some(model)
        };
        let model = match model_id {
            Some(id) if id.contains('/') || state.registry.is_route(id) => Some(id.to_owned()),
            Some(id) => native_model(id).or_else(|| facade.default_model.clone()),
            None => facade.default_model.clone(),
        };
        let store = state.store.as_ref();
        let routed =
            facade::route_voice(&state.registry, store, &self.owner, facade, voice, model.as_deref(), field).await?;
        if let Some(model) = &routed.model {
            let provider = model.split('/').next().unwrap_or_default();
            if !state.registry.serves(provider) {
                let shown: String = voice.chars().take(64).collect();
                let message = format!(
                    "no provider serves voice {shown:?}: the {provider:?} provider is not configured here; name the \
                     voice as \"provider:voice\" or map it in [facades.elevenlabs.voices]"
                );
                return Err(ApiError::VoiceNotFound(FieldError::new(field, message)));
            }
        }
        Ok(routed)
    }

    /// The members of `vendor` (ElevenLabs body fields the gateway does not read itself) that the
    /// routed provider declares passable (`providerOptions`), so that they reach a provider that
    /// understands them and no other — a saved voice's provider too. `null` members are left out.
    async fn passable(
        &self,
        routed: &SegmentInput,
        vendor: Map<String, Value>,
    ) -> Result<Map<String, Value>, ApiError> {
        let model = match (&routed.model, &routed.voice_id) {
            (Some(model), _) => Some(model.clone()),
            (None, Some(id)) => {
                let saved = self.state.store.get_voice(&self.owner, id).await?;
                saved.map(|voice| voice.model.map_or(voice.provider.clone(), |m| format!("{}/{m}", voice.provider)))
            }
            (None, None) => None,
        };
        // A route passes each of its targets the members that target's provider declares.
        let Some(Ok(targets)) = model.map(|m| self.state.registry.targets(&m)) else {
            return Ok(Map::new());
        };
        let declared = |name: &String| {
            targets
                .iter()
                .any(|(resolved, _)| resolved.provider.capabilities().provider_options.iter().any(|o| &o.name == name))
        };
        Ok(vendor.into_iter().filter(|(name, value)| !value.is_null() && declared(name)).collect())
    }
}

/// The body of the four text-to-speech routes. Unknown members and `null` are accepted; the
/// members the gateway does not read reach the provider when it declares them passable (the
/// `elevenlabs` provider takes `voice_settings`, `previous_text`, `apply_text_normalization`...).
#[derive(Deserialize, ToSchema)]
pub struct ElevenLabsSpeechBody {
    /// Required.
    text: Option<String>,
    /// An ElevenLabs model id (served by the `elevenlabs` provider), or any model of this
    /// gateway as `provider/model`. Ignored for voices routed to another provider.
    model_id: Option<String>,
    /// ISO 639-1.
    language_code: Option<String>,
    voice_settings: Option<ElevenLabsVoiceSettings>,
    /// 0 to 4294967295, as ElevenLabs takes it.
    seed: Option<u32>,
    #[serde(flatten)]
    #[schema(ignore)]
    other: Map<String, Value>,
}

/// `speed` is the gateway's (the provider's range applies); the other members go to providers
/// that take `voice_settings`.
#[derive(Deserialize, ToSchema)]
pub struct ElevenLabsVoiceSettings {
    speed: Option<f32>,
    #[serde(flatten)]
    #[schema(ignore)]
    other: Map<String, Value>,
}

impl ElevenLabsSpeechBody {
    /// The request for `voice`, with the output `query` names.
    async fn into_input(
        self,
        call: &Call,
        voice: &str,
        query: &SpeechQuery,
        streaming: bool,
    ) -> Result<SpeechInput, ApiError> {
        let mut problems = Vec::new();
        if self.text.is_none() {
            problems.push(FieldError::new("text", "Field required"));
        }
        let output = wire::output_request(query, streaming).map_err(|p| problems.push(p)).ok();
        let (Some(text), Some(output), true) = (self.text, output, problems.is_empty()) else {
            return Err(ApiError::Validation(problems));
        };
        let routed = call.route(voice, self.model_id.as_deref(), "voice").await?;
        let mut vendor = self.other;
        let speed = self.voice_settings.and_then(|settings| {
            let members: Map<String, Value> = settings.other.into_iter().filter(|(_, v)| !v.is_null()).collect();
            if !members.is_empty() {
                vendor.insert("voice_settings".to_owned(), Value::Object(members));
            }
            settings.speed
        });
        let provider_options = call.passable(&routed, vendor).await?;
        Ok(SpeechInput {
            segment: SegmentInput {
                text,
                text_field: "text",
                speed,
                language: self.language_code,
                seed: self.seed.map(u64::from),
                provider_options,
                ..routed
            },
            output,
            ..SpeechInput::default()
        })
    }
}

/// The four text-to-speech routes' ways of answering.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    Audio { streaming: bool },
    Timed,
    TimedStream,
}

async fn speak(
    call: Call,
    voice: &str,
    query: Result<ApiQuery<SpeechQuery>, ApiError>,
    body: Result<ApiJson<ElevenLabsSpeechBody>, ApiError>,
    answer: Answer,
) -> Result<Response, ApiError> {
    let streaming = matches!(answer, Answer::Audio { streaming: true } | Answer::TimedStream);
    let located = async {
        let ApiQuery(query) = query.map_err(|e| relocate(e, &wire::query_path))?;
        let ApiJson(body) = body?;
        let input = body.into_input(&call, voice, &query, streaming).await?;
        let characters = input.segment.text.chars().count();
        let (state, owner, details) = (&call.state, &call.owner, &call.details);
        let response = match answer {
            Answer::Audio { .. } => respond_with_speech(state, owner, details, input, false).await?,
            Answer::Timed => {
                let original = input.segment.text.clone();
                let prepared = timed::prepare(&state.registry, state.store.as_ref(), owner, input, Mode::Auto).await?;
                crate::http::admission::admit(details, &prepared).await?;
                let clip = timed::synthesize(prepared, details, &state.metrics).await?.clip;
                let alignment = align(&original, &clip.timestamps, clip.duration_ms as f64 / 1000.0);
                Json(ElevenLabsTimedAudio::new(&clip.audio, Some(alignment))).into_response()
            }
            Answer::TimedStream => {
                let mut aligner = Aligner::new(&input.segment.text);
                let prepared = timed::prepare(&state.registry, state.store.as_ref(), owner, input, Mode::Auto).await?;
                crate::http::admission::admit(details, &prepared).await?;
                let chunks = timed::stream(prepared, details, &state.metrics).await?.chunks;
                let lines = chunks.filter_map(move |chunk| {
                    let line = match chunk {
                        TimedChunk::Audio(audio) => Some(Ok(wire::ndjson(&ElevenLabsTimedAudio::new(&audio, None)))),
                        TimedChunk::Words(words) => aligner.words(&words).map(|a| Ok(alignment_line(a))),
                        TimedChunk::Done { duration_ms, .. } => {
                            aligner.rest(duration_ms as f64 / 1000.0).map(|a| Ok(alignment_line(a)))
                        }
                        // ElevenLabs' stream has no error line: the body breaks off.
                        TimedChunk::Failed { message, .. } => Some(Err(std::io::Error::other(message))),
                    };
                    futures::future::ready(line)
                });
                audio_response(Body::from_stream(lines), "application/x-ndjson", [])
            }
        };
        Ok::<_, ApiError>(call.answer(response, characters))
    };
    located.await.map_err(|e| relocate(e, &speech_path))
}

/// A stream line with alignment and no audio.
fn alignment_line(alignment: ElevenLabsAlignment) -> bytes::Bytes {
    wire::ndjson(&ElevenLabsTimedAudio::new(&[], Some(alignment)))
}

/// Declares one text-to-speech route: its handler, path and answer.
macro_rules! speech_route {
    ($name:ident, $path:literal, $answer:expr, $doc:literal, $ok:literal, $content:literal) => {
        #[doc = $doc]
        #[utoipa::path(
            post,
            path = $path,
            tag = "elevenlabs",
            params(("voice_id" = String, Path, description = "An ElevenLabs voice id (mapped per `[facades.elevenlabs.voices]`), `provider:voice`, or a saved voice's id"), SpeechQuery),
            request_body = ElevenLabsSpeechBody,
            security(("xiApiKey" = [])),
            responses(
                (status = 200, description = $ok, content_type = $content, body = Vec<u8>),
                (status = 401, description = "`invalid_api_key`", body = ElevenLabsError),
                (status = 404, description = "`voice_not_found`, or an unknown model", body = ElevenLabsError),
                (status = 422, description = "A missing or invalid field or parameter: `{\"detail\": [{loc, msg, type}]}`", body = ElevenLabsValidationError),
                (status = 429, description = "Rate limited, by the gateway or the provider", body = ElevenLabsError),
                (status = 502, description = "The provider refused the gateway's credential or broke off", body = ElevenLabsError),
                (status = 503, description = "The provider is unavailable", body = ElevenLabsError)
            )
        )]
        pub async fn $name(
            call: Call,
            Path(voice_id): Path<String>,
            query: Result<ApiQuery<SpeechQuery>, ApiError>,
            body: Result<ApiJson<ElevenLabsSpeechBody>, ApiError>,
        ) -> Result<Response, ApiError> {
            speak(call, &voice_id, query, body, $answer).await
        }
    };
}

speech_route!(
    text_to_speech,
    "/elevenlabs/v1/text-to-speech/{voice_id}",
    Answer::Audio { streaming: false },
    "ElevenLabs' `POST /v1/text-to-speech/{voice_id}`, served by any provider; the audio streams as it is made.",
    "Audio in `output_format`. Headers: `request-id`, `character-cost`.",
    "audio/mpeg"
);
speech_route!(
    text_to_speech_stream,
    "/elevenlabs/v1/text-to-speech/{voice_id}/stream",
    Answer::Audio { streaming: true },
    "ElevenLabs' `POST /v1/text-to-speech/{voice_id}/stream` (no `wav_*` formats).",
    "Audio in `output_format`, streamed. Headers: `request-id`, `character-cost`.",
    "audio/mpeg"
);
speech_route!(
    text_to_speech_with_timestamps,
    "/elevenlabs/v1/text-to-speech/{voice_id}/with-timestamps",
    Answer::Timed,
    "ElevenLabs' `POST /v1/text-to-speech/{voice_id}/with-timestamps`: the clip and the time of every character of `text` (from the provider's word timing, else estimated from the audio).",
    "`{audio_base64, alignment, normalized_alignment: null}`. Headers: `request-id`, `character-cost`.",
    "application/json"
);
speech_route!(
    text_to_speech_stream_with_timestamps,
    "/elevenlabs/v1/text-to-speech/{voice_id}/stream/with-timestamps",
    Answer::TimedStream,
    "ElevenLabs' `POST /v1/text-to-speech/{voice_id}/stream/with-timestamps`: NDJSON chunks, each `{audio_base64, alignment, normalized_alignment}`; audio as it is encoded, alignment as words are settled. Concatenated, the chunks' characters are `text`.",
    "NDJSON, one `\\n`-terminated object per line. Headers: `request-id`, `character-cost`.",
    "application/x-ndjson"
);
