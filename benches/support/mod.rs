//! What the benchmarks share: the release gateway binary as its own process, configured by the
//! caller, and synthetic speech for providers to send.
#![allow(dead_code, unused_imports, reason = "each benchmark uses part of this module")]
#![allow(clippy::expect_used, reason = "benchmark set-up stops on any failure")]

mod proc;
mod speech;

use std::process::{Child, Command, Stdio};

pub use proc::cpu_seconds;
pub use speech::speech_like;

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
