//! Sent messages kept for retry receipts, and the pending-inbound buffer of the
//! durability hook. Both age by the time a row was (re)written, which the tests
//! cannot set, so their expiry is checked with an hour of margin either side.

use wacore::store::traits::{PendingInboundKey, PendingInboundRow};

use crate::backends::{Db, now};

const CHAT: &str = "5511987650001@s.whatsapp.net";
const OTHER_CHAT: &str = "120363021033254949@g.us";
const SENDER: &str = "5511987650001@s.whatsapp.net";
const HOUR: i64 = 3600;

on_both_backends!(
    a_sent_message_is_taken_once,
    taking_a_sent_message_is_atomic,
    sent_messages_expire_by_when_they_were_stored,
    a_pending_inbound_message_is_keyed_by_chat_sender_and_id,
    pending_inbound_batches_store_and_delete_together,
    pending_inbound_messages_expire_by_when_they_were_stored,
);

async fn a_sent_message_is_taken_once(db: &dyn Db) {
    let s = db.store("a").await;
    assert_eq!(s.take_sent_message(CHAT, "M1").await.unwrap(), None);

    s.store_sent_message(CHAT, "M1", b"payload").await.unwrap();
    s.store_sent_message(OTHER_CHAT, "M1", b"group payload")
        .await
        .unwrap();
    assert_eq!(
        s.take_sent_message(CHAT, "M1").await.unwrap(),
        Some(b"payload".to_vec())
    );
    assert_eq!(
        s.take_sent_message(CHAT, "M1").await.unwrap(),
        None,
        "consumed"
    );
    assert_eq!(
        s.take_sent_message(OTHER_CHAT, "M1").await.unwrap(),
        Some(b"group payload".to_vec()),
        "an id is per chat"
    );

    s.store_sent_message(CHAT, "M2", b"first").await.unwrap();
    s.store_sent_message(CHAT, "M2", b"second").await.unwrap();
    assert_eq!(
        s.take_sent_message(CHAT, "M2").await.unwrap(),
        Some(b"second".to_vec())
    );
}

/// Two retry receipts at once must not both resend the message.
async fn taking_a_sent_message_is_atomic(db: &dyn Db) {
    let s = db.store("a").await;
    s.store_sent_message(CHAT, "M1", b"payload").await.unwrap();
    let takers: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.take_sent_message(CHAT, "M1").await })
        })
        .collect();
    let mut taken = 0;
    for taker in takers {
        if taker.await.unwrap().unwrap().is_some() {
            taken += 1;
        }
    }
    assert_eq!(taken, 1);
}

async fn sent_messages_expire_by_when_they_were_stored(db: &dyn Db) {
    let s = db.store("a").await;
    s.store_sent_message(CHAT, "M1", b"one").await.unwrap();
    s.store_sent_message(CHAT, "M2", b"two").await.unwrap();
    assert_eq!(
        s.delete_expired_sent_messages(now() - HOUR).await.unwrap(),
        0
    );
    assert_eq!(
        s.take_sent_message(CHAT, "M1").await.unwrap(),
        Some(b"one".to_vec())
    );
    assert_eq!(
        s.delete_expired_sent_messages(now() + HOUR).await.unwrap(),
        1
    );
    assert_eq!(s.take_sent_message(CHAT, "M2").await.unwrap(), None);
}

async fn a_pending_inbound_message_is_keyed_by_chat_sender_and_id(db: &dyn Db) {
    let s = db.store("a").await;
    assert_eq!(
        s.get_pending_inbound(CHAT, SENDER, "M1").await.unwrap(),
        None
    );

    s.store_pending_inbound(CHAT, SENDER, "M1", b"hola")
        .await
        .unwrap();
    s.store_pending_inbound(OTHER_CHAT, SENDER, "M1", b"group")
        .await
        .unwrap();
    s.store_pending_inbound(OTHER_CHAT, "other@s.whatsapp.net", "M1", b"other")
        .await
        .unwrap();
    assert_eq!(
        s.get_pending_inbound(CHAT, SENDER, "M1").await.unwrap(),
        Some(b"hola".to_vec())
    );
    assert_eq!(
        s.get_pending_inbound(OTHER_CHAT, SENDER, "M1")
            .await
            .unwrap(),
        Some(b"group".to_vec())
    );

    s.store_pending_inbound(CHAT, SENDER, "M1", b"redelivered")
        .await
        .unwrap();
    assert_eq!(
        s.get_pending_inbound(CHAT, SENDER, "M1").await.unwrap(),
        Some(b"redelivered".to_vec())
    );

    s.delete_pending_inbound(CHAT, SENDER, "M1").await.unwrap();
    assert_eq!(
        s.get_pending_inbound(CHAT, SENDER, "M1").await.unwrap(),
        None
    );
    assert_eq!(
        s.get_pending_inbound(OTHER_CHAT, "other@s.whatsapp.net", "M1")
            .await
            .unwrap(),
        Some(b"other".to_vec())
    );
    s.delete_pending_inbound(CHAT, SENDER, "M1")
        .await
        .expect("deleting nothing is fine");
}

async fn pending_inbound_batches_store_and_delete_together(db: &dyn Db) {
    let s = db.store("a").await;
    let row = |id, message| PendingInboundRow {
        chat: CHAT,
        sender: SENDER,
        id,
        message,
    };
    s.store_pending_inbound_batch(&[]).await.unwrap();
    s.store_pending_inbound_batch(&[row("M1", b"1"), row("M2", b"2"), row("M1", b"1-again")])
        .await
        .unwrap();
    assert_eq!(
        s.get_pending_inbound(CHAT, SENDER, "M1").await.unwrap(),
        Some(b"1-again".to_vec())
    );
    assert_eq!(
        s.get_pending_inbound(CHAT, SENDER, "M2").await.unwrap(),
        Some(b"2".to_vec())
    );

    let key = |id| PendingInboundKey {
        chat: CHAT,
        sender: SENDER,
        id,
    };
    s.delete_pending_inbound_batch(&[]).await.unwrap();
    s.delete_pending_inbound_batch(&[key("M1"), key("M9")])
        .await
        .unwrap();
    assert_eq!(
        s.get_pending_inbound(CHAT, SENDER, "M1").await.unwrap(),
        None
    );
    assert_eq!(
        s.get_pending_inbound(CHAT, SENDER, "M2").await.unwrap(),
        Some(b"2".to_vec())
    );
}

async fn pending_inbound_messages_expire_by_when_they_were_stored(db: &dyn Db) {
    let s = db.store("a").await;
    s.store_pending_inbound(CHAT, SENDER, "M1", b"1")
        .await
        .unwrap();
    s.store_pending_inbound(CHAT, SENDER, "M2", b"2")
        .await
        .unwrap();
    assert_eq!(
        s.delete_expired_pending_inbound(now() - HOUR)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.delete_expired_pending_inbound(now() + HOUR)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.get_pending_inbound(CHAT, SENDER, "M2").await.unwrap(),
        None
    );
}
