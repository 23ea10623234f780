//! The load generator: `concurrency` workers, each with its own keep-alive HTTP/1.1 connection
//! per target, send requests back to back until the time or the request count is up. With
//! several targets, each worker takes them in turn, so that the machine's noise falls on all of
//! them alike and their latencies can be subtracted.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{client::conn::http1, Request};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    /// `host:port`.
    pub addr: String,
    pub path: String,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    pub targets: Vec<Target>,
    pub concurrency: usize,
    pub duration_secs: f64,
    /// Stop after this many requests in all, whichever comes first.
    #[serde(default)]
    pub max_requests: Option<usize>,
}

/// Percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub name: String,
    pub requests: usize,
    /// Failed connections, non-2xx answers and broken bodies.
    pub errors: usize,
    pub first_error: Option<String>,
    pub bytes: u64,
    pub elapsed_secs: f64,
    /// To the first byte of the body.
    pub ttfb_us: Percentiles,
    /// To the last byte of the body.
    pub total_us: Percentiles,
}

impl Outcome {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed_secs
    }
}

#[derive(Default)]
struct Samples {
    ttfb: Vec<Duration>,
    total: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
    bytes: u64,
}

pub async fn drive(spec: Spec) -> anyhow::Result<Vec<Outcome>> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(spec.duration_secs);
    let issued = Arc::new(AtomicUsize::new(0));
    let spec = Arc::new(spec);
    let workers: Vec<_> = (0..spec.concurrency)
        .map(|worker| tokio::spawn(work(spec.clone(), worker, deadline, issued.clone())))
        .collect();
    let mut merged: Vec<Samples> = spec.targets.iter().map(|_| Samples::default()).collect();
    for worker in workers {
        for (into, from) in merged.iter_mut().zip(worker.await?) {
            into.ttfb.extend(from.ttfb);
            into.total.extend(from.total);
            into.errors += from.errors;
            into.bytes += from.bytes;
            into.first_error = into.first_error.take().or(from.first_error);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(spec
        .targets
        .iter()
        .zip(merged)
        .map(|(target, mut samples)| Outcome {
            name: target.name.clone(),
            requests: samples.total.len(),
            errors: samples.errors,
            first_error: samples.first_error,
            bytes: samples.bytes,
            elapsed_secs: elapsed,
            ttfb_us: percentiles(&mut samples.ttfb),
            total_us: percentiles(&mut samples.total),
        })
        .collect())
}

fn percentiles(samples: &mut [Duration]) -> Percentiles {
    if samples.is_empty() {
        return Percentiles::default();
    }
    samples.sort_unstable();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6;
    Percentiles { p50: at(0.5), p90: at(0.9), p99: at(0.99) }
}

async fn work(spec: Arc<Spec>, worker: usize, deadline: Instant, issued: Arc<AtomicUsize>) -> Vec<Samples> {
    let mut samples: Vec<Samples> = spec.targets.iter().map(|_| Samples::default()).collect();
    let mut connections: Vec<Option<http1::SendRequest<Full<Bytes>>>> = spec.targets.iter().map(|_| None).collect();
    let bodies: Vec<Bytes> = spec.targets.iter().map(|t| Bytes::from(t.body.clone())).collect();
    // Workers start on different targets, so that every target sees the same concurrency.
    let mut turn = worker;
    while Instant::now() < deadline {
        if spec.max_requests.is_some_and(|max| issued.fetch_add(1, Ordering::Relaxed) >= max) {
            break;
        }
        let index = turn % spec.targets.len();
        turn += 1;
        let target = &spec.targets[index];
        let outcome = async {
            // A connection is opened (or reopened after an error) outside the timed part.
            let sender = match &mut connections[index] {
                Some(sender) if sender.is_ready() => sender,
                slot => slot.insert(connect(&target.addr).await?),
            };
            sender.ready().await?;
            let mut request =
                Request::post(&target.path).header("host", &target.addr).header("content-type", "application/json");
            for (name, value) in &target.headers {
                request = request.header(name, value);
            }
            let request = request.body(Full::new(bodies[index].clone()))?;
            let start = Instant::now();
            let response = sender.send_request(request).await?;
            let status = response.status();
            let mut body = response.into_body();
            let mut first = None;
            let mut bytes = 0u64;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame?.into_data() {
                    first.get_or_insert_with(|| start.elapsed());
                    bytes += data.len() as u64;
                }
            }
            let total = start.elapsed();
            anyhow::ensure!(status.is_success(), "status {status}");
            anyhow::Ok((first.unwrap_or(total), total, bytes))
        }
        .await;
        let into = &mut samples[index];
        match outcome {
            Ok((ttfb, total, bytes)) => {
                into.ttfb.push(ttfb);
                into.total.push(total);
                into.bytes += bytes;
            }
            Err(error) => {
                into.errors += 1;
                into.first_error.get_or_insert_with(|| format!("{error:#}"));
                connections[index] = None;
            }
        }
    }
    samples
}

async fn connect(addr: &str) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
    let tcp = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    tcp.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(connection);
    Ok(sender)
}
