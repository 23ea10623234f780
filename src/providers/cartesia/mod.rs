//! Cartesia: `/tts/bytes` streams audio; `/tts/sse` is used when word timestamps are wanted
//! (base64 audio chunks and `word_timestamps` events). Bearer auth plus the version header.

mod wire;

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use secrecy::SecretString;

use super::{
    http::{self, Api, Auth, Expect, Transport},
    Capabilities, EventStream, ModelInfo, NativeFormat, OptionKind, PassableOption, ProviderError, ProviderVoice,
    SpeechProvider, SynthesisEvent, SynthesisRequest, WordTiming,
};
use crate::domain::audio::AudioFormat;

pub const DEFAULT_BASE_URL: &str = "https://api.cartesia.ai";
const ID: &str = "cartesia";
const RATES: [u32; 6] = [8_000, 16_000, 22_050, 24_000, 44_100, 48_000];
/// Voices per catalogue page (the API's maximum), and the most pages read.
const VOICE_PAGE: usize = 100;
const MAX_VOICE_PAGES: usize = 50;

pub struct Cartesia {
    api: Api,
    capabilities: Capabilities,
}

impl Cartesia {
    pub fn new(base_url: Option<&str>, api_key: SecretString, transport: Transport) -> Self {
        let model = |id: &str| ModelInfo { id: id.to_owned(), max_characters: 10_000, supports_instructions: false };
        let capabilities = Capabilities {
            takes_api_key: true,
            models: vec![model("sonic-3"), model("sonic-3.5"), model("sonic-latest"), model("sonic-2")],
            default_model: "sonic-3".to_owned(),
            formats: vec![
                NativeFormat::new(AudioFormat::Pcm, &RATES, &[]),
                NativeFormat::new(AudioFormat::Wav, &RATES, &[]),
                NativeFormat::new(AudioFormat::Mp3, &RATES, &[32, 64, 96, 128, 192]),
                NativeFormat::new(AudioFormat::Ulaw, &[8_000], &[]),
                NativeFormat::new(AudioFormat::Alaw, &[8_000], &[]),
            ],
            streaming: true,
            native_timestamps: true,
            timestamp_formats: vec![AudioFormat::Pcm],
            native_dialogue: None,
            voices_listable: true,
            speed_range: Some((0.6, 1.5)),
            provider_options: vec![
                PassableOption::object_without("generation_config", &["speed"]),
                PassableOption::new("pronunciation_dict_id", OptionKind::String),
            ],
        };
        Self {
            api: Api::new(ID, base_url.unwrap_or(DEFAULT_BASE_URL), Some(api_key), Auth::Bearer, transport),
            capabilities,
        }
    }
}

#[async_trait]
impl SpeechProvider for Cartesia {
    fn id(&self) -> &str {
        ID
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn synthesize(&self, request: SynthesisRequest) -> Result<EventStream, ProviderError> {
        let output_format =
            wire::output_format(request.output).ok_or_else(|| self.api.unsupported(request.output.format))?;
        // The SSE endpoint carries raw audio only; timestamps therefore imply raw output.
        let sse = request.timestamps && request.output.format == AudioFormat::Pcm;
        let body = wire::SpeechBody {
            model_id: &request.model,
            transcript: &request.text,
            voice: wire::Voice { mode: "id", id: &request.voice },
            output_format,
            language: request.language.as_deref(),
            generation_config: request.speed.map(|speed| serde_json::json!({"speed": speed})),
            add_timestamps: sse,
        };
        let body = http::with_options(serde_json::to_value(&body).unwrap_or_default(), request.provider_options);
        let route = if sse { "tts/sse" } else { "tts/bytes" };
        let builder = self.api.post(&format!("/{route}")).header("Cartesia-Version", wire::VERSION).json(&body);
        let response = self.api.send_as(builder, request.credential.as_ref(), wire::parse_error).await?;
        Ok(if sse {
            sse_events(self.api.stream(response, Expect::Structured)?)
        } else {
            self.api.stream(response, Expect::Audio)?
        })
    }

    /// Every page of `GET /voices`: the public library and the account's own voices.
    async fn voices(&self) -> Result<Vec<ProviderVoice>, ProviderError> {
        let mut voices = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_VOICE_PAGES {
            let mut query = vec![("limit", VOICE_PAGE.to_string())];
            query.extend(after.take().map(|id| ("starting_after", id)));
            let builder = self.api.get("/voices").query(&query).header("Cartesia-Version", wire::VERSION);
            let response = self.api.send(builder, wire::parse_error).await?;
            let page: wire::VoicePage = self.api.json(response).await?;
            let more = page.has_more.unwrap_or(page.data.len() == VOICE_PAGE);
            after = page.data.last().map(|v| v.id.clone());
            voices.extend(page.data.into_iter().map(|v| ProviderVoice {
                name: v.name.unwrap_or_else(|| v.id.clone()),
                gender: v.gender.map(|g| match g.as_str() {
                    "masculine" => "male".to_owned(),
                    "feminine" => "female".to_owned(),
                    "gender_neutral" => "neutral".to_owned(),
                    _ => g,
                }),
                language: v.language,
                description: v.description,
                id: v.id,
            }));
            if !more || after.is_none() {
                break;
            }
        }
        Ok(voices)
    }
}

/// Parses `data:` lines of the SSE body into audio and word events.
fn sse_events(body: EventStream) -> EventStream {
    let lines = http::lines(ID, body);
    Box::pin(lines.filter_map(|line| async move {
        let line = match line {
            Ok(line) => line,
            Err(err) => return Some(Err(err)),
        };
        let data = line.strip_prefix("data:")?.trim();
        let event: wire::Event = match serde_json::from_str(data) {
            Ok(event) => event,
            Err(_) => return None,
        };
        match event.kind.as_str() {
            "chunk" => {
                let audio = event.data?;
                Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(audio)
                        .map(|b| SynthesisEvent::Audio(Bytes::from(b)))
                        .map_err(|e| ProviderError::Interrupted {
                            provider: ID.to_owned(),
                            detail: format!("bad base64 audio: {e}"),
                        }),
                )
            }
            "timestamps" => {
                let w = event.word_timestamps?;
                let words = w
                    .words
                    .into_iter()
                    .zip(w.start.into_iter().zip(w.end))
                    .map(|(text, (start, end))| WordTiming { text, start, end })
                    .collect();
                Some(Ok(SynthesisEvent::Words(words)))
            }
            "error" => Some(Err(http::vendor_error(
                ID,
                event.status_code.unwrap_or(500),
                event.error_code,
                &event.message.or(event.title).unwrap_or_default(),
                None,
            ))),
            _ => None,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sse_events_become_audio_words_and_errors() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("pcm-bytes");
        let body = format!(
            "event: chunk\ndata: {{\"type\":\"chunk\",\"data\":\"{b64}\",\"done\":false,\"status_code\":206}}\n\n\
             data: {{\"type\":\"timestamps\",\"done\":false,\"word_timestamps\":{{\"words\":[\"Hello,\",\"world!\"],\"start\":[0.02,0.41],\"end\":[0.38,0.82]}}}}\n\n\
             data: {{\"type\":\"done\",\"done\":true,\"status_code\":200}}\n\n\
             data: {{\"type\":\"error\",\"done\":true,\"status_code\":429,\"error_code\":\"concurrency_limited\",\"title\":\"Busy\",\"message\":\"Too many\"}}\n\n"
        );
        let chunks: Vec<Result<SynthesisEvent, ProviderError>> = vec![Ok(SynthesisEvent::Audio(Bytes::from(body)))];
        let events: Vec<_> = sse_events(Box::pin(futures::stream::iter(chunks))).collect().await;
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].as_ref().ok(), Some(&SynthesisEvent::Audio(Bytes::from_static(b"pcm-bytes"))));
        assert_eq!(
            events[1].as_ref().ok(),
            Some(&SynthesisEvent::Words(vec![
                WordTiming { text: "Hello,".into(), start: 0.02, end: 0.38 },
                WordTiming { text: "world!".into(), start: 0.41, end: 0.82 },
            ]))
        );
        assert!(
            matches!(&events[2], Err(ProviderError::RateLimited { code: Some(c), .. }) if c == "concurrency_limited")
        );
    }
}
