//! Amazon Polly: `POST /v1/speech` (SynthesizeSpeech) streams audio; `GET /v1/voices`
//! (DescribeVoices) lists the catalogue. Every request is signed with AWS Signature Version 4
//! (the maintained `aws-sigv4` crate, service `polly`) over the exact bytes sent: method, URL,
//! `host`, `content-type` and body, plus `x-amz-security-token` for temporary credentials.
//!
//! The gateway's models are Polly's engines (`standard`, `neural`, `long-form`, `generative`);
//! `neural` is the default, as most current voices speak it (the API itself falls back to
//! `standard`, which fewer voices support). Polly has no speed parameter outside SSML: a speed
//! other than 1 sends the text as `<speak><prosody rate="N%">…</prosody></speak>` (the text
//! XML-escaped, `TextType: ssml`), within Polly's documented 20–200 %. Word timing comes from a
//! second, concurrent request for `word` speech marks.
//!
//! Wire facts, from the AWS API reference as carried in the SDKs' generated documentation
//! (aws-sdk-rust `synthesize_speech` input, the current Polly Smithy model's `SampleRate` text)
//! and botocore's `polly/2016-06-10/service-2.json` (see `shared/reference`, §4.3):
//! - Body members are PascalCase: `Text`, `TextType`, `VoiceId`, `Engine`, `OutputFormat`,
//!   `SampleRate` (a string), `SpeechMarkTypes`, `LanguageCode`, `LexiconNames`.
//! - `pcm` is signed 16-bit little-endian mono at 8000 or 16000 Hz; `mp3` at 8000, 16000, 22050,
//!   24000, 44100 or 48000; `ogg_opus` at 48000; `mulaw` and `alaw` at 8000 (taken to be raw
//!   G.711 like `pcm` is raw, not re-verified against a live reply).
//! - Speech marks (`OutputFormat: json`, `SpeechMarkTypes: ["word"]`) come back as
//!   newline-delimited JSON `{"time":ms,"type":"word","start":byte,"end":byte,"value":…}`:
//!   `start`/`end` are UTF-8 byte offsets into the text sent (the SSML document when
//!   `TextType` is `ssml`), `time` milliseconds from the start of the audio.
//! - Errors are `{"message": …}` (or `Message`), their type in the `x-amzn-ErrorType` header
//!   (`ValidationException:<uri>`) or a `__type` member.
//! - DescribeVoices answers `{"Voices":[{Id, Name, Gender, LanguageCode, SupportedEngines…}],
//!   "NextToken"}`; the next page is asked for with the `NextToken` query parameter.
//! - The regional endpoint is `https://polly.{region}.amazonaws.com` (China regions need
//!   `AWS_ENDPOINT_URL_POLLY`, the SDKs' own override variable).

mod wire;

use std::{
    ops::Range,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::SystemTime,
};

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sigv4::{
    http_request::{sign, SignableBody, SignableRequest, SigningSettings},
    sign::v4,
};
use futures::StreamExt;
use reqwest::{
    header::{HeaderValue, CONTENT_TYPE, HOST},
    RequestBuilder,
};
use secrecy::{ExposeSecret, SecretString};

use super::{
    http::{self, Api, Auth, Expect, Transport},
    Capabilities, EventStream, ModelInfo, NativeFormat, OptionKind, PassableOption, ProviderError, ProviderVoice,
    SpeechProvider, SynthesisEvent, SynthesisRequest, WordTiming,
};
use crate::{config::VendorConfig, domain::audio::AudioFormat};

const ID: &str = "polly";
const SERVICE: &str = "polly";
/// Characters one SynthesizeSpeech call accepts (billed characters; SSML tags do not count).
const MAX_CHARACTERS: usize = 3_000;
/// The most DescribeVoices pages read (Polly has a few hundred voices).
const MAX_VOICE_PAGES: usize = 20;
/// Polly's documented `<prosody rate>` range.
const SPEED_RANGE: (f32, f32) = (0.2, 2.0);

pub struct Polly {
    api: Api,
    signer: Signer,
    capabilities: Capabilities,
}

/// The credentials and region every request is signed with.
struct Signer {
    access_key_id: String,
    secret_access_key: SecretString,
    session_token: Option<SecretString>,
    region: String,
}

impl Polly {
    /// The adapter when `section` holds a key pair (`Ok(None)` when it holds none); an error
    /// for half a pair, a missing region or one that is not a plain region id.
    pub fn from_config(section: &VendorConfig, transport: Transport) -> Result<Option<Self>, String> {
        let (access_key_id, secret_access_key) = match (&section.api_key, &section.secret_key) {
            (None, None) => return Ok(None),
            (Some(id), Some(secret)) => (id.expose_secret().to_owned(), secret.clone()),
            (Some(_), None) => return Err("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".to_owned()),
            (None, Some(_)) => return Err("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".to_owned()),
        };
        let region = section.region.as_deref().map(str::trim).unwrap_or_default();
        // AWS credentials in the environment are often there for other tools: without a region
        // they do not mean Polly, and must not stop the gateway.
        if region.is_empty() {
            tracing::warn!(
                "polly is off: AWS credentials are set but no region (AWS_REGION, or `region` in [providers.polly])"
            );
            return Ok(None);
        }
        if !is_region(region) {
            return Err(
                "the region must be an AWS region id such as us-east-1 (lower-case letters, digits, `-`)".to_owned()
            );
        }
        let base_url = match &section.base_url {
            Some(url) => {
                let parsed = reqwest::Url::parse(url).map_err(|_| "base_url is not a URL".to_owned())?;
                if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                    return Err("base_url must be an http(s) URL with a host".to_owned());
                }
                url.clone()
            }
            None => format!("https://polly.{region}.amazonaws.com"),
        };
        let signer = Signer {
            access_key_id,
            secret_access_key,
            session_token: section.session_token.clone(),
            region: region.to_owned(),
        };
        // The key goes into a signature, never into a header of its own: the API holds none.
        let api = Api::new(ID, &base_url, None, Auth::Bearer, transport);
        Ok(Some(Self { api, signer, capabilities: capabilities() }))
    }

    /// Signs `builder` (its body and `content-type` already set) and sends it.
    async fn send(&self, builder: RequestBuilder) -> Result<reqwest::Response, ProviderError> {
        let signed = self
            .signer
            .sign(builder)
            .map_err(|detail| ProviderError::Invalid { provider: ID.to_owned(), detail: detail.to_owned() })?;
        let secrets = [
            self.signer.secret_access_key.expose_secret(),
            self.signer.session_token.as_ref().map_or("", |t| t.expose_secret()),
            self.signer.access_key_id.as_str(),
        ];
        self.api.send_signed(signed, &secrets, wire::parse_error).await
    }
}

fn capabilities() -> Capabilities {
    let model =
        |id: &str| ModelInfo { id: id.to_owned(), max_characters: MAX_CHARACTERS, supports_instructions: false };
    Capabilities {
        takes_api_key: false,
        models: vec![model("neural"), model("standard"), model("long-form"), model("generative")],
        default_model: "neural".to_owned(),
        formats: vec![
            NativeFormat::new(AudioFormat::Pcm, &[8_000, 16_000], &[]),
            NativeFormat::new(AudioFormat::Mp3, &[8_000, 16_000, 22_050, 24_000, 44_100, 48_000], &[]),
            NativeFormat::new(AudioFormat::Opus, &[48_000], &[]),
            NativeFormat::new(AudioFormat::Ulaw, &[8_000], &[]),
            NativeFormat::new(AudioFormat::Alaw, &[8_000], &[]),
        ],
        streaming: true,
        native_timestamps: true,
        timestamp_formats: vec![AudioFormat::Pcm],
        native_dialogue: None,
        voices_listable: true,
        speed_range: Some(SPEED_RANGE),
        provider_options: vec![PassableOption::new("LexiconNames", OptionKind::Array)],
    }
}

/// A plain AWS region id (`us-east-1`, `us-gov-west-1`): it becomes part of a host name.
fn is_region(region: &str) -> bool {
    (2..=32).contains(&region.len())
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-')
}

impl Signer {
    /// The request of `builder` with SigV4 headers (`authorization`, `x-amz-date`,
    /// `x-amz-security-token`) computed over its method, URL, headers (with `host` made
    /// explicit, so the signed value is the one sent) and body bytes.
    fn sign(&self, builder: RequestBuilder) -> Result<RequestBuilder, &'static str> {
        let (client, request) = builder.build_split();
        let mut request = request.map_err(|_| "the request could not be built")?;
        let url = request.url();
        let host = url.host_str().ok_or("the base URL has no host")?;
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let host = HeaderValue::from_str(&host).map_err(|_| "the base URL's host is not a valid header")?;
        request.headers_mut().insert(HOST, host);
        let identity = Credentials::new(
            &self.access_key_id,
            self.secret_access_key.expose_secret(),
            self.session_token.as_ref().map(|t| t.expose_secret().to_owned()),
            None,
            "speechgate",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|_| "the signing parameters are incomplete")?
            .into();
        let body = request.body().map(|b| b.as_bytes().ok_or("a streamed body cannot be signed")).transpose()?;
        let headers = request.headers().iter().filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
        let signable = SignableRequest::new(
            request.method().as_str(),
            request.url().as_str(),
            headers,
            SignableBody::Bytes(body.unwrap_or_default()),
        )
        .map_err(|_| "the request could not be signed")?;
        let (instructions, _) = sign(signable, &params).map_err(|_| "the request could not be signed")?.into_parts();
        let (headers, _) = instructions.into_parts();
        for header in headers {
            let mut value = HeaderValue::from_str(header.value()).map_err(|_| "a signature header is not valid")?;
            value.set_sensitive(header.sensitive());
            request.headers_mut().insert(header.name(), value);
        }
        Ok(RequestBuilder::from_parts(client, request))
    }
}

/// The text as sent, and where the caller's text is inside it.
struct Sent {
    text: String,
    ssml: bool,
    /// Byte range of the caller's (escaped) text: speech marks outside it are not words of it.
    words: Range<usize>,
}

impl Sent {
    /// Plain text, or SSML with a `<prosody rate>` for a speed other than 1.
    fn new(text: &str, speed: Option<f32>) -> Self {
        match speed.filter(|s| (s - 1.0).abs() > 0.005) {
            None => Self { text: text.to_owned(), ssml: false, words: 0..text.len() },
            Some(speed) => {
                let percent = (speed.clamp(SPEED_RANGE.0, SPEED_RANGE.1) * 100.0).round() as u32;
                let head = format!("<speak><prosody rate=\"{percent}%\">");
                let escaped = super::ssml::escape(text);
                let words = head.len()..head.len() + escaped.len();
                Self { text: format!("{head}{escaped}</prosody></speak>"), ssml: true, words }
            }
        }
    }

    /// The word at byte offsets `start..end` of the text sent, when they lie on character
    /// boundaries inside the caller's text.
    fn word(&self, start: u64, end: u64) -> Option<String> {
        let (start, end) = (usize::try_from(start).ok()?, usize::try_from(end).ok()?);
        if start >= end || start < self.words.start || end > self.words.end {
            return None;
        }
        let word = self.text.get(start..end)?;
        Some(if self.ssml { super::ssml::unescape(word) } else { word.to_owned() })
    }
}

/// Word timings from a speech-marks body: each word starts at its mark's time and ends where
/// the next word starts, the last at `duration` (seconds of audio). Lines that are not word
/// marks, and marks whose offsets do not name a piece of the caller's text, are skipped; times
/// are kept within the audio and in order.
fn word_timings(marks: &[u8], sent: &Sent, duration: f64) -> Vec<WordTiming> {
    let mut words: Vec<(String, f64)> = Vec::new();
    for line in marks.split(|b| *b == b'\n') {
        let Ok(mark) = serde_json::from_slice::<wire::Mark>(line.trim_ascii()) else {
            continue;
        };
        let (Some("word"), Some(time), Some(start), Some(end)) =
            (mark.kind.as_deref(), mark.time, mark.start, mark.end)
        else {
            continue;
        };
        if !time.is_finite() || time < 0.0 {
            continue;
        }
        let Some(text) = sent.word(start, end) else {
            continue;
        };
        let previous = words.last().map_or(0.0, |(_, at)| *at);
        words.push((text, (time / 1000.0).min(duration).max(previous)));
    }
    let starts: Vec<f64> = words.iter().map(|(_, at)| *at).collect();
    words
        .into_iter()
        .enumerate()
        .map(|(i, (text, start))| WordTiming { text, start, end: starts.get(i + 1).copied().unwrap_or(duration) })
        .collect()
}

/// Polly's `OutputFormat` for a gateway format.
fn output_format(format: AudioFormat) -> Option<&'static str> {
    match format {
        AudioFormat::Pcm => Some("pcm"),
        AudioFormat::Mp3 => Some("mp3"),
        AudioFormat::Opus => Some("ogg_opus"),
        AudioFormat::Ulaw => Some("mulaw"),
        AudioFormat::Alaw => Some("alaw"),
        AudioFormat::Aac | AudioFormat::Flac | AudioFormat::Wav => None,
    }
}

#[async_trait]
impl SpeechProvider for Polly {
    fn id(&self) -> &str {
        ID
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn synthesize(&self, request: SynthesisRequest) -> Result<EventStream, ProviderError> {
        let format = output_format(request.output.format).ok_or_else(|| self.api.unsupported(request.output.format))?;
        let sent = Sent::new(&request.text, request.speed);
        let body = |output_format, sample_rate, marks: bool| {
            let body = wire::SpeechBody {
                text: &sent.text,
                text_type: sent.ssml.then_some("ssml"),
                voice_id: &request.voice,
                engine: &request.model,
                output_format,
                sample_rate,
                speech_mark_types: marks.then_some(["word"]),
                language_code: request.language.as_deref(),
            };
            let body =
                http::with_options(serde_json::to_value(&body).unwrap_or_default(), request.provider_options.clone());
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            self.api.post("/v1/speech").header(CONTENT_TYPE, "application/json").body(bytes)
        };
        let rate = request.output.sample_rate;
        let audio = body(format, Some(rate.to_string()), false);
        // The service asks for timing only in a format of `timestamp_formats` (PCM).
        if !request.timestamps {
            let response = self.send(audio).await?;
            return self.api.stream(response, Expect::Audio);
        }
        let marks = body("json", None, true);
        let (audio, marks) = futures::future::try_join(self.send(audio), self.send(marks)).await?;
        let audio = self.api.stream(audio, Expect::Audio)?;
        let marks = self.api.body(marks).await?;
        // The words follow the audio: the last one ends where the audio does. (A stream that
        // failed is not read past its error, so no words follow a failure.)
        let bytes = Arc::new(AtomicUsize::new(0));
        let counted = bytes.clone();
        let audio = audio.inspect(move |event| {
            if let Ok(SynthesisEvent::Audio(chunk)) = event {
                counted.fetch_add(chunk.len(), Ordering::Relaxed);
            }
        });
        let words = futures::stream::once(async move {
            let duration = bytes.load(Ordering::Relaxed) as f64 / 2.0 / f64::from(rate.max(1));
            Ok(SynthesisEvent::Words(word_timings(&marks, &sent, duration)))
        });
        Ok(Box::pin(audio.chain(words)))
    }

    /// Every page of `GET /v1/voices`, following `NextToken` for at most [`MAX_VOICE_PAGES`].
    async fn voices(&self) -> Result<Vec<ProviderVoice>, ProviderError> {
        let mut voices = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_VOICE_PAGES {
            let mut builder = self.api.get("/v1/voices");
            if let Some(token) = next.take() {
                builder = builder.query(&[("NextToken", token)]);
            }
            let response = self.send(builder).await?;
            let page: wire::VoicePage = self.api.json(response).await?;
            voices.extend(page.voices.into_iter().map(|v| ProviderVoice {
                name: v.name.unwrap_or_else(|| v.id.clone()),
                gender: v.gender.map(|g| g.to_ascii_lowercase()),
                language: v.language_code,
                description: Some(match v.language_name {
                    Some(language) => format!("{language}; engines: {}", v.supported_engines.join(", ")),
                    None => format!("engines: {}", v.supported_engines.join(", ")),
                }),
                id: v.id,
            }));
            match page.next_token.filter(|t| !t.is_empty()) {
                Some(token) => next = Some(token),
                None => break,
            }
        }
        Ok(voices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_plain_ids() {
        for good in ["us-east-1", "eu-west-2", "us-gov-west-1", "ap-southeast-3"] {
            assert!(is_region(good), "{good}");
        }
        for bad in ["", "US-EAST-1", "us-east-1.evil.com", "evil.com/x", "us east", "-us", "a/b", "us-east-1:443"] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn marks_become_words_and_hostile_offsets_are_skipped() {
        let text = "Café naïve";
        let sent = Sent::new(text, None);
        // "Café" is bytes 0..5, "naïve" 6..12; 4..12 starts inside "é", 6..99 runs past the end.
        let marks = b"{\"time\":0,\"type\":\"sentence\",\"start\":0,\"end\":12,\"value\":\"x\"}\n\
            {\"time\":6,\"type\":\"word\",\"start\":0,\"end\":5,\"value\":\"Caf\xc3\xa9\"}\n\
            {\"time\":300,\"type\":\"word\",\"start\":4,\"end\":12,\"value\":\"bad\"}\n\
            {\"time\":350,\"type\":\"word\",\"start\":6,\"end\":99,\"value\":\"bad\"}\n\
            not json\n\
            {\"time\":-5,\"type\":\"word\",\"start\":6,\"end\":12}\n\
            {\"time\":400,\"type\":\"word\",\"start\":6,\"end\":12,\"value\":\"na\xc3\xafve\"}\n";
        let words = word_timings(marks, &sent, 0.9);
        assert_eq!(
            words,
            vec![
                WordTiming { text: "Café".into(), start: 0.006, end: 0.4 },
                WordTiming { text: "naïve".into(), start: 0.4, end: 0.9 },
            ]
        );
        // A time past the audio's end is kept within it.
        let late = b"{\"time\":99999,\"type\":\"word\",\"start\":0,\"end\":5}";
        assert_eq!(word_timings(late, &sent, 0.9), vec![WordTiming { text: "Café".into(), start: 0.9, end: 0.9 }]);
    }

    #[test]
    fn speed_goes_into_escaped_ssml_and_marks_map_back() {
        let sent = Sent::new("Tom & \"Jerry\" <3", Some(1.5));
        assert!(sent.ssml);
        assert_eq!(sent.text, "<speak><prosody rate=\"150%\">Tom &amp; &quot;Jerry&quot; &lt;3</prosody></speak>");
        let at = |piece: &str| sent.text.find(piece).unwrap_or_default() as u64;
        assert_eq!(sent.word(at("&quot;Jerry"), at("&quot;Jerry") + 17).as_deref(), Some("\"Jerry\""));
        // The SSML tags around the text are never words.
        assert_eq!(sent.word(0, 7), None);
        assert!(!Sent::new("plain", Some(1.0)).ssml);
    }
}
