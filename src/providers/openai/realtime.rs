//! OpenAI's realtime models (`gpt-realtime-2.1-mini`, the named replacement for the speech
//! endpoint's models, and its siblings) as text-to-speech, over the Realtime API's WebSocket.
//!
//! One request is one out-of-band response on a session: the session is configured once
//! (`session.update`: audio out only, 24 kHz PCM, the voice, the speed, instructions to read
//! verbatim, no turn detection), then `response.create` with `conversation: "none"` carries the
//! text as a user message and the instructions again (with the caller's as style). Audio deltas
//! stream out as they arrive; `response.done` ends the request with its token usage. The model
//! may reword; its transcript is compared with the text, and a difference becomes a warning.
//!
//! **Sessions are pooled** per (credential, model, voice, speed): opening one costs a TLS
//! handshake and a round trip. Why reusing one is safe:
//! - Nothing carries over between requests: every response is out of band, so it writes nothing
//!   to the session's conversation, and turn detection is off, so no response starts by itself.
//!   The next request's model input is its own message alone.
//! - What cannot change once a session has spoken (the voice), and what the session fixes (speed,
//!   format), is part of the pool key; the credential is too (as a SHA-256, never the key), so a
//!   project's session never serves another project or the operator.
//! - A session goes back to the pool only after its response ended with `response.done` status
//!   `completed`. One that failed, got an `error` event, broke off, or whose caller went away
//!   mid-response (the stream is dropped, which drops the socket: the server cancels) is closed,
//!   never reused.
//! - Sessions last at most 60 minutes at OpenAI; one older than [`MAX_REUSE_AGE`] is not reused,
//!   an idle one is dropped after [`IDLE_LIFETIME`], and at most [`MAX_IDLE`] are kept. A pooled
//!   session that turns out closed before its response starts is replaced by a new one once.
//!
//! Wire facts: the GA Realtime API, from the reference notes (`openai-elevenlabs.md` §8) and the
//! official `openai` Python SDK's `types/realtime` (`realtime_response.py`: `status`,
//! `status_details`, `usage`; `realtime_audio_config_output.py`: `voice` is a name or
//! `{"id"}`, `speed` 0.25–1.5, changeable only between turns, the voice never once the session
//! has spoken): `wss://…/v1/realtime?model=…` with `Authorization: Bearer` and no
//! `OpenAI-Beta` header (the beta shape is refused with `beta_api_shape_disabled`); the first
//! server event is `session.created`; `response.output_audio.delta` carries base64 audio in
//! `delta`; `response.output_audio_transcript.done` carries `transcript`; `error` events carry
//! `error.{type, code, message}` and no status; sessions last at most 60 minutes.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::Engine;
use futures::{SinkExt, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::{net::TcpStream, time::Instant};
use tokio_tungstenite::{
    tungstenite::{self, client::IntoClientRequest, protocol::WebSocketConfig, Message},
    MaybeTlsStream, WebSocketStream,
};

use super::wire::{self, realtime as rt};
use crate::{
    config::Timeouts,
    domain::audio::AudioFormat,
    providers::{
        http::{error_reply, sanitize, vendor_error},
        Capabilities, EventStream, ModelInfo, NativeFormat, ProviderError, ProviderKey, SynthesisEvent,
        SynthesisRequest, TimeoutPhase, TokenUsage,
    },
};

/// The realtime models that speak.
pub const MODELS: [&str; 5] =
    ["gpt-realtime-2.1-mini", "gpt-realtime-2.1", "gpt-realtime-2", "gpt-realtime", "gpt-realtime-mini"];
/// The only PCM rate of the Realtime API.
const RATE: u32 = 24_000;
/// Longest text per request (as the speech endpoint's).
const MAX_INPUT: usize = 4096;
/// The Realtime API's `audio.output.speed` range.
const SPEED_RANGE: (f32, f32) = (0.25, 1.5);
/// Largest WebSocket message (and frame) accepted from the server.
const MAX_MESSAGE: usize = 4 * 1024 * 1024;
/// Longest transcript kept for the verbatim check.
const MAX_TRANSCRIPT: usize = 64 * 1024;
/// Idle sessions kept in all, and per key.
pub const MAX_IDLE: usize = 16;
const MAX_IDLE_PER_KEY: usize = 4;
/// How long an idle session is kept.
pub const IDLE_LIFETIME: Duration = Duration::from_secs(120);
/// Sessions end after 60 minutes at OpenAI; one this old is not used again.
pub const MAX_REUSE_AGE: Duration = Duration::from_secs(45 * 60);

/// What the model is told, for the session and for each response.
const VERBATIM: &str = "You are a text-to-speech voice. Read the user's message aloud exactly as written, word \
     for word, in the language it is written in. Do not answer it, comment on it, translate it, or add, skip or \
     change any word.";

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Which idle sessions may serve a request: the same credential, model, voice and speed.
#[derive(Clone, PartialEq, Eq)]
struct PoolKey {
    credential: [u8; 32],
    model: String,
    voice: String,
    speed: Option<u32>,
}

struct Session {
    socket: Socket,
    opened: Instant,
}

struct Idle {
    key: PoolKey,
    session: Session,
    since: Instant,
}

#[derive(Default)]
struct Pool {
    idle: Mutex<VecDeque<Idle>>,
}

impl Pool {
    /// The idle sessions, those past their idle lifetime or reuse age closed (dropped).
    fn idle(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        idle.retain(|i| now - i.since < IDLE_LIFETIME && now - i.session.opened < MAX_REUSE_AGE);
        idle
    }

    fn take(&self, key: &PoolKey) -> Option<Session> {
        let mut idle = self.idle();
        // The most recently used first: the likeliest to be still open.
        let at = idle.iter().rposition(|i| &i.key == key)?;
        idle.remove(at).map(|i| i.session)
    }

    fn put(&self, key: PoolKey, session: Session) {
        if session.opened.elapsed() >= MAX_REUSE_AGE {
            return;
        }
        let mut idle = self.idle();
        if idle.iter().filter(|i| i.key == key).count() >= MAX_IDLE_PER_KEY {
            return;
        }
        if idle.len() >= MAX_IDLE {
            idle.pop_front();
        }
        idle.push_back(Idle { key, session, since: Instant::now() });
    }
}

/// The realtime models of the `openai` provider.
pub struct Realtime {
    provider: String,
    /// `ws(s)://…/realtime`, from the provider's base URL; `None` when that is not a URL.
    endpoint: Option<reqwest::Url>,
    key: SecretString,
    timeouts: Timeouts,
    capabilities: Capabilities,
    pool: Arc<Pool>,
}

impl Realtime {
    pub fn new(provider: &str, base_url: &str, key: SecretString, timeouts: Timeouts) -> Self {
        let capabilities = Capabilities {
            takes_api_key: true,
            models: MODELS
                .iter()
                .map(|id| ModelInfo { id: (*id).to_owned(), max_characters: MAX_INPUT, supports_instructions: true })
                .collect(),
            default_model: MODELS[0].to_owned(),
            formats: vec![NativeFormat::new(AudioFormat::Pcm, &[RATE], &[])],
            streaming: true,
            native_timestamps: false,
            timestamp_formats: Vec::new(),
            native_dialogue: None,
            voices_listable: true,
            speed_range: Some(SPEED_RANGE),
            provider_options: Vec::new(),
        };
        Self {
            provider: provider.to_owned(),
            endpoint: endpoint(base_url),
            key,
            timeouts,
            capabilities,
            pool: Arc::default(),
        }
    }

    pub fn serves(&self, model: &str) -> bool {
        MODELS.contains(&model)
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    pub async fn synthesize(&self, request: SynthesisRequest) -> Result<EventStream, ProviderError> {
        if request.output.format != AudioFormat::Pcm || request.output.sample_rate != RATE {
            return Err(self.rejected(format!(
                "{} produces PCM at {RATE} Hz only (asked for {} at {} Hz)",
                request.model,
                request.output.format.as_str(),
                request.output.sample_rate
            )));
        }
        if let Some(speed) = request.speed.filter(|s| !(SPEED_RANGE.0..=SPEED_RANGE.1).contains(s)) {
            return Err(self.rejected(format!("speed {speed} is outside {}–{}", SPEED_RANGE.0, SPEED_RANGE.1)));
        }
        let secret = request.credential.as_ref().map_or_else(|| self.key.expose_secret(), ProviderKey::expose);
        let key = PoolKey {
            credential: Sha256::digest(secret.as_bytes()).into(),
            model: request.model.clone(),
            voice: request.voice.clone(),
            speed: request.speed.map(f32::to_bits),
        };
        let instructions = match request.instructions.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(style) => format!("{VERBATIM} Speak in this style: {style}"),
            None => VERBATIM.to_owned(),
        };
        let tag = uuid::Uuid::now_v7().to_string();
        let create =
            rt::ClientEvent::ResponseCreate { response: rt::ResponseParams::speak(&request.text, &instructions, &tag) };
        let create = serde_json::to_string(&create).map_err(|e| self.invalid(format!("unencodable request: {e}")))?;
        let started = Instant::now();
        let deadlines = Deadlines::new(started, self.timeouts);
        let fail = |error: ProviderError| self.for_credential(error, request.credential.as_ref());

        // A pooled session first; one that turns out closed before the response starts is
        // replaced by a new session, once.
        if let Some(mut session) = self.pool.take(&key) {
            let mut turn = Turn::new(self, &request.text, deadlines, secret);
            match turn.begin(&mut session.socket, None, &create).await {
                Ok(()) => return Ok(turn.into_stream(session, key, Arc::clone(&self.pool))),
                Err(Begin::Vendor(error)) => return Err(fail(error)),
                Err(Begin::Closed(_)) => {
                    tracing::debug!(provider = %self.provider, "a pooled realtime session had closed")
                }
            }
        }
        let mut session = self.open(&request.model, secret, &deadlines).await.map_err(fail)?;
        let update = rt::ClientEvent::SessionUpdate {
            session: rt::Session {
                kind: "realtime",
                output_modalities: ["audio"],
                instructions: VERBATIM,
                audio: rt::Audio {
                    input: rt::AudioInput { turn_detection: None },
                    output: rt::AudioOutput {
                        format: rt::Format { kind: "audio/pcm", rate: RATE },
                        voice: rt::Voice::of(&request.voice),
                        speed: request.speed,
                    },
                },
            },
        };
        let update = serde_json::to_string(&update).map_err(|e| self.invalid(format!("unencodable request: {e}")))?;
        let mut turn = Turn::new(self, &request.text, deadlines, secret);
        match turn.begin(&mut session.socket, Some(&update), &create).await {
            Ok(()) => Ok(turn.into_stream(session, key, Arc::clone(&self.pool))),
            Err(Begin::Vendor(error) | Begin::Closed(error)) => Err(fail(error)),
        }
    }

    /// Connects (TCP within `connect`, the handshake and `session.created` within `first_byte`).
    async fn open(&self, model: &str, secret: &str, deadlines: &Deadlines) -> Result<Session, ProviderError> {
        let Some(mut url) = self.endpoint.clone() else {
            return Err(self.unavailable("the provider's base URL is not an http(s) URL".to_owned()));
        };
        url.query_pairs_mut().append_pair("model", model);
        let (Some(host), Some(port)) = (url.host_str().map(str::to_owned), url.port_or_known_default()) else {
            return Err(self.unavailable("the provider's base URL has no host".to_owned()));
        };
        let connect = self.timeouts.connect.min(self.timeouts.total);
        let tcp = match tokio::time::timeout(connect, TcpStream::connect((host.as_str(), port))).await {
            Err(_) => return Err(self.timeout(TimeoutPhase::Connect, connect)),
            Ok(Err(e)) => return Err(self.unavailable(format!("cannot reach the provider: {}", e.kind()))),
            Ok(Ok(tcp)) => tcp,
        };
        let _ = tcp.set_nodelay(true);
        let mut handshake = url
            .as_str()
            .into_client_request()
            .map_err(|_| self.unavailable("the realtime URL is invalid".to_owned()))?;
        let mut bearer = reqwest::header::HeaderValue::from_str(&format!("Bearer {secret}")).map_err(|_| {
            ProviderError::Unauthorized {
                provider: self.provider.clone(),
                status: 401,
                code: None,
                detail: "the key cannot be sent in a header".to_owned(),
            }
        })?;
        bearer.set_sensitive(true);
        handshake.headers_mut().insert(reqwest::header::AUTHORIZATION, bearer);
        let config = WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE)).max_frame_size(Some(MAX_MESSAGE));
        let (phase, until) = deadlines.first_event();
        let shaken = tokio::time::timeout_at(
            until,
            tokio_tungstenite::client_async_tls_with_config(handshake, tcp, Some(config), None),
        )
        .await;
        let socket = match shaken {
            Err(_) => return Err(self.timeout(phase, deadlines.limit(phase))),
            Ok(Err(tungstenite::Error::Http(response))) => {
                let status = response.status().as_u16();
                let body = response.body().as_deref().unwrap_or_default();
                return Err(error_reply(
                    &self.provider,
                    status,
                    response.headers(),
                    body,
                    wire::parse_error,
                    &[secret],
                ));
            }
            Ok(Err(e)) => return Err(self.unavailable(format!("the WebSocket handshake failed: {}", describe(&e)))),
            Ok(Ok((socket, _))) => socket,
        };
        tracing::debug!(provider = %self.provider, model, "opened a realtime session");
        Ok(Session { socket, opened: Instant::now() })
    }

    /// A refusal of the project's own key says so, as the HTTP adapters' does.
    fn for_credential(&self, error: ProviderError, credential: Option<&ProviderKey>) -> ProviderError {
        match (error, credential) {
            (ProviderError::Unauthorized { provider, status, code, detail }, Some(_)) => {
                let detail =
                    format!("the project's own {provider} key (PUT /v1/api-keys/{provider}) was refused: {detail}");
                ProviderError::Unauthorized { provider, status, code, detail }
            }
            (error, _) => error,
        }
    }

    fn rejected(&self, detail: String) -> ProviderError {
        ProviderError::Rejected { provider: self.provider.clone(), status: 400, code: None, detail }
    }

    fn unavailable(&self, detail: String) -> ProviderError {
        ProviderError::Unavailable { provider: self.provider.clone(), status: None, code: None, detail }
    }

    fn invalid(&self, detail: String) -> ProviderError {
        ProviderError::Invalid { provider: self.provider.clone(), detail }
    }

    fn timeout(&self, phase: TimeoutPhase, timeout: Duration) -> ProviderError {
        ProviderError::Timeout { provider: self.provider.clone(), phase, timeout }
    }
}

/// `https://host/v1` → `wss://host/v1/realtime` (`http` → `ws`).
fn endpoint(base_url: &str) -> Option<reqwest::Url> {
    let mut url = reqwest::Url::parse(base_url.trim_end_matches('/')).ok()?;
    let scheme = match url.scheme() {
        "https" | "wss" => "wss",
        "http" | "ws" => "ws",
        _ => return None,
    };
    url.set_scheme(scheme).ok()?;
    url.set_query(None);
    url.set_fragment(None);
    let path = format!("{}/realtime", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Some(url)
}

/// A WebSocket error in words, without anything from a URL.
fn describe(error: &tungstenite::Error) -> String {
    let text = match error {
        tungstenite::Error::Io(e) => format!("{}", e.kind()),
        tungstenite::Error::Tls(_) => "TLS failed".to_owned(),
        tungstenite::Error::Capacity(e) => format!("{e}"),
        tungstenite::Error::Protocol(e) => format!("{e}"),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => "connection closed".to_owned(),
        other => format!("{other}"),
    };
    sanitize(text.split("://").next().unwrap_or_default())
}

/// A request's deadlines, counted from when it started: audio within `first_byte`, each next
/// event within `idle`, all within `total`.
#[derive(Clone, Copy)]
struct Deadlines {
    first: Instant,
    end: Instant,
    timeouts: Timeouts,
}

impl Deadlines {
    fn new(started: Instant, timeouts: Timeouts) -> Self {
        Self { first: started + timeouts.first_byte, end: started + timeouts.total, timeouts }
    }

    fn first_event(&self) -> (TimeoutPhase, Instant) {
        if self.first >= self.end {
            (TimeoutPhase::Total, self.end)
        } else {
            (TimeoutPhase::FirstByte, self.first)
        }
    }

    fn next_event(&self, audio_started: bool) -> (TimeoutPhase, Instant) {
        if !audio_started {
            return self.first_event();
        }
        let until = Instant::now() + self.timeouts.idle;
        if until >= self.end {
            (TimeoutPhase::Total, self.end)
        } else {
            (TimeoutPhase::Idle, until)
        }
    }

    fn limit(&self, phase: TimeoutPhase) -> Duration {
        match phase {
            TimeoutPhase::Connect => self.timeouts.connect,
            TimeoutPhase::FirstByte => self.timeouts.first_byte,
            TimeoutPhase::Idle => self.timeouts.idle,
            TimeoutPhase::Total => self.timeouts.total,
        }
    }
}

/// Why a response could not start.
enum Begin {
    /// The vendor refused it (an `error` event) or a deadline passed: final.
    Vendor(ProviderError),
    /// The connection was closed or broke: a pooled session may be replaced.
    Closed(ProviderError),
}

/// What one message from the server means to the response.
enum Step {
    Event(SynthesisEvent),
    Continue,
    /// The response completed; these are its last events.
    Done(Vec<SynthesisEvent>),
}

/// One response on a session.
struct Turn {
    provider: String,
    /// The text sent, for the verbatim check.
    text: String,
    deadlines: Deadlines,
    /// The credential sent, scrubbed from anything the vendor says.
    secret: SecretString,
    response_id: Option<String>,
    transcript: String,
    /// The transcript has been compared with the text.
    compared: bool,
    audio_started: bool,
}

impl Turn {
    fn new(realtime: &Realtime, text: &str, deadlines: Deadlines, secret: &str) -> Self {
        Self {
            provider: realtime.provider.clone(),
            text: text.to_owned(),
            deadlines,
            secret: SecretString::from(secret.to_owned()),
            response_id: None,
            transcript: String::new(),
            compared: false,
            audio_started: false,
        }
    }

    /// Sends `update` (a new session's configuration) and `create`, and waits for
    /// `response.created`.
    async fn begin(&mut self, socket: &mut Socket, update: Option<&str>, create: &str) -> Result<(), Begin> {
        let (phase, until) = self.deadlines.first_event();
        let timeout = self.deadlines.limit(phase);
        let sent = async {
            for event in update.into_iter().chain([create]) {
                socket.feed(Message::text(event.to_owned())).await?;
            }
            socket.flush().await
        };
        match tokio::time::timeout_at(until, sent).await {
            Err(_) => return Err(Begin::Vendor(self.timeout(phase, timeout))),
            Ok(Err(e)) => return Err(Begin::Closed(self.broken(&e))),
            Ok(Ok(())) => {}
        }
        loop {
            let message = match tokio::time::timeout_at(until, socket.next()).await {
                Err(_) => return Err(Begin::Vendor(self.timeout(phase, timeout))),
                Ok(message) => message,
            };
            match self.parse(message) {
                Ok(Some(rt::ServerEvent::ResponseCreated { response })) => {
                    self.response_id = response.id;
                    return Ok(());
                }
                Ok(Some(rt::ServerEvent::Error { error })) => return Err(Begin::Vendor(self.vendor(&error))),
                Ok(Some(rt::ServerEvent::ResponseDone { response })) => {
                    return Err(Begin::Vendor(self.not_completed(&response)));
                }
                Ok(_) => {}
                Err(Parsed::Closed(error)) => return Err(Begin::Closed(error)),
                Err(Parsed::Invalid(error)) => return Err(Begin::Vendor(error)),
            }
        }
    }

    /// The response's events, as they arrive; the session goes back to `pool` after a
    /// completed `response.done`, and is closed (dropped) otherwise.
    fn into_stream(self, session: Session, key: PoolKey, pool: Arc<Pool>) -> EventStream {
        struct State {
            turn: Turn,
            session: Option<Session>,
            key: PoolKey,
            pool: Arc<Pool>,
            /// The last events of a completed response, still to be yielded.
            last: VecDeque<SynthesisEvent>,
        }
        let state = State { turn: self, session: Some(session), key, pool, last: VecDeque::new() };
        Box::pin(futures::stream::unfold(state, |mut s| async move {
            if let Some(event) = s.last.pop_front() {
                return Some((Ok(event), s));
            }
            loop {
                let session = s.session.as_mut()?;
                let (phase, until) = s.turn.deadlines.next_event(s.turn.audio_started);
                let message = match tokio::time::timeout_at(until, session.socket.next()).await {
                    Err(_) => {
                        s.session = None;
                        let error = s.turn.timeout(phase, s.turn.deadlines.limit(phase));
                        return Some((Err(error), s));
                    }
                    Ok(message) => message,
                };
                match s.turn.step(message) {
                    Ok(Step::Continue) => {}
                    Ok(Step::Event(event)) => return Some((Ok(event), s)),
                    Ok(Step::Done(last)) => {
                        if let Some(session) = s.session.take() {
                            s.pool.put(s.key.clone(), session);
                        }
                        s.last = last.into();
                        let event = s.last.pop_front()?;
                        return Some((Ok(event), s));
                    }
                    Err(error) => {
                        s.session = None;
                        return Some((Err(error), s));
                    }
                }
            }
        }))
    }

    /// One message of the response.
    fn step(&mut self, message: Option<Result<Message, tungstenite::Error>>) -> Result<Step, ProviderError> {
        let event = match self.parse(message) {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(Step::Continue),
            Err(Parsed::Closed(error) | Parsed::Invalid(error)) => return Err(error),
        };
        match event {
            rt::ServerEvent::AudioDelta { response_id, delta } if self.ours(response_id.as_deref()) => {
                let audio = base64::engine::general_purpose::STANDARD
                    .decode(delta.trim())
                    .map_err(|_| self.invalid("an audio delta is not base64".to_owned()))?;
                if audio.is_empty() {
                    return Ok(Step::Continue);
                }
                self.audio_started = true;
                Ok(Step::Event(SynthesisEvent::Audio(audio.into())))
            }
            rt::ServerEvent::TranscriptDelta { response_id, delta } if self.ours(response_id.as_deref()) => {
                if self.transcript.len() + delta.len() <= MAX_TRANSCRIPT {
                    self.transcript.push_str(&delta);
                }
                Ok(Step::Continue)
            }
            rt::ServerEvent::TranscriptDone { response_id, transcript } if self.ours(response_id.as_deref()) => {
                self.transcript = transcript.chars().take(MAX_TRANSCRIPT).collect();
                self.compared = true;
                Ok(self.verbatim_warning().map_or(Step::Continue, |w| Step::Event(SynthesisEvent::Warning(w))))
            }
            rt::ServerEvent::ResponseDone { response } if self.ours(response.id.as_deref()) => {
                if response.status.as_deref() != Some("completed") {
                    return Err(self.not_completed(&response));
                }
                // A response without `…transcript.done` is judged by its transcript deltas.
                let warning = if self.compared { None } else { self.verbatim_warning() };
                let tokens = response.usage.map(|u| {
                    SynthesisEvent::Tokens(TokenUsage {
                        input: u.input_tokens.unwrap_or(0),
                        output: u.output_tokens.unwrap_or(0),
                    })
                });
                Ok(Step::Done(warning.map(SynthesisEvent::Warning).into_iter().chain(tokens).collect()))
            }
            rt::ServerEvent::Error { error } => Err(self.vendor(&error)),
            _ => Ok(Step::Continue),
        }
    }

    /// Whether an event with `response_id` belongs to this response (an event without one is
    /// taken as ours: there is one response at a time on a session).
    fn ours(&self, response_id: Option<&str>) -> bool {
        match (response_id, self.response_id.as_deref()) {
            (Some(theirs), Some(ours)) => theirs == ours,
            _ => true,
        }
    }

    /// One server message as an event: `Ok(None)` for control frames and events the gateway
    /// does not use.
    fn parse(&self, message: Option<Result<Message, tungstenite::Error>>) -> Result<Option<rt::ServerEvent>, Parsed> {
        let text = match message {
            None => return Err(Parsed::Closed(self.broken_off("the connection closed".to_owned()))),
            Some(Err(e)) => return Err(Parsed::Closed(self.broken(&e))),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                let why = frame.map_or_else(
                    || "the server closed the connection".to_owned(),
                    |f| format!("the server closed the connection ({}: {})", u16::from(f.code), self.scrub(&f.reason)),
                );
                return Err(Parsed::Closed(self.broken_off(why)));
            }
            Some(Ok(Message::Binary(_))) => {
                return Err(Parsed::Invalid(self.invalid("a binary message where events belong".to_owned())));
            }
            Some(Ok(_)) => return Ok(None),
        };
        match serde_json::from_str::<rt::ServerEvent>(text.as_str()) {
            Ok(rt::ServerEvent::Other) => Ok(None),
            Ok(event) => Ok(Some(event)),
            Err(e) => {
                Err(Parsed::Invalid(self.invalid(format!("an unreadable event: {}", self.scrub(&e.to_string())))))
            }
        }
    }

    /// The warning when the transcript differs from the text (case, spacing and punctuation
    /// aside).
    fn verbatim_warning(&self) -> Option<String> {
        if self.transcript.trim().is_empty() || normalise(&self.transcript) == normalise(&self.text) {
            return None;
        }
        Some(format!("the model did not read the text verbatim: it said \"{}\"", self.scrub(&self.transcript)))
    }

    fn not_completed(&self, response: &rt::Response) -> ProviderError {
        let status = response.status.as_deref().unwrap_or("unknown");
        let details = response.status_details.as_ref();
        if let Some(error) = details.and_then(|d| d.error.as_ref()) {
            return self.vendor(error);
        }
        let reason = details.and_then(|d| d.reason.as_deref()).map(|r| format!(" ({})", self.scrub(r)));
        let detail = format!("the response ended {}{}", self.scrub(status), reason.unwrap_or_default());
        if status == "failed" {
            ProviderError::Unavailable { provider: self.provider.clone(), status: None, code: None, detail }
        } else {
            ProviderError::Interrupted { provider: self.provider.clone(), detail }
        }
    }

    fn vendor(&self, error: &rt::ErrorInfo) -> ProviderError {
        let message = self.scrub(error.message.as_deref().unwrap_or_default());
        vendor_error(&self.provider, error.status(), error.code(), &message, None)
    }

    /// Vendor text without the credential, sanitised.
    fn scrub(&self, text: &str) -> String {
        let secret = self.secret.expose_secret();
        let text = if secret.is_empty() { text.to_owned() } else { text.replace(secret, "[redacted]") };
        sanitize(&text)
    }

    fn broken(&self, error: &tungstenite::Error) -> ProviderError {
        self.broken_off(describe(error))
    }

    fn broken_off(&self, detail: String) -> ProviderError {
        if self.audio_started {
            ProviderError::Interrupted { provider: self.provider.clone(), detail }
        } else {
            ProviderError::Unavailable { provider: self.provider.clone(), status: None, code: None, detail }
        }
    }

    fn invalid(&self, detail: String) -> ProviderError {
        ProviderError::Invalid { provider: self.provider.clone(), detail }
    }

    fn timeout(&self, phase: TimeoutPhase, timeout: Duration) -> ProviderError {
        ProviderError::Timeout { provider: self.provider.clone(), phase, timeout }
    }
}

enum Parsed {
    Closed(ProviderError),
    Invalid(ProviderError),
}

/// Text for the verbatim comparison: lower case, apostrophes dropped, every other run of
/// punctuation and spacing one space.
fn normalise(text: &str) -> String {
    let mapped: String = text
        .chars()
        .filter(|c| !matches!(c, '\'' | '\u{2019}'))
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    mapped.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_is_the_base_url_in_websocket_form() {
        let url = endpoint("https://api.openai.com/v1").map(|u| u.to_string());
        assert_eq!(url.as_deref(), Some("wss://api.openai.com/v1/realtime"));
        let url = endpoint("http://127.0.0.1:9/v1/").map(|u| u.to_string());
        assert_eq!(url.as_deref(), Some("ws://127.0.0.1:9/v1/realtime"));
        assert!(endpoint("ftp://x/v1").is_none() && endpoint("not a url").is_none());
    }

    #[test]
    fn verbatim_ignores_case_spacing_and_punctuation_only() {
        assert_eq!(normalise("Hello,   World! It's me."), normalise("hello world — its me"));
        assert_ne!(normalise("I do not know."), normalise("I don't know."));
    }

    #[test]
    fn error_events_map_to_statuses() {
        let info = |kind: &str, code: &str| rt::ErrorInfo {
            kind: Some(kind.to_owned()),
            code: Some(serde_json::Value::String(code.to_owned())),
            message: None,
        };
        assert_eq!(info("invalid_request_error", "invalid_value").status(), 400);
        assert_eq!(info("invalid_request_error", "invalid_api_key").status(), 401);
        assert_eq!(info("requests", "rate_limit_exceeded").status(), 429);
        assert_eq!(info("server_error", "x").status(), 502);
    }

    #[test]
    fn hostile_events_parse_or_fail_without_panicking() {
        for text in [r#"{"type":"response.output_audio.delta","delta":5}"#, "not json", r#"{"type":7}"#] {
            assert!(serde_json::from_str::<rt::ServerEvent>(text).is_err(), "{text}");
        }
        let unknown = serde_json::from_str::<rt::ServerEvent>(r#"{"type":"rate_limits.updated","rate_limits":[]}"#);
        assert!(matches!(unknown, Ok(rt::ServerEvent::Other)));
    }
}
