//! Output conversion through `/v1/audio/speech`: the fake OpenAI upstream sends 24 kHz PCM,
//! the gateway produces every other format and rate, and ffmpeg — an independent decoder —
//! checks codec, rate, channels and duration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use common::{ffprobe, problem, sine_pcm, Db, TestApp};
use serde_json::{json, Value};
use wiremock::{
    matchers::{body_partial_json, method},
    Mock, MockServer, ResponseTemplate,
};

async fn gateway() -> (TestApp, MockServer, String) {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"response_format": "pcm"})))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(sine_pcm(24_000, 1.0)))
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"response_format": "mp3"})))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"native-mp3".to_vec()))
        .mount(&upstream)
        .await;
    let app = TestApp::with_openai(Db::Sqlite, &upstream.uri(), "sk-x").await;
    let (_, key) = app.speech_key().await;
    (app, upstream, key)
}

async fn speak(app: &TestApp, key: &str, path: &str, body: Value) -> reqwest::Response {
    app.client.post(app.url(path)).bearer_auth(key).json(&body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_output_format_decodes_with_ffmpeg() {
    let (app, _upstream, key) = gateway().await;
    // (output, expected codec, rate, raw format for ffprobe, expected content type)
    let cases = [
        (json!({"format": "wav", "sampleRate": 16000}), "pcm_s16le", 16_000, None, "audio/wav"),
        (json!({"format": "mp3", "sampleRate": 44100, "bitrate": 64}), "mp3", 44_100, None, "audio/mpeg"),
        (json!({"format": "mp3", "sampleRate": 16000}), "mp3", 16_000, None, "audio/mpeg"),
        (json!({"format": "opus", "sampleRate": 48000}), "opus", 48_000, None, "audio/ogg; codecs=opus"),
        (json!({"format": "flac", "sampleRate": 22050}), "flac", 22_050, None, "audio/flac"),
        (json!({"format": "pcm", "sampleRate": 8000}), "pcm_s16le", 8_000, Some(("s16le", 8_000)), "audio/pcm"),
        (json!({"format": "pcm", "sampleRate": 48000}), "pcm_s16le", 48_000, Some(("s16le", 48_000)), "audio/pcm"),
        (json!("ulaw"), "pcm_mulaw", 8_000, Some(("mulaw", 8_000)), "audio/basic"),
        (json!("alaw"), "pcm_alaw", 8_000, Some(("alaw", 8_000)), "audio/x-alaw-basic"),
    ];
    for (output, codec, rate, raw, content_type) in cases {
        let body = json!({"model": "openai/tts-1", "voice": "alloy", "text": "One second of tone.", "output": output});
        let response = speak(&app, &key, "/v1/audio/speech", body).await;
        assert_eq!(response.status(), 200, "{output}");
        assert_eq!(response.headers()["content-type"], content_type, "{output}");
        let audio = response.bytes().await.unwrap();
        let (got_codec, got_rate, channels, seconds) = ffprobe(&audio, raw);
        assert_eq!((got_codec.as_str(), got_rate, channels), (codec, rate, 1), "{output}");
        assert!((0.95..=1.12).contains(&seconds), "{output}: {seconds} s");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_is_normalised_to_the_requested_peak() {
    let (app, _upstream, key) = gateway().await;
    let body = json!({"model": "openai/tts-1", "voice": "alloy", "text": "Tone.", "output": {"format": "pcm", "sampleRate": 24000}, "volumeDbfs": -3.0});
    let response = speak(&app, &key, "/v1/audio/speech", body).await;
    assert_eq!(response.status(), 200);
    let audio = response.bytes().await.unwrap();
    let peak = audio.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]).unsigned_abs()).max().unwrap();
    let dbfs = 20.0 * (f64::from(peak) / 32768.0).log10();
    assert!((dbfs + 3.0).abs() < 0.2, "peak {dbfs} dBFS");
    assert_eq!(audio.len(), 48_000, "one second, whole");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_endpoint_passes_native_audio_and_refuses_conversion() {
    let (app, upstream, key) = gateway().await;
    let body = json!({"model": "openai/tts-1", "voice": "alloy", "text": "Hi."});
    let response = speak(&app, &key, "/v1/audio/speech/stream", body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/mpeg");
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"native-mp3");

    let before = upstream.received_requests().await.unwrap().len();
    for (extra, path) in [
        (json!({"output": {"format": "wav", "sampleRate": 16000}}), json!(["output"])),
        (json!({"volumeDbfs": -3}), json!(["volumeDbfs"])),
    ] {
        let mut body = json!({"model": "openai/tts-1", "voice": "alloy", "text": "Hi."});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let (status, found) = problem(speak(&app, &key, "/v1/audio/speech/stream", body).await).await;
        assert_eq!((status, &found["validation"][0]["path"]), (400, &path), "{found}");
    }
    assert_eq!(upstream.received_requests().await.unwrap().len(), before, "refused requests never reach the provider");

    // A format the gateway cannot encode and the provider does not make at that rate.
    let body = json!({"model": "openai/tts-1", "voice": "alloy", "text": "Hi.", "output": {"format": "aac", "sampleRate": 16000}});
    let (status, found) = problem(speak(&app, &key, "/v1/audio/speech", body).await).await;
    assert_eq!((status, &found["validation"][0]["path"]), (400, &json!(["output"])), "{found}");
    app.stop().await;
}
