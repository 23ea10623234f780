//! The official Speechbase SDK (`@speech-sdk/core`, pinned in `tests/sdk/speechbase` and installed
//! by the test script), with only its gateway client's base URL and key changed, generates a
//! three-turn conversation across two providers through the gateway: as one file, split into one
//! segment per turn, and failing (a turn's provider down before the file starts and after, and an
//! unknown model). The script it runs is `tests/sdk/speechbase/conversation.mjs`; it prints one
//! JSON line that this test checks. A second test has the SDK ask for word timestamps
//! (`generateSpeech` and `generateConversation` with `timestamps: true`) through
//! `tests/sdk/speechbase/timestamps.mjs`, the same way.
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

/// How long the fake ElevenLabs says each character of the text takes: character `i` from
/// `i * CHAR_SECONDS` to `(i + 1) * CHAR_SECONDS`, spaces included (a turn's text fits its audio).
const CHAR_SECONDS: f64 = 0.025;

/// The fake ElevenLabs' alignment of `text`: its characters with their start and end times.
fn alignment(text: &str) -> (Vec<String>, Vec<f64>, Vec<f64>) {
    let characters: Vec<String> = text.chars().map(String::from).collect();
    let starts = (0..characters.len()).map(|i| i as f64 * CHAR_SECONDS).collect();
    let ends = (1..=characters.len()).map(|i| i as f64 * CHAR_SECONDS).collect();
    (characters, starts, ends)
}

/// `/stream/with-timestamps`: NDJSON, the audio and the alignment in two lines split in the
/// middle of a word (so a word spans two chunks), as ElevenLabs streams it.
fn timed_reply(rate: u32, text: &str) -> ResponseTemplate {
    let pcm = common::sine_pcm(rate, seconds_for(text));
    let (characters, starts, ends) = alignment(text);
    let (cut, half) = (characters.len() / 2, (pcm.len() / 4) * 2);
    let line = |audio: &[u8], range: std::ops::Range<usize>| {
        json!({
            "audio_base64": base64::engine::general_purpose::STANDARD.encode(audio),
            "alignment": {
                "characters": characters[range.clone()],
                "character_start_times_seconds": starts[range.clone()],
                "character_end_times_seconds": ends[range],
            },
        })
    };
    let body = format!("{}\n{}\n", line(&pcm[..half], 0..cut), line(&pcm[half..], cut..characters.len()));
    ResponseTemplate::new(200).set_body_string(body).insert_header("content-type", "application/json")
}

/// A fake OpenAI (`POST /v1/audio/speech`, 24 kHz) and a fake ElevenLabs
/// (`POST /v1/text-to-speech/{voice}/stream?output_format=pcm_<rate>`, and
/// `.../stream/with-timestamps` with the [`alignment`] of the text) on one server, answering
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
                Some(rate) if rest.ends_with("/stream/with-timestamps") => timed_reply(rate, text),
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
    let _ = sdk_dir();
    let (app, upstream) = gateway_with_fake_vendors().await;
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
    let vars = vec![("TURNS", turns.to_string()), ("OPTIONS", options.to_string()), ("FAILS", fails.to_string())];
    let result = run_script("conversation.mjs", format!("http://{}", app.addr), key, vars).await;
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

/// The SDK's script path, or the reason the suite cannot run it.
/// The gateway with OpenAI and ElevenLabs pointed at [`FakeVendors`] (kept alive by the caller).
async fn gateway_with_fake_vendors() -> (TestApp, MockServer) {
    let upstream = MockServer::start().await;
    Mock::given(any()).respond_with(FakeVendors).mount(&upstream).await;
    let uri = upstream.uri();
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.local.enabled = false;
        c.providers.timeout_secs = 2;
        c.providers.openai = VendorConfig {
            api_key: Some(SECRET.to_owned().into()),
            base_url: Some(format!("{uri}/v1")),
            ..Default::default()
        };
        c.providers.elevenlabs =
            VendorConfig { api_key: Some(SECRET.to_owned().into()), base_url: Some(uri), ..Default::default() };
    })
    .await;
    (app, upstream)
}

fn sdk_dir() -> String {
    std::env::var("SPEECHGATE_TEST_SPEECHBASE_SDK").unwrap_or_else(|_| {
        panic!(
            "{}",
            common::needs(
                "SPEECHGATE_TEST_SPEECHBASE_SDK: tests/sdk/speechbase with the official Speechbase SDK \
                 installed (`npm ci` there) and Node.js on PATH"
            )
        )
    })
}

/// Runs `script` (in the SDK's directory) against the gateway with `key` and the given
/// environment, and parses the one JSON line it prints.
async fn run_script(script: &str, gateway: String, key: String, vars: Vec<(&'static str, String)>) -> Value {
    let sdk = sdk_dir();
    let script = std::path::Path::new(&sdk).join(script);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(std::env::var("SPEECHGATE_TEST_NODE").unwrap_or_else(|_| "node".into()))
            .arg(script)
            .current_dir(&sdk)
            .env("GATEWAY", gateway)
            .env("KEY", key)
            .envs(vars)
            .env_remove("SPEECHBASE_API_KEY")
            .env_remove("SPEECH_GATEWAY_API_KEY")
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", common::needs("Node.js (`node` on PATH, or SPEECHGATE_TEST_NODE)")))
    })
    .await
    .unwrap();
    assert!(output.status.success(), "SDK script failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The words the fake ElevenLabs' [`alignment`] of `text` makes, folded at whitespace as both the
/// SDK (for ElevenLabs directly) and the gateway do: `(word, start, end)` in seconds, to the ms
/// (the gateway's precision).
fn native_words(text: &str, offset: f64) -> Vec<(String, f64, f64)> {
    let ms = |s: f64| ((s + offset) * 1000.0).round() / 1000.0;
    let (characters, starts, ends) = alignment(text);
    let mut words: Vec<(String, f64, f64)> = Vec::new();
    let mut in_word = false;
    for ((c, start), end) in characters.iter().zip(starts).zip(ends) {
        if c.trim().is_empty() {
            in_word = false;
        } else if in_word {
            let word = words.last_mut().unwrap();
            word.0.push_str(c);
            word.2 = ms(end);
        } else {
            words.push((c.clone(), ms(start), ms(end)));
            in_word = true;
        }
    }
    words
}

/// `(text, start, end)` of a list of timestamps as JSON.
fn stamps(list: &Value) -> Vec<(String, f64, f64)> {
    list.as_array()
        .unwrap_or_else(|| panic!("timestamps are not a list: {list}"))
        .iter()
        .map(|t| (t["text"].as_str().unwrap().to_owned(), t["start"].as_f64().unwrap(), t["end"].as_f64().unwrap()))
        .collect()
}

fn same_times(actual: &[(String, f64, f64)], expected: &[(String, f64, f64)], tolerance: f64, what: &str) {
    let matches = actual.len() == expected.len()
        && actual
            .iter()
            .zip(expected)
            .all(|(a, e)| a.0 == e.0 && (a.1 - e.1).abs() <= tolerance && (a.2 - e.2).abs() <= tolerance);
    assert!(matches, "{what}: {actual:?}, expected {expected:?} (± {tolerance} s)");
}

/// Words in order, each within itself and not overlapping the next.
fn monotone(words: &[(String, f64, f64)]) -> bool {
    words.iter().all(|w| w.1 >= 0.0 && w.1 <= w.2) && words.windows(2).all(|w| w[0].2 <= w[1].1 + 1e-9)
}

/// The keys of every object in `list`, sorted.
fn keys_of(list: &Value) -> Vec<String> {
    let mut keys: Vec<String> =
        list.as_array().into_iter().flatten().flat_map(|o| o.as_object().unwrap().keys().cloned()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The SDK's own timestamp calls — `generateSpeech` and `generateConversation` with
/// `timestamps: true`, which its gateway client sends to `/v1/audio/speech/with-timestamps` and
/// `/v1/audio/conversation/with-timestamps` with the same body as without — through the gateway:
/// ElevenLabs' native timing comes back exactly, OpenAI's estimated (which the SDK only shows in
/// its warnings), and a conversation's words carry their turn at the turn's place in the mix.
/// The SDK's zod schemas keep `text`, `start`, `end` (and `turnIndex`) of each word, and
/// `audio`, `mediaType`, `timestamps`, `warnings` of the answer: the gateway's `charStart`,
/// `charEnd`, `alignment` and `durationMs` never reach the caller. `split: true` (which the SDK
/// cannot ask for) and `"timestamps": "native"` (neither) are added to the SDK's body through its
/// `fetch` option to see how the SDK takes the gateway's answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speechbase_sdk_gets_word_timestamps() {
    let _ = sdk_dir();
    let (app, upstream) = gateway_with_fake_vendors().await;
    let (key_id, key) = app.speech_key().await;
    for (text, seconds) in TURNS {
        let end = alignment(text).2.last().copied().unwrap_or(0.0);
        assert!(end <= seconds, "the fake's alignment of {text:?} ({end} s) is longer than its audio ({seconds} s)");
    }
    let elevenlabs = json!({"model": "elevenlabs/eleven_v3", "voice": ELEVENLABS_VOICE, "text": TURNS[1].0});
    let openai = json!({"model": "openai/tts-1", "voice": "alloy", "text": TURNS[0].0});
    let turns = json!([
        {"model": "openai/tts-1", "voice": "alloy", "text": TURNS[0].0},
        {"model": "elevenlabs/eleven_v3", "voice": ELEVENLABS_VOICE, "text": TURNS[1].0},
        {"model": "openai/tts-1", "voice": "echo", "text": TURNS[2].0},
    ]);
    let cases = json!({
        "speech": {
            "elevenlabs": elevenlabs,
            "openai": openai,
            "openai_native": {"model": "openai/tts-1", "voice": "alloy", "text": UNHEARD,
                "extraBody": {"timestamps": "native"}},
        },
        "conversation": {
            "whole": {"turns": turns, "gapMs": GAP_MS},
            "split": {"turns": turns, "gapMs": GAP_MS, "extraBody": {"split": true}},
        },
    });
    let result =
        run_script("timestamps.mjs", format!("http://{}", app.addr), key, vec![("CASES", cases.to_string())]).await;
    assert_eq!(result["sdk"]["version"], SDK_VERSION, "the script ran another SDK version");
    let show = |v: &Value| v.to_string();

    // (a) generateSpeech, ElevenLabs: the SDK posts its usual inline body, unchanged, to
    // `/with-timestamps` (no `timestamps` field, no Accept negotiation) and reads the JSON.
    let speech = &result["speech"]["elevenlabs"];
    assert_eq!(speech["ok"], true, "{}", show(speech));
    let sent = &speech["sent"];
    assert_eq!(sent["method"], "POST");
    assert_eq!(sent["path"], "/v1/audio/speech/with-timestamps");
    assert_eq!(
        sent["body"],
        json!({"mode": "inline", "model": "elevenlabs/eleven_v3", "voice": ELEVENLABS_VOICE, "text": TURNS[1].0}),
        "SDK {SDK_VERSION}'s with-timestamps body"
    );
    assert_eq!(sent["headers"]["authorization"], "Bearer <KEY>");
    assert_eq!(sent["headers"]["content-type"], "application/json");
    assert_eq!((sent["status"].as_u64(), sent["contentType"].as_str()), (Some(200), Some("application/json")));
    // What the gateway answered: native timing, code-point offsets, its own duration.
    let answer = &sent["response"];
    assert_eq!((&answer["alignment"], &sent["alignmentHeader"]), (&json!("native"), &json!("native")));
    assert_eq!(answer["warnings"], json!([]));
    assert_eq!(answer["durationMs"], 900);
    let offsets: Vec<(u64, u64)> = answer["timestamps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["charStart"].as_u64().unwrap(), t["charEnd"].as_u64().unwrap()))
        .collect();
    assert_eq!(offsets, [(0, 5), (6, 7), (8, 15), (16, 22), (23, 25), (26, 28), (29, 35)], "{answer}");
    // What the SDK returns: the fake's character times folded into words, exactly (ms); the
    // SDK keeps text/start/end and drops charStart/charEnd, the top-level alignment and
    // durationMs; an empty warnings list becomes no `warnings`.
    let expected = native_words(TURNS[1].0, 0.0);
    same_times(&stamps(&speech["timestamps"]), &expected, 1e-9, "ElevenLabs words through the SDK");
    assert_eq!(keys_of(&answer["timestamps"]), ["charEnd", "charStart", "end", "start", "text"]);
    assert_eq!(keys_of(&speech["timestamps"]), ["end", "start", "text"], "the SDK's zod schema strips the rest");
    assert_eq!(speech["warnings"], Value::Null);
    assert_eq!(speech["mediaType"], "audio/wav");
    close(speech["durationMs"].as_f64().expect("the SDK could measure the audio"), 900.0, "the SDK's duration");
    let last_end = expected.last().unwrap().2;
    assert!(last_end * 1000.0 <= speech["durationMs"].as_f64().unwrap(), "words past the clip's end");

    // (b) generateSpeech, OpenAI: no timing from the vendor, so the gateway estimates; the SDK
    // drops `alignment: "estimated"`, and only its warnings tell the caller.
    let speech = &result["speech"]["openai"];
    assert_eq!(speech["ok"], true, "{}", show(speech));
    assert_eq!(speech["sent"]["path"], "/v1/audio/speech/with-timestamps");
    assert_eq!(
        speech["sent"]["body"],
        json!({"mode": "inline", "model": "openai/tts-1", "voice": "alloy", "text": TURNS[0].0})
    );
    assert_eq!(speech["sent"]["response"]["alignment"], "estimated");
    assert_eq!(speech["sent"]["alignmentHeader"], "estimated");
    let words = stamps(&speech["timestamps"]);
    let texts: Vec<&str> = words.iter().map(|w| w.0.as_str()).collect();
    assert_eq!(texts, ["How", "was", "your", "weekend?"], "{}", show(speech));
    assert!(monotone(&words) && words.iter().all(|w| w.2 > w.1), "{words:?}");
    assert!(words.last().unwrap().2 <= TURNS[0].1 + 1e-3, "estimates past the clip's end: {words:?}");
    assert_eq!(keys_of(&speech["timestamps"]), ["end", "start", "text"]);
    let warnings = speech["warnings"].as_array().unwrap_or_else(|| panic!("no warnings: {}", show(speech)));
    assert!(warnings.len() == 1 && warnings[0].as_str().unwrap().contains("estimated"), "{warnings:?}");
    close(speech["durationMs"].as_f64().unwrap(), TURNS[0].1 * 1000.0, "the SDK's duration");
    let openai_words = words;

    // (c) `"timestamps": "native"` for a provider without timing: the SDK's ApiError with the
    // gateway's code, and no vendor was asked.
    let native = &result["speech"]["openai_native"];
    assert_eq!(native["ok"], false, "{}", show(native));
    assert_eq!(native["attempts"], 1);
    assert_eq!(native["sent"]["body"]["timestamps"], "native");
    assert_eq!(native["sent"]["contentType"], "application/problem+json");
    let error = &native["error"];
    assert_eq!((&error["name"], &error["status"]), (&json!("ApiError"), &json!(503)), "{error}");
    assert_eq!(error["code"], "timestamps_unavailable", "{error}");
    assert_eq!(error["problem"]["code"], "timestamps_unavailable", "{error}");

    // (d) generateConversation: the usual conversation body to `/with-timestamps`; every word with
    // its turn, in order, at its turn's place in the mix.
    let whole = &result["conversation"]["whole"];
    assert_eq!(whole["ok"], true, "{}", show(whole));
    let sent = &whole["sent"];
    assert_eq!(sent["path"], "/v1/audio/conversation/with-timestamps");
    assert_eq!(
        sent["body"],
        json!({"mode": "conversation", "turns": turns, "gapMs": GAP_MS as u64, "volumeDbfs": -20}),
        "SDK {SDK_VERSION}'s with-timestamps conversation body"
    );
    assert_eq!((&sent["response"]["alignment"], &sent["alignmentHeader"]), (&json!("estimated"), &json!("estimated")));
    assert_eq!(keys_of(&sent["response"]["timestamps"]), ["charEnd", "charStart", "end", "start", "text", "turnIndex"]);
    assert_eq!(keys_of(&whole["timestamps"]), ["end", "start", "text", "turnIndex"], "the SDK keeps turnIndex");
    let all = whole["timestamps"].as_array().unwrap();
    let words = stamps(&whole["timestamps"]);
    assert!(monotone(&words), "{words:?}");
    let turn_of: Vec<u64> = all.iter().map(|t| t["turnIndex"].as_u64().unwrap()).collect();
    let mut offset = 0.0;
    for (turn, (text, seconds)) in TURNS.iter().enumerate() {
        let mine: Vec<(String, f64, f64)> =
            words.iter().zip(&turn_of).filter(|(_, i)| **i == turn as u64).map(|(w, _)| w.clone()).collect();
        let texts: Vec<&str> = mine.iter().map(|w| w.0.as_str()).collect();
        assert_eq!(texts, text.split_whitespace().collect::<Vec<_>>(), "turn {turn}'s words");
        assert!(
            mine.iter().all(|w| w.1 >= offset - 1e-9 && w.2 <= offset + seconds + 1e-3),
            "turn {turn}'s words {mine:?} are not within {offset}..{} s",
            offset + seconds
        );
        if turn == 1 {
            // ElevenLabs' own times, moved by turn 0's length and the gap, exactly.
            same_times(&mine, &native_words(text, offset), 1e-9, "turn 1 in the mix");
        } else if turn == 0 {
            // The same clip's estimates as on its own.
            same_times(&mine, &openai_words, 0.002, "turn 0 in the mix");
        }
        offset += seconds + GAP_MS / 1000.0;
    }
    assert_eq!(
        turn_of,
        TURNS
            .iter()
            .enumerate()
            .flat_map(|(i, (t, _))| vec![i as u64; t.split_whitespace().count()])
            .collect::<Vec<_>>()
    );
    // Turn 1's first word only after turn 0 and the gap.
    let first_of_1 = words[turn_of.iter().position(|i| *i == 1).unwrap()].1;
    assert!((first_of_1 - (TURNS[0].1 + GAP_MS / 1000.0)).abs() < 1e-9, "turn 1 starts at {first_of_1} s");
    let expected_ms = TURNS.iter().map(|(_, s)| s * 1000.0).sum::<f64>() + 2.0 * GAP_MS;
    close(whole["durationMs"].as_f64().expect("the SDK could measure the mix"), expected_ms, "the mix's duration");
    assert_eq!(
        sent["response"]["durationMs"].as_f64(),
        Some(expected_ms),
        "the gateway's durationMs (dropped by the SDK)"
    );
    let warnings: Vec<&str> = whole["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    assert!(
        warnings.len() == 2
            && warnings[0].starts_with("turn 0: ")
            && warnings[1].starts_with("turn 2: ")
            && warnings.iter().all(|w| w.contains("estimated")),
        "{warnings:?}"
    );
    assert_eq!(whole["mediaType"], "audio/wav");

    // (e) `split: true` with timestamps: the gateway answers its segments, each with its own
    // words and alignment, but the SDK's schema demands a top-level `audio` and `mediaType` and
    // throws a ZodError — the SDK has no way to take per-turn segments with timestamps.
    let split = &result["conversation"]["split"];
    assert_eq!(split["ok"], false, "{}", show(split));
    assert_eq!(
        (split["sent"]["status"].as_u64(), split["sent"]["contentType"].as_str()),
        (Some(200), Some("application/json"))
    );
    assert_eq!(split["error"]["name"], "ZodError", "{}", show(split));
    let issues: Vec<&Value> = split["error"]["issues"].as_array().unwrap().iter().map(|i| &i["path"]).collect();
    assert_eq!(issues, [&json!(["audio"]), &json!(["mediaType"])], "{}", show(split));
    let segments = split["sent"]["response"]["audioSegments"].as_array().unwrap();
    let alignments: Vec<&Value> = segments.iter().map(|s| &s["alignment"]).collect();
    assert_eq!(alignments, [&json!("estimated"), &json!("native"), &json!("estimated")]);
    same_times(&stamps(&segments[1]["timestamps"]), &native_words(TURNS[1].0, 0.0), 1e-9, "segment 1's own words");

    // The gateway asked ElevenLabs for its timing and OpenAI for plain PCM; the refused request
    // reached no vendor.
    let asked = upstream.received_requests().await.unwrap_or_default();
    assert!(
        !asked.iter().any(|r| String::from_utf8_lossy(&r.body).contains(UNHEARD)),
        "a vendor was asked for {UNHEARD:?}"
    );
    for request in &asked {
        let path = request.url.path();
        if path.starts_with("/v1/text-to-speech/") {
            assert_eq!(path, format!("/v1/text-to-speech/{ELEVENLABS_VOICE}/stream/with-timestamps"));
        } else {
            assert_eq!(path, "/v1/audio/speech");
            let body: Value = serde_json::from_slice(&request.body).unwrap();
            assert_eq!(body["response_format"], "pcm", "{body}");
        }
    }
    // One call per clip: the two speech clips, and three turns for each conversation.
    assert_eq!(asked.len(), 1 + 1 + 3 + 3, "{:?}", asked.iter().map(|r| r.url.path()).collect::<Vec<_>>());

    // Every SDK request was metered under its own route.
    let usage = app.stop_and_read_usage(Some(&key_id)).await;
    let mut outcomes: Vec<(&str, u16, Option<&str>)> =
        usage.iter().map(|u| (u.event.route.as_str(), u.event.status, u.event.error_code.as_deref())).collect();
    outcomes.sort_unstable();
    assert_eq!(
        outcomes,
        [
            ("/v1/audio/conversation/with-timestamps", 200, None),
            ("/v1/audio/conversation/with-timestamps", 200, None),
            ("/v1/audio/speech/with-timestamps", 200, None),
            ("/v1/audio/speech/with-timestamps", 200, None),
            ("/v1/audio/speech/with-timestamps", 503, Some("timestamps_unavailable")),
        ],
        "{usage:#?}"
    );
}

/// Plain speech, as most Speechbase code makes it: `generateSpeech` in every output form, with
/// volume and speed, `streamSpeech`, and the errors users meet (an unknown model, a wrong key, a
/// saved voice that is not theirs) — served by the offline `local` voice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speechbase_sdk_speaks_and_streams() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let (_, key) = app.speech_key().await;
    let text = "Plain speech from the Speechbase SDK.";
    let local = |extra: Value| {
        let mut options = json!({"model": "local/espeak-ng", "voice": "en-us", "text": text});
        options.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        options
    };
    let cases = json!({
        "generate": {
            "default": local(json!({})),
            "mp3": local(json!({"output": {"format": "mp3"}})),
            "mp3_bitrate": local(json!({"output": {"format": "mp3", "bitrate": 64}})),
            "pcm": local(json!({"output": {"format": "pcm", "sampleRate": 16000}})),
            "levelled": local(json!({"output": {"format": "wav"}, "volumeDbfs": -6, "speed": 1.25})),
            "unknown_model": {"model": "nobody/nothing", "voice": "x", "text": text},
            "wrong_key": local(json!({"key": "sg_aaaaaaaaaaaa_0000000000000000000000000000000000000000"})),
        },
        "stream": {
            "default": local(json!({})),
            "unknown_voice": local(json!({"voice": "no-such-voice"})),
        },
    });
    let result =
        run_script("speech.mjs", format!("http://{}", app.addr), key, vec![("CASES", cases.to_string())]).await;
    assert_eq!(result["sdk"]["version"], SDK_VERSION, "the script ran another SDK version");
    let generate = &result["generate"];
    let ok = |case: &Value, media_type: &str, head: &str| {
        assert_eq!(case["ok"], true, "{case}");
        assert_eq!(case["mediaType"], media_type, "{case}");
        assert!(case["head"].as_str().unwrap().starts_with(head), "{case}");
        assert!(case["bytes"].as_u64().unwrap() > 4_000, "{case}");
        assert_eq!(case["sent"]["path"], "/v1/audio/speech", "{case}");
    };
    ok(&generate["default"], "audio/wav", "52494646");
    ok(&generate["mp3"], "audio/mpeg", "fff");
    ok(&generate["mp3_bitrate"], "audio/mpeg", "fff");
    ok(&generate["pcm"], "audio/pcm", "");
    ok(&generate["levelled"], "audio/wav", "52494646");
    // 64 kbit/s against the gateway's default of 128.
    assert!(generate["mp3_bitrate"]["bytes"].as_u64() < generate["mp3"]["bytes"].as_u64());
    // The SDK sent its options as they are; the gateway applied them: faster speech is shorter.
    assert_eq!(generate["levelled"]["sent"]["body"]["volumeDbfs"], -6);
    assert!(generate["levelled"]["bytes"].as_u64() < generate["default"]["bytes"].as_u64());
    // The SDK measures the clip itself; the gateway's wav plays as long as it says.
    assert!(generate["default"]["durationMs"].as_f64().unwrap() > 1000.0, "{}", generate["default"]);

    let failed = |case: &Value, status: u64| {
        assert_eq!(case["ok"], false, "{case}");
        assert_eq!(case["error"]["status"], status, "{case}");
        assert!(!case["error"]["message"].as_str().unwrap().is_empty(), "{case}");
    };
    failed(&generate["unknown_model"], 404);
    assert_eq!(generate["unknown_model"]["error"]["problem"]["code"], "unknown_model");
    failed(&generate["wrong_key"], 401);

    let stream = &result["stream"];
    assert_eq!(stream["default"]["ok"], true, "{}", stream["default"]);
    assert_eq!(stream["default"]["sent"]["path"], "/v1/audio/speech/stream");
    assert!(stream["default"]["bytes"].as_u64().unwrap() > 4_000, "{}", stream["default"]);
    failed(&stream["unknown_voice"], 404);
    app.stop().await;
}
