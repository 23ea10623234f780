//! The blocking half of a synthesis, run on tokio's blocking pool: the text sentence by
//! sentence through the engine, each clause's audio sent as soon as the engine has rendered it,
//! each sentence's word timings right after its audio. The channel is bounded, so a slow reader
//! slows the engine down instead of piling audio up in memory, and a reader that has gone away
//! (the client disconnected) stops the engine at the next clause.

use std::{ops::Range, sync::Arc};

use bytes::Bytes;
use espeak_ng::{EspeakNg, EventKind, Parameter};
use tokio::sync::mpsc;

use super::{data::BundledData, text, timing, ID, NATIVE_RATE};
use crate::providers::{ProviderError, SynthesisEvent, WordTiming};

pub(super) type Sender = mpsc::Sender<Result<SynthesisEvent, ProviderError>>;

/// Everything one synthesis needs, checked and resolved.
pub(super) struct Job {
    pub data: Arc<BundledData>,
    /// The engine's voice name, e.g. `en-us+f3`.
    pub voice: String,
    pub rate_wpm: i32,
    pub seed: Option<u32>,
    pub text: String,
    pub timestamps: bool,
}

/// Renders `job` into `tx` until the text is done, the reader is gone, or the engine fails.
pub(super) fn run(job: &Job, tx: &Sender) {
    if let Err(error) = job.data.ensure(job.voice.split_once('+').map(|(_, variant)| variant)) {
        fail(tx, format!("the bundled voice data could not be restored: {error}"), false);
        return;
    }
    let mut clip_samples = 0;
    for sentence in text::sentences(&job.text) {
        match render(job, sentence, clip_samples, tx) {
            Ok(Some(samples)) => clip_samples += samples,
            Ok(None) => return,
            Err(error) => {
                fail(tx, format!("eSpeak NG failed: {error}"), clip_samples > 0);
                return;
            }
        }
    }
}

/// Ends the stream with an error: `Unavailable` while nothing has been sent (the service may
/// still fall back to another provider), `Interrupted` once audio has gone out.
fn fail(tx: &Sender, detail: String, started: bool) {
    let error = if started {
        ProviderError::Interrupted { provider: ID.to_owned(), detail }
    } else {
        ProviderError::Unavailable {
            provider: ID.to_owned(),
            status: None,
            code: Some("synthesis_failed".to_owned()),
            detail,
        }
    };
    // The reader may be gone too; then there is no one left to tell.
    let _ = tx.blocking_send(Err(error));
}

/// One sentence: its audio, then its word timings. The number of samples rendered, or `None`
/// when the reader has gone away.
fn render(job: &Job, sentence: &str, offset: usize, tx: &Sender) -> Result<Option<usize>, espeak_ng::Error> {
    let mut engine = EspeakNg::with_data_dir(&job.voice, job.data.path())?;
    engine.set_parameter(Parameter::Rate, job.rate_wpm);
    if let Some(seed) = job.seed {
        engine.set_rand_seed(seed);
    }
    if engine.sample_rate() != NATIVE_RATE {
        return Err(espeak_ng::Error::InvalidData(format!(
            "the engine renders at {} Hz, not the declared {NATIVE_RATE} Hz",
            engine.sample_rate()
        )));
    }
    let mut samples = 0;
    let mut gone = false;
    // Kept only for word timings, which need the sentence's audio and its word marks.
    let mut pcm = Vec::new();
    let mut marks = Vec::new();
    engine.synth_streaming_with_events(sentence, |chunk, _last, events| {
        samples += chunk.len();
        if job.timestamps {
            pcm.extend_from_slice(chunk);
            marks.extend(events.iter().filter(|e| matches!(e.kind, EventKind::Word(_))).map(|e| {
                usize::try_from(u64::from(e.audio_position_ms) * u64::from(NATIVE_RATE) / 1000).unwrap_or(usize::MAX)
            }));
        }
        if !chunk.is_empty() {
            gone = tx.blocking_send(Ok(SynthesisEvent::Audio(s16le(chunk)))).is_err();
        }
        gone
    })?;
    if gone {
        return Ok(None);
    }
    if job.timestamps {
        let words = word_timings(sentence, &pcm, &marks, offset);
        if !words.is_empty() && tx.blocking_send(Ok(SynthesisEvent::Words(words))).is_err() {
            return Ok(None);
        }
    }
    Ok(Some(samples))
}

fn word_timings(sentence: &str, pcm: &[i16], marks: &[usize], offset: usize) -> Vec<WordTiming> {
    let words = text::words(sentence);
    let spans = timing::align(&words, &timing::segments(pcm, marks));
    let seconds = |sample: usize| (offset + sample) as f64 / f64::from(NATIVE_RATE);
    words
        .iter()
        .zip(spans)
        .map(|(word, Range { start, end })| WordTiming {
            text: (*word).to_owned(),
            start: seconds(start),
            end: seconds(end),
        })
        .collect()
}

fn s16le(samples: &[i16]) -> Bytes {
    let mut bytes = Vec::with_capacity(samples.len() * 2);
    for sample in samples {
        bytes.extend_from_slice(&sample.to_le_bytes());
    }
    Bytes::from(bytes)
}
