//! One clip of speech: validate, resolve the voice and model, plan how the requested output is
//! made from what the provider can produce, call the provider, and stream the result.
//!
//! Planning: when the provider produces the requested format and rate itself, its bytes pass
//! through untouched. Otherwise the provider is asked for PCM and the gateway transcodes chunk by
//! chunk as audio arrives, never holding the whole clip — except for `volumeDbfs`, which needs
//! the clip's peak and therefore the whole clip.

use bytes::Bytes;
use futures::{stream::BoxStream, StreamExt};
use serde_json::{Map, Value};

use super::{usage::UsageDetails, ServiceError};
use crate::{
    audio::{self, DurationCounter, PcmTranscoder},
    domain::{
        audio::{AudioFormat, AudioSpec, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE},
        FieldError,
    },
    providers::{
        registry::Resolved, Capabilities, EventStream, ProviderError, Registry, SynthesisEvent, SynthesisRequest,
    },
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

/// How the requested output is made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Plan {
    /// The provider's bytes are the answer.
    PassThrough { output: AudioSpec },
    /// The provider sends PCM at `from`; the gateway encodes `output` chunk by chunk.
    Transcode { from: u32, output: AudioSpec },
    /// The provider sends PCM at `from`; the gateway collects it, normalises the peak to
    /// `volume_dbfs` and encodes `output` once.
    Normalize { from: u32, output: AudioSpec, volume_dbfs: f32 },
}

impl Plan {
    pub fn output(&self) -> AudioSpec {
        match *self {
            Plan::PassThrough { output } | Plan::Transcode { output, .. } | Plan::Normalize { output, .. } => output,
        }
    }
}

pub const VOLUME_RANGE: (f32, f32) = (-60.0, 0.0);

/// Validates and resolves a request. Fails before any provider is called.
pub async fn prepare(
    registry: &Registry,
    store: &dyn Store,
    owner: &str,
    input: SpeechInput,
) -> Result<Prepared, ServiceError> {
    let mut problems = Vec::new();
    let (model, voice, mut provider_options) = match (&input.voice_id, &input.voice, &input.model) {
        (Some(id), None, None) => {
            let saved = super::voices::get(store, owner, id).await.map_err(|e| match e {
                ServiceError::NotFound { .. } => {
                    ServiceError::Validation(vec![FieldError::new("voiceId", format!("no saved voice {id:?}"))])
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
    if voice.trim().is_empty() {
        problems.push(FieldError::new("voice", "must not be empty"));
    }

    let resolved = registry.resolve(&model).map_err(|e| ServiceError::UnknownModel(e.to_string()))?;
    let caps = resolved.provider.capabilities();

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

/// Chooses how to make the requested output from what the provider offers.
pub fn plan(caps: &Capabilities, requested: &OutputRequest, volume_dbfs: Option<f32>) -> Result<Plan, FieldError> {
    let field = requested.field;
    let format = requested.format.unwrap_or(requested.default_format);
    let native_rates = caps.rates(format);
    let sample_rate = match (requested.sample_rate, format) {
        (Some(rate), _) => rate,
        (None, AudioFormat::Ulaw | AudioFormat::Alaw) => 8_000,
        // Raw audio defaults to 24 kHz where offered; compressed audio to the best native rate.
        (None, AudioFormat::Pcm | AudioFormat::Wav) => {
            prefer_24k(&native_rates).or_else(|| prefer_24k(&caps.rates(AudioFormat::Pcm))).unwrap_or(24_000)
        }
        (None, _) => {
            native_rates.last().copied().or_else(|| prefer_24k(&caps.rates(AudioFormat::Pcm))).unwrap_or(24_000)
        }
    };
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
        return Err(FieldError::new(
            field,
            format!("sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE}"),
        ));
    }
    let output = AudioSpec { format, sample_rate, bitrate_kbps: requested.bitrate_kbps };
    if volume_dbfs.is_none() && caps.produces(output) {
        return Ok(Plan::PassThrough { output });
    }
    if !format.encodable() {
        return Err(FieldError::new(
            field,
            format!(
                "{} can only be passed through, and this provider does not produce it at {sample_rate} Hz",
                format.as_str()
            ),
        ));
    }
    let pcm_rates = caps.rates(AudioFormat::Pcm);
    let Some(from) = pick_source_rate(&pcm_rates, sample_rate) else {
        return Err(FieldError::new(field, "this provider produces no PCM to convert from"));
    };
    // Fail now, not after the provider was paid, if the encoder cannot make this output; and
    // report what it really makes (a codec may round the rate up to one it supports).
    let output = PcmTranscoder::new(from, output).map_err(|e| FieldError::new(field, e.to_string()))?.output_spec();
    Ok(match volume_dbfs {
        Some(volume_dbfs) => Plan::Normalize { from, output, volume_dbfs },
        None => Plan::Transcode { from, output },
    })
}

fn prefer_24k(rates: &[u32]) -> Option<u32> {
    if rates.contains(&24_000) {
        Some(24_000)
    } else {
        rates.iter().copied().max()
    }
}

/// The PCM rate to ask for: the target itself, else the lowest above it, else the highest.
fn pick_source_rate(rates: &[u32], target: u32) -> Option<u32> {
    rates.iter().copied().filter(|r| *r >= target).min().or_else(|| rates.iter().copied().max())
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
/// proper error status instead of a broken 200.
pub async fn synthesize(prepared: Prepared, details: &UsageDetails) -> Result<SpeechOutput, ServiceError> {
    let Prepared { resolved, request, plan } = prepared;
    let provider = resolved.provider.id().to_owned();
    let characters = request.text.chars().count();
    details.serving(&provider, &resolved.model.id, &request.voice, characters);
    let mut events = resolved.provider.synthesize(request).await?;
    let first = match events.next().await {
        Some(Ok(event)) => event,
        Some(Err(err)) => return Err(err.into()),
        None => {
            return Err(ProviderError::Unavailable {
                provider,
                status: None,
                code: None,
                detail: "the provider returned no audio".to_owned(),
            }
            .into())
        }
    };
    let events: EventStream = Box::pin(futures::stream::iter([Ok(first)]).chain(events));
    let body = body(events, plan, details.clone())?;
    Ok(SpeechOutput { output: plan.output(), provider, model: resolved.model.id, characters, body })
}

/// The most PCM a `volumeDbfs` request may hold: 10 minutes at 48 kHz.
const MAX_NORMALIZED_BYTES: usize = 48_000 * 2 * 600;

/// What turns provider audio into response bytes.
enum Shaper {
    Pass { duration: DurationCounter },
    Transcode { transcoder: PcmTranscoder, from: u32, bytes: u64 },
    Normalize { from: u32, output: AudioSpec, volume_dbfs: f32, pcm: Vec<u8> },
}

struct BodyState {
    events: EventStream,
    shaper: Shaper,
    details: UsageDetails,
    finished: bool,
}

fn body(
    events: EventStream,
    plan: Plan,
    details: UsageDetails,
) -> Result<BoxStream<'static, Result<Bytes, std::io::Error>>, ServiceError> {
    let shaper = match plan {
        Plan::PassThrough { output } => Shaper::Pass { duration: DurationCounter::new(output) },
        Plan::Transcode { from, output } => Shaper::Transcode {
            transcoder: PcmTranscoder::new(from, output).map_err(|e| ServiceError::Internal(e.to_string()))?,
            from,
            bytes: 0,
        },
        Plan::Normalize { from, output, volume_dbfs } => {
            Shaper::Normalize { from, output, volume_dbfs, pcm: Vec::new() }
        }
    };
    let state = BodyState { events, shaper, details, finished: false };
    Ok(futures::stream::unfold(state, |mut state| async move {
        loop {
            if state.finished {
                return None;
            }
            let chunk = match state.events.next().await {
                Some(Ok(SynthesisEvent::Audio(bytes))) => state.shaper.push(bytes),
                Some(Ok(SynthesisEvent::Words(_))) => continue,
                Some(Err(err)) => {
                    state.finished = true;
                    state.details.fail("upstream_stream_failed");
                    tracing::warn!(error = %err, "provider stream failed after the response started");
                    return Some((Err(std::io::Error::other(err.to_string())), state));
                }
                None => {
                    state.finished = true;
                    let tail = state.shaper.finish(&state.details);
                    if let Err(err) = &tail {
                        state.details.fail("encode_failed");
                        tracing::error!(error = %err, "encoding the end of the clip failed");
                    }
                    tail
                }
            };
            match chunk {
                Ok(bytes) if bytes.is_empty() => continue,
                Ok(bytes) => return Some((Ok(bytes), state)),
                Err(err) => {
                    state.finished = true;
                    state.details.fail("encode_failed");
                    return Some((Err(std::io::Error::other(err.to_string())), state));
                }
            }
        }
    })
    .boxed())
}

impl Shaper {
    fn push(&mut self, bytes: Bytes) -> Result<Bytes, audio::AudioError> {
        match self {
            Shaper::Pass { duration } => {
                duration.push(&bytes);
                Ok(bytes)
            }
            Shaper::Transcode { transcoder, bytes: count, .. } => {
                *count += bytes.len() as u64;
                transcoder.push(&bytes).map(Bytes::from)
            }
            Shaper::Normalize { pcm, .. } => {
                if pcm.len() + bytes.len() > MAX_NORMALIZED_BYTES {
                    return Err(audio::AudioError::Unsupported(format!(
                        "the clip is longer than volumeDbfs can hold ({} MiB of PCM)",
                        MAX_NORMALIZED_BYTES >> 20
                    )));
                }
                pcm.extend_from_slice(&bytes);
                Ok(Bytes::new())
            }
        }
    }

    fn finish(&mut self, details: &UsageDetails) -> Result<Bytes, audio::AudioError> {
        match self {
            Shaper::Pass { duration } => {
                if let Some(ms) = duration.duration_ms() {
                    details.add_audio_ms(ms);
                }
                Ok(Bytes::new())
            }
            Shaper::Transcode { transcoder, from, bytes } => {
                details.add_audio_ms(audio::duration_ms((*bytes / 2) as usize, *from));
                transcoder.finish().map(Bytes::from)
            }
            Shaper::Normalize { from, output, volume_dbfs, pcm } => {
                let mut samples: Vec<i16> = pcm.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
                details.add_audio_ms(audio::duration_ms(samples.len(), *from));
                audio::normalize_peak(&mut samples, *volume_dbfs);
                let mut transcoder = PcmTranscoder::new(*from, *output)?;
                let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
                let mut out = transcoder.push(&bytes)?;
                out.extend(transcoder.finish()?);
                Ok(Bytes::from(out))
            }
        }
    }
}
