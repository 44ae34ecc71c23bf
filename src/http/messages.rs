//! `POST /api/send-message`: the compatible send (CONTRACT §2), through the
//! outbox (CONTRACT §10): it answers once WhatsApp's server acknowledged the
//! message, and a send that answered an error is never delivered afterwards.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Text, required, required_org};
use super::openapi::schemas::{ErrorSchema, OrgIdInputSchema, PhoneInputSchema};

#[derive(Debug, Deserialize, ToSchema)]
pub struct SendBody {
    #[schema(value_type = OrgIdInputSchema, required = true)]
    organization_id: Option<Text>,
    #[schema(value_type = PhoneInputSchema, required = true)]
    phone: Option<Text>,
    /// The text; not blank.
    #[schema(required = true, min_length = 1)]
    message: Option<String>,
    /// A retry with the same key is the same message, never sent twice.
    #[schema(min_length = 1, max_length = 128)]
    idempotency_key: Option<String>,
}

/// The answer of `POST /api/send-message`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Sent {
    #[schema(examples(true))]
    success: bool,
    #[schema(value_type = String, examples("Message sent successfully"))]
    message: &'static str,
    /// The recipient's WhatsApp id, `<digits>@s.whatsapp.net`.
    #[schema(examples("573001234567@s.whatsapp.net"))]
    phone: String,
    message_id: String,
}

/// Sends a text and answers once WhatsApp's server acknowledged it.
///
/// The deployed client's send. A `reconnecting` session is waited for (up to
/// `[send] wait_seconds`); any other status that is not `connected` is a `400`
/// naming the status. A send that answered an error is never delivered afterwards.
/// Prefer `POST /api/messages`, which queues instead of refusing.
#[utoipa::path(
    post,
    path = "/api/send-message",
    tag = "messages",
    request_body = SendBody,
    responses(
        (status = 200, description = "Sent: WhatsApp's server acknowledged it.", body = Sent),
        (status = 400, description = "A field missing or invalid, or the session not connected (with `status` and `hint`).", body = ErrorSchema),
        (status = 404, description = "No session for this organization.", body = ErrorSchema),
        (status = 409, description = "The idempotency key holds another message (in `message`).", body = ErrorSchema),
        (status = 500, description = "The send failed (with `status`).", body = ErrorSchema),
    ),
)]
pub async fn send(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SendBody>,
) -> Result<Json<Sent>, ApiError> {
    let org = required_org(body.organization_id)?;
    let phone = state.phone.normalize(&required(body.phone, "phone")?)?;
    let text = super::outbox::message_text(body.message)?;
    let key = super::outbox::idempotency_key(body.idempotency_key)?;
    let sent = state
        .supervisor
        .send_text(&org, &phone, &text, key)
        .await
        .map_err(state.session_error(&org))?;
    tracing::info!(org_id = %org, message_id = %sent.message_id, "message sent");
    Ok(Json(Sent {
        success: true,
        message: "Message sent successfully",
        phone: format!("{}@s.whatsapp.net", sent.phone),
        message_id: sent.message_id,
    }))
}
