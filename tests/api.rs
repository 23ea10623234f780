//! The gateway over real sockets, on SQLite and on PostgreSQL: keys, auth, usage, errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use std::time::Duration;

use common::{problem, Db, TestApp, ADMIN_TOKEN};
use serde_json::{json, Value};

/// Polls the caller's usage until `requests` events are visible (the writer is asynchronous).
async fn usage_with(app: &TestApp, key: &str, requests: i64) -> Value {
    for _ in 0..200 {
        let report: Value = app.get("/v1/usage", Some(key)).await.json().await.unwrap();
        // The usage request itself is recorded only after it is answered.
        if report["totals"]["requests"].as_i64().unwrap_or(0) >= requests {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("usage never reached {requests} requests");
}

async fn key_call_usage_flow(db: Db) {
    let app = TestApp::spawn(db).await;
    let (id, key) = app.speech_key().await;
    assert!(key.starts_with(&format!("sg_{id}_")));

    let response = app.get("/v1/logs", Some(&key)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));

    let report = usage_with(&app, &key, 1).await;
    let bucket = &report["buckets"][0];
    assert_eq!(bucket["keyId"], id.as_str());
    assert!(bucket["bytesOut"].as_i64().unwrap() > 0);

    let logs: Value = app.get("/v1/logs", Some(&key)).await.json().await.unwrap();
    let first = logs["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(first["route"], "/v1/logs");
    assert_eq!(first["status"], 200);
    assert_eq!(first["errorCode"], Value::Null);
    assert!(first["ttfbMs"].is_number());

    // The key's last use is visible to the admin.
    let listed: Value = app
        .client
        .get(app.url(&format!("/admin/v1/keys/{id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(listed["lastUsedAt"].is_string(), "{listed}");
    assert!(listed.get("key").is_none() && listed.get("secretSha256").is_none(), "secret never returned again");
    app.stop().await;
}

async fn missing_invalid_and_revoked_keys_get_401(db: Db) {
    let app = TestApp::spawn(db).await;
    let (id, key) = app.speech_key().await;
    assert_eq!(app.get("/v1/usage", Some(&key)).await.status(), 200);

    let (status, body) = problem(app.get("/v1/usage", None).await).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    let (status, _) = problem(app.get("/v1/usage", Some("sg_nope")).await).await;
    assert_eq!(status, 401);
    // Change the secret's last character (to one it is not: `x` would be a no-op one time in 62).
    let last = if key.ends_with('x') { 'y' } else { 'x' };
    let tampered = format!("{}{last}", &key[..key.len() - 1]);
    assert_ne!(tampered, key);
    let (status, _) = problem(app.get("/v1/usage", Some(&tampered)).await).await;
    assert_eq!(status, 401, "a wrong secret with a real id is rejected");
    let (status, _) = problem(app.get("/v1/usage", Some(ADMIN_TOKEN)).await).await;
    assert_eq!(status, 401, "the admin token is not a gateway key");

    // Vendor-style headers carry the same key.
    let via_xi = app.client.get(app.url("/v1/usage")).header("xi-api-key", &key).send().await.unwrap();
    assert_eq!(via_xi.status(), 200);
    let via_x = app.client.get(app.url("/v1/usage")).header("X-API-Key", &key).send().await.unwrap();
    assert_eq!(via_x.status(), 200);

    let revoke =
        app.client.delete(app.url(&format!("/admin/v1/keys/{id}"))).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(revoke.status(), 204);
    let (status, body) = problem(app.get("/v1/usage", Some(&key)).await).await;
    assert_eq!(status, 401);
    assert!(body["detail"].as_str().unwrap().contains("revoked"), "{body}");
    app.stop().await;
}

/// A key revoked on one replica stops working on another within the cache TTL.
async fn revocation_reaches_other_replicas(db: Db) {
    let a = TestApp::spawn_with(db, |c| c.auth.cache_ttl_secs = 1).await;
    let mut config = common::test_config(&a.db.url);
    config.auth.cache_ttl_secs = 1;
    let b = TestApp::start(config, a.db.shared()).await;
    let (id, key) = a.speech_key().await;
    assert_eq!(b.get("/v1/usage", Some(&key)).await.status(), 200, "created on A, usable on B at once");
    let revoke = a.client.delete(a.url(&format!("/admin/v1/keys/{id}"))).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(revoke.status(), 204);
    let mut rejected = false;
    for _ in 0..40 {
        if b.get("/v1/usage", Some(&key)).await.status() == 401 {
            rejected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rejected, "replica B still accepted a revoked key after 4 s");
    b.stop().await;
    a.stop().await;
}

async fn scopes_and_admin_access(db: Db) {
    let app = TestApp::spawn(db).await;
    let (_, speech) = app.speech_key().await;
    let (_, admin) = app.create_key(json!({"name": "ops", "scopes": ["admin"]})).await;

    let (status, body) = problem(app.get("/admin/v1/keys", Some(&speech)).await).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("insufficient_scope")));
    assert_eq!(
        app.get("/admin/v1/keys", Some(&admin)).await.status(),
        200,
        "an admin-scoped key may use the admin API"
    );
    let listed: Value = app.get("/admin/v1/keys", Some(ADMIN_TOKEN)).await.json().await.unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);

    let (status, body) = problem(app.get("/admin/v1/keys/nope", Some(ADMIN_TOKEN)).await).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    app.stop().await;

    let disabled = TestApp::spawn_with(db, |c| c.auth.admin_token = None).await;
    for credential in [None, Some(ADMIN_TOKEN)] {
        let (status, body) = problem(disabled.get("/admin/v1/keys", credential).await).await;
        assert_eq!((status, body["code"].as_str()), (403, Some("admin_api_disabled")));
        assert!(body["detail"].as_str().unwrap().contains("SPEECHGATE_ADMIN_TOKEN"));
    }
    disabled.stop().await;
}

async fn expired_keys_and_rate_limits(db: Db) {
    let app = TestApp::spawn(db).await;
    let (_, limited) = app.create_key(json!({"name": "slow", "rateLimitPerMinute": 2})).await;
    assert_eq!(app.get("/v1/logs", Some(&limited)).await.status(), 200);
    assert_eq!(app.get("/v1/logs", Some(&limited)).await.status(), 200);
    let response = app.get("/v1/logs", Some(&limited)).await;
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    // A sliding window: both requests must have (mostly) left the last minute. With 2 used in
    // this minute, the third fits half-way into the next: at most 90 s from now.
    assert!((1..=90).contains(&retry_after), "{retry_after}");
    let (status, body) = problem(response).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")));

    // Room for a slow, busy test machine between creating the key and its first use.
    let soon = chrono::Utc::now() + chrono::Duration::seconds(3);
    let (_, expiring) = app.create_key(json!({"name": "brief", "expiresAt": soon})).await;
    assert_eq!(app.get("/v1/logs", Some(&expiring)).await.status(), 200);
    let until_expired = (soon - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(100);
    tokio::time::sleep(until_expired).await;
    let (status, body) = problem(app.get("/v1/logs", Some(&expiring)).await).await;
    assert_eq!(status, 401);
    assert!(body["detail"].as_str().unwrap().contains("expired"));

    // Limited requests were metered too.
    let events = app.stop_and_read_usage(None).await;
    assert!(events.iter().any(|e| e.event.status == 429 && e.event.error_code.as_deref() == Some("rate_limited")));
}

async fn logs_paginate_with_cursors(db: Db) {
    let app = TestApp::spawn(db).await;
    let (_, key) = app.speech_key().await;
    for _ in 0..5 {
        assert_eq!(app.get("/v1/usage", Some(&key)).await.status(), 200);
    }
    usage_with(&app, &key, 5).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/logs?limit=2&cursor={c}"),
            None => "/v1/logs?limit=2".to_owned(),
        };
        let page: Value = app.get(&path, Some(&key)).await.json().await.unwrap();
        for item in page["data"].as_array().unwrap() {
            seen.push(item["requestId"].as_str().unwrap().to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no event appears on two pages");
    assert!(seen.len() >= 5, "{seen:?}");

    let (status, body) = problem(app.get("/v1/logs?cursor=garbage", Some(&key)).await).await;
    assert_eq!(status, 400);
    assert_eq!(body["validation"][0]["path"], json!(["cursor"]));
    let (status, body) = problem(app.get("/v1/logs?limit=0", Some(&key)).await).await;
    assert_eq!((status, &body["validation"][0]["path"]), (400, &json!(["limit"])));
    let (status, body) = problem(app.get("/v1/logs?limit=many", Some(&key)).await).await;
    assert_eq!((status, &body["validation"][0]["path"]), (400, &json!(["limit"])));
    let (status, body) = problem(app.get("/v1/usage?from=yesterday", Some(&key)).await).await;
    assert_eq!((status, &body["validation"][0]["path"]), (400, &json!(["from"])));
    let (status, _) =
        problem(app.get("/v1/usage?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", Some(&key)).await).await;
    assert_eq!(status, 400);
    app.stop().await;
}

async fn admin_usage_spans_keys(db: Db) {
    let app = TestApp::spawn(db).await;
    let (a_id, a) = app.speech_key().await;
    let (_, b) = app.speech_key().await;
    app.get("/v1/logs", Some(&a)).await;
    app.get("/v1/logs", Some(&b)).await;
    usage_with(&app, &a, 1).await;
    usage_with(&app, &b, 1).await;
    let all: Value = app.get("/admin/v1/usage", Some(ADMIN_TOKEN)).await.json().await.unwrap();
    assert!(all["totals"]["requests"].as_i64().unwrap() >= 4, "{all}");
    let keys: std::collections::BTreeSet<_> =
        all["buckets"].as_array().unwrap().iter().filter_map(|b| b["keyId"].as_str()).collect();
    assert!(keys.len() >= 2, "{all}");
    let one: Value = app.get(&format!("/admin/v1/usage?keyId={a_id}"), Some(ADMIN_TOKEN)).await.json().await.unwrap();
    assert!(one["buckets"].as_array().unwrap().iter().all(|b| b["keyId"] == a_id.as_str()));
    app.stop().await;
}

async fn bad_input_is_always_problem_json(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.server.max_body_bytes = 1024).await;
    let post = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/admin/v1/keys"))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    let (status, body) = problem(post("{\"name\": ", "application/json").await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("malformed_json")));
    assert!(body["detail"].as_str().unwrap().contains("line 1"), "{body}");

    let (status, body) = problem(post("{\"name\": 5}", "application/json").await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("validation_failed")));
    assert_eq!(body["validation"][0]["path"], json!(["name"]));

    let (status, body) =
        problem(post("{\"name\": \"x\", \"scopes\": [\"speech\", 7]}", "application/json").await.unwrap()).await;
    assert_eq!((status, &body["validation"][0]["path"]), (400, &json!(["scopes", 1])));

    let (status, body) = problem(post("{\"name\": \"x\", \"colour\": 1}", "application/json").await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(body["validation"][0]["message"].as_str().unwrap().contains("colour"), "{body}");

    let (status, body) = problem(post("{\"name\": \"  \", \"scopes\": []}", "application/json").await.unwrap()).await;
    assert_eq!(status, 400);
    let paths: Vec<_> = body["validation"].as_array().unwrap().iter().map(|v| v["path"].clone()).collect();
    assert_eq!(paths, [json!(["name"]), json!(["scopes"])]);

    let (status, body) = problem(post("name=x", "application/x-www-form-urlencoded").await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (415, Some("unsupported_media_type")));

    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(4096));
    let response = app
        .client
        .post(app.url("/admin/v1/keys"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let (status, body) = problem(response).await;
    assert_eq!((status, body["code"].as_str()), (413, Some("payload_too_large")));
    assert!(body["detail"].as_str().unwrap().contains("1024"));

    let (status, body) = problem(app.get("/v1/nothing-here", None).await).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("route_not_found")));

    let response = app.client.put(app.url("/healthz")).send().await.unwrap();
    assert!(response.headers()["allow"].to_str().unwrap().contains("GET"));
    let (status, body) = problem(response).await;
    assert_eq!((status, body["code"].as_str()), (405, Some("method_not_allowed")));
    app.stop().await;
}

async fn operations_endpoints(db: Db) {
    let app = TestApp::spawn(db).await;
    assert_eq!(app.get("/healthz", None).await.status(), 200);
    let ready: Value = app.get("/readyz", None).await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");

    // A caller's request id is propagated; a malformed one is replaced.
    let response = app.client.get(app.url("/v1/usage")).header("x-request-id", "trace-abc.123").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc.123");
    let (_, body) = problem(response).await;
    assert_eq!(body["requestId"], "trace-abc.123");
    let response =
        app.client.get(app.url("/healthz")).header("x-request-id", "bad id\twith spaces").send().await.unwrap();
    assert_ne!(response.headers()["x-request-id"], "bad id\twith spaces");

    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    for needle in [
        "speechgate_http_requests_total{method=\"GET\",route=\"/v1/usage\",status=\"401\"} 1",
        "speechgate_http_request_duration_seconds_bucket",
        "speechgate_http_errors_total{route=\"/v1/usage\",code=\"unauthorized\"} 1",
        "speechgate_http_requests_in_flight",
        "speechgate_usage_writer_queue_depth",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
    app.stop().await;
}

both_databases!(
    key_call_usage_flow,
    missing_invalid_and_revoked_keys_get_401,
    revocation_reaches_other_replicas,
    scopes_and_admin_access,
    expired_keys_and_rate_limits,
    logs_paginate_with_cursors,
    admin_usage_spans_keys,
    bad_input_is_always_problem_json,
    operations_endpoints,
);
