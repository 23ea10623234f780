//! Provider calls that fail before their first byte with a failure a retry can fix are retried
//! (jittered backoff, `Retry-After` honoured up to a cap); the client sees only the outcome, and
//! usage records the call that served. Failures a retry cannot fix are not retried. A provider
//! that keeps failing is skipped by its circuit breaker, probed after a cool-down, and reported
//! in `/readyz` and `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use common::{Db, TestApp};
use serde_json::json;
use wiremock::{matchers::method, Mock, MockServer, ResponseTemplate};

/// The gateway with a fake OpenAI that answers `first` (for `times` calls), then audio.
async fn gateway(first: ResponseTemplate, times: u64) -> (TestApp, MockServer, String) {
    let upstream = MockServer::start().await;
    Mock::given(method("POST")).respond_with(first).up_to_n_times(times).with_priority(1).mount(&upstream).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"ID3-after-retry".to_vec()))
        .with_priority(2)
        .mount(&upstream)
        .await;
    let base_url = format!("{}/v1", upstream.uri());
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.local.enabled = false;
        c.providers.openai = common::vendor("sk-x", base_url);
        c.providers.retries = 2;
        c.providers.retry_backoff_ms = 10;
        c.providers.retry_max_wait_secs = 2;
    })
    .await;
    let (_, key) = app.speech_key().await;
    (app, upstream, key)
}

/// The `openai` provider's circuit as `/readyz` reports it.
async fn openai_circuit(app: &TestApp) -> String {
    let ready: serde_json::Value = app.get("/readyz", None).await.json().await.unwrap();
    ready["providers"]["openai"]["circuit"].as_str().unwrap().to_owned()
}

async fn speak(app: &TestApp, key: &str) -> reqwest::Response {
    app.post("/v1/audio/speech", key, json!({"model": "openai/tts-1", "voice": "alloy", "input": "Hello."})).await
}

#[tokio::test]
async fn a_rate_limit_then_audio_is_served_as_audio() {
    let limited = ResponseTemplate::new(429).insert_header("retry-after", "1").set_body_json(
        json!({"error": {"message": "slow down", "type": "rate_limit_error", "code": null, "param": null}}),
    );
    let (app, upstream, key) = gateway(limited, 1).await;
    let started = std::time::Instant::now();
    let response = speak(&app, &key).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"ID3-after-retry");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "Retry-After: 1 was honoured");
    assert_eq!(upstream.received_requests().await.unwrap().len(), 2, "one call, retried once");
    let usage = app.stop_and_read_usage(None).await;
    let speech = usage.iter().find(|u| u.event.route == "/v1/audio/speech").unwrap();
    assert_eq!((speech.event.status, speech.event.error_code.as_deref()), (200, None));
    assert_eq!(speech.event.provider.as_deref(), Some("openai"));
}

#[tokio::test]
async fn server_errors_are_retried_until_the_budget_runs_out() {
    let failing = ResponseTemplate::new(503).set_body_string("overloaded");
    let (app, upstream, key) = gateway(failing, 3).await;
    assert_eq!(speak(&app, &key).await.status(), 503);
    assert_eq!(upstream.received_requests().await.unwrap().len(), 3, "the first call and two retries");
    app.stop().await;

    // Two failures, then audio: within the budget.
    let failing = ResponseTemplate::new(500).set_body_string("oops");
    let (app, upstream, key) = gateway(failing, 2).await;
    assert_eq!(speak(&app, &key).await.status(), 200);
    assert_eq!(upstream.received_requests().await.unwrap().len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn failures_a_retry_cannot_fix_are_not_retried() {
    let cases = [
        ResponseTemplate::new(400).set_body_json(json!({"error": {"message": "bad voice", "type": "invalid_request_error", "code": null, "param": "voice"}})),
        ResponseTemplate::new(401).set_body_json(json!({"error": {"message": "bad key", "type": "invalid_request_error", "code": "invalid_api_key", "param": null}})),
        // Longer than the cap of 2 s: the client decides whether to wait that long.
        ResponseTemplate::new(429).insert_header("retry-after", "30").set_body_string("later"),
    ];
    for (first, status) in cases.into_iter().zip([400, 502, 429]) {
        let (app, upstream, key) = gateway(first, 5).await;
        assert_eq!(speak(&app, &key).await.status(), status);
        assert_eq!(upstream.received_requests().await.unwrap().len(), 1, "{status}: not retried");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_failing_provider_is_skipped_then_probed() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(500).set_body_string("down")).mount(&upstream).await;
    let base_url = format!("{}/v1", upstream.uri());
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.openai = common::vendor("sk-x", base_url);
        c.providers.circuit_failures = 3;
        c.providers.circuit_cooldown_secs = 1;
    })
    .await;
    let (_, key) = app.speech_key().await;
    let calls = || async { upstream.received_requests().await.unwrap().len() };
    let circuit = || openai_circuit(&app);
    assert_eq!(circuit().await, "closed");
    for _ in 0..3 {
        assert_eq!(speak(&app, &key).await.status(), 503);
    }
    assert_eq!((calls().await, circuit().await.as_str()), (3, "open"));
    // Open: answered at once, the provider not called; other providers are not affected.
    assert_eq!(speak(&app, &key).await.status(), 503);
    assert_eq!(calls().await, 3);
    let local =
        app.post("/v1/audio/speech", &key, json!({"model": "local", "voice": "en-us", "text": "Still here."})).await;
    assert_eq!(local.status(), 200);
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains(r#"speechgate_provider_circuit{provider="openai",state="open"} 1"#), "{metrics}");

    // After the cool-down one call probes; it fails, and the circuit opens again.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(circuit().await, "half_open");
    assert_eq!(speak(&app, &key).await.status(), 503);
    assert_eq!((calls().await, circuit().await.as_str()), (4, "open"));
    // The provider recovers: the next probe succeeds and closes the circuit.
    upstream.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"ID3-back".to_vec()))
        .mount(&upstream)
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(speak(&app, &key).await.status(), 200);
    assert_eq!(circuit().await, "closed");
    app.stop().await;
}

/// A stream that breaks after its first audio is never retried: the audio already sent would be
/// spoken twice. The client sees the body end in an error, and the provider was called once.
#[tokio::test]
async fn a_stream_broken_after_its_first_byte_is_not_retried() {
    let upstream = common::StreamingUpstream::start("audio/mpeg", b"ID3-first".to_vec(), b"-rest".to_vec(), true).await;
    let base_url = format!("{}/v1", upstream.uri);
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.local.enabled = false;
        c.providers.openai = common::vendor("sk-x", base_url);
        c.providers.retries = 2;
        c.providers.retry_backoff_ms = 10;
    })
    .await;
    let (_, key) = app.speech_key().await;
    let response = speak(&app, &key).await;
    assert_eq!(response.status(), 200);
    upstream.release();
    assert!(response.bytes().await.is_err(), "the broken stream ends the body in an error");
    assert_eq!(upstream.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    app.stop().await;
}

/// A provider whose streams keep breaking after their first audio is failing as surely as one
/// that fails before it: those breaks count against its circuit, which opens. (A stream that
/// ends well tells the circuit the provider is fine.)
#[tokio::test]
async fn streams_that_break_midway_open_the_circuit() {
    let upstream = common::StreamingUpstream::start("audio/mpeg", b"ID3-first".to_vec(), b"-rest".to_vec(), true).await;
    let base_url = format!("{}/v1", upstream.uri);
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.local.enabled = false;
        c.providers.openai = common::vendor("sk-x", base_url);
        c.providers.circuit_failures = 2;
        c.providers.circuit_cooldown_secs = 60;
    })
    .await;
    let (_, key) = app.speech_key().await;
    let circuit = || openai_circuit(&app);
    for expected in ["closed", "open"] {
        let response = speak(&app, &key).await;
        assert_eq!(response.status(), 200, "the head was sent before the break");
        upstream.release();
        assert!(response.bytes().await.is_err(), "the broken stream ends the body in an error");
        assert_eq!(circuit().await, expected);
    }
    assert_eq!(speak(&app, &key).await.status(), 503, "open: answered without a call");
    assert_eq!(upstream.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    app.stop().await;
}
