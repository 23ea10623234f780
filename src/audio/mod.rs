//! The audio pipeline: encode, decode, resample and level PCM, in-process and without external tools.
//!
//! Why it looks like this:
//!
//! - **Mono `i16` PCM is the currency.** Every provider can give (or be decoded to) 16-bit PCM, speech
//!   is mono, and 16 bits is what every encoder wants. Anything with more channels is mixed down.
//! - **Streaming first.** A plain speech request never holds the whole clip: [`PcmTranscoder`] and
//!   every [`Encoder`] keep at most one codec frame (plus the resampler's filter history) and hand back
//!   whatever bytes are ready after each chunk. Only [`decode`] works on a whole clip, because the
//!   conversation mixer and the timestamp estimator need the samples anyway.
//! - **Honest specs.** Some codecs cannot do every rate in `8000..=48000` (MP3 has nine rates, Opus
//!   five). [`output_spec`] says what [`encoder`] will really produce for a requested spec: the rate a
//!   codec cannot do is raised to the nearest one it can, the input is resampled to it inside the
//!   encoder, and the container says the real rate. Callers that report a spec (headers, usage)
//!   should report `output_spec`'s answer, not the request.
//! - **No C toolchain beyond a compiler, no system libraries.** Opus is the pure-Rust `opus-rs`,
//!   FLAC is `flacenc`, decoding is `symphonia`; only MP3 is C (LAME, built from bundled source with
//!   the C compiler and `make`). Nothing needs cmake or `-dev` packages.
//! - **Bad input is an error, never a panic.** Decoders of untrusted bytes run behind
//!   `catch_unwind` as a second line of defence: a codec bug must not take a request task down.

pub mod align;
mod decode;
mod duration;
mod encode;
mod flac;
mod g711;
pub mod loudness;
mod mp3;
mod ogg_opus;
mod resample;
mod transcode;
mod wav;

pub use crate::domain::audio::{AudioFormat, AudioSpec};
pub use decode::{decode, Decoded};
pub use duration::DurationCounter;
pub use encode::{encode_whole, encoder, leading_samples, leading_secs, output_spec};
pub use resample::Resampler;
pub use transcode::PcmTranscoder;
pub use wav::{WavFile, FORMAT_ALAW, FORMAT_MULAW, FORMAT_PCM};

/// What can go wrong in the audio pipeline. Messages are safe to show to a client.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The request asks for something the pipeline cannot do (a format, rate or bitrate).
    #[error("unsupported audio output: {0}")]
    Unsupported(String),
    /// The input bytes are not valid audio of the stated format.
    #[error("cannot decode audio: {0}")]
    Decode(String),
    /// An encoder failed, or was used after `finish`.
    #[error("cannot encode audio: {0}")]
    Encode(String),
}

/// Streaming encoder: mono i16 PCM at `spec.sample_rate` in, encoded bytes out, chunk by chunk.
///
/// The first call returns the container header (if the format has one) with whatever audio is ready;
/// `finish` flushes the last partial frame and the stream trailer. After `finish`, both methods
/// return [`AudioError::Encode`].
pub trait Encoder: Send {
    fn encode(&mut self, samples: &[i16]) -> Result<Vec<u8>, AudioError>;
    fn finish(&mut self) -> Result<Vec<u8>, AudioError>;
}

/// Peak normalisation: scale so the highest |sample| sits at `target_dbfs` (e.g. -1.0).
///
/// Silence stays silence. Targets above 0 dBFS are treated as 0 dBFS (full scale, no clipping);
/// a non-finite target leaves the samples as they are.
pub fn normalize_peak(samples: &mut [i16], target_dbfs: f32) {
    let peak = samples.iter().map(|s| i32::from(*s).abs()).max().unwrap_or(0);
    if let Some(gain) = peak_gain(peak, target_dbfs) {
        for s in samples.iter_mut() {
            *s = to_i16(f64::from(*s) * gain);
        }
    }
}

/// [`normalize_peak`] on s16le bytes, in place: no copy of the clip is made.
pub fn normalize_peak_le(pcm: &mut [u8], target_dbfs: f32) {
    let sample = |pair: &[u8]| i16::from_le_bytes([pair[0], pair[1]]);
    let peak = pcm.chunks_exact(2).map(|pair| i32::from(sample(pair)).abs()).max().unwrap_or(0);
    if let Some(gain) = peak_gain(peak, target_dbfs) {
        for pair in pcm.chunks_exact_mut(2) {
            let scaled = to_i16(f64::from(sample(pair)) * gain);
            pair.copy_from_slice(&scaled.to_le_bytes());
        }
    }
}

/// The gain that moves `peak` to `target_dbfs`, if there is anything to do.
fn peak_gain(peak: i32, target_dbfs: f32) -> Option<f64> {
    if !target_dbfs.is_finite() || peak == 0 {
        return None;
    }
    let target = 32767.0 * 10f64.powf(f64::from(target_dbfs.min(0.0)) / 20.0);
    Some(target / f64::from(peak))
}

/// Duration in ms of `samples` samples at `rate`, rounded to the nearest millisecond (0 at rate 0).
pub fn duration_ms(samples: usize, rate: u32) -> u64 {
    if rate == 0 {
        return 0;
    }
    let samples = samples as u128;
    let rate = u128::from(rate);
    u64::try_from((samples * 1000 + rate / 2) / rate).unwrap_or(u64::MAX)
}

/// Rounds and saturates a sample value to `i16`.
pub(crate) fn to_i16(value: f64) -> i16 {
    value.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
}

/// Samples from the next chunk of an s16le stream. Network chunks do not respect sample
/// boundaries: a chunk's odd last byte waits in `carry` for the next one.
pub fn s16le_samples(carry: &mut Option<u8>, bytes: &[u8]) -> Vec<i16> {
    let mut samples = Vec::with_capacity(bytes.len() / 2 + 1);
    s16le_samples_into(carry, bytes, &mut samples);
    samples
}

/// [`s16le_samples`], appending to `samples` (so a caller can reuse one buffer).
pub fn s16le_samples_into(carry: &mut Option<u8>, bytes: &[u8], samples: &mut Vec<i16>) {
    samples.reserve(bytes.len() / 2 + 1);
    let mut rest = bytes;
    if let Some(low) = carry.take() {
        match rest.split_first() {
            Some((high, tail)) => {
                samples.push(i16::from_le_bytes([low, *high]));
                rest = tail;
            }
            None => *carry = Some(low),
        }
    }
    let mut pairs = rest.chunks_exact(2);
    samples.extend(pairs.by_ref().map(|b| i16::from_le_bytes([b[0], b[1]])));
    if let [odd] = pairs.remainder() {
        *carry = Some(*odd);
    }
}

/// Little-endian bytes of `samples`, the s16le wire form.
pub(crate) fn s16le_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_peak_hits_the_target_and_keeps_silence() {
        let mut samples = vec![0i16, 1000, -2000, 500];
        normalize_peak(&mut samples, -6.0);
        let expected = (32767.0 * 10f64.powf(-6.0 / 20.0)).round() as i16;
        assert_eq!(samples[2], -expected);
        assert_eq!(samples[1], (f64::from(expected) / 2.0).round() as i16);

        let mut silence = vec![0i16; 10];
        normalize_peak(&mut silence, -1.0);
        assert!(silence.iter().all(|s| *s == 0));

        let mut loud = vec![i16::MIN, 0, i16::MAX];
        normalize_peak(&mut loud, 3.0);
        assert_eq!(loud, vec![-32767, 0, 32766]);
    }

    #[test]
    fn duration_is_rounded_milliseconds() {
        assert_eq!(duration_ms(24_000, 24_000), 1000);
        assert_eq!(duration_ms(12, 24_000), 1);
        assert_eq!(duration_ms(11, 24_000), 0);
        assert_eq!(duration_ms(44_100 * 90, 44_100), 90_000);
        assert_eq!(duration_ms(5, 0), 0);
    }
}
