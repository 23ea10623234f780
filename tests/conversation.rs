//! `/v1/audio/conversation` end to end: turns on fake OpenAI and ElevenLabs upstreams (and the
//! offline local voice), checked on the decoded output — duration, exact silence, no click at a
//! join, loudness matched across turns, order — plus split segments, native dialogue, failures
//! with `turn_index`, limits, and one usage line per turn.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use std::time::Duration;

use base64::Engine;
use common::{problem, Db, StreamingUpstream, TestApp};
use serde_json::{json, Value};
use speechgate::config::VendorConfig;
use wiremock::{
    matchers::{body_partial_json, method, path, query_param},
    Mock, MockServer, ResponseTemplate,
};

const RATE: u32 = 24_000;
const ELEVEN_VOICE: &str = "JBFqnCBsd6RMkjVDRZzb";

/// `seconds` of a sine at `freq` with peak `amplitude`, as s16le at [`RATE`].
fn tone(seconds: f64, amplitude: f64, freq: f64) -> Vec<u8> {
    let n = (f64::from(RATE) * seconds) as usize;
    (0..n)
        .flat_map(|i| {
            let t = i as f64 / f64::from(RATE);
            (((2.0 * std::f64::consts::PI * freq * t).sin() * amplitude) as i16).to_le_bytes()
        })
        .collect()
}

fn samples(pcm: &[u8]) -> Vec<i16> {
    pcm.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

/// The rate and samples of a mono 16-bit WAV (streamed WAVs carry no data length).
fn wav(bytes: &[u8]) -> (u32, Vec<i16>) {
    assert_eq!(&bytes[..4], b"RIFF");
    let rate = u32::from_le_bytes(bytes[24..28].try_into().unwrap());
    let data = bytes.windows(4).position(|w| w == b"data").expect("data chunk") + 8;
    (rate, samples(&bytes[data..]))
}

/// Integrated loudness (EBU R128) of a clip.
fn lufs(clip: &[i16]) -> f64 {
    let mut meter = ebur128::EbuR128::new(1, RATE, ebur128::Mode::I).unwrap();
    meter.add_frames_i16(clip).unwrap();
    meter.loudness_global().unwrap()
}

/// Runs of non-silent samples: `(start, length)`, split at `min_gap` or more zeros.
fn voiced_runs(clip: &[i16], min_gap: usize) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < clip.len() {
        if clip[i] == 0 {
            i += 1;
            continue;
        }
        let start = i;
        let mut zeros = 0;
        while i < clip.len() && zeros < min_gap {
            zeros = if clip[i] == 0 { zeros + 1 } else { 0 };
            i += 1;
        }
        let end = if zeros >= min_gap { i - zeros } else { i };
        runs.push((start, end - start));
    }
    runs
}

struct Upstreams {
    openai: MockServer,
    elevenlabs: MockServer,
}

async fn gateway(db: Db, tweak: impl FnOnce(&mut speechgate::config::Config) + Send + 'static) -> (TestApp, Upstreams) {
    let openai = MockServer::start().await;
    let elevenlabs = MockServer::start().await;
    let (openai_uri, eleven_uri) = (format!("{}/v1", openai.uri()), elevenlabs.uri());
    let app = TestApp::spawn_with(db, move |c| {
        c.providers.timeout_secs = 5;
        c.providers.openai = VendorConfig {
            api_key: Some("sk-openai".to_owned().into()),
            base_url: Some(openai_uri),
            ..Default::default()
        };
        c.providers.elevenlabs = VendorConfig {
            api_key: Some("xi-secret".to_owned().into()),
            base_url: Some(eleven_uri),
            ..Default::default()
        };
        tweak(c);
    })
    .await;
    (app, Upstreams { openai, elevenlabs })
}

/// OpenAI answers `text` with `pcm` (24 kHz s16le), after `delay`.
async fn openai_says(upstreams: &Upstreams, text: &str, pcm: Vec<u8>, delay: Duration) {
    Mock::given(method("POST"))
        .and(path("/v1/audio/speech"))
        .and(body_partial_json(json!({"input": text, "response_format": "pcm"})))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(pcm).set_delay(delay))
        .mount(&upstreams.openai)
        .await;
}

async fn elevenlabs_says(upstreams: &Upstreams, text: &str, pcm: Vec<u8>) {
    Mock::given(method("POST"))
        .and(path(format!("/v1/text-to-speech/{ELEVEN_VOICE}/stream")))
        .and(query_param("output_format", "pcm_24000"))
        .and(body_partial_json(json!({"text": text})))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(pcm))
        .mount(&upstreams.elevenlabs)
        .await;
}

async fn converse(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.post("/v1/audio/conversation", key, body).await
}

/// Acceptance: three turns on two fake vendors and the local voice make one playable file whose
/// length is the turns plus the gaps, exactly, with digital silence in the gaps; `split: true`
/// gives the same turns as three decodable clips; usage has one line per turn.
async fn three_turns_two_vendors_and_the_local_voice(db: Db) {
    let (app, upstreams) = gateway(db, |_| {}).await;
    openai_says(&upstreams, "How was your weekend?", tone(0.8, 6_000.0, 440.0), Duration::ZERO).await;
    elevenlabs_says(&upstreams, "Good, I finally caught up on sleep.", tone(1.1, 20_000.0, 330.0)).await;
    let (key_id, key) = app.speech_key().await;
    let turns = json!([
        {"model": "openai/tts-1", "voice": "alloy", "text": "How was your weekend?"},
        {"model": "elevenlabs/eleven_multilingual_v2", "voice": ELEVEN_VOICE, "text": "Good, I finally caught up on sleep."},
        {"model": "local", "voice": "en-us", "text": "Same here."}
    ]);

    let split = converse(&app, &key, json!({"turns": turns, "output": "wav", "split": true})).await;
    assert_eq!(split.status(), 200);
    assert_eq!(split.headers()["content-type"], "application/json");
    let split: Value = split.json().await.unwrap();
    let segments = split["audioSegments"].as_array().unwrap();
    assert_eq!(segments.len(), 3);
    let mut lengths = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        assert_eq!(segment["turnIndex"], i);
        assert_eq!(segment["mediaType"], "audio/wav");
        let bytes = base64::engine::general_purpose::STANDARD.decode(segment["audio"].as_str().unwrap()).unwrap();
        let (rate, clip) = wav(&bytes);
        assert_eq!(rate, RATE);
        assert_eq!(segment["durationMs"], (clip.len() as u64 * 1000 + u64::from(RATE) / 2) / u64::from(RATE));
        lengths.push(clip.len());
    }
    assert_eq!(&lengths[..2], &[19_200, 26_400], "vendor turns keep their length exactly");
    assert!(lengths[2] > 4_800, "the local voice spoke: {} samples", lengths[2]);

    let response = converse(&app, &key, json!({"turns": turns, "output": "wav", "gapMs": 250})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/wav");
    assert_eq!(response.headers()["x-speech-turns"], "3");
    assert_eq!(response.headers()["x-speech-strategy"], "stitch");
    let (rate, mixed) = wav(&response.bytes().await.unwrap());
    assert_eq!(rate, RATE);
    let gap = 6_000;
    assert_eq!(mixed.len(), lengths.iter().sum::<usize>() + 2 * gap, "turns + gaps, to the sample");
    let first_gap = lengths[0]..lengths[0] + gap;
    let second_gap = lengths[0] + gap + lengths[1]..lengths[0] + 2 * gap + lengths[1];
    assert!(mixed[first_gap.clone()].iter().all(|s| *s == 0), "gap 1 is digital silence");
    assert!(mixed[second_gap.clone()].iter().all(|s| *s == 0), "gap 2 is digital silence");
    for join in [first_gap.start, first_gap.end, second_gap.start, second_gap.end] {
        let jump = (i32::from(mixed[join]) - i32::from(mixed[join - 1])).abs();
        assert!(jump < 300, "a click of {jump} at sample {join}");
    }
    // The quiet OpenAI turn and the loud ElevenLabs turn come out equally loud.
    let (a, b) = (lufs(&mixed[..lengths[0]]), lufs(&mixed[first_gap.end..second_gap.start]));
    assert!((a - b).abs() < 1.0, "turn loudness {a} vs {b} LUFS");

    let events = app.stop_and_read_usage(Some(&key_id)).await;
    let event = &events.iter().find(|e| e.event.route == "/v1/audio/conversation").unwrap().event;
    assert_eq!(event.status, 200);
    assert_eq!(event.provider, None, "three providers: none is the request's");
    let providers: Vec<&str> = event.segments.iter().map(|s| s.provider.as_str()).collect();
    assert_eq!(providers, ["openai", "elevenlabs", "local"]);
    let characters: Vec<i64> = event.segments.iter().map(|s| s.characters).collect();
    assert_eq!(characters, [21, 35, 10]);
    assert_eq!(event.characters, 66);
    assert_eq!(event.segments[0].audio_ms, 800);
    assert!(event.segments.iter().all(|s| s.error_code.is_none()));
}

/// A later turn that finishes first still comes second; a slow first turn does not reorder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_come_out_in_order_whoever_finishes_first() {
    let (app, upstreams) = gateway(Db::Sqlite, |_| {}).await;
    openai_says(&upstreams, "first", tone(0.5, 8_000.0, 440.0), Duration::from_millis(400)).await;
    openai_says(&upstreams, "second", tone(0.2, 8_000.0, 440.0), Duration::ZERO).await;
    openai_says(&upstreams, "third", tone(0.3, 8_000.0, 440.0), Duration::ZERO).await;
    let (_, key) = app.speech_key().await;
    let turns: Vec<Value> = ["first", "second", "third"].iter().map(|t| json!({"voice": "alloy", "text": t})).collect();
    let body = json!({"model": "openai/tts-1", "turns": turns, "output": {"format": "pcm"}, "gapMs": 100});
    let response = converse(&app, &key, body).await;
    assert_eq!(response.status(), 200);
    let mixed = samples(&response.bytes().await.unwrap());
    let lengths: Vec<usize> = voiced_runs(&mixed, 1_000).iter().map(|r| r.1).collect();
    // The fades take a few samples off the edges of what counts as voiced.
    let near = |got: usize, want: usize| got.abs_diff(want) < 200;
    assert_eq!(lengths.len(), 3, "{lengths:?}");
    assert!(near(lengths[0], 12_000) && near(lengths[1], 4_800) && near(lengths[2], 7_200), "{lengths:?}");
    app.stop().await;
}

/// The file starts while a later turn is still being made: its first bytes arrive while turn
/// 1's upstream is held, and the rest follows when it is let go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_streams_as_soon_as_turn_zero_is_ready() {
    let held = StreamingUpstream::start(
        "application/octet-stream",
        tone(0.1, 8_000.0, 440.0),
        tone(0.4, 8_000.0, 440.0),
        false,
    )
    .await;
    let eleven_uri = held.uri.clone();
    let (app, upstreams) = gateway(Db::Sqlite, move |c| {
        c.providers.elevenlabs.base_url = Some(eleven_uri);
    })
    .await;
    openai_says(&upstreams, "ready", tone(2.0, 8_000.0, 440.0), Duration::ZERO).await;
    let (_, key) = app.speech_key().await;
    let body = json!({"turns": [
        {"model": "openai/tts-1", "voice": "alloy", "text": "ready"},
        {"model": "elevenlabs/eleven_multilingual_v2", "voice": ELEVEN_VOICE, "text": "held back"}
    ], "output": "wav"});
    let mut response = converse(&app, &key, body).await;
    assert_eq!(response.status(), 200);
    // A guard against a hang, not a measurement: the bytes come while turn 1 is held.
    let first = tokio::time::timeout(Duration::from_secs(20), response.chunk()).await;
    let first = first.expect("bytes before turn 1 finished").unwrap().unwrap();
    assert_eq!(&first[..4], b"RIFF");
    held.release();
    let mut rest = first.to_vec();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    let (_, mixed) = wav(&rest);
    assert_eq!(mixed.len(), 48_000 + 7_200 + 12_000, "turn 0, the default 300 ms gap, turn 1");
    app.stop().await;
}

/// A turn that fails before anything was sent is the answer, with its index and the vendor's
/// status; once audio has gone out, a failure ends the body and usage records it.
async fn failing_turns_are_named(db: Db) {
    let (app, upstreams) = gateway(db, |_| {}).await;
    openai_says(&upstreams, "fine", tone(0.3, 8_000.0, 440.0), Duration::from_millis(300)).await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/text-to-speech/{ELEVEN_VOICE}/stream")))
        .respond_with(
            ResponseTemplate::new(503)
                .set_body_json(json!({"detail": {"status": "service_unavailable", "message": "busy"}}))
                .set_delay(Duration::from_millis(900)),
        )
        .mount(&upstreams.elevenlabs)
        .await;
    let (key_id, key) = app.speech_key().await;
    let eleven = json!({"model": "elevenlabs/eleven_multilingual_v2", "voice": ELEVEN_VOICE, "text": "broken"});
    let fine = json!({"model": "openai/tts-1", "voice": "alloy", "text": "fine"});

    let (status, body) = problem(converse(&app, &key, json!({"turns": [eleven, fine]})).await).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["turn_index"], 0);
    assert_eq!(body["provider"], "elevenlabs");
    assert_eq!(body["upstream_status"], 503);
    assert_eq!(body["upstream_code"], "service_unavailable");
    assert_eq!(body["code"], "provider_unavailable");

    // Turn 0 is sent before turn 1 fails: the body breaks off.
    let response = converse(&app, &key, json!({"turns": [fine, eleven], "output": "wav"})).await;
    assert_eq!(response.status(), 200);
    let mut response = response;
    let mut broke = false;
    loop {
        match response.chunk().await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    assert!(broke, "the body must end in an error, not look complete");

    let events = app.stop_and_read_usage(Some(&key_id)).await;
    let mut conversations: Vec<_> =
        events.iter().filter(|e| e.event.route == "/v1/audio/conversation").map(|e| &e.event).collect();
    conversations.reverse();
    assert_eq!(conversations.len(), 2);
    assert_eq!((conversations[0].status, conversations[0].error_code.as_deref()), (503, Some("provider_unavailable")));
    assert_eq!((conversations[1].status, conversations[1].error_code.as_deref()), (200, Some("provider_unavailable")));
    let failed = &conversations[1].segments[1];
    assert_eq!((failed.provider.as_str(), failed.error_code.as_deref()), ("elevenlabs", Some("provider_unavailable")));
    assert_eq!(conversations[1].segments[0].audio_ms, 300, "the partial result is recorded");
}

/// A failed turn cancels the rest: turns not yet started never reach their provider. A client
/// that leaves mid-file is recorded as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_and_departures_stop_the_remaining_turns() {
    let (app, upstreams) = gateway(Db::Sqlite, |c| c.conversation.concurrency = 2).await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/text-to-speech/{ELEVEN_VOICE}/stream")))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({"detail": {"status": "down", "message": "x"}})))
        .mount(&upstreams.elevenlabs)
        .await;
    for text in ["slow 1", "slow 2", "slow 3", "slow 4"] {
        openai_says(&upstreams, text, tone(0.5, 8_000.0, 440.0), Duration::from_millis(1_500)).await;
    }
    let (key_id, key) = app.speech_key().await;
    let mut turns = vec![json!({"model": "elevenlabs/eleven_multilingual_v2", "voice": ELEVEN_VOICE, "text": "fails"})];
    turns.extend((1..=4).map(|i| json!({"model": "openai/tts-1", "voice": "alloy", "text": format!("slow {i}")})));
    let (status, body) = problem(converse(&app, &key, json!({"turns": turns})).await).await;
    assert_eq!((status, &body["turn_index"]), (503, &json!(0)));
    let asked = upstreams.openai.received_requests().await.unwrap().len();
    assert!(asked <= 1, "{asked} later turns reached OpenAI; with 2 at a time only turn 1 may have started");

    // The client reads the start of a file and leaves.
    let slow: Vec<Value> =
        (1..=4).map(|i| json!({"model": "openai/tts-1", "voice": "alloy", "text": format!("slow {i}")})).collect();
    let mut response = converse(&app, &key, json!({"turns": slow, "output": "wav"})).await;
    assert_eq!(response.status(), 200);
    assert!(response.chunk().await.unwrap().is_some());
    drop(response);
    let events = app.stop_and_read_usage(Some(&key_id)).await;
    let left = &events.iter().find(|e| e.event.route == "/v1/audio/conversation").unwrap().event;
    assert_eq!((left.status, left.error_code.as_deref()), (200, Some("client_disconnected")));
    // Audio counts as it is sent; a turn that was called but never sent says so.
    // (The socket takes more than the client read, so more than turn 0 may count as sent.)
    assert!(left.segments[0].audio_ms > 0, "{:?}", left.segments);
    for line in &left.segments {
        let sent = line.audio_ms > 0 && line.error_code.is_none();
        assert!(sent || (line.audio_ms, line.error_code.as_deref()) == (0, Some("cancelled")), "{:?}", left.segments);
    }
    assert!(left.segments.iter().any(|l| l.error_code.is_some()), "the last turns were never sent");
}

/// Bad conversations are refused before any provider is called, each problem at its path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_conversations_name_the_turn_and_field() {
    let (app, upstreams) = gateway(Db::Sqlite, |c| {
        c.conversation.max_turns = 3;
        c.conversation.max_characters = 50;
    })
    .await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&upstreams.openai).await;
    let (_, key) = app.speech_key().await;
    let turn = |text: &str| json!({"voice": "alloy", "text": text});
    let cases = [
        (json!({"model": "openai/tts-1", "turns": []}), json!(["turns"])),
        (json!({"model": "openai/tts-1", "turns": [turn("a"), turn("b"), turn("c"), turn("d")]}), json!(["turns"])),
        (json!({"model": "openai/tts-1", "turns": [turn(&"x".repeat(51))]}), json!(["turns"])),
        (json!({"model": "openai/tts-1", "turns": [turn("a"), {"text": "no voice"}]}), json!(["turns", 1, "voice"])),
        (
            json!({"model": "openai/tts-1", "turns": [turn("a"), {"model": "openai/tts-1-hd", "voice": "alloy", "text": "b"}]}),
            json!(["turns", 1, "model"]),
        ),
        (json!({"model": "openai/tts-1", "turns": [turn("a"), turn("  ")]}), json!(["turns", 1, "text"])),
        (json!({"model": "openai/tts-1", "turns": [turn("a")], "gapMs": 5001}), json!(["gapMs"])),
        (
            json!({"model": "openai/tts-1", "turns": [turn("a"), {"voice": "alloy", "text": "b", "pauseBeforeMs": 9000}]}),
            json!(["turns", 1, "pauseBeforeMs"]),
        ),
        (json!({"model": "openai/tts-1", "turns": [turn("a")], "volumeDbfs": 2}), json!(["volumeDbfs"])),
        (json!({"model": "openai/tts-1", "turns": [turn("a")], "output": "aac"}), json!(["output"])),
        (json!({"model": "openai/tts-1", "turns": [turn("a")], "strategy": "native"}), json!(["strategy"])),
        (
            json!({"model": "openai/tts-1", "turns": [{"voice": "alloy", "text": "a", "speed": 9}]}),
            json!(["turns", 0, "speed"]),
        ),
        (json!({"model": "openai/tts-1", "turns": [turn("a")], "colour": "red"}), json!([])),
        // The same model by another name is no conflict: the problem is the speed.
        (
            json!({"model": "openai/tts-1", "turns": [{"model": "tts-1", "voice": "alloy", "text": "a", "speed": 9}]}),
            json!(["turns", 0, "speed"]),
        ),
        // The limit is on what is spoken, pronunciation rules applied.
        (
            json!({"model": "openai/tts-1", "turns": [turn("a a")],
                   "pronunciations": {"rules": [{"word": "a", "replacement": "x".repeat(30)}]}}),
            json!(["turns"]),
        ),
    ];
    for (body, path) in cases {
        let (status, problem) = problem(converse(&app, &key, body.clone()).await).await;
        assert_eq!(status, 400, "{body}: {problem}");
        if path != json!([]) {
            assert_eq!(problem["validation"][0]["path"], path, "{body}: {problem}");
        }
    }
    // Whole-turn failures carry the turn's index.
    let unknown = json!({"turns": [turn("a"), {"model": "nobody/x", "voice": "v", "text": "b"}]});
    let (status, body) = problem(converse(&app, &key, unknown).await).await;
    assert_eq!((status, &body["turn_index"], &body["code"]), (404, &json!(1), &json!("unknown_model")), "{body}");
    let missing = json!({"turns": [{"voiceId": "no-such-voice", "text": "b"}]});
    let (status, body) = problem(converse(&app, &key, missing).await).await;
    assert_eq!((status, &body["turn_index"]), (404, &json!(0)), "{body}");
    assert_eq!(body["validation"][0]["path"], json!(["turns", 0, "voiceId"]));
    app.stop().await;
}

/// Every turn on ElevenLabs' dialogue model: one text-to-dialogue request voices them all with
/// `strategy: native` (and `auto`); `auto` stitches when the request needs separate turns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_dialogue_is_one_request() {
    let (app, upstreams) = gateway(Db::Sqlite, |_| {}).await;
    Mock::given(method("POST"))
        .and(path("/v1/text-to-dialogue/stream"))
        .and(query_param("output_format", "pcm_24000"))
        .and(body_partial_json(json!({
            "model_id": "eleven_v3",
            "inputs": [{"text": "Hello, how are you?", "voice_id": "v1"}, {"text": "Fine, thanks!", "voice_id": "v2"}]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(tone(1.5, 8_000.0, 440.0)))
        .expect(2)
        .mount(&upstreams.elevenlabs)
        .await;
    for text in ["Hello, how are you?", "Fine, thanks!"] {
        Mock::given(method("POST"))
            .and(path_regex_stream())
            .and(body_partial_json(json!({"text": text, "model_id": "eleven_v3"})))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(tone(0.5, 8_000.0, 440.0)))
            .mount(&upstreams.elevenlabs)
            .await;
    }
    let (_, key) = app.speech_key().await;
    let turns = json!([{"voice": "v1", "text": "Hello, how are you?"}, {"voice": "v2", "text": "Fine, thanks!"}]);
    // Speechbase's SDK always sends the default gap; only other pacing rules native out.
    for strategy in ["native", "auto"] {
        let body = json!({"model": "elevenlabs/eleven_v3", "turns": turns, "strategy": strategy, "output": "pcm", "gapMs": 300});
        let response = converse(&app, &key, body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-speech-strategy"], "native");
        assert_eq!(response.bytes().await.unwrap().len(), 72_000);
    }
    let split = json!({"model": "elevenlabs/eleven_v3", "turns": turns, "strategy": "auto", "split": true});
    let response = converse(&app, &key, split).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["audioSegments"].as_array().unwrap().len(), 2);
    let native_split = json!({"model": "elevenlabs/eleven_v3", "turns": turns, "strategy": "native", "split": true});
    let (status, body) = problem(converse(&app, &key, native_split).await).await;
    assert_eq!((status, &body["validation"][0]["path"]), (400, &json!(["strategy"])));
    let paced = json!({"model": "elevenlabs/eleven_v3", "turns": turns, "strategy": "native", "gapMs": 800});
    let (status, body) = problem(converse(&app, &key, paced).await).await;
    assert_eq!((status, &body["validation"][0]["path"]), (400, &json!(["strategy"])));
    app.stop().await;
}

fn path_regex_stream() -> wiremock::matchers::PathRegexMatcher {
    wiremock::matchers::path_regex(r"^/v1/text-to-speech/[^/]+/stream$")
}

/// Lossy output: one mp3 whose decoded length is the turns and gaps within a codec frame, and
/// whose peak is the requested `volumeDbfs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mp3_output_keeps_the_length_and_volume_sets_the_peak() {
    let (app, upstreams) = gateway(Db::Sqlite, |_| {}).await;
    openai_says(&upstreams, "one", tone(1.0, 3_000.0, 440.0), Duration::ZERO).await;
    openai_says(&upstreams, "two", tone(0.5, 12_000.0, 523.0), Duration::ZERO).await;
    let (_, key) = app.speech_key().await;
    let turns = json!([{"voice": "alloy", "text": "one"}, {"voice": "echo", "text": "two", "pauseBeforeMs": 700}]);
    let body = json!({"model": "openai/tts-1", "turns": turns, "output": "mp3", "volumeDbfs": -6});
    let response = converse(&app, &key, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/mpeg");
    let mp3 = response.bytes().await.unwrap();
    let (codec, rate, _, seconds) = common::ffprobe(&mp3, None);
    assert_eq!((codec.as_str(), rate), ("mp3", RATE));
    // A streamed MP3 carries no gapless info: the decoder also plays LAME's start-up delay (1105
    // samples); past that, the length is the turns and the pause to within one frame (576
    // samples at 24 kHz), the last frame's padding.
    let extra = seconds * f64::from(RATE) - 52_800.0 - 1_105.0;
    assert!((0.0..576.0).contains(&extra), "{seconds} s: {extra} samples beyond the delay");

    let body = json!({"model": "openai/tts-1", "turns": turns, "output": "pcm", "volumeDbfs": -6});
    let mixed = samples(&converse(&app, &key, body).await.bytes().await.unwrap());
    let peak = mixed.iter().map(|s| i32::from(*s).abs()).max().unwrap();
    let target = (32_767.0 * 10f64.powf(-6.0 / 20.0)) as i32;
    assert!((peak - target).abs() <= 2, "peak {peak} vs {target}");
    app.stop().await;
}

both_databases!(three_turns_two_vendors_and_the_local_voice, failing_turns_are_named);
