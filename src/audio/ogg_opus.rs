//! Opus in Ogg (RFC 7845), encoded and decoded with the pure-Rust `opus-rs` codec.
//!
//! Choices, and why:
//!
//! - **CELT only** (`Application::RestrictedLowDelay`). At the bitrates a gateway serves (default 64
//!   kbit/s) CELT is transparent for speech, and its streams decode to the same waveform in every
//!   decoder we checked (libopus, ffmpeg's own, opus-rs), while SILK streams are reconstructed
//!   differently by each, and ffmpeg 5.1's native SILK decoder overloads on loud high-frequency
//!   content even from libopus. The encoder lookahead is then 2.5 ms, which is the pre-skip.
//! - **Coded rates 8, 16, 24 and 48 kHz.** Opus also defines 12 kHz, but CELT has no medium band
//!   and opus-rs codes it badly, so 12 kHz requests (and anything between 8 and 16 kHz) are coded at
//!   16 kHz. The OpusHead "input sample rate" field says the coded rate; players resample to their
//!   own rate (48 kHz in ffmpeg and browsers) either way.
//! - **20 ms frames; one Ogg page per `encode` call** (split every 40 packets so a page never
//!   overflows its 255 lacing values). A page per call keeps latency at one frame for a stream fed
//!   in small chunks, without a page per packet when a large chunk arrives at once.
//! - **Exact length.** The last frame is padded with silence and the end-of-stream page's granule
//!   position trims the padding, so a decoder that follows RFC 7845 returns exactly the input length.

use std::io::Cursor;

use ogg::writing::{PacketWriteEndInfo, PacketWriter};
use ogg::PacketReader;
use opus_rs::{Application, OpusDecoder, OpusEncoder};

use super::{to_i16, AudioError, Decoded, Encoder};

/// Rates the encoder codes at (see the module docs for why 12 kHz is missing).
const CODED_RATES: [u32; 4] = [8_000, 16_000, 24_000, 48_000];
/// Rates the decoder can output.
const DECODER_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];
/// Granule positions count 48 kHz samples whatever the coded rate.
const GRANULE_RATE: u32 = 48_000;
/// Encoder lookahead in CELT-only mode (2.5 ms) in 48 kHz samples: the OpusHead pre-skip.
const PRE_SKIP: u16 = 120;
/// The default and allowed bitrates, kbit/s.
pub(crate) const DEFAULT_KBPS: u32 = 64;
pub(crate) const KBPS_RANGE: std::ops::RangeInclusive<u32> = 6..=256;
/// Packets per Ogg page at most (6 lacing values per maximal packet × 40 < 255).
const PACKETS_PER_PAGE: usize = 40;
/// RFC 6716 maximum packet size.
const MAX_PACKET: usize = 1275;

/// The rate Opus codes a requested rate at: the lowest coded rate at or above it.
pub(crate) fn codec_rate(requested: u32) -> u32 {
    CODED_RATES.into_iter().find(|r| *r >= requested).unwrap_or(48_000)
}

pub(crate) fn choose_bitrate(requested: Option<u32>) -> Result<u32, AudioError> {
    match requested {
        None => Ok(DEFAULT_KBPS),
        Some(kbps) if KBPS_RANGE.contains(&kbps) => Ok(kbps),
        Some(kbps) => Err(AudioError::Unsupported(format!(
            "opus cannot be {kbps} kbit/s (allowed: {}..={})",
            KBPS_RANGE.start(),
            KBPS_RANGE.end()
        ))),
    }
}

fn opus_head(rate: u32, channels: u8) -> Vec<u8> {
    let mut head = Vec::with_capacity(19);
    head.extend_from_slice(b"OpusHead");
    head.push(1); // version
    head.push(channels);
    head.extend_from_slice(&PRE_SKIP.to_le_bytes());
    head.extend_from_slice(&rate.to_le_bytes()); // input sample rate (informational)
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(0); // channel mapping family 0: mono or stereo, no mapping table
    head
}

fn opus_tags() -> Vec<u8> {
    let vendor = concat!("speechgate ", env!("CARGO_PKG_VERSION"), " (opus-rs)").as_bytes();
    let mut tags = Vec::with_capacity(16 + vendor.len());
    tags.extend_from_slice(b"OpusTags");
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor);
    tags.extend_from_slice(&0u32.to_le_bytes()); // no user comments
    tags
}

pub(crate) struct OggOpusEncoder {
    opus: OpusEncoder,
    rate: u32,
    /// Samples per 20 ms frame at `rate`, and 48 kHz granules per coded sample.
    frame: usize,
    granule_step: u64,
    pending: Vec<i16>,
    writer: PacketWriter<'static, Vec<u8>>,
    serial: u32,
    headers_sent: bool,
    /// Input samples received and packets written so far.
    samples_in: u64,
    packets_out: u64,
}

impl OggOpusEncoder {
    /// `rate` and `kbps` must come from [`codec_rate`] and [`choose_bitrate`].
    pub(crate) fn new(rate: u32, kbps: u32) -> Result<Self, AudioError> {
        let sampling_rate = i32::try_from(rate).map_err(|_| AudioError::Unsupported(format!("opus at {rate} Hz")))?;
        let mut opus = OpusEncoder::new(sampling_rate, 1, Application::RestrictedLowDelay)
            .map_err(|e| AudioError::Unsupported(format!("opus at {rate} Hz: {e}")))?;
        opus.bitrate_bps = i32::try_from(kbps * 1000).unwrap_or(i32::MAX);
        let frame = (rate / 50) as usize;
        Ok(Self {
            opus,
            rate,
            frame,
            granule_step: u64::from(GRANULE_RATE / rate),
            pending: Vec::with_capacity(frame),
            writer: PacketWriter::new(Vec::new()),
            serial: rand::random(),
            headers_sent: false,
            samples_in: 0,
            packets_out: 0,
        })
    }

    fn write(&mut self, packet: Vec<u8>, end: PacketWriteEndInfo, granule: u64) -> Result<(), AudioError> {
        self.writer
            .write_packet(packet, self.serial, end, granule)
            .map_err(|e| AudioError::Encode(format!("ogg page: {e}")))
    }

    fn headers(&mut self) -> Result<(), AudioError> {
        if !self.headers_sent {
            self.headers_sent = true;
            // RFC 7845: each header packet alone on its page, granule position 0.
            self.write(opus_head(self.rate, 1), PacketWriteEndInfo::EndPage, 0)?;
            self.write(opus_tags(), PacketWriteEndInfo::EndPage, 0)?;
        }
        Ok(())
    }

    fn encode_frame(&mut self, frame: &[i16]) -> Result<Vec<u8>, AudioError> {
        let mut packet = vec![0u8; MAX_PACKET];
        let len = self
            .opus
            .encode_i16(frame, self.frame, &mut packet)
            .map_err(|e| AudioError::Encode(format!("opus: {e}")))?;
        packet.truncate(len);
        self.packets_out += 1;
        Ok(packet)
    }

    /// Writes `packets` (each ending at the given granule) as pages; `last` ends the stream.
    fn write_pages(&mut self, packets: Vec<(Vec<u8>, u64)>, last: bool) -> Result<(), AudioError> {
        let count = packets.len();
        for (i, (packet, granule)) in packets.into_iter().enumerate() {
            let end = if last && i + 1 == count {
                PacketWriteEndInfo::EndStream
            } else if i + 1 == count || (i + 1) % PACKETS_PER_PAGE == 0 {
                PacketWriteEndInfo::EndPage
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            self.write(packet, end, granule)?;
        }
        Ok(())
    }

    fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(self.writer.inner_mut())
    }
}

impl Encoder for OggOpusEncoder {
    fn encode(&mut self, samples: &[i16]) -> Result<Vec<u8>, AudioError> {
        self.headers()?;
        self.samples_in += samples.len() as u64;
        let mut packets = Vec::new();
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (self.frame - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == self.frame {
                let frame = std::mem::take(&mut self.pending);
                let packet = self.encode_frame(&frame)?;
                self.pending = frame;
                self.pending.clear();
                packets.push((packet, self.packets_out * self.frame as u64 * self.granule_step));
            }
        }
        self.write_pages(packets, false)?;
        Ok(self.take_output())
    }

    fn finish(&mut self) -> Result<Vec<u8>, AudioError> {
        self.headers()?;
        // Flush the lookahead: encode silence until every input sample plus the pre-skip is coded.
        let needed = self.samples_in * self.granule_step + u64::from(PRE_SKIP);
        let mut packets = Vec::new();
        while self.packets_out * self.frame as u64 * self.granule_step < needed || packets.is_empty() {
            let mut frame = std::mem::take(&mut self.pending);
            frame.resize(self.frame, 0);
            let packet = self.encode_frame(&frame)?;
            packets.push((packet, self.packets_out * self.frame as u64 * self.granule_step));
        }
        // The final granule position marks the real end; the decoder drops the padding after it.
        if let Some(last) = packets.last_mut() {
            last.1 = needed;
        }
        self.write_pages(packets, true)?;
        Ok(self.take_output())
    }
}

/// Decodes a whole Ogg Opus stream (the first logical stream in the file) to mono.
///
/// The output rate is the OpusHead input rate when the decoder supports it, else the next supported
/// rate above it (48 kHz when the header says 0 or more than 48 kHz).
pub(crate) fn decode(bytes: &[u8]) -> Result<Decoded, AudioError> {
    let bad = |what: &str| AudioError::Decode(format!("ogg/opus: {what}"));
    let mut reader = PacketReader::new(Cursor::new(bytes));
    let read = |reader: &mut PacketReader<Cursor<&[u8]>>| reader.read_packet().map_err(|e| bad(&e.to_string()));

    let head = read(&mut reader)?.ok_or_else(|| bad("empty stream"))?;
    let header = OpusHeader::parse(&head.data)?;
    let serial = head.stream_serial();
    let rate = match header.input_rate {
        0 => GRANULE_RATE,
        input => DECODER_RATES.into_iter().find(|r| *r >= input).unwrap_or(GRANULE_RATE),
    };
    let channels = usize::from(header.channels);
    let mut opus = OpusDecoder::new(rate as i32, channels).map_err(bad)?;
    let max_frame = (rate as usize * 120) / 1000; // Opus packets are at most 120 ms
    let mut pcm = vec![0f32; max_frame * channels];
    let granule_step = u64::from(GRANULE_RATE / rate);

    let mut samples: Vec<i16> = Vec::new();
    let mut packet_index = 0usize;
    // Granule position of decoded sample 0: non-zero when the stream was cut from a longer one.
    let mut granule_offset: Option<i128> = None;
    let mut end_granule = None;
    while let Some(packet) = read(&mut reader)? {
        if packet.stream_serial() != serial {
            continue;
        }
        packet_index += 1;
        if packet_index == 1 {
            if !packet.data.starts_with(b"OpusTags") {
                return Err(bad("missing OpusTags header"));
            }
            continue;
        }
        let n = opus.decode(&packet.data, max_frame, &mut pcm).map_err(bad)?;
        let frames = pcm.get(..n * channels).ok_or_else(|| bad("decoder overran its buffer"))?;
        samples.extend(frames.chunks_exact(channels).map(|c| to_i16(mean(c) * 32768.0)));
        let granule = packet.absgp_page();
        if granule_offset.is_none() && packet.last_in_page() && granule != u64::MAX {
            granule_offset = Some(i128::from(granule) - (samples.len() as u64 * granule_step) as i128);
        }
        if packet.last_in_stream() {
            end_granule = Some(granule);
            break;
        }
    }

    // RFC 7845 §4: the pre-skip is always dropped; a first page whose granule position is below the
    // samples it completes asks for more to be dropped (a positive offset is a stream that starts
    // later in time, nothing to drop); a finished stream ends at its last granule position.
    let offset = granule_offset.unwrap_or(0);
    let to_samples = |granules: i128| usize::try_from(granules.max(0) / i128::from(granule_step)).unwrap_or(0);
    if let Some(end) = end_granule {
        samples.truncate(to_samples(i128::from(end) - offset));
    }
    let skip = to_samples(i128::from(header.pre_skip) + (-offset).max(0)).min(samples.len());
    samples.drain(..skip);
    Ok(Decoded { sample_rate: rate, samples })
}

fn mean(values: &[f32]) -> f64 {
    values.iter().map(|v| f64::from(*v)).sum::<f64>() / values.len().max(1) as f64
}

struct OpusHeader {
    channels: u8,
    pre_skip: u16,
    input_rate: u32,
}

impl OpusHeader {
    fn parse(data: &[u8]) -> Result<Self, AudioError> {
        let bad = |what: &str| AudioError::Decode(format!("ogg/opus: {what}"));
        if data.len() < 19 || !data.starts_with(b"OpusHead") {
            return Err(bad("missing OpusHead header"));
        }
        if data[8] >> 4 != 0 {
            return Err(bad("unsupported OpusHead version"));
        }
        let channels = data[9];
        let pre_skip = u16::from_le_bytes([data[10], data[11]]);
        let input_rate = u32::from_le_bytes([data[12], data[13], data[14], data[15]]);
        let family = data[18];
        if family != 0 || !(1..=2).contains(&channels) {
            return Err(AudioError::Unsupported(format!(
                "ogg/opus with {channels} channels in mapping family {family} (only mono and stereo)"
            )));
        }
        Ok(Self { channels, pre_skip, input_rate })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, len: usize) -> Vec<i16> {
        (0..len).map(|i| (8000.0 * (i as f64 * 440.0 * std::f64::consts::TAU / f64::from(rate)).sin()) as i16).collect()
    }

    #[test]
    fn round_trip_keeps_the_exact_length() {
        for rate in CODED_RATES {
            let input = tone(rate, rate as usize * 3 / 4 + 7);
            let mut enc = OggOpusEncoder::new(rate, 64).unwrap();
            let mut bytes = Vec::new();
            for chunk in input.chunks(333) {
                bytes.extend(enc.encode(chunk).unwrap());
            }
            bytes.extend(enc.finish().unwrap());
            let decoded = decode(&bytes).unwrap();
            assert_eq!(decoded.sample_rate, rate);
            assert_eq!(decoded.samples.len(), input.len(), "rate {rate}");
        }
    }

    #[test]
    fn pre_skip_aligns_output_with_input() {
        // A chirp has one clear correlation peak: it must sit at lag 0.
        let rate = 48_000;
        let input: Vec<i16> = (0..rate as usize / 2)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (12_000.0 * (std::f64::consts::TAU * (300.0 * t + 3000.0 * t * t)).sin()) as i16
            })
            .collect();
        let mut enc = OggOpusEncoder::new(rate, 96).unwrap();
        let mut bytes = enc.encode(&input).unwrap();
        bytes.extend(enc.finish().unwrap());
        let output = decode(&bytes).unwrap().samples;
        let correlation = |lag: i64| -> f64 {
            (2000..20_000i64).map(|i| f64::from(input[i as usize]) * f64::from(output[(i + lag) as usize])).sum()
        };
        let best = (-60..=60).max_by(|a, b| correlation(*a).total_cmp(&correlation(*b))).unwrap();
        assert_eq!(best, 0);
    }

    #[test]
    fn streams_cut_from_the_middle_are_trimmed_by_granule() {
        // Same stream, but every granule position shifted as if 960 samples came before it.
        let mut enc = OggOpusEncoder::new(48_000, 64).unwrap();
        let input = tone(48_000, 10_000);
        let mut bytes = enc.encode(&input).unwrap();
        bytes.extend(enc.finish().unwrap());
        let mut shifted = Vec::new();
        let mut reader = PacketReader::new(Cursor::new(&bytes[..]));
        let mut writer = PacketWriter::new(&mut shifted);
        while let Some(p) = reader.read_packet().unwrap() {
            let end = if p.last_in_stream() {
                PacketWriteEndInfo::EndStream
            } else if p.last_in_page() {
                PacketWriteEndInfo::EndPage
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            let granule = if p.absgp_page() == 0 { 0 } else { p.absgp_page() + 960 };
            writer.write_packet(p.data.clone(), p.stream_serial(), end, granule).unwrap();
        }
        drop(writer);
        let (cut, whole) = (decode(&shifted).unwrap().samples, decode(&bytes).unwrap().samples);
        assert_eq!(cut.len(), input.len());
        assert!(cut == whole, "same samples");
    }

    #[test]
    fn headers_come_first_and_empty_clips_are_valid() {
        let mut enc = OggOpusEncoder::new(24_000, 64).unwrap();
        let first = enc.encode(&[]).unwrap();
        assert!(first.starts_with(b"OggS"));
        assert!(first.windows(8).any(|w| w == b"OpusHead"));
        assert!(first.windows(8).any(|w| w == b"OpusTags"));
        let mut all = first;
        all.extend(enc.finish().unwrap());
        assert!(decode(&all).unwrap().samples.is_empty());
    }

    #[test]
    fn rates_and_bitrates() {
        assert_eq!(codec_rate(8_000), 8_000);
        assert_eq!(codec_rate(11_025), 16_000);
        assert_eq!(codec_rate(22_050), 24_000);
        assert_eq!(codec_rate(44_100), 48_000);
        assert_eq!(choose_bitrate(None).unwrap(), 64);
        assert!(matches!(choose_bitrate(Some(2)), Err(AudioError::Unsupported(_))));
        assert!(matches!(choose_bitrate(Some(512)), Err(AudioError::Unsupported(_))));
    }
}
