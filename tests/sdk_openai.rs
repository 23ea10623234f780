//! The official `openai` Python SDK (installed from PyPI by the test script), with only its base
//! URL and key changed, gets audio from the gateway and reads the gateway's errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use common::{Db, TestApp};
use serde_json::{json, Value};
use wiremock::{matchers::method, Mock, MockServer, ResponseTemplate};

const SCRIPT: &str = r#"
import json, os, sys
import openai
client = openai.OpenAI(base_url=os.environ["GATEWAY"] + "/v1", api_key=os.environ["KEY"], max_retries=0)
audio = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello from the SDK.")
with client.audio.speech.with_streaming_response.create(model="gpt-4o-mini-tts", voice="coral", input="Streamed.", response_format="mp3") as streamed:
    chunks = b"".join(streamed.iter_bytes())
result = {"audio": audio.content.hex(), "streamed": chunks.hex()}
try:
    client.audio.speech.create(model="tts-1", voice="alloy", input="")
except openai.BadRequestError as e:
    result["bad_request"] = {"status": e.status_code, "code": e.code, "param": e.param, "message": e.message}
try:
    openai.OpenAI(base_url=os.environ["GATEWAY"] + "/v1", api_key="sg_wrong", max_retries=0).audio.speech.create(model="tts-1", voice="alloy", input="x")
except openai.AuthenticationError as e:
    result["unauthorized"] = {"status": e.status_code, "code": e.code}
models = client.models.list()
result["models"] = [m.id for m in models.data]
print(json.dumps(result))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_python_sdk_gets_audio_and_errors() {
    let python = std::env::var("SPEECHGATE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("{}", common::needs("SPEECHGATE_TEST_PYTHON: a Python with the official `openai` SDK"))
    });
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"ID3-sdk-audio".to_vec()))
        .mount(&upstream)
        .await;
    let app = TestApp::with_openai(Db::Sqlite, &upstream.uri(), "sk-x").await;
    let (_, key) = app.speech_key().await;
    let gateway = format!("http://{}", app.addr);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args(["-c", SCRIPT])
            .env("GATEWAY", gateway)
            .env("KEY", key)
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "SDK script failed: {}", String::from_utf8_lossy(&output.stderr));
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(result["audio"], hex("ID3-sdk-audio"));
    assert_eq!(result["streamed"], hex("ID3-sdk-audio"));
    assert_eq!(result["bad_request"]["status"], 400);
    assert_eq!(result["bad_request"]["code"], "validation_failed");
    assert_eq!(result["bad_request"]["param"], "input");
    assert_eq!(result["unauthorized"]["status"], 401);
    assert!(result["models"].as_array().unwrap().contains(&json!("openai/tts-1")));
    app.stop().await;
}
