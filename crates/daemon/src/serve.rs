//! The accept loop: HTTP/1.1 connections served by hyper with a header read timeout, at most
//! `daemon.max_connections` at once, and a graceful shutdown.
//!
//! At the connection bound the loop stops accepting until a connection closes: the kernel's
//! listen backlog holds the connections that arrive meanwhile (they are served, late, once a
//! slot frees), and past the backlog the kernel refuses them. Accepting and closing at once
//! would instead cost a file descriptor and a handshake per attempt and turn a short burst into
//! errors for clients that could have waited. The header read timeout (and the body timeout in
//! [`crate::http`]) bound how long a slow client can hold a slot.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info, warn};

/// What bounds the HTTP side of the daemon (from `[daemon]`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request's head must arrive within this long of the connection opening or of the previous
    /// request's end (hyper starts the timer as soon as a keep-alive connection is idle, so this
    /// also closes idle connections).
    pub header_read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// After the stop signal: how long requests in flight may take to finish.
    pub shutdown_grace: Duration,
}

impl Limits {
    pub fn of(config: &revoke_config::DaemonConfig) -> Limits {
        Limits {
            header_read_timeout: config.header_read_timeout(),
            max_connections: config.max_connections,
            shutdown_grace: config.shutdown_grace(),
        }
    }
}

/// At most one warning per this window that the connection bound was reached.
const BOUND_LOG_WINDOW: Duration = Duration::from_secs(10);

/// How long the loop pauses after a failed `accept` (out of file descriptors, typically), so
/// that it does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Resolves once the stop signal is given (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Serves `router` on `listener` until `stop` turns true, then stops accepting, lets requests in
/// flight finish (closing idle connections at once) within the grace, and returns.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    // Each open connection holds one slot; once every slot is back, every connection is closed.
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let bound_log = revoke_telemetry::LogLimiter::new(BOUND_LOG_WINDOW);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if let Some(suppressed) = bound_log.allow("max_connections") {
                    warn!(
                        max_connections = limits.max_connections,
                        suppressed, "connection bound reached: accepting no more until one closes"
                    );
                }
                tokio::select! {
                    biased;
                    _ = stopped(&mut stop) => break,
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                }
            }
        };
        let (stream, peer) = tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let mut conn_stop = stop.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                _ = stopped(&mut conn_stop) => {
                    // Finishes the request in flight, if any, then closes; an idle connection
                    // closes at once.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                // Timeouts, resets and malformed heads: the client's doing, not an error here.
                debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let open = limits.max_connections - slots.available_permits();
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let closed = tokio::time::timeout(limits.shutdown_grace, slots.acquire_many(all))
        .await
        .is_ok();
    match closed {
        true if open > 0 => info!(connections = open, "open connections finished and closed"),
        true => {}
        false => warn!(
            connections = limits.max_connections - slots.available_permits(),
            grace_secs = limits.shutdown_grace.as_secs(),
            "connections still open after the shutdown grace are dropped"
        ),
    }
}
