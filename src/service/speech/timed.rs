//! One clip with word timestamps (`/v1/audio/speech/with-timestamps`): the provider is asked for
//! PCM (with its timing when it has any), the clip is held whole, levelled if asked, encoded
//! once, and the caller's words are timed against what a player hears — the encoder's lead-in
//! included.

use std::{collections::VecDeque, sync::Arc};

use base64::Engine;
use bytes::Bytes;
use futures::{stream::BoxStream, StreamExt};
use serde_json::json;

use super::SpeechInput;
use crate::{
    audio::{self, AudioFormat, AudioSpec, PcmTranscoder},
    domain::{pronounce::Spoken, FieldError},
    metrics::Metrics,
    providers::{EventStream, Registry, SynthesisEvent, WordTiming},
    service::{
        synthesis::{
            self,
            collect::{collect, MAX_CLIP_SECS},
            Candidates, Target,
        },
        timestamps::{self, Mode, TimedClip, Timestamp},
        usage::UsageDetails,
        ServiceError,
    },
    store::Store,
};

/// Everything resolved and checked; nothing has been sent upstream yet.
pub struct TimedPrepared {
    /// The targets to try, each with the PCM rate it is asked for.
    candidates: Candidates<u32>,
    /// The text as the caller wrote it: timestamps refer to it.
    original: String,
    output: AudioSpec,
    volume_dbfs: Option<f32>,
    mode: Mode,
}

impl TimedPrepared {
    /// The target tried first.
    pub fn first_target(&self) -> &Target {
        self.candidates.first()
    }
}

/// The clip and its words, and who spoke it.
pub struct TimedSpeech {
    pub clip: TimedClip,
    pub provider: String,
    pub model: String,
}

/// Validates and resolves a request. Fails before any provider is called, also when `mode`
/// asks for native timing from a provider without it.
pub async fn prepare(
    registry: &Registry,
    store: &dyn Store,
    owner: &crate::service::provider_keys::Owner,
    input: SpeechInput,
    mode: Mode,
) -> Result<TimedPrepared, ServiceError> {
    let rules = input.pronunciations.check();
    if !rules.is_empty() {
        return Err(ServiceError::Validation(rules));
    }
    let mut problems: Vec<FieldError> = synthesis::check_volume(input.volume_dbfs).into_iter().collect();
    let output = synthesis::encoded_output(&input.output).map_err(|problem| problems.push(problem)).ok();
    let original = input.segment.text.clone();
    let resolved = synthesis::resolve(registry, store, owner, input.segment, &input.pronunciations).await;
    let candidates = synthesis::with_problems(resolved, problems)?;
    let Some(output) = output else {
        return Err(ServiceError::Internal("an output problem was not reported".to_owned()));
    };
    let candidates = candidates.plan(|target, ()| {
        let caps = target.capabilities();
        if mode == Mode::Native && !caps.times_pcm() {
            return Err(ServiceError::TimestampsUnavailable(target.provider_id().to_owned()));
        }
        synthesis::pick_source_rate(&caps.rates(AudioFormat::Pcm), output.sample_rate).ok_or_else(|| {
            let message = "this provider makes no PCM for the gateway to time and encode";
            ServiceError::Validation(vec![FieldError::new("model", message)])
        })
    })?;
    owner.screen().admit(&candidates.first().spoken.text).await?;
    Ok(TimedPrepared { candidates, original, output, volume_dbfs: input.volume_dbfs, mode })
}

/// Synthesises the clip and times its words.
pub async fn synthesize(
    prepared: TimedPrepared,
    details: &UsageDetails,
    metrics: &Arc<Metrics>,
) -> Result<TimedSpeech, ServiceError> {
    let TimedPrepared { candidates, original, output, volume_dbfs, mode } = prepared;
    let (target, &from, events) = candidates.call(0, true, details, metrics, |&from| AudioSpec::pcm(from)).await?;
    let provider = target.provider_id().to_owned();
    let rate = output.sample_rate;
    let mut collected = collect(events, from, rate, &provider, (details, 0)).await?;
    let spoken = target.spoken.clone();
    let provider_warnings = std::mem::take(&mut collected.warnings);
    // Timing, levelling and encoding a long clip take milliseconds of CPU: off the async workers.
    let (timed, audio, duration_ms) = tokio::task::spawn_blocking(move || -> Result<_, audio::AudioError> {
        let timed = timestamps::time_words(&original, &spoken, &collected.words, &collected.samples, rate, mode);
        let mut samples = collected.samples;
        if let Some(volume) = volume_dbfs {
            audio::normalize_peak(&mut samples, volume);
        }
        let bytes = audio::encode_whole(output, &[&samples])?;
        Ok((timed, bytes, audio::duration_ms(samples.len() + audio::leading_samples(output), rate)))
    })
    .await
    .map_err(|e| ServiceError::Internal(format!("encoding failed: {e}")))?
    .map_err(|e| ServiceError::Internal(e.to_string()))?;
    let Some((mut stamps, alignment, mut warnings)) = timed else {
        details.segment_failed(0, "timestamps_unavailable");
        return Err(ServiceError::TimestampsUnavailable(provider));
    };
    warnings.extend(provider_warnings);
    timestamps::shift(&mut stamps, audio::leading_secs(output));
    details.add_audio_ms(0, duration_ms);
    Ok(TimedSpeech {
        clip: TimedClip { audio, output, duration_ms, timestamps: stamps, alignment, warnings },
        provider,
        model: target.resolved.model.id.clone(),
    })
}

/// A piece of a timed clip as it is made ([`stream`]).
#[derive(Debug, Clone, PartialEq)]
pub enum TimedChunk {
    /// Encoded audio; concatenated, the chunks are the file.
    Audio(Vec<u8>),
    /// Words whose times are settled, in order, each sent once.
    Words(Vec<Timestamp>),
    /// The last chunk of a clip that ended well: what a player plays, the encoder's lead-in
    /// included, and where the times came from.
    Done { duration_ms: u64, alignment: timestamps::Alignment, warnings: Vec<String> },
    /// The clip failed after it started; nothing follows.
    Failed { code: &'static str, message: String },
}

impl TimedChunk {
    /// The chunk as the native route's NDJSON line: `{"type":"audio","audio":"<base64>"}`,
    /// `{"type":"words","timestamps":[...]}`, `{"type":"done","durationMs","alignment",
    /// "warnings"}` or `{"type":"error","code","message"}`.
    pub fn ndjson_line(&self) -> Bytes {
        let value = match self {
            TimedChunk::Audio(audio) => {
                json!({"type": "audio", "audio": base64::engine::general_purpose::STANDARD.encode(audio)})
            }
            TimedChunk::Words(stamps) => json!({"type": "words", "timestamps": stamps}),
            TimedChunk::Done { duration_ms, alignment, warnings } => {
                json!({"type": "done", "durationMs": duration_ms, "alignment": alignment, "warnings": warnings})
            }
            TimedChunk::Failed { code, message } => json!({"type": "error", "code": code, "message": message}),
        };
        let mut line = value.to_string().into_bytes();
        line.push(b'\n');
        Bytes::from(line)
    }
}

/// The clip's chunks, sent as they are made: encoded audio, words as soon as their times are
/// settled (the provider's own timing), and a last `Done` (or `Failed`). Estimated times need
/// the whole clip, so they come just before `Done`. Refuses `volumeDbfs`, which needs the whole
/// clip before the first byte.
pub async fn stream(
    prepared: TimedPrepared,
    details: &UsageDetails,
    metrics: &Arc<Metrics>,
) -> Result<TimedStream, ServiceError> {
    if prepared.volume_dbfs.is_some() {
        let message = "needs the whole clip; use /v1/audio/speech/with-timestamps";
        return Err(ServiceError::Validation(vec![FieldError::new("volumeDbfs", message)]));
    }
    let TimedPrepared { candidates, original, output, mode, .. } = prepared;
    let (target, &from, events) = candidates.call(0, true, details, metrics, |&from| AudioSpec::pcm(from)).await?;
    let transcoder = PcmTranscoder::new(from, output).map_err(|e| ServiceError::Internal(e.to_string()))?;
    let (provider, model) = (target.provider_id().to_owned(), target.resolved.model.id.clone());
    let state = Lines {
        events,
        transcoder,
        original,
        spoken: target.spoken.clone(),
        from,
        lead_in: audio::leading_secs(output),
        mode,
        provider_words: Vec::new(),
        provider_warnings: Vec::new(),
        samples: Vec::new(),
        carry: None,
        sent_words: 0,
        matched: None,
        queue: VecDeque::new(),
        details: details.clone(),
        done: false,
    };
    let chunks = futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(chunk) = state.queue.pop_front() {
                return Some((chunk, state));
            }
            if state.done {
                return None;
            }
            let failed = match state.events.next().await {
                Some(Ok(SynthesisEvent::Audio(bytes))) => state.audio(&bytes).err(),
                Some(Ok(SynthesisEvent::Tokens(tokens))) => {
                    state.details.add_tokens(0, tokens);
                    None
                }
                Some(Ok(SynthesisEvent::Warning(warning))) => {
                    tracing::warn!(%warning, "the provider's audio came with a warning");
                    state.provider_warnings.push(warning);
                    None
                }
                Some(Ok(SynthesisEvent::Words(words))) => {
                    state.provider_words.extend(words);
                    state.settled_words();
                    None
                }
                Some(Err(err)) => {
                    state.details.segment_failed(0, err.code());
                    Some(("upstream_stream_failed", err.to_string()))
                }
                None => state.finish().await.err(),
            };
            // A failure after the head: a `Failed` chunk ends the stream (no `Done` follows).
            if let Some((code, message)) = failed {
                state.done = true;
                state.details.fail(code);
                tracing::warn!(%message, code, "timed speech stream failed after it started");
                state.queue.clear();
                state.queue.push_back(TimedChunk::Failed { code, message });
            }
        }
    })
    .boxed();
    Ok(TimedStream { provider, model, chunks })
}

/// A timed clip under way: who speaks it, and its chunks as they are made.
pub struct TimedStream {
    pub provider: String,
    pub model: String,
    pub chunks: BoxStream<'static, TimedChunk>,
}

/// The longest a stream holds settled words back while its provider's timing arrives.
const RESETTLE_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

struct Lines {
    events: EventStream,
    transcoder: PcmTranscoder,
    original: String,
    spoken: Spoken,
    from: u32,
    lead_in: f64,
    mode: Mode,
    provider_words: Vec<WordTiming>,
    /// What the provider said the caller should know, for the `done` line.
    provider_warnings: Vec<String>,
    /// The provider's PCM, kept to estimate word times when the provider sends none.
    samples: Vec<i16>,
    carry: Option<u8>,
    sent_words: usize,
    /// When the provider's words were last matched to the text, and how many there were.
    matched: Option<(std::time::Instant, usize)>,
    queue: VecDeque<TimedChunk>,
    details: UsageDetails,
    done: bool,
}

impl Lines {
    fn audio(&mut self, bytes: &[u8]) -> Result<(), (&'static str, String)> {
        self.samples.extend(audio::s16le_samples(&mut self.carry, bytes));
        if self.samples.len() > usize::try_from(self.from).unwrap_or(usize::MAX).saturating_mul(MAX_CLIP_SECS) {
            let message = format!("a clip may bring at most {} minutes of audio", MAX_CLIP_SECS / 60);
            return Err(("upstream_invalid_response", message));
        }
        let encoded = self.transcoder.push(bytes).map_err(|e| ("encode_failed", e.to_string()))?;
        if !encoded.is_empty() {
            self.queue.push_back(TimedChunk::Audio(encoded));
        }
        Ok(())
    }

    /// Sends the words whose times can no longer change ([`timestamps::Native::settled_chars`]).
    ///
    /// Matching runs over the whole text each time, so it runs again only when the provider's
    /// words have grown by an eighth or a fifth of a second has passed: the work stays linear in
    /// the text (a geometric series) and bounded in time, however finely the provider slices its
    /// timing; the end of the stream matches everything once more.
    fn settled_words(&mut self) {
        let words = self.provider_words.len();
        if let Some((at, count)) = self.matched {
            if words - count < count / 8 && at.elapsed() < RESETTLE_EVERY {
                return;
            }
        }
        self.matched = Some((std::time::Instant::now(), words));
        let clip_secs = self.samples.len() as f64 / f64::from(self.from);
        let mut native = timestamps::native(&self.original, &self.spoken, &self.provider_words, clip_secs);
        let count = native.timestamps.iter().take_while(|s| s.char_end <= native.settled_chars).count();
        self.send_words(&mut native.timestamps, count);
    }

    fn send_words(&mut self, stamps: &mut [Timestamp], upto: usize) {
        if upto > self.sent_words {
            let new = &mut stamps[self.sent_words..upto];
            timestamps::shift(new, self.lead_in);
            self.queue.push_back(TimedChunk::Words(new.to_vec()));
            self.sent_words = upto;
        }
    }

    async fn finish(&mut self) -> Result<(), (&'static str, String)> {
        self.done = true;
        let tail = self.transcoder.finish().map_err(|e| ("encode_failed", e.to_string()))?;
        if !tail.is_empty() {
            self.queue.push_back(TimedChunk::Audio(tail));
        }
        // Estimating a long clip takes milliseconds of CPU: off the async workers.
        let (original, spoken, words) = (self.original.clone(), self.spoken.clone(), self.provider_words.clone());
        let samples = std::mem::take(&mut self.samples);
        let (from, mode) = (self.from, self.mode);
        let (timed, samples) = tokio::task::spawn_blocking(move || {
            (timestamps::time_words(&original, &spoken, &words, &samples, from, mode), samples)
        })
        .await
        .map_err(|e| ("internal_error", e.to_string()))?;
        let Some((mut stamps, alignment, mut warnings)) = timed else {
            return Err(("timestamps_unavailable", "the provider sent no word timing".to_owned()));
        };
        warnings.extend(std::mem::take(&mut self.provider_warnings));
        let count = stamps.len();
        self.send_words(&mut stamps, count);
        let duration_ms = audio::duration_ms(samples.len(), from) + (self.lead_in * 1000.0).round() as u64;
        self.details.add_audio_ms(0, duration_ms);
        self.queue.push_back(TimedChunk::Done { duration_ms, alignment, warnings });
        Ok(())
    }
}
