//! Azure's wire shapes: the SSML body, the `X-Microsoft-OutputFormat` names and the voice list.

use crate::domain::audio::{AudioFormat, AudioSpec};

/// Azure's name for a sample rate inside an output format: `24khz`, `22050hz`.
fn rate_name(rate: u32) -> Option<&'static str> {
    Some(match rate {
        8_000 => "8khz",
        16_000 => "16khz",
        22_050 => "22050hz",
        24_000 => "24khz",
        44_100 => "44100hz",
        48_000 => "48khz",
        _ => return None,
    })
}

/// The MP3 bitrates (kbit/s) Azure offers at each rate, the first being the one asked for when
/// the caller names none.
pub fn mp3_bitrates(rate: u32) -> &'static [u32] {
    match rate {
        16_000 => &[64, 32, 128],
        24_000 => &[96, 48, 160],
        48_000 => &[192, 96],
        _ => &[],
    }
}

/// The `X-Microsoft-OutputFormat` value for `spec`, or `None` when Azure has no such format.
pub fn output_format(spec: AudioSpec) -> Option<String> {
    let rate = spec.sample_rate;
    match spec.format {
        AudioFormat::Pcm => Some(format!("raw-{}-16bit-mono-pcm", rate_name(rate)?)),
        AudioFormat::Wav => Some(format!("riff-{}-16bit-mono-pcm", rate_name(rate)?)),
        AudioFormat::Mp3 => {
            let offered = mp3_bitrates(rate);
            let bitrate = match spec.bitrate_kbps {
                Some(b) => offered.iter().copied().find(|o| *o == b)?,
                None => *offered.first()?,
            };
            Some(format!("audio-{}-{bitrate}kbitrate-mono-mp3", rate_name(rate)?))
        }
        AudioFormat::Opus if matches!(rate, 16_000 | 24_000 | 48_000) => {
            Some(format!("ogg-{}-16bit-mono-opus", rate_name(rate)?))
        }
        AudioFormat::Ulaw if rate == 8_000 => Some("raw-8khz-8bit-mono-mulaw".to_owned()),
        AudioFormat::Alaw if rate == 8_000 => Some("raw-8khz-8bit-mono-alaw".to_owned()),
        _ => None,
    }
}

pub use crate::providers::ssml::escape;

/// The SSML document for one request. Every value is escaped here; the adapter has already
/// refused voice names and languages that are not plain identifiers.
pub fn ssml(language: &str, voice: &str, rate: Option<&str>, text: &str) -> String {
    let body = escape(text);
    let inner = match rate {
        Some(rate) => format!("<prosody rate=\"{}\">{body}</prosody>", escape(rate)),
        None => body,
    };
    format!(
        "<speak version=\"1.0\" xmlns=\"http://www.w3.org/2001/10/synthesis\" xml:lang=\"{}\"><voice name=\"{}\">{inner}</voice></speak>",
        escape(language),
        escape(voice)
    )
}

/// `speed` (a multiplier, 1 = normal) as Azure's relative prosody rate: `1.25` → `+25.00%`.
pub fn prosody_rate(speed: f32) -> String {
    format!("{:+.2}%", (f64::from(speed) - 1.0) * 100.0)
}

/// One entry of `GET /cognitiveservices/voices/list`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Voice {
    pub short_name: String,
    pub display_name: Option<String>,
    pub local_name: Option<String>,
    pub gender: Option<String>,
    pub locale: Option<String>,
    pub locale_name: Option<String>,
    pub voice_type: Option<String>,
    #[serde(default)]
    pub style_list: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_azure_names() {
        let spec = |format, sample_rate, bitrate_kbps| AudioSpec { format, sample_rate, bitrate_kbps };
        let name = |s| output_format(s);
        assert_eq!(name(spec(AudioFormat::Pcm, 22_050, None)).as_deref(), Some("raw-22050hz-16bit-mono-pcm"));
        assert_eq!(name(spec(AudioFormat::Wav, 48_000, None)).as_deref(), Some("riff-48khz-16bit-mono-pcm"));
        assert_eq!(name(spec(AudioFormat::Mp3, 24_000, None)).as_deref(), Some("audio-24khz-96kbitrate-mono-mp3"));
        assert_eq!(
            name(spec(AudioFormat::Mp3, 16_000, Some(128))).as_deref(),
            Some("audio-16khz-128kbitrate-mono-mp3")
        );
        assert_eq!(name(spec(AudioFormat::Mp3, 48_000, Some(128))), None);
        assert_eq!(name(spec(AudioFormat::Opus, 24_000, None)).as_deref(), Some("ogg-24khz-16bit-mono-opus"));
        assert_eq!(name(spec(AudioFormat::Ulaw, 8_000, None)).as_deref(), Some("raw-8khz-8bit-mono-mulaw"));
        assert_eq!(name(spec(AudioFormat::Alaw, 16_000, None)), None);
        assert_eq!(name(spec(AudioFormat::Pcm, 32_000, None)), None);
        assert_eq!(name(spec(AudioFormat::Flac, 24_000, None)), None);
    }

    #[test]
    fn ssml_escapes_everything_the_caller_wrote() {
        let doc = ssml("en-US", "en-US-AvaNeural", Some("+25.00%"), "a < b & \"c\" 'd' </voice>\u{1}");
        assert_eq!(
            doc,
            "<speak version=\"1.0\" xmlns=\"http://www.w3.org/2001/10/synthesis\" xml:lang=\"en-US\">\
             <voice name=\"en-US-AvaNeural\"><prosody rate=\"+25.00%\">\
             a &lt; b &amp; &quot;c&quot; &apos;d&apos; &lt;/voice&gt; </prosody></voice></speak>"
        );
        assert!(ssml("en-US", "x\"><voice name=\"y", None, "t").contains("name=\"x&quot;&gt;&lt;voice name=&quot;y\""));
    }

    #[test]
    fn speed_becomes_a_relative_rate() {
        assert_eq!(prosody_rate(1.25), "+25.00%");
        assert_eq!(prosody_rate(0.5), "-50.00%");
        assert_eq!(prosody_rate(2.0), "+100.00%");
        assert_eq!(prosody_rate(1.0), "+0.00%");
    }
}
