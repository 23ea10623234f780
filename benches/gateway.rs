//! What the gateway adds on the request path, measured side by side with the direct path in one
//! run. A fake provider (axum, loopback) answers OpenAI-style speech requests; the release
//! gateway binary runs as its own process in front of it (SQLite, usage metering on).
//!
//! - latency: N sequential requests (concurrency 1) for a 1 s, 48 kB PCM clip, direct vs through
//!   the gateway (pass-through); p50/p90/p99 and the difference.
//! - time to first byte of a streamed clip whose provider sends the first chunk at once and the
//!   rest later: direct vs through the gateway.
//! - memory per in-flight stream: K streams held open mid-clip, the gateway process's RSS before
//!   and during, divided by K.
//!
//! Run: `cargo bench --bench gateway` (release build). Numbers go in BENCHMARKS.md.
#![allow(
    clippy::print_stdout,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a benchmark program: it reports on stdout and stops on any failure"
)]

mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{body::Body, routing::post, Router};
use bytes::Bytes;
use tokio::sync::Notify;

const REQUESTS: usize = 2000;
const STREAMS: usize = 200;
const CLIP: usize = 48_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(name: &str, mut samples: Vec<Duration>) -> [Duration; 3] {
    samples.sort();
    let ps = [percentile(&samples, 0.5), percentile(&samples, 0.9), percentile(&samples, 0.99)];
    println!(
        "{name:<34} p50 {:>8.3} ms  p90 {:>8.3} ms  p99 {:>8.3} ms",
        ps[0].as_secs_f64() * 1e3,
        ps[1].as_secs_f64() * 1e3,
        ps[2].as_secs_f64() * 1e3
    );
    ps
}

/// Through-gateway percentiles minus direct ones.
fn print_added(direct: &[Duration; 3], via: &[Duration; 3]) {
    let ms = |i: usize| (via[i].as_secs_f64() - direct[i].as_secs_f64()) * 1e3;
    println!("{:<34} p50 {:>8.3} ms  p90 {:>8.3} ms  p99 {:>8.3} ms", "added by the gateway", ms(0), ms(1), ms(2));
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn fake_provider(release: Arc<Notify>) -> String {
    let clip = Bytes::from(vec![7u8; CLIP]);
    let fast = clip.clone();
    let app = Router::new().route("/fast/v1/audio/speech", post(move || async move { fast.clone() })).route(
        "/slow/v1/audio/speech",
        post(move || {
            let (clip, release) = (clip.clone(), release.clone());
            async move {
                let head = clip.slice(..4800);
                let first = futures::stream::once(async move { Ok::<_, std::io::Error>(head) });
                let rest = futures::stream::once(async move {
                    release.notified().await;
                    Ok(clip.slice(4800..))
                });
                Body::from_stream(futures::StreamExt::chain(first, rest))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Like a real vendor's server (and the gateway): no Nagle delay. Without this, the end of
    // every streamed clip waits ~40 ms for a delayed ACK, and each measured request then starts
    // from idle, parked threads.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let release = Arc::new(Notify::new());
    let provider = fake_provider(release.clone()).await;
    let gateway = support::start_gateway(
        &format!(
            "[auth]\nmax_concurrent_per_key = {}\n\
             [providers.compatible.fast]\nbase_url = \"{provider}/fast/v1\"\nmodels = [\"m\"]\n\
             [providers.compatible.slow]\nbase_url = \"{provider}/slow/v1\"\nmodels = [\"m\"]\n",
            STREAMS + 8
        ),
        None,
    );
    let client = reqwest::Client::builder().pool_max_idle_per_host(STREAMS + 8).build().expect("client");
    for _ in 0..100 {
        if client.get(format!("{}/healthz", gateway.base)).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = |model: &str| serde_json::json!({"model": model, "voice": "v", "text": "Benchmark sentence.", "output": {"format": "pcm", "sampleRate": 24000}});
    let direct_body =
        serde_json::json!({"model": "m", "voice": "v", "input": "Benchmark sentence.", "response_format": "pcm"});
    // The same clip asked of the fake provider's `route` directly, or through the gateway.
    let direct = |route: &str| client.post(format!("{provider}/{route}/v1/audio/speech")).json(&direct_body);
    let via_gateway = |route: &str| {
        client.post(format!("{}/v1/audio/speech", gateway.base)).bearer_auth(&gateway.key).json(&body(route))
    };

    println!("speechgate gateway benchmark: {REQUESTS} sequential requests, {CLIP}-byte clip, {STREAMS} held streams");
    // Warm both paths (connections, caches, SQLite pages).
    for _ in 0..200 {
        let _ = direct("fast").send().await.expect("direct").bytes().await;
        let _ = via_gateway("fast").send().await.expect("gw").bytes().await;
    }
    let mut direct_times = Vec::with_capacity(REQUESTS);
    let mut via = Vec::with_capacity(REQUESTS);
    // Interleave so that machine noise hits both paths alike.
    for _ in 0..REQUESTS {
        let t = Instant::now();
        let bytes = direct("fast").send().await.expect("direct").bytes().await.expect("body");
        direct_times.push(t.elapsed());
        assert_eq!(bytes.len(), CLIP);
        let t = Instant::now();
        let bytes = via_gateway("fast").send().await.expect("gw").bytes().await.expect("body");
        via.push(t.elapsed());
        assert_eq!(bytes.len(), CLIP);
    }
    let d = summary("non-streamed, direct", direct_times);
    let g = summary("non-streamed, through gateway", via);
    print_added(&d, &g);

    // Time to first byte of a streamed clip.
    let mut direct_times = Vec::new();
    let mut via = Vec::new();
    for _ in 0..300 {
        let t = Instant::now();
        let mut r = direct("slow").send().await.expect("direct");
        let _ = r.chunk().await;
        direct_times.push(t.elapsed());
        release.notify_one();
        while let Ok(Some(_)) = r.chunk().await {}
        let t = Instant::now();
        let mut r = via_gateway("slow").send().await.expect("gw");
        assert_eq!(r.status(), 200, "a held stream was refused");
        let _ = r.chunk().await;
        via.push(t.elapsed());
        release.notify_one();
        while let Ok(Some(_)) = r.chunk().await {}
    }
    let d = summary("ttfb streamed, direct", direct_times);
    let g = summary("ttfb streamed, through gateway", via);
    print_added(&d, &g);

    // Memory per in-flight stream.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = gateway.child.id();
    let before = rss_kib(pid);
    let mut open = Vec::new();
    for _ in 0..STREAMS {
        let mut r = via_gateway("slow").send().await.expect("gw");
        let _ = r.chunk().await;
        open.push(r);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = rss_kib(pid);
    println!(
        "memory: RSS {before} KiB idle, {during} KiB with {STREAMS} streams in flight: {:.1} KiB per stream",
        (during.saturating_sub(before)) as f64 / STREAMS as f64
    );
    for _ in 0..STREAMS {
        release.notify_one();
    }
    for mut r in open {
        while let Ok(Some(_)) = r.chunk().await {}
    }
}
