//! The command line, as the real binary, against both databases.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use std::process::{Command, Output};

use common::Db;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_speechgate");

fn run(db_url: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("SPEECHGATE_DATABASE_URL", db_url)
        .env("SPEECHGATE__LOG__FILTER", "warn")
        .output()
        .unwrap()
}

fn ok_json(output: Output) -> Value {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

async fn keys_lifecycle(db: Db) {
    let test_db = common::test_db(db).await;
    let url = test_db.url.as_str();
    let migrated = run(url, &["migrate"]);
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));

    let created = ok_json(run(url, &["keys", "create", "--name", "ci", "--scopes", "speech,admin", "--json"]));
    let id = created["id"].as_str().unwrap();
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with(&format!("sg_{id}_")));
    assert_eq!(created["scopes"], serde_json::json!(["admin", "speech"]));

    let text = run(url, &["keys", "create", "--name", "plain"]);
    assert!(text.status.success());
    let stdout = String::from_utf8(text.stdout).unwrap();
    assert!(stdout.lines().next().unwrap().starts_with("sg_"), "the key is the first line: {stdout}");

    let listed = ok_json(run(url, &["keys", "list", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains(&key[16..]), "list never shows a secret");

    let revoked = run(url, &["keys", "revoke", id]);
    assert!(revoked.status.success());
    let listed = ok_json(run(url, &["keys", "list", "--json"]));
    let entry = listed.as_array().unwrap().iter().find(|k| k["id"] == id).unwrap();
    assert!(entry["revokedAt"].is_string());

    let missing = run(url, &["keys", "revoke", "nope"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
}

both_databases!(keys_lifecycle);

/// This build's migrations for `db`, oldest first, as the gateway names them: `<version>
/// <description>`, and their files.
fn migrations(db: Db) -> Vec<(String, std::path::PathBuf)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(match db {
        Db::Sqlite => "sqlite",
        Db::Postgres => "postgres",
    });
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let (version, description) = stem.split_once('_').unwrap();
            (format!("{} {}", version.parse::<i64>().unwrap(), description.replace('_', " ")), path)
        })
        .collect()
}

/// `serve` with `database.migrate_on_start` off (a replica behind a migration Job), given 30 s
/// to exit: `None` when it is still running (then it is stopped), else its exit and stderr.
fn replica(db_url: &str, port: u16) -> Option<(std::process::ExitStatus, String)> {
    use std::io::Read;
    let mut child = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("SPEECHGATE_DATABASE_URL", db_url)
        .env("SPEECHGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SPEECHGATE__DATABASE__MIGRATE_ON_START", "false")
        .env("SPEECHGATE__LOG__FILTER", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            return Some((status, stderr));
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    None
}

/// `speechgate migrate` brings the schema up to date once; a replica that does not migrate
/// refuses a database that is behind — fresh, or one migration short — naming what is missing
/// and the command that fixes it, and serves once the schema is current.
async fn replicas_refuse_a_schema_that_is_behind(db: Db) {
    let test_db = common::test_db(db).await;
    let url = test_db.url.as_str();
    let all = migrations(db);
    let port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();

    let (status, stderr) = replica(url, port()).expect("a replica must not start on an empty database");
    assert!(!status.success());
    assert!(stderr.contains("schema is behind") && stderr.contains("speechgate migrate"), "{stderr}");
    let names: Vec<&str> = all.iter().map(|(name, _)| name.as_str()).collect();
    assert!(stderr.contains(&format!("{} migration(s) pending: {}", all.len(), names.join(", "))), "{stderr}");

    // The database as the previous release left it: every migration but the last.
    let previous = tempfile::tempdir().unwrap();
    for (_, file) in &all[..all.len() - 1] {
        std::fs::copy(file, previous.path().join(file.file_name().unwrap())).unwrap();
    }
    let migrator = sqlx::migrate::Migrator::new(previous.path()).await.unwrap();
    match db {
        Db::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            migrator.run(&pool).await.unwrap();
            pool.close().await;
        }
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            migrator.run(&pool).await.unwrap();
            pool.close().await;
        }
    }
    let last = &all.last().unwrap().0;
    let (status, stderr) = replica(url, port()).expect("a replica must not start one migration behind");
    assert!(!status.success());
    assert!(stderr.contains(&format!("1 migration(s) pending: {last})")), "{stderr}");
    let keys = Command::new(BIN)
        .args(["keys", "list"])
        .env_clear()
        .env("SPEECHGATE_DATABASE_URL", url)
        .env("SPEECHGATE__DATABASE__MIGRATE_ON_START", "false")
        .output()
        .unwrap();
    assert!(!keys.status.success(), "the key commands keep to the same rule");
    assert!(String::from_utf8_lossy(&keys.stderr).contains("schema is behind"));

    let migrated = run(url, &["migrate"]);
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    assert_eq!(String::from_utf8_lossy(&migrated.stdout).trim(), format!("applied 1 migration(s): {last}"));
    let again = run(url, &["migrate"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), "the database schema is up to date");

    assert_eq!(replica(url, port()).map(|(status, stderr)| format!("{status}: {stderr}")), None, "it serves now");
}

both_databases!(replicas_refuse_a_schema_that_is_behind);

#[test]
fn bad_input_on_the_command_line_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cli.db").display());

    let bad_scope = run(&url, &["keys", "create", "--name", "x", "--scopes", "speak"]);
    assert!(!bad_scope.status.success());
    assert!(String::from_utf8_lossy(&bad_scope.stderr).contains("unknown scope"));

    let empty_name = run(&url, &["keys", "create", "--name", " "]);
    assert!(!empty_name.status.success());
    assert!(String::from_utf8_lossy(&empty_name.stderr).contains("name"));

    let bad_listen = Command::new(BIN).arg("serve").env_clear().env("SPEECHGATE_LISTEN", "nowhere").output().unwrap();
    assert!(!bad_listen.status.success());
    assert!(String::from_utf8_lossy(&bad_listen.stderr).contains("server.listen"));

    let bad_db = run("mysql://x", &["migrate"]);
    assert!(!bad_db.status.success());
    assert!(String::from_utf8_lossy(&bad_db.stderr).contains("database.url"));
}

#[test]
fn openapi_command_prints_the_committed_document() {
    let printed = Command::new(BIN).arg("openapi").output().unwrap();
    assert!(printed.status.success());
    let printed: Value = serde_json::from_slice(&printed.stdout).unwrap();
    let committed: Value = serde_json::from_str(include_str!("../openapi/openapi.json")).unwrap();
    assert_eq!(printed, committed);
}

/// On a read-only root with no writable temporary directory, the `local` provider cannot unpack
/// its voice data: the gateway says so and serves everything else rather than refusing to start.
#[cfg(feature = "local")]
#[tokio::test]
async fn without_a_writable_tmpdir_the_gateway_serves_without_local() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let key = ok_json(run(&url, &["keys", "create", "--name", "ro", "--json"]))["key"].as_str().unwrap().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = tokio::process::Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("SPEECHGATE_DATABASE_URL", &url)
        .env("SPEECHGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SPEECHGATE__LOG__FILTER", "warn")
        .env("TMPDIR", dir.path().join("no-such-dir"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..200 {
        if client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "the gateway did not start");
    let providers: Value =
        client.get(format!("{base}/v1/audio/providers")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    let local = providers["data"].as_array().unwrap().iter().find(|p| p["id"] == "local").unwrap();
    assert_eq!(local["enabled"], false, "{providers}");
    let speech = client
        .post(format!("{base}/v1/audio/speech"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"model": "local", "voice": "en-us", "text": "Hi."}))
        .send()
        .await
        .unwrap();
    assert_eq!(speech.status(), 404, "an unknown model, not a crash");

    child.start_kill().unwrap();
    let output = child.wait_with_output().await.unwrap();
    let logs = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(logs.contains("the local provider is off"), "{logs}");
}
