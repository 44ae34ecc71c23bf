//! `GET /api/backups/{org}` and `POST /api/restore`: an operator puts a backup back
//! without a shell on the server.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use wa_actors::SessionStatus;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, OrgPath, Text, required, required_org};

/// How long `restore` waits for the resumed session to settle (connected, or a
/// status that needs a person) before answering with `reconnecting`.
const SETTLE: Duration = Duration::from_secs(5);

/// `GET /api/backups/{org}`: newest first.
pub async fn list(
    State(state): State<AppState>,
    OrgPath(org): OrgPath,
) -> Result<Json<Value>, ApiError> {
    let backups = state.supervisor.backups(&org).await?;
    let backups: Vec<Value> = backups
        .into_iter()
        .map(|b| {
            json!({
                "name": b.name,
                "reason": b.reason,
                "created_at": b.created_at,
                "bytes": b.bytes,
            })
        })
        .collect();
    Ok(Json(json!({ "organization_id": org, "backups": backups })))
}

#[derive(Debug, Deserialize)]
pub struct RestoreBody {
    organization_id: Option<Text>,
    backup: Option<Text>,
}

/// `POST /api/restore`: stops the session, keeps the live one as a
/// `before_restore` backup, puts the chosen backup in place and resumes it.
/// A name that cannot be a backup's is `400`; a well-formed one that the org's
/// backups do not hold is `404`.
pub async fn restore(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RestoreBody>,
) -> Result<Json<Value>, ApiError> {
    let org = required_org(body.organization_id)?;
    let backup = required(body.backup, "backup")?;
    let done = state.supervisor.restore(&org, &backup).await?;
    tracing::info!(
        org_id = %org,
        backup = %done.restored,
        before_restore = done.before_restore.as_deref().unwrap_or("-"),
        "backup restored on request"
    );
    let settled = state
        .supervisor
        .wait_for(&org, SETTLE, |s| {
            !matches!(
                s.status,
                SessionStatus::Connecting | SessionStatus::Reconnecting
            )
        })
        .await;
    let s = settled.unwrap_or_else(|| state.supervisor.status(&org));
    Ok(Json(json!({
        "success": true,
        "message": "Backup restored; the session resumes from it",
        "organization_id": org,
        "backup": done.restored,
        "before_restore": done.before_restore,
        "status": s.status,
        "connected": s.connected(),
        "has_qr": s.has_qr(),
        "phone_number": s.phone_number,
        "retry_at": s.retry_at,
        "reason": s.reason,
    })))
}
