//! Live session events for `GET /api/events` (Server-Sent Events): the events the
//! webhooks post, in the same JSON, to whoever is listening right now.
//!
//! ```text
//!  org actor ──emit()──▶ LiveEvents (EventSink): nobody listening → return at once
//!                              │ else shape (as a webhook) and queue
//!                              ▼
//!                  one render task: body JSON (a QR's PNG off the workers)
//!                              │ broadcast (a ring of `capacity` events)
//!                  ┌───────────┼───────────┐
//!                  ▼           ▼           ▼
//!              SSE client  SSE client  SSE client  (each reads at its own pace)
//! ```
//!
//! Nothing waits for a listener: the ring overwrites its oldest event, and a
//! listener that fell more than `capacity` events behind is told so
//! (`event: lagged`) and its stream ends; it may reconnect and read
//! `/api/sessions` for the truth. A listener that goes away costs nothing.

use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::{broadcast, mpsc, watch};
use wa_actors::{EventSink, SessionEvent};

use crate::webhook::WebhookEvent;

/// Events kept for listeners that read slower than events come.
pub const DEFAULT_CAPACITY: usize = 256;

/// Events waiting to be rendered; beyond this (a burst faster than JSON and PNG
/// rendering) new ones are dropped with a warning rather than held without bound.
const RENDER_QUEUE: usize = 1024;

/// One event as `GET /api/events` sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEvent {
    /// `session.qr`, `session.connected`, … (the webhook's `event`).
    pub name: &'static str,
    /// The webhook's `event_id`.
    pub id: String,
    /// The webhook's JSON body.
    pub data: String,
}

/// The hub: an [`EventSink`] for the supervisor and the subscriptions of the route.
#[derive(Clone)]
pub struct LiveEvents {
    inner: Arc<Inner>,
}

struct Inner {
    ring: broadcast::Sender<Arc<LiveEvent>>,
    to_render: mpsc::Sender<WebhookEvent>,
    /// Set once the daemon stops: every stream ends, so that the HTTP server's
    /// graceful shutdown does not wait for listeners.
    closed: watch::Sender<bool>,
}

/// What a listener receives next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Event(Arc<LiveEvent>),
    /// It fell behind by this many events; its stream ends.
    Lagged(u64),
    /// The daemon is stopping; its stream ends.
    Closed,
}

/// One listener.
pub struct Subscription {
    ring: broadcast::Receiver<Arc<LiveEvent>>,
    closed: watch::Receiver<bool>,
}

impl Subscription {
    pub async fn next(&mut self) -> Next {
        if *self.closed.borrow() {
            return Next::Closed;
        }
        tokio::select! {
            received = self.ring.recv() => match received {
                Ok(event) => Next::Event(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => Next::Lagged(missed),
                Err(broadcast::error::RecvError::Closed) => Next::Closed,
            },
            _ = self.closed.wait_for(|closed| *closed) => Next::Closed,
        }
    }
}

impl LiveEvents {
    /// A hub keeping [`DEFAULT_CAPACITY`] events for slow listeners. Call it inside
    /// the tokio runtime that is to render the events.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// A hub keeping `capacity` events (at least 1) for slow listeners.
    pub fn with_capacity(capacity: usize) -> Self {
        let (ring, _) = broadcast::channel(capacity.max(1));
        let (to_render, queue) = mpsc::channel(RENDER_QUEUE);
        let hub = Self {
            inner: Arc::new(Inner {
                ring: ring.clone(),
                to_render,
                closed: watch::Sender::new(false),
            }),
        };
        Handle::current().spawn(render(queue, ring));
        hub
    }

    pub fn subscribe(&self) -> Subscription {
        Subscription {
            ring: self.inner.ring.subscribe(),
            closed: self.inner.closed.subscribe(),
        }
    }

    /// Ends every stream, now and later (the daemon is stopping).
    pub fn close(&self) {
        self.inner.closed.send_replace(true);
    }

    /// Listeners right now.
    pub fn listeners(&self) -> usize {
        self.inner.ring.receiver_count()
    }
}

impl Default for LiveEvents {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveEvents {
    /// Hands an event to the listeners (one of this node's, or one another node
    /// announced).
    pub fn show(&self, event: WebhookEvent) {
        if self.listeners() == 0 {
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(event)) = self.inner.to_render.try_send(event) {
            tracing::warn!(org_id = %event.organization_id, event = event.name, "live events arrive faster than they are rendered; one dropped");
        }
    }
}

impl EventSink for LiveEvents {
    fn emit(&self, event: SessionEvent) {
        if self.listeners() == 0 {
            return;
        }
        if let Some(event) = WebhookEvent::from_session(event) {
            self.show(event);
        }
    }
}

/// Renders each event once, in order, and hands it to every listener.
async fn render(mut queue: mpsc::Receiver<WebhookEvent>, ring: broadcast::Sender<Arc<LiveEvent>>) {
    while let Some(event) = queue.recv().await {
        let body = if event.is_qr() {
            // Drawing a PNG is CPU work: off the async workers.
            let e = event.clone();
            tokio::task::spawn_blocking(move || e.body())
                .await
                .unwrap_or_else(|_| event.body())
        } else {
            event.body()
        };
        let live = LiveEvent {
            name: event.name,
            id: event.event_id,
            data: String::from_utf8(body).expect("serde_json writes UTF-8"),
        };
        // No listener left: nothing to do.
        let _ = ring.send(Arc::new(live));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use wa_actors::{EventKind, OrgId, SessionStatus};

    fn connected(phone: &str) -> SessionEvent {
        SessionEvent {
            org: OrgId::parse("2").unwrap(),
            at: chrono::Utc::now(),
            status: SessionStatus::Connected,
            kind: EventKind::Connected {
                phone: phone.into(),
            },
        }
    }

    async fn next(sub: &mut Subscription) -> Next {
        tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("an event in time")
    }

    #[tokio::test]
    async fn events_reach_every_listener_as_the_webhook_json() {
        let hub = LiveEvents::new();
        let (mut a, mut b) = (hub.subscribe(), hub.subscribe());
        hub.emit(connected("573001234567"));
        for sub in [&mut a, &mut b] {
            let Next::Event(event) = next(sub).await else {
                panic!("an event")
            };
            assert_eq!(event.name, "session.connected");
            let body: serde_json::Value = serde_json::from_str(&event.data).unwrap();
            assert_eq!(body["event"], "session.connected");
            assert_eq!(body["event_id"], event.id.as_str());
            assert_eq!(body["data"]["phone_number"], "573001234567");
        }
    }

    #[tokio::test]
    async fn errors_are_not_sent_and_nobody_listening_costs_nothing() {
        let hub = LiveEvents::new();
        // Without a listener the event is not even shaped.
        hub.emit(connected("1"));
        let mut sub = hub.subscribe();
        let decrypt = SessionEvent {
            kind: EventKind::DecryptError,
            ..connected("2")
        };
        hub.emit(decrypt);
        hub.emit(connected("3"));
        let Next::Event(event) = next(&mut sub).await else {
            panic!("an event")
        };
        assert!(event.data.contains("\"3\""), "{}", event.data);
    }

    #[tokio::test]
    async fn a_listener_that_falls_behind_is_told_and_ends() {
        let hub = LiveEvents::with_capacity(2);
        let mut slow = hub.subscribe();
        let mut fast = hub.subscribe();
        for i in 0..5 {
            hub.emit(connected(&i.to_string()));
            // The fast one keeps up, one event at a time.
            let Next::Event(event) = next(&mut fast).await else {
                panic!("an event")
            };
            assert!(event.data.contains(&format!("\"{i}\"")));
        }
        assert_eq!(next(&mut slow).await, Next::Lagged(3));
    }

    #[tokio::test]
    async fn closing_ends_every_stream() {
        let hub = LiveEvents::new();
        let mut sub = hub.subscribe();
        hub.close();
        assert_eq!(next(&mut sub).await, Next::Closed);
        assert_eq!(hub.subscribe().next().await, Next::Closed);
    }
}
