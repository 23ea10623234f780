//! Each of a provider call's deadlines, by fault injection against fake upstreams on loopback:
//! a listener whose accept queue is full (connect), one that accepts and never answers or sends
//! a head and no audio (first byte), a stream that stalls after its first chunk (idle), and
//! per-provider overrides that apply to their provider and no other. For each: the status, the
//! code, how many upstream calls were made, and the exact usage record.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]
#![allow(clippy::disallowed_methods, reason = "the fake upstreams live as long as the test's runtime")]

mod common;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::{Db, StreamingUpstream, TestApp};
use serde_json::json;
use speechgate::config::{CompatibleConfig, Config, TimeoutOverrides, VendorConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a fake upstream does with each connection.
#[derive(Clone, Copy)]
enum Upstream {
    /// Reads the request, then says nothing (and keeps the connection open).
    Silent,
    /// Answers `200` with a chunked audio head, then sends nothing.
    HeadOnly,
    /// Waits, then answers with a complete audio body.
    SlowAudio(Duration),
}

/// A fake upstream on a loopback port: its base URI and how many requests it has read.
async fn upstream(behaviour: Upstream) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = vec![0u8; 65536];
                // The head and the (small, JSON) body: read until the body's last `}`.
                while !seen.ends_with(b"}") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                match behaviour {
                    Upstream::Silent => {}
                    Upstream::HeadOnly => {
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: audio/mpeg\r\ntransfer-encoding: chunked\r\n\r\n";
                        let _ = socket.write_all(head.as_bytes()).await;
                    }
                    Upstream::SlowAudio(delay) => {
                        tokio::time::sleep(delay).await;
                        let reply = "HTTP/1.1 200 OK\r\ncontent-type: audio/mpeg\r\ncontent-length: 9\r\n\r\nID3-audio";
                        let _ = socket.write_all(reply.as_bytes()).await;
                    }
                }
                // Hold the connection until the gateway gives up on it.
                let _ = socket.read(&mut buf).await;
            });
        }
    });
    (uri, calls)
}

fn openai(uri: &str, timeouts: TimeoutOverrides) -> VendorConfig {
    VendorConfig {
        api_key: Some("sk-x".to_owned().into()),
        base_url: Some(format!("{uri}/v1")),
        timeouts,
        ..Default::default()
    }
}

fn compatible(uri: &str, timeouts: TimeoutOverrides) -> CompatibleConfig {
    CompatibleConfig {
        base_url: format!("{uri}/v1"),
        models: vec!["kokoro".to_owned()],
        voices: vec!["af_heart".to_owned()],
        timeouts,
        ..Default::default()
    }
}

async fn gateway(db: Db, tweak: impl FnOnce(&mut Config)) -> (TestApp, String, String) {
    let app = TestApp::spawn_with(db, |c| {
        c.providers.local.enabled = false;
        tweak(c);
    })
    .await;
    let (key_id, key) = app.speech_key().await;
    (app, key_id, key)
}

async fn speak(app: &TestApp, key: &str, model: &str) -> reqwest::Response {
    app.post(
        "/v1/audio/speech",
        key,
        json!({"model": model, "voice": "alloy", "text": "Hello there.", "output": "mp3"}),
    )
    .await
}

/// The one usage record of a request that failed before any audio: who was called, the status
/// and code, the characters asked for, no audio (what went out is the problem document).
fn assert_failed_record(records: &[speechgate::domain::UsageRecord], provider: &str, status: u16, code: &str) {
    let speech: Vec<_> = records.iter().filter(|r| r.event.route == "/v1/audio/speech").collect();
    assert_eq!(speech.len(), 1, "one usage record per request: {records:?}");
    let event = &speech[0].event;
    assert_eq!(event.provider.as_deref(), Some(provider));
    assert_eq!((event.status, event.error_code.as_deref()), (status, Some(code)));
    assert_eq!((event.characters, event.audio_ms), (12, 0));
}

/// A provider that accepts and never answers, and one that sends its head but no audio
/// ("connected, but no audio"): both are first-byte timeouts, retried (nothing has reached the
/// client), then 504 `provider_timeout`.
async fn no_first_byte_is_a_retried_timeout(db: Db) {
    for behaviour in [Upstream::Silent, Upstream::HeadOnly] {
        let (uri, calls) = upstream(behaviour).await;
        let (app, key_id, key) = gateway(db, |c| {
            c.providers.timeout_secs = 1;
            c.providers.retries = 1;
            c.providers.retry_backoff_ms = 10;
            c.providers.openai = openai(&uri, TimeoutOverrides::default());
        })
        .await;
        let started = Instant::now();
        let (status, problem) = common::problem(speak(&app, &key, "openai/tts-1").await).await;
        let elapsed = started.elapsed();
        assert_eq!((status, problem["code"].as_str()), (504, Some("provider_timeout")), "{problem}");
        assert_eq!(problem["provider"], "openai");
        assert!(elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(6), "two 1 s waits: {elapsed:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 2, "a timeout is retried once, as configured");
        let metrics = app.get("/metrics", None).await.text().await.unwrap();
        let series = r#"speechgate_provider_errors_total{provider="openai",code="provider_timeout"} 2"#;
        assert!(metrics.contains(series), "{series} missing from\n{metrics}");
        assert_failed_record(&app.stop_and_read_usage(Some(&key_id)).await, "openai", 504, "provider_timeout");
    }
}

both_databases!(no_first_byte_is_a_retried_timeout);

/// A stream that stops after its first chunk: the response has started (200), so the body ends
/// in an error after `idle_timeout_secs`, the call is not retried, and usage records it failed.
async fn a_stream_that_stalls_ends_at_the_idle_timeout(db: Db) {
    let stalled = StreamingUpstream::start("audio/mpeg", b"ID3-first-chunk".to_vec(), Vec::new(), true).await;
    let uri = stalled.uri.clone();
    let (app, key_id, key) = gateway(db, |c| {
        c.providers.idle_timeout_secs = 1;
        c.providers.retries = 2;
        c.providers.openai = openai(&uri, TimeoutOverrides::default());
    })
    .await;
    let started = Instant::now();
    let mut response = speak(&app, &key, "openai/tts-1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.chunk().await.unwrap().unwrap().as_ref(), b"ID3-first-chunk");
    assert!(response.chunk().await.is_err(), "the body ends in an error, not as if complete");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(stalled.calls.load(Ordering::SeqCst), 1, "audio had gone out: no retry");
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    let series = r#"speechgate_provider_errors_total{provider="openai",code="provider_idle_timeout"} 1"#;
    assert!(metrics.contains(series), "{series} missing from\n{metrics}");
    let records = app.stop_and_read_usage(Some(&key_id)).await;
    let speech: Vec<_> = records.iter().filter(|r| r.event.route == "/v1/audio/speech").collect();
    assert_eq!(speech.len(), 1, "{records:?}");
    let event = &speech[0].event;
    assert_eq!((event.status, event.error_code.as_deref()), (200, Some("upstream_stream_failed")));
    assert_eq!((event.provider.as_deref(), event.characters), (Some("openai"), 12));
    assert_eq!(event.bytes_out, b"ID3-first-chunk".len() as i64, "what reached the client is metered");
}

both_databases!(a_stream_that_stalls_ends_at_the_idle_timeout);

/// A listener whose accept queue is full: the kernel drops further SYNs, so connecting hangs
/// (deterministically, on loopback). The connect timeout, not the first-byte one, ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_fails_at_the_connect_timeout() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    // Fill the queue: connections complete until it is full, then one hangs.
    let mut queued = Vec::new();
    loop {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(stream) => queued.push(stream),
            Err(err) => {
                assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
                break;
            }
        }
        assert!(queued.len() < 64, "the accept queue never filled");
    }
    let uri = format!("http://{addr}");
    let (app, key_id, key) = gateway(Db::Sqlite, |c| {
        c.providers.connect_timeout_secs = 1;
        c.providers.timeout_secs = 30;
        c.providers.openai = openai(&uri, TimeoutOverrides::default());
    })
    .await;
    let started = Instant::now();
    let (status, problem) = common::problem(speak(&app, &key, "openai/tts-1").await).await;
    assert_eq!((status, problem["code"].as_str()), (504, Some("provider_connect_timeout")), "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("connected to within 1 s"), "{problem}");
    assert!(started.elapsed() < Duration::from_secs(10), "not the 30 s first-byte timeout: {:?}", started.elapsed());
    assert_failed_record(&app.stop_and_read_usage(Some(&key_id)).await, "openai", 504, "provider_connect_timeout");
    drop((listener, queued));
}

/// One slow upstream (2 s to answer) behind three providers, the `[providers]` first-byte
/// timeout 10 s: `openai` and the instance `hasty` set 1 s in their own sections and time out;
/// the instance `patient` has no override and is served.
async fn per_provider_timeouts_apply_to_their_provider_only(db: Db) {
    let (uri, calls) = upstream(Upstream::SlowAudio(Duration::from_secs(2))).await;
    let one_second = TimeoutOverrides { timeout_secs: Some(1), ..Default::default() };
    let (app, key_id, key) = gateway(db, |c| {
        c.providers.timeout_secs = 10;
        c.providers.openai = openai(&uri, one_second);
        c.providers.compatible.insert("hasty".to_owned(), compatible(&uri, one_second));
        c.providers.compatible.insert("patient".to_owned(), compatible(&uri, TimeoutOverrides::default()));
    })
    .await;
    for model in ["openai/tts-1", "hasty"] {
        let started = Instant::now();
        let (status, problem) = common::problem(speak(&app, &key, model).await).await;
        assert_eq!((status, problem["code"].as_str()), (504, Some("provider_timeout")), "{model}: {problem}");
        assert!(started.elapsed() < Duration::from_secs(2), "{model}: its own 1 s: {:?}", started.elapsed());
    }
    let response = speak(&app, &key, "patient").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-speech-provider"], "patient");
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"ID3-audio");
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    let records = app.stop_and_read_usage(Some(&key_id)).await;
    let mut outcomes: Vec<(String, u16, Option<String>)> = records
        .iter()
        .filter(|r| r.event.route == "/v1/audio/speech")
        .map(|r| (r.event.provider.clone().unwrap(), r.event.status, r.event.error_code.clone()))
        .collect();
    outcomes.sort();
    let timeout = Some("provider_timeout".to_owned());
    assert_eq!(
        outcomes,
        [
            ("hasty".to_owned(), 504, timeout.clone()),
            ("openai".to_owned(), 504, timeout),
            ("patient".to_owned(), 200, None)
        ]
    );
}

both_databases!(per_provider_timeouts_apply_to_their_provider_only);

/// An override out of range is refused at start, naming its section.
#[test]
fn an_override_out_of_range_names_its_section() {
    let mut config = Config::default();
    config.providers.compatible.insert(
        "kokoro".to_owned(),
        compatible("http://127.0.0.1:1", TimeoutOverrides { idle_timeout_secs: Some(0), ..Default::default() }),
    );
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("providers.compatible.kokoro.timeouts.idle_timeout_secs"), "{err}");
    let mut config = Config::default();
    config.providers.elevenlabs.timeouts.max_stream_secs = Some(86_401);
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("providers.elevenlabs.timeouts.max_stream_secs"), "{err}");
}
