//! The server loop. axum's own `serve` gives no header-read timeout, so a client that sends
//! half its headers could hold a connection forever; this loop serves HTTP/1.1 with hyper
//! directly, with the limits a public service needs:
//!
//! - **Header read:** a request head must arrive within `header_read_timeout`. hyper starts
//!   that clock whenever a connection waits for a request, so it also closes an idle
//!   keep-alive connection after the same time.
//! - **Connections:** at most `max_connections` at once; beyond that, accepting waits.
//! - **Writes:** a client that stops reading is dropped once a write has waited
//!   `write_timeout`, which frees its request's slots (a stalled socket would otherwise stop
//!   the response body from being polled, and with it every timeout inside it).
//! - **Body read:** bounded where bodies are read (`extract::ApiJson`), per request.
//!
//! Each connection's peer address is put in the request extensions (`ConnectInfo`), for the
//! failed-authentication throttle. Shutdown stops accepting, asks every connection to finish
//! its in-flight request, and waits up to the grace period.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{extract::ConnectInfo, Router};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::Semaphore,
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Connection limits (from `[server]`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub write_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `stop` is cancelled, then drains connections for at
/// most `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
    grace: Duration,
) {
    // Told to every connection when the gateway stops: finish the request in progress, then close.
    let draining = CancellationToken::new();
    let mut connections = JoinSet::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => tokio::select! {
                    () = stop.cancelled() => break,
                    accepted = listener.accept() => accepted.map(|conn| (conn, slot)),
                },
                Err(_) => break,
            },
        };
        let ((tcp, peer), slot) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // No Nagle delay: the first audio chunk of a stream goes out as soon as it is written.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!(error = %err, "cannot set TCP_NODELAY");
        }
        let service = router.clone().map_request(move |mut req: axum::http::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            req
        });
        // Finished connections stay in the set until reaped; reap them as new ones arrive.
        while connections.try_join_next().is_some() {}
        let io = TokioIo::new(WriteDeadline::new(tcp, limits.write_timeout));
        // With upgrades: the WebSocket routes take the connection over after their 101.
        let connection = http.serve_connection(io, TowerToHyperService::new(service)).with_upgrades();
        let draining = draining.clone();
        connections.spawn(async move {
            let _slot = slot;
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = draining.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = ended {
                tracing::debug!(error = %err, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    draining.cancel();
    let drained = async { while connections.join_next().await.is_some() {} };
    tokio::select! {
        () = drained => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_secs = grace.as_secs(), "grace period over; dropping remaining connections");
        }
    }
    // Dropping a connection drops its request, whose meter records it as interrupted; this
    // happens before the caller stops the usage writer.
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// A socket whose writes fail with `TimedOut` once one has waited `limit` for the peer.
/// (Unpin, as hyper's connections need: the timer is boxed.)
struct WriteDeadline<T> {
    inner: T,
    limit: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    armed: bool,
}

impl<T> WriteDeadline<T> {
    fn new(inner: T, limit: Duration) -> Self {
        Self { inner, limit, timer: Box::pin(tokio::time::sleep(limit)), armed: false }
    }

    /// What a write that returned `Pending` becomes: still pending, or timed out once it has
    /// been pending for the limit. Any write that completes disarms the clock.
    fn outcome<R>(&mut self, polled: Poll<io::Result<R>>, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.armed = false;
            return polled;
        }
        if !self.armed {
            self.timer.as_mut().reset(tokio::time::Instant::now() + self.limit);
            self.armed = true;
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading"))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.outcome(polled, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.outcome(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.outcome(polled, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}
