//! The official Speechbase SDK (`@speech-sdk/core`, pinned in `tests/sdk/speechbase` and installed
//! by the test script), with only its gateway client's base URL and key changed, generates a
//! three-turn conversation across two providers through the gateway: as one file, split into one
//! segment per turn, and failing (a turn's provider down before the file starts and after, and an
//! unknown model). The script it runs is `tests/sdk/speechbase/conversation.mjs`; it prints one
//! JSON line that this test checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use base64::Engine;
use common::{Db, TestApp};
use serde_json::{json, Value};
use speechgate::config::VendorConfig;
use wiremock::{matchers::any, Mock, MockServer, Request, ResponseTemplate};

const SECRET: &str = "vendor-secret-0000";
/// The SDK version `tests/sdk/speechbase/package.json` pins (and the script installs).
const SDK_VERSION: &str = "0.15.0";
const ELEVENLABS_VOICE: &str = "JBFqnCBsd6RMkjVDRZzb";
/// An ElevenLabs voice the fake answers with 503, for the failing conversation.
const DOWN_VOICE: &str = "DownDownDownDownDown";
const GAP_MS: f64 = 250.0;
/// Each turn's text and how long the fake vendors make it speak, so every turn has its own
/// length and a segment can be told from the others by its duration.
const TURNS: [(&str, f64); 3] =
    [("How was your weekend?", 0.6), ("Good, I finally caught up on sleep.", 0.9), ("Lucky you.", 0.4)];
/// Texts of the conversation that fails on a model check, which no vendor may ever be asked for.
const UNHEARD: &str = "This turn is never spoken.";
/// A turn 0 the fake OpenAI answers only after [`SLOW`], so that another turn's failure comes
/// first and the gateway, which has not committed a status yet, answers with a problem.
const SLOW_TEXT: &str = "Wait for it.";
/// A turn the fake ElevenLabs fails only after [`SLOW`], when turn 0 is already streaming.
const LATE_TEXT: &str = "The outage comes late.";
const SLOW: std::time::Duration = std::time::Duration::from_millis(800);
/// Tolerance on durations: sample-exact WAV, so only rounding to milliseconds and edge fades.
const SLACK_MS: f64 = 30.0;

/// How long the fake vendors speak `text`.
fn seconds_for(text: &str) -> f64 {
    TURNS.iter().find(|(t, _)| *t == text).map_or(0.5, |(_, s)| *s)
}

fn pcm_reply(rate: u32, text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_bytes(common::sine_pcm(rate, seconds_for(text)))
        .insert_header("content-type", "application/octet-stream")
}

/// A fake OpenAI (`POST /v1/audio/speech`, 24 kHz) and a fake ElevenLabs
/// (`POST /v1/text-to-speech/{voice}/stream?output_format=pcm_<rate>`) on one server, answering
/// headerless PCM (OpenAI also WAV) at the rate asked for. Anything else is refused in the
/// vendor's error shape, so a gateway asking for another format fails the test with a reason.
struct FakeVendors;

impl wiremock::Respond for FakeVendors {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let path = request.url.path();
        if path == "/v1/audio/speech" {
            let text = body["input"].as_str().unwrap_or_default();
            let delay = if text == SLOW_TEXT { SLOW } else { std::time::Duration::ZERO };
            return match body["response_format"].as_str() {
                Some("pcm") => pcm_reply(24_000, text).set_delay(delay),
                Some("wav") => ResponseTemplate::new(200)
                    .set_body_bytes(wav(24_000, &common::sine_pcm(24_000, seconds_for(text))))
                    .insert_header("content-type", "audio/wav"),
                other => ResponseTemplate::new(400).set_body_json(json!({"error": {
                    "message": format!("the fake OpenAI answers only pcm and wav, not {other:?}"),
                    "type": "invalid_request_error", "param": "response_format", "code": null}})),
            };
        }
        if let Some(rest) = path.strip_prefix("/v1/text-to-speech/") {
            let text = body["text"].as_str().unwrap_or_default();
            if rest.split('/').next() == Some(DOWN_VOICE) {
                let outage = ResponseTemplate::new(503)
                    .set_body_json(json!({"detail": {"status": "service_unavailable", "message": "fake outage"}}));
                return if text == LATE_TEXT { outage.set_delay(SLOW) } else { outage };
            }
            let format = request
                .url
                .query_pairs()
                .find(|(k, _)| k == "output_format")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            return match format.strip_prefix("pcm_").and_then(|rate| rate.parse().ok()) {
                Some(rate) => pcm_reply(rate, text),
                None => ResponseTemplate::new(400).set_body_json(json!({"detail": {
                    "status": "invalid_output_format",
                    "message": format!("the fake ElevenLabs answers only pcm_<rate>, not {format:?}")}})),
            };
        }
        ResponseTemplate::new(404).set_body_json(json!({"error": {"message": format!("no fake at {path}")}}))
    }
}

/// A 16-bit mono WAV around `pcm`.
fn wav(rate: u32, pcm: &[u8]) -> Vec<u8> {
    let len = u32::try_from(pcm.len()).unwrap();
    let mut out = Vec::with_capacity(44 + pcm.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(pcm);
    out
}

/// The sample rate and samples of a 16-bit mono WAV; a `data` size of `0xFFFF_FFFF` (a streamed
/// WAV) means "to the end".
fn wav_samples(bytes: &[u8]) -> (u32, Vec<i16>) {
    assert!(bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE", "not a WAV");
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let u16_at = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap());
    let (mut at, mut rate) = (12, None);
    while at + 8 <= bytes.len() {
        let (id, size) = (&bytes[at..at + 4], u32_at(at + 4) as usize);
        let body = at + 8;
        if id == b"fmt " {
            assert_eq!((u16_at(body), u16_at(body + 2), u16_at(body + 14)), (1, 1, 16), "16-bit mono PCM");
            rate = Some(u32_at(body + 4));
        } else if id == b"data" {
            let end = body.saturating_add(size).min(bytes.len());
            let samples = bytes[body..end].chunks_exact(2).map(|s| i16::from_le_bytes([s[0], s[1]])).collect();
            return (rate.expect("fmt before data"), samples);
        }
        at = body + size + (size & 1);
    }
    panic!("a WAV without a data chunk");
}

/// The RMS level in dBFS of `samples` between `from` and `to` seconds.
fn level_dbfs(samples: &[i16], rate: u32, from: f64, to: f64) -> f64 {
    let index = |t: f64| ((t * f64::from(rate)) as usize).min(samples.len());
    let window = &samples[index(from)..index(to)];
    assert!(!window.is_empty(), "window {from}..{to} s is past the end ({} samples)", samples.len());
    let mean_square = window.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / window.len() as f64;
    20.0 * (mean_square.sqrt() / 32768.0).max(1e-9).log10()
}

fn decode(encoded: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(encoded.as_str().expect("base64 string")).expect("valid base64")
}

fn close(actual: f64, expected: f64, what: &str) {
    assert!((actual - expected).abs() <= SLACK_MS, "{what}: {actual} ms, expected {expected} ms (± {SLACK_MS})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speechbase_sdk_generates_conversations() {
    let sdk = std::env::var("SPEECHGATE_TEST_SPEECHBASE_SDK").unwrap_or_else(|_| {
        panic!(
            "{}",
            common::needs(
                "SPEECHGATE_TEST_SPEECHBASE_SDK: tests/sdk/speechbase with the official Speechbase SDK \
                 installed (`npm ci` there) and Node.js on PATH"
            )
        )
    });
    let upstream = MockServer::start().await;
    Mock::given(any()).respond_with(FakeVendors).mount(&upstream).await;
    let uri = upstream.uri();
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.local.enabled = false;
        c.providers.timeout_secs = 2;
        c.providers.openai =
            VendorConfig { api_key: Some(SECRET.to_owned().into()), base_url: Some(format!("{uri}/v1")) };
        c.providers.elevenlabs = VendorConfig { api_key: Some(SECRET.to_owned().into()), base_url: Some(uri) };
    })
    .await;
    let (key_id, key) = app.speech_key().await;

    let turns = json!([
        {"model": "openai/tts-1", "voice": "alloy", "text": TURNS[0].0},
        {"model": "elevenlabs/eleven_v3", "voice": ELEVENLABS_VOICE, "text": TURNS[1].0},
        {"model": "openai/tts-1", "voice": "echo", "text": TURNS[2].0},
    ]);
    let options = json!({"gapMs": GAP_MS, "output": {"format": "wav"}});
    let fails = json!({
        "provider_down": [
            {"model": "openai/tts-1", "voice": "alloy", "text": SLOW_TEXT},
            {"model": "elevenlabs/eleven_v3", "voice": DOWN_VOICE, "text": TURNS[1].0},
        ],
        "late_failure": [
            {"model": "openai/tts-1", "voice": "alloy", "text": TURNS[0].0},
            {"model": "elevenlabs/eleven_v3", "voice": DOWN_VOICE, "text": LATE_TEXT},
        ],
        "unknown_model": [
            {"model": "openai/tts-1", "voice": "alloy", "text": UNHEARD},
            {"model": "elevenlabs/eleven_v3", "voice": ELEVENLABS_VOICE, "text": UNHEARD},
            {"model": "nosuchvendor/nosuchmodel", "voice": "x", "text": UNHEARD},
        ],
    });
    let gateway = format!("http://{}", app.addr);
    let script = std::path::Path::new(&sdk).join("conversation.mjs");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(std::env::var("SPEECHGATE_TEST_NODE").unwrap_or_else(|_| "node".into()))
            .arg(script)
            .current_dir(&sdk)
            .env("GATEWAY", gateway)
            .env("KEY", key)
            .env("TURNS", turns.to_string())
            .env("OPTIONS", options.to_string())
            .env("FAILS", fails.to_string())
            .env_remove("SPEECHBASE_API_KEY")
            .env_remove("SPEECH_GATEWAY_API_KEY")
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", common::needs("Node.js (`node` on PATH, or SPEECHGATE_TEST_NODE)")))
    })
    .await
    .unwrap();
    assert!(output.status.success(), "SDK script failed: {}", String::from_utf8_lossy(&output.stderr));
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    let show = |v: &Value| {
        // The whole result without its audio, for failure messages.
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("audio");
        }
        for segment in v["audioSegments"].as_array_mut().into_iter().flatten() {
            if let Some(o) = segment.as_object_mut() {
                o.remove("audio");
            }
        }
        v.to_string()
    };
    assert_eq!(result["sdk"]["version"], SDK_VERSION, "the script ran another SDK version");

    // (a) One file. The SDK sent its own wire shape, which the gateway accepted as it is.
    let whole = &result["whole"];
    assert_eq!(whole["ok"], true, "{}", show(whole));
    let sent = &whole["sent"];
    assert_eq!(sent["path"], "/v1/audio/conversation");
    assert_eq!(sent["headers"]["authorization"], "Bearer <KEY>");
    assert_eq!(sent["body"]["mode"], "conversation", "SDK {SDK_VERSION} sends mode: conversation");
    assert_eq!(sent["body"]["volumeDbfs"], -20, "the SDK always sends its default volume");
    assert_eq!(sent["body"]["output"], json!({"format": "wav"}), "the SDK sends output as an object");
    assert!(sent["body"].get("split").is_none());
    assert_eq!(sent["contentType"], "audio/wav");
    assert_eq!(whole["mediaType"], "audio/wav", "the SDK takes the media type from Content-Type");
    let audio = decode(&whole["audio"]);
    assert_eq!(whole["bytes"], audio.len());
    let expected_ms = TURNS.iter().map(|(_, s)| s * 1000.0).sum::<f64>() + 2.0 * GAP_MS;
    let (codec, _, channels, seconds) = common::ffprobe(&audio, None);
    assert_eq!((codec.as_str(), channels), ("pcm_s16le", 1));
    close(seconds * 1000.0, expected_ms, "the whole conversation (ffprobe)");
    // The SDK measures the audio itself (mediabunny); it must read the gateway's WAV too.
    close(whole["durationMs"].as_f64().expect("the SDK could measure the audio"), expected_ms, "the SDK's duration");
    // Turns in order, joined by silent gaps of exactly gapMs, matched in loudness, and the file's
    // peak at the volumeDbfs the SDK sent (-20; the fakes' own sines peak at about -6 dBFS).
    let (rate, samples) = wav_samples(&audio);
    let peak = samples.iter().map(|s| i32::from(*s).unsigned_abs()).max().unwrap_or(0);
    let peak_dbfs = 20.0 * (f64::from(peak) / 32768.0).log10();
    assert!((-20.5..=-19.5).contains(&peak_dbfs), "peak at {peak_dbfs:.2} dBFS, not at the -20 the SDK sent");
    let edge = 0.04;
    let mut at = 0.0;
    let mut levels = Vec::new();
    for (i, (_, turn_seconds)) in TURNS.iter().enumerate() {
        let level = level_dbfs(&samples, rate, at + edge, at + turn_seconds - edge);
        // A sine's RMS is 3 dB under its peak.
        assert!((-24.0..=-22.0).contains(&level), "turn {i} at {level:.1} dBFS RMS, not near -23");
        levels.push(level);
        at += turn_seconds;
        if i + 1 < TURNS.len() {
            let gap = level_dbfs(&samples, rate, at + edge, at + GAP_MS / 1000.0 - edge);
            assert!(gap < -60.0, "the gap after turn {i} is not silent: {gap:.1} dBFS");
            at += GAP_MS / 1000.0;
        }
    }
    let spread = levels.iter().copied().fold(f64::MIN, f64::max) - levels.iter().copied().fold(f64::MAX, f64::min);
    assert!(spread < 1.5, "turns are not loudness-matched: {levels:?}");

    // (b) One segment per turn, in the JSON envelope.
    let split = &result["split"];
    assert_eq!(split["ok"], true, "{}", show(split));
    assert_eq!(split["sent"]["body"]["split"], true);
    assert!(split["contentType"].as_str().unwrap().starts_with("application/json"), "{}", show(split));
    // The SDK, which knows no `split`, hands the envelope back as "audio" of that media type.
    assert!(split["sdkMediaType"].as_str().unwrap().starts_with("application/json"));
    assert_eq!(split["keys"], json!(["audioSegments", "warnings"]), "{}", show(split));
    assert!(split["warnings"].is_array());
    let segments = split["audioSegments"].as_array().unwrap();
    assert_eq!(segments.len(), TURNS.len(), "{}", show(split));
    for (i, (segment, (_, turn_seconds))) in segments.iter().zip(TURNS).enumerate() {
        assert_eq!(segment["turnIndex"], i, "{}", show(split));
        assert_eq!(segment["mediaType"], "audio/wav", "{}", show(split));
        let declared = segment["durationMs"].as_f64().expect("durationMs is a number");
        close(declared, turn_seconds * 1000.0, &format!("segment {i}'s durationMs"));
        let (_, _, _, seconds) = common::ffprobe(&decode(&segment["audio"]), None);
        close(seconds * 1000.0, declared, &format!("segment {i} as decoded"));
    }

    // (c) Failures reach the SDK as its ApiError, with the gateway's problem body in
    // `responseBody`: the SDK reads `code` but not `turn_index` (its ApiError.turnIndex is only set
    // by its own local stitching), so callers find the turn in the problem body.
    let down = &result["errors"]["provider_down"];
    assert_eq!(down["ok"], false, "{}", show(down));
    assert_eq!(down["attempts"], 1, "the script turns the SDK's 5xx retries off");
    assert_eq!(down["sent"]["contentType"], "application/problem+json");
    let error = &down["error"];
    assert_eq!(error["name"], "ApiError", "{error}");
    assert_eq!(error["status"], 503, "{error}");
    assert_eq!(error["code"], "provider_unavailable", "{error}");
    assert_eq!(error["sdkTurnIndex"], Value::Null);
    let problem = &error["problem"];
    assert_eq!(problem["status"], 503, "{problem}");
    assert_eq!(problem["turn_index"], 1, "{problem}");
    assert_eq!(problem["provider"], "elevenlabs", "{problem}");
    assert_eq!(problem["upstream_status"], 503, "{problem}");
    assert!(problem["requestId"].is_string() && problem["detail"].is_string(), "{problem}");
    // The SDK's message is the problem's detail (through the OpenAI-shaped `error.message`).
    assert!(error["message"].as_str().unwrap().starts_with("API error 503: "), "{error}");

    // A turn that fails once the file is streaming cannot change the status any more: the
    // gateway breaks the stream off, and the SDK, which reads the whole body, throws fetch's own
    // error (no status, code or turn) rather than return a truncated file as if it were whole.
    let late = &result["errors"]["late_failure"];
    assert_eq!(late["ok"], false, "the SDK took a broken-off conversation for a whole one: {}", show(late));
    if late["sent"]["status"] == 200 {
        assert_eq!(late["error"]["name"], "TypeError", "{}", show(late));
        assert_eq!(late["error"]["status"], Value::Null, "{}", show(late));
    } else {
        assert_eq!(late["error"]["status"], 503, "{}", show(late));
        assert_eq!(late["error"]["problem"]["turn_index"], 1, "{}", show(late));
    }

    let unknown = &result["errors"]["unknown_model"];
    assert_eq!(unknown["ok"], false, "{}", show(unknown));
    let error = &unknown["error"];
    assert_eq!(error["status"], 404, "{error}");
    assert_eq!(error["code"], "unknown_model", "{error}");
    assert_eq!(error["problem"]["turn_index"], 2, "{error}");
    // Bad input never reaches a provider: not even the turns before the bad one were voiced.
    let asked = upstream.received_requests().await.unwrap_or_default();
    assert!(
        !asked.iter().any(|r| String::from_utf8_lossy(&r.body).contains(UNHEARD)),
        "a vendor was called for a conversation with an unknown model"
    );
    // Each turn went to its own provider: turns 0 and 2 to OpenAI, turn 1 to ElevenLabs.
    let voiced = |text: &str| -> Vec<String> {
        asked
            .iter()
            .filter(|r| String::from_utf8_lossy(&r.body).contains(&serde_json::to_string(text).unwrap()))
            .map(|r| r.url.path().to_owned())
            .collect()
    };
    for (text, expected) in
        [(TURNS[0].0, "/v1/audio/speech"), (TURNS[1].0, "/v1/text-to-speech/"), (TURNS[2].0, "/v1/audio/speech")]
    {
        let paths = voiced(text);
        assert!(!paths.is_empty() && paths.iter().all(|p| p.starts_with(expected)), "{text:?} went to {paths:?}");
    }

    // Every SDK request was metered (the script's failing cases run in key order, so compare
    // outcomes, not positions): the two whole conversations with one line per turn, attributed
    // to each turn's provider; the failures with their codes, the broken-off stream included.
    let usage = app.stop_and_read_usage(Some(&key_id)).await;
    let conversations: Vec<_> =
        usage.iter().map(|u| &u.event).filter(|e| e.route == "/v1/audio/conversation").collect();
    let mut outcomes: Vec<(u16, Option<&str>)> =
        conversations.iter().map(|e| (e.status, e.error_code.as_deref())).collect();
    outcomes.sort_unstable();
    let late_status = if late["sent"]["status"] == 200 { 200 } else { 503 };
    let mut expected = vec![
        (200, None),
        (200, None),
        (late_status, Some("provider_unavailable")),
        (503, Some("provider_unavailable")),
        (404, Some("unknown_model")),
    ];
    expected.sort_unstable();
    assert_eq!(outcomes, expected, "{conversations:#?}");
    let characters = i64::try_from(TURNS.iter().map(|(t, _)| t.chars().count()).sum::<usize>()).unwrap();
    for whole in conversations.iter().filter(|e| e.error_code.is_none()) {
        let providers: Vec<&str> = whole.segments.iter().map(|s| s.provider.as_str()).collect();
        assert_eq!(providers, ["openai", "elevenlabs", "openai"], "{whole:?}");
        assert_eq!(whole.characters, characters, "{whole:?}");
    }
}
