//! The actor's side of its outbox lane: the live connection it may send on, and
//! the connection's acks and receipts, forwarded in order.

use tokio::sync::{mpsc, watch};

use super::actor::OrgState;
use super::phase::Phase;
use crate::connection::ConnectionEvent;
use crate::outbox::lane::{self, LaneParts, LiveConn};

/// What the actor holds of its lane.
pub(crate) struct LaneLink {
    live: watch::Sender<Option<LiveConn>>,
    inbox: mpsc::UnboundedSender<ConnectionEvent>,
}

impl LaneLink {
    /// Starts the org's lane. It ends when this link is dropped (the actor
    /// stopped or crashed): whatever it was sending stays `sending` in the store
    /// and is sent again, with its id, by the next incarnation's lane.
    pub(crate) fn start(parts: impl FnOnce(LaneInputs) -> LaneParts) -> Self {
        let (live, live_rx) = watch::channel(None);
        let (inbox, inbox_rx) = mpsc::unbounded_channel();
        lane::spawn(parts(LaneInputs {
            live: live_rx,
            inbox: inbox_rx,
        }));
        Self { live, inbox }
    }
}

/// The lane's ends of the link.
pub(crate) struct LaneInputs {
    pub live: watch::Receiver<Option<LiveConn>>,
    pub inbox: mpsc::UnboundedReceiver<ConnectionEvent>,
}

impl OrgState {
    /// Tells the lane the connection it may send on: the live one, or none.
    pub(super) fn lane_follows(&self) {
        let now = match &self.phase {
            Phase::Live { conn, .. } => Some(LiveConn {
                generation: self.generation,
                conn: conn.clone(),
            }),
            _ => None,
        };
        self.lane.live.send_if_modified(|was| {
            let same = match (&*was, &now) {
                (None, None) => true,
                (Some(a), Some(b)) => a.generation == b.generation,
                _ => false,
            };
            if !same {
                *was = now;
            }
            !same
        });
    }

    /// An ack or receipt from the connection, for the lane.
    pub(super) fn to_lane(&self, event: ConnectionEvent) {
        let _ = self.lane.inbox.send(event);
    }
}
