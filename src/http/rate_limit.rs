//! `GET /api/rate-limit-status[?organization_id=]`.
//!
//! The connection-attempt budget (CONTRACT §6) arrives in a later issue; until then
//! nothing draws from it, so this reports an unspent budget with the field names
//! the Django client reads. Replace this file when the budget exists.

use axum::Json;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use serde::Deserialize;
use serde_json::{Value, json};
use wa_actors::OrgId;

use super::error::ApiError;

/// Placeholder limits reported until the budget is implemented.
pub const GLOBAL_LIMIT_PER_HOUR: u32 = 30;
pub const DAILY_LIMIT_PER_ORG: u32 = 10;

#[derive(Debug, Deserialize)]
pub struct RateQuery {
    organization_id: Option<String>,
}

pub async fn rate_limit_status(
    query: Result<Query<RateQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut body = json!({
        "global_attempts_last_hour": 0,
        "global_limit": GLOBAL_LIMIT_PER_HOUR,
        "global_blocked": false,
    });
    let fields = body.as_object_mut().expect("an object");
    match query.organization_id.filter(|s| !s.is_empty()) {
        Some(raw) => {
            let org = OrgId::parse(&raw)?;
            fields.insert("organization_id".into(), json!(org));
            fields.insert("can_connect".into(), json!(true));
            fields.insert("block_reason".into(), Value::Null);
            fields.insert("wait_time_minutes".into(), json!(0));
            fields.insert("attempts_last_24h".into(), json!(0));
            fields.insert("daily_limit".into(), json!(DAILY_LIMIT_PER_ORG));
            fields.insert("block_until".into(), Value::Null);
        }
        None => {
            fields.insert("organizations".into(), json!([]));
        }
    }
    Ok(Json(body))
}
