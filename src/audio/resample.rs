//! Streaming sample-rate conversion with a Kaiser-windowed sinc (band-limited interpolation).
//!
//! Output sample `n` is the input signal evaluated at time `n * from / to` (in input samples) through
//! a low-pass kernel whose cutoff sits just below the lower of the two Nyquist frequencies. The kernel
//! is symmetric, so the output is not delayed relative to the input; the price is a look-ahead of
//! `half_width` input samples, which is why `process` holds a few samples back and `finish` flushes
//! them against silence. Because the filter state (the input history) carries across calls, chunk
//! boundaries are invisible in the output: splitting the input differently gives the same samples.
//!
//! The kernel is tabulated per fractional phase. `to / from` reduced by their gcd has `L` phases; for
//! the ratios that matter (24k→48k has 2, 24k→44.1k has 147) the table is exact. Rates that reduce
//! to more than [`MAX_PHASES`] phases use a table of that size and interpolate linearly between
//! neighbouring phases, as band-limited interpolators usually do.
//!
//! Total output length is `ceil(input_len * to / from)`, so a clip keeps its duration exactly.

use super::AudioError;

/// Zero crossings of the sinc on each side of the centre, at the lower of the two rates.
const ZERO_CROSSINGS: f64 = 24.0;
/// Cutoff as a fraction of the lower Nyquist frequency: passes speech bandwidth, stops aliases.
const CUTOFF: f64 = 0.91;
/// Kaiser window shape: about 80 dB of stop-band attenuation.
const KAISER_BETA: f64 = 8.0;
/// Largest phase table kept; rarer ratios interpolate between phases.
const MAX_PHASES: u64 = 1024;
/// Taps are padded to a multiple of this so the dot product vectorises.
const LANES: usize = 8;
/// Rates the resampler accepts, in Hz.
const RATE_RANGE: std::ops::RangeInclusive<u32> = 1_000..=384_000;

/// Streaming resampler, mono i16.
#[derive(Debug, Clone)]
pub struct Resampler {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Same rate in and out: samples pass through untouched.
    Identity,
    Sinc(Box<Sinc>),
}

#[derive(Debug, Clone)]
struct Sinc {
    /// `to / from` reduced: output step is `down / up` input samples.
    up: u64,
    down: u64,
    /// Kernel half-width in input samples; `taps` = 2 * half, rounded up to `LANES`.
    half: usize,
    taps: usize,
    /// Number of tabulated phases, and whether positions between them are interpolated.
    phases: u64,
    interpolate: bool,
    /// `(phases + 1) * taps` coefficients; row `p` is the kernel at fractional offset `p / phases`.
    table: Vec<f32>,
    /// Input samples from absolute index `history_start` on (negative indices are leading silence).
    history: Vec<f32>,
    history_start: i64,
    /// Input samples received so far.
    received: u64,
    /// Scratch row for interpolated coefficients (`taps` long when `interpolate`, else empty).
    row: Vec<f32>,
    /// Index of the next output sample, and its position in input samples: `centre + frac / up`
    /// (kept incrementally: a division per output sample costs as much as a quarter of the filter).
    next_out: u64,
    centre: u64,
    frac: u64,
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz. Both must be within 1 kHz..=384 kHz.
    pub fn new(from: u32, to: u32) -> Result<Self, AudioError> {
        for rate in [from, to] {
            if !RATE_RANGE.contains(&rate) {
                return Err(AudioError::Unsupported(format!(
                    "cannot resample at {rate} Hz (supported: {}..={} Hz)",
                    RATE_RANGE.start(),
                    RATE_RANGE.end()
                )));
            }
        }
        if from == to {
            return Ok(Self { kind: Kind::Identity });
        }
        Ok(Self { kind: Kind::Sinc(Box::new(Sinc::new(from, to))) })
    }

    /// Feeds `samples`; returns every output sample that no longer depends on future input.
    pub fn process(&mut self, samples: &[i16]) -> Vec<i16> {
        let mut out = Vec::new();
        self.process_into(samples, &mut out);
        out
    }

    /// [`Resampler::process`], appending to `out`: a caller that clears and reuses one buffer
    /// allocates nothing per chunk.
    pub fn process_into(&mut self, samples: &[i16], out: &mut Vec<i16>) {
        match &mut self.kind {
            Kind::Identity => out.extend_from_slice(samples),
            Kind::Sinc(sinc) => {
                sinc.push(samples);
                sinc.drain(false, out);
            }
        }
    }

    /// Flushes the samples held back for look-ahead (treating the future as silence) and resets the
    /// resampler, so it can start a new clip.
    pub fn finish(&mut self) -> Vec<i16> {
        let mut out = Vec::new();
        self.finish_into(&mut out);
        out
    }

    /// [`Resampler::finish`], appending to `out`.
    pub fn finish_into(&mut self, out: &mut Vec<i16>) {
        if let Kind::Sinc(sinc) = &mut self.kind {
            sinc.drain(true, out);
            sinc.reset();
        }
    }
}

impl Sinc {
    fn new(from: u32, to: u32) -> Self {
        let g = gcd(u64::from(from), u64::from(to));
        let (up, down) = (u64::from(to) / g, u64::from(from) / g);
        // Cutoff in cycles per input sample, relative to the input Nyquist (1.0 = input Nyquist).
        let fc = CUTOFF * (up as f64 / down as f64).min(1.0);
        let half = (ZERO_CROSSINGS / fc).ceil() as usize;
        let taps = (2 * half).div_ceil(LANES) * LANES;
        let (phases, interpolate) = if up <= MAX_PHASES { (up, false) } else { (MAX_PHASES, true) };
        let table = kernel_table(fc, half, taps, phases);
        let mut sinc = Self {
            up,
            down,
            half,
            taps,
            phases,
            interpolate,
            table,
            history: Vec::new(),
            history_start: 0,
            received: 0,
            row: if interpolate { vec![0.0; taps] } else { Vec::new() },
            next_out: 0,
            centre: 0,
            frac: 0,
        };
        sinc.reset();
        sinc
    }

    fn reset(&mut self) {
        // The first output needs `half - 1` samples before input index 0: they are silence.
        self.history.clear();
        self.history.resize(self.half - 1, 0.0);
        self.history_start = -(self.half as i64 - 1);
        self.received = 0;
        self.next_out = 0;
        self.centre = 0;
        self.frac = 0;
    }

    fn push(&mut self, samples: &[i16]) {
        self.history.extend(samples.iter().map(|s| f32::from(*s)));
        self.received += samples.len() as u64;
    }

    /// Produces outputs whose kernel window lies within the received input (or, at the end, every
    /// output whose position is before the end of the input, padding with silence).
    fn drain(&mut self, at_end: bool, out: &mut Vec<i16>) {
        if at_end {
            // Enough silence that every remaining output's window is covered.
            self.history.resize(self.history.len() + self.taps, 0.0);
        }
        let total_out = (self.received * self.up).div_ceil(self.down);
        out.reserve(usize::try_from(total_out.saturating_sub(self.next_out)).unwrap_or(0));
        // Interpolated rows are built here; exact tables never touch it.
        let mut row = std::mem::take(&mut self.row);
        let (step, step_frac) = (self.down / self.up, self.down % self.up);
        loop {
            let first = self.centre as i64 - (self.half as i64 - 1);
            if at_end {
                if self.next_out >= total_out {
                    break;
                }
            } else if first + self.taps as i64 > self.received as i64 {
                // The window reaches input that has not arrived yet.
                break;
            }
            let offset = usize::try_from(first - self.history_start).unwrap_or(0);
            let Some(window) = self.history.get(offset..offset + self.taps) else { break };
            let coeffs = self.coefficients(self.frac, &mut row);
            out.push(round_to_i16(dot(window, coeffs)));
            self.next_out += 1;
            self.centre += step;
            self.frac += step_frac;
            if self.frac >= self.up {
                self.frac -= self.up;
                self.centre += 1;
            }
        }
        // Forget input that no future output can reach.
        let next_first = self.centre as i64 - (self.half as i64 - 1);
        let drop = usize::try_from(next_first - self.history_start).unwrap_or(0).min(self.history.len());
        self.history.drain(..drop);
        self.history_start += drop as i64;
        self.row = row;
    }

    /// The kernel row for fractional position `frac / up`; `scratch` holds interpolated rows.
    fn coefficients<'a>(&'a self, frac: u64, scratch: &'a mut [f32]) -> &'a [f32] {
        if !self.interpolate {
            let start = frac as usize * self.taps;
            return &self.table[start..start + self.taps];
        }
        let position = frac as f64 * self.phases as f64 / self.up as f64;
        let lower = position.floor();
        let index = lower as usize;
        let weight = (position - lower) as f32;
        let a = &self.table[index * self.taps..(index + 1) * self.taps];
        let b = &self.table[(index + 1) * self.taps..(index + 2) * self.taps];
        for ((s, x), y) in scratch.iter_mut().zip(a).zip(b) {
            *s = x + (y - x) * weight;
        }
        scratch
    }
}

/// Rows `0..=phases` of the windowed-sinc kernel. Row `p` weighs inputs `centre - half + 1 ..=
/// centre + half` for an output at `centre + p / phases`; each row is normalised to unity DC gain.
fn kernel_table(fc: f64, half: usize, taps: usize, phases: u64) -> Vec<f32> {
    let mut table = Vec::with_capacity((phases as usize + 1) * taps);
    for p in 0..=phases {
        let frac = p as f64 / phases as f64;
        let mut row: Vec<f64> = (0..taps)
            .map(|k| {
                if k >= 2 * half {
                    return 0.0;
                }
                // Distance from this input to the output position, in input samples.
                let t = frac + (half as f64 - 1.0) - k as f64;
                windowed_sinc(t, fc, half as f64)
            })
            .collect();
        let sum: f64 = row.iter().sum();
        if sum.abs() > f64::EPSILON {
            row.iter_mut().for_each(|c| *c /= sum);
        }
        table.extend(row.into_iter().map(|c| c as f32));
    }
    table
}

fn windowed_sinc(t: f64, fc: f64, half: f64) -> f64 {
    let x = t / half;
    if x.abs() >= 1.0 {
        return 0.0;
    }
    let arg = std::f64::consts::PI * fc * t;
    let sinc = if arg.abs() < 1e-12 { 1.0 } else { arg.sin() / arg };
    fc * sinc * bessel_i0(KAISER_BETA * (1.0 - x * x).sqrt()) / bessel_i0(KAISER_BETA)
}

/// Modified Bessel function of the first kind, order 0 (power series; converges fast for β ≤ 20).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..64 {
        term *= q / (k as f64 * k as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// The same as `super::to_i16` for a filter output, without a call per sample to the C library's
/// `round` (which `f64::round` is on baseline x86-64, without SSE4.1). In f64, adding ±0.5 to an
/// f32 never rounds it across an integer, so truncating the sum rounds half away from zero as
/// `round` does; the cast saturates as the clamp did (NaN becomes 0, as before).
fn round_to_i16(value: f32) -> i16 {
    let value = f64::from(value);
    (value + 0.5f64.copysign(value)) as i16
}

/// Dot product in `LANES` independent accumulators so the compiler can vectorise it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for lane in 0..LANES {
            acc[lane] += x[lane] * y[lane];
        }
    }
    acc.iter().sum()
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::to_i16;

    fn sine(freq: f64, rate: u32, len: usize, amplitude: f64) -> Vec<i16> {
        (0..len)
            .map(|i| {
                (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin()).round() as i16
            })
            .collect()
    }

    fn rms(samples: &[i16]) -> f64 {
        (samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
    }

    fn run(from: u32, to: u32, input: &[i16], chunk: usize) -> Vec<i16> {
        let mut r = Resampler::new(from, to).unwrap();
        let mut out = Vec::new();
        for part in input.chunks(chunk.max(1)) {
            out.extend(r.process(part));
        }
        out.extend(r.finish());
        out
    }

    #[test]
    fn output_length_follows_the_ratio_exactly() {
        for (from, to) in [(24_000, 48_000), (24_000, 16_000), (44_100, 8_000), (22_050, 24_000), (47_999, 48_000)] {
            for len in [0usize, 1, 7, 1000, 24_001] {
                let input = sine(440.0, from, len, 8000.0);
                let out = run(from, to, &input, 333);
                let expected = (len as u64 * u64::from(to)).div_ceil(u64::from(from));
                assert_eq!(out.len() as u64, expected, "{from}->{to} len {len}");
            }
        }
    }

    #[test]
    fn chunking_does_not_change_the_output() {
        let input = sine(1000.0, 24_000, 5000, 12_000.0);
        let whole = run(24_000, 44_100, &input, input.len());
        for chunk in [1, 2, 3, 17, 480, 4999] {
            assert!(run(24_000, 44_100, &input, chunk) == whole, "chunk {chunk} changes the output");
        }
    }

    #[test]
    fn passband_tone_keeps_its_level_and_alias_is_removed() {
        // 3 kHz passes 48k -> 16k (Nyquist 8k) at unity gain.
        let out = run(48_000, 16_000, &sine(3000.0, 48_000, 48_000, 10_000.0), 1000);
        let level = rms(&out[1000..15_000]) / (10_000.0 / 2f64.sqrt());
        assert!((level - 1.0).abs() < 0.01, "gain {level}");
        // 11 kHz cannot exist at 16 kHz: it must be filtered out, not folded to 5 kHz.
        let out = run(48_000, 16_000, &sine(11_000.0, 48_000, 48_000, 10_000.0), 1000);
        let residue = 20.0 * (rms(&out[1000..15_000]) / (10_000.0 / 2f64.sqrt())).log10();
        assert!(residue < -60.0, "alias at {residue} dB");
    }

    #[test]
    fn interpolated_phase_tables_are_accurate() {
        // 47999 -> 48000 reduces to 48000 phases, above MAX_PHASES: the interpolated path.
        let input = sine(1000.0, 47_999, 20_000, 10_000.0);
        let out = run(47_999, 48_000, &input, 4096);
        let reference = sine(1000.0, 48_000, out.len(), 10_000.0);
        let err: f64 = out[500..19_000]
            .iter()
            .zip(&reference[500..19_000])
            .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
            .sum();
        let sig: f64 = reference[500..19_000].iter().map(|b| f64::from(*b).powi(2)).sum();
        let snr = 10.0 * (sig / err).log10();
        assert!(snr > 60.0, "snr {snr} dB");
    }

    #[test]
    fn rounding_matches_to_i16() {
        let mut values = vec![0.0f32, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, 0.49999997, -0.49999997, 32766.5, -32767.5];
        values.extend([32767.49, 32767.5, 40_000.0, -32768.49, -32768.5, -40_000.0, f32::MAX, f32::MIN, f32::NAN]);
        values.extend((-4000..4000).map(|i| i as f32 * 0.37 + 0.125));
        for v in values {
            assert_eq!(round_to_i16(v), to_i16(f64::from(v)), "{v}");
        }
    }

    #[test]
    fn identity_and_invalid_rates() {
        let mut r = Resampler::new(16_000, 16_000).unwrap();
        assert_eq!(r.process(&[1, 2, 3]), vec![1, 2, 3]);
        assert!(r.finish().is_empty());
        assert!(matches!(Resampler::new(0, 16_000), Err(AudioError::Unsupported(_))));
        assert!(matches!(Resampler::new(16_000, 1_000_000), Err(AudioError::Unsupported(_))));
    }

    #[test]
    fn finish_resets_for_a_new_clip() {
        let input = sine(700.0, 24_000, 2400, 9000.0);
        let mut r = Resampler::new(24_000, 16_000).unwrap();
        let mut first = r.process(&input);
        first.extend(r.finish());
        let mut second = r.process(&input);
        second.extend(r.finish());
        assert!(first == second, "second clip differs");
    }
}
