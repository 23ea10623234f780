//! The `azure` provider against a fake Azure Speech endpoint: real audio in the format the
//! `X-Microsoft-OutputFormat` header names, SSML that no caller text or voice can break out
//! of, speed as a prosody rate, a start-up that refuses a region that is not a plain region id,
//! the voice catalogue, and the key kept out of every problem, usage record and log line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use common::{problem, sine_pcm, Db, TestApp};
use serde_json::{json, Value};
use speechgate::{
    audio::{self, AudioFormat, AudioSpec},
    config::{Config, VendorConfig},
    providers::Registry,
};
use wiremock::{
    matchers::{header, method, path},
    Mock, MockServer, Request, ResponseTemplate,
};

/// Shaped like an Azure key (32 hex digits).
const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const VOICE: &str = "en-US-AvaNeural";

async fn gateway(uri: String) -> TestApp {
    TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.local.enabled = false;
        c.providers.timeout_secs = 2;
        c.providers.azure =
            VendorConfig { api_key: Some(KEY.to_owned().into()), base_url: Some(uri), ..Default::default() };
    })
    .await
}

async fn speak(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.client.post(app.url("/v1/audio/speech")).bearer_auth(key).json(&body).send().await.unwrap()
}

fn ssml_of(request: &Request) -> String {
    String::from_utf8(request.body.clone()).unwrap()
}

/// Mounts an upstream that answers with `audio` for any synthesis.
async fn answering(upstream: &MockServer, audio: Vec<u8>) {
    Mock::given(method("POST"))
        .and(path("/cognitiveservices/v1"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(audio, "audio/x-wav"))
        .mount(upstream)
        .await;
}

/// 1.5 s of a tone in what Azure's format name asks for; a 400 for a name the fake does not
/// know (so a wrong header fails the test).
fn azure_audio(request: &Request) -> ResponseTemplate {
    let name = request.headers.get("x-microsoft-outputformat").and_then(|v| v.to_str().ok()).unwrap_or("");
    let samples = audio::s16le_samples(&mut None, &sine_pcm(24_000, 1.5));
    let spec = |format, bitrate_kbps| AudioSpec { format, sample_rate: 24_000, bitrate_kbps };
    let (spec, content_type) = match name {
        "riff-24khz-16bit-mono-pcm" => (spec(AudioFormat::Wav, None), "audio/x-wav"),
        "audio-24khz-96kbitrate-mono-mp3" => (spec(AudioFormat::Mp3, Some(96)), "audio/mpeg"),
        "audio-24khz-160kbitrate-mono-mp3" => (spec(AudioFormat::Mp3, Some(160)), "audio/mpeg"),
        "ogg-24khz-16bit-mono-opus" => (spec(AudioFormat::Opus, None), "audio/ogg"),
        _ => return ResponseTemplate::new(400),
    };
    let bytes = audio::encode_whole(spec, &[&samples]).unwrap();
    ResponseTemplate::new(200).set_body_raw(bytes, content_type)
}

/// WAV, MP3 (default and chosen bitrate) and Ogg Opus come back as Azure made them and decode
/// to the clip's length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_in_several_formats_decodes_to_the_right_length() {
    let upstream = MockServer::start().await;
    let app = gateway(upstream.uri()).await;
    let (_, key) = app.speech_key().await;
    let cases = [
        (json!({"format": "wav", "sampleRate": 24000}), AudioFormat::Wav, "riff-24khz-16bit-mono-pcm"),
        (json!({"format": "mp3", "sampleRate": 24000}), AudioFormat::Mp3, "audio-24khz-96kbitrate-mono-mp3"),
        (
            json!({"format": "mp3", "sampleRate": 24000, "bitrate": 160}),
            AudioFormat::Mp3,
            "audio-24khz-160kbitrate-mono-mp3",
        ),
        (json!({"format": "opus", "sampleRate": 24000}), AudioFormat::Opus, "ogg-24khz-16bit-mono-opus"),
    ];
    for (output, format, asked) in cases {
        upstream.reset().await;
        Mock::given(method("POST"))
            .and(path("/cognitiveservices/v1"))
            .and(header("ocp-apim-subscription-key", KEY))
            .and(header("content-type", "application/ssml+xml"))
            .respond_with(azure_audio)
            .mount(&upstream)
            .await;
        let body = json!({"model": "azure", "voice": VOICE, "text": "A tone for a test.", "output": output});
        let response = speak(&app, &key, body).await;
        assert_eq!(response.status(), 200, "{output}");
        assert_eq!(response.headers()["x-speech-provider"], "azure");
        let bytes = response.bytes().await.unwrap();
        let requests = upstream.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].headers["x-microsoft-outputformat"], asked, "{output}");
        let decoded = audio::decode(format, &bytes, None).unwrap();
        assert_eq!(decoded.sample_rate, 24_000);
        let seconds = decoded.samples.len() as f64 / 24_000.0;
        assert!((seconds - 1.5).abs() < 0.1, "{output}: {seconds} s");
    }
    // A format Azure does not make (FLAC) is made by the gateway from Azure's PCM.
    upstream.reset().await;
    answering(&upstream, sine_pcm(24_000, 1.0)).await;
    let body = json!({"model": "azure/neural", "voice": VOICE, "text": "Lossless.", "output": {"format": "flac", "sampleRate": 24000}});
    let response = speak(&app, &key, body).await;
    assert_eq!(response.status(), 200);
    let decoded = audio::decode(AudioFormat::Flac, &response.bytes().await.unwrap(), None).unwrap();
    assert!((decoded.samples.len() as f64 / f64::from(decoded.sample_rate) - 1.0).abs() < 0.05);
    let requests = upstream.received_requests().await.unwrap();
    assert_eq!(requests[0].headers["x-microsoft-outputformat"], "raw-24khz-16bit-mono-pcm");
    app.stop().await;
}

/// The caller's text cannot close the voice element: every special character is escaped, so
/// the document still has exactly one voice, the caller's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_is_escaped_and_hostile_voices_are_refused() {
    let upstream = MockServer::start().await;
    answering(&upstream, sine_pcm(24_000, 0.5)).await;
    let app = gateway(upstream.uri()).await;
    let (_, key) = app.speech_key().await;
    let text = "Tom & Jerry </prosody></voice><voice name=\"x\">'evil'</voice></speak>";
    let body =
        json!({"model": "azure", "voice": VOICE, "text": text, "output": {"format": "pcm", "sampleRate": 24000}});
    assert_eq!(speak(&app, &key, body).await.status(), 200);
    let requests = upstream.received_requests().await.unwrap();
    let ssml = ssml_of(&requests[0]);
    assert_eq!(ssml.matches("<voice").count(), 1, "{ssml}");
    assert_eq!(ssml.matches("</voice>").count(), 1, "{ssml}");
    assert!(
        ssml.contains(
            "Tom &amp; Jerry &lt;/prosody&gt;&lt;/voice&gt;&lt;voice name=&quot;x&quot;&gt;&apos;evil&apos;\
             &lt;/voice&gt;&lt;/speak&gt;"
        ),
        "{ssml}"
    );
    assert!(ssml.ends_with("</voice></speak>"), "{ssml}");

    // Voice names with markup never reach Azure.
    for voice in ["</voice><voice name=\"x\">", "en-US-Ava\"Neural", "en-US-Ava&Neural", "a'b", "a>b"] {
        upstream.reset().await;
        answering(&upstream, sine_pcm(24_000, 0.5)).await;
        let body =
            json!({"model": "azure", "voice": voice, "text": "hi", "output": {"format": "pcm", "sampleRate": 24000}});
        let (status, problem) = problem(speak(&app, &key, body).await).await;
        assert_eq!(status, 400, "{voice}: {problem}");
        assert!(upstream.received_requests().await.unwrap().is_empty(), "{voice} reached the vendor");
    }
    // Nor does a language that is not a tag.
    upstream.reset().await;
    let body = json!({"model": "azure", "voice": VOICE, "text": "hi", "language": "en\"><x", "output": "pcm"});
    let (status, _) = problem(speak(&app, &key, body).await).await;
    assert_eq!(status, 400);
    assert!(upstream.received_requests().await.unwrap().is_empty());
    app.stop().await;
}

/// `speed` is a relative prosody rate, sent only when asked for; `language` names the SSML's
/// language, which otherwise comes from the voice name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speed_and_language_shape_the_ssml() {
    let upstream = MockServer::start().await;
    answering(&upstream, sine_pcm(24_000, 0.5)).await;
    let app = gateway(upstream.uri()).await;
    let (_, key) = app.speech_key().await;
    let pcm = json!({"format": "pcm", "sampleRate": 24000});
    let cases = [
        (json!({"speed": 1.25}), "en-US", Some("+25.00%")),
        (json!({"speed": 0.5, "language": "fr-FR"}), "fr-FR", Some("-50.00%")),
        (json!({}), "en-US", None),
    ];
    for (extra, language, rate) in cases {
        upstream.reset().await;
        answering(&upstream, sine_pcm(24_000, 0.5)).await;
        let mut body = json!({"model": "azure", "voice": VOICE, "text": "Quickly now.", "output": pcm});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        assert_eq!(speak(&app, &key, body).await.status(), 200);
        let ssml = ssml_of(&upstream.received_requests().await.unwrap()[0]);
        assert!(ssml.contains(&format!("xml:lang=\"{language}\"")), "{ssml}");
        match rate {
            Some(rate) => assert!(
                ssml.contains(&format!(
                    "<voice name=\"{VOICE}\"><prosody rate=\"{rate}\">Quickly now.</prosody></voice>"
                )),
                "{ssml}"
            ),
            None => assert!(!ssml.contains("prosody"), "{ssml}"),
        }
    }
    // Without `language`, the voice's own locale (not a default) is the document's.
    upstream.reset().await;
    answering(&upstream, sine_pcm(24_000, 0.5)).await;
    let body = json!({"model": "azure", "voice": "fr-FR-DeniseNeural", "text": "Bonjour.", "output": pcm});
    assert_eq!(speak(&app, &key, body).await.status(), 200);
    let ssml = ssml_of(&upstream.received_requests().await.unwrap()[0]);
    assert!(ssml.contains("xml:lang=\"fr-FR\"") && ssml.contains("<voice name=\"fr-FR-DeniseNeural\">"), "{ssml}");
    // Azure's range is half to twice the normal rate.
    let body = json!({"model": "azure", "voice": VOICE, "text": "Too fast.", "speed": 3.0, "output": pcm});
    let (status, _) = problem(speak(&app, &key, body).await).await;
    assert_eq!(status, 400);
    app.stop().await;
}

/// The region becomes part of a host name: anything but a plain region id stops the start-up,
/// as does a key with neither a region nor an endpoint; the vendor's own variables set it up.
#[test]
#[expect(clippy::result_large_err, reason = "figment::Jail closures return figment::Error")]
fn the_region_must_be_a_plain_region_id() {
    let section = |region: Option<&str>, base_url: Option<&str>| VendorConfig {
        api_key: Some(KEY.to_owned().into()),
        region: region.map(str::to_owned),
        base_url: base_url.map(str::to_owned),
        ..Default::default()
    };
    let build = |azure: VendorConfig| {
        let mut config = speechgate::config::ProvidersConfig::default();
        config.local.enabled = false;
        config.azure = azure;
        Registry::from_config(&config)
    };
    for hostile in ["evil.example/x?", "westeurope.evil.example", "WestEurope", "west europe", "", "eu\nwest"] {
        let err = build(section(Some(hostile), None)).err().map(|e| e.to_string()).expect(hostile);
        assert!(err.starts_with("providers.azure:") && err.contains("region"), "{err}");
        assert!(!err.contains(KEY), "{err}");
        assert!(hostile.is_empty() || !err.contains(hostile), "the hostile value is echoed: {err}");
        // An endpoint does not excuse a hostile region (an empty one is no region at all).
        assert_eq!(build(section(Some(hostile), Some("http://127.0.0.1:9"))).is_err(), !hostile.is_empty());
    }
    let err = build(section(None, None)).err().map(|e| e.to_string()).unwrap();
    assert!(err.contains("AZURE_SPEECH_REGION") && err.contains("AZURE_SPEECH_ENDPOINT") && !err.contains(KEY));
    assert!(build(section(Some("westeurope"), None)).unwrap().get("azure").is_some());
    assert!(build(section(None, Some("http://127.0.0.1:9"))).unwrap().get("azure").is_some());
    assert!(build(VendorConfig::default()).unwrap().get("azure").is_none());

    figment::Jail::expect_with(|jail| {
        jail.set_env("AZURE_SPEECH_KEY", KEY);
        jail.set_env("AZURE_SPEECH_REGION", "eastus2");
        let config = Config::load(Path::new("none.toml")).map_err(|e| e.to_string())?;
        assert_eq!(config.providers.azure.region.as_deref(), Some("eastus2"));
        assert!(Registry::from_config(&config.providers).unwrap().get("azure").is_some());
        jail.set_env("AZURE_SPEECH_REGION", "eastus2.evil.example");
        let config = Config::load(Path::new("none.toml")).map_err(|e| e.to_string())?;
        assert!(Registry::from_config(&config.providers).is_err());
        jail.set_env("AZURE_SPEECH_ENDPOINT", "http://127.0.0.1:9");
        let config = Config::load(Path::new("none.toml")).map_err(|e| e.to_string())?;
        assert_eq!(config.providers.azure.base_url.as_deref(), Some("http://127.0.0.1:9"));
        Ok(())
    });
}

/// The catalogue is Azure's voice list, by short name; an entry whose name could not be sent
/// back as a voice is left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_voice_catalogue_lists_azure_voices() {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/cognitiveservices/voices/list"))
        .and(header("ocp-apim-subscription-key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"Name": "Microsoft Server Speech Text to Speech Voice (en-US, AvaNeural)", "DisplayName": "Ava",
             "LocalName": "Ava", "ShortName": "en-US-AvaNeural", "Gender": "Female", "Locale": "en-US",
             "LocaleName": "English (United States)", "StyleList": ["chat", "cheerful"], "SampleRateHertz": "24000",
             "VoiceType": "Neural", "Status": "GA", "WordsPerMinute": "152"},
            {"Name": "Microsoft Server Speech Text to Speech Voice (zh-CN, YunxiNeural)", "DisplayName": "Yunxi",
             "LocalName": "云希", "ShortName": "zh-CN-YunxiNeural", "Gender": "Male", "Locale": "zh-CN",
             "LocaleName": "Chinese (Mandarin, Simplified)", "VoiceType": "Neural", "Status": "GA"},
            {"Name": "odd", "ShortName": "x\"><voice name=\"y", "Gender": "Female", "Locale": "en-US"}
        ])))
        .expect(1)
        .mount(&upstream)
        .await;
    let app = gateway(upstream.uri()).await;
    let (_, key) = app.speech_key().await;
    let voices: Value = app.get("/v1/audio/providers/azure/voices", Some(&key)).await.json().await.unwrap();
    assert_eq!(
        voices["data"],
        json!([
            {"id": "en-US-AvaNeural", "name": "Ava", "gender": "female", "language": "en-US",
             "description": "English (United States); Neural; styles: chat, cheerful"},
            {"id": "zh-CN-YunxiNeural", "name": "Yunxi", "gender": "male", "language": "zh-CN",
             "description": "Chinese (Mandarin, Simplified); Neural"}
        ])
    );
    let providers: Value = app.get("/v1/audio/providers", Some(&key)).await.json().await.unwrap();
    let azure = providers["data"].as_array().unwrap().iter().find(|p| p["id"] == "azure").unwrap().clone();
    assert_eq!(azure["capabilities"]["voicesListable"], true);
    assert_eq!(azure["capabilities"]["nativeTimestamps"], false);
    assert_eq!(azure["capabilities"]["defaultModel"], "neural");
    app.stop().await;
}

/// A `tracing` writer that keeps every line.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Azure's failures map to the gateway's problems, and the key — even where Azure echoes it —
/// shows up in no problem body, no usage record and no log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_never_show_the_key() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let upstream = MockServer::start().await;
    let app = gateway(upstream.uri()).await;
    let (key_id, key) = app.speech_key().await;
    let echo = format!("Access denied due to invalid subscription key {KEY}.");
    let cases = [
        (
            ResponseTemplate::new(401).set_body_json(json!({"error": {"code": "401", "message": echo}})),
            502,
            "provider_auth_failed",
        ),
        (
            ResponseTemplate::new(400).set_body_raw(format!("bad SSML near {KEY}"), "text/plain"),
            400,
            "upstream_rejected",
        ),
        (ResponseTemplate::new(400), 400, "upstream_rejected"),
        (ResponseTemplate::new(415), 502, "upstream_invalid_response"),
        (ResponseTemplate::new(429).insert_header("retry-after", "7"), 429, "upstream_rate_limited"),
        (ResponseTemplate::new(502).set_body_string(echo.clone()), 503, "provider_unavailable"),
        // A 200 without audio is no clip.
        (ResponseTemplate::new(200).set_body_raw(Vec::new(), "audio/x-wav"), 502, "upstream_invalid_response"),
    ];
    for (template, status, code) in cases {
        upstream.reset().await;
        Mock::given(method("POST")).respond_with(template).mount(&upstream).await;
        let body =
            json!({"model": "azure", "voice": VOICE, "text": "hi", "output": {"format": "pcm", "sampleRate": 24000}});
        let response = speak(&app, &key, body).await;
        if status == 429 {
            assert_eq!(response.headers()["retry-after"], "7");
        }
        let (got, problem) = problem(response).await;
        assert_eq!((got, problem["code"].as_str()), (status, Some(code)), "{problem}");
        assert_eq!(problem["provider"], "azure");
        assert!(problem.get("upstream_code").is_none_or(Value::is_null), "{problem}");
        assert!(!problem.to_string().contains(KEY), "the key leaked: {problem}");
    }
    // The empty 400 says what Azure's bare 400s usually mean.
    upstream.reset().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(400)).mount(&upstream).await;
    let body = json!({"model": "azure", "voice": "en-US-NoSuchNeural", "text": "hi", "output": "pcm"});
    let (_, problem) = problem(speak(&app, &key, body).await).await;
    assert!(problem["detail"].as_str().unwrap().contains("unknown voice"), "{problem}");

    let events = app.stop_and_read_usage(Some(&key_id)).await;
    assert!(events.iter().any(|e| e.event.provider.as_deref() == Some("azure")));
    for event in &events {
        let recorded = format!("{:?}", event.event);
        assert!(!recorded.contains(KEY), "the key is in a usage record: {recorded}");
    }
    let logged = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(logged.contains("azure"), "the failures were logged: {logged}");
    assert!(!logged.contains(KEY), "the key is in a log line");
}

/// Azure's REST API times no words, so `/with-timestamps` estimates them from the audio (and
/// says so); `native` timing is refused before any synthesis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_are_estimated() {
    let upstream = MockServer::start().await;
    // Three words as three tone bursts in silence.
    let bursts = [(0.10, 0.30), (0.50, 0.70), (0.90, 1.20)];
    let pcm: Vec<u8> = (0..(24_000.0 * 1.3) as usize)
        .flat_map(|i| {
            let t = i as f64 / 24_000.0;
            let on = bursts.iter().any(|(a, b)| (*a..*b).contains(&t));
            let sample = if on { (2.0 * std::f64::consts::PI * 300.0 * t).sin() * 12_000.0 } else { 0.0 };
            (sample as i16).to_le_bytes()
        })
        .collect();
    answering(&upstream, pcm).await;
    let app = gateway(upstream.uri()).await;
    let (_, key) = app.speech_key().await;
    let body = json!({"model": "azure", "voice": VOICE, "text": "One two three.", "output": "wav"});
    let response = app.post("/v1/audio/speech/with-timestamps", &key, body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["alignment"], "estimated");
    assert!(answer["warnings"][0].as_str().unwrap().contains("estimated"), "{answer}");
    let stamps = answer["timestamps"].as_array().unwrap();
    assert_eq!(stamps.len(), 3, "{answer}");
    for (stamp, (start, end)) in stamps.iter().zip(bursts) {
        let (got_start, got_end) = (stamp["start"].as_f64().unwrap(), stamp["end"].as_f64().unwrap());
        assert!((got_start - start).abs() < 0.05 && (got_end - end).abs() < 0.05, "{stamp} vs {start}..{end}");
    }
    let calls = upstream.received_requests().await.unwrap().len();
    let native = json!({"model": "azure", "voice": VOICE, "text": "x", "timestamps": "native"});
    let (status, body) = problem(app.post("/v1/audio/speech/with-timestamps", &key, native).await).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("timestamps_unavailable")));
    assert_eq!(upstream.received_requests().await.unwrap().len(), calls);
    app.stop().await;
}
