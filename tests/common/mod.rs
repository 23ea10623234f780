//! Test harness: a real database per test (a fresh SQLite file, or a fresh PostgreSQL database
//! on the server named by `SPEECHGATE_TEST_POSTGRES_URL`), the real app on a random loopback
//! port, and a real HTTP client.

#![allow(dead_code, reason = "each test binary uses a different part of the harness")]
#![allow(clippy::expect_used, clippy::panic, reason = "the harness fails tests by panicking")]
#![allow(clippy::disallowed_methods, reason = "the test server task is joined by TestApp::stop")]

use std::{net::SocketAddr, sync::Arc};

use reqwest::{Client, Response};
use serde_json::{json, Value};
use speechgate::{app::App, config::Config, store::Store};
use tokio::{sync::oneshot, task::JoinHandle};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A fresh, empty database; the SQLite file lives as long as this value.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// The one message for a test that needs something plain `cargo test` does not provide. These
/// tests fail rather than skip, so a CI run can never pass by quietly testing less.
pub fn needs(what: &str) -> String {
    format!(
        "this test needs {what}, which plain `cargo test` does not provide: run the whole suite with \
         `bash scripts/test.sh`, which installs and starts everything the tests need"
    )
}

pub async fn test_db(db: Db) -> TestDb {
    match db {
        Db::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("speechgate.db").display());
            TestDb { url, _dir: Some(dir) }
        }
        Db::Postgres => {
            let admin_url = std::env::var("SPEECHGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| {
                panic!("{}", needs("a PostgreSQL server named by SPEECHGATE_TEST_POSTGRES_URL (a role with CREATEDB)"))
            });
            let name = format!("sg_test_{}", uuid::Uuid::now_v7().simple());
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
                .await
                .expect("connect to the test PostgreSQL server");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
            let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
            TestDb { url: format!("{base}/{name}"), _dir: None }
        }
    }
}

impl TestDb {
    /// Another handle on the same database, which the original keeps alive (a second replica).
    pub fn shared(&self) -> TestDb {
        TestDb { url: self.url.clone(), _dir: None }
    }
}

pub async fn test_store(db: Db) -> (Arc<dyn Store>, TestDb) {
    let test_db = test_db(db).await;
    let store = speechgate::store::connect(&test_db.url, 5).await.expect("open store");
    store.migrate().await.expect("migrate");
    (store, test_db)
}

pub fn test_config(url: &str) -> Config {
    let mut config = Config::default();
    config.database.url = url.to_owned();
    config.server.listen = "127.0.0.1:0".into();
    config.auth.admin_token = Some(ADMIN_TOKEN.to_owned().into());
    // Tests of a failure see it once; the retry tests turn retries back on.
    config.providers.retries = 0;
    config
}

/// The gateway running on a loopback port.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    pub db: TestDb,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(db: Db) -> Self {
        Self::spawn_with(db, |_| {}).await
    }

    pub async fn spawn_with(db: Db, tweak: impl FnOnce(&mut Config)) -> Self {
        let test_db = test_db(db).await;
        let mut config = test_config(&test_db.url);
        tweak(&mut config);
        Self::start(config, test_db).await
    }

    pub async fn start(config: Config, db: TestDb) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = App::build(&config).await.expect("build app");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(listener, async move {
            let _ = stopped.await;
        }));
        TestApp { addr, client: Client::new(), db, stop: Some(stop), task: Some(task) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Response {
        let mut req = self.client.get(self.url(path));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        req.send().await.expect("request")
    }

    /// Whether `GET path` with `key` answers `status` within `within`, asked every 50 ms: for
    /// states the gateway reaches in the background (a queue drained, a slot given back).
    pub async fn answers_within(&self, path: &str, key: &str, status: u16, within: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        loop {
            if self.get(path, Some(key)).await.status() == status {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Response {
        self.client.post(self.url(path)).bearer_auth(key).json(&body).send().await.expect("request")
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Response {
        self.client.post(self.url(path)).bearer_auth(ADMIN_TOKEN).json(&body).send().await.expect("request")
    }

    /// Creates a key through the admin API and returns `(id, key string)`.
    pub async fn create_key(&self, body: Value) -> (String, String) {
        let response = self.admin_post("/admin/v1/keys", body).await;
        assert_eq!(response.status(), 201, "create key");
        let created: Value = response.json().await.expect("json");
        (created["id"].as_str().expect("id").to_owned(), created["key"].as_str().expect("key").to_owned())
    }

    pub async fn speech_key(&self) -> (String, String) {
        self.create_key(json!({"name": "test"})).await
    }

    /// Stops the server (which drains the usage queue) and reads the usage events it wrote,
    /// newest first: every key's, or one key's.
    pub async fn stop_and_read_usage(self, key_id: Option<&str>) -> Vec<speechgate::domain::UsageRecord> {
        let db = self.stop().await;
        let store = speechgate::store::connect(&db.url, 1).await.expect("reopen store");
        store.list_usage(key_id, speechgate::domain::LogPage { before: None, limit: 100 }).await.expect("usage")
    }

    /// Stops the server gracefully: in-flight requests finish and the usage queue is drained.
    pub async fn stop(mut self) -> TestDb {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
        std::mem::replace(&mut self.db, TestDb { url: String::new(), _dir: None })
    }

    /// Waits until the usage writer has caught up with everything answered so far.
    pub async fn settle(&self, store: &dyn Store, expected_events: usize) {
        for _ in 0..200 {
            let page = store
                .list_usage(None, speechgate::domain::LogPage { before: None, limit: 1000 })
                .await
                .expect("list usage");
            if page.len() >= expected_events {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("usage writer did not record {expected_events} events in time");
    }
}

pub async fn problem(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(content_type, "application/problem+json", "status {status}: {body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(body["code"].is_string() && body["detail"].is_string() && body["requestId"].is_string(), "{body}");
    (status, body)
}

/// Runs one async test body against both databases, as two test functions.
#[macro_export]
macro_rules! both_databases {
    ($($name:ident),+ $(,)?) => {
        $(mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::Db::Postgres).await
            }
        })+
    };
}

/// A one-route HTTP/1.1 upstream on a random port that answers every request with a chunked
/// body it sends piece by piece: the first chunk at once, the rest only after `release()`; and,
/// if `truncate`, it then drops the connection without the closing chunk.
pub struct StreamingUpstream {
    pub uri: String,
    release: Arc<tokio::sync::Notify>,
    /// Requests it has answered.
    pub calls: Arc<std::sync::atomic::AtomicUsize>,
}

impl StreamingUpstream {
    pub async fn start(content_type: &'static str, first: Vec<u8>, rest: Vec<u8>, truncate: bool) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let uri = format!("http://{}", listener.local_addr().expect("addr"));
        let release = Arc::new(tokio::sync::Notify::new());
        let gate = release.clone();
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (first, rest, gate) = (first.clone(), rest.clone(), gate.clone());
                let counter = counter.clone();
                tokio::spawn(async move {
                    // Read the request head and body (the body is small; one read past the head).
                    let mut buf = vec![0u8; 65536];
                    let mut seen = Vec::new();
                    loop {
                        let n = socket.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
                            let length: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                                .unwrap_or(0);
                            if seen.len() >= end + 4 + length {
                                break;
                            }
                        }
                    }
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n"
                    );
                    let chunk = |data: &[u8]| {
                        let mut out = format!("{:x}\r\n", data.len()).into_bytes();
                        out.extend_from_slice(data);
                        out.extend_from_slice(b"\r\n");
                        out
                    };
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(&chunk(&first)).await;
                    let _ = socket.flush().await;
                    gate.notified().await;
                    let _ = socket.write_all(&chunk(&rest)).await;
                    if !truncate {
                        let _ = socket.write_all(b"0\r\n\r\n").await;
                    }
                    let _ = socket.flush().await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        StreamingUpstream { uri, release, calls }
    }

    /// Lets ONE held stream send the rest — the longest-waiting one, or, when none is waiting,
    /// the next to reach that point. With several streams held, call it once per stream.
    pub fn release(&self) {
        self.release.notify_one();
    }
}

/// What ffprobe (an independent decoder) says about some audio: codec, sample rate, channels
/// and duration in seconds. `raw` names the format and rate of headerless audio
/// (`("s16le", 24000)`, `("mulaw", 8000)`, `("alaw", 8000)`).
pub fn ffprobe(audio: &[u8], raw: Option<(&str, u32)>) -> (String, u32, u32, f64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("audio.bin");
    std::fs::write(&file, audio).expect("write audio");
    // Decoding the whole file gives the true duration even when the header cannot say it
    // (streamed WAV and FLAC carry no length).
    let mut args: Vec<String> = vec!["-v".into(), "error".into()];
    if let Some((format, rate)) = raw {
        args.extend(["-f".into(), format.into(), "-ar".into(), rate.to_string(), "-ac".into(), "1".into()]);
    }
    args.push("-i".into());
    args.push(file.display().to_string());
    args.extend(["-f", "s16le", "-ac", "1", "-"].map(String::from));
    let decoded =
        std::process::Command::new("ffmpeg").args(&args).output().unwrap_or_else(|_| panic!("{}", needs("ffmpeg")));
    assert!(decoded.status.success(), "ffmpeg could not decode: {}", String::from_utf8_lossy(&decoded.stderr));
    let mut probe_args: Vec<String> = vec!["-v".into(), "error".into()];
    if let Some((format, rate)) = raw {
        probe_args.extend([
            "-f".into(),
            format.into(),
            "-ar".into(),
            rate.to_string(),
            "-ch_layout".into(),
            "mono".into(),
        ]);
    }
    probe_args.extend(["-show_entries", "stream=codec_name,sample_rate,channels", "-of", "json"].map(String::from));
    probe_args.push(file.display().to_string());
    let probe = std::process::Command::new("ffprobe")
        .args(&probe_args)
        .output()
        .unwrap_or_else(|_| panic!("{}", needs("ffprobe")));
    assert!(probe.status.success(), "ffprobe failed: {}", String::from_utf8_lossy(&probe.stderr));
    let info: serde_json::Value = serde_json::from_slice(&probe.stdout).expect("ffprobe json");
    let stream = &info["streams"][0];
    let rate: u32 = stream["sample_rate"].as_str().and_then(|r| r.parse().ok()).expect("sample rate");
    let channels = stream["channels"].as_u64().unwrap_or(0) as u32;
    let seconds = decoded.stdout.len() as f64 / 2.0 / f64::from(rate);
    (stream["codec_name"].as_str().unwrap_or("").to_owned(), rate, channels, seconds)
}

/// `seconds` of a 440 Hz sine at `rate`, as s16le bytes at about half of full scale.
pub fn sine_pcm(rate: u32, seconds: f64) -> Vec<u8> {
    let n = (f64::from(rate) * seconds) as usize;
    (0..n)
        .flat_map(|i| {
            let t = i as f64 / f64::from(rate);
            (((2.0 * std::f64::consts::PI * 440.0 * t).sin() * 16_000.0) as i16).to_le_bytes()
        })
        .collect()
}

/// A vendor section holding `key` and pointed at a fake of the vendor at `base_url`.
pub fn vendor(key: &str, base_url: impl Into<String>) -> speechgate::config::VendorConfig {
    speechgate::config::VendorConfig {
        api_key: Some(key.to_owned().into()),
        base_url: Some(base_url.into()),
        ..Default::default()
    }
}

impl TestApp {
    /// The gateway with only the `openai` provider, pointed at a fake OpenAI at `upstream_uri`
    /// and holding `upstream_key` as its OpenAI key.
    pub async fn with_openai(db: Db, upstream_uri: &str, upstream_key: &str) -> Self {
        let base_url = format!("{upstream_uri}/v1");
        let key = upstream_key.to_owned();
        Self::spawn_with(db, move |c| {
            c.providers.local.enabled = false;
            c.providers.timeout_secs = 2;
            c.providers.openai = vendor(&key, base_url);
        })
        .await
    }
}
