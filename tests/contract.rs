//! The public contract: the committed OpenAPI document, and the problem+json body of every kind
//! of failure (snapshots under `tests/snapshots/`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use common::{Db, TestApp, ADMIN_TOKEN};
use serde_json::{json, Value};

const COMMITTED: &str = include_str!("../openapi/openapi.json");

#[tokio::test]
async fn served_and_printed_openapi_equal_the_committed_copy() {
    let committed: Value = serde_json::from_str(COMMITTED).unwrap();
    let printed = serde_json::to_value(speechgate::http::openapi()).unwrap();
    assert!(
        printed == committed,
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json` and commit it"
    );
    let app = TestApp::spawn(Db::Sqlite).await;
    let served: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    assert_eq!(served, committed);
    app.stop().await;
}

/// Two types under one schema name would document a route with the wrong schema (utoipa keeps
/// one silently): every name belongs to one type.
#[test]
fn every_schema_name_belongs_to_one_type() {
    assert_eq!(speechgate::http::schema_name_collisions(), Vec::<String>::new());
}

#[test]
fn every_route_but_the_public_ones_requires_a_credential() {
    let doc: Value = serde_json::from_str(COMMITTED).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let public = speechgate::http::middleware::PUBLIC_ROUTES.contains(&path.as_str());
            let secured = operation.get("security").is_some();
            assert_eq!(secured, !public, "{method} {path}: security in the document disagrees with the router");
            // Errors come in the dialect of the route: problem+json, or a vendor's JSON.
            let error_type = match speechgate::http::dialect::Dialect::of_path(path) {
                speechgate::http::dialect::Dialect::Problem => "application/problem+json",
                _ => "application/json",
            };
            let documents_errors = operation["responses"]
                .as_object()
                .unwrap()
                .iter()
                .any(|(status, r)| status.starts_with('4') && r["content"].get(error_type).is_some());
            assert!(public || documents_errors, "{method} {path} documents no {error_type} error response");
        }
    }
}

/// Requests that fail in every way a client can cause, and their exact bodies.
#[tokio::test]
async fn problem_bodies() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| c.server.max_body_bytes = 64).await;
    let (_, key) = app.speech_key().await;
    let (_, limited) = app.create_key(json!({"name": "limited", "rateLimitPerMinute": 1})).await;
    let post = |body: &str, content_type: &str| {
        app.client
            .post(app.url("/admin/v1/keys"))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
    };
    let cases = vec![
        ("malformed_json", post("{\"name\"", "application/json").await.unwrap()),
        ("wrong_type", post("{\"name\": [1]}", "application/json").await.unwrap()),
        ("invalid_fields", post("{\"name\": \"\", \"scopes\": []}", "application/json").await.unwrap()),
        ("unsupported_media_type", post("name=x", "text/plain").await.unwrap()),
        (
            "payload_too_large",
            post(&format!("{{\"name\": \"{}\"}}", "x".repeat(100)), "application/json").await.unwrap(),
        ),
        ("missing_key", app.get("/v1/usage", None).await),
        ("invalid_key", app.get("/v1/usage", Some("sg_aaaaaaaaaaaa_0000000000000000000000000000000000000000")).await),
        ("insufficient_scope", app.get("/admin/v1/keys", Some(&key)).await),
        ("key_not_found", app.get("/admin/v1/keys/aaaaaaaaaaaa", Some(ADMIN_TOKEN)).await),
        ("route_not_found", app.get("/v2/speech", None).await),
        ("method_not_allowed", app.client.delete(app.url("/v1/usage")).bearer_auth(&key).send().await.unwrap()),
        ("duplicate_title", {
            // Within the 64-byte body limit of this app.
            let voice = json!({"title": "Narrator", "provider": "openai", "voiceId": "alloy"});
            let create = || app.client.post(app.url("/v1/voices")).bearer_auth(&key).json(&voice).send();
            assert_eq!(create().await.unwrap().status(), 201);
            create().await.unwrap()
        }),
        ("rate_limited", {
            app.get("/v1/logs", Some(&limited)).await;
            app.get("/v1/logs", Some(&limited)).await
        }),
    ];
    for (name, response) in cases {
        let (_, body) = common::problem(response).await;
        // The wait depends on timing; its shape is checked, its value is redacted.
        if name == "rate_limited" {
            let detail = body["detail"].as_str().unwrap();
            assert!(detail.starts_with("rate limit exceeded; retry in ") && detail.ends_with(" s"), "{detail}");
        }
        insta::assert_json_snapshot!(name, body, { ".requestId" => "[request id]", ".detail" => insta::dynamic_redaction(move |value, _| if name == "rate_limited" { "[retry in N s]".into() } else { value }), ".error.message" => insta::dynamic_redaction(move |value, _| if name == "rate_limited" { "[retry in N s]".into() } else { value }) });
    }
    app.stop().await;

    let disabled = TestApp::spawn_with(Db::Sqlite, |c| c.auth.admin_token = None).await;
    let (_, body) = common::problem(disabled.get("/admin/v1/keys", None).await).await;
    insta::assert_json_snapshot!("admin_api_disabled", body, { ".requestId" => "[request id]" });
    disabled.stop().await;
}
