//! Every error the HTTP API answers, and its status code and JSON body.
//!
//! CONTRACT §2: every error body is JSON with at least `{"error"}`; errors about a
//! session also carry `"status"`, and `"hint"` where a person can act. The deployed
//! Django client branches on status codes, so the mapping lives here, in one table,
//! rather than in each handler.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use wa_actors::media::MediaError;
use wa_actors::outbox::{Message, OutboxError};
use wa_actors::{OrgIdError, SendError, SessionError, SessionStatus};

use crate::phone::PhoneError;
use crate::qr_render::QrRenderError;

/// The hint of every "this org has no session" answer.
pub const START_HINT: &str = "POST /api/start-session first";

/// `Retry-After` of a shed request: in-flight requests are short, so soon.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// An error answer of the HTTP API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unauthorized")]
    Unauthorized,
    /// A request that is wrong in a way the message explains (missing field,
    /// malformed JSON, empty message, …).
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    OrgId(#[from] OrgIdError),
    #[error("invalid phone: {0}")]
    Phone(#[from] PhoneError),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// A file over `[media] max_bytes` (CONTRACT §14).
    #[error("the file is larger than {limit} bytes ([media] max_bytes)")]
    FileTooLarge { limit: u64 },
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("no session for this organization")]
    NoSession,
    #[error("no QR code to show (status {status})")]
    NoQr { status: SessionStatus },
    #[error("the session is not connected (status {status})")]
    NotConnected { status: SessionStatus },
    /// Something only a connected session can do right now (the number check):
    /// a conflict with the session's state, not a bad request.
    #[error("the session is not connected (status {status})")]
    NotConnectedNow { status: SessionStatus },
    /// WhatsApp did not answer a question (network, timeout).
    #[error("{0}")]
    CheckFailed(String),
    #[error("the message could not be sent: {reason}")]
    SendFailed {
        reason: String,
        status: Option<SessionStatus>,
    },
    #[error("the session store failed: {0}")]
    Storage(String),
    /// A failure of the daemon itself that no caller can act on (e.g. a layer of
    /// the HTTP stack failing other than by overload).
    #[error("internal error: {0}")]
    Internal(String),
    /// A well-formed backup name that the org's backups do not hold.
    #[error("{0}")]
    UnknownBackup(String),
    /// The session is in the middle of something this request would undo.
    #[error("{reason}")]
    Busy {
        reason: String,
        status: Option<SessionStatus>,
    },
    #[error("the supervisor is unavailable")]
    Unavailable,
    #[error("too many requests in flight")]
    Overloaded,
    #[error("the request took too long and was abandoned")]
    Timeout,
    #[error("the QR code could not be rendered: {0}")]
    Render(#[from] QrRenderError),
    #[error("no message with this message_id")]
    NoMessage,
    /// An idempotency key used before for another recipient or text; the message
    /// that holds it.
    #[error("idempotency_key is already used for a different message")]
    KeyReused(Box<Message>),
    /// Only a `queued` message can be cancelled; this one.
    #[error("the message can no longer be cancelled (status {})", .0.status)]
    NotCancellable(Box<Message>),
    #[error("the outbox failed: {0}")]
    Outbox(String),
}

impl ApiError {
    /// Attaches the session's status to an error that can carry one but did not
    /// know it where it was raised.
    pub fn with_status(self, status: SessionStatus) -> Self {
        match self {
            Self::SendFailed { reason, .. } => Self::SendFailed {
                reason,
                status: Some(status),
            },
            Self::Busy { reason, .. } => Self::Busy {
                reason,
                status: Some(status),
            },
            other => other,
        }
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) | Self::OrgId(_) | Self::Phone(_) | Self::NotConnected { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::PayloadTooLarge { .. } | Self::FileTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::NotFound
            | Self::NoSession
            | Self::NoQr { .. }
            | Self::NoMessage
            | Self::UnknownBackup(_) => StatusCode::NOT_FOUND,
            Self::KeyReused(_)
            | Self::NotCancellable(_)
            | Self::Busy { .. }
            | Self::NotConnectedNow { .. } => StatusCode::CONFLICT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::SendFailed { .. }
            | Self::Storage(_)
            | Self::Internal(_)
            | Self::Render(_)
            | Self::Outbox(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable | Self::Overloaded | Self::CheckFailed(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn session_status(&self) -> Option<SessionStatus> {
        match self {
            Self::NoSession => Some(SessionStatus::NotStarted),
            Self::NoQr { status }
            | Self::NotConnected { status }
            | Self::NotConnectedNow { status } => Some(*status),
            Self::SendFailed { status, .. } | Self::Busy { status, .. } => *status,
            _ => None,
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            Self::NoSession => Some(START_HINT),
            Self::NoQr { status }
            | Self::NotConnected { status }
            | Self::NotConnectedNow { status } => Some(hint_for(*status)),
            Self::CheckFailed(_) => Some("WhatsApp did not answer; retry shortly"),
            Self::Unavailable => Some("the daemon is stopping or overloaded; retry shortly"),
            Self::Overloaded => Some("retry after the Retry-After header's seconds"),
            Self::Timeout => Some("retry; check GET /api/status/<organization_id> first"),
            Self::UnknownBackup(_) => Some("GET /api/backups/<organization_id> lists them"),
            _ => None,
        }
    }
}

/// What a person can do about a session that is not (yet) connected.
fn hint_for(status: SessionStatus) -> &'static str {
    use SessionStatus as S;
    match status {
        S::NotStarted => START_HINT,
        S::Connecting => "the session is starting; its QR code appears in a few seconds",
        S::QrReady => "scan the QR code (GET /api/qr/<organization_id>) with the shop's phone",
        S::Connected => "the session is connected now; retry",
        S::Reconnecting => "the session is reconnecting by itself; retry in a few seconds",
        S::Disconnected => "POST /api/start-session to connect again",
        S::LoggedOut => "the phone removed this device; POST /api/start-session and scan a new QR",
        S::Conflict => {
            "another client took over this number; POST /api/start-session to take it back"
        }
        S::NumberInUse => {
            "this number is already connected for another organization; pair another number"
        }
        S::Banned => "WhatsApp banned this number for a while; wait until retry_at",
        S::ClientOutdated => "WhatsApp rejected this client version; the daemon must be upgraded",
        S::Quarantined => {
            "the session was cleaned too often; check the phone, then POST /api/start-session"
        }
        S::Blocked => "the connection-attempt budget is spent; wait until retry_at",
    }
}

/// The JSON body of every error answer (CONTRACT §2): `error`, and `status` and
/// `hint` where they apply. Routes with errors of their own (the `/sim` routes)
/// answer through it too, adding their own fields, so every error has one shape.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<SessionStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'static str>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl ErrorBody {
    pub fn new(error: impl std::fmt::Display) -> Self {
        Self {
            error: error.to_string(),
            status: None,
            hint: None,
            extra: Map::new(),
        }
    }

    pub fn status(mut self, status: Option<SessionStatus>) -> Self {
        self.status = status;
        self
    }

    pub fn hint(mut self, hint: Option<&'static str>) -> Self {
        self.hint = hint;
        self
    }

    /// A field beside the usual three (e.g. `valid_faults`).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// The answer, logged when it is the daemon's fault (5xx).
    pub fn respond(self, code: StatusCode) -> Response {
        if code.is_server_error() {
            tracing::error!(error = %self.error, "request failed");
        }
        (code, Json(self)).into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = ErrorBody::new(&self)
            .status(self.session_status())
            .hint(self.hint());
        if let Self::KeyReused(message) | Self::NotCancellable(message) = &self {
            // The message in question, as GET /api/messages/{id} shows it; a
            // refused cancel also says the message's status at the top.
            body = body.with("message", super::outbox::message_json(message));
            if matches!(self, Self::NotCancellable(_)) {
                body = body.with("status", message.status.as_str());
            }
        }
        let mut resp = body.respond(self.status_code());
        if matches!(self, Self::Overloaded) {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        resp
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::NoSession => Self::NoSession,
            SessionError::Storage(msg) => Self::Storage(msg),
            SessionError::ActorFailed(msg) => Self::Internal(msg),
            SessionError::TimedOut => Self::Timeout,
            SessionError::Unavailable => Self::Unavailable,
            SessionError::Busy(reason) => Self::Busy {
                reason,
                status: None,
            },
            SessionError::InvalidBackupName(_) => Self::BadRequest(e.to_string()),
            SessionError::UnknownBackup(_) => Self::UnknownBackup(e.to_string()),
        }
    }
}

impl From<SendError> for ApiError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::NoSession => Self::NoSession,
            SendError::NotConnected { status } => Self::NotConnected { status },
            SendError::Failed { reason } => Self::SendFailed {
                reason,
                status: None,
            },
            SendError::Outbox(e) => e.into(),
            SendError::Media(MediaError::TooLarge { limit }) => Self::FileTooLarge { limit },
            SendError::Media(e) => Self::BadRequest(e.to_string()),
        }
    }
}

impl From<OutboxError> for ApiError {
    fn from(e: OutboxError) -> Self {
        match e {
            OutboxError::KeyReused(message) => Self::KeyReused(message),
            OutboxError::Store(msg) => Self::Outbox(msg),
        }
    }
}

/// An error's answer, its status and its JSON body (for the tests of every
/// error enum of the HTTP layer).
#[cfg(test)]
pub(crate) async fn answer_of(e: impl IntoResponse) -> (StatusCode, serde_json::Value) {
    let resp = e.into_response();
    let code = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (code, serde_json::from_slice(&bytes).unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(e: ApiError) -> (StatusCode, serde_json::Value) {
        answer_of(e).await
    }

    #[tokio::test]
    async fn every_actor_error_maps_to_a_json_answer() {
        let (code, b) = body(SendError::NoSession.into()).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert_eq!(b["status"], "not_started");
        assert_eq!(b["hint"], START_HINT);

        let (code, b) = body(
            SendError::NotConnected {
                status: SessionStatus::QrReady,
            }
            .into(),
        )
        .await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(b["status"], "qr_ready");
        assert!(b["hint"].as_str().unwrap().contains("QR"));

        let (code, b) = body(
            ApiError::from(SendError::Failed {
                reason: "boom".into(),
            })
            .with_status(SessionStatus::Connected),
        )
        .await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(b["status"], "connected");
        assert!(b["error"].as_str().unwrap().contains("boom"));

        // A session busy with something else says what it is doing.
        let busy = SessionError::Busy("the session is being restored".into());
        let (code, b) = body(ApiError::from(busy).with_status(SessionStatus::Reconnecting)).await;
        assert_eq!(code, StatusCode::CONFLICT);
        assert_eq!(b["status"], "reconnecting");
        assert_eq!(b["error"], "the session is being restored");

        for (e, want) in [
            (SessionError::NoSession, StatusCode::NOT_FOUND),
            (
                SessionError::Storage("disk".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (SessionError::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
        ] {
            let (code, b) = body(e.into()).await;
            assert_eq!(code, want);
            assert!(b["error"].is_string());
        }
        let (code, b) = body(SendError::Outbox(OutboxError::Store("disk".into())).into()).await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(b["error"].as_str().unwrap().contains("disk"));

        let (code, b) = body(OrgIdError::Empty.into()).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(b["error"], "organization_id is empty");

        let (code, b) = body(ApiError::Unauthorized).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        assert_eq!(b, serde_json::json!({"error": "unauthorized"}));
    }

    #[test]
    fn every_status_has_a_hint() {
        for status in SessionStatus::ALL {
            assert!(!hint_for(status).is_empty());
        }
    }
}
