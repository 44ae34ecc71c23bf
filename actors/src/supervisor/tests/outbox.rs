//! The outbox through the actor tree (CONTRACT §10): order, acks, zombies,
//! expiry, cancel, receipts, and the compatible send.

use super::*;
use crate::connection::{
    ConnectRequest, Connection, ConnectionError, Connector, EventStream, ReceiptKind,
};
use crate::outbox::{Enqueued, Message, MessageBody, MessageStatus, OutboxError, Update, Updated};
use crate::{EventKind, MessageRequest};

fn request(org: &OrgId, text: &str) -> MessageRequest {
    MessageRequest {
        org: org.clone(),
        phone: "573009999999".into(),
        body: MessageBody::Text(text.into()),
        idempotency_key: None,
        expires_at: None,
    }
}

async fn enqueue(rig: &Rig, org: &OrgId, text: &str) -> Message {
    match rig.sup.enqueue(request(org, text)).await.unwrap() {
        Enqueued::New(m) => m,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn messages_accepted_before_pairing_are_sent_in_order_after_the_scan() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.show_qr(&a).await;
    let mut accepted = Vec::new();
    for i in 0..20 {
        accepted.push(enqueue(&rig, &a, &format!("recordatorio {i}")).await);
    }
    rig.settle_for(Duration::from_secs(30)).await;
    assert!(
        rig.sim.sent(&a).is_empty(),
        "nothing goes out before pairing"
    );
    rig.sim.scan(&a, "573001234567").unwrap();
    wait_message(&rig, &accepted[19].message_id, MessageStatus::Sent).await;
    let sent: Vec<String> = rig.sim.sent(&a).into_iter().map(|r| r.message_id).collect();
    let want: Vec<String> = accepted.iter().map(|m| m.message_id.to_string()).collect();
    assert_eq!(sent, want, "each once, in acceptance order");
    for m in &accepted {
        let m = record(&rig, &m.message_id).await;
        assert_eq!((m.status, m.attempts), (MessageStatus::Sent, 1));
        assert!(m.sent_at.is_some());
    }
}

#[tokio::test(start_paused = true)]
async fn deliveries_are_paced_apart() {
    let rig = Rig::with(|c| c.outbox.min_gap = Duration::from_secs(10)).await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    enqueue(&rig, &a, "uno").await;
    enqueue(&rig, &a, "dos").await;
    // When each reaches the phone, in virtual time (100 ms steps).
    let mut seen = Vec::new();
    let began = tokio::time::Instant::now();
    while seen.len() < 2 {
        if rig.sim.sent(&a).len() > seen.len() {
            seen.push(began.elapsed());
        }
        assert!(began.elapsed() < Duration::from_secs(60), "{seen:?}");
        rig.settle_for(Duration::from_millis(100)).await;
    }
    // ±50 % of 10 s.
    let gap = seen[1] - seen[0];
    assert!(gap >= Duration::from_millis(4_900), "{gap:?}");
    assert!(gap <= Duration::from_millis(15_200), "{gap:?}");
}

#[tokio::test(start_paused = true)]
async fn an_idempotency_key_accepts_a_message_once() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    let keyed = |text: &str| MessageRequest {
        idempotency_key: Some("appointment-123-reminder".into()),
        ..request(&a, text)
    };
    let Enqueued::New(first) = rig.sup.enqueue(keyed("hola")).await.unwrap() else {
        panic!("first is new")
    };
    let Enqueued::Duplicate(again) = rig.sup.enqueue(keyed("hola")).await.unwrap() else {
        panic!("second is a duplicate")
    };
    assert_eq!(again.message_id, first.message_id);
    assert!(matches!(
        rig.sup.enqueue(keyed("otro texto")).await,
        Err(SendError::Outbox(OutboxError::KeyReused(_)))
    ));
    wait_message(&rig, &first.message_id, MessageStatus::Sent).await;
    rig.settle_for(Duration::from_secs(10)).await;
    assert_eq!(rig.sim.sent(&a).len(), 1, "delivered once");
}

#[tokio::test(start_paused = true)]
async fn expired_and_cancelled_messages_are_never_sent() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.show_qr(&a).await;
    let soon = MessageRequest {
        expires_at: Some(chrono::Utc::now() + chrono::Duration::seconds(30)),
        ..request(&a, "caduca")
    };
    let Enqueued::New(expiring) = rig.sup.enqueue(soon).await.unwrap() else {
        panic!()
    };
    let cancelled = enqueue(&rig, &a, "cancelado").await;
    let outcome = rig
        .sup
        .outbox()
        .update(&cancelled.message_id, Update::Cancelled)
        .await
        .unwrap();
    assert!(matches!(outcome, Updated::Applied(m) if m.status == MessageStatus::Cancelled));
    let kept = enqueue(&rig, &a, "se envía").await;
    // The wall clock drives expiry: let it pass the 30 s for real is too slow, so
    // the record's expiry is checked against the lane's rule instead: the sweep
    // and the lane both refuse a message whose `expires_at` has passed.
    rig.sup
        .outbox()
        .update(&expiring.message_id, Update::Expired)
        .await
        .unwrap();
    rig.sim.scan(&a, "573001234567").unwrap();
    wait_message(&rig, &kept.message_id, MessageStatus::Sent).await;
    let sent: Vec<String> = rig.sim.sent(&a).into_iter().map(|r| r.text).collect();
    assert_eq!(sent, ["se envía"]);
    let done = rig
        .sup
        .outbox()
        .update(&kept.message_id, Update::Cancelled)
        .await
        .unwrap();
    assert!(matches!(done, Updated::Refused(m) if m.status == MessageStatus::Sent));
}

#[tokio::test(start_paused = true)]
async fn a_message_past_its_expiry_is_expired_by_the_sweep() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.show_qr(&a).await;
    let past = MessageRequest {
        expires_at: Some(chrono::Utc::now() - chrono::Duration::seconds(1)),
        ..request(&a, "tarde")
    };
    let Enqueued::New(late) = rig.sup.enqueue(past).await.unwrap() else {
        panic!()
    };
    wait_message(&rig, &late.message_id, MessageStatus::Expired).await;
    rig.sim.scan(&a, "573001234567").unwrap();
    rig.wait(&a, SessionStatus::Connected).await;
    rig.settle_for(Duration::from_secs(5)).await;
    assert!(rig.sim.sent(&a).is_empty());
    let expired = rig
        .events
        .events()
        .into_iter()
        .filter(|e| matches!(&e.kind, EventKind::Message(m) if m.status == MessageStatus::Expired))
        .count();
    assert_eq!(expired, 1, "message.expired is reported");
}

/// A connection that swallows a message without an ack is a zombie: the org
/// reconnects and the message goes again with the id of its first attempt.
#[tokio::test(start_paused = true)]
async fn no_ack_reconnects_and_resends_with_the_same_id() {
    let rig = Rig::with(|c| c.outbox.ack_timeout = Duration::from_secs(20)).await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::NoAck).await;
    let m = enqueue(&rig, &a, "hola").await;
    let reconnecting = rig.wait(&a, SessionStatus::Reconnecting).await;
    assert!(
        reconnecting.reason.unwrap().contains("did not acknowledge"),
        "the reason says why"
    );
    rig.wait(&a, SessionStatus::Connected).await;
    let sent = wait_message(&rig, &m.message_id, MessageStatus::Sent).await;
    assert_eq!(sent.attempts, 2);
    let attempts: Vec<String> = rig.sim.sent(&a).into_iter().map(|r| r.message_id).collect();
    assert_eq!(
        attempts,
        [m.message_id.to_string(), m.message_id.to_string()]
    );
}

#[tokio::test(start_paused = true)]
async fn receipts_move_a_message_to_delivered_then_read() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    let m = enqueue(&rig, &a, "hola").await;
    wait_message(&rig, &m.message_id, MessageStatus::Sent).await;
    let id = m.message_id.to_string();
    rig.sim.receipt(&a, &id, ReceiptKind::Delivered).unwrap();
    wait_message(&rig, &m.message_id, MessageStatus::Delivered).await;
    rig.sim.receipt(&a, &id, ReceiptKind::Read).unwrap();
    let read = wait_message(&rig, &m.message_id, MessageStatus::Read).await;
    assert!(read.delivered_at.is_some() && read.read_at.is_some());
    let told: Vec<MessageStatus> = rig
        .events
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Message(m) => Some(m.status),
            _ => None,
        })
        .collect();
    assert_eq!(
        told,
        [
            MessageStatus::Sent,
            MessageStatus::Delivered,
            MessageStatus::Read
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_org_without_a_session_or_credentials_queues_nothing() {
    let rig = Rig::new().await;
    assert_eq!(
        rig.sup.enqueue(request(&org("nobody"), "x")).await,
        Err(SendError::NoSession)
    );
}

/// The retry of a message accepted before, after its org was cleaned (nowhere
/// to send from now), is answered by its key: the message it was, or the key's
/// conflict, never "no session" for a message that may still be sent.
#[tokio::test(start_paused = true)]
async fn a_keyed_retry_after_a_clean_finds_its_message() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.show_qr(&a).await;
    let keyed = |key: &str, text: &str| MessageRequest {
        idempotency_key: Some(key.into()),
        ..request(&a, text)
    };
    let Enqueued::New(first) = rig.sup.enqueue(keyed("cita-9", "hola")).await.unwrap() else {
        panic!("first is new")
    };
    rig.sup.force_clean(&a).await.unwrap();
    assert_eq!(rig.sup.status(&a).status, SessionStatus::NotStarted);

    let Enqueued::Duplicate(again) = rig.sup.enqueue(keyed("cita-9", "hola")).await.unwrap() else {
        panic!("the retry is the message accepted before")
    };
    assert_eq!(again.message_id, first.message_id);
    assert!(matches!(
        rig.sup.enqueue(keyed("cita-9", "otro texto")).await,
        Err(SendError::Outbox(OutboxError::KeyReused(_)))
    ));
    assert_eq!(
        rig.sup.enqueue(keyed("cita-10", "hola")).await,
        Err(SendError::NoSession),
        "a new message still has nowhere to go"
    );
}

/// Ten compatible sends issued one after another while the session reconnects
/// reach the connection in the order they were issued once it is back.
#[tokio::test(start_paused = true)]
async fn sends_while_reconnecting_go_out_in_the_order_they_were_issued() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::NetworkDown).await;
    let mut sends = Vec::new();
    for i in 0..10 {
        let sup = rig.sup.clone();
        let org = a.clone();
        sends.push(tokio::spawn(async move {
            sup.send_text(&org, "573009999999", &format!("mensaje {i}"), None)
                .await
        }));
        settle().await;
    }
    rig.inject(&a, Fault::NetworkUp).await;
    for send in sends {
        send.await.unwrap().expect("sent once the session is back");
    }
    let texts: Vec<String> = rig.sim.sent(&a).into_iter().map(|r| r.text).collect();
    let want: Vec<String> = (0..10).map(|i| format!("mensaje {i}")).collect();
    assert_eq!(texts, want);
}

/// How the sends of a wrapped fake-phone connection behave.
#[derive(Clone, Copy)]
enum SendShape {
    /// Never returns.
    Hangs,
    /// Hands the message to the fake phone, whose server ack then overtakes the
    /// send's return by this long (as the real library's own store writes do).
    ReturnsLate(Duration),
    /// Answers "not connected" until then, with no word of a drop to the actor
    /// (the socket is gone and the event is still on its way).
    NotConnectedUntil(tokio::time::Instant),
}

/// A fake phone whose connections send as `shape` says.
struct ShapedSends {
    sim: SimConnector,
    shape: SendShape,
}

struct Shaped {
    conn: Arc<dyn Connection>,
    shape: SendShape,
}

#[async_trait::async_trait]
impl Connection for Shaped {
    async fn send_text(&self, phone: &str, text: &str, id: &str) -> Result<(), ConnectionError> {
        match self.shape {
            SendShape::Hangs => std::future::pending().await,
            SendShape::ReturnsLate(by) => {
                self.conn.send_text(phone, text, id).await?;
                tokio::time::sleep(by).await;
                Ok(())
            }
            SendShape::NotConnectedUntil(until) if tokio::time::Instant::now() < until => {
                Err(ConnectionError::NotConnected)
            }
            SendShape::NotConnectedUntil(_) => self.conn.send_text(phone, text, id).await,
        }
    }
    async fn send_media(
        &self,
        _: &str,
        _: &crate::media::Media,
        _: &str,
    ) -> Result<(), ConnectionError> {
        std::future::pending().await
    }
    async fn is_on_whatsapp(&self, phone: &str) -> Result<bool, ConnectionError> {
        self.conn.is_on_whatsapp(phone).await
    }
    async fn logout(&self) -> Result<(), ConnectionError> {
        self.conn.logout().await
    }
    async fn shutdown(&self) {
        self.conn.shutdown().await
    }
}

#[async_trait::async_trait]
impl Connector for ShapedSends {
    async fn connect(
        &self,
        request: ConnectRequest,
    ) -> Result<(Arc<dyn Connection>, EventStream), ConnectionError> {
        let (conn, events) = self.sim.connect(request).await?;
        let shape = self.shape;
        Ok((Arc::new(Shaped { conn, shape }), events))
    }
    fn has_credentials(&self, dir: &Path) -> Result<bool, ConnectionError> {
        self.sim.has_credentials(dir)
    }
}

/// A supervisor over a fake phone whose sends behave as `shape` says, and one
/// paired org on it.
async fn shaped(shape: SendShape, root: &Path) -> (Supervisor, SimConnector, OrgId) {
    let sim = SimConnector::default();
    let connector = ShapedSends {
        sim: sim.clone(),
        shape,
    };
    let sup = spawn_sup(
        SupervisorConfig::new(root),
        Arc::new(connector),
        no_events(),
    )
    .await;
    let a = org("2");
    pair(&sup, &sim, &a, "573001234567").await;
    (sup, sim, a)
}

/// WhatsApp's ack can come before the send returns: it still counts, and the
/// healthy connection is not taken for a zombie.
#[tokio::test(start_paused = true)]
async fn an_ack_that_overtakes_the_send_counts() {
    let root = tempfile::tempdir().unwrap();
    let (sup, _sim, a) = shaped(SendShape::ReturnsLate(Duration::from_secs(1)), root.path()).await;
    let Enqueued::New(m) = sup.enqueue(request(&a, "hola")).await.unwrap() else {
        panic!()
    };
    settle().await;
    tokio::time::advance(Duration::from_secs(3)).await;
    settle().await;
    let m = sup.outbox().get(&m.message_id).await.unwrap().unwrap();
    assert_eq!(m.status, MessageStatus::Sent, "{m:?}");
    assert_eq!(m.attempts, 1);
    assert_eq!(sup.status(&a).status, SessionStatus::Connected);
}

/// A send that finds the socket gone before the actor hears of it waits for the
/// actor's word instead of spending every attempt at once.
#[tokio::test(start_paused = true)]
async fn a_send_on_a_gone_socket_does_not_spend_the_attempts() {
    let root = tempfile::tempdir().unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    let (sup, _sim, a) = shaped(SendShape::NotConnectedUntil(until), root.path()).await;
    tokio::time::advance(until - tokio::time::Instant::now() - Duration::from_millis(2500)).await;
    let Enqueued::New(m) = sup.enqueue(request(&a, "hola")).await.unwrap() else {
        panic!()
    };
    for _ in 0..40 {
        settle().await;
        tokio::time::advance(Duration::from_millis(100)).await;
    }
    settle().await;
    let m = sup.outbox().get(&m.message_id).await.unwrap().unwrap();
    assert_eq!(m.status, MessageStatus::Sent, "{m:?}");
    assert!(m.attempts <= 4, "{} attempts in 2.5 s", m.attempts);
}

/// The caller of a send that hangs in the connection hears an error before the
/// request's own timeout, and stopping still finishes within its bound.
#[tokio::test(start_paused = true)]
async fn a_hanging_send_answers_in_time_and_does_not_hold_up_shutdown() {
    let root = tempfile::tempdir().unwrap();
    let config = SupervisorConfig::new(root.path());
    let (answer_within, request_timeout) = (config.answer_within(), config.request_timeout);
    let shutdown_bound = config.shutdown_bound();
    let (sup, _sim, a) = shaped(SendShape::Hangs, root.path()).await;

    let began = tokio::time::Instant::now();
    let result = sup.send_text(&a, "573009999999", "hola", None).await;
    let took = began.elapsed();
    assert!(
        matches!(result, Err(SendError::Failed { .. })),
        "{result:?}"
    );
    assert!(took <= answer_within && took < request_timeout, "{took:?}");

    let began = tokio::time::Instant::now();
    sup.shutdown().await;
    assert!(began.elapsed() <= shutdown_bound, "{:?}", began.elapsed());
}

/// A message that expires while its attempt is under way and is then acked
/// says `sent`: WhatsApp has it, whatever the expiry sweep thought.
#[tokio::test(start_paused = true)]
async fn an_ack_after_the_expiry_still_says_sent() {
    let root = tempfile::tempdir().unwrap();
    let (sup, sim, a) = shaped(SendShape::ReturnsLate(Duration::from_secs(3)), root.path()).await;
    let soon = MessageRequest {
        expires_at: Some(chrono::Utc::now() + chrono::Duration::seconds(1)),
        ..request(&a, "hola")
    };
    let Enqueued::New(m) = sup.enqueue(soon).await.unwrap() else {
        panic!()
    };
    for _ in 0..50 {
        settle().await;
        tokio::time::advance(Duration::from_millis(100)).await;
    }
    settle().await;
    let m = sup.outbox().get(&m.message_id).await.unwrap().unwrap();
    assert_eq!(sim.sent(&a).len(), 1, "it reached the phone");
    assert_eq!(m.status, MessageStatus::Sent, "{m:?}");
}

/// A compatible send that reuses the key of a message queued through the outbox
/// is refused at once and leaves that message to its own fate (it is neither
/// expired nor failed when the send's wait ends).
#[tokio::test(start_paused = true)]
async fn a_compatible_send_never_decides_a_queued_messages_fate() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::NetworkDown).await;
    rig.wait(&a, SessionStatus::Reconnecting).await;
    let keyed = MessageRequest {
        idempotency_key: Some("appointment-9".into()),
        ..request(&a, "hola")
    };
    let Enqueued::New(queued) = rig.sup.enqueue(keyed).await.unwrap() else {
        panic!()
    };
    let answer = rig
        .sup
        .send_text(&a, "573009999999", "hola", Some("appointment-9".into()))
        .await;
    assert!(
        matches!(&answer, Err(SendError::Outbox(OutboxError::KeyReused(m))) if m.message_id == queued.message_id),
        "{answer:?}"
    );
    rig.settle_for(Duration::from_secs(60)).await;
    assert_eq!(
        record(&rig, &queued.message_id).await.status,
        MessageStatus::Queued
    );
    rig.inject(&a, Fault::NetworkUp).await;
    wait_message(&rig, &queued.message_id, MessageStatus::Sent).await;
}
