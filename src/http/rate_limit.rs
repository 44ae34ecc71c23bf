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
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use utoipa::ToSchema;
use wa_actors::{BlockReason, GlobalBudget, OrgBudget, OrgId, SessionStatus};

use super::AppState;
use super::error::ApiError;
use super::openapi::schemas::{ErrorSchema, OrgIdSchema};

#[derive(Debug, Deserialize)]
pub struct RateQuery {
    organization_id: Option<String>,
}

/// The daemon-wide budget, in every answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct GlobalLimit {
    /// Attempts within the global period (an hour by default).
    global_attempts_last_hour: usize,
    global_limit: usize,
    global_blocked: bool,
    /// When the global budget has room again, while it has none (RFC 3339).
    #[schema(format = DateTime)]
    global_block_until: Option<String>,
    global_window_seconds: u64,
}

/// One organization's budget.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgLimit {
    #[schema(value_type = OrgIdSchema)]
    organization_id: OrgId,
    can_connect: bool,
    /// Why an attempt would be refused now.
    #[schema(value_type = Option<String>, examples("daily_limit", "global_limit"))]
    block_reason: Option<&'static str>,
    wait_time_minutes: u64,
    /// Attempts within the organization's period (24 hours by default).
    attempts_last_24h: usize,
    daily_limit: usize,
    /// When an attempt is allowed again, while one would be refused (RFC 3339).
    #[schema(format = DateTime)]
    block_until: Option<String>,
    window_seconds: u64,
}

/// The answer with `?organization_id=`: the global budget and that organization's.
#[derive(Debug, Serialize, ToSchema)]
pub struct RateLimitOfOrg {
    #[serde(flatten)]
    global: GlobalLimit,
    #[serde(flatten)]
    org: OrgLimit,
}

/// The answer without an organization: the global budget, and every organization
/// with an attempt in its period or in status `blocked`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RateLimitOfAll {
    #[serde(flatten)]
    global: GlobalLimit,
    organizations: Vec<OrgLimit>,
}

/// The answers of `GET /api/rate-limit-status`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum RateLimit {
    Org(RateLimitOfOrg),
    All(RateLimitOfAll),
}

/// The connection-attempt budget (anti-ban), daemon-wide and per organization.
///
/// With `organization_id`, that organization's budget beside the global one;
/// without it, every organization with an attempt in its period or `blocked`.
#[utoipa::path(
    get,
    path = "/api/rate-limit-status",
    tag = "monitoring",
    params(("organization_id" = Option<OrgIdSchema>, Query, description = "One organization's budget.")),
    responses(
        (status = 200, description = "The budget.", body = RateLimit),
        (status = 400, description = "An invalid organization id.", body = ErrorSchema),
    ),
)]
pub async fn rate_limit_status(
    State(state): State<AppState>,
    query: Result<Query<RateQuery>, QueryRejection>,
) -> Result<Json<RateLimit>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let budget = state.supervisor.budget();
    let spec = budget.spec();
    let now = Instant::now();
    let global = global_limit(&budget.global(now), spec.global.length);
    let answer = match query.organization_id.filter(|s| !s.is_empty()) {
        Some(raw) => {
            let org = OrgId::parse(&raw)?;
            RateLimit::Org(RateLimitOfOrg {
                global,
                org: org_limit(&budget.org(&org, now), spec.per_org.length),
            })
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
            RateLimit::All(RateLimitOfAll {
                global,
                organizations: listed
                    .iter()
                    .map(|o| org_limit(o, spec.per_org.length))
                    .collect(),
            })
        }
    };
    Ok(Json(answer))
}

fn until(wait: Duration) -> String {
    let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero());
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn global_limit(g: &GlobalBudget, window: Duration) -> GlobalLimit {
    GlobalLimit {
        global_attempts_last_hour: g.attempts,
        global_limit: g.limit,
        global_blocked: g.blocked_for.is_some(),
        global_block_until: g.blocked_for.map(until),
        global_window_seconds: window.as_secs(),
    }
}

fn org_limit(o: &OrgBudget, window: Duration) -> OrgLimit {
    let reason = o.blocked.map(|b| match b.reason {
        BlockReason::OrgLimit => "daily_limit",
        BlockReason::GlobalLimit => "global_limit",
    });
    let wait_minutes = o
        .blocked
        .map_or(0, |b| b.wait.as_secs().div_ceil(60).max(1));
    OrgLimit {
        organization_id: o.org.clone(),
        can_connect: o.blocked.is_none(),
        block_reason: reason,
        wait_time_minutes: wait_minutes,
        attempts_last_24h: o.attempts,
        daily_limit: o.limit,
        block_until: o.blocked.map(|b| until(b.wait)),
        window_seconds: window.as_secs(),
    }
}
