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
}
