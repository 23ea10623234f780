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
    service::{usage::UsageDetails, ServiceError},
};

/// Fade at each end of a turn, so no join clicks.
const FADE_MS: u32 = 4;
/// Samples encoded per step while a turn is sent (bounds the encoder's output buffer).
const STEP: usize = 32 * 1024;
/// Most audio a split answer may hold, in seconds: its clips are held and sent at once.
const MAX_SPLIT_SECS: usize = 40 * 60;
/// Limiting deeper than this is worth a warning on the segments.
const WARN_LIMITED_DB: f64 = 1.0;

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

    fn encoder(&self) -> Result<Box<dyn Encoder>, ServiceError> {
        audio::encoder(self.output).map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// Every turn as its own clip. Waits for all of them; the first failure ends it.
    pub async fn split(mut self, turns: &mut Turns) -> Result<SplitConversation, ServiceError> {
        let mut clips = Vec::new();
        let mut total = 0;
        let max = usize::try_from(self.output.sample_rate).unwrap_or(usize::MAX).saturating_mul(MAX_SPLIT_SECS);
        while let Some(clip) = turns.next(true).await {
            let clip = clip?;
            total += clip.samples.len();
            if total > max {
                let message =
                    format!("a split answer holds at most {} minutes of audio; ask for one file", MAX_SPLIT_SECS / 60);
                return Err(ServiceError::Validation(vec![crate::domain::FieldError::new("split", message)]));
            }
            clips.push(clip);
        }
        // Encoding every turn takes a while: off the async workers.
        tokio::task::spawn_blocking(move || {
            let mut warnings = Vec::new();
            let mut audio_segments = Vec::with_capacity(clips.len());
            for mut clip in clips {
                warnings.extend(self.level(&mut clip));
                let mut encoder = self.encoder()?;
                let encode = |encoder: &mut Box<dyn Encoder>| -> Result<Vec<u8>, audio::AudioError> {
                    let mut bytes = encoder.encode(&clip.samples)?;
                    bytes.extend(encoder.finish()?);
                    Ok(bytes)
                };
                let bytes = encode(&mut encoder).map_err(|e| ServiceError::Internal(e.to_string()))?;
                audio_segments.push(AudioSegment {
                    audio: base64::engine::general_purpose::STANDARD.encode(bytes),
                    media_type: self.output.format.media_type().to_owned(),
                    duration_ms: audio::duration_ms(clip.samples.len(), self.output.sample_rate),
                    turn_index: clip.index,
                });
            }
            Ok(SplitConversation { audio_segments, warnings })
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("encoding the segments failed: {e}")))?
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
        let mut first = match turns.next(true).await {
            Some(clip) => clip?,
            None => return Err(ServiceError::Internal("a conversation without turns".to_owned())),
        };
        let encoder = self.encoder()?;
        self.level(&mut first);
        let state =
            Mix { turns, mixer: self, encoder, pauses, current: Some(Sending::new(first, 0)), details, done: false };
        Ok(futures::stream::unfold(state, |mut state| async move {
            loop {
                if state.done {
                    return None;
                }
                let step = match state.current.as_mut() {
                    Some(sending) => match sending.next_step() {
                        Some(step) => state.encoder.encode(step),
                        None => {
                            state.current = None;
                            continue;
                        }
                    },
                    None => match state.turns.next(false).await {
                        Some(Ok(mut clip)) => {
                            if let Some(warning) = state.mixer.level(&mut clip) {
                                tracing::debug!(%warning, "conversation turn levelled");
                            }
                            let rate = u64::from(state.mixer.output.sample_rate);
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
    details: UsageDetails,
    done: bool,
}

/// A turn being sent: its leading silence, then its samples, a step at a time.
struct Sending {
    samples: Vec<i16>,
    silence: usize,
    sent: usize,
    zeros: Vec<i16>,
}

impl Sending {
    fn new(clip: Clip, silence: usize) -> Self {
        Self { samples: clip.samples, silence, sent: 0, zeros: Vec::new() }
    }

    fn next_step(&mut self) -> Option<&[i16]> {
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
        Some(&self.samples[start..self.sent])
    }
}

/// The usage slug of a turn that failed after the response began.
fn failure_code(err: &ServiceError) -> &'static str {
    match err {
        ServiceError::Turn { error, .. } => failure_code(error),
        ServiceError::Provider(e) => e.code(),
        _ => "conversation_failed",
    }
}
