//! `POST /api/check-number` (CONTRACT §14): whether a number has WhatsApp, asked
//! of the organization's connected session (the answer is remembered a few
//! minutes per organization, and shared with the outbox's own check before a
//! message's first attempt).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wa_actors::NumberCheckError;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Text, required, required_org};
use super::openapi::schemas::{ErrorSchema, OrgIdInputSchema, PhoneInputSchema};

#[derive(Debug, Deserialize, ToSchema)]
pub struct CheckNumberBody {
    #[schema(value_type = OrgIdInputSchema, required = true)]
    organization_id: Option<Text>,
    #[schema(value_type = PhoneInputSchema, required = true)]
    phone: Option<Text>,
}

/// The answer: the number as digits, whether it is on WhatsApp, and its chat
/// id when it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NumberCheck {
    pub phone: String,
    pub on_whatsapp: bool,
    pub jid: Option<String>,
}

/// `POST /api/check-number`: `409` with `status` when the session is not
/// connected (only a connected session can ask WhatsApp).
#[utoipa::path(
    post,
    path = "/api/check-number",
    operation_id = "check_number",
    tag = "messages",
    request_body = CheckNumberBody,
    responses(
        (status = 200, description = "Whether the number has WhatsApp.", body = NumberCheck),
        (status = 400, description = "A field missing or invalid.", body = ErrorSchema),
        (status = 409, description = "The session is not connected (`status` says how it is).", body = ErrorSchema),
        (status = 503, description = "WhatsApp did not answer; retry shortly.", body = ErrorSchema),
    ),
)]
pub async fn check(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CheckNumberBody>,
) -> Result<Json<NumberCheck>, ApiError> {
    let org = required_org(body.organization_id)?;
    let phone = state.phone.normalize(&required(body.phone, "phone")?)?;
    let on_whatsapp = state
        .supervisor
        .check_number(&org, &phone)
        .await
        .map_err(|e| match e {
            NumberCheckError::NotConnected { status } => ApiError::NotConnectedNow { status },
            NumberCheckError::Failed(why) => ApiError::CheckFailed(why),
        })?;
    tracing::debug!(org_id = %org, on_whatsapp, "number checked");
    Ok(Json(NumberCheck {
        jid: on_whatsapp.then(|| format!("{phone}@s.whatsapp.net")),
        phone,
        on_whatsapp,
    }))
}
