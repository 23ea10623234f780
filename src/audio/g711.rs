//! G.711 μ-law and A-law, written from the ITU-T G.711 definition.
//!
//! Both laws compress a 14-bit (μ) or 13-bit (A) linear magnitude into one sign bit, a 3-bit segment
//! (exponent) and a 4-bit step within the segment. 16-bit input is reduced to those widths by
//! dropping low bits; negative values use the one's complement so the quantiser stays symmetric.
//! Decoding returns the middle of the chosen step, scaled back to 16 bits. μ-law codes are
//! transmitted inverted; A-law codes have their even bits inverted (XOR 0x55).

/// μ-law bias added before finding the segment (33 in 14-bit units, 132 in 16-bit units).
const ULAW_BIAS: i32 = 0x84;
/// Largest 16-bit magnitude μ-law can represent before the bias would overflow the top segment.
const ULAW_CLIP: i32 = 32_635;

pub(crate) fn ulaw_encode(sample: i16) -> u8 {
    let value = i32::from(sample);
    let (sign, magnitude) = if value < 0 { (0x80, !value) } else { (0x00, value) };
    let biased = magnitude.min(ULAW_CLIP) + ULAW_BIAS;
    // Segment = position of the highest set bit above bit 7 (biased values are in 132..=32767).
    let segment = (biased >> 7).max(1).ilog2();
    let step = (biased >> (segment + 3)) & 0x0F;
    let code = (sign | (segment << 4) as i32 | step) as u8;
    !code
}

pub(crate) fn ulaw_decode(code: u8) -> i16 {
    let code = !code;
    let segment = (code >> 4) & 0x07;
    let step = i32::from(code & 0x0F);
    let magnitude = (((step << 3) + ULAW_BIAS) << segment) - ULAW_BIAS;
    let value = if code & 0x80 != 0 { -magnitude } else { magnitude };
    value as i16
}

pub(crate) fn alaw_encode(sample: i16) -> u8 {
    let value = i32::from(sample);
    // A-law sends positive values with the sign bit set.
    let (sign, magnitude) = if value < 0 { (0x00, !value) } else { (0x80, value) };
    let magnitude = magnitude >> 3; // 13-bit magnitude, 0..=4095
    let (segment, step) = if magnitude < 32 {
        (0, magnitude >> 1)
    } else {
        let segment = magnitude.ilog2() - 4;
        (segment, (magnitude >> segment) & 0x0F)
    };
    let code = (sign | (segment << 4) as i32 | step) as u8;
    code ^ 0x55
}

pub(crate) fn alaw_decode(code: u8) -> i16 {
    let code = code ^ 0x55;
    let segment = (code >> 4) & 0x07;
    let step = i32::from(code & 0x0F);
    let magnitude = if segment == 0 { (step << 1) + 1 } else { ((step | 0x10) << segment) + (1 << (segment - 1)) };
    let value = if code & 0x80 != 0 { magnitude << 3 } else { -(magnitude << 3) };
    value as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_survives_decode_then_encode() {
        for code in 0..=255u8 {
            // 0x7F is μ-law's "negative zero": it decodes to 0, which encodes as 0xFF.
            if code != 0x7F {
                assert_eq!(ulaw_encode(ulaw_decode(code)), code, "ulaw {code:#04x}");
            }
            assert_eq!(alaw_encode(alaw_decode(code)), code, "alaw {code:#04x}");
        }
    }

    #[test]
    fn known_values_from_the_definition() {
        // μ-law: silence is 0xFF, full scale is 0x80 / 0x00, and decodes to ±32124.
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_decode(0x80), 32_124);
        assert_eq!(ulaw_decode(0x00), -32_124);
        // A-law: the smallest steps are 0xD5 (+8) and 0x55 (-8); full scale is ±32256.
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(alaw_encode(i16::MAX)), 32_256);
        assert_eq!(alaw_decode(alaw_encode(i16::MIN)), -32_256);
    }

    #[test]
    fn quantisation_error_stays_within_half_a_step() {
        for sample in (i16::MIN..=i16::MAX).step_by(7) {
            let value = i32::from(sample);
            let step_u = (((value.abs() + ULAW_BIAS) >> 7).max(1).ilog2() + 3).min(10);
            assert!((i32::from(ulaw_decode(ulaw_encode(sample))) - value).abs() <= 1 << step_u, "ulaw {sample}");
            let a = (i32::from(alaw_decode(alaw_encode(sample))) - value).abs();
            assert!(a <= 1024, "alaw {sample}: {a}");
        }
    }
}
