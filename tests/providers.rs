//! The conformance suite every adapter must pass, each against a fake of its vendor that speaks
//! the vendor's recorded wire shapes (wiremock, or a hand-rolled chunked server for streaming):
//! every native format it claims, streaming, bad credential, unknown voice, rate limit, timeout
//! and a stream that breaks off. Everything goes through the gateway's HTTP API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use std::time::Duration;

use common::{problem, Db, StreamingUpstream, TestApp};
use serde_json::{json, Value};
use speechgate::config::{Config, VendorConfig};
use wiremock::{matchers::method, Mock, MockServer, Request, ResponseTemplate};

const SECRET: &str = "vendor-secret-0000";

/// A streamed reply: its Content-Type, the body's first piece and the rest.
type StreamedReply = (&'static str, Vec<u8>, Vec<u8>);

/// What the suite needs to know about one vendor.
struct Vendor {
    id: &'static str,
    voice: &'static str,
    /// Points the gateway's config for this vendor at `uri`.
    configure: fn(&mut Config, String),
    /// The vendor's error reply for (status, code, message).
    error: fn(u16, &str, &str) -> ResponseTemplate,
    /// Whether the vendor's error replies carry a machine code (passed on as `upstream_code`).
    error_codes: bool,
    /// The vendor's successful reply carrying `audio` (what the client must receive) asked for
    /// as (format, rate).
    reply: fn(&[u8], &str, u32) -> ResponseTemplate,
    /// A streamed reply carrying two parts of PCM: its Content-Type and two pieces of body, the
    /// second sent when the test releases it (for a vendor that does not stream, its one reply
    /// cut in two).
    stream_reply: fn(&[u8], &[u8]) -> StreamedReply,
    /// Asserts that the upstream request asked for `format` at `rate` the vendor's way, with
    /// the vendor's auth.
    check: fn(&Request, &str, u32),
    /// The code the vendor uses for an unknown voice, and its status.
    unknown_voice: (u16, &'static str),
}

/// A vendor that sends audio as the body itself.
fn raw_reply(audio: &[u8], _format: &str, _rate: u32) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_bytes(audio.to_vec())
}

fn raw_stream(first: &[u8], second: &[u8]) -> StreamedReply {
    ("application/octet-stream", first.to_vec(), second.to_vec())
}

/// An error reply with a JSON body.
fn json_error(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

fn vendor_config(uri: String) -> VendorConfig {
    VendorConfig { api_key: Some(SECRET.to_owned().into()), base_url: Some(uri), ..Default::default() }
}

fn body_json(request: &Request) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

fn query(request: &Request, name: &str) -> Option<String> {
    request.url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

fn header(request: &Request, name: &str) -> String {
    request.headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

const OPENAI: Vendor = Vendor {
    id: "openai",
    voice: "alloy",
    configure: |c, uri| c.providers.openai = vendor_config(format!("{uri}/v1")),
    error: |status, code, message| {
        json_error(
            status,
            json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}}),
        )
    },
    error_codes: true,
    reply: raw_reply,
    stream_reply: raw_stream,
    check: |request, format, _rate| {
        assert_eq!(request.url.path(), "/v1/audio/speech");
        assert_eq!(header(request, "authorization"), format!("Bearer {SECRET}"));
        let body = body_json(request);
        assert_eq!(body["response_format"], format);
        assert_eq!(body["model"], "gpt-4o-mini-tts");
        assert_eq!(body["voice"], "alloy");
    },
    unknown_voice: (400, "invalid_value"),
};

const ELEVENLABS: Vendor = Vendor {
    id: "elevenlabs",
    voice: "JBFqnCBsd6RMkjVDRZzb",
    configure: |c, uri| c.providers.elevenlabs = vendor_config(uri),
    error: |status, code, message| {
        json_error(
            status,
            if status == 422 {
                json!({"detail": [{"loc": ["body", "text"], "msg": message, "type": code}]})
            } else {
                json!({"detail": {"status": code, "message": message}})
            },
        )
    },
    error_codes: true,
    reply: raw_reply,
    stream_reply: raw_stream,
    check: |request, format, rate| {
        assert_eq!(request.url.path(), "/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb/stream");
        assert_eq!(header(request, "xi-api-key"), SECRET);
        let output = query(request, "output_format").unwrap();
        match format {
            "pcm" => assert_eq!(output, format!("pcm_{rate}")),
            "mp3" => assert!(output.starts_with(&format!("mp3_{rate}_")), "{output}"),
            "opus" => assert!(output.starts_with("opus_48000_"), "{output}"),
            other => assert_eq!(output, format!("{other}_8000")),
        }
        assert_eq!(body_json(request)["model_id"], "eleven_multilingual_v2");
    },
    unknown_voice: (404, "voice_not_found"),
};

const CARTESIA: Vendor = Vendor {
    id: "cartesia",
    voice: "6ccbfb76-1fc6-48f7-b71d-91ac6298247b",
    configure: |c, uri| c.providers.cartesia = vendor_config(uri),
    error: |status, code, message| {
        json_error(status, json!({"error_code": code, "title": "Error", "message": message, "request_id": "r-1"}))
    },
    error_codes: true,
    reply: raw_reply,
    stream_reply: raw_stream,
    check: |request, format, rate| {
        assert_eq!(request.url.path(), "/tts/bytes");
        assert_eq!(header(request, "authorization"), format!("Bearer {SECRET}"));
        assert!(!header(request, "cartesia-version").is_empty());
        let body = body_json(request);
        assert_eq!(body["voice"], json!({"mode": "id", "id": "6ccbfb76-1fc6-48f7-b71d-91ac6298247b"}));
        assert_eq!(body["transcript"], "Hello from the suite.");
        let output = &body["output_format"];
        assert_eq!(output["sample_rate"], rate);
        let expected = match format {
            "pcm" => ("raw", Some("pcm_s16le")),
            "ulaw" => ("raw", Some("pcm_mulaw")),
            "alaw" => ("raw", Some("pcm_alaw")),
            "wav" => ("wav", Some("pcm_s16le")),
            _ => ("mp3", None),
        };
        assert_eq!(output["container"], expected.0);
        assert_eq!(output["encoding"].as_str(), expected.1);
    },
    unknown_voice: (404, "voice_not_found"),
};

const DEEPGRAM: Vendor = Vendor {
    id: "deepgram",
    voice: "thalia",
    configure: |c, uri| c.providers.deepgram = vendor_config(uri),
    error: |status, code, message| {
        json_error(status, json!({"err_code": code, "err_msg": message, "request_id": "r-1"}))
    },
    error_codes: true,
    reply: raw_reply,
    stream_reply: raw_stream,
    check: |request, format, rate| {
        assert_eq!(request.url.path(), "/v1/speak");
        assert_eq!(header(request, "authorization"), format!("Token {SECRET}"));
        assert_eq!(query(request, "model").as_deref(), Some("aura-2-thalia-en"));
        let encoding = query(request, "encoding").unwrap();
        let expected = match format {
            "pcm" | "wav" => "linear16",
            "ulaw" => "mulaw",
            other => other,
        };
        assert_eq!(encoding, expected);
        if matches!(format, "pcm" | "wav" | "ulaw" | "alaw") {
            assert_eq!(query(request, "sample_rate"), Some(rate.to_string()));
        }
        assert_eq!(body_json(request), json!({"text": "Hello from the suite."}));
    },
    unknown_voice: (400, "INVALID_MODEL"),
};

const GOOGLE: Vendor = Vendor {
    id: "google",
    voice: "en-US-Neural2-A",
    configure: |c, uri| c.providers.google = vendor_config(uri),
    error: |status, code, message| {
        json_error(status, json!({"error": {"code": status, "message": message, "status": code}}))
    },
    error_codes: true,
    reply: |audio, format, rate| {
        ResponseTemplate::new(200).set_body_json(json!({"audioContent": google_audio(audio, format, rate)}))
    },
    stream_reply: |first, second| {
        let body = json!({"audioContent": google_audio(&[first, second].concat(), "pcm", 24000)}).to_string();
        let (a, b) = body.as_bytes().split_at(body.len() / 2);
        ("application/json", a.to_vec(), b.to_vec())
    },
    check: |request, format, rate| {
        assert_eq!(request.url.path(), "/v1/text:synthesize");
        assert_eq!(request.url.query(), None, "the key goes in a header, never the URL");
        assert_eq!(header(request, "x-goog-api-key"), SECRET);
        let body = body_json(request);
        assert_eq!(body["input"], json!({"text": "Hello from the suite."}));
        assert_eq!(body["voice"], json!({"languageCode": "en-US", "name": "en-US-Neural2-A"}));
        let encoding = match format {
            "pcm" | "wav" => "LINEAR16",
            "ulaw" => "MULAW",
            "alaw" => "ALAW",
            "opus" => "OGG_OPUS",
            _ => "MP3",
        };
        assert_eq!(body["audioConfig"]["audioEncoding"], encoding);
        assert_eq!(body["audioConfig"]["sampleRateHertz"], rate);
    },
    unknown_voice: (400, "INVALID_ARGUMENT"),
};

/// Google's `audioContent`: base64 of the audio, which for `LINEAR16`, `MULAW` and `ALAW` comes
/// in a WAV file (the client gets the samples alone for raw formats, the file for WAV).
fn google_audio(audio: &[u8], format: &str, rate: u32) -> String {
    use base64::Engine;
    let (tag, bits): (u16, u16) = match format {
        "pcm" => (1, 16),
        "ulaw" => (7, 8),
        "alaw" => (6, 8),
        _ => return base64::engine::general_purpose::STANDARD.encode(audio),
    };
    let mut wav = b"RIFF".to_vec();
    wav.extend_from_slice(&(36 + audio.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&tag.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * u32::from(bits / 8)).to_le_bytes());
    wav.extend_from_slice(&(bits / 8).to_le_bytes());
    wav.extend_from_slice(&bits.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(audio.len() as u32).to_le_bytes());
    wav.extend_from_slice(audio);
    base64::engine::general_purpose::STANDARD.encode(wav)
}

/// Gemini streams server-sent events, each a `GenerateContentResponse` with base64 PCM.
fn gemini_event(audio: &[u8]) -> String {
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(audio);
    let part = json!({"inlineData": {"mimeType": "audio/L16;codec=pcm;rate=24000", "data": data}});
    format!("data: {}\r\n\r\n", json!({"candidates": [{"content": {"parts": [part], "role": "model"}}]}))
}

const GEMINI: Vendor = Vendor {
    id: "gemini",
    voice: "Kore",
    configure: |c, uri| c.providers.gemini = vendor_config(uri),
    error: |status, code, message| {
        json_error(status, json!({"error": {"code": status, "message": message, "status": code, "details": []}}))
    },
    error_codes: true,
    reply: |audio, _, _| ResponseTemplate::new(200).set_body_raw(gemini_event(audio), "text/event-stream"),
    stream_reply: |first, second| {
        ("text/event-stream", gemini_event(first).into_bytes(), gemini_event(second).into_bytes())
    },
    check: |request, format, rate| {
        assert_eq!((format, rate), ("pcm", 24000), "Gemini's one native format");
        assert_eq!(request.url.path(), "/v1beta/models/gemini-3.8-flash-tts:streamGenerateContent");
        assert_eq!(query(request, "alt").as_deref(), Some("sse"));
        assert_eq!(query(request, "key"), None, "the key travels in a header, never in the URL");
        assert_eq!(header(request, "x-goog-api-key"), SECRET);
        let body = body_json(request);
        assert_eq!(body["contents"][0]["parts"][0]["text"], "Hello from the suite.");
        assert_eq!(body["generationConfig"]["responseModalities"], json!(["AUDIO"]));
        assert_eq!(body["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"], "Kore");
    },
    unknown_voice: (400, "INVALID_ARGUMENT"),
};

/// Polly signs with SigV4 (the signature itself is recomputed in tests/provider_polly.rs).
const POLLY: Vendor = Vendor {
    id: "polly",
    voice: "Joanna",
    configure: |c, uri| {
        c.providers.polly = VendorConfig {
            secret_key: Some("polly/secret+key".to_owned().into()),
            session_token: Some("polly-session-token".to_owned().into()),
            region: Some("eu-west-1".to_owned()),
            ..vendor_config(uri)
        }
    },
    error: |status, code, message| {
        json_error(status, json!({"message": message}))
            .insert_header("x-amzn-ErrorType", format!("{code}:http://internal.amazon.com/coral/"))
    },
    error_codes: true,
    reply: raw_reply,
    stream_reply: raw_stream,
    check: |request, format, rate| {
        assert_eq!(request.url.path(), "/v1/speech");
        let auth = header(request, "authorization");
        let date = header(request, "x-amz-date");
        assert!(date.len() == 16 && date.ends_with('Z'), "{date}");
        let scope =
            format!("AWS4-HMAC-SHA256 Credential={SECRET}/{}/eu-west-1/polly/aws4_request, SignedHeaders=", &date[..8]);
        let signed = auth.strip_prefix(&scope).unwrap_or_else(|| panic!("{auth}"));
        let (headers, signature) = signed.split_once(", Signature=").unwrap();
        assert_eq!(headers, "content-type;host;x-amz-date;x-amz-security-token");
        assert!(signature.len() == 64 && signature.bytes().all(|b| b.is_ascii_hexdigit()), "{signature}");
        assert_eq!(header(request, "x-amz-security-token"), "polly-session-token");
        let expected = match format {
            "opus" => "ogg_opus",
            "ulaw" => "mulaw",
            other => other,
        };
        let body = body_json(request);
        assert_eq!(
            body,
            json!({"Text": "Hello from the suite.", "VoiceId": "Joanna", "Engine": "neural",
                   "OutputFormat": expected, "SampleRate": rate.to_string()})
        );
    },
    unknown_voice: (400, "ValidationException"),
};

const AZURE: Vendor = Vendor {
    id: "azure",
    voice: "en-US-AvaNeural",
    // `AZURE_SPEECH_ENDPOINT`: the fake stands where `https://{region}.tts.speech.microsoft.com` would.
    configure: |c, uri| c.providers.azure = vendor_config(uri),
    // Azure answers errors with an empty or plain-text body; a bad key gets the API gateway's
    // JSON, whose `code` is only the status again. No machine codes to pass on.
    error: |status, _code, message| {
        if status == 401 {
            json_error(status, json!({"error": {"code": "401", "message": message}}))
        } else {
            ResponseTemplate::new(status).set_body_raw(message.as_bytes().to_vec(), "text/plain")
        }
    },
    error_codes: false,
    reply: raw_reply,
    stream_reply: raw_stream,
    check: |request, format, rate| {
        assert_eq!(request.url.path(), "/cognitiveservices/v1");
        assert_eq!(header(request, "ocp-apim-subscription-key"), SECRET);
        assert_eq!(header(request, "content-type"), "application/ssml+xml");
        assert!(header(request, "user-agent").starts_with("speechgate/"));
        let khz =
            |rate: u32| if rate.is_multiple_of(1000) { format!("{}khz", rate / 1000) } else { format!("{rate}hz") };
        let expected = match format {
            "pcm" => format!("raw-{}-16bit-mono-pcm", khz(rate)),
            "wav" => format!("riff-{}-16bit-mono-pcm", khz(rate)),
            "ulaw" => "raw-8khz-8bit-mono-mulaw".to_owned(),
            "alaw" => "raw-8khz-8bit-mono-alaw".to_owned(),
            "opus" => format!("ogg-{}-16bit-mono-opus", khz(rate)),
            "mp3" => {
                let bitrate = match rate {
                    16_000 => 64,
                    24_000 => 96,
                    _ => 192,
                };
                format!("audio-{}-{bitrate}kbitrate-mono-mp3", khz(rate))
            }
            other => panic!("azure claims {other}"),
        };
        assert_eq!(header(request, "x-microsoft-outputformat"), expected);
        assert_eq!(
            String::from_utf8(request.body.clone()).unwrap(),
            "<speak version=\"1.0\" xmlns=\"http://www.w3.org/2001/10/synthesis\" xml:lang=\"en-US\">\
             <voice name=\"en-US-AvaNeural\">Hello from the suite.</voice></speak>"
        );
    },
    // Azure refuses an unknown voice name with a bare 400.
    unknown_voice: (400, ""),
};

const VENDORS: [&Vendor; 8] = [&OPENAI, &ELEVENLABS, &CARTESIA, &DEEPGRAM, &GOOGLE, &GEMINI, &POLLY, &AZURE];

async fn gateway(vendor: &Vendor, uri: String) -> TestApp {
    let configure = vendor.configure;
    TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.local.enabled = false;
        c.providers.timeout_secs = 1;
        c.providers.idle_timeout_secs = 2;
        configure(c, uri);
    })
    .await
}

async fn speak(app: &TestApp, key: &str, vendor: &Vendor, output: Value) -> reqwest::Response {
    let body = json!({"model": vendor.id, "voice": vendor.voice, "text": "Hello from the suite.", "output": output});
    app.client.post(app.url("/v1/audio/speech")).bearer_auth(key).json(&body).send().await.unwrap()
}

/// Every (format, rate) the provider claims passes through untouched and is asked for the
/// vendor's way.
async fn every_native_format_passes_through(vendor: &Vendor) {
    let upstream = MockServer::start().await;
    let app = gateway(vendor, upstream.uri()).await;
    let (_, key) = app.speech_key().await;
    let providers: Value = app.get("/v1/audio/providers", Some(&key)).await.json().await.unwrap();
    let entry = providers["data"].as_array().unwrap().iter().find(|p| p["id"] == vendor.id).unwrap().clone();
    let mut checked = 0;
    for native in entry["capabilities"]["formats"].as_array().unwrap() {
        let format = native["format"].as_str().unwrap();
        for rate in native["sampleRates"].as_array().unwrap() {
            let rate = rate.as_u64().unwrap() as u32;
            upstream.reset().await;
            let audio = format!("{format}-{rate}-audio-bytes").into_bytes();
            Mock::given(method("POST")).respond_with((vendor.reply)(&audio, format, rate)).mount(&upstream).await;
            let response = speak(&app, &key, vendor, json!({"format": format, "sampleRate": rate})).await;
            assert_eq!(response.status(), 200, "{} {format}@{rate}", vendor.id);
            assert_eq!(response.headers()["x-speech-provider"], vendor.id);
            assert_eq!(response.bytes().await.unwrap().as_ref(), audio.as_slice(), "{} {format}@{rate}", vendor.id);
            let requests = upstream.received_requests().await.unwrap();
            assert_eq!(requests.len(), 1);
            (vendor.check)(&requests[0], format, rate);
            checked += 1;
        }
    }
    assert!(checked >= 1, "{} claims no format", vendor.id);
    app.stop().await;
}

/// Upstream failures: bad credential, unknown voice, rate limit, server error, timeout.
async fn failures_map_to_problems(vendor: &Vendor) {
    let upstream = MockServer::start().await;
    let app = gateway(vendor, upstream.uri()).await;
    let (_, key) = app.speech_key().await;
    let pcm = json!({"format": "pcm", "sampleRate": 24000});
    let (unknown_status, unknown_code) = vendor.unknown_voice;
    let cases: [(ResponseTemplate, u16, &str, Option<&str>); 5] = [
        (
            (vendor.error)(401, "invalid_api_key", &format!("Invalid API key {SECRET}")),
            502,
            "provider_auth_failed",
            Some("invalid_api_key"),
        ),
        (
            (vendor.error)(unknown_status, unknown_code, "voice not found"),
            if unknown_status == 404 { 404 } else { 400 },
            if unknown_status == 404 { "upstream_not_found" } else { "upstream_rejected" },
            Some(unknown_code),
        ),
        (
            (vendor.error)(429, "too_many_requests", "slow down").insert_header("retry-after", "3"),
            429,
            "upstream_rate_limited",
            Some("too_many_requests"),
        ),
        (ResponseTemplate::new(503).set_body_string("Service Unavailable"), 503, "provider_unavailable", None),
        (
            ResponseTemplate::new(200).set_body_bytes(b"late".to_vec()).set_delay(Duration::from_secs(3)),
            504,
            "provider_timeout",
            None,
        ),
    ];
    for (template, status, code, upstream_code) in cases {
        upstream.reset().await;
        Mock::given(method("POST")).respond_with(template).mount(&upstream).await;
        let response = speak(&app, &key, vendor, pcm.clone()).await;
        if status == 429 {
            assert_eq!(response.headers()["retry-after"], "3", "{}", vendor.id);
        }
        let (got, body) = problem(response).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{}: {body}", vendor.id);
        assert_eq!(body["provider"], vendor.id);
        let upstream_code = upstream_code.filter(|_| vendor.error_codes);
        assert_eq!(body["upstream_code"].as_str(), upstream_code, "{}: {body}", vendor.id);
        assert!(!body.to_string().contains(SECRET), "{}: the vendor key leaked: {body}", vendor.id);
    }
    app.stop().await;
}

/// A streaming vendor's first chunk reaches the client before the upstream has sent the rest;
/// a stream that breaks off ends the client's body with an error (or, from a vendor that does
/// not stream, fails the request before any audio) and is recorded as failed.
async fn streams_and_reports_broken_streams(vendor: &Vendor) {
    for truncate in [false, true] {
        let (content_type, first, second) = (vendor.stream_reply)(&[1; 4800], &[2; 4800]);
        let upstream = StreamingUpstream::start(content_type, first, second, truncate).await;
        let app = gateway(vendor, upstream.uri.clone()).await;
        let (key_id, key) = app.speech_key().await;
        let providers: Value = app.get("/v1/audio/providers", Some(&key)).await.json().await.unwrap();
        let entry = providers["data"].as_array().unwrap().iter().find(|p| p["id"] == vendor.id).unwrap().clone();
        let streams = entry["capabilities"]["streaming"] == true;
        // The highest rate at which the vendor sends PCM itself (24 kHz for most), so that the
        // bytes pass through untouched.
        let formats = entry["capabilities"]["formats"].as_array().unwrap();
        let pcm = formats.iter().find(|f| f["format"] == "pcm").unwrap();
        let rate =
            pcm["sampleRates"].as_array().unwrap().iter().filter_map(Value::as_u64).filter(|r| *r <= 24_000).max();
        let rate = rate.unwrap();
        let speaking = speak(&app, &key, vendor, json!({"format": "pcm", "sampleRate": rate}));
        let (mut response, first) = if streams {
            let mut response = speaking.await;
            assert_eq!(response.status(), 200);
            let first = response.chunk().await.unwrap().unwrap().to_vec();
            assert_eq!(first[0], 1, "{}: the first bytes arrive while the upstream still holds the rest", vendor.id);
            upstream.release();
            (response, first)
        } else {
            let release = async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                upstream.release();
            };
            (tokio::join!(speaking, release).0, Vec::new())
        };
        let mut rest = Vec::new();
        let mut failed = !response.status().is_success();
        while !failed {
            match response.chunk().await {
                Ok(Some(bytes)) => rest.extend_from_slice(&bytes),
                Ok(None) => break,
                Err(_) => failed = true,
            }
        }
        let events = app.stop_and_read_usage(Some(&key_id)).await;
        let event = &events.iter().find(|e| e.event.route == "/v1/audio/speech").unwrap().event;
        if truncate {
            assert!(failed, "{}: a broken upstream stream must not look complete", vendor.id);
            let expected: &[&str] = if streams {
                &["upstream_stream_failed"]
            } else {
                &["upstream_stream_failed", "upstream_invalid_response"]
            };
            assert!(expected.contains(&event.error_code.as_deref().unwrap_or_default()), "{}: {event:?}", vendor.id);
        } else {
            assert!(!failed, "{}", vendor.id);
            assert_eq!(first.len() + rest.len(), 9600, "{}", vendor.id);
            assert_eq!(event.error_code, None);
            assert_eq!(event.audio_ms as u64, 9600 / 2 * 1000 / rate, "{}: 9600 bytes of s16 at {rate} Hz", vendor.id);
        }
        assert_eq!(event.provider.as_deref(), Some(vendor.id));
    }
}

macro_rules! conformance {
    ($($vendor:ident),+) => {
        $(#[allow(non_snake_case)] mod $vendor {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn every_native_format_passes_through() {
                super::every_native_format_passes_through(&super::$vendor).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn failures_map_to_problems() {
                super::failures_map_to_problems(&super::$vendor).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn streams_and_reports_broken_streams() {
                super::streams_and_reports_broken_streams(&super::$vendor).await
            }
        })+
        #[test]
        fn every_vendor_is_in_the_suite() {
            // Every HTTP provider kind the registry can build must have a fake here and be run
            // through every case; `local` has no vendor to fake and is tested in tests/local.rs.
            let mut config = speechgate::config::ProvidersConfig::default();
            config.local.enabled = false;
            let registry = speechgate::providers::Registry::from_config(&config).unwrap();
            let mut kinds: Vec<&str> = registry.disabled_kinds().filter(|k| *k != "local").collect();
            let mut suite: Vec<&str> = [$($vendor.id),+].to_vec();
            kinds.sort_unstable();
            suite.sort_unstable();
            assert_eq!(kinds, suite, "provider kinds without a conformance run");
            assert_eq!(VENDORS.len(), suite.len());
        }
    };
}

conformance!(OPENAI, ELEVENLABS, CARTESIA, DEEPGRAM, GOOGLE, GEMINI, POLLY, AZURE);

/// An OpenAI-compatible server (Kokoro, LocalAI...) configured by name is a provider of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compatible_instances_are_providers_of_their_own() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::path("/v1/audio/speech"))
        .and(wiremock::matchers::header("authorization", "Bearer kokoro-key"))
        .and(wiremock::matchers::body_partial_json(json!({"model": "kokoro", "voice": "af_heart", "lang_code": "b"})))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"kokoro-audio".to_vec()))
        .expect(1)
        .mount(&upstream)
        .await;
    let uri = upstream.uri();
    let app = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.providers.local.enabled = false;
        c.providers.compatible.insert(
            "kokoro".to_owned(),
            speechgate::config::CompatibleConfig {
                base_url: format!("{uri}/v1"),
                api_key: Some("kokoro-key".to_owned().into()),
                models: vec!["kokoro".to_owned()],
                voices: vec!["af_heart".to_owned()],
                max_characters: Some(100),
                provider_options: [("lang_code".to_owned(), speechgate::providers::OptionKind::String)].into(),
                ..Default::default()
            },
        );
    })
    .await;
    let (_, key) = app.speech_key().await;
    // The configured option passes on; others are refused.
    let body = json!({"model": "kokoro", "voice": "af_heart", "text": "Self-hosted.", "output": "mp3",
                      "providerOptions": {"lang_code": "b"}});
    let response = app.client.post(app.url("/v1/audio/speech")).bearer_auth(&key).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-speech-provider"], "kokoro");
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"kokoro-audio");
    let voices: Value = app.get("/v1/audio/providers/kokoro/voices", Some(&key)).await.json().await.unwrap();
    assert_eq!(voices["data"][0]["id"], "af_heart");
    let long = json!({"model": "kokoro/kokoro", "voice": "af_heart", "text": "x".repeat(101)});
    let response = app.client.post(app.url("/v1/audio/speech")).bearer_auth(&key).json(&long).send().await.unwrap();
    assert_eq!(response.status(), 400, "the configured character limit applies");
    app.stop().await;
}

/// Cartesia's catalogue is paged by cursor: every page is read, each after the last id of the one
/// before, with the version header; genders are given in the gateway's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cartesia_catalogue_reads_every_page() {
    use wiremock::matchers::{query_param, query_param_is_missing};
    let upstream = MockServer::start().await;
    let voice = |id: &str, gender: &str| {
        json!({"id": id, "name": format!("Voice {id}"), "description": "d", "language": "en", "gender": gender,
               "is_owner": false, "is_public": true, "created_at": "2025-01-01T00:00:00Z", "locales": []})
    };
    Mock::given(method("GET"))
        .and(wiremock::matchers::path("/voices"))
        .and(wiremock::matchers::header("authorization", format!("Bearer {SECRET}").as_str()))
        .and(wiremock::matchers::header_exists("cartesia-version"))
        .and(query_param("limit", "100"))
        .and(query_param_is_missing("starting_after"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": [voice("a", "feminine"), voice("b", "masculine")], "has_more": true})),
        )
        .expect(1)
        .mount(&upstream)
        .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path("/voices"))
        .and(query_param("starting_after", "b"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": [voice("c", "gender_neutral")], "has_more": false})),
        )
        .expect(1)
        .mount(&upstream)
        .await;
    let app = gateway(&CARTESIA, upstream.uri()).await;
    let (_, key) = app.speech_key().await;
    let voices: Value = app.get("/v1/audio/providers/cartesia/voices", Some(&key)).await.json().await.unwrap();
    let got: Vec<(&str, &str)> = voices["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["id"].as_str().unwrap(), v["gender"].as_str().unwrap()))
        .collect();
    assert_eq!(got, [("a", "female"), ("b", "male"), ("c", "neutral")]);
    assert_eq!(voices["data"][0]["name"], "Voice a");
    assert_eq!(voices["data"][0]["language"], "en");
    app.stop().await;
}

/// Deepgram's voices are the text-to-speech models of `/v1/models`, by their full model name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deepgram_catalogue_is_its_tts_models() {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path("/v1/models"))
        .and(wiremock::matchers::header("authorization", format!("Token {SECRET}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "stt": [{"name": "2-medical", "canonical_name": "nova-2-medical", "architecture": "nova-2",
                     "languages": ["en"], "version": "2024-06-11.4692", "uuid": "46658e06", "batch": false}],
            "tts": [
                {"name": "angus", "canonical_name": "aura-angus-en", "architecture": "aura", "language": "en",
                 "version": "2024-03-28.0", "uuid": "af6e9977",
                 "metadata": {"accent": "Irish", "color": "#BA80F5", "tags": ["masculine"]}},
                {"name": "thalia", "canonical_name": "aura-2-thalia-en", "architecture": "aura-2",
                 "languages": ["en", "en-US"], "version": "2025-04-07.0", "uuid": "ecb76e9d",
                 "metadata": {"accent": "American", "tags": ["feminine", "engaging"], "display_name": "Thalia"}}
            ]
        })))
        .mount(&upstream)
        .await;
    let app = gateway(&DEEPGRAM, upstream.uri()).await;
    let (_, key) = app.speech_key().await;
    let voices: Value = app.get("/v1/audio/providers/deepgram/voices", Some(&key)).await.json().await.unwrap();
    assert_eq!(
        voices["data"],
        json!([
            {"id": "aura-angus-en", "name": "angus", "gender": "male", "language": "en", "description": "Irish accent"},
            {"id": "aura-2-thalia-en", "name": "Thalia", "gender": "female", "language": "en", "description": "American accent"}
        ])
    );
    app.stop().await;
}

/// ElevenLabs' voice catalogue is read from `/v1/voices` once and then served from the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_catalogue_is_fetched_once_and_cached() {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path("/v1/voices"))
        .and(wiremock::matchers::header("xi-api-key", SECRET))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"voices": [
            {"voice_id": "JBFqnCBsd6RMkjVDRZzb", "name": "George", "category": "premade",
             "labels": {"gender": "male", "accent": "british"}, "description": "Warm", "available_for_tiers": [],
             "high_quality_base_model_ids": []}
        ]})))
        .expect(1)
        .mount(&upstream)
        .await;
    let app = gateway(&ELEVENLABS, upstream.uri()).await;
    let (_, key) = app.speech_key().await;
    for _ in 0..3 {
        let voices: Value = app.get("/v1/audio/providers/elevenlabs/voices", Some(&key)).await.json().await.unwrap();
        assert_eq!(
            voices["data"][0],
            json!({"id": "JBFqnCBsd6RMkjVDRZzb", "name": "George", "gender": "male", "language": "british", "description": "Warm"})
        );
    }
    app.stop().await;
}

/// An empty variable (`OPENAI_API_KEY=`, as a compose file passes on one the host does not set)
/// is no credential: the vendor stays off rather than calling out with an empty key.
#[test]
fn empty_credentials_enable_nothing() {
    let mut config = speechgate::config::ProvidersConfig::default();
    config.local.enabled = false;
    let empty = || Some(String::new().into());
    config.openai.api_key = empty();
    config.gemini.api_key = Some("  ".to_owned().into());
    config.google.api_key = empty();
    config.azure = VendorConfig { api_key: empty(), region: Some(String::new()), ..Default::default() };
    config.polly =
        VendorConfig { api_key: empty(), secret_key: empty(), region: Some(String::new()), ..Default::default() };
    let registry = speechgate::providers::Registry::from_config(&config).unwrap();
    assert_eq!(registry.providers().count(), 0);
}
