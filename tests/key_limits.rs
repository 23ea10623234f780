//! A key's limits and budgets: two gateway replicas on one PostgreSQL database share a key's
//! rate limit, characters per minute, concurrency and monthly budgets; a budget refuses before
//! any upstream call; the admin API's PATCH refuses hostile input; SQLite keeps limits per
//! process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use std::time::Duration;

use common::{problem, test_config, test_db, Db, StreamingUpstream, TestApp, ADMIN_TOKEN};
use reqwest::Response;
use serde_json::{json, Value};
use speechgate::config::{Config, VendorConfig};
use wiremock::{matchers::method, Mock, MockServer, ResponseTemplate};

/// A fake OpenAI that answers every speech request with a few bytes of "mp3".
async fn openai_upstream() -> MockServer {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"ID3-audio".to_vec()))
        .mount(&upstream)
        .await;
    upstream
}

fn with_openai(config: &mut Config, uri: &str) {
    config.providers.local.enabled = false;
    config.providers.openai = VendorConfig {
        api_key: Some("sk-upstream".to_owned().into()),
        base_url: Some(format!("{uri}/v1")),
        ..VendorConfig::default()
    };
    config.prices.insert("openai/tts-1".to_owned(), 15.0);
    config.prices.insert("openai".to_owned(), 30.0);
}

/// Two replicas on one database (PostgreSQL for shared limits), both with the same config.
async fn replicas(db: Db, tweak: impl Fn(&mut Config)) -> (TestApp, TestApp) {
    let database = test_db(db).await;
    let mut config = test_config(&database.url);
    tweak(&mut config);
    let shared = database.shared();
    let first = TestApp::start(config.clone(), database).await;
    let second = TestApp::start(config, shared).await;
    (first, second)
}

async fn speak(app: &TestApp, key: &str, text: &str) -> Response {
    app.post("/v1/audio/speech", key, json!({"model": "openai/tts-1", "voice": "alloy", "text": text, "output": "mp3"}))
        .await
}

fn header(response: &Response, name: &str) -> Option<u64> {
    response.headers().get(name).map(|v| v.to_str().unwrap().parse().unwrap())
}

async fn calls(upstream: &MockServer) -> usize {
    upstream.received_requests().await.unwrap().len()
}

/// The key's month as `/v1/usage` reports it, once the usage writer has recorded `characters`.
/// The month's counter is charged as a request is admitted and its usage row is written a moment
/// later, off the request path: both must show the characters before the test reads either.
async fn month_once_written(app: &TestApp, key: &str, characters: i64) -> Value {
    for _ in 0..200 {
        let usage: Value = app.get("/v1/usage", Some(key)).await.json().await.unwrap();
        if usage["month"]["characters"] == characters && usage["totals"]["characters"] == characters {
            return usage;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the key's month never reached {characters} characters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_a_keys_rate_limit() {
    let (a, b) = replicas(Db::Postgres, |_| {}).await;
    let (_, key) = a.create_key(json!({"name": "shared", "rateLimitPerMinute": 4})).await;
    let mut remaining = Vec::new();
    for app in [&a, &b, &a, &b] {
        let response = app.get("/v1/usage", Some(&key)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "ratelimit-limit"), Some(4));
        remaining.push(header(&response, "ratelimit-remaining").unwrap());
        assert!(header(&response, "ratelimit-reset").is_some_and(|reset| (1..=60).contains(&reset)));
    }
    assert_eq!(remaining, [3, 2, 1, 0], "each replica counts the other's requests");
    // The fifth, on either replica, is refused, with the headers of the limit.
    for app in [&b, &a] {
        let response = app.get("/v1/usage", Some(&key)).await;
        assert_eq!(header(&response, "ratelimit-limit"), Some(4));
        assert_eq!(header(&response, "ratelimit-remaining"), Some(0));
        assert!(header(&response, "retry-after").is_some_and(|wait| (1..=120).contains(&wait)));
        let (status, body) = problem(response).await;
        assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")));
    }
    // A key without a limit gets no RateLimit headers.
    let (_, free) = a.speech_key().await;
    let response = b.get("/v1/usage", Some(&free)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("ratelimit-limit").is_none());
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_a_keys_characters_per_minute() {
    let upstream = openai_upstream().await;
    let uri = upstream.uri();
    let (a, b) = replicas(Db::Postgres, |c| with_openai(c, &uri)).await;
    let (_, key) = a.create_key(json!({"name": "chars", "charactersPerMinute": 10})).await;
    let first = speak(&a, &key, "Hello").await;
    assert_eq!(first.status(), 200);
    assert_eq!((header(&first, "ratelimit-limit"), header(&first, "ratelimit-remaining")), (Some(10), Some(5)));
    let second = speak(&b, &key, "World").await;
    assert_eq!(second.status(), 200);
    assert_eq!(header(&second, "ratelimit-remaining"), Some(0));
    // Two more characters would make 12 in the minute, on either replica.
    let response = speak(&a, &key, "Hi").await;
    assert_eq!(header(&response, "ratelimit-limit"), Some(10));
    let (status, body) = problem(response).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")));
    // A text longer than the whole limit can never pass: refused, and not counted.
    let (status, body) = problem(speak(&b, &key, "Hello there, world").await).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")));
    assert!(body["detail"].as_str().unwrap().contains("exceed the key's limit of 10"), "{body}");
    assert_eq!(calls(&upstream).await, 2, "refused requests never reach the provider");
    a.stop().await;
    b.stop().await;
}

/// A gateway replica whose OpenAI upstream holds each stream open until released.
async fn held_replicas() -> (TestApp, TestApp, StreamingUpstream) {
    let upstream = StreamingUpstream::start("audio/mpeg", b"first".to_vec(), b"rest".to_vec(), false).await;
    let uri = upstream.uri.clone();
    let (a, b) = replicas(Db::Postgres, |c| {
        with_openai(c, &uri);
        c.auth.lease_secs = 3;
    })
    .await;
    (a, b, upstream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_a_keys_concurrency_and_a_dead_replicas_leases_lapse() {
    let (a, b, upstream) = held_replicas().await;
    let (key_id, key) = a.create_key(json!({"name": "one at a time", "maxConcurrent": 1})).await;
    let mut held = speak(&a, &key, "Hi").await;
    assert_eq!(held.status(), 200);
    assert_eq!(held.chunk().await.unwrap().unwrap().as_ref(), b"first");
    // The stream on replica A holds the key's only slot on replica B too.
    let response = b.get("/v1/usage", Some(&key)).await;
    assert!(response.headers().get("retry-after").is_some());
    let (status, body) = problem(response).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("too_many_concurrent_requests")));
    // Held past its lease's lifetime (3 s), the stream keeps its slot: the lease is renewed.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(b.get("/v1/usage", Some(&key)).await.status(), 429);
    upstream.release();
    while held.chunk().await.unwrap().is_some() {}
    assert!(b.answers_within("/v1/usage", &key, 200, Duration::from_secs(5)).await, "the slot came back");

    // A replica that died holding a lease: its lease lapses on its own.
    let store = speechgate::store::connect(&a.db.url, 1).await.unwrap();
    let counters = store.shared_counters().expect("PostgreSQL shares counters");
    // The lease of the request that just answered is released as its response ends, which may be
    // a moment after the client has read it: the dead replica's lease is taken once it is free.
    let mut now = chrono::Utc::now().timestamp_millis();
    let mut taken = None;
    for _ in 0..100 {
        now = chrono::Utc::now().timestamp_millis();
        taken = counters.acquire_lease(&key_id, "dead-replica", now, now + 1500, 1).await.unwrap();
        if taken.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(taken, Some(1), "the slot is free once the last request has ended");
    assert_eq!(b.get("/v1/usage", Some(&key)).await.status(), 429);
    assert!(b.answers_within("/v1/usage", &key, 200, Duration::from_secs(5)).await, "the dead lease lapsed");
    // Keys without maxConcurrent keep the per-replica default and touch no lease.
    let (other_id, other) = a.speech_key().await;
    assert_eq!(b.get("/v1/usage", Some(&other)).await.status(), 200);
    assert_eq!(counters.acquire_lease(&other_id, "probe", now, now + 60_000, 1).await.unwrap(), Some(1));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_a_keys_monthly_budgets() {
    let upstream = openai_upstream().await;
    let uri = upstream.uri();
    let (a, b) = replicas(Db::Postgres, |c| with_openai(c, &uri)).await;
    let (_, key) = a.create_key(json!({"name": "budget", "monthlyCharacterBudget": 10})).await;
    assert_eq!(speak(&a, &key, "Hello").await.status(), 200);
    month_once_written(&b, &key, 5).await;
    assert_eq!(speak(&b, &key, "World").await.status(), 200, "5 + 5 is the budget exactly");
    month_once_written(&a, &key, 10).await;
    // The first replica refuses what the second used up.
    let (status, body) = problem(speak(&a, &key, "!").await).await;
    assert_eq!((status, body["code"].as_str()), (402, Some("budget_exceeded")));
    assert_eq!(calls(&upstream).await, 2);

    // Spend: $15 per million characters of openai/tts-1, so 5 characters cost $0.000075.
    let (_, key) = a.create_key(json!({"name": "spend", "monthlySpendLimitUsd": 0.0001})).await;
    assert_eq!(speak(&b, &key, "Hello").await.status(), 200);
    let usage = month_once_written(&a, &key, 5).await;
    assert!((usage["month"]["spendUsd"].as_f64().unwrap() - 0.000075).abs() < 1e-12, "{usage}");
    assert!((usage["totals"]["spendUsd"].as_f64().unwrap() - 0.000075).abs() < 1e-12, "{usage}");
    assert_eq!(usage["month"]["monthlySpendLimitUsd"], 0.0001);
    let (status, body) = problem(speak(&a, &key, "World").await).await;
    assert_eq!((status, body["code"].as_str()), (402, Some("budget_exceeded")));
    assert_eq!(calls(&upstream).await, 3);
    a.stop().await;
    b.stop().await;
}

/// A request whose characters would cross the budget is refused before any provider call, on
/// every synthesising route, in each route's dialect.
async fn budgets_refuse_before_any_upstream_call(db: Db) {
    let upstream = openai_upstream().await;
    let uri = upstream.uri();
    let app = TestApp::spawn_with(db, |c| with_openai(c, &uri)).await;
    let (key_id, key) = app.create_key(json!({"name": "small", "monthlyCharacterBudget": 4})).await;
    let (status, body) = problem(speak(&app, &key, "Hello").await).await;
    assert_eq!((status, body["code"].as_str()), (402, Some("budget_exceeded")));
    assert!(body["detail"].as_str().unwrap().contains("monthly budget of 4 characters"), "{body}");
    assert_eq!(body["error"]["type"], "insufficient_quota", "OpenAI SDKs on /v1 read this");
    let turns =
        json!({"model": "openai/tts-1", "turns": [{"voice": "alloy", "text": "Hi"}, {"voice": "echo", "text": "Yo!"}]});
    let (status, body) = problem(app.post("/v1/audio/conversation", &key, turns).await).await;
    assert_eq!((status, body["code"].as_str()), (402, Some("budget_exceeded")), "2 + 3 characters in all");
    let timed = json!({"model": "openai/tts-1", "voice": "alloy", "text": "Hello"});
    let (status, _) = problem(app.post("/v1/audio/speech/with-timestamps", &key, timed).await).await;
    assert_eq!(status, 402);

    // OpenAI's drop-in: OpenAI's own answer to a spent quota, not to be retried.
    let response =
        app.post("/openai/v1/audio/speech", &key, json!({"model": "tts-1", "voice": "alloy", "input": "Hello"})).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["x-should-retry"], "false");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["error"]["type"].as_str(), body["error"]["code"].as_str()),
        (Some("insufficient_quota"), Some("insufficient_quota"))
    );
    // ElevenLabs' drop-in: ElevenLabs' own `quota_exceeded`.
    let response = app
        .client
        .post(app.url("/elevenlabs/v1/text-to-speech/openai:alloy"))
        .header("xi-api-key", &key)
        .json(&json!({"text": "Hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["detail"]["status"], "quota_exceeded", "{body}");

    assert_eq!(calls(&upstream).await, 0, "nothing reached the provider");
    // Within the budget, it is served; and usage records every refusal.
    assert_eq!(speak(&app, &key, "Hey").await.status(), 200);
    assert_eq!(calls(&upstream).await, 1);
    let usage = app.stop_and_read_usage(Some(&key_id)).await;
    assert_eq!(usage.iter().filter(|u| u.event.error_code.as_deref() == Some("budget_exceeded")).count(), 5);
    let served: Vec<_> = usage.iter().filter(|u| u.event.status == 200).collect();
    assert_eq!(served.len(), 1);
    // 3 characters at $15 per million: 45 micro-dollars.
    assert_eq!((served[0].event.characters, served[0].event.spend_nanos), (3, 45_000));
}

/// On SQLite the limits are the process's: counted in memory, exactly.
async fn limits_hold_on_one_process(db: Db) {
    let upstream = openai_upstream().await;
    let uri = upstream.uri();
    let app = TestApp::spawn_with(db, |c| with_openai(c, &uri)).await;
    let (_, key) = app.create_key(json!({"name": "both", "rateLimitPerMinute": 3, "charactersPerMinute": 100})).await;
    let statuses = [
        speak(&app, &key, "Hello").await.status().as_u16(),
        speak(&app, &key, "Hello").await.status().as_u16(),
        speak(&app, &key, "Hello").await.status().as_u16(),
        speak(&app, &key, "Hello").await.status().as_u16(),
    ];
    assert_eq!(statuses, [200, 200, 200, 429]);
    assert_eq!(calls(&upstream).await, 3);
    // The headers report whichever limit has less left: 0 of 3 requests.
    let response = app.get("/v1/usage", Some(&key)).await;
    assert_eq!((header(&response, "ratelimit-limit"), header(&response, "ratelimit-remaining")), (Some(3), Some(0)));
    app.stop().await;
}

both_databases!(budgets_refuse_before_any_upstream_call, limits_hold_on_one_process);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_own_max_concurrent_overrides_the_default_on_sqlite() {
    let upstream = StreamingUpstream::start("audio/mpeg", b"first".to_vec(), b"rest".to_vec(), false).await;
    let uri = upstream.uri.clone();
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        with_openai(c, &uri);
        c.auth.max_concurrent_per_key = 1;
    })
    .await;
    let (_, two) = app.create_key(json!({"name": "two", "maxConcurrent": 2})).await;
    let mut held = speak(&app, &two, "Hi").await;
    assert_eq!(held.chunk().await.unwrap().unwrap().as_ref(), b"first");
    assert_eq!(app.get("/v1/usage", Some(&two)).await.status(), 200, "a second request fits its own limit of 2");
    upstream.release();
    while held.chunk().await.unwrap().is_some() {}
    app.stop().await;
}

async fn patch(app: &TestApp, id: &str, body: &str, content_type: &str) -> Response {
    app.client
        .patch(app.url(&format!("/admin/v1/keys/{id}")))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn patching_a_keys_limits(db: Db) {
    let app = TestApp::spawn(db).await;
    let (id, key) = app.create_key(json!({"name": "p", "rateLimitPerMinute": 5, "maxConcurrent": 3})).await;
    const MERGE: &str = "application/merge-patch+json";

    // Merge semantics: absent members stay, null clears, values set.
    let response = patch(
        &app,
        &id,
        r#"{"rateLimitPerMinute": null, "monthlyCharacterBudget": 1000, "monthlySpendLimitUsd": 2.5}"#,
        MERGE,
    )
    .await;
    assert_eq!(response.status(), 200);
    let changed: Value = response.json().await.unwrap();
    assert_eq!(changed["rateLimitPerMinute"], Value::Null);
    assert_eq!(changed["maxConcurrent"], 3);
    assert_eq!(
        (changed["monthlyCharacterBudget"].as_u64(), changed["monthlySpendLimitUsd"].as_f64()),
        (Some(1000), Some(2.5))
    );
    // The change holds at once on this replica: the budget now shows in the key's usage.
    let usage: Value = app.get("/v1/usage", Some(&key)).await.json().await.unwrap();
    assert_eq!(usage["month"]["monthlyCharacterBudget"], 1000);
    let response = patch(&app, &id, "{}", "application/json").await;
    assert_eq!(response.status(), 200, "an empty patch changes nothing");
    let unchanged: Value = response.json().await.unwrap();
    assert_eq!(unchanged["monthlyCharacterBudget"], 1000);

    // Hostile input: each refused with 400 naming the member, and nothing changed.
    let cases: &[(&str, &str)] = &[
        (r#"{"rateLimitPerMinute": 0}"#, "rateLimitPerMinute"),
        (r#"{"charactersPerMinute": -5}"#, "charactersPerMinute"),
        (r#"{"maxConcurrent": 1.5}"#, "maxConcurrent"),
        (r#"{"maxConcurrent": 1000000000}"#, "maxConcurrent"),
        (r#"{"rateLimitPerMinute": "10"}"#, "rateLimitPerMinute"),
        (r#"{"monthlyCharacterBudget": 18446744073709551615}"#, "monthlyCharacterBudget"),
        (r#"{"monthlySpendLimitUsd": 0}"#, "monthlySpendLimitUsd"),
        (r#"{"monthlySpendLimitUsd": -1}"#, "monthlySpendLimitUsd"),
        (r#"{"monthlySpendLimitUsd": 1e300}"#, "monthlySpendLimitUsd"),
        (r#"{"monthlySpendLimitUsd": true}"#, "monthlySpendLimitUsd"),
        (r#"{"scopes": ["admin"]}"#, "scopes"),
        (r#"{"name": "renamed", "maxConcurrent": 2}"#, "name"),
    ];
    for (body, member) in cases {
        let (status, problem_body) = problem(patch(&app, &id, body, MERGE).await).await;
        assert_eq!((status, problem_body["code"].as_str()), (400, Some("validation_failed")), "{body}");
        assert_eq!(problem_body["validation"][0]["path"], json!([member]), "{body}: {problem_body}");
    }
    let (status, body) = problem(patch(&app, &id, r#"{"bogus": 1, "rateLimitPerMinute": 0}"#, MERGE).await).await;
    assert_eq!(status, 400);
    assert_eq!(body["validation"].as_array().unwrap().len(), 2, "every problem at once: {body}");
    for (body, expected) in [("[1]", 400), ("null", 400), ("{not json", 400), ("\"x\"", 400)] {
        assert_eq!(patch(&app, &id, body, MERGE).await.status(), expected, "{body}");
    }
    assert_eq!(patch(&app, &id, "{}", "text/plain").await.status(), 415);
    let after: Value = app
        .client
        .get(app.url(&format!("/admin/v1/keys/{id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((after["maxConcurrent"].as_u64(), after["monthlyCharacterBudget"].as_u64()), (Some(3), Some(1000)));
    assert_eq!(after["name"], "p");

    // Unknown key: 404; a speech key: 403.
    let (status, _) = problem(patch(&app, "nosuchkey000", "{}", MERGE).await).await;
    assert_eq!(status, 404);
    let response = app
        .client
        .patch(app.url(&format!("/admin/v1/keys/{id}")))
        .bearer_auth(&key)
        .json(&json!({"rateLimitPerMinute": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    // Creation takes the same limits and refuses the same values.
    for (body, member) in [
        (json!({"name": "c", "charactersPerMinute": 0}), "charactersPerMinute"),
        (json!({"name": "c", "maxConcurrent": -1}), "maxConcurrent"),
        (json!({"name": "c", "monthlySpendLimitUsd": -0.5}), "monthlySpendLimitUsd"),
        (json!({"name": "c", "monthlyCharacterBudget": 0}), "monthlyCharacterBudget"),
    ] {
        let (status, problem_body) = problem(app.admin_post("/admin/v1/keys", body.clone()).await).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(problem_body["validation"][0]["path"], json!([member]), "{body}: {problem_body}");
    }
    app.stop().await;
}

both_databases!(patching_a_keys_limits);

/// Many requests at once, spread over both replicas: exactly the limit is admitted, because each
/// count and each lease is one atomic statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_replicas_admit_exactly_the_limit() {
    let (a, b, upstream) = held_replicas().await;
    let (_, key) = a.create_key(json!({"name": "race", "rateLimitPerMinute": 10})).await;
    let requests = (0..30).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.get("/v1/usage", Some(&key))
    });
    let statuses: Vec<u16> = futures::future::join_all(requests).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 20, "{statuses:?}");

    let (_, key) = a.create_key(json!({"name": "two at once", "maxConcurrent": 2})).await;
    let requests = (0..6).map(|i| speak(if i % 2 == 0 { &a } else { &b }, &key, "Hi"));
    let responses = futures::future::join_all(requests).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 2, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 4, "{statuses:?}");
    assert_eq!(upstream.calls.load(std::sync::atomic::Ordering::SeqCst), 2, "the refused never reached the provider");
    // Each release lets one held stream finish.
    upstream.release();
    upstream.release();
    for response in responses {
        let _ = response.bytes().await;
    }
    a.stop().await;
    b.stop().await;
}

/// A rate-limited key on the drop-in routes: each vendor's error shape, with `Retry-After` and
/// the RateLimit headers, and no `x-should-retry: false` (waiting helps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facades_answer_a_rate_limit_in_their_dialect_with_the_headers() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let (_, key) = app.create_key(json!({"name": "one a minute", "rateLimitPerMinute": 1})).await;
    let first = app.get("/openai/v1/models", Some(&key)).await;
    assert_eq!(first.status(), 200);
    assert_eq!((header(&first, "ratelimit-limit"), header(&first, "ratelimit-remaining")), (Some(1), Some(0)));
    for path in ["/openai/v1/models", "/elevenlabs/v1/models", "/playht/api/v2/voices", "/v1/models"] {
        let response = app.get(path, Some(&key)).await;
        assert_eq!(response.status(), 429, "{path}");
        assert!(header(&response, "retry-after").is_some_and(|wait| (1..=120).contains(&wait)), "{path}");
        assert_eq!(
            (header(&response, "ratelimit-limit"), header(&response, "ratelimit-remaining")),
            (Some(1), Some(0))
        );
        assert!(response.headers().get("x-should-retry").is_none(), "{path}");
        let body: Value = response.json().await.unwrap();
        let code = match path {
            "/openai/v1/models" => &body["error"]["code"],
            "/elevenlabs/v1/models" => &body["detail"]["status"],
            "/playht/api/v2/voices" => &body["error_id"],
            _ => &body["code"],
        };
        assert_eq!(code, "rate_limited", "{path}: {body}");
    }
    app.stop().await;
}

/// Each WebSocket command is admitted like a request: its characters count against the key's
/// characters per minute and its budget before it is voiced, and a refusal is that command's
/// error, on both databases.
async fn websocket_commands_are_admitted_one_by_one(db: Db) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let app = TestApp::spawn(db).await;
    let (_, key) =
        app.create_key(json!({"name": "socket", "charactersPerMinute": 8, "monthlyCharacterBudget": 100})).await;
    let auth: Value =
        app.client.post(app.url("/v1/websocket-auth")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    let url = auth["webSocketUrls"]["local/espeak-ng"].as_str().unwrap();
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    for (id, text) in [(1, "Hello"), (2, "Hello"), (3, "Hey")] {
        let command = json!({"voice": "en-us", "text": text, "output": "mp3", "request_id": id});
        socket.send(Message::text(command.to_string())).await.unwrap();
    }
    let mut seen = Vec::new();
    while seen.iter().filter(|s: &&String| s.starts_with("end")).count() < 3 {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next()).await.unwrap().unwrap().unwrap();
        if let Message::Text(text) = message {
            let event: Value = serde_json::from_str(&text).unwrap();
            seen.push(format!("{}:{}:{}", event["type"].as_str().unwrap(), event["request_id"], event["error_id"]));
        }
    }
    socket.close(None).await.unwrap();
    // 5 characters, then 5 more would make 10 of 8 a minute; then 3 make exactly 8.
    assert_eq!(
        seen,
        [
            "start:1:null",
            "end:1:null",
            "start:2:null",
            "error:2:\"rate_limited\"",
            "end:2:null",
            "start:3:null",
            "end:3:null"
        ]
    );
    app.stop().await;
}

both_databases!(websocket_commands_are_admitted_one_by_one);
