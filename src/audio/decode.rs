//! Whole-clip decoding of every [`AudioFormat`] to mono i16.
//!
//! Containers and codecs other than Opus go through symphonia (MP3, AAC/ADTS, FLAC, WAV, and Ogg
//! Vorbis, which arrives labelled "ogg" and so parses as [`AudioFormat::Opus`]: the first Ogg packet
//! tells the two apart). Opus goes through our Ogg reader and opus-rs, as symphonia has no Opus
//! decoder. Raw formats carry no header, so the caller states their rate.
//!
//! Symphonia and opus-rs run behind `catch_unwind`: they are well tested, but these bytes come from
//! the network and a codec bug must surface as [`AudioError::Decode`], not a dead task.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::default::formats::{AdtsReader, FlacReader, MpaReader, OggReader, WavReader};

use super::{flac, g711, ogg_opus, AudioError, AudioFormat};

/// A decoded clip: mono samples and their rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub sample_rate: u32,
    pub samples: Vec<i16>,
}

/// Whole-clip decode of any AudioFormat to mono i16 (channels mixed down). `pcm_rate` is required
/// for Pcm/Ulaw/Alaw (no header) and ignored otherwise.
pub fn decode(format: AudioFormat, bytes: &[u8], pcm_rate: Option<u32>) -> Result<Decoded, AudioError> {
    match format {
        AudioFormat::Pcm | AudioFormat::Ulaw | AudioFormat::Alaw => decode_raw(format, bytes, pcm_rate),
        AudioFormat::Opus if is_ogg_opus(bytes) => guarded(|| ogg_opus::decode(bytes)),
        AudioFormat::Opus => guarded(|| decode_with_symphonia(bytes, "ogg")),
        AudioFormat::Mp3 => guarded(|| decode_with_symphonia(bytes, "mp3")),
        AudioFormat::Aac => guarded(|| decode_with_symphonia(bytes, "aac")),
        AudioFormat::Flac => match flac::empty_stream_rate(bytes) {
            Some(sample_rate) => Ok(Decoded { sample_rate, samples: Vec::new() }),
            None => guarded(|| decode_with_symphonia(bytes, "flac")),
        },
        AudioFormat::Wav => guarded(|| decode_with_symphonia(bytes, "wav")),
    }
}

fn guarded(decode: impl FnOnce() -> Result<Decoded, AudioError>) -> Result<Decoded, AudioError> {
    catch_unwind(AssertUnwindSafe(decode))
        .unwrap_or_else(|_| Err(AudioError::Decode("the decoder failed on malformed input".into())))
}

/// Whether the first Ogg page of `bytes` starts an Opus stream. (Header: 27 bytes + lacing values,
/// then the first packet.)
fn is_ogg_opus(bytes: &[u8]) -> bool {
    if !bytes.starts_with(b"OggS") || bytes.len() < 27 {
        return false;
    }
    let segments = usize::from(bytes[26]);
    bytes.get(27 + segments..).is_some_and(|packet| packet.starts_with(b"OpusHead"))
}

fn decode_raw(format: AudioFormat, bytes: &[u8], pcm_rate: Option<u32>) -> Result<Decoded, AudioError> {
    let sample_rate = pcm_rate.filter(|rate| *rate > 0).ok_or_else(|| {
        AudioError::Decode(format!("{} has no header: its sample rate must be given", format.as_str()))
    })?;
    let samples = match format {
        AudioFormat::Ulaw => bytes.iter().map(|b| g711::ulaw_decode(*b)).collect(),
        AudioFormat::Alaw => bytes.iter().map(|b| g711::alaw_decode(*b)).collect(),
        _ => {
            if !bytes.len().is_multiple_of(2) {
                return Err(AudioError::Decode("pcm: odd number of bytes (s16le samples are 2 bytes)".into()));
            }
            bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
        }
    };
    Ok(Decoded { sample_rate, samples })
}

fn decode_with_symphonia(bytes: &[u8], extension: &str) -> Result<Decoded, AudioError> {
    let fail = |e: SymphoniaError| AudioError::Decode(format!("{extension}: {e}"));
    let mut reader = open_reader(bytes, extension).map_err(fail)?;
    let track = reader
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::Decode(format!("{extension}: no audio track")))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| AudioError::Decode(format!("{extension}: not an audio track")))?;
    let mut decoder =
        symphonia::default::get_codecs().make_audio_decoder(params, &AudioDecoderOptions::default()).map_err(fail)?;

    let mut sample_rate = params.sample_rate;
    let mut samples: Vec<i16> = Vec::new();
    let mut interleaved: Vec<i16> = Vec::new();
    let mut decoded_any = false;
    let mut last_error = None;
    loop {
        let packet = match reader.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A truncated tail ends the clip; keep what was decoded.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(fail(e)),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buffer = match decoder.decode(&packet) {
            Ok(buffer) => buffer,
            // A corrupt packet is skipped, as players do; a stream of nothing but corrupt packets fails below.
            Err(SymphoniaError::DecodeError(e)) => {
                last_error = Some(e);
                continue;
            }
            Err(e) => return Err(fail(e)),
        };
        decoded_any = true;
        let spec = buffer.spec();
        let rate = spec.rate();
        match sample_rate {
            Some(known) if known != rate => {
                return Err(AudioError::Decode(format!("{extension}: sample rate changes mid-stream")))
            }
            _ => sample_rate = Some(rate),
        }
        let channels = spec.channels().count().max(1);
        buffer.copy_to_vec_interleaved(&mut interleaved);
        if channels == 1 {
            samples.extend_from_slice(&interleaved);
        } else {
            samples.extend(interleaved.chunks_exact(channels).map(mix_down));
        }
    }
    if !decoded_any {
        if let Some(e) = last_error {
            return Err(AudioError::Decode(format!("{extension}: malformed stream: {e}")));
        }
    }
    let sample_rate = sample_rate.ok_or_else(|| AudioError::Decode(format!("{extension}: unknown sample rate")))?;
    Ok(Decoded { sample_rate, samples })
}

/// The container reader for `bytes`: found by probing (which also skips leading ID3 tags and the
/// like), or, when probing finds nothing, the reader for the stated format. Probing wants to see
/// two consecutive MP3 frames, so a one-frame MP3 (a clip of a few ms) needs the second way.
fn open_reader<'a>(bytes: &'a [u8], extension: &str) -> Result<Box<dyn FormatReader + 'a>, SymphoniaError> {
    let source = || MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut hint = Hint::new();
    hint.with_extension(extension);
    let probed =
        symphonia::default::get_probe().probe(&hint, source(), FormatOptions::default(), MetadataOptions::default());
    match probed {
        Ok(reader) => Ok(reader),
        Err(SymphoniaError::Unsupported(_)) => {
            let options = FormatOptions::default();
            Ok(match extension {
                "mp3" => Box::new(MpaReader::try_new(source(), options)?),
                "aac" => Box::new(AdtsReader::try_new(source(), options)?),
                "flac" => Box::new(FlacReader::try_new(source(), options)?),
                "wav" => Box::new(WavReader::try_new(source(), options)?),
                _ => Box::new(OggReader::try_new(source(), options)?),
            })
        }
        Err(e) => Err(e),
    }
}

fn mix_down(frame: &[i16]) -> i16 {
    let sum: i32 = frame.iter().map(|s| i32::from(*s)).sum();
    let len = i32::try_from(frame.len()).unwrap_or(1).max(1);
    i16::try_from(sum / len).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_formats_need_a_rate_and_whole_samples() {
        assert!(matches!(decode(AudioFormat::Pcm, &[0, 0], None), Err(AudioError::Decode(_))));
        assert!(matches!(decode(AudioFormat::Pcm, &[0, 0, 0], Some(8000)), Err(AudioError::Decode(_))));
        let pcm = decode(AudioFormat::Pcm, &[1, 0, 0xFF, 0xFF], Some(16_000)).unwrap();
        assert_eq!(pcm, Decoded { sample_rate: 16_000, samples: vec![1, -1] });
        let ulaw = decode(AudioFormat::Ulaw, &[0xFF, 0x80], Some(8000)).unwrap();
        assert_eq!(ulaw.samples, vec![0, 32_124]);
    }

    #[test]
    fn garbage_is_a_decode_error_for_every_format() {
        let garbage: Vec<u8> = (0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for format in [AudioFormat::Mp3, AudioFormat::Opus, AudioFormat::Aac, AudioFormat::Flac, AudioFormat::Wav] {
            for bytes in [&garbage[..], &[], b"OggS", b"fLaC\0\0", b"RIFF\xff\xff\xff\xffWAVE"] {
                let result = decode(format, bytes, None);
                assert!(matches!(result, Err(AudioError::Decode(_)) | Err(AudioError::Unsupported(_))), "{format:?}");
            }
        }
    }

    #[test]
    fn stereo_mixes_to_the_mean() {
        assert_eq!(mix_down(&[1000, 3000]), 2000);
        assert_eq!(mix_down(&[i16::MAX, i16::MAX]), i16::MAX);
        assert_eq!(mix_down(&[i16::MIN, i16::MIN]), i16::MIN);
    }
}
