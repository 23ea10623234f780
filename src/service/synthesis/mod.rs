//! The pipeline every synthesis runs through, whatever the route:
//!
//! 1. **resolve** ([`resolve`]): one segment of a request (a voice or saved voice, a model, text
//!    and options) → a [`Target`]: the provider and model that will voice it, everything checked.
//!    Field errors carry paths relative to the segment; a caller with many segments prefixes them
//!    (`turns[2].voiceId`).
//! 2. **plan** ([`plan`]): what to ask the provider for, and how the gateway converts it into
//!    the requested output.
//! 3. **events** ([`call::start`]): the provider call, observed, with its first event awaited so
//!    a provider that fails at once can still be answered with a proper status. Usage gets one
//!    line per call.
//! 4. **shape**: the events become the response body — one clip for speech
//!    (`service::speech`), a mixed file or segments for a conversation (`service::conversation`).

pub mod call;
pub mod collect;
mod plan;

use std::sync::Arc;

use serde_json::{Map, Value};

pub use plan::{encoded_output, pick_source_rate, plan, OutputRequest, Plan};

use super::{provider_keys::Owner, usage::UsageDetails, ServiceError};
use crate::{
    domain::{
        audio::AudioSpec,
        pronounce::{Pronunciations, Spoken},
        text, FieldError,
    },
    metrics::Metrics,
    providers::{
        registry::Resolved, Capabilities, EventStream, ProviderError, ProviderKey, Registry, SynthesisRequest,
    },
    store::Store,
};

/// One piece of speech as a request names it: `voice` with `model`, or a saved voice's
/// `voiceId`; its text; and what may shape the voice.
#[derive(Debug, Clone, Default)]
pub struct SegmentInput {
    pub model: Option<String>,
    pub voice: Option<String>,
    pub voice_id: Option<String>,
    pub text: String,
    /// The field the text came in (`text` or `input`), for error paths.
    pub text_field: &'static str,
    pub speed: Option<f32>,
    pub instructions: Option<String>,
    pub language: Option<String>,
    pub seed: Option<u64>,
    pub provider_options: Map<String, Value>,
}

/// A segment resolved and checked: who voices it and exactly what they are asked. Nothing has
/// been sent upstream yet.
pub struct Target {
    pub resolved: Resolved,
    pub voice: String,
    /// The text as the provider receives it (pronunciation rules applied), and where each of its
    /// characters came from in the caller's text.
    pub spoken: Spoken,
    pub speed: Option<f32>,
    pub instructions: Option<String>,
    pub language: Option<String>,
    pub seed: Option<u64>,
    pub provider_options: Map<String, Value>,
    /// The caller's project's own key for the provider; the operator's is used when `None`.
    pub credential: Option<ProviderKey>,
}

impl Target {
    pub fn capabilities(&self) -> &crate::providers::Capabilities {
        self.resolved.provider.capabilities()
    }

    pub fn provider_id(&self) -> &str {
        self.resolved.provider.id()
    }

    pub fn characters(&self) -> usize {
        self.spoken.text.chars().count()
    }

    /// Calls the provider for segment `index` of the request, asking for `output` (one of its
    /// native formats) and, with `timed`, for its word timing when it has any in that format;
    /// waits for the first event ([`call::start`]).
    pub async fn call(
        &self,
        index: u32,
        output: AudioSpec,
        timed: bool,
        details: &UsageDetails,
        metrics: &Arc<Metrics>,
    ) -> Result<EventStream, ProviderError> {
        let mut request = self.request(output);
        let caps = self.capabilities();
        request.timestamps = timed && caps.native_timestamps && caps.timestamp_formats.contains(&output.format);
        let segment = call::Segment {
            index,
            provider: self.provider_id(),
            model: &self.resolved.model.id,
            voice: &self.voice,
            characters: self.characters(),
        };
        let provider = &self.resolved.provider;
        let reliability = (self.resolved.retry, self.resolved.circuit.as_ref());
        call::start(segment, details, metrics, reliability, || provider.synthesize(request.clone())).await
    }

    /// The adapter's request for `output` (one of the provider's native formats).
    pub fn request(&self, output: AudioSpec) -> SynthesisRequest {
        SynthesisRequest {
            model: self.resolved.model.id.clone(),
            voice: self.voice.clone(),
            text: self.spoken.text.clone(),
            output,
            speed: self.speed,
            instructions: self.instructions.clone(),
            language: self.language.clone(),
            seed: self.seed,
            provider_options: self.provider_options.clone(),
            timestamps: false,
            credential: self.credential.clone(),
        }
    }
}

/// Longest `language` tag accepted (BCP 47 tags in practice stay far below it).
const MAX_LANGUAGE_CHARS: usize = 35;

/// Resolves and checks one segment. Fails before any provider is called; every field problem
/// found is reported at once.
pub async fn resolve(
    registry: &Registry,
    store: &dyn Store,
    owner: &Owner,
    input: SegmentInput,
    pronunciations: &Pronunciations,
) -> Result<Target, ServiceError> {
    if let Some(problem) = input.voice_id.as_deref().and_then(text::identifier_problem) {
        return Err(invalid("voiceId", &problem));
    }
    let (model, voice, mut provider_options) = match (&input.voice_id, &input.voice, &input.model) {
        (Some(id), None, None) => {
            let saved = super::voices::get(store, owner, id).await.map_err(|e| match e {
                ServiceError::NotFound { .. } => {
                    ServiceError::VoiceNotFound(FieldError::new("voiceId", format!("no saved voice {id:?}")))
                }
                other => other,
            })?;
            let model = match &saved.model {
                Some(model) => format!("{}/{}", saved.provider, model),
                None => saved.provider.clone(),
            };
            (model, saved.voice_id.clone(), saved.provider_options.clone())
        }
        (Some(_), _, _) => {
            return Err(invalid("voiceId", "give either `voiceId` or `model` and `voice`, not both"));
        }
        (None, Some(voice), Some(model)) => (model.clone(), voice.clone(), Map::new()),
        (None, None, _) => return Err(invalid("voice", "give `voice` (with `model`) or `voiceId`")),
        (None, Some(_), None) => return Err(invalid("model", "is required with `voice`")),
    };
    provider_options.extend(input.provider_options);
    // The voice and model reach vendor URLs and queries: checked here, once, for every route,
    // whether the request named them or a saved voice did (saved ones were checked when saved,
    // but a voice saved before a rule existed gets no pass).
    let mut problems = Vec::new();
    for (field, value) in [("voice", &voice), ("model", &model)] {
        if let Some(problem) = text::identifier_problem(value) {
            problems.push(match input.voice_id {
                Some(_) => FieldError::new("voiceId", format!("the saved voice's {field} is not usable: {problem}")),
                None => FieldError::new(field, problem),
            });
        }
    }
    if !problems.is_empty() {
        return Err(ServiceError::Validation(problems));
    }

    let resolved = registry.resolve(&model).map_err(|e| ServiceError::UnknownModel(e.to_string()))?;
    let caps = resolved.provider.capabilities();
    problems.extend(caps.check_options(&provider_options));
    if let Some(language) = &input.language {
        let tag = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if language.is_empty() || language.len() > MAX_LANGUAGE_CHARS || !language.chars().all(tag) {
            problems.push(FieldError::new(
                "language",
                format!("must be a language tag such as en or pt-BR (letters, digits and `-`, at most {MAX_LANGUAGE_CHARS})"),
            ));
        }
    }
    let max = resolved.model.max_characters;
    let raw = input.text.chars().count();
    // Pronunciation rules run on text of a length the model takes, and stop once it outgrows it.
    let spoken = match (raw <= max).then(|| pronunciations.apply(&input.text, max)) {
        None => {
            problems
                .push(FieldError::new(input.text_field, format!("is {raw} characters; {model} accepts at most {max}")));
            Spoken::default()
        }
        Some(None) => {
            let message = format!(
                "is over {max} characters once the pronunciation rules are applied; {model} accepts at most {max}"
            );
            problems.push(FieldError::new(input.text_field, message));
            Spoken::default()
        }
        Some(Some(spoken)) => {
            if spoken.text.trim().is_empty() {
                problems.push(FieldError::new(input.text_field, "must not be empty"));
            }
            spoken
        }
    };
    problems.extend(check_speed(input.speed, caps));
    if input.instructions.is_some() && !resolved.model.supports_instructions {
        problems.push(FieldError::new("instructions", format!("{model} does not take instructions")));
    }
    if !problems.is_empty() {
        return Err(ServiceError::Validation(problems));
    }
    let credential = owner.credential(resolved.provider.as_ref()).await?;
    Ok(Target {
        credential,
        resolved,
        voice,
        spoken,
        speed: input.speed,
        instructions: input.instructions,
        language: input.language,
        seed: input.seed,
        provider_options,
    })
}

fn check_speed(speed: Option<f32>, caps: &Capabilities) -> Option<FieldError> {
    match (speed, caps.speed_range) {
        (Some(speed), Some((lo, hi))) if !(speed.is_finite() && (lo..=hi).contains(&speed)) => {
            Some(FieldError::new("speed", format!("must be between {lo} and {hi} for this provider")))
        }
        (Some(speed), None) if (speed - 1.0).abs() > f32::EPSILON => {
            Some(FieldError::new("speed", "this provider cannot change the speaking rate"))
        }
        _ => None,
    }
}

pub const VOLUME_RANGE: (f32, f32) = (-60.0, 0.0);

/// A problem with `volumeDbfs`, if it is out of range.
pub fn check_volume(volume_dbfs: Option<f32>) -> Option<FieldError> {
    let volume = volume_dbfs?;
    (!(volume.is_finite() && (VOLUME_RANGE.0..=VOLUME_RANGE.1).contains(&volume))).then(|| {
        FieldError::new("volumeDbfs", format!("must be between {} and {} dBFS", VOLUME_RANGE.0, VOLUME_RANGE.1))
    })
}

/// The validation problems of a failed step merged with the caller's own, so one answer lists
/// them all; any other failure wins as it is.
pub fn with_problems(result: Result<Target, ServiceError>, mut own: Vec<FieldError>) -> Result<Target, ServiceError> {
    match result {
        Err(ServiceError::Validation(mut problems)) => {
            problems.append(&mut own);
            Err(ServiceError::Validation(problems))
        }
        Ok(_) if !own.is_empty() => Err(ServiceError::Validation(own)),
        other => other,
    }
}

fn invalid(field: &str, message: &str) -> ServiceError {
    ServiceError::Validation(vec![FieldError::new(field, message)])
}
