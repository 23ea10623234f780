//! The unified WebSocket: signed URLs per model from `/v1/websocket-auth`, then pipelined
//! speech commands answered in order — start, audio, end — with failures reported in place and
//! every command metered, over a real socket, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use common::{Db, TestApp};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

/// What came back for each command: its text messages in order, and its audio.
async fn exchange(url: &str, commands: &[Value]) -> (Vec<Value>, Vec<Vec<u8>>) {
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    for command in commands {
        socket.send(Message::text(command.to_string())).await.unwrap();
    }
    let (mut texts, mut audio) = (Vec::new(), Vec::<Vec<u8>>::new());
    let mut ends = 0;
    while ends < commands.len() {
        let message = tokio::time::timeout(std::time::Duration::from_secs(30), socket.next()).await.unwrap();
        match message.unwrap().unwrap() {
            Message::Text(text) => {
                let event: Value = serde_json::from_str(&text).unwrap();
                match event["type"].as_str().unwrap() {
                    "start" => audio.push(Vec::new()),
                    "end" => ends += 1,
                    _ => {}
                }
                texts.push(event);
            }
            Message::Binary(bytes) => audio.last_mut().expect("audio before any start").extend_from_slice(&bytes),
            other => panic!("unexpected {other:?}"),
        }
    }
    socket.close(None).await.unwrap();
    (texts, audio)
}

async fn pipelined_commands_are_answered_in_order(db: Db) {
    let app = TestApp::spawn(db).await;
    let (key_id, key) = app.speech_key().await;
    let auth: Value =
        app.client.post(app.url("/v1/websocket-auth")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    assert!(auth["expiresAt"].as_str().unwrap().ends_with('Z'), "{auth}");
    let url = auth["webSocketUrls"]["local/espeak-ng"].as_str().unwrap();
    assert!(url.starts_with("ws://") && url.contains("token="), "{url}");

    let commands = [
        json!({"voice": "en-us", "text": "First command.", "output": "mp3", "request_id": "one"}),
        json!({"voice": "en-us", "text": "", "request_id": 2}),
        json!({"voice": "en-gb", "text": "Third, without an id.", "output": "wav"}),
    ];
    let (texts, audio) = exchange(url, &commands).await;
    let kinds: Vec<String> =
        texts.iter().map(|t| format!("{}:{}", t["type"].as_str().unwrap(), t["request_id"])).collect();
    assert_eq!(
        kinds,
        ["start:\"one\"", "end:\"one\"", "start:2", "error:2", "end:2", "start:null", "end:null"],
        "{texts:?}"
    );
    assert_eq!(texts[3]["status"], 400);
    assert_eq!(texts[3]["error_id"], "validation_failed");
    assert!(texts[3]["error_message"].as_str().unwrap().contains("text"), "{texts:?}");
    assert!(audio[0].len() > 1000 && audio[0][0] == 0xff, "mp3 frames");
    assert!(audio[1].is_empty());
    assert_eq!(&audio[2][..4], b"RIFF");

    // Each command is a usage event of its own: two served by the local voice, one refused.
    let usage = app.stop_and_read_usage(Some(&key_id)).await;
    let mut commands: Vec<_> = usage.iter().filter(|u| u.event.method == "WS").map(|u| &u.event).collect();
    // Request ids are UUID v7: they sort in the order the commands began.
    commands.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    assert_eq!(commands.iter().map(|e| e.status).collect::<Vec<_>>(), [200, 400, 200]);
    assert_eq!(commands[0].provider.as_deref(), Some("local"));
    assert!(commands[0].characters > 0 && commands[0].bytes_out as usize == audio[0].len());
    assert_eq!(commands[1].error_code.as_deref(), Some("validation_failed"));
}

/// A URL token is only good for the socket it was issued for, and never once tampered with;
/// without a token the usual key header works (for clients that can send headers).
async fn tokens_are_checked_at_the_handshake(db: Db) {
    let app = TestApp::spawn(db).await;
    let (_, key) = app.speech_key().await;
    let auth: Value =
        app.client.post(app.url("/v1/websocket-auth")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    let url = auth["webSocketUrls"]["local/espeak-ng"].as_str().unwrap().to_owned();
    let tampered = format!("{}0", url.trim_end_matches(|c: char| c.is_ascii_hexdigit()));
    for bad in [tampered, url.split("&token=").next().unwrap().to_owned()] {
        match tokio_tungstenite::connect_async(&bad).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401, "{bad}");
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    let http = url.replacen("ws://", "http://", 1);
    let token = http.split("token=").nth(1).unwrap();
    // The token opens nothing else of the key's.
    let response = app.client.post(app.url(&format!("/v1/audio/speech?token={token}"))).json(&json!({})).send().await;
    assert_eq!(response.unwrap().status(), 401);
    // A bearer key on the socket route.
    let mut request = url.split("&token=").next().unwrap().into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
    let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), 101);
    drop(socket);
    app.stop().await;
}

/// A `request_id` is echoed only when it is an id: a huge string, an object or a string with a
/// bidirectional override is refused in place (with `null`), and the socket goes on.
async fn request_ids_are_echoed_only_when_they_are_ids(db: Db) {
    let app = TestApp::spawn(db).await;
    let (_, key) = app.speech_key().await;
    let auth: Value =
        app.client.post(app.url("/v1/websocket-auth")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    let url = auth["webSocketUrls"]["local/espeak-ng"].as_str().unwrap();
    let hostile = [json!("x".repeat(250_000)), json!({"nested": [1]}), json!("id\u{202E}gnp.exe")];
    let commands: Vec<Value> =
        hostile.iter().map(|id| json!({"voice": "en-us", "text": "Hi.", "request_id": id})).collect();
    let (texts, audio) = exchange(url, &commands).await;
    for (i, chunk) in texts.chunks(3).enumerate() {
        let kinds: Vec<_> = chunk.iter().map(|t| (t["type"].as_str().unwrap(), t["request_id"].clone())).collect();
        assert_eq!(kinds, [("start", Value::Null), ("error", Value::Null), ("end", Value::Null)], "{i}");
        assert!(chunk[1]["error_message"].as_str().unwrap().contains("request_id"), "{chunk:?}");
    }
    assert!(audio.iter().all(Vec::is_empty));
    app.stop().await;
}

both_databases!(
    request_ids_are_echoed_only_when_they_are_ids,
    pipelined_commands_are_answered_in_order,
    tokens_are_checked_at_the_handshake
);
