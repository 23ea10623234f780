//! The pipeline every synthesis runs through, whatever the route:
//!
//! 1. **resolve** ([`resolve`]): one segment of a request (a voice or saved voice, a model, text
//!    and options) → [`Candidates`]: the [`Target`]s that may voice it, in the order to try (one,
//!    or a fallback route's targets that can take the request), everything checked.
//!    Field errors carry paths relative to the segment; a caller with many segments prefixes them
//!    (`turns[2].voiceId`).
//! 2. **plan** ([`plan`]): what to ask the provider for, and how the gateway converts it into
//!    the requested output.
//! 3. **events** ([`Candidates::call`], [`call::start`]): the provider call, observed, with its
//!    first event awaited so a provider that fails at once can still be answered with a proper
//!    status — or handed to the route's next target. Usage gets one line per segment, naming the
//!    target that served.
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
        registry::Resolved, Capabilities, EventStream, ProviderError, ProviderKey, Registry, RetryPolicy,
        SynthesisRequest,
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
    /// What the target's model can do.
    pub fn capabilities(&self) -> &crate::providers::Capabilities {
        self.resolved.provider.model_capabilities(&self.resolved.model.id)
    }

    pub fn provider_id(&self) -> &str {
        self.resolved.provider.id()
    }

    pub fn characters(&self) -> usize {
        self.spoken.text.chars().count()
    }

    /// Calls the provider for segment `index` of the request, asking for `output` (one of its
    /// native formats) and, with `timed`, for its word timing when it has any in that format;
    /// waits for the first event ([`call::start`]), retrying per `retry`.
    async fn call(
        &self,
        index: u32,
        output: AudioSpec,
        (timed, retry): (bool, RetryPolicy),
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
        let reliability = (retry, &self.resolved.circuit);
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

/// A segment resolved: the targets that may voice it, in the order to try — one, unless its
/// model names a route — each with what the route's shape of the pipeline planned for it (`P`:
/// the upstream format, say). Never empty.
pub struct Candidates<P = ()> {
    list: Vec<(Target, P)>,
}

impl<P> Candidates<P> {
    /// The target tried first.
    pub fn first(&self) -> &Target {
        &self.list[0].0
    }

    /// The one target, when there is no other to fall back on.
    pub fn only(&self) -> Option<&Target> {
        match self.list.as_slice() {
            [(only, _)] => Some(only),
            _ => None,
        }
    }

    /// [`Candidates::only`], owned.
    pub fn into_only(mut self) -> Option<Target> {
        match self.list.len() {
            1 => self.list.pop().map(|(only, _)| only),
            _ => None,
        }
    }

    /// The characters the segment costs (those of the first target's text: a route's targets
    /// differ only where their pronunciation rules stop at a shorter model limit).
    pub fn characters(&self) -> usize {
        self.first().characters()
    }

    /// Each target with its plan from `plan`. A target `plan` refuses is dropped; when it
    /// refuses them all, its refusal of the first is the answer.
    pub fn plan<Q>(
        self,
        mut plan: impl FnMut(&Target, P) -> Result<Q, ServiceError>,
    ) -> Result<Candidates<Q>, ServiceError> {
        Candidates::keep(self.list.into_iter().map(|(target, planned)| plan(&target, planned).map(|q| (target, q))))
    }

    /// The targets that passed, in order; when none did, the first refusal.
    fn keep(outcomes: impl IntoIterator<Item = Result<(Target, P), ServiceError>>) -> Result<Self, ServiceError> {
        let mut list = Vec::new();
        let mut refusal = None;
        for outcome in outcomes {
            match outcome {
                Ok(kept) => list.push(kept),
                Err(error) => {
                    refusal.get_or_insert(error);
                }
            }
        }
        match (list.is_empty(), refusal) {
            (true, Some(error)) => Err(error),
            _ => Ok(Candidates { list }),
        }
    }

    /// Calls the targets in order until one starts (`Target::call`), asking each for
    /// `upstream(plan)`. Any failure before the first audio moves on to the next target at once;
    /// only the last is retried (per its provider's retry policy), so a failing primary costs
    /// one attempt, not its retries and their waits. Usage names the target that served; the
    /// last failure is the answer when none does.
    pub async fn call(
        &self,
        index: u32,
        timed: bool,
        details: &UsageDetails,
        metrics: &Arc<Metrics>,
        upstream: impl Fn(&P) -> AudioSpec,
    ) -> Result<(&Target, &P, EventStream), ProviderError> {
        let last = self.list.len() - 1;
        let mut position = 0;
        loop {
            let (target, planned) = &self.list[position];
            let retry = if position == last { target.resolved.retry } else { RetryPolicy::NONE };
            match target.call(index, upstream(planned), (timed, retry), details, metrics).await {
                Ok(events) => return Ok((target, planned, events)),
                Err(error) if position < last => {
                    let next = self.list[position + 1].0.provider_id();
                    tracing::warn!(
                        provider = target.provider_id(),
                        code = error.code(),
                        next,
                        "falling back to the route's next target"
                    );
                    metrics.fallback(target.provider_id(), error.code());
                    position += 1;
                }
                Err(error) => return Err(error),
            }
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
) -> Result<Candidates, ServiceError> {
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
    provider_options.extend(input.provider_options.clone());
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

    let targets = registry.targets(&model).map_err(|e| ServiceError::UnknownModel(e.to_string()))?;
    let routed = targets.iter().any(|(_, route)| route.is_some());
    if routed {
        // Each target of a route gets the options its provider takes; one that none takes is
        // the caller's mistake.
        for name in provider_options.keys() {
            if !targets.iter().any(|(resolved, _)| declares(resolved, name)) {
                let message = "is not an option any target of this route passes on";
                problems.push(FieldError::member("providerOptions", &text::for_record(name.clone()), message));
            }
        }
        if !problems.is_empty() {
            return Err(ServiceError::Validation(problems));
        }
    }
    let mut outcomes = Vec::with_capacity(targets.len());
    for (resolved, route) in targets {
        let voice = route.map_or(voice.as_str(), |t| t.voice_for(&voice)).to_owned();
        let mut options = provider_options.clone();
        if routed {
            options.retain(|name, _| declares(&resolved, name));
        }
        let outcome = match check(resolved, voice, options, &input, &model, pronunciations) {
            // The project's own key for the target's vendor, when it stored one. A key that
            // cannot be opened refuses this target alone: a route's others may still serve.
            Ok(mut target) => owner.credential(target.resolved.provider.as_ref()).await.map(|credential| {
                target.credential = credential;
                (target, ())
            }),
            Err(error) => Err(error),
        };
        outcomes.push(outcome);
    }
    Candidates::keep(outcomes)
}

/// Whether `resolved`'s provider passes on the option `name`.
fn declares(resolved: &Resolved, name: &str) -> bool {
    resolved.provider.capabilities().provider_options.iter().any(|o| o.name == name)
}

/// Checks one target against the segment: options, language, text length (pronunciation rules
/// applied), speed and instructions. `model` is the name the request used, for messages.
fn check(
    resolved: Resolved,
    voice: String,
    provider_options: Map<String, Value>,
    input: &SegmentInput,
    model: &str,
    pronunciations: &Pronunciations,
) -> Result<Target, ServiceError> {
    let caps = resolved.provider.model_capabilities(&resolved.model.id);
    let mut problems = caps.check_options(&provider_options);
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
    Ok(Target {
        credential: None,
        resolved,
        voice,
        spoken,
        speed: input.speed,
        instructions: input.instructions.clone(),
        language: input.language.clone(),
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
pub fn with_problems<T>(result: Result<T, ServiceError>, mut own: Vec<FieldError>) -> Result<T, ServiceError> {
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
