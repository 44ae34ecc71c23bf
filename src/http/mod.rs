//! The HTTP facade: the CONTRACT §2 surface over a [`Supervisor`].
//!
//! Handlers are thin: they validate input, call the supervisor and shape JSON.
//! Everything they can fail with is an [`error::ApiError`]; anything axum or
//! tower-http answers by itself (unknown route, wrong method, body too large) is
//! turned into the same JSON shape by [`json_errors`], so a client never has to
//! parse plain text.

pub mod auth;
pub mod backups;
pub mod cluster;
pub mod edge;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod media;
pub mod messages;
pub mod metrics;
pub mod numbers;
pub mod openapi;
pub mod outbox;
pub mod qr;
pub mod rate_limit;
pub mod routes;
pub mod sessions;
pub mod sim;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, middleware};
use tower_http::limit::RequestBodyLimitLayer;
use tracing::Span;
use wa_actors::Supervisor;

use crate::api_key::ApiKey;
use crate::live_events::LiveEvents;
use crate::phone::PhoneRules;
use error::ApiError;
use extract::BODY_LIMIT;
use routes::Routes;

/// What every handler can reach, behind one reference count: axum clones the
/// state for each request, once per handler and middleware that extracts it, so a
/// clone must cost one counter, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<AppStateParts>);

impl AppState {
    pub fn new(parts: AppStateParts) -> Self {
        Self(Arc::new(parts))
    }

    /// Turns a failure about `org`'s session into its API error, with the
    /// session's status attached where the error carries one (CONTRACT §2).
    /// The status is read only on a failure, as it is then.
    pub fn session_error<'a, E: Into<ApiError>>(
        &'a self,
        org: &'a wa_actors::OrgId,
    ) -> impl FnOnce(E) -> ApiError + 'a {
        move |e| e.into().with_status(self.supervisor.status(org).status)
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateParts;

    fn deref(&self) -> &AppStateParts {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct AppStateParts {
    pub supervisor: Supervisor,
    pub api_key: Arc<ApiKey>,
    /// The fake phones, in simulation mode only; their routes exist only then.
    pub sim: Option<sim::FakePhones>,
    /// How typed phone numbers are read (`[phone] default_region`).
    pub phone: PhoneRules,
    /// The listeners of `GET /api/events`.
    pub events: LiveEvents,
    /// What hands requests to an org's owner: with several daemons on one
    /// database only (`[store] kind = "postgres"`).
    pub cluster: Option<Arc<cluster::ClusterHttp>>,
}

/// Limits at the HTTP edge (`[server] request_timeout_seconds`, `max_in_flight`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request still unanswered after this is answered `504` (JSON).
    pub request_timeout: Duration,
    /// Requests handled at once; one more is shed at once with `503` and
    /// `Retry-After` instead of queueing.
    pub max_in_flight: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_in_flight: 256,
        }
    }
}

/// Builds the whole router with the default [`HttpLimits`].
pub fn router(state: AppState) -> Router {
    router_with_limits(state, HttpLimits::default())
}

/// Builds the whole router (see [`router_and_paths`]).
pub fn router_with_limits(state: AppState, limits: HttpLimits) -> Router {
    router_and_paths(state, limits).0
}

/// Builds the whole router: `/health`, the console and the API's description
/// without a key, the keyed `/api/*` and `/metrics` routes, and `/sim/*` in
/// simulation mode, behind the [`edge::Edge`] (request id, span, timing, load
/// shedding, timeout, JSON errors) and the body limits. Also returns every path it
/// serves, from the route tables it is built from: what `GET /openapi.json` must
/// describe.
pub fn router_and_paths(state: AppState, limits: HttpLimits) -> (Router, Vec<&'static str>) {
    let mut keyed = Routes::new()
        .route("/api/start-session", post(sessions::start))
        .route("/api/qr/{org}", get(qr::qr))
        .route("/api/status/{org}", get(sessions::status))
        .route("/api/send-message", post(messages::send))
        .route("/api/messages", post(outbox::enqueue).get(outbox::list))
        .route(
            "/api/messages/{message_id}",
            get(outbox::get).delete(outbox::cancel),
        )
        .route("/api/check-number", post(numbers::check))
        .route("/api/logout", post(sessions::logout))
        .route("/api/force-clean-session", post(sessions::force_clean))
        .route("/api/clear-corrupted-session", post(sessions::force_clean))
        .route("/api/clear-session", post(sessions::force_clean))
        .route("/api/sessions", get(sessions::list))
        .route("/api/rate-limit-status", get(rate_limit::rate_limit_status))
        .route("/api/backups/{org}", get(backups::list))
        .route("/api/restore", post(backups::restore))
        .route("/api/events", get(events::events))
        .route("/api/cluster", get(cluster::nodes))
        .route("/metrics", get(metrics::render));
    if state.sim.is_some() {
        keyed = keyed.merge(sim::routes());
    }
    // Nothing here holds data.
    let open = Routes::new()
        .route("/health", get(health::health))
        .merge(crate::console::routes())
        .merge(openapi::routes());
    // Files have their own body limit and upload bound (see `media::routes`).
    let media = Routes::new().mount(&[media::PATH], media::routes(&state));
    let paths = [open.paths(), keyed.paths(), media.paths()].concat();
    // `route_layer`: the key is checked only on matched routes (so an unknown path
    // is a 404, not a 401) and before any extractor touches the body; then, with
    // several daemons on one database, what only an org's owner can do is handed
    // to it (the layer added last runs first). A daemon on its own has nothing to
    // hand over, and its requests do not pay for the layer.
    let mut keyed = keyed.into_router();
    if let Some(cluster) = &state.cluster {
        keyed = keyed.route_layer(middleware::from_fn_with_state(
            cluster.clone(),
            cluster::forward,
        ));
    }
    let keyed = keyed.route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_api_key,
    ));

    let routes = Router::new()
        .merge(open.into_router())
        .merge(keyed)
        // Bodies are read only by extractors; both limits give a 413, the second
        // without reading a body whose Content-Length is already too large.
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        // Files: merged after the text limits, as it has its own.
        .merge(media.into_router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);

    // The edge wraps the router once, not each route (as `Router::layer` does): a
    // route's service is cloned for every call, and so is everything it wraps.
    let edge = edge::Edge::new(routes, metrics::HttpTimings::new(&paths), limits);
    let router = Router::new().fallback_service(edge);
    (router, paths)
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// One span per request. Only method, path and request id: never headers (the API
/// key travels in one) and never the query.
fn request_span(req: &Request) -> Span {
    let request_id = req
        .headers()
        .get(edge::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = req.uri().path(),
        request_id,
    )
}

/// Failed requests at `info` (an operator wants to see them), the rest at `debug`
/// (the Django client polls status every few seconds).
fn log_response(resp: &Response, latency: Duration) {
    let status = resp.status().as_u16();
    let latency_ms = latency.as_millis() as u64;
    if status >= 400 {
        tracing::info!(status, latency_ms, "request answered");
    } else {
        tracing::debug!(status, latency_ms, "request answered");
    }
}

/// Gives every error response that is not JSON yet (axum's own 405, tower-http's
/// 413, a plain-text rejection) the JSON error body of CONTRACT §2, keeping its
/// status and headers such as `Allow`.
fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&resp) {
        return resp;
    }
    let replacement = match status {
        StatusCode::NOT_FOUND => ApiError::NotFound.into_response(),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed.into_response(),
        StatusCode::GATEWAY_TIMEOUT => ApiError::Timeout.into_response(),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge { limit: BODY_LIMIT }.into_response()
        }
        other => {
            let error = other
                .canonical_reason()
                .unwrap_or("request failed")
                .to_lowercase();
            (other, axum::Json(serde_json::json!({ "error": error }))).into_response()
        }
    };
    let (mut parts, _old_body) = resp.into_parts();
    let (new_parts, body) = replacement.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        new_parts
            .headers
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/json")),
    );
    Response::from_parts(parts, Body::new(body))
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}
