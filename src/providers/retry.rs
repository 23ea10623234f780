//! How failed provider calls are retried, as data the registry hands every resolved model.

use std::time::Duration;

use super::ProviderError;

/// How failed provider calls are retried: only before their first event (no audio has reached
/// anyone), only for failures a retry can fix (rate limits, 5xx, timeouts, connections lost),
/// with jittered exponential backoff, honouring a provider's `Retry-After` up to `max_wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub retries: u32,
    /// The wait before the first retry; each next one doubles it (±50 % jitter).
    pub backoff: Duration,
    /// The longest wait a retry is worth; a provider asking for more is not retried.
    pub max_wait: Duration,
}

impl RetryPolicy {
    pub const NONE: RetryPolicy = RetryPolicy { retries: 0, backoff: Duration::ZERO, max_wait: Duration::ZERO };

    /// How long to wait before retry number `retry` (from 1) after `error`, or `None` when it
    /// is not worth retrying.
    pub fn wait(&self, retry: u32, error: &ProviderError) -> Option<Duration> {
        if retry > self.retries {
            return None;
        }
        let backoff = || {
            let doubled = self.backoff.saturating_mul(1 << (retry - 1).min(16));
            doubled.mul_f64(rand::Rng::gen_range(&mut rand::thread_rng(), 0.5..1.5))
        };
        let wait = match error {
            ProviderError::RateLimited { retry_after: Some(after), .. } => *after,
            ProviderError::RateLimited { retry_after: None, .. }
            | ProviderError::Unavailable { .. }
            | ProviderError::Timeout { .. }
            | ProviderError::Interrupted { .. } => backoff(),
            ProviderError::Rejected { .. } | ProviderError::Unauthorized { .. } | ProviderError::Invalid { .. } => {
                return None
            }
        };
        (wait <= self.max_wait).then_some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { retries: 2, backoff: Duration::from_millis(100), max_wait: Duration::from_secs(5) }
    }

    #[test]
    fn only_fixable_failures_are_retried_and_not_forever() {
        let p = || "p".to_owned();
        let unavailable =
            ProviderError::Unavailable { provider: p(), status: Some(503), code: None, detail: String::new() };
        let wait = policy().wait(1, &unavailable).unwrap();
        assert!((Duration::from_millis(50)..=Duration::from_millis(150)).contains(&wait), "{wait:?}");
        let second = policy().wait(2, &unavailable).unwrap();
        assert!((Duration::from_millis(100)..=Duration::from_millis(300)).contains(&second), "{second:?}");
        assert_eq!(policy().wait(3, &unavailable), None, "two retries, then the error");
        let rejected = ProviderError::Rejected { provider: p(), status: 400, code: None, detail: String::new() };
        assert_eq!(policy().wait(1, &rejected), None);
        let invalid = ProviderError::Invalid { provider: p(), detail: String::new() };
        assert_eq!(policy().wait(1, &invalid), None);
        assert_eq!(RetryPolicy::NONE.wait(1, &unavailable), None);
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let limited = |after: u64| ProviderError::RateLimited {
            provider: "p".to_owned(),
            code: None,
            retry_after: Some(Duration::from_secs(after)),
            detail: String::new(),
        };
        assert_eq!(policy().wait(1, &limited(2)), Some(Duration::from_secs(2)));
        assert_eq!(policy().wait(1, &limited(60)), None, "a long wait is the client's to decide");
    }
}
