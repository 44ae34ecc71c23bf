//! [`Outbox`]: the store plus what every change of a message sets off — its
//! event (webhooks, metrics, live events), a wake-up for its org's lane, and an
//! answer for a caller waiting on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, watch};

use super::{
    Enqueued, ListFilter, Message, MessageId, NewMessage, OutboxError, OutboxStore, Update, Updated,
};
use crate::events::{EventKind, EventSink, MessageEvent, SessionEvent};
use crate::{OrgId, SessionStatus};

/// Reads an org's current session status (the registry's snapshot).
pub(crate) type StatusOf = Box<dyn Fn(&OrgId) -> SessionStatus + Send + Sync>;

/// How often queued messages are checked for expiry.
const EXPIRY_SWEEP: Duration = Duration::from_secs(1);

/// A cheap, cloneable handle on the outbox.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn OutboxStore>,
    events: Arc<dyn EventSink>,
    status_of: StatusOf,
    /// One per org: rung when a message is accepted, so an idle lane looks again.
    wakes: Mutex<HashMap<OrgId, Arc<Notify>>>,
    /// Callers waiting for one message's outcome (compat sends).
    waiters: Mutex<HashMap<MessageId, watch::Sender<Message>>>,
}

impl Outbox {
    pub(crate) fn new(
        store: Arc<dyn OutboxStore>,
        events: Arc<dyn EventSink>,
        status_of: StatusOf,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                events,
                status_of,
                wakes: Mutex::new(HashMap::new()),
                waiters: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Starts the expiry sweep; it ends when every handle is dropped.
    pub fn start_expiry(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EXPIRY_SWEEP);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                Outbox { inner }.expire_due().await;
            }
        });
    }

    /// Accepts a message (durably, before returning) and wakes its org's lane.
    pub async fn enqueue(&self, message: NewMessage) -> Result<Enqueued, OutboxError> {
        let org = message.org.clone();
        let enqueued = self.inner.store.enqueue(message).await?;
        if matches!(enqueued, Enqueued::New(_)) {
            self.wake(&org).notify_one();
        }
        Ok(enqueued)
    }

    pub async fn get(&self, id: &MessageId) -> Result<Option<Message>, OutboxError> {
        self.inner.store.get(id).await
    }

    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<Message>, OutboxError> {
        self.inner.store.list(filter).await
    }

    pub async fn counts(&self) -> Result<Vec<(OrgId, super::MessageStatus, u64)>, OutboxError> {
        self.inner.store.counts().await
    }

    pub async fn orgs_with_pending(&self) -> Result<Vec<OrgId>, OutboxError> {
        self.inner.store.orgs_with_pending().await
    }

    pub(crate) async fn next_pending(&self, org: &OrgId) -> Result<Option<Message>, OutboxError> {
        self.inner.store.next_pending(org).await
    }

    /// Applies an update; when it applies, reports it and tells whoever waits.
    pub async fn update(&self, id: &MessageId, update: Update) -> Result<Updated, OutboxError> {
        let updated = self.inner.store.update(id, update).await?;
        if let Updated::Applied(message) = &updated {
            self.changed(message);
        }
        Ok(updated)
    }

    /// An update by the org's delivery lane (see [`OutboxStore::update_as_owner`]).
    pub(crate) async fn deliver_update(
        &self,
        id: &MessageId,
        update: Update,
    ) -> Result<Updated, OutboxError> {
        let updated = self.inner.store.update_as_owner(id, update).await?;
        if let Updated::Applied(message) = &updated {
            self.changed(message);
        }
        Ok(updated)
    }

    /// Wakes the org's lane: another daemon accepted a message for it (CONTRACT
    /// §13).
    pub fn nudge(&self, org: &OrgId) {
        self.wake(org).notify_one();
    }

    /// Another daemon changed this message: whoever waits on it here hears of it.
    pub async fn refresh(&self, id: &MessageId) {
        if !self.inner.waiters.lock().unwrap().contains_key(id) {
            return;
        }
        match self.inner.store.get(id).await {
            Ok(Some(message)) => {
                if let Some(tx) = self.inner.waiters.lock().unwrap().get(id) {
                    tx.send_replace(message);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(message_id = %id, error = %e, "a changed message could not be read")
            }
        }
    }

    /// The lane of `org` waits on this when it has nothing to send.
    pub(crate) fn wake(&self, org: &OrgId) -> Arc<Notify> {
        self.inner
            .wakes
            .lock()
            .unwrap()
            .entry(org.clone())
            .or_default()
            .clone()
    }

    /// Follows one message's record as it changes, from its current state on.
    /// Register before enqueueing, so no change can be missed.
    pub fn watch(&self, message: &Message) -> MessageWatch {
        let rx = {
            let mut waiters = self.inner.waiters.lock().unwrap();
            match waiters.get(&message.message_id) {
                Some(tx) => tx.subscribe(),
                None => {
                    let (tx, rx) = watch::channel(message.clone());
                    waiters.insert(message.message_id.clone(), tx);
                    rx
                }
            }
        };
        MessageWatch {
            id: message.message_id.clone(),
            rx,
            outbox: self.clone(),
        }
    }

    async fn expire_due(&self) {
        match self.inner.store.expire_due(Utc::now()).await {
            Ok(expired) => expired.iter().for_each(|m| self.changed(m)),
            Err(e) => tracing::warn!(error = %e, "the outbox could not expire messages"),
        }
    }

    fn changed(&self, message: &Message) {
        if let Some(tx) = self.inner.waiters.lock().unwrap().get(&message.message_id) {
            tx.send_replace(message.clone());
        }
        let Some(event) = MessageEvent::of(message) else {
            return;
        };
        self.inner.events.emit(SessionEvent {
            org: message.org.clone(),
            at: Utc::now(),
            status: (self.inner.status_of)(&message.org),
            kind: EventKind::Message(event),
        });
    }
}

/// A caller's view of one message's record as it changes.
pub struct MessageWatch {
    id: MessageId,
    rx: watch::Receiver<Message>,
    outbox: Outbox,
}

impl MessageWatch {
    /// Waits until the record satisfies `done` or `deadline` passes; returns the
    /// record as it is then.
    pub async fn until(
        &mut self,
        deadline: tokio::time::Instant,
        done: impl FnMut(&Message) -> bool,
    ) -> Message {
        let _ = tokio::time::timeout_at(deadline, self.rx.wait_for(done)).await;
        self.rx.borrow().clone()
    }
}

impl Drop for MessageWatch {
    fn drop(&mut self) {
        let mut waiters = self.outbox.inner.waiters.lock().unwrap();
        if let Some(tx) = waiters.get(&self.id)
            && tx.receiver_count() <= 1
        {
            waiters.remove(&self.id);
        }
    }
}
