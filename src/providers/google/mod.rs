//! Google Cloud Text-to-Speech: `POST /v1/text:synthesize` for audio (one JSON reply with the
//! audio in base64: not streaming), `POST /v1beta1/text:synthesize` with SSML marks when word
//! timings are wanted (see `marks.rs`), `GET /v1/voices` for the catalogue.
//!
//! Credentials: an API key (`GOOGLE_CLOUD_TTS_API_KEY`), sent in the `x-goog-api-key` header
//! (never in the URL, where logs and proxies would keep it); or a service account's JSON key
//! (`GOOGLE_APPLICATION_CREDENTIALS`), exchanged for OAuth access tokens (`auth.rs`) sent as
//! `Authorization: Bearer`. When both are set the API key is used and the file is not read. A
//! project's own key (`PUT /v1/api-keys/google`) is an API key, in the same header.
//!
//! Models: Google has no model parameter for these voices; the voice name carries the family
//! (`en-US-Standard-A`, `-Wavenet-`, `-Neural2-`, `-Studio-`, `-Chirp3-HD-`...). So there is one
//! model, [`MODEL`], and the family is picked with the voice. Google counts its input limit in
//! bytes (5,000 of text or SSML); longer inputs are refused here before they are sent.
//!
//! Wire facts, from the Cloud Text-to-Speech REST reference and its generated client docs
//! (`AudioConfig`, `AudioEncoding`, `SynthesizeSpeechResponse`, `ListVoicesResponse`):
//! body `{input: {text|ssml}, voice: {languageCode, name}, audioConfig: {audioEncoding,
//! sampleRateHertz, speakingRate}}`, `languageCode` required; reply `{audioContent: base64}`;
//! `LINEAR16`, `MULAW` and `ALAW` audio "also contains a WAV header" (stripped here for raw
//! outputs, after checking it says what was asked), `MP3` is 32 kbit/s, `OGG_OPUS` is Opus in
//! Ogg; a `sampleRateHertz` other than the voice's natural rate is resampled by Google;
//! `speakingRate` is [0.25, 2.0] (older v1 pages said 4.0); voices are `{voices: [{languageCodes,
//! name, ssmlGender, naturalSampleRateHertz}]}`; errors are
//! `{"error": {"code", "message", "status"}}` (the `status` is passed on as the code).
//! Chirp 3 HD voices take no SSML, so they cannot be timed natively (Google refuses the request).

mod auth;
mod marks;
mod wire;

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use reqwest::{RequestBuilder, Response};
use secrecy::ExposeSecret;

use super::{
    http::{self, Api, Auth, Transport},
    Capabilities, EventStream, ModelInfo, NativeFormat, PassableOption, ProviderError, ProviderKey, ProviderVoice,
    SpeechProvider, SynthesisEvent, SynthesisRequest,
};
use crate::{config::VendorConfig, domain::audio::AudioFormat};

pub const DEFAULT_BASE_URL: &str = "https://texttospeech.googleapis.com";
const ID: &str = "google";
/// The one model: the voice picks Google's voice family.
pub const MODEL: &str = "cloud-tts";
/// Google's input limit, in bytes of text or SSML.
const MAX_INPUT_BYTES: usize = 5_000;
/// Rates asked of `LINEAR16` (Google resamples to any of them).
const LINEAR_RATES: [u32; 7] = [8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000];
/// Longest voice name or language code taken from the catalogue.
const MAX_NAME: usize = 100;

pub struct Google {
    api: Api,
    /// The service account, when it (not an API key) is the operator's credential.
    account: Option<Arc<auth::ServiceAccount>>,
    transport: Transport,
    capabilities: Capabilities,
}

impl Google {
    /// The adapter, when the section holds an API key or a service account key file; an error
    /// when the file cannot be used.
    pub fn from_config(
        section: &VendorConfig,
        transport: Transport,
    ) -> Result<Option<Arc<dyn SpeechProvider>>, String> {
        let base_url = section.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        // An empty variable (`KEY=` in a compose file) is no credential.
        if let Some(key) = section.api_key.clone().filter(|k| !k.expose_secret().trim().is_empty()) {
            return Ok(Some(Arc::new(Self::new(base_url, Some(key), None, transport))));
        }
        let Some(path) = section.credentials_file.as_deref().filter(|p| !p.trim().is_empty()) else {
            return Ok(None);
        };
        let account = auth::ServiceAccount::from_file(path)?;
        Ok(Some(Arc::new(Self::new(base_url, None, Some(Arc::new(account)), transport))))
    }

    fn new(
        base_url: &str,
        key: Option<secrecy::SecretString>,
        account: Option<Arc<auth::ServiceAccount>>,
        transport: Transport,
    ) -> Self {
        let capabilities = Capabilities {
            takes_api_key: true,
            models: vec![ModelInfo {
                id: MODEL.to_owned(),
                max_characters: MAX_INPUT_BYTES,
                supports_instructions: false,
            }],
            default_model: MODEL.to_owned(),
            formats: vec![
                NativeFormat::new(AudioFormat::Pcm, &LINEAR_RATES, &[]),
                NativeFormat::new(AudioFormat::Wav, &LINEAR_RATES, &[]),
                NativeFormat::new(AudioFormat::Ulaw, &[8_000], &[]),
                NativeFormat::new(AudioFormat::Alaw, &[8_000], &[]),
                NativeFormat::new(AudioFormat::Mp3, &[24_000], &[32]),
                NativeFormat::new(AudioFormat::Opus, &[48_000], &[]),
            ],
            streaming: false,
            native_timestamps: true,
            // The formats whose length the WAV header tells (the last word ends there).
            timestamp_formats: vec![AudioFormat::Pcm, AudioFormat::Wav, AudioFormat::Ulaw, AudioFormat::Alaw],
            native_dialogue: None,
            voices_listable: true,
            speed_range: Some((0.25, 2.0)),
            provider_options: vec![PassableOption::object_without(
                "audioConfig",
                &["audioEncoding", "sampleRateHertz", "speakingRate"],
            )],
        };
        Self {
            api: Api::new(ID, base_url, key, Auth::Header("x-goog-api-key"), transport.clone()),
            account,
            transport,
            capabilities,
        }
    }

    /// Sends with the project's own key when given, else the operator's API key or service
    /// account token.
    async fn send(&self, builder: RequestBuilder, credential: Option<&ProviderKey>) -> Result<Response, ProviderError> {
        let Some(account) = self.account.as_ref().filter(|_| credential.is_none()) else {
            return self.api.send_as(builder, credential, wire::parse_error).await;
        };
        let token = account.token(&self.transport).await?;
        let builder = builder.bearer_auth(token.expose_secret());
        let sent = http::send(ID, builder, self.transport.timeouts, wire::parse_error, &[token.expose_secret()]).await;
        if let Err(ProviderError::Unauthorized { .. }) = &sent {
            account.forget().await;
        }
        sent
    }

    fn invalid(detail: String) -> ProviderError {
        ProviderError::Invalid { provider: ID.to_owned(), detail }
    }
}

/// `en-US-Neural2-A` → `en-US`; `cmn-CN-Wavenet-A` → `cmn-CN`.
fn language_of(voice: &str) -> Option<&str> {
    let mut parts = voice.splitn(3, '-');
    let (language, region) = (parts.next()?, parts.next()?);
    let letters = |s: &str, n: std::ops::RangeInclusive<usize>| {
        n.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    (letters(language, 2..=3) && letters(region, 2..=4) && parts.next().is_some())
        .then(|| &voice[..language.len() + 1 + region.len()])
}

#[async_trait]
impl SpeechProvider for Google {
    fn id(&self) -> &str {
        ID
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn synthesize(&self, request: SynthesisRequest) -> Result<EventStream, ProviderError> {
        let (encoding, header) =
            wire::encoding(request.output.format).ok_or_else(|| self.api.unsupported(request.output.format))?;
        let rejected =
            |detail: String| ProviderError::Rejected { provider: ID.to_owned(), status: 400, code: None, detail };
        let language = request.language.as_deref().or_else(|| language_of(&request.voice)).ok_or_else(|| {
            rejected(
                "Google needs a language: give `language`, or a voice whose name starts with it (en-US-Neural2-A)"
                    .to_owned(),
            )
        })?;
        let marked = request.timestamps.then(|| marks::ssml(&request.text));
        let input = match &marked {
            Some((ssml, _)) => wire::Input { text: None, ssml: Some(ssml) },
            None => wire::Input { text: Some(&request.text), ssml: None },
        };
        let bytes = input.text.or(input.ssml).map_or(0, str::len);
        if bytes > MAX_INPUT_BYTES {
            let what = if marked.is_some() { "as SSML with its timing marks " } else { "" };
            return Err(rejected(format!(
                "Google takes at most {MAX_INPUT_BYTES} bytes of input; this text is {bytes} bytes {what}(UTF-8)"
            )));
        }
        let sample_rate_hertz = request.output.sample_rate;
        let body = wire::SynthesizeBody {
            input,
            voice: wire::VoiceSelection { language_code: language, name: &request.voice },
            audio_config: wire::AudioConfig {
                audio_encoding: encoding,
                sample_rate_hertz,
                speaking_rate: request.speed,
            },
            enable_time_pointing: if marked.is_some() { vec!["SSML_MARK"] } else { Vec::new() },
        };
        let body = http::with_options(serde_json::to_value(&body).unwrap_or_default(), request.provider_options);
        let path = if marked.is_some() { "/v1beta1/text:synthesize" } else { "/v1/text:synthesize" };
        let response = self.send(self.api.post(path).json(&body), request.credential.as_ref()).await?;
        let reply: wire::SynthesizeReply = self.api.json(response).await?;
        let audio = reply
            .audio_content
            .filter(|a| !a.is_empty())
            .ok_or_else(|| Self::invalid("the reply carries no audioContent".to_owned()))?;
        let audio = base64::engine::general_purpose::STANDARD
            .decode(audio)
            .map_err(|e| Self::invalid(format!("the reply's audioContent is not base64: {e}")))?;
        // Raw outputs lose Google's WAV header; WAV keeps it. Timing needs the length it tells.
        let wav = match (header, request.output.format) {
            (Some(expected), format) if format != AudioFormat::Wav || marked.is_some() => {
                let wav = crate::audio::WavFile::parse(&audio).map_err(Self::invalid)?;
                wav.expect(expected, request.output).map_err(Self::invalid)?;
                Some(wav)
            }
            _ => None,
        };
        let audio = match (&wav, request.output.format) {
            (Some(wav), format) if format != AudioFormat::Wav => Bytes::from(audio).slice(wav.data.clone()),
            _ => Bytes::from(audio),
        };
        let mut events = vec![Ok(SynthesisEvent::Audio(audio))];
        if let Some((_, words)) = &marked {
            let duration = wav.as_ref().map_or(0.0, crate::audio::WavFile::seconds);
            let timings = marks::timings(words, &reply.timepoints, duration);
            if !timings.is_empty() {
                events.push(Ok(SynthesisEvent::Words(timings)));
            }
        }
        Ok(Box::pin(futures::stream::iter(events)))
    }

    async fn voices(&self) -> Result<Vec<ProviderVoice>, ProviderError> {
        let response = self.send(self.api.get("/v1/voices"), None).await?;
        let reply: serde_json::Value = self.api.json(response).await?;
        let clean = |s: &str| !s.is_empty() && s.len() <= MAX_NAME && !s.chars().any(char::is_control);
        let voices = reply["voices"].as_array().map(Vec::as_slice).unwrap_or_default();
        Ok(voices
            .iter()
            .filter_map(|voice| {
                let name = voice["name"].as_str().filter(|n| clean(n))?;
                let gender = match voice["ssmlGender"].as_str() {
                    Some("FEMALE") => Some("female"),
                    Some("MALE") => Some("male"),
                    Some("NEUTRAL") => Some("neutral"),
                    _ => None,
                };
                let language = voice["languageCodes"]
                    .as_array()
                    .and_then(|codes| codes.first())
                    .and_then(|code| code.as_str())
                    .filter(|code| clean(code));
                let rate = voice["naturalSampleRateHertz"].as_u64().filter(|r| (1..=384_000).contains(r));
                let family = language_of(name).map(|l| &name[l.len() + 1..]).and_then(|rest| rest.rsplit_once('-'));
                let description = match (family, rate) {
                    (Some((family, _)), Some(rate)) => Some(format!("{family} voice, {rate} Hz")),
                    (Some((family, _)), None) => Some(format!("{family} voice")),
                    (None, Some(rate)) => Some(format!("{rate} Hz")),
                    (None, None) => None,
                };
                Some(ProviderVoice {
                    id: name.to_owned(),
                    name: name.to_owned(),
                    gender: gender.map(str::to_owned),
                    language: language.map(str::to_owned),
                    description,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_variables_enable_nothing() {
        let config = crate::config::ProvidersConfig::default();
        let transport = Transport::new(config.timeouts(&Default::default())).unwrap();
        let section = VendorConfig {
            api_key: Some(String::new().into()),
            credentials_file: Some(" ".into()),
            ..Default::default()
        };
        assert!(Google::from_config(&section, transport.clone()).unwrap().is_none());
        let section = VendorConfig { api_key: Some("k".to_owned().into()), ..Default::default() };
        assert!(Google::from_config(&section, transport).unwrap().is_some());
    }

    #[test]
    fn language_comes_from_the_voice_name() {
        assert_eq!(language_of("en-US-Neural2-A"), Some("en-US"));
        assert_eq!(language_of("cmn-CN-Wavenet-A"), Some("cmn-CN"));
        assert_eq!(language_of("en-US-Chirp3-HD-Achernar"), Some("en-US"));
        assert_eq!(language_of("en-US"), None);
        assert_eq!(language_of("alloy"), None);
        assert_eq!(language_of("e\u{301}n-US-X-A"), None);
    }
}
