//! The stitched conversation: turns, in order, levelled against each other, faded at their
//! edges and joined with exact digital silence — encoded once into one streamed file, or each on
//! its own into segments.

use base64::Engine;
use bytes::Bytes;
use futures::{stream::BoxStream, StreamExt};

use super::{
    turns::{Clip, Turns},
    AudioSegment, SplitConversation,
};
use crate::{
    audio::{self, loudness, AudioSpec, Encoder},
    service::{
        timestamps::{self, Alignment, TimedClip},
        usage::UsageDetails,
        ServiceError,
    },
};

/// Fade at each end of a turn, so no join clicks.
const FADE_MS: u32 = 4;
/// Samples encoded per step while a turn is sent (bounds the encoder's output buffer).
const STEP: usize = 32 * 1024;
/// Most audio a split answer may hold, in seconds: its clips are held and sent at once.
const MAX_SPLIT_SECS: usize = 40 * 60;
/// Limiting deeper than this is worth a warning on the segments.
const WARN_LIMITED_DB: f64 = 1.0;

#[derive(Clone, Copy)]
pub struct Mixer {
    output: AudioSpec,
    leveler: loudness::Leveler,
}

impl Mixer {
    /// `output` is an encodable spec as the encoder makes it (its rate is the mix's rate).
    pub fn new(output: AudioSpec, volume_dbfs: Option<f32>) -> Self {
        Self { output, leveler: loudness::Leveler::new(volume_dbfs) }
    }

    /// Levels and fades the next clip in order; a warning when the clip could not be levelled
    /// as asked.
    fn level(&mut self, clip: &mut Clip) -> Option<String> {
        let rate = self.output.sample_rate;
        let applied = self.leveler.apply(&mut clip.samples, clip.level, rate);
        loudness::fade_edges(&mut clip.samples, rate, FADE_MS);
        match clip.level.loudness {
            None => Some(format!("turn {}: no measurable loudness; left as it is", clip.index)),
            Some(_) if applied.limited_db > WARN_LIMITED_DB => Some(format!(
                "turn {}: peaks held {:.1} dB below the matched level to stay under the ceiling",
                clip.index, applied.limited_db
            )),
            Some(_) => None,
        }
    }

    /// [`Mixer::level`] on the blocking pool: a long turn's limiter takes milliseconds.
    async fn level_off_workers(&mut self, mut clip: Clip) -> Result<Clip, ServiceError> {
        let mut mixer = *self;
        let (mixer, clip) = tokio::task::spawn_blocking(move || {
            if let Some(warning) = mixer.level(&mut clip) {
                tracing::debug!(%warning, "conversation turn levelled");
            }
            (mixer, clip)
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("levelling a turn failed: {e}")))?;
        *self = mixer;
        Ok(clip)
    }

    fn encoder(&self) -> Result<Box<dyn Encoder>, ServiceError> {
        audio::encoder(self.output).map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// Every turn, held: waits for all of them; the first failure ends it. Bounded to
    /// [`MAX_SPLIT_SECS`] of audio, as the answer holds it all at once.
    async fn all(turns: &mut Turns, rate: u32) -> Result<Vec<Clip>, ServiceError> {
        let mut clips = Vec::new();
        let mut total = 0;
        let max = usize::try_from(rate).unwrap_or(usize::MAX).saturating_mul(MAX_SPLIT_SECS);
        while let Some(clip) = turns.next(true).await {
            let clip = clip?;
            total += clip.samples.len();
            if total > max {
                let message = format!(
                    "a held answer holds at most {} minutes of audio; ask for one streamed file",
                    MAX_SPLIT_SECS / 60
                );
                return Err(ServiceError::Validation(vec![crate::domain::FieldError::new("turns", message)]));
            }
            clips.push(clip);
        }
        Ok(clips)
    }

    /// The samples' encoding, whole.
    fn encode(&self, parts: &[&[i16]]) -> Result<Vec<u8>, ServiceError> {
        audio::encode_whole(self.output, parts).map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// Every turn as its own clip (with its words, block-relative, when they were asked for).
    pub async fn split(mut self, turns: &mut Turns, details: UsageDetails) -> Result<SplitConversation, ServiceError> {
        let clips = Self::all(turns, self.output.sample_rate).await?;
        // Encoding every turn takes a while: off the async workers.
        tokio::task::spawn_blocking(move || {
            let rate = self.output.sample_rate;
            let lead_in = audio::leading_secs(self.output);
            let mut warnings = Vec::new();
            let mut audio_segments = Vec::with_capacity(clips.len());
            for mut clip in clips {
                warnings.extend(self.level(&mut clip));
                warnings.extend(clip.warnings.iter().map(|w| format!("turn {}: {w}", clip.index)));
                let bytes = self.encode(&[&clip.samples])?;
                details.add_audio_ms(turn_number(clip.index), audio::duration_ms(clip.samples.len(), rate));
                // What a player plays: the encoder's lead-in, then the turn.
                let duration_ms = audio::duration_ms(clip.samples.len() + audio::leading_samples(self.output), rate);
                let words = clip.words.map(|mut words| {
                    timestamps::shift(&mut words.timestamps, lead_in);
                    warnings.extend(words.warnings.iter().map(|w| format!("turn {}: {w}", clip.index)));
                    words
                });
                audio_segments.push(AudioSegment {
                    audio: base64::engine::general_purpose::STANDARD.encode(bytes),
                    media_type: self.output.format.media_type().to_owned(),
                    duration_ms,
                    turn_index: clip.index,
                    alignment: words.as_ref().map(|w| w.alignment),
                    timestamps: words.map(|w| w.timestamps),
                });
            }
            Ok(SplitConversation { audio_segments, warnings })
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("encoding the segments failed: {e}")))?
    }

    /// The mixed file held whole, with every turn's words moved to the turn's place in it (its
    /// leading silence, and the encoder's lead-in, included).
    pub async fn whole(
        mut self,
        turns: &mut Turns,
        pauses: &[u32],
        details: UsageDetails,
    ) -> Result<TimedClip, ServiceError> {
        let clips = Self::all(turns, self.output.sample_rate).await?;
        let pauses = pauses.to_vec();
        tokio::task::spawn_blocking(move || {
            let rate = self.output.sample_rate;
            let mut warnings = Vec::new();
            let mut stamps = Vec::new();
            let mut alignment = Alignment::Native;
            let mut parts: Vec<Vec<i16>> = Vec::with_capacity(clips.len() * 2);
            let mut position = audio::leading_samples(self.output);
            for mut clip in clips {
                warnings.extend(self.level(&mut clip));
                warnings.extend(clip.warnings.iter().map(|w| format!("turn {}: {w}", clip.index)));
                let silence =
                    usize::try_from(u64::from(pauses.get(clip.index).copied().unwrap_or(0)) * u64::from(rate) / 1000)
                        .unwrap_or(0);
                position += silence;
                parts.push(vec![0; silence]);
                if let Some(mut words) = clip.words {
                    timestamps::shift(&mut words.timestamps, position as f64 / f64::from(rate));
                    stamps.extend(words.timestamps);
                    warnings.extend(words.warnings.iter().map(|w| format!("turn {}: {w}", clip.index)));
                    if words.alignment == Alignment::Estimated {
                        alignment = Alignment::Estimated;
                    }
                }
                details.add_audio_ms(turn_number(clip.index), audio::duration_ms(clip.samples.len(), rate));
                position += clip.samples.len();
                parts.push(clip.samples);
            }
            let views: Vec<&[i16]> = parts.iter().map(Vec::as_slice).collect();
            let audio = self.encode(&views)?;
            let duration_ms = audio::duration_ms(position, rate);
            Ok(TimedClip { audio, output: self.output, duration_ms, timestamps: stamps, alignment, warnings })
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("encoding the conversation failed: {e}")))?
    }

    /// The mixed file, streamed. Returns once turn 0 is ready (or any turn has failed: then
    /// nothing has been sent and the failure is the answer); later turns are made while the
    /// earlier ones are sent. `pauses[i]` is the silence before turn `i`, in ms.
    pub async fn stream(
        mut self,
        mut turns: Turns,
        pauses: Vec<u32>,
        details: UsageDetails,
    ) -> Result<BoxStream<'static, Result<Bytes, std::io::Error>>, ServiceError> {
        let first = match turns.next(true).await {
            Some(clip) => clip?,
            None => return Err(ServiceError::Internal("a conversation without turns".to_owned())),
        };
        let encoder = self.encoder()?;
        let first = self.level_off_workers(first).await?;
        let state = Mix {
            turns,
            mixer: self,
            encoder,
            pauses,
            unsent: Some(first.index),
            current: Some(Sending::new(first, 0)),
            details,
            done: false,
        };
        Ok(futures::stream::unfold(state, |mut state| async move {
            loop {
                if state.done {
                    return None;
                }
                let rate = state.mixer.output.sample_rate;
                let step = match state.current.as_mut() {
                    Some(sending) => match sending.next_step(&state.details, rate) {
                        Some(step) => {
                            let encoded = state.encoder.encode(step);
                            if sending.sent > 0 {
                                state.unsent = None;
                            }
                            encoded
                        }
                        None => {
                            state.current = None;
                            continue;
                        }
                    },
                    None => match state.turns.next(false).await {
                        Some(Ok(clip)) => {
                            state.unsent = Some(clip.index);
                            let clip = match state.mixer.level_off_workers(clip).await {
                                Ok(clip) => clip,
                                Err(err) => {
                                    state.done = true;
                                    state.details.fail("conversation_failed");
                                    return Some((Err(std::io::Error::other(err.to_string())), state));
                                }
                            };
                            let rate = u64::from(rate);
                            let pause = state.pauses.get(clip.index).copied().unwrap_or(0);
                            let gap = usize::try_from(u64::from(pause) * rate / 1000).unwrap_or(0);
                            state.current = Some(Sending::new(clip, gap));
                            continue;
                        }
                        Some(Err(err)) => {
                            state.done = true;
                            state.details.fail(failure_code(&err));
                            tracing::warn!(error = %err, "conversation turn failed after the response started");
                            return Some((Err(std::io::Error::other(err.to_string())), state));
                        }
                        None => {
                            state.done = true;
                            state.encoder.finish()
                        }
                    },
                };
                match step {
                    Ok(bytes) if bytes.is_empty() => continue,
                    Ok(bytes) => return Some((Ok(Bytes::from(bytes)), state)),
                    Err(err) => {
                        state.done = true;
                        state.details.fail("encode_failed");
                        tracing::error!(error = %err, "encoding the conversation failed");
                        return Some((Err(std::io::Error::other(err.to_string())), state));
                    }
                }
            }
        })
        .boxed())
    }
}

struct Mix {
    turns: Turns,
    mixer: Mixer,
    encoder: Box<dyn Encoder>,
    pauses: Vec<u32>,
    current: Option<Sending>,
    /// The turn taken from the runner of which no sample has gone out yet.
    unsent: Option<usize>,
    details: UsageDetails,
    done: bool,
}

impl Drop for Mix {
    /// A turn taken for sending of which nothing went out (the client left first) counts as
    /// cancelled, like the turns after it.
    fn drop(&mut self) {
        if let Some(index) = self.unsent {
            self.details.segment_failed(turn_number(index), super::turns::CANCELLED);
        }
    }
}

/// A turn being sent: its leading silence, then its samples, a step at a time. The turn's audio
/// is counted in usage as it goes out, so a conversation cut short records what was sent.
struct Sending {
    index: usize,
    samples: Vec<i16>,
    silence: usize,
    sent: usize,
    zeros: Vec<i16>,
}

impl Sending {
    fn new(clip: Clip, silence: usize) -> Self {
        Self { index: clip.index, samples: clip.samples, silence, sent: 0, zeros: Vec::new() }
    }

    fn next_step(&mut self, details: &UsageDetails, rate: u32) -> Option<&[i16]> {
        if self.silence > 0 {
            let n = self.silence.min(STEP);
            self.silence -= n;
            self.zeros.resize(n, 0);
            return Some(&self.zeros[..n]);
        }
        if self.sent >= self.samples.len() {
            return None;
        }
        let start = self.sent;
        self.sent = (start + STEP).min(self.samples.len());
        // Differences of rounded totals: the steps add up to the turn's exact duration.
        let ms = audio::duration_ms(self.sent, rate) - audio::duration_ms(start, rate);
        details.add_audio_ms(turn_number(self.index), ms);
        Some(&self.samples[start..self.sent])
    }
}

fn turn_number(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

/// The usage slug of a turn that failed after the response began.
fn failure_code(err: &ServiceError) -> &'static str {
    match err {
        ServiceError::Turn { error, .. } => failure_code(error),
        ServiceError::Provider(e) => e.code(),
        _ => "conversation_failed",
    }
}
