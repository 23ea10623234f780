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

pub(super) fn body(
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
