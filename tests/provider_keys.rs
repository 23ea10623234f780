//! Bring-your-own provider keys over real sockets, on SQLite and on PostgreSQL: fake vendors
//! that answer differently for the operator's key and a project's, the sealed rows read
//! straight from the database, another master key, rows moved or altered behind the gateway's
//! back, and hostile provider ids and bodies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use common::{problem, Db, TestApp, ADMIN_TOKEN};
use reqwest::{Method, Response};
use serde_json::{json, Value};
use speechgate::config::{Config, VendorConfig};
use wiremock::{
    matchers::{header, method},
    Mock, MockServer, ResponseTemplate,
};

/// Two master keys (32 random bytes each), as base64 and as hex.
const MASTER: &str = "q3Jd0mS8Zf2x9Lh6Pw1VtYbNcRkE4uGiOa7sTzWvXyM=";
const OTHER_MASTER: &str = "5e0c8d1f7a2b94e6c3d05f18a7b2e94c61d03f8a5b7c2e9d40f16a8b3c5d7e92";

const PROJECT_OPENAI: &str = "sk-project-openai-0001";
const PROJECT_XI: &str = "xi-project-key-0002";
const REVOKED: &str = "sk-project-revoked-0003";

/// Fake OpenAI and ElevenLabs: each answers with audio naming the key it received.
struct Vendors {
    openai: MockServer,
    elevenlabs: MockServer,
}

async fn vendors() -> Vendors {
    let openai = MockServer::start().await;
    let elevenlabs = MockServer::start().await;
    let audio = |body: &str| {
        ResponseTemplate::new(200).insert_header("content-type", "audio/mpeg").set_body_bytes(body.as_bytes().to_vec())
    };
    for (key, body) in [("operator-openai", "operator-openai-audio"), (PROJECT_OPENAI, "project-openai-audio")] {
        Mock::given(method("POST"))
            .and(header("authorization", format!("Bearer {key}").as_str()))
            .respond_with(audio(body))
            .mount(&openai)
            .await;
    }
    // A key the vendor has revoked: its refusal quotes the key, as vendors' messages do.
    let refusal = json!({"error": {"message": format!("Incorrect API key provided: {REVOKED}"), "type": "invalid_request_error", "code": "invalid_api_key"}});
    Mock::given(method("POST"))
        .and(header("authorization", format!("Bearer {REVOKED}").as_str()))
        .respond_with(ResponseTemplate::new(401).set_body_json(refusal))
        .mount(&openai)
        .await;
    for (key, body) in [("operator-xi", "operator-xi-audio"), (PROJECT_XI, "project-xi-audio")] {
        Mock::given(method("POST")).and(header("xi-api-key", key)).respond_with(audio(body)).mount(&elevenlabs).await;
    }
    Vendors { openai, elevenlabs }
}

fn configure(c: &mut Config, vendors: &Vendors, master: Option<&str>) {
    c.providers.timeout_secs = 2;
    c.providers.openai = VendorConfig {
        api_key: Some("operator-openai".into()),
        base_url: Some(format!("{}/v1", vendors.openai.uri())),
        ..VendorConfig::default()
    };
    c.providers.elevenlabs = VendorConfig {
        api_key: Some("operator-xi".into()),
        base_url: Some(vendors.elevenlabs.uri()),
        ..VendorConfig::default()
    };
    c.auth.master_key = master.map(|m| m.to_owned().into());
}

async fn gateway(db: Db, vendors: &Vendors, master: Option<&str>) -> TestApp {
    let mut config = common::test_config("");
    configure(&mut config, vendors, master);
    let test_db = common::test_db(db).await;
    config.database.url = test_db.url.clone();
    TestApp::start(config, test_db).await
}

async fn send(app: &TestApp, method: Method, path: &str, key: &str, body: Option<Value>) -> Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn put(app: &TestApp, key: &str, provider: &str, api_key: &str) -> Response {
    send(app, Method::PUT, &format!("/v1/api-keys/{provider}"), key, Some(json!({"apiKey": api_key}))).await
}

/// The audio the fake vendor sent back, which names the key it received.
async fn speak(app: &TestApp, key: &str, model: &str, voice: &str) -> String {
    let body = json!({"model": model, "voice": voice, "text": "Whose key?", "output": "mp3"});
    let response = send(app, Method::POST, "/v1/audio/speech", key, Some(body)).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    text
}

/// A project, and a key for it that may manage its provider keys.
async fn project_key(app: &TestApp) -> (String, String) {
    let response = app.admin_post("/admin/v1/projects", json!({"name": "byok"})).await;
    let project: Value = response.json().await.unwrap();
    let project = project["id"].as_str().unwrap().to_owned();
    let (_, key) =
        app.create_key(json!({"name": "k", "projectId": project, "scopes": ["speech", "credentials"]})).await;
    (project, key)
}

/// `(nonce, ciphertext, master key fingerprint)` of each of a project's stored keys, read
/// straight from the database.
async fn stored_rows(db: Db, url: &str, project: &str) -> Vec<(Vec<u8>, Vec<u8>, String)> {
    let query =
        "SELECT nonce, ciphertext, master_key FROM provider_credentials WHERE project_id = $1 ORDER BY provider";
    match db {
        Db::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            sqlx::query_as(query).bind(project).fetch_all(&pool).await.unwrap()
        }
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query_as(query).bind(project).fetch_all(&pool).await.unwrap()
        }
    }
}

/// Runs one statement on the database behind the gateway's back.
async fn tamper(db: Db, url: &str, statement: &str) {
    match db {
        Db::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
    }
}

/// PUT, GET and DELETE round trip; the project's key reaches the vendor (both auth styles) and
/// other projects keep the operator's; the database holds ciphertext, not the key.
async fn project_keys_round_trip_and_reach_the_vendor(db: Db) {
    let vendors = vendors().await;
    let app = gateway(db, &vendors, Some(MASTER)).await;
    let (project, key) = project_key(&app).await;
    let (_, other) = app.speech_key().await;

    let listed: Value = app.get("/v1/api-keys", Some(&key)).await.json().await.unwrap();
    assert_eq!(listed, json!({"data": []}));
    assert_eq!(speak(&app, &key, "openai/tts-1", "alloy").await, "operator-openai-audio");

    for (provider, api_key) in [("openai", PROJECT_OPENAI), ("elevenlabs", PROJECT_XI)] {
        let response = put(&app, &key, provider, api_key).await;
        assert_eq!(response.status(), 204);
        assert!(response.bytes().await.unwrap().is_empty());
    }
    let listed = app.get("/v1/api-keys", Some(&key)).await.text().await.unwrap();
    assert!(!listed.contains("sk-project") && !listed.contains("xi-project"), "a key is never shown: {listed}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let entries = listed["data"].as_array().unwrap();
    let providers: Vec<&str> = entries.iter().map(|e| e["providerId"].as_str().unwrap()).collect();
    assert_eq!(providers, ["elevenlabs", "openai"]);
    assert_eq!((&entries[1]["keySuffix"], &entries[1]["usable"]), (&json!("0001"), &json!(true)));
    assert_eq!(entries[0]["keySuffix"], "0002");

    // The catalogue says which providers the caller's project brings its own key for.
    for (caller, expected) in [(&key, true), (&other, false)] {
        let catalog: Value = app.get("/v1/audio/providers", Some(caller)).await.json().await.unwrap();
        for entry in catalog["data"].as_array().unwrap() {
            let own = ["openai", "elevenlabs"].contains(&entry["id"].as_str().unwrap()) && expected;
            assert_eq!(entry["byok"], own, "{entry}");
        }
    }
    assert_eq!(speak(&app, &key, "openai/tts-1", "alloy").await, "project-openai-audio");
    assert_eq!(speak(&app, &key, "elevenlabs", "JBFqnCBsd6RMkjVDRZzb").await, "project-xi-audio");
    assert_eq!(speak(&app, &other, "openai/tts-1", "alloy").await, "operator-openai-audio", "another project");
    assert_eq!(speak(&app, &other, "elevenlabs", "JBFqnCBsd6RMkjVDRZzb").await, "operator-xi-audio");

    // At rest: a 96-bit nonce, the key's length plus the 128-bit tag, and none of the key.
    let rows = stored_rows(db, &app.db.url, &project).await;
    assert_eq!(rows.len(), 2);
    for ((nonce, ciphertext, master), plain) in rows.iter().zip([PROJECT_XI, PROJECT_OPENAI]) {
        assert_eq!(nonce.len(), 12);
        assert_eq!(ciphertext.len(), plain.len() + 16);
        assert!(!ciphertext.windows(6).any(|w| plain.as_bytes().windows(6).any(|p| p == w)), "plaintext at rest");
        assert_eq!(master.len(), 16, "the master key's fingerprint");
    }
    // Storing the same key again seals it afresh.
    assert_eq!(put(&app, &key, "openai", PROJECT_OPENAI).await.status(), 204);
    let again = stored_rows(db, &app.db.url, &project).await;
    assert_ne!(again[1].0, rows[1].0, "a new nonce for every value");

    let response = send(&app, Method::DELETE, "/v1/api-keys/openai", &key, None).await;
    assert_eq!(response.status(), 204);
    assert_eq!(speak(&app, &key, "openai/tts-1", "alloy").await, "operator-openai-audio", "back to the operator's");
    let (status, body) = problem(send(&app, Method::DELETE, "/v1/api-keys/openai", &key, None).await).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{body}");
    let listed: Value = app.get("/v1/api-keys", Some(&key)).await.json().await.unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);

    // The vendor refuses the project's key: the problem says whose key it was, without it.
    assert_eq!(put(&app, &key, "openai", REVOKED).await.status(), 204);
    let body = json!({"model": "openai/tts-1", "voice": "alloy", "text": "Whose key?", "output": "mp3"});
    let (status, problem_body) = problem(send(&app, Method::POST, "/v1/audio/speech", &key, Some(body)).await).await;
    assert_eq!((status, problem_body["code"].as_str()), (502, Some("provider_auth_failed")), "{problem_body}");
    assert!(problem_body["detail"].as_str().unwrap().contains("project's own openai key"), "{problem_body}");
    assert!(!problem_body.to_string().contains(REVOKED), "the key is scrubbed: {problem_body}");
    app.stop().await;
}

/// A gateway restarted with another master key, a sealed value copied to another project and
/// one altered in place: each stored key is refused with a clear 503, and nothing — neither
/// garbage nor the operator's key — is sent to the vendor for it.
async fn unopenable_keys_are_refused_not_sent(db: Db) {
    let vendors = vendors().await;
    let app = gateway(db, &vendors, Some(MASTER)).await;
    let (project, key) = project_key(&app).await;
    let (thief_project, thief) = project_key(&app).await;
    assert_eq!(put(&app, &key, "openai", PROJECT_OPENAI).await.status(), 204);
    let test_db = app.stop().await;

    let mut config = common::test_config(&test_db.url);
    configure(&mut config, &vendors, Some(OTHER_MASTER));
    let url = test_db.url.clone();
    let app = TestApp::start(config, test_db).await;
    let calls = vendors.openai.received_requests().await.unwrap().len();
    let body = json!({"model": "openai/tts-1", "voice": "alloy", "text": "Whose key?", "output": "mp3"});
    let (status, problem_body) =
        problem(send(&app, Method::POST, "/v1/audio/speech", &key, Some(body.clone())).await).await;
    assert_eq!((status, problem_body["code"].as_str()), (503, Some("provider_key_unusable")), "{problem_body}");
    let detail = problem_body["detail"].as_str().unwrap();
    assert!(detail.contains("another master key") && detail.contains("PUT /v1/api-keys/openai"), "{detail}");
    assert_eq!(vendors.openai.received_requests().await.unwrap().len(), calls, "nothing went upstream");
    let listed: Value = app.get("/v1/api-keys", Some(&key)).await.json().await.unwrap();
    assert_eq!(listed["data"][0]["usable"], false);
    assert!(listed["data"][0].get("keySuffix").is_none(), "{listed}");
    assert!(listed["data"][0]["problem"].as_str().unwrap().contains("another master key"));
    // Storing it again under this master key mends it.
    assert_eq!(put(&app, &key, "openai", PROJECT_OPENAI).await.status(), 204);
    assert_eq!(speak(&app, &key, "openai/tts-1", "alloy").await, "project-openai-audio");

    // The sealed row copied to another project does not open there (the project id is bound
    // in), and a flipped bit does not open anywhere.
    let copy = format!(
        "INSERT INTO provider_credentials (project_id, provider, nonce, ciphertext, master_key, created_at, updated_at) \
         SELECT '{thief_project}', provider, nonce, ciphertext, master_key, created_at, updated_at \
         FROM provider_credentials WHERE project_id = '{project}'"
    );
    tamper(db, &url, &copy).await;
    let rows = stored_rows(db, &url, &project).await;
    let mut altered = rows[0].1.clone();
    altered[0] ^= 1;
    let flip = match db {
        Db::Sqlite => {
            format!("UPDATE provider_credentials SET ciphertext = X'{}' WHERE project_id = '{project}'", hex(&altered))
        }
        Db::Postgres => format!(
            "UPDATE provider_credentials SET ciphertext = '\\x{}'::bytea WHERE project_id = '{project}'",
            hex(&altered)
        ),
    };
    tamper(db, &url, &flip).await;
    let app = {
        // A fresh gateway, so that nothing cached hides the change.
        let test_db = app.stop().await;
        let mut config = common::test_config(&test_db.url);
        configure(&mut config, &vendors, Some(OTHER_MASTER));
        TestApp::start(config, test_db).await
    };
    let calls = vendors.openai.received_requests().await.unwrap().len();
    for caller in [&key, &thief] {
        let (status, problem_body) =
            problem(send(&app, Method::POST, "/v1/audio/speech", caller, Some(body.clone())).await).await;
        assert_eq!((status, problem_body["code"].as_str()), (503, Some("provider_key_unusable")), "{problem_body}");
        assert!(problem_body["detail"].as_str().unwrap().contains("does not decrypt"), "{problem_body}");
    }
    assert_eq!(vendors.openai.received_requests().await.unwrap().len(), calls, "nothing went upstream");
    app.stop().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hostile provider ids and bodies get problem+json with the right status, and never echo a
/// key; the routes need the `credentials` scope.
async fn hostile_provider_ids_and_bodies(db: Db) {
    let vendors = vendors().await;
    let app = gateway(db, &vendors, Some(MASTER)).await;
    let (_, key) = project_key(&app).await;
    let long = "a".repeat(5000);
    let unknown = ["..%2F..%2Fadmin%2Fv1%2Fkeys", "%2e%2e", "OPENAI", "%C3%B6penai", "openai%2F..", long.as_str()];
    for id in unknown {
        for verb in [Method::PUT, Method::DELETE] {
            let path = format!("/v1/api-keys/{id}");
            let body = (verb == Method::PUT).then(|| json!({"apiKey": "sk-something-long-enough"}));
            // (`not_found`, or `route_not_found` where the client resolved the dots itself.)
            let (status, problem_body) = problem(send(&app, verb.clone(), &path, &key, body).await).await;
            assert_eq!(status, 404, "{verb} {path}: {problem_body}");
            assert!(problem_body["detail"].as_str().unwrap().len() < 200, "{problem_body}");
        }
    }
    let (status, _) = problem(put(&app, &key, "%00", "sk-x").await).await;
    assert_eq!(status, 400);
    assert_eq!(send(&app, Method::PUT, "/v1/api-keys/", &key, Some(json!({"apiKey": "x"}))).await.status(), 404);

    let secret = "sk-secret value";
    let bodies = [
        (json!({}), json!([])),
        (json!({"apiKey": ""}), json!(["apiKey"])),
        (json!({"apiKey": secret}), json!(["apiKey"])),
        (json!({"apiKey": "sk-secret\nInjected: header"}), json!(["apiKey"])),
        (json!({"apiKey": "sk-sécret"}), json!(["apiKey"])),
        (json!({"apiKey": "k".repeat(513)}), json!(["apiKey"])),
        (json!({"apiKey": 5}), json!(["apiKey"])),
        (json!({"apiKey": "sk-ok", "provider": "elevenlabs"}), json!([])),
        (json!(["sk-ok"]), json!([])),
    ];
    for (body, path) in bodies {
        let response = send(&app, Method::PUT, "/v1/api-keys/openai", &key, Some(body.clone())).await;
        let (status, problem_body) = problem(response).await;
        assert_eq!(status, 400, "{body}: {problem_body}");
        if path != json!([]) {
            assert_eq!(problem_body["validation"][0]["path"], path, "{problem_body}");
        }
        let text = problem_body.to_string();
        assert!(!text.contains("sk-secret") && !text.contains("sécret"), "the value is echoed: {text}");
    }
    let response = app
        .client
        .put(app.url("/v1/api-keys/openai"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{\"apiKey\": \"sk-unterminated")
        .send()
        .await
        .unwrap();
    let (status, problem_body) = problem(response).await;
    assert_eq!(status, 400);
    assert!(!problem_body.to_string().contains("sk-unterminated"), "{problem_body}");
    let listed: Value = app.get("/v1/api-keys", Some(&key)).await.json().await.unwrap();
    assert_eq!(listed["data"], json!([]), "nothing was stored");

    // The default scopes do not include `credentials`; the admin token is no project key.
    let (_, speech_only) = app.speech_key().await;
    for credential in [speech_only.as_str(), ADMIN_TOKEN] {
        for (verb, route) in [
            (Method::GET, "/v1/api-keys"),
            (Method::PUT, "/v1/api-keys/openai"),
            (Method::DELETE, "/v1/api-keys/openai"),
        ] {
            let body = (verb == Method::PUT).then(|| json!({"apiKey": "sk-something"}));
            let (status, _) = problem(send(&app, verb.clone(), route, credential, body).await).await;
            assert!(status == 403 || status == 401, "{verb} {route}: {status}");
        }
    }
    app.stop().await;
}

/// `local` runs inside the gateway and takes no key: a 400 at `providerId`.
#[tokio::test]
async fn a_provider_without_a_key_is_refused() {
    let vendors = vendors().await;
    let mut config = common::test_config("");
    configure(&mut config, &vendors, Some(MASTER));
    config.providers.local.enabled = true;
    let test_db = common::test_db(Db::Sqlite).await;
    config.database.url = test_db.url.clone();
    let app = TestApp::start(config, test_db).await;
    let (_, key) = project_key(&app).await;
    if app.get("/v1/audio/providers", Some(&key)).await.text().await.unwrap().contains("\"local\"") {
        for verb in [Method::PUT, Method::DELETE] {
            let body = (verb == Method::PUT).then(|| json!({"apiKey": "sk-something"}));
            let (status, problem_body) =
                problem(send(&app, verb.clone(), "/v1/api-keys/local", &key, body).await).await;
            assert_eq!(
                (status, &problem_body["validation"][0]["path"]),
                (400, &json!(["providerId"])),
                "{problem_body}"
            );
        }
    } else {
        // Built without the offline voice: `local` is no provider here at all.
        let (status, _) = problem(put(&app, &key, "local", "sk-something").await).await;
        assert_eq!(status, 404);
    }
    app.stop().await;
}

/// Without a master key the routes say so (501) and every request uses the operator's key.
#[tokio::test]
async fn without_a_master_key_the_routes_say_so() {
    let vendors = vendors().await;
    let app = gateway(Db::Sqlite, &vendors, None).await;
    let (_, key) = project_key(&app).await;
    let routes = [
        (Method::GET, "/v1/api-keys", None),
        (Method::PUT, "/v1/api-keys/openai", Some(json!({"apiKey": PROJECT_OPENAI}))),
        (Method::DELETE, "/v1/api-keys/openai", None),
    ];
    for (verb, route, body) in routes {
        let (status, problem_body) = problem(send(&app, verb.clone(), route, &key, body).await).await;
        assert_eq!((status, problem_body["code"].as_str()), (501, Some("not_configured")), "{verb} {route}");
        assert!(problem_body["detail"].as_str().unwrap().contains("SPEECHGATE_MASTER_KEY"), "{problem_body}");
    }
    assert_eq!(speak(&app, &key, "openai/tts-1", "alloy").await, "operator-openai-audio");
    app.stop().await;
}

both_databases!(
    project_keys_round_trip_and_reach_the_vendor,
    unopenable_keys_are_refused_not_sent,
    hostile_provider_ids_and_bodies,
);
