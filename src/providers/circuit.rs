//! A circuit breaker per provider: after `threshold` calls in a row fail in a way that says the
//! provider is down (5xx, timeouts, lost connections, answers that are not its API), it is not
//! called for `cooldown`; then one call probes it, and closes the circuit if it succeeds. Rate
//! limits and refused requests say nothing about the provider's health and count as successes of
//! the connection.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use super::ProviderError;

/// A circuit's state, as `/readyz` and `/metrics` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
enum Inner {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out; everything else is refused until it ends (or, if its outcome never
    /// comes — its caller went away — until another cool-down has passed).
    HalfOpen {
        probing_since: Instant,
    },
}

#[derive(Debug)]
pub struct Circuit {
    inner: Mutex<Inner>,
    threshold: u32,
    cooldown: Duration,
}

impl Circuit {
    /// `threshold` 0 never opens.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self { inner: Mutex::new(Inner::Closed { failures: 0 }), threshold, cooldown }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn state(&self) -> CircuitState {
        match *self.lock() {
            Inner::Closed { .. } => CircuitState::Closed,
            Inner::Open { until } if Instant::now() >= until => CircuitState::HalfOpen,
            Inner::Open { .. } => CircuitState::Open,
            Inner::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Whether a call may go out now. After the cool-down, the first caller gets to probe.
    pub fn allow(&self) -> bool {
        let mut inner = self.lock();
        let now = Instant::now();
        let probe = match *inner {
            Inner::Closed { .. } => return true,
            Inner::Open { until } => now >= until,
            Inner::HalfOpen { probing_since } => now.duration_since(probing_since) >= self.cooldown,
        };
        if probe {
            *inner = Inner::HalfOpen { probing_since: now };
        }
        probe
    }

    /// A call that was allowed has started to answer: a probe that gets this far closes the
    /// circuit; otherwise its outcome is told when its stream ends ([`Circuit::record`]).
    pub fn started(&self) {
        let mut inner = self.lock();
        if matches!(*inner, Inner::HalfOpen { .. }) {
            *inner = Inner::Closed { failures: 0 };
        }
    }

    /// The outcome of a call that was allowed.
    pub fn record(&self, outcome: Result<(), &ProviderError>) {
        let down = matches!(
            outcome,
            Err(ProviderError::Unavailable { .. }
                | ProviderError::Timeout { .. }
                | ProviderError::Interrupted { .. }
                | ProviderError::Invalid { .. })
        );
        let mut inner = self.lock();
        *inner = match (&*inner, down) {
            (_, false) => Inner::Closed { failures: 0 },
            (Inner::Closed { failures }, true) if self.threshold == 0 || failures + 1 < self.threshold => {
                Inner::Closed { failures: failures + 1 }
            }
            (Inner::Closed { .. } | Inner::HalfOpen { .. } | Inner::Open { .. }, true) => {
                Inner::Open { until: Instant::now() + self.cooldown }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> ProviderError {
        ProviderError::Unavailable { provider: "p".into(), status: Some(503), code: None, detail: String::new() }
    }

    #[test]
    fn opens_after_consecutive_failures_then_probes_once() {
        let circuit = Circuit::new(3, Duration::from_millis(30));
        for _ in 0..2 {
            assert!(circuit.allow());
            circuit.record(Err(&down()));
        }
        // A refusal in between is no sign of trouble: the count starts again.
        let refused = ProviderError::Rejected { provider: "p".into(), status: 400, code: None, detail: String::new() };
        circuit.record(Err(&refused));
        for _ in 0..3 {
            assert!(circuit.allow());
            circuit.record(Err(&down()));
        }
        assert_eq!(circuit.state(), CircuitState::Open);
        assert!(!circuit.allow(), "open: skipped");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(circuit.state(), CircuitState::HalfOpen);
        assert!(circuit.allow(), "the probe");
        assert!(!circuit.allow(), "only one probe at a time");
        circuit.record(Err(&down()));
        assert_eq!(circuit.state(), CircuitState::Open, "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(40));
        assert!(circuit.allow());
        circuit.record(Ok(()));
        assert_eq!(circuit.state(), CircuitState::Closed);
        assert!(circuit.allow());
    }
}
