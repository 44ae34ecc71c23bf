//! `GET /health`: the liveness probe; needs no key and reveals only a count.

use axum::Json;
use axum::extract::State;
use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

/// The answer of `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`: a daemon that answers is alive.
    #[schema(value_type = String, examples("ok"))]
    status: &'static str,
    /// How many organizations have a session.
    sessions: usize,
    /// Now, RFC 3339 in UTC with milliseconds.
    #[schema(format = DateTime)]
    timestamp: String,
}

/// The liveness probe.
///
/// Needs no key; says only how many sessions there are.
#[utoipa::path(
    get,
    path = "/health",
    tag = "monitoring",
    security(()),
    responses((status = 200, description = "The daemon is alive.", body = Health)),
)]
pub async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        sessions: state.supervisor.sessions().len(),
        timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    })
}
