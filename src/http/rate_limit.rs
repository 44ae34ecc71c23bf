//! `GET /api/rate-limit-status[?organization_id=]`: the connection-attempt budget
//! (CONTRACT §6) with the field names of CONTRACT §2, which the Django client reads.
//!
//! `attempts_last_24h` and `global_attempts_last_hour` keep their names whatever
//! periods `[connection_budget.*] seconds` configure (24 h and 1 h by default); the
//! periods are reported beside them. Without an org, `organizations` lists every
//! org with an attempt in its period and every org that is `blocked`.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use wa_actors::{BlockReason, OrgBudget, OrgId, SessionStatus};

use super::AppState;
use super::error::ApiError;

#[derive(Debug, Deserialize)]
pub struct RateQuery {
    organization_id: Option<String>,
}

pub async fn rate_limit_status(
    State(state): State<AppState>,
    query: Result<Query<RateQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let budget = state.supervisor.budget();
    let spec = budget.spec();
    let now = Instant::now();
    let global = budget.global(now);
    let mut body = json!({
        "global_attempts_last_hour": global.attempts,
        "global_limit": global.limit,
        "global_blocked": global.blocked_for.is_some(),
        "global_block_until": global.blocked_for.map(until),
        "global_window_seconds": spec.global.length.as_secs(),
    });
    let fields = body.as_object_mut().expect("an object");
    match query.organization_id.filter(|s| !s.is_empty()) {
        Some(raw) => {
            let org = OrgId::parse(&raw)?;
            let org_fields = org_entry(&budget.org(&org, now), spec.per_org.length);
            fields.extend(org_fields.as_object().expect("an object").clone());
        }
        None => {
            // Every org with an attempt in its period, and every `blocked` one (a
            // global block can hold back an org that has made no attempt yet).
            let mut listed = budget.orgs(now);
            for s in state.supervisor.sessions() {
                if s.status == SessionStatus::Blocked
                    && !listed.iter().any(|o| o.org == s.organization_id)
                {
                    listed.push(budget.org(&s.organization_id, now));
                }
            }
            listed.sort_by(|a, b| a.org.cmp(&b.org));
            let orgs: Vec<Value> = listed
                .iter()
                .map(|o| org_entry(o, spec.per_org.length))
                .collect();
            fields.insert("organizations".into(), json!(orgs));
        }
    }
    Ok(Json(body))
}

fn until(wait: Duration) -> String {
    let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero());
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn org_entry(o: &OrgBudget, window: Duration) -> Value {
    let reason = o.blocked.map(|b| match b.reason {
        BlockReason::OrgLimit => "daily_limit",
        BlockReason::GlobalLimit => "global_limit",
    });
    let wait_minutes = o
        .blocked
        .map_or(0, |b| b.wait.as_secs().div_ceil(60).max(1));
    json!({
        "organization_id": o.org,
        "can_connect": o.blocked.is_none(),
        "block_reason": reason,
        "wait_time_minutes": wait_minutes,
        "attempts_last_24h": o.attempts,
        "daily_limit": o.limit,
        "block_until": o.blocked.map(|b| until(b.wait)),
        "window_seconds": window.as_secs(),
    })
}
