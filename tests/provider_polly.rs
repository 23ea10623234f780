//! Amazon Polly against a fake of its API: the SigV4 signature recomputed from what the fake
//! received, speech that decodes to the right length, word timings from speech marks (hostile
//! ones included), the voice catalogue across pages, and credentials that never leak.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::{
    http_request::{sign, SignableBody, SignableRequest, SigningSettings},
    sign::v4,
};
use base64::Engine;
use common::{problem, Db, TestApp};
use serde_json::{json, Value};
use speechgate::{
    audio::{AudioFormat, AudioSpec},
    config::{ProvidersConfig, VendorConfig},
};
use wiremock::{
    matchers::{body_partial_json, method, path, query_param, query_param_is_missing},
    Mock, MockServer, Request, ResponseTemplate,
};

const ACCESS_KEY: &str = "AKIDPOLLYTEST0000";
/// Shaped like a real secret key (base64 with `/` and `+`), which the generic scrubber misses.
const SECRET_KEY: &str = "wJalr/XUtnFEMI+K7MDENG/bPxRfiCYPOLLYKEY";
const TOKEN: &str = "IQoJb3JpZ2luX2VjE/session+token==";
const REGION: &str = "eu-central-1";

fn polly(uri: String) -> VendorConfig {
    VendorConfig {
        api_key: Some(ACCESS_KEY.to_owned().into()),
        secret_key: Some(SECRET_KEY.to_owned().into()),
        session_token: Some(TOKEN.to_owned().into()),
        region: Some(REGION.to_owned()),
        base_url: Some(uri),
        ..Default::default()
    }
}

async fn gateway(uri: String) -> (TestApp, String) {
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.local.enabled = false;
        c.providers.polly = polly(uri);
    })
    .await;
    let (_, key) = app.speech_key().await;
    (app, key)
}

fn header(request: &Request, name: &str) -> String {
    request.headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// The `Authorization` header aws-sigv4 computes for what the fake received, from the same
/// credentials, the region, the headers the request says it signed and its `x-amz-date`.
fn recomputed_authorization(request: &Request, body: &[u8]) -> String {
    let auth = header(request, "authorization");
    let signed = auth.split("SignedHeaders=").nth(1).unwrap().split(',').next().unwrap();
    let date = header(request, "x-amz-date");
    let at = chrono::NaiveDateTime::parse_from_str(&date, "%Y%m%dT%H%M%SZ").unwrap().and_utc();
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(at.timestamp()).unwrap());
    let identity = Credentials::new(ACCESS_KEY, SECRET_KEY, Some(TOKEN.to_owned()), None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("polly")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    // The signer adds `x-amz-date` and `x-amz-security-token` itself.
    let headers: Vec<(String, String)> = signed
        .split(';')
        .filter(|name| !matches!(*name, "x-amz-date" | "x-amz-security-token"))
        .map(|name| (name.to_owned(), header(request, name)))
        .collect();
    let signable = SignableRequest::new(
        request.method.as_str(),
        request.url.as_str(),
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let authorization = instructions.headers().find(|(name, _)| *name == "authorization").unwrap().1.to_owned();
    authorization
}

fn pcm(rate: u32, seconds: f64) -> Vec<u8> {
    common::sine_pcm(rate, seconds)
}

/// The signature covers method, path, host, content type, date, session token and body: the
/// fake's copy recomputes to the same value, and to another one for any other body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_carry_a_signature_over_what_was_sent() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/speech"))
        .respond_with(
            ResponseTemplate::new(200).set_body_bytes(pcm(16_000, 0.1)).insert_header("content-type", "audio/pcm"),
        )
        .mount(&upstream)
        .await;
    let (app, key) = gateway(upstream.uri()).await;
    let body = json!({"model": "polly/generative", "voice": "Ruth", "text": "Sign this, please.",
                      "output": {"format": "pcm", "sampleRate": 16000}, "language": "en-US",
                      "providerOptions": {"LexiconNames": ["acronyms"]}});
    let response = app.post("/v1/audio/speech", &key, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().len(), 3200);
    let requests = upstream.received_requests().await.unwrap();
    let request = &requests[0];
    let auth = header(request, "authorization");
    assert!(auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")), "{auth}");
    assert!(auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"), "{auth}");
    assert_eq!(header(request, "x-amz-security-token"), TOKEN);
    assert_eq!(header(request, "content-type"), "application/json");
    assert_eq!(recomputed_authorization(request, &request.body), auth);
    let mut tampered = request.body.clone();
    tampered.push(b' ');
    assert_ne!(recomputed_authorization(request, &tampered), auth, "the body is part of the signature");
    let sent: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        sent,
        json!({"Text": "Sign this, please.", "VoiceId": "Ruth", "Engine": "generative", "OutputFormat": "pcm",
               "SampleRate": "16000", "LanguageCode": "en-US", "LexiconNames": ["acronyms"]})
    );
    app.stop().await;
}

/// MP3 passes through as Polly made it; WAV is made from Polly's 16 kHz PCM. Both decode to the
/// clip's length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_decodes_to_the_right_length() {
    let upstream = MockServer::start().await;
    let samples: Vec<i16> = pcm(24_000, 0.8).chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    let mp3 = speechgate::audio::encode_whole(
        AudioSpec { format: AudioFormat::Mp3, sample_rate: 24_000, bitrate_kbps: None },
        &[&samples],
    )
    .unwrap();
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"OutputFormat": "mp3", "SampleRate": "24000"})))
        .respond_with(
            ResponseTemplate::new(200).set_body_bytes(mp3.clone()).insert_header("content-type", "audio/mpeg"),
        )
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"OutputFormat": "pcm", "SampleRate": "16000"})))
        .respond_with(
            ResponseTemplate::new(200).set_body_bytes(pcm(16_000, 1.0)).insert_header("content-type", "audio/pcm"),
        )
        .mount(&upstream)
        .await;
    let (app, key) = gateway(upstream.uri()).await;
    let speak = |output: Value| {
        let body = json!({"model": "polly", "voice": "Joanna", "text": "Hello there.", "output": output});
        app.post("/v1/audio/speech", &key, body)
    };

    let response = speak(json!({"format": "mp3", "sampleRate": 24000})).await;
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.as_ref(), mp3.as_slice());
    let decoded = speechgate::audio::decode(AudioFormat::Mp3, &bytes, None).unwrap();
    let seconds = decoded.samples.len() as f64 / f64::from(decoded.sample_rate);
    assert_eq!(decoded.sample_rate, 24_000);
    assert!((seconds - 0.8).abs() < 0.1, "{seconds}");

    let response = speak(json!({"format": "wav", "sampleRate": 16000})).await;
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    let decoded = speechgate::audio::decode(AudioFormat::Wav, &bytes, None).unwrap();
    assert_eq!(decoded.sample_rate, 16_000);
    assert_eq!(decoded.samples.len(), 16_000, "one second of Polly's PCM");
    app.stop().await;
}

/// Speech marks give each word of non-ASCII text its time and its place in the caller's text;
/// marks whose byte offsets fall past the text or inside a character are skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_marks_time_the_callers_words() {
    let upstream = MockServer::start().await;
    let text = "Café naïve über straße";
    // Byte ranges: Café 0..5, naïve 6..12, über 13..18, straße 19..26.
    let mark = |time: i64, start: i64, end: i64| json!({"time": time, "type": "word", "start": start, "end": end, "value": "w"});
    let lines = [
        json!({"time": 0, "type": "sentence", "start": 0, "end": 26, "value": text}),
        mark(50, 0, 5),
        mark(300, 4, 12),   // starts inside "é"
        mark(380, 19, 400), // runs past the end
        mark(400, 6, 12),
        json!({"time": 500, "type": "word", "start": "13", "end": 18}),
        mark(700, 13, 18),
        mark(900, 19, 26),
        mark(950, 24, 26), // starts inside "ß" (bytes 23..25)
    ];
    let mut marks: String = lines.iter().map(|l| format!("{l}\n")).collect();
    marks.push_str("{not json\n");
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"OutputFormat": "json", "SpeechMarkTypes": ["word"]})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(marks)
                .insert_header("content-type", "application/x-json-stream"),
        )
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"OutputFormat": "pcm", "SampleRate": "16000"})))
        .respond_with(
            ResponseTemplate::new(200).set_body_bytes(pcm(16_000, 1.2)).insert_header("content-type", "audio/pcm"),
        )
        .mount(&upstream)
        .await;
    let (app, key) = gateway(upstream.uri()).await;
    let body =
        json!({"model": "polly", "voice": "Vicki", "text": text, "output": {"format": "pcm", "sampleRate": 16000}});
    let response = app.post("/v1/audio/speech/with-timestamps", &key, body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["alignment"], "native");
    assert_eq!(answer["durationMs"], 1200);
    let audio = base64::engine::general_purpose::STANDARD.decode(answer["audio"].as_str().unwrap()).unwrap();
    assert_eq!(audio.len(), 38_400);
    let expected = [
        ("Café", 0.05, 0.4, 0, 4),
        ("naïve", 0.4, 0.7, 5, 10),
        ("über", 0.7, 0.9, 11, 15),
        ("straße", 0.9, 1.2, 16, 22),
    ];
    let stamps = answer["timestamps"].as_array().unwrap();
    assert_eq!(stamps.len(), expected.len(), "{answer}");
    let frame = 1.0 / 16_000.0;
    for (stamp, (word, start, end, char_start, char_end)) in stamps.iter().zip(expected) {
        assert_eq!(stamp["text"], word);
        assert_eq!(
            (stamp["charStart"].as_u64(), stamp["charEnd"].as_u64()),
            (Some(char_start), Some(char_end)),
            "{stamp}"
        );
        let (got_start, got_end) = (stamp["start"].as_f64().unwrap(), stamp["end"].as_f64().unwrap());
        assert!((got_start - start).abs() <= frame && (got_end - end).abs() <= frame, "{stamp}");
    }
    // The marks were asked for with the same text, voice and engine, in JSON and without a rate.
    let requests = upstream.received_requests().await.unwrap();
    let bodies: Vec<Value> = requests.iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
    let marks_request = bodies.iter().find(|b| b["OutputFormat"] == "json").unwrap();
    assert_eq!(
        *marks_request,
        json!({"Text": text, "VoiceId": "Vicki", "Engine": "neural", "OutputFormat": "json", "SpeechMarkTypes": ["word"]})
    );
    app.stop().await;
}

/// With a speed, the text goes as escaped SSML; the marks' offsets into that SSML still find the
/// caller's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speed_is_ssml_prosody_and_marks_still_map() {
    let upstream = MockServer::start().await;
    let text = "Fish & chips";
    let ssml = "<speak><prosody rate=\"125%\">Fish &amp; chips</prosody></speak>";
    let at = |piece: &str| ssml.find(piece).unwrap() as u64;
    let marks = format!(
        "{}\n{}\n",
        json!({"time": 0, "type": "word", "start": at("Fish"), "end": at("Fish") + 4}),
        json!({"time": 500, "type": "word", "start": at("chips"), "end": at("chips") + 5}),
    );
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"OutputFormat": "json", "TextType": "ssml", "Text": ssml})))
        .respond_with(ResponseTemplate::new(200).set_body_string(marks))
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"OutputFormat": "pcm", "TextType": "ssml", "Text": ssml})))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(pcm(16_000, 1.0)))
        .mount(&upstream)
        .await;
    let (app, key) = gateway(upstream.uri()).await;
    let body = json!({"model": "polly", "voice": "Joanna", "text": text, "speed": 1.25,
                      "output": {"format": "pcm", "sampleRate": 16000}});
    let response = app.post("/v1/audio/speech/with-timestamps", &key, body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let words: Vec<(&str, u64, u64)> = answer["timestamps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["text"].as_str().unwrap(), t["charStart"].as_u64().unwrap(), t["charEnd"].as_u64().unwrap()))
        .collect();
    assert_eq!(words.first(), Some(&("Fish", 0, 4)), "{answer}");
    assert_eq!(words.last(), Some(&("chips", 7, 12)), "{answer}");
    app.stop().await;
}

/// `GET /v1/voices` is followed through `NextToken`, each page signed (the token in the query).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_lists_across_pages() {
    let upstream = MockServer::start().await;
    let voice = |id: &str, gender: &str| {
        json!({"Id": id, "Name": id, "Gender": gender, "LanguageCode": "en-US", "LanguageName": "US English",
               "SupportedEngines": ["neural", "standard"]})
    };
    Mock::given(method("GET"))
        .and(path("/v1/voices"))
        .and(query_param_is_missing("NextToken"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"Voices": [voice("Joanna", "Female"), voice("Matthew", "Male")], "NextToken": "page/2+=="}),
        ))
        .expect(1)
        .mount(&upstream)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/voices"))
        .and(query_param("NextToken", "page/2+=="))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Voices": [voice("Ruth", "Female")]})))
        .expect(1)
        .mount(&upstream)
        .await;
    let (app, key) = gateway(upstream.uri()).await;
    let voices: Value = app.get("/v1/audio/providers/polly/voices", Some(&key)).await.json().await.unwrap();
    let got: Vec<(&str, &str)> = voices["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["id"].as_str().unwrap(), v["gender"].as_str().unwrap()))
        .collect();
    assert_eq!(got, [("Joanna", "female"), ("Matthew", "male"), ("Ruth", "female")]);
    assert_eq!(voices["data"][0]["language"], "en-US");
    for request in upstream.received_requests().await.unwrap() {
        assert_eq!(recomputed_authorization(&request, b""), header(&request, "authorization"));
    }
    app.stop().await;
}

/// A vendor error that echoes the credentials passes on its type and message, scrubbed; the
/// provider listing and the configuration's debug form never show them either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_leak() {
    let upstream = MockServer::start().await;
    let echo = format!("Bad request signed by {ACCESS_KEY} with {SECRET_KEY} and token {TOKEN}");
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"message": echo})).insert_header(
            "x-amzn-ErrorType",
            "ValidationException:http://internal.amazon.com/coral/com.amazon.coral.validate/",
        ))
        .mount(&upstream)
        .await;
    let (app, key) = gateway(upstream.uri()).await;
    let body = json!({"model": "polly", "voice": "Joanna", "text": "Hi.", "output": "mp3"});
    let (status, problem) = problem(app.post("/v1/audio/speech", &key, body).await).await;
    assert_eq!((status, problem["upstream_code"].as_str()), (400, Some("ValidationException")), "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("Bad request signed by"), "{problem}");
    let providers = app.get("/v1/audio/providers", Some(&key)).await.text().await.unwrap();
    let config =
        format!("{:?} {}", polly("http://x".into()), serde_json::to_string(&polly("http://x".into())).unwrap());
    for text in [problem.to_string(), providers, config] {
        for secret in [SECRET_KEY, TOKEN, ACCESS_KEY] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
    app.stop().await;
}

/// A key pair needs a plain region id (it becomes part of the host name); half a pair is refused.
/// A pair without a region leaves Polly off (AWS keys in the environment may be for other tools).
#[test]
fn start_up_refuses_what_cannot_work() {
    let build = |section: VendorConfig| {
        let mut config = ProvidersConfig::default();
        config.local.enabled = false;
        config.polly = section;
        speechgate::providers::Registry::from_config(&config)
            .map(|r| r.get("polly").is_some())
            .map_err(|e| e.to_string())
    };
    let pair = VendorConfig {
        api_key: Some(ACCESS_KEY.to_owned().into()),
        secret_key: Some(SECRET_KEY.to_owned().into()),
        ..Default::default()
    };
    assert_eq!(build(VendorConfig::default()), Ok(false));
    assert_eq!(build(VendorConfig { region: Some("us-east-1".into()), ..pair.clone() }), Ok(true));
    assert_eq!(build(VendorConfig { region: None, ..pair.clone() }), Ok(false));
    let refused = [
        VendorConfig { region: Some("evil.example.com/x".into()), ..pair.clone() },
        VendorConfig { region: Some("US-EAST-1".into()), ..pair.clone() },
        VendorConfig { region: Some("us-east-1".into()), secret_key: None, ..pair.clone() },
        VendorConfig { region: Some("us-east-1".into()), base_url: Some("file:///etc".into()), ..pair.clone() },
    ];
    for section in refused {
        let error = build(section).unwrap_err();
        assert!(error.starts_with("providers.polly: "), "{error}");
        assert!(!error.contains(SECRET_KEY) && !error.contains(ACCESS_KEY), "{error}");
    }
}

/// AWS throttles with a 400 that names `ThrottlingException`: the caller gets a rate limit, not
/// "your request was wrong", and the gateway's retry treats it as one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_a_rate_limit() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"message": "Rate exceeded"}))
                .insert_header("x-amzn-ErrorType", "ThrottlingException:http://internal.amazon.com/coral/")
                .insert_header("retry-after", "2"),
        )
        .mount(&upstream)
        .await;
    let (app, key) = gateway(upstream.uri()).await;
    let body = json!({"model": "polly", "voice": "Joanna", "text": "Hi.", "output": "mp3"});
    let response = app.post("/v1/audio/speech", &key, body).await;
    assert_eq!(response.headers()["retry-after"], "2");
    let (status, problem) = problem(response).await;
    assert_eq!((status, problem["code"].as_str()), (429, Some("upstream_rate_limited")), "{problem}");
    assert_eq!(problem["upstream_code"], "ThrottlingException");
    app.stop().await;
}
