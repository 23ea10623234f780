//! Prometheus metrics. One registry per running app (not a global), so tests can run many apps
//! in one process. Labels are low-cardinality: route templates, status codes and error slugs.

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub route: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CircuitLabels {
    pub provider: String,
    /// `closed`, `open` or `half_open`; the series of the current state is 1, the others 0.
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderErrorLabels {
    pub provider: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<RequestLabels, Histogram>,
    pub errors: Family<ErrorLabels, Counter>,
    pub in_flight: Gauge,
    pub usage_queue_depth: Gauge,
    pub usage_written: Counter,
    pub usage_write_failures: Counter,
    /// Events a database refused for good (set aside and logged, never retried).
    pub usage_rejected: Counter,
    /// Events not written because the database was unreachable at shutdown (each logged).
    pub usage_unwritten: Counter,
    /// Requests turned away before any work: usage backlog, overload, concurrency per key,
    /// failed-authentication throttling.
    shed: Family<ReasonLabels, Counter>,
    /// Provider calls: time to the response head (first event) and to the end of the audio.
    pub provider_ttfb: Family<ProviderLabels, Histogram>,
    pub provider_duration: Family<ProviderLabels, Histogram>,
    pub provider_errors: Family<ProviderErrorLabels, Counter>,
    /// Each provider's circuit breaker, set when metrics are scraped.
    pub provider_circuit: Family<CircuitLabels, Gauge>,
    /// Route targets that failed before their first audio, so the next target was tried.
    fallbacks: Family<ProviderErrorLabels, Counter>,
    /// Content moderation of requests, by outcome: `clean`, `flagged`, `failed_closed`,
    /// `failed_open`, `exempt`.
    moderation_checks: Family<OutcomeLabels, Counter>,
    /// Moderation calls that failed, by reason: `timeout`, `unreachable`, `status`, `invalid_answer`.
    moderation_errors: Family<ReasonLabels, Counter>,
    pub moderation_duration: Histogram,
}

fn latency_buckets() -> Histogram {
    Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("speechgate");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_duration = Family::<RequestLabels, Histogram>::new_with_constructor(latency_buckets);
        let errors = Family::<ErrorLabels, Counter>::default();
        let in_flight = Gauge::default();
        let usage_queue_depth = Gauge::default();
        let usage_written = Counter::default();
        let usage_write_failures = Counter::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response headers",
            request_duration.clone(),
        );
        registry.register("http_errors", "Error responses by stable error code", errors.clone());
        registry.register("http_requests_in_flight", "Requests being handled now", in_flight.clone());
        registry.register(
            "usage_writer_queue_depth",
            "Usage events waiting to be written to the database",
            usage_queue_depth.clone(),
        );
        registry.register("usage_events_written", "Usage events written to the database", usage_written.clone());
        registry.register(
            "usage_write_failures",
            "Failed attempts to write a batch of usage events",
            usage_write_failures.clone(),
        );
        let usage_rejected = Counter::default();
        registry.register(
            "usage_events_rejected",
            "Usage events the database refused for good; each is logged in full",
            usage_rejected.clone(),
        );
        let usage_unwritten = Counter::default();
        registry.register(
            "usage_events_unwritten",
            "Usage events not written because the database was unreachable at shutdown; each is logged in full",
            usage_unwritten.clone(),
        );
        let shed = Family::<ReasonLabels, Counter>::default();
        registry.register("requests_shed", "Requests turned away before any work, by reason", shed.clone());
        let provider_ttfb = Family::<ProviderLabels, Histogram>::new_with_constructor(latency_buckets);
        registry.register(
            "provider_first_byte_seconds",
            "Time from calling a provider to its first audio",
            provider_ttfb.clone(),
        );
        let provider_duration = Family::<ProviderLabels, Histogram>::new_with_constructor(latency_buckets);
        registry.register(
            "provider_request_duration_seconds",
            "Time from calling a provider to the end of its audio",
            provider_duration.clone(),
        );
        let provider_errors = Family::<ProviderErrorLabels, Counter>::default();
        registry.register("provider_errors", "Failed provider calls by error code", provider_errors.clone());
        let provider_circuit = Family::<CircuitLabels, Gauge>::default();
        registry.register(
            "provider_circuit",
            "Each provider's circuit breaker: 1 for its current state",
            provider_circuit.clone(),
        );
        let fallbacks = Family::<ProviderErrorLabels, Counter>::default();
        registry.register(
            "route_fallbacks",
            "Route targets that failed before their first audio, so the next target was tried, by failing provider and code",
            fallbacks.clone(),
        );
        let moderation_checks = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "moderation_checks",
            "Requests checked by content moderation, by outcome",
            moderation_checks.clone(),
        );
        let moderation_errors = Family::<ReasonLabels, Counter>::default();
        registry.register("moderation_errors", "Failed content moderation calls, by reason", moderation_errors.clone());
        let moderation_duration = latency_buckets();
        registry.register(
            "moderation_duration_seconds",
            "Time to check a request's texts with the moderation service",
            moderation_duration.clone(),
        );
        Self {
            moderation_checks,
            moderation_errors,
            moderation_duration,
            provider_circuit,
            fallbacks,
            registry,
            usage_rejected,
            usage_unwritten,
            shed,
            provider_ttfb,
            provider_duration,
            provider_errors,
            requests,
            request_duration,
            errors,
            in_flight,
            usage_queue_depth,
            usage_written,
            usage_write_failures,
        }
    }

    /// Counts a request turned away before any work.
    pub fn shed(&self, reason: &str) {
        self.shed.get_or_create(&ReasonLabels { reason: reason.to_owned() }).inc();
    }

    /// Counts a route target that failed with `code`, so the next one was tried.
    pub fn fallback(&self, provider: &str, code: &str) {
        self.fallbacks
            .get_or_create(&ProviderErrorLabels { provider: provider.to_owned(), code: code.to_owned() })
            .inc();
    }

    /// Counts a request's content moderation outcome.
    pub fn moderation(&self, outcome: &str) {
        self.moderation_checks.get_or_create(&OutcomeLabels { outcome: outcome.to_owned() }).inc();
    }

    /// Counts a failed moderation call.
    pub fn moderation_error(&self, reason: &str) {
        self.moderation_errors.get_or_create(&ReasonLabels { reason: reason.to_owned() }).inc();
    }

    /// Records a provider's circuit state.
    pub fn circuit(&self, provider: &str, state: &str) {
        for known in ["closed", "open", "half_open"] {
            let labels = CircuitLabels { provider: provider.to_owned(), state: known.to_owned() };
            self.provider_circuit.get_or_create(&labels).set(i64::from(known == state));
        }
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
