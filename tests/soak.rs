//! A bounded soak on loopback: `SPEECHGATE_SOAK_SECS` (default 60) of mixed traffic from 32
//! concurrent clients against one gateway on PostgreSQL, with faults injected upstream — a
//! provider that fails one call in five (retries absorb it), one that is down (its circuit
//! opens), one that answers HTML instead of audio, and a route whose first target is the one
//! that is down. Checked afterwards:
//!
//! - no 5xx except from the faulty providers, and none at all through the route;
//! - every response is accounted for in usage: per route and status, the rows in the database
//!   equal the responses the clients received;
//! - RSS after the run is within 64 MiB of RSS after the warm-up.
//!
//! It runs on its own after the suite (`scripts/test.sh`), not inside it, so that it neither
//! slows the other tests nor is slowed by them:
//! `cargo nextest run --test soak --run-ignored only --no-capture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]
#![allow(clippy::print_stdout, reason = "the soak reports its figures")]
#![allow(clippy::disallowed_methods, reason = "the fake upstream and the clients are spawned tasks")]

mod common;

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use axum::{body::Bytes, extract::State, http::StatusCode, response::IntoResponse, routing::post, Json, Router};
use common::{Db, TestApp};
use serde_json::{json, Value};
use speechgate::config::{CompatibleConfig, RouteConfig, RouteTargetConfig};

const CLIENTS: usize = 32;

/// How a fake provider behaves.
#[derive(Clone, Copy)]
enum Behaviour {
    Healthy,
    /// A 500 on every fifth call.
    Flaky,
    Down,
    /// 200 with an HTML page.
    Garbage,
}

#[derive(Clone)]
struct Fake {
    behaviour: Behaviour,
    calls: Arc<AtomicU64>,
}

/// OpenAI's speech endpoint: MP3-looking bytes, or 0.25 s of 24 kHz PCM when PCM is asked for.
async fn speech(State(fake): State<Fake>, Json(body): Json<Value>) -> axum::response::Response {
    let call = fake.calls.fetch_add(1, Ordering::Relaxed) + 1;
    match fake.behaviour {
        Behaviour::Down => return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response(),
        Behaviour::Flaky if call % 5 == 0 => return (StatusCode::INTERNAL_SERVER_ERROR, "flaky").into_response(),
        Behaviour::Garbage => return ([("content-type", "text/html")], "<html>captive portal</html>").into_response(),
        _ => {}
    }
    if body["response_format"] == "pcm" {
        let samples: Vec<u8> = (0..6_000i16).flat_map(|i| ((i % 200 - 100) * 60).to_le_bytes()).collect();
        ([("content-type", "audio/pcm")], Bytes::from(samples)).into_response()
    } else {
        ([("content-type", "audio/mpeg")], Bytes::from_static(b"ID3\x04\x00\x00\x00\x00\x00\x00fake-mp3"))
            .into_response()
    }
}

/// The fake's base URL, and the count of calls it has had.
async fn fake(behaviour: Behaviour) -> (String, Arc<AtomicU64>) {
    let calls = Arc::<AtomicU64>::default();
    let state = Fake { behaviour, calls: calls.clone() };
    let app = Router::new().route("/v1/audio/speech", post(speech)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

fn compatible(base_url: String) -> CompatibleConfig {
    CompatibleConfig {
        base_url,
        models: vec!["kokoro".to_owned()],
        voices: vec!["af_bella".to_owned()],
        ..CompatibleConfig::default()
    }
}

/// One request of the mix: its path, body, and whether a 5xx is an injected fault.
fn request(i: usize) -> (&'static str, Value, bool) {
    let text = "The soak goes on, request after request.";
    match i % 8 {
        0 => ("/v1/audio/speech", json!({"model": "openai/tts-1", "voice": "alloy", "text": text}), false),
        1 => (
            "/v1/audio/speech",
            json!({"model": "narrator", "voice": "alloy", "text": text, "output": {"format": "wav"}}),
            false,
        ),
        2 => ("/openai/v1/audio/speech", json!({"model": "tts-1", "voice": "alloy", "input": text}), false),
        3 => (
            "/v1/audio/conversation",
            json!({"model": "openai/tts-1", "turns": [{"voice": "alloy", "text": text}, {"voice": "nova", "text": text}]}),
            false,
        ),
        4 => ("/v1/audio/speech", json!({"model": "flaky", "voice": "af_bella", "text": text}), true),
        5 => ("/v1/audio/speech", json!({"model": "down", "voice": "af_bella", "text": text}), true),
        6 => ("/v1/audio/speech", json!({"model": "garbage", "voice": "af_bella", "text": text}), true),
        _ => ("/v1/audio/speech", json!({"model": "openai/tts-1", "text": text}), false),
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

type Tally = BTreeMap<(String, u16), u64>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 60 s soak: scripts/test.sh runs it on its own after the suite"]
async fn mixed_traffic_with_faults_is_answered_and_accounted_for() {
    let secs: u64 = std::env::var("SPEECHGATE_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let ((healthy, _), (flaky, _), (down, down_calls), (garbage, _)) = (
        fake(Behaviour::Healthy).await,
        fake(Behaviour::Flaky).await,
        fake(Behaviour::Down).await,
        fake(Behaviour::Garbage).await,
    );
    let app = TestApp::spawn_with(Db::Postgres, |c| {
        c.providers.local.enabled = false;
        c.providers.openai = common::vendor("sk-x", healthy);
        c.providers.compatible.insert("flaky".to_owned(), compatible(flaky));
        c.providers.compatible.insert("down".to_owned(), compatible(down));
        c.providers.compatible.insert("garbage".to_owned(), compatible(garbage));
        c.providers.retries = 2;
        c.providers.retry_backoff_ms = 5;
        c.providers.circuit_failures = 5;
        c.providers.circuit_cooldown_secs = 2;
        let target = |model: &str, voice: &str| RouteTargetConfig {
            model: model.to_owned(),
            voice: Some(voice.to_owned()),
            voices: BTreeMap::new(),
        };
        let targets = vec![target("down", "af_bella"), target("openai/tts-1", "onyx")];
        c.routes.insert("narrator".to_owned(), RouteConfig { targets });
    })
    .await;
    let (_, key) = app.speech_key().await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).build().unwrap();

    let tally: Arc<Mutex<Tally>> = Arc::default();
    let unexpected: Arc<Mutex<Vec<String>>> = Arc::default();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let warm_rss = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for worker in 0..CLIENTS {
        let (client, key, base) = (client.clone(), key.clone(), app.url(""));
        let (tally, unexpected, warm_rss) = (tally.clone(), unexpected.clone(), warm_rss.clone());
        clients.push(tokio::spawn(async move {
            let mut i = worker;
            while Instant::now() < deadline {
                if worker == 0
                    && warm_rss.load(Ordering::Relaxed) == 0
                    && started.elapsed() > Duration::from_secs(secs / 6)
                {
                    warm_rss.store(rss_kib(), Ordering::Relaxed);
                }
                let (path, body, injected) = request(i);
                i += 1;
                let response = client.post(format!("{base}{path}")).bearer_auth(&key).json(&body).send().await;
                let response = response.expect("the gateway answers every request");
                let status = response.status().as_u16();
                // The whole body: a stream that breaks would fail here.
                let read = response.bytes().await;
                if (status >= 500 && !injected) || read.is_err() {
                    unexpected.lock().unwrap().push(format!("{path} {body}: {status} {read:?}"));
                }
                *tally.lock().unwrap().entry((path.to_owned(), status)).or_default() += 1;
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let elapsed = started.elapsed();
    let end_rss = rss_kib();
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    let total: u64 = tally.values().sum();
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    let fallbacks: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("speechgate_route_fallbacks_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();

    let db = app.stop().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT route, status, count(*) FROM usage_events WHERE route LIKE '%/audio/%' GROUP BY route, status",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let recorded: Tally = rows.into_iter().map(|(route, status, n)| ((route, status as u16), n as u64)).collect();

    let warm = warm_rss.load(Ordering::Relaxed);
    println!(
        "soak: {total} requests in {:.1} s = {:.0} requests/s from {CLIENTS} clients; {fallbacks} route fallbacks; \
         RSS {} MiB after warm-up, {} MiB at the end",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        warm / 1024,
        end_rss / 1024
    );
    for ((route, status), n) in &tally {
        println!("  {route} {status}: {n}");
    }
    let unexpected = unexpected.lock().unwrap();
    assert!(unexpected.is_empty(), "{} unexpected answers, e.g. {:?}", unexpected.len(), unexpected.first());
    assert_eq!(recorded, tally, "usage rows per route and status equal the responses received");
    assert!(
        tally.keys().any(|(route, status)| route == "/v1/audio/speech" && *status == 503),
        "the fault was injected"
    );
    assert!(warm > 0 && end_rss <= warm + 64 * 1024, "RSS grew from {warm} KiB to {end_rss} KiB");
    // The provider that is down is skipped by its circuit: it is called once per cool-down
    // (2 s) after the first few failures, not once per request sent to it or through the route.
    let sent_down = total / 4;
    let down_calls = down_calls.load(Ordering::Relaxed);
    assert!(down_calls * 10 < sent_down, "the down provider was called {down_calls} times for {sent_down} requests");
}
