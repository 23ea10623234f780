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
