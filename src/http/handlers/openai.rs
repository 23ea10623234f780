//! OpenAI's speech API, drop-in at `/openai/v1` (the OpenAI SDKs' `base_url`): its request body,
//! its error shape, its model list. Any provider can serve it: the retired model names (`tts-1`,
//! `tts-1-hd`, `gpt-4o-mini-tts`) are aliases (`[providers.aliases]`), and OpenAI's voice names
//! can be mapped to any provider's voices (`[facades.openai.voices]`).

use axum::{
    extract::{Path, State},
    response::Response,
    Extension, Json,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::speech::{respond_with_speech, route_openai_voice, StreamFormat, VoiceField};
use crate::{
    domain::{audio::AudioFormat, FieldError},
    http::{
        extract::{ApiJson, Caller},
        problem::ApiError,
        AppState,
    },
    service::{
        speech::SpeechInput,
        synthesis::{OutputRequest, SegmentInput},
        usage::UsageDetails,
    },
};

/// OpenAI's limit on `input` and `instructions`, in characters.
const MAX_INPUT_CHARS: usize = 4096;
/// The formats OpenAI's `response_format` names.
const FORMATS: [AudioFormat; 6] =
    [AudioFormat::Mp3, AudioFormat::Opus, AudioFormat::Aac, AudioFormat::Flac, AudioFormat::Wav, AudioFormat::Pcm];
/// OpenAI's raw formats are 24 kHz.
pub(super) const OPENAI_RATE: u32 = 24_000;

/// OpenAI's `CreateSpeechRequest`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAiSpeechBody {
    /// `tts-1`, `tts-1-hd`, `gpt-4o-mini-tts`, or any model of this gateway (`provider/model`).
    model: String,
    /// At most 4096 characters.
    input: String,
    /// An OpenAI voice name (mapped per `[facades.openai.voices]`), `provider:voice`, a saved
    /// voice's id, or `{"id": ...}`.
    voice: VoiceField,
    instructions: Option<String>,
    /// `mp3` (default), `opus`, `aac`, `flac`, `wav` or `pcm` (24 kHz, 16-bit, mono, no header).
    response_format: Option<String>,
    /// 0.25 to 4.
    speed: Option<f32>,
    /// `audio` (default) or `sse`.
    stream_format: Option<StreamFormat>,
}

/// OpenAI's `{"error": {...}}`.
#[derive(Serialize, ToSchema)]
pub struct OpenAiErrorResponse {
    error: crate::http::problem::OpenAiError,
}

impl OpenAiSpeechBody {
    fn into_input(self) -> Result<(SpeechInput, bool), ApiError> {
        let mut problems = Vec::new();
        for (field, text) in [("input", Some(&self.input)), ("instructions", self.instructions.as_ref())] {
            if text.is_some_and(|t| t.chars().count() > MAX_INPUT_CHARS) {
                problems.push(FieldError::new(field, format!("must be at most {MAX_INPUT_CHARS} characters")));
            }
        }
        if self.speed.is_some_and(|speed| !(0.25..=4.0).contains(&speed)) {
            problems.push(FieldError::new("speed", "must be between 0.25 and 4"));
        }
        let sse = self.stream_format == Some(StreamFormat::Sse);
        if sse && matches!(self.model.as_str(), "tts-1" | "tts-1-hd") {
            problems.push(FieldError::new("stream_format", "sse is not supported for tts-1 and tts-1-hd"));
        }
        let format = match self.response_format.as_deref() {
            None => AudioFormat::Mp3,
            Some(name) => match FORMATS.iter().find(|f| f.as_str() == name) {
                Some(format) => *format,
                None => {
                    let known: Vec<_> = FORMATS.iter().map(|f| f.as_str()).collect();
                    let message = format!("unknown format {name:?}; one of {}", known.join(", "));
                    problems.push(FieldError::new("response_format", message));
                    AudioFormat::Mp3
                }
            },
        };
        if !problems.is_empty() {
            return Err(ApiError::Validation(problems));
        }
        let raw = matches!(format, AudioFormat::Pcm | AudioFormat::Wav);
        let input = SpeechInput {
            segment: SegmentInput {
                model: Some(self.model),
                voice: Some(self.voice.into_id()),
                text: self.input,
                text_field: "input",
                speed: self.speed,
                instructions: self.instructions,
                ..SegmentInput::default()
            },
            output: OutputRequest {
                format: Some(format),
                sample_rate: raw.then_some(OPENAI_RATE),
                field: "response_format",
                ..OutputRequest::default()
            },
            ..SpeechInput::default()
        };
        Ok((input, sse))
    }
}

/// OpenAI's `POST /v1/audio/speech`, served by any provider.
#[utoipa::path(
    post,
    path = "/openai/v1/audio/speech",
    tag = "openai",
    request_body = OpenAiSpeechBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Audio (or `text/event-stream` of `speech.audio.delta` / `speech.audio.done` with `stream_format: sse`). Headers: `x-speech-provider`, `x-speech-model`.", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "An invalid field (`param` names it)", body = OpenAiErrorResponse),
        (status = 401, description = "Missing, invalid, expired or revoked key", body = OpenAiErrorResponse),
        (status = 404, description = "Unknown model or voice", body = OpenAiErrorResponse),
        (status = 429, description = "Rate limited, by the gateway or the provider", body = OpenAiErrorResponse),
        (status = 502, description = "The provider refused the gateway's credential or broke off (`x-should-retry: false`)", body = OpenAiErrorResponse),
        (status = 503, description = "The provider is unavailable", body = OpenAiErrorResponse)
    )
)]
pub async fn create_speech(
    State(state): State<AppState>,
    Caller(key): Caller,
    Extension(details): Extension<UsageDetails>,
    ApiJson(body): ApiJson<OpenAiSpeechBody>,
) -> Result<Response, ApiError> {
    let (mut input, sse) = body.into_input()?;
    route_openai_voice(&state, &key.id, &mut input.segment).await?;
    respond_with_speech(&state, &key.id, &details, input, sse).await
}

/// OpenAI's `Model`.
#[derive(Serialize, ToSchema)]
pub struct OpenAiModel {
    id: String,
    object: &'static str,
    /// Unknown for provider models: always 0.
    created: i64,
    owned_by: String,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiModelList {
    object: &'static str,
    data: Vec<OpenAiModel>,
}

/// Every model name a request may use: the aliases (OpenAI's own names among them) that lead
/// to a served model, then every `provider/model`.
fn models(state: &AppState) -> Vec<OpenAiModel> {
    let registry = &state.registry;
    let aliases = registry.aliases().filter_map(|(alias, _)| {
        let resolved = registry.resolve(alias).ok()?;
        Some(OpenAiModel {
            id: alias.to_owned(),
            object: "model",
            created: 0,
            owned_by: resolved.provider.id().to_owned(),
        })
    });
    let served = registry.providers().flat_map(|p| {
        p.capabilities().models.iter().map(move |m| OpenAiModel {
            id: format!("{}/{}", p.id(), m.id),
            object: "model",
            created: 0,
            owned_by: p.id().to_owned(),
        })
    });
    aliases.chain(served).collect()
}

/// OpenAI's `GET /v1/models`.
#[utoipa::path(
    get,
    path = "/openai/v1/models",
    tag = "openai",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Models", body = OpenAiModelList),
        (status = 401, description = "Missing, invalid, expired or revoked key", body = OpenAiErrorResponse)
    )
)]
pub async fn list_models(State(state): State<AppState>) -> Json<OpenAiModelList> {
    Json(OpenAiModelList { object: "list", data: models(&state) })
}

/// OpenAI's `GET /v1/models/{model}`.
#[utoipa::path(
    get,
    path = "/openai/v1/models/{model}",
    tag = "openai",
    params(("model" = String, Path, description = "A model name from the list (an alias such as `tts-1`)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The model", body = OpenAiModel),
        (status = 401, description = "Missing, invalid, expired or revoked key", body = OpenAiErrorResponse),
        (status = 404, description = "No such model", body = OpenAiErrorResponse)
    )
)]
pub async fn get_model(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<OpenAiModel>, ApiError> {
    models(&state)
        .into_iter()
        .find(|m| m.id == model)
        .map(Json)
        .ok_or_else(|| ApiError::UnknownModel(format!("the model {model:?} does not exist")))
}
