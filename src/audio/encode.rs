//! Choosing and building encoders: what a requested [`AudioSpec`] really becomes, and the one
//! wrapper that resamples into a codec's rate and refuses use after `finish`.

use super::flac::FlacEncoder;
use super::mp3::{self, Mp3Encoder};
use super::ogg_opus::{self, OggOpusEncoder};
use super::wav::{RawEncoder, RawKind};
use super::{AudioError, AudioFormat, AudioSpec, Encoder, Resampler};
use crate::domain::audio::{MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};

/// G.711 is defined at 8 kHz only.
const G711_RATE: u32 = 8_000;

/// What [`encoder`] produces for `requested`: the same spec, or the nearest one the codec can do.
///
/// - AAC: `Unsupported` (decode only).
/// - Rates outside 8000..=48000: `Unsupported`. μ-law and A-law: 8000 only.
/// - MP3: the rate rises to the next MPEG rate (e.g. 10000 → 11025); the bitrate must be one LAME
///   allows at that rate (`Unsupported` otherwise), default 128 kbit/s or the rate's maximum below.
/// - Opus: the rate rises to the next of 8/16/24/48 kHz (22050 → 24000, 44100 → 48000); bitrate
///   6..=256 kbit/s, default 64.
/// - FLAC, WAV, PCM: any rate in range.
/// - `bitrate_kbps` only means something for MP3 and Opus; other formats ignore it and report `None`.
pub fn output_spec(requested: AudioSpec) -> Result<AudioSpec, AudioError> {
    let rate = requested.sample_rate;
    if requested.format == AudioFormat::Aac {
        return Err(AudioError::Unsupported("aac can be decoded but not encoded".into()));
    }
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        return Err(AudioError::Unsupported(format!(
            "sample rate {rate} Hz (supported: {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz)"
        )));
    }
    let spec = |sample_rate, bitrate_kbps| AudioSpec { format: requested.format, sample_rate, bitrate_kbps };
    Ok(match requested.format {
        AudioFormat::Mp3 => {
            let rate = mp3::codec_rate(rate);
            spec(rate, Some(mp3::choose_bitrate(rate, requested.bitrate_kbps)?))
        }
        AudioFormat::Opus => spec(ogg_opus::codec_rate(rate), Some(ogg_opus::choose_bitrate(requested.bitrate_kbps)?)),
        AudioFormat::Ulaw | AudioFormat::Alaw if rate != G711_RATE => {
            return Err(AudioError::Unsupported(format!(
                "{} is defined at {G711_RATE} Hz only, not {rate} Hz",
                requested.format.as_str()
            )))
        }
        AudioFormat::Flac | AudioFormat::Wav | AudioFormat::Pcm | AudioFormat::Ulaw | AudioFormat::Alaw => {
            spec(rate, None)
        }
        AudioFormat::Aac => return Err(AudioError::Unsupported("aac can be decoded but not encoded".into())),
    })
}

/// Streaming encoder for `spec`: mono i16 at `spec.sample_rate` in, bytes of
/// [`output_spec`]`(spec)` out (resampled inside when the codec rate differs).
/// Samples of silence a player plays before the first encoded sample. A streamed MP3 has no
/// Xing/LAME frame to tell the decoder to skip LAME's start-up delay (576 samples) and its own
/// (529), so they are played; Opus declares its pre-skip, which decoders honour; the rest have
/// none. Timestamps of an encoded clip are shifted by it.
pub fn leading_samples(spec: AudioSpec) -> usize {
    match spec.format {
        AudioFormat::Mp3 => 1105,
        _ => 0,
    }
}

/// [`leading_samples`] in seconds.
pub fn leading_secs(spec: AudioSpec) -> f64 {
    leading_samples(spec) as f64 / f64::from(spec.sample_rate.max(1))
}

/// A clip held whole (given in parts, played one after the other), encoded in one go.
pub fn encode_whole(spec: AudioSpec, parts: &[&[i16]]) -> Result<Vec<u8>, AudioError> {
    let mut encoder = encoder(spec)?;
    let mut bytes = Vec::new();
    for part in parts {
        bytes.extend(encoder.encode(part)?);
    }
    bytes.extend(encoder.finish()?);
    Ok(bytes)
}

pub fn encoder(spec: AudioSpec) -> Result<Box<dyn Encoder>, AudioError> {
    let actual = output_spec(spec)?;
    let codec: Box<dyn Encoder> = match actual.format {
        AudioFormat::Mp3 => Box::new(Mp3Encoder::new(actual.sample_rate, bitrate(actual)?)?),
        AudioFormat::Opus => Box::new(OggOpusEncoder::new(actual.sample_rate, bitrate(actual)?)?),
        AudioFormat::Flac => Box::new(FlacEncoder::new(actual.sample_rate)?),
        AudioFormat::Wav => Box::new(RawEncoder::new(RawKind::Wav, actual.sample_rate)),
        AudioFormat::Pcm => Box::new(RawEncoder::new(RawKind::Pcm, actual.sample_rate)),
        AudioFormat::Ulaw => Box::new(RawEncoder::new(RawKind::Ulaw, actual.sample_rate)),
        AudioFormat::Alaw => Box::new(RawEncoder::new(RawKind::Alaw, actual.sample_rate)),
        AudioFormat::Aac => return Err(AudioError::Unsupported("aac can be decoded but not encoded".into())),
    };
    let resampler = if actual.sample_rate == spec.sample_rate {
        None
    } else {
        Some(Resampler::new(spec.sample_rate, actual.sample_rate)?)
    };
    Ok(Box::new(Pipeline { resampler, codec, finished: false }))
}

fn bitrate(spec: AudioSpec) -> Result<u32, AudioError> {
    spec.bitrate_kbps.ok_or_else(|| AudioError::Encode("no bitrate chosen".into()))
}

/// An optional resampler in front of a codec, and the "no use after finish" rule.
struct Pipeline {
    resampler: Option<Resampler>,
    codec: Box<dyn Encoder>,
    finished: bool,
}

impl Encoder for Pipeline {
    fn encode(&mut self, samples: &[i16]) -> Result<Vec<u8>, AudioError> {
        if self.finished {
            return Err(AudioError::Encode("encoder used after finish".into()));
        }
        match &mut self.resampler {
            Some(resampler) => {
                let resampled = resampler.process(samples);
                self.codec.encode(&resampled)
            }
            None => self.codec.encode(samples),
        }
    }

    fn finish(&mut self) -> Result<Vec<u8>, AudioError> {
        if self.finished {
            return Err(AudioError::Encode("encoder finished twice".into()));
        }
        self.finished = true;
        let mut out = match &mut self.resampler {
            Some(resampler) => {
                let tail = resampler.finish();
                self.codec.encode(&tail)?
            }
            None => Vec::new(),
        };
        out.extend(self.codec.finish()?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(format: AudioFormat, sample_rate: u32, bitrate_kbps: Option<u32>) -> AudioSpec {
        AudioSpec { format, sample_rate, bitrate_kbps }
    }

    #[test]
    fn output_spec_is_honest_and_idempotent() {
        let cases = [
            (spec(AudioFormat::Mp3, 24_000, None), spec(AudioFormat::Mp3, 24_000, Some(128))),
            (spec(AudioFormat::Mp3, 10_000, None), spec(AudioFormat::Mp3, 11_025, Some(64))),
            (spec(AudioFormat::Opus, 22_050, None), spec(AudioFormat::Opus, 24_000, Some(64))),
            (spec(AudioFormat::Opus, 44_100, Some(32)), spec(AudioFormat::Opus, 48_000, Some(32))),
            (spec(AudioFormat::Flac, 22_050, Some(999)), spec(AudioFormat::Flac, 22_050, None)),
            (spec(AudioFormat::Ulaw, 8_000, None), spec(AudioFormat::Ulaw, 8_000, None)),
        ];
        for (requested, expected) in cases {
            let actual = output_spec(requested).unwrap();
            assert_eq!(actual, expected, "{requested:?}");
            assert_eq!(output_spec(actual).unwrap(), actual);
        }
    }

    #[test]
    fn unsupported_requests() {
        for bad in [
            spec(AudioFormat::Aac, 24_000, None),
            spec(AudioFormat::Wav, 7_999, None),
            spec(AudioFormat::Pcm, 48_001, None),
            spec(AudioFormat::Ulaw, 16_000, None),
            spec(AudioFormat::Alaw, 24_000, None),
            spec(AudioFormat::Mp3, 8_000, Some(128)),
            spec(AudioFormat::Opus, 48_000, Some(1000)),
        ] {
            assert!(matches!(output_spec(bad), Err(AudioError::Unsupported(_))), "{bad:?}");
            assert!(matches!(encoder(bad), Err(AudioError::Unsupported(_))), "{bad:?}");
        }
    }

    #[test]
    fn no_use_after_finish() {
        let mut enc = encoder(AudioSpec::pcm(16_000)).unwrap();
        assert_eq!(enc.encode(&[1]).unwrap(), vec![1, 0]);
        assert!(enc.finish().unwrap().is_empty());
        assert!(matches!(enc.encode(&[1]), Err(AudioError::Encode(_))));
        assert!(matches!(enc.finish(), Err(AudioError::Encode(_))));
    }
}

#[cfg(test)]
mod leading_tests {
    use super::*;

    /// A click one second in is heard `leading_samples` later in what a decoder plays.
    #[test]
    fn players_hear_the_declared_lead_in() {
        for (format, rate) in [
            (AudioFormat::Mp3, 24_000),
            (AudioFormat::Mp3, 16_000),
            (AudioFormat::Opus, 48_000),
            (AudioFormat::Wav, 24_000),
        ] {
            let spec = output_spec(AudioSpec { format, sample_rate: rate, bitrate_kbps: None })
                .unwrap_or_else(|e| panic!("{e}"));
            let rate = spec.sample_rate as usize;
            let mut pcm = vec![0i16; rate * 2];
            pcm[rate..rate + 24]
                .iter_mut()
                .enumerate()
                .for_each(|(k, s)| *s = if k % 2 == 0 { 20_000 } else { -20_000 });
            let mut encoder = encoder(spec).unwrap_or_else(|e| panic!("{e}"));
            let mut bytes = encoder.encode(&pcm).unwrap_or_default();
            bytes.extend(encoder.finish().unwrap_or_default());
            let decoded = crate::audio::decode(format, &bytes, None).unwrap_or_else(|e| panic!("{e}"));
            let onset = decoded.samples.iter().position(|s| s.unsigned_abs() > 5_000).unwrap_or(0);
            let expected = rate + leading_samples(spec);
            assert!(
                onset.abs_diff(expected) <= rate / 1000 + 2,
                "{format:?} {rate}: click at {onset}, expected {expected}"
            );
        }
    }
}
