//! `/v1/audio/speech/with-timestamps`: one shape of word timing for every provider — the local
//! voice's own word events, ElevenLabs' characters, Cartesia's words, estimates for OpenAI —
//! in the caller's words and offsets, and right in the file a player plays (MP3's lead-in
//! included).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use base64::Engine;
use common::{problem, Db, TestApp};
use serde_json::{json, Value};
use speechgate::config::VendorConfig;
use wiremock::{
    matchers::{method, path, query_param},
    Mock, MockServer, ResponseTemplate,
};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(text.as_str().unwrap()).unwrap()
}

/// `(text, start, end, charStart, charEnd)` of each timestamp.
fn words(answer: &Value) -> Vec<(String, f64, f64, u64, u64)> {
    answer["timestamps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["text"].as_str().unwrap().to_owned(),
                t["start"].as_f64().unwrap(),
                t["end"].as_f64().unwrap(),
                t["charStart"].as_u64().unwrap(),
                t["charEnd"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// `seconds` of silence at `rate` (s16le) with a 300 Hz tone in each of `bursts` (seconds).
fn tone_bursts(rate: u32, seconds: f64, bursts: &[(f64, f64)]) -> Vec<u8> {
    let n = (f64::from(rate) * seconds) as usize;
    (0..n)
        .flat_map(|i| {
            let t = i as f64 / f64::from(rate);
            let on = bursts.iter().any(|(a, b)| (*a..*b).contains(&t));
            let sample = if on { (2.0 * std::f64::consts::PI * 300.0 * t).sin() * 12_000.0 } else { 0.0 };
            (sample as i16).to_le_bytes()
        })
        .collect()
}

async fn timed(app: &TestApp, key: &str, body: Value) -> Value {
    let response = app.post("/v1/audio/speech/with-timestamps", key, body.clone()).await;
    assert_eq!(response.status(), 200, "{body}");
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

fn in_order(stamps: &[(String, f64, f64, u64, u64)]) -> bool {
    stamps.windows(2).all(|w| w[0].2 <= w[1].1 + 1e-9 && w[0].4 <= w[1].3) && stamps.iter().all(|s| s.1 <= s.2)
}

/// The local voice's own word events, in the caller's words; the MP3 version of the same clip
/// has every word exactly LAME's lead-in (1105 samples) later.
#[cfg(feature = "local")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_word_events_in_wav_and_mp3() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let (_, key) = app.speech_key().await;
    let text = "Hello world. This is speechgate, speaking offline.";
    let body = |output: Value| json!({"model": "local", "voice": "en-us", "text": text, "output": output});
    let wav = timed(&app, &key, body(json!({"format": "wav", "sampleRate": 22050}))).await;
    assert_eq!(wav["alignment"], "native");
    assert_eq!(wav["mediaType"], "audio/wav");
    let stamps = words(&wav);
    let texts: Vec<&str> = stamps.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(texts, ["Hello", "world.", "This", "is", "speechgate,", "speaking", "offline."]);
    assert_eq!((stamps[4].3, stamps[4].4), (21, 32), "offsets are code points of the request text");
    assert!(in_order(&stamps), "{stamps:?}");
    let duration = wav["durationMs"].as_f64().unwrap() / 1000.0;
    assert!(stamps.last().unwrap().2 <= duration + 1e-3, "{stamps:?} within {duration} s");
    let (_, _, _, seconds) = common::ffprobe(&unb64(&wav["audio"]), None);
    assert!((seconds - duration).abs() < 0.002, "{seconds} vs {duration}");

    // They are the engine's own word events (its words carry no punctuation; ours do).
    let local = speechgate::providers::local::Local::new(&speechgate::config::LocalConfig::default()).unwrap();
    let request = speechgate::providers::SynthesisRequest {
        model: "espeak-ng".to_owned(),
        voice: "en-us".to_owned(),
        text: text.to_owned(),
        output: speechgate::domain::audio::AudioSpec::pcm(22_050),
        speed: None,
        instructions: None,
        language: None,
        seed: None,
        provider_options: serde_json::Map::new(),
        timestamps: true,
        credential: None,
    };
    use futures::StreamExt;
    use speechgate::providers::SpeechProvider;
    let own: Vec<speechgate::providers::WordTiming> = local
        .synthesize(request)
        .await
        .unwrap()
        .filter_map(|e| async move {
            match e.unwrap() {
                speechgate::providers::SynthesisEvent::Words(words) => Some(futures::stream::iter(words)),
                _ => None,
            }
        })
        .flatten()
        .collect()
        .await;
    assert_eq!(own.len(), stamps.len());
    for (event, stamp) in own.iter().zip(&stamps) {
        assert!((event.start - stamp.1).abs() < 0.0015 && (event.end - stamp.2).abs() < 0.0015, "{event:?} {stamp:?}");
    }

    let mp3 = timed(&app, &key, body(json!({"format": "mp3", "sampleRate": 22050}))).await;
    let lead_in = 1105.0 / 22050.0;
    for (a, b) in stamps.iter().zip(words(&mp3)) {
        assert!((b.1 - a.1 - lead_in).abs() < 0.0015, "{a:?} vs {b:?}");
        assert_eq!((a.3, a.4), (b.3, b.4));
    }
    app.stop().await;
}

async fn with_vendors(db: Db) -> (TestApp, MockServer) {
    let upstream = MockServer::start().await;
    let (openai, other) = (format!("{}/v1", upstream.uri()), upstream.uri());
    let app = TestApp::spawn_with(db, move |c| {
        c.providers.local.enabled = false;
        let vendor = |url: String| VendorConfig {
            api_key: Some("vendor-key".to_owned().into()),
            base_url: Some(url),
            ..Default::default()
        };
        c.providers.openai = vendor(openai);
        c.providers.elevenlabs = vendor(other.clone());
        c.providers.cartesia = vendor(other.clone());
        c.providers.deepgram = vendor(other);
    })
    .await;
    (app, upstream)
}

/// ElevenLabs' characters become the caller's words — a replaced word keeps its own text and
/// range — and so do Cartesia's words; OpenAI's get estimates, flagged; `native` refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_answers_in_one_shape() {
    let (app, upstream) = with_vendors(Db::Sqlite).await;
    let pcm = common::sine_pcm(24_000, 1.0);
    // ElevenLabs speaks "I like sequel." (the caller wrote "I like SQL."), one character per 50 ms.
    let spoken = "I like sequel.";
    let chars: Vec<String> = spoken.chars().map(String::from).collect();
    let starts: Vec<f64> = (0..chars.len()).map(|i| i as f64 * 0.05).collect();
    let ends: Vec<f64> = starts.iter().map(|s| s + 0.05).collect();
    let line = json!({"audio_base64": b64(&pcm), "alignment": {"characters": chars,
        "character_start_times_seconds": starts, "character_end_times_seconds": ends}});
    Mock::given(method("POST"))
        .and(path("/v1/text-to-speech/v1/stream/with-timestamps"))
        .and(query_param("output_format", "pcm_24000"))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!("{line}\n")))
        .mount(&upstream)
        .await;
    let (_, key) = app.speech_key().await;
    let rules = json!({"rules": [{"word": "SQL", "replacement": "sequel"}]});
    let answer = timed(
        &app,
        &key,
        json!({"model": "elevenlabs", "voice": "v1", "text": "I like SQL.", "pronunciations": rules, "output": "wav"}),
    )
    .await;
    assert_eq!(answer["alignment"], "native");
    assert_eq!(
        words(&answer),
        [("I".to_owned(), 0.0, 0.05, 0, 1), ("like".to_owned(), 0.1, 0.3, 2, 6), ("SQL.".to_owned(), 0.35, 0.7, 7, 11),]
    );

    // The same words in an MP3 at 11.025 kHz (the vendor's 16 kHz PCM, resampled): each exactly
    // LAME's lead-in later, as a player hears them.
    let line16 = json!({"audio_base64": b64(&common::sine_pcm(16_000, 1.0)), "alignment": line["alignment"]});
    Mock::given(method("POST"))
        .and(path("/v1/text-to-speech/v1/stream/with-timestamps"))
        .and(query_param("output_format", "pcm_16000"))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!("{line16}\n")))
        .mount(&upstream)
        .await;
    let mp3 = timed(
        &app,
        &key,
        json!({"model": "elevenlabs", "voice": "v1", "text": "I like SQL.", "pronunciations": rules,
               "output": {"format": "mp3", "sampleRate": 11025}}),
    )
    .await;
    assert_eq!(mp3["mediaType"], "audio/mpeg");
    let lead_in = 1105.0 / 11_025.0;
    for (wav, mp3) in words(&answer).iter().zip(words(&mp3)) {
        assert!(
            (mp3.1 - wav.1 - lead_in).abs() < 0.0015 && (mp3.2 - wav.2 - lead_in).abs() < 0.0015,
            "{wav:?} {mp3:?}"
        );
    }

    let sse = format!(
        "data: {}\n\ndata: {}\n\ndata: {}\n\n",
        json!({"type": "chunk", "data": b64(&pcm), "done": false}),
        json!({"type": "timestamps", "done": false, "word_timestamps": {"words": ["Good", "morning!"], "start": [0.1, 0.4], "end": [0.35, 0.9]}}),
        json!({"type": "done", "done": true})
    );
    Mock::given(method("POST"))
        .and(path("/tts/sse"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(sse).insert_header("content-type", "text/event-stream"),
        )
        .mount(&upstream)
        .await;
    let answer =
        timed(&app, &key, json!({"model": "cartesia", "voice": "c1", "text": "Good morning!", "output": "flac"})).await;
    assert_eq!(answer["alignment"], "native");
    assert_eq!(words(&answer), [("Good".to_owned(), 0.1, 0.35, 0, 4), ("morning!".to_owned(), 0.4, 0.9, 5, 13)]);

    // OpenAI speaks three words as three bursts, unevenly spaced: the estimate must find them
    // (spreading the words evenly over the clip would put "two" 130 ms early).
    let bursts = [(0.10, 0.20), (0.30, 0.40), (0.90, 1.30)];
    Mock::given(method("POST"))
        .and(path("/v1/audio/speech"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(tone_bursts(24_000, 1.4, &bursts)))
        .mount(&upstream)
        .await;
    let answer = timed(
        &app,
        &key,
        json!({"model": "openai/tts-1", "voice": "alloy", "text": "One, two, three.", "output": "wav"}),
    )
    .await;
    assert_eq!(answer["alignment"], "estimated");
    assert!(answer["warnings"][0].as_str().unwrap().contains("estimated"));
    let stamps = words(&answer);
    assert_eq!(stamps.len(), 3);
    assert!(in_order(&stamps), "{stamps:?}");
    for (stamp, (start, end)) in stamps.iter().zip(bursts) {
        assert!((stamp.1 - start).abs() < 0.04 && (stamp.2 - end).abs() < 0.04, "{stamp:?} vs {start}..{end}");
    }

    // Deepgram has no timing either: estimated too.
    Mock::given(method("POST"))
        .and(path("/v1/speak"))
        .and(query_param("encoding", "linear16"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(pcm.clone()))
        .mount(&upstream)
        .await;
    let answer =
        timed(&app, &key, json!({"model": "deepgram/aura-2", "voice": "thalia", "text": "Four five, six."})).await;
    assert_eq!(answer["alignment"], "estimated");
    assert_eq!(words(&answer).len(), 3);

    let calls = upstream.received_requests().await.unwrap().len();
    let native = json!({"model": "openai/tts-1", "voice": "alloy", "text": "x", "timestamps": "native"});
    let (status, body) = problem(app.post("/v1/audio/speech/with-timestamps", &key, native).await).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("timestamps_unavailable")));
    assert_eq!(upstream.received_requests().await.unwrap().len(), calls, "refused before any synthesis");
    let plain = json!({"model": "openai/tts-1", "voice": "alloy", "text": "x", "timestamps": "auto"});
    let (status, body) = problem(app.post("/v1/audio/speech", &key, plain).await).await;
    assert_eq!((status, &body["validation"][0]["path"]), (400, &json!(["timestamps"])));
    app.stop().await;
}

/// A conversation's words carry their turn and sit at the turn's place in the mix (gaps
/// included); split segments carry their own, from the segment's start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_words_follow_their_turns_into_the_mix() {
    let (app, upstream) = with_vendors(Db::Sqlite).await;
    let pcm = common::sine_pcm(24_000, 1.0);
    let line = json!({"audio_base64": b64(&pcm), "alignment": {"characters": ["H", "i", "!"],
        "character_start_times_seconds": [0.1, 0.2, 0.3], "character_end_times_seconds": [0.2, 0.3, 0.4]}});
    Mock::given(method("POST"))
        .and(path("/v1/text-to-speech/v1/stream/with-timestamps"))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!("{line}\n")))
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/audio/speech"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(common::sine_pcm(24_000, 0.5)))
        .mount(&upstream)
        .await;
    let (_, key) = app.speech_key().await;
    let turns = json!([
        {"model": "elevenlabs", "voice": "v1", "text": "Hi!"},
        {"model": "openai/tts-1", "voice": "alloy", "text": "Hello there."}
    ]);
    let response = app
        .post("/v1/audio/conversation/with-timestamps", &key, json!({"turns": turns, "gapMs": 400, "output": "wav"}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-speech-alignment"], "estimated", "one turn is estimated");
    let answer: Value = response.json().await.unwrap();
    let stamps = answer["timestamps"].as_array().unwrap();
    let turn_of: Vec<u64> = stamps.iter().map(|t| t["turnIndex"].as_u64().unwrap()).collect();
    assert_eq!(turn_of, [0, 1, 1]);
    assert_eq!((stamps[0]["start"].as_f64(), stamps[0]["end"].as_f64()), (Some(0.1), Some(0.4)));
    // Turn 1 starts after turn 0 (1 s) and the gap (0.4 s); its offsets are into its own text.
    let second = stamps[1]["start"].as_f64().unwrap();
    assert!((1.4..1.9).contains(&second), "{second}");
    assert_eq!((stamps[2]["charStart"].as_u64(), stamps[2]["charEnd"].as_u64()), (Some(6), Some(12)));
    assert!(stamps.last().unwrap()["end"].as_f64().unwrap() <= 1.9 + 1e-3);
    assert_eq!(answer["durationMs"], 1_900);

    let split = app
        .post("/v1/audio/conversation/with-timestamps", &key, json!({"turns": turns, "split": true, "output": "mp3"}))
        .await;
    assert_eq!(split.status(), 200);
    let split: Value = split.json().await.unwrap();
    let segments = split["audioSegments"].as_array().unwrap();
    assert_eq!(
        (segments[0]["alignment"].as_str(), segments[1]["alignment"].as_str()),
        (Some("native"), Some("estimated"))
    );
    let lead_in = 1105.0 / 24_000.0;
    let first = segments[0]["timestamps"][0]["start"].as_f64().unwrap();
    assert!((first - (0.1 + lead_in)).abs() < 0.0015, "block-relative, after the MP3 lead-in: {first}");
    assert!(segments[1]["timestamps"][0]["start"].as_f64().unwrap() < 0.5);
    app.stop().await;
}

/// The NDJSON stream: audio lines that concatenate to the file, words as soon as they are
/// settled (before the audio ends), then `done`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_sends_words_as_they_settle() {
    let (app, upstream) = with_vendors(Db::Sqlite).await;
    let pcm = common::sine_pcm(24_000, 0.5);
    let chunk = |chars: &str, t0: f64| {
        let characters: Vec<String> = chars.chars().map(String::from).collect();
        let starts: Vec<f64> = (0..characters.len()).map(|i| t0 + i as f64 * 0.1).collect();
        let ends: Vec<f64> = starts.iter().map(|s| s + 0.1).collect();
        json!({"audio_base64": b64(&pcm), "alignment": {"characters": characters,
            "character_start_times_seconds": starts, "character_end_times_seconds": ends}})
    };
    let body = format!("{}\n{}\n", chunk("One two ", 0.0), chunk("three.", 0.8));
    Mock::given(method("POST"))
        .and(path("/v1/text-to-speech/v1/stream/with-timestamps"))
        .respond_with(ResponseTemplate::new(200).set_body_string(body))
        .mount(&upstream)
        .await;
    let (_, key) = app.speech_key().await;
    let response = app
        .post(
            "/v1/audio/speech/with-timestamps/stream",
            &key,
            json!({"model": "elevenlabs", "voice": "v1", "text": "One two three.", "output": "wav"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    let first_words = kinds.iter().position(|k| *k == "words").unwrap();
    let last_audio = kinds.iter().rposition(|k| *k == "audio").unwrap();
    assert!(first_words < last_audio, "words before the audio ends: {kinds:?}");
    assert_eq!(kinds.last(), Some(&"done"));
    let words: Vec<String> = lines
        .iter()
        .filter(|l| l["type"] == "words")
        .flat_map(|l| l["timestamps"].as_array().unwrap().iter().map(|t| t["text"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(words, ["One", "two", "three."]);
    let audio: Vec<u8> = lines.iter().filter(|l| l["type"] == "audio").flat_map(|l| unb64(&l["audio"])).collect();
    let (_, _, _, seconds) = common::ffprobe(&audio, None);
    assert!((seconds - 1.0).abs() < 0.002, "{seconds}");
    let done = lines.last().unwrap();
    assert_eq!((done["durationMs"].as_u64(), done["alignment"].as_str()), (Some(1000), Some("native")));
    app.stop().await;
}

/// A vendor's alignment is untrusted: control characters, markup and absurd times in it never
/// reach the answer, which holds the caller's words with times inside the audio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_vendor_timing_stays_out_of_the_answer() {
    let (app, upstream) = with_vendors(Db::Sqlite).await;
    let line = json!({"audio_base64": b64(&common::sine_pcm(24_000, 1.0)), "alignment": {
        "characters": ["\u{0}", "<", "s", "c", "r", "i", "p", "t", ">", "\u{1b}[2J"],
        "character_start_times_seconds": [-5.0, 0.1, 1e308, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        "character_end_times_seconds": [1e308, 0.2, -1.0, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1e300]}});
    Mock::given(method("POST"))
        .and(path("/v1/text-to-speech/v1/stream/with-timestamps"))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!("{line}\n")))
        .mount(&upstream)
        .await;
    let (_, key) = app.speech_key().await;
    let answer =
        timed(&app, &key, json!({"model": "elevenlabs", "voice": "v1", "text": "Hello there", "output": "wav"})).await;
    let stamps = words(&answer);
    assert_eq!(stamps.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(), ["Hello", "there"]);
    assert!(in_order(&stamps) && stamps.iter().all(|s| (0.0..=1.0).contains(&s.1) && s.2 <= 1.0), "{stamps:?}");
    let said = format!("{}{}", answer["timestamps"], answer["warnings"]);
    assert!(!said.contains("script") && !said.contains("\\u001b") && !said.contains("\\u0000"), "{said}");
    app.stop().await;
}
