//! Files and numbers on the handle (CONTRACT §14): accepting a media message
//! with its file, and asking whether a number is on WhatsApp.

use chrono::{DateTime, Utc};

use super::{MessageRequest, Supervisor};
use crate::connection::ConnectionError;
use crate::media::{Incoming, MediaBody, MediaKind, check_declared, detect};
use crate::outbox::{Enqueued, MessageBody, MessageId, OutboxError};
use crate::{NumberCheckError, OrgId, SendError, SessionStatus};

/// A file to send, as received (not yet kept for good).
pub struct MediaRequest {
    pub org: OrgId,
    /// The recipient, digits with country code.
    pub phone: String,
    /// The received file; its type is told from its bytes.
    pub file: Incoming,
    /// The type the caller declared, if any: checked against the bytes.
    pub mimetype: Option<String>,
    /// The file name the caller gave, if any: its extension is checked against
    /// the bytes, and a document shows it.
    pub filename: Option<String>,
    pub caption: Option<String>,
    pub idempotency_key: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Supervisor {
    /// Accepts a file as an image or document message: its type is detected from
    /// its bytes (and what the caller declared must agree), the file is made
    /// durable under the message's id, and only then is the message committed.
    /// Whenever no new message is committed (a duplicate, a refusal, a failure),
    /// the received file is removed again.
    pub async fn enqueue_media(&self, request: MediaRequest) -> Result<Enqueued, SendError> {
        let MediaRequest {
            org,
            phone,
            file,
            mimetype,
            filename,
            caption,
            idempotency_key,
            expires_at,
        } = request;
        let detected = detect(file.head())?;
        let mut filename = check_declared(detected, mimetype.as_deref(), filename.as_deref())?;
        if detected.kind == MediaKind::Document && filename.is_none() {
            // WhatsApp shows a document by its name; never leave it blank.
            filename = Some(format!("document.{}", detected.extensions[0]));
        }
        let body = MediaBody {
            kind: detected.kind,
            mimetype: detected.mimetype.to_owned(),
            filename,
            caption,
            sha256: file.sha256(),
            size: file.size(),
        };
        let id = MessageId::generate();
        let request = MessageRequest {
            org,
            phone,
            body: MessageBody::Media(body),
            idempotency_key,
            expires_at,
        };
        let new = self.queued(request, id.clone());
        if let Some(earlier) = self.refused_unless_accepted_before(&new).await? {
            return Ok(earlier);
        }
        let files = self.outbox.media();
        file.commit(files, &id)
            .await
            .map_err(|e| OutboxError::Store(format!("the file could not be stored: {e}")))?;
        let enqueued = self.outbox.enqueue(new).await;
        if !matches!(enqueued, Ok(Enqueued::New(_))) {
            files.remove(&id).await;
        }
        Ok(enqueued?)
    }

    /// Whether `phone` (digits) is on WhatsApp, asked of the org's live
    /// connection unless the answer is remembered (a few minutes).
    pub async fn check_number(&self, org: &OrgId, phone: &str) -> Result<bool, NumberCheckError> {
        let not_connected = || NumberCheckError::NotConnected {
            status: self.registry.status(org),
        };
        if self.registry.status(org) != SessionStatus::Connected {
            return Err(not_connected());
        }
        let conn = self.outbox.live_conn(org).ok_or_else(not_connected)?;
        match self.outbox.numbers().check(org, &*conn, phone).await {
            Ok(on_whatsapp) => Ok(on_whatsapp),
            Err(ConnectionError::NotConnected) => Err(not_connected()),
            Err(e) => Err(NumberCheckError::Failed(e.to_string())),
        }
    }
}
