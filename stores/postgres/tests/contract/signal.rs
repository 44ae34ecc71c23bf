//! `SignalStore`: identities, sessions, pre-keys, signed pre-keys, sender keys.

use std::sync::Arc;

use bytes::Bytes;

use crate::backends::{Db, sorted};

const ALICE: &str = "5511987650001@s.whatsapp.net";
const ALICE_PHONE_2: &str = "5511987650001:2@s.whatsapp.net";
const BOB_LID: &str = "100000012345678@lid";

on_both_backends!(
    identities_are_stored_overwritten_and_deleted,
    an_identity_batch_upserts_and_its_last_repeat_wins,
    sessions_are_stored_overwritten_and_deleted,
    a_session_batch_upserts_and_its_last_repeat_wins,
    signal_state_for_a_user_means_a_session_or_identity_of_any_of_its_devices,
    prekeys_are_stored_loaded_and_removed,
    marking_prekeys_uploaded_never_brings_back_a_removed_one,
    prekey_batches_larger_than_any_statement_limit_work,
    signed_prekeys_are_stored_listed_and_removed,
    sender_keys_are_stored_overwritten_and_deleted,
);

async fn identities_are_stored_overwritten_and_deleted(db: &dyn Db) {
    let s = db.store("a").await;
    assert_eq!(s.load_identity(ALICE).await.unwrap(), None);
    s.put_identity(ALICE, [1; 32]).await.unwrap();
    assert_eq!(s.load_identity(ALICE).await.unwrap(), Some([1; 32]));
    s.put_identity(ALICE, [2; 32]).await.unwrap();
    assert_eq!(s.load_identity(ALICE).await.unwrap(), Some([2; 32]));
    assert_eq!(s.load_identity(ALICE_PHONE_2).await.unwrap(), None);

    s.delete_identity(ALICE).await.unwrap();
    assert_eq!(s.load_identity(ALICE).await.unwrap(), None);
    s.delete_identity(ALICE)
        .await
        .expect("deleting nothing is fine");
}

async fn an_identity_batch_upserts_and_its_last_repeat_wins(db: &dyn Db) {
    let s = db.store("a").await;
    s.put_identities_batch(&[]).await.unwrap();
    s.put_identity(BOB_LID, [9; 32]).await.unwrap();
    s.put_identities_batch(&[
        (Arc::from(ALICE), [1; 32]),
        (Arc::from(BOB_LID), [2; 32]),
        (Arc::from(ALICE), [3; 32]),
    ])
    .await
    .unwrap();
    assert_eq!(s.load_identity(ALICE).await.unwrap(), Some([3; 32]));
    assert_eq!(s.load_identity(BOB_LID).await.unwrap(), Some([2; 32]));
}

async fn sessions_are_stored_overwritten_and_deleted(db: &dyn Db) {
    let s = db.store("a").await;
    assert_eq!(s.get_session(ALICE).await.unwrap(), None);
    assert!(!s.has_session(ALICE).await.unwrap());

    s.put_session(ALICE, b"first").await.unwrap();
    assert_eq!(
        s.get_session(ALICE).await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    assert!(s.has_session(ALICE).await.unwrap());
    assert!(!s.has_session(ALICE_PHONE_2).await.unwrap());

    s.put_session(ALICE, b"second").await.unwrap();
    assert_eq!(
        s.get_session(ALICE).await.unwrap().as_deref(),
        Some(&b"second"[..])
    );

    s.delete_session(ALICE).await.unwrap();
    assert_eq!(s.get_session(ALICE).await.unwrap(), None);
    assert!(!s.has_session(ALICE).await.unwrap());
    s.delete_session(ALICE)
        .await
        .expect("deleting nothing is fine");
}

async fn a_session_batch_upserts_and_its_last_repeat_wins(db: &dyn Db) {
    let s = db.store("a").await;
    s.put_sessions_batch(&[]).await.unwrap();
    s.put_session(BOB_LID, b"old").await.unwrap();
    s.put_sessions_batch(&[
        (Arc::from(ALICE), Bytes::from_static(b"a1")),
        (Arc::from(BOB_LID), Bytes::from_static(b"b1")),
        (Arc::from(ALICE), Bytes::from_static(b"a2")),
    ])
    .await
    .unwrap();
    assert_eq!(
        s.get_session(ALICE).await.unwrap().as_deref(),
        Some(&b"a2"[..])
    );
    assert_eq!(
        s.get_session(BOB_LID).await.unwrap().as_deref(),
        Some(&b"b1"[..])
    );
}

/// Addresses are `user@server` (device 0) or `user:device@server`: a user's state
/// is any address starting with the user followed by `@` or `:`, never a longer
/// user that merely starts with the same digits.
async fn signal_state_for_a_user_means_a_session_or_identity_of_any_of_its_devices(db: &dyn Db) {
    let s = db.store("a").await;
    assert!(!s.has_signal_state_for_user("551100").await.unwrap());

    s.put_session("551100:2@s.whatsapp.net", b"session")
        .await
        .unwrap();
    assert!(s.has_signal_state_for_user("551100").await.unwrap());
    assert!(
        !s.has_signal_state_for_user("5511").await.unwrap(),
        "a prefix of the user"
    );
    assert!(
        !s.has_signal_state_for_user("5511000").await.unwrap(),
        "a longer user"
    );

    s.put_identity("7788@lid", [1; 32]).await.unwrap();
    assert!(
        s.has_signal_state_for_user("7788").await.unwrap(),
        "an identity alone"
    );

    s.delete_session("551100:2@s.whatsapp.net").await.unwrap();
    s.delete_identity("7788@lid").await.unwrap();
    assert!(!s.has_signal_state_for_user("551100").await.unwrap());
    assert!(!s.has_signal_state_for_user("7788").await.unwrap());
}

async fn prekeys_are_stored_loaded_and_removed(db: &dyn Db) {
    let s = db.store("a").await;
    assert_eq!(s.load_prekey(5).await.unwrap(), None);
    assert_eq!(
        s.get_max_prekey_id().await.unwrap(),
        0,
        "0 when there are none"
    );
    assert!(s.load_prekeys_batch(&[]).await.unwrap().is_empty());

    s.store_prekey(5, b"k5", false).await.unwrap();
    assert_eq!(s.load_prekey(5).await.unwrap().as_deref(), Some(&b"k5"[..]));
    s.store_prekey(5, b"k5-again", true).await.unwrap();
    assert_eq!(
        s.load_prekey(5).await.unwrap().as_deref(),
        Some(&b"k5-again"[..])
    );

    s.store_prekeys_batch(&[], false).await.unwrap();
    s.store_prekeys_batch(
        &[
            (6, Bytes::from_static(b"k6")),
            (7, Bytes::from_static(b"k7")),
            (6, Bytes::from_static(b"k6-last")),
        ],
        false,
    )
    .await
    .unwrap();
    let loaded = s.load_prekeys_batch(&[7, 5, 99, 6]).await.unwrap();
    assert_eq!(
        sorted(loaded.into_iter().map(|(id, k)| (id, k.to_vec())).collect()),
        vec![
            (5, b"k5-again".to_vec()),
            (6, b"k6-last".to_vec()),
            (7, b"k7".to_vec())
        ],
        "only the keys that exist"
    );

    assert_eq!(s.get_max_prekey_id().await.unwrap(), 7);
    s.remove_prekey(7).await.unwrap();
    assert_eq!(s.load_prekey(7).await.unwrap(), None);
    assert_eq!(s.get_max_prekey_id().await.unwrap(), 6);
    s.remove_prekey(7).await.expect("removing nothing is fine");
}

/// Marking is an UPDATE: a key consumed between the upload snapshot and the mark
/// stays consumed.
async fn marking_prekeys_uploaded_never_brings_back_a_removed_one(db: &dyn Db) {
    let s = db.store("a").await;
    s.store_prekeys_batch(
        &[
            (1, Bytes::from_static(b"k1")),
            (2, Bytes::from_static(b"k2")),
        ],
        false,
    )
    .await
    .unwrap();
    s.remove_prekey(2).await.unwrap();
    s.mark_prekeys_uploaded(&[]).await.unwrap();
    s.mark_prekeys_uploaded(&[1, 2, 3]).await.unwrap();
    assert_eq!(s.load_prekey(1).await.unwrap().as_deref(), Some(&b"k1"[..]));
    assert_eq!(s.load_prekey(2).await.unwrap(), None);
    assert_eq!(s.load_prekey(3).await.unwrap(), None);
    assert_eq!(s.get_max_prekey_id().await.unwrap(), 1);
}

/// Upstream chunks id lists under SQLite's 999-parameter limit; ours sends arrays.
async fn prekey_batches_larger_than_any_statement_limit_work(db: &dyn Db) {
    let s = db.store("a").await;
    let keys: Vec<(u32, Bytes)> = (1..=1500)
        .map(|id| (id, Bytes::from(format!("key-{id}"))))
        .collect();
    s.store_prekeys_batch(&keys, false).await.unwrap();
    let ids: Vec<u32> = keys.iter().map(|(id, _)| *id).collect();
    s.mark_prekeys_uploaded(&ids).await.unwrap();
    let loaded = s.load_prekeys_batch(&ids).await.unwrap();
    assert_eq!(loaded.len(), 1500);
    assert_eq!(
        sorted(loaded.into_iter().map(|(id, k)| (id, k.to_vec())).collect()),
        keys.iter()
            .map(|(id, k)| (*id, k.to_vec()))
            .collect::<Vec<_>>()
    );
    assert_eq!(s.get_max_prekey_id().await.unwrap(), 1500);
}

async fn signed_prekeys_are_stored_listed_and_removed(db: &dyn Db) {
    let s = db.store("a").await;
    assert_eq!(s.load_signed_prekey(1).await.unwrap(), None);
    assert!(s.load_all_signed_prekeys().await.unwrap().is_empty());

    s.store_signed_prekey(1, b"s1").await.unwrap();
    s.store_signed_prekey(2, b"s2").await.unwrap();
    s.store_signed_prekey(1, b"s1-rotated").await.unwrap();
    assert_eq!(
        s.load_signed_prekey(1).await.unwrap(),
        Some(b"s1-rotated".to_vec())
    );
    assert_eq!(
        sorted(s.load_all_signed_prekeys().await.unwrap()),
        vec![(1, b"s1-rotated".to_vec()), (2, b"s2".to_vec())]
    );

    s.remove_signed_prekey(1).await.unwrap();
    assert_eq!(s.load_signed_prekey(1).await.unwrap(), None);
    assert_eq!(
        s.load_all_signed_prekeys().await.unwrap(),
        vec![(2, b"s2".to_vec())]
    );
    s.remove_signed_prekey(1)
        .await
        .expect("removing nothing is fine");
}

async fn sender_keys_are_stored_overwritten_and_deleted(db: &dyn Db) {
    const GROUP_SENDER: &str = "120363021033254949@g.us::5511987650001:2@s.whatsapp.net";
    let s = db.store("a").await;
    assert_eq!(s.get_sender_key(GROUP_SENDER).await.unwrap(), None);
    s.put_sender_key(GROUP_SENDER, b"r1").await.unwrap();
    assert_eq!(
        s.get_sender_key(GROUP_SENDER).await.unwrap(),
        Some(b"r1".to_vec())
    );
    s.put_sender_key(GROUP_SENDER, b"r2").await.unwrap();
    assert_eq!(
        s.get_sender_key(GROUP_SENDER).await.unwrap(),
        Some(b"r2".to_vec())
    );

    s.put_sender_keys_batch(&[]).await.unwrap();
    s.put_sender_keys_batch(&[
        (Arc::from(GROUP_SENDER), Bytes::from_static(b"r3")),
        (Arc::from("other"), Bytes::from_static(b"o1")),
        (Arc::from(GROUP_SENDER), Bytes::from_static(b"r4")),
    ])
    .await
    .unwrap();
    assert_eq!(
        s.get_sender_key(GROUP_SENDER).await.unwrap(),
        Some(b"r4".to_vec())
    );
    assert_eq!(
        s.get_sender_key("other").await.unwrap(),
        Some(b"o1".to_vec())
    );

    s.delete_sender_key(GROUP_SENDER).await.unwrap();
    assert_eq!(s.get_sender_key(GROUP_SENDER).await.unwrap(), None);
    s.delete_sender_key(GROUP_SENDER)
        .await
        .expect("deleting nothing is fine");
}
