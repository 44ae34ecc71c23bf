//! Session lifecycle routes: start, status, list, logout and clean.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use wa_actors::SessionSnapshot;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, OrgBody, OrgPath, Text, required_org};

#[derive(Debug, Deserialize)]
pub struct StartBody {
    organization_id: Option<Text>,
    /// Asks for a pairing code for this number beside the QR.
    phone_number: Option<Text>,
}

/// `POST /api/start-session`: starts or resumes a session; never wipes one.
pub async fn start(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StartBody>,
) -> Result<Json<Value>, ApiError> {
    let org = required_org(body.organization_id)?;
    let phone_for_code = match body.phone_number {
        Some(Text(raw)) if !raw.trim().is_empty() => Some(state.phone.normalize(&raw)?),
        _ => None,
    };
    let outcome = state.supervisor.start(&org, phone_for_code).await?;
    let snap = &outcome.snapshot;
    tracing::info!(
        org_id = %org,
        status = %snap.status,
        already_running = outcome.already_running,
        "session start requested"
    );
    let message = if outcome.already_running {
        "Session already running"
    } else if snap.status == wa_actors::SessionStatus::Blocked {
        "Connection-attempt budget spent; the session retries by itself at retry_at"
    } else {
        "Session started"
    };
    Ok(Json(json!({
        "message": message,
        "organization_id": org,
        "status": snap.status,
        "already_running": outcome.already_running,
        "has_qr": snap.has_qr(),
        "pairing_code": snap.pairing_code,
        "retry_at": snap.retry_at,
        "reason": snap.reason,
    })))
}

/// `GET /api/status/{org}`: an unknown org is `200 not_started`, not an error.
pub async fn status(State(state): State<AppState>, OrgPath(org): OrgPath) -> Json<Value> {
    let s = state.supervisor.status(&org);
    Json(json!({
        "organization_id": s.organization_id,
        "status": s.status,
        "connected": s.connected(),
        "has_qr": s.has_qr(),
        "phone_number": s.phone_number,
        "pairing_code": s.pairing_code,
        "retry_at": s.retry_at,
        "reason": s.reason,
        "updated_at": s.updated_at,
    }))
    .with_node(&s)
}

/// `GET /api/sessions`.
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let sessions: Vec<Value> = state.supervisor.sessions().iter().map(summary).collect();
    Json(json!({ "total": sessions.len(), "sessions": sessions }))
}

fn summary(s: &SessionSnapshot) -> Value {
    json!({
        "organization_id": s.organization_id,
        "status": s.status,
        "connected": s.connected(),
        "has_qr": s.has_qr(),
        "phone_number": s.phone_number,
    })
    .with_node(s)
}

/// With several daemons on one database, a session's JSON names the node that
/// drives it (CONTRACT §13).
trait WithNode {
    fn with_node(self, s: &SessionSnapshot) -> Self;
}

impl WithNode for Value {
    fn with_node(mut self, s: &SessionSnapshot) -> Self {
        if let Some(node) = &s.node_id {
            self["node_id"] = Value::String(node.clone());
        }
        self
    }
}

impl WithNode for Json<Value> {
    fn with_node(self, s: &SessionSnapshot) -> Self {
        Json(self.0.with_node(s))
    }
}

/// `POST /api/logout`: unlinks the device, backs the session up and removes it.
pub async fn logout(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<OrgBody>,
) -> Result<Json<Value>, ApiError> {
    let org = required_org(body.organization_id)?;
    let outcome = state.supervisor.logout(&org).await?;
    tracing::info!(org_id = %org, backup = ?outcome.backup, "session logged out");
    // Say what happened: a session that never paired had nothing to back up.
    let message = match outcome.backup {
        Some(_) => "Logged out; the session was backed up and removed",
        None => "Logged out; there was nothing stored to back up",
    };
    Ok(Json(json!({
        "success": true,
        "message": message,
        "backup": outcome.backup,
    })))
}

/// `POST /api/force-clean-session` and its aliases `clear-corrupted-session` and
/// `clear-session`: stops the session, backs it up and removes it. Succeeds for an
/// org without a session too, as the Django client calls it blindly.
pub async fn force_clean(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<OrgBody>,
) -> Result<Json<Value>, ApiError> {
    let org = required_org(body.organization_id)?;
    let outcome = state.supervisor.force_clean(&org).await?;
    tracing::info!(org_id = %org, backup = ?outcome.backup, "session cleaned on request");
    let message = match outcome.backup {
        Some(_) => "Session cleaned; the old session was backed up",
        None => "Session cleaned; there was nothing stored",
    };
    Ok(Json(json!({
        "success": true,
        "message": message,
        "backup": outcome.backup,
    })))
}
