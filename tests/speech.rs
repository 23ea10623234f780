//! `/v1/audio/speech` end to end against a fake OpenAI upstream (wiremock on a random port):
//! both body dialects, pass-through, SSE, validation before any upstream call, and every kind of
//! upstream failure mapped to the right problem.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use std::time::Duration;

use base64::Engine;
use common::{problem, Db, TestApp};
use serde_json::{json, Value};
use wiremock::{
    matchers::{body_partial_json, header, method, path},
    Mock, MockServer, ResponseTemplate,
};

const MP3: &[u8] = b"ID3\x04\x00\x00\x00\x00\x00\x00fake-mp3-frames";

async fn gateway_with_openai(db: Db) -> (TestApp, MockServer) {
    let upstream = MockServer::start().await;
    let app = TestApp::with_openai(db, &upstream.uri(), "sk-upstream-secret").await;
    (app, upstream)
}

async fn speak(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.client.post(app.url("/v1/audio/speech")).bearer_auth(key).json(&body).send().await.unwrap()
}

async fn passes_native_audio_through(db: Db) {
    let (app, upstream) = gateway_with_openai(db).await;
    Mock::given(method("POST"))
        .and(path("/v1/audio/speech"))
        .and(header("authorization", "Bearer sk-upstream-secret"))
        .and(body_partial_json(
            json!({"model": "tts-1", "input": "Hello there.", "voice": "alloy", "response_format": "mp3"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(MP3).insert_header("content-type", "audio/mpeg"))
        .expect(2)
        .mount(&upstream)
        .await;
    let (key_id, key) = app.speech_key().await;

    // OpenAI dialect, with an alias model and the object voice form.
    let response =
        speak(&app, &key, json!({"model": "tts-1", "input": "Hello there.", "voice": {"id": "alloy"}})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/mpeg");
    assert_eq!(response.headers()["x-speech-provider"], "openai");
    assert_eq!(response.headers()["x-speech-model"], "tts-1");
    assert_eq!(response.headers()["x-speech-characters"], "12");
    assert_eq!(response.bytes().await.unwrap().as_ref(), MP3, "native bytes pass through untouched");

    // Speechbase dialect.
    let response = speak(
        &app,
        &key,
        json!({"model": "openai/tts-1", "voice": "alloy", "text": "Hello there.", "output": {"format": "mp3", "sampleRate": 24000}}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), MP3);

    let events = app.stop_and_read_usage(Some(&key_id)).await;
    let speech: Vec<_> = events.iter().filter(|e| e.event.route == "/v1/audio/speech").collect();
    assert_eq!(speech.len(), 2);
    for e in speech {
        assert_eq!(e.event.provider.as_deref(), Some("openai"));
        assert_eq!(e.event.model.as_deref(), Some("tts-1"));
        assert_eq!(e.event.voice.as_deref(), Some("alloy"));
        assert_eq!(e.event.characters, 12);
        assert_eq!(e.event.bytes_out, MP3.len() as i64);
        assert_eq!(e.event.status, 200);
        assert!(e.event.ttfb_ms.is_some());
    }
}

async fn sse_wraps_audio_in_openai_events(db: Db) {
    let (app, upstream) = gateway_with_openai(db).await;
    Mock::given(method("POST"))
        .and(path("/v1/audio/speech"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(MP3))
        .mount(&upstream)
        .await;
    let (_, key) = app.speech_key().await;
    let response = speak(
        &app,
        &key,
        json!({"model": "gpt-4o-mini-tts", "input": "Hi", "voice": "coral", "instructions": "Warm.", "stream_format": "sse"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let events: Vec<Value> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    let mut audio = Vec::new();
    for event in &events[..events.len() - 1] {
        assert_eq!(event["type"], "speech.audio.delta");
        audio.extend(base64::engine::general_purpose::STANDARD.decode(event["audio"].as_str().unwrap()).unwrap());
    }
    assert_eq!(audio, MP3);
    let done = events.last().unwrap();
    assert_eq!(done["type"], "speech.audio.done");
    assert!(done["usage"]["total_tokens"].is_number());
    app.stop().await;
}

async fn bad_requests_never_reach_the_provider(db: Db) {
    let (app, upstream) = gateway_with_openai(db).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(MP3))
        .expect(0)
        .mount(&upstream)
        .await;
    let (_, key) = app.speech_key().await;
    let cases = [
        (json!({"model": "tts-1", "input": "hi"}), json!(["voice"])),
        (json!({"voice": "alloy", "input": "hi"}), json!(["model"])),
        (json!({"voiceId": "v1", "voice": "alloy", "input": "hi"}), json!(["voiceId"])),
        (json!({"model": "tts-1", "voice": "alloy", "input": "   "}), json!(["input"])),
        (json!({"model": "tts-1", "voice": "alloy", "text": "a".repeat(4097)}), json!(["text"])),
        (json!({"model": "tts-1", "voice": "alloy", "text": "hi", "input": "hi"}), json!(["input"])),
        (json!({"model": "tts-1", "voice": "alloy", "input": "hi", "speed": 9}), json!(["speed"])),
        (json!({"model": "tts-1", "voice": "alloy", "input": "hi", "instructions": "Warm."}), json!(["instructions"])),
        (
            json!({"model": "tts-1", "voice": "alloy", "input": "hi", "response_format": "wma"}),
            json!(["response_format"]),
        ),
        (
            json!({"model": "tts-1", "voice": "alloy", "text": "hi", "output": {"format": "mp3", "sampleRate": 96000}}),
            json!(["output"]),
        ),
        (json!({"model": "tts-1", "voice": "alloy", "text": "hi", "volumeDbfs": 3}), json!(["volumeDbfs"])),
        (json!({"model": "tts-1", "voice": "alloy", "input": "hi", "colour": "red"}), json!([])),
    ];
    for (body, path) in cases {
        let (status, found) = problem(speak(&app, &key, body.clone()).await).await;
        assert_eq!((status, found["code"].as_str()), (400, Some("validation_failed")), "{body} → {found}");
        if path != json!([]) {
            assert_eq!(found["validation"][0]["path"], path, "{body} → {found}");
        }
        assert_eq!(found["error"]["type"], "invalid_request_error", "OpenAI SDKs read `error`: {found}");
    }

    let (status, found) =
        problem(speak(&app, &key, json!({"model": "nope/model", "voice": "a", "input": "hi"})).await).await;
    assert_eq!((status, found["code"].as_str()), (404, Some("unknown_model")));
    assert!(found["detail"].as_str().unwrap().contains("openai/tts-1"), "lists known models: {found}");

    let (_, voices_only) = app.create_key(json!({"name": "v", "scopes": ["voices"]})).await;
    let (status, _) =
        problem(speak(&app, &voices_only, json!({"model": "tts-1", "voice": "alloy", "input": "hi"})).await).await;
    assert_eq!(status, 403);
    app.stop().await;
}

async fn upstream_failures_map_to_problems(db: Db) {
    let (app, upstream) = gateway_with_openai(db).await;
    let (_, key) = app.speech_key().await;
    let error = |message: &str, kind: &str, code: &str| json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    let cases = [
        (
            "bad-key",
            ResponseTemplate::new(401).set_body_json(error(
                "Incorrect API key provided: sk-upstream-secret.",
                "invalid_request_error",
                "invalid_api_key",
            )),
            502,
            "provider_auth_failed",
            Some("invalid_api_key"),
        ),
        (
            "limited",
            ResponseTemplate::new(429).insert_header("retry-after", "7").set_body_json(error(
                "Rate limit reached",
                "requests",
                "rate_limit_exceeded",
            )),
            429,
            "upstream_rate_limited",
            Some("rate_limit_exceeded"),
        ),
        (
            "bad-voice",
            ResponseTemplate::new(400).set_body_json(error(
                "Invalid value for 'voice'.",
                "invalid_request_error",
                "invalid_value",
            )),
            400,
            "upstream_rejected",
            Some("invalid_value"),
        ),
        ("broken", ResponseTemplate::new(500).set_body_string("upstream exploded"), 503, "provider_unavailable", None),
        (
            "slow",
            ResponseTemplate::new(200).set_body_bytes(MP3).set_delay(Duration::from_secs(5)),
            504,
            "provider_timeout",
            None,
        ),
    ];
    for (voice, template, _, _, _) in &cases {
        Mock::given(method("POST"))
            .and(body_partial_json(json!({"voice": voice})))
            .respond_with(template.clone())
            .mount(&upstream)
            .await;
    }
    for (voice, _, status, code, upstream_code) in cases {
        let response = speak(&app, &key, json!({"model": "tts-1", "voice": voice, "input": "hi"})).await;
        if status == 429 {
            assert_eq!(response.headers()["retry-after"], "7");
        }
        let (got, body) = problem(response).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{voice}: {body}");
        assert_eq!(body["provider"], "openai", "{body}");
        assert_eq!(body["upstream_code"].as_str(), upstream_code, "{body}");
        assert!(!body.to_string().contains("sk-upstream-secret"), "the upstream key never leaks: {body}");
    }
    app.stop().await;
}

async fn catalog_lists_providers_models_and_voices(db: Db) {
    let (app, _upstream) = gateway_with_openai(db).await;
    let (_, key) = app.speech_key().await;
    let providers: Value = app.get("/v1/audio/providers", Some(&key)).await.json().await.unwrap();
    let openai = providers["data"].as_array().unwrap().iter().find(|p| p["id"] == "openai").unwrap();
    assert_eq!(openai["enabled"], true);
    assert!(openai["models"].as_array().unwrap().contains(&json!("openai/tts-1")));
    assert_eq!(openai["capabilities"]["streaming"], true);
    let elevenlabs = providers["data"].as_array().unwrap().iter().find(|p| p["id"] == "elevenlabs").unwrap();
    assert_eq!(elevenlabs["enabled"], false);

    let models: Value = app.get("/v1/models", Some(&key)).await.json().await.unwrap();
    assert_eq!(models["object"], "list");
    let tts1 = models["data"].as_array().unwrap().iter().find(|m| m["id"] == "openai/tts-1").unwrap();
    assert_eq!(tts1["object"], "model");
    assert_eq!(tts1["owned_by"], "openai");
    assert_eq!(tts1["maxCharacters"], 4096);

    let voices: Value = app.get("/v1/audio/providers/openai/voices", Some(&key)).await.json().await.unwrap();
    assert!(voices["data"].as_array().unwrap().iter().any(|v| v["id"] == "alloy"));
    let (status, _) = problem(app.get("/v1/audio/providers/nope/voices", Some(&key)).await).await;
    assert_eq!(status, 404);
    app.stop().await;
}

/// A saved voice stands for provider, model, voice and options, in either dialect.
async fn saved_voices_resolve_to_their_provider(db: Db) {
    let (app, upstream) = gateway_with_openai(db).await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"model": "tts-1-hd", "voice": "nova", "input": "Saved."})))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(MP3))
        .expect(1)
        .mount(&upstream)
        .await;
    let (_, key) = app.create_key(json!({"name": "both", "scopes": ["speech", "voices"]})).await;
    let voice = json!({"title": "Narrator", "provider": "openai", "model": "tts-1-hd", "voiceId": "nova"});
    let created: Value = app.post("/v1/voices", &key, voice).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    let response = speak(&app, &key, json!({"voiceId": id, "text": "Saved.", "output": "mp3"})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-speech-model"], "tts-1-hd");
    assert_eq!(response.bytes().await.unwrap().as_ref(), MP3);

    let (status, found) = problem(speak(&app, &key, json!({"voiceId": "no-such-voice", "text": "x"})).await).await;
    assert_eq!((status, &found["validation"][0]["path"]), (404, &json!(["voiceId"])), "{found}");
    // Another key cannot use this key's voice.
    let (_, other) = app.create_key(json!({"name": "other", "scopes": ["speech"]})).await;
    let (status, _) = problem(speak(&app, &other, json!({"voiceId": id, "text": "x"})).await).await;
    assert_eq!(status, 404);
    app.stop().await;
}

/// Audio that passes through untouched is still measured: MP3 and FLAC frames are counted as
/// they flow.
async fn pass_through_audio_is_measured(db: Db) {
    use speechgate::domain::audio::{AudioFormat, AudioSpec};
    let (app, upstream) = gateway_with_openai(db).await;
    let pcm = common::sine_pcm(24_000, 2.0);
    let samples: Vec<i16> = pcm.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
    let (key_id, key) = app.speech_key().await;
    for format in [AudioFormat::Mp3, AudioFormat::Flac] {
        let mut encoder =
            speechgate::audio::encoder(AudioSpec { format, sample_rate: 24_000, bitrate_kbps: None }).unwrap();
        let mut clip = encoder.encode(&samples).unwrap();
        clip.extend(encoder.finish().unwrap());
        Mock::given(method("POST"))
            .and(body_partial_json(json!({"response_format": format.as_str()})))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(clip))
            .mount(&upstream)
            .await;
        let body =
            json!({"model": "tts-1", "voice": "alloy", "input": "Two seconds.", "response_format": format.as_str()});
        let response = speak(&app, &key, body).await;
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    let events = app.stop_and_read_usage(Some(&key_id)).await;
    let audio_ms: Vec<i64> =
        events.iter().rev().filter(|e| e.event.route == "/v1/audio/speech").map(|e| e.event.audio_ms).collect();
    let [mp3, flac] = audio_ms[..] else { panic!("two speech events: {audio_ms:?}") };
    assert!((2_000..=2_160).contains(&mp3), "mp3: {mp3} ms (with the encoder's padding)");
    assert_eq!(flac, 2_000, "flac is exact");
}

/// Pronunciation rules rewrite whole words before the provider sees the text; bad rules and text
/// that outgrows the model through them are refused at their paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pronunciations_reach_the_provider_as_text() {
    let (app, upstream) = gateway_with_openai(Db::Sqlite).await;
    Mock::given(method("POST"))
        .and(path("/v1/audio/speech"))
        .and(body_partial_json(json!({"input": "I like sequel, not MySQL."})))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(MP3))
        .expect(1)
        .mount(&upstream)
        .await;
    let (_, key) = app.speech_key().await;
    let rules = json!({"rules": [{"word": "sql", "replacement": "sequel"}]});
    let body = json!({"model": "tts-1", "voice": "alloy", "input": "I like SQL, not MySQL.", "pronunciations": rules});
    assert_eq!(speak(&app, &key, body).await.status(), 200);
    let bad = json!({"rules": [{"word": "ok", "replacement": "fine"}, {"word": "", "replacement": "x"}]});
    let body = json!({"model": "tts-1", "voice": "alloy", "input": "hi", "pronunciations": bad});
    let (status, refused) = problem(speak(&app, &key, body).await).await;
    assert_eq!((status, &refused["validation"][0]["path"]), (400, &json!(["pronunciations", "rules", 1, "word"])));
    let growing = json!({"rules": [{"word": "a", "replacement": "a ".repeat(100)}]});
    let body = json!({"model": "tts-1", "voice": "alloy", "input": "a ".repeat(100), "pronunciations": growing});
    let (status, refused) = problem(speak(&app, &key, body).await).await;
    assert_eq!((status, &refused["validation"][0]["path"]), (400, &json!(["input"])));
    app.stop().await;
}

both_databases!(
    pass_through_audio_is_measured,
    saved_voices_resolve_to_their_provider,
    passes_native_audio_through,
    sse_wraps_audio_in_openai_events,
    bad_requests_never_reach_the_provider,
    upstream_failures_map_to_problems,
    catalog_lists_providers_models_and_voices,
);
