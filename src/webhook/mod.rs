//! Signed webhooks: the Django app hears about session events without polling.
//!
//! ```text
//!  org actor ──emit()──▶ Webhooks (EventSink): shape, push into the org's lane, return
//!                              │  (bounded queue; full → oldest QR out, else oldest)
//!                              ▼
//!                 one delivery task per org: render, sign, POST, retry with backoff
//! ```
//!
//! `emit` never awaits and never touches the network: a slow or dead receiver fills
//! (and then trims) a queue, and never delays an org actor or a send. Each org's
//! events are delivered one at a time, in order; orgs do not wait for each other.
//! Delivery state lives in memory only: what is still queued when the daemon stops
//! (after a short flush) is lost.

pub mod config;
pub mod deliver;
pub mod event;
pub mod queue;
pub mod sign;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::{Notify, watch};
use wa_actors::{EventSink, OrgId, SessionEvent};

pub use config::{ENV_WEBHOOK_SECRET, WebhookConfig, WebhookSecret};
pub use deliver::Outcome;
pub use event::{EVENT_NAMES, WebhookEvent};

use deliver::Poster;
use queue::BoundedQueue;

/// Counters for metrics (read with `load(Ordering::Relaxed)`).
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Events the receiver acknowledged with a 2xx.
    pub delivered: AtomicU64,
    /// Events that will never be delivered: refused (4xx), out of attempts, or
    /// pushed out of a full queue. Each one is also logged as a warning.
    pub dropped: AtomicU64,
    /// The part of `dropped` pushed out of a full queue.
    pub evicted: AtomicU64,
}

/// The webhook sender; give a clone to the supervisor as its event sink.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    queue_size: usize,
    lanes: Mutex<HashMap<OrgId, Arc<Lane>>>,
    runtime: Handle,
}

/// What the delivery tasks share.
struct Shared {
    poster: Poster,
    stats: WebhookStats,
    /// Events queued or in flight, over every org.
    pending: watch::Sender<usize>,
}

/// One org's queue and the wake-up of its delivery task.
struct Lane {
    state: Mutex<LaneState>,
    wake: Notify,
}

/// How often a full queue is logged per org: a dead receiver must not turn every
/// event into a log line on the send path.
const EVICTION_LOG_EVERY: Duration = Duration::from_secs(10);

struct LaneState {
    queue: BoundedQueue,
    /// Evictions since the last warning, and when that was.
    unlogged: u64,
    last_warning: Option<Instant>,
}

impl LaneState {
    /// Counts one eviction; `Some(count since the last warning)` when it is time
    /// to warn again.
    fn note_eviction(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        let due = self
            .last_warning
            .is_none_or(|at| now.duration_since(at) >= EVICTION_LOG_EVERY);
        due.then(|| {
            self.last_warning = Some(now);
            std::mem::take(&mut self.unlogged)
        })
    }
}

impl Webhooks {
    /// The sender for `config`, or `None` when `[webhook] url` is empty. Call it
    /// inside the tokio runtime that is to run the deliveries.
    pub fn from_config(config: &WebhookConfig) -> Result<Option<Self>, String> {
        if !config.enabled() {
            return Ok(None);
        }
        let poster = Poster::new(config)?;
        let runtime = Handle::try_current()
            .map_err(|_| "webhooks need a running tokio runtime".to_owned())?;
        tracing::info!(
            url = %poster.url_for_logs(),
            timeout_ms = config.timeout_ms,
            max_attempts = config.max_attempts,
            queue_size = config.queue_size,
            "webhooks on"
        );
        Ok(Some(Self {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared {
                    poster,
                    stats: WebhookStats::default(),
                    pending: watch::Sender::new(0),
                }),
                queue_size: config.queue_size,
                lanes: Mutex::new(HashMap::new()),
                runtime,
            }),
        }))
    }

    pub fn stats(&self) -> &WebhookStats {
        &self.inner.shared.stats
    }

    /// Events queued or being delivered.
    pub fn pending(&self) -> usize {
        *self.inner.shared.pending.borrow()
    }

    /// Waits until every queued event is delivered or dropped, for at most
    /// `within`; returns whether nothing is left.
    pub async fn flush(&self, within: Duration) -> bool {
        let mut rx = self.inner.shared.pending.subscribe();
        tokio::time::timeout(within, rx.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Queues one webhook event for its org. Never blocks on the network.
    pub fn enqueue(&self, event: WebhookEvent) {
        let lane = self.lane(&event.organization_id);
        let shared = &self.inner.shared;
        shared.pending.send_modify(|n| *n += 1);
        let (evicted, warn) = {
            let mut state = lane.state.lock().unwrap();
            let evicted = state.queue.push(event);
            let warn = evicted
                .as_ref()
                .and_then(|_| state.note_eviction(Instant::now()));
            (evicted, warn)
        };
        if let Some(old) = evicted {
            shared.pending.send_modify(|n| *n = n.saturating_sub(1));
            shared.stats.evicted.fetch_add(1, Ordering::Relaxed);
            shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("wa_webhook_events_total", "outcome" => "evicted").increment(1);
            if let Some(dropped) = warn {
                tracing::warn!(
                    org_id = %old.organization_id,
                    event = old.name,
                    event_id = %old.event_id,
                    dropped,
                    queue_size = self.inner.queue_size,
                    "webhook queue full (receiver slow or down); oldest events dropped"
                );
            }
        }
        lane.wake.notify_one();
    }

    /// The org's lane, starting its delivery task the first time.
    fn lane(&self, org: &OrgId) -> Arc<Lane> {
        let mut lanes = self.inner.lanes.lock().unwrap();
        if let Some(lane) = lanes.get(org) {
            return lane.clone();
        }
        let lane = Arc::new(Lane {
            state: Mutex::new(LaneState {
                queue: BoundedQueue::new(self.inner.queue_size),
                unlogged: 0,
                last_warning: None,
            }),
            wake: Notify::new(),
        });
        lanes.insert(org.clone(), lane.clone());
        self.inner
            .runtime
            .spawn(deliver_lane(self.inner.shared.clone(), lane.clone()));
        lane
    }
}

impl EventSink for Webhooks {
    fn emit(&self, event: SessionEvent) {
        if let Some(event) = WebhookEvent::from_session(event) {
            self.enqueue(event);
        }
    }
}

/// Delivers one org's events, one at a time, for as long as the daemon runs.
async fn deliver_lane(shared: Arc<Shared>, lane: Arc<Lane>) {
    loop {
        let next = lane.state.lock().unwrap().queue.pop();
        let Some(event) = next else {
            lane.wake.notified().await;
            continue;
        };
        let body = if event.is_qr() {
            // Drawing a PNG is CPU work: off the async workers.
            let e = event.clone();
            match tokio::task::spawn_blocking(move || e.body()).await {
                Ok(body) => body,
                Err(_) => event.body(),
            }
        } else {
            event.body()
        };
        let outcome = shared.poster.deliver(&event.event_id, body).await;
        let stats = &shared.stats;
        match outcome {
            Outcome::Delivered { attempts } => {
                stats.delivered.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("wa_webhook_events_total", "outcome" => "delivered").increment(1);
                tracing::debug!(org_id = %event.organization_id, event = event.name, event_id = %event.event_id, attempts, "webhook delivered");
            }
            Outcome::Rejected { status, attempts } => {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("wa_webhook_events_total", "outcome" => "rejected").increment(1);
                tracing::warn!(org_id = %event.organization_id, event = event.name, event_id = %event.event_id, status, attempts, "webhook refused by the receiver; event dropped");
            }
            Outcome::GaveUp {
                attempts,
                last_error,
            } => {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("wa_webhook_events_total", "outcome" => "gave_up").increment(1);
                tracing::warn!(org_id = %event.organization_id, event = event.name, event_id = %event.event_id, attempts, error = %last_error, "webhook not delivered after every attempt; event dropped");
            }
        }
        shared.pending.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_is_logged_once_per_period_with_the_count() {
        let mut state = LaneState {
            queue: BoundedQueue::new(1),
            unlogged: 0,
            last_warning: None,
        };
        let t0 = Instant::now();
        assert_eq!(state.note_eviction(t0), Some(1));
        for i in 1..=5 {
            assert_eq!(state.note_eviction(t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(state.note_eviction(t0 + EVICTION_LOG_EVERY), Some(6));
        assert_eq!(state.note_eviction(t0 + EVICTION_LOG_EVERY), None);
    }
}
