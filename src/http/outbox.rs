//! The outbox's routes (CONTRACT §10): accept a message, read one, list them,
//! cancel one while it waits.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use wa_actors::outbox::{
    Enqueued, ListFilter, Message, MessageBody, MessageId, MessageStatus, Origin, Update, Updated,
};
use wa_actors::{MessageRequest, OrgId};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Text, required, required_org};
use super::openapi::schemas::{
    ErrorSchema, MessageIdSchema, MessageStatusSchema, OrgIdInputSchema, OrgIdSchema, OriginSchema,
    PhoneInputSchema,
};

/// The longest `idempotency_key` accepted.
pub const MAX_KEY_LEN: usize = 128;
/// `ttl_seconds`: a minute to 30 days.
pub const TTL_SECONDS: std::ops::RangeInclusive<u64> = 60..=30 * 86_400;
/// `limit` of a listing: default and most.
pub const LIST_LIMIT: (usize, usize) = (100, 1000);

/// A message as the API shows it (CONTRACT §10): a text with its `message`, a
/// file (CONTRACT §14) with its `mimetype`, `filename`, `caption` and `size`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Message)]
pub struct MessageView {
    #[schema(value_type = String, examples("3EB0A1B2C3D4E5F6A7B8C9"))]
    message_id: MessageId,
    #[schema(value_type = OrgIdSchema)]
    organization_id: OrgId,
    /// The recipient, digits with country code.
    phone: String,
    #[schema(value_type = MessageStatusSchema)]
    status: MessageStatus,
    idempotency_key: Option<String>,
    /// Delivery attempts started so far, every one with `message_id`.
    attempts: u32,
    created_at: DateTime<Utc>,
    /// Not sent by then: `expired`, never sent late.
    expires_at: DateTime<Utc>,
    /// When WhatsApp's server acknowledged it.
    sent_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    read_at: Option<DateTime<Utc>>,
    /// Why it `failed`.
    error: Option<String>,
    #[schema(value_type = OriginSchema)]
    origin: Origin,
    /// What it carries: `text`, `image` or `document`.
    #[schema(value_type = String, examples("text", "image", "document"))]
    kind: &'static str,
    /// The text (a text message only).
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    /// A file's type, as detected from its bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    mimetype: Option<String>,
    /// The name a document is shown with.
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<String>,
    /// A file's caption.
    #[serde(skip_serializing_if = "Option::is_none")]
    caption: Option<String>,
    /// A file's length in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
}

impl From<&Message> for MessageView {
    fn from(m: &Message) -> Self {
        let (text, media) = match &m.body {
            MessageBody::Text(text) => (Some(text.clone()), None),
            MessageBody::Media(media) => (None, Some(media)),
        };
        Self {
            message_id: m.message_id.clone(),
            organization_id: m.org.clone(),
            phone: m.phone.clone(),
            status: m.status,
            idempotency_key: m.idempotency_key.clone(),
            attempts: m.attempts,
            created_at: m.created_at,
            expires_at: m.expires_at,
            sent_at: m.sent_at,
            delivered_at: m.delivered_at,
            read_at: m.read_at,
            error: m.error.clone(),
            origin: m.origin,
            kind: m.body.kind(),
            message: text,
            mimetype: media.map(|f| f.mimetype.clone()),
            filename: media.and_then(|f| f.filename.clone()),
            caption: media.and_then(|f| f.caption.clone()),
            size: media.map(|f| f.size),
        }
    }
}

/// A message as JSON, for error bodies that carry one.
pub fn message_json(m: &Message) -> Value {
    // A struct of strings, numbers and times always serializes.
    serde_json::to_value(MessageView::from(m)).expect("a message serializes")
}

/// The answer of `POST /api/messages` and `POST /api/send-media`: the message,
/// and whether it was accepted before under the same idempotency key.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    #[serde(flatten)]
    message: MessageView,
    duplicate: bool,
}

impl Accepted {
    /// The answer to an acceptance: `202` for a new message, `200` for one
    /// accepted before under the same key.
    pub fn answer(enqueued: &Enqueued) -> (StatusCode, Json<Self>) {
        let (code, message, duplicate) = match enqueued {
            Enqueued::New(m) => (StatusCode::ACCEPTED, m, false),
            Enqueued::Duplicate(m) => (StatusCode::OK, m, true),
        };
        let message = MessageView::from(message);
        (code, Json(Self { message, duplicate }))
    }
}

/// The answer of `GET /api/messages`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    /// Newest first.
    messages: Vec<MessageView>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EnqueueBody {
    #[schema(value_type = OrgIdInputSchema, required = true)]
    organization_id: Option<Text>,
    #[schema(value_type = PhoneInputSchema, required = true)]
    phone: Option<Text>,
    /// The text; not blank.
    #[schema(required = true, min_length = 1)]
    message: Option<String>,
    /// The same key for the same organization again answers the stored message.
    #[schema(min_length = 1, max_length = 128)]
    idempotency_key: Option<String>,
    /// Not sent by then (RFC 3339, at most 30 days ahead); not with `ttl_seconds`.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// Not sent within this many seconds (60 to 2,592,000; default
    /// `[outbox] default_ttl_seconds`); not with `expires_at`.
    #[schema(minimum = 60, maximum = 2592000)]
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

/// Accepts a message into the outbox; it is sent once its organization is connected.
///
/// `202` once the message is on disk: a crash after the answer loses nothing. It is
/// delivered in order of acceptance, only while the organization is `connected`,
/// always with the same `message_id`. The same `idempotency_key` for the same
/// organization again answers `200` with the stored message; with another phone or
/// text, `409`. An organization that is `not_started` with no stored credentials is
/// a `404`, so the caller can fall back to another channel (a retry whose key names
/// a message accepted before still answers that message); any other status queues.
#[utoipa::path(
    post,
    path = "/api/messages",
    operation_id = "enqueue_message",
    tag = "messages",
    request_body = EnqueueBody,
    responses(
        (status = 202, description = "Accepted and stored (`duplicate: false`).", body = Accepted),
        (status = 200, description = "Accepted before under this idempotency key (`duplicate: true`).", body = Accepted),
        (status = 400, description = "A field missing or invalid.", body = ErrorSchema),
        (status = 404, description = "No session and no stored credentials (`status: not_started`).", body = ErrorSchema),
        (status = 409, description = "The idempotency key holds another message (in `message`).", body = ErrorSchema),
        (status = 500, description = "The outbox failed.", body = ErrorSchema),
    ),
)]
pub async fn enqueue(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EnqueueBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
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
        .map_err(state.session_error(&org))?;
    let (Enqueued::New(message) | Enqueued::Duplicate(message)) = &enqueued;
    let duplicate = matches!(enqueued, Enqueued::Duplicate(_));
    // At debug: a line per request on the busiest route would cost more than the
    // request's own work and run into journald's rate limit, dropping the lines
    // that matter. The message's record is its account (`GET /api/messages/{id}`);
    // its changes are posted as webhooks, and its refusals and failures logged.
    tracing::debug!(org_id = %org, message_id = %message.message_id, duplicate, "message accepted");
    Ok(Accepted::answer(&enqueued))
}

fn message_id(raw: &str) -> Result<MessageId, ApiError> {
    MessageId::parse(raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// One message.
#[utoipa::path(
    get,
    path = "/api/messages/{message_id}",
    operation_id = "get_message",
    tag = "messages",
    params(("message_id" = MessageIdSchema, Path, description = "The message.")),
    responses(
        (status = 200, description = "The message.", body = MessageView),
        (status = 400, description = "Not a message id.", body = ErrorSchema),
        (status = 404, description = "No message with this id.", body = ErrorSchema),
        (status = 500, description = "The outbox failed.", body = ErrorSchema),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<MessageView>, ApiError> {
    let id = message_id(&raw)?;
    let message = state
        .supervisor
        .outbox()
        .get(&id)
        .await?
        .ok_or(ApiError::NoMessage)?;
    Ok(Json(MessageView::from(&message)))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    organization_id: Option<String>,
    status: Option<String>,
    limit: Option<String>,
}

/// Messages, newest first, optionally of one organization and in one status.
#[utoipa::path(
    get,
    path = "/api/messages",
    operation_id = "list_messages",
    tag = "messages",
    params(
        ("organization_id" = Option<OrgIdSchema>, Query, description = "Only this organization's."),
        ("status" = Option<MessageStatusSchema>, Query, description = "Only messages in this status."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 100)."),
    ),
    responses(
        (status = 200, description = "The messages.", body = MessageList),
        (status = 400, description = "An invalid organization id, status or limit.", body = ErrorSchema),
        (status = 500, description = "The outbox failed.", body = ErrorSchema),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<MessageList>, ApiError> {
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
    let messages = messages.iter().map(MessageView::from).collect();
    Ok(Json(MessageList { messages }))
}

/// Cancels a message while it is `queued`.
///
/// Once it is `sending` or later it can no longer be cancelled: `409` with its
/// status.
#[utoipa::path(
    delete,
    path = "/api/messages/{message_id}",
    operation_id = "cancel_message",
    tag = "messages",
    params(("message_id" = MessageIdSchema, Path, description = "The message.")),
    responses(
        (status = 200, description = "Cancelled (`status: cancelled`).", body = MessageView),
        (status = 400, description = "Not a message id.", body = ErrorSchema),
        (status = 404, description = "No message with this id.", body = ErrorSchema),
        (status = 409, description = "No longer queued; `status` is the message's, and `message` the message.", body = ErrorSchema),
        (status = 500, description = "The outbox failed.", body = ErrorSchema),
    ),
)]
pub async fn cancel(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<MessageView>, ApiError> {
    let id = message_id(&raw)?;
    match state
        .supervisor
        .outbox()
        .update(&id, Update::Cancelled)
        .await?
    {
        Updated::Applied(message) => {
            tracing::info!(org_id = %message.org, message_id = %id, "message cancelled");
            Ok(Json(MessageView::from(&message)))
        }
        Updated::Refused(message) => Err(ApiError::NotCancellable(Box::new(message))),
        Updated::NotFound => Err(ApiError::NoMessage),
    }
}
