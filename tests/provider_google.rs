//! Google Cloud Text-to-Speech against a fake of its REST API: audio in raw and WAV form,
//! native word timing through SSML marks, the voice catalogue, and a service account's OAuth
//! flow against a fake token endpoint, with a fixed RSA test key (tests/fixtures).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use base64::Engine;
use common::{problem, Db, TestApp};
use serde_json::{json, Value};
use speechgate::{
    audio::{decode, AudioFormat},
    config::{Config, VendorConfig},
};
use wiremock::{
    matchers::{header, method, path},
    Mock, MockServer, Request, Respond, ResponseTemplate,
};

const KEY: &str = "google-operator-key-0000";
const PRIVATE_KEY: &str = include_str!("fixtures/google_test_key.pem");
const PUBLIC_KEY: &str = include_str!("fixtures/google_test_key.pub.pem");
const CLIENT_EMAIL: &str = "speech@test-project.iam.gserviceaccount.com";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A WAV file as Google sends `LINEAR16` (tag 1, 16 bits) or `MULAW` (tag 7, 8 bits), with a
/// `LIST` chunk before `data`, as encoders write.
fn wav(tag: u16, bits: u16, rate: u32, data: &[u8]) -> Vec<u8> {
    let list = [b"LIST".as_slice(), &4u32.to_le_bytes(), b"INFO"].concat();
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36 + list.len() as u32 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(bits / 8)).to_le_bytes());
    out.extend_from_slice(&(bits / 8).to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(&list);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}

fn api_key_config(c: &mut Config, uri: String) {
    c.providers.local.enabled = false;
    c.providers.timeout_secs = 2;
    c.providers.google = VendorConfig { api_key: Some(KEY.into()), base_url: Some(uri), ..Default::default() };
}

async fn api_key_gateway(upstream: &MockServer) -> TestApp {
    let uri = upstream.uri();
    TestApp::spawn_with(Db::Sqlite, move |c| api_key_config(c, uri)).await
}

fn body_json(request: &Request) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

/// Speech in two formats: the raw samples (header stripped) and the WAV file (kept) both decode
/// to the clip's length; a header that says another rate is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_in_raw_and_wav_decodes_with_the_right_duration() {
    let upstream = MockServer::start().await;
    let pcm = common::sine_pcm(24_000, 0.75);
    Mock::given(method("POST"))
        .and(path("/v1/text:synthesize"))
        .and(header("x-goog-api-key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"audioContent": b64(&wav(1, 16, 24_000, &pcm))})))
        .mount(&upstream)
        .await;
    let app = api_key_gateway(&upstream).await;
    let (_, key) = app.speech_key().await;
    for (format, decoded_as) in [("pcm", AudioFormat::Pcm), ("wav", AudioFormat::Wav)] {
        let body = json!({"model": "google", "voice": "en-GB-Neural2-B", "text": "Two formats.",
                          "speed": 1.5, "output": {"format": format, "sampleRate": 24000}});
        let response = app.post("/v1/audio/speech", &key, body).await;
        assert_eq!(response.status(), 200, "{format}");
        let bytes = response.bytes().await.unwrap();
        if format == "pcm" {
            assert_eq!(bytes.as_ref(), pcm.as_slice(), "the samples alone");
        } else {
            assert!(bytes.starts_with(b"RIFF"), "the WAV file whole");
        }
        let clip = decode(decoded_as, &bytes, Some(24_000)).unwrap();
        assert_eq!(clip.sample_rate, 24_000);
        assert_eq!(clip.samples.len(), 18_000, "{format}: 0.75 s at 24 kHz");
    }
    let sent = upstream.received_requests().await.unwrap();
    let body = body_json(&sent[0]);
    assert_eq!(body["voice"], json!({"languageCode": "en-GB", "name": "en-GB-Neural2-B"}));
    assert_eq!(body["audioConfig"]["speakingRate"], 1.5);

    // μ-law at 8 kHz: the header must say μ-law at 8 kHz; a LINEAR16 file at 24 kHz is not it.
    let ulaw = vec![0xffu8; 4_000];
    upstream.reset().await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::body_partial_json(json!({"audioConfig": {"audioEncoding": "MULAW"}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"audioContent": b64(&wav(7, 8, 8_000, &ulaw))})))
        .mount(&upstream)
        .await;
    let ulaw_body = json!({"model": "google", "voice": "en-US-Standard-C", "text": "Phone.", "output": {"format": "ulaw", "sampleRate": 8000}});
    let response = app.post("/v1/audio/speech", &key, ulaw_body.clone()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(decode(AudioFormat::Ulaw, &response.bytes().await.unwrap(), Some(8_000)).unwrap().samples.len(), 4_000);
    upstream.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"audioContent": b64(&wav(1, 16, 24_000, &pcm))})))
        .mount(&upstream)
        .await;
    let (status, body) = problem(app.post("/v1/audio/speech", &key, ulaw_body.clone()).await).await;
    assert_eq!((status, body["code"].as_str()), (502, Some("upstream_invalid_response")), "{body}");
    upstream.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"audioContent": b64(b"RIFF\x10\0\0\0WAVEjunk")})))
        .mount(&upstream)
        .await;
    let (status, body) = problem(app.post("/v1/audio/speech", &key, ulaw_body).await).await;
    assert_eq!((status, body["code"].as_str()), (502, Some("upstream_invalid_response")), "{body}");
    app.stop().await;
}

/// A fake `v1beta1/text:synthesize` that times each `<mark name="...">` of the SSML it is sent at
/// 0.2 s + 0.35 s × its place, in a clip 0.35 s longer than the last.
struct Marks;

const FIRST_MARK: f64 = 0.2;
const MARK_STEP: f64 = 0.35;

fn mark_names(ssml: &str) -> Vec<String> {
    ssml.split("<mark name=\"").skip(1).filter_map(|rest| rest.split('"').next()).map(str::to_owned).collect()
}

impl Respond for Marks {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body = body_json(request);
        let names = mark_names(body["input"]["ssml"].as_str().unwrap_or_default());
        let timepoints: Vec<Value> = names
            .iter()
            .enumerate()
            .map(|(i, name)| json!({"markName": name, "timeSeconds": FIRST_MARK + MARK_STEP * i as f64}))
            .collect();
        let seconds = FIRST_MARK + MARK_STEP * names.len() as f64;
        let pcm = common::sine_pcm(24_000, seconds);
        // A mark Google never got, and times that are nonsense, are ignored.
        let mut timepoints = timepoints;
        timepoints.push(json!({"markName": "unknown", "timeSeconds": 0.1}));
        timepoints.push(json!({"markName": "w0", "timeSeconds": -3.0}));
        ResponseTemplate::new(200).set_body_json(json!({
            "audioContent": b64(&wav(1, 16, 24_000, &pcm)),
            "timepoints": timepoints,
            "audioConfig": {"audioEncoding": "LINEAR16", "sampleRateHertz": 24000}
        }))
    }
}

/// `/with-timestamps`: each word starts within one audio frame of its mark's time, and ends where
/// the next starts (the last at the clip's end); non-ASCII words keep their text and place; the
/// text reaches Google escaped, so it cannot close the SSML or add elements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marks_time_the_callers_words() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1beta1/text:synthesize"))
        .and(header("x-goog-api-key", KEY))
        .and(wiremock::matchers::body_partial_json(json!({"enableTimePointing": ["SSML_MARK"]})))
        .respond_with(Marks)
        .mount(&upstream)
        .await;
    let app = api_key_gateway(&upstream).await;
    let (_, key) = app.speech_key().await;
    let frame = 1.0 / 24_000.0 + 1e-6;
    let text = "Crème brûlée, naïve café";
    let body = json!({"model": "google/cloud-tts", "voice": "fr-FR-Neural2-A", "text": text,
                      "output": {"format": "wav", "sampleRate": 24000}});
    let response = app.post("/v1/audio/speech/with-timestamps", &key, body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["alignment"], "native", "{answer}");
    let words: Vec<&str> = text.split_whitespace().collect();
    let stamps = answer["timestamps"].as_array().unwrap();
    assert_eq!(stamps.len(), words.len(), "{answer}");
    let duration = FIRST_MARK + MARK_STEP * words.len() as f64;
    let mut from = 0;
    for (i, (stamp, word)) in stamps.iter().zip(&words).enumerate() {
        assert_eq!(stamp["text"], *word);
        let start = FIRST_MARK + MARK_STEP * i as f64;
        let end = if i + 1 == words.len() { duration } else { start + MARK_STEP };
        let (got_start, got_end) = (stamp["start"].as_f64().unwrap(), stamp["end"].as_f64().unwrap());
        assert!((got_start - start).abs() <= frame, "{word}: starts {got_start}, marked {start}");
        assert!((got_end - end).abs() <= frame, "{word}: ends {got_end}, expected {end}");
        let at = from + text[from..].find(word).unwrap();
        let char_start = text[..at].chars().count() as u64;
        assert_eq!(stamp["charStart"].as_u64(), Some(char_start), "{word}");
        assert_eq!(stamp["charEnd"].as_u64(), Some(char_start + word.chars().count() as u64), "{word}");
        from = at + word.len();
    }
    assert!((answer["durationMs"].as_f64().unwrap() / 1000.0 - duration).abs() < 0.002, "{answer}");

    let hostile = "Say </speak><audio src=\"http://x\"/> & 'this'";
    let body = json!({"model": "google", "voice": "en-US-Neural2-A", "text": hostile, "output": "pcm"});
    let response = app.post("/v1/audio/speech/with-timestamps", &key, body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["alignment"], "native", "{answer}");
    assert_eq!(answer["timestamps"][0]["text"], "Say");
    let sent = upstream.received_requests().await.unwrap();
    let ssml = body_json(&sent[1])["input"]["ssml"].as_str().unwrap().to_owned();
    assert_eq!(
        ssml,
        "<speak><mark name=\"w0\"/>Say <mark name=\"w1\"/>&lt;/speak&gt;&lt;audio <mark name=\"w2\"/>src=&quot;http://x&quot;/&gt; \
         <mark name=\"w3\"/>&amp; <mark name=\"w4\"/>&apos;this&apos;</speak>"
    );
    assert!(body_json(&sent[1])["input"]["text"].is_null());
    app.stop().await;
}

/// The catalogue: Google's voices with their language, gender and family; names that are not
/// names (control characters, empty) are dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_catalogue_lists() {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/voices"))
        .and(header("x-goog-api-key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"voices": [
            {"languageCodes": ["en-US"], "name": "en-US-Neural2-A", "ssmlGender": "MALE", "naturalSampleRateHertz": 24000},
            {"languageCodes": ["de-DE"], "name": "de-DE-Chirp3-HD-Aoede", "ssmlGender": "FEMALE", "naturalSampleRateHertz": 24000},
            {"languageCodes": ["en-US"], "name": "bad\u{1b}[31mname", "ssmlGender": "MALE"},
            {"languageCodes": [], "name": "", "ssmlGender": "FEMALE"},
            {"name": 42},
        ]})))
        .expect(1)
        .mount(&upstream)
        .await;
    let app = api_key_gateway(&upstream).await;
    let (_, key) = app.speech_key().await;
    let voices: Value = app.get("/v1/audio/providers/google/voices", Some(&key)).await.json().await.unwrap();
    assert_eq!(
        voices["data"],
        json!([
            {"id": "en-US-Neural2-A", "name": "en-US-Neural2-A", "gender": "male", "language": "en-US",
             "description": "Neural2 voice, 24000 Hz"},
            {"id": "de-DE-Chirp3-HD-Aoede", "name": "de-DE-Chirp3-HD-Aoede", "gender": "female", "language": "de-DE",
             "description": "Chirp3-HD voice, 24000 Hz"}
        ])
    );
    app.stop().await;
}

/// A fake token endpoint: each exchange gets a new token, `expires_in` 2 s.
struct TokenEndpoint(Arc<AtomicUsize>);

impl Respond for TokenEndpoint {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": format!("ya29.token-{n}"), "expires_in": 2, "token_type": "Bearer"}))
    }
}

fn key_file(dir: &tempfile::TempDir, token_uri: &str) -> String {
    let file = json!({
        "type": "service_account", "project_id": "test-project", "private_key_id": "0123abcd",
        "private_key": PRIVATE_KEY, "client_email": CLIENT_EMAIL, "client_id": "1",
        "auth_uri": "https://accounts.example/o/oauth2/auth", "token_uri": token_uri,
    });
    let path = dir.path().join("service-account.json");
    std::fs::write(&path, file.to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

fn form(request: &Request) -> Vec<(String, String)> {
    form_urlencoded::parse(&request.body).into_owned().collect()
}

/// The service account's assertion is signed by its key with the right claims; the token it
/// buys is fetched once for several requests, sent as a bearer token, and refreshed once it is
/// about to expire. A project's own key still goes in the API-key header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_are_fetched_cached_and_refreshed() {
    let upstream = MockServer::start().await;
    let issued = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST")).and(path("/token")).respond_with(TokenEndpoint(issued.clone())).mount(&upstream).await;
    let pcm = common::sine_pcm(16_000, 0.1);
    Mock::given(method("POST"))
        .and(path("/v1/text:synthesize"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"audioContent": b64(&wav(1, 16, 16_000, &pcm))})))
        .mount(&upstream)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let token_uri = format!("{}/token", upstream.uri());
    let file = key_file(&dir, &token_uri);
    let uri = upstream.uri();
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.local.enabled = false;
        c.providers.google = VendorConfig { credentials_file: Some(file), base_url: Some(uri), ..Default::default() };
        c.auth.master_key = Some("q3Jd0mS8Zf2x9Lh6Pw1VtYbNcRkE4uGiOa7sTzWvXyM=".to_owned().into());
    })
    .await;
    // A project's key, which may also bring the project's own Google key.
    let project: Value = app.admin_post("/admin/v1/projects", json!({"name": "byok"})).await.json().await.unwrap();
    let (_, key) =
        app.create_key(json!({"name": "k", "projectId": project["id"], "scopes": ["speech", "credentials"]})).await;
    let speak = || {
        let body = json!({"model": "google", "voice": "en-US-Standard-A", "text": "Token please.",
                          "output": {"format": "pcm", "sampleRate": 16000}});
        app.post("/v1/audio/speech", &key, body)
    };
    let replies = futures::future::join_all((0..4).map(|_| speak())).await;
    for reply in replies {
        assert_eq!(reply.status(), 200);
        assert_eq!(reply.bytes().await.unwrap().as_ref(), pcm.as_slice());
    }
    assert_eq!(issued.load(Ordering::SeqCst), 1, "one token for concurrent requests");

    let sent = upstream.received_requests().await.unwrap();
    let exchange = sent.iter().find(|r| r.url.path() == "/token").unwrap();
    assert_eq!(exchange.headers.get("content-type").unwrap(), "application/x-www-form-urlencoded");
    let fields = form(exchange);
    assert_eq!(fields[0], ("grant_type".to_owned(), "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned()));
    let assertion = &fields.iter().find(|(k, _)| k == "assertion").unwrap().1;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[&token_uri]);
    validation.set_issuer(&[CLIENT_EMAIL]);
    let decoded = jsonwebtoken::decode::<Value>(
        assertion,
        &jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap(),
        &validation,
    )
    .expect("signed by the service account's key, with its claims");
    assert_eq!(decoded.header.kid.as_deref(), Some("0123abcd"));
    let claims = decoded.claims;
    assert_eq!(claims["scope"], "https://www.googleapis.com/auth/cloud-platform");
    let (iat, exp) = (claims["iat"].as_u64().unwrap(), claims["exp"].as_u64().unwrap());
    assert_eq!(exp - iat, 3600);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(iat.abs_diff(now) < 60);
    for synth in sent.iter().filter(|r| r.url.path() == "/v1/text:synthesize") {
        assert_eq!(synth.headers.get("authorization").unwrap(), "Bearer ya29.token-1");
        assert!(synth.headers.get("x-goog-api-key").is_none());
        assert_eq!(synth.url.query(), None);
    }

    // 2 s tokens are refreshed after 1 s.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    upstream.reset().await;
    Mock::given(method("POST")).and(path("/token")).respond_with(TokenEndpoint(issued.clone())).mount(&upstream).await;
    Mock::given(method("POST"))
        .and(path("/v1/text:synthesize"))
        .and(header("authorization", "Bearer ya29.token-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"audioContent": b64(&wav(1, 16, 16_000, &pcm))})))
        .mount(&upstream)
        .await;
    assert_eq!(speak().await.status(), 200);
    assert_eq!(speak().await.status(), 200);
    assert_eq!(issued.load(Ordering::SeqCst), 2, "refreshed once");

    // A project's own key goes where the operator's API key would, without the bearer token.
    upstream.reset().await;
    Mock::given(method("POST"))
        .and(path("/v1/text:synthesize"))
        .and(header("x-goog-api-key", "project-google-key"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"audioContent": b64(&wav(1, 16, 16_000, &pcm))})))
        .mount(&upstream)
        .await;
    let put = app
        .client
        .put(app.url("/v1/api-keys/google"))
        .bearer_auth(&key)
        .json(&json!({"apiKey": "project-google-key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    assert_eq!(speak().await.status(), 200);
    let sent = upstream.received_requests().await.unwrap();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].headers.get("authorization").is_none());
    app.stop().await;
}

/// The token endpoint's refusals are the operator's credential failing (whatever their status),
/// and neither the assertion nor a token reaches the caller, even when echoed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_failures_never_leak_credentials() {
    struct Echo(u16);
    impl Respond for Echo {
        fn respond(&self, request: &Request) -> ResponseTemplate {
            let assertion = form(request).into_iter().find(|(k, _)| k == "assertion").unwrap().1;
            ResponseTemplate::new(self.0).set_body_json(
                json!({"error": "invalid_grant", "error_description": format!("Invalid JWT Signature: {assertion}")}),
            )
        }
    }
    let upstream = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = key_file(&dir, &format!("{}/token", upstream.uri()));
    let uri = upstream.uri();
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.local.enabled = false;
        c.providers.retries = 0;
        c.providers.google = VendorConfig { credentials_file: Some(file), base_url: Some(uri), ..Default::default() };
    })
    .await;
    let (_, key) = app.speech_key().await;
    let body = json!({"model": "google", "voice": "en-US-Standard-A", "text": "No.", "output": "pcm"});
    for status in [400, 401, 403] {
        upstream.reset().await;
        Mock::given(method("POST")).and(path("/token")).respond_with(Echo(status)).mount(&upstream).await;
        let (got, problem_body) = problem(app.post("/v1/audio/speech", &key, body.clone()).await).await;
        assert_eq!((got, problem_body["code"].as_str()), (502, Some("provider_auth_failed")), "{problem_body}");
        let text = problem_body.to_string();
        assert!(!text.contains("eyJ"), "the assertion leaked: {text}");
    }
    // Google refuses the token itself and quotes it.
    upstream.reset().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "ya29.a0secret.token", "expires_in": 3600})),
        )
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/text:synthesize"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"error": {"code": 403,
            "message": "Request had invalid authentication credentials: ya29.a0secret.token", "status": "PERMISSION_DENIED"}})))
        .mount(&upstream)
        .await;
    let (got, problem_body) = problem(app.post("/v1/audio/speech", &key, body.clone()).await).await;
    assert_eq!((got, problem_body["code"].as_str()), (502, Some("provider_auth_failed")), "{problem_body}");
    assert_eq!(problem_body["upstream_code"], "PERMISSION_DENIED");
    assert!(!problem_body.to_string().contains("a0secret"), "{problem_body}");
    app.stop().await;
}

/// A key file that cannot be used stops the gateway at start-up, naming the problem but not the
/// file's contents.
#[test]
fn an_unusable_key_file_is_a_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.json");
    let secret = "-----BEGIN PRIVATE KEY-----\nTOPSECRETbutnotakey\n-----END PRIVATE KEY-----\n";
    std::fs::write(
        &path,
        json!({"type": "service_account", "client_email": CLIENT_EMAIL, "private_key": secret}).to_string(),
    )
    .unwrap();
    let mut config = speechgate::config::ProvidersConfig::default();
    config.local.enabled = false;
    config.google.credentials_file = Some(path.to_str().unwrap().to_owned());
    let error = speechgate::providers::Registry::from_config(&config).err().unwrap().to_string();
    assert!(error.contains("providers.google") && error.contains("private_key"), "{error}");
    assert!(!error.contains("TOPSECRET"), "{error}");
    config.google.credentials_file = Some(dir.path().join("missing.json").to_str().unwrap().to_owned());
    let error = speechgate::providers::Registry::from_config(&config).err().unwrap().to_string();
    assert!(error.contains("cannot be read"), "{error}");
}
