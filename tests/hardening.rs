//! Hostile callers and hostile vendors (issue: a trustworthy core). Each test pins a defence:
//! a request cannot rewrite what the vendor is asked, identifiers cannot leave their URL
//! segment, and no request can stop accounting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]
#![allow(clippy::disallowed_methods, reason = "fake upstreams run as detached tasks that end with the test")]

mod common;

use common::{problem, Db, TestApp};
use serde_json::{json, Value};
use speechgate::config::VendorConfig;
use wiremock::{
    matchers::{method, path},
    Mock, MockServer, Request, ResponseTemplate,
};

const SECRET: &str = "vendor-secret-0000";
const MP3: &[u8] = b"ID3\x04\x00\x00\x00\x00\x00\x00fake-mp3-frames";

fn vendor(uri: String) -> VendorConfig {
    VendorConfig { api_key: Some(SECRET.to_owned().into()), base_url: Some(uri), ..Default::default() }
}

/// The gateway with OpenAI (at `{uri}/v1`), ElevenLabs, Cartesia and Deepgram all pointed at
/// one fake upstream.
async fn gateway(db: Db, upstream: &MockServer) -> TestApp {
    let uri = upstream.uri();
    TestApp::spawn_with(db, move |c| {
        c.providers.local.enabled = false;
        c.providers.timeout_secs = 2;
        c.providers.openai = vendor(format!("{uri}/v1"));
        c.providers.elevenlabs = vendor(uri.clone());
        c.providers.cartesia = vendor(uri.clone());
        c.providers.deepgram = vendor(uri);
    })
    .await
}

async fn speak(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.post("/v1/audio/speech", key, body).await
}

fn audio_reply() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_bytes(MP3).insert_header("content-type", "audio/mpeg")
}

async fn requests(upstream: &MockServer) -> Vec<Request> {
    upstream.received_requests().await.unwrap_or_default()
}

fn paths(body: &Value) -> Vec<String> {
    let segment = |p: &Value| p.as_str().map_or_else(|| p.to_string(), str::to_owned);
    body["validation"]
        .as_array()
        .map(|v| {
            v.iter().map(|f| f["path"].as_array().unwrap().iter().map(segment).collect::<Vec<_>>().join(".")).collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_options_cannot_replace_core_fields() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST")).respond_with(audio_reply()).mount(&upstream).await;
    let app = gateway(Db::Sqlite, &upstream).await;
    let (_, key) = app.speech_key().await;

    let refused = [
        ("openai/tts-1", "alloy", json!({"input": "x", "model": "tts-1-hd", "response_format": "wav"})),
        ("elevenlabs", "JBFqnCBsd6RMkjVDRZzb", json!({"text": "x", "model_id": "eleven_v3"})),
        ("cartesia", "voice-1", json!({"transcript": "x", "output_format": {"container": "wav"}})),
        ("deepgram", "thalia", json!({"callback": "https://attacker.example/", "model": "aura-2-zeus-en"})),
    ];
    for (model, voice, options) in refused {
        let response =
            speak(&app, &key, json!({"model": model, "voice": voice, "text": "Hello.", "providerOptions": options}))
                .await;
        let (status, body) = problem(response).await;
        assert_eq!(status, 400, "{model}: {body}");
        let mut expected: Vec<String> =
            options.as_object().unwrap().keys().map(|k| format!("providerOptions.{k}")).collect();
        let mut got = paths(&body);
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "{model}: {body}");
    }
    // A declared option with the wrong type is refused too.
    let response = speak(
        &app,
        &key,
        json!({"model": "deepgram", "voice": "thalia", "text": "Hi", "providerOptions": {"tag": {"nested": 1}}}),
    )
    .await;
    let (status, body) = problem(response).await;
    assert_eq!((status, paths(&body)), (400, vec!["providerOptions.tag".to_owned()]));
    // An object option cannot carry what the request's own fields set (and the range check).
    let response = speak(
        &app,
        &key,
        json!({"model": "elevenlabs", "voice": "JBFqnCBsd6RMkjVDRZzb", "text": "Hi",
               "providerOptions": {"voice_settings": {"speed": 9.0}}}),
    )
    .await;
    let (status, body) = problem(response).await;
    assert_eq!((status, paths(&body)), (400, vec!["providerOptions.voice_settings.speed".to_owned()]));
    assert!(requests(&upstream).await.is_empty(), "nothing refused may reach the vendor");

    // Declared options pass, below the adapter's own fields.
    let response = speak(
        &app,
        &key,
        json!({"model": "elevenlabs", "voice": "JBFqnCBsd6RMkjVDRZzb", "text": "Hello.", "speed": 1.1,
               "providerOptions": {"voice_settings": {"stability": 0.3}, "next_text": "More."}}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let response = speak(
        &app,
        &key,
        json!({"model": "deepgram", "voice": "thalia", "text": "Hi", "output": "mp3",
               "providerOptions": {"tag": "team-a", "mip_opt_out": true}}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let seen = requests(&upstream).await;
    assert_eq!(seen.len(), 2);
    let eleven: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(eleven["text"], "Hello.");
    assert_eq!(eleven["next_text"], "More.");
    assert!((eleven["voice_settings"]["speed"].as_f64().unwrap() - 1.1).abs() < 1e-6, "{eleven}");
    assert!((eleven["voice_settings"]["stability"].as_f64().unwrap() - 0.3).abs() < 1e-6, "{eleven}");
    let query: Vec<(String, String)> = seen[1].url.query_pairs().map(|(k, v)| (k.into(), v.into())).collect();
    assert_eq!(query.iter().filter(|(k, _)| k == "model").count(), 1, "{query:?}");
    assert!(query.contains(&("tag".to_owned(), "team-a".to_owned())), "{query:?}");
    assert!(query.contains(&("mip_opt_out".to_owned(), "true".to_owned())), "{query:?}");
    assert!(!query.iter().any(|(k, _)| k == "callback"));

    // Each provider call is in the provider histograms, by provider and model.
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    for series in [
        r#"speechgate_provider_first_byte_seconds_count{provider="elevenlabs",model="eleven_multilingual_v2"} 1"#,
        r#"speechgate_provider_request_duration_seconds_count{provider="deepgram",model="aura-2"} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} missing from\n{metrics}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_stay_inside_their_url_segment() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST")).respond_with(audio_reply()).mount(&upstream).await;
    let app = gateway(Db::Sqlite, &upstream).await;
    let (_, key) = app.speech_key().await;
    let long = "v".repeat(20_000);
    let refused = [
        json!({"model": "elevenlabs", "voice": "..", "text": "Hi"}),
        json!({"model": "elevenlabs", "voice": ".", "text": "Hi"}),
        json!({"model": "elevenlabs", "voice": long, "text": "Hi"}),
        json!({"model": "elevenlabs", "voice": "a\u{0}b", "text": "Hi"}),
        json!({"model": "elevenlabs", "voice": "a\nb", "text": "Hi"}),
        json!({"model": "openai/tts-1\u{0}", "voice": "alloy", "text": "Hi"}),
        json!({"voiceId": "x".repeat(300), "text": "Hi"}),
        json!({"model": "deepgram", "voice": "thalia", "text": "Hi", "language": "en&callback=x"}),
    ];
    for body in refused {
        let (status, problem) = problem(speak(&app, &key, body.clone()).await).await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert_eq!(problem["code"], "validation_failed");
        assert_eq!(problem["validation"].as_array().unwrap().len(), 1, "{problem}");
        // The problem never echoes a huge or control-laden identifier back in full.
        assert!(problem.to_string().len() < 2_000);
    }
    assert!(requests(&upstream).await.is_empty());

    // Separators become part of the one segment.
    let response = speak(&app, &key, json!({"model": "elevenlabs", "voice": "a/../b?c#d", "text": "Hi"})).await;
    assert_eq!(response.status(), 200);
    let seen = requests(&upstream).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].url.path(), "/v1/text-to-speech/a%2F%2E%2E%2Fb%3Fc%23d/stream");
    assert!(seen[0].url.query().is_some_and(|q| q.starts_with("output_format=")));
    app.stop().await;
}

/// Control characters in what a caller sends never stop usage being written, on PostgreSQL
/// (whose `text` refuses NUL) as on SQLite: every request keeps its event.
async fn hostile_text_never_stops_accounting(db: Db) {
    let upstream = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/audio/speech")).respond_with(audio_reply()).mount(&upstream).await;
    let app = gateway(db, &upstream).await;
    let (key_id, key) = app.speech_key().await;
    let bodies = [
        json!({"model": "openai/tts-1", "voice": "al\u{0}loy", "text": "Hi"}),
        json!({"model": "openai/tts-1", "voice": "alloy", "text": "Hi \u{0} there"}),
        json!({"model": "openai/tts-1", "voice": "alloy", "text": "Hi", "output": "mp3"}),
    ];
    let mut statuses = Vec::new();
    for body in bodies {
        statuses.push(speak(&app, &key, body).await.status().as_u16());
    }
    assert_eq!(statuses, [400, 400, 200], "NUL is refused in any body string");
    let events = app.stop_and_read_usage(Some(&key_id)).await;
    let speech: Vec<u16> =
        events.iter().rev().filter(|e| e.event.route == "/v1/audio/speech").map(|e| e.event.status).collect();
    assert_eq!(speech, statuses, "every request has its usage event");
}

/// A batch the database refuses for good is split until only the refused event is left out;
/// everything else is written and the refusal is counted.
async fn a_refused_event_is_set_aside_and_the_rest_written(db: Db) {
    use speechgate::{domain::UsageEvent, metrics::Metrics};
    let (store, _db) = common::test_store(db).await;
    let event = |i: usize, key_id: Option<&str>, voice: &str| UsageEvent {
        input_tokens: 0,
        output_tokens: 0,
        request_id: format!("req-{i}"),
        key_id: key_id.map(str::to_owned),
        project_id: None,
        route: "/v1/audio/speech".into(),
        method: "POST".into(),
        provider: Some("openai".into()),
        model: Some("tts-1".into()),
        voice: Some(voice.into()),
        characters: 5,
        audio_ms: 0,
        spend_nanos: 0,
        bytes_out: 0,
        status: 200,
        error_code: None,
        latency_ms: 1,
        ttfb_ms: None,
        created_at: chrono::Utc::now(),
        segments: Vec::new(),
    };
    // A key that does not exist breaks the foreign key in both databases; a NUL (which the
    // sink would have replaced) is a data exception in PostgreSQL's text and fine in SQLite.
    let mut batch: Vec<UsageEvent> = (0..7).map(|i| event(i, None, "alloy")).collect();
    batch.insert(3, event(99, Some("no-such-key"), "alloy"));
    batch.insert(6, event(7, None, "al\u{0}loy"));
    let metrics = Metrics::new();
    metrics.usage_queue_depth.set(batch.len() as i64);
    let shutdown = tokio_util::sync::CancellationToken::new();
    speechgate::service::usage::write_batch(store.as_ref(), &metrics, batch, &shutdown).await;
    let written = store.list_usage(None, speechgate::domain::LogPage { before: None, limit: 100 }).await.unwrap();
    let mut ids: Vec<String> = written.iter().map(|r| r.event.request_id.clone()).collect();
    ids.sort();
    let written = if db == Db::Postgres { 7 } else { 8 };
    assert_eq!(ids, (0..written).map(|i| format!("req-{i}")).collect::<Vec<_>>());
    assert_eq!(metrics.usage_rejected.get(), 9 - written as u64);
    assert_eq!(metrics.usage_written.get(), written as u64);
    assert_eq!(metrics.usage_queue_depth.get(), 0);
}

async fn a_deleted_saved_voice_is_a_404_at_its_path(db: Db) {
    let upstream = MockServer::start().await;
    let app = gateway(db, &upstream).await;
    let (_, key) = app.create_key(json!({"name": "t", "scopes": ["speech", "voices"]})).await;
    let voice = json!({"title": "Narrator", "provider": "openai", "voiceId": "alloy"});
    let created: Value = app.post("/v1/voices", &key, voice).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    let deleted = app.client.delete(app.url(&format!("/v1/voices/{id}"))).bearer_auth(&key).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    for voice_id in [id, "never-existed"] {
        let (status, body) = problem(speak(&app, &key, json!({"voiceId": voice_id, "text": "Hi"})).await).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["code"], "voice_not_found");
        assert_eq!(paths(&body), vec!["voiceId".to_owned()]);
    }
    app.stop().await;
}

/// A saved voice cannot carry an identifier the speech request itself may not: refused when
/// saved, and refused when used (for a voice saved before the rule).
async fn saved_voices_cannot_smuggle_identifiers(db: Db) {
    let upstream = MockServer::start().await;
    Mock::given(method("POST")).respond_with(audio_reply()).mount(&upstream).await;
    let app = gateway(db, &upstream).await;
    let (key_id, key) = app.create_key(json!({"name": "t", "scopes": ["speech", "voices"]})).await;
    for voice in ["..", "a\nb"] {
        let saved = json!({"title": "Up", "provider": "elevenlabs", "voiceId": voice});
        let (status, body) = problem(app.post("/v1/voices", &key, saved).await).await;
        assert_eq!((status, paths(&body)), (400, vec!["voiceId".to_owned()]), "{body}");
    }
    // Options are checked when saved, against a configured provider's passable options.
    let saved = json!({"title": "Opt", "provider": "elevenlabs", "voiceId": "v", "providerOptions": {"model_id": "x"}});
    let (status, body) = problem(app.post("/v1/voices", &key, saved).await).await;
    assert_eq!((status, paths(&body)), (400, vec!["providerOptions.model_id".to_owned()]), "{body}");
    let later = json!({"title": "Later", "provider": "acme", "voiceId": "v", "providerOptions": {"anything": 1}});
    assert_eq!(app.post("/v1/voices", &key, later).await.status(), 201, "an unconfigured provider is checked at use");
    let store = speechgate::store::connect(&app.db.url, 1).await.unwrap();
    let now = chrono::Utc::now();
    let legacy = speechgate::domain::Voice {
        id: "legacy".into(),
        title: "Old".into(),
        provider: "elevenlabs".into(),
        model: None,
        voice_id: "..".into(),
        tags: Vec::new(),
        gender: None,
        description: None,
        provider_options: serde_json::Map::new(),
        created_at: now,
        updated_at: now,
    };
    // Saved voices belong to the key's project.
    let project_id = store.get_key(&key_id).await.unwrap().unwrap().project_id;
    store.insert_voice(&project_id, &legacy).await.unwrap();
    let (status, body) = problem(speak(&app, &key, json!({"voiceId": "legacy", "text": "Hi"})).await).await;
    assert_eq!((status, paths(&body)), (400, vec!["voiceId".to_owned()]), "{body}");
    assert!(requests(&upstream).await.is_empty(), "the saved `..` never reached the vendor");
    app.stop().await;
}

/// NUL and other control characters never reach a query: in bodies (any string, at its path),
/// in path segments and in query parameters they are 400s, on PostgreSQL as on SQLite.
async fn control_characters_never_reach_the_database(db: Db) {
    let app = TestApp::spawn(db).await;
    let (_, key) = app.create_key(json!({"name": "t", "scopes": ["speech", "voices"]})).await;
    let admin = |path: &str| app.client.get(app.url(path)).bearer_auth(common::ADMIN_TOKEN).send();
    let nul_title = json!({"title": "a\u{0}b", "provider": "openai", "voiceId": "alloy"});
    let nul_tag = json!({"title": "t", "provider": "openai", "voiceId": "alloy", "tags": ["x", "y\u{0}"]});
    let cases = [
        (app.post("/v1/voices", &key, nul_title).await, "title"),
        (app.post("/v1/voices", &key, nul_tag).await, "tags.1"),
        (app.post("/admin/v1/keys", common::ADMIN_TOKEN, json!({"name": "n\u{0}"})).await, "name"),
        // Key names are printed by `speechgate keys list`: a terminal escape is refused too.
        (app.post("/admin/v1/keys", common::ADMIN_TOKEN, json!({"name": "\u{1b}[2J\u{1b}[31mroot"})).await, "name"),
        (app.get("/v1/voices/ab%00cd", Some(&key)).await, "path"),
        (app.get("/v1/voices?cursor=%00", Some(&key)).await, "cursor"),
        (admin("/admin/v1/keys/%00").await.unwrap(), "path"),
        (admin("/admin/v1/usage?keyId=a%00").await.unwrap(), "keyId"),
    ];
    for (response, field) in cases {
        let (status, body) = problem(response).await;
        assert_eq!((status, paths(&body)), (400, vec![field.to_owned()]), "{body}");
    }
    // The database still answers normally.
    assert_eq!(app.get("/v1/voices", Some(&key)).await.status(), 200);
    app.stop().await;
}

both_databases!(
    usage_dates_at_the_calendar_edges_are_400s,
    saved_voices_cannot_smuggle_identifiers,
    control_characters_never_reach_the_database,
    hostile_text_never_stops_accounting,
    a_refused_event_is_set_aside_and_the_rest_written,
    a_deleted_saved_voice_is_a_404_at_its_path,
);

/// Vendor answers are checked before they are passed on: a 200 HTML page is not audio, a
/// redirect is not followed (it would carry the credential to another host), an absurd
/// `Retry-After` is capped, and what a vendor says about the operator's account stays private.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_answers_are_checked_before_they_are_passed_on() {
    let upstream = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("POST")).respond_with(audio_reply()).mount(&elsewhere).await;
    let voice_path = |voice: &str| format!("/v1/text-to-speech/{voice}/stream");
    Mock::given(path(voice_path("html")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw("<html><body>Service Unavailable</body></html>", "text/html; charset=utf-8"),
        )
        .mount(&upstream)
        .await;
    Mock::given(path(voice_path("moved")))
        .respond_with(
            ResponseTemplate::new(307).insert_header("location", format!("{}/v1/steal", elsewhere.uri()).as_str()),
        )
        .mount(&upstream)
        .await;
    Mock::given(path(voice_path("busy")))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1e30")
                .set_body_json(json!({"detail": {"status": "quota_exceeded\u{0}<script>", "message": "Organisation org-8f3k2 has used 99,812 of 100,000 credits on the Creator plan"}})),
        )
        .mount(&upstream)
        .await;
    Mock::given(path(voice_path("denied")))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"detail": {"status": "invalid_api_key", "message": "Key for workspace acme-billing@corp.example is disabled"}})),
        )
        .mount(&upstream)
        .await;
    let app = gateway(Db::Sqlite, &upstream).await;
    let (_, key) = app.speech_key().await;
    let ask = |voice: &str| json!({"model": "elevenlabs", "voice": voice, "text": "Hi", "output": "mp3"});

    let (status, body) = problem(speak(&app, &key, ask("html")).await).await;
    assert_eq!((status, body["code"].as_str()), (502, Some("upstream_invalid_response")), "{body}");

    let (status, body) = problem(speak(&app, &key, ask("moved")).await).await;
    assert_eq!((status, body["code"].as_str()), (502, Some("upstream_invalid_response")), "{body}");
    assert!(requests(&elsewhere).await.is_empty(), "the redirect was not followed");

    let response = speak(&app, &key, ask("busy")).await;
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    let (status, body) = problem(response).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("upstream_rate_limited")));
    assert_eq!(body["upstream_code"], "quota_exceededscript", "codes are kept to a slug");
    assert!(!body.to_string().contains("org-8f3k2") && !body.to_string().contains("Creator"), "{body}");

    let (status, body) = problem(speak(&app, &key, ask("denied")).await).await;
    assert_eq!((status, body["code"].as_str()), (502, Some("provider_auth_failed")));
    assert_eq!(body["upstream_code"], "invalid_api_key");
    assert!(!body.to_string().contains("acme-billing"), "{body}");

    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    for series in [
        r#"speechgate_provider_errors_total{provider="elevenlabs",code="upstream_invalid_response"} 2"#,
        r#"speechgate_provider_errors_total{provider="elevenlabs",code="upstream_rate_limited"} 1"#,
        r#"speechgate_provider_errors_total{provider="elevenlabs",code="provider_auth_failed"} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} missing from\n{metrics}");
    }
    app.stop().await;
}

/// A stream that keeps flowing past `providers.max_stream_secs` is cut, and usage says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_upstream_stream_is_cut_at_the_total_cap() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else { return };
        let mut buf = vec![0u8; 65536];
        let _ = socket.read(&mut buf).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: audio/mpeg\r\ntransfer-encoding: chunked\r\n\r\n";
        let _ = socket.write_all(head.as_bytes()).await;
        // A chunk every 100 ms, for at most 30 s: never idle, never done.
        for _ in 0..300 {
            if socket.write_all(b"4\r\nmp3!\r\n").await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.local.enabled = false;
        c.providers.max_stream_secs = 1;
        c.providers.openai = vendor(format!("{uri}/v1"));
    })
    .await;
    let (key_id, key) = app.speech_key().await;
    let started = std::time::Instant::now();
    let response =
        speak(&app, &key, json!({"model": "openai/tts-1", "voice": "alloy", "text": "Hi", "output": "mp3"})).await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err(), "the body ends in error, not as if complete");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let events = app.stop_and_read_usage(Some(&key_id)).await;
    let speech = events.iter().find(|e| e.event.route == "/v1/audio/speech").unwrap();
    assert_eq!(speech.event.error_code.as_deref(), Some("upstream_stream_failed"));
}

/// Usage ranges at the edges of the calendar are input errors, not panics or 500s.
async fn usage_dates_at_the_calendar_edges_are_400s(db: Db) {
    let app = TestApp::spawn(db).await;
    let (_, key) = app.speech_key().await;
    let cases = [
        ("to=-262143-01-01T00:00:00Z", "to"),
        ("from=-262143-01-01T00:00:00Z&to=%2B262142-12-31T23:59:59Z", "from"),
        ("from=-262143-01-01T00:00:00Z&to=-262143-02-01T00:00:00Z", "from"),
        ("from=%2B262142-12-31T23:59:59Z", "from"),
        ("from=9999-12-01T00:00:00Z&to=%2B10000-01-01T00:00:00Z", "to"),
    ];
    for (query, field) in cases {
        for route in ["/v1/usage", "/admin/v1/usage"] {
            let response = if route.starts_with("/admin") {
                app.client
                    .get(app.url(&format!("{route}?{query}")))
                    .bearer_auth(common::ADMIN_TOKEN)
                    .send()
                    .await
                    .unwrap()
            } else {
                app.get(&format!("{route}?{query}"), Some(&key)).await
            };
            let (status, body) = problem(response).await;
            assert_eq!(status, 400, "{route}?{query}: {body}");
            assert_eq!(paths(&body), vec![field.to_owned()], "{route}?{query}: {body}");
        }
    }
    app.stop().await;
}

/// The usage queue is bounded by admission: while the backlog is at `usage.max_queue`, new
/// requests get 503 `usage_backlog` before doing any work, and none loses its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_usage_backlog_turns_new_requests_away() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.usage.max_queue = 1;
        // The writer holds its first event this long, waiting for more: a backlog of one.
        c.usage.flush_interval_ms = 5_000;
    })
    .await;
    let (key_id, key) = app.speech_key().await;
    // Creating the key left its own event in the queue: wait until it is written.
    let drained = app.answers_within("/v1/usage", &key, 200, std::time::Duration::from_secs(15)).await;
    assert!(drained, "the backlog never drained");
    let response = app.get("/v1/usage", Some(&key)).await;
    assert!(response.headers().contains_key("retry-after"));
    let (status, body) = problem(response).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("usage_backlog")));
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains("speechgate_usage_writer_queue_depth 1"), "{metrics}");
    assert!(metrics.contains(r#"speechgate_requests_shed_total{reason="usage_backlog"}"#), "{metrics}");
    // Once written, requests are admitted again.
    let admitted = app.answers_within("/v1/usage", &key, 200, std::time::Duration::from_secs(15)).await;
    assert!(admitted, "the backlog never drained");
    let events = app.stop_and_read_usage(Some(&key_id)).await;
    assert_eq!(events.iter().filter(|e| e.event.status == 200).count(), 2, "every admitted request has its event");
}
