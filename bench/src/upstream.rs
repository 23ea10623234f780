//! The fake vendor: OpenAI's speech endpoint as the gateway's OpenAI-compatible adapter calls it.
//! The first path segment picks the behaviour, so one server is four providers:
//!
//! - `/instant/v1/audio/speech`: a 4,800-byte clip (0.1 s of 24 kHz PCM) at once;
//! - `/ttfb50/v1/audio/speech`: the same clip after 50 ms;
//! - `/stream/v1/audio/speech`: a 1 s clip (48,000 bytes) in ten chunks, the first at once and one
//!   every 100 ms after it (a slow stream, held for the memory measurement);
//! - `/quickstream/v1/audio/speech`: the same ten chunks 10 ms apart (for time to first byte,
//!   measured over many streams);
//! - `/speech/v1/audio/speech`: six seconds of speech-like audio at once, at a level chosen by the
//!   last digit of `input` (so that a conversation's levelling has work to do).

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::{body::Frame, server::conn::http1, service::service_fn, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub const CLIP_BYTES: usize = 4_800;
pub const STREAM_CHUNKS: usize = 10;
pub const STREAM_CHUNK_BYTES: usize = 4_800;
pub const STREAM_INTERVAL: Duration = Duration::from_millis(100);
pub const QUICK_STREAM_INTERVAL: Duration = Duration::from_millis(10);
pub const SPEECH_SECONDS: u32 = 6;

type Body = BoxBody<Bytes, Infallible>;

struct Clips {
    short: Bytes,
    /// Ten versions of the speech clip, from full scale down to a quarter.
    speech: Vec<Bytes>,
}

pub async fn serve(listen: &str) -> anyhow::Result<()> {
    let speech = crate::speech::speech_like(24_000, SPEECH_SECONDS);
    let clips = Arc::new(Clips {
        short: Bytes::from(vec![7u8; CLIP_BYTES]),
        speech: (0..10)
            .map(|level| {
                let gain = 1.0 - 0.075 * f64::from(level);
                speech.iter().flat_map(|s| ((f64::from(*s) * gain) as i16).to_le_bytes()).collect::<Vec<u8>>().into()
            })
            .collect(),
    });
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        // As vendors' servers (and the gateway) do: no Nagle delay on small writes.
        tcp.set_nodelay(true)?;
        let clips = clips.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| respond(clips.clone(), request));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}

async fn respond(clips: Arc<Clips>, request: Request<hyper::body::Incoming>) -> Result<Response<Body>, Infallible> {
    let mode = request.uri().path().split('/').nth(1).unwrap_or_default().to_owned();
    // Read the whole request, as a vendor does before it speaks.
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let audio = |body: Body| {
        Response::builder().header("content-type", "audio/pcm").body(body).unwrap_or_else(|_| Response::new(empty()))
    };
    Ok(match mode.as_str() {
        "instant" => audio(full(clips.short.clone())),
        "ttfb50" => {
            tokio::time::sleep(Duration::from_millis(50)).await;
            audio(full(clips.short.clone()))
        }
        "stream" | "quickstream" => {
            let interval = if mode == "stream" { STREAM_INTERVAL } else { QUICK_STREAM_INTERVAL };
            let chunk = Bytes::from(vec![7u8; STREAM_CHUNK_BYTES]);
            let chunks = futures::stream::iter(0..STREAM_CHUNKS).then(move |i| {
                let chunk = chunk.clone();
                async move {
                    if i > 0 {
                        tokio::time::sleep(interval).await;
                    }
                    Ok::<_, Infallible>(Frame::data(chunk))
                }
            });
            audio(BodyExt::boxed(StreamBody::new(chunks)))
        }
        "speech" => {
            let input: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let level = input["input"].as_str().and_then(|t| t.chars().last()?.to_digit(10)).unwrap_or(0);
            audio(full(clips.speech[level as usize].clone()))
        }
        _ => {
            let mut response = Response::new(empty());
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    })
}

fn full(bytes: Bytes) -> Body {
    BodyExt::boxed(Full::new(bytes))
}

fn empty() -> Body {
    full(Bytes::new())
}
