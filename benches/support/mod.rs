//! What the benchmarks share: the release gateway binary as its own process, configured by the
//! caller, and synthetic speech for providers to send.
#![allow(dead_code, reason = "each benchmark uses part of this module")]
#![allow(clippy::expect_used, reason = "benchmark set-up stops on any failure")]

use std::process::{Child, Command, Stdio};

pub struct Gateway {
    pub child: Child,
    pub base: String,
    pub key: String,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the gateway (SQLite in a temporary directory, errors-only logs, no local voice) with
/// `extra` appended to its configuration, and creates a key. With `cpu`, the process is pinned
/// to that core (`taskset`), so its wall time is what one core does.
pub fn start_gateway(extra: &str, cpu: Option<u32>) -> Gateway {
    let bin = env!("CARGO_BIN_EXE_speechgate");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let config = dir.path().join("speechgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[database]\nurl = \"sqlite://{}/bench.db\"\n[log]\nfilter = \"error\"\n\
             [providers.local]\nenabled = false\n{extra}",
            dir.path().display(),
        ),
    )
    .expect("config");
    let config = config.display().to_string();
    let created = Command::new(bin)
        .args(["--config", &config, "keys", "create", "--name", "bench", "--json"])
        .env_clear()
        .output()
        .expect("keys create");
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).expect("key json");
    let mut command = match cpu {
        Some(cpu) => {
            let mut taskset = Command::new("taskset");
            taskset.args(["-c", &cpu.to_string(), bin]);
            taskset
        }
        None => Command::new(bin),
    };
    let child =
        command.args(["--config", &config, "serve"]).env_clear().stdout(Stdio::null()).spawn().expect("gateway");
    Gateway {
        child,
        base: format!("http://127.0.0.1:{port}"),
        key: created["key"].as_str().expect("key").to_owned(),
        _dir: dir,
    }
}

/// CPU time (user + system) a process has used so far, in seconds (clock-tick resolution).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at `state`; utime and stime
    // are the 12th and 13th of those.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Voiced harmonics on a gliding 90–220 Hz pitch with a syllable-rate envelope, and bursts of noise
/// standing in for fricatives: enough structure that the codecs do realistic work.
pub fn speech_like(rate: u32, seconds: u32) -> Vec<i16> {
    let len = (rate * seconds) as usize;
    let mut phase = 0.0f64;
    let mut noise = 0x9E37_79B9u32;
    (0..len)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let pitch = 155.0 + 65.0 * (t * 0.7).sin();
            phase += std::f64::consts::TAU * pitch / f64::from(rate);
            let voiced: f64 = (1..=12).map(|h| (phase * f64::from(h)).sin() / f64::from(h)).sum();
            let syllable = (t * 4.0 * std::f64::consts::PI).sin().abs();
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            let hiss = f64::from(noise) / f64::from(u32::MAX) - 0.5;
            let fricative = if (t * 1.3).fract() > 0.8 { hiss * 0.6 } else { 0.0 };
            (8000.0 * (voiced * syllable * 0.6 + fricative)).round() as i16
        })
        .collect()
}
