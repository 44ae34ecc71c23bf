//! `MsgSecretStore`: message secrets, their deadlines and parent times.

use std::sync::Arc;

use wacore::store::traits::MsgSecretEntry;

use crate::backends::Db;

const CHAT: &str = "5511987650001@s.whatsapp.net";
const ME: &str = "5511987650009@s.whatsapp.net";

on_both_backends!(
    a_secret_is_stored_replaced_and_scoped_by_chat_sender_and_id,
    a_deadline_only_grows_and_never_wins,
    the_parent_time_keeps_the_latest_known,
    a_batch_counts_every_entry_and_merges_repeats_in_order,
    expiry_deletes_passed_deadlines_inclusively_and_keeps_never,
);

fn entry(msg_id: &str, secret: u8, expires_at: i64, message_ts: i64) -> MsgSecretEntry {
    MsgSecretEntry {
        chat: Arc::from(CHAT),
        sender: Arc::from(ME),
        msg_id: Arc::from(msg_id),
        secret: [secret; 32],
        expires_at,
        message_ts,
    }
}

async fn a_secret_is_stored_replaced_and_scoped_by_chat_sender_and_id(db: &dyn Db) {
    let s = db.store("a").await;
    assert_eq!(s.get_msg_secret(CHAT, ME, "M1").await.unwrap(), None);
    assert_eq!(
        s.get_msg_secret_with_ts(CHAT, ME, "M1").await.unwrap(),
        None
    );

    s.put_msg_secret(CHAT, ME, "M1", &[1; 32]).await.unwrap();
    assert_eq!(
        s.get_msg_secret(CHAT, ME, "M1").await.unwrap(),
        Some(vec![1; 32])
    );
    assert_eq!(
        s.get_msg_secret_with_ts(CHAT, ME, "M1").await.unwrap(),
        Some((vec![1; 32], 0)),
        "no parent time given"
    );
    s.put_msg_secret(CHAT, ME, "M1", &[2; 32]).await.unwrap();
    assert_eq!(
        s.get_msg_secret(CHAT, ME, "M1").await.unwrap(),
        Some(vec![2; 32])
    );

    assert_eq!(
        s.get_msg_secret("other@g.us", ME, "M1").await.unwrap(),
        None
    );
    assert_eq!(s.get_msg_secret(CHAT, CHAT, "M1").await.unwrap(), None);
    assert_eq!(s.get_msg_secret(CHAT, ME, "M2").await.unwrap(), None);
}

/// A re-persist never shortens a retention window: the later deadline wins and
/// `0` ("never") beats any deadline, from either side.
async fn a_deadline_only_grows_and_never_wins(db: &dyn Db) {
    let s = db.store("a").await;
    s.put_msg_secrets(vec![entry("later", 1, 100, 0)])
        .await
        .unwrap();
    s.put_msg_secrets(vec![entry("later", 2, 50, 0)])
        .await
        .unwrap();
    s.put_msg_secrets(vec![entry("never_in", 1, 100, 0)])
        .await
        .unwrap();
    s.put_msg_secrets(vec![entry("never_in", 1, 0, 0)])
        .await
        .unwrap();
    s.put_msg_secrets(vec![entry("never_kept", 1, 0, 0)])
        .await
        .unwrap();
    s.put_msg_secrets(vec![entry("never_kept", 1, 100, 0)])
        .await
        .unwrap();

    assert_eq!(s.delete_expired_msg_secrets(99).await.unwrap(), 0);
    assert_eq!(
        s.get_msg_secret(CHAT, ME, "later").await.unwrap(),
        Some(vec![2; 32]),
        "the secret is replaced even when the deadline is not"
    );
    assert_eq!(s.delete_expired_msg_secrets(100).await.unwrap(), 1);
    assert_eq!(s.get_msg_secret(CHAT, ME, "later").await.unwrap(), None);
    assert_eq!(s.delete_expired_msg_secrets(i64::MAX).await.unwrap(), 0);
    assert!(
        s.get_msg_secret(CHAT, ME, "never_in")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.get_msg_secret(CHAT, ME, "never_kept")
            .await
            .unwrap()
            .is_some()
    );
}

async fn the_parent_time_keeps_the_latest_known(db: &dyn Db) {
    let s = db.store("a").await;
    let ts = |s: Option<(Vec<u8>, i64)>| s.map(|(_, ts)| ts);
    s.put_msg_secrets(vec![entry("M1", 1, 0, 500)])
        .await
        .unwrap();
    assert_eq!(
        ts(s.get_msg_secret_with_ts(CHAT, ME, "M1").await.unwrap()),
        Some(500)
    );
    s.put_msg_secrets(vec![entry("M1", 1, 0, 0)]).await.unwrap();
    assert_eq!(
        ts(s.get_msg_secret_with_ts(CHAT, ME, "M1").await.unwrap()),
        Some(500),
        "0 is unknown"
    );
    s.put_msg_secrets(vec![entry("M1", 1, 0, 400)])
        .await
        .unwrap();
    assert_eq!(
        ts(s.get_msg_secret_with_ts(CHAT, ME, "M1").await.unwrap()),
        Some(500)
    );
    s.put_msg_secrets(vec![entry("M1", 1, 0, 600)])
        .await
        .unwrap();
    assert_eq!(
        ts(s.get_msg_secret_with_ts(CHAT, ME, "M1").await.unwrap()),
        Some(600)
    );
}

/// The count is of entries written, a key repeated in the batch counting each
/// time; the repeats merge as if put one after another.
async fn a_batch_counts_every_entry_and_merges_repeats_in_order(db: &dyn Db) {
    let s = db.store("a").await;
    assert_eq!(s.put_msg_secrets(vec![]).await.unwrap(), 0);
    let written = s
        .put_msg_secrets(vec![
            entry("M1", 1, 100, 5),
            entry("M2", 2, 0, 0),
            entry("M1", 3, 50, 0),
        ])
        .await
        .unwrap();
    assert_eq!(written, 3);
    assert_eq!(
        s.get_msg_secret_with_ts(CHAT, ME, "M1").await.unwrap(),
        Some((vec![3; 32], 5))
    );
    assert_eq!(s.delete_expired_msg_secrets(99).await.unwrap(), 0);
    assert_eq!(
        s.delete_expired_msg_secrets(100).await.unwrap(),
        1,
        "M1 kept 100"
    );
    assert!(s.get_msg_secret(CHAT, ME, "M2").await.unwrap().is_some());
}

async fn expiry_deletes_passed_deadlines_inclusively_and_keeps_never(db: &dyn Db) {
    let s = db.store("a").await;
    s.put_msg_secrets(vec![
        entry("t10", 1, 10, 0),
        entry("t20", 1, 20, 0),
        entry("never", 1, 0, 0),
    ])
    .await
    .unwrap();
    assert_eq!(s.delete_expired_msg_secrets(9).await.unwrap(), 0);
    assert_eq!(s.delete_expired_msg_secrets(10).await.unwrap(), 1);
    assert_eq!(s.get_msg_secret(CHAT, ME, "t10").await.unwrap(), None);
    assert_eq!(s.delete_expired_msg_secrets(19).await.unwrap(), 0);
    assert_eq!(s.delete_expired_msg_secrets(20).await.unwrap(), 1);
    assert_eq!(s.delete_expired_msg_secrets(i64::MAX).await.unwrap(), 0);
    assert!(s.get_msg_secret(CHAT, ME, "never").await.unwrap().is_some());
}
