//! Azure AI Speech, REST text-to-speech: `POST /cognitiveservices/v1` with an SSML body, the
//! format in `X-Microsoft-OutputFormat`, the key in `Ocp-Apim-Subscription-Key`; the catalogue
//! from `GET /cognitiveservices/voices/list`. Both live on `https://{region}.tts.speech.microsoft.com`
//! (`AZURE_SPEECH_REGION`) unless `AZURE_SPEECH_ENDPOINT` names another base URL.
//!
//! Azure has one neural text-to-speech service, so the gateway serves one model, `neural`; the
//! voice (`en-US-AvaNeural`) chooses everything else. There is no native word timing over REST
//! (word boundaries are an SDK/WebSocket event), so timestamps for Azure audio are the gateway's
//! estimates.
//!
//! Wire facts, from Microsoft Learn's "Text to speech REST API" page (MicrosoftDocs
//! azure-ai-docs, `rest-text-to-speech.md`) and the Speech SDK's `SpeechSynthesisOutputFormat`
//! enum:
//! - headers `Content-Type: application/ssml+xml`, `X-Microsoft-OutputFormat`, `User-Agent`
//!   (required, under 255 characters) and `Ocp-Apim-Subscription-Key`; a 200 carries the audio,
//!   streamed as it is made;
//! - formats used here: `raw-{8khz,16khz,22050hz,24khz,44100hz,48khz}-16bit-mono-pcm` and their
//!   `riff-` (WAV) twins, `audio-16khz-{32,64,128}kbitrate-mono-mp3`,
//!   `audio-24khz-{48,96,160}kbitrate-mono-mp3`, `audio-48khz-{96,192}kbitrate-mono-mp3`,
//!   `ogg-{16,24,48}khz-16bit-mono-opus`, `raw-8khz-8bit-mono-mulaw`/`-alaw`. (The REST page's
//!   non-streaming list leaves out `riff-16khz-16bit-mono-pcm`; the SDK enum has it.)
//! - statuses: 400 (a parameter or the SSML is invalid, an unknown voice), 401 (bad key or wrong
//!   region), 415 (wrong Content-Type), 429 (quota or rate), 502/503; error bodies are empty or
//!   plain text, or the API gateway's `{"error": {"code": "401", "message"}}` for a bad key —
//!   no machine codes worth passing on;
//! - the voice list: `[{Name, DisplayName, LocalName, ShortName, Gender, Locale, LocaleName,
//!   StyleList, VoiceType, ...}]`, used by `ShortName`;
//! - `<prosody rate>` takes a relative percentage (`+30.00%`) and should stay within 0.5 to 2
//!   times the normal rate (SSML "voice" page); a request's audio is cut at 10 minutes (Speech
//!   service quotas page), which bounds the input accepted here (see [`MAX_CHARACTERS`]).

mod wire;

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use secrecy::SecretString;

use super::{
    http::{Api, Auth, Expect, Transport},
    Capabilities, EventStream, ModelInfo, NativeFormat, ProviderError, ProviderVoice, SpeechProvider, SynthesisEvent,
    SynthesisRequest,
};
use crate::{
    config::VendorConfig,
    domain::audio::{AudioFormat, AudioSpec},
};

const ID: &str = "azure";
/// The one model: Azure's neural voices.
pub const MODEL: &str = "neural";
/// Longest input. Azure sets no character limit on REST but cuts the audio at 10 minutes; at
/// the slowest catalogue rates (about 140 words a minute) that is some 8,000 characters of
/// English, so 7,000 keeps a request whole.
pub const MAX_CHARACTERS: usize = 7_000;
/// Longest voice name accepted (Azure's long form, `Microsoft Server Speech Text to Speech
/// Voice (en-US, JennyNeural)`, is about 70).
const MAX_VOICE: usize = 200;
/// Longest `language` accepted (a BCP 47 tag).
const MAX_LANGUAGE: usize = 35;
const USER_AGENT: &str = concat!("speechgate/", env!("CARGO_PKG_VERSION"));
/// `xml:lang` when neither the request nor the voice name gives a locale.
const FALLBACK_LANGUAGE: &str = "en-US";

pub struct Azure {
    api: Api,
    capabilities: Capabilities,
}

/// The adapter from `[providers.azure]`: off without a key; with one, it needs a region (a plain
/// region id: it becomes part of a host name) or an endpoint.
pub fn build(section: &VendorConfig, transport: Transport) -> Result<Option<Arc<dyn SpeechProvider>>, String> {
    let Some(key) = section.api_key.clone() else {
        return Ok(None);
    };
    if let Some(region) = &section.region {
        if !is_region(region) {
            return Err("region (AZURE_SPEECH_REGION) must be an Azure region id such as `westeurope`: \
                        lower-case letters and digits only"
                .to_owned());
        }
    }
    let base_url = match (&section.base_url, &section.region) {
        (Some(url), _) => url.clone(),
        (None, Some(region)) => format!("https://{region}.tts.speech.microsoft.com"),
        (None, None) => {
            return Err("the key (AZURE_SPEECH_KEY) is set but neither region (AZURE_SPEECH_REGION) nor \
                        base_url (AZURE_SPEECH_ENDPOINT) is"
                .to_owned());
        }
    };
    Ok(Some(Arc::new(Azure::new(&base_url, key, transport))))
}

/// An Azure region id: `westeurope`, `eastus2`.
fn is_region(region: &str) -> bool {
    (1..=40).contains(&region.len()) && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl Azure {
    pub fn new(base_url: &str, api_key: SecretString, transport: Transport) -> Self {
        let linear = [8_000, 16_000, 22_050, 24_000, 44_100, 48_000];
        let mut formats =
            vec![NativeFormat::new(AudioFormat::Pcm, &linear, &[]), NativeFormat::new(AudioFormat::Wav, &linear, &[])];
        for rate in [16_000, 24_000, 48_000] {
            let mut bitrates = wire::mp3_bitrates(rate).to_vec();
            bitrates.sort_unstable();
            formats.push(NativeFormat::new(AudioFormat::Mp3, &[rate], &bitrates));
        }
        formats.extend([
            NativeFormat::new(AudioFormat::Opus, &[16_000, 24_000, 48_000], &[]),
            NativeFormat::new(AudioFormat::Ulaw, &[8_000], &[]),
            NativeFormat::new(AudioFormat::Alaw, &[8_000], &[]),
        ]);
        let capabilities = Capabilities {
            takes_api_key: true,
            models: vec![ModelInfo {
                id: MODEL.to_owned(),
                max_characters: MAX_CHARACTERS,
                supports_instructions: false,
            }],
            default_model: MODEL.to_owned(),
            formats,
            streaming: true,
            native_timestamps: false,
            timestamp_formats: Vec::new(),
            native_dialogue: None,
            voices_listable: true,
            speed_range: Some((0.5, 2.0)),
            provider_options: Vec::new(),
        };
        Self {
            api: Api::new(ID, base_url, Some(api_key), Auth::Header("Ocp-Apim-Subscription-Key"), transport),
            capabilities,
        }
    }

    fn refuse(&self, detail: String) -> ProviderError {
        ProviderError::Rejected { provider: ID.to_owned(), status: 400, code: None, detail }
    }
}

/// A voice name that can stand in an SSML attribute as written: letters, digits and the
/// punctuation of Azure's short and long names. Quotes, angle brackets and `&` never pass.
fn is_voice(voice: &str) -> bool {
    (1..=MAX_VOICE).contains(&voice.len())
        && voice
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | ' ' | '(' | ')' | ','))
}

/// A BCP 47 tag's characters: `en-US`, `zh-Hans-CN`.
fn is_language(language: &str) -> bool {
    (2..=MAX_LANGUAGE).contains(&language.len()) && language.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The locale a voice name starts with: `en-US-AvaNeural` → `en-US`, `sr-Latn-RS-NicholasNeural`
/// → `sr-Latn-RS`.
fn voice_locale(voice: &str) -> Option<&str> {
    let parts: Vec<&str> = voice.splitn(4, '-').collect();
    let language = |p: &str| (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase());
    let region = |p: &str| {
        (p.len() == 2 && p.bytes().all(|b| b.is_ascii_uppercase()))
            || (p.len() == 3 && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let script = |p: &str| {
        p.len() == 4 && p.as_bytes()[0].is_ascii_uppercase() && p.bytes().skip(1).all(|b| b.is_ascii_lowercase())
    };
    let end = match parts.as_slice() {
        [l, s, r, ..] if language(l) && script(s) && region(r) => l.len() + s.len() + r.len() + 2,
        [l, r, ..] if language(l) && region(r) => l.len() + r.len() + 1,
        _ => return None,
    };
    voice.get(..end)
}

/// Azure's error bodies: the API gateway's `{"error": {"code", "message"}}` (its code is the
/// HTTP status again, so it is not passed on), else plain text or nothing.
fn parse_error(body: &[u8]) -> (Option<String>, Option<String>) {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().or(v["message"].as_str()).map(str::to_owned));
    (None, message)
}

/// Azure's statuses in the gateway's terms: a 400 with no body says what Azure's usually means;
/// a 415 is the gateway's own doing (its Content-Type), not the caller's.
fn explain(error: ProviderError) -> ProviderError {
    match error {
        ProviderError::Rejected { provider, status: 400, code, detail } if detail == "HTTP 400" => {
            let detail = "Azure refused the request (HTTP 400): an unknown voice name, a language the voice \
                          does not speak, or SSML it cannot read"
                .to_owned();
            ProviderError::Rejected { provider, status: 400, code, detail }
        }
        ProviderError::Rejected { provider, status: 415, .. } => ProviderError::Invalid {
            provider,
            detail: "refused the gateway's SSML as an unsupported media type (HTTP 415)".to_owned(),
        },
        other => other,
    }
}

/// The body as audio events; a reply that ends without a byte of audio (what Azure sends for
/// some voices it cannot use) is an error, not an empty clip.
fn audio_or_error(body: EventStream) -> EventStream {
    Box::pin(futures::stream::unfold(Some((body, false)), |state| async move {
        let (mut body, seen) = state?;
        match body.next().await {
            Some(Ok(SynthesisEvent::Audio(bytes))) => {
                let seen = seen || !bytes.is_empty();
                Some((Ok(SynthesisEvent::Audio(bytes)), Some((body, seen))))
            }
            Some(other) => Some((other, Some((body, seen)))),
            None if seen => None,
            None => Some((
                Err(ProviderError::Invalid {
                    provider: ID.to_owned(),
                    detail: "answered 200 with no audio (is the voice one of this resource's?)".to_owned(),
                }),
                None,
            )),
        }
    }))
}

#[async_trait]
impl SpeechProvider for Azure {
    fn id(&self) -> &str {
        ID
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn synthesize(&self, request: SynthesisRequest) -> Result<EventStream, ProviderError> {
        let spec: AudioSpec = request.output;
        let output_format = wire::output_format(spec).ok_or_else(|| self.api.unsupported(spec.format))?;
        if !is_voice(&request.voice) {
            return Err(self.refuse(format!(
                "the voice must be an Azure voice name such as en-US-AvaNeural (letters, digits, `-`, `_`, \
                 `.`, `:`, spaces, parentheses and commas, at most {MAX_VOICE} characters)"
            )));
        }
        let language = match request.language.as_deref() {
            Some(language) if is_language(language) => language,
            Some(_) => return Err(self.refuse("the language must be a BCP 47 tag such as en-US".to_owned())),
            None => voice_locale(&request.voice).unwrap_or(FALLBACK_LANGUAGE),
        };
        let rate = request.speed.map(wire::prosody_rate);
        let body = wire::ssml(language, &request.voice, rate.as_deref(), &request.text);
        let builder = self
            .api
            .post("/cognitiveservices/v1")
            .header(reqwest::header::CONTENT_TYPE, "application/ssml+xml")
            .header("X-Microsoft-OutputFormat", output_format)
            .header(reqwest::header::USER_AGENT, USER_AGENT)
            .body(body);
        let response = self.api.send_as(builder, request.credential.as_ref(), parse_error).await.map_err(explain)?;
        Ok(audio_or_error(self.api.stream(response, Expect::Audio)?))
    }

    async fn voices(&self) -> Result<Vec<ProviderVoice>, ProviderError> {
        let builder = self.api.get("/cognitiveservices/voices/list").header(reqwest::header::USER_AGENT, USER_AGENT);
        let response = self.api.send(builder, parse_error).await.map_err(explain)?;
        let voices: Vec<wire::Voice> = self.api.json(response).await?;
        Ok(voices
            .into_iter()
            // A name the gateway would refuse to send is no use in the catalogue.
            .filter(|v| is_voice(&v.short_name))
            .map(|v| {
                let mut description: Vec<String> = v.locale_name.into_iter().chain(v.voice_type).collect();
                if !v.style_list.is_empty() {
                    description.push(format!("styles: {}", v.style_list.join(", ")));
                }
                ProviderVoice {
                    name: v.display_name.or(v.local_name).unwrap_or_else(|| v.short_name.clone()),
                    gender: v.gender.map(|g| g.to_ascii_lowercase()),
                    language: v.locale,
                    description: (!description.is_empty()).then(|| description.join("; ")),
                    id: v.short_name,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_plain_ids() {
        assert!(is_region("westeurope") && is_region("eastus2"));
        for hostile in ["", "West", "evil.com/", "a.b", "eastus#", "x y", "eastus\n", "region-1"] {
            assert!(!is_region(hostile), "{hostile:?}");
        }
    }

    #[test]
    fn voices_with_markup_are_refused() {
        assert!(is_voice("en-US-AvaNeural"));
        assert!(is_voice("Microsoft Server Speech Text to Speech Voice (en-US, JennyNeural)"));
        for hostile in ["", "</voice><voice name=\"x\">", "a\"b", "a'b", "a&b", "a<b", "a\nb"] {
            assert!(!is_voice(hostile), "{hostile:?}");
        }
        assert!(!is_voice(&"a".repeat(MAX_VOICE + 1)));
    }

    #[test]
    fn the_locale_comes_from_the_voice_name() {
        assert_eq!(voice_locale("en-US-AvaNeural"), Some("en-US"));
        assert_eq!(voice_locale("zh-CN-shaanxi-XiaoniNeural"), Some("zh-CN"));
        assert_eq!(voice_locale("sr-Latn-RS-NicholasNeural"), Some("sr-Latn-RS"));
        assert_eq!(voice_locale("es-419-Voice"), Some("es-419"));
        assert_eq!(voice_locale("MyCustomVoice"), None);
        assert_eq!(voice_locale("en-us-x"), None);
    }

    #[test]
    fn languages_are_tags() {
        assert!(is_language("en-US") && is_language("zh-Hans-CN"));
        assert!(!is_language("en\"US") && !is_language("e") && !is_language("en US"));
    }
}
