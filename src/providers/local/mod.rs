//! `local`: speech with no provider account and no network, from eSpeak NG (the `espeak-ng`
//! crate, a pure-Rust port; GPL-3.0-or-later, so is a binary built with it). Robotic next to
//! the vendors, but always there: for development, tests, air-gapped installs and as a last
//! fallback.
//!
//! The engine is synchronous and CPU-bound, so each request runs on tokio's blocking pool and
//! hands events over a bounded channel (`synth.rs`). It renders sentence by sentence (`text.rs`),
//! so audio streams out after the first clause, not after the whole text. Word timings are
//! native: the engine marks where each spoken word starts (`timing.rs` turns the marks into the
//! text's words with start and end). An engine value only holds settings (building one takes
//! about 10 µs; it re-reads its data files on every call, about 15 ms), so one is built per
//! sentence with the request's voice and rate; nothing is shared between requests but the
//! unpacked data directory and the voice catalogue.

mod data;
mod speed;
mod synth;
mod text;
mod timing;
mod voices;

use std::{
    io,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::{
    sync::{mpsc, OwnedSemaphorePermit, Semaphore},
    task::JoinHandle,
};

use self::{data::BundledData, synth::Job, voices::Catalogue};
use super::{
    Capabilities, EventStream, ModelInfo, NativeFormat, ProviderError, ProviderVoice, SpeechProvider, SynthesisEvent,
    SynthesisRequest,
};
use crate::{config::LocalConfig, domain::audio::AudioFormat};

pub const ID: &str = "local";
pub const MODEL: &str = "espeak-ng";
/// The engine renders 16-bit mono PCM at this rate, always.
pub const NATIVE_RATE: u32 = 22_050;
/// Longest input: about five minutes of speech.
const MAX_CHARACTERS: usize = 5000;
/// Events waiting for the reader: a few clauses of audio.
const CHANNEL_CAPACITY: usize = 8;

pub struct Local {
    data: Arc<BundledData>,
    catalogue: Catalogue,
    capabilities: Capabilities,
    pool: Pool,
}

/// The engine's bounded pool: at most `slots` clips render at once, at most `max_waiting`
/// requests wait for a slot, and any more are refused at once rather than queued without end.
struct Pool {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
}

impl Pool {
    async fn slot(&self) -> Result<OwnedSemaphorePermit, ProviderError> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let busy = || ProviderError::Unavailable {
            provider: ID.to_owned(),
            status: None,
            code: Some("local_busy".to_owned()),
            detail: "the local engine is busy: every slot is taken and its queue is full".to_owned(),
        };
        // Counted as waiting until this future ends, however it ends (a client may go away).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let queued = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.waiting);
        if queued >= self.max_waiting {
            return Err(busy());
        }
        self.slots.clone().acquire_owned().await.map_err(|_| busy())
    }
}

impl Local {
    /// Unpacks the bundled voice data (about 3 MB, 20 ms) and reads the voice catalogue.
    pub fn new(config: &LocalConfig) -> io::Result<Self> {
        let data = BundledData::unpack()?;
        let catalogue = Catalogue::load(data.path());
        let capabilities = Capabilities {
            takes_api_key: false,
            models: vec![ModelInfo {
                id: MODEL.to_owned(),
                max_characters: MAX_CHARACTERS,
                supports_instructions: false,
            }],
            default_model: MODEL.to_owned(),
            formats: vec![NativeFormat {
                format: AudioFormat::Pcm,
                sample_rates: vec![NATIVE_RATE],
                bitrates_kbps: Vec::new(),
            }],
            streaming: true,
            native_timestamps: true,
            timestamp_formats: vec![AudioFormat::Pcm],
            native_dialogue: None,
            voices_listable: true,
            speed_range: Some(speed::RANGE),
            provider_options: Vec::new(),
        };
        let jobs = match config.max_jobs {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let pool = Pool {
            slots: Arc::new(Semaphore::new(jobs)),
            waiting: AtomicUsize::new(0),
            max_waiting: config.max_waiting,
        };
        Ok(Self { data: Arc::new(data), catalogue, capabilities, pool })
    }

    /// Checks a request and resolves it into a job for the engine.
    fn plan(&self, request: SynthesisRequest) -> Result<Job, ProviderError> {
        if request.model != MODEL {
            return Err(rejected(
                404,
                "model_not_found",
                format!("the local provider has no model {:?}", request.model),
            ));
        }
        let output = request.output;
        if output.format != AudioFormat::Pcm || output.sample_rate != NATIVE_RATE {
            return Err(rejected(
                400,
                "unsupported_output",
                format!(
                    "the local provider produces pcm at {NATIVE_RATE} Hz, not {} at {} Hz",
                    output.format.as_str(),
                    output.sample_rate
                ),
            ));
        }
        if let Some(language) = request.language.as_deref().filter(|l| !is_english(l)) {
            return Err(rejected(
                400,
                "unsupported_language",
                format!("the local provider speaks English only, not {language:?}"),
            ));
        }
        let voice = self.catalogue.resolve(&request.voice).ok_or_else(|| {
            rejected(
                404,
                "voice_not_found",
                format!(
                    "the local provider has no voice {:?}; its voices are accents such as en-us or en-gb, \
                     optionally with a variant such as en-us+f3 (see its voice list)",
                    request.voice
                ),
            )
        })?;
        Ok(Job {
            data: self.data.clone(),
            voice,
            rate_wpm: speed::rate_wpm(request.speed),
            // The engine takes a 32-bit seed; the low bits of a larger one choose it.
            seed: request.seed.map(|seed| seed as u32),
            text: request.text,
            timestamps: request.timestamps,
        })
    }
}

#[async_trait]
impl SpeechProvider for Local {
    fn id(&self) -> &str {
        ID
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn synthesize(&self, request: SynthesisRequest) -> Result<EventStream, ProviderError> {
        let job = self.plan(request)?;
        let slot = self.pool.slot().await?;
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let task = tokio::task::spawn_blocking(move || {
            // The slot is held until the clip is rendered or its reader has gone away.
            let _slot = slot;
            synth::run(&job, &tx);
        });
        Ok(events(rx, task))
    }

    async fn voices(&self) -> Result<Vec<ProviderVoice>, ProviderError> {
        Ok(self.catalogue.voices())
    }
}

/// The channel as a stream. When it closes, the task is checked: if it panicked, the stream
/// ends with an error rather than looking like a complete clip.
fn events(rx: mpsc::Receiver<Result<SynthesisEvent, ProviderError>>, task: JoinHandle<()>) -> EventStream {
    struct State {
        rx: mpsc::Receiver<Result<SynthesisEvent, ProviderError>>,
        task: Option<JoinHandle<()>>,
        started: bool,
    }
    futures::stream::unfold(State { rx, task: Some(task), started: false }, |mut state| async move {
        if let Some(item) = state.rx.recv().await {
            state.started = true;
            return Some((item, state));
        }
        let failure = state.task.take()?.await.err()?;
        let detail = format!("the synthesis task failed: {failure}");
        let error = if state.started {
            ProviderError::Interrupted { provider: ID.to_owned(), detail }
        } else {
            ProviderError::Unavailable { provider: ID.to_owned(), status: None, code: None, detail }
        };
        Some((Err(error), state))
    })
    .boxed()
}

fn rejected(status: u16, code: &str, detail: String) -> ProviderError {
    ProviderError::Rejected { provider: ID.to_owned(), status, code: Some(code.to_owned()), detail }
}

/// `en`, `en-GB`, `en_us`, `eng`, `English`...
fn is_english(language: &str) -> bool {
    let primary = language.trim().split(['-', '_']).next().unwrap_or_default().to_ascii_lowercase();
    matches!(primary.as_str(), "en" | "eng" | "english")
}
