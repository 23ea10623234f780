//! OpenAI's realtime models through the gateway, against a fake Realtime API on a real socket
//! (tokio-tungstenite): the fake checks every client event's shape and answers with events of
//! the shapes OpenAI sends. Audio is decoded for real; sessions are counted by connection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]
#![allow(clippy::disallowed_methods, reason = "the fake's tasks are detached and end with the test")]
#![allow(clippy::result_large_err, reason = "tungstenite's handshake callback returns its own error response")]

mod common;

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, Mutex,
};

use base64::Engine;
use common::{problem, Db, TestApp};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use speechgate::audio::{decode, AudioFormat};
use tokio_tungstenite::tungstenite::{
    handshake::server::{ErrorResponse, Request, Response},
    Message,
};

const KEY: &str = "sk-realtime-test-0123456789abcdef";
/// A project's own OpenAI key, which the fake accepts too.
const PROJECT_KEY: &str = "sk-project-own-9876543210fedcba";
/// A key the fake refuses as rate limited (429 with `Retry-After: 3`) at the handshake.
const THROTTLED_KEY: &str = "sk-throttled-0123456789abcdef";
const MASTER: &str = "q3Jd0mS8Zf2x9Lh6Pw1VtYbNcRkE4uGiOa7sTzWvXyM=";
const MODEL: &str = "gpt-realtime-2.1-mini";
/// Seconds of audio the fake speaks per response.
const SECONDS: f64 = 1.2;
const DELTAS: usize = 12;

/// A fake Realtime API: `ws://addr/v1/realtime?model=…`, key [`KEY`]. What it is asked decides
/// its answer: text containing `FAIL` gets an `error` event, `GARBAGE` a delta that is not base64, `REWORD` a transcript that differs,
/// `HOLD` a last delta held back until [`Fake::release`], `STALL` nothing after
/// `response.created`, `CLOSE` a normal answer and then a closed socket, `QUIET` no
/// `response.output_audio_transcript.done`.
struct Fake {
    uri: String,
    connections: Arc<AtomicUsize>,
    /// The key each accepted connection carried.
    keys: Arc<Mutex<Vec<String>>>,
    /// Client events that were not the shape they must be.
    violations: Arc<Mutex<Vec<String>>>,
    release: Arc<tokio::sync::Notify>,
}

impl Fake {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}", listener.local_addr().unwrap());
        let fake = Self {
            uri,
            connections: Arc::default(),
            keys: Arc::default(),
            violations: Arc::default(),
            release: Arc::new(tokio::sync::Notify::new()),
        };
        let (connections, keys, violations, release) =
            (fake.connections.clone(), fake.keys.clone(), fake.violations.clone(), fake.release.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (keys, violations, release) = (keys.clone(), violations.clone(), release.clone());
                connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(session(tcp, keys, violations, release));
            }
        });
        fake
    }

    fn release(&self) {
        self.release.notify_one();
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn assert_clean(&self) {
        let violations = self.violations.lock().unwrap();
        assert!(violations.is_empty(), "the client sent malformed events: {violations:?}");
    }
}

/// The handshake: path, model, bearer key, no beta header; a wrong key is a 401 with OpenAI's
/// error body (echoing the key, as vendors do).
fn check_handshake(request: &Request, violations: &Mutex<Vec<String>>) -> Result<String, String> {
    let uri = request.uri().to_string();
    if request.uri().path() != "/v1/realtime" || request.uri().query() != Some(&format!("model={MODEL}")) {
        violations.lock().unwrap().push(format!("handshake URI {uri}"));
    }
    if request.headers().contains_key("openai-beta") {
        violations.lock().unwrap().push("an OpenAI-Beta header".into());
    }
    let auth = request.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    match auth.strip_prefix("Bearer ") {
        Some(key @ (KEY | PROJECT_KEY)) => Ok(key.to_owned()),
        Some(other) => Err(other.to_owned()),
        None => Err(String::new()),
    }
}

async fn session(
    tcp: tokio::net::TcpStream,
    keys: Arc<Mutex<Vec<String>>>,
    violations: Arc<Mutex<Vec<String>>>,
    release: Arc<tokio::sync::Notify>,
) {
    let checked = violations.clone();
    let callback = move |request: &Request, response: Response| match check_handshake(request, &checked) {
        Ok(key) => {
            keys.lock().unwrap().push(key);
            Ok(response)
        }
        Err(key) if key == THROTTLED_KEY => {
            let body = json!({"error": {"message": "Rate limit reached for requests",
                "type": "requests", "param": null, "code": "rate_limit_exceeded"}});
            let mut refusal = ErrorResponse::new(Some(body.to_string()));
            *refusal.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::TOO_MANY_REQUESTS;
            refusal.headers_mut().insert("retry-after", "3".parse().unwrap());
            Err(refusal)
        }
        Err(key) => {
            let body = json!({"error": {"message": format!("Incorrect API key provided: {key}."),
                "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}});
            let mut refusal = ErrorResponse::new(Some(body.to_string()));
            *refusal.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::UNAUTHORIZED;
            Err(refusal)
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else { return };
    let send = |event: Value| Message::text(event.to_string());
    let created = json!({"type": "session.created", "event_id": "event_1",
        "session": {"type": "realtime", "object": "realtime.session", "id": "sess_1", "model": MODEL}});
    if ws.send(send(created)).await.is_err() {
        return;
    }
    let mut voice: Option<String> = None;
    let mut spoken = false;
    let mut responses = 0;
    let violation = |what: String| violations.lock().unwrap().push(what);
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else { continue };
        let event: Value = serde_json::from_str(text.as_str()).unwrap();
        match event["type"].as_str().unwrap_or("") {
            "session.update" => {
                let s = &event["session"];
                if s["type"] != "realtime"
                    || s["output_modalities"] != json!(["audio"])
                    || !s["instructions"].is_string()
                {
                    violation(format!("session.update {s}"));
                }
                if s["audio"]["output"]["format"] != json!({"type": "audio/pcm", "rate": 24000}) {
                    violation(format!("format {s}"));
                }
                let speed = &s["audio"]["output"]["speed"];
                if !speed.is_null() && !speed.as_f64().is_some_and(|v| (0.25..=1.5).contains(&v)) {
                    violation(format!("speed {speed}"));
                }
                let new_voice = s["audio"]["output"]["voice"].as_str().map(str::to_owned);
                if spoken && new_voice != voice {
                    violation("the voice changed after the session spoke".into());
                }
                voice = new_voice;
                let updated = json!({"type": "session.updated", "event_id": "event_2", "session": s});
                if ws.send(send(updated)).await.is_err() {
                    return;
                }
            }
            "response.create" => {
                let r = &event["response"];
                let text = r["input"][0]["content"][0]["text"].as_str().unwrap_or("").to_owned();
                let shaped = r["conversation"] == "none"
                    && r["output_modalities"] == json!(["audio"])
                    && r["instructions"].as_str().is_some_and(|i| i.contains("exactly as written"))
                    && r["input"][0]["type"] == "message"
                    && r["input"][0]["role"] == "user"
                    && r["input"][0]["content"][0]["type"] == "input_text"
                    && !text.is_empty();
                if !shaped || voice.is_none() {
                    violation(format!("response.create {r} (voice {voice:?})"));
                }
                responses += 1;
                spoken = true;
                if !respond(&mut ws, &text, responses, &release).await {
                    return;
                }
            }
            other => violation(format!("unexpected client event {other}")),
        }
    }
}

/// Answers one `response.create` with the events OpenAI sends; false once the socket failed.
async fn respond(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    text: &str,
    n: usize,
    release: &tokio::sync::Notify,
) -> bool {
    let id = format!("resp_{n}");
    let item = format!("item_{n}");
    let send = |event: Value| Message::text(event.to_string());
    let mut events = vec![json!({"type": "response.created", "event_id": "e",
        "response": {"object": "realtime.response", "id": id, "status": "in_progress", "output": [],
                     "conversation_id": null, "usage": null}})];
    if text.contains("FAIL") {
        events.push(json!({"type": "error", "event_id": "e", "error": {"type": "invalid_request_error",
            "code": "invalid_value", "message": format!("Invalid value for 'voice'; key {KEY} cannot use it."),
            "param": "session.audio.output.voice", "event_id": null}}));
        for event in events {
            if ws.send(send(event)).await.is_err() {
                return false;
            }
        }
        return true;
    }
    events.push(json!({"type": "response.output_item.added", "event_id": "e", "response_id": id, "output_index": 0,
        "item": {"id": item, "object": "realtime.item", "type": "message", "status": "in_progress",
                 "role": "assistant", "content": []}}));
    events.push(json!({"type": "response.content_part.added", "event_id": "e", "response_id": id, "item_id": item,
        "output_index": 0, "content_index": 0, "part": {"type": "audio", "transcript": ""}}));
    for event in events {
        if ws.send(send(event)).await.is_err() {
            return false;
        }
    }
    if text.contains("STALL") {
        // Accepted, then silent.
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        return false;
    }
    if text.contains("GARBAGE") {
        let delta = json!({"type": "response.output_audio.delta", "event_id": "e", "response_id": id,
            "item_id": item, "output_index": 0, "content_index": 0, "delta": "<html>not base64</html>"});
        return ws.send(send(delta)).await.is_ok();
    }
    let pcm = common::sine_pcm(24_000, SECONDS);
    let chunk = pcm.len() / DELTAS / 2 * 2;
    let transcript = if text.contains("REWORD") { format!("{text} and then some") } else { text.to_owned() };
    for (i, piece) in pcm.chunks(chunk).enumerate() {
        let last = (i + 1) * chunk >= pcm.len();
        if last && text.contains("HOLD") {
            release.notified().await;
        }
        let delta = json!({"type": "response.output_audio.delta", "event_id": "e", "response_id": id,
            "item_id": item, "output_index": 0, "content_index": 0,
            "delta": base64::engine::general_purpose::STANDARD.encode(piece)});
        let words = json!({"type": "response.output_audio_transcript.delta", "event_id": "e", "response_id": id,
            "item_id": item, "output_index": 0, "content_index": 0, "delta": if i == 0 { transcript.as_str() } else { "" }});
        if ws.send(send(delta)).await.is_err() || ws.send(send(words)).await.is_err() {
            return false;
        }
    }
    let done = [
        json!({"type": "response.output_audio.done", "event_id": "e", "response_id": id, "item_id": item,
            "output_index": 0, "content_index": 0}),
        json!({"type": "response.output_audio_transcript.done", "event_id": "e", "response_id": id, "item_id": item,
            "output_index": 0, "content_index": 0, "transcript": transcript}),
        json!({"type": "response.content_part.done", "event_id": "e", "response_id": id, "item_id": item,
            "output_index": 0, "content_index": 0, "part": {"type": "audio", "transcript": transcript}}),
        json!({"type": "response.output_item.done", "event_id": "e", "response_id": id, "output_index": 0,
            "item": {"id": item, "type": "message", "status": "completed", "role": "assistant"}}),
        json!({"type": "response.done", "event_id": "e", "response": {"object": "realtime.response", "id": id,
            "status": "completed", "status_details": null, "conversation_id": null,
            "usage": {"total_tokens": 140, "input_tokens": 40, "output_tokens": 100,
                      "input_token_details": {"text_tokens": 40, "audio_tokens": 0},
                      "output_token_details": {"text_tokens": 10, "audio_tokens": 90}}}}),
        json!({"type": "rate_limits.updated", "event_id": "e", "rate_limits": [
            {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 0.06}]}),
    ];
    // `QUIET`: no transcript.done, only the deltas.
    let quiet = text.contains("QUIET");
    for event in done.into_iter().filter(|e| !(quiet && e["type"] == "response.output_audio_transcript.done")) {
        if ws.send(send(event)).await.is_err() {
            return false;
        }
    }
    if text.contains("CLOSE") {
        // The session ends while idle (OpenAI ends sessions after 60 minutes).
        let _ = ws.close(None).await;
        return false;
    }
    true
}

/// The gateway with only `openai`, pointed at the fake, holding `key`; `gpt-4o-mini-tts` is an
/// alias of the realtime model.
async fn gateway(fake: &Fake, key: &str) -> (TestApp, String) {
    let base_url = format!("{}/v1", fake.uri);
    let key = key.to_owned();
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.local.enabled = false;
        c.providers.timeout_secs = 5;
        c.providers.openai = common::vendor(&key, base_url);
        c.providers.aliases.insert("gpt-4o-mini-tts".into(), format!("openai/{MODEL}"));
    })
    .await;
    let (_, speech_key) = app.speech_key().await;
    (app, speech_key)
}

fn speech(text: &str, voice: &str, format: &str) -> Value {
    json!({"model": format!("openai/{MODEL}"), "voice": voice, "text": text, "output": {"format": format}})
}

fn assert_duration(format: AudioFormat, audio: &[u8]) {
    let decoded = decode(format, audio, Some(24_000)).unwrap();
    let seconds = decoded.samples.len() as f64 / f64::from(decoded.sample_rate);
    assert!((seconds - SECONDS).abs() < 0.1, "{format:?}: {seconds} s where {SECONDS} s were spoken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mp3_streams_before_the_last_delta_and_tokens_are_recorded() {
    let fake = Fake::start().await;
    let (app, key) = gateway(&fake, KEY).await;
    let mut response = app
        .client
        .post(app.url("/v1/audio/speech"))
        .bearer_auth(&key)
        .json(&speech("HOLD Hello from the realtime model.", "marin", "mp3"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-speech-provider"], "openai");
    // Audio reaches the caller while the fake still holds its last delta back.
    let first = tokio::time::timeout(std::time::Duration::from_secs(4), response.chunk()).await;
    let mut audio = first.expect("no audio before the last delta").unwrap().expect("a first chunk").to_vec();
    fake.release();
    while let Some(chunk) = response.chunk().await.unwrap() {
        audio.extend_from_slice(&chunk);
    }
    assert_duration(AudioFormat::Mp3, &audio);
    // The tokens of response.done, in the caller's usage.
    let mut report = Value::Null;
    for _ in 0..200 {
        report = app.get("/v1/usage", Some(&key)).await.json().await.unwrap();
        if report["totals"]["outputTokens"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(report["totals"]["inputTokens"], 40, "{report}");
    assert_eq!(report["totals"]["outputTokens"], 100, "{report}");
    fake.assert_clean();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wav_and_pcm_too() {
    let fake = Fake::start().await;
    let (app, key) = gateway(&fake, KEY).await;
    let wav = app.post("/v1/audio/speech", &key, speech("Waves.", "cedar", "wav")).await;
    assert_eq!(wav.status(), 200);
    assert_duration(AudioFormat::Wav, &wav.bytes().await.unwrap());
    let pcm = app.post("/v1/audio/speech", &key, speech("Raw.", "cedar", "pcm")).await;
    assert_eq!(pcm.status(), 200);
    let pcm = pcm.bytes().await.unwrap();
    assert_eq!(pcm.len(), common::sine_pcm(24_000, SECONDS).len(), "PCM passes through at 24 kHz");
    assert_duration(AudioFormat::Pcm, &pcm);
    fake.assert_clean();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_reused_per_voice_and_never_after_a_failure() {
    let fake = Fake::start().await;
    let (app, key) = gateway(&fake, KEY).await;
    // Each request read to its end, so that its session is back in the pool.
    let spoken = |text: &'static str, voice: &'static str| {
        let (app, key) = (&app, &key);
        async move {
            let response = app.post("/v1/audio/speech", key, speech(text, voice, "pcm")).await;
            assert_eq!(response.status(), 200);
            assert_duration(AudioFormat::Pcm, &response.bytes().await.unwrap());
        }
    };
    spoken("One.", "marin").await;
    spoken("Two.", "marin").await;
    assert_eq!(fake.connections(), 1, "the same voice reuses the session");
    spoken("Three.", "cedar").await;
    assert_eq!(fake.connections(), 2, "another voice needs its own session");
    spoken("Five.", "marin").await;
    assert_eq!(fake.connections(), 2, "the first voice's session is still there");

    // An error event fails the request with the vendor's status and code, without the key...
    let (status, body) = problem(app.post("/v1/audio/speech", &key, speech("FAIL now.", "marin", "pcm")).await).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("upstream_rejected")), "{body}");
    assert!(!body.to_string().contains(KEY), "{body}");
    // ...and its session is not used again.
    let before = fake.connections();
    spoken("Four.", "marin").await;
    assert_eq!(fake.connections(), before + 1, "a failed session is not reused");
    // A delta that is not audio is an invalid answer; that session is not reused either.
    let (status, body) =
        problem(app.post("/v1/audio/speech", &key, speech("GARBAGE please.", "marin", "pcm")).await).await;
    assert_eq!((status, body["code"].as_str()), (502, Some("upstream_invalid_response")), "{body}");
    spoken("Six.", "marin").await;
    assert_eq!(fake.connections(), before + 2, "an invalid session is not reused");
    // The catalogue shows what the realtime model produces itself.
    let models: Value = app.get("/v1/models", Some(&key)).await.json().await.unwrap();
    let entry = models["data"].as_array().unwrap().iter().find(|m| m["id"] == format!("openai/{MODEL}")).cloned();
    assert_eq!(entry.map(|m| m["nativeFormats"].clone()), Some(json!(["pcm"])), "{models}");
    fake.assert_clean();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_is_provider_auth_failed_without_the_key() {
    let fake = Fake::start().await;
    let wrong = "sk-proj-wrongkey0123456789abcdefXYZ";
    let (app, key) = gateway(&fake, wrong).await;
    let (status, body) = problem(app.post("/v1/audio/speech", &key, speech("Hello.", "marin", "mp3")).await).await;
    assert_eq!((status, body["code"].as_str()), (502, Some("provider_auth_failed")), "{body}");
    assert!(!body.to_string().contains(wrong) && !body.to_string().contains("wrongkey"), "{body}");
    app.stop().await;
}

/// A handshake refused as rate limited is a 429 with the vendor's `Retry-After` passed on, as
/// over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_handshake_passes_on_retry_after() {
    let fake = Fake::start().await;
    let (app, key) = gateway(&fake, THROTTLED_KEY).await;
    let response = app.post("/v1/audio/speech", &key, speech("Hello.", "marin", "mp3")).await;
    assert_eq!(response.headers()["retry-after"], "3");
    let (status, body) = problem(response).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("upstream_rate_limited")), "{body}");
    assert_eq!(body["upstream_code"], "rate_limit_exceeded", "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reworded_reading_is_a_warning() {
    let fake = Fake::start().await;
    let (app, key) = gateway(&fake, KEY).await;
    let body = json!({"model": format!("openai/{MODEL}"), "voice": "marin", "text": "REWORD this sentence.",
                      "output": {"format": "wav"}});
    let response = app.post("/v1/audio/speech/with-timestamps", &key, body).await;
    assert_eq!(response.status(), 200);
    let timed: Value = response.json().await.unwrap();
    let warnings = timed["warnings"].as_array().unwrap_or_else(|| panic!("{timed}"));
    assert!(
        warnings.iter().any(|w| w.as_str().is_some_and(|w| w.starts_with("the model did not read the text verbatim"))),
        "{timed}"
    );
    // Judged by the transcript deltas when no transcript.done comes.
    let body = json!({"model": format!("openai/{MODEL}"), "voice": "marin", "text": "REWORD QUIET this.",
                      "output": {"format": "wav"}});
    let timed: Value = app.post("/v1/audio/speech/with-timestamps", &key, body).await.json().await.unwrap();
    assert!(timed["warnings"].to_string().contains("did not read the text verbatim"), "{timed}");
    // A faithful reading has no such warning.
    let body = json!({"model": format!("openai/{MODEL}"), "voice": "marin", "text": "Read this sentence.",
                      "output": {"format": "wav"}});
    let timed: Value = app.post("/v1/audio/speech/with-timestamps", &key, body).await.json().await.unwrap();
    assert!(!timed.to_string().contains("verbatim"), "{timed}");
    fake.assert_clean();
    app.stop().await;
}

/// `gpt-4o-mini-tts`, aliased to the realtime model: the official OpenAI Python SDK streams mp3
/// from `/v1/audio/speech` as before the speech endpoint's models were retired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_python_sdk_streams_the_aliased_retired_model() {
    let python = std::env::var("SPEECHGATE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("{}", common::needs("SPEECHGATE_TEST_PYTHON: a Python with the official `openai` SDK"))
    });
    let fake = Fake::start().await;
    let (app, key) = gateway(&fake, KEY).await;
    let gateway = format!("http://{}/v1", app.addr);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg("realtime.py")
            .current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/openai"))
            .env("BASE_URL", gateway)
            .env("KEY", key)
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "SDK script failed: {}", String::from_utf8_lossy(&output.stderr));
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["provider"], "openai", "{result}");
    let audio = hex::decode(result["audio"].as_str().unwrap()).unwrap();
    assert!(result["chunks"].as_u64().unwrap() >= 1, "{result}");
    assert_duration(AudioFormat::Mp3, &audio);
    assert_eq!(fake.connections(), 1);
    fake.assert_clean();
    app.stop().await;
}

/// A project's own key opens its own sessions (never the operator's), and a refusal of it says
/// whose key it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projects_own_key_gets_its_own_sessions() {
    let fake = Fake::start().await;
    let base_url = format!("{}/v1", fake.uri);
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.local.enabled = false;
        c.providers.timeout_secs = 5;
        c.providers.openai = common::vendor(KEY, base_url);
        c.auth.master_key = Some(MASTER.to_owned().into());
    })
    .await;
    let project: Value = app.admin_post("/admin/v1/projects", json!({"name": "byok"})).await.json().await.unwrap();
    let body = json!({"name": "k", "projectId": project["id"], "scopes": ["speech", "credentials"]});
    let (_, project_key) = app.create_key(body).await;
    let (_, operator_key) = app.speech_key().await;
    let put = |api_key: &'static str| {
        let request = app.client.put(app.url("/v1/api-keys/openai")).bearer_auth(&project_key);
        request.json(&json!({"apiKey": api_key})).send()
    };

    let response = app.post("/v1/audio/speech", &operator_key, speech("Operator.", "marin", "pcm")).await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    assert!(put(PROJECT_KEY).await.unwrap().status().is_success());
    let response = app.post("/v1/audio/speech", &project_key, speech("Project.", "marin", "pcm")).await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    assert_eq!(*fake.keys.lock().unwrap(), [KEY, PROJECT_KEY], "one session per credential");

    let refused = "sk-project-refused-00000000000000000000";
    assert!(put(refused).await.unwrap().status().is_success());
    let (status, body) =
        problem(app.post("/v1/audio/speech", &project_key, speech("Refused.", "marin", "pcm")).await).await;
    assert_eq!((status, body["code"].as_str()), (502, Some("provider_auth_failed")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("project's own openai key"), "{body}");
    assert!(!body.to_string().contains(refused) && !body.to_string().contains("00000000"), "{body}");
    fake.assert_clean();
    app.stop().await;
}

/// Deadlines hold on the socket, a pooled session that the server closed while idle is replaced
/// without the caller noticing, and speed is the realtime model's own range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_stale_sessions_and_speed() {
    let fake = Fake::start().await;
    let base_url = format!("{}/v1", fake.uri);
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.local.enabled = false;
        c.providers.timeout_secs = 1;
        c.providers.openai = common::vendor(KEY, base_url);
    })
    .await;
    let (_, key) = app.speech_key().await;
    let (status, body) = problem(app.post("/v1/audio/speech", &key, speech("STALL here.", "ash", "pcm")).await).await;
    assert_eq!((status, body["code"].as_str()), (504, Some("provider_timeout")), "{body}");

    let response = app.post("/v1/audio/speech", &key, speech("CLOSE after this.", "sage", "pcm")).await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    let before = fake.connections();
    // Give the gateway's side time to see nothing: the close is only noticed on use.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let response = app.post("/v1/audio/speech", &key, speech("Still here.", "sage", "pcm")).await;
    assert_eq!(response.status(), 200);
    assert_duration(AudioFormat::Pcm, &response.bytes().await.unwrap());
    assert_eq!(fake.connections(), before + 1, "the closed session was replaced");

    let mut body = speech("Faster.", "sage", "pcm");
    body["speed"] = json!(1.25);
    let response = app.post("/v1/audio/speech", &key, body.clone()).await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    body["speed"] = json!(2.0);
    let (status, problem_body) = problem(app.post("/v1/audio/speech", &key, body).await).await;
    assert_eq!(status, 400, "{problem_body}");
    assert!(problem_body.to_string().contains("1.5"), "{problem_body}");
    // Refused by the gateway's own check against the model's range, before any vendor call.
    assert_eq!(problem_body["code"], "validation_failed", "{problem_body}");
    fake.assert_clean();
    app.stop().await;
}
