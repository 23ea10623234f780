//! How long a stream of encoded audio plays, counted from its framing as it passes through — no
//! decoding. Usage records need the audio length of clips the gateway never converts: MPEG audio
//! and ADTS AAC are counted frame by frame from their headers, Ogg Opus from the last page's
//! granule position, FLAC from the position of its newest frame, raw formats and WAV from their
//! size.

mod flac;

use self::flac::FlacCounter;
use super::{AudioFormat, AudioSpec};

/// The longest frame or page header run kept between chunks.
const MAX_PENDING: usize = 64 * 1024;

pub struct DurationCounter {
    spec: AudioSpec,
    pending: Vec<u8>,
    bytes: u64,
    /// Samples counted so far, and the rate they are at (from the frame headers).
    samples: u64,
    rate: u32,
    /// MPEG: an ID3v2 tag is being skipped for this many more bytes.
    skip: usize,
    started: bool,
    /// Ogg Opus: the newest granule position and the stream's pre-skip.
    granule: u64,
    pre_skip: u64,
    flac: Option<FlacCounter>,
}

impl DurationCounter {
    pub fn new(spec: AudioSpec) -> Self {
        Self {
            spec,
            pending: Vec::new(),
            bytes: 0,
            samples: 0,
            rate: spec.sample_rate,
            skip: 0,
            started: false,
            granule: 0,
            pre_skip: 0,
            flac: (spec.format == AudioFormat::Flac).then(FlacCounter::new),
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
        match self.spec.format {
            AudioFormat::Mp3 | AudioFormat::Aac | AudioFormat::Opus => {
                self.pending.extend_from_slice(bytes);
                match self.spec.format {
                    AudioFormat::Mp3 => self.scan_mpeg(),
                    AudioFormat::Aac => self.scan_adts(),
                    _ => self.scan_ogg(),
                }
                if self.pending.len() > MAX_PENDING {
                    // Not the framing we expected: stop buffering rather than grow without bound.
                    self.pending.clear();
                }
            }
            AudioFormat::Flac => {
                if let Some(flac) = &mut self.flac {
                    flac.push(bytes);
                }
            }
            AudioFormat::Wav | AudioFormat::Pcm | AudioFormat::Ulaw | AudioFormat::Alaw => {}
        }
    }

    /// The length of everything pushed so far, when the format allows counting it and the
    /// count is believable: positions read from vendor bytes that imply more than
    /// [`MAX_BELIEVABLE_MS`] are not a length, and are reported as unknown.
    pub fn duration_ms(&self) -> Option<u64> {
        self.counted_ms().filter(|ms| *ms <= MAX_BELIEVABLE_MS)
    }

    fn counted_ms(&self) -> Option<u64> {
        let rate = u64::from(self.rate.max(1));
        let samples = match self.spec.format {
            AudioFormat::Pcm => self.bytes / 2,
            AudioFormat::Ulaw | AudioFormat::Alaw => self.bytes,
            AudioFormat::Wav => self.bytes.saturating_sub(44) / 2,
            AudioFormat::Mp3 | AudioFormat::Aac => self.samples,
            AudioFormat::Opus => return Some(millis(self.granule.saturating_sub(self.pre_skip), 48_000)),
            AudioFormat::Flac => {
                let flac = self.flac.as_ref()?;
                let rate = u64::from(flac.rate.unwrap_or(self.spec.sample_rate).max(1));
                return (flac.end > 0).then(|| millis(flac.end, rate));
            }
        };
        Some(millis(samples, rate))
    }

    fn scan_mpeg(&mut self) {
        let mut at = 0;
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.pending.len() - at);
                self.skip -= n;
                at += n;
                if self.skip > 0 {
                    break;
                }
            }
            let rest = &self.pending[at..];
            if !self.started && rest.len() < 10 && b"ID3".starts_with(&rest[..rest.len().min(3)]) {
                break; // perhaps the start of a tag: wait for its header
            }
            if !self.started && rest.starts_with(b"ID3") {
                let size = rest[6..10].iter().fold(0usize, |acc, b| (acc << 7) | usize::from(b & 0x7f));
                let footer = if rest[5] & 0x10 != 0 { 10 } else { 0 };
                self.skip = 10 + size + footer;
                continue;
            }
            if rest.len() < 4 {
                break;
            }
            let Some((length, samples, rate)) = mpeg_frame(rest) else {
                at += 1; // resynchronise
                continue;
            };
            if rest.len() < length {
                break;
            }
            // A Xing/Info frame describes the stream and holds no audio.
            let info = !self.started && rest[..length].windows(4).any(|w| w == b"Xing" || w == b"Info");
            if !info {
                self.samples += samples;
                self.rate = rate;
            }
            self.started = true;
            at += length;
        }
        self.pending.drain(..at);
    }

    fn scan_adts(&mut self) {
        let mut at = 0;
        while self.pending.len() - at >= 7 {
            let rest = &self.pending[at..];
            let Some((length, samples, rate)) = adts_frame(rest) else {
                at += 1;
                continue;
            };
            if rest.len() < length {
                break;
            }
            self.samples += samples;
            self.rate = rate;
            at += length;
        }
        self.pending.drain(..at);
    }

    fn scan_ogg(&mut self) {
        let mut at = 0;
        while self.pending.len() - at >= 27 {
            let rest = &self.pending[at..];
            if !rest.starts_with(b"OggS") {
                at += 1;
                continue;
            }
            let segments = usize::from(rest[26]);
            if rest.len() < 27 + segments {
                break;
            }
            let body: usize = rest[27..27 + segments].iter().map(|b| usize::from(*b)).sum();
            let length = 27 + segments + body;
            if rest.len() < length {
                break;
            }
            let packet = &rest[27 + segments..length];
            if packet.starts_with(b"OpusHead") && packet.len() >= 12 {
                self.pre_skip = u64::from(u16::from_le_bytes([packet[10], packet[11]]));
            }
            let mut granule = [0u8; 8];
            granule.copy_from_slice(&rest[6..14]);
            let granule = u64::from_le_bytes(granule);
            if granule != u64::MAX {
                self.granule = self.granule.max(granule);
            }
            at += length;
        }
        self.pending.drain(..at);
    }
}

/// A day: no clip the gateway passes on is longer, so a longer count is a vendor's nonsense.
pub const MAX_BELIEVABLE_MS: u64 = 24 * 3600 * 1000;

/// `samples` at `rate` in milliseconds, without overflow: positions come from vendor bytes
/// (an Ogg granule can be anything up to 2^64 - 2).
fn millis(samples: u64, rate: u64) -> u64 {
    u64::try_from(u128::from(samples) * 1000 / u128::from(rate.max(1))).unwrap_or(u64::MAX)
}

/// An MPEG-1/2/2.5 Layer III frame header: (frame length, samples, sample rate).
fn mpeg_frame(h: &[u8]) -> Option<(usize, u64, u32)> {
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 3; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    if version == 1 || (h[1] >> 1) & 3 != 1 {
        return None; // reserved version, or not Layer III
    }
    const MPEG1: [u32; 15] = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
    const MPEG2: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    let bitrate_index = usize::from(h[2] >> 4);
    let rate_index = usize::from((h[2] >> 2) & 3);
    if bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    let (bitrate, rate, samples, factor) = match version {
        3 => (MPEG1[bitrate_index], [44_100, 48_000, 32_000][rate_index], 1152, 144),
        2 => (MPEG2[bitrate_index], [22_050, 24_000, 16_000][rate_index], 576, 72),
        _ => (MPEG2[bitrate_index], [11_025, 12_000, 8_000][rate_index], 576, 72),
    };
    let padding = usize::from((h[2] >> 1) & 1);
    let length = (factor * bitrate as usize * 1000) / rate as usize + padding;
    Some((length, samples, rate))
}

/// An ADTS header: (frame length, samples, sample rate).
fn adts_frame(h: &[u8]) -> Option<(usize, u64, u32)> {
    if h[0] != 0xFF || h[1] & 0xF6 != 0xF0 {
        return None;
    }
    const RATES: [u32; 13] =
        [96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000, 7_350];
    let rate = *RATES.get(usize::from((h[2] >> 2) & 0x0F))?;
    let length = (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
    if length < 7 {
        return None;
    }
    let blocks = u64::from(h[6] & 3) + 1;
    Some((length, 1024 * blocks, rate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::encoder;

    fn tone(rate: u32, seconds: f64) -> Vec<i16> {
        (0..(f64::from(rate) * seconds) as usize)
            .map(|i| ((i as f64 * 440.0 * 2.0 * std::f64::consts::PI / f64::from(rate)).sin() * 12_000.0) as i16)
            .collect()
    }

    /// Encodes one second with our own encoder and counts it back in awkward chunk sizes.
    fn count(spec: AudioSpec) -> u64 {
        let mut enc = encoder(spec).unwrap();
        let mut out = enc.encode(&tone(spec.sample_rate, 1.0)).unwrap();
        out.extend(enc.finish().unwrap());
        let mut counter = DurationCounter::new(spec);
        for chunk in out.chunks(333) {
            counter.push(chunk);
        }
        counter.duration_ms().unwrap()
    }

    #[test]
    fn counts_mp3_frames() {
        for rate in [8_000, 16_000, 24_000, 44_100] {
            let ms = count(AudioSpec { format: AudioFormat::Mp3, sample_rate: rate, bitrate_kbps: None });
            // The encoder's start-up delay and last-frame padding add up to ~2 frames.
            assert!((1_000..=1_160).contains(&ms), "{rate} Hz: {ms} ms");
        }
    }

    #[test]
    fn absurd_vendor_positions_do_not_overflow() {
        let mut counter =
            DurationCounter::new(AudioSpec { format: AudioFormat::Opus, sample_rate: 48_000, bitrate_kbps: None });
        let mut page = b"OggS\x00\x00".to_vec();
        page.extend_from_slice(&(u64::MAX - 1).to_le_bytes());
        page.extend_from_slice(&[0; 12]);
        page.push(1);
        page.push(0);
        counter.push(&page);
        assert_eq!(counter.counted_ms(), Some(u64::MAX / 48));
        assert_eq!(counter.duration_ms(), None, "an impossible length is unknown, not a usage figure");
        assert_eq!(millis(u64::MAX, 1), u64::MAX, "saturates");
    }

    #[test]
    fn counts_ogg_opus_by_granule() {
        let ms = count(AudioSpec { format: AudioFormat::Opus, sample_rate: 48_000, bitrate_kbps: None });
        assert!((990..=1_010).contains(&ms), "{ms} ms");
    }

    #[test]
    fn counts_raw_and_wav_by_size_and_skips_id3() {
        let mut pcm = DurationCounter::new(AudioSpec::pcm(24_000));
        pcm.push(&[0; 24_000]);
        assert_eq!(pcm.duration_ms(), Some(500));
        let mut wav =
            DurationCounter::new(AudioSpec { format: AudioFormat::Wav, sample_rate: 8_000, bitrate_kbps: None });
        wav.push(&[0; 44 + 16_000]);
        assert_eq!(wav.duration_ms(), Some(1_000));

        // An ID3v2 tag of 20 bytes, then two MPEG-1 128 kbit/s 44.1 kHz frames (417 bytes each).
        let mut mp3 = vec![b'I', b'D', b'3', 4, 0, 0, 0, 0, 0, 20];
        // Tag content that looks like frame sync must not be counted.
        mp3.extend([0xFF, 0xFB, 0x90, 0x00]);
        mp3.extend([0u8; 16]);
        for _ in 0..2 {
            let mut frame = vec![0u8; 417];
            frame[..4].copy_from_slice(&[0xFF, 0xFB, 0x90, 0x00]);
            mp3.extend(frame);
        }
        let mut counter =
            DurationCounter::new(AudioSpec { format: AudioFormat::Mp3, sample_rate: 44_100, bitrate_kbps: None });
        for byte in &mp3 {
            counter.push(std::slice::from_ref(byte));
        }
        assert_eq!(counter.duration_ms(), Some(2 * 1152 * 1000 / 44_100));
    }

    #[test]
    fn counts_adts_frames_and_ignores_garbage() {
        // Two ADTS frames at 24 kHz, 20 bytes each, one raw data block.
        let frame = |len: usize| {
            let mut f = vec![
                0xFF,
                0xF1,
                (1 << 6) | (6 << 2),
                0x80 | ((len >> 11) as u8 & 3),
                (len >> 3) as u8,
                ((len & 7) << 5) as u8 | 0x1F,
                0xFC,
            ];
            f.resize(len, 0);
            f
        };
        let mut bytes = b"junk".to_vec();
        bytes.extend(frame(20));
        bytes.extend(frame(20));
        let mut counter =
            DurationCounter::new(AudioSpec { format: AudioFormat::Aac, sample_rate: 24_000, bitrate_kbps: None });
        counter.push(&bytes);
        assert_eq!(counter.duration_ms(), Some(2 * 1024 * 1000 / 24_000));
    }

    #[test]
    fn counts_flac_frames_from_their_positions() {
        for rate in [8_000, 24_000, 44_100] {
            let spec = AudioSpec { format: AudioFormat::Flac, sample_rate: rate, bitrate_kbps: None };
            assert_eq!(count(spec), 1_000, "{rate} Hz");
        }
        // A clip that is not a whole number of blocks ends with a shorter frame.
        let spec = AudioSpec { format: AudioFormat::Flac, sample_rate: 16_000, bitrate_kbps: None };
        let mut enc = encoder(spec).unwrap();
        let mut out = enc.encode(&tone(16_000, 0.7777)).unwrap();
        out.extend(enc.finish().unwrap());
        let mut counter = DurationCounter::new(spec);
        for byte in &out {
            counter.push(std::slice::from_ref(byte));
        }
        assert_eq!(counter.duration_ms(), Some(12_443 * 1000 / 16_000));

        let mut empty = DurationCounter::new(spec);
        empty.push(b"fLaC");
        assert_eq!(empty.duration_ms(), None, "no frame yet");
    }

    #[test]
    fn flac_sync_lookalikes_in_audio_are_not_frames() {
        // Two variable-block-size frames of 1000 samples, at 0 and 1000, with a header-shaped run
        // (CRC and all) claiming sample 127 in the last frame's data.
        let header = |sample: &[u8]| {
            let mut h = vec![0xFF, 0xF9, 0x77, 0x08];
            h.extend(sample);
            h.extend([0x03, 0xE7]);
            h.push(super::flac::crc8(&h));
            h
        };
        let mut bytes = b"fLaC".to_vec();
        bytes.extend([0x80, 0, 0, 0]); // an empty last metadata block (not STREAMINFO)
        bytes.extend(header(&[0]));
        bytes.extend([1, 2, 3]);
        // Sample 1000, coded like UTF-8 in two bytes: 110_01111 10_101000.
        bytes.extend(header(&[0xCF, 0xA8]));
        bytes.extend([4, 5]);
        bytes.extend(header(&[0x7F])); // not where the next frame must start: ignored
        bytes.extend([6, 7, 8]);
        let spec = AudioSpec { format: AudioFormat::Flac, sample_rate: 24_000, bitrate_kbps: None };
        let mut counter = DurationCounter::new(spec);
        counter.push(&bytes);
        assert_eq!(counter.duration_ms(), Some(2_000 * 1000 / 24_000));
    }
}
