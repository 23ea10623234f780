//! Word timings from the engine's word marks.
//!
//! The engine reports where each *spoken* word starts, not where it ends, and its spoken words
//! are not always the text's words: a dash or a quote can open an empty one, the end of a clause
//! opens one after the last word, `&` is spoken inside its neighbour, an acronym may be spelt out.
//! So each mark opens a segment that runs to the next mark; a segment is narrowed to its audible
//! part (the pause after a word is not part of it), silent segments are dropped and slivers are
//! merged into their neighbour. The segments are then matched to the text's words: one to one
//! when each word got the spoken words expected of it (`text::parts`) or the counts agree (the
//! usual cases), otherwise by a small monotone alignment in which one word may take several
//! segments or several words may share one, choosing the grouping whose segment counts and
//! durations best fit the words. The result is always in order and inside the sentence's audio.

use std::ops::Range;

use super::text;

/// Samples quieter than this (about -42 dBFS) count as silence; the engine's pauses are (near)
/// digital silence, so the margin is generous.
const AUDIBLE: u16 = 256;
/// A segment whose sound ends sooner than this (20 ms at 22 050 Hz) after its mark is not a word
/// of its own.
const MIN_SEGMENT: usize = 441;
/// Most segments one word may take (a URL is read out piece by piece)...
const MAX_SPLIT: usize = 24;
/// ...and most words that may share one segment.
const MAX_SHARE: usize = 4;
/// Largest alignment table (words x segments) worth filling; beyond it the words share the
/// sentence's audio in proportion to their length.
const MAX_CELLS: usize = 1 << 20;
/// How much a group's segment count being off from its expected parts weighs against its
/// duration being off from its share of the text.
const COUNT_WEIGHT: f64 = 2.0;

/// Audible stretches of `pcm`, one per spoken word, from the engine's word-start offsets.
pub(super) fn segments(pcm: &[i16], marks: &[usize]) -> Vec<Range<usize>> {
    let mut marks: Vec<usize> = marks.iter().map(|&m| m.min(pcm.len())).collect();
    marks.sort_unstable();
    marks.dedup();
    let mut out: Vec<Range<usize>> = Vec::new();
    // Where a sliver began that waits to be merged into the next segment.
    let mut carried: Option<usize> = None;
    for (i, &mark) in marks.iter().enumerate() {
        let next = marks.get(i + 1).copied().unwrap_or(pcm.len());
        let Some(sound) = audible(pcm, mark..next) else { continue };
        // Too short to be a word: it ends (or its sound does) within MIN_SEGMENT of its mark.
        let sliver = sound.end - mark < MIN_SEGMENT;
        match out.last_mut() {
            // A sliver before a word belongs to that word...
            _ if sliver && i + 1 < marks.len() => {
                carried.get_or_insert(sound.start);
            }
            // ...and one at the very end to the word before it.
            Some(last) if sliver => last.end = sound.end,
            _ => out.push(carried.take().unwrap_or(sound.start)..sound.end),
        }
    }
    out
}

fn audible(pcm: &[i16], range: Range<usize>) -> Option<Range<usize>> {
    let slice = pcm.get(range.clone())?;
    let first = slice.iter().position(|s| s.unsigned_abs() >= AUDIBLE)?;
    let last = slice.iter().rposition(|s| s.unsigned_abs() >= AUDIBLE)?;
    Some(range.start + first..range.start + last + 1)
}

/// Each word's sample range, matching `words` to `segments`; empty when either is empty.
pub(super) fn align(words: &[&str], segments: &[Range<usize>]) -> Vec<Range<usize>> {
    if words.is_empty() || segments.is_empty() {
        return Vec::new();
    }
    let parts: Vec<usize> = words.iter().map(|w| text::parts(w).max(1)).collect();
    let weights: Vec<f64> = words.iter().map(|w| weight(w)).collect();
    let groups = if parts.iter().sum::<usize>() == segments.len() {
        // Every word got exactly the spoken words it was expected to.
        let mut next = 0;
        parts
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                next += p;
                (i..i + 1, next - p..next)
            })
            .collect()
    } else if words.len() == segments.len() {
        (0..words.len()).map(|i| (i..i + 1, i..i + 1)).collect()
    } else if let Some(groups) = best_grouping(&parts, &weights, segments) {
        groups
    } else {
        vec![(0..words.len(), 0..segments.len())]
    };
    groups
        .into_iter()
        .flat_map(|(words, segs)| {
            let span = segments[segs.start].start..segments[segs.end - 1].end;
            share(&weights[words], span)
        })
        .collect()
}

/// How long a word takes to say, roughly: digits stand for whole spoken words.
fn weight(word: &str) -> f64 {
    let units: usize =
        word.chars().map(|c| if c.is_ascii_digit() { 3 } else { usize::from(c.is_alphanumeric()) }).sum();
    units.max(1) as f64
}

/// Splits `span` among words in proportion to their weights.
fn share(weights: &[f64], span: Range<usize>) -> Vec<Range<usize>> {
    let total: f64 = weights.iter().sum();
    let length = (span.end - span.start) as f64;
    let mut done = 0.0;
    let mut at = span.start;
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| {
            done += w;
            let end = if i + 1 == weights.len() { span.end } else { span.start + (length * done / total) as usize };
            let range = at..end.max(at);
            at = range.end;
            range
        })
        .collect()
}

type Groups = Vec<(Range<usize>, Range<usize>)>;

/// Groups (words, segments) that pair every word and every segment once, in order, each group
/// being one word with 1..=MAX_SPLIT segments or 2..=MAX_SHARE words sharing one segment. The
/// cost of a group is how far its segment count is from the words' expected parts, plus how far
/// its share of the time is from its share of the words' weight. `None` when no grouping exists.
fn best_grouping(parts: &[usize], weights: &[f64], segments: &[Range<usize>]) -> Option<Groups> {
    let (n, m) = (weights.len(), segments.len());
    if (n + 1) * (m + 1) > MAX_CELLS {
        return None;
    }
    let total_weight: f64 = weights.iter().sum();
    let total_time: f64 = segments.iter().map(|s| (s.end - s.start).max(1) as f64).sum();
    let parts_to = prefix(parts.iter().map(|&p| p as f64));
    let weight_to = prefix(weights.iter().copied());
    let time_to = prefix(segments.iter().map(|s| (s.end - s.start).max(1) as f64));
    // cost[i][j]: best cost of the first i words with the first j segments; from[i][j]: last group.
    let mut cost = vec![vec![f64::INFINITY; m + 1]; n + 1];
    let mut from = vec![vec![(0, 0); m + 1]; n + 1];
    cost[0][0] = 0.0;
    for i in 1..=n {
        for j in 1..=m {
            let shapes = (1..=MAX_SPLIT.min(j)).map(|b| (1, b)).chain((2..=MAX_SHARE.min(i)).map(|a| (a, 1)));
            for (a, b) in shapes {
                let before = cost[i - a][j - b];
                if before.is_infinite() {
                    continue;
                }
                let expected = parts_to[i] - parts_to[i - a];
                let words = (weight_to[i] - weight_to[i - a]) / total_weight;
                let time = (time_to[j] - time_to[j - b]) / total_time;
                let step = COUNT_WEIGHT * (b as f64 / expected).ln().abs() + (time / words).ln().abs();
                if before + step < cost[i][j] {
                    cost[i][j] = before + step;
                    from[i][j] = (a, b);
                }
            }
        }
    }
    if cost[n][m].is_infinite() {
        return None;
    }
    let mut groups = Vec::new();
    let (mut i, mut j) = (n, m);
    while i > 0 && j > 0 {
        let (a, b) = from[i][j];
        groups.push((i - a..i, j - b..j));
        i -= a;
        j -= b;
    }
    groups.reverse();
    Some(groups)
}

fn prefix(values: impl Iterator<Item = f64>) -> Vec<f64> {
    std::iter::once(0.0)
        .chain(values.scan(0.0, |sum, v| {
            *sum += v;
            Some(*sum)
        }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{align, segments};

    /// Audio with a tone over each range and silence elsewhere.
    fn pcm(len: usize, tones: &[std::ops::Range<usize>]) -> Vec<i16> {
        let mut pcm = vec![0i16; len];
        for tone in tones {
            for s in &mut pcm[tone.clone()] {
                *s = 5000;
            }
        }
        pcm
    }

    #[test]
    fn segments_are_trimmed_to_sound_and_silent_marks_dropped() {
        let audio = pcm(20_000, &[0..3000, 4000..9000, 12_000..15_000]);
        // A mark after the last word opens only silence (the end of the clause).
        let got = segments(&audio, &[0, 3500, 11_000, 17_000]);
        assert_eq!(got, [0..3000, 4000..9000, 12_000..15_000]);
    }

    #[test]
    fn slivers_merge_into_the_next_segment() {
        let audio = pcm(20_000, &[0..3000, 3300..9000]);
        // The mark at 3200 opens a 200-sample sliver (a dash), the next mark the word.
        let got = segments(&audio, &[0, 3200, 3400]);
        assert_eq!(got, [0..3000, 3300..9000]);
    }

    #[test]
    fn a_sliver_at_the_end_belongs_to_the_last_word() {
        let audio = pcm(10_000, &[0..3000, 3000..3100]);
        let got = segments(&audio, &[0, 3000]);
        assert_eq!((got.len(), got[0].clone()), (1, 0..3100));
    }

    #[test]
    fn equal_counts_pair_one_to_one() {
        let segs = [0..100, 200..300];
        assert_eq!(align(&["a", "b"], &segs), segs);
        assert!(align(&[], &segs).is_empty());
        assert!(align(&["a"], &[]).is_empty());
    }

    #[test]
    fn a_word_gets_the_spoken_words_expected_of_it() {
        // "mail bob@example.org today": bob, at, example, dot, org.
        let segs = [0..10, 20..30, 40..50, 60..70, 80..90, 100..110, 120..130];
        let got = align(&["mail", "bob@example.org", "today"], &segs);
        assert_eq!(got, [0..10, 20..110, 120..130]);
    }

    #[test]
    fn when_counts_disagree_durations_decide() {
        // "Call 555-1234 now!" as the engine speaks it (milliseconds): the number takes three
        // segments where two were expected.
        let segs = [48..297, 308..1679, 1721..1962, 1974..3858, 3869..4082];
        let got = align(&["Call", "555-1234", "now"], &segs);
        assert_eq!(got, [48..297, 308..3858, 3869..4082]);
    }

    #[test]
    fn words_spoken_as_one_share_its_segment() {
        // Two words the engine ran together, then a third on its own.
        let got = align(&["ab", "cd", "efgh"], &[0..4000, 5000..9000]);
        assert_eq!(got, [0..2000, 2000..4000, 5000..9000]);
    }

    #[test]
    fn timings_never_run_backwards() {
        let segs: Vec<_> = (0..7).map(|i| i * 1000..i * 1000 + 800).collect();
        let got = align(&["one", "two", "3", "four"], &segs);
        assert_eq!(got.len(), 4);
        assert!(got.windows(2).all(|w| w[0].end <= w[1].start && w[0].start < w[0].end));
    }
}
