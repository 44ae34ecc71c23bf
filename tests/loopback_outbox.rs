//! The outbox (CONTRACT §10) over the real whatsapp-rust connection, against the
//! loopback WhatsApp Web server: what counts as `sent` is the server's own ack of
//! the stanza, a resend after a withheld ack is a second stanza with the same id,
//! and the recipient's receipts come from the server.

mod common;
mod loopback_support;
mod outbox_support;

use std::time::Duration;

use common::Daemon;
use loopback_support::*;
use outbox_support::{message, wait_message};
use serde_json::json;
use wa_loopback::{AckMode, Loopback, ReceiptKind, ServerEvent};

const ORG: &str = "optica-sol";

/// Deliveries unpaced, and a zombie taken for dead after 2 s.
async fn daemon(server: &Loopback) -> Daemon {
    Daemon::start_real(
        &server.url(),
        "[outbox]\nmin_gap_ms = 0\nack_timeout_seconds = 2\n",
    )
    .await
}

async fn enqueue(daemon: &Daemon) -> String {
    let (code, body) = daemon
        .post(
            "/api/messages",
            json!({ "organization_id": ORG, "phone": CUSTOMER, "message": "Su cita es mañana a las 10:00" }),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    body["message_id"].as_str().unwrap().to_owned()
}

/// The message stanzas with `id` the server received, and its acks of `id`.
fn seen(server: &Loopback, id: &str) -> (usize, usize) {
    let events = server.events();
    let stanzas = events
        .iter()
        .filter(|e| matches!(e, ServerEvent::Message(m) if m.id == id))
        .count();
    let acks = events
        .iter()
        .filter(|e| matches!(e, ServerEvent::Acked { id: a, error: None, .. } if a == id))
        .count();
    (stanzas, acks)
}

/// Accepted while the QR waits, the message goes out after the scan, is `sent` once
/// the server acks it, and the recipient's receipts relayed by the server move it
/// to `delivered`, then `read`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_message_is_acked_then_delivered_then_read() {
    let server = Loopback::start().await.unwrap();
    let daemon = daemon(&server).await;
    let (code, body) = daemon
        .post("/api/start-session", json!({ "organization_id": ORG }))
        .await;
    assert_eq!(code, 200, "{body}");
    daemon.wait_status(ORG, "qr_ready").await;
    let id = enqueue(&daemon).await;
    assert_eq!(seen(&server, &id), (0, 0), "nothing before the scan");

    server.scan(&qr_of(&daemon, ORG).await, PHONE).unwrap();
    daemon.wait_status(ORG, "connected").await;
    let sent = wait_message(&daemon, &id, "sent").await;
    assert_eq!(sent["attempts"], 1, "{sent}");
    assert_eq!(seen(&server, &id), (1, 1), "one stanza, acked");
    let stanza = recorded(&server, &id).await;
    assert_eq!(stanza.to.user.as_str(), CUSTOMER);

    server
        .receipt(PHONE, CUSTOMER, &id, ReceiptKind::Delivered)
        .unwrap();
    let delivered = wait_message(&daemon, &id, "delivered").await;
    assert!(delivered["delivered_at"].is_string(), "{delivered}");
    server
        .receipt(PHONE, CUSTOMER, &id, ReceiptKind::Read)
        .unwrap();
    let read = wait_message(&daemon, &id, "read").await;
    assert!(read["read_at"].is_string(), "{read}");
    assert_eq!(read["delivered_at"], delivered["delivered_at"]);
}

/// The server takes the message and withholds its ack: after `ack_timeout_seconds`
/// the daemon takes the connection for dead, logs in again (no QR), and sends the
/// message again with the same id; the server acks that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withheld_ack_reconnects_and_resends_with_the_same_id() {
    let server = Loopback::start().await.unwrap();
    let daemon = daemon(&server).await;
    pair(&daemon, &server, ORG, PHONE).await;
    let logins_before = logins(&server, PHONE).len();
    let qrs = qr_refs_sent(&server);

    server.set_acks(PHONE, AckMode::Withhold);
    let id = enqueue(&daemon).await;
    server
        .wait_for("the first attempt", Duration::from_secs(20), |_| {
            (seen(&server, &id).0 == 1).then_some(())
        })
        .await
        .unwrap();
    // That stanza is never acked; the next connection's are.
    server.set_acks(PHONE, AckMode::Ack);
    assert_eq!(message(&daemon, &id).await["status"], "sending");

    let sent = wait_message(&daemon, &id, "sent").await;
    assert_eq!(sent["attempts"], 2, "{sent}");
    assert_eq!(
        seen(&server, &id),
        (2, 1),
        "two stanzas with one id, one ack"
    );
    assert_eq!(
        logins(&server, PHONE).len(),
        logins_before + 1,
        "one new login"
    );
    assert_eq!(qr_refs_sent(&server), qrs, "no QR");
    daemon.wait_status(ORG, "connected").await;
}
