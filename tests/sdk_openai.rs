//! The official OpenAI SDKs (Python from PyPI, Node.js from npm; installed by the test script),
//! with only their base URL and key changed, get audio from the gateway — on `/v1` and on the
//! OpenAI drop-in at `/openai/v1` — including from other providers than OpenAI, and raise their
//! usual exceptions for the gateway's errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use common::{Db, TestApp};
use serde_json::{json, Value};
use wiremock::{matchers::method, Mock, MockServer, ResponseTemplate};

/// The gateway with a fake OpenAI as `openai` and the offline `local` voice; OpenAI's `nova` is
/// mapped to a local voice and the retired `tts-1-hd` to the local provider.
async fn gateway() -> (TestApp, MockServer, String) {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"ID3-sdk-audio".to_vec()))
        .mount(&upstream)
        .await;
    let base_url = format!("{}/v1", upstream.uri());
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.timeout_secs = 5;
        c.providers.openai = speechgate::config::VendorConfig {
            api_key: Some("sk-x".to_owned().into()),
            base_url: Some(base_url),
            ..Default::default()
        };
        c.providers.aliases.insert("tts-1-hd".into(), "local".into());
        c.facades.openai.voices.insert("nova".into(), "local:en-us".into());
    })
    .await;
    let (_, key) = app.speech_key().await;
    (app, upstream, key)
}

fn sdk_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/openai")
}

/// Runs `program args` with the gateway's address and key; its stdout is one JSON object.
async fn run(program: String, args: Vec<String>, app: &TestApp, key: &str, base_path: &str) -> Value {
    let (gateway, key, base_path) = (format!("http://{}", app.addr), key.to_owned(), base_path.to_owned());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(program)
            .args(args)
            .current_dir(sdk_dir())
            .env("GATEWAY", gateway)
            .env("KEY", key)
            .env("BASE_PATH", base_path)
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "SDK script failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// What both base paths answer alike: audio from OpenAI and from the local voice, SSE events,
/// and errors the SDK raises as its own exception types with the field that was wrong.
fn assert_common(result: &Value) {
    assert_eq!(result["audio"], hex("ID3-sdk-audio"), "{result}");
    assert_eq!(result["mapped"], json!({"provider": "local", "head": "RIFF"}), "{result}");
    let error = |name: &str, class: &str, status: u16| {
        assert_eq!(result[name]["class"], class, "{name}: {result}");
        assert_eq!(result[name]["status"], status, "{name}: {result}");
        assert!(!result[name]["message"].as_str().unwrap_or("").is_empty(), "{name}: {result}");
    };
    error("empty_input", "BadRequestError", 400);
    assert_eq!(result["empty_input"]["code"], "validation_failed");
    assert_eq!(result["empty_input"]["param"], "input");
    error("unknown_model", "NotFoundError", 404);
    error("unauthorized", "AuthenticationError", 401);
    assert!(result["models"].as_array().unwrap().contains(&json!("openai/tts-1")), "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_python_sdk_works_on_v1_and_on_the_drop_in() {
    let python = std::env::var("SPEECHGATE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("{}", common::needs("SPEECHGATE_TEST_PYTHON: a Python with the official `openai` SDK"))
    });
    let (app, _upstream, key) = gateway().await;
    for base_path in ["/v1", "/openai/v1"] {
        let result = run(python.clone(), vec!["drive.py".into()], &app, &key, base_path).await;
        assert_common(&result);
        assert_eq!(result["streamed"], hex("ID3-sdk-audio"), "{result}");
        // The retired model name, served by the local voice through its alias: 24 kHz PCM.
        assert_eq!(result["pcm"]["provider"], "local", "{result}");
        assert!(result["pcm"]["bytes"].as_u64().unwrap() > 4_800, "{result}");
        assert_eq!(result["sse"][0], "speech.audio.delta", "{result}");
        assert_eq!(result["sse"].as_array().unwrap().last().unwrap(), "speech.audio.done", "{result}");
        assert_eq!(result["bad_speed"]["param"], "speed", "{base_path}: {result}");
        if base_path == "/openai/v1" {
            // OpenAI's own error body and rules on its drop-in.
            assert_eq!(result["sse_tts1"]["param"], "stream_format", "{result}");
            assert_eq!(result["retrieved"], "tts-1", "{result}");
            assert!(result["models"].as_array().unwrap().contains(&json!("tts-1")), "{result}");
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_node_sdk_works_on_the_drop_in() {
    let dir = std::env::var("SPEECHGATE_TEST_OPENAI_SDK").unwrap_or_else(|_| {
        panic!("{}", common::needs("SPEECHGATE_TEST_OPENAI_SDK: tests/sdk/openai with the official `openai` npm SDK"))
    });
    let (app, _upstream, key) = gateway().await;
    let script = std::path::Path::new(&dir).join("drive.mjs").display().to_string();
    let result = run("node".into(), vec![script], &app, &key, "/openai/v1").await;
    assert_common(&result);
    app.stop().await;
}

/// The drop-in's error bodies are OpenAI's, with all four members, on every kind of failure:
/// a bad field, a missing key, an unknown route and a wrong method.
#[tokio::test]
async fn drop_in_errors_are_openai_shaped() {
    let (app, _upstream, key) = gateway().await;
    let speech = app.url("/openai/v1/audio/speech");
    let cases = [
        (
            app.client
                .post(&speech)
                .bearer_auth(&key)
                .json(&json!({"model": "tts-1", "voice": "alloy", "input": "x", "speed": 9})),
            400,
        ),
        (app.client.post(&speech).json(&json!({"model": "tts-1", "voice": "alloy", "input": "x"})), 401),
        (app.client.get(app.url("/openai/v1/no-such-route")).bearer_auth(&key), 404),
        (app.client.get(&speech).bearer_auth(&key), 405),
        (app.client.post(&speech).bearer_auth(&key).body("{not json").header("content-type", "application/json"), 400),
    ];
    for (request, status) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: Value = response.json().await.unwrap();
        let error = body["error"].as_object().unwrap_or_else(|| panic!("{body}"));
        for member in ["message", "type", "param", "code"] {
            assert!(error.contains_key(member), "{member} missing: {body}");
        }
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    }
    // A voice no provider serves is the provider's 404, still in OpenAI's shape.
    let response = app
        .client
        .post(&speech)
        .bearer_auth(&key)
        .json(&json!({"model": "tts-1", "voice": "local:no-such-voice", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("no-such-voice"), "{body}");
    app.stop().await;
}
