//! A key's limits and budgets (`KeyLimits`), enforced the same way on both backends but kept
//! where they must be: in the shared PostgreSQL database, so that every replica sees them, or in
//! this process's memory on SQLite (one process owns that database).
//!
//! - **Requests and characters per minute**: sliding windows. Use is counted per key in fixed
//!   one-minute windows (UTC, aligned to the minute); a request is admitted when the previous
//!   minute's count, weighted by how much of it still lies within the last 60 s, plus the current
//!   minute's count including the request, stays within the limit. The weighting assumes the
//!   previous minute's use was spread evenly: a burst at its very end is under-weighted, so a key
//!   can get up to its limit plus what the weighting forgave (at worst nearly one more limit's
//!   worth in the 60 s straddling a window edge, when the previous minute's whole use came in
//!   its last second). On PostgreSQL the count is one upsert per request (one round trip), and
//!   a refused request's share is taken back (a second one, on refusal only).
//! - **Requests in progress** (`maxConcurrent`): on PostgreSQL a lease per request in one row per
//!   key, taken in one round trip, renewed every third of its lifetime while the response
//!   streams, given back when it ends; a replica that dies leaves leases that lapse within
//!   `auth.lease_secs`. On SQLite, and for keys without `maxConcurrent`, a count in memory
//!   (`auth.max_concurrent_per_key`, per replica).
//! - **Monthly budgets**: the key's UTC month as written with its usage (one row read per
//!   request). Requests being served are not yet in it: concurrent requests can overshoot a
//!   budget by what those in progress when it is crossed bill.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use chrono::Utc;
use tokio_util::task::TaskTracker;

use super::limits::{InFlight, InFlightSlot};
use crate::{
    domain::{limits::month_of, ApiKey, PriceTable},
    store::{SharedCounters, Store, StoreError},
};

const WINDOW_MS: i64 = 60_000;

/// What a limit looked like after a request: for the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u64,
    pub remaining: u64,
    /// Until the current window ends.
    pub reset: Duration,
}

impl Quota {
    /// How much of the limit is left, as a fraction (the closest to exhaustion is reported).
    fn left(&self) -> f64 {
        self.remaining as f64 / self.limit.max(1) as f64
    }
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("rate limit exceeded")]
    RateLimited { wait: Duration, quota: Quota },
    /// One request larger than a per-minute limit: it can never pass.
    #[error(
        "this request's {amount} characters exceed the key's limit of {limit} characters per minute; split the text"
    )]
    LargerThanLimit { amount: u64, limit: u64 },
    #[error("this API key already has {0} requests in flight, its limit; retry when one ends")]
    TooManyConcurrent(usize),
    #[error("{0}")]
    Budget(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one segment of a request will make a provider voice.
#[derive(Debug, Clone)]
pub struct Charge {
    pub provider: String,
    pub model: String,
    pub characters: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Requests,
    Characters,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Requests => "requests",
            Kind::Characters => "characters",
        }
    }
}

/// The rate windows: shared, or this process's.
enum Windows {
    Shared(Arc<dyn SharedCounters>),
    Local(Mutex<HashMap<(String, Kind), LocalWindow>>),
}

/// This process's window of one key and kind: the current minute's start, the previous
/// minute's use, the current minute's.
type LocalWindow = (i64, i64, i64);

/// Every key's limits and budgets.
pub struct Limits {
    store: Arc<dyn Store>,
    prices: Arc<PriceTable>,
    windows: Windows,
    shared: Option<Arc<dyn SharedCounters>>,
    in_flight: InFlight,
    /// `auth.max_concurrent_per_key`: for keys without their own `maxConcurrent`, per replica.
    default_concurrent: usize,
    lease: Duration,
    /// When shared windows were last pruned (Unix ms).
    pruned_at: AtomicI64,
    /// Background work (pruning, lease renewals and releases), drained at shutdown.
    tracker: TaskTracker,
}

impl Limits {
    pub fn new(
        store: Arc<dyn Store>,
        prices: Arc<PriceTable>,
        default_concurrent: usize,
        lease: Duration,
        tracker: TaskTracker,
    ) -> Self {
        let shared = store.shared_counters();
        let windows = match &shared {
            Some(counters) => Windows::Shared(counters.clone()),
            None => Windows::Local(Mutex::default()),
        };
        Self {
            store,
            prices,
            windows,
            shared,
            in_flight: InFlight::default(),
            default_concurrent,
            lease,
            pruned_at: AtomicI64::new(0),
            tracker,
        }
    }

    pub fn prices(&self) -> &Arc<PriceTable> {
        &self.prices
    }

    /// Counts one request against `key`'s `rateLimitPerMinute`.
    pub async fn check_rate(&self, key: &ApiKey) -> Result<Option<Quota>, Refusal> {
        match key.limits.rate_limit_per_minute {
            Some(limit) => self.take(&key.id, Kind::Requests, u64::from(limit), 1).await.map(Some),
            None => Ok(None),
        }
    }

    /// A slot for one more request of `key` in progress, held until the slot is dropped.
    pub async fn enter(&self, key: &Arc<ApiKey>) -> Result<Slot, Refusal> {
        let (Some(max), Some(counters)) = (key.limits.max_concurrent, &self.shared) else {
            let max = key.limits.max_concurrent.map_or(self.default_concurrent, |m| m as usize);
            return self.in_flight.enter(key, max).map(Slot::Local).ok_or(Refusal::TooManyConcurrent(max));
        };
        let lease_id = uuid::Uuid::now_v7().to_string();
        let now = Utc::now().timestamp_millis();
        let expires = now + millis(self.lease);
        counters
            .acquire_lease(&key.id, &lease_id, now, expires, i64::from(max))
            .await?
            .ok_or(Refusal::TooManyConcurrent(max as usize))?;
        Ok(Slot::Shared(Lease::hold(counters.clone(), key.id.clone(), lease_id, self.lease, &self.tracker)))
    }

    /// Admits a request that will voice `charges` for `key`, before any provider is called: its
    /// monthly budgets, then its characters per minute. Returns the characters quota, if any.
    pub async fn admit(&self, key: &ApiKey, charges: &[Charge]) -> Result<Option<Quota>, Refusal> {
        let characters: u64 = charges.iter().map(|c| c.characters as u64).sum();
        self.check_budgets(key, charges, characters).await?;
        match key.limits.characters_per_minute {
            Some(limit) => self.take(&key.id, Kind::Characters, u64::from(limit), characters).await.map(Some),
            None => Ok(None),
        }
    }

    async fn check_budgets(&self, key: &ApiKey, charges: &[Charge], characters: u64) -> Result<(), Refusal> {
        let limits = key.limits;
        if limits.monthly_character_budget.is_none() && limits.monthly_spend_limit_usd.is_none() {
            return Ok(());
        }
        let month = month_of(Utc::now());
        let (used_characters, used_nanos) = self.store.month_usage(&key.id, &month).await?;
        let used_characters = u64::try_from(used_characters).unwrap_or(0);
        if let Some(budget) = limits.monthly_character_budget {
            if used_characters.saturating_add(characters) > budget {
                return Err(Refusal::Budget(format!(
                    "this request's {characters} characters would exceed the key's monthly budget of {budget} \
                     characters ({used_characters} used in {month}, UTC)"
                )));
            }
        }
        if let Some(limit_usd) = limits.monthly_spend_limit_usd {
            let cost: i64 = charges
                .iter()
                .map(|c| self.prices.nanos(&c.provider, &c.model, i64::try_from(c.characters).unwrap_or(i64::MAX)))
                .fold(0, i64::saturating_add);
            let limit = limit_usd * crate::domain::limits::NANOS_PER_USD;
            if used_nanos.saturating_add(cost) as f64 > limit {
                let usd = crate::domain::limits::usd;
                return Err(Refusal::Budget(format!(
                    "this request's estimated ${:.6} would exceed the key's monthly spend limit of ${limit_usd} \
                     (${:.6} spent in {month}, UTC)",
                    usd(cost),
                    usd(used_nanos)
                )));
            }
        }
        Ok(())
    }

    /// Counts `amount` against a sliding-window limit of `limit` per minute.
    async fn take(&self, key_id: &str, kind: Kind, limit: u64, amount: u64) -> Result<Quota, Refusal> {
        if amount > limit {
            return Err(Refusal::LargerThanLimit { amount, limit });
        }
        let now = Utc::now().timestamp_millis();
        let start = now - now.rem_euclid(WINDOW_MS);
        let amount = i64::try_from(amount).unwrap_or(i64::MAX);
        let (current, previous) = match &self.windows {
            Windows::Shared(counters) => {
                self.prune(counters, now);
                counters.add_to_window(key_id, kind.as_str(), start, amount).await?
            }
            Windows::Local(windows) => {
                let mut windows = windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let entry = windows.entry((key_id.to_owned(), kind)).or_insert((start, 0, 0));
                if entry.0 != start {
                    let previous = if entry.0 == start - WINDOW_MS { entry.2 } else { 0 };
                    *entry = (start, previous, 0);
                }
                entry.2 += amount;
                (entry.2, entry.1)
            }
        };
        let elapsed = (now - start) as f64 / WINDOW_MS as f64;
        let window = Window { limit: limit as f64, previous: previous as f64, current: current as f64, elapsed };
        let reset = Duration::from_millis(u64::try_from(start + WINDOW_MS - now).unwrap_or(0));
        if window.used() <= window.limit {
            let remaining = (window.limit - window.used()).floor().max(0.0) as u64;
            return Ok(Quota { limit, remaining, reset });
        }
        // Refused: the request's share goes back, so that a refused request costs nothing.
        match &self.windows {
            Windows::Shared(counters) => counters.take_from_window(key_id, kind.as_str(), start, amount).await?,
            Windows::Local(windows) => {
                let mut windows = windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if let Some(entry) = windows.get_mut(&(key_id.to_owned(), kind)).filter(|e| e.0 == start) {
                    entry.2 -= amount;
                }
            }
        }
        let wait = window.wait(amount as f64);
        Err(Refusal::RateLimited { wait, quota: Quota { limit, remaining: 0, reset } })
    }

    /// Deletes windows no longer read, at most once a minute per replica, off the request path.
    fn prune(&self, counters: &Arc<dyn SharedCounters>, now: i64) {
        let last = self.pruned_at.load(Ordering::Relaxed);
        if now - last < WINDOW_MS
            || self.pruned_at.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        let counters = counters.clone();
        self.tracker.spawn(async move {
            if let Err(error) = counters.prune_windows(now - 2 * WINDOW_MS).await {
                tracing::warn!(%error, "could not prune old rate-limit windows");
            }
        });
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One sliding window as a request saw it (its own amount included in `current`).
struct Window {
    limit: f64,
    previous: f64,
    current: f64,
    /// How far into the current minute, 0 to 1.
    elapsed: f64,
}

impl Window {
    fn used(&self) -> f64 {
        self.previous * (1.0 - self.elapsed) + self.current
    }

    /// How long until `amount` more would be admitted, if nothing else were used meanwhile.
    fn wait(&self, amount: f64) -> Duration {
        let before = self.current - amount;
        let minute = WINDOW_MS as f64 / 1000.0;
        // Later in this minute, as the previous minute's weight fades.
        let room = self.limit - before - amount;
        let seconds = if room >= 0.0 && self.previous > 0.0 {
            ((1.0 - room / self.previous) - self.elapsed).max(0.0) * minute
        } else {
            // In the next minute, as this minute's weight fades in turn.
            let fade = if before > 0.0 { (1.0 - (self.limit - amount) / before).max(0.0) } else { 0.0 };
            ((1.0 - self.elapsed) + fade) * minute
        };
        Duration::from_secs_f64(seconds.clamp(0.001, 2.0 * minute))
    }
}

/// A request's place among its key's requests in progress, given back when dropped.
pub enum Slot {
    Local(InFlightSlot),
    Shared(Lease),
}

/// A lease in the shared database, renewed while held and released on drop.
pub struct Lease {
    counters: Arc<dyn SharedCounters>,
    key_id: String,
    lease_id: String,
    renewal: tokio::task::JoinHandle<()>,
    tracker: TaskTracker,
}

impl Lease {
    fn hold(
        counters: Arc<dyn SharedCounters>,
        key_id: String,
        lease_id: String,
        lifetime: Duration,
        tracker: &TaskTracker,
    ) -> Self {
        let renewal = tracker.spawn({
            let (counters, key_id, lease_id) = (counters.clone(), key_id.clone(), lease_id.clone());
            async move {
                loop {
                    tokio::time::sleep(lifetime / 3).await;
                    let expires = Utc::now().timestamp_millis() + millis(lifetime);
                    if let Err(error) = counters.renew_lease(&key_id, &lease_id, expires).await {
                        tracing::warn!(%error, "could not renew a concurrency lease; it may lapse early");
                    }
                }
            }
        });
        Self { counters, key_id, lease_id, renewal, tracker: tracker.clone() }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
        let (counters, key_id, lease_id) =
            (self.counters.clone(), std::mem::take(&mut self.key_id), std::mem::take(&mut self.lease_id));
        // Without a runtime (shutting down) the lease lapses on its own.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let release = async move {
                if let Err(error) = counters.release_lease(&key_id, &lease_id).await {
                    tracing::warn!(%error, "could not release a concurrency lease; it lapses on its own");
                }
            };
            self.tracker.spawn_on(release, &runtime);
        }
    }
}

/// One request's way to its key's limits, from the rate-limit middleware to the handler that
/// learns the request's characters. It remembers the quota closest to exhaustion for the
/// response's `RateLimit-*` headers.
pub struct Gate {
    limits: Arc<Limits>,
    key: Arc<ApiKey>,
    quota: Mutex<Option<Quota>>,
}

impl Gate {
    pub fn new(limits: Arc<Limits>, key: Arc<ApiKey>, quota: Option<Quota>) -> Self {
        Self { limits, key, quota: Mutex::new(quota) }
    }

    /// Admits the request's charges ([`Limits::admit`]).
    pub async fn admit(&self, charges: &[Charge]) -> Result<(), Refusal> {
        if !self.key.limits.needs_admission() {
            return Ok(());
        }
        match self.limits.admit(&self.key, charges).await {
            Ok(quota) => {
                self.report(quota);
                Ok(())
            }
            Err(refusal) => {
                if let Refusal::RateLimited { quota, .. } = &refusal {
                    *self.lock() = Some(*quota);
                }
                Err(refusal)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Quota>> {
        self.quota.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps whichever quota has less left.
    fn report(&self, quota: Option<Quota>) {
        let Some(quota) = quota else { return };
        let mut kept = self.lock();
        if kept.is_none_or(|k| quota.left() < k.left()) {
            *kept = Some(quota);
        }
    }

    /// The quota to report in the response headers.
    pub fn quota(&self) -> Option<Quota> {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_window_waits_for_the_previous_minute_to_fade() {
        // 10 per minute, all used in the previous minute; a request at the start of this one.
        let early = Window { limit: 10.0, previous: 10.0, current: 1.0, elapsed: 0.0 };
        let wait = early.wait(1.0);
        // One more fits once the previous minute weighs 9: after 6 s.
        assert!((wait.as_secs_f64() - 6.0).abs() < 0.01, "{wait:?}");
    }

    #[test]
    fn a_full_current_minute_waits_into_the_next() {
        // 10 per minute, all 10 used this minute (plus the refused one), 45 s in.
        let window = Window { limit: 10.0, previous: 0.0, current: 11.0, elapsed: 0.75 };
        let wait = window.wait(1.0);
        // 15 s to the edge, then until 10 × (1 - g) + 1 ≤ 10: g = 0.1, 6 s more.
        assert!((wait.as_secs_f64() - 21.0).abs() < 0.01, "{wait:?}");
    }
}
