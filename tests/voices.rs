//! Saved voices over real sockets, on SQLite and on PostgreSQL: CRUD, paging, titles, owners,
//! scopes and validation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use common::{problem, Db, TestApp, ADMIN_TOKEN};
use reqwest::{Method, Response};
use serde_json::{json, Value};

async fn send(app: &TestApp, method: Method, path: &str, key: &str, body: Option<Value>) -> Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn voices_key(app: &TestApp) -> String {
    app.create_key(json!({"name": "v", "scopes": ["voices"]})).await.1
}

/// Creates a voice, asserting the 201, and returns it.
async fn create(app: &TestApp, key: &str, body: Value) -> Value {
    let response = send(app, Method::POST, "/v1/voices", key, Some(body)).await;
    let status = response.status();
    let voice: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{voice}");
    voice
}

fn narrator() -> Value {
    json!({
        "title": "  Narrator ",
        "provider": "openai",
        "model": "gpt-4o-mini-tts",
        "voiceId": "alloy",
        "tags": ["warm", "audiobook"],
        "gender": "female",
        "description": "Calm and even",
        "providerOptions": {"instructions": "speak slowly", "nested": {"n": [1, 2.5, null, true]}}
    })
}

fn time(value: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap()).unwrap()
}

/// The validation paths of a 400 problem.
async fn paths(response: Response) -> Vec<Value> {
    let (status, body) = problem(response).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("validation_failed")), "{body}");
    body["validation"].as_array().unwrap().iter().map(|v| v["path"].clone()).collect()
}

async fn voices_crud(db: Db) {
    let app = TestApp::spawn(db).await;
    let key = voices_key(&app).await;

    let voice = create(&app, &key, narrator()).await;
    let id = voice["id"].as_str().unwrap().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
    assert_eq!(voice["title"], "Narrator", "the title is trimmed");
    for field in ["provider", "model", "voiceId", "tags", "gender", "description", "providerOptions"] {
        assert_eq!(voice[field], narrator()[field], "{field}");
    }
    assert!(voice["createdAt"].is_string());
    assert_eq!(voice["createdAt"], voice["updatedAt"]);

    let fetched: Value = app.get(&format!("/v1/voices/{id}"), Some(&key)).await.json().await.unwrap();
    assert_eq!(fetched, voice);

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let patch = json!({"title": "Host", "tags": ["bright"], "gender": "neutral"});
    let response = send(&app, Method::PATCH, &format!("/v1/voices/{id}"), &key, Some(patch)).await;
    assert_eq!(response.status(), 200);
    let patched: Value = response.json().await.unwrap();
    assert_eq!(
        (&patched["title"], &patched["tags"], &patched["gender"]),
        (&json!("Host"), &json!(["bright"]), &json!("neutral"))
    );
    for field in ["id", "provider", "model", "voiceId", "description", "providerOptions", "createdAt"] {
        assert_eq!(patched[field], voice[field], "{field} is unchanged");
    }
    assert!(time(&patched["updatedAt"]) > time(&voice["updatedAt"]), "{patched}");
    let fetched: Value = app.get(&format!("/v1/voices/{id}"), Some(&key)).await.json().await.unwrap();
    assert_eq!(fetched, patched);

    let minimal = create(&app, &key, json!({"title": "Plain", "provider": "elevenlabs", "voiceId": "Rachel"})).await;
    assert_eq!(
        (&minimal["model"], &minimal["tags"], &minimal["gender"], &minimal["description"], &minimal["providerOptions"]),
        (&Value::Null, &json!([]), &Value::Null, &Value::Null, &json!({}))
    );

    let listed: Value = app.get("/v1/voices", Some(&key)).await.json().await.unwrap();
    assert_eq!(listed["data"], json!([minimal, patched]));
    assert_eq!((&listed["hasMore"], &listed["limit"]), (&json!(false), &json!(50)));
    assert!(listed.get("nextCursor").is_none(), "{listed}");

    let response = send(&app, Method::DELETE, &format!("/v1/voices/{id}"), &key, None).await;
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    let (status, body) = problem(app.get(&format!("/v1/voices/{id}"), Some(&key)).await).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, _) = problem(send(&app, Method::DELETE, &format!("/v1/voices/{id}"), &key, None).await).await;
    assert_eq!(status, 404, "deleting twice");
    let listed: Value = app.get("/v1/voices", Some(&key)).await.json().await.unwrap();
    assert_eq!(listed["data"], json!([minimal]));
    app.stop().await;
}

async fn voices_paginate_newest_first(db: Db) {
    let app = TestApp::spawn(db).await;
    let key = voices_key(&app).await;
    let mut created = Vec::new();
    for i in 0..7 {
        let voice =
            create(&app, &key, json!({"title": format!("voice {i}"), "provider": "openai", "voiceId": "alloy"})).await;
        created.push(voice["id"].as_str().unwrap().to_owned());
    }
    created.reverse();

    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/voices?limit=3&cursor={c}"),
            None => "/v1/voices?limit=3".to_owned(),
        };
        let response = app.get(&path, Some(&key)).await;
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.unwrap();
        assert_eq!(page["limit"], 3);
        let data = page["data"].as_array().unwrap();
        seen.extend(data.iter().map(|v| v["id"].as_str().unwrap().to_owned()));
        pages.push((data.len(), page["hasMore"].as_bool().unwrap()));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, [(3, true), (3, true), (1, false)]);
    assert_eq!(seen, created, "every voice once, newest first");

    // A page that ends exactly at the last voice says so.
    let page: Value = app.get("/v1/voices?limit=7", Some(&key)).await.json().await.unwrap();
    assert_eq!((page["data"].as_array().unwrap().len(), &page["hasMore"]), (7, &json!(false)));

    assert_eq!(paths(app.get("/v1/voices?limit=0", Some(&key)).await).await, [json!(["limit"])]);
    assert_eq!(paths(app.get("/v1/voices?limit=201", Some(&key)).await).await, [json!(["limit"])]);
    assert_eq!(paths(app.get("/v1/voices?limit=many", Some(&key)).await).await, [json!(["limit"])]);
    assert_eq!(paths(app.get("/v1/voices?cursor=garbage", Some(&key)).await).await, [json!(["cursor"])]);
    let (status, body) = problem(app.get("/v1/voices?page=2", Some(&key)).await).await;
    assert_eq!(status, 400);
    assert!(body["validation"][0]["message"].as_str().unwrap().contains("page"), "{body}");
    app.stop().await;
}

async fn duplicate_titles_conflict(db: Db) {
    let app = TestApp::spawn(db).await;
    let key = voices_key(&app).await;
    create(&app, &key, narrator()).await;
    let mut same = narrator();
    same["title"] = json!("Narrator");
    let (status, body) = problem(send(&app, Method::POST, "/v1/voices", &key, Some(same.clone())).await).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("conflict")));
    assert!(body["detail"].as_str().unwrap().contains("title"), "{body}");

    let other = voices_key(&app).await;
    create(&app, &other, same).await;

    let host = create(&app, &key, json!({"title": "Host", "provider": "openai", "voiceId": "echo"})).await;
    let path = format!("/v1/voices/{}", host["id"].as_str().unwrap());
    let (status, body) =
        problem(send(&app, Method::PATCH, &path, &key, Some(json!({"title": " Narrator"}))).await).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("conflict")));
    let unchanged: Value = app.get(&path, Some(&key)).await.json().await.unwrap();
    assert_eq!(unchanged, host, "a refused patch changes nothing");
    let response = send(&app, Method::PATCH, &path, &key, Some(json!({"title": "Host", "voiceId": "fable"}))).await;
    assert_eq!(response.status(), 200, "a voice may keep its own title");
    app.stop().await;
}

async fn voices_are_private_to_their_key(db: Db) {
    let app = TestApp::spawn(db).await;
    let owner = voices_key(&app).await;
    let stranger = voices_key(&app).await;
    let voice = create(&app, &owner, narrator()).await;
    let path = format!("/v1/voices/{}", voice["id"].as_str().unwrap());

    let attempts = [
        send(&app, Method::GET, &path, &stranger, None).await,
        send(&app, Method::PATCH, &path, &stranger, Some(json!({"title": "Mine now"}))).await,
        send(&app, Method::DELETE, &path, &stranger, None).await,
        send(&app, Method::GET, "/v1/voices/0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", &owner, None).await,
        send(&app, Method::PATCH, "/v1/voices/unknown", &owner, Some(json!({"title": "x"}))).await,
        send(&app, Method::DELETE, "/v1/voices/unknown", &owner, None).await,
    ];
    for response in attempts {
        let (status, body) = problem(response).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{body}");
    }
    let listed: Value = app.get("/v1/voices", Some(&stranger)).await.json().await.unwrap();
    assert_eq!(listed["data"], json!([]));
    let still: Value = app.get(&path, Some(&owner)).await.json().await.unwrap();
    assert_eq!(still, voice, "the stranger changed nothing");
    app.stop().await;
}

async fn voices_need_the_voices_scope(db: Db) {
    let app = TestApp::spawn(db).await;
    let (_, speech) = app.create_key(json!({"name": "x", "scopes": ["speech"]})).await;
    let id_path = "/v1/voices/0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    let routes = [
        (Method::GET, "/v1/voices", None),
        (Method::POST, "/v1/voices", Some(narrator())),
        (Method::GET, id_path, None),
        (Method::PATCH, id_path, Some(json!({"title": "x"}))),
        (Method::DELETE, id_path, None),
    ];
    for (method, path, body) in routes {
        let (status, problem_body) = problem(send(&app, method.clone(), path, &speech, body.clone()).await).await;
        assert_eq!((status, problem_body["code"].as_str()), (403, Some("insufficient_scope")), "{method} {path}");
        assert!(problem_body["detail"].as_str().unwrap().contains("voices"));
        let (status, _) = problem(send(&app, method.clone(), path, ADMIN_TOKEN, body.clone()).await).await;
        assert_eq!(status, 401, "{method} {path}: the admin token is not a gateway key");
        let mut anonymous = app.client.request(method.clone(), app.url(path));
        if let Some(body) = body {
            anonymous = anonymous.json(&body);
        }
        let (status, _) = problem(anonymous.send().await.unwrap()).await;
        assert_eq!(status, 401, "{method} {path}: no credential");
    }
    let default_key = app.speech_key().await.1;
    assert_eq!(app.get("/v1/voices", Some(&default_key)).await.status(), 200, "new keys get `voices` by default");
    app.stop().await;
}

async fn invalid_voices_are_refused_with_field_paths(db: Db) {
    let app = TestApp::spawn(db).await;
    let key = voices_key(&app).await;
    let post = |body: Value| send(&app, Method::POST, "/v1/voices", &key, Some(body));
    let with = |changes: Value| {
        let mut body = narrator();
        for (field, value) in changes.as_object().unwrap() {
            body[field] = value.clone();
        }
        body
    };

    assert_eq!(paths(post(with(json!({"tags": ["a", "b", "c", " "]}))).await).await, [json!(["tags", 3])]);
    assert_eq!(paths(post(with(json!({"title": "   "}))).await).await, [json!(["title"])]);
    assert_eq!(paths(post(with(json!({"title": "t".repeat(201)}))).await).await, [json!(["title"])]);
    assert_eq!(paths(post(with(json!({"providerOptions": "fast"}))).await).await, [json!(["providerOptions"])]);
    assert_eq!(paths(post(with(json!({"providerOptions": [1]}))).await).await, [json!(["providerOptions"])]);
    assert_eq!(paths(post(with(json!({"gender": "robot"}))).await).await, [json!(["gender"])]);
    assert_eq!(paths(post(with(json!({"tags": ["ok", 7]}))).await).await, [json!(["tags", 1])]);

    let (status, body) = problem(post(with(json!({"colour": "blue"}))).await).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("validation_failed")));
    assert!(body["validation"][0]["message"].as_str().unwrap().contains("colour"), "{body}");

    // Every problem at once, in field order.
    let everything = with(json!({
        "title": "",
        "provider": "Open AI",
        "model": "m".repeat(257),
        "voiceId": "",
        "tags": vec!["t"; 33],
        "description": "d".repeat(2001),
        "providerOptions": 1
    }));
    assert_eq!(
        paths(post(everything).await).await,
        ["title", "provider", "model", "voiceId", "tags", "description", "providerOptions"].map(|f| json!([f]))
    );
    let listed: Value = app.get("/v1/voices", Some(&key)).await.json().await.unwrap();
    assert_eq!(listed["data"], json!([]), "nothing invalid was stored");

    let voice = create(&app, &key, narrator()).await;
    let path = format!("/v1/voices/{}", voice["id"].as_str().unwrap());
    let patch = |body: Value| send(&app, Method::PATCH, &path, &key, Some(body));
    assert_eq!(
        paths(patch(json!({"title": null, "provider": null, "voiceId": null})).await).await,
        [json!(["title"]), json!(["provider"]), json!(["voiceId"])]
    );
    assert_eq!(paths(patch(json!({"tags": ["ok", ""]})).await).await, [json!(["tags", 1])]);
    assert_eq!(paths(patch(json!({"providerOptions": 5})).await).await, [json!(["providerOptions"])]);
    assert_eq!(paths(patch(json!({"gender": "robot"})).await).await, [json!(["gender"])]);
    assert_eq!(paths(patch(json!({"provider": "a/b"})).await).await, [json!(["provider"])]);
    let (status, body) = problem(patch(json!({"owner": "someone"})).await).await;
    assert_eq!(status, 400);
    assert!(body["validation"][0]["message"].as_str().unwrap().contains("owner"), "{body}");
    let unchanged: Value = app.get(&path, Some(&key)).await.json().await.unwrap();
    assert_eq!(unchanged, voice, "refused patches change nothing");
    app.stop().await;
}

async fn patch_null_clears_and_absent_keeps(db: Db) {
    let app = TestApp::spawn(db).await;
    let key = voices_key(&app).await;
    let voice = create(&app, &key, narrator()).await;
    let path = format!("/v1/voices/{}", voice["id"].as_str().unwrap());

    let response = send(&app, Method::PATCH, &path, &key, Some(json!({"description": null}))).await;
    assert_eq!(response.status(), 200);
    let cleared: Value = response.json().await.unwrap();
    assert_eq!(cleared["description"], Value::Null);
    for field in ["title", "provider", "model", "voiceId", "tags", "gender", "providerOptions"] {
        assert_eq!(cleared[field], voice[field], "{field} is unchanged");
    }

    let nulls = json!({"model": null, "gender": null, "tags": null, "providerOptions": null});
    let response = send(&app, Method::PATCH, &path, &key, Some(nulls)).await;
    assert_eq!(response.status(), 200);
    let cleared: Value = response.json().await.unwrap();
    assert_eq!(
        (&cleared["model"], &cleared["gender"], &cleared["tags"], &cleared["providerOptions"]),
        (&Value::Null, &Value::Null, &json!([]), &json!({}))
    );
    assert_eq!((&cleared["title"], &cleared["voiceId"]), (&voice["title"], &voice["voiceId"]));

    let response = send(&app, Method::PATCH, &path, &key, Some(json!({}))).await;
    assert_eq!(response.status(), 200, "an empty patch is allowed");
    let same: Value = response.json().await.unwrap();
    assert_eq!(same["description"], Value::Null);
    assert_eq!(same["title"], voice["title"]);
    app.stop().await;
}

both_databases!(
    voices_crud,
    voices_paginate_newest_first,
    duplicate_titles_conflict,
    voices_are_private_to_their_key,
    voices_need_the_voices_scope,
    invalid_voices_are_refused_with_field_paths,
    patch_null_clears_and_absent_keeps,
);
