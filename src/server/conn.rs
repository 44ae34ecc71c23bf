//! One connection: its shared state, the socket wrapper and body guard that keep
//! its [`Phase`] true, and the task that serves it until a deadline, an eviction
//! or the server's stop closes it.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::Request;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::Service;

use super::phase::{Expiry, Phase, PhaseTimeouts};

/// The largest request head (request line and headers) accepted; a larger one is
/// answered `431` by hyper itself, with an empty body.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How long a connection with nothing in flight may take to close (hyper closes an
/// idle one at once; this bounds a peer that does not read the tail of an answer).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What the connection's task, its socket, its requests and the registry share.
#[derive(Debug)]
pub struct ConnState {
    phase: Mutex<Phase>,
    /// The phase changed in a way that moves its deadline, or a close was asked.
    changed: Notify,
    /// Asked to close (to make room, or because the server stops).
    close_requested: AtomicBool,
}

impl ConnState {
    pub fn new(now: Instant) -> Self {
        Self {
            phase: Mutex::new(Phase::accepted(now)),
            changed: Notify::new(),
            close_requested: AtomicBool::new(false),
        }
    }

    pub fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    pub fn set_phase(&self, phase: Phase) {
        self.update(|_| phase);
    }

    fn update(&self, step: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        let next = step(*phase);
        if next != *phase {
            *phase = next;
            drop(phase);
            self.changed.notify_one();
        }
    }

    /// Asks the connection's task to close it (gracefully: an answer being written
    /// is finished). Returns false when it had been asked already.
    pub fn request_close(&self) -> bool {
        let first = !self.close_requested.swap(true, Ordering::AcqRel);
        if first {
            self.changed.notify_one();
        }
        first
    }

    pub fn close_requested(&self) -> bool {
        self.close_requested.load(Ordering::Acquire)
    }
}

/// The socket, telling the connection's state when bytes arrive.
struct TrackedStream {
    inner: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.state
                .update(|phase| phase.on_bytes_read(Instant::now()));
        }
        polled
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// One request from the moment its head is complete until its answer's body is
/// dropped (written in full, or abandoned with the connection).
#[derive(Debug)]
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn start(state: &Arc<ConnState>) -> Self {
        state.update(Phase::on_request);
        Self(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .update(|phase| phase.on_response_done(Instant::now()));
    }
}

/// An answer's body that keeps its request in flight until hyper is done with it.
struct GuardedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Where a connection's task is in closing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// Serving.
    No,
    /// Told hyper (at `since`) to finish what is in flight and close.
    Draining { since: Instant },
}

/// Serves `stream` until the peer closes it, a phase deadline passes, a close is
/// requested, or the server stops. Closing finishes what is in flight: a request
/// within `drain`, the tail of an answer within a second; a half-received head is
/// dropped at once, as there is nothing to finish.
pub async fn serve(
    stream: TcpStream,
    state: Arc<ConnState>,
    router: Router,
    timeouts: PhaseTimeouts,
    drain: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    let io = TokioIo::new(TrackedStream {
        inner: stream,
        state: state.clone(),
    });
    let service_state = state.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let in_flight = InFlight::start(&service_state);
        let mut router = router.clone();
        async move {
            let response = match router.call(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(response.map(|inner| GuardedBody {
                inner,
                _in_flight: in_flight,
            }))
        }
    });
    let mut builder = http1::Builder::new();
    // The header-read and idle timeouts are ours (below): hyper's header timeout
    // also runs while a kept-alive connection waits for its next request, which
    // would make the idle timeout the header timeout.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_header_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);

    let mut closing = Closing::No;
    loop {
        // The task runs hyper itself, so the phase read here cannot change under
        // it: `ReadingHead` means no request has been handed to the router.
        let phase = state.phase();
        if closing == Closing::No && (state.close_requested() || *stopping.borrow()) {
            if matches!(phase, Phase::ReadingHead { .. }) {
                return;
            }
            conn.as_mut().graceful_shutdown();
            closing = Closing::Draining {
                since: Instant::now(),
            };
        }
        let wake = match closing {
            Closing::No => phase.deadline(timeouts).map(|(at, _)| at),
            Closing::Draining { since } => {
                Some(since + if phase.is_busy() { drain } else { CLOSE_GRACE })
            }
        };
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = state.changed.notified() => {}
            stop = stopping.changed(), if closing == Closing::No => {
                // The server is gone without a word: stop all the same.
                if stop.is_err() {
                    state.request_close();
                }
            }
            () = sleep_until(wake) => {
                // Read again: a request may have arrived as the timer fired.
                let now = Instant::now();
                let due = state.phase().deadline(timeouts).filter(|(at, _)| *at <= now);
                match (closing, due) {
                    (Closing::Draining { since }, _) => {
                        let grace = if state.phase().is_busy() { drain } else { CLOSE_GRACE };
                        if since + grace <= now {
                            tracing::debug!("connection dropped: it did not finish closing in time");
                            return;
                        }
                    }
                    (Closing::No, Some((_, Expiry::Idle))) => {
                        state.request_close();
                    }
                    (Closing::No, Some((_, Expiry::HeaderRead))) => {
                        tracing::debug!(
                            timeout_ms = timeouts.header_read.as_millis() as u64,
                            "connection closed: request head not received in time"
                        );
                        return;
                    }
                    (Closing::No, None) => {}
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
