//! MP3 through LAME (the `mp3lame-encoder` binding, which builds LAME 3.100 from bundled source).
//!
//! MPEG audio has nine sample rates in three families, and each family its own bitrate table; LAME
//! rejects or silently changes anything else. We pick the rate (see [`codec_rate`]) and check the
//! bitrate ourselves so a bad request is a clear `Unsupported`, and we pin LAME's output rate to the
//! input rate so it never resamples behind our back. Constant bitrate, mono.
//!
//! LAME's quality setting (`-q`) decides how hard it searches for where to put quantisation
//! noise. Its default, 3, runs the noise-shaping loop (raising the scalefactors of bands whose
//! noise exceeds the psychoacoustic model's allowance, then searching Huffman tables); 7 keeps the
//! psychoacoustic model (block switching) but quantises with one global step. With a generous
//! budget there is little noise to shape: on speech-like audio resampled from 24 kHz, 128 and
//! 96 kbit/s mono at 44.1 kHz decode to the same signal-to-noise ratio per band within 2 dB at 3
//! and 7, and 7 takes about a third less time. At 64 kbit/s shaping shows (3 puts the noise
//! where the model says it is masked: 1–2 dB more signal-to-noise below 2 kHz, 3 dB less above
//! 4 kHz), so lower bitrates keep 3. See [`quality`] and the audio section of BENCHMARKS.md.
//!
//! A streamed MP3 has no Xing/LAME "Info" frame: that frame holds the encoder delay and padding
//! and would have to be rewritten once the stream is complete. Decoders therefore play LAME's
//! ~1105-sample start-up delay and the final frame's padding as a little silence.

use std::num::NonZeroU32;

use mp3lame_encoder::{max_required_buffer_size, Bitrate, Builder, FlushGap, Mode, MonoPcm, Quality, VbrMode};

use super::{AudioError, Encoder};

/// Rates MPEG-1/2/2.5 Layer III can carry.
const RATES: [u32; 9] = [8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000];
/// The bitrate used when a request gives none (capped at the rate family's maximum).
pub(crate) const DEFAULT_KBPS: u32 = 128;

/// The MPEG rate used for a requested rate: the lowest one at or above it.
pub(crate) fn codec_rate(requested: u32) -> u32 {
    RATES.into_iter().find(|r| *r >= requested).unwrap_or(48_000)
}

/// Bitrates (kbit/s) LAME allows at `rate`, as far as the binding exposes them (it has no 56 and
/// no 144 kbit/s).
pub(crate) fn bitrates(rate: u32) -> &'static [u32] {
    match rate {
        32_000.. => &[32, 40, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
        16_000.. => &[8, 16, 24, 32, 40, 48, 64, 80, 96, 112, 128, 160],
        _ => &[8, 16, 24, 32, 40, 48, 64],
    }
}

/// The bitrate used at `rate`: the requested one if LAME allows it there, else `Unsupported`; with
/// no request, [`DEFAULT_KBPS`] or the family's highest below it.
pub(crate) fn choose_bitrate(rate: u32, requested: Option<u32>) -> Result<u32, AudioError> {
    let allowed = bitrates(rate);
    match requested {
        Some(kbps) if allowed.contains(&kbps) => Ok(kbps),
        Some(kbps) => Err(AudioError::Unsupported(format!(
            "mp3 at {rate} Hz cannot be {kbps} kbit/s (allowed: {})",
            allowed.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        ))),
        None => Ok(allowed.iter().copied().filter(|b| *b <= DEFAULT_KBPS).max().unwrap_or(DEFAULT_KBPS)),
    }
}

/// From this bitrate up LAME runs without noise shaping (`-q 7`); below it at its default (`-q 3`).
const FAST_FROM_KBPS: u32 = 96;

/// LAME's quality for a mono stream at `kbps` (see the module documentation).
fn quality(kbps: u32) -> Quality {
    if kbps >= FAST_FROM_KBPS {
        Quality::Ok
    } else {
        Quality::VeryNice
    }
}

fn lame_bitrate(kbps: u32) -> Option<Bitrate> {
    Some(match kbps {
        8 => Bitrate::Kbps8,
        16 => Bitrate::Kbps16,
        24 => Bitrate::Kbps24,
        32 => Bitrate::Kbps32,
        40 => Bitrate::Kbps40,
        48 => Bitrate::Kbps48,
        64 => Bitrate::Kbps64,
        80 => Bitrate::Kbps80,
        96 => Bitrate::Kbps96,
        112 => Bitrate::Kbps112,
        128 => Bitrate::Kbps128,
        160 => Bitrate::Kbps160,
        192 => Bitrate::Kbps192,
        224 => Bitrate::Kbps224,
        256 => Bitrate::Kbps256,
        320 => Bitrate::Kbps320,
        _ => return None,
    })
}

pub(crate) struct Mp3Encoder {
    lame: mp3lame_encoder::Encoder,
}

impl Mp3Encoder {
    /// `rate` and `kbps` must come from [`codec_rate`] and [`choose_bitrate`].
    pub(crate) fn new(rate: u32, kbps: u32) -> Result<Self, AudioError> {
        let setup = |e: mp3lame_encoder::BuildError| AudioError::Encode(format!("LAME setup failed: {e}"));
        let bitrate = lame_bitrate(kbps).ok_or_else(|| AudioError::Unsupported(format!("mp3 bitrate {kbps}")))?;
        let mut builder = Builder::new().ok_or_else(|| AudioError::Encode("LAME could not allocate".into()))?;
        builder.set_num_channels(1).map_err(setup)?;
        builder.set_mode(Mode::Mono).map_err(setup)?;
        builder.set_sample_rate(rate).map_err(setup)?;
        builder.set_output_sample_rate(NonZeroU32::new(rate)).map_err(setup)?;
        builder.set_vbr_mode(VbrMode::Off).map_err(setup)?;
        builder.set_brate(bitrate).map_err(setup)?;
        builder.set_quality(quality(kbps)).map_err(setup)?;
        builder.set_to_write_vbr_tag(false).map_err(setup)?;
        let lame = builder.build().map_err(setup)?;
        Ok(Self { lame })
    }
}

impl Encoder for Mp3Encoder {
    fn encode(&mut self, samples: &[i16]) -> Result<Vec<u8>, AudioError> {
        let mut out = Vec::with_capacity(max_required_buffer_size(samples.len()));
        self.lame
            .encode_to_vec(MonoPcm(samples), &mut out)
            .map_err(|e| AudioError::Encode(format!("LAME failed: {e}")))?;
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>, AudioError> {
        // LAME needs at most 7200 bytes to flush its last frames.
        let mut out = Vec::with_capacity(max_required_buffer_size(0));
        self.lame
            .flush_to_vec::<FlushGap>(&mut out)
            .map_err(|e| AudioError::Encode(format!("LAME flush failed: {e}")))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_round_up_to_mpeg_rates() {
        assert_eq!(codec_rate(8_000), 8_000);
        assert_eq!(codec_rate(10_000), 11_025);
        assert_eq!(codec_rate(22_050), 22_050);
        assert_eq!(codec_rate(40_000), 44_100);
        assert_eq!(codec_rate(48_000), 48_000);
    }

    #[test]
    fn generous_bitrates_skip_noise_shaping() {
        assert!(matches!(quality(128), Quality::Ok));
        assert!(matches!(quality(96), Quality::Ok));
        assert!(matches!(quality(64), Quality::VeryNice));
        assert!(matches!(quality(8), Quality::VeryNice));
    }

    #[test]
    fn bitrates_follow_the_rate_family() {
        assert_eq!(choose_bitrate(44_100, None).unwrap(), 128);
        assert_eq!(choose_bitrate(24_000, None).unwrap(), 128);
        assert_eq!(choose_bitrate(8_000, None).unwrap(), 64);
        assert_eq!(choose_bitrate(44_100, Some(320)).unwrap(), 320);
        assert!(matches!(choose_bitrate(24_000, Some(320)), Err(AudioError::Unsupported(_))));
        assert!(matches!(choose_bitrate(8_000, Some(128)), Err(AudioError::Unsupported(_))));
        assert!(matches!(choose_bitrate(48_000, Some(8)), Err(AudioError::Unsupported(_))));
    }
}
