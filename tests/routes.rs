//! Fallback routes (`[routes.<name>]`): a name callers use as a `model`, whose targets are tried
//! in order until one serves. A target's `voice` replaces the request's and its `voices` map
//! request voices; the response and usage name the target that served. Faults are injected with
//! fake upstreams; the offline `local` provider is the target that always works.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use std::collections::BTreeMap;

use common::{Db, TestApp};
use serde_json::{json, Value};
use speechgate::config::{Config, RouteConfig, RouteTargetConfig};
use wiremock::{matchers::method, Mock, MockServer, ResponseTemplate};

fn target(model: &str, voice: Option<&str>, voices: &[(&str, &str)]) -> RouteTargetConfig {
    RouteTargetConfig {
        model: model.to_owned(),
        voice: voice.map(str::to_owned),
        voices: voices.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect(),
    }
}

/// `narrator`: OpenAI's `gpt-4o-mini-tts` speaking `onyx`, then the local voice (`alloy` maps to
/// `en-gb`, anything else speaks `en-us`). Retries are on, so that a test sees they are not
/// spent on a target with another to fall back on.
fn narrator(config: &mut Config, openai: &MockServer) {
    config.providers.openai = common::vendor("sk-x", format!("{}/v1", openai.uri()));
    config.providers.retries = 2;
    config.providers.retry_backoff_ms = 10;
    let targets = vec![
        target("openai/gpt-4o-mini-tts", Some("onyx"), &[]),
        target("local", Some("en-us"), &[("alloy", "en-gb")]),
    ];
    config.routes.insert("narrator".to_owned(), RouteConfig { targets });
}

async fn openai_answering(template: ResponseTemplate) -> MockServer {
    let upstream = MockServer::start().await;
    Mock::given(method("POST")).respond_with(template).mount(&upstream).await;
    upstream
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

async fn calls(upstream: &MockServer) -> Vec<Value> {
    let requests = upstream.received_requests().await.unwrap();
    requests.iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect()
}

#[tokio::test]
async fn the_first_target_serves_with_its_own_voice() {
    let openai = openai_answering(ResponseTemplate::new(200).set_body_bytes(b"ID3-onyx".to_vec())).await;
    let app = TestApp::spawn_with(Db::Sqlite, |c| narrator(c, &openai)).await;
    let (_, key) = app.speech_key().await;
    let response = app
        .post("/v1/audio/speech", &key, json!({"model": "narrator", "voice": "nova", "text": "Once upon a time."}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        (header(&response, "x-speech-provider"), header(&response, "x-speech-model")),
        ("openai", "gpt-4o-mini-tts")
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"ID3-onyx");
    let sent = calls(&openai).await;
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0]["model"].as_str(), sent[0]["voice"].as_str()), (Some("gpt-4o-mini-tts"), Some("onyx")));
    let usage = app.stop_and_read_usage(None).await;
    let event = &usage.iter().find(|u| u.event.route == "/v1/audio/speech").unwrap().event;
    assert_eq!(
        (event.provider.as_deref(), event.model.as_deref(), event.voice.as_deref()),
        (Some("openai"), Some("gpt-4o-mini-tts"), Some("onyx"))
    );
}

/// Each failure before the first audio moves to the next target at once — no retries of a
/// target that has another behind it — and the answer, headers and usage name the one that
/// served.
#[tokio::test]
async fn a_failing_target_falls_back_to_the_next_at_once() {
    let cases = [
        ("500", ResponseTemplate::new(500).set_body_string("down")),
        ("429", ResponseTemplate::new(429).insert_header("retry-after", "1").set_body_string("slow down")),
        ("401", ResponseTemplate::new(401).set_body_json(json!({"error": {"message": "bad key", "type": "invalid_request_error", "code": "invalid_api_key", "param": null}}))),
        ("garbage", ResponseTemplate::new(200).insert_header("content-type", "text/html").set_body_string("<html>captive portal</html>")),
    ];
    for (case, failure) in cases {
        let openai = openai_answering(failure).await;
        let app = TestApp::spawn_with(Db::Sqlite, |c| narrator(c, &openai)).await;
        let (_, key) = app.speech_key().await;
        let body =
            json!({"model": "narrator", "voice": "alloy", "text": "Once upon a time.", "response_format": "wav"});
        let response = app.post("/v1/audio/speech", &key, body).await;
        assert_eq!(response.status(), 200, "{case}");
        assert_eq!(header(&response, "x-speech-provider"), "local", "{case}");
        let audio = response.bytes().await.unwrap();
        assert_eq!(&audio[..4], b"RIFF", "{case}: the local voice's audio");
        assert_eq!(calls(&openai).await.len(), 1, "{case}: one attempt, no retries before falling back");
        let metrics = app.get("/metrics", None).await.text().await.unwrap();
        assert!(metrics.contains(r#"speechgate_route_fallbacks_total{provider="openai""#), "{case}: {metrics}");
        let usage = app.stop_and_read_usage(None).await;
        let event = &usage.iter().find(|u| u.event.route == "/v1/audio/speech").unwrap().event;
        assert_eq!((event.status, event.error_code.as_deref()), (200, None), "{case}");
        // `alloy` is mapped to the local voice `en-gb`: the mapping wins over the target's voice.
        assert_eq!((event.provider.as_deref(), event.voice.as_deref()), (Some("local"), Some("en-gb")), "{case}");
        assert!(event.segments.is_empty(), "{case}: one segment, recorded in the event itself");
    }
}

/// The last target keeps its provider's retries; when it fails too, its failure is the answer.
#[tokio::test]
async fn when_every_target_fails_the_last_failure_is_the_answer() {
    let first = openai_answering(ResponseTemplate::new(500).set_body_string("down")).await;
    let second = openai_answering(ResponseTemplate::new(503).set_body_string("also down")).await;
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.providers.local.enabled = false;
        c.providers.openai = common::vendor("sk-x", format!("{}/v1", first.uri()));
        let compatible = speechgate::config::CompatibleConfig {
            base_url: format!("{}/v1", second.uri()),
            models: vec!["kokoro".to_owned()],
            voices: vec!["af_bella".to_owned()],
            ..Default::default()
        };
        c.providers.compatible.insert("kokoro".to_owned(), compatible);
        c.providers.retries = 2;
        c.providers.retry_backoff_ms = 10;
        let targets = vec![target("openai/tts-1", None, &[]), target("kokoro", Some("af_bella"), &[])];
        c.routes.insert("narrator".to_owned(), RouteConfig { targets });
    })
    .await;
    let (_, key) = app.speech_key().await;
    let response =
        app.post("/v1/audio/speech", &key, json!({"model": "narrator", "voice": "alloy", "text": "Hi."})).await;
    assert_eq!(response.status(), 503);
    assert_eq!((calls(&first).await.len(), calls(&second).await.len()), (1, 3), "the last target is retried twice");
    assert_eq!(calls(&second).await[0]["voice"], "af_bella");
    let usage = app.stop_and_read_usage(None).await;
    let event = &usage.iter().find(|u| u.event.route == "/v1/audio/speech").unwrap().event;
    assert_eq!((event.status, event.provider.as_deref()), (503, Some("kokoro")));
}

/// Audio already sent is never spoken again: a stream that breaks after its first bytes ends the
/// body in an error, and the next target is not called.
#[tokio::test]
async fn a_stream_broken_after_its_first_audio_does_not_fall_back() {
    let upstream = common::StreamingUpstream::start("audio/mpeg", b"ID3-first".to_vec(), b"-rest".to_vec(), true).await;
    let base_url = format!("{}/v1", upstream.uri);
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.openai = common::vendor("sk-x", base_url);
        let targets = vec![target("openai/tts-1", Some("onyx"), &[]), target("local", Some("en-us"), &[])];
        c.routes.insert("narrator".to_owned(), RouteConfig { targets });
    })
    .await;
    let (_, key) = app.speech_key().await;
    let response = app.post("/v1/audio/speech", &key, json!({"model": "narrator", "voice": "x", "text": "Hi."})).await;
    assert_eq!((response.status().as_u16(), header(&response, "x-speech-provider")), (200, "openai"));
    upstream.release();
    assert!(response.bytes().await.is_err(), "the broken stream ends the body in an error");
    assert_eq!(upstream.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    let usage = app.stop_and_read_usage(None).await;
    let event = &usage.iter().find(|u| u.event.route == "/v1/audio/speech").unwrap().event;
    assert_eq!(
        (event.provider.as_deref(), event.error_code.as_deref()),
        (Some("openai"), Some("upstream_stream_failed"))
    );
}

/// A provider whose circuit is open is skipped without a call: the route goes straight on.
#[tokio::test]
async fn an_open_circuit_sends_the_route_straight_to_the_next_target() {
    let openai = openai_answering(ResponseTemplate::new(500).set_body_string("down")).await;
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        narrator(c, &openai);
        c.providers.circuit_failures = 2;
        c.providers.circuit_cooldown_secs = 60;
    })
    .await;
    let (_, key) = app.speech_key().await;
    for _ in 0..4 {
        let response =
            app.post("/v1/audio/speech", &key, json!({"model": "narrator", "voice": "v", "text": "Hi."})).await;
        assert_eq!((response.status().as_u16(), header(&response, "x-speech-provider")), (200, "local"));
    }
    assert_eq!(calls(&openai).await.len(), 2, "after two failures the circuit opened and openai was skipped");
    app.stop().await;
}

/// A target the request cannot be sent to (too long for its model, an option its provider does
/// not take) is left out; an option no target takes is the caller's mistake.
#[tokio::test]
async fn targets_that_cannot_take_the_request_are_left_out() {
    let openai = openai_answering(ResponseTemplate::new(200).set_body_bytes(b"ID3".to_vec())).await;
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        narrator(c, &openai);
        // The local voice first: it would serve anything it can take.
        let targets = vec![target("local", Some("en-us"), &[]), target("openai/gpt-4o-mini-tts", Some("onyx"), &[])];
        c.routes.insert("local-first".to_owned(), RouteConfig { targets });
    })
    .await;
    let (_, key) = app.speech_key().await;
    // OpenAI takes `instructions`; the local voice does not. The route leaves the local voice
    // out, though it comes first, and OpenAI serves.
    let styled = json!({"model": "local-first", "voice": "v", "text": "Hi.", "instructions": "Whisper."});
    let response = app.post("/v1/audio/speech", &key, styled).await;
    assert_eq!((response.status().as_u16(), header(&response, "x-speech-provider")), (200, "openai"));

    let unknown = json!({"model": "narrator", "voice": "v", "text": "Hi.", "providerOptions": {"nonsense": 1}});
    let (status, problem) = common::problem(app.post("/v1/audio/speech", &key, unknown).await).await;
    assert_eq!(status, 400);
    assert_eq!(problem["validation"][0]["path"], json!(["providerOptions", "nonsense"]), "{problem}");
    assert_eq!(calls(&openai).await.len(), 1);
    app.stop().await;
}

/// Each conversation turn runs through the route on its own: a turn whose first target fails
/// is voiced by the next, and usage has one line per turn naming who served it.
#[tokio::test]
async fn conversation_turns_fall_back_one_by_one() {
    let openai = openai_answering(ResponseTemplate::new(500).set_body_string("down")).await;
    let app = TestApp::spawn_with(Db::Sqlite, |c| narrator(c, &openai)).await;
    let (_, key) = app.speech_key().await;
    let body = json!({
        "model": "narrator",
        "turns": [{"voice": "alloy", "text": "First line."}, {"voice": "nova", "text": "Second line."}],
    });
    let response = app.post("/v1/audio/conversation", &key, body).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(&response.bytes().await.unwrap()[..4], b"RIFF");
    assert_eq!(calls(&openai).await.len(), 2, "one attempt per turn");
    let usage = app.stop_and_read_usage(None).await;
    let event = &usage.iter().find(|u| u.event.route == "/v1/audio/conversation").unwrap().event;
    let served: Vec<(&str, &str)> = event.segments.iter().map(|s| (s.provider.as_str(), s.voice.as_str())).collect();
    assert_eq!(served, [("local", "en-gb"), ("local", "en-us")]);
    assert!(event.segments.iter().all(|s| s.error_code.is_none()));
}

/// The word-timestamp routes fall back as well, and time the words of the target that served.
#[tokio::test]
async fn timestamps_fall_back_too() {
    let openai = openai_answering(ResponseTemplate::new(503).set_body_string("down")).await;
    let app = TestApp::spawn_with(Db::Sqlite, |c| narrator(c, &openai)).await;
    let (_, key) = app.speech_key().await;
    let body = json!({"model": "narrator", "voice": "v", "text": "Hello there, world."});
    let response = app.post("/v1/audio/speech/with-timestamps", &key, body.clone()).await;
    assert_eq!((response.status().as_u16(), header(&response, "x-speech-provider")), (200, "local"));
    let timed: Value = response.json().await.unwrap();
    let words: Vec<&str> =
        timed["timestamps"].as_array().unwrap().iter().map(|w| w["text"].as_str().unwrap()).collect();
    assert_eq!(words, ["Hello", "there,", "world."]);
    let response = app.post("/v1/audio/speech/with-timestamps/stream", &key, body).await;
    assert_eq!((response.status().as_u16(), header(&response, "x-speech-provider")), (200, "local"));
    let lines = response.text().await.unwrap();
    assert!(lines.lines().last().unwrap().contains(r#""type":"done""#), "{lines}");
    app.stop().await;
}

/// The drop-ins take a route as a model: OpenAI's SDK shape lists it and speaks through it, and
/// a route may take over the name of an OpenAI model (here `tts-1`, retired on 6 January 2027)
/// so code that still names it keeps working when OpenAI stops serving it.
#[tokio::test]
async fn facades_speak_through_routes() {
    let gone = openai_answering(ResponseTemplate::new(404).set_body_json(
        json!({"error": {"message": "The model `tts-1` has been deprecated", "type": "invalid_request_error", "code": "model_not_found", "param": null}}),
    ))
    .await;
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        narrator(c, &gone);
        let targets = vec![target("openai/tts-1", None, &[]), target("local", Some("en-us"), &[])];
        c.routes.insert("tts-1".to_owned(), RouteConfig { targets });
    })
    .await;
    let (_, key) = app.speech_key().await;
    let models: Value = app.get("/openai/v1/models", Some(&key)).await.json().await.unwrap();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"narrator") && ids.iter().filter(|id| **id == "tts-1").count() == 1, "{ids:?}");
    let body = json!({"model": "tts-1", "voice": "alloy", "input": "Still speaking.", "response_format": "wav"});
    let response = app.post("/openai/v1/audio/speech", &key, body).await;
    assert_eq!((response.status().as_u16(), header(&response, "x-speech-provider")), (200, "local"));
    assert_eq!(&response.bytes().await.unwrap()[..4], b"RIFF");
    // ElevenLabs' SDK shape: a route as `model_id`, any voice id (the route's targets name theirs).
    let url = app.url("/elevenlabs/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb?output_format=pcm_16000");
    let body = json!({"text": "Through the route.", "model_id": "narrator"});
    let response = app.client.post(url).header("xi-api-key", &key).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.bytes().await.unwrap().is_empty());
    let sent = calls(&gone).await;
    assert_eq!(
        (sent.last().unwrap()["model"].as_str(), sent.last().unwrap()["voice"].as_str()),
        (Some("gpt-4o-mini-tts"), Some("onyx"))
    );
    let listed: Value = app.get("/v1/models", Some(&key)).await.json().await.unwrap();
    let route = listed["data"].as_array().unwrap().iter().find(|m| m["id"] == "narrator").unwrap().clone();
    assert_eq!(route["targets"], json!(["openai/gpt-4o-mini-tts", "local/espeak-ng"]), "{route}");
    assert_eq!(route["provider"], "openai");
    app.stop().await;
}

#[test]
fn routes_are_checked_at_start() {
    let check = |routes: BTreeMap<String, RouteConfig>| {
        let mut config = common::test_config("sqlite::memory:");
        config.routes = routes;
        config.validate().err().map(|e| e.to_string()).unwrap_or_default()
    };
    let route = |targets: Vec<RouteTargetConfig>| RouteConfig { targets };
    let one = |name: &str, r: RouteConfig| BTreeMap::from([(name.to_owned(), r)]);
    assert!(check(one("openai", route(vec![target("local", None, &[])]))).contains("routes.openai"));
    assert!(check(one("Narrator", route(vec![target("local", None, &[])]))).contains("routes.Narrator"));
    assert!(check(one("narrator", route(vec![]))).contains("routes.narrator.targets"));
    let hostile = check(one("narrator", route(vec![target("local", Some("a\u{0}b"), &[])])));
    assert!(hostile.contains("routes.narrator.targets[0]"), "{hostile}");
    assert_eq!(check(one("narrator", route(vec![target("local", Some("en-us"), &[])]))), "");
}

/// A target whose model this gateway does not serve stops the start: a route never loses a
/// target silently.
#[tokio::test]
async fn a_route_to_a_model_nobody_serves_stops_the_start() {
    let db = common::test_db(Db::Sqlite).await;
    let mut config = common::test_config(&db.url);
    let targets = vec![target("local", None, &[]), target("cartesia/sonic-2", None, &[])];
    config.routes.insert("narrator".to_owned(), RouteConfig { targets });
    let error = speechgate::app::App::build(&config).await.err().expect("the start fails");
    let message = format!("{error:#}");
    assert!(message.contains("routes.narrator.targets[1].model"), "{message}");
}

/// A provider whose address refuses connections is a failure like any other: the next target
/// serves.
#[tokio::test]
async fn a_refused_connection_falls_back() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.providers.openai = common::vendor("sk-x", format!("http://{closed}/v1"));
        let targets = vec![target("openai/tts-1", Some("onyx"), &[]), target("local", Some("en-us"), &[])];
        c.routes.insert("narrator".to_owned(), RouteConfig { targets });
    })
    .await;
    let (_, key) = app.speech_key().await;
    let response = app.post("/v1/audio/speech", &key, json!({"model": "narrator", "voice": "v", "text": "Hi."})).await;
    assert_eq!((response.status().as_u16(), header(&response, "x-speech-provider")), (200, "local"));
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    let line =
        metrics.lines().find(|l| l.starts_with(r#"speechgate_route_fallbacks_total{provider="openai""#)).unwrap();
    assert!(line.ends_with(" 1"), "{line}");
    app.stop().await;
}

/// An alias to a model nobody serves stops the start too (OpenAI's retired names are aliases an
/// operator repoints; a typo there must not turn every request under the old name into a 400),
/// while the built-in aliases to a provider that is not configured stay harmless.
#[tokio::test]
async fn an_alias_to_a_model_nobody_serves_stops_the_start() {
    let db = common::test_db(Db::Sqlite).await;
    let mut config = common::test_config(&db.url);
    config.providers.aliases.insert("gpt-4o-mini-tts".to_owned(), "cartesia/sonic-2".to_owned());
    let error = speechgate::app::App::build(&config).await.err().expect("the start fails");
    let message = format!("{error:#}");
    assert!(message.contains("providers.aliases.gpt-4o-mini-tts"), "{message}");
    config.providers.aliases.insert("gpt-4o-mini-tts".to_owned(), "local".to_owned());
    assert!(speechgate::app::App::build(&config).await.is_ok(), "openai has no key here, yet its aliases are fine");
}
