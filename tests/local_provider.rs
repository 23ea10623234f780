//! The offline `local` provider through the `SpeechProvider` trait: real audio from the bundled
//! eSpeak NG data, word timings, streaming, errors, the voice catalogue and the registry.
#![cfg(feature = "local")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]
#![allow(clippy::disallowed_methods, reason = "a waiting request runs as a task the test joins")]

use std::sync::{Arc, OnceLock};

use futures::StreamExt;
use speechgate::{
    config::ProvidersConfig,
    domain::audio::{AudioFormat, AudioSpec},
    providers::{
        local::{Local, NATIVE_RATE},
        ProviderError, Registry, SpeechProvider, SynthesisEvent, SynthesisRequest, WordTiming,
    },
};

const HELLO: &str = "Hello world. This is a test.";

/// One provider for the whole file: unpacking the data once is enough.
fn local() -> &'static Local {
    static LOCAL: OnceLock<Local> = OnceLock::new();
    LOCAL.get_or_init(|| Local::new(&speechgate::config::LocalConfig::default()).expect("the bundled data unpacks"))
}

fn request(voice: &str, text: &str) -> SynthesisRequest {
    SynthesisRequest {
        model: "espeak-ng".to_owned(),
        voice: voice.to_owned(),
        text: text.to_owned(),
        output: AudioSpec::pcm(NATIVE_RATE),
        speed: None,
        instructions: None,
        language: None,
        seed: None,
        provider_options: serde_json::Map::new(),
        timestamps: true,
        credential: None,
    }
}

/// Every event of a synthesis, in order.
async fn events(request: SynthesisRequest) -> Vec<SynthesisEvent> {
    let stream = local().synthesize(request).await.expect("synthesis starts");
    stream.map(|event| event.expect("no error mid-stream")).collect().await
}

struct Clip {
    samples: Vec<i16>,
    words: Vec<WordTiming>,
    audio_chunks: usize,
}

impl Clip {
    fn from(events: &[SynthesisEvent]) -> Self {
        let mut bytes = Vec::new();
        let mut words = Vec::new();
        let mut audio_chunks = 0;
        for event in events {
            match event {
                SynthesisEvent::Audio(chunk) => {
                    assert_eq!(chunk.len() % 2, 0, "every chunk holds whole 16-bit samples");
                    bytes.extend_from_slice(chunk);
                    audio_chunks += 1;
                }
                SynthesisEvent::Words(batch) => words.extend(batch.iter().cloned()),
                SynthesisEvent::Tokens(tokens) => panic!("the local voice bills no tokens: {tokens:?}"),
                SynthesisEvent::Warning(warning) => panic!("the local voice reads what it is given: {warning}"),
            }
        }
        let samples = bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        Self { samples, words, audio_chunks }
    }

    fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(NATIVE_RATE)
    }

    fn rms(&self) -> f64 {
        let sum: f64 = self.samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        (sum / self.samples.len().max(1) as f64).sqrt()
    }
}

fn rejection(error: ProviderError) -> (u16, Option<String>) {
    match error {
        ProviderError::Rejected { provider, status, code, .. } => {
            assert_eq!(provider, "local");
            (status, code)
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn capabilities_declare_pcm_at_the_engine_rate_streaming_and_timestamps() {
    let caps = local().capabilities();
    assert_eq!(local().id(), "local");
    assert_eq!(caps.default_model, "espeak-ng");
    assert_eq!(caps.rates(AudioFormat::Pcm), [22_050]);
    assert!(caps.streaming && caps.native_timestamps && caps.voices_listable && caps.native_dialogue.is_none());
    assert_eq!(caps.speed_range, Some((0.5, 1.75)));
}

#[tokio::test]
async fn speaks_english_as_s16le_pcm() {
    let clip = Clip::from(&events(request("en-us", HELLO)).await);
    assert!((0.5..10.0).contains(&clip.seconds()), "{} s", clip.seconds());
    assert!(clip.rms() > 500.0, "not silence: rms {}", clip.rms());
}

#[tokio::test]
async fn word_timings_follow_the_words_in_order_within_the_audio() {
    let clip = Clip::from(&events(request("en-gb", HELLO)).await);
    let texts: Vec<&str> = clip.words.iter().map(|w| w.text.as_str()).collect();
    assert_eq!(texts, ["Hello", "world", "This", "is", "a", "test"]);
    assert!(clip.words[0].start < 0.1, "speech starts at once: {:?}", clip.words[0]);
    for word in &clip.words {
        assert!(word.start < word.end && word.end <= clip.seconds(), "{word:?} in {} s", clip.seconds());
    }
    for pair in clip.words.windows(2) {
        assert!(pair[0].end <= pair[1].start, "{:?} overlaps {:?}", pair[0], pair[1]);
    }
    // The pause between the sentences is not part of either word.
    assert!(clip.words[2].start - clip.words[1].end > 0.1, "{:?} {:?}", clip.words[1], clip.words[2]);
}

#[tokio::test]
async fn several_sentences_stream_in_several_chunks_each_with_its_words() {
    let text = "The first sentence is here. A second one follows it! Is there a third? There is.";
    let all = events(request("en-us", text)).await;
    let clip = Clip::from(&all);
    assert!(clip.audio_chunks >= 4, "{} audio chunks", clip.audio_chunks);
    assert_eq!(clip.words.len(), 16);
    // The first sentence's words come before the last sentence's audio: delivery is incremental.
    let first_words = all.iter().position(|e| matches!(e, SynthesisEvent::Words(_))).unwrap();
    let last_audio = all.iter().rposition(|e| matches!(e, SynthesisEvent::Audio(_))).unwrap();
    assert!(first_words < last_audio);
}

#[tokio::test]
async fn timestamps_are_only_computed_when_asked_for() {
    let mut plain = request("en-us", HELLO);
    plain.timestamps = false;
    let clip = Clip::from(&events(plain).await);
    assert!(clip.words.is_empty());
    assert!(clip.rms() > 500.0);
}

#[tokio::test]
async fn speed_changes_the_duration_as_declared() {
    let text = "Speech at a different speed should take a different amount of time to say.";
    let normal = Clip::from(&events(request("en-us", text)).await).seconds();
    for speed in [0.5_f32, 1.5] {
        let mut faster = request("en-us", text);
        faster.speed = Some(speed);
        let seconds = Clip::from(&events(faster).await).seconds();
        let ratio = normal / seconds / f64::from(speed);
        assert!((0.85..1.15).contains(&ratio), "speed {speed}: {seconds} s against {normal} s normally");
    }
}

#[tokio::test]
async fn unknown_voices_are_404_voice_not_found() {
    for voice in ["nobody", "fr", "en-us+nope", "en-shaw", ""] {
        let error = local().synthesize(request(voice, HELLO)).await.err().expect("rejected");
        assert_eq!(rejection(error), (404, Some("voice_not_found".to_owned())), "voice {voice:?}");
    }
}

#[tokio::test]
async fn voice_ids_ignore_case_and_underscores() {
    let clip = Clip::from(&events(request("EN_us+F3", "Hi there.")).await);
    assert!(clip.rms() > 300.0);
    // `en` is what eSpeak NG means by it: British English.
    assert!(Clip::from(&events(request("en", "Hi there.")).await).rms() > 300.0);
}

#[tokio::test]
async fn other_languages_and_outputs_are_rejected() {
    let mut french = request("en-us", HELLO);
    french.language = Some("fr-FR".to_owned());
    let error = local().synthesize(french).await.err().expect("rejected");
    assert_eq!(rejection(error), (400, Some("unsupported_language".to_owned())));

    let mut english = request("en-us", "Hi.");
    english.language = Some("en-GB".to_owned());
    assert!(local().synthesize(english).await.is_ok());

    let mut mp3 = request("en-us", HELLO);
    mp3.output = AudioSpec { format: AudioFormat::Mp3, sample_rate: NATIVE_RATE, bitrate_kbps: Some(128) };
    assert_eq!(rejection(local().synthesize(mp3).await.err().expect("rejected")).0, 400);

    let mut other_rate = request("en-us", HELLO);
    other_rate.output = AudioSpec::pcm(24_000);
    assert_eq!(rejection(local().synthesize(other_rate).await.err().expect("rejected")).0, 400);
}

#[tokio::test]
async fn blank_or_unspeakable_text_does_not_panic() {
    for text in ["", "   \n\n  ", "...", "-- & --"] {
        let clip = Clip::from(&events(request("en-us", text)).await);
        assert!(clip.words.is_empty(), "{text:?}");
    }
}

#[tokio::test]
async fn every_listed_voice_speaks() {
    let voices = local().voices().await.unwrap();
    let ids: Vec<&str> = voices.iter().map(|v| v.id.as_str()).collect();
    for expected in ["en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-us+f3", "en-us+m3", "en-us+whisper"] {
        assert!(ids.contains(&expected), "{expected} missing from {ids:?}");
    }
    assert!(voices.iter().all(|v| v.language.as_deref().is_some_and(|l| l.starts_with("en"))));
    let female = voices.iter().find(|v| v.id == "en-us+f3").unwrap();
    assert_eq!(female.gender.as_deref(), Some("female"));

    // All at once: the blocking pool spreads them over the cores.
    let runs = voices.iter().map(|voice| async move {
        let mut short = request(&voice.id, "Hi.");
        short.timestamps = false;
        (voice.id.clone(), Clip::from(&events(short).await).rms())
    });
    for (id, rms) in futures::future::join_all(runs).await {
        assert!(rms > 100.0, "{id} is silent");
    }
}

/// Long text streams sentence by sentence: the first audio event is one sentence, not the clip.
/// (Counted in bytes, not timed: timings on a shared test machine prove nothing.)
#[tokio::test]
async fn long_text_streams_sentence_by_sentence() {
    let long = "This sentence is spoken again and again. ".repeat(20);
    let mut request = request("en-us", &long);
    request.timestamps = false;
    let chunks: Vec<usize> = events(request)
        .await
        .iter()
        .map(|event| match event {
            SynthesisEvent::Audio(bytes) => bytes.len(),
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    let total: usize = chunks.iter().sum();
    assert!(chunks.len() >= 20, "{} audio events for 20 sentences", chunks.len());
    assert!(chunks[0] * 10 < total, "first event {} bytes of {total}", chunks[0]);
}

#[test]
fn the_registry_serves_local_when_enabled() {
    let registry = Registry::from_config(&ProvidersConfig::default()).unwrap();
    let resolved = registry.resolve("local").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resolved.provider.id(), "local");
    assert_eq!(resolved.model.id, "espeak-ng");
    assert!(registry.resolve("local/espeak-ng").is_ok());

    let mut off = ProvidersConfig::default();
    off.local.enabled = false;
    let registry = Registry::from_config(&off).unwrap();
    assert!(registry.get("local").is_none());
}

#[tokio::test]
async fn concurrent_requests_each_get_their_own_clip() {
    let provider: Arc<dyn SpeechProvider> = Arc::new(Local::new(&speechgate::config::LocalConfig::default()).unwrap());
    let runs = ["en-us", "en-gb", "en-us+m3"].map(|voice| {
        let provider = provider.clone();
        async move {
            let stream = provider.synthesize(request(voice, HELLO)).await.unwrap();
            let all: Vec<SynthesisEvent> = stream.map(Result::unwrap).collect().await;
            Clip::from(&all).words.len()
        }
    });
    assert_eq!(futures::future::join_all(runs).await, [6, 6, 6]);
}

/// The engine runs on a bounded pool: with one slot and room for one waiter, a third request
/// is refused at once (503), and the waiter gets the slot when the first clip's reader leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_pool_is_bounded() {
    let config = speechgate::config::LocalConfig { enabled: true, max_jobs: 1, max_waiting: 1 };
    let local = Arc::new(Local::new(&config).unwrap());
    let long = "This sentence is long enough to keep the engine busy. ".repeat(40);
    let mut first = local.synthesize(request("en-us", &long)).await.unwrap();
    assert!(matches!(first.next().await, Some(Ok(_))), "the first clip is rendering");
    let waiter = {
        let local = local.clone();
        tokio::spawn(async move { local.synthesize(request("en-us", HELLO)).await.map(|_| ()) })
    };
    // Let the second request take its place in the queue.
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        if waiter.is_finished() {
            break;
        }
    }
    assert!(!waiter.is_finished(), "the second request waits for the slot");
    match local.synthesize(request("en-us", HELLO)).await {
        Err(ProviderError::Unavailable { code: Some(code), .. }) => assert_eq!(code, "local_busy"),
        Err(other) => panic!("expected local_busy, got {other:?}"),
        Ok(_) => panic!("a third request must be refused while one renders and one waits"),
    }
    drop(first);
    let waited = tokio::time::timeout(std::time::Duration::from_secs(60), waiter).await;
    assert!(matches!(waited, Ok(Ok(Ok(())))), "the waiter got the slot once the first reader left");
}
