//! Content moderation (`[moderation]`) end to end: a fake OpenAI serves both speech and
//! `/v1/moderations` (`provider = "openai"` uses its key and base URL), or a separate fake
//! moderation service stands at `url`. Flagged text is refused with Speechbase's
//! `content_moderation_blocked` before any provider is called, on every route and in every
//! dialect; a moderation service that fails, times out or answers garbage fails closed (or open,
//! when configured); exempt keys skip the check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use std::time::Duration;

use common::{problem, Db, TestApp};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use speechgate::config::{ModerationConfig, VendorConfig};
use tokio_tungstenite::tungstenite::Message;
use wiremock::{
    matchers::{header, method, path},
    Mock, MockServer, Request, Respond, ResponseTemplate,
};

const UPSTREAM_KEY: &str = "sk-upstream-secret";
const MP3: &[u8] = b"ID3\x04\x00\x00\x00\x00\x00\x00fake-mp3-frames";
/// Texts holding this word are flagged by the fake moderation service.
const BAD_WORD: &str = "FORBIDDEN";
const CLEAN: &str = "Hello there.";
const FLAGGED: &str = "A FORBIDDEN sentence.";

/// OpenAI's moderation endpoint, faked: one result per input, flagged for `violence` (and
/// `harassment/threatening`) when the input holds [`BAD_WORD`].
struct FakeModeration;

impl Respond for FakeModeration {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let results: Vec<Value> = body["input"]
            .as_array()
            .expect("the gateway sends an array of inputs")
            .iter()
            .map(|input| {
                let flagged = input.as_str().unwrap().contains(BAD_WORD);
                json!({
                    "flagged": flagged,
                    "categories": {"violence": flagged, "harassment/threatening": flagged, "sexual": false},
                    "category_scores": {"violence": if flagged { 0.97 } else { 0.01 }, "sexual": 0.0},
                })
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({"id": "modr-1", "model": body["model"], "results": results}))
    }
}

/// The fake OpenAI with speech (counted) and moderation.
async fn fake_openai() -> MockServer {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/moderations"))
        .and(header("authorization", format!("Bearer {UPSTREAM_KEY}").as_str()))
        .respond_with(FakeModeration)
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/audio/speech"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(MP3).insert_header("content-type", "audio/mpeg"))
        .mount(&upstream)
        .await;
    upstream
}

/// The gateway with the `openai` provider at `upstream` and `moderation`.
async fn gateway(db: Db, upstream: &MockServer, moderation: ModerationConfig) -> TestApp {
    let base_url = format!("{}/v1", upstream.uri());
    TestApp::spawn_with(db, move |c| {
        c.providers.local.enabled = false;
        c.providers.timeout_secs = 2;
        c.providers.openai = VendorConfig {
            api_key: Some(UPSTREAM_KEY.to_owned().into()),
            base_url: Some(base_url),
            ..VendorConfig::default()
        };
        c.moderation = Some(moderation);
    })
    .await
}

fn openai_moderation() -> ModerationConfig {
    ModerationConfig { provider: Some("openai".into()), ..ModerationConfig::default() }
}

async fn calls_to(server: &MockServer, route: &str) -> Vec<Value> {
    let requests = server.received_requests().await.unwrap_or_default();
    requests.iter().filter(|r| r.url.path() == route).map(|r| serde_json::from_slice(&r.body).unwrap()).collect()
}

fn speech(text: &str) -> Value {
    json!({"model": "openai/tts-1", "voice": "alloy", "text": text, "output": "mp3"})
}

/// The metric line `name{labels} value`, as a number (0 when absent).
async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    text.lines().find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

async fn flagged_text_is_refused_before_any_provider(db: Db) {
    let upstream = fake_openai().await;
    let app = gateway(db, &upstream, openai_moderation()).await;
    let (key_id, key) = app.speech_key().await;

    let response = app.post("/v1/audio/speech", &key, speech(FLAGGED)).await;
    let (status, mut body) = problem(response).await;
    assert_eq!(status, 400);
    body.as_object_mut().unwrap().remove("requestId");
    let message = "the text was refused by content moderation (categories: harassment/threatening, violence)";
    assert_eq!(
        body,
        json!({
            "type": "urn:speechgate:problem:content_moderation_blocked",
            "title": "Content moderation blocked",
            "status": 400,
            "detail": message,
            "code": "content_moderation_blocked",
            "error": {
                "code": "content_moderation_blocked",
                "message": message,
                "type": "invalid_request_error",
                "param": null,
                "reason": {"type": "flagged", "categories": ["harassment/threatening", "violence"]},
            },
        })
    );
    assert!(calls_to(&upstream, "/v1/audio/speech").await.is_empty(), "no provider was called for flagged text");

    let response = app.post("/v1/audio/speech", &key, speech(CLEAN)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), MP3);
    assert_eq!(calls_to(&upstream, "/v1/audio/speech").await.len(), 1);

    // One call per request, with the configured model and the text as the provider gets it.
    let checks = calls_to(&upstream, "/v1/moderations").await;
    assert_eq!(
        checks,
        [
            json!({"model": "omni-moderation-latest", "input": [FLAGGED]}),
            json!({"model": "omni-moderation-latest", "input": [CLEAN]})
        ]
    );
    assert_eq!(metric(&app, "speechgate_moderation_checks_total{outcome=\"flagged\"}").await, 1.0);
    assert_eq!(metric(&app, "speechgate_moderation_checks_total{outcome=\"clean\"}").await, 1.0);
    assert!(metric(&app, "speechgate_moderation_duration_seconds_count").await >= 2.0);

    let events = app.stop_and_read_usage(Some(&key_id)).await;
    let mut outcomes: Vec<(u16, Option<String>)> =
        events.iter().map(|e| (e.event.status, e.event.error_code.clone())).collect();
    outcomes.sort();
    assert_eq!(outcomes, [(200, None), (400, Some("content_moderation_blocked".to_owned()))]);
}

/// Pronunciation rules run first: the text checked is the one a provider would speak.
async fn the_spoken_text_is_what_is_checked(db: Db) {
    let upstream = fake_openai().await;
    let app = gateway(db, &upstream, openai_moderation()).await;
    let (_, key) = app.speech_key().await;
    let mut body = speech("Say the word harmless.");
    body["pronunciations"] = json!({"rules": [{"word": "harmless", "replacement": BAD_WORD}]});
    let (status, body) = problem(app.post("/v1/audio/speech", &key, body).await).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("content_moderation_blocked")));
    assert!(calls_to(&upstream, "/v1/audio/speech").await.is_empty());
}

async fn a_conversation_with_one_flagged_turn_is_refused_whole(db: Db) {
    let upstream = fake_openai().await;
    let app = gateway(db, &upstream, openai_moderation()).await;
    let (_, key) = app.speech_key().await;
    let turns = json!([
        {"voice": "alloy", "text": "First, a clean turn."},
        {"voice": "echo", "text": FLAGGED},
        {"voice": "alloy", "text": "Last, clean again."},
    ]);
    let body = json!({"model": "openai/tts-1", "turns": turns, "output": "wav"});
    let (status, answer) = problem(app.post("/v1/audio/conversation", &key, body).await).await;
    assert_eq!(status, 400);
    assert_eq!(answer["code"], "content_moderation_blocked");
    assert_eq!(answer["turn_index"], 1, "{answer}");
    assert_eq!(answer["error"]["reason"]["type"], "flagged");
    assert!(calls_to(&upstream, "/v1/audio/speech").await.is_empty(), "no turn was voiced");
    // All turns in one check.
    let checks = calls_to(&upstream, "/v1/moderations").await;
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0]["input"], json!(["First, a clean turn.", FLAGGED, "Last, clean again."]));
}

/// A moderation service at `url` that answers every check with `reply`.
async fn moderation_service(reply: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/moderate")).respond_with(reply).mount(&server).await;
    server
}

fn at(server: &MockServer, fail_open: bool) -> ModerationConfig {
    ModerationConfig {
        url: Some(format!("{}/moderate", server.uri())),
        api_key: Some("moderation-key".to_owned().into()),
        timeout_ms: 300,
        fail_open,
        ..ModerationConfig::default()
    }
}

async fn a_failing_moderation_service_fails_closed(db: Db) {
    let upstream = fake_openai().await;
    let results = |n: usize| json!({"results": vec![json!({"flagged": false, "categories": {}}); n]});
    let faults = [
        ("status", ResponseTemplate::new(500).set_body_string("oops")),
        ("timeout", ResponseTemplate::new(200).set_body_json(results(1)).set_delay(Duration::from_secs(3))),
        ("invalid_answer", ResponseTemplate::new(200).set_body_string("<html>not json</html>")),
        ("invalid_answer", ResponseTemplate::new(200).set_body_json(results(2))),
        ("invalid_answer", ResponseTemplate::new(200).set_body_json(json!({"results": [{"flagged": "no"}]}))),
        ("invalid_answer", ResponseTemplate::new(200).set_body_bytes(vec![b' '; 200_000])),
    ];
    for (reason, reply) in faults {
        let service = moderation_service(reply).await;
        let app = gateway(db, &upstream, at(&service, false)).await;
        let (key_id, key) = app.speech_key().await;
        let response = app.post("/v1/audio/speech", &key, speech(CLEAN)).await;
        assert_eq!(response.headers()["retry-after"], "1", "{reason}");
        let (status, body) = problem(response).await;
        assert_eq!(status, 503, "{reason}: {body}");
        assert_eq!(body["code"], "content_moderation_blocked");
        assert_eq!(body["error"]["reason"]["type"], "error_fail_closed", "{body}");
        assert_eq!(body["error"]["type"], "server_error");
        let series = format!("speechgate_moderation_errors_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&app, &series).await, 1.0, "{series}");
        assert_eq!(metric(&app, "speechgate_moderation_checks_total{outcome=\"failed_closed\"}").await, 1.0);
        let requests = service.received_requests().await.unwrap();
        assert_eq!(requests[0].headers["authorization"], "Bearer moderation-key");
        let events = app.stop_and_read_usage(Some(&key_id)).await;
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].event.status, events[0].event.error_code.as_deref()),
            (503, Some("content_moderation_blocked"))
        );
    }
    // An address where nothing listens.
    let unreachable =
        ModerationConfig { url: Some("http://127.0.0.1:9/moderate".into()), ..ModerationConfig::default() };
    let app = gateway(db, &upstream, unreachable).await;
    let (_, key) = app.speech_key().await;
    let (status, body) = problem(app.post("/v1/audio/speech", &key, speech(CLEAN)).await).await;
    assert_eq!((status, body["error"]["reason"]["type"].as_str()), (503, Some("error_fail_closed")));
    assert_eq!(metric(&app, "speechgate_moderation_errors_total{reason=\"unreachable\"}").await, 1.0);
    assert!(calls_to(&upstream, "/v1/audio/speech").await.is_empty(), "nothing was synthesised unchecked");
}

async fn fail_open_lets_requests_through_and_counts_them(db: Db) {
    let upstream = fake_openai().await;
    let service = moderation_service(ResponseTemplate::new(503)).await;
    let app = gateway(db, &upstream, at(&service, true)).await;
    let (_, key) = app.speech_key().await;
    let response = app.post("/v1/audio/speech", &key, speech(FLAGGED)).await;
    assert_eq!(response.status(), 200, "unchecked, by choice");
    assert_eq!(calls_to(&upstream, "/v1/audio/speech").await.len(), 1);
    assert_eq!(metric(&app, "speechgate_moderation_checks_total{outcome=\"failed_open\"}").await, 1.0);
    assert_eq!(metric(&app, "speechgate_moderation_errors_total{reason=\"status\"}").await, 1.0);
}

async fn exempt_keys_skip_moderation(db: Db) {
    let upstream = fake_openai().await;
    let app = gateway(db, &upstream, openai_moderation()).await;
    let (id, key) = app.create_key(json!({"name": "trusted", "moderationExempt": true})).await;
    let shown: Value = app.get(&format!("/admin/v1/keys/{id}"), Some(common::ADMIN_TOKEN)).await.json().await.unwrap();
    assert_eq!(shown["moderationExempt"], true);
    let (plain_id, _) = app.speech_key().await;
    let shown: Value =
        app.get(&format!("/admin/v1/keys/{plain_id}"), Some(common::ADMIN_TOKEN)).await.json().await.unwrap();
    assert_eq!(shown["moderationExempt"], false, "not exempt unless asked");

    let response = app.post("/v1/audio/speech", &key, speech(FLAGGED)).await;
    assert_eq!(response.status(), 200);
    assert!(calls_to(&upstream, "/v1/moderations").await.is_empty(), "an exempt key's text is not sent");
    assert_eq!(metric(&app, "speechgate_moderation_checks_total{outcome=\"exempt\"}").await, 1.0);
    let response = app.admin_post("/admin/v1/keys", json!({"name": "x", "moderationExempt": "yes"})).await;
    let (status, body) = problem(response).await;
    assert_eq!(status, 400, "{body}");

    // The exemption is patchable: granted, then withdrawn, the key's next request follows.
    let (plain_id, plain) = app.speech_key().await;
    let patch = |exempt: Value| {
        app.client
            .patch(app.url(&format!("/admin/v1/keys/{plain_id}")))
            .bearer_auth(common::ADMIN_TOKEN)
            .json(&json!({"moderationExempt": exempt}))
            .send()
    };
    assert_eq!(patch(json!(true)).await.unwrap().status(), 200);
    assert_eq!(app.post("/v1/audio/speech", &plain, speech(FLAGGED)).await.status(), 200);
    assert!(calls_to(&upstream, "/v1/moderations").await.is_empty());
    assert_eq!(patch(json!(false)).await.unwrap().status(), 200);
    assert_eq!(app.post("/v1/audio/speech", &plain, speech(FLAGGED)).await.status(), 400);
    let (status, body) = problem(patch(json!("yes")).await.unwrap()).await;
    assert_eq!((status, body["validation"][0]["path"].clone()), (400, json!(["moderationExempt"])), "{body}");
}

/// Every synthesis route, in its own dialect: refused, and no provider called.
async fn every_route_and_dialect_refuses_flagged_text(db: Db) {
    let upstream = fake_openai().await;
    let app = gateway(db, &upstream, openai_moderation()).await;
    let (_, key) = app.speech_key().await;
    let message = "the text was refused by content moderation (categories: harassment/threatening, violence)";
    let post = |route: &str, body: Value| {
        app.client.post(app.url(route)).header("xi-api-key", &key).bearer_auth(&key).json(&body).send()
    };

    for route in
        ["/v1/audio/speech/stream", "/v1/audio/speech/with-timestamps", "/v1/audio/speech/with-timestamps/stream"]
    {
        let (status, body) = problem(post(route, speech(FLAGGED)).await.unwrap()).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("content_moderation_blocked")), "{route}");
    }
    let turns = json!({"model": "openai/tts-1", "turns": [{"voice": "alloy", "text": FLAGGED}]});
    let (status, body) = problem(post("/v1/audio/conversation/with-timestamps", turns).await.unwrap()).await;
    assert_eq!((status, body["turn_index"].as_u64()), (400, Some(0)), "{body}");

    // OpenAI's drop-in: its error object, with Speechbase's reason.
    let openai = json!({"model": "tts-1", "voice": "alloy", "input": FLAGGED});
    let response = post("/openai/v1/audio/speech", openai).await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {
            "code": "content_moderation_blocked",
            "message": message,
            "type": "invalid_request_error",
            "param": null,
            "reason": {"type": "flagged", "categories": ["harassment/threatening", "violence"]},
        }})
    );

    // ElevenLabs' drop-in: `detail` with a status slug.
    let response = post("/elevenlabs/v1/text-to-speech/openai:alloy", json!({"text": FLAGGED})).await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"detail": {"status": "content_moderation_blocked", "message": message}}));
    let dialogue = json!({"inputs": [{"text": "Fine.", "voice_id": "openai:alloy"}, {"text": FLAGGED, "voice_id": "openai:echo"}]});
    let response = post("/elevenlabs/v1/text-to-dialogue", dialogue).await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["detail"]["status"], "content_moderation_blocked", "{body}");

    // PlayHT's drop-in: `error_message` and `error_id`.
    let play = json!({"text": [FLAGGED], "voice": "openai:alloy", "output_format": "mp3"});
    let response = post("/playht/api/v2/tts/stream", play).await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"error_message": message, "error_id": "content_moderation_blocked"}));

    // The WebSocket: an error frame between the command's start and end.
    let auth: Value =
        app.client.post(app.url("/v1/websocket-auth")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    let url = auth["webSocketUrls"]["openai/tts-1"].as_str().unwrap();
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let command = json!({"voice": "alloy", "text": FLAGGED, "request_id": "bad"});
    socket.send(Message::text(command.to_string())).await.unwrap();
    let mut frames = Vec::new();
    while frames.last().is_none_or(|f: &Value| f["type"] != "end") {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await.unwrap().unwrap().unwrap() {
            Message::Text(text) => frames.push(serde_json::from_str(&text).unwrap()),
            other => panic!("no audio for flagged text: {other:?}"),
        }
    }
    assert_eq!(frames[1]["type"], "error");
    assert_eq!(frames[1]["error_id"], "content_moderation_blocked", "{frames:?}");
    assert_eq!(frames[1]["status"], 400);

    assert!(calls_to(&upstream, "/v1/audio/speech").await.is_empty(), "no route called a provider");
}

both_databases!(
    flagged_text_is_refused_before_any_provider,
    the_spoken_text_is_what_is_checked,
    a_conversation_with_one_flagged_turn_is_refused_whole,
    a_failing_moderation_service_fails_closed,
    fail_open_lets_requests_through_and_counts_them,
    exempt_keys_skip_moderation,
    every_route_and_dialect_refuses_flagged_text,
);
