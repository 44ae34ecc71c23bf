//! `GET /metrics` (behind the API key like `/api/*`) and the middleware that times
//! every request. The recorder and the session-event counters are in
//! [`crate::metrics`]; the sessions by status are counted here at scrape time from
//! the supervisor's snapshots, so they can never drift from `/api/sessions`.

use std::collections::BTreeSet;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{gauge, histogram};
use wa_actors::outbox::MessageStatus;
use wa_actors::{OrgId, SessionStatus};

use super::AppState;

/// Prometheus metrics, in its text format.
///
/// Sessions by status, messages by organization and status, session events,
/// request latencies. Prometheus's `authorization` scrape setting sends the key as
/// `Authorization: Bearer`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "monitoring",
    responses(
        (status = 200, description = "The metrics.", content_type = "text/plain", body = String),
    ),
)]
pub async fn render(State(state): State<AppState>) -> Response {
    let sessions = state.supervisor.sessions();
    for status in SessionStatus::ALL {
        let n = sessions.iter().filter(|s| s.status == status).count();
        gauge!("wa_sessions", "status" => status.as_str()).set(n as f64);
    }
    // Messages by status per org, read from the outbox at scrape time. The outbox
    // names only the statuses an org has messages in; every other status of that
    // org is set to 0, or a status it left would keep its last count.
    match state.supervisor.outbox().counts().await {
        Ok(counts) => {
            let orgs: BTreeSet<&OrgId> = counts.iter().map(|(org, _, _)| org).collect();
            for org in orgs {
                for status in MessageStatus::ALL {
                    let n = counts
                        .iter()
                        .find(|(o, s, _)| o == org && *s == status)
                        .map_or(0, |(_, _, n)| *n);
                    gauge!("wa_messages", "org_id" => org.to_string(), "status" => status.as_str())
                        .set(n as f64);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "the outbox could not be counted for /metrics"),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::handle().render(),
    )
        .into_response()
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
