//! `POST /api/send-message`: the compatible send (CONTRACT §2), through the
//! outbox (CONTRACT §10): it answers once WhatsApp's server acknowledged the
//! message, and a send that answered an error is never delivered afterwards.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Text, required, required_org};

#[derive(Debug, Deserialize)]
pub struct SendBody {
    organization_id: Option<Text>,
    phone: Option<Text>,
    message: Option<String>,
    idempotency_key: Option<String>,
}

/// Sends a text. A `reconnecting` session is waited for (up to `[send]
/// wait_seconds`) by the actor; any other status that is not `connected` is a 400
/// naming the status, so the caller knows whether to show a QR or retry.
pub async fn send(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SendBody>,
) -> Result<Json<Value>, ApiError> {
    let org = required_org(body.organization_id)?;
    let phone = state.phone.normalize(&required(body.phone, "phone")?)?;
    let text = super::outbox::message_text(body.message)?;
    let key = super::outbox::idempotency_key(body.idempotency_key)?;
    let sent = state
        .supervisor
        .send_text(&org, &phone, &text, key)
        .await
        .map_err(|e| ApiError::from(e).with_status(state.supervisor.status(&org).status))?;
    tracing::info!(org_id = %org, message_id = %sent.message_id, "message sent");
    Ok(Json(json!({
        "success": true,
        "message": "Message sent successfully",
        "phone": format!("{}@s.whatsapp.net", sent.phone),
        "message_id": sent.message_id,
    })))
}
