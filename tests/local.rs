//! Acceptance: with no provider account and no network, a gateway key gets playable audio from
//! the built-in `local` provider in every output format (checked by ffmpeg).
#![cfg(feature = "local")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use common::{ffprobe, Db, TestApp};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_provider_speaks_every_format() {
    // The default configuration: no vendor credentials at all.
    let app = TestApp::spawn(Db::Sqlite).await;
    let (_, key) = app.speech_key().await;

    let providers: Value = app.get("/v1/audio/providers", Some(&key)).await.json().await.unwrap();
    let local = providers["data"].as_array().unwrap().iter().find(|p| p["id"] == "local").unwrap();
    assert_eq!(local["enabled"], true);

    // (output, codec ffmpeg reports, sample rate, raw format for ffprobe)
    type Case = (Value, &'static str, u32, Option<(&'static str, u32)>);
    let cases: [Case; 8] = [
        (Value::Null, "pcm_s16le", 22_050, None), // Speechbase default: WAV at the provider's rate
        (json!("mp3"), "mp3", 22_050, None),
        (json!({"format": "opus", "sampleRate": 48000}), "opus", 48_000, None),
        (json!({"format": "flac", "sampleRate": 44100}), "flac", 44_100, None),
        (json!({"format": "wav", "sampleRate": 16000}), "pcm_s16le", 16_000, None),
        (json!({"format": "pcm", "sampleRate": 24000}), "pcm_s16le", 24_000, Some(("s16le", 24_000))),
        (json!("ulaw"), "pcm_mulaw", 8_000, Some(("mulaw", 8_000))),
        (json!("alaw"), "pcm_alaw", 8_000, Some(("alaw", 8_000))),
    ];
    for (output, codec, rate, raw) in cases {
        let mut body =
            json!({"model": "local", "voice": "en-us", "text": "Hello world. This is speechgate, speaking offline."});
        if !output.is_null() {
            body["output"] = output.clone();
        }
        let response = app.client.post(app.url("/v1/audio/speech")).bearer_auth(&key).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200, "{output}");
        assert_eq!(response.headers()["x-speech-provider"], "local");
        let audio = response.bytes().await.unwrap();
        let (got_codec, got_rate, channels, seconds) = ffprobe(&audio, raw);
        assert_eq!((got_codec.as_str(), got_rate, channels), (codec, rate, 1), "{output}");
        assert!((1.0..15.0).contains(&seconds), "{output}: {seconds} s of speech");
    }

    // OpenAI dialect against the local provider, with the default mp3.
    let body = json!({"model": "local", "voice": "en-gb", "input": "Drop-in.", "speed": 1.25});
    let response = app.client.post(app.url("/v1/audio/speech")).bearer_auth(&key).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/mpeg");
    let voices: Value = app.get("/v1/audio/providers/local/voices", Some(&key)).await.json().await.unwrap();
    assert!(voices["data"].as_array().unwrap().len() > 8);
    app.stop().await;
}
