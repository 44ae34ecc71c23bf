//! `GET /metrics` (behind the API key like `/api/*`) and the timings of every
//! request (taken by [`super::edge::Edge`]). The recorder and the session-event
//! counters are in [`crate::metrics`]; the sessions by status are counted here at
//! scrape time from the supervisor's snapshots, so they can never drift from
//! `/api/sessions`.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics::{Histogram, gauge, histogram};
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

/// The route patterns requests are timed under, and the histogram of each
/// (method, pattern, status) seen so far.
///
/// The timing runs outside the router (so shed and timed-out answers count too),
/// where axum's `MatchedPath` is not known yet: the pattern is found here, in the
/// same route table the router is built from. Label values stay bounded: a path
/// that matches no route is `unmatched`, a method outside HTTP's own is `other`.
/// Each histogram handle is looked up once and kept, so a request costs a map
/// lookup instead of building and hashing three label strings.
pub struct HttpTimings {
    patterns: matchit::Router<&'static str>,
    seen: RwLock<HashMap<(&'static str, &'static str, u16), Histogram>>,
}

impl HttpTimings {
    /// Timings for the routes `paths` (axum's `{param}` syntax).
    pub fn new(paths: &[&'static str]) -> Arc<Self> {
        let mut patterns = matchit::Router::new();
        for path in paths {
            // The paths are distinct and never conflict (tests/router.rs checks that
            // each comes back as its own pattern); a refused one would read
            // `unmatched`, never another route's name.
            let _ = patterns.insert(*path, *path);
        }
        Arc::new(Self {
            patterns,
            seen: RwLock::default(),
        })
    }

    /// The route pattern `path` matches, or `unmatched`.
    pub fn pattern(&self, path: &str) -> &'static str {
        self.patterns.at(path).map_or("unmatched", |m| *m.value)
    }

    pub(super) fn record(
        &self,
        method: &'static str,
        route: &'static str,
        status: StatusCode,
        seconds: f64,
    ) {
        let key = (method, route, status.as_u16());
        if let Some(histogram) = self
            .seen
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            histogram.record(seconds);
            return;
        }
        let (method, route, status) = key;
        let histogram = histogram!(
            "wa_http_request_duration_seconds",
            "method" => method,
            "route" => route,
            "status" => status.to_string()
        );
        histogram.record(seconds);
        self.seen
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, histogram);
    }
}

/// HTTP's own methods by name; any other is `other`.
pub(super) fn method_label(method: &Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|name| *name == method.as_str())
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_timed_under_its_route_pattern() {
        let timings = HttpTimings::new(&["/api/status/{org}", "/api/messages", "/health"]);
        assert_eq!(timings.pattern("/api/status/clinic-1"), "/api/status/{org}");
        assert_eq!(timings.pattern("/api/messages"), "/api/messages");
        assert_eq!(timings.pattern("/api/status"), "unmatched");
        assert_eq!(timings.pattern("/nothing/here"), "unmatched");
    }

    #[test]
    fn methods_outside_http_s_own_share_one_label() {
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
