//! CONTRACT §10 on the real connection against the loopback server: server acks,
//! withheld acks, nacks, resends with the same id, and the recipient's receipts.

use std::time::Duration;

use wa_loopback::{AckMode, Loopback, ReceiptKind as Sent, ServerEvent};

use super::loopback::{
    CUSTOMER, PHONE, TEXT, is_delivery, new_id, org_dir, pair, stanzas_with_id, until,
};
use crate::connection::{Connection as _, ConnectionEvent, ReceiptKind};

/// CONTRACT §10: a send returns once written; the server's ack arrives as an event
/// with the message's id, and the recipient's receipts follow as events too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_is_acked_then_delivered_then_read() {
    let server = Loopback::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = org_dir(&tmp, "optica-sol");
    let (conn, mut events) = pair(&server, &dir, PHONE).await;

    let id = new_id();
    conn.send_text(CUSTOMER, TEXT, &id).await.unwrap();
    assert_eq!(
        until(&mut events, is_delivery).await,
        ConnectionEvent::ServerAck {
            message_id: id.clone(),
            error: None
        }
    );
    assert!(server.events().contains(&ServerEvent::Acked {
        phone: PHONE.into(),
        id: id.clone(),
        error: None
    }));

    server
        .receipt(PHONE, CUSTOMER, &id, Sent::Delivered)
        .unwrap();
    assert_eq!(
        until(&mut events, is_delivery).await,
        ConnectionEvent::Receipt {
            message_ids: vec![id.clone()],
            kind: ReceiptKind::Delivered
        }
    );
    server.receipt(PHONE, CUSTOMER, &id, Sent::Read).unwrap();
    assert_eq!(
        until(&mut events, is_delivery).await,
        ConnectionEvent::Receipt {
            message_ids: vec![id],
            kind: ReceiptKind::Read
        }
    );
    conn.shutdown().await;
}

/// A zombie link: the server takes messages and never acks them. No ack arrives
/// for them; sent again with the same id, a message reaches the server with that
/// id and is acked; a refused one comes back as a nack with its code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_acks_never_arrive_and_a_resend_keeps_its_id() {
    let server = Loopback::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = org_dir(&tmp, "optica-sol");
    let (conn, mut events) = pair(&server, &dir, PHONE).await;

    server.set_acks(PHONE, AckMode::Withhold);
    let unacked = new_id();
    conn.send_text(CUSTOMER, TEXT, &unacked).await.unwrap();
    server
        .wait_for("the unacked message", Duration::from_secs(20), |_| {
            (stanzas_with_id(&server, &unacked) == 1).then_some(())
        })
        .await
        .unwrap();

    // The server answers one link in order: had it acked the first message, that
    // ack would come before the second one's.
    server.set_acks(PHONE, AckMode::Ack);
    let second = new_id();
    conn.send_text(CUSTOMER, TEXT, &second).await.unwrap();
    assert_eq!(
        until(&mut events, is_delivery).await,
        ConnectionEvent::ServerAck {
            message_id: second,
            error: None
        },
        "no ack for the withheld message"
    );

    conn.send_text(CUSTOMER, TEXT, &unacked).await.unwrap();
    assert_eq!(
        until(&mut events, is_delivery).await,
        ConnectionEvent::ServerAck {
            message_id: unacked.clone(),
            error: None
        }
    );
    assert_eq!(
        stanzas_with_id(&server, &unacked),
        2,
        "the resend carries the same id"
    );

    server.set_acks(PHONE, AckMode::Nack(479));
    let refused = new_id();
    conn.send_text(CUSTOMER, TEXT, &refused).await.unwrap();
    assert_eq!(
        until(&mut events, is_delivery).await,
        ConnectionEvent::ServerAck {
            message_id: refused,
            error: Some("479".into())
        }
    );
    conn.shutdown().await;
}
