//! `GET /api/backups/{org}` and `POST /api/restore`: an operator puts a backup back
//! without a shell on the server.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wa_actors::storage::backups::BackupInfo;
use wa_actors::{OrgId, SessionStatus};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, OrgPath, Text, required, required_org};
use super::openapi::schemas::{ErrorSchema, OrgIdInputSchema, OrgIdSchema, SessionStatusSchema};

/// How long `restore` waits for the resumed session to settle (connected, or a
/// status that needs a person) before answering with `reconnecting`.
const SETTLE: Duration = Duration::from_secs(5);

/// One backup of an organization's session.
#[derive(Debug, Serialize, ToSchema)]
pub struct Backup {
    /// `<UTC time>_<reason>`: what `POST /api/restore` takes.
    #[schema(examples("20261123T071533Z_force_clean"))]
    name: String,
    /// Why it was made (`bad_mac`, `logout`, `force_clean`, `before_restore`, …).
    reason: String,
    created_at: DateTime<Utc>,
    /// The sum of its files' sizes.
    bytes: u64,
}

impl From<BackupInfo> for Backup {
    fn from(b: BackupInfo) -> Self {
        Self {
            name: b.name,
            reason: b.reason,
            created_at: b.created_at,
            bytes: b.bytes,
        }
    }
}

/// The answer of `GET /api/backups/{org}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupList {
    #[schema(value_type = OrgIdSchema)]
    organization_id: OrgId,
    /// Newest first.
    backups: Vec<Backup>,
}

/// An organization's backups, newest first.
#[utoipa::path(
    get,
    path = "/api/backups/{org}",
    operation_id = "list_backups",
    tag = "backups",
    params(("org" = OrgIdSchema, Path, description = "The organization.")),
    responses(
        (status = 200, description = "The backups (none: an empty list).", body = BackupList),
        (status = 400, description = "An invalid organization id.", body = ErrorSchema),
        (status = 500, description = "The backups could not be read.", body = ErrorSchema),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    OrgPath(org): OrgPath,
) -> Result<Json<BackupList>, ApiError> {
    let backups = state.supervisor.backups(&org).await?;
    Ok(Json(BackupList {
        organization_id: org,
        backups: backups.into_iter().map(Backup::from).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RestoreBody {
    #[schema(value_type = OrgIdInputSchema, required = true)]
    organization_id: Option<Text>,
    /// A name that `GET /api/backups/{org}` lists.
    #[schema(value_type = String, required = true)]
    backup: Option<Text>,
}

/// The answer of `POST /api/restore`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Restored {
    #[schema(examples(true))]
    success: bool,
    #[schema(value_type = String)]
    message: &'static str,
    #[schema(value_type = OrgIdSchema)]
    organization_id: OrgId,
    /// The backup that is now the session.
    backup: String,
    /// The backup the replaced session was kept as; `null` when nothing was stored.
    before_restore: Option<String>,
    /// The session once it settled (at most 5 s; else `reconnecting`).
    #[schema(value_type = SessionStatusSchema)]
    status: SessionStatus,
    connected: bool,
    has_qr: bool,
    phone_number: Option<String>,
    retry_at: Option<DateTime<Utc>>,
    reason: Option<String>,
}

/// Puts a backup back in place and resumes it.
///
/// Stops the session (flushed, never logged out), keeps the live one as a new
/// backup with reason `before_restore`, puts `backup` in place and resumes it: no
/// QR when its credentials are good. Answers once the session settles, at most 5 s.
/// A name that cannot be a backup's is `400`; a well-formed one this organization
/// does not hold is `404`; neither stops anything.
#[utoipa::path(
    post,
    path = "/api/restore",
    operation_id = "restore_backup",
    tag = "backups",
    request_body = RestoreBody,
    responses(
        (status = 200, description = "Restored and resumed.", body = Restored),
        (status = 400, description = "A field missing or invalid, or a name that cannot be a backup's.", body = ErrorSchema),
        (status = 404, description = "This organization holds no such backup.", body = ErrorSchema),
        (status = 409, description = "The session is being cleaned or restored; retry in a moment.", body = ErrorSchema),
        (status = 500, description = "The session store failed.", body = ErrorSchema),
    ),
)]
pub async fn restore(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RestoreBody>,
) -> Result<Json<Restored>, ApiError> {
    let org = required_org(body.organization_id)?;
    let backup = required(body.backup, "backup")?;
    let done = state
        .supervisor
        .restore(&org, &backup)
        .await
        .map_err(state.session_error(&org))?;
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
    Ok(Json(Restored {
        success: true,
        message: "Backup restored; the session resumes from it",
        connected: s.connected(),
        has_qr: s.has_qr(),
        organization_id: org,
        backup: done.restored,
        before_restore: done.before_restore,
        status: s.status,
        phone_number: s.phone_number,
        retry_at: s.retry_at,
        reason: s.reason,
    }))
}
