//! The outbox's durable store, behind a trait: SQLite in the sessions directory by
//! default, PostgreSQL when several daemons share one database (CONTRACT §13).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Message, MessageId, MessageStatus, NewMessage, Update};
use crate::OrgId;

/// What [`OutboxStore::enqueue`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// A new message, committed durably.
    New(Message),
    /// The org already had a message with this idempotency key and the same
    /// recipient and body: that one, unchanged.
    Duplicate(Message),
}

/// What [`OutboxStore::update`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Updated {
    /// The update applied; the message as it is now.
    Applied(Message),
    /// The update does not apply to the message's status (see
    /// [`MessageStatus::after`]); the message as it is, unchanged.
    Refused(Message),
    /// No message has this id.
    NotFound,
}

/// Which messages [`OutboxStore::list`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListFilter {
    pub org: Option<OrgId>,
    pub status: Option<MessageStatus>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// Why the outbox could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboxError {
    /// The idempotency key is already used by this org for another recipient or
    /// body; the message that holds it.
    #[error("idempotency_key is already used for a different message")]
    KeyReused(Box<Message>),
    /// The store failed (disk, database); nothing was changed.
    #[error("the outbox store failed: {0}")]
    Store(String),
}

/// A durable outbox.
///
/// Every method is safe to call from many tasks at once. Implementations keep each
/// message's status with [`Message::apply`], so all stores obey one transition table.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Accepts a message. Returns only once it is durably committed (it survives a
    /// crash or power loss from then on); many concurrent calls may share one
    /// commit. With an `idempotency_key` the org already used: the stored message
    /// when it has the same recipient and body, else [`OutboxError::KeyReused`].
    async fn enqueue(&self, message: NewMessage) -> Result<Enqueued, OutboxError>;

    /// One message by id.
    async fn get(&self, id: &MessageId) -> Result<Option<Message>, OutboxError>;

    /// The org's message accepted with idempotency key `key`, if any.
    async fn by_key(&self, org: &OrgId, key: &str) -> Result<Option<Message>, OutboxError>;

    /// Messages matching `filter`, newest accepted first.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Message>, OutboxError>;

    /// Applies `update` to one message, atomically, durably.
    async fn update(&self, id: &MessageId, update: Update) -> Result<Updated, OutboxError>;

    /// [`OutboxStore::update`] on behalf of the org's delivery lane: a store
    /// shared by several daemons applies it only while this node drives the org
    /// (CONTRACT §13), and fails it otherwise. Alone, a daemon always does.
    async fn update_as_owner(
        &self,
        id: &MessageId,
        update: Update,
    ) -> Result<Updated, OutboxError> {
        self.update(id, update).await
    }

    /// The org's next message to deliver: its oldest accepted message that is
    /// `queued` or `sending` (one still `sending` after a crash or a lost ack comes
    /// first, as it was accepted first).
    async fn next_pending(&self, org: &OrgId) -> Result<Option<Message>, OutboxError>;

    /// The time messages expire by: this machine's clock, or a shared store's
    /// own (every daemon sharing it expires messages by the same clock).
    async fn now(&self) -> Result<DateTime<Utc>, OutboxError> {
        Ok(Utc::now())
    }

    /// Every `queued` or `sending` message whose `expires_at` is at or before `now`
    /// becomes `expired`; returns them as they are now.
    async fn expire_due(&self, now: DateTime<Utc>) -> Result<Vec<Message>, OutboxError>;

    /// The orgs with messages still `queued` or `sending`, by id (at start-up, so
    /// their lanes pick them up).
    async fn orgs_with_pending(&self) -> Result<Vec<OrgId>, OutboxError>;

    /// How many messages each org has in each status (for metrics).
    async fn counts(&self) -> Result<Vec<(OrgId, MessageStatus, u64)>, OutboxError>;
}
