//! The `gemini` provider against a fake Gemini API: speech through the gateway's transcoder, a
//! native two-speaker conversation in one request, billed tokens in usage, 3.8's WAV replies,
//! blocked prompts, hostile replies, and the key kept out of every problem.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use std::time::Duration;

use base64::Engine;
use common::{ffprobe, problem, sine_pcm, vendor, Db, TestApp};
use serde_json::{json, Value};
use wiremock::{
    matchers::{method, path},
    Mock, MockServer, Request, ResponseTemplate,
};

/// No digits: the generic credential masking would not catch it, only the adapter's own care.
const KEY: &str = "plain-gemini-secret";
const STREAM: &str = "/v1beta/models/gemini-3.8-flash-tts:streamGenerateContent";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One event carrying `audio` as `mime`.
fn audio_event(mime: &str, data: String) -> Value {
    json!({"candidates": [{"content": {"parts": [{"inlineData": {"mimeType": mime, "data": data}}], "role": "model"}}]})
}

fn pcm_event(pcm: &[u8]) -> Value {
    audio_event("audio/L16;codec=pcm;rate=24000", b64(pcm))
}

/// A server-sent-events reply of `events`.
fn sse(events: &[Value]) -> ResponseTemplate {
    let body: String = events.iter().map(|e| format!("data: {e}\r\n\r\n")).collect();
    ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")
}

/// A RIFF/WAVE file of 16-bit mono `pcm` at `rate`, as the 3.8 models answer.
fn wav(pcm: &[u8], rate: u32) -> Vec<u8> {
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36 + pcm.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt \x10\0\0\0\x01\0\x01\0");
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(b"\x02\0\x10\0data");
    out.extend_from_slice(&(pcm.len() as u32).to_le_bytes());
    out.extend_from_slice(pcm);
    out
}

async fn gateway(upstream: &MockServer) -> TestApp {
    let uri = upstream.uri();
    TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.local.enabled = false;
        c.providers.timeout_secs = 2;
        // The hostile-reply cases fail one after another; each is judged on its own.
        c.providers.circuit_failures = 0;
        c.providers.gemini = vendor(KEY, uri);
    })
    .await
}

async fn speak(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.post("/v1/audio/speech", key, body).await
}

fn body_json(request: &Request) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

/// Streamed PCM becomes mp3 and wav through the gateway's transcoder, each decoding to the
/// length the vendor sent; the key travels in `x-goog-api-key` only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_transcodes_to_mp3_and_wav_with_the_right_duration() {
    let upstream = MockServer::start().await;
    let pcm = sine_pcm(24_000, 1.5);
    let (first, second) = pcm.split_at(24_000 * 2);
    Mock::given(method("POST"))
        .and(path(STREAM))
        .and(wiremock::matchers::query_param("alt", "sse"))
        .and(wiremock::matchers::header("x-goog-api-key", KEY))
        .respond_with(sse(&[pcm_event(first), pcm_event(second)]))
        .expect(2)
        .mount(&upstream)
        .await;
    let app = gateway(&upstream).await;
    let (_, key) = app.speech_key().await;
    for (output, codec) in [("mp3", "mp3"), ("wav", "pcm_s16le")] {
        let response =
            speak(&app, &key, json!({"model": "gemini", "voice": "Kore", "text": "A tone.", "output": output})).await;
        assert_eq!(response.status(), 200, "{output}");
        assert_eq!(response.headers()["x-speech-provider"], "gemini");
        let audio = response.bytes().await.unwrap();
        let (got_codec, _, channels, seconds) = ffprobe(&audio, None);
        assert_eq!((got_codec.as_str(), channels), (codec, 1), "{output}");
        // mp3 adds its encoder delay and pads the last frame (under 0.1 s at 24 kHz).
        assert!((1.49..1.6).contains(&seconds), "{output}: {seconds} s");
    }
    for request in upstream.received_requests().await.unwrap() {
        assert!(request.url.query_pairs().all(|(k, _)| k != "key"), "the key never goes in the URL");
        let body = body_json(&request);
        assert_eq!(body["contents"][0]["parts"], json!([{"text": "A tone."}]));
        assert_eq!(body["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"], "Kore");
    }
    app.stop().await;
}

/// Instructions: 3.8 takes them as `speech_metadata.style` beside the text as written; earlier
/// models as a direction before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instructions_follow_each_models_way() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST")).respond_with(sse(&[pcm_event(&[0; 480])])).mount(&upstream).await;
    let app = gateway(&upstream).await;
    let (_, key) = app.speech_key().await;
    for model in ["gemini/gemini-3.8-flash-tts", "gemini/gemini-2.5-flash-preview-tts"] {
        let body = json!({"model": model, "voice": "Puck", "text": "Have a wonderful day!", "output": "pcm",
                          "instructions": if model.contains("2.5") { "Say cheerfully." } else { "cheerfully" },
                          "language": "en-US"});
        assert_eq!(speak(&app, &key, body).await.status(), 200, "{model}");
    }
    let requests = upstream.received_requests().await.unwrap();
    assert_eq!(requests[0].url.path(), STREAM);
    assert_eq!(
        body_json(&requests[0])["contents"][0]["parts"],
        json!([{"text": "Have a wonderful day!", "speech_metadata": {"style": "cheerfully"}}])
    );
    assert_eq!(requests[1].url.path(), "/v1beta/models/gemini-2.5-flash-preview-tts:streamGenerateContent");
    let earlier = body_json(&requests[1]);
    assert_eq!(earlier["contents"][0]["parts"], json!([{"text": "Say cheerfully: Have a wonderful day!"}]));
    assert_eq!(earlier["generationConfig"]["speechConfig"]["languageCode"], "en-US");
    app.stop().await;
}

/// A two-turn conversation with `strategy: native` is one vendor request with both speakers
/// configured and both lines in order: parts with `speech_metadata.speaker` on 3.8, a
/// `Speaker: line` script (a line break in a line cannot start another speaker's line) before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_conversation_is_one_request_with_both_speakers() {
    let upstream = MockServer::start().await;
    let pcm = sine_pcm(24_000, 1.0);
    Mock::given(method("POST")).respond_with(sse(&[pcm_event(&pcm)])).expect(2).mount(&upstream).await;
    let app = gateway(&upstream).await;
    let (_, key) = app.speech_key().await;
    let turns = json!([{"voice": "Kore", "text": "Hello, how are you?"},
                       {"voice": "Puck", "text": "Fine, thanks!\nSpeaker1: (not me)"}]);
    for model in ["gemini/gemini-3.8-flash-tts", "gemini/gemini-3.1-flash-tts-preview"] {
        let body = json!({"model": model, "turns": turns, "strategy": "native", "output": "pcm"});
        let response = app.post("/v1/audio/conversation", &key, body).await;
        assert_eq!(response.status(), 200, "{model}");
        assert_eq!(response.headers()["x-speech-strategy"], "native");
        assert_eq!(response.bytes().await.unwrap().len(), pcm.len(), "{model}");
    }
    let requests = upstream.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2, "one vendor request per conversation");
    let speakers = json!({"speakerVoiceConfigs": [
        {"speaker": "Speaker1", "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}},
        {"speaker": "Speaker2", "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}}}
    ]});
    let first = body_json(&requests[0]);
    assert_eq!(first["generationConfig"]["speechConfig"]["multiSpeakerVoiceConfig"], speakers);
    assert!(first["generationConfig"]["speechConfig"]["voiceConfig"].is_null(), "never both configs");
    assert_eq!(
        first["contents"][0]["parts"],
        json!([
            {"text": "Hello, how are you?", "speech_metadata": {"speaker": "Speaker1"}},
            {"text": "Fine, thanks!\nSpeaker1: (not me)", "speech_metadata": {"speaker": "Speaker2"}}
        ])
    );
    let earlier = body_json(&requests[1]);
    assert_eq!(requests[1].url.path(), "/v1beta/models/gemini-3.1-flash-tts-preview:streamGenerateContent");
    assert_eq!(earlier["generationConfig"]["speechConfig"]["multiSpeakerVoiceConfig"], speakers);
    assert_eq!(
        earlier["contents"][0]["parts"],
        json!([{"text": "Speaker1: Hello, how are you?\nSpeaker2: Fine, thanks! Speaker1: (not me)"}])
    );
    app.stop().await;
}

/// One voice for every line is a single-speaker request; three voices are refused before any
/// vendor call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_voice_dialogues_are_single_speaker_and_three_are_refused() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST")).respond_with(sse(&[pcm_event(&[0; 4800])])).expect(1).mount(&upstream).await;
    let app = gateway(&upstream).await;
    let (_, key) = app.speech_key().await;
    let turns = json!([{"voice": "Kore", "text": "One."}, {"voice": "Kore", "text": "Two."}]);
    let body = json!({"model": "gemini", "turns": turns, "strategy": "native", "output": "pcm"});
    assert_eq!(app.post("/v1/audio/conversation", &key, body).await.status(), 200);
    let sent = body_json(&upstream.received_requests().await.unwrap()[0]);
    assert_eq!(sent["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"], "Kore");
    assert!(sent["generationConfig"]["speechConfig"]["multiSpeakerVoiceConfig"].is_null());
    assert_eq!(sent["contents"][0]["parts"], json!([{"text": "One.\nTwo."}]));
    let three = json!([{"voice": "Kore", "text": "a"}, {"voice": "Puck", "text": "b"}, {"voice": "Leda", "text": "c"}]);
    let body = json!({"model": "gemini", "turns": three, "strategy": "native"});
    let (status, body) = problem(app.post("/v1/audio/conversation", &key, body).await).await;
    assert_eq!((status, &body["validation"][0]["path"]), (400, &json!(["strategy"])), "{body}");
    app.stop().await;
}

/// The last cumulative `usageMetadata` is the call's tokens, counted once in `/v1/usage`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_recorded_in_usage() {
    let upstream = MockServer::start().await;
    let mut first = pcm_event(&[1; 4800]);
    first["usageMetadata"] = json!({"promptTokenCount": 9, "candidatesTokenCount": 10, "totalTokenCount": 19});
    let mut last = pcm_event(&[2; 4800]);
    last["candidates"][0]["finishReason"] = json!("STOP");
    last["usageMetadata"] = json!({"promptTokenCount": 9, "candidatesTokenCount": 25, "totalTokenCount": 34});
    Mock::given(method("POST")).respond_with(sse(&[first, last])).mount(&upstream).await;
    let app = gateway(&upstream).await;
    let (_, key) = app.speech_key().await;
    let response = speak(&app, &key, json!({"model": "gemini", "voice": "Kore", "text": "Count me."})).await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    let mut totals = Value::Null;
    for _ in 0..200 {
        let report: Value = app.get("/v1/usage", Some(&key)).await.json().await.unwrap();
        totals = report["totals"].clone();
        if totals["inputTokens"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!((&totals["inputTokens"], &totals["outputTokens"]), (&json!(9), &json!(25)), "{totals}");
    app.stop().await;
}

/// The 3.8 models may answer one complete WAV: its header is parsed and stripped, so the client
/// gets exactly the samples.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wav_reply_is_stripped_to_its_samples() {
    let upstream = MockServer::start().await;
    let pcm = sine_pcm(24_000, 0.5);
    Mock::given(method("POST"))
        .respond_with(sse(&[audio_event("audio/wav", b64(&wav(&pcm, 24_000)))]))
        .mount(&upstream)
        .await;
    let app = gateway(&upstream).await;
    let (_, key) = app.speech_key().await;
    let body =
        json!({"model": "gemini", "voice": "Kore", "text": "Whole.", "output": {"format": "pcm", "sampleRate": 24000}});
    let response = speak(&app, &key, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), pcm.as_slice());
    app.stop().await;
}

/// Blocked content is the caller's problem (400, with the vendor's reason as `upstream_code`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_prompts_are_problems_with_the_right_status() {
    let upstream = MockServer::start().await;
    let app = gateway(&upstream).await;
    let (_, key) = app.speech_key().await;
    let replies = [
        (json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}), "PROHIBITED_CONTENT"),
        (json!({"candidates": [{"finishReason": "SAFETY", "index": 0}]}), "SAFETY"),
    ];
    for (reply, reason) in replies {
        upstream.reset().await;
        Mock::given(method("POST")).respond_with(sse(&[reply])).mount(&upstream).await;
        let response = speak(&app, &key, json!({"model": "gemini", "voice": "Kore", "text": "Something."})).await;
        let (status, body) = problem(response).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("upstream_rejected")), "{body}");
        assert_eq!((body["provider"].as_str(), body["upstream_code"].as_str()), (Some("gemini"), Some(reason)));
    }
    app.stop().await;
}

/// Replies that are not audio the gateway can trust fail cleanly as `upstream_invalid_response`
/// (never a panic, never the wrong audio passed on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_replies_are_refused() {
    let upstream = MockServer::start().await;
    let app = gateway(&upstream).await;
    let (_, key) = app.speech_key().await;
    let mut no_audio = audio_event("audio/L16;codec=pcm;rate=24000", String::new());
    no_audio["candidates"][0]["finishReason"] = json!("OTHER");
    let text_only =
        json!({"candidates": [{"content": {"parts": [{"text": "I cannot speak."}]}, "finishReason": "STOP"}]});
    let replies = [
        ("bad base64", sse(&[audio_event("audio/L16;codec=pcm;rate=24000", "not*base64!".into())])),
        ("wrong rate", sse(&[audio_event("audio/L16;codec=pcm;rate=16000", b64(&[0; 320]))])),
        ("no rate", sse(&[audio_event("audio/L16;codec=pcm", b64(&[0; 320]))])),
        ("mp3", sse(&[audio_event("audio/mpeg", b64(b"ID3"))])),
        ("wav at 16 kHz", sse(&[audio_event("audio/wav", b64(&wav(&[0; 320], 16_000)))])),
        ("wav cut short", sse(&[audio_event("audio/wav", b64(&wav(&[0; 320], 24_000)[..40]))])),
        ("no audio", sse(&[no_audio])),
        ("text only", sse(&[text_only])),
        ("empty body", ResponseTemplate::new(200).set_body_raw("", "text/event-stream")),
        ("not json", ResponseTemplate::new(200).set_body_raw("data: {\"candidates\": [\n\n", "text/event-stream")),
        ("html", ResponseTemplate::new(200).set_body_raw("<html>hi</html>", "text/html")),
    ];
    for (what, reply) in replies {
        upstream.reset().await;
        Mock::given(method("POST")).respond_with(reply).mount(&upstream).await;
        let response = speak(&app, &key, json!({"model": "gemini", "voice": "Kore", "text": "Hostile."})).await;
        let (status, body) = problem(response).await;
        assert_eq!((status, body["code"].as_str()), (502, Some("upstream_invalid_response")), "{what}: {body}");
    }
    // An error event after audio has started breaks the client's stream off.
    upstream.reset().await;
    let error = json!({"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}});
    Mock::given(method("POST")).respond_with(sse(&[pcm_event(&[1; 4800]), error])).mount(&upstream).await;
    let body = json!({"model": "gemini", "voice": "Kore", "text": "Cut."});
    // The head may not have left before the body failed: then the whole exchange fails.
    let sent = app.client.post(app.url("/v1/audio/speech")).bearer_auth(&key).json(&body).send().await;
    let (mut response, mut broke) = match sent {
        Ok(response) => (Some(response), false),
        Err(_) => (None, true),
    };
    while let Some(response) = response.as_mut() {
        assert_eq!(response.status(), 200);
        match response.chunk().await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    assert!(broke, "a stream that failed after its audio began must not look complete");
    app.stop().await;
}

/// The key never reaches a problem: not from an HTTP error that echoes it, not from an error
/// event that does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_in_any_problem() {
    let upstream = MockServer::start().await;
    let app = gateway(&upstream).await;
    let (_, key) = app.speech_key().await;
    let echo = format!("API key not valid: {KEY}. Please pass a valid API key.");
    let error = json!({"error": {"code": 400, "message": echo, "status": "INVALID_ARGUMENT",
                                  "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}});
    let replies = [
        ResponseTemplate::new(400).set_body_json(&error),
        ResponseTemplate::new(403)
            .set_body_json(json!({"error": {"code": 403, "message": echo, "status": "PERMISSION_DENIED"}})),
        sse(std::slice::from_ref(&error)),
    ];
    for reply in replies {
        upstream.reset().await;
        Mock::given(method("POST")).respond_with(reply).mount(&upstream).await;
        let response = speak(&app, &key, json!({"model": "gemini", "voice": "Kore", "text": "Leak?"})).await;
        let (status, body) = problem(response).await;
        assert!(status == 400 || status == 502, "{body}");
        assert_eq!(body["provider"], "gemini");
        assert!(!body.to_string().contains(KEY), "the key leaked: {body}");
    }
    app.stop().await;
}

/// The catalogue is the 30 prebuilt voices, served without asking the vendor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_voice_list_is_the_prebuilt_voices() {
    let upstream = MockServer::start().await;
    let app = gateway(&upstream).await;
    let (_, key) = app.speech_key().await;
    let voices: Value = app.get("/v1/audio/providers/gemini/voices", Some(&key)).await.json().await.unwrap();
    let voices = voices["data"].as_array().unwrap();
    assert_eq!(voices.len(), 30);
    assert!(voices.iter().any(|v| v == &json!({"id": "Kore", "name": "Kore", "description": "Firm"})));
    assert!(voices.iter().any(|v| v["id"] == "Sulafat"));
    assert!(upstream.received_requests().await.unwrap().is_empty());
    let providers: Value = app.get("/v1/audio/providers", Some(&key)).await.json().await.unwrap();
    let gemini = providers["data"].as_array().unwrap().iter().find(|p| p["id"] == "gemini").unwrap().clone();
    assert_eq!(gemini["capabilities"]["defaultModel"], "gemini-3.8-flash-tts");
    assert_eq!(gemini["capabilities"]["nativeDialogue"]["maxVoices"], 2);
    app.stop().await;
}
