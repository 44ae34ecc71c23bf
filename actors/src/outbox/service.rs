//! [`Outbox`]: the store plus what every change of a message sets off — its
//! event (webhooks, metrics, live events), a wake-up for its org's lane, an
//! answer for a caller waiting on it, and, once a media message is settled, the
//! removal of its file. It also holds what the lanes and the API share: the
//! number cache and each org's live connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, watch};

use super::lane::LiveConn;
use super::{
    Enqueued, ListFilter, Message, MessageId, NewMessage, OutboxError, OutboxStore, Update, Updated,
};
use crate::connection::Connection;
use crate::events::{EventKind, EventSink, MessageEvent, SessionEvent};
use crate::media::MediaFiles;
use crate::numbers::NumberCache;
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
    /// Where media messages' files wait.
    media: MediaFiles,
    numbers: NumberCache,
    /// Each org's lane's view of the live connection (the latest incarnation's).
    lives: Mutex<HashMap<OrgId, watch::Receiver<Option<LiveConn>>>>,
}

impl Outbox {
    pub(crate) fn new(
        store: Arc<dyn OutboxStore>,
        events: Arc<dyn EventSink>,
        status_of: StatusOf,
        media: MediaFiles,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                events,
                status_of,
                wakes: Mutex::new(HashMap::new()),
                waiters: Mutex::new(HashMap::new()),
                media,
                numbers: NumberCache::new(),
                lives: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Where media messages' files wait.
    pub fn media(&self) -> &MediaFiles {
        &self.inner.media
    }

    /// Whether numbers are on WhatsApp, as last asked.
    pub fn numbers(&self) -> &NumberCache {
        &self.inner.numbers
    }

    /// Removes the files no pending media message needs: left by a crash between
    /// writing a file and committing its message, or between settling a message
    /// and removing its file. Run at start, before anything is accepted. A file
    /// whose message cannot be read is kept (the next start looks again).
    pub async fn sweep_media(&self) {
        let store = self.inner.store.clone();
        let swept = self
            .inner
            .media
            .sweep(move |id| {
                let store = store.clone();
                async move {
                    match store.get(&id).await {
                        Ok(Some(m)) => m.status.is_pending() && m.body.media().is_some(),
                        Ok(None) => false,
                        Err(_) => true,
                    }
                }
            })
            .await;
        match swept {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "leftover media files removed"),
            Err(e) => tracing::warn!(error = %e, "the media directory could not be swept"),
        }
    }

    /// The lane of `org` shares its view of the live connection (each new
    /// incarnation of the org actor replaces the last one's).
    pub(crate) fn follow_live(&self, org: &OrgId, live: watch::Receiver<Option<LiveConn>>) {
        self.inner.lives.lock().unwrap().insert(org.clone(), live);
    }

    /// The connection `org` is live on, if any.
    pub(crate) fn live_conn(&self, org: &OrgId) -> Option<Arc<dyn Connection>> {
        let lives = self.inner.lives.lock().unwrap();
        let live = lives.get(org)?;
        // A closed channel: that incarnation is gone, and its connection with it.
        live.has_changed().ok()?;
        live.borrow().as_ref().map(|l| l.conn.clone())
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

    /// The org's message accepted with idempotency key `key`, if any.
    pub async fn by_key(&self, org: &OrgId, key: &str) -> Result<Option<Message>, OutboxError> {
        self.inner.store.by_key(org, key).await
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
            self.settle_file(message).await;
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
            self.settle_file(message).await;
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

    /// Whatever another daemon changed while this one could not hear of it (its
    /// listening connection was down): every lane here looks at the store again,
    /// and every caller waiting on a message reads it anew.
    pub async fn catch_up(&self) {
        let wakes: Vec<Arc<Notify>> = self.inner.wakes.lock().unwrap().values().cloned().collect();
        for wake in wakes {
            wake.notify_one();
        }
        let waited: Vec<MessageId> = self.inner.waiters.lock().unwrap().keys().cloned().collect();
        for id in waited {
            self.refresh(&id).await;
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
        let now = match self.inner.store.now().await {
            Ok(now) => now,
            Err(e) => {
                tracing::warn!(error = %e, "the outbox's clock could not be read");
                return;
            }
        };
        match self.inner.store.expire_due(now).await {
            Ok(expired) => {
                for m in &expired {
                    self.changed(m);
                    self.settle_file(m).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "the outbox could not expire messages"),
        }
    }

    /// A media message that will not be sent again no longer needs its file.
    async fn settle_file(&self, message: &Message) {
        if message.body.media().is_some() && !message.status.is_pending() {
            self.inner.media.remove(&message.message_id).await;
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

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use chrono::{DateTime, Duration as Span, Utc};

    use super::*;
    use crate::outbox::{
        Enqueued, ListFilter, MemoryStore, Message, MessageBody, MessageStatus, NewMessage, Origin,
        OutboxError, Update, Updated,
    };

    /// A shared store whose clock runs an hour behind this machine's.
    struct BehindClock(MemoryStore);

    #[async_trait]
    impl OutboxStore for BehindClock {
        async fn enqueue(&self, m: NewMessage) -> Result<Enqueued, OutboxError> {
            self.0.enqueue(m).await
        }
        async fn get(&self, id: &MessageId) -> Result<Option<Message>, OutboxError> {
            self.0.get(id).await
        }
        async fn by_key(&self, org: &OrgId, key: &str) -> Result<Option<Message>, OutboxError> {
            self.0.by_key(org, key).await
        }
        async fn list(&self, filter: &ListFilter) -> Result<Vec<Message>, OutboxError> {
            self.0.list(filter).await
        }
        async fn update(&self, id: &MessageId, update: Update) -> Result<Updated, OutboxError> {
            self.0.update(id, update).await
        }
        async fn next_pending(&self, org: &OrgId) -> Result<Option<Message>, OutboxError> {
            self.0.next_pending(org).await
        }
        async fn now(&self) -> Result<DateTime<Utc>, OutboxError> {
            Ok(Utc::now() - Span::hours(1))
        }
        async fn expire_due(&self, now: DateTime<Utc>) -> Result<Vec<Message>, OutboxError> {
            self.0.expire_due(now).await
        }
        async fn orgs_with_pending(&self) -> Result<Vec<OrgId>, OutboxError> {
            self.0.orgs_with_pending().await
        }
        async fn counts(&self) -> Result<Vec<(OrgId, MessageStatus, u64)>, OutboxError> {
            self.0.counts().await
        }
    }

    /// After a deafness, each lane is woken and each waiting caller reads the
    /// store anew: another daemon's changes are not lost with their notices.
    #[tokio::test]
    async fn catching_up_wakes_every_lane_and_refreshes_every_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryStore::new());
        let outbox = Outbox::new(
            store.clone(),
            Arc::new(crate::events::NoEvents),
            Box::new(|_: &OrgId| crate::SessionStatus::Connected),
            MediaFiles::new(dir.path()),
        );
        let org = OrgId::parse("2").unwrap();
        let now = Utc::now();
        let new = NewMessage {
            message_id: MessageId::generate(),
            org: org.clone(),
            phone: "573009999999".into(),
            body: MessageBody::Text("hola".into()),
            idempotency_key: None,
            origin: Origin::Compat,
            created_at: now,
            expires_at: now + Span::minutes(5),
        };
        let mut watch = outbox.watch(&Message::accepted(new.clone()));
        outbox.enqueue(new.clone()).await.unwrap();
        let lane = outbox.wake(&org);
        // Another daemon sends it; its notices are lost.
        store
            .update(&new.message_id, Update::Sending { at: now })
            .await
            .unwrap();
        store
            .update(&new.message_id, Update::Sent { at: now })
            .await
            .unwrap();
        let at_once = Duration::ZERO;
        // The acceptance rang the lane; that ring is taken.
        let _ = tokio::time::timeout(at_once, lane.notified()).await;
        let rung = tokio::time::timeout(at_once, lane.notified()).await;
        assert!(rung.is_err(), "nothing rang since");
        let sent = |m: &Message| m.status == MessageStatus::Sent;
        let seen = watch.until(tokio::time::Instant::now(), sent).await;
        assert_eq!(seen.status, MessageStatus::Queued, "not heard of yet");

        outbox.catch_up().await;
        let rung = tokio::time::timeout(at_once, lane.notified()).await;
        assert!(rung.is_ok(), "the lane looks again");
        let seen = watch.until(tokio::time::Instant::now(), sent).await;
        assert_eq!(seen.status, MessageStatus::Sent);
    }

    /// Messages expire by the store's clock, not this machine's.
    #[tokio::test]
    async fn expiry_goes_by_the_store_s_clock() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(
            Arc::new(BehindClock(MemoryStore::new())),
            Arc::new(crate::events::NoEvents),
            Box::new(|_: &OrgId| crate::SessionStatus::NotStarted),
            MediaFiles::new(dir.path()),
        );
        let now = Utc::now();
        let accept = async |minutes_ago: i64| {
            let message = NewMessage {
                message_id: MessageId::generate(),
                org: OrgId::parse("2").unwrap(),
                phone: "573009999999".into(),
                body: MessageBody::Text("hola".into()),
                idempotency_key: None,
                origin: Origin::Queue,
                created_at: now - Span::hours(2),
                expires_at: now - Span::minutes(minutes_ago),
            };
            match outbox.enqueue(message).await.unwrap() {
                Enqueued::New(m) => m.message_id,
                other => panic!("{other:?}"),
            }
        };
        // Due by this machine's clock, not yet by the store's.
        let not_yet = accept(30).await;
        let due = accept(90).await;
        outbox.expire_due().await;
        let status = async |id: &MessageId| outbox.get(id).await.unwrap().unwrap().status;
        assert_eq!(status(&not_yet).await, MessageStatus::Queued);
        assert_eq!(status(&due).await, MessageStatus::Expired);
    }
}
