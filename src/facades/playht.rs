//! PlayHT's request bodies, in both casings, and what they mean: formats, languages, the turns of
//! a two-speaker script.

use serde::Deserialize;
use utoipa::ToSchema;

use crate::{
    domain::{audio::AudioFormat, FieldError},
    service::synthesis::OutputRequest,
};

/// Turn prefixes of a two-speaker request that gives none.
pub(crate) const DEFAULT_PREFIXES: [&str; 2] = ["Voice 1:", "Voice 2:"];

/// `text`: one string, or a list of strings (`pyht` always sends a list).
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PlayText {
    One(String),
    Many(Vec<String>),
}

/// A TTS request in either casing: PlayHT v2 and WebSocket commands in snake_case, Play.ai v1
/// HTTP in camelCase. Unset options may be `null`; fields the gateway has no use for (quality,
/// guidance, temperature...) are accepted and ignored.
#[derive(Deserialize, ToSchema)]
pub struct PlayRequest {
    pub(crate) text: Option<PlayText>,
    /// A PlayHT voice id, mapped per `[facades.playht]`, or `provider:voice`.
    pub(crate) voice: Option<String>,
    /// `Play3.0-mini`, `PlayDialog`, ... Only the PlayDialog engines voice `voice_2`; the
    /// provider is chosen by the voice.
    pub(crate) voice_engine: Option<String>,
    /// Play.ai's name for `voice_engine`.
    pub(crate) model: Option<String>,
    /// `mp3`, `wav`, `ogg`, `flac`, `mulaw`, `raw` or `pcm`.
    #[serde(alias = "outputFormat")]
    pub(crate) output_format: Option<String>,
    #[serde(alias = "sampleRate")]
    pub(crate) sample_rate: Option<u32>,
    pub(crate) speed: Option<f32>,
    pub(crate) seed: Option<u64>,
    /// English names of languages: `english`, `french`, ...
    pub(crate) language: Option<String>,
    /// The second speaker of a PlayDialog request.
    #[serde(alias = "voice2")]
    pub(crate) voice_2: Option<String>,
    #[serde(alias = "turnPrefix")]
    pub(crate) turn_prefix: Option<String>,
    #[serde(alias = "turnPrefix2")]
    pub(crate) turn_prefix_2: Option<String>,
}

impl PlayRequest {
    pub(crate) fn text(&self) -> String {
        match &self.text {
            Some(PlayText::One(text)) => text.clone(),
            Some(PlayText::Many(parts)) => parts.join(" "),
            None => String::new(),
        }
    }
}

/// What a request leaves out means different things depending on where it came through.
#[derive(Clone, Copy)]
pub(crate) struct Surface<'a> {
    /// `wav` on PlayHT v2 and its HTTP inference URLs, `mp3` on Play.ai v1 and the WebSocket.
    pub(crate) format: AudioFormat,
    /// The engine of the inference URL the request came to.
    pub(crate) engine: Option<&'a str>,
}

pub(crate) const PLAYHT_V2: Surface<'static> = Surface { format: AudioFormat::Wav, engine: None };
pub(crate) const PLAYAI_V1: Surface<'static> = Surface { format: AudioFormat::Mp3, engine: None };

/// PlayHT's format names.
pub(crate) fn output(request: &PlayRequest, surface: Surface<'_>) -> Result<OutputRequest, FieldError> {
    let default_format = surface.format;
    let format = match request.output_format.as_deref() {
        None => None,
        Some(name @ ("mp3" | "wav" | "ogg" | "flac" | "mulaw" | "raw" | "pcm")) => AudioFormat::parse(name),
        Some(other) => {
            let message = format!("unknown format {other:?}; one of mp3, wav, ogg, flac, mulaw, raw, pcm");
            return Err(FieldError::new("output_format", message));
        }
    };
    Ok(OutputRequest {
        format,
        sample_rate: request.sample_rate,
        default_format,
        field: "output_format",
        ..OutputRequest::default()
    })
}

/// PlayHT names languages in English; providers take ISO 639-1 codes.
pub(crate) fn language_code(name: &str) -> Option<&'static str> {
    const CODES: [(&str, &str); 37] = [
        ("afrikaans", "af"),
        ("albanian", "sq"),
        ("amharic", "am"),
        ("arabic", "ar"),
        ("bengali", "bn"),
        ("bulgarian", "bg"),
        ("catalan", "ca"),
        ("croatian", "hr"),
        ("czech", "cs"),
        ("danish", "da"),
        ("dutch", "nl"),
        ("english", "en"),
        ("french", "fr"),
        ("galician", "gl"),
        ("german", "de"),
        ("greek", "el"),
        ("hebrew", "he"),
        ("hindi", "hi"),
        ("hungarian", "hu"),
        ("indonesian", "id"),
        ("italian", "it"),
        ("japanese", "ja"),
        ("korean", "ko"),
        ("malay", "ms"),
        ("mandarin", "zh"),
        ("polish", "pl"),
        ("portuguese", "pt"),
        ("russian", "ru"),
        ("serbian", "sr"),
        ("spanish", "es"),
        ("swedish", "sv"),
        ("tagalog", "tl"),
        ("thai", "th"),
        ("turkish", "tr"),
        ("ukrainian", "uk"),
        ("urdu", "ur"),
        ("xhosa", "xh"),
    ];
    CODES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, code)| *code)
}

/// Splits a two-speaker text at its turn prefixes: `(speaker, text)` in order, at most `max`
/// turns (`None` beyond). Text before the first prefix is the first speaker's. One pass over the
/// text per prefix.
pub(crate) fn dialogue_turns(text: &str, prefixes: [&str; 2], max: usize) -> Option<Vec<(usize, String)>> {
    let mut marks: Vec<(usize, usize, usize)> = prefixes
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.is_empty())
        .flat_map(|(who, p)| text.match_indices(p).map(move |(at, m)| (at, who, m.len())))
        .collect();
    marks.sort_unstable();
    let mut turns = Vec::new();
    let (mut speaker, mut from) = (0, 0);
    for (at, who, len) in marks.into_iter().chain(std::iter::once((text.len(), 0, 0))) {
        // A mark inside the previous prefix (the two prefixes overlap) is not a turn.
        if at < from {
            continue;
        }
        let said = text[from..at].trim();
        if !said.is_empty() {
            if turns.len() == max {
                return None;
            }
            turns.push((speaker, said.to_owned()));
        }
        (speaker, from) = (who, at + len);
    }
    Some(turns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialogue_text_splits_at_either_prefix() {
        let split = |text: &str, prefixes| dialogue_turns(text, prefixes, 10);
        let turns = split("Host 1: Hi there. Host 2: Hello! Host 1: Bye.", ["Host 1:", "Host 2:"]);
        let expected = vec![(0, "Hi there.".to_owned()), (1, "Hello!".to_owned()), (0, "Bye.".to_owned())];
        assert_eq!(turns, Some(expected));
        assert_eq!(split("No prefixes at all", ["A:", "B:"]), Some(vec![(0, "No prefixes at all".to_owned())]));
        assert_eq!(split("B: only second", ["A:", "B:"]), Some(vec![(1, "only second".to_owned())]));
        assert_eq!(split("A: B:", ["A:", "B:"]), Some(vec![]));
        // Overlapping prefixes: a match inside the previous prefix does not start a turn.
        assert_eq!(split("AA: x A: y", ["A:", "AA:"]), Some(vec![(1, "x".to_owned()), (0, "y".to_owned())]));
    }

    #[test]
    fn dialogue_turns_stop_at_the_limit() {
        let text = "A: x B: y ".repeat(6);
        assert_eq!(dialogue_turns(&text, ["A:", "B:"], 12).map(|t| t.len()), Some(12));
        assert_eq!(dialogue_turns(&text, ["A:", "B:"], 11), None);
    }
}
