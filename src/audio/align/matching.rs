//! Word boundaries matched to pauses, and words spread over the speech between them.

use super::*;

/// The words laid over the speech: their expected durations and the pause candidates.
pub(super) struct Plan<'a> {
    activity: &'a Activity,
    words: &'a [Word<'a>],
    units: Vec<f64>,
    /// Speech time (time with the pauses taken out) at each pause.
    pause_at: Vec<f64>,
    /// Speech time of the whole clip.
    speech: f64,
}

/// Part of the alignment: words `first..=last`, from speech time `from` to `to`, with the pauses
/// `pauses` (indices into the activity's) inside.
#[derive(Debug, Clone)]
pub(super) struct Stretch {
    first: usize,
    last: usize,
    from: f64,
    to: f64,
    pauses: Range<usize>,
}

/// A word boundary (the one after word `.0`) matched to a pause (index `.1`).
pub(super) type Anchor = (usize, usize);

/// What a word boundary is like, for the pause a speaker makes there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gap {
    /// A sentence ends: a long pause.
    Sentence,
    /// A comma: a pause, usually.
    Comma,
    /// No punctuation, but a conjunction follows: maybe a pause, as at a comma.
    Clause,
    /// No punctuation, but a stop consonant follows: maybe its closure's short silence.
    Stop,
    /// Anything else: rarely a pause.
    Plain,
}

impl Gap {
    fn after(word: &Word, next: &Word) -> Self {
        match word.boundary {
            Boundary::Sentence => Self::Sentence,
            Boundary::Comma => Self::Comma,
            Boundary::None if opens_clause(next.text) => Self::Clause,
            Boundary::None if starts_with_stop(next.text) => Self::Stop,
            Boundary::None => Self::Plain,
        }
    }
}

impl<'a> Plan<'a> {
    pub(super) fn new(activity: &'a Activity, words: &'a [Word<'a>], units: Vec<f64>) -> Self {
        let mut pause_at = Vec::with_capacity(activity.pauses.len());
        let mut silent = 0.0;
        for &(start, end) in &activity.pauses {
            pause_at.push(start - activity.start - silent);
            silent += end - start;
        }
        let speech = (activity.end - activity.start - silent).max(0.0);
        Self { activity, words, units, pause_at, speech }
    }

    /// The confident matches of a pass over the whole clip, then every match of a pass between
    /// each two of them, in order.
    pub(super) fn anchors(&self) -> Vec<Anchor> {
        let whole = Stretch {
            first: 0,
            last: self.words.len() - 1,
            from: 0.0,
            to: self.speech,
            pauses: 0..self.pause_at.len(),
        };
        let confident: Vec<Anchor> = self
            .align(&whole)
            .into_iter()
            .filter(|&(k, j)| {
                let (start, end) = self.activity.pauses[j];
                self.words[k].boundary != Boundary::None || end - start >= ANCHOR_PAUSE_SECS
            })
            .collect();
        let mut all = Vec::with_capacity(confident.len() * 2);
        let mut next = (0, 0.0, 0);
        for anchor in confident.iter().copied().map(Some).chain([None]) {
            let (first, from, first_pause) = next;
            let stretch = match anchor {
                Some((k, j)) => Stretch { first, last: k, from, to: self.pause_at[j], pauses: first_pause..j },
                None => Stretch { first, last: whole.last, from, to: whole.to, pauses: first_pause..whole.pauses.end },
            };
            all.extend(self.align(&stretch));
            if let Some((k, j)) = anchor {
                all.push((k, j));
                next = (k + 1, self.pause_at[j], j + 1);
            }
        }
        all
    }

    /// The cheapest monotone matching of the word boundaries inside `stretch` to its pauses.
    fn align(&self, stretch: &Stretch) -> Vec<Anchor> {
        let boundaries = stretch.last.saturating_sub(stretch.first);
        let pauses = stretch.pauses.clone();
        if boundaries == 0 || pauses.is_empty() {
            return Vec::new();
        }
        // The expected place of each boundary, and how uncertain it is: the variance of the
        // summed duration errors since the stretch's start, pinned to zero at its end.
        let units = &self.units[stretch.first..=stretch.last];
        let total_units: f64 = units.iter().sum::<f64>().max(1e-9);
        let length = stretch.to - stretch.from;
        let seconds: Vec<f64> = units.iter().map(|u| u / total_units * length).collect();
        let variance_total: f64 = seconds.iter().map(|s| (DURATION_SPREAD * s).powi(2)).sum();
        let (mut place, mut sigma) = (Vec::with_capacity(boundaries), Vec::with_capacity(boundaries));
        let (mut elapsed, mut variance) = (stretch.from, 0.0);
        for s in &seconds[..boundaries] {
            elapsed += s;
            variance += (DURATION_SPREAD * s).powi(2);
            place.push(elapsed);
            let bridge =
                if variance_total > 0.0 { variance * (variance_total - variance) / variance_total } else { 0.0 };
            sigma.push((MIN_SIGMA_SECS * MIN_SIGMA_SECS + bridge.max(0.0)).sqrt());
        }
        let at = &self.pause_at[pauses.clone()];
        let lengths: Vec<f64> = self.activity.pauses[pauses.clone()].iter().map(|(s, e)| e - s).collect();
        let Some(band) = band(&place, &sigma, at) else { return Vec::new() };

        let gaps: Vec<Gap> =
            (stretch.first..stretch.last).map(|k| Gap::after(&self.words[k], &self.words[k + 1])).collect();
        let missed = |k: usize| match gaps[k] {
            Gap::Sentence => MISS_SENTENCE,
            Gap::Comma => MISS_COMMA,
            Gap::Clause | Gap::Stop | Gap::Plain => 0.0,
        };
        let unmatched = |j: usize| (lengths[j] / INSIDE_WORD_SECS).min(INSIDE_WORD_MAX);
        let shortfall = |least: f64, length: f64| (least - length).max(0.0) / SHORTFALL_SECS;
        let matched = |k: usize, j: usize| {
            let z = (at[j] - place[k]) / sigma[k];
            let position = 0.5 * (POSITION_TAILS + 1.0) * (z * z / POSITION_TAILS).ln_1p();
            let length = match gaps[k] {
                Gap::Sentence => shortfall(SENTENCE_PAUSE_SECS, lengths[j]),
                Gap::Comma => shortfall(COMMA_PAUSE_SECS, lengths[j]),
                Gap::Clause => CLAUSE_PAUSE + shortfall(COMMA_PAUSE_SECS, lengths[j]),
                Gap::Stop => lengths[j] / PLAIN_PAUSE_SECS,
                Gap::Plain => lengths[j] / PLAIN_PAUSE_SECS + NO_STOP,
            };
            position + length
        };
        cheapest_matching(&band, matched, missed, unmatched)
            .into_iter()
            .map(|(k, j)| (stretch.first + k, pauses.start + j))
            .collect()
    }

    /// Each word's (start, end) in seconds: between consecutive anchors, words share the speech
    /// in proportion to their expected durations.
    pub(super) fn place(&self, anchors: &[Anchor]) -> Vec<(f64, f64)> {
        let pauses = &self.activity.pauses;
        let mut out = Vec::with_capacity(self.words.len());
        // Each stretch runs from the speech's start or an anchor pause's end to the next anchor
        // pause's start or the speech's end, over the pauses between.
        let (mut first, mut from, mut first_pause) = (0, self.activity.start, 0);
        for anchor in anchors.iter().copied().map(Some).chain([None]) {
            let (last, to, end_pause) = match anchor {
                Some((k, j)) => (k, pauses[j].0, j),
                None => (self.words.len() - 1, self.activity.end, pauses.len()),
            };
            if last < first || end_pause < first_pause {
                continue;
            }
            out.extend(spread(&self.units[first..=last], from, to, &pauses[first_pause..end_pause]));
            if let Some((_, j)) = anchor {
                from = pauses[j].1;
                first_pause = j + 1;
            }
            first = last + 1;
        }
        out
    }
}

/// The band of the alignment table worth filling, as the range of pause counts `j` for each
/// boundary count `k` (a cell is "the first `k` boundaries and the first `j` pauses consumed").
/// A boundary only matches pauses within its window, so a cheapest matching has a path that
/// skips, in row `k`, the pauses before boundary `k`'s match, or, when `k` has none, the pauses
/// no later boundary can reach. Row `k` therefore runs from where such a path can enter it (a
/// step down past the pauses out of reach of boundaries `k..`, or a match of boundary `k - 1`)
/// to where it can leave it (a match of a boundary up to `k`, or past the pauses out of reach of
/// boundaries `k + 1..`). `None` when the band is too big.
pub(super) fn band(place: &[f64], sigma: &[f64], at: &[f64]) -> Option<Vec<Range<usize>>> {
    let (n, m) = (place.len(), at.len());
    let window = |k: usize| WINDOW_SIGMAS * sigma[k] + WINDOW_MIN_SECS;
    // Pauses before any boundary from `k` on can reach: `out_of_reach[k]`.
    let mut reach_low = vec![f64::INFINITY; n + 1];
    for k in (0..n).rev() {
        reach_low[k] = reach_low[k + 1].min(place[k] - window(k));
    }
    let out_of_reach: Vec<usize> = reach_low.iter().map(|&r| at.partition_point(|&a| a < r)).collect();
    let mut rows: Vec<Range<usize>> = Vec::with_capacity(n + 1);
    let mut reach_high = f64::NEG_INFINITY;
    let mut cells = 0;
    for k in 0..=n {
        let lo = match k {
            0 => 0,
            // The first pause boundary k - 1 can match, plus one.
            _ => out_of_reach[k].min(at.partition_point(|&a| a < place[k - 1] - window(k - 1)) + 1),
        };
        let hi = if k == n {
            m
        } else {
            reach_high = reach_high.max(place[k] + window(k));
            at.partition_point(|&a| a <= reach_high).max(out_of_reach[k + 1])
        };
        let hi = hi.max(lo);
        cells += hi - lo + 1;
        if cells > MAX_CELLS {
            return None;
        }
        rows.push(lo..hi + 1);
    }
    Some(rows)
}

/// Dynamic programming over the band: `cost[k][j]` is the cheapest way to consume the first `k`
/// boundaries and the first `j` pauses, by matching a boundary to a pause, leaving a boundary
/// without one (`missed`) or a pause without one (`unmatched`). Returns the matches of the
/// cheapest way to consume all of them, as (boundary, pause), in order.
pub(super) fn cheapest_matching(
    band: &[Range<usize>],
    matched: impl Fn(usize, usize) -> f64,
    missed: impl Fn(usize) -> f64,
    unmatched: impl Fn(usize) -> f64,
) -> Vec<Anchor> {
    #[derive(Clone, Copy, PartialEq)]
    enum Step {
        Start,
        SkipPause,
        SkipBoundary,
        Match,
    }
    let mut steps: Vec<Vec<Step>> = Vec::with_capacity(band.len());
    let mut previous: Vec<f64> = Vec::new();
    for (k, row) in band.iter().enumerate() {
        let mut cost = vec![f64::INFINITY; row.len()];
        let mut step = vec![Step::Start; row.len()];
        let above = |j: usize| {
            k.checked_sub(1)
                .and_then(|p| band[p].contains(&j).then(|| previous[j - band[p].start]))
                .unwrap_or(f64::INFINITY)
        };
        for j in row.clone() {
            let here = j - row.start;
            let mut best = (if k == 0 && j == 0 { 0.0 } else { f64::INFINITY }, Step::Start);
            let mut consider = |c: f64, s: Step| {
                if c < best.0 {
                    best = (c, s);
                }
            };
            if here > 0 {
                consider(cost[here - 1] + unmatched(j - 1), Step::SkipPause);
            }
            if k > 0 {
                consider(above(j) + missed(k - 1), Step::SkipBoundary);
                if j > 0 {
                    consider(above(j - 1) + matched(k - 1, j - 1), Step::Match);
                }
            }
            (cost[here], step[here]) = best;
        }
        steps.push(step);
        previous = cost;
    }
    let (Some(last), Some(end)) = (band.last(), previous.last()) else { return Vec::new() };
    if !end.is_finite() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let (mut k, mut j) = (band.len() - 1, last.end - 1);
    while let Some(step) = steps.get(k).and_then(|row| row.get(j.wrapping_sub(band[k].start))) {
        match step {
            Step::Match if k > 0 && j > 0 => {
                out.push((k - 1, j - 1));
                k -= 1;
                j -= 1;
            }
            Step::SkipBoundary if k > 0 => k -= 1,
            Step::SkipPause if j > 0 => j -= 1,
            _ => break,
        }
    }
    out.reverse();
    out
}

/// Words of expected durations `units` over the speech from `from` to `to` (seconds), skipping
/// the pauses `inside`: a word starts after a pause and ends before one.
pub(super) fn spread(units: &[f64], from: f64, to: f64, inside: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let silent: f64 = inside.iter().map(|(s, e)| e - s).sum();
    let speech = (to - from - silent).max(0.0);
    let total: f64 = units.iter().sum();
    // Speech time to real time; a time on a pause's edge is after the pause for a start,
    // before it for an end.
    let real = |x: f64, start: bool| {
        let mut t = from + x;
        for &(pause_start, pause_end) in inside {
            if pause_start < t || (start && pause_start <= t) {
                t += pause_end - pause_start;
            } else {
                break;
            }
        }
        t.min(to.max(from))
    };
    let share = |done: f64| if total > 0.0 { speech * done / total } else { 0.0 };
    let mut done = 0.0;
    units
        .iter()
        .map(|u| {
            let start = real(share(done), true);
            done += u;
            (start, real(share(done), false).max(start))
        })
        .collect()
}

/// Moves each boundary between two words spoken without a pause to the deepest energy dip
/// within `SNAP_SECS`: the word before ends where the dip begins, the word after starts where it
/// ends (a consonant's closure or a quiet onset belongs to neither).
pub(super) fn snap_to_dips(spans: &mut [(f64, f64)], levels: &[f64], block: f64) {
    if levels.is_empty() || block <= 0.0 {
        return;
    }
    // Levels smoothed over three blocks, so that one quiet block is not a dip.
    let smooth: Vec<f64> = (0..levels.len())
        .map(|i| {
            let part = &levels[i.saturating_sub(1)..(i + 2).min(levels.len())];
            part.iter().sum::<f64>() / part.len() as f64
        })
        .collect();
    for k in 1..spans.len() {
        let (before, after) = (spans[k - 1], spans[k]);
        // Only boundaries inside the speech between words that take time: at a pause, the
        // words already stop and start at its edges.
        if after.0 != before.1 || before.1 - before.0 < MIN_WORD_SECS || after.1 - after.0 < MIN_WORD_SECS {
            continue;
        }
        let low = (before.1 - SNAP_SECS).max(before.0 + MIN_WORD_SECS);
        let high = (before.1 + SNAP_SECS).min(after.1 - MIN_WORD_SECS);
        let (first, last) = ((low / block).ceil() as usize, ((high / block).floor() as usize).min(smooth.len() - 1));
        if high <= low || last <= first {
            continue;
        }
        let Some(deepest) = (first..=last).min_by(|&a, &b| smooth[a].total_cmp(&smooth[b])) else { continue };
        let in_dip = |i: usize| smooth[i] < smooth[deepest] + DIP_DB;
        let mut dip_start = deepest;
        while dip_start > first && in_dip(dip_start - 1) {
            dip_start -= 1;
        }
        let mut dip_end = deepest + 1;
        while dip_end <= last && in_dip(dip_end) {
            dip_end += 1;
        }
        let end = (dip_start as f64 * block).clamp(low, high);
        let start = (dip_end as f64 * block).clamp(end, high);
        spans[k - 1].1 = end;
        spans[k].0 = start;
    }
}
