//! The limits a public service needs, each proved by the fault it stops: slow and half-sent
//! requests, made-up methods, too many requests at once (globally and per key), guessing keys,
//! and a revocation racing with lookups.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]
#![allow(clippy::disallowed_methods, reason = "load runs as tasks the test joins")]

mod common;

use std::time::{Duration, Instant};

use common::{problem, Db, StreamingUpstream, TestApp};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Reads until the server closes the connection; returns what it sent and how long it took.
async fn read_until_closed(socket: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), socket.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the server kept the connection open for {limit:?}: {}", String::from_utf8_lossy(&seen)),
        }
    }
    (String::from_utf8_lossy(&seen).into_owned(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_and_idle_connections_are_closed() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| c.server.header_read_timeout_secs = 1).await;
    // Half the headers, then nothing.
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: ").await.unwrap();
    let (_, took) = read_until_closed(&mut socket, Duration::from_secs(15)).await;
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");

    // A whole request on a keep-alive connection, then silence.
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n").await.unwrap();
    let (answer, _) = read_until_closed(&mut socket, Duration::from_secs(15)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_is_a_408() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| c.server.body_read_timeout_secs = 1).await;
    let (_, key) = app.speech_key().await;
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v1/audio/speech HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"text\": "
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(15), socket.read(&mut buf)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json") && answer.contains("request_timeout"), "{answer}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_do_not_create_metric_series() {
    let app = TestApp::spawn(Db::Sqlite).await;
    for i in 0..25 {
        let method = reqwest::Method::from_bytes(format!("BREW{i}").as_bytes()).unwrap();
        let response = app.client.request(method, app.url("/healthz")).send().await.unwrap();
        let (status, _) = problem(response).await;
        assert_eq!(status, 405);
    }
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(!metrics.contains("BREW"), "a made-up method became a label");
    assert!(metrics.contains(r#"method="OTHER""#), "{metrics}");
    app.stop().await;
}

/// A gateway whose OpenAI upstream holds its stream open until released.
async fn gateway_with_held_stream(tweak: impl FnOnce(&mut speechgate::config::Config)) -> (TestApp, StreamingUpstream) {
    let upstream = StreamingUpstream::start("audio/mpeg", b"first".to_vec(), b"rest".to_vec(), false).await;
    let uri = upstream.uri.clone();
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.local.enabled = false;
        c.providers.openai = speechgate::config::VendorConfig {
            api_key: Some("sk-upstream".to_owned().into()),
            base_url: Some(format!("{uri}/v1")),
            ..Default::default()
        };
        tweak(c);
    })
    .await;
    (app, upstream)
}

fn mp3_request(app: &TestApp, key: &str) -> reqwest::RequestBuilder {
    app.client
        .post(app.url("/v1/audio/speech"))
        .bearer_auth(key)
        .json(&json!({"model": "openai/tts-1", "voice": "alloy", "text": "Hi", "output": "mp3"}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_progress_are_limited_per_key_and_in_all() {
    let (app, upstream) = gateway_with_held_stream(|c| c.auth.max_concurrent_per_key = 1).await;
    let (_, key) = app.speech_key().await;
    let (_, other) = app.speech_key().await;
    // A stream in progress counts until its last byte.
    let mut held = mp3_request(&app, &key).send().await.unwrap();
    assert_eq!(held.status(), 200);
    assert_eq!(held.chunk().await.unwrap().unwrap().as_ref(), b"first");
    let response = app.get("/v1/usage", Some(&key)).await;
    let retry_after = response.headers().get("retry-after").cloned();
    let (status, body) = problem(response).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("too_many_concurrent_requests")));
    assert!(retry_after.is_some());
    assert_eq!(app.get("/v1/usage", Some(&other)).await.status(), 200, "the limit is per key");
    upstream.release();
    while held.chunk().await.unwrap().is_some() {}
    assert_eq!(app.get("/v1/usage", Some(&key)).await.status(), 200, "the slot is back once the stream ended");
    app.stop().await;

    let (app, upstream) = gateway_with_held_stream(|c| c.server.max_concurrent_requests = 1).await;
    let (_, key) = app.speech_key().await;
    let mut held = mp3_request(&app, &key).send().await.unwrap();
    assert_eq!(held.chunk().await.unwrap().unwrap().as_ref(), b"first");
    let (status, body) = problem(app.get("/v1/usage", Some(&key)).await).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("overloaded")));
    assert_eq!(app.get("/healthz", None).await.status(), 200, "health is reported even when saturated");
    upstream.release();
    while held.chunk().await.unwrap().is_some() {}
    assert_eq!(app.get("/v1/usage", Some(&key)).await.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_keys_is_throttled_per_address() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.auth.max_failures_per_minute = 3;
        // The known key must stay cached through the test, however slow the machine.
        c.auth.cache_ttl_secs = 60;
    })
    .await;
    let (_, known) = app.speech_key().await;
    let (_, unseen) = app.speech_key().await;
    assert_eq!(app.get("/v1/usage", Some(&known)).await.status(), 200, "cached before the attack");
    let guess = |i: usize| format!("sg_{:012}_{}", i, "x".repeat(40));
    for i in 0..3 {
        assert_eq!(app.get("/v1/usage", Some(&guess(i))).await.status(), 401);
    }
    let response = app.get("/v1/usage", Some(&guess(9))).await;
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let (status, body) = problem(response).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("auth_throttled")));
    // A key this replica already knows keeps working from the same address; others wait.
    assert_eq!(app.get("/v1/usage", Some(&known)).await.status(), 200);
    assert_eq!(problem(app.get("/v1/usage", Some(&unseen)).await).await.0, 429);
    let admin = |token: &str| app.client.get(app.url("/admin/v1/keys")).bearer_auth(token.to_owned()).send();
    assert_eq!(problem(admin("a-wrong-admin-token-guess").await.unwrap()).await.0, 429);
    assert_eq!(
        problem(admin(common::ADMIN_TOKEN).await.unwrap()).await.0,
        429,
        "a throttled address cannot guess at the admin token, so it cannot use it either"
    );
    app.stop().await;
}

/// Behind a trusted proxy, the client is the address the proxy names: one client guessing does
/// not lock out the others, and an untrusted peer cannot pick its own address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_throttle_counts_the_client_a_trusted_proxy_names() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.auth.max_failures_per_minute = 2;
        c.server.trusted_proxies = vec!["127.0.0.0/8".to_owned()];
    })
    .await;
    let (_, key) = app.speech_key().await;
    let from = |client: &str, token: &str| {
        app.client
            .get(app.url("/v1/usage"))
            .bearer_auth(token.to_owned())
            .header("x-forwarded-for", format!("6.6.6.6, {client}"))
            .send()
    };
    let guess = format!("sg_{:012}_{}", 7, "x".repeat(40));
    for _ in 0..2 {
        assert_eq!(from("198.51.100.7", &guess).await.unwrap().status(), 401);
    }
    assert_eq!(problem(from("198.51.100.7", &guess).await.unwrap()).await.0, 429);
    assert_eq!(problem(from("198.51.100.7", &key).await.unwrap()).await.0, 429, "an uncached key waits");
    assert_eq!(from("198.51.100.8", &key).await.unwrap().status(), 200, "another client is not locked out");
    app.stop().await;
}

/// Requests racing with a revocation: once the revoke has answered, this replica refuses the
/// key at once — no lookup begun before it can put the key back into the cache.
async fn revocation_wins_over_lookups_in_flight(db: Db) {
    let app = TestApp::spawn_with(db, |c| {
        c.auth.cache_ttl_secs = 60;
        // The revoked key's 401s would otherwise throttle the test's own address.
        c.auth.max_failures_per_minute = 1_000_000;
    })
    .await;
    let (id, key) = app.speech_key().await;
    for _round in 0..5 {
        let (id, key) = app.speech_key().await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut load = Vec::new();
        for _ in 0..4 {
            let (client, url, key, stop) = (app.client.clone(), app.url("/v1/usage"), key.clone(), stop.clone());
            load.push(tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = client.get(&url).bearer_auth(&key).send().await;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        let revoked = app
            .client
            .delete(app.url(&format!("/admin/v1/keys/{id}")))
            .bearer_auth(common::ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), 204);
        tokio::time::sleep(Duration::from_millis(30)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for task in load {
            task.await.unwrap();
        }
        for _ in 0..5 {
            assert_eq!(app.get("/v1/usage", Some(&key)).await.status(), 401, "a revoked key came back from the cache");
        }
    }
    assert_eq!(app.get("/v1/usage", Some(&key)).await.status(), 200);
    let _ = id;
    app.stop().await;
}

both_databases!(revocation_wins_over_lookups_in_flight);

/// A client that stops reading is dropped once a write has waited `server.write_timeout_secs`,
/// which gives back its key's slot (a stalled socket stops the body being polled, and with it
/// every timeout inside it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_gives_its_slot_back() {
    let big = vec![0x55u8; 32 * 1024 * 1024];
    let upstream = StreamingUpstream::start("audio/mpeg", big, Vec::new(), false).await;
    let uri = upstream.uri.clone();
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.local.enabled = false;
        c.server.write_timeout_secs = 3;
        c.auth.max_concurrent_per_key = 1;
        c.providers.openai = speechgate::config::VendorConfig {
            api_key: Some("sk-upstream".to_owned().into()),
            base_url: Some(format!("{uri}/v1")),
            ..Default::default()
        };
    })
    .await;
    let (_, key) = app.speech_key().await;
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    let body = r#"{"model": "openai/tts-1", "voice": "alloy", "text": "Hi", "output": "mp3"}"#;
    let head = format!(
        "POST /v1/audio/speech HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    // The stream was admitted (its head says 200); from here on the client reads nothing.
    let mut status = [0u8; 12];
    socket.read_exact(&mut status).await.unwrap();
    assert_eq!(&status, b"HTTP/1.1 200");
    // The stalled stream holds the key's only slot...
    assert_eq!(problem(app.get("/v1/usage", Some(&key)).await).await.0, 429);
    // ...until the write deadline drops the connection.
    let freed = app.answers_within("/v1/usage", &key, 200, Duration::from_secs(20)).await;
    assert!(freed, "the stalled client kept its slot");
    drop(socket);
    app.stop().await;
}
