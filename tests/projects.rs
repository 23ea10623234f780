//! Projects over real sockets, on SQLite and on PostgreSQL: the admin API, keys made for a
//! project, voices that outlive the key that saved them, hostile reads of another project's
//! voices and jobs, and the migration that gives every existing key its project.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use common::{problem, Db, TestApp, ADMIN_TOKEN};
use reqwest::{Method, Response};
use serde_json::{json, Value};
use wiremock::{
    matchers::{header, method, path},
    Mock, MockServer, ResponseTemplate,
};

async fn send(app: &TestApp, method: Method, path: &str, key: &str, body: Option<Value>) -> Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn admin_get(app: &TestApp, path: &str) -> Response {
    send(app, Method::GET, path, ADMIN_TOKEN, None).await
}

async fn create_project(app: &TestApp, name: &str) -> String {
    let response = app.admin_post("/admin/v1/projects", json!({"name": name})).await;
    assert_eq!(response.status(), 201);
    let project: Value = response.json().await.unwrap();
    project["id"].as_str().unwrap().to_owned()
}

/// A fake OpenAI that answers speech for the operator's key only.
async fn openai() -> MockServer {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/audio/speech"))
        .and(header("authorization", "Bearer operator-key"))
        .respond_with(
            ResponseTemplate::new(200).insert_header("content-type", "audio/mpeg").set_body_bytes(b"mp3".to_vec()),
        )
        .mount(&upstream)
        .await;
    upstream
}

async fn projects_admin_api(db: Db) {
    let app = TestApp::spawn(db).await;
    let id = create_project(&app, "  Podcasts ").await;
    assert!(id.starts_with("prj_"), "{id}");
    let project: Value = admin_get(&app, &format!("/admin/v1/projects/{id}")).await.json().await.unwrap();
    assert_eq!((project["id"].as_str(), project["name"].as_str()), (Some(id.as_str()), Some("Podcasts")));
    assert!(project["createdAt"].is_string());

    // Keys made for the project, and one made without: that one gets a project of its own.
    let (in_project, _) = app.create_key(json!({"name": "a", "projectId": id})).await;
    let (also_in, _) = app.create_key(json!({"name": "b", "projectId": id})).await;
    let response = app.admin_post("/admin/v1/keys", json!({"name": "solo"})).await;
    let solo: Value = response.json().await.unwrap();
    let solo_project = solo["projectId"].as_str().unwrap();
    assert!(solo_project.starts_with("prj_") && solo_project != id, "{solo}");
    let own: Value = admin_get(&app, &format!("/admin/v1/projects/{solo_project}")).await.json().await.unwrap();
    assert_eq!(own["name"], "solo", "named after its key");

    let keys: Value = admin_get(&app, &format!("/admin/v1/projects/{id}/keys")).await.json().await.unwrap();
    let ids: Vec<&str> = keys["data"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&in_project.as_str()) && ids.contains(&also_in.as_str()));
    assert!(keys["data"].as_array().unwrap().iter().all(|k| k["projectId"] == id.as_str() && k.get("key").is_none()));
    let listed: Value = admin_get(&app, "/admin/v1/projects").await.json().await.unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    let key: Value = admin_get(&app, &format!("/admin/v1/keys/{in_project}")).await.json().await.unwrap();
    assert_eq!(key["projectId"], id.as_str());

    // Unknown and hostile project ids: problem+json, never a 500.
    let long = "p".repeat(5000);
    let hostile = ["prj_missing", "..%2F..%2Fadmin%2Fv1%2Fkeys", "%C3%A9t%C3%A9", long.as_str(), "%00"];
    for bad in hostile {
        for route in [format!("/admin/v1/projects/{bad}"), format!("/admin/v1/projects/{bad}/keys")] {
            let (status, body) = problem(admin_get(&app, &route).await).await;
            // A control character is refused for every route before any lookup.
            assert_eq!(status, if bad == "%00" { 400 } else { 404 }, "{route}: {body}");
            assert!(body["detail"].as_str().unwrap().len() < 300, "the id is not echoed at length: {body}");
        }
    }
    let response = app.admin_post("/admin/v1/keys", json!({"name": "x", "projectId": "prj_missing"})).await;
    let (status, body) = problem(response).await;
    assert_eq!((status, &body["validation"][0]["path"]), (400, &json!(["projectId"])), "{body}");
    for name in [json!(""), json!("x".repeat(201)), json!("a\u{1b}[2J"), json!(5)] {
        let (status, body) = problem(app.admin_post("/admin/v1/projects", json!({"name": name})).await).await;
        assert_eq!(status, 400, "{body}");
    }
    let (status, _) = problem(app.admin_post("/admin/v1/projects", json!({"name": "x", "owner": "y"})).await).await;
    assert_eq!(status, 400, "unknown members are refused");
    // Only the admin: a project's own key cannot list projects.
    let (_, key) = app.create_key(json!({"name": "c", "projectId": id})).await;
    let (status, _) = problem(send(&app, Method::GET, "/admin/v1/projects", &key, None).await).await;
    assert_eq!(status, 403);
    app.stop().await;
}

/// The reason projects exist: a key is revoked, and a new key of its project still has its
/// voices (and can speak with them); usage names both the key and the project.
async fn voices_outlive_a_revoked_key(db: Db) {
    let upstream = openai().await;
    let app = TestApp::with_openai(db, &upstream.uri(), "operator-key").await;
    let project = create_project(&app, "studio").await;
    let (old_id, old_key) = app.create_key(json!({"name": "old", "projectId": project})).await;
    let body = json!({"title": "Narrator", "provider": "openai", "model": "tts-1", "voiceId": "onyx"});
    let response = send(&app, Method::POST, "/v1/voices", &old_key, Some(body)).await;
    assert_eq!(response.status(), 201);
    let voice: Value = response.json().await.unwrap();
    let voice_path = format!("/v1/voices/{}", voice["id"].as_str().unwrap());

    let revoked = send(&app, Method::DELETE, &format!("/admin/v1/keys/{old_id}"), ADMIN_TOKEN, None).await;
    assert_eq!(revoked.status(), 204);
    assert_eq!(app.get("/v1/voices", Some(&old_key)).await.status(), 401, "the old key is gone");

    let (new_id, new_key) = app.create_key(json!({"name": "new", "projectId": project})).await;
    let listed: Value = app.get("/v1/voices", Some(&new_key)).await.json().await.unwrap();
    assert_eq!(listed["data"], json!([voice.clone()]));
    let read: Value = app.get(&voice_path, Some(&new_key)).await.json().await.unwrap();
    assert_eq!(read, voice);
    let speech = json!({"voiceId": voice["id"], "text": "Still here.", "output": "mp3"});
    let response = send(&app, Method::POST, "/v1/audio/speech", &new_key, Some(speech)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"mp3");
    // A key of another project does not see it.
    let (_, stranger) = app.speech_key().await;
    let listed: Value = app.get("/v1/voices", Some(&stranger)).await.json().await.unwrap();
    assert_eq!(listed["data"], json!([]));

    let usage = app.stop_and_read_usage(Some(&new_id)).await;
    let speech: Vec<_> = usage.iter().filter(|r| r.event.route == "/v1/audio/speech").collect();
    assert_eq!(speech.len(), 1);
    assert_eq!(speech[0].event.key_id.as_deref(), Some(new_id.as_str()));
    assert_eq!(speech[0].event.project_id.as_deref(), Some(project.as_str()));
    assert!(usage.iter().all(|r| r.event.project_id.as_deref() == Some(project.as_str())));
}

/// A key of project A holding the id of project B's voice can neither read, change, delete
/// nor speak with it, on any route that takes a saved voice id; B's voice and jobs are intact.
async fn another_projects_voice_is_never_reachable(db: Db) {
    let upstream = openai().await;
    let app = TestApp::spawn_with(db, {
        let base_url = format!("{}/v1", upstream.uri());
        move |c| {
            c.providers.local.enabled = false;
            c.providers.openai = speechgate::config::VendorConfig {
                api_key: Some("operator-key".into()),
                base_url: Some(base_url),
                ..Default::default()
            };
            c.facades.playht.default_model = Some("openai/tts-1".into());
        }
    })
    .await;
    let victim_project = create_project(&app, "victim").await;
    let (_, victim) = app.create_key(json!({"name": "v", "projectId": victim_project})).await;
    let (_, attacker) = app.speech_key().await;
    // The victim's voice names a vendor voice the attacker's requests never mention.
    let body = json!({"title": "Private", "provider": "openai", "model": "tts-1", "voiceId": "sage-private"});
    let voice: Value = send(&app, Method::POST, "/v1/voices", &victim, Some(body)).await.json().await.unwrap();
    let id = voice["id"].as_str().unwrap().to_owned();
    let voice_path = format!("/v1/voices/{id}");

    for (verb, body) in [(Method::GET, None), (Method::PATCH, Some(json!({"title": "Mine"}))), (Method::DELETE, None)] {
        let (status, body) = problem(send(&app, verb.clone(), &voice_path, &attacker, body).await).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{verb}: {body}");
    }
    let speech = json!({"voiceId": id, "text": "Borrowed.", "output": "mp3"});
    let (status, body) = problem(send(&app, Method::POST, "/v1/audio/speech", &attacker, Some(speech)).await).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("voice_not_found")), "{body}");
    let turns = json!({"turns": [{"voiceId": id, "text": "One."}], "output": "mp3"});
    let (status, _) = problem(send(&app, Method::POST, "/v1/audio/conversation", &attacker, Some(turns)).await).await;
    assert_eq!(status, 404);
    // The drop-ins take voice ids in URLs and bodies: a foreign saved voice is just an unknown
    // voice there (whatever the route then answers, the victim's vendor voice is never used).
    let routes = [
        (format!("/elevenlabs/v1/text-to-speech/{id}"), json!({"text": "Borrowed."})),
        (format!("/elevenlabs/v1/text-to-speech/{id}/stream"), json!({"text": "Borrowed."})),
        ("/playht/api/v2/tts/stream".to_owned(), json!({"text": "Borrowed.", "voice": id, "output_format": "mp3"})),
        ("/openai/v1/audio/speech".to_owned(), json!({"model": "tts-1", "input": "Borrowed.", "voice": id})),
    ];
    for (route, body) in routes {
        let response = send(&app, Method::POST, &route, &attacker, Some(body)).await;
        assert!(response.status().as_u16() < 500, "{route}: {}", response.status());
    }
    // Nor do the drop-ins' voice lists and lookups show it.
    for route in
        [format!("/elevenlabs/v1/voices/{id}"), "/elevenlabs/v1/voices".to_owned(), "/playht/api/v2/voices".to_owned()]
    {
        let response = send(&app, Method::GET, &route, &attacker, None).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.as_u16() < 500, "{route}: {status}");
        assert!(
            !text.contains("sage-private") && !text.contains("Private"),
            "{route} shows the victim's voice: {text}"
        );
        // The lookup by id is a 404 (echoing the id asked for); the lists do not have it.
        assert!(if route.ends_with(&id) { status == 404 } else { !text.contains(&id) }, "{route}: {status} {text}");
    }
    let listed = send(&app, Method::GET, "/elevenlabs/v1/voices", &victim, None).await.text().await.unwrap();
    assert!(listed.contains(&id), "the owner's own list has it: {listed}");
    let reached = upstream.received_requests().await.unwrap();
    assert!(
        reached.iter().all(|r| !String::from_utf8_lossy(&r.body).contains("sage-private")),
        "the victim's vendor voice was used for the attacker"
    );
    let still: Value = app.get(&voice_path, Some(&victim)).await.json().await.unwrap();
    assert_eq!(still, voice, "nothing changed");
    app.stop().await;
}

/// PlayHT jobs belong to the project too: another project's key cannot read one by id.
async fn jobs_belong_to_the_project(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.facades.playht.default_model = Some("local".into())).await;
    let project = create_project(&app, "jobs").await;
    let (_, maker) = app.create_key(json!({"name": "m", "projectId": project})).await;
    let (_, colleague) = app.create_key(json!({"name": "c", "projectId": project})).await;
    let (_, stranger) = app.speech_key().await;
    let body = json!({"text": "A job.", "voice": "en-us", "output_format": "mp3"});
    let response = send(&app, Method::POST, "/playht/api/v2/tts", &maker, Some(body)).await;
    assert!(response.status().is_success(), "{}", response.status());
    let job: Value = response.json().await.unwrap();
    let job_path = format!("/playht/api/v2/tts/{}", job["id"].as_str().unwrap());
    assert_eq!(send(&app, Method::GET, &job_path, &colleague, None).await.status(), 200);
    let response = send(&app, Method::GET, &job_path, &stranger, None).await;
    assert_eq!(response.status(), 404);
    app.stop().await;
}

/// The schema before projects, populated as a deployment would have it, then migrated: every
/// key gets a project of its own, voices and jobs follow their key (two keys' voices of one
/// title included), usage gains the key's project, and nothing becomes visible to another key.
async fn migration_gives_every_key_its_project(db: Db) {
    use speechgate::domain::{LogPage, VoicePage};
    let test_db = common::test_db(db).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(if db == Db::Sqlite {
        "migrations/sqlite"
    } else {
        "migrations/postgres"
    });
    let mut before = sqlx::migrate::Migrator::new(dir).await.unwrap();
    before.migrations = before.migrations.iter().filter(|m| m.version < 7).cloned().collect::<Vec<_>>().into();
    // Rows as the previous schema holds them (times are milliseconds; hashes are 32 bytes).
    let rows = [
        "INSERT INTO api_keys (id, name, scopes, secret_sha256, created_at) VALUES ('alice0000000', 'alice', 'speech,voices', $1, 1700000000000)",
        "INSERT INTO api_keys (id, name, scopes, secret_sha256, created_at, revoked_at) VALUES ('bob000000000', 'bob', 'speech,voices', $1, 1700000001000, 1700000002000)",
        "INSERT INTO voices (id, owner_key_id, title, provider, voice_id, created_at, updated_at) VALUES ('0193a1b2-0000-7000-8000-00000000000a', 'alice0000000', 'Narrator', 'openai', 'alloy', 1700000003000, 1700000003000)",
        "INSERT INTO voices (id, owner_key_id, title, provider, voice_id, created_at, updated_at) VALUES ('0193a1b2-0000-7000-8000-00000000000b', 'bob000000000', 'Narrator', 'openai', 'onyx', 1700000004000, 1700000004000)",
        "INSERT INTO tts_jobs (id, owner_key_id, request, media_type, duration_ms, audio, created_at) VALUES ('job-alice', 'alice0000000', '{}', 'audio/mpeg', 10, $1, 1700000005000)",
        "INSERT INTO usage_events (request_id, key_id, route, method, status, latency_ms, created_at) VALUES ('r-alice', 'alice0000000', '/v1/audio/speech', 'POST', 200, 5, 1700000006000)",
        "INSERT INTO usage_events (request_id, key_id, route, method, status, latency_ms, created_at) VALUES ('r-bob', 'bob000000000', '/v1/audio/speech', 'POST', 200, 5, 1700000007000)",
        "INSERT INTO usage_events (request_id, key_id, route, method, status, latency_ms, created_at) VALUES ('r-anonymous', NULL, '/v1/audio/speech', 'POST', 401, 1, 1700000008000)",
    ];
    // The statements with `$1` bind these 32 bytes (a key hash, a job's audio).
    let hash = vec![7u8; 32];
    match db {
        Db::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&format!("{}?mode=rwc", test_db.url)).await.unwrap();
            before.run(&pool).await.unwrap();
            for row in rows {
                let query = sqlx::query(row);
                let query = if row.contains("$1") { query.bind(hash.clone()) } else { query };
                query.execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(&test_db.url).await.unwrap();
            before.run(&pool).await.unwrap();
            for row in rows {
                let query = sqlx::query(row);
                let query = if row.contains("$1") { query.bind(hash.clone()) } else { query };
                query.execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
    }

    let store = speechgate::store::connect(&test_db.url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let alice = store.get_key("alice0000000").await.unwrap().unwrap();
    let bob = store.get_key("bob000000000").await.unwrap().unwrap();
    assert_ne!(alice.project_id, bob.project_id);
    let projects = store.list_projects().await.unwrap();
    assert_eq!(projects.len(), 2);
    let alices = projects.iter().find(|p| p.id == alice.project_id).unwrap();
    assert_eq!((alices.name.as_str(), alices.created_at.timestamp_millis()), ("alice", 1_700_000_000_000));
    assert!(bob.revoked_at.is_some(), "a revoked key keeps its state and gets a project all the same");

    let page = VoicePage { after: None, limit: 10 };
    let alices_voices = store.list_voices(&alice.project_id, &page).await.unwrap();
    assert_eq!(alices_voices.iter().map(|v| v.voice_id.as_str()).collect::<Vec<_>>(), ["alloy"]);
    let bobs_voices = store.list_voices(&bob.project_id, &page).await.unwrap();
    assert_eq!(bobs_voices.iter().map(|v| v.voice_id.as_str()).collect::<Vec<_>>(), ["onyx"]);
    assert!(store.get_voice(&alice.project_id, "0193a1b2-0000-7000-8000-00000000000b").await.unwrap().is_none());
    let job = store.get_job(&alice.project_id, "job-alice", true).await.unwrap().unwrap();
    assert_eq!(job.audio, Some(hash.clone()));
    assert!(store.get_job(&bob.project_id, "job-alice", false).await.unwrap().is_none());

    let usage = store.list_usage(None, LogPage { before: None, limit: 10 }).await.unwrap();
    let project_of =
        |request: &str| usage.iter().find(|r| r.event.request_id == request).and_then(|r| r.event.project_id.clone());
    assert_eq!(project_of("r-alice"), Some(alice.project_id.clone()));
    assert_eq!(project_of("r-bob"), Some(bob.project_id.clone()));
    assert_eq!(project_of("r-anonymous"), None);

    // After the upgrade: a new key for alice's project (a rotation) sees her voice, and titles
    // are unique per project.
    let rotated = speechgate::service::keys::create(
        store.as_ref(),
        speechgate::service::keys::CreateKey {
            name: "alice rotated".into(),
            project_id: Some(alice.project_id.clone()),
            scopes: vec![speechgate::domain::Scope::Voices],
            expires_at: None,
            limits: Default::default(),
            moderation_exempt: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(store.list_voices(&rotated.key.project_id, &page).await.unwrap(), alices_voices);
    let mut copy = alices_voices[0].clone();
    copy.id = "0193a1b2-0000-7000-8000-00000000000c".into();
    let conflict = store.insert_voice(&alice.project_id, &copy).await;
    assert!(matches!(conflict, Err(speechgate::store::StoreError::Conflict("title"))), "{conflict:?}");
    store.close().await;
}

both_databases!(
    migration_gives_every_key_its_project,
    projects_admin_api,
    voices_outlive_a_revoked_key,
    another_projects_voice_is_never_reachable,
    jobs_belong_to_the_project,
);
