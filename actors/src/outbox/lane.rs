//! One org's delivery lane: the single, ordered path every message of that org
//! takes to WhatsApp (CONTRACT §10).
//!
//! The org actor decides whether the session is live; the lane does the sending.
//! It follows the actor's [`LiveConn`] (present only while `connected`), takes the
//! org's oldest pending message, marks an attempt, writes it with its fixed id,
//! and waits for WhatsApp's server ack before the next one, pacing deliveries
//! `min_gap` ± 50 % apart. One message at a time, in acceptance order; orgs never
//! wait for each other (one lane each).
//!
//! Before a message's first attempt the lane asks whether its number is on
//! WhatsApp (through the org's [`NumberCache`](crate::numbers::NumberCache)): a
//! number that is not fails the message at once with that error, instead of after
//! `max_attempts` refusals. A check that itself fails (network, timeout) decides
//! nothing: the message is sent, and WhatsApp's answer to it counts as always.
//!
//! A media message's file is read from disk for each attempt and handed to
//! [`Connection::send_media`]; a text goes through [`Connection::send_text`].
//!
//! A send that does not return, or an ack that does not come, within
//! `ack_timeout` (for a file, plus its upload at [`SLOWEST_UPLOAD`]) means the
//! connection is a zombie: the lane tells the actor
//! (which reconnects) and sends the same message again, with the same id, on the
//! next connection. Acks and receipts reach the lane through its inbox (the actor
//! forwards the connection's delivery events in order).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ractor::ActorRef;
use rand::RngExt;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use super::{Message, MessageBody, Outbox, Update, Updated};
use crate::connection::{Connection, ConnectionError, ConnectionEvent, ReceiptKind};
use crate::media::Media;
use crate::session::{LaneReport, OrgMsg};
use crate::{Backoff, OrgId};

/// How long the lane waits before looking again after the store failed.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// How long it waits after a send found the connection gone, unless the actor
/// replaces the connection sooner.
const INTERRUPTED_RETRY: Duration = Duration::from_secs(1);
/// The slowest upload a file is given time for, in bytes a second (128 KiB/s,
/// about 1 Mbit/s: a shop's poor uplink). A file's send uploads it before the
/// message is written, so its ack is waited for that much longer: a large file
/// on a slow line is not taken for a dead connection.
const SLOWEST_UPLOAD: u64 = 128 * 1024;

/// How long an attempt may take before its connection counts as a zombie: the
/// ack timeout, plus the upload of `upload_bytes` at [`SLOWEST_UPLOAD`].
fn ack_wait(ack_timeout: Duration, upload_bytes: usize) -> Duration {
    ack_timeout + Duration::from_secs_f64(upload_bytes as f64 / SLOWEST_UPLOAD as f64)
}

/// What a server ack's error says of an attempt.
fn acked(error: Option<String>) -> Attempted {
    match error {
        None => Attempted::Acked,
        Some(code) => Attempted::Refused(format!("WhatsApp refused the message (code {code})")),
    }
}

/// The connection the lane may send on, and the generation the actor knows it by.
#[derive(Clone)]
pub(crate) struct LiveConn {
    pub generation: u64,
    pub conn: Arc<dyn Connection>,
}

/// How the lane paces, waits and gives up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LaneSpec {
    /// Average gap between two deliveries of one org (each drawn from ±50 %).
    pub min_gap: Duration,
    /// How long a send and then its server ack may take before the connection is
    /// taken for dead.
    pub ack_timeout: Duration,
    /// Attempts per message; after the last one it is `failed`.
    pub max_attempts: u32,
    /// Delay before another attempt after a refused one (a nack or a send error).
    pub retry: Backoff,
}

pub(crate) struct LaneParts {
    pub org: OrgId,
    pub outbox: Outbox,
    pub spec: LaneSpec,
    pub live: watch::Receiver<Option<LiveConn>>,
    pub inbox: mpsc::UnboundedReceiver<ConnectionEvent>,
    pub actor: ActorRef<OrgMsg>,
}

/// Starts the lane; it ends when the org actor drops its side of `live`.
pub(crate) fn spawn(parts: LaneParts) {
    let wake = parts.outbox.wake(&parts.org);
    parts.outbox.follow_live(&parts.org, parts.live.clone());
    tokio::spawn(
        Lane {
            parts,
            wake,
            last_delivery: None,
            in_flight: None,
        }
        .run(),
    );
}

struct Lane {
    parts: LaneParts,
    wake: Arc<Notify>,
    last_delivery: Option<Instant>,
    /// The message being written and, once its server ack has come, the ack's
    /// error (`None` = accepted). The ack can overtake the send's return (the
    /// library still writes its own store after the socket), so whatever reads
    /// the inbox meanwhile keeps the verdict here for the attempt.
    in_flight: Option<(String, Option<Option<String>>)>,
}

/// Why a wait ended.
enum Woke<T> {
    Done(T),
    /// The live connection changed (dropped, replaced).
    LiveChanged,
    /// The org actor is gone: the lane ends.
    Gone,
}

/// The error of a message whose number is not on WhatsApp.
pub const NOT_ON_WHATSAPP: &str = "the number is not on WhatsApp";

/// What the number check before a first attempt found.
enum Number {
    /// On WhatsApp, or unknown (the check failed): send.
    Send,
    /// Not on WhatsApp: fail the message.
    Absent,
    /// The connection went away meanwhile.
    Interrupted,
}

/// What became of one attempt.
enum Attempted {
    Acked,
    /// The server refused it (a nack) or the connection failed to write it.
    Refused(String),
    /// The connection went away before the ack: send again on the next one.
    Interrupted,
    /// Nothing came back in time: the connection is a zombie.
    NoAck,
    /// A media message's file could not be read.
    Unreadable(std::io::Error),
}

impl Lane {
    async fn run(mut self) {
        loop {
            let Some(live) = self.wait_live().await else {
                return;
            };
            let message = match self.parts.outbox.next_pending(&self.parts.org).await {
                Ok(Some(message)) => message,
                Ok(None) => match self.idle(self.wake.clone().notified_owned()).await {
                    Woke::Gone => return,
                    _ => continue,
                },
                Err(e) => {
                    tracing::warn!(org_id = %self.parts.org, error = %e, "the outbox could not be read; retrying");
                    match self.idle(tokio::time::sleep(Duration::from_secs(1))).await {
                        Woke::Gone => return,
                        _ => continue,
                    }
                }
            };
            if self.deliver(&live, message).await.is_none() {
                return;
            }
        }
    }

    /// One attempt at `message` on `live`; `None` once the lane must end.
    async fn deliver(&mut self, live: &LiveConn, message: Message) -> Option<()> {
        let id = message.message_id.clone();
        if message.attempts >= self.parts.spec.max_attempts {
            let error = format!(
                "not acknowledged by WhatsApp after {} attempts",
                message.attempts
            );
            self.update(&message, Update::Failed { error }).await;
            return Some(());
        }
        if message.attempts == 0 {
            match self.check_number(live, &message).await? {
                Number::Send => {}
                Number::Absent => {
                    let error = NOT_ON_WHATSAPP.to_owned();
                    self.update(&message, Update::Failed { error }).await;
                    return Some(());
                }
                Number::Interrupted => return self.pause(INTERRUPTED_RETRY).await,
            }
        }
        if let Some(last) = self.last_delivery {
            let gap = self
                .parts
                .spec
                .min_gap
                .mul_f64(rand::rng().random_range(0.5..=1.5));
            match self.idle(tokio::time::sleep_until(last + gap)).await {
                Woke::Done(()) => {}
                Woke::LiveChanged => return Some(()),
                Woke::Gone => return None,
            }
        }
        // Checked last, right before the attempt: a message must not leave after
        // its time because it waited for its turn.
        if message.expires_at <= Utc::now() {
            self.update(&message, Update::Expired).await;
            return Some(());
        }
        let message = match self
            .update(&message, Update::Sending { at: Utc::now() })
            .await
        {
            Some(Updated::Applied(message)) => message,
            // Cancelled or expired meanwhile: look again.
            Some(Updated::Refused(_) | Updated::NotFound) => return Some(()),
            // The store failed: look again in a moment, not in a tight loop.
            None => return self.pause(STORE_RETRY).await,
        };
        match self.attempt(live, &message).await? {
            Attempted::Acked => {
                self.last_delivery = Some(Instant::now());
                self.update(&message, Update::Sent { at: Utc::now() }).await;
            }
            Attempted::Refused(why) => {
                tracing::warn!(org_id = %self.parts.org, message_id = %id, attempt = message.attempts, error = %why, "a message was refused");
                if message.attempts >= self.parts.spec.max_attempts {
                    let error = format!("{why} (after {} attempts)", message.attempts);
                    self.update(&message, Update::Failed { error }).await;
                } else {
                    let delay = self
                        .parts
                        .spec
                        .retry
                        .delay(message.attempts.saturating_sub(1));
                    if let Woke::Gone = self.idle(tokio::time::sleep(delay)).await {
                        return None;
                    }
                }
            }
            // The connection said it is not connected before the actor heard it
            // dropped: wait for the actor's word rather than spin on attempts.
            Attempted::Interrupted => return self.pause(INTERRUPTED_RETRY).await,
            Attempted::Unreadable(e) => self.unreadable(&message, e).await?,
            Attempted::NoAck => {
                let report = LaneReport::NoAck {
                    generation: live.generation,
                    waited_secs: self.parts.spec.ack_timeout.as_secs(),
                };
                let _ = self.parts.actor.cast(OrgMsg::Lane(report));
                // Resend only on the connection the actor opens next.
                if let Woke::Gone = self.idle(std::future::pending::<()>()).await {
                    return None;
                }
            }
        }
        Some(())
    }

    /// Waits `delay`, minding deliveries; a change of the live connection ends it
    /// early. `None` once the lane must end.
    async fn pause(&mut self, delay: Duration) -> Option<()> {
        match self.idle(tokio::time::sleep(delay)).await {
            Woke::Gone => None,
            Woke::Done(()) | Woke::LiveChanged => Some(()),
        }
    }

    /// Whether the message's number is on WhatsApp, from the cache or asked of
    /// the connection; `None` once the lane must end.
    async fn check_number(&mut self, live: &LiveConn, message: &Message) -> Option<Number> {
        let outbox = self.parts.outbox.clone();
        let (org, conn, phone) = (self.parts.org.clone(), live.conn.clone(), &message.phone);
        let check = async move { outbox.numbers().check(&org, &*conn, phone).await };
        let checked = match self.idle(check).await {
            Woke::Done(checked) => checked,
            Woke::LiveChanged => return Some(Number::Interrupted),
            Woke::Gone => return None,
        };
        Some(match checked {
            Ok(true) => Number::Send,
            Ok(false) => Number::Absent,
            Err(ConnectionError::NotConnected) => Number::Interrupted,
            Err(e) => {
                tracing::debug!(org_id = %self.parts.org, message_id = %message.message_id, error = %e, "the number could not be checked; sending anyway");
                Number::Send
            }
        })
    }

    /// Writes the message and waits for its server ack.
    async fn attempt(&mut self, live: &LiveConn, message: &Message) -> Option<Attempted> {
        let id = message.message_id.as_str().to_owned();
        self.in_flight = Some((id.clone(), None));
        let attempted = self.write_and_wait(live, message, &id).await;
        self.in_flight = None;
        attempted
    }

    async fn write_and_wait(
        &mut self,
        live: &LiveConn,
        message: &Message,
        id: &str,
    ) -> Option<Attempted> {
        let media = match &message.body {
            MessageBody::Text(_) => None,
            MessageBody::Media(body) => {
                match self.parts.outbox.media().read(&message.message_id).await {
                    Ok(bytes) => Some(Media::of(body, bytes)),
                    Err(e) => return Some(Attempted::Unreadable(e)),
                }
            }
        };
        let upload_bytes = media.as_ref().map_or(0, |m| m.bytes.len());
        let deadline = Instant::now() + ack_wait(self.parts.spec.ack_timeout, upload_bytes);
        let (conn, phone) = (&live.conn, &message.phone);
        let send = async move {
            match (&message.body, &media) {
                (_, Some(media)) => conn.send_media(phone, media, id).await,
                (MessageBody::Text(text), None) => conn.send_text(phone, text, id).await,
                (MessageBody::Media(_), None) => unreachable!("a media body was read above"),
            }
        };
        let written = match self.idle(tokio::time::timeout_at(deadline, send)).await {
            Woke::Gone => return None,
            Woke::LiveChanged => return Some(Attempted::Interrupted),
            Woke::Done(Err(_elapsed)) => return Some(Attempted::NoAck),
            Woke::Done(Ok(written)) => written,
        };
        match written {
            Ok(()) => {}
            Err(ConnectionError::NotConnected) => return Some(Attempted::Interrupted),
            Err(e) => return Some(Attempted::Refused(e.to_string())),
        }
        if let Some((_, Some(error))) = self.in_flight.take() {
            return Some(acked(error));
        }
        loop {
            tokio::select! {
                event = self.parts.inbox.recv() => match event {
                    Some(ConnectionEvent::ServerAck { message_id, error }) if message_id == id => {
                        return Some(acked(error));
                    }
                    Some(other) => self.delivery(other).await,
                    None => return None,
                },
                () = tokio::time::sleep_until(deadline) => return Some(Attempted::NoAck),
                changed = self.parts.live.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    return Some(Attempted::Interrupted);
                }
            }
        }
    }

    /// Waits for a live connection, minding deliveries meanwhile.
    async fn wait_live(&mut self) -> Option<LiveConn> {
        loop {
            if let Some(live) = self.parts.live.borrow_and_update().clone() {
                return Some(live);
            }
            match self.idle(std::future::pending::<()>()).await {
                Woke::Gone => return None,
                _ => continue,
            }
        }
    }

    /// Awaits `work` while applying late acks and receipts from the inbox; stops
    /// early when the live connection changes or the actor is gone.
    async fn idle<T>(&mut self, work: impl Future<Output = T>) -> Woke<T> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return Woke::Done(done),
                event = self.parts.inbox.recv() => match event {
                    Some(event) => self.delivery(event).await,
                    None => return Woke::Gone,
                },
                changed = self.parts.live.changed() => {
                    return if changed.is_err() { Woke::Gone } else { Woke::LiveChanged };
                }
            }
        }
    }

    /// An ack or receipt that no attempt is waiting for yet: the ack of the
    /// message being written (kept for its attempt), a late ack of an earlier
    /// attempt (the message was sent after all), or a recipient's receipt.
    async fn delivery(&mut self, event: ConnectionEvent) {
        if let (Some((in_flight, verdict)), ConnectionEvent::ServerAck { message_id, error }) =
            (&mut self.in_flight, &event)
            && message_id == in_flight
        {
            *verdict = Some(error.clone());
            return;
        }
        let (ids, update) = match event {
            ConnectionEvent::ServerAck {
                message_id,
                error: None,
            } => (vec![message_id], Update::Sent { at: Utc::now() }),
            ConnectionEvent::Receipt { message_ids, kind } => {
                let at = Utc::now();
                let update = match kind {
                    ReceiptKind::Delivered => Update::Delivered { at },
                    ReceiptKind::Read => Update::Read { at },
                };
                (message_ids, update)
            }
            _ => return,
        };
        for raw in ids {
            let Ok(id) = super::MessageId::parse(&raw) else {
                continue;
            };
            if let Err(e) = self.parts.outbox.deliver_update(&id, update.clone()).await {
                tracing::warn!(org_id = %self.parts.org, message_id = %id, error = %e, "a receipt could not be recorded");
            }
        }
    }

    /// A media file that cannot be read: gone (the message was settled meanwhile,
    /// or the file was removed by hand) fails the message unless it is settled
    /// already; anything else (a full disk, a permission) is retried after a
    /// pause, never failed, as it may pass.
    async fn unreadable(&mut self, message: &Message, e: std::io::Error) -> Option<()> {
        if e.kind() == std::io::ErrorKind::NotFound {
            let error = "the file of this media message is missing".to_owned();
            self.update(message, Update::Failed { error }).await;
            return Some(());
        }
        tracing::warn!(org_id = %self.parts.org, message_id = %message.message_id, error = %e, "a media file could not be read; retrying");
        match self.idle(tokio::time::sleep(Duration::from_secs(5))).await {
            Woke::Gone => None,
            _ => Some(()),
        }
    }

    async fn update(&self, message: &Message, update: Update) -> Option<Updated> {
        match self
            .parts
            .outbox
            .deliver_update(&message.message_id, update)
            .await
        {
            Ok(updated) => Some(updated),
            Err(e) => {
                tracing::warn!(org_id = %self.parts.org, message_id = %message.message_id, error = %e, "the outbox could not record a message's progress");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_adds_its_upload_at_the_slowest_rate_to_the_ack_wait() {
        let ack = Duration::from_secs(20);
        assert_eq!(ack_wait(ack, 0), ack, "a text waits the ack timeout");
        assert_eq!(ack_wait(ack, 128 * 1024), Duration::from_secs(21));
        // The largest file by default (16 MiB): two more minutes.
        assert_eq!(ack_wait(ack, 16 << 20), Duration::from_secs(20 + 128));
    }
}
