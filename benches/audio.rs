//! The audio hot paths under criterion: transcoding per output format, the resampler alone,
//! conversation levelling and mixing, loudness measurement and word timing estimation.
//!
//! Input is synthetic speech-like 24 kHz mono PCM (`support::speech_like`, the rate most
//! providers stream). Every case works on one minute of audio per iteration, so criterion's
//! time per iteration is the cost per minute of audio, and its throughput (`elem/s`, one element
//! being one second of audio) is how many times faster than real time the work runs on one
//! thread. Transcoding pushes the PCM through [`PcmTranscoder`] in 4 KiB chunks, as a provider's
//! stream arrives, with a fresh transcoder per iteration.
//!
//! Run with `cargo bench --bench audio` (all cases, a couple of minutes), or one group with e.g.
//! `cargo bench --bench audio -- transcode/mp3`. Sample counts and times are kept short: these
//! are minute-long iterations, measured flat (one iteration per sample).
#![allow(clippy::expect_used, reason = "benchmark set-up stops on any failure")]

mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use speechgate::audio::{
    align::{self, Boundary},
    encode_whole, loudness, AudioFormat, AudioSpec, PcmTranscoder, Resampler,
};

const INPUT_RATE: u32 = 24_000;
/// Seconds of audio per iteration: the time per iteration is the cost per minute of audio.
const SECONDS: u32 = 60;
const CHUNK_BYTES: usize = 4096;
/// A conversation: this many turns of `SECONDS / TURNS` seconds, at levels from 0.25× to 1×.
const TURNS: usize = 10;
/// Silence before each turn but the first, as the conversation benchmark asks for.
const GAP_MS: u32 = 300;

fn spec(format: AudioFormat, sample_rate: u32, bitrate_kbps: Option<u32>) -> AudioSpec {
    AudioSpec { format, sample_rate, bitrate_kbps }
}

fn transcode(bytes: &[u8], output: AudioSpec) -> usize {
    let mut transcoder = PcmTranscoder::new(INPUT_RATE, output).expect("transcoder");
    let mut total = 0;
    for chunk in bytes.chunks(CHUNK_BYTES) {
        total += black_box(transcoder.push(chunk).expect("push")).len();
    }
    total + black_box(transcoder.finish().expect("finish")).len()
}

fn resample(samples: &[i16], to: u32) -> usize {
    let mut resampler = Resampler::new(INPUT_RATE, to).expect("resampler");
    let mut total = 0;
    for chunk in samples.chunks(CHUNK_BYTES / 2) {
        total += black_box(resampler.process(chunk)).len();
    }
    total + black_box(resampler.finish()).len()
}

/// Settings for minute-long iterations: few samples, one iteration each.
fn configure(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(u64::from(SECONDS)));
}

fn transcoding(c: &mut Criterion) {
    let samples = support::speech_like(INPUT_RATE, SECONDS);
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let cases = [
        ("mp3 128k 24kHz", spec(AudioFormat::Mp3, 24_000, Some(128))),
        ("mp3 128k 44.1kHz", spec(AudioFormat::Mp3, 44_100, Some(128))),
        ("opus 64k 24kHz", spec(AudioFormat::Opus, 24_000, Some(64))),
        ("opus 64k 48kHz", spec(AudioFormat::Opus, 48_000, Some(64))),
        ("flac 24kHz", spec(AudioFormat::Flac, 24_000, None)),
        ("wav 24kHz", spec(AudioFormat::Wav, 24_000, None)),
        ("mulaw 8kHz", spec(AudioFormat::Ulaw, 8_000, None)),
    ];
    let mut group = c.benchmark_group("transcode");
    configure(&mut group);
    for (name, output) in cases {
        group.bench_function(name, |b| b.iter(|| transcode(&bytes, output)));
    }
    group.finish();

    let mut group = c.benchmark_group("resample");
    configure(&mut group);
    for (name, to) in [("24kHz to 48kHz", 48_000), ("24kHz to 44.1kHz", 44_100)] {
        group.bench_function(name, |b| b.iter(|| resample(&samples, to)));
    }
    group.finish();
}

/// Ten turns of speech, each at a level of its own (so levelling has work to do).
fn turns() -> Vec<Vec<i16>> {
    let base = support::speech_like(INPUT_RATE, SECONDS / TURNS as u32);
    (0..TURNS)
        .map(|i| {
            let gain = 0.25 + 0.75 * i as f64 / (TURNS - 1) as f64;
            base.iter().map(|s| (f64::from(*s) * gain) as i16).collect()
        })
        .collect()
}

/// What the conversation mixer (`service::conversation::mix`) does to each turn, in order: its
/// loudness measured (done as the turn arrives), levelled against the turns before it with the
/// peak limiter at -16 dBFS, and faded at both edges.
fn level(turns: &mut [Vec<i16>]) {
    let mut leveler = loudness::Leveler::new(Some(-16.0));
    for turn in turns.iter_mut() {
        let level = loudness::measure(turn, INPUT_RATE);
        black_box(leveler.apply(turn, level, INPUT_RATE));
        loudness::fade_edges(turn, INPUT_RATE, 4);
    }
}

/// The levelled turns joined with silence and encoded once, as a held conversation is.
fn mix(turns: &mut [Vec<i16>], output: AudioSpec) -> usize {
    level(turns);
    let gap = vec![0i16; (INPUT_RATE * GAP_MS / 1000) as usize];
    let mut parts: Vec<&[i16]> = Vec::with_capacity(2 * turns.len());
    for (i, turn) in turns.iter().enumerate() {
        if i > 0 {
            parts.push(&gap);
        }
        parts.push(turn);
    }
    black_box(encode_whole(output, &parts).expect("encode")).len()
}

fn conversation(c: &mut Criterion) {
    let turns = turns();
    let mut group = c.benchmark_group("conversation");
    configure(&mut group);
    group.bench_function("level 10 turns", |b| {
        b.iter_batched(|| turns.clone(), |mut t| level(&mut t), BatchSize::LargeInput)
    });
    group.bench_function("level and mix to mp3 24kHz", |b| {
        b.iter_batched(
            || turns.clone(),
            |mut t| mix(&mut t, spec(AudioFormat::Mp3, INPUT_RATE, Some(128))),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("level and mix to wav 24kHz", |b| {
        b.iter_batched(
            || turns.clone(),
            |mut t| mix(&mut t, spec(AudioFormat::Wav, INPUT_RATE, None)),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn measurement(c: &mut Criterion) {
    let samples = support::speech_like(INPUT_RATE, SECONDS);
    let mut group = c.benchmark_group("loudness");
    configure(&mut group);
    group.bench_function("measure (EBU R128 integrated, peak)", |b| {
        b.iter(|| loudness::measure(black_box(&samples), INPUT_RATE))
    });
    group.finish();

    // About 2.7 words a second, with commas and sentence ends as a text would have them.
    let text = "The quick brown fox jumps over the lazy dog, and then it runs far away into the woods. \
                Nobody saw it again, although the farmer searched for hours.";
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let count = (f64::from(SECONDS) * 2.7) as usize;
    let words: Vec<align::Word<'_>> = tokens
        .iter()
        .cycle()
        .take(count)
        .map(|token| align::Word {
            text: token,
            boundary: match token.chars().last() {
                Some(',') => Boundary::Comma,
                Some('.') => Boundary::Sentence,
                _ => Boundary::None,
            },
        })
        .collect();
    let mut group = c.benchmark_group("align");
    configure(&mut group);
    group.bench_function("estimate word times", |b| {
        b.iter(|| align::estimate(black_box(&samples), INPUT_RATE, black_box(&words)))
    });
    group.finish();
}

criterion_group!(benches, transcoding, conversation, measurement);
criterion_main!(benches);
