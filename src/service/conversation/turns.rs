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

use tokio::task::{Id, JoinSet};

use crate::{
    audio::{loudness, AudioSpec},
    domain::pronounce::Spoken,
    metrics::Metrics,
    service::{
        synthesis::{collect::collect, Candidates},
        timestamps::{self, Alignment, Mode, Timestamp},
        usage::UsageDetails,
        ServiceError,
    },
};

/// One turn to voice: asks its targets, in order, for PCM at each one's rate and resamples what
/// comes to `rate`.
pub struct Job {
    pub index: usize,
    pub candidates: Candidates<u32>,
    pub rate: u32,
    pub details: UsageDetails,
    pub metrics: Arc<Metrics>,
    pub timing: Option<Timing>,
}

/// A turn's audio at the mix's rate, with its measured level.
pub struct Clip {
    pub index: usize,
    pub samples: Vec<i16>,
    pub level: loudness::Level,
    /// The turn's words, in seconds of `samples`, when they were asked for.
    pub words: Option<TimedWords>,
    /// What the provider said the caller should know about the turn's audio.
    pub warnings: Vec<String>,
}

/// A turn's timed words: the timestamps, where their times come from, and what to know.
pub struct TimedWords {
    pub timestamps: Vec<Timestamp>,
    pub alignment: Alignment,
    pub warnings: Vec<String>,
}

/// Word timing asked of a turn: how, and the turn's text as the caller wrote it.
pub struct Timing {
    pub mode: Mode,
    pub original: String,
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
    details: UsageDetails,
}

impl Turns {
    pub fn new(jobs: Vec<Job>, ahead: usize, details: UsageDetails) -> Self {
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
            details,
        }
    }

    /// The next turn in order, or `None` after the last. With `fail_fast` (nothing has been
    /// sent yet), the first failure of any turn is returned as soon as it is known; otherwise a
    /// failure waits its turn, so the turns before it are still delivered. After a failure no
    /// further turn is started, and none is handed out.
    pub async fn next(&mut self, fail_fast: bool) -> Option<Outcome> {
        self.start_more();
        loop {
            if self.next >= self.total {
                return None;
            }
            if fail_fast {
                // Turns that have already ended count, even if the one asked for is ready too.
                while let Some(joined) = self.tasks.try_join_next_with_id() {
                    self.record(joined);
                }
                let failed = self.finished.iter().find(|(_, o)| o.is_err()).map(|(i, _)| *i);
                if let Some(outcome) = failed.and_then(|i| self.finished.remove(&i)) {
                    self.stop();
                    return Some(outcome);
                }
            }
            if let Some(outcome) = self.finished.remove(&self.next) {
                self.next += 1;
                if outcome.is_err() {
                    self.stop();
                } else {
                    // A place ahead is free: the next turn starts while this one is sent.
                    self.start_more();
                }
                return Some(outcome);
            }
            let Some(joined) = self.tasks.join_next_with_id().await else {
                // Every started turn has been taken, yet the next one is missing: a bug.
                let error = ServiceError::Internal(format!("turn {} was never started", self.next));
                self.stop();
                return Some(Err(error));
            };
            self.record(joined);
        }
    }

    fn record(&mut self, joined: Result<(Id, (usize, Outcome)), tokio::task::JoinError>) {
        let (index, outcome) = match joined {
            Ok((_, (index, outcome))) => (index, outcome),
            Err(err) => {
                let index = self.task_turns.get(&err.id()).copied().unwrap_or(self.next);
                (index, Err(ServiceError::in_turn(index, ServiceError::Internal(format!("turn task failed: {err}")))))
            }
        };
        if outcome.is_err() {
            // Nothing after a failed turn will be sent: start no more.
            self.waiting.clear();
        }
        self.finished.insert(index, outcome);
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

    /// Ends the conversation early: nothing more starts, what runs is aborted, and the turns
    /// that were called but will not be sent are marked so in usage.
    fn stop(&mut self) {
        self.waiting.clear();
        self.tasks.abort_all();
        for index in self.next..self.started {
            if !self.finished.get(&index).is_some_and(Result::is_err) {
                self.details.segment_failed(u32::try_from(index).unwrap_or(u32::MAX), CANCELLED);
            }
        }
        self.finished.clear();
        self.next = self.total;
    }
}

impl Drop for Turns {
    fn drop(&mut self) {
        if self.next < self.total {
            self.stop();
        }
    }
}

/// The usage slug of a turn that was called but not sent: the conversation ended first.
pub const CANCELLED: &str = "cancelled";

/// Voices one turn: the provider call, its PCM converted and resampled to the mix's rate as it
/// arrives, then measured.
async fn voice(job: Job) -> Outcome {
    let Job { index, candidates, rate, details, metrics, timing } = job;
    let turn = u32::try_from(index).unwrap_or(u32::MAX);
    let in_turn = move |e: ServiceError| ServiceError::in_turn(index, e);
    let (target, &from, events) = candidates
        .call(turn, timing.is_some(), &details, &metrics, |&from| AudioSpec::pcm(from))
        .await
        .map_err(|e| in_turn(e.into()))?;
    let collected = collect(events, from, rate, target.provider_id(), (&details, turn)).await.map_err(in_turn)?;
    let provider = target.provider_id().to_owned();
    let spoken = if timing.is_some() { target.spoken.clone() } else { Spoken::default() };
    // Measuring (and estimating word times of) a long turn takes milliseconds of CPU: off the
    // async workers.
    tokio::task::spawn_blocking(move || {
        let words = match timing {
            None => None,
            Some(Timing { mode, original }) => {
                let (samples, words) = (&collected.samples, &collected.words);
                let timed = timestamps::time_words(&original, &spoken, words, samples, rate, mode);
                let (mut timestamps, alignment, warnings) =
                    timed.ok_or_else(|| in_turn(ServiceError::TimestampsUnavailable(provider)))?;
                timestamps.iter_mut().for_each(|t| t.turn_index = Some(index));
                Some(TimedWords { timestamps, alignment, warnings })
            }
        };
        let level = loudness::measure(&collected.samples, rate);
        Ok(Clip { index, samples: collected.samples, level, words, warnings: collected.warnings })
    })
    .await
    .map_err(|e| in_turn(ServiceError::Internal(format!("turn task failed: {e}"))))?
}
