//! Where the speech is, and its pauses: short-time energy against the clip's own noise floor and
//! speech level.

use super::*;

/// Where the speech is: from `start` to `end` (seconds), with pauses in between.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Activity {
    pub(super) start: f64,
    pub(super) end: f64,
    /// Silences inside the speech, in order, as (start, end) in seconds.
    pub(super) pauses: Vec<(f64, f64)>,
}

pub(super) fn block_len(rate: u32) -> usize {
    ((f64::from(rate) * BLOCK_SECS).round() as usize).max(1)
}

pub(super) fn block_secs(rate: u32) -> f64 {
    block_len(rate) as f64 / f64::from(rate.max(1))
}

/// Level of each block, in dBFS, floored at `FLOOR_DB`.
pub(super) fn levels(samples: &[i16], rate: u32) -> Vec<f64> {
    samples
        .chunks(block_len(rate))
        .map(|chunk| {
            let energy: f64 = chunk.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
            let mean = energy / chunk.len() as f64 / (32768.0 * 32768.0);
            (10.0 * mean.max(1e-12).log10()).max(FLOOR_DB)
        })
        .collect()
}

/// Finds speech and pauses; `None` when nothing stands out from the noise floor (silence, or a
/// steady sound without pauses).
pub(super) fn detect(samples: &[i16], rate: u32, levels: &[f64]) -> Option<Activity> {
    let block = block_len(rate);
    let mut sorted = levels.to_vec();
    sorted.sort_by(f64::total_cmp);
    let quantile =
        |q: f64| sorted.get((sorted.len().saturating_sub(1) as f64 * q) as usize).copied().unwrap_or(FLOOR_DB);
    let (noise, speech) = (quantile(NOISE_QUANTILE), quantile(SPEECH_QUANTILE));
    if speech - noise < MIN_DYNAMIC_DB {
        return None;
    }
    let threshold = noise + THRESHOLD_FRACTION * (speech - noise);
    let mut loud: Vec<bool> = levels.iter().map(|l| *l >= threshold).collect();
    let blocks_of = |secs: f64| ((secs / BLOCK_SECS).round() as usize).max(1);
    // Clicks out, then short gaps in.
    fill_short_runs(&mut loud, true, blocks_of(MIN_SOUND_SECS));
    fill_short_runs(&mut loud, false, blocks_of(MIN_PAUSE_SECS));
    let first = loud.iter().position(|l| *l)?;
    let last = loud.iter().rposition(|l| *l)?;

    // Block edges are refined to the sample: the first and the last sample around each edge
    // whose magnitude passes the threshold (taken as an amplitude).
    let amplitude = 10f64.powf(threshold / 20.0) * 32768.0;
    let is_loud = |s: &i16| f64::from(*s).abs() >= amplitude;
    let slice = |from: usize, to: usize| {
        let to = to.min(samples.len());
        let from = from.min(to);
        (from, &samples[from..to])
    };
    // The first loud sample in [from, to), else `to`.
    let onset = |from: usize, to: usize| {
        let (from, part) = slice(from, to);
        part.iter().position(is_loud).map_or(from + part.len(), |i| from + i)
    };
    // Just after the last loud sample in [from, to), else `from`.
    let offset = |from: usize, to: usize| {
        let (from, part) = slice(from, to);
        part.iter().rposition(is_loud).map_or(from, |i| from + i + 1)
    };
    let seconds = |sample: usize| sample as f64 / f64::from(rate);
    let start = onset(first.saturating_sub(1) * block, (first + 1) * block);
    let end = offset(last * block, (last + 2) * block).max(start);
    let mut pauses = Vec::new();
    let mut i = first;
    while i <= last {
        if loud[i] {
            i += 1;
            continue;
        }
        // Blocks i..resume are silent, and `resume` (at most `last`) is loud again.
        let resume = (i..=last).find(|&j| loud[j]).unwrap_or(last);
        let pause_start = offset(i.saturating_sub(1) * block, (i + 1) * block);
        let pause_end = onset(resume.saturating_sub(1) * block, (resume + 1) * block);
        if pause_end > pause_start {
            pauses.push((seconds(pause_start), seconds(pause_end)));
        }
        i = resume.max(i + 1);
    }
    Some(Activity { start: seconds(start), end: seconds(end), pauses })
}

/// Turns runs of `value` shorter than `min` blocks, between runs of the other value, into the
/// other value. Runs at either end are left alone: they are the clip's edges, not gaps.
pub(super) fn fill_short_runs(flags: &mut [bool], value: bool, min: usize) {
    let mut i = 0;
    while i < flags.len() {
        if flags[i] != value {
            i += 1;
            continue;
        }
        let end = (i..flags.len()).find(|&j| flags[j] != value).unwrap_or(flags.len());
        if i > 0 && end < flags.len() && end - i < min {
            flags[i..end].iter_mut().for_each(|f| *f = !value);
        }
        i = end;
    }
}
