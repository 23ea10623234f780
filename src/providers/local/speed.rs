//! `speed` (1.0 = normal, 2.0 = twice as fast: half the duration, as in OpenAI's API) to the
//! engine's rate in words per minute (80–450, normal 175).
//!
//! The rate is not proportional to speed: pauses and recorded consonants do not scale with it,
//! and above about 360 wpm the engine gets no faster (450 wpm is only 1.8x). So the mapping
//! follows speeds measured with this engine (`espeak-ng` 0.2.0, `en-us`, a 20-word sentence),
//! interpolated linearly; `tests/local_provider.rs` checks that the durations still follow it.
//! The accepted range is where the engine can really go: 0.5 to 1.75.

/// Accepted `speed` range.
pub(super) const RANGE: (f32, f32) = (0.5, 1.75);
pub(super) const NORMAL_WPM: i32 = 175;

/// (measured speed, rate in wpm), speed ascending.
const MEASURED: [(f32, f32); 11] = [
    (0.44, 80.0),
    (0.54, 100.0),
    (0.67, 120.0),
    (0.81, 140.0),
    (0.92, 160.0),
    (1.0, 175.0),
    (1.13, 200.0),
    (1.36, 250.0),
    (1.56, 300.0),
    (1.74, 350.0),
    (1.79, 360.0),
];

/// The rate for a speed; out-of-range speeds are clamped, a missing or non-finite one is normal.
pub(super) fn rate_wpm(speed: Option<f32>) -> i32 {
    let Some(speed) = speed.filter(|s| s.is_finite()) else { return NORMAL_WPM };
    let (lowest, highest) = (MEASURED[0], MEASURED[MEASURED.len() - 1]);
    let speed = speed.clamp(lowest.0, highest.0);
    let wpm = MEASURED.windows(2).find(|pair| speed <= pair[1].0).map_or(highest.1, |pair| {
        let ((s0, w0), (s1, w1)) = (pair[0], pair[1]);
        w0 + (w1 - w0) * (speed - s0) / (s1 - s0)
    });
    wpm.round() as i32
}

#[cfg(test)]
mod tests {
    use super::{rate_wpm, NORMAL_WPM};

    #[test]
    fn speed_maps_onto_the_measured_rates() {
        assert_eq!(rate_wpm(None), NORMAL_WPM);
        assert_eq!(rate_wpm(Some(1.0)), NORMAL_WPM);
        assert_eq!(rate_wpm(Some(f32::NAN)), NORMAL_WPM);
        assert_eq!(rate_wpm(Some(1.74)), 350);
        assert_eq!(rate_wpm(Some(0.1)), 80);
        assert_eq!(rate_wpm(Some(9.0)), 360);
        let mut last = 0;
        for tenth in 4..=18 {
            let wpm = rate_wpm(Some(tenth as f32 / 10.0));
            assert!(wpm >= last && (80..=450).contains(&wpm));
            last = wpm;
        }
    }
}
