//! Per-key request rate limits: a token bucket per key that holds `rate_limit_per_minute`
//! tokens and refills continuously. State lives in this replica's memory, so with N replicas
//! behind a round-robin balancer a key gets up to N times its limit; shared limits and budgets
//! belong in the database and come with the budgets work.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

impl RateLimiter {
    /// Takes one token from the key's bucket, or says how long until one is available.
    pub fn acquire(&self, key_id: &str, per_minute: u32, now: Instant) -> Result<(), Duration> {
        let capacity = f64::from(per_minute.max(1));
        let per_second = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = buckets.entry(key_id.to_owned()).or_insert(Bucket { tokens: capacity, refilled_at: now });
        let elapsed = now.saturating_duration_since(bucket.refilled_at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_of_the_limit_then_refills_at_the_rate() {
        let limiter = RateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.acquire("k", 3, t0).is_ok());
        }
        let wait = limiter.acquire("k", 3, t0).expect_err("fourth request in the same instant is limited");
        assert!(wait > Duration::from_secs(19) && wait <= Duration::from_secs(20), "{wait:?}");
        assert!(limiter.acquire("other", 3, t0).is_ok(), "buckets are per key");
        assert!(limiter.acquire("k", 3, t0 + Duration::from_secs(20)).is_ok());
    }
}
