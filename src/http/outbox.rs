//! The outbox's routes (CONTRACT §10): accept a message, read one, list them,
//! cancel one while it waits.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use wa_actors::outbox::{
    Enqueued, ListFilter, Message, MessageBody, MessageId, MessageStatus, Update, Updated,
};
use wa_actors::{MessageRequest, OrgId};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Text, required, required_org};

/// The longest `idempotency_key` accepted.
pub const MAX_KEY_LEN: usize = 128;
/// `ttl_seconds`: a minute to 30 days.
pub const TTL_SECONDS: std::ops::RangeInclusive<u64> = 60..=30 * 86_400;
/// `limit` of a listing: default and most.
pub const LIST_LIMIT: (usize, usize) = (100, 1000);

/// A message as the API shows it (CONTRACT §10): a text with its `message`, a
/// file (CONTRACT §14) with its `mimetype`, `filename`, `caption` and `size`.
pub fn message_json(m: &Message) -> Value {
    let mut json = json!({
        "message_id": m.message_id,
        "organization_id": m.org,
        "phone": m.phone,
        "status": m.status,
        "idempotency_key": m.idempotency_key,
        "attempts": m.attempts,
        "created_at": m.created_at,
        "expires_at": m.expires_at,
        "sent_at": m.sent_at,
        "delivered_at": m.delivered_at,
        "read_at": m.read_at,
        "error": m.error,
        "origin": m.origin,
        "kind": m.body.kind(),
    });
    match &m.body {
        MessageBody::Text(text) => json["message"] = json!(text),
        MessageBody::Media(media) => {
            json["mimetype"] = json!(media.mimetype);
            json["filename"] = json!(media.filename);
            json["caption"] = json!(media.caption);
            json["size"] = json!(media.size);
        }
    }
    json
}

#[derive(Debug, Deserialize)]
pub struct EnqueueBody {
    organization_id: Option<Text>,
    phone: Option<Text>,
    message: Option<String>,
    idempotency_key: Option<String>,
    expires_at: Option<String>,
    ttl_seconds: Option<u64>,
}

/// Checks an optional idempotency key: 1 to 128 printable characters.
pub fn idempotency_key(raw: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(key) = raw else { return Ok(None) };
    if key.is_empty() || key.chars().count() > MAX_KEY_LEN || key.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "idempotency_key must be 1 to {MAX_KEY_LEN} printable characters"
        )));
    }
    Ok(Some(key))
}

/// The text of a message: present and not blank.
pub fn message_text(raw: Option<String>) -> Result<String, ApiError> {
    let text = raw.ok_or_else(|| ApiError::BadRequest("message is required".into()))?;
    if text.trim().is_empty() {
        return Err(ApiError::BadRequest("message is empty".into()));
    }
    Ok(text)
}

/// When the message expires: `expires_at` or `ttl_seconds` (not both), in the future.
pub fn expiry(
    expires_at: Option<String>,
    ttl_seconds: Option<u64>,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let now = Utc::now();
    let at = match (expires_at, ttl_seconds) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give expires_at or ttl_seconds, not both".into(),
            ));
        }
        (Some(raw), None) => DateTime::parse_from_rfc3339(raw.trim())
            .map_err(|_| ApiError::BadRequest("expires_at must be an RFC 3339 time".into()))?
            .with_timezone(&Utc),
        (None, Some(ttl)) if TTL_SECONDS.contains(&ttl) => {
            now + chrono::Duration::seconds(ttl as i64)
        }
        (None, Some(_)) => {
            return Err(ApiError::BadRequest(format!(
                "ttl_seconds must be between {} and {}",
                TTL_SECONDS.start(),
                TTL_SECONDS.end()
            )));
        }
        (None, None) => return Ok(None),
    };
    if at <= now {
        return Err(ApiError::BadRequest("expires_at is in the past".into()));
    }
    if at > now + chrono::Duration::seconds(*TTL_SECONDS.end() as i64) {
        return Err(ApiError::BadRequest(format!(
            "expires_at is more than {} days ahead",
            TTL_SECONDS.end() / 86_400
        )));
    }
    Ok(Some(at))
}

/// `POST /api/messages`: `202` once the message is durably accepted; the same
/// idempotency key again: `200` with the stored message, `409` with other content.
pub async fn enqueue(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EnqueueBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let org = required_org(body.organization_id)?;
    let phone = state.phone.normalize(&required(body.phone, "phone")?)?;
    let text = message_text(body.message)?;
    let idempotency_key = idempotency_key(body.idempotency_key)?;
    let expires_at = expiry(body.expires_at, body.ttl_seconds)?;
    let request = MessageRequest {
        org: org.clone(),
        phone,
        body: MessageBody::Text(text),
        idempotency_key,
        expires_at,
    };
    let enqueued = state
        .supervisor
        .enqueue(request)
        .await
        .map_err(|e| ApiError::from(e).with_status(state.supervisor.status(&org).status))?;
    let (code, message, duplicate) = match enqueued {
        Enqueued::New(m) => (StatusCode::ACCEPTED, m, false),
        Enqueued::Duplicate(m) => (StatusCode::OK, m, true),
    };
    tracing::info!(org_id = %org, message_id = %message.message_id, duplicate, "message accepted");
    let mut json = message_json(&message);
    json["duplicate"] = Value::Bool(duplicate);
    Ok((code, Json(json)))
}

fn message_id(raw: &str) -> Result<MessageId, ApiError> {
    MessageId::parse(raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// `GET /api/messages/{message_id}`.
pub async fn get(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = message_id(&raw)?;
    let message = state
        .supervisor
        .outbox()
        .get(&id)
        .await?
        .ok_or(ApiError::NoMessage)?;
    Ok(Json(message_json(&message)))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    organization_id: Option<String>,
    status: Option<String>,
    limit: Option<String>,
}

/// `GET /api/messages?organization_id=&status=&limit=`: newest first.
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let org = query
        .organization_id
        .as_deref()
        .map(OrgId::parse)
        .transpose()?;
    let status = query
        .status
        .as_deref()
        .map(|raw| {
            MessageStatus::parse(raw).ok_or_else(|| {
                let names: Vec<&str> = MessageStatus::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::BadRequest(format!("status must be one of {}", names.join(", ")))
            })
        })
        .transpose()?;
    let limit = match query.limit.as_deref() {
        None => LIST_LIMIT.0,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=LIST_LIMIT.1).contains(&n) => n,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "limit must be a number from 1 to {}",
                    LIST_LIMIT.1
                )));
            }
        },
    };
    let filter = ListFilter { org, status, limit };
    let messages = state.supervisor.outbox().list(&filter).await?;
    let messages: Vec<Value> = messages.iter().map(message_json).collect();
    Ok(Json(json!({ "messages": messages })))
}

/// `DELETE /api/messages/{message_id}`: cancels a message while it is `queued`.
pub async fn cancel(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = message_id(&raw)?;
    match state
        .supervisor
        .outbox()
        .update(&id, Update::Cancelled)
        .await?
    {
        Updated::Applied(message) => {
            tracing::info!(org_id = %message.org, message_id = %id, "message cancelled");
            Ok(Json(message_json(&message)))
        }
        Updated::Refused(message) => Err(ApiError::NotCancellable(Box::new(message))),
        Updated::NotFound => Err(ApiError::NoMessage),
    }
}
