//! Streaming RIFF/WAVE (16-bit PCM, mono) and raw PCM / G.711 encoders.
//!
//! A WAV header states the data length up front, which a stream does not know when the header goes
//! out and cannot seek back to fix. The header therefore carries `0xFFFF_FFFF` for both the RIFF and
//! the `data` chunk sizes, the usual convention for "length unknown, read to the end of the stream".
//! ffmpeg and symphonia read such a file to its end (the tests check both, and ffprobe reports the
//! right duration); ffmpeg flags the final short read as a "corrupt packet", which only matters
//! with `-xerror`. A client that needs exact sizes can rewrite the two fields after saving the
//! file (`36 + data` and `data`).

use super::{g711, s16le_bytes, AudioError, Encoder};

/// Size written into the RIFF and `data` length fields of a streamed WAV.
pub(crate) const UNKNOWN_SIZE: u32 = u32::MAX;

/// The 44-byte canonical header for mono 16-bit PCM at `rate` with data length `data_len`.
pub(crate) fn header(rate: u32, data_len: u32) -> [u8; 44] {
    let riff_len = if data_len == UNKNOWN_SIZE { UNKNOWN_SIZE } else { data_len.saturating_add(36) };
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&riff_len.to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // WAVE_FORMAT_PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // channels
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&rate.saturating_mul(2).to_le_bytes()); // byte rate
    h[32..34].copy_from_slice(&2u16.to_le_bytes()); // block align
    h[34..36].copy_from_slice(&16u16.to_le_bytes()); // bits per sample
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// How raw samples are written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RawKind {
    /// WAV header, then s16le.
    Wav,
    /// s16le, no header.
    Pcm,
    Ulaw,
    Alaw,
}

/// Encoder for the formats whose bytes are samples: no frames, nothing buffered.
pub(crate) struct RawEncoder {
    kind: RawKind,
    rate: u32,
    header_sent: bool,
}

impl RawEncoder {
    pub(crate) fn new(kind: RawKind, rate: u32) -> Self {
        Self { kind, rate, header_sent: false }
    }
}

impl Encoder for RawEncoder {
    fn encode(&mut self, samples: &[i16]) -> Result<Vec<u8>, AudioError> {
        let mut out = Vec::new();
        if !self.header_sent {
            self.header_sent = true;
            if matches!(self.kind, RawKind::Wav) {
                out.extend_from_slice(&header(self.rate, UNKNOWN_SIZE));
            }
        }
        match self.kind {
            RawKind::Wav | RawKind::Pcm => out.extend(s16le_bytes(samples)),
            RawKind::Ulaw => out.extend(samples.iter().map(|s| g711::ulaw_encode(*s))),
            RawKind::Alaw => out.extend(samples.iter().map(|s| g711::alaw_encode(*s))),
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>, AudioError> {
        // An empty clip still gets its header, so the output is a valid (empty) WAV.
        self.encode(&[])
    }
}

/// WAV format tags: integer PCM, A-law, μ-law, and the extensible header whose sub-format
/// says which (read as the sub-format's tag).
pub const FORMAT_PCM: u16 = 1;
pub const FORMAT_ALAW: u16 = 6;
pub const FORMAT_MULAW: u16 = 7;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// What a RIFF/WAVE file a vendor sent says of itself (`fmt `), and where its samples are
/// (`data`). Vendors' files are untrusted: every size is checked before it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WavFile {
    pub format_tag: u16,
    pub channels: u16,
    pub sample_rate: u32,
    pub bits_per_sample: u16,
    /// The `data` chunk's bytes within the file.
    pub data: std::ops::Range<usize>,
}

impl WavFile {
    /// Reads a RIFF/WAVE file's chunks: `fmt ` and `data`, skipping any others (`LIST`,
    /// `fact`...). A `data` size of `0xFFFFFFFF` or 0 (length unknown: a streamed file) runs to
    /// the end of the file.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return Err("the audio is not a RIFF/WAVE file".to_owned());
        }
        let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let mut format = None;
        let mut at = 12;
        while at + 8 <= bytes.len() {
            let id = &bytes[at..at + 4];
            let size = u32_at(at + 4).ok_or("a truncated chunk header")?;
            let body = at + 8;
            if id == b"data" {
                let (tag, channels, rate, bits) = format.ok_or("the `data` chunk comes before `fmt `")?;
                let end = if size == UNKNOWN_SIZE || size == 0 {
                    bytes.len()
                } else {
                    body.checked_add(size as usize)
                        .filter(|end| *end <= bytes.len())
                        .ok_or("the `data` chunk is cut off")?
                };
                return Ok(WavFile {
                    format_tag: tag,
                    channels,
                    sample_rate: rate,
                    bits_per_sample: bits,
                    data: body..end,
                });
            }
            if id == b"fmt " {
                if size < 16 {
                    return Err("the `fmt ` chunk is too short".to_owned());
                }
                let field = |v: Option<u16>| v.ok_or("the `fmt ` chunk is cut off");
                let mut tag = field(u16_at(body))?;
                // WAVE_FORMAT_EXTENSIBLE: the real tag is the first two bytes of the sub-format GUID.
                if tag == FORMAT_EXTENSIBLE {
                    tag = if size >= 26 { field(u16_at(body + 24))? } else { tag };
                }
                format = Some((
                    tag,
                    field(u16_at(body + 2))?,
                    u32_at(body + 4).ok_or("the `fmt ` chunk is cut off")?,
                    field(u16_at(body + 14))?,
                ));
            }
            // Chunks are padded to an even size.
            at = body
                .checked_add(size as usize)
                .and_then(|end| end.checked_add(size as usize % 2))
                .ok_or("a chunk size overflows")?;
        }
        Err("the file has no `data` chunk".to_owned())
    }

    /// Checks that the file holds mono audio of the format tag, sample size and rate asked for.
    pub fn expect(&self, (tag, bits): (u16, u16), spec: crate::domain::audio::AudioSpec) -> Result<(), String> {
        if self.format_tag != tag || self.bits_per_sample != bits || self.channels != 1 {
            return Err(format!(
                "the audio is format {} with {} bits and {} channels where format {tag} with {bits} bits, mono, was asked for",
                self.format_tag, self.bits_per_sample, self.channels
            ));
        }
        if self.sample_rate != spec.sample_rate {
            return Err(format!("the audio is at {} Hz where {} Hz was asked for", self.sample_rate, spec.sample_rate));
        }
        Ok(())
    }

    /// How long the samples last, in seconds.
    pub fn seconds(&self) -> f64 {
        let frame = u64::from(self.channels) * u64::from(self.bits_per_sample / 8);
        if frame == 0 || self.sample_rate == 0 {
            return 0.0;
        }
        (self.data.len() as u64 / frame) as f64 / f64::from(self.sample_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields() {
        let h = header(24_000, 480);
        assert_eq!(&h[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes([h[4], h[5], h[6], h[7]]), 516);
        assert_eq!(u32::from_le_bytes([h[24], h[25], h[26], h[27]]), 24_000);
        assert_eq!(u32::from_le_bytes([h[28], h[29], h[30], h[31]]), 48_000);
        assert_eq!(u32::from_le_bytes([h[40], h[41], h[42], h[43]]), 480);
        let streamed = header(8000, UNKNOWN_SIZE);
        assert_eq!(&streamed[4..8], &[0xFF; 4]);
        assert_eq!(&streamed[40..44], &[0xFF; 4]);
    }

    #[test]
    fn header_goes_out_once() {
        let mut enc = RawEncoder::new(RawKind::Wav, 16_000);
        assert_eq!(enc.encode(&[1, -1]).unwrap().len(), 48);
        assert_eq!(enc.encode(&[2]).unwrap(), vec![2, 0]);
        assert!(enc.finish().unwrap().is_empty());
        let mut empty = RawEncoder::new(RawKind::Wav, 16_000);
        assert_eq!(empty.finish().unwrap().len(), 44);
    }

    fn wav(tag: u16, bits: u16, rate: u32, extra: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = b"RIFF\0\0\0\0WAVE".to_vec();
        out.extend_from_slice(b"fmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * u32::from(bits / 8)).to_le_bytes());
        out.extend_from_slice(&(bits / 8).to_le_bytes());
        out.extend_from_slice(&bits.to_le_bytes());
        out.extend_from_slice(extra);
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn data_is_found_past_other_chunks() {
        // An odd-sized LIST chunk and its pad byte come before `data`.
        let list = [b"LIST".as_slice(), &3u32.to_le_bytes(), b"abc\0"].concat();
        let file = wav(1, 16, 24_000, &list, &[1, 2, 3, 4]);
        let parsed = WavFile::parse(&file).unwrap();
        assert_eq!(&file[parsed.data.clone()], &[1, 2, 3, 4]);
        let spec = crate::domain::audio::AudioSpec {
            format: crate::domain::audio::AudioFormat::Pcm,
            sample_rate: 24_000,
            bitrate_kbps: None,
        };
        assert!(parsed.expect((1, 16), spec).is_ok());
        assert!((parsed.seconds() - 2.0 / 24_000.0).abs() < 1e-12);
        let other = crate::domain::audio::AudioSpec { sample_rate: 16_000, ..spec };
        assert!(parsed.expect((1, 16), other).unwrap_err().contains("24000 Hz"));
        assert!(parsed.expect((7, 8), spec).is_err());
    }

    #[test]
    fn garbage_and_cut_files_are_errors_not_panics() {
        let file = wav(7, 8, 8_000, &[], &[0xff; 10]);
        for cut in 0..file.len() - 10 {
            assert!(WavFile::parse(&file[..cut]).is_err(), "cut at {cut}");
        }
        assert!(WavFile::parse(b"ID3\x04 this is an mp3").is_err());
        let mut huge = wav(1, 16, 8_000, &[], &[]);
        huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(WavFile::parse(&huge).is_err());
        let mut unknown = wav(1, 16, 8_000, &[], &[0; 6]);
        let len = unknown.len();
        unknown[len - 10..len - 6].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(WavFile::parse(&unknown).unwrap().data.len(), 6);
    }
}
