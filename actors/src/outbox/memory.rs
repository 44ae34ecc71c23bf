//! [`MemoryStore`]: the outbox held in memory.
//!
//! It is the reference implementation of [`OutboxStore`]: the plainest code that
//! obeys the trait, which the behavioural suite holds every durable store to, and
//! what unit tests of the delivery lane run on. It is **not durable**: everything in
//! it is gone with the process, so it must never back `POST /api/messages` (a `202`
//! promises a committed message).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    Enqueued, ListFilter, Message, MessageId, MessageStatus, NewMessage, OutboxError, OutboxStore,
    Update, Updated,
};
use crate::OrgId;

/// An in-memory, non-durable outbox (see the module docs).
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Every message in acceptance order: a message's index is its place in line.
    messages: Vec<Message>,
    by_id: HashMap<MessageId, usize>,
    by_key: HashMap<(OrgId, String), usize>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // No method leaves `Inner` half-changed when it panics (every change is one
        // push or one `Message::apply`), so a poisoned lock still guards sound data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl OutboxStore for MemoryStore {
    async fn enqueue(&self, message: NewMessage) -> Result<Enqueued, OutboxError> {
        let mut inner = self.lock();
        if let Some(key) = &message.idempotency_key
            && let Some(&index) = inner.by_key.get(&(message.org.clone(), key.clone()))
        {
            let stored = &inner.messages[index];
            return if stored.same_request(&message) {
                Ok(Enqueued::Duplicate(stored.clone()))
            } else {
                Err(OutboxError::KeyReused(Box::new(stored.clone())))
            };
        }
        if inner.by_id.contains_key(&message.message_id) {
            return Err(OutboxError::Store(format!(
                "message_id {} is already taken",
                message.message_id
            )));
        }
        let index = inner.messages.len();
        inner.by_id.insert(message.message_id.clone(), index);
        if let Some(key) = &message.idempotency_key {
            inner
                .by_key
                .insert((message.org.clone(), key.clone()), index);
        }
        let accepted = Message::accepted(message);
        inner.messages.push(accepted.clone());
        Ok(Enqueued::New(accepted))
    }

    async fn get(&self, id: &MessageId) -> Result<Option<Message>, OutboxError> {
        let inner = self.lock();
        Ok(inner.by_id.get(id).map(|&i| inner.messages[i].clone()))
    }

    async fn by_key(&self, org: &OrgId, key: &str) -> Result<Option<Message>, OutboxError> {
        let inner = self.lock();
        let index = inner.by_key.get(&(org.clone(), key.to_owned()));
        Ok(index.map(|&i| inner.messages[i].clone()))
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Message>, OutboxError> {
        let inner = self.lock();
        Ok(inner
            .messages
            .iter()
            .rev()
            .filter(|m| filter.org.as_ref().is_none_or(|org| m.org == *org))
            .filter(|m| filter.status.is_none_or(|status| m.status == status))
            .take(filter.limit)
            .cloned()
            .collect())
    }

    async fn update(&self, id: &MessageId, update: Update) -> Result<Updated, OutboxError> {
        let mut inner = self.lock();
        let Some(&index) = inner.by_id.get(id) else {
            return Ok(Updated::NotFound);
        };
        let message = &mut inner.messages[index];
        Ok(if message.apply(&update) {
            Updated::Applied(message.clone())
        } else {
            Updated::Refused(message.clone())
        })
    }

    async fn next_pending(&self, org: &OrgId) -> Result<Option<Message>, OutboxError> {
        let inner = self.lock();
        Ok(inner
            .messages
            .iter()
            .find(|m| m.org == *org && m.status.is_pending())
            .cloned())
    }

    async fn expire_due(&self, now: DateTime<Utc>) -> Result<Vec<Message>, OutboxError> {
        let mut inner = self.lock();
        // The transition table decides which statuses expire; only the time is ours.
        Ok(inner
            .messages
            .iter_mut()
            .filter(|m| m.expires_at <= now)
            .filter_map(|m| m.apply(&Update::Expired).then(|| m.clone()))
            .collect())
    }

    async fn orgs_with_pending(&self) -> Result<Vec<OrgId>, OutboxError> {
        let inner = self.lock();
        let orgs: BTreeSet<&OrgId> = inner
            .messages
            .iter()
            .filter(|m| m.status.is_pending())
            .map(|m| &m.org)
            .collect();
        Ok(orgs.into_iter().cloned().collect())
    }

    async fn counts(&self) -> Result<Vec<(OrgId, MessageStatus, u64)>, OutboxError> {
        let inner = self.lock();
        let mut counts: BTreeMap<(&OrgId, MessageStatus), u64> = BTreeMap::new();
        for m in &inner.messages {
            *counts.entry((&m.org, m.status)).or_default() += 1;
        }
        Ok(counts
            .into_iter()
            .map(|((org, status), n)| (org.clone(), status, n))
            .collect())
    }
}
