//! A conversation: many turns, each with its own voice and possibly its own provider, made into
//! one file (or one segment per turn). Every turn runs through the synthesis pipeline
//! (`service::synthesis`): resolve, plan (PCM at the mix's rate, or the nearest the provider
//! makes), events, and here the shape:
//!
//! - **stitch** (default): turns are synthesised concurrently, a bounded number ahead of the one
//!   being sent, each collected whole, resampled to the mix's rate, levelled against the turns
//!   before it (EBU R128 loudness, then a peak ceiling), faded at its edges and joined with exact
//!   digital silence. The file is encoded once and starts streaming as soon as turn 0 is ready.
//! - **native**: one dialogue request to a provider that voices dialogues itself (ElevenLabs
//!   text-to-dialogue), when every turn is on that provider and its dialogue model.
//!   `auto` uses it when it can honour the request, else stitches.

mod mix;
mod turns;

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{
    synthesis::{self, call, Candidates, OutputRequest, Plan, SegmentInput, Target},
    timestamps::{Alignment, Mode, TimedClip, Timestamp},
    usage::UsageDetails,
    ServiceError,
};
use crate::{
    config::ConversationConfig,
    domain::{
        audio::{AudioFormat, AudioSpec},
        pronounce::Pronunciations,
        FieldError,
    },
    metrics::Metrics,
    providers::{DialogueRequest, Registry},
    store::Store,
};

/// Silence between turns when the request does not say.
pub const DEFAULT_GAP_MS: u32 = 300;
/// Longest silence between two turns.
pub const MAX_GAP_MS: u32 = 5_000;

/// How the turns are voiced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Each turn on its own, mixed by the gateway.
    #[default]
    Stitch,
    /// One dialogue request to a provider that voices dialogues itself; refused when impossible.
    Native,
    /// Native when every turn allows it, else stitch.
    Auto,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Stitch => "stitch",
            Strategy::Native => "native",
            Strategy::Auto => "auto",
        }
    }
}

/// A conversation request after the HTTP body has been read.
#[derive(Debug, Clone, Default)]
pub struct ConversationInput {
    /// `provider/model` for every turn that names only a voice.
    pub model: Option<String>,
    pub defaults: TurnDefaults,
    pub turns: Vec<TurnInput>,
    pub gap_ms: Option<u32>,
    pub volume_dbfs: Option<f32>,
    pub output: OutputRequest,
    pub split: bool,
    pub strategy: Strategy,
    pub pronunciations: Pronunciations,
    /// Word timestamps (`/with-timestamps`): how they may be obtained.
    pub timestamps: Option<Mode>,
}

/// What every turn gets unless it says otherwise.
#[derive(Debug, Clone, Default)]
pub struct TurnDefaults {
    pub speed: Option<f32>,
    pub language: Option<String>,
    /// Merged under each turn's own options (the turn's members win).
    pub provider_options: Map<String, Value>,
}

/// Largest `providerOptions` default, serialised: it is copied into every turn.
const MAX_DEFAULT_OPTIONS_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Default)]
pub struct TurnInput {
    /// The turn as given; [`TurnDefaults`] and the top-level model fill what it leaves out.
    pub segment: SegmentInput,
    /// Silence before this turn instead of `gapMs`.
    pub pause_before_ms: Option<u32>,
}

/// Everything resolved and checked; nothing has been sent upstream yet.
pub struct Prepared {
    /// The characters spoken, over all turns.
    characters: usize,
    /// Silence before each turn, in ms (0 before the first).
    pauses: Vec<u32>,
    output: AudioSpec,
    volume_dbfs: Option<f32>,
    voicing: Voicing,
    /// With timestamps: how, and each turn's text as the caller wrote it.
    timing: Option<(Mode, Vec<String>)>,
}

impl Prepared {
    /// Each turn's first target, in order.
    pub fn targets(&self) -> Vec<&Target> {
        match &self.voicing {
            Voicing::Native { turns, .. } => turns.iter().collect(),
            Voicing::Stitch { turns, .. } => turns.iter().map(Candidates::first).collect(),
        }
    }
}

enum Voicing {
    /// Each turn on its own: its targets, each with the PCM rate it is asked for.
    Stitch { turns: Vec<Candidates<u32>>, split: bool },
    /// One dialogue request, voicing every turn, for PCM at `from`.
    Native { turns: Vec<Target>, from: u32 },
}

/// Validates and resolves every turn, then has all turns moderated in one check (one flagged
/// turn refuses the conversation). Fails before any provider is called; field problems of all
/// turns are reported together, at `turns[i].<field>`.
pub async fn prepare(
    registry: &Registry,
    store: &dyn Store,
    owner: &super::provider_keys::Owner,
    input: ConversationInput,
    limits: &ConversationConfig,
) -> Result<Prepared, ServiceError> {
    // The size limits first, before any work proportional to the turns.
    if input.turns.is_empty() || input.turns.len() > limits.max_turns {
        let message = format!("must hold 1 to {} turns", limits.max_turns);
        return Err(ServiceError::Validation(vec![FieldError::new("turns", message)]));
    }
    let characters: usize = input.turns.iter().map(|t| t.segment.text.chars().count()).sum();
    let too_many_characters = |characters: usize| {
        let message = format!(
            "the turns hold {characters} characters; a conversation may hold at most {}",
            limits.max_characters
        );
        ServiceError::Validation(vec![FieldError::new("turns", message)])
    };
    if characters > limits.max_characters {
        return Err(too_many_characters(characters));
    }
    // Rules are checked before they run on the text.
    let mut problems = input.pronunciations.check();
    problems.extend(synthesis::check_volume(input.volume_dbfs));
    if serde_json::to_vec(&input.defaults.provider_options).map_or(0, |json| json.len()) > MAX_DEFAULT_OPTIONS_BYTES {
        let message = format!("at most {} KiB as every turn's default", MAX_DEFAULT_OPTIONS_BYTES / 1024);
        problems.push(FieldError::new("providerOptions", message));
    }
    if input.gap_ms.is_some_and(|gap| gap > MAX_GAP_MS) {
        problems.push(FieldError::new("gapMs", format!("must be 0 to {MAX_GAP_MS}")));
    }
    for (i, turn) in input.turns.iter().enumerate() {
        if turn.pause_before_ms.is_some_and(|pause| pause > MAX_GAP_MS) {
            problems.push(FieldError::new("pauseBeforeMs", format!("must be 0 to {MAX_GAP_MS}")).within("turns", i));
        }
    }
    let output = synthesis::encoded_output(&input.output).map_err(|problem| problems.push(problem)).ok();
    let (Some(output), true) = (output, problems.is_empty()) else {
        return Err(ServiceError::Validation(problems));
    };

    // Silence other than the default: a native dialogue cannot honour it. (Speechbase's SDK
    // always sends the default.)
    let paced = input.gap_ms.is_some_and(|gap| gap != DEFAULT_GAP_MS)
        || input.turns.iter().any(|t| t.pause_before_ms.is_some());
    let gap = input.gap_ms.unwrap_or(DEFAULT_GAP_MS);
    let pauses: Vec<u32> = input
        .turns
        .iter()
        .enumerate()
        .map(|(i, t)| if i == 0 { 0 } else { t.pause_before_ms.unwrap_or(gap) })
        .collect();

    let originals: Vec<String> = input.turns.iter().map(|t| t.segment.text.clone()).collect();
    let mut turns = Vec::with_capacity(input.turns.len());
    for (i, turn) in input.turns.into_iter().enumerate() {
        let segment = match with_defaults(registry, turn.segment, input.model.as_deref(), &input.defaults) {
            Ok(segment) => segment,
            Err(problem) => {
                problems.push(problem.within("turns", i));
                continue;
            }
        };
        match synthesis::resolve(registry, store, owner, segment, &input.pronunciations).await {
            Ok(target) => turns.push(target),
            Err(ServiceError::Validation(found)) => problems.extend(found.into_iter().map(|p| p.within("turns", i))),
            Err(ServiceError::VoiceNotFound(field)) => {
                return Err(ServiceError::in_turn(i, ServiceError::VoiceNotFound(field.within("turns", i))))
            }
            Err(other) => return Err(ServiceError::in_turn(i, other)),
        }
    }
    if !problems.is_empty() {
        return Err(ServiceError::Validation(problems));
    }
    // Pronunciation rules may have lengthened the text: the limit is on what is spoken.
    let spoken: usize = turns.iter().map(Candidates::characters).sum();
    if spoken > limits.max_characters {
        return Err(too_many_characters(spoken));
    }
    owner.screen().admit_turns(&turns.iter().map(|t| t.first().spoken.text.as_str()).collect::<Vec<_>>()).await?;

    // The gateway times words turn by turn; a native dialogue would need the dialogue's own
    // timing, which it does not read yet. A route's turn may fall back to another provider, so
    // it has no one dialogue to join.
    let only: Option<Vec<&Target>> = turns.iter().map(Candidates::only).collect();
    let dialogue = match (input.timestamps, only) {
        (Some(_), _) => Err("word timestamps of a conversation come from stitched turns".to_owned()),
        (None, None) => Err("a turn on a route may fall back to another provider; it is voiced on its own".to_owned()),
        (None, Some(only)) => native_dialogue(&only, output.sample_rate, input.split),
    };
    let voicing = match (input.strategy, dialogue) {
        (Strategy::Native, Err(reason)) => {
            return Err(ServiceError::Validation(vec![FieldError::new("strategy", reason)]));
        }
        (Strategy::Native, Ok(_)) if paced => {
            let message = "a native dialogue is paced by its provider; leave out gapMs and pauseBeforeMs";
            return Err(ServiceError::Validation(vec![FieldError::new("strategy", message)]));
        }
        (Strategy::Native, Ok(from)) => Voicing::Native { turns: singles(turns), from },
        (Strategy::Auto, Ok(from)) if !paced => Voicing::Native { turns: singles(turns), from },
        _ => {
            let mut stitched = Vec::with_capacity(turns.len());
            for (i, candidates) in turns.into_iter().enumerate() {
                // Each target of a route gets its own source rate; one that cannot be mixed
                // (or timed, when native timing is required) is dropped.
                let planned = candidates.plan(|target, ()| {
                    let caps = target.capabilities();
                    if input.timestamps == Some(Mode::Native) && !caps.times_pcm() {
                        return Err(ServiceError::TimestampsUnavailable(target.provider_id().to_owned()));
                    }
                    synthesis::pick_source_rate(&caps.rates(AudioFormat::Pcm), output.sample_rate).ok_or_else(|| {
                        let problem = FieldError::new("model", "this provider makes no PCM the gateway can mix");
                        ServiceError::Validation(vec![problem.within("turns", i)])
                    })
                });
                match planned {
                    Ok(planned) => stitched.push(planned),
                    Err(ServiceError::Validation(found)) => problems.extend(found),
                    Err(other) => return Err(ServiceError::in_turn(i, other)),
                }
            }
            if !problems.is_empty() {
                return Err(ServiceError::Validation(problems));
            }
            Voicing::Stitch { turns: stitched, split: input.split }
        }
    };
    let timing = input.timestamps.map(|mode| (mode, originals));
    Ok(Prepared { characters: spoken, pauses, output, volume_dbfs: input.volume_dbfs, voicing, timing })
}

/// A turn with the request's defaults filled in. An inline turn (a voice, not a saved voice)
/// takes the top-level model unless it names its own; naming a different one is a conflict.
fn with_defaults(
    registry: &Registry,
    mut segment: SegmentInput,
    model: Option<&str>,
    defaults: &TurnDefaults,
) -> Result<SegmentInput, FieldError> {
    if segment.voice_id.is_none() {
        match (&segment.model, model) {
            (Some(own), Some(top)) if !same_model(registry, own, top) => {
                let message = format!("{own:?} is not the top-level model {top:?}; give one or the other");
                return Err(FieldError::new("model", message));
            }
            (None, Some(top)) => segment.model = Some(top.to_owned()),
            _ => {}
        }
    }
    segment.speed = segment.speed.or(defaults.speed);
    segment.language = segment.language.or_else(|| defaults.language.clone());
    if !defaults.provider_options.is_empty() {
        let own = std::mem::replace(&mut segment.provider_options, defaults.provider_options.clone());
        segment.provider_options.extend(own);
    }
    Ok(segment)
}

/// The turns' one target each (a native dialogue is only considered when no turn has another).
fn singles(turns: Vec<Candidates>) -> Vec<Target> {
    turns.into_iter().filter_map(Candidates::into_only).collect()
}

/// Whether two model names mean the same model (`tts-1` and `openai/tts-1`).
fn same_model(registry: &Registry, a: &str, b: &str) -> bool {
    a == b
        || matches!((registry.resolve(a), registry.resolve(b)), (Ok(x), Ok(y))
            if x.provider.id() == y.provider.id() && x.model.id == y.model.id)
}

/// Whether one native dialogue request can voice every turn as asked; the PCM rate to ask for,
/// or why not.
fn native_dialogue(turns: &[&Target], rate: u32, split: bool) -> Result<u32, String> {
    let first = *turns.first().ok_or("there are no turns")?;
    let caps = first.capabilities();
    let support =
        caps.native_dialogue.as_ref().ok_or_else(|| format!("{} voices no native dialogue", first.provider_id()))?;
    if split {
        return Err("a native dialogue is one clip; it cannot be split into turns".to_owned());
    }
    if turns.iter().any(|t| t.provider_id() != first.provider_id() || t.resolved.model.id != first.resolved.model.id) {
        return Err("every turn must be on one provider and model for a native dialogue".to_owned());
    }
    if !support.models.contains(&first.resolved.model.id) {
        return Err(format!(
            "{}/{} voices no dialogue; its dialogue models are {}",
            first.provider_id(),
            first.resolved.model.id,
            support.models.join(", ")
        ));
    }
    // A saved voice's options count too: they would be lost in a dialogue request.
    if turns.iter().any(|t| t.speed.is_some() || t.instructions.is_some() || !t.provider_options.is_empty()) {
        return Err("a native dialogue takes no per-turn speed, instructions or providerOptions".to_owned());
    }
    if turns.iter().any(|t| t.language != first.language) {
        return Err("a native dialogue has one language".to_owned());
    }
    let mut voices: Vec<&str> = turns.iter().map(|t| t.voice.as_str()).collect();
    voices.sort_unstable();
    voices.dedup();
    if voices.len() > support.max_voices {
        return Err(format!("a native dialogue takes at most {} voices", support.max_voices));
    }
    let characters: usize = turns.iter().map(|t| t.characters()).sum();
    if characters > support.max_characters {
        return Err(format!("a native dialogue takes at most {} characters", support.max_characters));
    }
    synthesis::pick_source_rate(&caps.rates(AudioFormat::Pcm), rate)
        .ok_or_else(|| "the provider makes no PCM for its dialogue".to_owned())
}

/// The answer: one audio body, or the turns as separate clips.
pub enum ConversationOutput {
    Audio {
        output: AudioSpec,
        strategy: Strategy,
        characters: usize,
        body: BoxStream<'static, Result<Bytes, std::io::Error>>,
    },
    Split(SplitConversation),
    /// `/with-timestamps`: the whole file, and every turn's words at their place in it.
    Timed(TimedClip),
}

/// `split: true`: one clip per turn, each in the requested format.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SplitConversation {
    pub audio_segments: Vec<AudioSegment>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AudioSegment {
    /// The clip, base64.
    pub audio: String,
    pub media_type: String,
    pub duration_ms: u64,
    pub turn_index: usize,
    /// `/with-timestamps`: the turn's words, in seconds from the start of this segment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamps: Option<Vec<Timestamp>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alignment: Option<Alignment>,
}

/// Starts the providers and waits for what the answer's head needs: turn 0 (or, before it, the
/// first failure of any turn) for a streamed file; every turn for segments; the first audio
/// for a native dialogue.
pub async fn start(
    prepared: Prepared,
    details: &UsageDetails,
    metrics: &Arc<Metrics>,
    limits: &ConversationConfig,
) -> Result<ConversationOutput, ServiceError> {
    let Prepared { characters, pauses, output, volume_dbfs, voicing, timing } = prepared;
    match voicing {
        Voicing::Native { turns, from } => {
            let first = &turns[0];
            let mut voices: Vec<&str> = Vec::new();
            for t in &turns {
                if !voices.contains(&t.voice.as_str()) {
                    voices.push(&t.voice);
                }
            }
            let voices = voices.join(",");
            let request = DialogueRequest {
                model: first.resolved.model.id.clone(),
                lines: turns.iter().map(|t| (t.voice.clone(), t.spoken.text.clone())).collect(),
                output: AudioSpec::pcm(from),
                language: first.language.clone(),
                seed: first.seed,
                credential: first.credential.clone(),
            };
            let segment = call::Segment {
                index: 0,
                provider: first.provider_id(),
                model: &first.resolved.model.id,
                voice: &voices,
                characters,
            };
            // One call voices every turn: its failure is the dialogue's, not a turn's.
            let provider = &first.resolved.provider;
            let reliability = (first.resolved.retry, &first.resolved.circuit);
            let events =
                call::start(segment, details, metrics, reliability, || provider.dialogue(request.clone())).await?;
            let plan = match volume_dbfs {
                Some(volume_dbfs) => Plan::Normalize { from, output, volume_dbfs },
                None => Plan::Transcode { from, output },
            };
            let body = super::speech::body(events, plan, details.clone(), 0)?;
            Ok(ConversationOutput::Audio { output, strategy: Strategy::Native, characters, body })
        }
        Voicing::Stitch { turns, split } => {
            let (mode, mut originals) = match timing {
                Some((mode, originals)) => (Some(mode), originals),
                None => (None, Vec::new()),
            };
            let jobs = turns.into_iter().enumerate().map(|(index, candidates)| turns::Job {
                index,
                candidates,
                rate: output.sample_rate,
                details: details.clone(),
                metrics: metrics.clone(),
                timing: mode.map(|mode| turns::Timing { mode, original: std::mem::take(&mut originals[index]) }),
            });
            let mut runner = turns::Turns::new(jobs.collect(), limits.concurrency, details.clone());
            let mixer = mix::Mixer::new(output, volume_dbfs);
            if split {
                let split = mixer.split(&mut runner, details.clone()).await?;
                return Ok(ConversationOutput::Split(split));
            }
            if mode.is_some() {
                let timed = mixer.whole(&mut runner, &pauses, details.clone()).await?;
                return Ok(ConversationOutput::Timed(timed));
            }
            let body = mixer.stream(runner, pauses, details.clone()).await?;
            Ok(ConversationOutput::Audio { output, strategy: Strategy::Stitch, characters, body })
        }
    }
}
