//! Gemini API speech generation: `POST /v1beta/models/{model}:streamGenerateContent?alt=sse`
//! with `responseModalities: ["AUDIO"]`, one voice or two speakers, and the audio read from each
//! server-sent event as it arrives. Auth is the `x-goog-api-key` header (never the `?key=`
//! query, which would put the key in URLs that errors and logs can show).
//!
//! Wire facts, from `/work/shared/reference` §7 (Gemini TTS 2026), Google's speech-generation
//! guide (ai.google.dev `gemini-api/docs/speech-generation`, and the Gemini Enterprise "Generate
//! speech with Gemini TTS" page for the 3.8 models) and Firebase's `SpeechMetadata` reference:
//! - Request: `contents[0].parts[].text`, `generationConfig.responseModalities ["AUDIO"]`,
//!   `generationConfig.speechConfig.voiceConfig.prebuiltVoiceConfig.voiceName`, optional
//!   `speechConfig.languageCode`; two speakers as `speechConfig.multiSpeakerVoiceConfig
//!   .speakerVoiceConfigs [{speaker, voiceConfig}]` (exactly two; giving it together with
//!   `voiceConfig` is refused as "mutually exclusive").
//! - The 3.8 models read the text verbatim: a style goes in `parts[].speech_metadata.style`, a
//!   dialogue is one part per turn with `speech_metadata.speaker` naming a configured speaker.
//!   Earlier models take the style as a natural-language direction before the text
//!   ("Say cheerfully: ...") and a dialogue as `Speaker: line` lines.
//! - Each event is a `GenerateContentResponse`: `candidates[0].content.parts[].inlineData
//!   {mimeType, data}` (base64). `audio/L16;codec=pcm;rate=24000` is headerless little-endian
//!   16-bit mono PCM (Google's own samples write it straight into a WAV as s16le); the 3.8
//!   models may answer a complete `audio/wav` instead. `usageMetadata {promptTokenCount,
//!   candidatesTokenCount}` is cumulative and repeated. A blocked prompt has
//!   `promptFeedback.blockReason`; a stopped candidate `finishReason` (`SAFETY`, `OTHER`...).
//! - Errors: `{"error": {"code", "message", "status", "details"}}` (400 `INVALID_ARGUMENT`, 403
//!   `PERMISSION_DENIED`, 404 `NOT_FOUND`, 429 `RESOURCE_EXHAUSTED`), also as an event's `error`.
//! - The 30 prebuilt voices and their characters are the guide's "voice options" table.

mod wire;

use std::{borrow::Cow, collections::VecDeque};

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use futures::{stream::BoxStream, StreamExt};
use secrecy::SecretString;

use super::{
    http::{self, Api, Auth, Expect, Transport},
    Capabilities, DialogueRequest, DialogueSupport, EventStream, ModelInfo, NativeFormat, ProviderError, ProviderKey,
    ProviderVoice, SpeechProvider, SynthesisEvent, SynthesisRequest, TokenUsage,
};
use crate::domain::audio::{AudioFormat, AudioSpec};

pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";
const ID: &str = "gemini";
/// Every model answers 24 kHz mono s16 PCM; the gateway transcodes it to anything else.
const RATE: u32 = 24_000;
/// Longest text per request. The speech models' output is bounded (16k audio tokens at 25 a
/// second, about 11 minutes); 5,000 characters are well inside it.
const MAX_INPUT: usize = 5_000;
/// The labels of a two-speaker dialogue: the adapter's own, never caller text.
const SPEAKERS: [&str; 2] = ["Speaker1", "Speaker2"];
/// `finishReason`s that mean the content was refused.
const BLOCKED: [&str; 7] =
    ["SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY", "LANGUAGE"];

/// How a model takes a style and a dialogue's speakers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prompting {
    /// The 3.8 models: `speech_metadata` beside the verbatim text.
    Metadata,
    /// Earlier models: a direction before the text, `Speaker: line` lines.
    Directed,
}

/// The models, the default first.
const MODELS: [(&str, Prompting); 5] = [
    ("gemini-3.8-flash-tts", Prompting::Metadata),
    ("gemini-3.8-flash-lite-tts", Prompting::Metadata),
    ("gemini-3.1-flash-tts-preview", Prompting::Directed),
    ("gemini-2.5-flash-preview-tts", Prompting::Directed),
    ("gemini-2.5-pro-preview-tts", Prompting::Directed),
];

pub struct Gemini {
    api: Api,
    /// The operator's key, to scrub from errors reported inside a stream.
    key: ProviderKey,
    capabilities: Capabilities,
}

impl Gemini {
    pub fn new(base_url: Option<&str>, api_key: SecretString, transport: Transport) -> Self {
        let models: Vec<String> = MODELS.iter().map(|(id, _)| (*id).to_owned()).collect();
        let capabilities = Capabilities {
            takes_api_key: true,
            models: models
                .iter()
                .map(|id| ModelInfo { id: id.clone(), max_characters: MAX_INPUT, supports_instructions: true })
                .collect(),
            default_model: MODELS[0].0.to_owned(),
            formats: vec![NativeFormat::new(AudioFormat::Pcm, &[RATE], &[])],
            streaming: true,
            native_timestamps: false,
            timestamp_formats: Vec::new(),
            native_dialogue: Some(DialogueSupport { models, max_voices: 2, max_characters: MAX_INPUT }),
            voices_listable: true,
            speed_range: None,
            provider_options: Vec::new(),
        };
        Self {
            api: Api::new(
                ID,
                base_url.unwrap_or(DEFAULT_BASE_URL),
                Some(api_key.clone()),
                Auth::Header("x-goog-api-key"),
                transport,
            ),
            key: ProviderKey::new(api_key),
            capabilities,
        }
    }

    /// The declared model `id` names (only a declared model reaches the URL path).
    fn model(&self, id: &str) -> Result<(&'static str, Prompting), ProviderError> {
        MODELS.iter().copied().find(|(model, _)| *model == id).ok_or_else(|| ProviderError::Rejected {
            provider: ID.to_owned(),
            status: 404,
            code: None,
            detail: format!("{ID} has no model {:?}", crate::domain::text::for_record(id.to_owned())),
        })
    }

    fn check_output(&self, output: AudioSpec) -> Result<(), ProviderError> {
        if output.format == AudioFormat::Pcm && output.sample_rate == RATE {
            Ok(())
        } else {
            Err(self.api.unsupported(output.format))
        }
    }

    /// Sends `body` to `model`'s streaming method; the events as audio.
    async fn stream(
        &self,
        model: &str,
        body: &wire::Request<'_>,
        credential: Option<&ProviderKey>,
    ) -> Result<EventStream, ProviderError> {
        let builder =
            self.api.post(&format!("/v1beta/models/{model}:streamGenerateContent")).query(&[("alt", "sse")]).json(body);
        let response = self.api.send_as(builder, credential, wire::parse_error).await?;
        let secret = credential.cloned().unwrap_or_else(|| self.key.clone());
        Ok(events(self.api.stream(response, Expect::Structured)?, secret))
    }
}

/// The request body: `parts` in one content, audio only, with `speech_config`.
fn request_body<'a>(
    parts: Vec<wire::Part<'a>>,
    speech_config: wire::SpeechConfig<'a>,
    seed: Option<u64>,
) -> wire::Request<'a> {
    wire::Request {
        contents: [wire::Content { parts }],
        generation_config: wire::GenerationConfig { response_modalities: ["AUDIO"], speech_config, seed },
    }
}

/// A dialogue line on one line of a `Speaker: line` script: line breaks inside it become spaces,
/// so that it cannot start a line of its own (and claim another speaker).
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') { ' ' } else { c }).collect()
}

#[async_trait]
impl SpeechProvider for Gemini {
    fn id(&self) -> &str {
        ID
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn synthesize(&self, request: SynthesisRequest) -> Result<EventStream, ProviderError> {
        let (model, prompting) = self.model(&request.model)?;
        self.check_output(request.output)?;
        let style = request.instructions.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let part = match (style, prompting) {
            (None, _) => wire::Part { text: Cow::Borrowed(&request.text), speech_metadata: None },
            (Some(style), Prompting::Metadata) => wire::Part {
                text: Cow::Borrowed(&request.text),
                speech_metadata: Some(wire::SpeechMetadata { style: Some(style), speaker: None }),
            },
            (Some(style), Prompting::Directed) => wire::Part {
                // "Say cheerfully: <text>": the direction's own full stop or colon gives way.
                text: Cow::Owned(format!(
                    "{}: {}",
                    style.trim_end_matches(|c: char| matches!(c, ':' | '.') || c.is_whitespace()),
                    request.text
                )),
                speech_metadata: None,
            },
        };
        let speech_config = wire::SpeechConfig {
            voice_config: Some(wire::VoiceConfig::prebuilt(&request.voice)),
            multi_speaker_voice_config: None,
            language_code: request.language.as_deref(),
        };
        let body = request_body(vec![part], speech_config, request.seed);
        self.stream(model, &body, request.credential.as_ref()).await
    }

    async fn dialogue(&self, request: DialogueRequest) -> Result<EventStream, ProviderError> {
        let (model, prompting) = self.model(&request.model)?;
        self.check_output(request.output)?;
        let mut voices: Vec<&str> = Vec::new();
        for (voice, _) in &request.lines {
            if !voices.contains(&voice.as_str()) {
                voices.push(voice);
            }
        }
        let rejected =
            |detail: String| ProviderError::Rejected { provider: ID.to_owned(), status: 400, code: None, detail };
        let label = |voice: &str| SPEAKERS[usize::from(voices.first() != Some(&voice))];
        let (parts, speech_config) = match voices.as_slice() {
            [] => return Err(rejected("a dialogue needs at least one line".to_owned())),
            // One voice for every line: a single-speaker request.
            [voice] => {
                let text = request.lines.iter().map(|(_, text)| text.as_str()).collect::<Vec<_>>().join("\n");
                let part = wire::Part { text: Cow::Owned(text), speech_metadata: None };
                let config = wire::SpeechConfig {
                    voice_config: Some(wire::VoiceConfig::prebuilt(voice)),
                    multi_speaker_voice_config: None,
                    language_code: request.language.as_deref(),
                };
                (vec![part], config)
            }
            [first, second] => {
                let parts = match prompting {
                    Prompting::Metadata => request
                        .lines
                        .iter()
                        .map(|(voice, text)| wire::Part {
                            text: Cow::Borrowed(text.as_str()),
                            speech_metadata: Some(wire::SpeechMetadata { style: None, speaker: Some(label(voice)) }),
                        })
                        .collect(),
                    Prompting::Directed => {
                        let script: Vec<String> = request
                            .lines
                            .iter()
                            .map(|(voice, text)| format!("{}: {}", label(voice), one_line(text)))
                            .collect();
                        vec![wire::Part { text: Cow::Owned(script.join("\n")), speech_metadata: None }]
                    }
                };
                let speakers = [(SPEAKERS[0], *first), (SPEAKERS[1], *second)]
                    .into_iter()
                    .map(|(speaker, voice)| wire::SpeakerVoiceConfig {
                        speaker,
                        voice_config: wire::VoiceConfig::prebuilt(voice),
                    })
                    .collect();
                let config = wire::SpeechConfig {
                    voice_config: None,
                    multi_speaker_voice_config: Some(wire::MultiSpeakerVoiceConfig { speaker_voice_configs: speakers }),
                    language_code: request.language.as_deref(),
                };
                (parts, config)
            }
            more => return Err(rejected(format!("{ID} voices at most two speakers, not {}", more.len()))),
        };
        let body = request_body(parts, speech_config, request.seed);
        self.stream(model, &body, request.credential.as_ref()).await
    }

    /// The prebuilt voices (the API has no catalogue of them to ask).
    async fn voices(&self) -> Result<Vec<ProviderVoice>, ProviderError> {
        Ok(wire::VOICES
            .iter()
            .map(|(name, character)| ProviderVoice {
                id: (*name).to_owned(),
                name: (*name).to_owned(),
                gender: None,
                language: None,
                description: Some((*character).to_owned()),
            })
            .collect())
    }
}

/// What the events of one call have said so far.
struct Reader {
    lines: BoxStream<'static, Result<String, ProviderError>>,
    /// Whether any audio has been passed on.
    audio: bool,
    /// The latest (cumulative) token counts.
    tokens: Option<TokenUsage>,
    ready: VecDeque<Result<SynthesisEvent, ProviderError>>,
    done: bool,
    /// The key the call carried, scrubbed from errors the vendor reports inside the stream.
    secret: ProviderKey,
}

/// The SSE body as audio, a warning where the model stopped early, and the call's tokens once at
/// the end. The first item is audio or an error (the service decides the status by it); a
/// stream with no audio at all is an error.
fn events(body: EventStream, secret: ProviderKey) -> EventStream {
    let reader = Reader {
        lines: http::lines(ID, body),
        audio: false,
        tokens: None,
        ready: VecDeque::new(),
        done: false,
        secret,
    };
    Box::pin(futures::stream::unfold(reader, |mut r| async move {
        loop {
            if let Some(item) = r.ready.pop_front() {
                return Some((item, r));
            }
            if r.done {
                return None;
            }
            match r.lines.next().await {
                None => {
                    r.done = true;
                    if r.audio {
                        r.ready.extend(r.tokens.map(|t| Ok(SynthesisEvent::Tokens(t))));
                    } else {
                        r.ready.push_back(Err(invalid("the stream ended without any audio".to_owned())));
                    }
                }
                Some(Err(err)) => r.fail(err),
                Some(Ok(line)) => {
                    // `event:`, `id:` and comment lines carry nothing of ours.
                    let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<wire::Chunk>(data) {
                        Ok(chunk) => r.read(chunk),
                        Err(e) => r.fail(invalid(http::sanitize(&format!("unreadable event: {e}")))),
                    }
                }
            }
        }
    }))
}

fn invalid(detail: String) -> ProviderError {
    ProviderError::Invalid { provider: ID.to_owned(), detail }
}

impl Reader {
    /// Ends the stream with `err`, after the tokens of a call that produced audio.
    fn fail(&mut self, err: ProviderError) {
        self.done = true;
        if self.audio {
            self.ready.extend(self.tokens.take().map(|t| Ok(SynthesisEvent::Tokens(t))));
        }
        self.ready.push_back(Err(err));
    }

    fn read(&mut self, chunk: wire::Chunk) {
        if let Some(error) = chunk.error {
            let status = error.http_status().unwrap_or(500);
            let mut message = error.message.unwrap_or_default();
            if !self.secret.expose().is_empty() {
                message = message.replace(self.secret.expose(), "[redacted]");
            }
            return self.fail(http::vendor_error(ID, status, error.status, &message, None));
        }
        if let Some(usage) = chunk.usage_metadata {
            let seen = self.tokens.unwrap_or_default();
            self.tokens = Some(TokenUsage {
                input: seen.input.max(usage.prompt_token_count),
                output: seen.output.max(usage.candidates_token_count),
            });
        }
        if let Some(reason) = chunk.prompt_feedback.and_then(|f| f.block_reason) {
            let detail = format!("the prompt was blocked ({reason})");
            return self.fail(http::vendor_error(ID, 400, Some(reason), &detail, None));
        }
        let Some(candidate) = chunk.candidates.into_iter().next() else {
            return;
        };
        for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
            let Some(inline) = part.inline_data else {
                continue;
            };
            match audio(&inline) {
                Ok(pcm) if pcm.is_empty() => {}
                Ok(pcm) => {
                    self.audio = true;
                    self.ready.push_back(Ok(SynthesisEvent::Audio(pcm)));
                }
                Err(detail) => return self.fail(invalid(detail)),
            }
        }
        match candidate.finish_reason.as_deref() {
            None | Some("STOP" | "FINISH_REASON_UNSPECIFIED") => {}
            Some("MAX_TOKENS") if self.audio => self.ready.push_back(Ok(SynthesisEvent::Warning(
                "the model stopped at its output limit: the audio may end before the text does".to_owned(),
            ))),
            Some(reason) if BLOCKED.contains(&reason) => {
                let detail = format!("the model stopped: the content was blocked ({reason})");
                self.fail(http::vendor_error(ID, 400, Some(reason.to_owned()), &detail, None));
            }
            Some(reason) => {
                let reason = http::sanitize(reason);
                let what = if self.audio { "stopped before the end of the audio" } else { "answered no audio" };
                self.fail(invalid(format!("the model {what} (finishReason {reason})")));
            }
        }
    }
}

/// One `inlineData` as 24 kHz mono s16le PCM, by its `mimeType`; why not, otherwise.
fn audio(inline: &wire::InlineData) -> Result<Bytes, String> {
    let mut params = inline.mime_type.split(';').map(|p| p.trim().to_ascii_lowercase());
    let media = params.next().unwrap_or_default();
    let params: Vec<(String, String)> = params
        .filter_map(|p| p.split_once('=').map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned())))
        .collect();
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let shown = || http::sanitize(&inline.mime_type);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(inline.data.trim())
        .map_err(|e| format!("audio that is not base64 ({e})"))?;
    match media.as_str() {
        "audio/l16" | "audio/pcm" => {
            if param("rate") != Some("24000") {
                return Err(format!("audio as {:?} where 24000 Hz PCM was expected", shown()));
            }
            if param("channels").is_some_and(|c| c != "1") || param("codec").is_some_and(|c| c != "pcm") {
                return Err(format!("audio as {:?} where mono PCM was expected", shown()));
            }
            Ok(Bytes::from(bytes))
        }
        "audio/wav" | "audio/wave" | "audio/x-wav" | "audio/vnd.wave" => {
            wav_data(&bytes).map(Bytes::copy_from_slice).map_err(|e| format!("a WAV reply: {e}"))
        }
        _ => Err(format!("audio as {:?} where PCM or WAV was expected", shown())),
    }
}

/// The samples of a RIFF/WAVE reply, once its `fmt ` chunk says 16-bit mono PCM at 24 kHz.
fn wav_data(wav: &[u8]) -> Result<&[u8], String> {
    let file = crate::audio::WavFile::parse(wav)?;
    file.expect((crate::audio::FORMAT_PCM, 16), crate::audio::AudioSpec::pcm(RATE))?;
    Ok(&wav[file.data])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(rate: u32, channels: u16, bits: u16, data: &[u8], data_size: Option<u32>) -> Vec<u8> {
        let mut out = b"RIFF\0\0\0\0WAVE".to_vec();
        out.extend_from_slice(b"LIST\x03\0\0\0abc\0");
        out.extend_from_slice(b"fmt \x10\0\0\0");
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
        out.extend_from_slice(&(channels * 2).to_le_bytes());
        out.extend_from_slice(&bits.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_size.unwrap_or(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn wav_replies_are_stripped_after_their_format_is_checked() {
        let samples = [1u8, 2, 3, 4, 5, 6];
        assert_eq!(wav_data(&wav(24_000, 1, 16, &samples, None)), Ok(&samples[..]));
        assert_eq!(wav_data(&wav(24_000, 1, 16, &samples, Some(u32::MAX))), Ok(&samples[..]));
        // A stated size shorter than the rest: trailing chunks are not samples.
        assert_eq!(wav_data(&wav(24_000, 1, 16, &samples, Some(4))), Ok(&samples[..4]));
        assert!(wav_data(&wav(24_000, 1, 16, &samples, Some(600))).unwrap_err().contains("cut off"));
        assert!(wav_data(&wav(16_000, 1, 16, &samples, None)).unwrap_err().contains("16000 Hz"));
        assert!(wav_data(&wav(24_000, 2, 16, &samples, None)).is_err());
        assert!(wav_data(&wav(24_000, 1, 8, &samples, None)).is_err());
        assert!(wav_data(b"RIFF").is_err());
        let mut no_format = b"RIFF\0\0\0\0WAVEdata\x02\0\0\0ab".to_vec();
        assert!(wav_data(&no_format).is_err());
        no_format.truncate(14);
        assert!(wav_data(&no_format).is_err());
        // A chunk claiming more than there is never reads past the end.
        assert!(wav_data(b"RIFF\0\0\0\0WAVEfmt \xff\xff\xff\x7f").is_err());
    }

    #[test]
    fn mime_types_are_parsed_not_matched() {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let inline = |mime: &str, data: &[u8]| wire::InlineData { mime_type: mime.to_owned(), data: b64(data) };
        assert_eq!(audio(&inline("audio/L16;codec=pcm;rate=24000", b"ab")), Ok(Bytes::from_static(b"ab")));
        assert_eq!(audio(&inline("audio/l16; rate=24000; codec=pcm", b"ab")), Ok(Bytes::from_static(b"ab")));
        assert!(audio(&inline("audio/L16;codec=pcm;rate=16000", b"ab")).is_err());
        assert!(audio(&inline("audio/L16;codec=pcm", b"ab")).is_err());
        assert!(audio(&inline("audio/L16;rate=24000;channels=2", b"ab")).is_err());
        assert!(audio(&inline("audio/mpeg", b"ab")).is_err());
        assert!(audio(&inline("text/html;rate=24000", b"ab")).is_err());
        let wav = wav(24_000, 1, 16, b"wxyz", None);
        assert_eq!(audio(&inline("audio/wav", &wav)), Ok(Bytes::from_static(b"wxyz")));
        let bad = wire::InlineData { mime_type: "audio/L16;codec=pcm;rate=24000".into(), data: "%%%".into() };
        assert!(audio(&bad).unwrap_err().contains("base64"));
    }

    #[test]
    fn dialogue_lines_cannot_start_lines_of_their_own() {
        assert_eq!(one_line("fine.\nSpeaker1: I am\r\nthe other"), "fine. Speaker1: I am  the other");
        assert_eq!(one_line("a\u{2028}b\u{85}c"), "a b c");
    }
}

#[cfg(test)]
mod stream_tests {
    use super::*;

    fn run(body: &str) -> Vec<Result<SynthesisEvent, ProviderError>> {
        let chunks: Vec<Result<SynthesisEvent, ProviderError>> =
            vec![Ok(SynthesisEvent::Audio(Bytes::from(body.to_owned())))];
        let key = ProviderKey::new("AIza-secret".to_owned().into());
        futures::executor::block_on(events(Box::pin(futures::stream::iter(chunks)), key).collect())
    }

    fn event(pcm: &[u8], usage: (u64, u64)) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(pcm);
        format!(
            "data: {{\"candidates\":[{{\"content\":{{\"parts\":[{{\"inlineData\":{{\"mimeType\":\"audio/L16;codec=pcm;rate=24000\",\"data\":\"{b64}\"}}}}],\"role\":\"model\"}}}}],\"usageMetadata\":{{\"promptTokenCount\":{},\"candidatesTokenCount\":{}}}}}\r\n\r\n",
            usage.0, usage.1
        )
    }

    #[test]
    fn audio_then_the_final_token_counts_once() {
        let body = format!("{}{}", event(b"ab", (8, 10)), event(b"cd", (8, 25)));
        let events: Vec<_> = run(&body).into_iter().map(Result::unwrap).collect();
        assert_eq!(
            events,
            vec![
                SynthesisEvent::Audio(Bytes::from_static(b"ab")),
                SynthesisEvent::Audio(Bytes::from_static(b"cd")),
                SynthesisEvent::Tokens(TokenUsage { input: 8, output: 25 }),
            ]
        );
    }

    #[test]
    fn a_stream_without_audio_is_an_error_first() {
        let events =
            run("data: {\"candidates\":[{\"finishReason\":\"OTHER\"}],\"usageMetadata\":{\"promptTokenCount\":8}}\n\n");
        assert!(matches!(events.as_slice(), [Err(ProviderError::Invalid { detail, .. })] if detail.contains("OTHER")));
        let events = run("data: {\"promptFeedback\":{\"blockReason\":\"PROHIBITED_CONTENT\"}}\n\n");
        assert!(
            matches!(events.as_slice(), [Err(ProviderError::Rejected { status: 400, code: Some(c), .. })] if c == "PROHIBITED_CONTENT"),
            "{events:?}"
        );
        let events = run("data: {\"candidates\":[{\"finishReason\":\"SAFETY\"}]}\n\n");
        assert!(matches!(events.as_slice(), [Err(ProviderError::Rejected { code: Some(c), .. })] if c == "SAFETY"));
        assert!(matches!(run("").as_slice(), [Err(ProviderError::Invalid { .. })]));
        assert!(matches!(run("data: {\"candidates\":[]}\n\n").as_slice(), [Err(ProviderError::Invalid { .. })]));
    }

    #[test]
    fn an_error_event_after_audio_ends_the_stream() {
        let body = format!(
            "{}data: {{\"error\":{{\"code\":503,\"message\":\"Overloaded for key AIza-secret\",\"status\":\"UNAVAILABLE\"}}}}\n\n{}",
            event(b"ab", (3, 4)),
            event(b"never", (3, 9))
        );
        let events = run(&body);
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(events[0].as_ref().ok(), Some(&SynthesisEvent::Audio(Bytes::from_static(b"ab"))));
        assert_eq!(events[1].as_ref().ok(), Some(&SynthesisEvent::Tokens(TokenUsage { input: 3, output: 4 })));
        assert!(
            matches!(&events[2], Err(ProviderError::Unavailable { status: Some(503), code: Some(c), detail, .. })
                if c == "UNAVAILABLE" && !detail.contains("AIza-secret")),
            "{events:?}"
        );
    }

    #[test]
    fn garbage_and_early_stops_are_reported() {
        let events = run(&format!("{}data: {{not json\n\n", event(b"ab", (1, 1))));
        assert!(matches!(events.last(), Some(Err(ProviderError::Invalid { .. }))), "{events:?}");
        let stopped = "data: {\"candidates\":[{\"finishReason\":\"MAX_TOKENS\"}]}\n\n";
        let events = run(&format!("{}{stopped}", event(b"ab", (1, 1))));
        assert!(matches!(events[1], Ok(SynthesisEvent::Warning(_))), "{events:?}");
        assert!(matches!(events[2], Ok(SynthesisEvent::Tokens(_))), "{events:?}");
    }
}
