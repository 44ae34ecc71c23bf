//! Session events: what the actor tree tells the world as it happens.
//!
//! Org actors emit into an [`EventSink`] that the daemon provides (webhooks,
//! metrics). `emit` is called from inside actor handlers and send tasks, so a sink
//! must never block or await: queue and return.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::healing::Step;
use crate::outbox::{Message, MessageStatus};
use crate::{OrgId, SessionStatus};

/// One thing that happened to one org's session.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionEvent {
    pub org: OrgId,
    pub at: DateTime<Utc>,
    /// The session's status right after the event.
    pub status: SessionStatus,
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    /// The status changed; `retry_at` is when a `banned` or `blocked` one ends.
    StatusChanged {
        from: SessionStatus,
        reason: String,
        retry_at: Option<DateTime<Utc>>,
    },
    /// A new QR code (raw payload), with the pairing code when one was asked for.
    Qr {
        code: String,
        pairing_code: Option<String>,
    },
    /// Connected as this number (digits).
    Connected { phone: String },
    /// The session was backed up and wiped (`backup`: the backup's name, if any).
    Cleaned {
        reason: String,
        backup: Option<String>,
    },
    /// A message could not be decrypted.
    DecryptError,
    /// The server sent a stream error (or a connect failed).
    StreamError { code: Option<u16> },
    /// A message of the outbox reached a status worth telling (CONTRACT §10).
    Message(MessageEvent),
    /// Healing acted on its own (CONTRACT §11): `step` is a restart or a wipe,
    /// `window` what tripped (`bad_mac`, `stream_errors`, `store_corrupt`), with how
    /// many events from how many senders.
    Healing {
        step: Step,
        window: &'static str,
        events: usize,
        senders: usize,
    },
}

/// What happened to one message of the outbox.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageEvent {
    /// `sent`, `delivered`, `read`, `failed`, `expired` or `cancelled`.
    pub status: MessageStatus,
    pub message_id: String,
    pub idempotency_key: Option<String>,
    /// The recipient, digits.
    pub to: String,
    /// Why it failed, when it did.
    pub error: Option<String>,
    pub accepted_at: DateTime<Utc>,
    pub attempts: u32,
}

impl MessageEvent {
    /// The event of a message's record, or `None` for `queued` and `sending`,
    /// which nobody is told of.
    pub fn of(message: &Message) -> Option<Self> {
        if message.status.is_pending() {
            return None;
        }
        Some(Self {
            status: message.status,
            message_id: message.message_id.to_string(),
            idempotency_key: message.idempotency_key.clone(),
            to: message.phone.clone(),
            error: message.error.clone(),
            accepted_at: message.created_at,
            attempts: message.attempts,
        })
    }
}

/// Receives session events. Must return at once.
pub trait EventSink: Send + Sync + 'static {
    fn emit(&self, event: SessionEvent);
}

/// A sink that drops everything.
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: SessionEvent) {}
}

/// Several sinks as one.
pub struct FanOut(pub Vec<Arc<dyn EventSink>>);

impl EventSink for FanOut {
    fn emit(&self, event: SessionEvent) {
        for sink in &self.0 {
            sink.emit(event.clone());
        }
    }
}

/// A handle that stamps events of one org.
#[derive(Clone)]
pub(crate) struct Emitter {
    pub org: OrgId,
    pub sink: Arc<dyn EventSink>,
}

impl Emitter {
    pub(crate) fn emit(&self, status: SessionStatus, kind: EventKind) {
        self.sink.emit(SessionEvent {
            org: self.org.clone(),
            at: Utc::now(),
            status,
            kind,
        });
    }
}
