//! Streaming FLAC: our own stream header, then fixed-size frames encoded by `flacenc`.
//!
//! flacenc encodes whole clips; its per-frame entry point (`encode_fixed_size_frame`) lets us encode
//! each block as soon as it is full. We write the `fLaC` marker and STREAMINFO ourselves, first,
//! because the values flacenc would fill in are only known at the end: total samples, MD5 and frame
//! sizes go out as 0, which the FLAC format defines as "unknown". Block sizes are stated as
//! min = max = [`BLOCK_SIZE`]: every block but the last has that size, and the format exempts the
//! last block from the minimum (flacenc's own STREAMINFO counts it, which symphonia rejects).

use flacenc::bitsink::ByteSink;
use flacenc::component::{BitRepr, StreamInfo};
use flacenc::config;
use flacenc::error::{Verified, Verify};
use flacenc::source::{Fill, FrameBuf};

use super::{AudioError, Encoder};

/// Samples per frame: 43 ms at 48 kHz, 256 ms at 8 kHz; a latency/compression middle ground.
const BLOCK_SIZE: usize = 2048;
const BITS_PER_SAMPLE: usize = 16;

/// `fLaC` and a STREAMINFO block (last metadata block) for a mono 16-bit stream of unknown length.
fn stream_header(rate: u32) -> [u8; 42] {
    let mut h = [0u8; 42];
    h[0..4].copy_from_slice(b"fLaC");
    h[4] = 0x80; // last metadata block, type 0 (STREAMINFO)
    h[5..8].copy_from_slice(&[0, 0, 34]); // block length
    let block = (BLOCK_SIZE as u16).to_be_bytes();
    h[8..10].copy_from_slice(&block); // min block size
    h[10..12].copy_from_slice(&block); // max block size
                                       // [12..18]: min and max frame size, 24 bits each: 0 = unknown.
                                       // 20 bits rate, 3 bits channels - 1, 5 bits bits-per-sample - 1, 36 bits total samples (0 = unknown).
    let packed: u64 = (u64::from(rate & 0xF_FFFF) << 44) | (((BITS_PER_SAMPLE as u64) - 1) << 36);
    h[18..26].copy_from_slice(&packed.to_be_bytes());
    // [26..42]: MD5 of the audio: all zero = not computed.
    h
}

/// The sample rate of a FLAC stream that has metadata but no audio frames (an empty clip), which
/// symphonia reports as a truncated file. `None` for anything else.
pub(crate) fn empty_stream_rate(bytes: &[u8]) -> Option<u32> {
    let mut rest = bytes.strip_prefix(b"fLaC")?;
    let mut rate = None;
    loop {
        let (&[flags, a, b, c], tail) = rest.split_first_chunk::<4>()?;
        let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
        let block = tail.get(..len)?;
        if flags & 0x7F == 0 {
            let packed = u32::from_be_bytes(*block.get(10..14)?.first_chunk::<4>()?);
            rate = Some(packed >> 12);
        }
        rest = &tail[len..];
        if flags & 0x80 != 0 {
            return if rest.is_empty() { rate } else { None };
        }
    }
}

pub(crate) struct FlacEncoder {
    config: Verified<config::Encoder>,
    info: StreamInfo,
    block: Vec<i32>,
    frame_buf: FrameBuf,
    frames: usize,
    rate: u32,
    header_sent: bool,
}

impl FlacEncoder {
    pub(crate) fn new(rate: u32) -> Result<Self, AudioError> {
        let setup = |e: String| AudioError::Encode(format!("flac setup: {e}"));
        let config = config::Encoder::default().into_verified().map_err(|(_, e)| setup(e.to_string()))?;
        let info = StreamInfo::new(rate as usize, 1, BITS_PER_SAMPLE).map_err(|e| setup(e.to_string()))?;
        let frame_buf = FrameBuf::with_size(1, BLOCK_SIZE).map_err(|e| setup(e.to_string()))?;
        Ok(Self { config, info, block: Vec::with_capacity(BLOCK_SIZE), frame_buf, frames: 0, rate, header_sent: false })
    }

    /// Encodes the buffered block (full, or the shorter last one) as one frame.
    fn flush_block(&mut self, out: &mut Vec<u8>) -> Result<(), AudioError> {
        let fail = |e: String| AudioError::Encode(format!("flac: {e}"));
        self.frame_buf.fill_interleaved(&self.block).map_err(|e| fail(e.to_string()))?;
        let frame = flacenc::encode_fixed_size_frame(&self.config, &self.frame_buf, self.frames, &self.info)
            .map_err(|e| fail(e.to_string()))?;
        let mut sink = ByteSink::new();
        frame.write(&mut sink).map_err(|e| fail(e.to_string()))?;
        out.extend_from_slice(sink.as_slice());
        self.frames += 1;
        self.block.clear();
        Ok(())
    }

    fn header(&mut self, out: &mut Vec<u8>) {
        if !self.header_sent {
            self.header_sent = true;
            out.extend_from_slice(&stream_header(self.rate));
        }
    }
}

impl Encoder for FlacEncoder {
    fn encode(&mut self, samples: &[i16]) -> Result<Vec<u8>, AudioError> {
        let mut out = Vec::new();
        self.header(&mut out);
        for sample in samples {
            self.block.push(i32::from(*sample));
            if self.block.len() == BLOCK_SIZE {
                self.flush_block(&mut out)?;
            }
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>, AudioError> {
        let mut out = Vec::new();
        self.header(&mut out);
        if !self.block.is_empty() {
            self.flush_block(&mut out)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaminfo_fields() {
        let h = stream_header(44_100);
        assert_eq!(&h[0..4], b"fLaC");
        assert_eq!(u16::from_be_bytes([h[8], h[9]]), 2048);
        assert_eq!(u16::from_be_bytes([h[10], h[11]]), 2048);
        let packed = u64::from_be_bytes([h[18], h[19], h[20], h[21], h[22], h[23], h[24], h[25]]);
        assert_eq!(packed >> 44, 44_100);
        assert_eq!((packed >> 41) & 0x7, 0, "mono");
        assert_eq!((packed >> 36) & 0x1F, 15, "16 bits");
        assert_eq!(packed & 0xF_FFFF_FFFF, 0, "length unknown");
    }

    #[test]
    fn recognises_streams_without_frames() {
        assert_eq!(empty_stream_rate(&stream_header(22_050)), Some(22_050));
        let mut with_frame = stream_header(22_050).to_vec();
        with_frame.extend_from_slice(&[0xFF, 0xF8, 0, 0]);
        assert_eq!(empty_stream_rate(&with_frame), None);
        assert_eq!(empty_stream_rate(&stream_header(22_050)[..30]), None);
        assert_eq!(empty_stream_rate(b"RIFF"), None);
    }
}
