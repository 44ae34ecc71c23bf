//! The HTTP server under the router: accepts connections, bounds them, times them
//! out, and stops gracefully.
//!
//! `axum::serve` closes no connection by itself: an idle keep-alive socket, a
//! request head sent a byte a minute, or a thousand sockets opened by any local
//! process stay until the descriptors run out, and then `/health` and every route
//! stop answering. This server, built on hyper's HTTP/1 connection, adds:
//!
//! - a header-read timeout, from a request's first byte to the end of its head
//!   (`[server] header_read_timeout_seconds`);
//! - an idle timeout between requests of a kept-alive connection
//!   (`[server] idle_timeout_seconds`);
//! - a bound on open connections below the open-file limit (`[server]
//!   max_connections`, by default half of `RLIMIT_NOFILE`); when it is reached, the
//!   connection idle the longest with nothing in flight is closed to admit the new
//!   one, so a flood of idle sockets can never lock real callers out;
//! - a short back-off when `accept` fails for want of descriptors, closing an idle
//!   connection, instead of spinning on the error;
//! - graceful shutdown: no new connection, idle ones closed, in-flight requests
//!   answered (within `drain`), then return.
//!
//! Requests themselves are bounded by the router (request timeout, load shedding).

mod conn;
pub mod open_files;
mod phase;
mod registry;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use phase::PhaseTimeouts;
use registry::{Admission, Registry};

/// How long the accept loop pauses after `accept` failed for want of resources.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one warning about refused connections or accept failures this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The limits on connections (`[server]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From a request's first byte to the end of its head.
    pub header_read_timeout: Duration,
    /// Between two requests of a kept-alive connection (and before the first).
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// How long a stop waits for a request in flight to be answered.
    pub drain: Duration,
}

impl ConnectionLimits {
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

    fn timeouts(&self) -> PhaseTimeouts {
        PhaseTimeouts {
            header_read: self.header_read_timeout,
            idle: self.idle_timeout,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting,
/// closes idle connections, lets in-flight requests finish and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let registry = Arc::new(Registry::default());
    let (stop, stopping) = watch::channel(false);
    let mut refused = Throttle::new(WARN_EVERY);
    let mut failed = Throttle::new(WARN_EVERY);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => match registry.admit(limits.max_connections, Instant::now()) {
                Admission::Admitted(ticket) => {
                    let router = router.clone();
                    let stopping = stopping.clone();
                    tokio::spawn(async move {
                        let state = ticket.state.clone();
                        conn::serve(
                            stream,
                            state,
                            router,
                            limits.timeouts(),
                            limits.drain,
                            stopping,
                        )
                        .await;
                        drop(ticket);
                    });
                }
                Admission::Full => {
                    if let Some(suppressed) = refused.ready() {
                        tracing::warn!(
                            max_connections = limits.max_connections,
                            suppressed,
                            "connection refused: every open connection has a request in flight"
                        );
                    }
                }
            },
            // The peer gave up before we took it: nothing to do.
            Err(e) if is_peer_error(&e) => {}
            // Out of descriptors (EMFILE/ENFILE) or memory: make room and retry
            // shortly, instead of failing the same accept in a busy loop.
            Err(e) => {
                let evicted = registry.evict_one();
                if let Some(suppressed) = failed.ready() {
                    tracing::warn!(
                        error = %e,
                        open_connections = registry.len(),
                        closed_an_idle_one = evicted,
                        suppressed,
                        "cannot accept a connection; retrying shortly"
                    );
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
    // New connections are refused from here on.
    drop(listener);
    let _ = stop.send(true);
    registry.close_all();
    registry.wait_empty().await;
    Ok(())
}

fn is_peer_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// Lets one event through per period and counts the ones held back.
struct Throttle {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    fn new(period: Duration) -> Self {
        Self {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(held back since the last one)` when this one may go through.
    fn ready(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|last| now < last + self.period) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn warnings_are_throttled_and_count_what_they_held_back() {
        let mut t = Throttle::new(Duration::from_secs(10));
        assert_eq!(t.ready(), Some(0));
        assert_eq!(t.ready(), None);
        assert_eq!(t.ready(), None);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(t.ready(), Some(2));
        assert_eq!(t.ready(), None);
    }
}
