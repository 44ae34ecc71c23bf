//! Prometheus metrics at `GET /metrics`.
//!
//! Counters come from the actor tree's session events (decrypt and stream errors,
//! cleanups, backups, sends) and from an HTTP middleware (latency); the sessions by
//! status are counted at scrape time from the supervisor's snapshots, so they can
//! never drift from what `/api/sessions` says.
//!
//! Protection: `/metrics` is on the API listener and needs the API key, as
//! `X-API-Key` or as `Authorization: Bearer <key>` (what Prometheus's
//! `authorization` scrape setting sends). Per-org labels carry only org ids.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use wa_actors::{EventKind, EventSink, SessionEvent, SessionStatus};

use crate::http::AppState;
use crate::http::error::ApiError;

/// The process-wide recorder (installed on first use; the `metrics` facade has one
/// global recorder per process).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
            ])
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; then ours stays idle
        // and its render is empty, which the tests would show.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Turns session events into counters.
pub struct MetricsSink;

impl EventSink for MetricsSink {
    fn emit(&self, event: SessionEvent) {
        let org = event.org.to_string();
        match event.kind {
            EventKind::DecryptError => {
                counter!("wa_decrypt_errors_total", "org_id" => org).increment(1);
            }
            EventKind::StreamError { code } => {
                let code = code.map_or_else(|| "none".to_owned(), |c| c.to_string());
                counter!("wa_stream_errors_total", "org_id" => org, "code" => code).increment(1);
            }
            EventKind::Cleaned { reason, backup } => {
                if backup.is_some() {
                    counter!("wa_backups_total", "org_id" => org.clone()).increment(1);
                }
                counter!("wa_cleanups_total", "org_id" => org, "reason" => reason).increment(1);
            }
            EventKind::MessageSent { .. } => {
                counter!("wa_messages_sent_total", "org_id" => org).increment(1);
            }
            EventKind::MessageFailed { .. } => {
                counter!("wa_messages_failed_total", "org_id" => org).increment(1);
            }
            EventKind::StatusChanged { .. }
            | EventKind::Qr { .. }
            | EventKind::Connected { .. } => {}
        }
    }
}

/// Records every request's latency by method, route pattern and status.
pub async fn track_http(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    // The route pattern (`/api/qr/{org}`), never the raw path: bounded label values.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    histogram!(
        "wa_http_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => status
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`.
pub async fn render(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return ApiError::Unauthorized.into_response();
    }
    let sessions = state.supervisor.sessions();
    for status in SessionStatus::ALL {
        let n = sessions.iter().filter(|s| s.status == status).count();
        gauge!("wa_sessions", "status" => status.as_str()).set(n as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle().render(),
    )
        .into_response()
}

fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let by_header = headers
        .get(crate::http::auth::HEADER)
        .is_some_and(|v| state.api_key.matches(v.as_bytes()));
    let by_bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(|key| state.api_key.matches(key));
    by_header || by_bearer
}
