//! Raw s16le bytes from a provider, as they arrive, into any encodable output.
//!
//! Network chunks do not respect sample boundaries: a chunk may end in the middle of a sample, so
//! the odd byte is kept for the next push. The input is resampled once, straight to the rate the
//! codec really uses ([`output_spec`]), so an Opus request at 22050 Hz from a 24000 Hz provider is
//! not resampled twice.

use super::{encoder, output_spec, AudioError, AudioSpec, Encoder, Resampler};

/// Raw s16le PCM bytes at `input_rate` → any encodable AudioSpec, chunk by chunk as bytes arrive.
pub struct PcmTranscoder {
    carry: Option<u8>,
    resampler: Resampler,
    encoder: Box<dyn Encoder>,
    output: AudioSpec,
    /// The chunk's samples, and the same resampled: kept between pushes so that a stream of
    /// chunks allocates them once.
    samples: Vec<i16>,
    resampled: Vec<i16>,
}

impl PcmTranscoder {
    /// Fails with `Unsupported` when `output` cannot be encoded or `input_rate` cannot be resampled.
    pub fn new(input_rate: u32, output: AudioSpec) -> Result<Self, AudioError> {
        let output = output_spec(output)?;
        let resampler = Resampler::new(input_rate, output.sample_rate)?;
        let encoder = encoder(output)?;
        Ok(Self { carry: None, resampler, encoder, output, samples: Vec::new(), resampled: Vec::new() })
    }

    /// What the bytes are: the requested spec as [`output_spec`] resolved it.
    pub fn output_spec(&self) -> AudioSpec {
        self.output
    }

    /// Feeds the next chunk of s16le bytes (any length); returns the encoded bytes that are ready.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<u8>, AudioError> {
        self.samples.clear();
        super::s16le_samples_into(&mut self.carry, bytes, &mut self.samples);
        self.resampled.clear();
        self.resampler.process_into(&self.samples, &mut self.resampled);
        self.encoder.encode(&self.resampled)
    }

    /// Ends the stream. A dangling half sample is dropped (it cannot be a sample on its own).
    pub fn finish(&mut self) -> Result<Vec<u8>, AudioError> {
        self.carry = None;
        self.resampled.clear();
        self.resampler.finish_into(&mut self.resampled);
        let mut out = self.encoder.encode(&self.resampled)?;
        out.extend(self.encoder.finish()?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::AudioFormat;

    #[test]
    fn odd_chunks_reassemble_samples() {
        let samples: Vec<i16> = (0..1000).map(|i| (i * 37 - 18_000) as i16).collect();
        let bytes = crate::audio::s16le_bytes(&samples);
        let mut t = PcmTranscoder::new(16_000, AudioSpec::pcm(16_000)).unwrap();
        let mut out = Vec::new();
        let mut offset = 0;
        for size in [1usize, 3, 0, 5, 2, 7, 1, 1].into_iter().cycle() {
            if offset >= bytes.len() {
                break;
            }
            let end = (offset + size).min(bytes.len());
            out.extend(t.push(&bytes[offset..end]).unwrap());
            offset = end;
        }
        out.extend(t.finish().unwrap());
        assert!(out == bytes, "bytes differ");
    }

    #[test]
    fn reports_the_resolved_spec() {
        let t = PcmTranscoder::new(
            24_000,
            AudioSpec { format: AudioFormat::Opus, sample_rate: 22_050, bitrate_kbps: None },
        )
        .unwrap();
        assert_eq!(
            t.output_spec(),
            AudioSpec { format: AudioFormat::Opus, sample_rate: 24_000, bitrate_kbps: Some(64) }
        );
        assert!(PcmTranscoder::new(
            24_000,
            AudioSpec { format: AudioFormat::Ulaw, sample_rate: 16_000, bitrate_kbps: None }
        )
        .is_err());
    }
}
