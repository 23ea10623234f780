//! FLAC's length from its framing. A frame's size is known only by decoding it, but every frame
//! header carries its position: the frame number (fixed block size) or the number of its first
//! sample (variable block size), and its block size. So the counter skips the metadata blocks,
//! looks for frame headers, and takes the end of the newest one. A header is believed only if
//! its CRC-8 holds and its position is exactly the one after the previous frame, so audio data
//! that happens to look like a sync code is never counted.

/// The longest frame header: sync and codes (4), a 7-byte coded number, block size (2),
/// sample rate (2), CRC-8 (1).
const MAX_HEADER: usize = 16;

enum Phase {
    /// Waiting for the `fLaC` marker.
    Marker,
    /// Reading metadata block headers; `skip` bytes of the current block are still to come.
    Metadata,
    Frames,
}

pub(super) struct FlacCounter {
    phase: Phase,
    pending: Vec<u8>,
    skip: usize,
    /// The sample rate from STREAMINFO, for frames whose header refers to it.
    stream_rate: Option<u32>,
    /// The position the next frame must have: frame number or first sample number.
    expected: u64,
    /// The block size of a fixed-block-size stream (every frame but the last has it).
    fixed_block: u64,
    /// The blocking strategy, from the first frame: variable (`true`) or fixed block size.
    variable: Option<bool>,
    /// Samples up to the end of the newest frame, and their rate.
    pub(super) end: u64,
    pub(super) rate: Option<u32>,
}

impl FlacCounter {
    pub(super) fn new() -> Self {
        Self {
            phase: Phase::Marker,
            pending: Vec::new(),
            skip: 0,
            stream_rate: None,
            expected: 0,
            fixed_block: 0,
            variable: None,
            end: 0,
            rate: None,
        }
    }

    pub(super) fn push(&mut self, mut bytes: &[u8]) {
        let skipped = self.skip.min(bytes.len());
        self.skip -= skipped;
        bytes = &bytes[skipped..];
        self.pending.extend_from_slice(bytes);
        loop {
            match self.phase {
                Phase::Marker => {
                    if self.pending.len() < 4 {
                        return;
                    }
                    if self.pending.starts_with(b"fLaC") {
                        self.pending.drain(..4);
                        self.phase = Phase::Metadata;
                    } else {
                        self.phase = Phase::Frames; // no marker: look for frames anyway
                    }
                }
                Phase::Metadata => {
                    if self.skip > 0 || self.pending.len() < 4 {
                        return;
                    }
                    let p = &self.pending;
                    let last = p[0] & 0x80 != 0;
                    let length = (usize::from(p[1]) << 16) | (usize::from(p[2]) << 8) | usize::from(p[3]);
                    if p[0] & 0x7F == 0 && length >= 18 {
                        // STREAMINFO: the sample rate is the 20 bits after 10 bytes of sizes.
                        if p.len() < 4 + 13 {
                            return;
                        }
                        let rate = (u32::from(p[14]) << 12) | (u32::from(p[15]) << 4) | (u32::from(p[16]) >> 4);
                        self.stream_rate = (rate > 0).then_some(rate);
                    }
                    let block = 4 + length;
                    let taken = block.min(self.pending.len());
                    self.pending.drain(..taken);
                    self.skip = block - taken;
                    if last {
                        self.phase = Phase::Frames;
                    }
                }
                Phase::Frames => {
                    if self.skip == 0 {
                        self.scan_frames();
                    }
                    return;
                }
            }
        }
    }

    fn scan_frames(&mut self) {
        let mut at = 0;
        while self.pending.len() - at >= 2 {
            let rest = &self.pending[at..];
            if rest[0] != 0xFF || rest[1] & 0xFE != 0xF8 {
                at += 1;
                continue;
            }
            match frame_header(rest) {
                Header::Incomplete => break,
                Header::Invalid => at += 1,
                Header::Frame { length, variable, number, block, rate } => {
                    if self.accept(variable, number, block, rate) {
                        at += length;
                    } else {
                        at += 1;
                    }
                }
            }
        }
        self.pending.drain(..at);
        if self.pending.len() > MAX_HEADER {
            let excess = self.pending.len() - MAX_HEADER;
            self.pending.drain(..excess);
        }
    }

    fn accept(&mut self, variable: bool, number: u64, block: u64, rate: Option<u32>) -> bool {
        // A stream keeps the blocking strategy of its first frame.
        if number != self.expected || self.variable.is_some_and(|v| v != variable) {
            return false;
        }
        self.variable = Some(variable);
        if variable {
            self.end = number + block;
            self.expected = self.end;
        } else {
            if number == 0 {
                self.fixed_block = block;
            }
            self.end = number * self.fixed_block + block;
            self.expected = number + 1;
        }
        self.rate = rate.or(self.stream_rate);
        true
    }
}

enum Header {
    Incomplete,
    Invalid,
    Frame { length: usize, variable: bool, number: u64, block: u64, rate: Option<u32> },
}

/// Reads a frame header at the start of `h` (which starts with the sync code).
fn frame_header(h: &[u8]) -> Header {
    let byte = |i: usize| h.get(i).copied();
    let (Some(codes), Some(layout), Some(first)) = (byte(2), byte(3), byte(4)) else {
        return Header::Incomplete;
    };
    let (block_code, rate_code) = (codes >> 4, codes & 0x0F);
    // Reserved codes: block size 0, sample rate 15, channel layouts above 10, sample size 3,
    // and the last bit of the layout byte.
    if block_code == 0 || rate_code == 15 || layout >> 4 > 10 || (layout >> 1) & 7 == 3 || layout & 1 != 0 {
        return Header::Invalid;
    }
    // The position, coded like UTF-8 (up to 7 bytes, 36 bits).
    let extra = match first.leading_ones() {
        0 => 0,
        ones @ 2..=7 => ones as usize - 1,
        _ => return Header::Invalid,
    };
    let mut number = u64::from(first & (0x7F >> extra));
    let mut at = 5;
    for _ in 0..extra {
        let Some(next) = byte(at) else { return Header::Incomplete };
        if next & 0xC0 != 0x80 {
            return Header::Invalid;
        }
        number = (number << 6) | u64::from(next & 0x3F);
        at += 1;
    }
    let mut read = |bytes: usize| -> Option<u64> {
        let value = h.get(at..at + bytes)?.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        at += bytes;
        Some(value)
    };
    let block = match block_code {
        1 => Some(192),
        2..=5 => Some(576 << (block_code - 2)),
        6 => read(1).map(|v| v + 1),
        7 => read(2).map(|v| v + 1),
        _ => Some(256 << (block_code - 8)),
    };
    const RATES: [u32; 12] =
        [0, 88_200, 176_400, 192_000, 8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 96_000];
    let rate = match rate_code {
        0 => Some(None),
        12 => read(1).map(|v| Some(v as u32 * 1000)),
        13 => read(2).map(|v| Some(v as u32)),
        14 => read(2).map(|v| Some(v as u32 * 10)),
        code => Some(Some(RATES[usize::from(code)])),
    };
    let (Some(block), Some(rate), Some(crc)) = (block, rate, h.get(at)) else {
        return Header::Incomplete;
    };
    if rate == Some(0) {
        return Header::Invalid;
    }
    if crc8(&h[..at]) != *crc {
        return Header::Invalid;
    }
    Header::Frame { length: at + 1, variable: h[1] & 1 == 1, number, block, rate }
}

/// CRC-8 with polynomial x⁸ + x² + x + 1, initial value 0, as FLAC frame headers use.
pub(super) fn crc8(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |mut crc, byte| {
        crc ^= byte;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 { (crc << 1) ^ 0x07 } else { crc << 1 };
        }
        crc
    })
}
