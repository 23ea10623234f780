//! The audio pipeline against an independent reference: everything we encode is probed and decoded
//! by ffmpeg/ffprobe, and everything ffmpeg encodes is decoded by us. Needs `ffmpeg` on the PATH
//! (`scripts/test.sh` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use speechgate::audio::{
    decode, duration_ms, encoder, output_spec, AudioError, AudioFormat, AudioSpec, DurationCounter, PcmTranscoder,
    Resampler,
};

const RATES: [u32; 6] = [8_000, 16_000, 22_050, 24_000, 44_100, 48_000];
const CLIP_SECONDS: f64 = 1.5;
/// Chunk sizes cycled through when feeding bytes: odd sizes split samples, 0 is an empty push.
const BYTE_CHUNKS: [usize; 9] = [1, 333, 4096, 7, 0, 1001, 2, 65_537, 95];
/// Chunk sizes cycled through when feeding samples to an encoder directly.
const SAMPLE_CHUNKS: [usize; 6] = [1, 160, 2047, 13, 4800, 441];

// ---------------------------------------------------------------------------------------------
// Signals and measurements

/// A 440 Hz tone under a 200 → 3000 Hz sweep: speech-band content a lossy codec must keep.
fn test_signal(rate: u32, seconds: f64) -> Vec<i16> {
    let len = (f64::from(rate) * seconds).round() as usize;
    let mut phase = 0.0f64;
    (0..len)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let sweep_freq = 200.0 + 2800.0 * t / seconds;
            phase += std::f64::consts::TAU * sweep_freq / f64::from(rate);
            let v = 0.35 * (std::f64::consts::TAU * 440.0 * t).sin() + 0.25 * phase.sin();
            (v * 32767.0).round() as i16
        })
        .collect()
}

fn sine(freq: f64, rate: u32, len: usize, amplitude: f64) -> Vec<i16> {
    (0..len)
        .map(|i| (amplitude * (std::f64::consts::TAU * freq * i as f64 / f64::from(rate)).sin()).round() as i16)
        .collect()
}

/// Power of `freq` in `samples` relative to a full-scale sine, in dB (Goertzel).
fn tone_level_db(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let w = std::f64::consts::TAU * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for s in samples {
        let s0 = f64::from(*s) / 32768.0 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let amplitude = 2.0 * power.sqrt() / samples.len() as f64;
    20.0 * amplitude.log10()
}

/// Frequency estimate from rising zero crossings.
fn zero_crossing_freq(samples: &[i16], rate: u32) -> f64 {
    let crossings = samples.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
    crossings as f64 * f64::from(rate) / samples.len() as f64
}

fn bytes_of(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn samples_of(bytes: &[u8]) -> Vec<i16> {
    bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

// ---------------------------------------------------------------------------------------------
// Feeding the pipeline

fn transcode(input_rate: u32, samples: &[i16], output: AudioSpec) -> Vec<u8> {
    let bytes = bytes_of(samples);
    let mut transcoder = PcmTranscoder::new(input_rate, output).unwrap();
    let mut out = Vec::new();
    let mut offset = 0;
    for size in BYTE_CHUNKS.into_iter().cycle() {
        if offset >= bytes.len() {
            break;
        }
        let end = (offset + size).min(bytes.len());
        out.extend(transcoder.push(&bytes[offset..end]).unwrap());
        offset = end;
    }
    out.extend(transcoder.finish().unwrap());
    out
}

fn encode_directly(spec: AudioSpec, samples: &[i16]) -> Vec<u8> {
    let mut enc = encoder(spec).unwrap();
    let mut out = Vec::new();
    let mut rest = samples;
    for size in SAMPLE_CHUNKS.into_iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        out.extend(enc.encode(chunk).unwrap());
        rest = tail;
    }
    out.extend(enc.finish().unwrap());
    out
}

// ---------------------------------------------------------------------------------------------
// ffmpeg as the reference

fn ffmpeg_available() {
    let ok = Command::new("ffprobe").arg("-version").output().is_ok_and(|o| o.status.success());
    assert!(ok, "{}", common::needs("ffmpeg and ffprobe"));
}

/// ffmpeg's demuxer arguments for headerless formats.
fn raw_input_args(format: AudioFormat, rate: u32) -> Vec<String> {
    let demuxer = match format {
        AudioFormat::Pcm => "s16le",
        AudioFormat::Ulaw => "mulaw",
        AudioFormat::Alaw => "alaw",
        _ => return Vec::new(),
    };
    ["-f", demuxer, "-ar", &rate.to_string(), "-ac", "1"].iter().map(ToString::to_string).collect()
}

fn extension(format: AudioFormat) -> &'static str {
    match format {
        AudioFormat::Opus => "ogg",
        other => other.as_str(),
    }
}

#[derive(Debug)]
struct Probe {
    codec: String,
    sample_rate: u32,
    channels: u32,
    duration: Option<f64>,
}

fn ffprobe(path: &Path, input_args: &[String]) -> Probe {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(input_args)
        .args(["-show_entries", "stream=sample_rate,channels,codec_name:format=duration", "-of", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe failed on {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stream = &json["streams"][0];
    Probe {
        codec: stream["codec_name"].as_str().unwrap().to_owned(),
        sample_rate: stream["sample_rate"].as_str().unwrap().parse().unwrap(),
        channels: u32::try_from(stream["channels"].as_u64().unwrap()).unwrap(),
        duration: json["format"]["duration"].as_str().and_then(|d| d.parse().ok()),
    }
}

/// Decodes with ffmpeg to mono s16le at `rate`; fails the test on any decoder complaint.
fn ffmpeg_decode(path: &Path, input_args: &[String], rate: u32) -> Vec<i16> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error"])
        .args(input_args)
        .arg("-i")
        .arg(path)
        .args(["-f", "s16le", "-ac", "1", "-ar", &rate.to_string(), "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg could not decode {} cleanly: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    samples_of(&out.stdout)
}

fn ffmpeg_encode(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new("ffmpeg").args(["-v", "error", "-y"]).args(args).arg(&path).output().unwrap();
    assert!(out.status.success(), "ffmpeg could not make {name}: {}", String::from_utf8_lossy(&out.stderr));
    path
}

/// The name ffprobe gives the codec of our output.
fn ffprobe_codec(format: AudioFormat) -> &'static str {
    match format {
        AudioFormat::Mp3 => "mp3",
        AudioFormat::Opus => "opus",
        AudioFormat::Aac => "aac",
        AudioFormat::Flac => "flac",
        AudioFormat::Wav | AudioFormat::Pcm => "pcm_s16le",
        AudioFormat::Ulaw => "pcm_mulaw",
        AudioFormat::Alaw => "pcm_alaw",
    }
}

/// Extra length a codec may add: MP3 has LAME's start-up delay plus up to a frame of padding (a
/// streamed MP3 has no Info frame to trim them); every other format is exact.
fn padding_allowance(spec: AudioSpec) -> f64 {
    match spec.format {
        AudioFormat::Mp3 => (1105.0 + 1152.0) / f64::from(spec.sample_rate),
        _ => 0.0,
    }
}

const TOLERANCE: f64 = 0.03;

fn assert_duration(what: &str, actual: f64, expected: f64, allowance: f64) {
    assert!(
        actual >= expected - TOLERANCE && actual <= expected + TOLERANCE + allowance,
        "{what}: duration {actual:.4} s, expected {expected:.4} s (+{allowance:.4} s codec padding)"
    );
}

/// Everything ffmpeg and our own decoder say about `bytes`, which should be `expected_seconds`
/// of `signal_rate` audio in the resolved `spec`.
fn check_output(dir: &Path, label: &str, spec: AudioSpec, bytes: &[u8], expected_seconds: f64) {
    let path = dir.join(format!("{label}.{}", extension(spec.format)));
    std::fs::write(&path, bytes).unwrap();
    let input_args = raw_input_args(spec.format, spec.sample_rate);
    let allowance = padding_allowance(spec);

    let probe = ffprobe(&path, &input_args);
    assert_eq!(probe.codec, ffprobe_codec(spec.format), "{label}: {probe:?}");
    // Ogg Opus always decodes at 48 kHz in ffmpeg; OpusHead's rate is informational.
    let probed_rate = if spec.format == AudioFormat::Opus { 48_000 } else { spec.sample_rate };
    assert_eq!(probe.sample_rate, probed_rate, "{label}: {probe:?}");
    assert_eq!(probe.channels, 1, "{label}: {probe:?}");
    // A streamed FLAC says "total samples unknown", so ffprobe can only estimate its duration from
    // the bitrate; the decoded length below is the real test for it. (A streamed WAV's unknown
    // length is read as "to the end of the file", which ffprobe measures exactly.)
    if spec.format != AudioFormat::Flac {
        let duration = probe.duration.unwrap_or_else(|| panic!("{label}: ffprobe gave no duration"));
        assert_duration(&format!("{label} (ffprobe)"), duration, expected_seconds, allowance);
    }

    let reference = ffmpeg_decode(&path, &input_args, spec.sample_rate);
    let reference_seconds = reference.len() as f64 / f64::from(spec.sample_rate);
    assert_duration(&format!("{label} (ffmpeg decode)"), reference_seconds, expected_seconds, allowance);
    // The 440 Hz tone survives: not silence, not noise.
    let level = tone_level_db(&reference, spec.sample_rate, 440.0);
    let expected_level = 20.0 * 0.35f64.log10();
    assert!((level - expected_level).abs() < 1.5, "{label}: 440 Hz at {level:.1} dBFS, expected {expected_level:.1}");

    let ours = decode(spec.format, bytes, Some(spec.sample_rate)).unwrap();
    assert_eq!(ours.sample_rate, spec.sample_rate, "{label}: own decoder rate");
    let ours_seconds = ours.samples.len() as f64 / f64::from(ours.sample_rate);
    assert_duration(&format!("{label} (own decode)"), ours_seconds, expected_seconds, allowance);
    let level = tone_level_db(&ours.samples, ours.sample_rate, 440.0);
    assert!((level - expected_level).abs() < 1.5, "{label}: own decode 440 Hz at {level:.1} dBFS");
}

fn encodable_specs() -> Vec<AudioSpec> {
    let mut specs = Vec::new();
    for format in AudioFormat::ALL.into_iter().filter(|f| f.encodable()) {
        for rate in RATES {
            if matches!(format, AudioFormat::Ulaw | AudioFormat::Alaw) && rate != 8_000 {
                continue;
            }
            specs.push(AudioSpec { format, sample_rate: rate, bitrate_kbps: None });
        }
    }
    specs
}

// ---------------------------------------------------------------------------------------------
// Encoding, checked by ffmpeg

#[test]
fn provider_pcm_transcodes_to_every_format_and_rate() {
    ffmpeg_available();
    let dir = tempfile::tempdir().unwrap();
    // Providers typically stream 24 kHz PCM; every output rate is a resample away.
    let input = test_signal(24_000, CLIP_SECONDS);
    for requested in encodable_specs() {
        let spec = output_spec(requested).unwrap();
        let bytes = transcode(24_000, &input, requested);
        let label = format!("transcoded-{}-{}", spec.format.as_str(), requested.sample_rate);
        check_output(dir.path(), &label, spec, &bytes, CLIP_SECONDS);
    }
}

#[test]
fn encoders_take_samples_at_the_requested_rate() {
    ffmpeg_available();
    let dir = tempfile::tempdir().unwrap();
    for requested in encodable_specs() {
        let spec = output_spec(requested).unwrap();
        let input = test_signal(requested.sample_rate, CLIP_SECONDS);
        let bytes = encode_directly(requested, &input);
        let label = format!("direct-{}-{}", spec.format.as_str(), requested.sample_rate);
        check_output(dir.path(), &label, spec, &bytes, CLIP_SECONDS);
    }
}

#[test]
fn explicit_bitrates_are_used() {
    ffmpeg_available();
    let dir = tempfile::tempdir().unwrap();
    for (format, rate, kbps) in
        [(AudioFormat::Mp3, 44_100, 192), (AudioFormat::Mp3, 16_000, 32), (AudioFormat::Opus, 48_000, 24)]
    {
        let spec = AudioSpec { format, sample_rate: rate, bitrate_kbps: Some(kbps) };
        let bytes = encode_directly(spec, &test_signal(rate, 4.0));
        let actual_kbps = bytes.len() as f64 * 8.0 / 4.0 / 1000.0;
        // Container overhead and codec padding push the average up a little; VBR Opus may dip.
        assert!(
            actual_kbps > f64::from(kbps) * 0.75 && actual_kbps < f64::from(kbps) * 1.25,
            "{format:?} {rate} Hz at {kbps} kbit/s came out at {actual_kbps:.1} kbit/s"
        );
        check_output(dir.path(), &format!("bitrate-{}-{kbps}", format.as_str()), spec, &bytes, 4.0);
    }
}

#[test]
fn empty_clips_are_valid_files() {
    for requested in encodable_specs() {
        let mut enc = encoder(requested).unwrap();
        let mut bytes = enc.encode(&[]).unwrap();
        bytes.extend(enc.finish().unwrap());
        let decoded = decode(requested.format, &bytes, Some(requested.sample_rate));
        let decoded = decoded.unwrap();
        match requested.format {
            // LAME still flushes its start-up delay as a few frames of silence.
            AudioFormat::Mp3 => {
                assert!(decoded.samples.len() < requested.sample_rate as usize / 2, "{requested:?}");
                assert!(decoded.samples.iter().all(|s| s.abs() < 8), "{requested:?}");
            }
            _ => assert!(decoded.samples.is_empty(), "{requested:?}"),
        }
    }
}

#[test]
fn g711_matches_ffmpeg_sample_for_sample() {
    ffmpeg_available();
    let dir = tempfile::tempdir().unwrap();
    let input = test_signal(8_000, 1.0);
    for (format, demuxer, codec) in [(AudioFormat::Ulaw, "mulaw", "pcm_mulaw"), (AudioFormat::Alaw, "alaw", "pcm_alaw")]
    {
        // Our encoding, decoded by ffmpeg, is exactly our decoding.
        let ours = encode_directly(AudioSpec { format, sample_rate: 8_000, bitrate_kbps: None }, &input);
        let path = dir.path().join(format!("ours.{demuxer}"));
        std::fs::write(&path, &ours).unwrap();
        let by_ffmpeg = ffmpeg_decode(&path, &raw_input_args(format, 8_000), 8_000);
        assert!(
            by_ffmpeg == decode(format, &ours, Some(8_000)).unwrap().samples,
            "{format:?}: ffmpeg decodes differently"
        );

        // ffmpeg's encoder is not the G.711 quantiser: it picks the code whose reconstruction is
        // nearest, where G.711 (and we) cut at fixed decision levels. The two may differ by one step.
        let pcm = dir.path().join("input.pcm");
        std::fs::write(&pcm, bytes_of(&input)).unwrap();
        let theirs = ffmpeg_encode(
            dir.path(),
            &format!("theirs.{demuxer}"),
            &["-f", "s16le", "-ar", "8000", "-ac", "1", "-i", pcm.to_str().unwrap(), "-c:a", codec, "-f", demuxer],
        );
        let theirs = decode(format, &std::fs::read(theirs).unwrap(), Some(8_000)).unwrap().samples;
        let ours = decode(format, &ours, Some(8_000)).unwrap().samples;
        assert_eq!(theirs.len(), ours.len());
        let mut differing = 0;
        for ((a, b), x) in ours.iter().zip(&theirs).zip(&input) {
            if a != b {
                differing += 1;
                let step = i32::from(*x).abs() / 8 + 16;
                assert!((i32::from(*a) - i32::from(*b)).abs() <= step, "{format:?}: {x} -> ours {a}, ffmpeg {b}");
            }
        }
        assert!(differing * 10 < input.len(), "{format:?}: {differing} of {} samples differ", input.len());
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding files ffmpeg made

/// A file for ffmpeg to make: format, file name, codec arguments, rate, channels, and how much
/// longer than the clip the decoded length may be (codec priming and padding without gapless info).
struct Case {
    format: AudioFormat,
    file: &'static str,
    codec_args: &'static [&'static str],
    rate: u32,
    channels: u32,
    allowance: f64,
}

#[test]
fn decodes_what_ffmpeg_encodes() {
    ffmpeg_available();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        Case {
            format: AudioFormat::Mp3,
            file: "a.mp3",
            codec_args: &["-c:a", "libmp3lame", "-b:a", "128k"],
            rate: 44_100,
            channels: 2,
            allowance: 0.08,
        },
        Case {
            format: AudioFormat::Mp3,
            file: "b.mp3",
            codec_args: &["-c:a", "libmp3lame", "-b:a", "32k"],
            rate: 16_000,
            channels: 1,
            allowance: 0.08,
        },
        Case {
            format: AudioFormat::Flac,
            file: "a.flac",
            codec_args: &["-c:a", "flac"],
            rate: 48_000,
            channels: 2,
            allowance: 0.0,
        },
        Case {
            format: AudioFormat::Opus,
            file: "vorbis.ogg",
            codec_args: &["-c:a", "libvorbis", "-q:a", "4"],
            rate: 44_100,
            channels: 2,
            allowance: 0.0,
        },
        Case {
            format: AudioFormat::Opus,
            file: "a.opus",
            codec_args: &["-c:a", "libopus", "-b:a", "64k"],
            rate: 48_000,
            channels: 2,
            allowance: 0.0,
        },
        Case {
            format: AudioFormat::Opus,
            file: "b.opus",
            codec_args: &["-c:a", "libopus", "-b:a", "24k", "-application", "voip"],
            rate: 16_000,
            channels: 1,
            allowance: 0.0,
        },
        Case {
            format: AudioFormat::Aac,
            file: "a.aac",
            codec_args: &["-c:a", "aac", "-b:a", "96k", "-f", "adts"],
            rate: 24_000,
            channels: 1,
            allowance: 0.15,
        },
        Case {
            format: AudioFormat::Wav,
            file: "a.wav",
            codec_args: &["-c:a", "pcm_s16le"],
            rate: 22_050,
            channels: 2,
            allowance: 0.0,
        },
        Case {
            format: AudioFormat::Wav,
            file: "float.wav",
            codec_args: &["-c:a", "pcm_f32le"],
            rate: 16_000,
            channels: 1,
            allowance: 0.0,
        },
        Case {
            format: AudioFormat::Wav,
            file: "s24.wav",
            codec_args: &["-c:a", "pcm_s24le"],
            rate: 8_000,
            channels: 1,
            allowance: 0.0,
        },
    ];
    for Case { format, file: name, codec_args, rate, channels, allowance } in cases {
        let source = format!("sine=frequency=1000:sample_rate={rate}:duration={CLIP_SECONDS}");
        // Stereo as two copies of the mono tone (ffmpeg's own upmix would lower each side by 3 dB).
        let layout = if channels == 2 { "pan=stereo|c0=c0|c1=c0" } else { "pan=mono|c0=c0" };
        let mut args = vec!["-f", "lavfi", "-i", &source, "-af", layout];
        args.extend_from_slice(codec_args);
        let path = ffmpeg_encode(dir.path(), name, &args);
        let bytes = std::fs::read(&path).unwrap();

        let decoded = decode(format, &bytes, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Our Opus decoder outputs the OpusHead input rate (ffmpeg records the source's rate there).
        assert_eq!(decoded.sample_rate, rate, "{name}");
        let seconds = decoded.samples.len() as f64 / f64::from(decoded.sample_rate);
        assert_duration(name, seconds, CLIP_SECONDS, allowance);
        // lavfi's sine is at 1/8 of full scale (-18 dBFS); stereo must mix down to the same level.
        let level = tone_level_db(&decoded.samples, decoded.sample_rate, 1000.0);
        assert!((level + 18.06).abs() < 1.0, "{name}: 1 kHz at {level:.1} dBFS");
        let len = decoded.samples.len();
        let freq = zero_crossing_freq(&decoded.samples[len / 5..len * 4 / 5], decoded.sample_rate);
        assert!((freq - 1000.0).abs() < 10.0, "{name}: {freq:.1} Hz");

        // What usage records for this file passing through untouched, counted from its framing.
        // (WAV is counted by size as 16-bit mono, the only WAV the gateway passes through; the
        // Ogg Vorbis file is here for the decoder only.)
        if format != AudioFormat::Wav && name != "vorbis.ogg" {
            let mut counter = DurationCounter::new(AudioSpec { format, sample_rate: rate, bitrate_kbps: None });
            for chunk in bytes.chunks(1000) {
                counter.push(chunk);
            }
            let counted = counter.duration_ms().unwrap_or_else(|| panic!("{name}: not counted")) as f64 / 1000.0;
            assert_duration(&format!("{name} (counted)"), counted, CLIP_SECONDS, allowance);
        }
    }
}

#[test]
fn decodes_headerless_formats_at_the_stated_rate() {
    let input = sine(500.0, 16_000, 16_000, 10_000.0);
    let decoded = decode(AudioFormat::Pcm, &bytes_of(&input), Some(16_000)).unwrap();
    assert!(decoded.samples == input, "samples differ");
    assert_eq!(duration_ms(decoded.samples.len(), decoded.sample_rate), 1000);
}

// ---------------------------------------------------------------------------------------------
// Resampling

#[test]
fn resampling_keeps_frequency_and_length() {
    let input = sine(1000.0, 24_000, 36_000, 16_000.0);
    let mut down = Resampler::new(24_000, 16_000).unwrap();
    let mut mid = Vec::new();
    for chunk in input.chunks(777) {
        mid.extend(down.process(chunk));
    }
    mid.extend(down.finish());
    assert_eq!(mid.len(), 24_000);

    let mut up = Resampler::new(16_000, 48_000).unwrap();
    let mut out = Vec::new();
    for chunk in mid.chunks(1001) {
        out.extend(up.process(chunk));
    }
    out.extend(up.finish());
    assert_eq!(out.len(), 72_000);

    let body = &out[2_000..70_000];
    let freq = zero_crossing_freq(body, 48_000);
    assert!((freq - 1000.0).abs() < 2.0, "{freq} Hz");
    let level = tone_level_db(body, 48_000, 1000.0);
    let expected = 20.0 * (16_000.0f64 / 32768.0).log10();
    assert!((level - expected).abs() < 0.1, "{level} dBFS, expected {expected}");
    // No click at chunk boundaries: the output is the reference sine within a small error everywhere.
    let reference = sine(1000.0, 48_000, out.len(), 16_000.0);
    let worst = body.iter().zip(&reference[2_000..70_000]).map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs()).max();
    assert!(worst.unwrap() < 40, "largest deviation {worst:?}");
}

// ---------------------------------------------------------------------------------------------
// Errors

#[test]
fn unsupported_outputs_are_errors() {
    let aac = AudioSpec { format: AudioFormat::Aac, sample_rate: 24_000, bitrate_kbps: None };
    assert!(matches!(encoder(aac), Err(AudioError::Unsupported(_))));
    assert!(matches!(PcmTranscoder::new(24_000, aac), Err(AudioError::Unsupported(_))));
    let ulaw16k = AudioSpec { format: AudioFormat::Ulaw, sample_rate: 16_000, bitrate_kbps: None };
    assert!(matches!(encoder(ulaw16k), Err(AudioError::Unsupported(_))));
    let too_fast = AudioSpec { format: AudioFormat::Wav, sample_rate: 96_000, bitrate_kbps: None };
    assert!(matches!(encoder(too_fast), Err(AudioError::Unsupported(_))));
    let mp3_8k_320 = AudioSpec { format: AudioFormat::Mp3, sample_rate: 8_000, bitrate_kbps: Some(320) };
    assert!(matches!(encoder(mp3_8k_320), Err(AudioError::Unsupported(_))));
}

#[test]
fn garbage_is_a_decode_error_not_a_panic() {
    let mut state = 0x1234_5678u32;
    let garbage: Vec<u8> = (0..20_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect();
    for format in [AudioFormat::Mp3, AudioFormat::Opus, AudioFormat::Aac, AudioFormat::Flac, AudioFormat::Wav] {
        assert!(matches!(decode(format, &garbage, None), Err(AudioError::Decode(_))), "{format:?}");
    }
    // Valid headers with garbage behind them, and truncated files.
    let good = encode_directly(
        AudioSpec { format: AudioFormat::Opus, sample_rate: 48_000, bitrate_kbps: None },
        &test_signal(48_000, 0.5),
    );
    let mut corrupted = good.clone();
    for byte in corrupted.iter_mut().skip(200).step_by(3) {
        *byte ^= 0x5A;
    }
    assert!(decode(AudioFormat::Opus, &corrupted, None).is_err());
    // A stream cut in the middle of a page is a decode error, not a panic and not audio.
    let cut = decode(AudioFormat::Opus, &good[..good.len() / 2], None);
    assert!(matches!(cut, Err(AudioError::Decode(_))), "{:?}", cut.map(|d| d.samples.len()));
    let flac = encode_directly(
        AudioSpec { format: AudioFormat::Flac, sample_rate: 16_000, bitrate_kbps: None },
        &test_signal(16_000, 0.5),
    );
    let half = decode(AudioFormat::Flac, &flac[..flac.len() / 2], None).expect("a cut FLAC stream decodes");
    assert_eq!(half.sample_rate, 16_000);
    assert!((3_000..=6_000).contains(&half.samples.len()), "{} samples of 8,000", half.samples.len());
    let mut wav_header_only = flac[..0].to_vec();
    wav_header_only.extend_from_slice(b"RIFF\xff\xff\xff\xffWAVEfmt ");
    assert!(decode(AudioFormat::Wav, &wav_header_only, None).is_err());
}
