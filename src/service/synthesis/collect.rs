//! A provider's whole answer, held: its PCM converted to samples and resampled to the rate the
//! gateway works at as it arrives, and its word timings. For what needs the whole clip before it
//! can answer (a conversation's turn, timestamps in a JSON envelope).

use futures::StreamExt;

use crate::{
    audio::{self, Resampler},
    providers::{EventStream, ProviderError, SynthesisEvent, WordTiming},
    service::{usage::UsageDetails, ServiceError},
};

/// Most audio one clip may bring, in seconds (far beyond what any provider makes of the longest
/// text a model takes); held at the working rate, as 16-bit samples.
pub const MAX_CLIP_SECS: usize = 600;

pub struct Collected {
    /// Mono samples at the working rate.
    pub samples: Vec<i16>,
    /// The provider's word timings, in seconds of its audio (resampling does not move them).
    pub words: Vec<WordTiming>,
    /// What the provider said the caller should know about the audio.
    pub warnings: Vec<String>,
}

/// Reads `events` (PCM at `from`) to the end. A provider failure marks segment `segment` failed
/// in usage and comes back as the provider's error.
pub async fn collect(
    mut events: EventStream,
    from: u32,
    rate: u32,
    provider: &str,
    usage: (&UsageDetails, u32),
) -> Result<Collected, ServiceError> {
    let (details, segment) = usage;
    let fail = |err: ProviderError| {
        details.segment_failed(segment, err.code());
        ServiceError::Provider(err)
    };
    let max_samples = usize::try_from(rate).unwrap_or(usize::MAX).saturating_mul(MAX_CLIP_SECS);
    let mut resampler = (from != rate)
        .then(|| Resampler::new(from, rate))
        .transpose()
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    let mut collected = Collected { samples: Vec::new(), words: Vec::new(), warnings: Vec::new() };
    let mut carry = None;
    while let Some(event) = events.next().await {
        match event.map_err(fail)? {
            SynthesisEvent::Audio(bytes) => {
                let pcm = audio::s16le_samples(&mut carry, &bytes);
                match resampler.as_mut() {
                    Some(resampler) => collected.samples.extend(resampler.process(&pcm)),
                    None => collected.samples.extend(pcm),
                }
            }
            SynthesisEvent::Words(words) => collected.words.extend(words),
            SynthesisEvent::Tokens(tokens) => details.add_tokens(segment, tokens),
            SynthesisEvent::Warning(warning) => {
                tracing::warn!(%warning, segment, "the provider's audio came with a warning");
                collected.warnings.push(warning);
            }
        }
        if collected.samples.len() > max_samples {
            let detail = format!("a clip may bring at most {} minutes of audio", MAX_CLIP_SECS / 60);
            return Err(fail(ProviderError::Invalid { provider: provider.to_owned(), detail }));
        }
    }
    if let Some(resampler) = resampler.as_mut() {
        collected.samples.extend(resampler.finish());
    }
    Ok(collected)
}
