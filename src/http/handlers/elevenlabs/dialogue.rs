//! Text to dialogue: `inputs[{text, voice_id}]` voiced as a conversation (`service::conversation`),
//! each input a turn whose voice is routed on its own, so one dialogue may mix providers. With
//! timestamps, the alignment's characters are the input texts concatenated as they are (no
//! separator), and `voice_segments` index into them.

use axum::{
    body::Body,
    response::{IntoResponse, Response},
    Json,
};
use futures::StreamExt;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{relocate, Call, ElevenLabsError, ElevenLabsValidationError};
use crate::{
    domain::{FieldError, PathSegment},
    facades::elevenlabs::{
        align::{align, ElevenLabsAlignment},
        wire::{
            self, dialogue_path, ElevenLabsTimedAudio, ElevenLabsTimedDialogue, ElevenLabsVoiceSegment, SpeechQuery,
        },
    },
    http::{
        extract::{ApiJson, ApiQuery},
        handlers::speech::audio_response,
        problem::ApiError,
    },
    service::{
        conversation::{self, ConversationInput, ConversationOutput, Strategy, TurnDefaults, TurnInput},
        timestamps::{Mode, TimedClip, Timestamp},
    },
};

/// Audio of a timed dialogue per NDJSON line.
const STREAM_CHUNK: usize = 16 * 1024;

/// The body of the four dialogue routes. Unknown members and `null` are accepted.
#[derive(Deserialize, ToSchema)]
pub struct ElevenLabsDialogueBody {
    /// Required: the lines, in order.
    inputs: Option<Vec<ElevenLabsDialogueInput>>,
    /// For inputs whose voice names no model of its own: an ElevenLabs model id (`eleven_v3`
    /// voices the whole dialogue in one request when every input is on it), or `provider/model`.
    model_id: Option<String>,
    language_code: Option<String>,
    /// 0 to 4294967295, as ElevenLabs takes it.
    seed: Option<u32>,
}

#[derive(Deserialize, ToSchema)]
pub struct ElevenLabsDialogueInput {
    text: Option<String>,
    /// As on text to speech: an ElevenLabs voice id, `provider:voice`, or a saved voice's id.
    voice_id: Option<String>,
}

/// A dialogue to voice, and each input's text and voice id as the caller wrote them.
struct Dialogue {
    input: ConversationInput,
    lines: Vec<(String, String)>,
}

impl ElevenLabsDialogueBody {
    async fn into_dialogue(self, call: &Call, query: &SpeechQuery, streaming: bool) -> Result<Dialogue, ApiError> {
        let mut problems = Vec::new();
        let output = wire::output_request(query, streaming).map_err(|p| problems.push(p)).ok();
        let inputs = self.inputs.unwrap_or_else(|| {
            problems.push(FieldError::new("turns", "Field required"));
            Vec::new()
        });
        // The size limit before any work per input.
        let max = call.state.conversation.max_turns;
        if inputs.len() > max {
            return Err(ApiError::Validation(vec![FieldError::new("turns", format!("must hold 1 to {max} inputs"))]));
        }
        let mut lines = Vec::with_capacity(inputs.len());
        for (i, line) in inputs.into_iter().enumerate() {
            match (line.text, line.voice_id) {
                (Some(text), Some(voice)) => lines.push((text, voice)),
                (text, voice) => {
                    for (field, missing) in [("text", text.is_none()), ("voice", voice.is_none())] {
                        if missing {
                            problems.push(FieldError::new(field, "Field required").within("turns", i));
                        }
                    }
                }
            }
        }
        let (Some(output), true) = (output, problems.is_empty()) else {
            return Err(ApiError::Validation(problems));
        };
        // Unless the request says otherwise, the native provider's dialogue model (ElevenLabs':
        // eleven_v3), as its API defaults to.
        let registry = &call.state.registry;
        let native = call.state.facades.elevenlabs.native_provider().and_then(|id| registry.get(id));
        let dialogue_model =
            native.and_then(|p| p.capabilities().native_dialogue.as_ref()).and_then(|d| d.models.first());
        let model_id = self.model_id.as_deref().or(dialogue_model.map(String::as_str));
        let mut turns = Vec::with_capacity(lines.len());
        for (i, (text, voice)) in lines.iter().enumerate() {
            let within = |path| [vec![PathSegment::Field("turns".to_owned()), PathSegment::Index(i)], path].concat();
            let routed = call.route(voice, model_id, "voice").await.map_err(|e| relocate(e, &within))?;
            let segment = crate::service::synthesis::SegmentInput {
                text: text.clone(),
                text_field: "text",
                seed: self.seed.map(u64::from),
                ..routed
            };
            turns.push(TurnInput { segment, pause_before_ms: None });
        }
        let input = ConversationInput {
            defaults: TurnDefaults { language: self.language_code, ..TurnDefaults::default() },
            turns,
            output,
            strategy: Strategy::Auto,
            ..ConversationInput::default()
        };
        Ok(Dialogue { input, lines })
    }
}

/// The four dialogue routes' ways of answering.
#[derive(Clone, Copy)]
enum Answer {
    Audio { streaming: bool },
    Timed { streaming: bool },
}

async fn voice(
    call: Call,
    query: Result<ApiQuery<SpeechQuery>, ApiError>,
    body: Result<ApiJson<ElevenLabsDialogueBody>, ApiError>,
    answer: Answer,
) -> Result<Response, ApiError> {
    let streaming = matches!(answer, Answer::Audio { streaming: true } | Answer::Timed { streaming: true });
    let located = async {
        let ApiQuery(query) = query.map_err(|e| relocate(e, &wire::query_path))?;
        let ApiJson(body) = body?;
        let Dialogue { mut input, lines } = body.into_dialogue(&call, &query, streaming).await?;
        let characters = lines.iter().map(|(text, _)| text.chars().count()).sum();
        if matches!(answer, Answer::Timed { .. }) {
            input.timestamps = Some(Mode::Auto);
        }
        let (state, limits) = (&call.state, &call.state.conversation);
        let prepared = conversation::prepare(&state.registry, state.store.as_ref(), &call.owner, input, limits).await?;
        crate::http::admission::admit(&call.details, &prepared).await?;
        let response = match (conversation::start(prepared, &call.details, &state.metrics, limits).await?, answer) {
            (ConversationOutput::Audio { output, body, .. }, Answer::Audio { .. }) => {
                audio_response(Body::from_stream(body), output.format.media_type(), [])
            }
            (ConversationOutput::Timed(clip), Answer::Timed { streaming }) => {
                let (alignment, segments) = timed_lines(&clip, &lines);
                if streaming {
                    stream_lines(clip.audio, alignment, segments)
                } else {
                    let audio = ElevenLabsTimedAudio::new(&clip.audio, Some(alignment));
                    Json(ElevenLabsTimedDialogue { audio, voice_segments: segments }).into_response()
                }
            }
            _ => return Err(ApiError::Internal("the conversation answered in another shape".to_owned())),
        };
        Ok::<_, ApiError>(call.answer(response, characters))
    };
    located.await.map_err(|e| relocate(e, &dialogue_path))
}

/// The alignment over the concatenated input texts, and each input's segment of it.
fn timed_lines(clip: &TimedClip, lines: &[(String, String)]) -> (ElevenLabsAlignment, Vec<ElevenLabsVoiceSegment>) {
    let mut offsets = Vec::with_capacity(lines.len());
    let mut text = String::new();
    for (line, _) in lines {
        offsets.push(text.chars().count());
        text.push_str(line);
    }
    let words: Vec<Timestamp> = clip
        .timestamps
        .iter()
        .filter_map(|word| {
            let offset = *offsets.get(word.turn_index?)?;
            Some(Timestamp { char_start: word.char_start + offset, char_end: word.char_end + offset, ..word.clone() })
        })
        .collect();
    let alignment = align(&text, &words, clip.duration_ms as f64 / 1000.0);
    let segments = lines
        .iter()
        .zip(&offsets)
        .enumerate()
        .map(|(i, ((line, voice), &start))| {
            let end = start + line.chars().count();
            let (start_time, end_time) = alignment.span(start, end).unwrap_or_default();
            ElevenLabsVoiceSegment {
                voice_id: voice.clone(),
                start_time_seconds: start_time,
                end_time_seconds: end_time,
                character_start_index: start,
                character_end_index: end,
                dialogue_input_index: i,
            }
        })
        .collect();
    (alignment, segments)
}

/// A timed dialogue as NDJSON: the mix is timed whole, then sent in chunks; the first carries
/// the alignment and the segments, the others (ElevenLabs requires the key) no segments.
fn stream_lines(audio: Vec<u8>, alignment: ElevenLabsAlignment, segments: Vec<ElevenLabsVoiceSegment>) -> Response {
    let mut head = Some((alignment, segments));
    let lines: Vec<bytes::Bytes> = audio
        .chunks(STREAM_CHUNK)
        .chain(audio.is_empty().then_some(&[][..]))
        .map(|piece| {
            let (alignment, voice_segments) = head.take().map_or((None, Vec::new()), |(a, s)| (Some(a), s));
            wire::ndjson(&ElevenLabsTimedDialogue {
                audio: ElevenLabsTimedAudio::new(piece, alignment),
                voice_segments,
            })
        })
        .collect();
    let body = futures::stream::iter(lines).map(Ok::<_, std::io::Error>);
    audio_response(Body::from_stream(body), "application/x-ndjson", [])
}

/// Declares one dialogue route: its handler, path and answer.
macro_rules! dialogue_route {
    ($name:ident, $path:literal, $answer:expr, $doc:literal, $ok:literal, $content:literal) => {
        #[doc = $doc]
        #[utoipa::path(
            post,
            path = $path,
            tag = "elevenlabs",
            params(SpeechQuery),
            request_body = ElevenLabsDialogueBody,
            security(("xiApiKey" = [])),
            responses(
                (status = 200, description = $ok, content_type = $content, body = Vec<u8>),
                (status = 401, description = "`invalid_api_key`", body = ElevenLabsError),
                (status = 404, description = "`voice_not_found` (an input's voice), or an unknown model", body = ElevenLabsError),
                (status = 422, description = "A missing or invalid field or parameter: `{\"detail\": [{loc, msg, type}]}`", body = ElevenLabsValidationError),
                (status = 429, description = "Rate limited, by the gateway or a provider", body = ElevenLabsError),
                (status = 502, description = "A provider refused the gateway's credential or broke off", body = ElevenLabsError),
                (status = 503, description = "A provider is unavailable", body = ElevenLabsError)
            )
        )]
        pub async fn $name(
            call: Call,
            query: Result<ApiQuery<SpeechQuery>, ApiError>,
            body: Result<ApiJson<ElevenLabsDialogueBody>, ApiError>,
        ) -> Result<Response, ApiError> {
            voice(call, query, body, $answer).await
        }
    };
}

dialogue_route!(
    text_to_dialogue,
    "/elevenlabs/v1/text-to-dialogue",
    Answer::Audio { streaming: false },
    "ElevenLabs' `POST /v1/text-to-dialogue`: the inputs voiced in turn (by any mix of providers) and mixed into one file, streamed as it is made.",
    "Audio in `output_format`. Headers: `request-id`, `character-cost`.",
    "audio/mpeg"
);
dialogue_route!(
    text_to_dialogue_stream,
    "/elevenlabs/v1/text-to-dialogue/stream",
    Answer::Audio { streaming: true },
    "ElevenLabs' `POST /v1/text-to-dialogue/stream` (no `wav_*` formats): the mix, streamed as it is made.",
    "Audio in `output_format`, streamed. Headers: `request-id`, `character-cost`.",
    "audio/mpeg"
);
dialogue_route!(
    text_to_dialogue_with_timestamps,
    "/elevenlabs/v1/text-to-dialogue/with-timestamps",
    Answer::Timed { streaming: false },
    "ElevenLabs' `POST /v1/text-to-dialogue/with-timestamps`: the mix, the time of every character of the concatenated input texts, and each input's `voice_segments`.",
    "`{audio_base64, alignment, normalized_alignment: null, voice_segments}`. Headers: `request-id`, `character-cost`.",
    "application/json"
);
dialogue_route!(
    text_to_dialogue_stream_with_timestamps,
    "/elevenlabs/v1/text-to-dialogue/stream/with-timestamps",
    Answer::Timed { streaming: true },
    "ElevenLabs' `POST /v1/text-to-dialogue/stream/with-timestamps`: NDJSON chunks of the mix (timed whole first); the first carries the alignment and `voice_segments`, every chunk has the `voice_segments` key.",
    "NDJSON, one `\\n`-terminated object per line. Headers: `request-id`, `character-cost`.",
    "application/x-ndjson"
);
