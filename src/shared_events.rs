//! Live events across the nodes of a cluster (CONTRACT §12, §13): any node's
//! `GET /api/events` carries the events of every org, whichever node drives it.
//!
//! ```text
//!  node A: org actor ──emit()──▶ SharedEvents ──(a queue, a task)──▶ NOTIFY wa_events
//!                                                                     "A\n<event>"
//!  node B: listener ──▶ dispatch ──▶ heard(): not its own ──▶ LiveEvents::show
//! ```
//!
//! An event travels as its parts ([`WebhookEvent::to_wire`]), so a QR is a short
//! code each node draws itself. Webhooks are not sent for another node's events:
//! the node where an event happens posts it. Like the events of a node of its
//! own, nothing waits for a listener: a burst beyond the queue is dropped with a
//! warning, and a listener reads `/api/sessions` for the truth.

use tokio::sync::mpsc;
use wa_actors::{EventSink, SessionEvent};
use wa_store_postgres::deadpool_postgres::Pool;
use wa_store_postgres::events::{MAX_PAYLOAD, announce};

use crate::live_events::LiveEvents;
use crate::webhook::WebhookEvent;

/// Events waiting to be announced.
const QUEUE: usize = 1024;
/// Events announced in one round trip at most.
const BATCH: usize = 64;

/// The [`EventSink`] that announces this node's events to the others.
pub struct SharedEvents {
    node_id: String,
    queue: mpsc::Sender<String>,
}

impl SharedEvents {
    /// Starts the task that announces events on `pool`'s database.
    pub fn start(pool: Pool, node_id: String) -> Self {
        let (queue, announced) = mpsc::channel(QUEUE);
        tokio::spawn(announce_all(pool, announced));
        Self { node_id, queue }
    }
}

impl EventSink for SharedEvents {
    fn emit(&self, event: SessionEvent) {
        let Some(event) = WebhookEvent::from_session(event) else {
            return;
        };
        let payload = format!("{}\n{}", self.node_id, event.to_wire());
        if payload.len() > MAX_PAYLOAD {
            tracing::debug!(org_id = %event.organization_id, event = event.name, "an event too long to announce to the other nodes");
            return;
        }
        if self.queue.try_send(payload).is_err() {
            tracing::warn!(org_id = %event.organization_id, event = event.name, "events arrive faster than they are announced to the other nodes; one dropped");
        }
    }
}

async fn announce_all(pool: Pool, mut queue: mpsc::Receiver<String>) {
    let mut batch = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        if announce(&pool, &batch).await.is_err() {
            // One bad event (or a moment's failure) costs only itself.
            for one in batch.chunks(1) {
                if let Err(e) = announce(&pool, one).await {
                    tracing::warn!(error = %e, "an event could not be announced to the other nodes");
                }
            }
        }
        batch.clear();
    }
}

/// What the listener heard on the events channel: another node's event goes to
/// this node's listeners; this node's own, already shown, is skipped.
pub fn heard(payload: &str, me: &str, live: &LiveEvents) {
    let Some((node, wire)) = payload.split_once('\n') else {
        return;
    };
    if node == me || live.listeners() == 0 {
        return;
    }
    match WebhookEvent::from_wire(wire) {
        Some(event) => live.show(event),
        None => tracing::debug!(node_id = node, "an event this node cannot read"),
    }
}
