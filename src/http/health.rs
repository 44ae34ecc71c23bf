//! `GET /health`: the liveness probe; needs no key and reveals only a count.

use axum::Json;
use axum::extract::State;
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use super::AppState;

pub async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "sessions": state.supervisor.sessions().len(),
        "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    }))
}
