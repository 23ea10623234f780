//! The real binary, stopped with SIGTERM in the middle of a burst of requests: every request
//! that got a response has exactly one usage event in the database afterwards. And stopped in
//! the middle of a stream: unready first, then refusing connections, the stream completing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]
#![allow(clippy::disallowed_methods, reason = "the burst's tasks are all joined")]

mod common;

use std::{
    collections::HashMap,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use common::Db;
use speechgate::domain::LogPage;

const BIN: &str = env!("CARGO_BIN_EXE_speechgate");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn gateway(db_url: &str, listen: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SPEECHGATE_DATABASE_URL", db_url)
        .env("SPEECHGATE_LISTEN", listen)
        .env("SPEECHGATE__LOG__FILTER", "warn");
    command
}

async fn sigterm_during_a_burst_loses_no_usage(db: Db) {
    let test_db = common::test_db(db).await;
    let listen = format!("127.0.0.1:{}", free_port());

    let created =
        gateway(&test_db.url, &listen).args(["keys", "create", "--name", "burst", "--json"]).output().unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let key = created["key"].as_str().unwrap().to_owned();

    let mut server = gateway(&test_db.url, &listen).arg("serve").stderr(Stdio::inherit()).spawn().unwrap();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let base = format!("http://{listen}");
    let mut up = false;
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "gateway did not start");

    // 16 workers send requests back to back; SIGTERM goes out after 100 responses.
    let answered = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for worker in 0..16 {
        let (client, base, key, answered) = (client.clone(), base.clone(), key.clone(), answered.clone());
        workers.push(tokio::spawn(async move {
            let mut got_response = Vec::new();
            for i in 0..1000 {
                let id = format!("burst-{worker}-{i}");
                let sent = client
                    .get(format!("{base}/v1/logs?limit=5"))
                    .bearer_auth(&key)
                    .header("x-request-id", &id)
                    .send()
                    .await;
                match sent {
                    Ok(response) => {
                        let status = response.status();
                        // The event is recorded when the body has been handed over; read it all.
                        if response.bytes().await.is_ok() {
                            assert_eq!(status, 200);
                            got_response.push(id);
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Err(_) => break, // the listener has closed
                }
            }
            got_response
        }));
    }
    while answered.load(Ordering::SeqCst) < 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let kill = Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    assert!(kill.success());

    let mut responded = Vec::new();
    for worker in workers {
        responded.extend(worker.await.unwrap());
    }
    let exit = tokio::task::spawn_blocking(move || server.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "gateway exited with {exit}");
    assert!(responded.len() >= 100);

    let store = speechgate::store::connect(&test_db.url, 1).await.unwrap();
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut before = None;
    loop {
        let page = store.list_usage(None, LogPage { before, limit: 500 }).await.unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.seq);
        for record in &page {
            *counts.entry(record.event.request_id.clone()).or_default() += 1;
        }
    }
    for id in &responded {
        assert_eq!(counts.get(id), Some(&1), "request {id} got a response but has {:?} usage events", counts.get(id));
    }
}

both_databases!(sigterm_during_a_burst_loses_no_usage);

/// SIGTERM while a stream is flowing from a slow upstream: `/readyz` turns 503 `draining` at
/// once (while the gateway still serves, for `server.drain_delay_secs`), then new connections
/// are refused, and the stream in flight still completes in full; the gateway exits cleanly
/// and usage records the request as served.
async fn sigterm_mid_stream_completes_the_stream_while_unready(db: Db) {
    let test_db = common::test_db(db).await;
    let listen = format!("127.0.0.1:{}", free_port());
    let (first, rest) = (b"ID3-first-part".to_vec(), vec![7u8; 4096]);
    let upstream = common::StreamingUpstream::start("audio/mpeg", first.clone(), rest.clone(), false).await;

    let created =
        gateway(&test_db.url, &listen).args(["keys", "create", "--name", "drain", "--json"]).output().unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let (key_id, key) = (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned());

    let mut server = gateway(&test_db.url, &listen)
        .arg("serve")
        .env("SPEECHGATE__SERVER__DRAIN_DELAY_SECS", "2")
        .env("SPEECHGATE__PROVIDERS__LOCAL__ENABLED", "false")
        .env("OPENAI_API_KEY", "sk-upstream")
        .env("OPENAI_BASE_URL", format!("{}/v1", upstream.uri))
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // A new connection for every probe, as a load balancer's health check makes.
    let probe = reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(5)).build().unwrap();
    let base = format!("http://{listen}");
    let mut up = false;
    for _ in 0..100 {
        if probe.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "gateway did not become ready");

    let mut stream = reqwest::Client::new()
        .post(format!("{base}/v1/audio/speech"))
        .bearer_auth(&key)
        .header("x-request-id", "drain-stream")
        .json(&serde_json::json!({"model": "openai/tts-1", "voice": "alloy", "text": "A long story.", "output": "mp3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut body = stream.chunk().await.unwrap().unwrap().to_vec();
    assert_eq!(body, first, "the first part arrives while the upstream holds the rest");

    let kill = Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let mut unready = None;
    for _ in 0..40 {
        match probe.get(format!("{base}/readyz")).send().await {
            Ok(response) if response.status() == 503 => {
                unready = Some(common::problem(response).await.1);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(25)).await,
            Err(err) => panic!("the listener closed before /readyz turned unready: {err}"),
        }
    }
    let unready = unready.expect("/readyz did not turn 503 on SIGTERM");
    assert_eq!(unready["code"], "draining", "{unready}");
    let healthz = probe.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(healthz.status(), 200, "during the drain delay requests are still served");

    let mut refused = false;
    for _ in 0..100 {
        if probe.get(format!("{base}/healthz")).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "new connections must be refused after the drain delay");
    assert!(server.try_wait().unwrap().is_none(), "the gateway waits for the stream in flight");

    upstream.release();
    while let Some(chunk) = stream.chunk().await.expect("the stream in flight completes without error") {
        body.extend_from_slice(&chunk);
    }
    assert_eq!(body.len(), first.len() + rest.len());
    assert_eq!(&body[first.len()..], rest.as_slice());
    let exit = tokio::task::spawn_blocking(move || server.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "gateway exited with {exit}");

    let store = speechgate::store::connect(&test_db.url, 1).await.unwrap();
    let usage = store.list_usage(Some(&key_id), LogPage { before: None, limit: 100 }).await.unwrap();
    let speech: Vec<_> = usage.iter().filter(|r| r.event.route == "/v1/audio/speech").collect();
    assert_eq!(speech.len(), 1, "{usage:?}");
    let event = &speech[0].event;
    assert_eq!(event.request_id, "drain-stream");
    assert_eq!((event.status, event.error_code.as_deref()), (200, None));
    assert_eq!(event.bytes_out, body.len() as i64);
    assert_eq!(upstream.calls.load(Ordering::SeqCst), 1);
}

both_databases!(sigterm_mid_stream_completes_the_stream_while_unready);
