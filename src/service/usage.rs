//! Usage metering. Every authenticated request yields exactly one [`UsageEvent`], emitted by a
//! [`Meter`] when the response body ends, or when it is dropped early (client gone, task
//! cancelled). Events go through an unbounded queue to one background writer that inserts them in
//! batches, off the request path; at shutdown the writer drains the queue before it stops.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::ServiceError;
use crate::{
    auth::Gate,
    domain::{
        limits::month_of, text, FieldError, LogPage, MonthToDate, PriceTable, UsageEvent, UsageFilter, UsageRecord,
        UsageReport, UsageSegment,
    },
    metrics::Metrics,
    store::Store,
};

/// Where requests hand their usage events; cheap to clone.
///
/// The queue is bounded by admission, not by dropping: once `capacity` events wait, new
/// requests are refused before they do any work ([`UsageSink::is_full`], a 503 at the meter),
/// while the events of requests already admitted are always accepted. The queue therefore holds
/// at most `capacity` plus the requests in flight, and no admitted request loses its event.
#[derive(Clone)]
pub struct UsageSink {
    tx: mpsc::UnboundedSender<UsageEvent>,
    metrics: Arc<Metrics>,
    capacity: usize,
    prices: Arc<PriceTable>,
}

impl UsageSink {
    /// Queues an event, sanitised: caller-influenced text is made storable and bounded here,
    /// the one place every event passes, so no request can make a batch fail.
    pub fn record(&self, event: UsageEvent) {
        if self.tx.send(sanitize(price(event, &self.prices))).is_ok() {
            self.metrics.usage_queue_depth.inc();
        } else {
            tracing::error!(target: "speechgate::usage", "usage writer has stopped; event dropped");
        }
    }

    /// Whether the backlog has reached its bound (the database is down or too slow).
    pub fn is_full(&self) -> bool {
        usize::try_from(self.metrics.usage_queue_depth.get()).unwrap_or(0) >= self.capacity
    }
}

/// Prices what the event's provider calls billed (see [`UsageEvent::billed_characters`]): each
/// segment that did not fail, or the request itself unless it failed before its response.
fn price(mut event: UsageEvent, prices: &PriceTable) -> UsageEvent {
    if event.segments.is_empty() {
        event.spend_nanos = match (&event.provider, &event.model) {
            (Some(provider), Some(model)) => prices.nanos(provider, model, event.billed_characters()),
            _ => 0,
        };
        return event;
    }
    for segment in &mut event.segments {
        let billed = if segment.error_code.is_none() { segment.characters } else { 0 };
        segment.spend_nanos = prices.nanos(&segment.provider, &segment.model, billed);
    }
    event.spend_nanos = event.segments.iter().fold(0i64, |n, s| n.saturating_add(s.spend_nanos));
    event
}

fn sanitize(mut event: UsageEvent) -> UsageEvent {
    use text::for_record;
    event.request_id = for_record(event.request_id);
    event.key_id = event.key_id.map(for_record);
    event.route = for_record(event.route);
    event.method = for_record(event.method);
    event.provider = event.provider.map(for_record);
    event.model = event.model.map(for_record);
    event.voice = event.voice.map(for_record);
    event.error_code = event.error_code.map(for_record);
    event.segments = event
        .segments
        .into_iter()
        .map(|s| UsageSegment {
            provider: for_record(s.provider),
            model: for_record(s.model),
            voice: for_record(s.voice),
            error_code: s.error_code.map(for_record),
            ..s
        })
        .collect();
    event
}

/// Starts the background writer on `tracker`. It stops once `shutdown` is cancelled and the
/// queue is empty.
pub fn spawn_writer(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    prices: Arc<PriceTable>,
    batch: BatchPolicy,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> UsageSink {
    let (tx, rx) = mpsc::unbounded_channel();
    tracker.spawn(run_writer(store, metrics.clone(), batch, rx, shutdown));
    UsageSink { tx, metrics, capacity: batch.max_queue, prices }
}

/// How events are grouped into transactions: at most `size` per write, and after the first event
/// of a batch arrives the writer waits up to `linger` for more, so that a busy gateway writes a
/// few large transactions rather than one per request. `max_queue` bounds the backlog.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    pub size: usize,
    pub linger: Duration,
    pub max_queue: usize,
}

async fn run_writer(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    policy: BatchPolicy,
    mut rx: mpsc::UnboundedReceiver<UsageEvent>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(policy.size);
    // Events the database could not take at shutdown. Once one batch has failed that way, the
    // rest are set aside without trying: the database is down, and waiting would only delay the
    // stop.
    let mut unwritten = 0u64;
    loop {
        let received = tokio::select! {
            n = rx.recv_many(&mut batch, policy.size) => n,
            () = shutdown.cancelled() => {
                // No new events are accepted; whatever is queued is still written below.
                rx.close();
                rx.recv_many(&mut batch, policy.size).await
            }
        };
        if received == 0 {
            break;
        }
        let linger = tokio::time::sleep(policy.linger);
        tokio::pin!(linger);
        while batch.len() < policy.size && !shutdown.is_cancelled() {
            let room = policy.size - batch.len();
            tokio::select! {
                n = rx.recv_many(&mut batch, room) => if n == 0 { break },
                () = &mut linger => break,
                () = shutdown.cancelled() => break,
            }
        }
        let batch = std::mem::take(&mut batch);
        if unwritten > 0 {
            unwritten += set_aside(&metrics, batch);
        } else {
            unwritten += write_batch(store.as_ref(), &metrics, batch, &shutdown).await;
        }
    }
    if unwritten > 0 {
        tracing::error!(
            target: "speechgate::usage",
            unwritten,
            "usage writer stopped with events the database could not take; each is logged in full as `unwritten usage event`"
        );
    } else {
        tracing::info!(target: "speechgate::usage", "usage writer drained");
    }
}

/// Gives up on events the database could not take at shutdown: each is logged in full (for
/// the operator to replay) and counted. Returns how many.
fn set_aside(metrics: &Metrics, events: Vec<UsageEvent>) -> u64 {
    let n = events.len() as u64;
    for event in events {
        let event = serde_json::to_string(&event).unwrap_or_default();
        tracing::error!(target: "speechgate::usage", %event, "unwritten usage event");
    }
    metrics.usage_unwritten.inc_by(n);
    metrics.usage_queue_depth.dec_by(n as i64);
    n
}

/// Writes one batch. While the database is unavailable it retries with backoff (after shutdown
/// has begun, a bounded number of times, then sets the batch aside: logged in full, counted,
/// and returned as the number unwritten). When the database refuses the batch for good, the
/// batch is split in halves until the refused events are alone: those are set aside — logged in
/// full and counted — and every other event is written.
pub async fn write_batch(
    store: &dyn Store,
    metrics: &Metrics,
    batch: Vec<UsageEvent>,
    shutdown: &CancellationToken,
) -> u64 {
    let mut pending = vec![batch];
    let mut unwritten = 0;
    while let Some(chunk) = pending.pop() {
        let n = chunk.len() as i64;
        match insert_retrying(store, metrics, &chunk, shutdown).await {
            Ok(()) => {
                metrics.usage_written.inc_by(n as u64);
            }
            Err(err) if !err.is_data_error() => {
                tracing::error!(target: "speechgate::usage", error = %err, events = n, "the database is unreachable at shutdown; giving up on usage events");
                unwritten += set_aside(metrics, chunk);
                unwritten += pending.drain(..).map(|rest| set_aside(metrics, rest)).sum::<u64>();
                continue;
            }
            Err(_) if chunk.len() > 1 => {
                let mut first = chunk;
                let second = first.split_off(first.len() / 2);
                // Popped next: the first half, then the second, keeping the order of events.
                pending.push(second);
                pending.push(first);
                continue;
            }
            Err(err) => {
                metrics.usage_rejected.inc();
                let event = serde_json::to_string(&chunk[0]).unwrap_or_default();
                tracing::error!(target: "speechgate::usage", error = %err, %event, "the database refused a usage event; set aside");
            }
        }
        metrics.usage_queue_depth.dec_by(n);
    }
    unwritten
}

/// One insert, retried while the failure is transient (bounded once shutdown has begun).
async fn insert_retrying(
    store: &dyn Store,
    metrics: &Metrics,
    events: &[UsageEvent],
    shutdown: &CancellationToken,
) -> Result<(), crate::store::StoreError> {
    let mut delay = Duration::from_millis(50);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let Err(err) = store.insert_usage(events).await else {
            return Ok(());
        };
        metrics.usage_write_failures.inc();
        if err.is_data_error() || (shutdown.is_cancelled() && attempts >= 5) {
            return Err(err);
        }
        tracing::warn!(target: "speechgate::usage", error = %err, attempts, "usage batch write failed; retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Most tokens one vendor report may add (far beyond any real call, far below what a year of
/// rows could sum to past `i64::MAX`).
const MAX_TOKENS_PER_REPORT: u64 = u32::MAX as u64;

/// What a handler learns about its request while serving it — who serves each segment (one for
/// speech, one per turn of a conversation), its size, its audio — shared with the request's
/// [`Meter`]. Handlers get it from the request extensions; a streaming body keeps a clone and adds
/// to it as audio flows.
#[derive(Clone, Default)]
pub struct UsageDetails(Arc<std::sync::Mutex<Details>>);

/// The request's way to its key's limits (see [`UsageDetails::gate`]).
type GateSlot = Option<Arc<Gate>>;

#[derive(Default, Clone)]
struct Details {
    /// By segment index, in the order calls started.
    segments: Vec<UsageSegment>,
    error_code: Option<&'static str>,
    gate: GateSlot,
}

impl Details {
    fn segment(&mut self, index: u32) -> Option<&mut UsageSegment> {
        self.segments.iter_mut().find(|s| s.index == index)
    }

    /// The event's own fields: one segment is the request itself; several are listed, with
    /// totals, and the names the segments share.
    fn into_event_fields(mut self) -> SegmentFields {
        if self.segments.len() <= 1 {
            let only = self.segments.pop();
            return SegmentFields {
                provider: only.as_ref().map(|s| s.provider.clone()),
                model: only.as_ref().map(|s| s.model.clone()),
                voice: only.as_ref().map(|s| s.voice.clone()),
                characters: only.as_ref().map_or(0, |s| s.characters),
                audio_ms: only.as_ref().map_or(0, |s| s.audio_ms),
                tokens: only.as_ref().map_or((0, 0), |s| (s.input_tokens, s.output_tokens)),
                segments: Vec::new(),
            };
        }
        self.segments.sort_by_key(|s| s.index);
        let shared = |field: fn(&UsageSegment) -> &String| {
            let first = field(&self.segments[0]);
            self.segments.iter().all(|s| field(s) == first).then(|| first.clone())
        };
        SegmentFields {
            provider: shared(|s| &s.provider),
            model: shared(|s| &s.model),
            voice: shared(|s| &s.voice),
            characters: self.segments.iter().fold(0i64, |n, s| n.saturating_add(s.characters)),
            audio_ms: self.segments.iter().fold(0i64, |n, s| n.saturating_add(s.audio_ms)),
            tokens: self
                .segments
                .iter()
                .fold((0i64, 0i64), |(i, o), s| (i.saturating_add(s.input_tokens), o.saturating_add(s.output_tokens))),
            segments: self.segments,
        }
    }
}

struct SegmentFields {
    provider: Option<String>,
    model: Option<String>,
    voice: Option<String>,
    characters: i64,
    audio_ms: i64,
    /// Input and output tokens.
    tokens: (i64, i64),
    segments: Vec<UsageSegment>,
}

impl UsageDetails {
    fn lock(&self) -> std::sync::MutexGuard<'_, Details> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Who serves segment `index`, as soon as it is known (so even a failed call names them).
    pub fn serving(&self, index: u32, provider: &str, model: &str, voice: &str, characters: usize) {
        let line = UsageSegment {
            index,
            provider: provider.to_owned(),
            model: model.to_owned(),
            voice: voice.to_owned(),
            characters: i64::try_from(characters).unwrap_or(i64::MAX),
            audio_ms: 0,
            spend_nanos: 0,
            input_tokens: 0,
            output_tokens: 0,
            error_code: None,
        };
        let mut d = self.lock();
        match d.segment(index) {
            Some(existing) => *existing = line,
            None => d.segments.push(line),
        }
    }

    /// Adds what the vendor reported it billed in tokens for call `index`.
    /// A vendor's count is untrusted: each report is capped at [`MAX_TOKENS_PER_REPORT`], so
    /// that no stored row can overflow the sums of the usage summary.
    pub fn add_tokens(&self, index: u32, tokens: crate::providers::TokenUsage) {
        let count = |n: u64| i64::try_from(n.min(MAX_TOKENS_PER_REPORT)).unwrap_or(0);
        if let Some(segment) = self.lock().segment(index) {
            segment.input_tokens = segment.input_tokens.saturating_add(count(tokens.input));
            segment.output_tokens = segment.output_tokens.saturating_add(count(tokens.output));
        }
    }

    pub fn add_audio_ms(&self, index: u32, ms: u64) {
        if let Some(segment) = self.lock().segment(index) {
            segment.audio_ms = segment.audio_ms.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX));
        }
    }

    /// Marks one provider call as failed.
    pub fn segment_failed(&self, index: u32, code: &'static str) {
        if let Some(segment) = self.lock().segment(index) {
            segment.error_code = Some(code.to_owned());
        }
    }

    /// Hands the request its key's limits, for the admission of its characters once known.
    pub fn set_gate(&self, gate: Arc<Gate>) {
        self.lock().gate = Some(gate);
    }

    /// The key's limits, when the request has a key with any.
    pub fn gate(&self) -> Option<Arc<Gate>> {
        self.lock().gate.clone()
    }

    /// Marks the response as failed after its head was sent (e.g. the upstream stream broke).
    pub fn fail(&self, code: &'static str) {
        self.lock().error_code = Some(code);
    }
}

/// What is known about a request when its metering starts.
pub struct MeterStart {
    pub request_id: String,
    pub key_id: Option<String>,
    pub project_id: Option<String>,
    pub route: String,
    pub method: String,
    pub started: Instant,
}

/// Follows one request to its end and emits its usage event exactly once: from [`Meter::finish`]
/// when the body completes, or from `Drop` when the request is abandoned.
pub struct Meter {
    sink: UsageSink,
    start: MeterStart,
    details: UsageDetails,
    created_at: DateTime<Utc>,
    status: Option<u16>,
    error_code: Option<String>,
    first_byte: Option<Duration>,
    bytes_out: u64,
    done: bool,
}

/// The slug recorded when the client went away before the response was complete.
pub const CLIENT_DISCONNECTED: &str = "client_disconnected";

impl Meter {
    pub fn new(sink: UsageSink, start: MeterStart, details: UsageDetails) -> Self {
        Self {
            sink,
            start,
            details,
            created_at: Utc::now(),
            status: None,
            error_code: None,
            first_byte: None,
            bytes_out: 0,
            done: false,
        }
    }

    /// The response head is about to be sent.
    pub fn respond(&mut self, status: u16, error_code: Option<String>) {
        self.status = Some(status);
        self.error_code = error_code;
    }

    /// Body bytes are being handed to the client.
    pub fn sent(&mut self, bytes: usize) {
        if self.first_byte.is_none() && bytes > 0 {
            self.first_byte = Some(self.start.started.elapsed());
        }
        self.bytes_out += bytes as u64;
    }

    /// The body ended normally.
    pub fn finish(&mut self) {
        self.emit(None);
    }

    fn emit(&mut self, override_code: Option<&str>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let details = self.details.lock().clone();
        let error_code = details.error_code;
        let fields = details.into_event_fields();
        self.sink.record(UsageEvent {
            request_id: std::mem::take(&mut self.start.request_id),
            key_id: self.start.key_id.take(),
            project_id: self.start.project_id.take(),
            route: std::mem::take(&mut self.start.route),
            method: std::mem::take(&mut self.start.method),
            provider: fields.provider,
            model: fields.model,
            voice: fields.voice,
            characters: fields.characters,
            audio_ms: fields.audio_ms,
            // Priced by the sink.
            spend_nanos: 0,
            input_tokens: fields.tokens.0,
            output_tokens: fields.tokens.1,
            bytes_out: i64::try_from(self.bytes_out).unwrap_or(i64::MAX),
            // 499: the client closed the request before any response was sent.
            status: self.status.unwrap_or(499),
            // A failure the body reported beats "the client went away", which beats the head's code.
            error_code: error_code.or(override_code).map(str::to_owned).or_else(|| self.error_code.take()),
            latency_ms: millis(self.start.started.elapsed()),
            ttfb_ms: self.first_byte.map(millis),
            created_at: self.created_at,
            segments: fields.segments,
        });
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.emit(Some(CLIENT_DISCONNECTED));
    }
}

/// Longest range one usage query may cover.
const MAX_RANGE_DAYS: i64 = 366;

/// Usage per day, provider and model in `[from, to)`, defaulting to the last 30 days.
pub async fn summary(
    store: &dyn Store,
    key_id: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<UsageReport, ServiceError> {
    // Dates at the calendar's edges parse, but no usage lies there and the databases' own date
    // functions refuse them: the range is years 1 to 9999.
    for (field, date) in [("from", from), ("to", to)] {
        if date.is_some_and(|d| !(1..=9999).contains(&chrono::Datelike::year(&d))) {
            return Err(ServiceError::Validation(vec![FieldError::new(field, "must be within the years 1 to 9999")]));
        }
    }
    let to = to.unwrap_or_else(Utc::now);
    // Arithmetic on dates near the edges must not overflow either.
    let from = match from {
        Some(from) => from,
        None => to.checked_sub_signed(chrono::Duration::days(30)).ok_or_else(|| {
            ServiceError::Validation(vec![FieldError::new("to", "is too early for a default range; give `from`")])
        })?,
    };
    if from >= to {
        return Err(ServiceError::Validation(vec![FieldError::new("from", "must be earlier than `to`")]));
    }
    if to.signed_duration_since(from) > chrono::Duration::days(MAX_RANGE_DAYS) {
        return Err(ServiceError::Validation(vec![FieldError::new(
            "from",
            format!("the range may cover at most {MAX_RANGE_DAYS} days"),
        )]));
    }
    let filter = UsageFilter { key_id, from, to };
    Ok(store.usage_summary(&filter).await?)
}

/// `key`'s use of the current UTC month against its budgets.
pub async fn month_to_date(store: &dyn Store, key: &crate::domain::ApiKey) -> Result<MonthToDate, ServiceError> {
    let month = month_of(Utc::now());
    let (characters, spend_usd) = store.month_usage(&key.id, &month).await?;
    Ok(MonthToDate {
        month,
        characters,
        spend_usd,
        monthly_character_budget: key.limits.monthly_character_budget,
        monthly_spend_limit_usd: key.limits.monthly_spend_limit_usd,
    })
}

pub const MAX_LOG_PAGE: u32 = 200;

/// One page of the usage log, newest first, with the cursor of the next page if there is one.
pub async fn log_page(
    store: &dyn Store,
    key_id: Option<&str>,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> Result<(Vec<UsageRecord>, Option<String>), ServiceError> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_LOG_PAGE).contains(&limit) {
        return Err(ServiceError::Validation(vec![FieldError::new(
            "limit",
            format!("must be between 1 and {MAX_LOG_PAGE}"),
        )]));
    }
    let before = cursor
        .map(|c| {
            decode_cursor(c).ok_or_else(|| {
                ServiceError::Validation(vec![FieldError::new("cursor", "is not a cursor this API returned")])
            })
        })
        .transpose()?;
    // One extra row tells whether another page follows.
    let mut rows = store.list_usage(key_id, LogPage { before, limit: limit + 1 }).await?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| encode_cursor(r.seq))
    } else {
        None
    };
    Ok((rows, next))
}

fn encode_cursor(seq: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("u{seq}"))
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?;
    std::str::from_utf8(&raw).ok()?.strip_prefix('u')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vendor's token count is untrusted: an absurd one is capped per report, so summing a
    /// month of rows can never overflow the database's integers.
    #[test]
    fn token_reports_are_capped() {
        let details = UsageDetails::default();
        details.serving(0, "gemini", "m", "v", 5);
        let absurd = crate::providers::TokenUsage { input: u64::MAX, output: 7 };
        details.add_tokens(0, absurd);
        details.add_tokens(0, absurd);
        let segment = details.lock().segments[0].clone();
        assert_eq!((segment.input_tokens, segment.output_tokens), (2 * i64::from(u32::MAX), 14));
    }

    /// Whatever a request managed to put in its event, what is queued can be stored and logged:
    /// the sink is the one door, and it does not rely on earlier checks.
    #[test]
    fn the_sink_queues_only_storable_text() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sink = UsageSink { tx, metrics: Arc::new(Metrics::new()), capacity: 10, prices: Arc::default() };
        let segment = UsageSegment {
            index: 1,
            provider: "eleven\u{0}labs".into(),
            model: "m".repeat(10_000),
            voice: "al\u{0}loy\n\u{1b}[2J".into(),
            characters: 7,
            audio_ms: 900,
            spend_nanos: 0,
            input_tokens: 0,
            output_tokens: 0,
            error_code: Some("upstream\u{0}".into()),
        };
        sink.record(UsageEvent {
            request_id: "r\u{0}1".into(),
            key_id: None,
            project_id: None,
            route: "/v1/audio/speech".into(),
            method: "POST".into(),
            provider: Some("openai".into()),
            model: Some("m".repeat(10_000)),
            voice: Some("al\u{0}loy\n\u{1b}[2J".into()),
            characters: 2,
            audio_ms: 0,
            spend_nanos: 0,
            input_tokens: 0,
            output_tokens: 0,
            bytes_out: 0,
            status: 200,
            error_code: None,
            latency_ms: 1,
            ttfb_ms: None,
            created_at: Utc::now(),
            segments: vec![segment],
        });
        let queued = rx.try_recv().unwrap_or_else(|_| unreachable!("the event was queued"));
        assert_eq!(queued.request_id, "r\u{FFFD}1");
        assert_eq!(queued.voice.as_deref(), Some("al\u{FFFD}loy\u{FFFD}\u{FFFD}[2J"));
        assert_eq!(queued.model.map(|m| m.chars().count()), Some(text::MAX_RECORD_CHARS));
        assert_eq!(sink.metrics.usage_queue_depth.get(), 1);
        // The same door for each provider call's line.
        let [segment] = queued.segments.as_slice() else { unreachable!("one segment was queued") };
        assert_eq!(segment.provider, "eleven\u{FFFD}labs");
        assert_eq!(segment.model.chars().count(), text::MAX_RECORD_CHARS);
        assert_eq!(segment.voice, "al\u{FFFD}loy\u{FFFD}\u{FFFD}[2J");
        assert_eq!(segment.error_code.as_deref(), Some("upstream\u{FFFD}"));
        assert_eq!((segment.index, segment.characters, segment.audio_ms), (1, 7, 900), "numbers pass unchanged");
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("not-a-cursor"), None);
        assert_eq!(decode_cursor(""), None);
    }
}
