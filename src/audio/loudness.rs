//! Levelling clips against each other: integrated loudness measured by EBU R128 (the `ebur128`
//! crate), a gain that brings each clip to a common loudness, and a peak limiter that keeps the
//! result under a ceiling without changing its loudness more than its peaks need.
//!
//! Each clip's gain is decided from its own audio and the clips before it, never the ones after,
//! so a conversation can be sent while its later turns are still being made.

use ebur128::{EbuR128, Mode};

use super::to_i16;

/// The gating block of EBU R128: a clip shorter than this has no integrated loudness of its
/// own, so it is measured padded with silence to this length and the padding is accounted for.
const BLOCK_MS: u64 = 400;
/// Below this a clip counts as silent: nothing but noise floor to bring up.
const SILENT_LUFS: f64 = -60.0;
/// The most a clip is raised or lowered to match: beyond it, the clip is not speech at a
/// different level but something else (a click, a breath, a broken stream).
const MAX_GAIN_DB: f64 = 20.0;
/// How fast the limiter lets go after a peak, and how early it starts to reduce before one.
const RELEASE_SECS: f64 = 0.020;
const ATTACK_SECS: f64 = 0.002;
const FULL_SCALE: f64 = 32767.0;

/// How loud a clip is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// Integrated loudness in LUFS; `None` for silence (nothing above the absolute gate).
    pub loudness: Option<f64>,
    /// Highest |sample| in dBFS (`-inf` for digital silence).
    pub peak_dbfs: f64,
}

/// Measures a mono clip at `rate`.
pub fn measure(samples: &[i16], rate: u32) -> Level {
    let peak = samples.iter().map(|s| i32::from(*s).unsigned_abs()).max().unwrap_or(0);
    let peak_dbfs = 20.0 * (f64::from(peak) / FULL_SCALE).log10();
    Level { loudness: integrated(samples, rate), peak_dbfs }
}

fn integrated(samples: &[i16], rate: u32) -> Option<f64> {
    if samples.is_empty() || rate == 0 {
        return None;
    }
    let mut meter = EbuR128::new(1, rate, Mode::I).ok()?;
    meter.add_frames_i16(samples).ok()?;
    let block = usize::try_from(u64::from(rate) * BLOCK_MS / 1000).ok()?;
    // Zero padding keeps the clip's energy and spreads it over a whole block: the measured
    // loudness drops by exactly 10·log10(block / length), which is added back.
    let correction = if samples.len() < block {
        meter.add_frames_i16(&vec![0; block - samples.len()]).ok()?;
        10.0 * (block as f64 / samples.len() as f64).log10()
    } else {
        0.0
    };
    let loudness = meter.loudness_global().ok()?;
    (loudness.is_finite() && loudness > SILENT_LUFS).then_some(loudness + correction)
}

/// Brings clips, in order, to one loudness. The first clip of at least one gating block (400 ms)
/// with a measurable loudness sets the target; with `volume_dbfs` the target is chosen so that
/// clip peaks exactly there, and every clip is kept under it. Without it, clips are only kept
/// from clipping. Gains are bounded to ±20 dB. Clips before the target is set, and silent
/// ones, keep their level.
#[derive(Debug, Clone, Copy)]
pub struct Leveler {
    target: Option<f64>,
    volume_dbfs: Option<f32>,
}

/// What levelling did to one clip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Applied {
    /// The gain asked for, in dB.
    pub gain_db: f64,
    /// How far the limiter had to go below that gain at the loudest peak, in dB (0 when it did
    /// nothing).
    pub limited_db: f64,
}

impl Leveler {
    pub fn new(volume_dbfs: Option<f32>) -> Self {
        Self { target: None, volume_dbfs }
    }

    /// Levels the next clip in place.
    pub fn apply(&mut self, samples: &mut [i16], level: Level, rate: u32) -> Applied {
        let ceiling = self.volume_dbfs.map_or(0.0, f64::from);
        let whole_block = samples.len() as u64 * 1000 >= u64::from(rate) * BLOCK_MS;
        if let (None, Some(loudness), true) = (self.target, level.loudness, whole_block) {
            self.target = Some(match self.volume_dbfs {
                Some(volume) => loudness + f64::from(volume) - level.peak_dbfs,
                None => loudness,
            });
        }
        let gain_db = match (self.target, level.loudness) {
            (Some(target), Some(loudness)) => (target - loudness).clamp(-MAX_GAIN_DB, MAX_GAIN_DB),
            _ => 0.0,
        };
        let limited_db = limit(samples, gain_db, ceiling, rate);
        Applied { gain_db, limited_db }
    }
}

/// Applies `gain_db`, reducing it smoothly around any sample that would pass `ceiling_dbfs`.
/// Returns how far below `gain_db` the deepest reduction went. The gain curve is the lowest of
/// what each sample allows, smoothed forward (release) and backward (attack): both passes only
/// lower it, so no sample ever passes the ceiling.
fn limit(samples: &mut [i16], gain_db: f64, ceiling_dbfs: f64, rate: u32) -> f64 {
    let gain = 10f64.powf(gain_db / 20.0);
    let exact = FULL_SCALE * 10f64.powf(ceiling_dbfs.min(0.0) / 20.0);
    // Rounding must not carry a sample past the ceiling either.
    let ceiling = exact.floor();
    let peak = samples.iter().map(|s| f64::from(*s).abs()).fold(0.0, f64::max);
    // A gain chosen to put the peak exactly on the ceiling must not wake the limiter.
    if peak * gain <= exact * (1.0 + 1e-9) {
        if (gain - 1.0).abs() > 1e-9 {
            samples.iter_mut().for_each(|s| *s = to_i16((f64::from(*s) * gain).clamp(-ceiling, ceiling)));
        }
        return 0.0;
    }
    // The gain curve, as f32 (half the memory of the clip's own f64 copy): what each sample
    // allows, then smoothed.
    let allowed = |s: i16| {
        let magnitude = f64::from(s).abs();
        (if magnitude * gain > ceiling { ceiling / magnitude } else { gain }) as f32
    };
    let mut curve: Vec<f32> = samples.iter().map(|s| allowed(*s)).collect();
    let step = |secs: f64| (1.0 - (-1.0 / (secs * f64::from(rate.max(1)))).exp()) as f32;
    let (release, attack, full) = (step(RELEASE_SECS), step(ATTACK_SECS), gain as f32);
    for i in 1..curve.len() {
        let recovered = curve[i - 1] + (full - curve[i - 1]) * release;
        curve[i] = curve[i].min(recovered);
    }
    for i in (0..curve.len().saturating_sub(1)).rev() {
        let recovered = curve[i + 1] + (full - curve[i + 1]) * attack;
        curve[i] = curve[i].min(recovered);
    }
    let deepest = f64::from(curve.iter().copied().fold(full, f32::min));
    for (sample, g) in samples.iter_mut().zip(&curve) {
        *sample = to_i16((f64::from(*sample) * f64::from(*g)).clamp(-ceiling, ceiling));
    }
    20.0 * (gain / deepest).log10()
}

/// Raised-cosine fades of `ms` at both ends, so that a clip starts and ends at zero and no join
/// clicks, whatever the provider's first and last samples were.
pub fn fade_edges(samples: &mut [i16], rate: u32, ms: u32) {
    let n = usize::try_from(u64::from(rate) * u64::from(ms) / 1000).unwrap_or(0).min(samples.len() / 2);
    for i in 0..n {
        let w = 0.5 - 0.5 * (std::f64::consts::PI * i as f64 / n as f64).cos();
        let last = samples.len() - 1 - i;
        samples[i] = to_i16(f64::from(samples[i]) * w);
        samples[last] = to_i16(f64::from(samples[last]) * w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, seconds: f64, amplitude: f64, freq: f64) -> Vec<i16> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .map(|i| to_i16(amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin()))
            .collect()
    }

    fn lufs(samples: &[i16], rate: u32) -> f64 {
        measure(samples, rate).loudness.unwrap_or(f64::NEG_INFINITY)
    }

    #[test]
    fn quiet_and_loud_clips_come_out_equally_loud() {
        let rate = 24_000;
        let mut leveler = Leveler::new(None);
        let mut first = tone(rate, 2.0, 8_000.0, 440.0);
        let mut second = tone(rate, 2.0, 1_000.0, 660.0);
        let mut third = tone(rate, 2.0, 30_000.0, 300.0);
        let reference = lufs(&first, rate);
        for clip in [&mut first, &mut second, &mut third] {
            let level = measure(clip, rate);
            leveler.apply(clip, level, rate);
        }
        for clip in [&first, &second, &third] {
            assert!((lufs(clip, rate) - reference).abs() < 0.5, "{} vs {reference}", lufs(clip, rate));
        }
    }

    #[test]
    fn short_clips_are_measured_as_loud_as_long_ones() {
        let rate = 16_000;
        let long = lufs(&tone(rate, 3.0, 10_000.0, 500.0), rate);
        let short = lufs(&tone(rate, 0.25, 10_000.0, 500.0), rate);
        assert!((long - short).abs() < 0.5, "{short} vs {long}");
        assert_eq!(measure(&vec![0; 8_000], rate).loudness, None);
        assert_eq!(measure(&tone(rate, 1.0, 20.0, 500.0), rate).loudness, None, "-64 dBFS is noise floor");
        assert_eq!(measure(&[], rate).loudness, None);
    }

    #[test]
    fn volume_sets_the_first_peak_and_the_limiter_holds_the_rest_under_it() {
        let rate = 24_000;
        let mut leveler = Leveler::new(Some(-6.0));
        let ceiling = (FULL_SCALE * 10f64.powf(-6.0 / 20.0)).floor();
        let mut first = tone(rate, 1.0, 10_000.0, 440.0);
        let level = measure(&first, rate);
        assert!(leveler.apply(&mut first, level, rate).limited_db < 1e-9);
        let peak = first.iter().map(|s| f64::from(*s).abs()).fold(0.0, f64::max);
        assert!((peak - ceiling).abs() <= 1.0, "{peak} vs {ceiling}");
        // A clip with a much higher crest factor: its loudness asks for more gain than its
        // peaks can take; the limiter takes the peaks down and nothing passes the ceiling.
        let mut spiky = tone(rate, 1.0, 2_000.0, 440.0);
        for i in (0..spiky.len()).step_by(12_000) {
            spiky[i] = 12_000;
        }
        let level = measure(&spiky, rate);
        let applied = leveler.apply(&mut spiky, level, rate);
        assert!(applied.limited_db > 1.0, "{applied:?}");
        assert!(spiky.iter().all(|s| f64::from(*s).abs() <= ceiling));
        let (a, b) = (lufs(&spiky, rate), lufs(&first, rate));
        assert!((a - b).abs() < 1.0, "{a} vs {b}");
    }

    #[test]
    fn silence_sets_no_target() {
        let rate = 8_000;
        let mut leveler = Leveler::new(None);
        let mut silence = vec![0i16; 8_000];
        let level = measure(&silence, rate);
        assert_eq!(leveler.apply(&mut silence, level, rate).gain_db, 0.0);
        let mut clip = tone(rate, 1.0, 5_000.0, 440.0);
        let before = clip.clone();
        let level = measure(&clip, rate);
        assert_eq!(leveler.apply(&mut clip, level, rate).gain_db, 0.0);
        assert_eq!(clip, before, "the first measurable clip is the reference, untouched");
    }

    #[test]
    fn a_click_sets_no_target_and_gains_are_bounded() {
        let rate = 24_000;
        let mut leveler = Leveler::new(None);
        let mut click = vec![0i16; 2_400];
        click[100] = 30_000;
        let level = measure(&click, rate);
        assert!(level.loudness.is_some(), "a loud click has a loudness");
        assert_eq!(leveler.apply(&mut click, level, rate).gain_db, 0.0);
        let mut speech = tone(rate, 1.0, 3_000.0, 440.0);
        let before = speech.clone();
        let level = measure(&speech, rate);
        assert_eq!(leveler.apply(&mut speech, level, rate).gain_db, 0.0, "the first whole clip is the reference");
        assert_eq!(speech, before);
        let mut whisper = tone(rate, 1.0, 100.0, 440.0);
        let level = measure(&whisper, rate);
        assert_eq!(leveler.apply(&mut whisper, level, rate).gain_db, MAX_GAIN_DB, "raised by at most 20 dB");
    }

    #[test]
    fn fades_start_and_end_at_zero() {
        let mut clip = vec![20_000i16; 1_000];
        fade_edges(&mut clip, 24_000, 5);
        assert_eq!((clip[0], clip[999]), (0, 0));
        assert_eq!(clip[500], 20_000);
        assert!(clip.windows(2).take(120).all(|w| w[1] >= w[0]));
    }
}
