//! One clip of speech: validate, resolve the voice and model, plan how the requested output is
//! made from what the provider can produce, call the provider, and stream the result.
//!
//! Planning: when the provider produces the requested format and rate itself, its bytes pass
//! through untouched. Otherwise the provider is asked for PCM and the gateway transcodes chunk by
//! chunk as audio arrives, never holding the whole clip — except for `volumeDbfs`, which needs
//! the clip's peak and therefore the whole clip.

mod body;
mod plan;

use std::{sync::Arc, time::Instant};

use bytes::Bytes;
use futures::{stream::BoxStream, Stream, StreamExt};
use serde_json::{Map, Value};
use tracing::Instrument;

pub use plan::{plan, Plan};

use super::{usage::UsageDetails, ServiceError};
use crate::{
    domain::{
        audio::{AudioFormat, AudioSpec},
        text, FieldError,
    },
    metrics::{Metrics, ProviderErrorLabels, ProviderLabels},
    providers::{registry::Resolved, EventStream, ProviderError, Registry, SynthesisEvent, SynthesisRequest},
    store::Store,
};

/// A speech request after the HTTP dialect (Speechbase or OpenAI) has been read.
#[derive(Debug, Clone, Default)]
pub struct SpeechInput {
    pub model: Option<String>,
    pub voice: Option<String>,
    pub voice_id: Option<String>,
    pub text: String,
    /// The field the text came in (`text` or `input`), for error paths.
    pub text_field: &'static str,
    pub output: OutputRequest,
    pub speed: Option<f32>,
    pub instructions: Option<String>,
    pub language: Option<String>,
    pub seed: Option<u64>,
    pub volume_dbfs: Option<f32>,
    pub provider_options: Map<String, Value>,
    /// The provider's own stream only (`/v1/audio/speech/stream`): no conversion, no
    /// normalisation; formats default to the provider's native mp3, else its PCM.
    pub native_only: bool,
}

/// The output a client asked for; unset parts get defaults.
#[derive(Debug, Clone)]
pub struct OutputRequest {
    pub format: Option<AudioFormat>,
    pub sample_rate: Option<u32>,
    pub bitrate_kbps: Option<u32>,
    /// The format when none is given (`wav` for Speechbase bodies, `mp3` for OpenAI ones).
    pub default_format: AudioFormat,
    /// The field the output came in (`output` or `response_format`), for error paths.
    pub field: &'static str,
}

impl Default for OutputRequest {
    fn default() -> Self {
        Self { format: None, sample_rate: None, bitrate_kbps: None, default_format: AudioFormat::Mp3, field: "output" }
    }
}

/// Everything resolved and checked; nothing has been sent upstream yet.
pub struct Prepared {
    pub resolved: Resolved,
    pub request: SynthesisRequest,
    pub plan: Plan,
}

pub const VOLUME_RANGE: (f32, f32) = (-60.0, 0.0);
/// Longest `language` tag accepted (BCP 47 tags in practice stay far below it).
const MAX_LANGUAGE_CHARS: usize = 35;

/// Validates and resolves a request. Fails before any provider is called.
pub async fn prepare(
    registry: &Registry,
    store: &dyn Store,
    owner: &str,
    input: SpeechInput,
) -> Result<Prepared, ServiceError> {
    let mut problems = Vec::new();
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

    let characters = input.text.chars().count();
    if input.text.trim().is_empty() {
        problems.push(FieldError::new(input.text_field, "must not be empty"));
    } else if characters > resolved.model.max_characters {
        problems.push(FieldError::new(
            input.text_field,
            format!("is {characters} characters; {} accepts at most {}", model, resolved.model.max_characters),
        ));
    }
    match (input.speed, caps.speed_range) {
        (Some(speed), Some((lo, hi))) if !(speed.is_finite() && (lo..=hi).contains(&speed)) => {
            problems.push(FieldError::new("speed", format!("must be between {lo} and {hi} for this provider")));
        }
        (Some(speed), None) if (speed - 1.0).abs() > f32::EPSILON => {
            problems.push(FieldError::new("speed", "this provider cannot change the speaking rate"));
        }
        _ => {}
    }
    if let Some(volume) = input.volume_dbfs {
        if !(volume.is_finite() && (VOLUME_RANGE.0..=VOLUME_RANGE.1).contains(&volume)) {
            problems.push(FieldError::new(
                "volumeDbfs",
                format!("must be between {} and {} dBFS", VOLUME_RANGE.0, VOLUME_RANGE.1),
            ));
        }
    }
    if input.instructions.is_some() && !resolved.model.supports_instructions {
        problems.push(FieldError::new("instructions", format!("{model} does not take instructions")));
    }
    let mut output = input.output.clone();
    if input.native_only {
        if input.volume_dbfs.is_some() {
            problems.push(FieldError::new("volumeDbfs", "needs the whole clip; use /v1/audio/speech"));
        }
        if output.format.is_none() {
            output.format =
                Some(if caps.rates(AudioFormat::Mp3).is_empty() { AudioFormat::Pcm } else { AudioFormat::Mp3 });
        }
    }
    let plan = match plan(caps, &output, input.volume_dbfs) {
        Ok(Plan::Transcode { output, .. }) if input.native_only => {
            problems.push(FieldError::new(
                input.output.field,
                format!(
                    "{} at {} Hz is not a native format of this provider, and this endpoint does not convert; \
                     use /v1/audio/speech",
                    output.format.as_str(),
                    output.sample_rate
                ),
            ));
            None
        }
        Ok(plan) => Some(plan),
        Err(problem) => {
            problems.push(problem);
            None
        }
    };
    let (Some(plan), true) = (plan, problems.is_empty()) else {
        return Err(ServiceError::Validation(problems));
    };
    let upstream = match plan {
        Plan::PassThrough { output } => output,
        Plan::Transcode { from, .. } | Plan::Normalize { from, .. } => AudioSpec::pcm(from),
    };
    let request = SynthesisRequest {
        model: resolved.model.id.clone(),
        voice,
        text: input.text,
        output: upstream,
        speed: input.speed,
        instructions: input.instructions,
        language: input.language,
        seed: input.seed,
        provider_options,
        timestamps: false,
    };
    Ok(Prepared { resolved, request, plan })
}

fn invalid(field: &str, message: &str) -> ServiceError {
    ServiceError::Validation(vec![FieldError::new(field, message)])
}

/// A synthesis under way: the head is decided, the body streams.
pub struct SpeechOutput {
    pub output: AudioSpec,
    pub provider: String,
    pub model: String,
    pub characters: usize,
    pub body: BoxStream<'static, Result<Bytes, std::io::Error>>,
}

/// Calls the provider and waits for its first event, so a provider that fails at once yields a
/// proper error status instead of a broken 200. The call is observed: a `provider_call` span
/// (provider, model, characters, time to first byte), and per provider and model the time to
/// first audio, the time to the end of the audio and failures by code.
pub async fn synthesize(
    prepared: Prepared,
    details: &UsageDetails,
    metrics: &Arc<Metrics>,
) -> Result<SpeechOutput, ServiceError> {
    let Prepared { resolved, request, plan } = prepared;
    let provider = resolved.provider.id().to_owned();
    let characters = request.text.chars().count();
    details.serving(&provider, &resolved.model.id, &request.voice, characters);
    let mut call = ProviderCall::new(metrics.clone(), &provider, &resolved.model.id, characters);
    let started = async {
        let mut events = resolved.provider.synthesize(request).await?;
        match events.next().await {
            Some(Ok(first)) => Ok((first, events)),
            Some(Err(err)) => Err(err),
            None => Err(ProviderError::Unavailable {
                provider: provider.clone(),
                status: None,
                code: None,
                detail: "the provider returned no audio".to_owned(),
            }),
        }
    }
    .instrument(call.span.clone())
    .await;
    let (first, events) = match started {
        Ok(started) => started,
        Err(err) => {
            call.failed(&err);
            return Err(err.into());
        }
    };
    call.first_byte();
    let events: EventStream = Box::pin(call.observe(futures::stream::iter([Ok(first)]).chain(events)));
    let body = body::body(events, plan, details.clone())?;
    Ok(SpeechOutput { output: plan.output(), provider, model: resolved.model.id, characters, body })
}

/// One provider call, observed in metrics and a tracing span. Once audio has begun, the call's
/// duration is recorded when its stream is dropped: at its end, or when the client leaves.
struct ProviderCall {
    metrics: Arc<Metrics>,
    labels: ProviderLabels,
    span: tracing::Span,
    started: Instant,
    streaming: bool,
}

impl ProviderCall {
    fn new(metrics: Arc<Metrics>, provider: &str, model: &str, characters: usize) -> Self {
        let span = tracing::info_span!(
            "provider_call",
            provider,
            model,
            characters,
            ttfb_ms = tracing::field::Empty,
            error = tracing::field::Empty
        );
        let labels = ProviderLabels { provider: provider.to_owned(), model: model.to_owned() };
        Self { metrics, labels, span, started: Instant::now(), streaming: false }
    }

    fn first_byte(&mut self) {
        self.streaming = true;
        let elapsed = self.started.elapsed();
        self.span.record("ttfb_ms", elapsed.as_secs_f64() * 1000.0);
        self.metrics.provider_ttfb.get_or_create(&self.labels).observe(elapsed.as_secs_f64());
    }

    fn failed(&self, error: &ProviderError) {
        self.span.record("error", error.code());
        let labels = ProviderErrorLabels { provider: self.labels.provider.clone(), code: error.code().to_owned() };
        self.metrics.provider_errors.get_or_create(&labels).inc();
    }

    /// The rest of the audio, with a failure mid-stream counted.
    fn observe(
        self,
        events: impl Stream<Item = Result<SynthesisEvent, ProviderError>> + Send + 'static,
    ) -> impl Stream<Item = Result<SynthesisEvent, ProviderError>> + Send + 'static {
        events.inspect(move |item| {
            if let Err(err) = item {
                self.failed(err);
            }
        })
    }
}

impl Drop for ProviderCall {
    fn drop(&mut self) {
        if self.streaming {
            self.metrics.provider_duration.get_or_create(&self.labels).observe(self.started.elapsed().as_secs_f64());
        }
    }
}
