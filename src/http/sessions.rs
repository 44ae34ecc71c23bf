//! Session lifecycle routes: start, status, list, logout and clean.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wa_actors::{OrgId, SessionSnapshot, SessionStatus};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, OrgBody, OrgPath, Text, required_org};
use super::openapi::schemas::{
    ErrorSchema, OrgIdInputSchema, OrgIdSchema, PhoneInputSchema, SessionStatusSchema,
};

/// The aliases of `POST /api/force-clean-session`, served by the same handler.
pub const CLEAN_ALIASES: [&str; 2] = ["/api/clear-corrupted-session", "/api/clear-session"];

#[derive(Debug, Deserialize, ToSchema)]
pub struct StartBody {
    #[schema(value_type = OrgIdInputSchema, required = true)]
    organization_id: Option<Text>,
    /// Asks for a pairing code for this number beside the QR.
    #[schema(value_type = Option<PhoneInputSchema>)]
    phone_number: Option<Text>,
}

/// The answer of `POST /api/start-session`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Started {
    /// What happened, in words.
    message: &'static str,
    #[schema(value_type = OrgIdSchema)]
    organization_id: OrgId,
    #[schema(value_type = SessionStatusSchema)]
    status: SessionStatus,
    /// The session was already running and was left alone.
    already_running: bool,
    has_qr: bool,
    /// The code to type on the phone, when `phone_number` asked for one.
    pairing_code: Option<String>,
    /// Until when `banned` or `blocked` lasts.
    retry_at: Option<DateTime<Utc>>,
    /// Why the session is in this status, in words an operator can act on.
    reason: Option<String>,
}

/// Starts or resumes an organization's session; never wipes one.
///
/// Stored credentials are resumed; a running session is left alone. A start draws
/// one connection attempt from the budget; when it is spent the answer is
/// `status: "blocked"` with `retry_at`.
#[utoipa::path(
    post,
    path = "/api/start-session",
    operation_id = "start_session",
    tag = "sessions",
    request_body = StartBody,
    responses(
        (status = 200, description = "Started, resumed or already running.", body = Started),
        (status = 400, description = "`organization_id` missing or invalid, or an invalid `phone_number`.", body = ErrorSchema),
        (status = 500, description = "The session store failed.", body = ErrorSchema),
    ),
)]
pub async fn start(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StartBody>,
) -> Result<Json<Started>, ApiError> {
    let org = required_org(body.organization_id)?;
    let phone_for_code = match body.phone_number {
        Some(Text(raw)) if !raw.trim().is_empty() => Some(state.phone.normalize(&raw)?),
        _ => None,
    };
    let outcome = state
        .supervisor
        .start(&org, phone_for_code)
        .await
        .map_err(state.session_error(&org))?;
    let snap = outcome.snapshot;
    tracing::info!(
        org_id = %org,
        status = %snap.status,
        already_running = outcome.already_running,
        "session start requested"
    );
    let message = if outcome.already_running {
        "Session already running"
    } else if snap.status == SessionStatus::Blocked {
        "Connection-attempt budget spent; the session retries by itself at retry_at"
    } else {
        "Session started"
    };
    Ok(Json(Started {
        message,
        organization_id: org,
        status: snap.status,
        already_running: outcome.already_running,
        has_qr: snap.has_qr(),
        pairing_code: snap.pairing_code,
        retry_at: snap.retry_at,
        reason: snap.reason,
    }))
}

/// The answer of `GET /api/status/{org}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    #[schema(value_type = OrgIdSchema)]
    organization_id: OrgId,
    #[schema(value_type = SessionStatusSchema)]
    status: SessionStatus,
    connected: bool,
    has_qr: bool,
    /// The linked number (digits), once paired.
    phone_number: Option<String>,
    pairing_code: Option<String>,
    /// Until when `banned` or `blocked` lasts.
    retry_at: Option<DateTime<Utc>>,
    /// Why the session is in this status, in words an operator can act on.
    reason: Option<String>,
    updated_at: DateTime<Utc>,
    /// With several daemons on one database (CONTRACT §13): the node that
    /// drives the session. Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    node_id: Option<String>,
}

impl From<SessionSnapshot> for Status {
    fn from(s: SessionSnapshot) -> Self {
        Self {
            connected: s.connected(),
            has_qr: s.has_qr(),
            organization_id: s.organization_id,
            status: s.status,
            phone_number: s.phone_number,
            pairing_code: s.pairing_code,
            retry_at: s.retry_at,
            reason: s.reason,
            updated_at: s.updated_at,
            node_id: s.node_id,
        }
    }
}

/// An organization's session status.
///
/// An organization without a session is `200` with `status: "not_started"`, not an
/// error. A paired session that is only reconnecting says `reconnecting`.
#[utoipa::path(
    get,
    path = "/api/status/{org}",
    operation_id = "session_status",
    tag = "sessions",
    params(("org" = OrgIdSchema, Path, description = "The organization.")),
    responses(
        (status = 200, description = "The session's status.", body = Status),
        (status = 400, description = "An invalid organization id.", body = ErrorSchema),
    ),
)]
pub async fn status(State(state): State<AppState>, OrgPath(org): OrgPath) -> Json<Status> {
    Json(state.supervisor.status(&org).into())
}

/// One session of `GET /api/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionSummary {
    #[schema(value_type = OrgIdSchema)]
    organization_id: OrgId,
    #[schema(value_type = SessionStatusSchema)]
    status: SessionStatus,
    connected: bool,
    has_qr: bool,
    phone_number: Option<String>,
    /// With several daemons on one database (CONTRACT §13): the node that
    /// drives the session. Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    node_id: Option<String>,
}

/// The answer of `GET /api/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Sessions {
    total: usize,
    sessions: Vec<SessionSummary>,
}

/// Every organization that has a session, ordered by id.
#[utoipa::path(
    get,
    path = "/api/sessions",
    operation_id = "list_sessions",
    tag = "sessions",
    responses((status = 200, description = "The sessions.", body = Sessions)),
)]
pub async fn list(State(state): State<AppState>) -> Json<Sessions> {
    let sessions: Vec<SessionSummary> = state
        .supervisor
        .sessions()
        .into_iter()
        .map(|s| SessionSummary {
            connected: s.connected(),
            has_qr: s.has_qr(),
            organization_id: s.organization_id,
            status: s.status,
            phone_number: s.phone_number,
            node_id: s.node_id,
        })
        .collect();
    Json(Sessions {
        total: sessions.len(),
        sessions,
    })
}

/// The answer of `POST /api/logout` and `POST /api/force-clean-session`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Removed {
    #[schema(examples(true))]
    success: bool,
    /// What happened, in words.
    message: &'static str,
    /// The backup the session was kept as; `null` when nothing was stored.
    backup: Option<String>,
}

/// Logs the device out, backs the session up and removes it.
///
/// WhatsApp removes this device from the shop's phone. `backup` is `null` (and the
/// message says so) when nothing was stored.
#[utoipa::path(
    post,
    path = "/api/logout",
    operation_id = "logout",
    tag = "sessions",
    request_body = OrgBody,
    responses(
        (status = 200, description = "Logged out and removed.", body = Removed),
        (status = 400, description = "`organization_id` missing or invalid.", body = ErrorSchema),
        (status = 404, description = "No session for this organization.", body = ErrorSchema),
        (status = 409, description = "A backup is being restored; retry in a moment.", body = ErrorSchema),
        (status = 500, description = "The session store failed.", body = ErrorSchema),
    ),
)]
pub async fn logout(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<OrgBody>,
) -> Result<Json<Removed>, ApiError> {
    let org = required_org(body.organization_id)?;
    let outcome = state
        .supervisor
        .logout(&org)
        .await
        .map_err(state.session_error(&org))?;
    tracing::info!(org_id = %org, backup = ?outcome.backup, "session logged out");
    // Say what happened: a session that never paired had nothing to back up.
    let message = match outcome.backup {
        Some(_) => "Logged out; the session was backed up and removed",
        None => "Logged out; there was nothing stored to back up",
    };
    Ok(Json(Removed {
        success: true,
        message,
        backup: outcome.backup,
    }))
}

/// Stops the session, backs it up and removes it.
///
/// Also served as `POST /api/clear-corrupted-session` and `POST
/// /api/clear-session`. Succeeds for an organization without a session too, as the
/// deployed client calls it blindly.
#[utoipa::path(
    post,
    path = "/api/force-clean-session",
    operation_id = "force_clean_session",
    tag = "sessions",
    request_body = OrgBody,
    responses(
        (status = 200, description = "Cleaned (or nothing to clean).", body = Removed),
        (status = 400, description = "`organization_id` missing or invalid.", body = ErrorSchema),
        (status = 409, description = "A backup is being restored; retry in a moment.", body = ErrorSchema),
        (status = 500, description = "The session store failed.", body = ErrorSchema),
    ),
)]
pub async fn force_clean(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<OrgBody>,
) -> Result<Json<Removed>, ApiError> {
    let org = required_org(body.organization_id)?;
    let outcome = state
        .supervisor
        .force_clean(&org)
        .await
        .map_err(state.session_error(&org))?;
    tracing::info!(org_id = %org, backup = ?outcome.backup, "session cleaned on request");
    let message = match outcome.backup {
        Some(_) => "Session cleaned; the old session was backed up",
        None => "Session cleaned; there was nothing stored",
    };
    Ok(Json(Removed {
        success: true,
        message,
        backup: outcome.backup,
    }))
}
