//! ElevenLabs: `/v1/text-to-speech/{voice}/stream` for audio, `/stream/with-timestamps` when
//! word timings are wanted (character alignment, folded into words here),
//! `/v1/text-to-dialogue/stream` for a whole dialogue in one request, `/v1/voices` for the
//! catalogue. Auth is the `xi-api-key` header; the format is the `output_format` query.

mod wire;

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use secrecy::SecretString;

use super::{
    http::{self, Api, Auth, Expect, Transport},
    Capabilities, DialogueRequest, DialogueSupport, EventStream, ModelInfo, NativeFormat, OptionKind, PassableOption,
    ProviderError, ProviderVoice, SpeechProvider, SynthesisEvent, SynthesisRequest, WordTiming,
};
use crate::domain::audio::AudioFormat;

pub const DEFAULT_BASE_URL: &str = "https://api.elevenlabs.io";
const ID: &str = "elevenlabs";

pub struct ElevenLabs {
    api: Api,
    capabilities: Capabilities,
}

impl ElevenLabs {
    pub fn new(base_url: Option<&str>, api_key: SecretString, transport: Transport) -> Self {
        let model =
            |id: &str, max_characters| ModelInfo { id: id.to_owned(), max_characters, supports_instructions: false };
        let capabilities = Capabilities {
            takes_api_key: true,
            models: vec![
                model("eleven_multilingual_v2", 10_000),
                model("eleven_v3", 3_000),
                model("eleven_flash_v2_5", 40_000),
                model("eleven_turbo_v2_5", 40_000),
                model("eleven_flash_v2", 30_000),
                model("eleven_turbo_v2", 30_000),
                model("eleven_multilingual_v1", 10_000),
                model("eleven_monolingual_v1", 10_000),
            ],
            default_model: "eleven_multilingual_v2".to_owned(),
            formats: vec![
                NativeFormat::new(AudioFormat::Mp3, &[22_050], &[32]),
                NativeFormat::new(AudioFormat::Mp3, &[24_000], &[48]),
                NativeFormat::new(AudioFormat::Mp3, &[44_100], &[32, 64, 96, 128, 192]),
                NativeFormat::new(AudioFormat::Opus, &[48_000], &[32, 64, 96, 128, 192]),
                NativeFormat::new(AudioFormat::Pcm, &[8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000], &[]),
                NativeFormat::new(AudioFormat::Ulaw, &[8_000], &[]),
                NativeFormat::new(AudioFormat::Alaw, &[8_000], &[]),
            ],
            streaming: true,
            native_timestamps: true,
            timestamp_formats: vec![
                AudioFormat::Mp3,
                AudioFormat::Opus,
                AudioFormat::Pcm,
                AudioFormat::Ulaw,
                AudioFormat::Alaw,
            ],
            native_dialogue: Some(DialogueSupport {
                models: vec!["eleven_v3".to_owned()],
                max_voices: 10,
                // Longer dialogues may end early in a stream or be refused (the vendor's advice).
                max_characters: 2_000,
            }),
            voices_listable: true,
            speed_range: Some((0.7, 1.2)),
            provider_options: vec![
                PassableOption::object_without("voice_settings", &["speed"]),
                PassableOption::new("pronunciation_dictionary_locators", OptionKind::Array),
                PassableOption::new("previous_text", OptionKind::String),
                PassableOption::new("next_text", OptionKind::String),
                PassableOption::new("previous_request_ids", OptionKind::Array),
                PassableOption::new("next_request_ids", OptionKind::Array),
                PassableOption::new("apply_text_normalization", OptionKind::String),
                PassableOption::new("apply_language_text_normalization", OptionKind::Boolean),
            ],
        };
        Self {
            api: Api::new(
                ID,
                base_url.unwrap_or(DEFAULT_BASE_URL),
                Some(api_key),
                Auth::Header("xi-api-key"),
                transport,
            ),
            capabilities,
        }
    }
}

#[async_trait]
impl SpeechProvider for ElevenLabs {
    fn id(&self) -> &str {
        ID
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn synthesize(&self, request: SynthesisRequest) -> Result<EventStream, ProviderError> {
        let output_format =
            wire::output_format(request.output).ok_or_else(|| self.api.unsupported(request.output.format))?;
        let voice_settings = request.speed.map(|speed| {
            let mut settings = serde_json::Map::new();
            settings.insert("speed".to_owned(), speed.into());
            settings
        });
        let body = wire::SpeechBody {
            text: &request.text,
            model_id: &request.model,
            language_code: request.language.as_deref(),
            seed: request.seed,
            voice_settings,
        };
        let body = http::with_options(serde_json::to_value(&body).unwrap_or_default(), request.provider_options);
        let route = if request.timestamps { "stream/with-timestamps" } else { "stream" };
        let voice = crate::domain::text::path_segment(&request.voice);
        let builder = self
            .api
            .post(&format!("/v1/text-to-speech/{voice}/{route}"))
            .query(&[("output_format", output_format.as_str())])
            .json(&body);
        let response = self.api.send_as(builder, request.credential.as_ref(), http::parse_detail_error).await?;
        Ok(if request.timestamps {
            with_timestamps(self.api.stream(response, Expect::Structured)?)
        } else {
            self.api.stream(response, Expect::Audio)?
        })
    }

    async fn dialogue(&self, request: DialogueRequest) -> Result<EventStream, ProviderError> {
        let output_format =
            wire::output_format(request.output).ok_or_else(|| self.api.unsupported(request.output.format))?;
        let body = wire::DialogueBody {
            inputs: request.lines.iter().map(|(voice, text)| wire::DialogueInput { text, voice_id: voice }).collect(),
            model_id: &request.model,
            language_code: request.language.as_deref(),
            seed: request.seed,
        };
        let builder = self
            .api
            .post("/v1/text-to-dialogue/stream")
            .query(&[("output_format", output_format.as_str())])
            .json(&body);
        let response = self.api.send_as(builder, request.credential.as_ref(), http::parse_detail_error).await?;
        self.api.stream(response, Expect::Audio)
    }

    async fn voices(&self) -> Result<Vec<ProviderVoice>, ProviderError> {
        let builder = self.api.get("/v1/voices");
        let response = self.api.send(builder, http::parse_detail_error).await?;
        let parsed: wire::VoicesResponse = self.api.json(response).await?;
        let label = |v: &wire::Voice, name: &str| v.labels.get(name).and_then(|l| l.as_str()).map(str::to_owned);
        Ok(parsed
            .voices
            .into_iter()
            .map(|v| ProviderVoice {
                gender: label(&v, "gender"),
                language: label(&v, "language").or_else(|| label(&v, "accent")),
                name: v.name.clone().unwrap_or_else(|| v.voice_id.clone()),
                description: v.description.clone(),
                id: v.voice_id,
            })
            .collect())
    }
}

/// Turns the NDJSON of `/stream/with-timestamps` into audio and word events. Characters are
/// folded into words at whitespace; a word may span two chunks.
fn with_timestamps(body: EventStream) -> EventStream {
    // The word in progress outlives the line stream: the last one is flushed when it ends.
    let word = std::sync::Arc::new(std::sync::Mutex::new(None::<WordTiming>));
    let last = word.clone();
    let events = http::lines(ID, body).map(move |line| -> Vec<Result<SynthesisEvent, ProviderError>> {
        let interrupted = |detail: String| ProviderError::Interrupted { provider: ID.to_owned(), detail };
        let chunk: wire::TimestampChunk = match line.and_then(|l| {
            serde_json::from_str(&l)
                .map_err(|e| interrupted(http::sanitize(&format!("unreadable timestamp chunk: {e}"))))
        }) {
            Ok(chunk) => chunk,
            Err(err) => return vec![Err(err)],
        };
        if let Some(detail) = &chunk.detail {
            let text = |name: &str| detail[name].as_str().map(str::to_owned);
            let message = text("message").unwrap_or_default();
            return vec![Err(http::vendor_error(ID, 502, text("status"), &message, None))];
        }
        let mut out = Vec::new();
        if let Some(audio) = chunk.audio_base64.filter(|a| !a.is_empty()) {
            out.push(
                base64::engine::general_purpose::STANDARD
                    .decode(audio)
                    .map(|b| SynthesisEvent::Audio(Bytes::from(b)))
                    .map_err(|e| interrupted(format!("bad base64 audio: {e}"))),
            );
        }
        if let Some(alignment) = chunk.alignment {
            let mut current = word.lock().unwrap_or_else(|p| p.into_inner());
            let words = fold_words(&mut current, &alignment);
            if !words.is_empty() {
                out.push(Ok(SynthesisEvent::Words(words)));
            }
        }
        out
    });
    let flush = futures::stream::once(async move {
        let pending = last.lock().unwrap_or_else(|p| p.into_inner()).take();
        pending.map(|w| Ok(SynthesisEvent::Words(vec![w])))
    })
    .filter_map(futures::future::ready);
    Box::pin(events.flat_map(futures::stream::iter).chain(flush))
}

/// Adds characters to the word in progress; returns the words they completed.
fn fold_words(current: &mut Option<WordTiming>, alignment: &wire::Alignment) -> Vec<WordTiming> {
    let mut done = Vec::new();
    let times = alignment.character_start_times_seconds.iter().zip(&alignment.character_end_times_seconds);
    for (ch, (start, end)) in alignment.characters.iter().zip(times) {
        if ch.trim().is_empty() {
            done.extend(current.take());
            continue;
        }
        match current {
            Some(word) => {
                word.text.push_str(ch);
                word.end = *end;
            }
            None => *current = Some(WordTiming { text: ch.clone(), start: *start, end: *end }),
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_fold_into_words_across_chunks() {
        let chunk = |chars: &str, t0: f64| wire::Alignment {
            characters: chars.chars().map(String::from).collect(),
            character_start_times_seconds: (0..chars.len()).map(|i| t0 + i as f64 * 0.1).collect(),
            character_end_times_seconds: (0..chars.len()).map(|i| t0 + (i + 1) as f64 * 0.1).collect(),
        };
        let mut word = None;
        let first = fold_words(&mut word, &chunk("Hi the", 0.0));
        assert_eq!(first, vec![WordTiming { text: "Hi".into(), start: 0.0, end: 0.2 }]);
        let second = fold_words(&mut word, &chunk("re you", 0.6));
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].text, "there");
        assert!((second[0].start - 0.3).abs() < 1e-9 && (second[0].end - 0.8).abs() < 1e-9);
        assert_eq!(word.map(|w| w.text), Some("you".to_owned()));
    }

    #[test]
    fn output_formats_follow_the_vendor_naming() {
        use crate::domain::audio::AudioSpec;
        let spec = |format, sample_rate, bitrate_kbps| AudioSpec { format, sample_rate, bitrate_kbps };
        assert_eq!(wire::output_format(spec(AudioFormat::Mp3, 44_100, None)).as_deref(), Some("mp3_44100_128"));
        assert_eq!(wire::output_format(spec(AudioFormat::Mp3, 44_100, Some(192))).as_deref(), Some("mp3_44100_192"));
        assert_eq!(wire::output_format(spec(AudioFormat::Pcm, 16_000, None)).as_deref(), Some("pcm_16000"));
        assert_eq!(wire::output_format(spec(AudioFormat::Ulaw, 8_000, None)).as_deref(), Some("ulaw_8000"));
        assert_eq!(wire::output_format(spec(AudioFormat::Wav, 8_000, None)), None);
    }
}

#[cfg(test)]
mod stream_tests {
    use super::*;

    /// NDJSON as `/stream/with-timestamps` sends it, split at awkward places.
    #[tokio::test]
    async fn ndjson_becomes_audio_and_words() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let line1 = format!(
            "{{\"audio_base64\":\"{}\",\"alignment\":{{\"characters\":[\"H\",\"i\",\" \",\"y\"],\"character_start_times_seconds\":[0.0,0.1,0.2,0.3],\"character_end_times_seconds\":[0.1,0.2,0.3,0.4]}},\"normalized_alignment\":null}}\n",
            b64("first")
        );
        let line2 = format!(
            "{{\"audio_base64\":\"{}\",\"alignment\":{{\"characters\":[\"o\",\"u\"],\"character_start_times_seconds\":[0.4,0.5],\"character_end_times_seconds\":[0.5,0.6]}}}}",
            b64("second")
        );
        let all = format!("{line1}\n{line2}");
        let (a, b) = all.split_at(17);
        let chunks: Vec<Result<SynthesisEvent, ProviderError>> = vec![
            Ok(SynthesisEvent::Audio(Bytes::from(a.to_owned()))),
            Ok(SynthesisEvent::Audio(Bytes::from(b.to_owned()))),
        ];
        let events: Vec<_> = with_timestamps(Box::pin(futures::stream::iter(chunks))).collect().await;
        let events: Vec<SynthesisEvent> = events.into_iter().map(|e| e.unwrap()).collect();
        assert_eq!(
            events,
            vec![
                SynthesisEvent::Audio(Bytes::from_static(b"first")),
                SynthesisEvent::Words(vec![WordTiming { text: "Hi".into(), start: 0.0, end: 0.2 }]),
                SynthesisEvent::Audio(Bytes::from_static(b"second")),
                SynthesisEvent::Words(vec![WordTiming { text: "you".into(), start: 0.3, end: 0.6 }]),
            ]
        );
    }

    #[tokio::test]
    async fn an_error_inside_the_stream_ends_it_as_an_error() {
        let line = r#"{"detail": {"status": "quota_exceeded", "message": "Workspace acme is out of credits"}}"#;
        let chunks: Vec<Result<SynthesisEvent, ProviderError>> =
            vec![Ok(SynthesisEvent::Audio(Bytes::from(format!("{line}\n"))))];
        let events: Vec<_> = with_timestamps(Box::pin(futures::stream::iter(chunks))).collect().await;
        assert!(
            matches!(events.as_slice(), [Err(ProviderError::Unavailable { code: Some(code), .. })] if code == "quota_exceeded"),
            "{events:?}"
        );
    }

    #[tokio::test]
    async fn a_malformed_line_interrupts_the_stream() {
        let chunks: Vec<Result<SynthesisEvent, ProviderError>> =
            vec![Ok(SynthesisEvent::Audio(Bytes::from_static(b"{not json}\n")))];
        let events: Vec<_> = with_timestamps(Box::pin(futures::stream::iter(chunks))).collect().await;
        assert!(matches!(events.as_slice(), [Err(ProviderError::Interrupted { .. })]));
    }
}
