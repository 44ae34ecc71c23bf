//! Trusted-contact tokens: two writers, one field each, racing.

use std::sync::Arc;

use wacore::store::traits::TcTokenEntry;

use crate::backends::{Db, sorted};

on_both_backends!(
    a_token_is_stored_overwritten_listed_and_deleted,
    a_received_token_never_replaces_a_fresher_one,
    the_sender_timestamp_only_moves_forward_and_keeps_the_token,
    expiry_needs_both_the_token_and_the_sender_bucket_stale,
    racing_writers_converge_on_the_newest_of_each_field,
);

fn entry(token: &[u8], token_timestamp: i64, sender_timestamp: Option<i64>) -> TcTokenEntry {
    TcTokenEntry {
        token: token.to_vec(),
        token_timestamp,
        sender_timestamp,
    }
}

fn fields(entry: &TcTokenEntry) -> (Vec<u8>, i64, Option<i64>) {
    (
        entry.token.clone(),
        entry.token_timestamp,
        entry.sender_timestamp,
    )
}

async fn get(
    db_store: &Arc<dyn wacore::store::traits::Backend>,
    jid: &str,
) -> Option<(Vec<u8>, i64, Option<i64>)> {
    db_store
        .get_tc_token(jid)
        .await
        .unwrap()
        .as_ref()
        .map(fields)
}

async fn a_token_is_stored_overwritten_listed_and_deleted(db: &dyn Db) {
    let s = db.store("a").await;
    assert_eq!(get(&s, "u1@lid").await, None);
    assert!(s.get_all_tc_token_jids().await.unwrap().is_empty());

    s.put_tc_token("u1@lid", &entry(&[1, 2], 100, Some(50)))
        .await
        .unwrap();
    assert_eq!(
        get(&s, "u1@lid").await,
        Some(fields(&entry(&[1, 2], 100, Some(50))))
    );
    s.put_tc_token("u1@lid", &entry(&[3], 90, None))
        .await
        .unwrap();
    assert_eq!(
        get(&s, "u1@lid").await,
        Some(fields(&entry(&[3], 90, None))),
        "put overwrites every field, even with older values"
    );
    s.put_tc_token("u2@lid", &entry(&[4], 1, None))
        .await
        .unwrap();
    assert_eq!(
        sorted(s.get_all_tc_token_jids().await.unwrap()),
        vec!["u1@lid".to_string(), "u2@lid".to_string()]
    );

    s.delete_tc_token("u1@lid").await.unwrap();
    assert_eq!(get(&s, "u1@lid").await, None);
    s.delete_tc_token("u1@lid")
        .await
        .expect("deleting nothing is fine");
    assert_eq!(
        s.get_all_tc_token_jids().await.unwrap(),
        vec!["u2@lid".to_string()]
    );
}

async fn a_received_token_never_replaces_a_fresher_one(db: &dyn Db) {
    let s = db.store("a").await;
    s.store_received_tc_token("c@lid", &[1, 1], 5000)
        .await
        .unwrap();
    assert_eq!(get(&s, "c@lid").await, Some((vec![1, 1], 5000, None)));

    s.store_received_tc_token("c@lid", &[2, 2], 3000)
        .await
        .unwrap();
    assert_eq!(
        get(&s, "c@lid").await,
        Some((vec![1, 1], 5000, None)),
        "stale write"
    );
    s.store_received_tc_token("c@lid", &[3, 3], 5000)
        .await
        .unwrap();
    assert_eq!(
        get(&s, "c@lid").await,
        Some((vec![3, 3], 5000, None)),
        "as new wins"
    );
    s.store_received_tc_token("c@lid", &[4, 4], 7000)
        .await
        .unwrap();
    assert_eq!(get(&s, "c@lid").await, Some((vec![4, 4], 7000, None)));

    // A token-less placeholder never blocks the first real token, however old.
    s.touch_tc_token_sender_timestamp("p@lid", 9000)
        .await
        .unwrap();
    s.store_received_tc_token("p@lid", &[5], 6000)
        .await
        .unwrap();
    assert_eq!(get(&s, "p@lid").await, Some((vec![5], 6000, Some(9000))));
}

async fn the_sender_timestamp_only_moves_forward_and_keeps_the_token(db: &dyn Db) {
    let s = db.store("a").await;
    // A new contact gets a placeholder whose token time is the sender time.
    s.touch_tc_token_sender_timestamp("u@lid", 5000)
        .await
        .unwrap();
    assert_eq!(get(&s, "u@lid").await, Some((vec![], 5000, Some(5000))));

    s.store_received_tc_token("u@lid", &[7, 8, 9], 4000)
        .await
        .unwrap();
    assert_eq!(
        get(&s, "u@lid").await,
        Some((vec![7, 8, 9], 4000, Some(5000)))
    );

    s.touch_tc_token_sender_timestamp("u@lid", 6000)
        .await
        .unwrap();
    assert_eq!(
        get(&s, "u@lid").await,
        Some((vec![7, 8, 9], 4000, Some(6000)))
    );
    s.touch_tc_token_sender_timestamp("u@lid", 1000)
        .await
        .unwrap();
    assert_eq!(
        get(&s, "u@lid").await,
        Some((vec![7, 8, 9], 4000, Some(6000))),
        "never back"
    );

    // A token put without a sender time gets one from the first touch.
    s.put_tc_token("v@lid", &entry(&[1], 10, None))
        .await
        .unwrap();
    s.touch_tc_token_sender_timestamp("v@lid", 20)
        .await
        .unwrap();
    assert_eq!(get(&s, "v@lid").await, Some((vec![1], 10, Some(20))));
}

/// A row goes only when the received token is expired or absent AND the sender
/// bucket is expired or absent; both cutoffs are strict (`<`).
async fn expiry_needs_both_the_token_and_the_sender_bucket_stale(db: &dyn Db) {
    let s = db.store("a").await;
    // token_cutoff = 1000, sender_cutoff = 2000.
    s.touch_tc_token_sender_timestamp("recent_placeholder@lid", 2500)
        .await
        .unwrap();
    s.touch_tc_token_sender_timestamp("stale_placeholder@lid", 100)
        .await
        .unwrap();
    s.put_tc_token("expired_token_live_sender@lid", &entry(&[1], 1, Some(2500)))
        .await
        .unwrap();
    s.put_tc_token("expired_token_no_sender@lid", &entry(&[2], 1, None))
        .await
        .unwrap();
    s.put_tc_token("live_token_no_sender@lid", &entry(&[3], 1500, None))
        .await
        .unwrap();
    s.put_tc_token("token_at_cutoff@lid", &entry(&[4], 1000, None))
        .await
        .unwrap();
    s.put_tc_token("sender_at_cutoff@lid", &entry(&[5], 1, Some(2000)))
        .await
        .unwrap();

    assert_eq!(s.delete_expired_tc_tokens(1000, 2000).await.unwrap(), 2);
    assert_eq!(
        sorted(s.get_all_tc_token_jids().await.unwrap()),
        vec![
            "expired_token_live_sender@lid".to_string(),
            "live_token_no_sender@lid".to_string(),
            "recent_placeholder@lid".to_string(),
            "sender_at_cutoff@lid".to_string(),
            "token_at_cutoff@lid".to_string(),
        ]
    );
    assert_eq!(s.delete_expired_tc_tokens(1000, 2000).await.unwrap(), 0);
}

/// The notification path and the issuing path write the same row at once; each
/// must keep the other's field, and each field ends at its newest value.
async fn racing_writers_converge_on_the_newest_of_each_field(db: &dyn Db) {
    let s = db.store("a").await;
    let writers: Vec<_> = (0..16i64)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    s.touch_tc_token_sender_timestamp("race@lid", 1000 + i)
                        .await
                } else {
                    s.store_received_tc_token("race@lid", &[i as u8], 2000 + i)
                        .await
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    assert_eq!(
        get(&s, "race@lid").await,
        Some((vec![15], 2015, Some(1014)))
    );
}
