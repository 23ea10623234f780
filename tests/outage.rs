//! The database becomes unreachable mid-run, on the real PostgreSQL: a TCP proxy written here
//! stands between the gateway and the server, and is cut (every connection dropped, new ones
//! refused) and restored, so no other test's database is disturbed. Keys in the auth cache keep
//! working within `auth.outage_grace_secs`, unknown keys get 503, and usage events wait in the
//! queue until the database is back — none lost. SIGTERM while it is down stops the gateway
//! promptly and reports, and logs, every event it could not write.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]
#![allow(clippy::disallowed_methods, reason = "the proxy's tasks live as long as the test")]

mod common;

use std::{
    net::SocketAddr,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::{problem, Db, TestApp};
use serde_json::{json, Value};
use speechgate::{config::VendorConfig, domain::LogPage, store::Store};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};
use wiremock::{matchers::method, Mock, MockServer, ResponseTemplate};

/// A TCP proxy to the PostgreSQL server that can be cut and restored.
struct DbProxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// Bumped on every cut: each connection ends when it changes.
    cuts: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl DbProxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0u64);
        let (accepting, cut_signal) = (up.clone(), cuts.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { continue };
                if !accepting.load(Ordering::SeqCst) {
                    drop(client); // refused: the connection closes at once
                    continue;
                }
                let (target, mut cut) = (target.clone(), cut_signal.subscribe());
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { addr, up, cuts, task }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by the proxy's.
    fn url_for(&self, url: &str) -> String {
        let (scheme_and_user, rest) = url.rsplit_once('@').unwrap();
        let (_, path) = rest.split_once('/').unwrap();
        format!("{scheme_and_user}@{}/{path}", self.addr)
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `host:port` of a PostgreSQL URL.
fn host_of(url: &str) -> String {
    let (_, rest) = url.rsplit_once('@').unwrap();
    rest.split_once('/').unwrap().0.to_owned()
}

async fn usage_rows(store: &dyn Store, key_id: &str) -> Vec<speechgate::domain::UsageRecord> {
    store.list_usage(Some(key_id), LogPage { before: None, limit: 1000 }).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_keys_keep_working_while_the_database_is_down() {
    let db = common::test_db(Db::Postgres).await;
    let direct = speechgate::store::connect(&db.url, 2).await.unwrap();
    direct.migrate().await.unwrap();
    let proxy = DbProxy::start(host_of(&db.url)).await;
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_bytes(b"ID3fake".to_vec()).insert_header("content-type", "audio/mpeg"),
        )
        .mount(&upstream)
        .await;

    let mut config = common::test_config(&proxy.url_for(&db.url));
    config.providers.local.enabled = false;
    config.providers.openai = VendorConfig {
        api_key: Some("sk-x".to_owned().into()),
        base_url: Some(format!("{}/v1", upstream.uri())),
        ..VendorConfig::default()
    };
    // A short cache, so that the outage outlasts it and only the grace keeps the key working.
    config.auth.cache_ttl_secs = 1;
    config.auth.outage_grace_secs = 60;
    config.usage.flush_interval_ms = 10;
    let app = TestApp::start(config, db.shared()).await;
    let (cached_id, cached) = app.speech_key().await;
    let (unknown_id, unknown) = app.speech_key().await;
    let speech = json!({"model": "openai/tts-1", "voice": "alloy", "text": "Still here.", "output": "mp3"});
    let speak = |key: String| {
        let (app, speech) = (&app, speech.clone());
        async move { app.post("/v1/audio/speech", &key, speech).await }
    };

    for _ in 0..2 {
        assert_eq!(speak(cached.clone()).await.status(), 200);
    }
    // Their usage is written before the cut: a cut that lands between a batch's COMMIT and its
    // acknowledgement makes the writer retry a batch the database already has (usage writing is
    // at least once), which is not what this test is about.
    let deadline = Instant::now() + Duration::from_secs(5);
    while usage_rows(direct.as_ref(), &cached_id).await.len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(1_200)).await; // past the cache TTL
    let mut served = 2;
    for _ in 0..5 {
        let started = Instant::now();
        let response = speak(cached.clone()).await;
        assert_eq!(response.status(), 200, "a cached key works while the database is down");
        assert_eq!(response.bytes().await.unwrap().as_ref(), b"ID3fake");
        assert!(started.elapsed() < Duration::from_secs(3), "served without waiting for the database");
        served += 1;
    }
    // A valid key this replica has not seen, and a made-up one: the database cannot tell, so
    // 503 (never 401 for a key that may be valid, never 500).
    for key in [unknown.clone(), made_up(&unknown)] {
        let (status, body) = problem(speak(key).await).await;
        assert_eq!((status, body["code"].as_str()), (503, Some("database_unavailable")), "{body}");
    }
    // A malformed key needs no database: still 401.
    assert_eq!(speak("not-a-key".to_owned()).await.status(), 401);
    // Nothing of the outage's requests is written yet; the events wait in the queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(usage_rows(direct.as_ref(), &cached_id).await.len() <= 2);

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    while usage_rows(direct.as_ref(), &cached_id).await.len() < served && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // After the database returns, the unknown key works again.
    assert!(app.answers_within("/v1/audio/providers", &unknown, 200, Duration::from_secs(5)).await);
    let db = app.stop().await;
    drop(db);
    let rows = usage_rows(direct.as_ref(), &cached_id).await;
    assert_eq!(rows.len(), served, "every request served has exactly one usage row");
    assert!(rows.iter().all(|r| r.event.status == 200 && r.event.route == "/v1/audio/speech"));
    let unknown_rows = usage_rows(direct.as_ref(), &unknown_id).await;
    assert!(unknown_rows.iter().all(|r| r.event.route == "/v1/audio/providers"), "refused requests were not metered");
}

/// A well-formed key no one minted: `key` with another id.
fn made_up(key: &str) -> String {
    let (id, secret) = key.strip_prefix("sg_").unwrap().split_once('_').unwrap();
    format!("sg_{}_{secret}", "0".repeat(id.len()))
}

const BIN: &str = env!("CARGO_BIN_EXE_speechgate");

fn gateway(db_url: &str, listen: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SPEECHGATE_DATABASE_URL", db_url)
        .env("SPEECHGATE_LISTEN", listen)
        .env("SPEECHGATE__AUTH__CACHE_TTL_SECS", "1")
        .env("SPEECHGATE__LOG__FILTER", "warn");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_database_is_down_reports_what_it_could_not_write() {
    let db = common::test_db(Db::Postgres).await;
    let proxy = DbProxy::start(host_of(&db.url)).await;
    let proxied = proxy.url_for(&db.url);
    let listen =
        format!("127.0.0.1:{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let created = gateway(&proxied, &listen).args(["keys", "create", "--name", "down", "--json"]).output().unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    let (key_id, key) = (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned());

    let server = gateway(&proxied, &listen).arg("serve").stderr(Stdio::piped()).spawn().unwrap();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let url = format!("http://{listen}/v1/audio/providers");
    let mut up = false;
    for _ in 0..100 {
        if client.get(&url).bearer_auth(&key).send().await.is_ok_and(|r| r.status() == 200) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "gateway did not start");
    let direct = speechgate::store::connect(&db.url, 1).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while usage_rows(direct.as_ref(), &key_id).await.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let written_before = usage_rows(direct.as_ref(), &key_id).await.len();
    assert!(written_before >= 1);

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let id = format!("while-down-{i}");
        let response = client.get(&url).bearer_auth(&key).header("x-request-id", &id).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
        ids.push(id);
    }
    let stopping = Instant::now();
    let kill = Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let output = tokio::task::spawn_blocking(move || server.wait_with_output()).await.unwrap().unwrap();
    assert!(output.status.success(), "gateway exited with {}", output.status);
    assert!(stopping.elapsed() < Duration::from_secs(20), "the stop did not wait for the database");

    let logs: Vec<Value> =
        String::from_utf8_lossy(&output.stderr).lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    let summary = logs
        .iter()
        .find(|l| l["unwritten"].is_u64())
        .unwrap_or_else(|| panic!("no summary of unwritten events in {logs:?}"));
    assert_eq!(summary["unwritten"], 4, "{summary}");
    let mut logged: Vec<String> = logs
        .iter()
        .filter(|l| l["message"] == "unwritten usage event")
        .map(|l| serde_json::from_str::<Value>(l["event"].as_str().unwrap()).unwrap())
        .map(|event| event["requestId"].as_str().unwrap().to_owned())
        .collect();
    logged.sort();
    assert_eq!(logged, ids, "each unwritten event is logged in full, to be replayed");
    proxy.restore();
    assert_eq!(usage_rows(direct.as_ref(), &key_id).await.len(), written_before, "nothing written twice or late");
}
