//! The edge every request passes first, as one service: its request id, its span
//! and log line, its timing, load shedding, the request timeout and JSON errors.
//!
//! These were nine tower layers (tower-http's request id, trace, propagation and
//! timeout, tower's load shedding and concurrency limit, and three axum
//! middlewares). Each boxed a future of its own, several cloned the service they
//! wrap on every call, and together they cost more CPU than the bare work of a
//! status request. Here they are one boxed future around the router, and what
//! each did is in one place, in the order it happens.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tower::{Service, ServiceExt};
use tracing::Instrument;

use super::HttpLimits;
use super::error::ApiError;
use super::metrics::HttpTimings;

/// The header that carries a request's id, both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// The edge around `routes` (see the module docs). Cloning it costs one
/// reference count, which matters: axum clones a route's service on every call.
#[derive(Clone)]
pub struct Edge(Arc<EdgeParts>);

struct EdgeParts {
    routes: Router,
    timings: Arc<HttpTimings>,
    /// One permit per request being handled, `[server] max_in_flight` in all.
    in_flight: Arc<Semaphore>,
    request_timeout: Duration,
    ids: RequestIds,
}

impl Edge {
    pub fn new(routes: Router, timings: Arc<HttpTimings>, limits: HttpLimits) -> Self {
        Self(Arc::new(EdgeParts {
            routes,
            timings,
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
            request_timeout: limits.request_timeout,
            ids: RequestIds::new(),
        }))
    }
}

impl Service<Request> for Edge {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    /// Always ready: a request that finds no permit is answered, not held back.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let edge = self.0.clone();
        let started = Instant::now();
        // A caller's own id is kept, so its logs and ours share it.
        let id = match req.headers().get(REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = edge.ids.next();
                req.headers_mut().insert(REQUEST_ID, id.clone());
                id
            }
        };
        let span = super::request_span(&req);
        let method = super::metrics::method_label(req.method());
        let route = edge.timings.pattern(req.uri().path());
        // Taken now, before the request waits for anything: when every permit is
        // out, the request is shed at once instead of queueing.
        let permit = edge.in_flight.clone().try_acquire_owned();
        let answer = async move {
            tracing::debug!("started processing request");
            let mut resp = match permit {
                Ok(_permit) => {
                    let routed = edge.routes.clone().oneshot(req);
                    match tokio::time::timeout(edge.request_timeout, routed).await {
                        Ok(Ok(resp)) => super::json_errors(resp),
                        Ok(Err(never)) => match never {},
                        Err(_elapsed) => ApiError::Timeout.into_response(),
                    }
                }
                Err(_) => {
                    tracing::warn!("request shed: too many requests in flight");
                    ApiError::Overloaded.into_response()
                }
            };
            resp.headers_mut().entry(REQUEST_ID).or_insert(id);
            let latency = started.elapsed();
            edge.timings
                .record(method, route, resp.status(), latency.as_secs_f64());
            super::log_response(&resp, latency);
            Ok(resp)
        };
        Box::pin(answer.instrument(span))
    }
}

/// Request ids: UUID-shaped (version 4), from a random 64-bit prefix drawn once
/// and a counter, so each id costs an increment, not a read of the kernel's random
/// source, and no two requests of one run share one.
struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        Self {
            prefix: rand::random(),
            next: AtomicU64::new(rand::random::<u32>().into()),
        }
    }

    fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = uuid_v4_shaped(self.prefix, n);
        HeaderValue::from_str(&id).expect("hex digits and hyphens are a header value")
    }
}

/// `hi` and `lo` as a hyphenated UUID with the version (4) and variant (RFC 9562)
/// bits set, as a random UUID has them.
fn uuid_v4_shaped(hi: u64, lo: u64) -> String {
    let hi = (hi & !0xF000) | 0x4000;
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_version_4_uuids() {
        let ids = RequestIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        for id in [a, b] {
            let id = id.to_str().unwrap();
            let groups: Vec<&str> = id.split('-').collect();
            let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
            assert_eq!(lens, [8, 4, 4, 4, 12], "{id}");
            assert!(
                id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
                "{id}"
            );
            assert!(groups[2].starts_with('4'), "version 4: {id}");
            assert!(
                matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
                "RFC variant: {id}"
            );
        }
    }

    #[test]
    fn the_shape_keeps_every_other_bit() {
        assert_eq!(
            uuid_v4_shaped(0x0123_4567_89ab_cdef, 0x0123_4567_89ab_cdef),
            "01234567-89ab-4def-8123-456789abcdef"
        );
        assert_eq!(
            uuid_v4_shaped(u64::MAX, u64::MAX),
            "ffffffff-ffff-4fff-bfff-ffffffffffff"
        );
    }
}
