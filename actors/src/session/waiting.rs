//! Sends that arrive while a paired session is reconnecting wait for it, up to
//! `send_wait`, instead of failing a clinic's reminder over a network blip.

use std::sync::Arc;

use ractor::RpcReplyPort;

use crate::connection::{Connection, ConnectionError};
use crate::events::{Emitter, EventKind};
use crate::supervisor::SentMessage;
use crate::{SendError, SessionStatus};

/// The answer to one send, which also reports the outcome as an event.
pub(super) struct Reply {
    port: RpcReplyPort<Result<SentMessage, SendError>>,
    emitter: Emitter,
}

impl Reply {
    pub(super) fn new(
        port: RpcReplyPort<Result<SentMessage, SendError>>,
        emitter: Emitter,
    ) -> Self {
        Self { port, emitter }
    }

    /// Answers the caller and emits `message.sent` or `message.failed`.
    pub(super) fn finish(
        self,
        to: &str,
        status: SessionStatus,
        result: Result<SentMessage, SendError>,
    ) {
        let kind = match &result {
            Ok(sent) => EventKind::MessageSent {
                message_id: sent.message_id.clone(),
                to: to.to_owned(),
            },
            Err(e) => EventKind::MessageFailed {
                to: to.to_owned(),
                reason: e.to_string(),
            },
        };
        self.emitter.emit(status, kind);
        let _ = self.port.send(result);
    }
}

#[derive(Default)]
pub(super) struct WaitingSends {
    next_id: u64,
    parked: Vec<(u64, String, String, Reply)>,
}

impl WaitingSends {
    /// Parks a send; returns its id for the expiry timer.
    pub(super) fn park(&mut self, phone: String, text: String, reply: Reply) -> u64 {
        self.next_id += 1;
        self.parked.push((self.next_id, phone, text, reply));
        self.next_id
    }

    /// The wait of one send ran out.
    pub(super) fn expire(&mut self, id: u64, status: SessionStatus) {
        if let Some(pos) = self.parked.iter().position(|p| p.0 == id) {
            let (_, phone, _, reply) = self.parked.swap_remove(pos);
            reply.finish(&phone, status, Err(SendError::NotConnected { status }));
        }
    }

    /// The session is connected: send everything that waited, in arrival order.
    pub(super) fn flush(&mut self, conn: &Arc<dyn Connection>) {
        for (_, phone, text, reply) in self.parked.drain(..) {
            send_now(conn, phone, text, reply);
        }
    }

    /// The session will not come back by itself: fail everything that waited.
    pub(super) fn fail_all(&mut self, status: SessionStatus) {
        for (_, phone, _, reply) in self.parked.drain(..) {
            reply.finish(&phone, status, Err(SendError::NotConnected { status }));
        }
    }
}

/// Sends on a spawned task, so the actor never awaits the network.
pub(super) fn send_now(conn: &Arc<dyn Connection>, phone: String, text: String, reply: Reply) {
    let conn = conn.clone();
    tokio::spawn(async move {
        let message_id = crate::outbox::MessageId::generate().as_str().to_owned();
        let result = match conn.send_text(&phone, &text, &message_id).await {
            Ok(()) => Ok(SentMessage {
                message_id,
                phone: phone.clone(),
            }),
            Err(ConnectionError::NotConnected) => Err(SendError::NotConnected {
                status: SessionStatus::Reconnecting,
            }),
            Err(e) => Err(SendError::Failed {
                reason: e.to_string(),
            }),
        };
        reply.finish(&phone, SessionStatus::Connected, result);
    });
}
