//! Turns synthesised concurrently and handed out in order.
//!
//! At most `ahead` turns are in progress or finished-but-not-yet-taken at once, counted from the
//! next turn to hand out, so memory holds at most that many clips whatever the order in which
//! providers finish. Each turn runs in its own task, so providers keep streaming while the body
//! is being encoded and sent; dropping the runner aborts them all.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Arc,
};

use futures::StreamExt;
use tokio::task::{Id, JoinSet};

use crate::{
    audio::{self, loudness, AudioSpec, Resampler},
    metrics::Metrics,
    providers::{ProviderError, SynthesisEvent},
    service::{
        synthesis::{call, Target},
        usage::UsageDetails,
        ServiceError,
    },
};

/// Most audio one turn may bring, in seconds at its own rate (far beyond what any provider
/// makes of the longest text a model takes).
const MAX_TURN_SECS: usize = 600;

/// One turn to voice: asks `target` for PCM at `from` and resamples it to `rate`.
pub struct Job {
    pub index: usize,
    pub target: Target,
    pub from: u32,
    pub rate: u32,
    pub details: UsageDetails,
    pub metrics: Arc<Metrics>,
}

/// A turn's audio at the mix's rate, with its measured level.
pub struct Clip {
    pub index: usize,
    pub samples: Vec<i16>,
    pub level: loudness::Level,
}

type Outcome = Result<Clip, ServiceError>;

pub struct Turns {
    waiting: VecDeque<Job>,
    tasks: JoinSet<(usize, Outcome)>,
    /// Which turn each task voices (to name the turn if its task panics).
    task_turns: HashMap<Id, usize>,
    finished: BTreeMap<usize, Outcome>,
    next: usize,
    started: usize,
    total: usize,
    ahead: usize,
}

impl Turns {
    pub fn new(jobs: Vec<Job>, ahead: usize) -> Self {
        let total = jobs.len();
        Self {
            waiting: jobs.into(),
            tasks: JoinSet::new(),
            task_turns: HashMap::new(),
            finished: BTreeMap::new(),
            next: 0,
            started: 0,
            total,
            ahead: ahead.max(1),
        }
    }

    /// The next turn in order, or `None` after the last. With `fail_fast` (nothing has been
    /// sent yet), the first failure of any turn is returned as soon as it happens; otherwise a
    /// failure waits its turn, so the turns before it are still delivered. After a failure no
    /// further turn is started, and none is handed out.
    pub async fn next(&mut self, fail_fast: bool) -> Option<Outcome> {
        loop {
            if self.next >= self.total {
                return None;
            }
            self.start_more();
            if let Some(outcome) = self.finished.remove(&self.next) {
                self.next += 1;
                if outcome.is_err() {
                    self.stop();
                }
                return Some(outcome);
            }
            if fail_fast {
                let failed = self.finished.iter().find(|(_, o)| o.is_err()).map(|(i, _)| *i);
                if let Some(outcome) = failed.and_then(|i| self.finished.remove(&i)) {
                    self.stop();
                    return Some(outcome);
                }
            }
            let Some(joined) = self.tasks.join_next_with_id().await else {
                // Every started turn has been taken, yet the next one is missing: a bug.
                let error = ServiceError::Internal(format!("turn {} was never started", self.next));
                self.stop();
                return Some(Err(error));
            };
            let (index, outcome) = match joined {
                Ok((_, (index, outcome))) => (index, outcome),
                Err(err) => {
                    let index = self.task_turns.get(&err.id()).copied().unwrap_or(self.next);
                    (
                        index,
                        Err(ServiceError::in_turn(index, ServiceError::Internal(format!("turn task failed: {err}")))),
                    )
                }
            };
            if outcome.is_err() {
                // Nothing after a failed turn will be sent: start no more.
                self.waiting.clear();
            }
            self.finished.insert(index, outcome);
        }
    }

    fn start_more(&mut self) {
        while self.started < self.next + self.ahead {
            let Some(job) = self.waiting.pop_front() else { break };
            let index = job.index;
            let handle = self.tasks.spawn(async move { (index, voice(job).await) });
            self.task_turns.insert(handle.id(), index);
            self.started += 1;
        }
    }

    fn stop(&mut self) {
        self.waiting.clear();
        self.tasks.abort_all();
        self.finished.clear();
        self.next = self.total;
    }
}

/// Voices one turn: the provider call, its PCM collected, resampled and measured.
async fn voice(job: Job) -> Outcome {
    let Job { index, target, from, rate, details, metrics } = job;
    let turn = u32::try_from(index).unwrap_or(u32::MAX);
    let fail = |err: ProviderError| {
        details.segment_failed(turn, err.code());
        ServiceError::in_turn(index, err.into())
    };
    let segment = call::Segment {
        index: turn,
        provider: target.provider_id(),
        model: &target.resolved.model.id,
        voice: &target.voice,
        characters: target.characters(),
    };
    let request = target.resolved.provider.synthesize(target.request(AudioSpec::pcm(from)));
    let mut events =
        call::start(segment, &details, &metrics, request).await.map_err(|e| ServiceError::in_turn(index, e.into()))?;
    let max_bytes = usize::try_from(from).unwrap_or(usize::MAX).saturating_mul(2 * MAX_TURN_SECS);
    let mut pcm = Vec::new();
    while let Some(event) = events.next().await {
        match event.map_err(fail)? {
            SynthesisEvent::Audio(bytes) => {
                if pcm.len() + bytes.len() > max_bytes {
                    let detail = format!("a turn may bring at most {} minutes of audio", MAX_TURN_SECS / 60);
                    return Err(fail(ProviderError::Invalid { provider: target.provider_id().to_owned(), detail }));
                }
                pcm.extend_from_slice(&bytes);
            }
            SynthesisEvent::Words(_) => {}
        }
    }
    // Resampling and measuring a long turn takes milliseconds of CPU: off the async workers.
    let clip = tokio::task::spawn_blocking(move || -> Result<Clip, audio::AudioError> {
        let mut samples: Vec<i16> = pcm.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        if from != rate {
            let mut resampler = Resampler::new(from, rate)?;
            let mut resampled = resampler.process(&samples);
            resampled.extend(resampler.finish());
            samples = resampled;
        }
        let level = loudness::measure(&samples, rate);
        Ok(Clip { index, samples, level })
    })
    .await
    .map_err(|e| ServiceError::in_turn(index, ServiceError::Internal(format!("turn task failed: {e}"))))?
    .map_err(|e| ServiceError::in_turn(index, ServiceError::Internal(e.to_string())))?;
    details.add_audio_ms(turn, audio::duration_ms(clip.samples.len(), rate));
    Ok(clip)
}
