//! `ProtocolStore`: sender-key device marks, LID ↔ phone mappings, base keys, the
//! device registry and group metadata.

use wacore::store::traits::{DeviceInfo, DeviceListRecord, LidPnMappingEntry};

use crate::backends::{Db, sorted};

const GROUP: &str = "120363021033254949@g.us";
const OTHER_GROUP: &str = "120363021033254950@g.us";
const A: &str = "5511987650001:2@s.whatsapp.net";
const B: &str = "5511987650002:0@s.whatsapp.net";
const C: &str = "100000012345678:3@lid";

on_both_backends!(
    sender_key_marks_are_set_per_group_and_device,
    sender_key_marks_are_deleted_per_device_group_or_all,
    a_lid_mapping_update_keeps_when_it_was_first_learned,
    a_phone_resolves_to_its_most_recently_updated_lid,
    a_mapping_batch_acts_like_its_mappings_one_by_one,
    a_base_key_matches_only_the_one_saved_for_the_message,
    device_lists_are_replaced_whole,
    a_device_list_batch_keeps_the_last_record_of_a_user,
    group_metadata_is_stored_replaced_and_deleted,
);

async fn sender_key_marks_are_set_per_group_and_device(db: &dyn Db) {
    let s = db.store("a").await;
    assert!(s.get_sender_key_devices(GROUP).await.unwrap().is_empty());
    s.set_sender_key_status(GROUP, &[]).await.unwrap();

    s.set_sender_key_status(GROUP, &[(A, true), (B, false)])
        .await
        .unwrap();
    assert_eq!(
        sorted(s.get_sender_key_devices(GROUP).await.unwrap()),
        vec![(A.to_string(), true), (B.to_string(), false)]
    );
    // A later mark replaces the earlier; a device repeated in one call ends as
    // its last mark.
    s.set_sender_key_status(GROUP, &[(A, false), (C, true), (C, false)])
        .await
        .unwrap();
    assert_eq!(
        sorted(s.get_sender_key_devices(GROUP).await.unwrap()),
        sorted(vec![
            (A.to_string(), false),
            (B.to_string(), false),
            (C.to_string(), false)
        ])
    );
    assert!(
        s.get_sender_key_devices(OTHER_GROUP)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn sender_key_marks_are_deleted_per_device_group_or_all(db: &dyn Db) {
    let s = db.store("a").await;
    s.set_sender_key_status(GROUP, &[(A, true), (B, true), (C, false)])
        .await
        .unwrap();
    s.set_sender_key_status(OTHER_GROUP, &[(A, true), (B, true)])
        .await
        .unwrap();

    s.delete_sender_key_device_rows(&[]).await.unwrap();
    s.delete_sender_key_device_rows(&[A, "9999:1@s.whatsapp.net"])
        .await
        .unwrap();
    assert_eq!(
        sorted(s.get_sender_key_devices(GROUP).await.unwrap()),
        sorted(vec![(B.to_string(), true), (C.to_string(), false)]),
        "the device is gone from every group"
    );
    assert_eq!(
        s.get_sender_key_devices(OTHER_GROUP).await.unwrap(),
        vec![(B.to_string(), true)]
    );

    s.clear_sender_key_devices(GROUP).await.unwrap();
    assert!(s.get_sender_key_devices(GROUP).await.unwrap().is_empty());
    assert_eq!(
        s.get_sender_key_devices(OTHER_GROUP).await.unwrap().len(),
        1
    );

    s.clear_all_sender_key_devices().await.unwrap();
    assert!(
        s.get_sender_key_devices(OTHER_GROUP)
            .await
            .unwrap()
            .is_empty()
    );
}

fn mapping(
    lid: &str,
    phone: &str,
    created_at: i64,
    updated_at: i64,
    source: &str,
) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: lid.into(),
        phone_number: phone.into(),
        created_at,
        updated_at,
        learning_source: source.into(),
    }
}

fn fields(entry: &LidPnMappingEntry) -> (String, String, i64, i64, String) {
    (
        entry.lid.clone(),
        entry.phone_number.clone(),
        entry.created_at,
        entry.updated_at,
        entry.learning_source.clone(),
    )
}

/// An update takes the new phone number, source and `updated_at`, but the
/// `created_at` stays the one the LID was first learned with.
async fn a_lid_mapping_update_keeps_when_it_was_first_learned(db: &dyn Db) {
    let s = db.store("a").await;
    assert!(
        s.get_lid_mapping("100000012345678")
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.get_pn_mapping("5511987650001").await.unwrap().is_none());
    assert!(s.get_all_lid_mappings().await.unwrap().is_empty());

    let first = mapping("100000012345678", "5511987650001", 100, 100, "usync");
    s.put_lid_mapping(&first).await.unwrap();
    let got = s.get_lid_mapping("100000012345678").await.unwrap().unwrap();
    assert_eq!(fields(&got), fields(&first));
    let got = s.get_pn_mapping("5511987650001").await.unwrap().unwrap();
    assert_eq!(fields(&got), fields(&first));

    s.put_lid_mapping(&mapping(
        "100000012345678",
        "5511987650002",
        200,
        300,
        "peer_pn_message",
    ))
    .await
    .unwrap();
    let got = s.get_lid_mapping("100000012345678").await.unwrap().unwrap();
    assert_eq!(
        fields(&got),
        fields(&mapping(
            "100000012345678",
            "5511987650002",
            100,
            300,
            "peer_pn_message"
        ))
    );
    assert!(
        s.get_pn_mapping("5511987650001").await.unwrap().is_none(),
        "the old number no longer maps"
    );
}

async fn a_phone_resolves_to_its_most_recently_updated_lid(db: &dyn Db) {
    let s = db.store("a").await;
    s.put_lid_mapping(&mapping("111", "5511", 10, 10, "usync"))
        .await
        .unwrap();
    s.put_lid_mapping(&mapping("222", "5511", 20, 40, "usync"))
        .await
        .unwrap();
    assert_eq!(s.get_pn_mapping("5511").await.unwrap().unwrap().lid, "222");
    s.put_lid_mapping(&mapping("111", "5511", 50, 50, "usync"))
        .await
        .unwrap();
    assert_eq!(s.get_pn_mapping("5511").await.unwrap().unwrap().lid, "111");
}

async fn a_mapping_batch_acts_like_its_mappings_one_by_one(db: &dyn Db) {
    let s = db.store("a").await;
    s.put_lid_mappings(&[]).await.unwrap();
    s.put_lid_mappings(&[
        mapping("333", "5533", 10, 10, "usync"),
        mapping("444", "5544", 11, 11, "usync"),
        mapping("333", "5534", 20, 20, "peer_pn_message"),
    ])
    .await
    .unwrap();
    let all = sorted(
        s.get_all_lid_mappings()
            .await
            .unwrap()
            .iter()
            .map(fields)
            .collect(),
    );
    assert_eq!(
        all,
        vec![
            fields(&mapping("333", "5534", 10, 20, "peer_pn_message")),
            fields(&mapping("444", "5544", 11, 11, "usync")),
        ]
    );
}

async fn a_base_key_matches_only_the_one_saved_for_the_message(db: &dyn Db) {
    let s = db.store("a").await;
    assert!(
        !s.has_same_base_key(A, "M1", b"k1").await.unwrap(),
        "nothing saved"
    );
    s.save_base_key(A, "M1", b"k1").await.unwrap();
    assert!(s.has_same_base_key(A, "M1", b"k1").await.unwrap());
    assert!(!s.has_same_base_key(A, "M1", b"k2").await.unwrap());
    assert!(!s.has_same_base_key(A, "M2", b"k1").await.unwrap());
    assert!(!s.has_same_base_key(B, "M1", b"k1").await.unwrap());

    s.save_base_key(A, "M1", b"k2").await.unwrap();
    assert!(s.has_same_base_key(A, "M1", b"k2").await.unwrap());
    assert!(!s.has_same_base_key(A, "M1", b"k1").await.unwrap());

    s.delete_base_key(A, "M1").await.unwrap();
    assert!(!s.has_same_base_key(A, "M1", b"k2").await.unwrap());
    s.delete_base_key(A, "M1")
        .await
        .expect("deleting nothing is fine");
}

fn record(
    user: &str,
    devices: Vec<DeviceInfo>,
    timestamp: i64,
    phash: Option<&str>,
    raw_id: Option<u32>,
) -> DeviceListRecord {
    DeviceListRecord {
        user: user.into(),
        devices,
        timestamp,
        phash: phash.map(Into::into),
        raw_id,
    }
}

/// A record as comparable JSON (the type has no `PartialEq`).
fn json(record: &DeviceListRecord) -> serde_json::Value {
    serde_json::json!({
        "user": record.user,
        "devices": record.devices,
        "timestamp": record.timestamp,
        "phash": record.phash,
        "raw_id": record.raw_id,
    })
}

async fn device_lists_are_replaced_whole(db: &dyn Db) {
    let s = db.store("a").await;
    assert!(s.get_devices("5511").await.unwrap().is_none());

    let full = record(
        "5511",
        vec![
            DeviceInfo::new(0, None),
            DeviceInfo::new(3, Some(7)).with_hosting(true),
        ],
        1_700_000_000,
        Some("2:abcdef"),
        Some(u32::MAX),
    );
    s.update_device_list(full.clone()).await.unwrap();
    assert_eq!(
        json(&s.get_devices("5511").await.unwrap().unwrap()),
        json(&full)
    );

    let bare = record("5511", vec![], 1_700_000_100, None, None);
    s.update_device_list(bare.clone()).await.unwrap();
    assert_eq!(
        json(&s.get_devices("5511").await.unwrap().unwrap()),
        json(&bare),
        "absent hash and raw id replace the stored ones"
    );

    s.delete_devices("5511").await.unwrap();
    assert!(s.get_devices("5511").await.unwrap().is_none());
    s.delete_devices("5511")
        .await
        .expect("deleting nothing is fine");
}

async fn a_device_list_batch_keeps_the_last_record_of_a_user(db: &dyn Db) {
    let s = db.store("a").await;
    s.update_device_lists(vec![]).await.unwrap();
    let x1 = record(
        "5511",
        vec![DeviceInfo::new(0, None)],
        1,
        Some("x1"),
        Some(1),
    );
    let y = record("5522", vec![DeviceInfo::new(1, Some(2))], 2, None, None);
    let x2 = record("5511", vec![DeviceInfo::new(4, None)], 3, Some("x2"), None);
    s.update_device_lists(vec![x1, y.clone(), x2.clone()])
        .await
        .unwrap();
    assert_eq!(
        json(&s.get_devices("5511").await.unwrap().unwrap()),
        json(&x2)
    );
    assert_eq!(
        json(&s.get_devices("5522").await.unwrap().unwrap()),
        json(&y)
    );
}

async fn group_metadata_is_stored_replaced_and_deleted(db: &dyn Db) {
    let s = db.store("a").await;
    assert_eq!(s.get_group_metadata(GROUP).await.unwrap(), None);
    s.put_group_metadata(GROUP, b"v1").await.unwrap();
    assert_eq!(
        s.get_group_metadata(GROUP).await.unwrap(),
        Some(b"v1".to_vec())
    );
    s.put_group_metadata(GROUP, b"v2").await.unwrap();
    assert_eq!(
        s.get_group_metadata(GROUP).await.unwrap(),
        Some(b"v2".to_vec())
    );
    assert_eq!(s.get_group_metadata(OTHER_GROUP).await.unwrap(), None);
    s.delete_group_metadata(GROUP).await.unwrap();
    assert_eq!(s.get_group_metadata(GROUP).await.unwrap(), None);
}
