//! The provider call: started, observed, and held until its first event so that a provider
//! that fails at once is still answered with a proper status — and retried, when its failure is
//! one a retry can fix — before anything is committed to the client.

use std::{future::Future, sync::Arc, time::Instant};

use futures::{Stream, StreamExt};
use tracing::Instrument;

use crate::{
    metrics::{Metrics, ProviderErrorLabels, ProviderLabels},
    providers::{Circuit, EventStream, ProviderError, RetryPolicy, SynthesisEvent},
    service::usage::UsageDetails,
};

/// Who is called for which segment of the request, for usage and metrics.
pub struct Segment<'a> {
    pub index: u32,
    pub provider: &'a str,
    pub model: &'a str,
    pub voice: &'a str,
    pub characters: usize,
}

/// Runs `request` (an adapter's `synthesize` or `dialogue`) and waits for its first event,
/// retried per `retry` while nothing has been received. Each attempt is observed: a
/// `provider_call` span (provider, model, characters, time to first byte), and per provider and
/// model the time to first audio, the time to the end of the audio and failures by code. Usage
/// gets a line for the segment, marked failed if the last attempt fails.
pub async fn start<F, Fut>(
    segment: Segment<'_>,
    details: &UsageDetails,
    metrics: &Arc<Metrics>,
    (retry, circuit): (RetryPolicy, &Arc<Circuit>),
    request: F,
) -> Result<EventStream, ProviderError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<EventStream, ProviderError>>,
{
    let mut retries = 0;
    loop {
        if !circuit.allow() {
            let detail = "it has been failing; skipped until its circuit breaker's cool-down has passed".to_owned();
            let error =
                ProviderError::Unavailable { provider: segment.provider.to_owned(), status: None, code: None, detail };
            details.serving(segment.index, segment.provider, segment.model, segment.voice, segment.characters);
            details.segment_failed(segment.index, "circuit_open");
            return Err(error);
        }
        let outcome = attempt(&segment, details, metrics, circuit, request()).await;
        match outcome {
            Ok(events) => return Ok(events),
            Err(error) => {
                retries += 1;
                let Some(wait) = retry.wait(retries, &error) else { return Err(error) };
                tracing::info!(
                    provider = segment.provider,
                    code = error.code(),
                    retry = retries,
                    wait_ms = wait.as_millis() as u64,
                    "retrying a provider call that failed before its first byte"
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// One call. Its circuit hears how it went: a failure before the first byte at once; a started
/// call when its stream ends — well, or broken, which says the provider is failing as surely as
/// a failure before the first byte. A probe that starts closes the circuit at once.
async fn attempt(
    segment: &Segment<'_>,
    details: &UsageDetails,
    metrics: &Arc<Metrics>,
    circuit: &Arc<Circuit>,
    request: impl Future<Output = Result<EventStream, ProviderError>>,
) -> Result<EventStream, ProviderError> {
    details.serving(segment.index, segment.provider, segment.model, segment.voice, segment.characters);
    let mut call = ProviderCall::new(metrics.clone(), segment.provider, segment.model, segment.characters);
    let provider = segment.provider.to_owned();
    let started = async {
        let mut events = request.await?;
        match events.next().await {
            Some(Ok(first)) => Ok((first, events)),
            Some(Err(err)) => Err(err),
            None => Err(ProviderError::Unavailable {
                provider,
                status: None,
                code: None,
                detail: "the provider returned no audio".to_owned(),
            }),
        }
    }
    .instrument(call.span.clone())
    .await;
    match started {
        Ok((first, events)) => {
            call.first_byte();
            circuit.started();
            Ok(Box::pin(call.observe(circuit.clone(), futures::stream::iter([Ok(first)]).chain(events))))
        }
        Err(err) => {
            circuit.record(Err(&err));
            call.failed(&err);
            details.segment_failed(segment.index, err.code());
            Err(err)
        }
    }
}

/// One provider call, observed in metrics and a tracing span. Once audio has begun, the call's
/// duration is recorded when its stream is dropped: at its end, or when the client leaves.
struct ProviderCall {
    metrics: Arc<Metrics>,
    labels: ProviderLabels,
    span: tracing::Span,
    started: Instant,
    streaming: bool,
}

impl ProviderCall {
    fn new(metrics: Arc<Metrics>, provider: &str, model: &str, characters: usize) -> Self {
        let span = tracing::info_span!(
            "provider_call",
            provider,
            model,
            characters,
            ttfb_ms = tracing::field::Empty,
            error = tracing::field::Empty
        );
        let labels = ProviderLabels { provider: provider.to_owned(), model: model.to_owned() };
        Self { metrics, labels, span, started: Instant::now(), streaming: false }
    }

    fn first_byte(&mut self) {
        self.streaming = true;
        let elapsed = self.started.elapsed();
        self.span.record("ttfb_ms", elapsed.as_secs_f64() * 1000.0);
        self.metrics.provider_ttfb.get_or_create(&self.labels).observe(elapsed.as_secs_f64());
    }

    fn failed(&self, error: &ProviderError) {
        self.span.record("error", error.code());
        let labels = ProviderErrorLabels { provider: self.labels.provider.clone(), code: error.code().to_owned() };
        self.metrics.provider_errors.get_or_create(&labels).inc();
    }

    /// The rest of the audio, with a failure mid-stream counted, and the call's outcome told
    /// to its circuit once: when the stream ends, or at its first failure. A stream the client
    /// drops midway tells it nothing.
    fn observe(
        self,
        circuit: Arc<Circuit>,
        events: impl Stream<Item = Result<SynthesisEvent, ProviderError>> + Send + 'static,
    ) -> impl Stream<Item = Result<SynthesisEvent, ProviderError>> + Send + 'static {
        let mut told = false;
        events.map(Some).chain(futures::stream::iter([None])).filter_map(move |item| {
            match &item {
                Some(Err(err)) => {
                    self.failed(err);
                    if !std::mem::replace(&mut told, true) {
                        circuit.record(Err(err));
                    }
                }
                None if !std::mem::replace(&mut told, true) => circuit.record(Ok(())),
                _ => {}
            }
            futures::future::ready(item)
        })
    }
}

impl Drop for ProviderCall {
    fn drop(&mut self) {
        if self.streaming {
            self.metrics.provider_duration.get_or_create(&self.labels).observe(self.started.elapsed().as_secs_f64());
        }
    }
}
