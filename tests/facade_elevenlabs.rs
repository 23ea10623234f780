//! The ElevenLabs drop-in's wire without an SDK, served by the local voice alone (no ElevenLabs
//! configured): NDJSON framing, alignment arrays, voice segments, the model list's shape, and
//! hostile input answered with a clear 4xx in ElevenLabs' error shape.
#![cfg(feature = "local")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use base64::Engine;
use common::{Db, TestApp};
use serde_json::{json, Value};

/// An ElevenLabs-style id mapped to the local voice.
const MAPPED: &str = "21m00Tcm4TlvDq8ikWAM";

async fn gateway() -> (TestApp, String) {
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.facades.elevenlabs.voices.insert(MAPPED.to_owned(), "local:en-gb".to_owned());
    })
    .await;
    let (_, key) = app.speech_key().await;
    (app, key)
}

async fn post(app: &TestApp, key: &str, path: &str, body: Value) -> reqwest::Response {
    let url = app.url(&format!("/elevenlabs{path}"));
    app.client.post(url).header("xi-api-key", key).json(&body).send().await.unwrap()
}

async fn get(app: &TestApp, key: &str, path: &str) -> reqwest::Response {
    app.client.get(app.url(&format!("/elevenlabs{path}"))).header("xi-api-key", key).send().await.unwrap()
}

/// Status and JSON body of an error, which must be ElevenLabs-shaped.
async fn failure(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    assert_eq!(response.headers()["content-type"], "application/json");
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_ndjson_with_aligned_characters_and_segments() {
    let (app, key) = gateway().await;
    let text = "Good day, world.";
    let response = post(
        &app,
        &key,
        &format!("/v1/text-to-speech/{MAPPED}/stream/with-timestamps?output_format=pcm_16000"),
        json!({"text": text, "model_id": null, "unknown": {"x": 1}}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["character-cost"], "16");
    let body = response.text().await.unwrap();
    assert!(body.ends_with('\n'), "every line ends in \\n");
    let (mut characters, mut starts, mut audio) = (String::new(), Vec::new(), 0);
    for line in body.lines().filter(|l| !l.is_empty()) {
        let chunk: Value = serde_json::from_str(line).unwrap();
        audio +=
            base64::engine::general_purpose::STANDARD.decode(chunk["audio_base64"].as_str().unwrap()).unwrap().len();
        assert!(chunk["normalized_alignment"].is_null());
        if let Some(a) = chunk["alignment"].as_object() {
            let n = a["characters"].as_array().unwrap().len();
            assert_eq!(a["character_start_times_seconds"].as_array().unwrap().len(), n);
            assert_eq!(a["character_end_times_seconds"].as_array().unwrap().len(), n);
            characters.extend(a["characters"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()));
            starts.extend(a["character_start_times_seconds"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()));
        }
    }
    assert_eq!(characters, text);
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
    assert!(audio > 16_000, "about a second of 16 kHz PCM: {audio} bytes");

    let inputs =
        json!({"inputs": [{"text": "First.", "voice_id": MAPPED}, {"text": "Then me.", "voice_id": "local:en-us"}]});
    let response = post(&app, &key, "/v1/text-to-dialogue/stream/with-timestamps", inputs).await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let chunks: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(chunks.iter().all(|c| c["voice_segments"].is_array()), "every chunk has voice_segments");
    let segments = chunks[0]["voice_segments"].as_array().unwrap();
    assert_eq!(segments.len(), 2);
    assert_eq!(segments[1]["voice_id"], "local:en-us");
    assert_eq!(
        (segments[1]["character_start_index"].as_u64(), segments[1]["character_end_index"].as_u64()),
        (Some(6), Some(14))
    );
    assert_eq!(chunks[0]["alignment"]["characters"].as_array().unwrap().len(), 14);

    let models = get(&app, &key, "/v1/models").await.json::<Value>().await.unwrap();
    let models = models.as_array().expect("a bare array");
    assert!(models.iter().all(|m| m["model_id"].is_string() && m["model_rates"]["character_cost_multiplier"] == 1.0));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_a_clear_4xx() {
    let (app, key) = gateway().await;
    let tts = format!("/v1/text-to-speech/{MAPPED}");
    let cases = [
        (tts.clone(), json!({"text": "a\u{0}b"}), 422, json!(["body", "text"])),
        (tts.clone(), json!({"text": "x".repeat(200_000)}), 422, json!(["body", "text"])),
        (tts.clone(), json!({"text": "hi", "seed": 1e40}), 422, json!(["body", "seed"])),
        (
            tts.clone(),
            json!({"text": "hi", "voice_settings": {"speed": 50}}),
            422,
            json!(["body", "voice_settings", "speed"]),
        ),
        (tts.clone(), json!({"text": "hi", "language_code": "en\u{7}"}), 422, json!(["body", "language_code"])),
        (
            format!("{tts}?output_format={}", "mp3_".repeat(5000)),
            json!({"text": "hi"}),
            422,
            json!(["query", "output_format"]),
        ),
        (
            format!("{tts}/stream?output_format=wav_16000"),
            json!({"text": "hi"}),
            422,
            json!(["query", "output_format"]),
        ),
        (
            "/v1/text-to-dialogue".to_owned(),
            json!({"inputs": [{"text": "hi"}]}),
            422,
            json!(["body", "inputs", 0, "voice_id"]),
        ),
        ("/v1/text-to-dialogue".to_owned(), json!({"inputs": null}), 422, json!(["body", "inputs"])),
        (
            "/v1/text-to-dialogue".to_owned(),
            json!({"inputs": vec![json!({"text": "hi", "voice_id": MAPPED}); 5000]}),
            422,
            json!(["body", "inputs"]),
        ),
    ];
    for (path, body, status, loc) in cases {
        let (got, answer) = failure(post(&app, &key, &path, body).await).await;
        assert_eq!(got, status, "{path}: {answer}");
        assert_eq!(answer["detail"][0]["loc"], loc, "{path}: {answer}");
    }
    // Unknown voices: on the local provider, and with no ElevenLabs provider to fall back to.
    for voice in ["local:nobody-here", "no-such-voice", "%E2%80%AE-bidi-%F0%9F%92%A5"] {
        let (status, answer) =
            failure(post(&app, &key, &format!("/v1/text-to-speech/{voice}"), json!({"text": "hi"})).await).await;
        assert_eq!(status, 404, "{voice}: {answer}");
        assert!(answer["detail"]["message"].is_string(), "{answer}");
    }
    let (status, answer) = failure(get(&app, &key, "/v1/voices/no-such-voice").await).await;
    assert_eq!((status, answer["detail"]["status"].as_str()), (404, Some("voice_not_found")));
    // Control characters in the path are refused before any handler.
    let (status, _) = failure(post(&app, &key, "/v1/text-to-speech/a%00b", json!({"text": "hi"})).await).await;
    assert_eq!(status / 100, 4);
    let (status, answer) = failure(get(&app, &key, "/v2/voices?page_size=1000").await).await;
    assert_eq!((status, &answer["detail"][0]["loc"]), (422, &json!(["query", "page_size"])));
    let (status, answer) = failure(get(&app, &key, "/v2/voices?next_page_token=%F0%9F%92%A5").await).await;
    assert_eq!((status, &answer["detail"][0]["loc"]), (422, &json!(["query", "next_page_token"])));
    let page: Value = get(&app, &key, "/v2/voices?search=EN-GB&page_size=100").await.json().await.unwrap();
    assert!(page["voices"].as_array().unwrap().iter().any(|v| v["voice_id"] == "local:en-gb"), "{page}");
    app.stop().await;
}

/// ElevenLabs' refusals pass through with their status and slug (a 422 stays a 422, which the
/// SDKs raise as `UnprocessableEntityError`); an ElevenLabs `model_id` with no ElevenLabs here is
/// spoken by the facade's default model; a seed beyond ElevenLabs' range is the caller's 422.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_refusals_keep_their_status_and_model_ids_fall_back() {
    use wiremock::{matchers::method, Mock, MockServer, ResponseTemplate};
    let upstream = MockServer::start().await;
    let invalid = json!({"detail": [{"loc": ["body", "voice_settings", "stability"], "msg": "must be at most 1", "type": "value_error"}]});
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(422).set_body_json(invalid)).mount(&upstream).await;
    let uri = upstream.uri();
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.elevenlabs = common::vendor("xi-test", uri);
    })
    .await;
    let (_, key) = app.speech_key().await;
    let body = json!({"text": "Hello.", "voice_settings": {"stability": 5}});
    let (status, error) = failure(post(&app, &key, "/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb", body).await).await;
    assert_eq!(status, 422, "{error}");
    assert!(error["detail"][0]["msg"].as_str().unwrap().contains("elevenlabs"), "{error}");
    let (status, error) = failure(
        post(&app, &key, &format!("/v1/text-to-speech/{MAPPED}"), json!({"text": "x", "seed": 5_000_000_000u64})).await,
    )
    .await;
    assert_eq!((status, &error["detail"][0]["loc"]), (422, &json!(["body", "seed"])), "{error}");
    app.stop().await;

    // No ElevenLabs provider: the SDKs' usual `model_id` does not stop the default model.
    let app = TestApp::spawn_with(Db::Sqlite, |c| c.facades.elevenlabs.default_model = Some("local".into())).await;
    let (_, key) = app.speech_key().await;
    let body = json!({"text": "Served anyway.", "model_id": "eleven_multilingual_v2"});
    let response = post(&app, &key, "/v1/text-to-speech/en-us?output_format=pcm_16000", body).await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().len() > 1000);
    // A dialogue's language is the request's: one problem, at its top-level field.
    let inputs = json!([{"text": "One.", "voice_id": "en-us"}, {"text": "Two.", "voice_id": "en-gb"}]);
    let body = json!({"inputs": inputs, "language_code": "e\u{7}n"});
    let (status, error) = failure(post(&app, &key, "/v1/text-to-dialogue", body).await).await;
    assert_eq!((status, error["detail"].as_array().unwrap().len()), (422, 1), "{error}");
    assert_eq!(error["detail"][0]["loc"], json!(["body", "language_code"]), "{error}");
    app.stop().await;
}

/// A saved voice used through the drop-in gets the ElevenLabs fields its provider takes, like a
/// voice named directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_voices_keep_vendor_fields() {
    use wiremock::{matchers::method, Mock, MockServer, ResponseTemplate};
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"ID3\x04\x00fake".to_vec()))
        .mount(&upstream)
        .await;
    let uri = upstream.uri();
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.elevenlabs = common::vendor("xi-test", uri);
    })
    .await;
    let (_, key) = app.speech_key().await;
    let saved = app
        .post(
            "/v1/voices",
            &key,
            json!({"title": "Narrator", "provider": "elevenlabs", "voiceId": "JBFqnCBsd6RMkjVDRZzb"}),
        )
        .await;
    assert_eq!(saved.status(), 201);
    let id = saved.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let body = json!({"text": "Hello.", "voice_settings": {"stability": 0.3}, "previous_text": "Before."});
    let response = post(&app, &key, &format!("/v1/text-to-speech/{id}"), body).await;
    assert_eq!(response.status(), 200);
    let sent = upstream.received_requests().await.unwrap();
    let forwarded: Value = serde_json::from_slice(&sent.last().unwrap().body).unwrap();
    assert!(sent.last().unwrap().url.path().contains("JBFqnCBsd6RMkjVDRZzb"), "{}", sent.last().unwrap().url);
    assert_eq!(forwarded["voice_settings"]["stability"], 0.3, "{forwarded}");
    assert_eq!(forwarded["previous_text"], "Before.", "{forwarded}");
    app.stop().await;
}

/// Only a vendor's judgement of the request (400, 404, 422) passes through with its status: a
/// 402 about the operator's account is no business of the caller's, and a control character in
/// the vendor's code never reaches the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_upstream_refusals_are_the_gateways() {
    use wiremock::{matchers::method, Mock, MockServer, ResponseTemplate};
    let upstream = MockServer::start().await;
    let unpaid = json!({"detail": {"status": "payment_required\n<b>", "message": "Workspace acme has no credits"}});
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(402).set_body_json(unpaid)).mount(&upstream).await;
    let uri = upstream.uri();
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.elevenlabs = common::vendor("xi-test", uri);
    })
    .await;
    let (_, key) = app.speech_key().await;
    let (status, error) =
        failure(post(&app, &key, "/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb", json!({"text": "Hello."})).await).await;
    assert_eq!((status, &error["detail"]["status"]), (400, &json!("upstream_rejected")), "{error}");
    assert!(!error.to_string().contains("acme") && !error.to_string().contains("<b>"), "{error}");
    app.stop().await;
}
