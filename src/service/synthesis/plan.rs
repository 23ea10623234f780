//! Choosing how a requested output is made from what a provider offers: its own bytes, or its
//! PCM converted by the gateway. Pure functions of the capabilities and the request.

use crate::{
    audio,
    domain::{
        audio::{AudioFormat, AudioSpec, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE},
        FieldError,
    },
    providers::Capabilities,
};

/// The output a client asked for; unset parts get defaults.
#[derive(Debug, Clone)]
pub struct OutputRequest {
    pub format: Option<AudioFormat>,
    pub sample_rate: Option<u32>,
    pub bitrate_kbps: Option<u32>,
    /// The format when none is given (`wav` for Speechbase bodies, `mp3` for OpenAI ones).
    pub default_format: AudioFormat,
    /// The field the output came in (`output` or `response_format`), for error paths.
    pub field: &'static str,
}

impl Default for OutputRequest {
    fn default() -> Self {
        Self { format: None, sample_rate: None, bitrate_kbps: None, default_format: AudioFormat::Mp3, field: "output" }
    }
}

/// How the requested output is made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Plan {
    /// The provider's bytes are the answer.
    PassThrough { output: AudioSpec },
    /// The provider sends PCM at `from`; the gateway encodes `output` chunk by chunk.
    Transcode { from: u32, output: AudioSpec },
    /// The provider sends PCM at `from`; the gateway collects it, normalises the peak to
    /// `volume_dbfs` and encodes `output` once.
    Normalize { from: u32, output: AudioSpec, volume_dbfs: f32 },
}

impl Plan {
    pub fn output(&self) -> AudioSpec {
        match *self {
            Plan::PassThrough { output } | Plan::Transcode { output, .. } | Plan::Normalize { output, .. } => output,
        }
    }
}

/// Chooses how to make the requested output from what the provider offers.
pub fn plan(caps: &Capabilities, requested: &OutputRequest, volume_dbfs: Option<f32>) -> Result<Plan, FieldError> {
    let field = requested.field;
    let format = requested.format.unwrap_or(requested.default_format);
    let native_rates = caps.rates(format);
    let sample_rate = match (requested.sample_rate, format) {
        (Some(rate), _) => rate,
        (None, AudioFormat::Ulaw | AudioFormat::Alaw) => 8_000,
        // Raw audio defaults to 24 kHz where offered; compressed audio to the best native rate.
        (None, AudioFormat::Pcm | AudioFormat::Wav) => {
            prefer_24k(&native_rates).or_else(|| prefer_24k(&caps.rates(AudioFormat::Pcm))).unwrap_or(24_000)
        }
        (None, _) => {
            native_rates.last().copied().or_else(|| prefer_24k(&caps.rates(AudioFormat::Pcm))).unwrap_or(24_000)
        }
    };
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
        return Err(FieldError::new(
            field,
            format!("sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE}"),
        ));
    }
    let output = AudioSpec { format, sample_rate, bitrate_kbps: requested.bitrate_kbps };
    if volume_dbfs.is_none() && caps.produces(output) {
        return Ok(Plan::PassThrough { output });
    }
    if !format.encodable() {
        return Err(FieldError::new(
            field,
            format!(
                "{} can only be passed through, and this provider does not produce it at {sample_rate} Hz",
                format.as_str()
            ),
        ));
    }
    let pcm_rates = caps.rates(AudioFormat::Pcm);
    let Some(from) = pick_source_rate(&pcm_rates, sample_rate) else {
        return Err(FieldError::new(field, "this provider produces no PCM to convert from"));
    };
    // Fail now, not after the provider was paid, if the encoder cannot make this output; and
    // report what it really makes (a codec may round the rate up to one it supports). This only
    // consults the codec rules: the transcoder itself is built once, for the body.
    let output = audio::output_spec(output).map_err(|e| FieldError::new(field, e.to_string()))?;
    Ok(match volume_dbfs {
        Some(volume_dbfs) => Plan::Normalize { from, output, volume_dbfs },
        None => Plan::Transcode { from, output },
    })
}

/// The output of audio the gateway makes itself from PCM (a conversation's mix): any encodable
/// format, at the requested rate or 24 kHz (8 kHz for G.711), as the encoder really makes it.
pub fn encoded_output(requested: &OutputRequest) -> Result<AudioSpec, FieldError> {
    let field = requested.field;
    let format = requested.format.unwrap_or(requested.default_format);
    let default_rate = if matches!(format, AudioFormat::Ulaw | AudioFormat::Alaw) { 8_000 } else { 24_000 };
    let sample_rate = requested.sample_rate.unwrap_or(default_rate);
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
        return Err(FieldError::new(
            field,
            format!("sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE}"),
        ));
    }
    if !format.encodable() {
        return Err(FieldError::new(field, format!("the gateway cannot encode {}", format.as_str())));
    }
    audio::output_spec(AudioSpec { format, sample_rate, bitrate_kbps: requested.bitrate_kbps })
        .map_err(|e| FieldError::new(field, e.to_string()))
}

fn prefer_24k(rates: &[u32]) -> Option<u32> {
    if rates.contains(&24_000) {
        Some(24_000)
    } else {
        rates.iter().copied().max()
    }
}

/// The PCM rate to ask for: the target itself, else the lowest above it, else the highest.
pub fn pick_source_rate(rates: &[u32], target: u32) -> Option<u32> {
    rates.iter().copied().filter(|r| *r >= target).min().or_else(|| rates.iter().copied().max())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{ModelInfo, NativeFormat};

    fn caps(formats: Vec<NativeFormat>) -> Capabilities {
        Capabilities {
            takes_api_key: true,
            models: vec![ModelInfo { id: "m".into(), max_characters: 100, supports_instructions: false }],
            default_model: "m".into(),
            formats,
            streaming: true,
            native_timestamps: false,
            timestamp_formats: Vec::new(),
            native_dialogue: None,
            voices_listable: false,
            speed_range: None,
            provider_options: Vec::new(),
        }
    }

    fn ask(format: Option<AudioFormat>, sample_rate: Option<u32>) -> OutputRequest {
        OutputRequest { format, sample_rate, ..OutputRequest::default() }
    }

    fn spec(format: AudioFormat, sample_rate: u32) -> AudioSpec {
        AudioSpec { format, sample_rate, bitrate_kbps: None }
    }

    #[test]
    fn native_output_passes_through_and_the_rest_is_converted_from_pcm() {
        let openai = caps(vec![
            NativeFormat::new(AudioFormat::Mp3, &[24_000], &[]),
            NativeFormat::new(AudioFormat::Pcm, &[24_000], &[]),
        ]);
        assert_eq!(
            plan(&openai, &ask(None, None), None),
            Ok(Plan::PassThrough { output: spec(AudioFormat::Mp3, 24_000) })
        );
        assert_eq!(
            plan(&openai, &ask(Some(AudioFormat::Wav), Some(16_000)), None),
            Ok(Plan::Transcode { from: 24_000, output: spec(AudioFormat::Wav, 16_000) })
        );
        assert_eq!(
            plan(&openai, &ask(Some(AudioFormat::Ulaw), None), None),
            Ok(Plan::Transcode { from: 24_000, output: spec(AudioFormat::Ulaw, 8_000) })
        );
        assert_eq!(
            plan(&openai, &ask(None, None), Some(-3.0)),
            Ok(Plan::Normalize {
                from: 24_000,
                output: AudioSpec { bitrate_kbps: Some(128), ..spec(AudioFormat::Mp3, 24_000) },
                volume_dbfs: -3.0
            }),
            "normalising needs PCM even when the format is native; the encoder reports its bitrate"
        );
    }

    #[test]
    fn defaults_and_source_rates_follow_what_the_provider_offers() {
        let vendor = caps(vec![
            NativeFormat::new(AudioFormat::Mp3, &[44_100], &[128, 192]),
            NativeFormat::new(AudioFormat::Pcm, &[8_000, 16_000, 22_050], &[]),
        ]);
        // Compressed output defaults to the best native rate; a bitrate must be one it offers.
        assert_eq!(
            plan(&vendor, &ask(Some(AudioFormat::Mp3), None), None),
            Ok(Plan::PassThrough { output: spec(AudioFormat::Mp3, 44_100) })
        );
        let odd_bitrate = OutputRequest { bitrate_kbps: Some(64), ..ask(Some(AudioFormat::Mp3), Some(44_100)) };
        assert!(matches!(plan(&vendor, &odd_bitrate, None), Ok(Plan::Transcode { from: 22_050, .. })));
        // Raw output defaults to 24 kHz where offered, else the best PCM rate.
        assert_eq!(
            plan(&vendor, &ask(Some(AudioFormat::Pcm), None), None),
            Ok(Plan::PassThrough { output: spec(AudioFormat::Pcm, 22_050) })
        );
        // The PCM asked for: the target itself, else the lowest above it, else the highest.
        assert!(matches!(
            plan(&vendor, &ask(Some(AudioFormat::Wav), Some(11_025)), None),
            Ok(Plan::Transcode { from: 16_000, .. })
        ));
        assert!(matches!(
            plan(&vendor, &ask(Some(AudioFormat::Wav), Some(48_000)), None),
            Ok(Plan::Transcode { from: 22_050, .. })
        ));
    }

    #[test]
    fn impossible_outputs_are_field_errors() {
        let pcm_only = caps(vec![NativeFormat::new(AudioFormat::Pcm, &[24_000], &[])]);
        let aac = plan(&pcm_only, &ask(Some(AudioFormat::Aac), None), None);
        assert!(matches!(aac, Err(FieldError { ref path, .. }) if path.len() == 1), "{aac:?}");
        assert!(plan(&pcm_only, &ask(Some(AudioFormat::Mp3), Some(96_000)), None).is_err());
        assert!(plan(&pcm_only, &ask(Some(AudioFormat::Ulaw), Some(16_000)), None).is_err());
        let no_pcm = caps(vec![NativeFormat::new(AudioFormat::Mp3, &[24_000], &[])]);
        assert!(plan(&no_pcm, &ask(Some(AudioFormat::Wav), None), None).is_err());
    }
}
