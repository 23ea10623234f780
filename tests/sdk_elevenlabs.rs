//! The official ElevenLabs SDKs — Python `elevenlabs` (installed from PyPI by the test script)
//! and JS `@elevenlabs/elevenlabs-js` (pinned in `tests/sdk/elevenlabs`) — with only their base
//! URL and key changed, against the gateway's ElevenLabs drop-in. The scripts
//! (`tests/sdk/elevenlabs/drive.py`, `drive.mjs`) make every call the facade serves and print
//! one JSON object; the same assertions check both. One voice is the fake ElevenLabs' own, the
//! other an ElevenLabs-style id mapped to the offline `local` voice, so each script's calls are
//! served by both providers (the JS script's text to speech entirely by the local voice).
#![cfg(feature = "local")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use std::path::PathBuf;

use base64::Engine;
use common::{Db, TestApp};
use serde_json::{json, Value};
use speechgate::config::VendorConfig;
use wiremock::{
    matchers::{method, path},
    Mock, MockServer, Request, Respond, ResponseTemplate,
};

/// A voice of the fake ElevenLabs.
const ELEVEN_VOICE: &str = "JBFqnCBsd6RMkjVDRZzb";
/// An ElevenLabs-style voice id mapped to the local voice (`[facades.elevenlabs.voices]`).
const LOCAL_VOICE: &str = "21m00Tcm4TlvDq8ikWAM";
/// The scripts' texts.
const TEXT: &str = "Hello from the gateway.";
const LINES: [&str; 2] = ["How was your weekend?", "Good, thanks."];
/// Fake MP3 the fake ElevenLabs sends when asked for mp3 (the gateway passes it through).
const FAKE_MP3: &[u8] = b"ID3\x04\x00\x00\x00\x00\x00\x00fake-mp3-frames";

/// The fake ElevenLabs: audio in the asked format, NDJSON with character alignment on
/// `/stream/with-timestamps`, its catalogue, and its 404 for a voice it does not have.
struct FakeElevenLabs;

impl Respond for FakeElevenLabs {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let url = &request.url;
        // A voice it does not have, in the path (text to speech) or in the inputs (dialogue).
        let unknown = |haystack: &[u8]| haystack.windows(13).any(|w| w == b"no-such-voice");
        if unknown(url.path().as_bytes()) || unknown(&request.body) {
            let detail = json!({"detail": {"status": "voice_not_found", "message": "A voice with the voice_id no-such-voice was not found."}});
            return ResponseTemplate::new(404).set_body_json(detail);
        }
        let format = url.query_pairs().find(|(k, _)| k == "output_format").map(|(_, v)| v.into_owned());
        let format = format.unwrap_or_else(|| "mp3_44100_128".to_owned());
        let rate: u32 = format.split('_').nth(1).and_then(|r| r.parse().ok()).unwrap_or(24_000);
        let text =
            serde_json::from_slice::<Value>(&request.body).ok().and_then(|b| b["text"].as_str().map(str::to_owned));
        let text = text.unwrap_or_default();
        let seconds = 0.05 * text.chars().count().max(4) as f64;
        let pcm = common::sine_pcm(rate, seconds);
        if url.path().ends_with("/with-timestamps") {
            // Two lines, the second cut mid-text, as ElevenLabs streams them.
            let chars: Vec<String> = text.chars().map(String::from).collect();
            let per = seconds / chars.len().max(1) as f64;
            let (cut, half) = (chars.len() / 2, (pcm.len() / 4) * 2);
            let line = |audio: &[u8], range: std::ops::Range<usize>| {
                let starts: Vec<f64> = range.clone().map(|i| i as f64 * per).collect();
                let ends: Vec<f64> = range.clone().map(|i| (i + 1) as f64 * per).collect();
                json!({
                    "audio_base64": base64::engine::general_purpose::STANDARD.encode(audio),
                    "alignment": {"characters": chars[range].to_vec(), "character_start_times_seconds": starts, "character_end_times_seconds": ends},
                    "normalized_alignment": null,
                })
            };
            let body = format!("{}\n{}\n", line(&pcm[..half], 0..cut), line(&pcm[half..], cut..chars.len()));
            return ResponseTemplate::new(200).set_body_string(body);
        }
        if format.starts_with("mp3") {
            return ResponseTemplate::new(200).set_body_bytes(FAKE_MP3.to_vec());
        }
        ResponseTemplate::new(200).set_body_bytes(pcm)
    }
}

/// The gateway with the fake ElevenLabs and the local voice, `LOCAL_VOICE` mapped to it.
async fn gateway() -> (TestApp, MockServer, String, String) {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/voices"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"voices": [
            {"voice_id": ELEVEN_VOICE, "name": "George", "labels": {"gender": "male", "accent": "british"}, "category": "premade"}
        ]})))
        .mount(&upstream)
        .await;
    Mock::given(method("POST")).respond_with(FakeElevenLabs).mount(&upstream).await;
    let uri = upstream.uri();
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.timeout_secs = 10;
        c.providers.elevenlabs =
            VendorConfig { api_key: Some("xi-secret".to_owned().into()), base_url: Some(uri), ..Default::default() };
        c.facades.elevenlabs.voices.insert(LOCAL_VOICE.to_owned(), "local:en-us".to_owned());
    })
    .await;
    let (key_id, key) = app.speech_key().await;
    (app, upstream, key_id, key)
}

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/elevenlabs")
}

/// Runs a driver script (in the directory it is in, where its packages are) and parses the one
/// JSON object it prints.
async fn drive(program: String, script: PathBuf, app: &TestApp, key: &str, voices: (&str, &str)) -> Value {
    let (gateway, key) = (app.url("/elevenlabs"), key.to_owned());
    let (voice, voice2) = (voices.0.to_owned(), voices.1.to_owned());
    let dir = script.parent().map(PathBuf::from).unwrap_or_else(sdk_dir);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(program)
            .arg(script)
            .current_dir(dir)
            .env("GATEWAY", gateway)
            .env("KEY", key)
            .env("VOICE", voice)
            .env("VOICE2", voice2)
            .env_remove("ELEVENLABS_API_KEY")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "SDK script failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// What both SDKs must see. `voice` is the voice of the text-to-speech calls; `python` picks
/// the SDK's error class names.
fn check(result: &Value, voice: &str, voice2: &str, python: bool) {
    let ok = |name: &str| -> &Value {
        let call = &result[name];
        assert_eq!(call["ok"], true, "{name}: {call}");
        call
    };
    let bytes = |name: &str| ok(name)["bytes"].as_u64().unwrap();
    for name in ["tts_convert", "tts_stream", "tts_stream_pcm", "dialogue_convert", "dialogue_stream"] {
        assert!(bytes(name) > FAKE_MP3.len() as u64 - 8, "{name}: {}", result[name]);
    }
    for name in ["tts_convert_wav", "dialogue_convert_wav"] {
        assert!(ok(name)["head"].as_str().unwrap().starts_with("52494646"), "{name} is RIFF: {}", result[name]);
    }
    if voice == ELEVEN_VOICE {
        // ElevenLabs' own mp3 passes through untouched.
        let head: String = FAKE_MP3[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(ok("tts_convert")["head"], head.as_str());
    }
    let raw = ok("tts_convert_raw");
    assert!(raw["request_id"].as_str().is_some_and(|id| id.len() >= 16), "{raw}");
    assert_eq!(raw["character_cost"], TEXT.chars().count().to_string());

    for name in ["tts_convert_with_timestamps", "tts_stream_with_timestamps"] {
        let timed = ok(name);
        assert_eq!(timed["characters"], TEXT, "{name}: the alignment spells the text");
        assert!(timed["bytes"].as_u64().unwrap() > 100, "{name}: {timed}");
        let (first, last_start, last_end) = (
            timed["first_start"].as_f64().unwrap(),
            timed["last_start"].as_f64().unwrap(),
            timed["last_end"].as_f64().unwrap(),
        );
        assert!(0.0 <= first && first <= last_start && last_start <= last_end && last_end > 0.0, "{name}: {timed}");
    }
    assert!(ok("tts_stream_with_timestamps")["chunks"].as_u64().unwrap() >= 2);

    let spoken = LINES.concat();
    for name in ["dialogue_convert_with_timestamps", "dialogue_stream_with_timestamps"] {
        let timed = ok(name);
        assert_eq!(timed["characters"], spoken.as_str(), "{name}");
        let segments = timed["voice_segments"].as_array().unwrap_or_else(|| panic!("{name}: {timed}"));
        assert_eq!(segments.len(), 2, "{name}: {timed}");
        let first_len = LINES[0].chars().count() as u64;
        for (i, (segment, voice_id)) in segments.iter().zip([voice, voice2]).enumerate() {
            assert_eq!(segment["voice_id"], voice_id, "{name}");
            assert_eq!(segment["dialogue_input_index"], i, "{name}");
            let (start, end) = if i == 0 { (0, first_len) } else { (first_len, spoken.chars().count() as u64) };
            assert_eq!(segment["character_start_index"], start, "{name}");
            assert_eq!(segment["character_end_index"], end, "{name}");
            let (t0, t1) =
                (segment["start_time_seconds"].as_f64().unwrap(), segment["end_time_seconds"].as_f64().unwrap());
            assert!(t0 < t1, "{name}: {segment}");
        }
        let (end0, start1) =
            (segments[0]["end_time_seconds"].as_f64().unwrap(), segments[1]["start_time_seconds"].as_f64().unwrap());
        assert!(end0 <= start1, "{name}: the second input follows the first");
    }

    let ids = |name: &str| -> Vec<String> {
        ok(name)["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    };
    let all = ids("voices_get_all");
    for expected in [ELEVEN_VOICE, LOCAL_VOICE, "local:en-us"] {
        assert!(all.iter().any(|id| id == expected), "{expected} listed: {all:?}");
    }
    let search = ok("voices_search");
    assert_eq!(search["ids"].as_array().unwrap().len(), 10);
    assert_eq!(search["total_count"].as_u64().unwrap() as usize, all.len());
    assert_eq!(search["has_more"], true);
    assert_eq!(search["next_page_token"], "10");
    assert_eq!(ok("voices_get")["id"], voice);
    let models = ids("models_list");
    assert!(models.iter().any(|m| m == "eleven_multilingual_v2"), "{models:?}");
    assert!(models.iter().any(|m| m.starts_with("local/")), "{models:?}");

    let error = |name: &str| -> &Value {
        let call = &result[name];
        assert_eq!(call["ok"], false, "{name}: {call}");
        &call["error"]
    };
    let generic = if python { "ApiError" } else { "ElevenLabsError" };
    for (name, loc) in [
        ("err_422_no_text", json!(["body", "text"])),
        ("err_422_output_format", json!(["query", "output_format"])),
        ("err_422_with_timestamps", json!(["body", "text"])),
    ] {
        let e = error(name);
        assert_eq!(
            (e["class"].as_str(), e["status"].as_u64()),
            (Some("UnprocessableEntityError"), Some(422)),
            "{name}: {e}"
        );
        assert_eq!(e["body"]["detail"][0]["loc"], loc, "{name}: {e}");
        assert!(e["body"]["detail"][0]["msg"].is_string() && e["body"]["detail"][0]["type"].is_string(), "{e}");
    }
    for name in ["err_401", "err_401_json"] {
        let e = error(name);
        assert_eq!((e["class"].as_str(), e["status"].as_u64()), (Some(generic), Some(401)), "{name}: {e}");
        assert_eq!(e["body"]["detail"]["status"], "invalid_api_key", "{name}: {e}");
    }
    for name in ["err_404", "err_404_voice", "err_404_dialogue"] {
        let e = error(name);
        assert_eq!((e["class"].as_str(), e["status"].as_u64()), (Some(generic), Some(404)), "{name}: {e}");
        assert!(e["body"]["detail"]["message"].as_str().is_some_and(|m| m.contains("no-such-voice")), "{name}: {e}");
    }
    assert_eq!(error("err_404_voice")["body"]["detail"]["status"], "voice_not_found");
}

/// The routes the scripts call, as usage records them, and the provider that served the text
/// to speech.
async fn check_usage(app: TestApp, key_id: &str, provider: &str) {
    let usage = app.stop_and_read_usage(Some(key_id)).await;
    let routes: std::collections::BTreeSet<&str> = usage.iter().map(|u| u.event.route.as_str()).collect();
    for route in [
        "/elevenlabs/v1/text-to-speech/{voice_id}",
        "/elevenlabs/v1/text-to-speech/{voice_id}/stream/with-timestamps",
        "/elevenlabs/v1/text-to-dialogue",
        "/elevenlabs/v1/text-to-dialogue/stream/with-timestamps",
        "/elevenlabs/v2/voices",
        "/elevenlabs/v1/models",
    ] {
        assert!(routes.contains(route), "{route} metered: {routes:?}");
    }
    let spoken = usage
        .iter()
        .find(|u| u.event.route == "/elevenlabs/v1/text-to-speech/{voice_id}" && u.event.status == 200)
        .unwrap();
    assert_eq!(
        (spoken.event.provider.as_deref(), spoken.event.characters),
        (Some(provider), TEXT.chars().count() as i64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elevenlabs_python_sdk_is_served_by_any_provider() {
    let python = std::env::var("SPEECHGATE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("{}", common::needs("SPEECHGATE_TEST_PYTHON: a Python with the official `elevenlabs` SDK (2.78.0)"))
    });
    let (app, _upstream, key_id, key) = gateway().await;
    let result = drive(python, sdk_dir().join("drive.py"), &app, &key, (ELEVEN_VOICE, LOCAL_VOICE)).await;
    assert_eq!(result["sdk"]["version"], "2.78.0", "{}", result["sdk"]);
    check(&result, ELEVEN_VOICE, LOCAL_VOICE, true);
    check_usage(app, &key_id, "elevenlabs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elevenlabs_js_sdk_is_served_by_the_local_voice() {
    let dir = std::env::var("SPEECHGATE_TEST_ELEVENLABS_SDK").unwrap_or_else(|_| {
        panic!("{}", common::needs("SPEECHGATE_TEST_ELEVENLABS_SDK: tests/sdk/elevenlabs after `npm ci`"))
    });
    let dir = PathBuf::from(dir);
    assert!(dir.join("node_modules/@elevenlabs/elevenlabs-js").is_dir(), "run `npm ci` there");
    let (app, _upstream, key_id, key) = gateway().await;
    let result = drive("node".to_owned(), dir.join("drive.mjs"), &app, &key, (LOCAL_VOICE, ELEVEN_VOICE)).await;
    assert_eq!(result["sdk"]["version"], "2.73.0", "{}", result["sdk"]);
    check(&result, LOCAL_VOICE, ELEVEN_VOICE, false);
    check_usage(app, &key_id, "local").await;
}
