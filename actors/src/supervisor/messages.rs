//! The outbox's door on the handle: accepting a message (CONTRACT §10) and the
//! compatible send that waits for WhatsApp's ack (CONTRACT §2, `send-message`).

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::Supervisor;
use crate::outbox::{
    Enqueued, Message, MessageBody, MessageId, MessageStatus, NewMessage, Origin, OutboxError,
    Update, Updated,
};
use crate::{OrgId, SendError, SessionStatus};

/// A message WhatsApp accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage {
    pub message_id: String,
    /// The recipient, digits only.
    pub phone: String,
}

/// A message to accept into the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRequest {
    pub org: OrgId,
    /// The recipient, digits with country code.
    pub phone: String,
    pub body: MessageBody,
    pub idempotency_key: Option<String>,
    /// When it must have been sent by; `None`: `[outbox] default_ttl` from now.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Supervisor {
    /// Accepts a message into the outbox: durable before this returns. An org that
    /// is `not_started` and holds no credentials has nowhere to send from (the
    /// caller may fall back to e-mail); any other org queues, whatever its status.
    pub async fn enqueue(&self, request: MessageRequest) -> Result<Enqueued, SendError> {
        let new = self.queued(request, MessageId::generate());
        if let Some(earlier) = self.refused_unless_accepted_before(&new).await? {
            return Ok(earlier);
        }
        Ok(self.outbox.enqueue(new).await?)
    }

    /// Refuses `new` when its org has nowhere to send from (see
    /// [`Supervisor::enqueue`]), unless it is the retry of a message accepted
    /// before (its idempotency key): that one is answered as the duplicate it is
    /// (or the key's conflict), never as a 404 the caller would take for "not
    /// accepted" and fall back on while the first may still be sent. `None`: go
    /// on and enqueue it.
    pub(super) async fn refused_unless_accepted_before(
        &self,
        new: &NewMessage,
    ) -> Result<Option<Enqueued>, SendError> {
        if self.registry.status(&new.org) != SessionStatus::NotStarted
            || !matches!(self.has_credentials(&new.org).await, Ok(false))
        {
            return Ok(None);
        }
        let Some(key) = &new.idempotency_key else {
            return Err(SendError::NoSession);
        };
        match self.outbox.by_key(&new.org, key).await? {
            Some(earlier) if earlier.same_request(new) => Ok(Some(Enqueued::Duplicate(earlier))),
            Some(earlier) => Err(OutboxError::KeyReused(Box::new(earlier)).into()),
            None => Err(SendError::NoSession),
        }
    }

    /// The message `request` asks to queue, as message `id`.
    pub(super) fn queued(&self, request: MessageRequest, id: MessageId) -> NewMessage {
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(self.config.outbox.default_ttl)
            .unwrap_or(chrono::Duration::days(1));
        NewMessage {
            message_id: id,
            org: request.org,
            phone: request.phone,
            body: request.body,
            idempotency_key: request.idempotency_key,
            origin: Origin::Queue,
            created_at: now,
            expires_at: request.expires_at.unwrap_or(now + ttl),
        }
    }

    /// Sends through the outbox and answers once WhatsApp's server acknowledged
    /// the message. A `reconnecting` session is waited for up to `[send]
    /// wait_seconds`; a session in any other status that is not `connected` is an
    /// error at once. The message expires when the wait ends, so a send that
    /// answered an error is never delivered afterwards.
    pub async fn send_text(
        &self,
        org: &OrgId,
        phone: &str,
        text: &str,
        idempotency_key: Option<String>,
    ) -> Result<SentMessage, SendError> {
        match self.registry.status(org) {
            SessionStatus::NotStarted => return Err(SendError::NoSession),
            SessionStatus::Connected | SessionStatus::Reconnecting => {}
            status => return Err(SendError::NotConnected { status }),
        }
        let now = Utc::now();
        let wait = self.config.send_wait;
        // The answer decides its fate (expired at the wait's end if never handed
        // over, failed at the answer's deadline if never acked), so the expiry
        // sweep must not race it: it expires only after both.
        let decided_by = wait.max(self.config.answer_within());
        let new = NewMessage {
            message_id: MessageId::generate(),
            org: org.clone(),
            phone: phone.to_owned(),
            body: MessageBody::Text(text.to_owned()),
            idempotency_key,
            origin: Origin::Compat,
            created_at: now,
            expires_at: now + chrono::Duration::from_std(decided_by).unwrap_or_default(),
        };
        let mut watch = self.outbox.watch(&Message::accepted(new.clone()));
        let message = match self.outbox.enqueue(new).await? {
            Enqueued::New(message) => message,
            // A queued message's key: that message keeps its own fate, which
            // this answer must not decide by expiring or failing it.
            Enqueued::Duplicate(message) if message.origin != Origin::Compat => {
                return Err(SendError::Outbox(OutboxError::KeyReused(Box::new(message))));
            }
            Enqueued::Duplicate(message) => {
                watch = self.outbox.watch(&message);
                message
            }
        };
        let answer_by = Instant::now() + self.config.answer_within();
        let settled = |m: &Message| !m.status.is_pending();
        let mut now = watch.until(Instant::now() + wait, settled).await;
        if now.status == MessageStatus::Queued {
            // Its wait is over and it was never handed to WhatsApp: it never will
            // be. If the lane began to send it meanwhile (this view lags the
            // store), the store refuses, and the answer waits for the ack below.
            match self
                .outbox
                .update(&message.message_id, Update::ExpiredUnsent)
                .await?
            {
                Updated::Applied(m) | Updated::Refused(m) => now = m,
                Updated::NotFound => {}
            }
        }
        if now.status == MessageStatus::Sending {
            // Handed over already: its ack may still come before the answer is due.
            now = watch.until(answer_by, settled).await;
            if now.status == MessageStatus::Sending {
                let error = "WhatsApp did not acknowledge the message before the answer was due";
                let failed = Update::Failed {
                    error: error.to_owned(),
                };
                if let Updated::Applied(m) | Updated::Refused(m) =
                    self.outbox.update(&message.message_id, failed).await?
                {
                    now = m;
                }
            }
        }
        match now.status {
            MessageStatus::Sent | MessageStatus::Delivered | MessageStatus::Read => {
                Ok(SentMessage {
                    message_id: now.message_id.to_string(),
                    phone: now.phone,
                })
            }
            MessageStatus::Expired | MessageStatus::Queued => Err(SendError::NotConnected {
                status: self.registry.status(org),
            }),
            MessageStatus::Cancelled => Err(SendError::Failed {
                reason: "the message was cancelled".into(),
            }),
            MessageStatus::Failed | MessageStatus::Sending => Err(SendError::Failed {
                reason: now
                    .error
                    .unwrap_or_else(|| "the message was not sent".into()),
            }),
        }
    }
}
