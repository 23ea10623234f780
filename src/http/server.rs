//! The server loop. axum's own `serve` gives no header-read timeout, so a client that sends
//! half its headers could hold a connection forever; this loop serves HTTP/1.1 with hyper
//! directly, with the limits a public service needs:
//!
//! - **Header read:** a request head must arrive within `header_read_timeout`. hyper starts
//!   that clock whenever a connection waits for a request, so it also closes an idle
//!   keep-alive connection after the same time.
//! - **Connections:** at most `max_connections` at once; beyond that, accepting waits.
//! - **Body read:** bounded where bodies are read (`extract::ApiJson`), per request.
//!
//! Each connection's peer address is put in the request extensions (`ConnectInfo`), for the
//! failed-authentication throttle. Shutdown stops accepting, asks every connection to finish
//! its in-flight request, and waits up to the grace period.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{extract::ConnectInfo, Router};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

/// Connection limits (from `[server]`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
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
    let graceful = GracefulShutdown::new();
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
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
        let connection = http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            let _slot = slot;
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_secs = grace.as_secs(), "grace period over; dropping remaining connections");
        }
    }
}
