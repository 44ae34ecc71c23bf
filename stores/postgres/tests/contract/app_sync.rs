//! `AppSyncStore`: sync keys, collection versions, mutation MACs.

use std::collections::HashMap;

use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::traits::AppStateSyncKey;

use crate::backends::Db;

on_both_backends!(
    sync_keys_are_stored_and_overwritten,
    the_latest_sync_key_is_the_greatest_id_whose_key_is_usable,
    a_sync_key_that_is_not_32_bytes_reads_as_absent,
    a_collection_version_round_trips_whole,
    an_unknown_collection_is_at_version_zero,
    mutation_macs_are_stored_per_collection_and_index,
    mutation_macs_are_deleted_by_index_or_cleared_per_collection,
);

fn key(byte: u8, fingerprint: &[u8], timestamp: i64) -> AppStateSyncKey {
    AppStateSyncKey {
        key_data: vec![byte; 32],
        fingerprint: fingerprint.to_vec(),
        timestamp,
    }
}

fn fields(key: &AppStateSyncKey) -> (Vec<u8>, Vec<u8>, i64) {
    (key.key_data.clone(), key.fingerprint.clone(), key.timestamp)
}

async fn sync_keys_are_stored_and_overwritten(db: &dyn Db) {
    let s = db.store("a").await;
    assert!(s.get_sync_key(&[0, 1]).await.unwrap().is_none());

    s.set_sync_key(&[0, 1], key(7, &[1, 2], 1_700_000_000))
        .await
        .unwrap();
    let got = s.get_sync_key(&[0, 1]).await.unwrap().expect("stored");
    assert_eq!(fields(&got), fields(&key(7, &[1, 2], 1_700_000_000)));

    s.set_sync_key(&[0, 1], key(8, &[], 0)).await.unwrap();
    let got = s.get_sync_key(&[0, 1]).await.unwrap().expect("stored");
    assert_eq!(fields(&got), fields(&key(8, &[], 0)));
    assert!(s.get_sync_key(&[0, 2]).await.unwrap().is_none());
}

/// "Latest" is the greatest key id in byte order (a shorter id that is a prefix
/// of a longer one comes first).
async fn the_latest_sync_key_is_the_greatest_id_whose_key_is_usable(db: &dyn Db) {
    let s = db.store("a").await;
    assert_eq!(s.get_latest_sync_key_id().await.unwrap(), None);
    for id in [&[0, 1][..], &[0, 2], &[1], &[0, 0, 9]] {
        s.set_sync_key(id, key(1, &[], 1)).await.unwrap();
    }
    assert_eq!(s.get_latest_sync_key_id().await.unwrap(), Some(vec![1]));
    s.set_sync_key(&[1, 0], key(1, &[], 1)).await.unwrap();
    assert_eq!(s.get_latest_sync_key_id().await.unwrap(), Some(vec![1, 0]));
}

/// Surprising but deliberate upstream behaviour: key material that is not an
/// app-state master key (32 bytes) is stored but reads back as absent, so the
/// client asks the phone for the key again, and "latest" skips it.
async fn a_sync_key_that_is_not_32_bytes_reads_as_absent(db: &dyn Db) {
    let s = db.store("a").await;
    s.set_sync_key(&[1], key(1, &[], 1)).await.unwrap();
    let short = AppStateSyncKey {
        key_data: vec![5; 16],
        fingerprint: vec![1],
        timestamp: 2,
    };
    s.set_sync_key(&[0xff], short).await.unwrap();
    assert!(s.get_sync_key(&[0xff]).await.unwrap().is_none());
    assert_eq!(s.get_latest_sync_key_id().await.unwrap(), Some(vec![1]));
}

async fn a_collection_version_round_trips_whole(db: &dyn Db) {
    let s = db.store("a").await;
    let mut hash = [0u8; 128];
    hash.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    let state = HashState {
        version: 42,
        hash,
        index_value_map: HashMap::from([
            ("idx-a".to_string(), vec![1, 2, 3]),
            ("idx-b".to_string(), vec![]),
        ]),
        mac_mismatch_fatal: true,
    };
    s.set_version("regular", state.clone()).await.unwrap();
    let got = s.get_version("regular").await.unwrap();
    assert_eq!(got.version, 42);
    assert_eq!(got.hash, hash);
    assert_eq!(got.index_value_map, state.index_value_map);
    assert!(got.mac_mismatch_fatal, "the latch survives a restart");

    let newest = HashState {
        version: u64::MAX,
        ..HashState::default()
    };
    s.set_version("regular", newest).await.unwrap();
    let got = s.get_version("regular").await.unwrap();
    assert_eq!(got.version, u64::MAX, "every u64 version round-trips");
    assert_eq!(got.hash, [0; 128]);
    assert!(got.index_value_map.is_empty());
    assert!(!got.mac_mismatch_fatal);
}

async fn an_unknown_collection_is_at_version_zero(db: &dyn Db) {
    let s = db.store("a").await;
    s.set_version(
        "regular",
        HashState {
            version: 3,
            ..HashState::default()
        },
    )
    .await
    .unwrap();
    let got = s.get_version("critical_block").await.unwrap();
    assert_eq!(got.version, 0);
    assert_eq!(got.hash, [0; 128]);
    assert!(got.index_value_map.is_empty());
    assert!(!got.mac_mismatch_fatal);
}

fn mac(index: u8, value: &[u8]) -> AppStateMutationMAC {
    AppStateMutationMAC {
        index_mac: vec![index; 32],
        value_mac: value.to_vec(),
    }
}

async fn mutation_macs_are_stored_per_collection_and_index(db: &dyn Db) {
    let s = db.store("a").await;
    s.put_mutation_macs("regular", 1, &[]).await.unwrap();
    s.put_mutation_macs("regular", 1, &[mac(1, b"a1"), mac(2, b"b1")])
        .await
        .unwrap();
    assert_eq!(
        s.get_mutation_mac("regular", &[1; 32]).await.unwrap(),
        Some(b"a1".to_vec())
    );
    assert_eq!(s.get_mutation_mac("regular", &[3; 32]).await.unwrap(), None);
    assert_eq!(
        s.get_mutation_mac("regular_low", &[1; 32]).await.unwrap(),
        None
    );

    // A later version overwrites an index; an index repeated in one call ends as
    // its last value.
    s.put_mutation_macs("regular", 2, &[mac(1, b"a2"), mac(3, b"c1"), mac(3, b"c2")])
        .await
        .unwrap();
    assert_eq!(
        s.get_mutation_mac("regular", &[1; 32]).await.unwrap(),
        Some(b"a2".to_vec())
    );

    let found = s
        .get_mutation_macs("regular", &[[1; 32], [2; 32], [3; 32], [4; 32]])
        .await
        .unwrap();
    assert_eq!(
        found,
        HashMap::from([
            ([1; 32], b"a2".to_vec()),
            ([2; 32], b"b1".to_vec()),
            ([3; 32], b"c2".to_vec()),
        ])
    );
    assert!(
        s.get_mutation_macs("regular", &[])
            .await
            .unwrap()
            .is_empty()
    );
}

async fn mutation_macs_are_deleted_by_index_or_cleared_per_collection(db: &dyn Db) {
    let s = db.store("a").await;
    s.put_mutation_macs("regular", 1, &[mac(1, b"a"), mac(2, b"b"), mac(3, b"c")])
        .await
        .unwrap();
    s.put_mutation_macs("regular_high", 1, &[mac(1, b"other")])
        .await
        .unwrap();

    s.delete_mutation_macs("regular", &[]).await.unwrap();
    s.delete_mutation_macs("regular", &[vec![1; 32], vec![9; 32]])
        .await
        .unwrap();
    assert_eq!(s.get_mutation_mac("regular", &[1; 32]).await.unwrap(), None);
    assert_eq!(
        s.get_mutation_mac("regular", &[2; 32]).await.unwrap(),
        Some(b"b".to_vec())
    );
    assert_eq!(
        s.get_mutation_mac("regular_high", &[1; 32]).await.unwrap(),
        Some(b"other".to_vec()),
        "another collection's index"
    );

    s.clear_mutation_macs("regular").await.unwrap();
    assert_eq!(s.get_mutation_mac("regular", &[2; 32]).await.unwrap(), None);
    assert_eq!(s.get_mutation_mac("regular", &[3; 32]).await.unwrap(), None);
    assert_eq!(
        s.get_mutation_mac("regular_high", &[1; 32]).await.unwrap(),
        Some(b"other".to_vec())
    );
}
