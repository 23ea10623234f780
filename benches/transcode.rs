//! How long the audio pipeline takes per minute of speech, on one thread.
//!
//! Input is 60 s of synthetic speech-like 24 kHz mono PCM (the rate most providers stream),
//! pushed through [`PcmTranscoder`] in 4 KiB chunks as it would arrive from a provider. Each case
//! runs several times after one warm-up run; min and median are reported in milliseconds per minute
//! of audio. Run with `cargo bench --bench transcode`.
#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::hint::black_box;
use std::time::{Duration, Instant};

mod support;

use speechgate::audio::{AudioError, AudioFormat, AudioSpec, PcmTranscoder, Resampler};

const INPUT_RATE: u32 = 24_000;
const SECONDS: u32 = 60;
const CHUNK_BYTES: usize = 4096;
const RUNS: usize = 9;

/// One benchmark case: runs the work once and returns the output size.
type Case<'a> = Box<dyn FnMut() -> Result<usize, AudioError> + 'a>;

fn transcode(bytes: &[u8], output: AudioSpec) -> Result<usize, AudioError> {
    let mut transcoder = PcmTranscoder::new(INPUT_RATE, output)?;
    let mut total = 0;
    for chunk in bytes.chunks(CHUNK_BYTES) {
        total += black_box(transcoder.push(chunk)?).len();
    }
    total += black_box(transcoder.finish()?).len();
    Ok(total)
}

fn resample(samples: &[i16], to: u32) -> Result<usize, AudioError> {
    let mut resampler = Resampler::new(INPUT_RATE, to)?;
    let mut total = 0;
    for chunk in samples.chunks(CHUNK_BYTES / 2) {
        total += black_box(resampler.process(chunk)).len();
    }
    total += black_box(resampler.finish()).len();
    Ok(total)
}

/// Runs `case` once to warm up and `RUNS` times measured; returns the sorted timings and the
/// output size of the last run.
fn measure(mut case: impl FnMut() -> Result<usize, AudioError>) -> Result<(Vec<Duration>, usize), AudioError> {
    let mut size = case()?;
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        size = case()?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok((times, size))
}

fn main() -> Result<(), AudioError> {
    let samples = support::speech_like(INPUT_RATE, SECONDS);
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let spec = |format, sample_rate, bitrate_kbps| AudioSpec { format, sample_rate, bitrate_kbps };
    let cases: Vec<(&str, Case<'_>)> = vec![
        ("mp3 128 kbit/s, 24 kHz", Box::new(|| transcode(&bytes, spec(AudioFormat::Mp3, 24_000, Some(128))))),
        (
            "mp3 128 kbit/s, 44.1 kHz (resampled)",
            Box::new(|| transcode(&bytes, spec(AudioFormat::Mp3, 44_100, Some(128)))),
        ),
        ("opus 64 kbit/s, 24 kHz", Box::new(|| transcode(&bytes, spec(AudioFormat::Opus, 24_000, Some(64))))),
        (
            "opus 64 kbit/s, 48 kHz (resampled)",
            Box::new(|| transcode(&bytes, spec(AudioFormat::Opus, 48_000, Some(64)))),
        ),
        ("flac, 24 kHz", Box::new(|| transcode(&bytes, spec(AudioFormat::Flac, 24_000, None)))),
        ("wav, 24 kHz", Box::new(|| transcode(&bytes, spec(AudioFormat::Wav, 24_000, None)))),
        ("ulaw, 8 kHz (resampled)", Box::new(|| transcode(&bytes, spec(AudioFormat::Ulaw, 8_000, None)))),
        ("resampler 24 kHz -> 48 kHz", Box::new(|| resample(&samples, 48_000))),
        ("resampler 24 kHz -> 44.1 kHz", Box::new(|| resample(&samples, 44_100))),
    ];

    println!("Audio transcoding: {SECONDS} s of {INPUT_RATE} Hz mono PCM in {CHUNK_BYTES}-byte chunks, {RUNS} runs");
    println!("{:<40} {:>12} {:>12} {:>12}", "case", "min ms/min", "median ms/min", "output KiB");
    let per_minute = 60.0 / f64::from(SECONDS);
    for (name, mut case) in cases {
        let (times, size) = measure(&mut case)?;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0 * per_minute;
        println!("{name:<40} {:>12.1} {:>12.1} {:>12.1}", ms(times[0]), ms(times[RUNS / 2]), size as f64 / 1024.0);
    }
    Ok(())
}
