//! `POST /v1/audio/conversation`: Speechbase's conversation body (a superset of it) mapped onto
//! the conversation service.

use axum::{body::Body, extract::State, response::IntoResponse, response::Response, Extension, Json};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::speech::{audio_response, read_output, OutputField, TimedAudio};
use crate::service::provider_keys::Owner;
use crate::{
    domain::{audio::AudioFormat, pronounce::Pronunciations, FieldError},
    facades::openai::VoiceField,
    http::{
        extract::{ApiJson, Caller},
        problem::{ApiError, Problem},
        AppState,
    },
    service::{
        conversation::{
            self, ConversationInput, ConversationOutput, SplitConversation, Strategy, TurnDefaults, TurnInput,
        },
        synthesis::SegmentInput,
        timestamps::Mode,
        usage::UsageDetails,
    },
};

/// Turns voiced by any mix of providers, made into one file (or one clip per turn).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConversationBody {
    /// `provider/model` for every turn that names only a `voice`.
    model: Option<String>,
    turns: Vec<TurnBody>,
    /// Silence between turns, 0 to 5000 ms (default 300).
    gap_ms: Option<u32>,
    /// Peak of the whole file, -60 to 0 dBFS. Turns are first matched to each other in
    /// loudness (EBU R128); without it they are only kept from clipping.
    volume_dbfs: Option<f32>,
    /// Default `wav`; any format and rate (the mix is encoded once).
    output: Option<OutputField>,
    /// `true`: JSON with one clip per turn instead of one file.
    split: Option<bool>,
    /// `stitch` (default), `native` (one dialogue request, for a provider that has them) or
    /// `auto`.
    strategy: Option<Strategy>,
    /// Default `speed` of every turn.
    speed: Option<f32>,
    /// Default `language` of every turn.
    language: Option<String>,
    /// Default `providerOptions` of every turn (a turn's own members win).
    provider_options: Option<Map<String, Value>>,
    /// Whole words spoken differently, in every turn.
    pronunciations: Option<Pronunciations>,
    /// `/with-timestamps` only: `auto` (default; `on` too) or `native`.
    timestamps: Option<Mode>,
    /// Speechbase's SDK sends `"conversation"`; accepted and ignored.
    #[serde(rename = "mode")]
    #[schema(ignore)]
    _mode: Option<serde::de::IgnoredAny>,
}

/// One turn: `voice` (under the top-level `model`), `model` + `voice`, or a saved `voiceId`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TurnBody {
    model: Option<String>,
    voice: Option<VoiceField>,
    voice_id: Option<String>,
    text: String,
    speed: Option<f32>,
    language: Option<String>,
    instructions: Option<String>,
    provider_options: Option<Map<String, Value>>,
    /// Silence before this turn instead of `gapMs`, 0 to 5000 ms.
    pause_before_ms: Option<u32>,
    /// Legacy Speechbase discriminator (`inline` / `voice`); accepted and ignored.
    #[serde(rename = "mode")]
    #[schema(ignore)]
    _mode: Option<serde::de::IgnoredAny>,
}

impl ConversationBody {
    fn into_input(self) -> Result<ConversationInput, ApiError> {
        let mut problems = Vec::new();
        let output = read_output(self.output, AudioFormat::Wav, &mut problems);
        if !problems.is_empty() {
            return Err(ApiError::Validation(problems));
        }
        let turns = self
            .turns
            .into_iter()
            .map(|turn| TurnInput {
                segment: SegmentInput {
                    model: turn.model,
                    voice: turn.voice.map(VoiceField::into_id),
                    voice_id: turn.voice_id,
                    text: turn.text,
                    text_field: "text",
                    speed: turn.speed,
                    instructions: turn.instructions,
                    language: turn.language,
                    seed: None,
                    provider_options: turn.provider_options.unwrap_or_default(),
                },
                pause_before_ms: turn.pause_before_ms,
            })
            .collect();
        Ok(ConversationInput {
            model: self.model,
            defaults: TurnDefaults {
                speed: self.speed,
                language: self.language,
                provider_options: self.provider_options.unwrap_or_default(),
            },
            turns,
            gap_ms: self.gap_ms,
            volume_dbfs: self.volume_dbfs,
            output,
            split: self.split.unwrap_or(false),
            strategy: self.strategy.unwrap_or_default(),
            pronunciations: self.pronunciations.unwrap_or_default(),
            timestamps: self.timestamps,
        })
    }
}

/// Voice a conversation. Turns run concurrently on their providers; the file starts streaming
/// as soon as turn 0 is ready.
#[utoipa::path(
    post,
    path = "/v1/audio/conversation",
    tag = "speech",
    request_body = ConversationBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`split: false`: the mixed file in the requested format, streamed (headers `x-speech-strategy`, `x-speech-turns`, `x-speech-characters`). `split: true`: JSON with one clip per turn.",
            content(
                (Vec<u8> = "application/octet-stream"),
                (SplitConversation = "application/json")
            )),
        (status = 400, description = "Malformed JSON, or an invalid field (`validation` names it, e.g. `turns[2].voice`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown model or `voice_not_found`, with the turn's `turn_index`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited, by the gateway or a turn's provider (`turn_index`)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "A turn's provider refused the gateway's credential or broke off (`turn_index`, `provider`, `upstream_status`, `upstream_code`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A turn's provider is unavailable (`turn_index`, `provider`, `upstream_status`, `upstream_code`)", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "A turn's provider did not answer in time (`turn_index`)", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn create_conversation(
    State(state): State<AppState>,
    Caller(key): Caller,
    Extension(details): Extension<UsageDetails>,
    ApiJson(body): ApiJson<ConversationBody>,
) -> Result<Response, ApiError> {
    if body.timestamps.is_some() {
        let message = "word timing comes from /v1/audio/conversation/with-timestamps";
        return Err(ApiError::Validation(vec![FieldError::new("timestamps", message)]));
    }
    converse(&state, &state.owner(&key), &details, body.into_input()?).await
}

/// Voice a conversation and time every turn's words: the same body as
/// `/v1/audio/conversation`, answered with JSON — the whole file (base64) and its words with
/// their `turnIndex`, at their place in the file; with `split: true`, each segment with its own
/// words, from the segment's start.
#[utoipa::path(
    post,
    path = "/v1/audio/conversation/with-timestamps",
    tag = "speech",
    request_body = ConversationBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`split: false`: the file and its words (`x-speech-alignment`). `split: true`: one clip per turn, each with its words.",
            content(
                (TimedAudio = "application/json"),
                (SplitConversation = "application/json")
            )),
        (status = 400, description = "Malformed JSON, or an invalid field (`validation` names it, e.g. `turns[2].voice`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown model or `voice_not_found`, with the turn's `turn_index`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited, by the gateway or a turn's provider (`turn_index`)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "A turn's provider refused the gateway's credential or broke off (`turn_index`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A turn's provider is unavailable, or `timestamps_unavailable` (`timestamps: native` and a turn's provider has no timing), with `turn_index`", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "A turn's provider did not answer in time (`turn_index`)", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn create_conversation_with_timestamps(
    State(state): State<AppState>,
    Caller(key): Caller,
    Extension(details): Extension<UsageDetails>,
    ApiJson(body): ApiJson<ConversationBody>,
) -> Result<Response, ApiError> {
    let mode = body.timestamps.unwrap_or_default();
    let mut input = body.into_input()?;
    input.timestamps = Some(mode);
    converse(&state, &state.owner(&key), &details, input).await
}

async fn converse(
    state: &AppState,
    owner: &Owner,
    details: &UsageDetails,
    input: ConversationInput,
) -> Result<Response, ApiError> {
    let turns = input.turns.len();
    let limits = &state.conversation;
    let prepared = conversation::prepare(&state.registry, state.store.as_ref(), owner, input, limits).await?;
    crate::http::admission::admit(details, &prepared).await?;
    Ok(match conversation::start(prepared, details, &state.metrics, limits).await? {
        ConversationOutput::Split(split) => Json(split).into_response(),
        ConversationOutput::Timed(clip) => TimedAudio::respond(clip, [("x-speech-turns", turns.to_string())]),
        ConversationOutput::Audio { output, strategy, characters, body } => audio_response(
            Body::from_stream(body),
            output.format.media_type(),
            [
                ("x-speech-strategy", strategy.as_str().to_owned()),
                ("x-speech-turns", turns.to_string()),
                ("x-speech-characters", characters.to_string()),
            ],
        ),
    })
}
