//! The response body of a speech request: provider events shaped into the output bytes —
//! passed through (and measured), transcoded chunk by chunk, or collected and normalised.

use bytes::Bytes;
use futures::{stream::BoxStream, StreamExt};

use super::{Plan, ServiceError, UsageDetails};
use crate::{
    audio::{self, AudioSpec, DurationCounter, PcmTranscoder},
    providers::{EventStream, SynthesisEvent},
};

/// The most PCM a `volumeDbfs` request may hold: 10 minutes at 48 kHz.
const MAX_NORMALIZED_BYTES: usize = 48_000 * 2 * 600;

/// PCM encoded per step while a normalised clip is sent (bounds the encoder's output buffer).
const DRAIN_CHUNK: usize = 64 * 1024;

/// What turns provider audio into response bytes.
enum Shaper {
    Pass {
        duration: DurationCounter,
    },
    Transcode {
        transcoder: PcmTranscoder,
        from: u32,
        bytes: u64,
    },
    Normalize {
        from: u32,
        output: AudioSpec,
        volume_dbfs: f32,
        pcm: Vec<u8>,
    },
    /// A normalised clip being encoded and sent, a chunk at a time, from the one PCM buffer.
    Drain {
        transcoder: PcmTranscoder,
        pcm: Vec<u8>,
        sent: usize,
    },
    Done,
}

struct BodyState {
    events: EventStream,
    shaper: Shaper,
    details: UsageDetails,
    segment: u32,
    upstream_done: bool,
    finished: bool,
}

/// The body of one clip; its audio is counted in usage as segment `segment`.
pub(crate) fn body(
    events: EventStream,
    plan: Plan,
    details: UsageDetails,
    segment: u32,
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
    let state = BodyState { events, shaper, details, segment, upstream_done: false, finished: false };
    Ok(futures::stream::unfold(state, |mut state| async move {
        loop {
            if state.finished {
                return None;
            }
            // Once the provider's stream has ended it is not polled again.
            let next = if state.upstream_done { None } else { state.events.next().await };
            let chunk = match next {
                Some(Ok(SynthesisEvent::Audio(bytes))) => state.shaper.push(bytes),
                Some(Ok(SynthesisEvent::Words(_))) => continue,
                Some(Ok(SynthesisEvent::Tokens(tokens))) => {
                    state.details.add_tokens(state.segment, tokens);
                    continue;
                }
                // An audio body has no place for it once its head has gone.
                Some(Ok(SynthesisEvent::Warning(warning))) => {
                    tracing::warn!(%warning, segment = state.segment, "the provider's audio came with a warning");
                    continue;
                }
                Some(Err(err)) => {
                    state.finished = true;
                    state.details.fail("upstream_stream_failed");
                    state.details.segment_failed(state.segment, err.code());
                    tracing::warn!(error = %err, "provider stream failed after the response started");
                    return Some((Err(std::io::Error::other(err.to_string())), state));
                }
                None => {
                    state.upstream_done = true;
                    let tail = state.shaper.finish(&state.details, state.segment);
                    state.finished = matches!(state.shaper, Shaper::Done);
                    if let Err(err) = &tail {
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
            Shaper::Drain { .. } | Shaper::Done => Ok(Bytes::new()),
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

    /// Called once the provider's audio has ended, until the shaper is `Done`: the last bytes
    /// of the clip, a step at a time.
    fn finish(&mut self, details: &UsageDetails, segment: u32) -> Result<Bytes, audio::AudioError> {
        let out = match std::mem::replace(self, Shaper::Done) {
            Shaper::Done => Bytes::new(),
            Shaper::Pass { duration } => {
                if let Some(ms) = duration.duration_ms() {
                    details.add_audio_ms(segment, ms);
                }
                Bytes::new()
            }
            Shaper::Transcode { mut transcoder, from, bytes } => {
                details.add_audio_ms(segment, audio::duration_ms((bytes / 2) as usize, from));
                Bytes::from(transcoder.finish()?)
            }
            Shaper::Normalize { from, output, volume_dbfs, mut pcm } => {
                details.add_audio_ms(segment, audio::duration_ms(pcm.len() / 2, from));
                // An odd trailing byte is not a sample.
                pcm.truncate(pcm.len() & !1);
                audio::normalize_peak_le(&mut pcm, volume_dbfs);
                *self = Shaper::Drain { transcoder: PcmTranscoder::new(from, output)?, pcm, sent: 0 };
                Bytes::new()
            }
            Shaper::Drain { mut transcoder, pcm, sent } => {
                let end = (sent + DRAIN_CHUNK).min(pcm.len());
                let mut out = transcoder.push(&pcm[sent..end])?;
                if end == pcm.len() {
                    out.extend(transcoder.finish()?);
                } else {
                    *self = Shaper::Drain { transcoder, pcm, sent: end };
                }
                Bytes::from(out)
            }
        };
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{audio::AudioFormat, providers::ProviderError};

    /// A normalised clip longer than one drain step comes out whole, scaled once, in order.
    #[tokio::test]
    async fn normalised_clips_drain_in_steps_from_one_buffer() {
        let samples: Vec<i16> = (0..72_000).map(|i| ((i % 200) as i16 - 100) * 80).collect();
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let chunks: Vec<Result<SynthesisEvent, ProviderError>> =
            bytes.chunks(10_001).map(|c| Ok(SynthesisEvent::Audio(Bytes::copy_from_slice(c)))).collect();
        let output = AudioSpec { format: AudioFormat::Pcm, sample_rate: 24_000, bitrate_kbps: None };
        let plan = Plan::Normalize { from: 24_000, output, volume_dbfs: -6.0 };
        let details = UsageDetails::default();
        let body = body(Box::pin(futures::stream::iter(chunks)), plan, details, 0).unwrap();
        let parts: Vec<Bytes> = body.map(|part| part.unwrap()).collect().await;
        assert!(parts.len() >= 3, "{} parts: sent a step at a time", parts.len());
        let sent: Vec<u8> = parts.concat();
        let mut expected = samples;
        audio::normalize_peak(&mut expected, -6.0);
        let expected: Vec<u8> = expected.iter().flat_map(|s| s.to_le_bytes()).collect();
        assert_eq!(sent, expected);
    }
}
