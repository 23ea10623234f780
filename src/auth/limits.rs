//! Per-replica limits: token buckets (failed authentications per client address) and in-flight
//! request counts per key (keys without their own `maxConcurrent`, and every key on SQLite).
//! State lives in this replica's memory; the limits shared by replicas are in `quota`.

use std::{
    borrow::Borrow,
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::domain::ApiKey;

/// Token buckets by id (key ids, client addresses). Buckets that have refilled are pruned when
/// the map has grown large, so ids chosen by strangers (client addresses) cannot grow it without
/// bound; pruning waits until the map has doubled since the last prune, so its cost stays
/// proportional to inserts.
pub struct RateLimiter<K = String> {
    buckets: Mutex<Buckets<K>>,
}

struct Buckets<K> {
    by_id: HashMap<K, Bucket>,
    prune_at: usize,
}

impl<K> Default for RateLimiter<K> {
    fn default() -> Self {
        Self { buckets: Mutex::new(Buckets { by_id: HashMap::new(), prune_at: 0 }) }
    }
}

/// Buckets kept before full ones are pruned.
const PRUNE_ABOVE: usize = 10_000;

struct Bucket {
    tokens: f64,
    refilled_at: Instant,
    /// Capacity and refill rate, per bucket: ids may have different limits.
    capacity: f64,
    per_second: f64,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.refilled_at = now;
    }
}

impl<K: Hash + Eq> RateLimiter<K> {
    /// Takes one token from the id's bucket, or says how long until one is available.
    pub fn acquire<Q>(&self, id: &Q, per_minute: u32, now: Instant) -> Result<(), Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.take(id, per_minute, now, true)
    }

    /// How long until the id's bucket holds a token again, without taking one.
    pub fn check<Q>(&self, id: &Q, per_minute: u32, now: Instant) -> Result<(), Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.take(id, per_minute, now, false)
    }

    fn take<Q>(&self, id: &Q, per_minute: u32, now: Instant, consume: bool) -> Result<(), Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let capacity = f64::from(per_minute.max(1));
        let per_second = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !buckets.by_id.contains_key(id) {
            // An unseen id has a full bucket: checking it needs no entry.
            if !consume {
                return Ok(());
            }
            if buckets.by_id.len() >= buckets.prune_at.max(PRUNE_ABOVE) {
                // A full bucket holds nothing a new one would not.
                buckets.by_id.retain(|_, b| {
                    b.refill(now);
                    b.tokens < b.capacity
                });
                buckets.prune_at = buckets.by_id.len() * 2;
            }
            buckets.by_id.insert(id.to_owned(), Bucket { tokens: capacity, refilled_at: now, capacity, per_second });
        }
        let Some(bucket) = buckets.by_id.get_mut(id) else {
            return Ok(());
        };
        bucket.capacity = capacity;
        bucket.per_second = per_second;
        bucket.refill(now);
        if bucket.tokens >= 1.0 {
            if consume {
                bucket.tokens -= 1.0;
            }
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

/// Requests in progress per key on this replica. A key's count stays in the map at zero, so a
/// request allocates nothing; the map holds at most one entry per key ever used here.
#[derive(Default)]
pub struct InFlight {
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

/// One request's place in its key's count, given back when dropped (when the response body
/// has ended or the client has gone).
pub struct InFlightSlot {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    key: Arc<ApiKey>,
}

impl InFlight {
    /// A slot for one more request of `key`, unless it already has `max` in progress.
    pub fn enter(&self, key: &Arc<ApiKey>, max: usize) -> Option<InFlightSlot> {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !counts.contains_key(&key.id) {
            counts.insert(key.id.clone(), 0);
        }
        let count = counts.get_mut(&key.id)?;
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(InFlightSlot { counts: self.counts.clone(), key: key.clone() })
    }
}

impl Drop for InFlightSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = counts.get_mut(&self.key.id) {
            *count = count.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_of_the_limit_then_refills_at_the_rate() {
        let limiter = RateLimiter::<String>::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.acquire("k", 3, t0).is_ok());
        }
        let wait = limiter.acquire("k", 3, t0).expect_err("fourth request in the same instant is limited");
        assert!(wait > Duration::from_secs(19) && wait <= Duration::from_secs(20), "{wait:?}");
        assert!(limiter.acquire("other", 3, t0).is_ok(), "buckets are per key");
        assert!(limiter.acquire("k", 3, t0 + Duration::from_secs(20)).is_ok());
        assert!(limiter.check("k", 3, t0 + Duration::from_secs(20)).is_err(), "checking takes no token");
        assert!(limiter.check("unseen", 3, t0).is_ok());
    }

    #[test]
    fn buckets_of_strangers_are_pruned_once_refilled() {
        let limiter = RateLimiter::<String>::default();
        let t0 = Instant::now();
        for i in 0..PRUNE_ABOVE - 1 {
            let _ = limiter.acquire(&format!("10.0.{}.{}", i / 256, i % 256), 30, t0);
        }
        let _ = limiter.acquire("slow", 1, t0);
        // Two minutes on, every stranger's bucket is full again; the slow key's is not.
        let later = t0 + Duration::from_secs(30);
        let _ = limiter.acquire("newcomer", 30, later);
        let buckets = limiter.buckets.lock().unwrap();
        assert!(buckets.by_id.len() <= 3, "{} buckets kept", buckets.by_id.len());
        assert!(buckets.by_id.contains_key("slow"), "a bucket is pruned by its own rate");
    }

    fn key(id: &str) -> Arc<ApiKey> {
        Arc::new(ApiKey {
            id: id.to_owned(),
            name: "n".to_owned(),
            project_id: "prj_n".to_owned(),
            scopes: Vec::new(),
            limits: crate::domain::KeyLimits::default(),
            moderation_exempt: false,
            created_at: chrono::Utc::now(),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
        })
    }

    #[test]
    fn in_flight_slots_are_counted_and_given_back() {
        let in_flight = InFlight::default();
        let (k, other) = (key("k"), key("other"));
        let first = in_flight.enter(&k, 2);
        let second = in_flight.enter(&k, 2);
        assert!(first.is_some() && second.is_some());
        assert!(in_flight.enter(&k, 2).is_none());
        assert!(in_flight.enter(&other, 2).is_some(), "per key");
        drop(first);
        assert!(in_flight.enter(&k, 2).is_some());
    }
}
