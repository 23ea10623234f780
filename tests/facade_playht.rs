//! The PlayHT drop-in against hostile input, without an SDK: scripts made to cost, hosts made to
//! redirect, sockets beyond the limit, commands with NUL — each a clear 4xx or a refusal in the
//! protocol, never a 5xx or a hang.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use common::{Db, TestApp};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

async fn gateway(tweak: impl FnOnce(&mut speechgate::config::Config)) -> (TestApp, String) {
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.facades.playht.default_model = Some("local".into());
        tweak(c);
    })
    .await;
    let (_, key) = app.speech_key().await;
    (app, key)
}

/// A two-speaker script with a prefix every few characters is refused by its size and turn
/// count before anything is split into turns or routed.
#[tokio::test]
async fn costly_dialogue_scripts_are_refused_early() {
    let (app, key) = gateway(|c| c.server.max_body_bytes = 4 * 1024 * 1024).await;
    let stream = app.url("/playai/api/v1/tts/stream");
    let script = |text: String| json!({"model": "PlayDialog", "text": text, "voice": "en-us", "voice2": "en-gb", "turnPrefix": "A", "turnPrefix2": "B"});
    let cases = [("AxBx".repeat(250_000), "at most 20000 characters"), ("AxBx".repeat(60), "more than 100 turns")];
    for (text, message) in cases {
        let response = app.client.post(&stream).bearer_auth(&key).json(&script(text)).send().await.unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert!(body["error_message"].as_str().unwrap().contains(message), "{body}");
        assert_eq!(body["error_id"], "validation_failed");
    }
    app.stop().await;
}

/// The URLs handed to a client are built from a `Host` only when it is a plain authority.
#[tokio::test]
async fn handed_out_urls_ignore_hostile_hosts() {
    let (app, key) = gateway(|_| {}).await;
    for (host, expected) in
        [("evil.example@gateway:1", "http://localhost/"), ("gateway.internal:8080", "http://gateway.internal:8080/")]
    {
        let response = app
            .client
            .post(app.url("/playht/api/v4/sdk-auth"))
            .bearer_auth(&key)
            .header("host", host)
            .header("x-forwarded-proto", "https")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let url = body["Play3.0-mini"]["http_streaming_url"].as_str().unwrap();
        assert!(url.starts_with(expected), "{host}: {url}");
    }
    app.stop().await;
}

/// Sockets beyond `server.max_websockets` are refused with 503 at the handshake; a command with
/// NUL is answered with a validation error in the protocol, and the socket goes on.
#[tokio::test]
async fn sockets_are_limited_and_commands_checked() {
    let (app, key) = gateway(|c| c.server.max_websockets = 1).await;
    let auth: Value = app
        .client
        .post(app.url("/playht/api/v4/websocket-auth"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = auth["websocket_urls"]["Play3.0-mini"].as_str().unwrap().to_owned();
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("a second socket: {other:?}"),
    }
    let commands = [
        json!({"text": "bad\u{0}text", "voice": "en-us", "request_id": "nul"}),
        json!({"text": "Still here.", "voice": "en-us", "request_id": "next"}),
    ];
    for command in &commands {
        socket.send(Message::text(command.to_string())).await.unwrap();
    }
    let (mut events, mut audio) = (Vec::new(), 0);
    while events.iter().filter(|e: &&Value| e["type"] == "end").count() < commands.len() {
        match tokio::time::timeout(std::time::Duration::from_secs(30), socket.next()).await.unwrap().unwrap().unwrap() {
            Message::Text(text) => events.push(serde_json::from_str(&text).unwrap()),
            Message::Binary(bytes) => audio += bytes.len(),
            other => panic!("unexpected {other:?}"),
        }
    }
    let kinds: Vec<String> =
        events.iter().map(|e| format!("{}:{}", e["type"].as_str().unwrap(), e["request_id"])).collect();
    assert_eq!(kinds, ["start:\"nul\"", "error:\"nul\"", "end:\"nul\"", "start:\"next\"", "end:\"next\""]);
    assert_eq!(events[1]["status"], 400);
    assert!(events[1]["error_message"].as_str().unwrap().contains("NUL"), "{events:?}");
    assert!(audio > 1000, "the second command was voiced");
    drop(socket);
    app.stop().await;
}
