//! PlayHT and Play.ai code keeps working after the vendor's shutdown: the official `pyht` SDK
//! (from PyPI, installed by the test script) over HTTP and WebSocket, Play3.0-mini and
//! PlayDialog, and the raw REST and WebSocket API, served by the offline `local` voice through
//! `[facades.playht]` mappings. Signed URL tokens are refused when tampered with or expired, and
//! an open socket closes when its key is revoked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use common::{Db, TestApp, ADMIN_TOKEN};
use serde_json::Value;

const VOICE: &str = "s3://voice-cloning-zero-shot/d9ff78ba/original/manifest.json";
const VOICE2: &str = "s3://voice-cloning-zero-shot/4c627545/female-cs/manifest.json";

/// The gateway with the local voice and PlayHT's two voice ids mapped to two local voices.
async fn gateway(db: Db) -> (TestApp, String) {
    let app = TestApp::spawn_with(db, |c| {
        c.facades.playht.voices.insert(VOICE.into(), "local:en-us".into());
        c.facades.playht.voices.insert(VOICE2.into(), "local:en-gb".into());
    })
    .await;
    let (_, key) = app.speech_key().await;
    (app, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyht_and_the_raw_api_are_served_by_the_local_voice() {
    let python = std::env::var("SPEECHGATE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("{}", common::needs("SPEECHGATE_TEST_PYTHON: a Python with the official `pyht` SDK"))
    });
    let (app, key) = gateway(Db::Sqlite).await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/playht/drive.py");
    let gateway = format!("http://{}", app.addr);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .env("GATEWAY", gateway)
            .env("KEY", key)
            .env("USER", "user-1")
            .env("VOICE", VOICE)
            .env("VOICE2", VOICE2)
            .env("CALL_TIMEOUT", "30")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "drive.py failed: {}", String::from_utf8_lossy(&output.stderr));
    let result: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
    assert_eq!(result["unexpected"], serde_json::json!([]), "{result:#}");

    let sdk = &result["sdk"];
    // The lease: PlayHT's epoch, an hour, the gateway as inference address.
    assert!(sdk["connect"]["lease"]["created_skew_s"].as_i64().unwrap().abs() <= 5, "{result}");
    assert!(sdk["connect"]["lease"]["duration_s"].as_i64().unwrap() > 3000, "{result}");
    let mp3 =
        |entry: &Value| entry["bytes"].as_u64().unwrap() > 1000 && entry["head"].as_str().unwrap().starts_with("fff");
    let wav = |entry: &Value| {
        entry["bytes"].as_u64().unwrap() > 1000 && entry["head"].as_str().unwrap().starts_with("52494646")
    };
    for name in
        ["http_mini_mp3", "http_mini_text_list", "http_mini_nonstreaming", "http_dialog_two_speakers", "ws_mini_1"]
    {
        assert!(mp3(&sdk[name]), "{name}: {}", sdk[name]);
    }
    assert!(wav(&sdk["http_mini_wav"]), "{}", sdk["http_mini_wav"]);
    assert!(wav(&sdk["ws_mini_2"]), "{}", sdk["ws_mini_2"]);
    // Two speakers take longer than one of them alone.
    assert!(sdk["http_dialog_two_speakers"]["bytes"].as_u64() > sdk["http_mini_text_list"]["bytes"].as_u64());
    // One socket served every engine, and the counters agree.
    assert_eq!(sdk["ws_socket"]["reused"], true, "{result}");
    assert_eq!(sdk["ws_socket"]["requests_sent"], sdk["ws_socket"]["responses_received"], "{result}");
    assert!(sdk["error_wrong_key"]["error"]["message"].as_str().unwrap().contains("401"), "{result}");
    assert!(sdk["http_empty_text"]["error"]["message"].as_str().unwrap().contains("HTTP 400"), "{result}");

    let raw = &result["raw"];
    assert_eq!(raw["v2_stream_raw_key"]["status"], 200);
    assert_eq!(raw["v2_stream_wrong_key"]["status"], 401);
    assert!(raw["v2_stream_wrong_key"]["json"]["error_message"].is_string(), "{result}");
    assert_eq!(raw["playai_v1_stream_dialog"]["status"], 200);
    assert_eq!(raw["v2_voices"]["is_array"], true);
    let order = |name: &str| raw[name]["order"].clone();
    assert_eq!(order("ws_pipelined_mini"), serde_json::json!(["start:req-A", "end:req-A", "start:null", "end:null"]));
    assert_eq!(order("ws_v4_dialog"), serde_json::json!(["start:dialog-1", "end:dialog-1"]));
    assert!(wav(&raw["ws_v4_dialog"]["audio"]["dialog-1"]), "{result}");
    // The job API: created (201), read back as JSON, then as the MP3 it describes.
    let job = &raw["v2_job"];
    assert_eq!(job["create"]["status"], 201, "{result}");
    assert_eq!(job["get_json"]["status"], 200, "{result}");
    assert!(job["get_json"]["keys"].as_array().unwrap().contains(&serde_json::json!("input")), "{result}");
    assert_eq!(job["get_audio"]["status"], 200, "{result}");
    assert_eq!(job["get_audio"]["content_type"], "audio/mpeg", "{result}");
    assert!(job["get_audio"]["head"].as_str().unwrap().starts_with("fff"), "{result}");
    assert_eq!(job["get_audio"]["bytes"], job["get_json"]["output"]["size"], "{result}");

    // Every WebSocket command is metered on its own, with the voice that served it.
    let usage = app.stop_and_read_usage(None).await;
    let commands: Vec<_> = usage.iter().filter(|u| u.event.method == "WS").collect();
    assert!(commands.len() >= 9, "{} WebSocket commands metered", commands.len());
    assert!(commands.iter().filter(|u| u.event.status == 200).all(|u| u.event.provider.as_deref() == Some("local")));
}

/// A URL token is the credential of the inference URLs: tampered, expired or foreign tokens are
/// refused before the WebSocket handshake completes, in PlayHT's error shape.
#[tokio::test]
async fn bad_tokens_are_refused_at_the_handshake() {
    let (app, key) = gateway(Db::Sqlite).await;
    let coordinates: Value = app
        .client
        .post(app.url("/playht/api/v4/sdk-auth"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = coordinates["Play3.0-mini"]["websocket_url"].as_str().unwrap().replacen("ws://", "http://", 1);
    let (base, token) = url.split_once("?token=").unwrap();
    let (payload, signature) = token.rsplit_once('.').unwrap();
    let (head, expiry) = payload.rsplit_once('.').unwrap();
    let later = format!("{head}.{}.{signature}", expiry.parse::<i64>().unwrap() + 3600);
    // The same key's token for the unified WebSocket does not open PlayHT's.
    let socket_auth: Value =
        app.client.post(app.url("/v1/websocket-auth")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    let socket_url = socket_auth["webSocketUrls"]["local/espeak-ng"].as_str().unwrap();
    let other_purpose = socket_url.split("token=").nth(1).unwrap().to_owned();
    let flipped = format!("{payload}.{}{}", if signature.starts_with('0') { "1" } else { "0" }, &signature[1..]);
    let handshake = |token: String| {
        app.client
            .get(format!("{base}?token={token}"))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send()
    };
    assert_eq!(handshake(token.to_owned()).await.unwrap().status(), 101);
    for bad in [later, flipped, other_purpose, "nonsense".to_owned(), String::new()] {
        let response = handshake(bad.clone()).await.unwrap();
        assert_eq!(response.status(), 401, "{bad:?}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error_message"].is_string(), "{body}");
    }
    // A token is no key: it does not open the key's other routes.
    let response = app.client.get(app.url(&format!("/v1/usage?token={token}"))).send().await.unwrap();
    assert_eq!(response.status(), 401);
    app.stop().await;
}

/// Revoking the key closes its open sockets (policy violation), and its tokens stop working.
#[tokio::test]
async fn revoking_the_key_closes_its_sockets() {
    let (app, _) = gateway(Db::Sqlite).await;
    let (key_id, key) = app.speech_key().await;
    let auth: Value = app
        .client
        .post(app.url("/playai/api/v1/tts/websocket-auth"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = auth["webSocketUrls"]["Play3.0-mini"].as_str().unwrap().to_owned();
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let revoked = app.client.delete(app.url(&format!("/admin/v1/keys/{key_id}"))).bearer_auth(ADMIN_TOKEN).send().await;
    assert!(revoked.unwrap().status().is_success());
    use futures::StreamExt;
    let closed = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        while let Some(message) = socket.next().await {
            if let Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame))) = message {
                return Some(u16::from(frame.code));
            }
        }
        None
    })
    .await
    .expect("the socket stayed open after its key was revoked");
    assert_eq!(closed, Some(1008));
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("a revoked key's token: {other:?}"),
    }
    app.stop().await;
}
