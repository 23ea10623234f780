//! What a conversation costs the gateway: ten turns of six seconds each (one minute of speech) on
//! an instant fake provider, mixed — resampled where needed, levelled by EBU R128 loudness,
//! limited, faded, joined with silence — and encoded once, side by side with the direct path
//! (the same ten clips fetched straight from the fake provider, four at a time as the gateway
//! does).
//!
//! The gateway is the release binary in its own process, pinned to one core (`taskset -c 0`), so
//! its wall time is what one core does; its CPU time is read from `/proc`. One warm-up run per
//! case, then `RUNS` measured runs; min and median are reported.
//!
//! Run: `cargo bench --bench conversation`. Numbers go in BENCHMARKS.md.
#![allow(
    clippy::print_stdout,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a benchmark program: it reports on stdout and stops on any failure"
)]

mod support;

use std::time::{Duration, Instant};

use axum::{routing::post, Json, Router};
use bytes::Bytes;
use futures::{stream, StreamExt};
use serde_json::{json, Value};

const TURNS: usize = 10;
const TURN_SECONDS: u32 = 6;
const RATE: u32 = 24_000;
const RUNS: usize = 9;

/// A fake OpenAI-compatible provider: `turn N` is answered at once with the N-th clip, six
/// seconds of speech-like 24 kHz PCM at a level of its own (so that levelling has work to do).
async fn fake_provider() -> String {
    let base = support::speech_like(RATE, TURN_SECONDS);
    let clips: Vec<Bytes> = (0..TURNS)
        .map(|i| {
            let gain = 0.25 + 0.75 * i as f64 / (TURNS - 1) as f64;
            Bytes::from(base.iter().flat_map(|s| ((f64::from(*s) * gain) as i16).to_le_bytes()).collect::<Vec<u8>>())
        })
        .collect();
    let app = Router::new().route(
        "/v1/audio/speech",
        post(move |Json(body): Json<Value>| {
            let clips = clips.clone();
            async move {
                let turn: usize =
                    body["input"].as_str().and_then(|t| t.strip_prefix("turn ")?.parse().ok()).unwrap_or(0);
                clips[turn % TURNS].clone()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

struct Timing {
    wall: Vec<Duration>,
    cpu: Vec<f64>,
    bytes: usize,
}

fn report(name: &str, mut t: Timing) {
    t.wall.sort();
    t.cpu.sort_by(f64::total_cmp);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let cpu = if t.cpu.is_empty() {
        "—".to_owned()
    } else {
        format!("{:.0} / {:.0}", t.cpu[0] * 1000.0, t.cpu[t.cpu.len() / 2] * 1000.0)
    };
    println!(
        "{name:<44} {:>8.1} {:>8.1} {:>14} {:>10.1}",
        ms(t.wall[0]),
        ms(t.wall[RUNS / 2]),
        cpu,
        t.bytes as f64 / 1024.0
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let provider = fake_provider().await;
    let pinned = std::process::Command::new("taskset").arg("--version").output().is_ok();
    let gateway = support::start_gateway(
        &format!(
            "[providers.compatible.fake]\nbase_url = \"{provider}/v1\"\nmodels = [\"m\"]\n\
             [conversation]\nconcurrency = 4\n"
        ),
        pinned.then_some(0),
    );
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(format!("{}/healthz", gateway.base)).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = gateway.child.id();
    let turns: Vec<Value> = (0..TURNS).map(|i| json!({"voice": "v", "text": format!("turn {i}")})).collect();

    println!(
        "Conversation: {TURNS} turns x {TURN_SECONDS} s of {RATE} Hz PCM from an instant fake provider, {RUNS} runs; \
         gateway {}",
        if pinned { "pinned to one core" } else { "NOT pinned (no taskset)" }
    );
    println!("{:<44} {:>8} {:>8} {:>14} {:>10}", "case", "min ms", "med ms", "cpu ms min/med", "KiB");

    // The direct path: the ten clips straight from the provider, four at a time.
    let direct = || async {
        let bodies: Vec<Bytes> = stream::iter(0..TURNS)
            .map(|i| {
                let request = client
                    .post(format!("{provider}/v1/audio/speech"))
                    .json(&json!({"model": "m", "voice": "v", "input": format!("turn {i}"), "response_format": "pcm"}));
                async move { request.send().await.expect("direct").bytes().await.expect("body") }
            })
            .buffered(4)
            .collect()
            .await;
        bodies.iter().map(Bytes::len).sum::<usize>()
    };
    let mut timing = Timing { wall: Vec::new(), cpu: Vec::new(), bytes: direct().await };
    for _ in 0..RUNS {
        let started = Instant::now();
        timing.bytes = direct().await;
        timing.wall.push(started.elapsed());
    }
    report("direct: 10 clips of PCM, no mixing", timing);

    let cases = [
        ("gateway: mixed to mp3 24 kHz", json!("mp3"), false),
        ("gateway: mixed to mp3 44.1 kHz (resampled)", json!({"format": "mp3", "sampleRate": 44100}), false),
        ("gateway: mixed to opus 24 kHz", json!({"format": "opus", "sampleRate": 24000}), false),
        ("gateway: mixed to wav 24 kHz (no encoding)", json!("wav"), false),
        ("gateway: split into 10 mp3 segments", json!("mp3"), true),
    ];
    for (name, output, split) in cases {
        let body = json!({"model": "fake/m", "turns": turns, "gapMs": 300, "volumeDbfs": -16, "output": output, "split": split});
        let run = || async {
            let response = client
                .post(format!("{}/v1/audio/conversation", gateway.base))
                .bearer_auth(&gateway.key)
                .json(&body)
                .send()
                .await
                .expect("conversation");
            assert_eq!(response.status(), 200, "{name}");
            response.bytes().await.expect("body").len()
        };
        let mut timing = Timing { wall: Vec::new(), cpu: Vec::new(), bytes: run().await };
        for _ in 0..RUNS {
            let cpu_before = support::cpu_seconds(pid);
            let started = Instant::now();
            timing.bytes = run().await;
            timing.wall.push(started.elapsed());
            timing.cpu.push(support::cpu_seconds(pid) - cpu_before);
        }
        report(name, timing);
    }
}
