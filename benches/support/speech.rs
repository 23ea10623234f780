//! Synthetic speech for fake providers to send: shared by the benchmarks and the load harness
//! (`bench/`), which includes this file by path.

/// Voiced harmonics on a gliding 90–220 Hz pitch with a syllable-rate envelope, and bursts of noise
/// standing in for fricatives: enough structure that the codecs do realistic work.
pub fn speech_like(rate: u32, seconds: u32) -> Vec<i16> {
    let len = (rate * seconds) as usize;
    let mut phase = 0.0f64;
    let mut noise = 0x9E37_79B9u32;
    (0..len)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let pitch = 155.0 + 65.0 * (t * 0.7).sin();
            phase += std::f64::consts::TAU * pitch / f64::from(rate);
            let voiced: f64 = (1..=12).map(|h| (phase * f64::from(h)).sin() / f64::from(h)).sum();
            let syllable = (t * 4.0 * std::f64::consts::PI).sin().abs();
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            let hiss = f64::from(noise) / f64::from(u32::MAX) - 0.5;
            let fricative = if (t * 1.3).fract() > 0.8 { hiss * 0.6 } else { 0.0 };
            (8000.0 * (voiced * syllable * 0.6 + fricative)).round() as i16
        })
        .collect()
}
